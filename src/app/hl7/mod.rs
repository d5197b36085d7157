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

use crate::app::{
    AppConfig, AppProto, AppProtocol, Midstream, Role, StreamConsumer, Verdict as Probe,
};
use crate::flow::Direction;
use parser::{Delimiters, Verdict, CR, EB, LF, SB};

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
        let seg = self.segment_on(name)?;
        seg.get(..memchr::memchr(CR, seg).unwrap_or(seg.len()))
    }

    /// The first segment named `name` (not MSH) and, when the parser
    /// indexed it, the segments after it: its fields are read up to its
    /// CR ([`parser::field`]) without looking for the CR first.
    #[inline]
    fn segment_on(&self, name: &[u8]) -> Option<&[u8]> {
        match self.index.get(name) {
            Some(at) => self.text.get(at?..),
            None => self.segments().find(|s| parser::segment_name(s) == name),
        }
    }

    /// Field `n` of the first segment named `name`, raw (escapes and
    /// delimiters as sent).
    pub fn field(&self, name: &[u8], n: usize) -> Option<&[u8]> {
        if name == b"MSH" {
            return self.msh(n);
        }
        parser::field(self.segment_on(name)?, n, &self.delimiters)
    }

    /// MSH-`n`, raw: read through the index the parser made, or searched.
    fn msh(&self, n: usize) -> Option<&[u8]> {
        match self.index.msh_field(&self.text, n) {
            Some(f) => f,
            None => parser::field(self.segment(b"MSH")?, n, &self.delimiters),
        }
    }

    /// Component `c` of MSH-`n`, raw; empty when absent.
    fn msh_component(&self, n: usize, c: usize) -> &[u8] {
        self.msh(n)
            .map_or(&[][..], |f| parser::component(f, c, &self.delimiters))
    }

    /// Component `c` of field `n` of the first segment `name`, raw; empty
    /// when absent.
    pub fn component(&self, name: &[u8], n: usize, c: usize) -> &[u8] {
        self.field(name, n)
            .map_or(&[][..], |f| parser::component(f, c, &self.delimiters))
    }

    /// MSH-9.1, message type (`ADT`, `ORU`, `ACK`).
    pub fn message_type(&self) -> &[u8] {
        self.msh_component(9, 1)
    }

    /// MSH-9.2, trigger event (`A01`); before v2.3 it travelled in EVN-1
    /// only, which is used when MSH-9.2 is empty.
    pub fn trigger_event(&self) -> &[u8] {
        let t = self.msh_component(9, 2);
        if t.is_empty() {
            self.component(b"EVN", 1, 1)
        } else {
            t
        }
    }

    /// MSH-9.3, message structure (`ADT_A01`, v2.3.1+).
    pub fn message_structure(&self) -> &[u8] {
        self.msh_component(9, 3)
    }

    /// MSH-10, message control id.
    pub fn control_id(&self) -> &[u8] {
        self.msh(10).unwrap_or(&[])
    }

    /// MSH-11.1, processing id (`P` production, `T` training, `D`
    /// debugging).
    pub fn processing_id(&self) -> &[u8] {
        self.msh_component(11, 1)
    }

    /// MSH-12.1, version id (`2.5`).
    pub fn version(&self) -> &[u8] {
        self.msh_component(12, 1)
    }

    /// MSA-1, acknowledgment code (`AA`, `AE`, `AR`, `CA`, `CE`, `CR`).
    pub fn ack_code(&self) -> Option<&[u8]> {
        let msa = parser::field(self.segment_on(b"MSA")?, 1, &self.delimiters);
        Some(msa.map_or(&[][..], |f| parser::component(f, 1, &self.delimiters)))
    }

    /// MSA-2, control id of the message acknowledged.
    pub fn acknowledged_id(&self) -> Option<&[u8]> {
        let msa = self.segment_on(b"MSA")?;
        Some(parser::field(msa, 2, &self.delimiters).unwrap_or(&[]))
    }

    /// Does the sender ask for no acknowledgment at all (MSH-15 accept and
    /// MSH-16 application acknowledgment type both `NE`, enhanced mode)?
    pub fn no_ack_wanted(&self) -> bool {
        self.msh(15) == Some(b"NE") && self.msh(16) == Some(b"NE")
    }
}

/// The parser of one HL7 flow.
pub fn new_parser(cfg: &Hl7Config) -> Option<Box<dyn StreamConsumer>> {
    Some(Box::new(state::Hl7State::new(cfg)))
}

// The protocol's constant, declared next to its [`AppProtocol`] value.
#[allow(non_upper_case_globals)]
impl AppProto {
    pub const Hl7: AppProto = AppProto::new(6);
}

/// HL7 v2 as the session and the registry see it
/// ([`crate::app::PROTOCOLS`]).
#[derive(Debug)]
pub struct Hl7;

pub static PROTOCOL: Hl7 = Hl7;

impl AppProtocol for Hl7 {
    fn proto(&self) -> AppProto {
        AppProto::Hl7
    }
    fn name(&self) -> &'static str {
        "hl7"
    }
    fn ports<'c>(&self, cfg: &'c AppConfig) -> &'c [u16] {
        &cfg.hl7_ports
    }
    fn probe_start(&self, data: &[u8]) -> Probe {
        probe_start(data)
    }
    fn probe_midstream(&self, data: &[u8]) -> Option<Midstream> {
        probe_midstream(data)
    }
    fn parser(&self, cfg: &AppConfig) -> Option<Box<dyn StreamConsumer>> {
        new_parser(&cfg.hl7)
    }
    fn keywords(&self) -> Option<&'static dyn crate::detect::Keywords> {
        Some(&PROTOCOL)
    }
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
        Verdict::Yes((_, d)) => Probe::Match(sender(body, &d)),
        Verdict::NeedMore => Probe::NeedMore,
        Verdict::No => Probe::NoMatch,
    }
}

/// Who sends the message whose header starts `msg`, as far as the bytes
/// say: an acknowledgment (MSH-9 `ACK`, or an MSA segment right after the
/// MSH, v2.5.1 §2.9) answers a message, and the side that answers is the
/// server of an HL7 connection (the listener receives and acknowledges,
/// v2.5.1 Appendix C.4.3); anything else may come from either side.
fn sender(msg: &[u8], d: &Delimiters) -> Role {
    let end = memchr::memchr3(CR, LF, EB, msg);
    let msh = msg.get(..end.unwrap_or(msg.len())).unwrap_or(&[]);
    // MSH-9.1 counts only when followed by its delimiter (not cut).
    let ty = parser::field(msh, 9, d).filter(|_| parser::field(msh, 10, d).is_some());
    if ty.is_some_and(|f| parser::component(f, 1, d) == b"ACK") {
        return Role::Server;
    }
    let next = end
        .and_then(|e| msg.get(e..))
        .map(|r| r.trim_ascii_start())
        .and_then(|r| r.get(..4));
    if next.is_some_and(|n| n.get(..3) == Some(b"MSA") && n.get(3) == Some(&d.field)) {
        return Role::Server;
    }
    Role::Either
}

/// Bytes HL7 text may hold: printable text (any encoding), tab, line ends
/// and the MLLP block characters.
fn is_text(b: u8) -> bool {
    b >= 0x20 || matches!(b, b'\t' | CR | LF | SB | EB)
}

/// Probe of bytes from the middle of a stream (a capture that starts
/// mid-connection, or after lost bytes): a header segment after an MLLP
/// start block or a line end, or two segment starts — a CR, a segment id
/// (`[A-Z][A-Z0-9]{2}`) and the same delimiter after both (the field
/// separator) — in text that runs to the end of the bytes (HL7 is text: a
/// run followed by binary, such as an HL7 message inside an MQTT payload
/// followed by the next MQTT header, is not HL7 on the wire). The run
/// starts at the block start, or at the first byte after the line end.
/// Linear: each candidate is judged on at most [`parser::HEADER_PREFIX`]
/// bytes.
pub fn probe_midstream(data: &[u8]) -> Option<Midstream> {
    let from = data.iter().rposition(|&b| !is_text(b)).map_or(0, |i| i + 1);
    let mut first: Option<(usize, u8, Role)> = None;
    for (i, &b) in data.iter().enumerate().skip(from) {
        if !matches!(b, CR | LF | SB) {
            continue;
        }
        let rest = data.get(i + 1..).unwrap_or(&[]);
        if let Verdict::Yes((_, d)) = parser::header(rest, false) {
            let at = if b == SB { i } else { i + 1 };
            return Some(Midstream {
                at,
                role: sender(rest, &d),
            });
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
        // An answer's segments come from the server (as in `sender`).
        let role = if id == b"MSA" {
            Role::Server
        } else {
            Role::Either
        };
        match first {
            Some((at, s, r)) if s == sep => {
                let role = if r == Role::Server { r } else { role };
                return Some(Midstream { at, role });
            }
            Some(_) => {}
            None => first = Some((i + 1, sep, role)),
        }
    }
    None
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
            assert_eq!(probe_start(start), Probe::Match(Role::Either));
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
    fn an_acknowledgment_comes_from_the_server_and_other_messages_from_either() {
        // Hand-built headers: an ACK by MSH-9, a response by its MSA right
        // after the MSH, an ADT, and an ACK whose MSH-9 is cut.
        let ack = b"\x0bMSH|^~\\&|R|RF|S|SF|20240101||ACK^A01|C2|P|2.5\rMSA|AA|C1\r";
        let rsp = b"MSH|^~\\&|R|RF|S|SF|20240101||RSP^K22|C3|P|2.5\r\nMSA|AA|C1\r";
        let adt = b"MSH|^~\\&|S|SF|R|RF|20240101||ADT^A01|C1|P|2.5\rEVN|A01\r";
        let cut = b"MSH|^~\\&|R|RF|S|SF|20240101||AC";
        assert_eq!(probe_start(ack), Probe::Match(Role::Server));
        assert_eq!(probe_start(rsp), Probe::Match(Role::Server));
        assert_eq!(probe_start(adt), Probe::Match(Role::Either));
        assert_eq!(probe_start(cut), Probe::Match(Role::Either));
        let mid = |b: &[u8]| probe_midstream(b).map(|m| (m.at, m.role));
        let mut tail = b"|AA|C0\x1c\r".to_vec();
        tail.extend_from_slice(ack);
        assert_eq!(mid(&tail), Some((8, Role::Server)));
        // Hand-built: the tail of an ACK (MSA, ERR segments).
        assert_eq!(mid(b"x\rMSA|AE|C1\rERR|||207"), Some((2, Role::Server)));
    }

    #[test]
    fn midstream_needs_a_header_at_a_line_start_or_two_segment_starts() {
        let mid = |b: &[u8]| probe_midstream(b).map(|m| m.at);
        // Hand-built: the tail of a PID segment, then PV1 and OBX.
        assert_eq!(mid(b"E^JANE||19000101|F\rPV1|1|I|W3\rOBX|1|NM"), Some(19));
        assert_eq!(mid(b"|AA|CTRL-1\x1c\r\x0bMSH|^~\\&|APP"), Some(12));
        assert_eq!(mid(b"junk\nMSH|^~\\&|APP"), Some(5));
        // One segment start only, or two with different separators.
        assert_eq!(mid(b"E^JANE||19000101|F\rPV1|1|I|W3"), None);
        assert_eq!(mid(b"x\rPV1|1\rOBX!1"), None);
        // HTTP lines: CR is followed by LF, never by a segment id.
        assert_eq!(mid(b"HTTP/1.1 200 OK\r\nETag: x\r\nAge: 1\r\n"), None);
        // An HL7 message inside another protocol's payload, not at a line
        // start (an MQTT PUBLISH carrying HL7): no.
        assert_eq!(mid(b"\x30\x40\x00\x03a/bMSH|^~\\&|APP|FAC"), None);
        // Segments followed by binary (the next MQTT header): no; the run
        // after the binary counts.
        assert_eq!(mid(b"x\rPID|1\rPV1|1\r\x30\x10\x00\x03a/b"), None);
        assert_eq!(mid(b"\x00\x03a/b\rPID|1\rPV1|1\r"), Some(6));
    }
}
