//! Rule keywords of hl7: sticky buffers over a [`Record`], named in the
//! style of Suricata's app-layer keywords (issue 12, part 2 "Detection"),
//! offered to the engine through [`ProtocolKeywords`], as are `phi` on a
//! record ([`phi_text`]: the whole reassembled message) and its login
//! (none: HL7 v2 carries none).
//!
//! Contract: [`keyword`] is asked for every option name of a rule; `None`
//! means "not one of mine". A [`Buffer`] yields the byte strings that the
//! following `content`/`pcre`/`dataset` options match, one per instance
//! (a content group matches when one instance matches all of it). As for
//! MQTT, a keyword matches when any message of the record — the message
//! and its answer — yields a matching instance. Empty values yield none.
//!
//! Buffers (no value unless said):
//! - `hl7.message_type` (MSH-9.1), `hl7.trigger_event` (MSH-9.2, EVN-1
//!   before v2.3), `hl7.message_structure` (MSH-9.3), `hl7.control_id`
//!   (MSH-10), `hl7.version` (MSH-12.1), `hl7.processing_id` (MSH-11.1);
//! - `hl7.sending_application`, `hl7.sending_facility`,
//!   `hl7.receiving_application`, `hl7.receiving_facility` (MSH-3 to 6,
//!   the whole field);
//! - `hl7.ack_code` (MSA-1 of an answer);
//! - `hl7.segment`: every segment's text as sent (multi-buffer);
//! - `hl7.field:<SEG>-<n>[.<c>]` (`hl7.field:PID-5`, `hl7.field:PID-3.1`):
//!   field `n` (component `c`) of every segment `SEG`, each repetition an
//!   instance (multi-buffer); MSH counts MSH-1 as the field separator.
//!
//! Values other than `hl7.segment` are decoded as logged (escape
//! sequences, delimiters written `^ ~ &`), so that `A\X44\T` is not a way
//! around `content:"ADT"` and a message with custom delimiters matches the
//! same rules.

use std::borrow::Cow;

use super::parser;
use super::{Message, Record};
use crate::app::AppRecord;
use crate::detect::phi::{self, PhiConfig, PhiReport};
use crate::detect::protocol::{NoPredicate, ProtocolKeywords, RecordBuffer, TxRecord, Typed};

/// A compiled keyword: hl7 offers buffers only.
pub type Keyword = Typed<Buffer, NoPredicate>;

/// A field selection: segment, field, optional component (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRef {
    pub segment: [u8; 3],
    pub field: u16,
    pub component: Option<u16>,
}

/// A sticky buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buffer {
    MessageType,
    TriggerEvent,
    MessageStructure,
    ControlId,
    Version,
    ProcessingId,
    SendingApplication,
    SendingFacility,
    ReceivingApplication,
    ReceivingFacility,
    AckCode,
    /// One instance per segment, as sent.
    Segment,
    /// One instance per repetition of the field in every such segment.
    Field(FieldRef),
}

/// Buffer keywords without a value, and their names.
const BUFFERS: &[(&str, Buffer)] = &[
    ("hl7.message_type", Buffer::MessageType),
    ("hl7.trigger_event", Buffer::TriggerEvent),
    ("hl7.message_structure", Buffer::MessageStructure),
    ("hl7.control_id", Buffer::ControlId),
    ("hl7.version", Buffer::Version),
    ("hl7.processing_id", Buffer::ProcessingId),
    ("hl7.sending_application", Buffer::SendingApplication),
    ("hl7.sending_facility", Buffer::SendingFacility),
    ("hl7.receiving_application", Buffer::ReceivingApplication),
    ("hl7.receiving_facility", Buffer::ReceivingFacility),
    ("hl7.ack_code", Buffer::AckCode),
    ("hl7.segment", Buffer::Segment),
];

/// Calls `f` on `value` decoded; copies only when decoding changes it.
fn decoded(value: &[u8], m: &Message, f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
    if value.is_empty() {
        return false;
    }
    let d = &m.delimiters;
    let plain = |c: &u8| {
        Some(*c) != d.escape
            && (Some(*c) != d.component || *c == b'^')
            && (Some(*c) != d.repetition || *c == b'~')
            && (Some(*c) != d.subcomponent || *c == b'&')
    };
    if value.iter().all(plain) {
        return f(value);
    }
    let mut out = Vec::with_capacity(value.len());
    parser::decode(value, d, &mut out);
    !out.is_empty() && f(&out)
}

impl RecordBuffer for Buffer {
    type Record = Record;
    /// A record's instances: its message's, then its answer's.
    fn any(&self, rec: &Record, f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        rec.messages().any(|m| self.any_in(m, f))
    }
}

impl Buffer {
    fn any_in(&self, m: &Message, f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        let msh = |n: usize| m.field(b"MSH", n).unwrap_or(&[]);
        match self {
            Buffer::MessageType => decoded(m.message_type(), m, f),
            Buffer::TriggerEvent => decoded(m.trigger_event(), m, f),
            Buffer::MessageStructure => decoded(m.message_structure(), m, f),
            Buffer::ControlId => decoded(m.control_id(), m, f),
            Buffer::Version => decoded(m.version(), m, f),
            Buffer::ProcessingId => decoded(m.processing_id(), m, f),
            Buffer::SendingApplication => decoded(msh(3), m, f),
            Buffer::SendingFacility => decoded(msh(4), m, f),
            Buffer::ReceivingApplication => decoded(msh(5), m, f),
            Buffer::ReceivingFacility => decoded(msh(6), m, f),
            Buffer::AckCode => m.ack_code().is_some_and(|c| decoded(c, m, f)),
            Buffer::Segment => m.segments().any(&mut *f),
            Buffer::Field(r) => m
                .segments()
                .filter(|s| parser::segment_name(s) == r.segment)
                .any(|s| {
                    let v = parser::field(s, usize::from(r.field), &m.delimiters).unwrap_or(&[]);
                    // MSH-1 and MSH-2 are the delimiters themselves.
                    if matches!(&r.segment, b"MSH" | b"BHS" | b"FHS") && r.field <= 2 {
                        return f(v);
                    }
                    parser::split(v, m.delimiters.repetition).any(|rep| match r.component {
                        None => decoded(rep, m, f),
                        Some(c) => {
                            let one = parser::split(rep, m.delimiters.component)
                                .nth(usize::from(c).saturating_sub(1))
                                .unwrap_or(&[]);
                            decoded(one, m, f)
                        }
                    })
                }),
        }
    }

    /// Keyword name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Buffer::Field(_) => "hl7.field",
            b => BUFFERS
                .iter()
                .find(|(_, x)| x == b)
                .map_or("hl7", |(n, _)| n),
        }
    }
}

/// `SEG-n[.c]`, segment id in any case.
fn parse_field(v: &str) -> Result<FieldRef, String> {
    let bad = || format!("{v:?}: expected SEG-n or SEG-n.c (PID-5, PID-3.1)");
    let (seg, rest) = v.trim().split_once('-').ok_or_else(bad)?;
    let seg = seg.to_ascii_uppercase();
    if !parser::is_segment_id(seg.as_bytes()) {
        return Err(bad());
    }
    let (f, c) = match rest.split_once('.') {
        Some((f, c)) => (f, Some(c)),
        None => (rest, None),
    };
    let num = |s: &str| match s.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(bad()),
    };
    let mut segment = [0u8; 3];
    segment.copy_from_slice(seg.as_bytes());
    Ok(FieldRef {
        segment,
        field: num(f)?,
        component: c.map(num).transpose()?,
    })
}

/// Compiles option `name` with its value; `None` when `name` is not an
/// hl7 keyword, `Some(Err(reason))` when the value is wrong.
pub fn keyword(name: &str, value: Option<&str>) -> Option<Result<Keyword, String>> {
    let lower = name.to_ascii_lowercase();
    if let Some(b) = crate::app::keyword::sticky_buffer(BUFFERS, &lower, value) {
        return Some(b.map(Keyword::Buffer));
    }
    if lower == "hl7.field" {
        return Some(
            crate::app::keyword::required(value)
                .and_then(parse_field)
                .map(|r| Keyword::Buffer(Buffer::Field(r)))
                .map_err(|e| format!("{lower}: {e}")),
        );
    }
    None
}

/// The bytes of `m` the PHI detectors read: its whole text when it fits in
/// `max` bytes (they read no more); else a copy of its MSH, then its
/// identity segments ([`super::state::LATE`]: PID, NK1, PV1, … wherever
/// they are), then its text from the start, up to `max` bytes — so that
/// padding before PID does not push the patient past what is scanned.
pub fn phi_text(m: &Message, max: usize) -> Cow<'_, [u8]> {
    if m.text.len() <= max {
        return Cow::Borrowed(&m.text);
    }
    // Copied: at most `max` bytes, once per scan of an oversized message.
    let mut out = Vec::with_capacity(max);
    let put = |seg: &[u8], out: &mut Vec<u8>| {
        let room = max.saturating_sub(out.len());
        if seg.len() < room {
            out.extend_from_slice(seg);
            out.push(parser::CR);
        }
    };
    let identity = |s: &[u8]| {
        super::state::LATE
            .iter()
            .any(|l| l[..] == *parser::segment_name(s))
    };
    let mut segs = m.segments();
    if let Some(msh) = segs.next() {
        put(msh, &mut out);
    }
    for s in m.segments().skip(1).filter(|s| identity(s)) {
        put(s, &mut out);
    }
    for s in segs {
        put(s, &mut out);
    }
    Cow::Owned(out)
}

// The rule engine's view ([`crate::detect::Keywords`], reached through
// the protocol's entry in [`crate::app::PROTOCOLS`]).

impl TxRecord for Record {
    fn of(rec: &AppRecord) -> Option<&Record> {
        match rec {
            AppRecord::Hl7(r) => Some(r),
            _ => None,
        }
    }
}

impl ProtocolKeywords for super::Hl7 {
    type Record = Record;
    type Buffer = Buffer;
    type Predicate = NoPredicate;
    fn keyword(&self, name: &str, value: Option<&str>) -> Option<Result<Keyword, String>> {
        keyword(name, value)
    }
    /// The first message of the record (the message, then its answer) in
    /// which the detectors find patient data.
    fn phi(&self, rec: &Record, cfg: &PhiConfig) -> PhiReport {
        rec.messages()
            .map(|m| phi::scan_payload(&phi_text(m, cfg.max_scan_bytes), cfg))
            .find(|p| !p.is_empty())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::hl7::{Framing, Message};
    use crate::flow::Direction;

    fn buf(name: &str, value: Option<&str>) -> Buffer {
        match keyword(name, value) {
            Some(Ok(Keyword::Buffer(b))) => b,
            k => panic!("{name}: {k:?}"),
        }
    }

    // Hand-built message: the given text with the delimiters its MSH
    // declares.
    fn msg(dir: Direction, text: &[u8]) -> Message {
        let parser::Verdict::Yes((_, d)) = parser::header(text, false) else {
            panic!("no header")
        };
        Message {
            dir,
            framing: Framing::Mllp,
            delimiters: d,
            text: text.to_vec(),
            length: 0,
            segment_count: 0,
            segments_dropped: 0,
            segments_truncated: 0,
            incomplete: false,
            index: Default::default(),
        }
    }

    /// Every instance a buffer yields on a record.
    fn all(b: Buffer, r: &Record) -> Vec<String> {
        let mut v = Vec::new();
        b.any(r, &mut |x| {
            v.push(String::from_utf8_lossy(x).into_owned());
            false
        });
        v
    }

    // Hand-built: ADT^A01 from ADT-SRC with the sending application's 'D'
    // written as a hex escape, and its AE acknowledgment.
    fn rec() -> Record {
        Record {
            message: msg(
                Direction::ToServer,
                b"MSH|^~\\&|A\\X44\\T-SRC|CHU|PACS|RAD|2024||ADT^A01^ADT_A01|C1|P|2.5\r\
PID|1||MRN-1^^^CHU^MR~NIR-1^^^INS^NH||TEST^JANE\rPV1|1|I\r",
            ),
            answer: Some(msg(
                Direction::ToClient,
                b"MSH|^~\\&|PACS|RAD|ADT-SRC|CHU|2024||ACK^A01^ACK|A1|P|2.5\rMSA|AE|C1|bad\r",
            )),
            answer_lost: false,
        }
    }

    #[test]
    fn header_buffers_yield_each_message_s_value_decoded() {
        let r = rec();
        assert_eq!(all(buf("hl7.message_type", None), &r), ["ADT", "ACK"]);
        assert_eq!(all(buf("HL7.Trigger_Event", None), &r), ["A01", "A01"]);
        assert_eq!(
            all(buf("hl7.sending_application", None), &r),
            ["ADT-SRC", "PACS"]
        );
        assert_eq!(all(buf("hl7.receiving_facility", None), &r), ["RAD", "CHU"]);
        assert_eq!(all(buf("hl7.version", None), &r), ["2.5", "2.5"]);
        assert_eq!(all(buf("hl7.ack_code", None), &r), ["AE"]);
        assert_eq!(all(buf("hl7.control_id", None), &r), ["C1", "A1"]);
    }

    #[test]
    fn segment_and_field_buffers_are_multi_buffers() {
        let r = rec();
        let segs = all(buf("hl7.segment", None), &r);
        assert_eq!(segs.len(), 5);
        assert_eq!(segs[2], "PV1|1|I");
        assert_eq!(
            all(buf("hl7.field", Some("PID-3")), &r),
            ["MRN-1^^^CHU^MR", "NIR-1^^^INS^NH"]
        );
        assert_eq!(
            all(buf("hl7.field", Some("pid-3.1")), &r),
            ["MRN-1", "NIR-1"]
        );
        assert_eq!(all(buf("hl7.field", Some("PID-5")), &r), ["TEST^JANE"]);
        assert_eq!(all(buf("hl7.field", Some("MSH-9.2")), &r), ["A01", "A01"]);
        assert_eq!(all(buf("hl7.field", Some("MSH-1")), &r), ["|", "|"]);
        assert!(all(buf("hl7.field", Some("PID-19")), &r).is_empty());
    }

    #[test]
    fn custom_delimiters_match_the_same_values() {
        let r = Record {
            message: msg(
                Direction::ToServer,
                b"MSH!*#%@!SND!F!R!RF!1!!ORU*R01!C!P!2.3\rPID!1!!ID#ID2!!DOE*JOHN\r",
            ),
            answer: None,
            answer_lost: false,
        };
        assert_eq!(all(buf("hl7.field", Some("PID-5")), &r), ["DOE^JOHN"]);
        assert_eq!(all(buf("hl7.field", Some("PID-3")), &r), ["ID", "ID2"]);
        assert_eq!(all(buf("hl7.trigger_event", None), &r), ["R01"]);
    }

    #[test]
    fn wrong_keyword_values_are_errors() {
        for bad in ["PID", "PID-0", "PID-x", "pi-5", "PID-5.0", ""] {
            assert!(
                matches!(keyword("hl7.field", Some(bad)), Some(Err(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            keyword("hl7.message_type", Some("ADT")),
            Some(Err(_))
        ));
        assert!(keyword("mqtt.type", Some("1")).is_none());
        assert_eq!(buf("hl7.field", Some("PID-5")).name(), "hl7.field");
        assert_eq!(buf("hl7.ack_code", None).name(), "hl7.ack_code");
    }

    #[test]
    fn padding_before_pid_does_not_push_the_patient_out_of_the_phi_scan() {
        // Hand-built: an ORU whose 4 kB OBX comes before PID, scanned with
        // room for 512 bytes.
        let mut text = b"MSH|^~\\&|MON|W3|CIS|CHU|2024||ORU^R01|C9|P|2.5\r".to_vec();
        text.extend_from_slice(b"OBX|1|ED|ECG||");
        text.extend(std::iter::repeat_n(b'A', 4000));
        text.extend_from_slice(b"\rPID|1||MRN-1^^^CHU^MR||TEST^JANE||19000101|F\rPV1|1|I\r");
        let m = msg(Direction::ToServer, &text);
        let cfg = PhiConfig {
            max_scan_bytes: 512,
            ..PhiConfig::default()
        };
        // The text as sent: PID is past what the detectors read.
        assert!(!phi::scan_payload(&m.text, &cfg)
            .kinds
            .contains(&phi::PhiKind::Hl7));
        let view = phi_text(&m, cfg.max_scan_bytes);
        assert!(view.len() <= 512, "{}", view.len());
        assert!(view.starts_with(b"MSH|"));
        let report = phi::scan_payload(&view, &cfg);
        assert!(
            report.evidence.iter().any(|e| e.field == "PID-5"),
            "{report:?}"
        );
        // A message that fits is read as it is, not copied.
        let small = msg(
            Direction::ToServer,
            b"MSH|^~\\&|A|B|C|D|1||ADT^A01|C1|P|2.5\r",
        );
        assert!(matches!(phi_text(&small, 512), Cow::Borrowed(_)));
    }
}
