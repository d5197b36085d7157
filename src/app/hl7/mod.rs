//! HL7 v2 app layer: HL7 v2.1–2.8 messages over TCP, framed by MLLP
//! (HL7 v2.5.1 Appendix C.4.3: `0x0B` message `0x1C 0x0D`) or bare (the
//! Contec CMS8000 sends CR-terminated segments straight on TCP 515), with
//! batch envelopes (FHS/BHS … BTS/FTS, §2.10.3) where they appear.
//!
//! Owns: the byte parser ([`parser`], stateless: header recognition,
//! delimiters from MSH-1/MSH-2, fields, escapes), the per-flow state
//! machine ([`state`]: framing, message assembly within limits, pairing of
//! a message with its acknowledgment by MSH-10 ↔ MSA-2, anomaly events),
//! the EVE `hl7` object ([`log`]) and the rule predicates ([`detect`]). A
//! [`Record`] is one message and the answer paired with it.
//!
//! Invariants: a [`Message`] holds its text in canonical form — segments
//! in order, each ended by one CR, framing bytes and blank lines removed —
//! bounded by [`Hl7Config::max_msg_len`] plus a few late identity segments
//! (see [`state`]); fields are read from that text on demand, so a message
//! costs one allocation.

pub mod detect;
pub mod log;
pub mod parser;
pub mod state;

use serde::Deserialize;

use crate::app::probe::Verdict as Probe;
use crate::app::{AppProto, StreamConsumer};
use crate::flow::Direction;
use parser::{Delimiters, Verdict, CR, LF, SB};

/// `app_layer.hl7` configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hl7Config {
    /// Bytes of a message kept (segments as sent, one CR each); the
    /// segments past it are dropped and counted, the message is logged
    /// `truncated` and raises `message_too_large`. MLLP declares no
    /// length: this bounds what is buffered, not what is read.
    pub max_msg_len: usize,
    /// Bytes of one segment kept; the rest of a longer segment (an
    /// embedded document in OBX-5) is dropped and counted.
    pub max_segment_len: usize,
    /// Messages awaiting their acknowledgment per flow; past it the oldest
    /// is logged unanswered (`too_many_transactions`).
    pub max_transactions: usize,
    /// Bytes the messages awaiting acknowledgment of a flow may hold; past
    /// it the oldest is logged unanswered.
    pub max_open_bytes: usize,
    /// Bytes looked through for the next message start after a gap or
    /// bytes that are no HL7, before the direction is given up
    /// (`resync_failed`).
    pub max_resync: u64,
}

impl Default for Hl7Config {
    fn default() -> Self {
        Hl7Config {
            max_msg_len: 1 << 20,
            max_segment_len: 64 * 1024,
            max_transactions: 64,
            max_open_bytes: 1 << 20,
            max_resync: 1 << 20,
        }
    }
}

/// How a message was framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// MLLP block (`0x0B` … `0x1C`).
    Mllp,
    /// Bare segments on TCP.
    Bare,
}

/// One HL7 message as seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who sent it.
    pub dir: Direction,
    pub framing: Framing,
    pub delimiters: Delimiters,
    /// Canonical text: the kept segments, each ended by one CR; starts
    /// with MSH.
    pub text: Vec<u8>,
    /// Bytes of the message on the wire, framing and blank lines excluded.
    pub length: u64,
    /// Segments seen, kept or not.
    pub segment_count: u32,
    /// Segments dropped because the message was over `max_msg_len`.
    pub segments_dropped: u32,
    /// Segments cut to `max_segment_len`.
    pub segments_truncated: u32,
    /// Cut short: bytes were lost inside it, its MLLP frame never ended,
    /// or the memory budget made the parser log it early.
    pub incomplete: bool,
    /// Where the segments the record reads are in `text`.
    pub index: state::SegIndex,
}

/// One message and the answer paired with it (by MSH-10 ↔ MSA-2), or an
/// answer whose message was not seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The message that opened the record.
    pub message: Message,
    /// Its acknowledgment or response, when seen.
    pub answer: Option<Message>,
    /// The direction the answer travels in lost bytes (or was never
    /// captured: a one-way capture) while the answer was awaited.
    pub answer_lost: bool,
}

impl Record {
    /// Who sent the message that opened the record.
    pub fn direction(&self) -> Direction {
        self.message.dir
    }

    /// The messages of the record, opening message first.
    pub fn messages(&self) -> impl Iterator<Item = &Message> {
        std::iter::once(&self.message).chain(self.answer.as_ref())
    }
}

impl Message {
    /// The segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &[u8]> {
        parser::segments(&self.text)
    }

    /// The first segment named `name`.
    pub fn segment(&self, name: &[u8]) -> Option<&[u8]> {
        if name == b"MSH" {
            // The text starts with its MSH.
            let t = &self.text;
            return t
                .get(..memchr::memchr(CR, t).unwrap_or(t.len()))
                .filter(|s| s.starts_with(b"MSH"));
        }
        match self.index.get(name) {
            Some(at) => {
                let rest = self.text.get(at?..)?;
                rest.get(..memchr::memchr(CR, rest).unwrap_or(rest.len()))
            }
            None => self.segments().find(|s| parser::segment_name(s) == name),
        }
    }

    /// Field `n` of the first segment named `name`, raw (escapes and
    /// delimiters as sent).
    pub fn field(&self, name: &[u8], n: usize) -> Option<&[u8]> {
        if name == b"MSH" {
            if let Some(f) = self.index.msh_field(&self.text, n) {
                return f;
            }
        }
        parser::field(self.segment(name)?, n, &self.delimiters)
    }

    /// Component `c` of field `n` of the first segment `name`, raw; empty
    /// when absent.
    pub fn component(&self, name: &[u8], n: usize, c: usize) -> &[u8] {
        self.field(name, n)
            .map_or(&[][..], |f| parser::component(f, c, &self.delimiters))
    }

    /// MSH-9.1, message type (`ADT`, `ORU`, `ACK`).
    pub fn message_type(&self) -> &[u8] {
        self.component(b"MSH", 9, 1)
    }

    /// MSH-9.2, trigger event (`A01`); before v2.3 it travelled in EVN-1
    /// only, which is used when MSH-9.2 is empty.
    pub fn trigger_event(&self) -> &[u8] {
        let t = self.component(b"MSH", 9, 2);
        if t.is_empty() {
            self.component(b"EVN", 1, 1)
        } else {
            t
        }
    }

    /// MSH-9.3, message structure (`ADT_A01`, v2.3.1+).
    pub fn message_structure(&self) -> &[u8] {
        self.component(b"MSH", 9, 3)
    }

    /// MSH-10, message control id.
    pub fn control_id(&self) -> &[u8] {
        self.field(b"MSH", 10).unwrap_or(&[])
    }

    /// MSH-11.1, processing id (`P` production, `T` training, `D`
    /// debugging).
    pub fn processing_id(&self) -> &[u8] {
        self.component(b"MSH", 11, 1)
    }

    /// MSH-12.1, version id (`2.5`).
    pub fn version(&self) -> &[u8] {
        self.component(b"MSH", 12, 1)
    }

    /// MSA-1, acknowledgment code (`AA`, `AE`, `AR`, `CA`, `CE`, `CR`).
    pub fn ack_code(&self) -> Option<&[u8]> {
        self.segment(b"MSA")?;
        Some(self.component(b"MSA", 1, 1))
    }

    /// MSA-2, control id of the message acknowledged.
    pub fn acknowledged_id(&self) -> Option<&[u8]> {
        self.segment(b"MSA")?;
        Some(self.field(b"MSA", 2).unwrap_or(&[]))
    }

    /// Does the sender ask for no acknowledgment at all (MSH-15 accept and
    /// MSH-16 application acknowledgment type both `NE`, enhanced mode)?
    pub fn no_ack_wanted(&self) -> bool {
        self.field(b"MSH", 15) == Some(b"NE") && self.field(b"MSH", 16) == Some(b"NE")
    }
}

/// The parser of one HL7 flow.
pub fn new_parser(cfg: &Hl7Config) -> Option<Box<dyn StreamConsumer>> {
    Some(Box::new(state::Hl7State::new(cfg)))
}

/// Probe of a direction's first bytes (either direction: an
/// acknowledgment starts with MSH too): an MLLP start block then a header
/// segment, or a bare header segment (`MSH`, `FHS` or `BHS`, a field
/// separator and plausible encoding characters, [`parser::header`]).
pub fn probe_start(data: &[u8]) -> Probe {
    let body = match data.first() {
        None => return Probe::NeedMore,
        Some(&SB) => data.get(1..).unwrap_or(&[]),
        Some(_) => data,
    };
    match parser::header(body, false) {
        Verdict::Yes(_) => Probe::Match(AppProto::Hl7),
        Verdict::NeedMore => Probe::NeedMore,
        Verdict::No => Probe::NoMatch,
    }
}

/// Probe of bytes from the middle of a stream (a capture that starts
/// mid-connection, or after lost bytes): a header segment after an MLLP
/// start block or a line end, or two segment starts — a CR, a segment id
/// (`[A-Z][A-Z0-9]{2}`) and the same delimiter after both (the field
/// separator; MSH's own when one was seen).
pub fn probe_midstream(data: &[u8]) -> bool {
    let mut separator: Option<u8> = None;
    for (i, &b) in data.iter().enumerate() {
        if !matches!(b, CR | LF | SB) {
            continue;
        }
        let rest = data.get(i + 1..).unwrap_or(&[]);
        if let Verdict::Yes(_) = parser::header(rest, false) {
            return true;
        }
        if b != CR {
            continue;
        }
        let (Some(id), Some(&sep)) = (rest.get(..3), rest.get(3)) else {
            continue;
        };
        if !parser::is_segment_id(id) || !sep.is_ascii_punctuation() {
            continue;
        }
        match separator {
            Some(s) if s == sep => return true,
            Some(_) => {}
            None => separator = Some(sep),
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mllp_and_bare_starts_match_and_their_prefixes_need_more() {
        for start in [
            &b"\x0bMSH|^~\\&|"[..],
            b"MSH|^~\\&|",
            b"BHS|^~\\&|",
            b"FHS|^~\\&|",
        ] {
            assert_eq!(probe_start(start), Probe::Match(AppProto::Hl7));
            for n in 0..start.len() {
                assert_eq!(probe_start(&start[..n]), Probe::NeedMore, "{start:?} {n}");
            }
        }
    }

    #[test]
    fn text_that_is_not_a_header_does_not_match_at_the_start() {
        for other in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"MSH is not a header",
            b"\x0b\x0bMSH|^~\\&|",
            b"PID|1||MRN",
            b"\x10\x26\x00\x06MQIsdp\x03",
        ] {
            assert_eq!(probe_start(other), Probe::NoMatch, "{other:?}");
        }
    }

    #[test]
    fn midstream_needs_a_header_at_a_line_start_or_two_segment_starts() {
        // Hand-built: the tail of a PID segment, then PV1 and OBX.
        assert!(probe_midstream(b"E^JANE||19000101|F\rPV1|1|I|W3\rOBX|1|NM"));
        assert!(probe_midstream(b"|AA|CTRL-1\x1c\r\x0bMSH|^~\\&|APP"));
        assert!(probe_midstream(b"junk\nMSH|^~\\&|APP"));
        // One segment start only, or two with different separators.
        assert!(!probe_midstream(b"E^JANE||19000101|F\rPV1|1|I|W3"));
        assert!(!probe_midstream(b"x\rPV1|1\rOBX!1"));
        // HTTP lines: CR is followed by LF, never by a segment id.
        assert!(!probe_midstream(
            b"HTTP/1.1 200 OK\r\nETag: x\r\nAge: 1\r\n"
        ));
        // An HL7 message inside another protocol's payload, not at a line
        // start (an MQTT PUBLISH carrying HL7): no.
        assert!(!probe_midstream(b"\x30\x40\x00\x03a/bMSH|^~\\&|APP|FAC"));
    }
}
