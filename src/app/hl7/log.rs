//! The EVE `hl7` object of one record (field by field in README's "HL7
//! records").
//!
//! The fields of the message that opened the record sit at the top of the
//! object; its answer, when seen, is an `answer` object with the same
//! fields; `"answer_lost": true` when the direction the answer travels in
//! lost bytes while it was awaited. Per message:
//! - MSH: `message_type`, `trigger_event`, `message_structure` (MSH-9),
//!   `control_id` (MSH-10), `processing_id` (MSH-11.1), `version`
//!   (MSH-12.1), `sending_application`, `sending_facility`,
//!   `receiving_application`, `receiving_facility` (MSH-3 to MSH-6);
//! - `segments` (the names of the kept segments, in order), `framing`
//!   (`mllp` or `bare`), `length` (bytes on the wire, framing excluded);
//!   `truncated` with `segment_count` and `segments_dropped` when the
//!   message was over `max_msg_len`, `segments_truncated` when segments
//!   were cut to `max_segment_len`, `incomplete` when bytes were lost
//!   inside it or its frame never ended;
//! - `patient_class` (PV1-2);
//! - answers: `ack_code` (MSA-1), `acknowledged_control_id` (MSA-2),
//!   `text_message` (MSA-3), `errors` (one object per ERR segment:
//!   `error_code_and_location` ERR-1, `error_location` ERR-2,
//!   `hl7_error_code` ERR-3, `severity` ERR-4, `diagnostic_information`
//!   ERR-7, `user_message` ERR-8);
//! - patient data, sensitive ([`crate::output::mask`]'s policy: masked
//!   over the whole decoded value unless `outputs.unmask_sensitive`): `patient` (first
//!   PID: `patient_identifier_list` PID-3, `patient_name` PID-5,
//!   `date_time_of_birth` PID-7, `patient_address` PID-11,
//!   `phone_number_home` PID-13, `ssn_number_patient` PID-19; repeating
//!   fields as arrays of their repetitions) and `next_of_kin` (NK1-2 of
//!   every NK1).
//!
//! Values are decoded ([`parser::decode`]: escapes, delimiters written as
//! `^ ~ &`), written by [`crate::output::mask`]'s rule for bytes that are
//! not UTF-8, and capped at [`MAX_STRING`] characters; empty values are
//! left out.

use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;

use super::parser;
use super::{Framing, Message, Record};
use crate::output::mask::{display_bytes, LogOptions};

/// Longest string logged, in characters.
pub const MAX_STRING: usize = 1024;

/// `s` cut to [`MAX_STRING`] characters.
fn cap(s: &str) -> &str {
    match s.char_indices().nth(MAX_STRING) {
        Some((i, _)) => s.get(..i).unwrap_or(s),
        None => s,
    }
}

/// A field's value decoded as a reader sees it.
fn decoded(value: &[u8], m: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    parser::decode(value, &m.delimiters, &mut out);
    out
}

/// A field's value as logged: decoded, capped.
pub fn text(value: &[u8], m: &Message) -> String {
    cap(&display_bytes(&decoded(value, m))).to_string()
}

/// A patient value as logged: sensitive, so masked over the whole decoded
/// value, or with `unmask` as [`text`].
pub fn patient_value(value: &[u8], m: &Message, opts: &LogOptions) -> String {
    if opts.unmask {
        text(value, m)
    } else {
        opts.mask(&decoded(value, m))
    }
}

/// The EVE `hl7` object of a record, serialised straight into the output.
pub struct Logged<'a> {
    pub rec: &'a Record,
    pub opts: &'a LogOptions,
}

impl Serialize for Logged<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut o = s.serialize_map(None)?;
        entries(&mut o, &self.rec.message, self.opts)?;
        if let Some(a) = &self.rec.answer {
            o.serialize_entry(
                "answer",
                &One {
                    m: a,
                    opts: self.opts,
                },
            )?;
        }
        if self.rec.answer_lost {
            o.serialize_entry("answer_lost", &true)?;
        }
        o.end()
    }
}

/// One message as an object.
struct One<'a> {
    m: &'a Message,
    opts: &'a LogOptions,
}

impl Serialize for One<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut o = s.serialize_map(None)?;
        entries(&mut o, self.m, self.opts)?;
        o.end()
    }
}

/// Writes `key: value` when the value is not empty.
fn put<M: SerializeMap>(o: &mut M, key: &str, value: &[u8], m: &Message) -> Result<(), M::Error> {
    if value.is_empty() {
        return Ok(());
    }
    o.serialize_entry(key, &text(value, m))
}

/// The names of the kept segments.
struct Names<'a>(&'a Message);

impl Serialize for Names<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut q = s.serialize_seq(None)?;
        for seg in self.0.segments() {
            q.serialize_element(&display_bytes(parser::segment_name(seg)))?;
        }
        q.end()
    }
}

fn entries<M: SerializeMap>(o: &mut M, m: &Message, opts: &LogOptions) -> Result<(), M::Error> {
    put(o, "message_type", m.message_type(), m)?;
    put(o, "trigger_event", m.trigger_event(), m)?;
    put(o, "message_structure", m.message_structure(), m)?;
    put(o, "control_id", m.control_id(), m)?;
    put(o, "processing_id", m.processing_id(), m)?;
    put(o, "version", m.version(), m)?;
    for (key, n) in [
        ("sending_application", 3),
        ("sending_facility", 4),
        ("receiving_application", 5),
        ("receiving_facility", 6),
    ] {
        put(o, key, m.field(b"MSH", n).unwrap_or(&[]), m)?;
    }
    o.serialize_entry("segments", &Names(m))?;
    o.serialize_entry(
        "framing",
        match m.framing {
            Framing::Mllp => "mllp",
            Framing::Bare => "bare",
        },
    )?;
    o.serialize_entry("length", &m.length)?;
    if m.segments_dropped > 0 {
        o.serialize_entry("truncated", &true)?;
        o.serialize_entry("segment_count", &m.segment_count)?;
        o.serialize_entry("segments_dropped", &m.segments_dropped)?;
    }
    if m.segments_truncated > 0 {
        o.serialize_entry("segments_truncated", &m.segments_truncated)?;
    }
    if m.incomplete {
        o.serialize_entry("incomplete", &true)?;
    }
    put(o, "patient_class", m.component(b"PV1", 2, 1), m)?;
    if let Some(code) = m.ack_code() {
        put(o, "ack_code", code, m)?;
        put(
            o,
            "acknowledged_control_id",
            m.field(b"MSA", 2).unwrap_or(&[]),
            m,
        )?;
        put(o, "text_message", m.field(b"MSA", 3).unwrap_or(&[]), m)?;
    }
    if m.segments().any(|s| parser::segment_name(s) == b"ERR") {
        o.serialize_entry("errors", &Errors(m))?;
    }
    if m.segment(b"PID").is_some() {
        o.serialize_entry("patient", &Patient { m, opts })?;
    }
    if m.segments().any(|s| parser::segment_name(s) == b"NK1") {
        o.serialize_entry("next_of_kin", &NextOfKin { m, opts })?;
    }
    Ok(())
}

/// The ERR segments.
struct Errors<'a>(&'a Message);

impl Serialize for Errors<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        let mut q = s.serialize_seq(None)?;
        for seg in m.segments().filter(|s| parser::segment_name(s) == b"ERR") {
            q.serialize_element(&Err { m, seg })?;
        }
        q.end()
    }
}

struct Err<'a> {
    m: &'a Message,
    seg: &'a [u8],
}

impl Serialize for Err<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut o = s.serialize_map(None)?;
        for (key, n) in [
            ("error_code_and_location", 1),
            ("error_location", 2),
            ("hl7_error_code", 3),
            ("severity", 4),
            ("diagnostic_information", 7),
            ("user_message", 8),
        ] {
            let v = parser::field(self.seg, n, &self.m.delimiters).unwrap_or(&[]);
            put(&mut o, key, v, self.m)?;
        }
        o.end()
    }
}

/// The repetitions of a field, each decoded and masked.
fn repetitions(value: &[u8], m: &Message, opts: &LogOptions) -> Vec<String> {
    parser::split(value, m.delimiters.repetition)
        .filter(|r| !r.is_empty())
        .map(|r| patient_value(r, m, opts))
        .collect()
}

/// The first PID segment's identifying fields.
struct Patient<'a> {
    m: &'a Message,
    opts: &'a LogOptions,
}

impl Serialize for Patient<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (m, opts) = (self.m, self.opts);
        let mut o = s.serialize_map(None)?;
        for (key, n, repeats) in [
            ("patient_identifier_list", 3, true),
            ("patient_name", 5, true),
            ("date_time_of_birth", 7, false),
            ("patient_address", 11, true),
            ("phone_number_home", 13, true),
            ("ssn_number_patient", 19, false),
        ] {
            let v = m.field(b"PID", n).unwrap_or(&[]);
            if v.is_empty() {
                continue;
            }
            if repeats {
                let reps = repetitions(v, m, opts);
                if !reps.is_empty() {
                    o.serialize_entry(key, &reps)?;
                }
            } else {
                o.serialize_entry(key, &patient_value(v, m, opts))?;
            }
        }
        o.end()
    }
}

/// NK1-2 (name) of every NK1 segment, repetitions flattened.
struct NextOfKin<'a> {
    m: &'a Message,
    opts: &'a LogOptions,
}

impl Serialize for NextOfKin<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.m;
        let mut q = s.serialize_seq(None)?;
        for seg in m.segments().filter(|s| parser::segment_name(s) == b"NK1") {
            let v = parser::field(seg, 2, &m.delimiters).unwrap_or(&[]);
            for r in repetitions(v, m, self.opts) {
                q.serialize_element(&r)?;
            }
        }
        q.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::hl7::parser::Delimiters;
    use crate::flow::Direction;

    // Hand-built: an ADT^A01 with custom delimiters (component '*',
    // repetition '#', escape '%', subcomponent '@'), two patient ids, a
    // name with an escaped component separator, a next of kin.
    fn msg(text: &[u8]) -> Message {
        let d = match parser::header(text, false) {
            parser::Verdict::Yes((_, d)) => d,
            _ => Delimiters::default(),
        };
        Message {
            dir: Direction::ToServer,
            framing: Framing::Mllp,
            delimiters: d,
            text: text.to_vec(),
            length: text.len() as u64,
            segment_count: 3,
            segments_dropped: 0,
            segments_truncated: 0,
            incomplete: false,
            index: Default::default(),
        }
    }

    fn opts(unmask: bool) -> LogOptions {
        if unmask {
            LogOptions::unmasked()
        } else {
            LogOptions::masked(crate::output::mask::MaskKey::from_secret(
                b"hl7 log test key",
            ))
        }
    }

    fn log(rec: &Record, unmask: bool) -> serde_json::Value {
        serde_json::to_value(Logged {
            rec,
            opts: &opts(unmask),
        })
        .unwrap()
    }

    const ADT: &[u8] = b"MSH|*#%@|SND|FAC|RCV|RFAC|2024||ADT*A01*ADT_A01|C1|P*T|2.8*FR\r\
PID|1||MRN-1***AUTH@1.2@ISO*MR#NIR-1||DOE*JO%S%HN||19000101|F\r\
NK1|1|DOE*MARY\r\
PV1|1|I|W3\r";

    #[test]
    fn message_fields_are_decoded_and_patient_data_masked() {
        let rec = Record {
            message: msg(ADT),
            answer: None,
            answer_lost: false,
        };
        let v = log(&rec, false);
        assert_eq!(v["message_type"], "ADT");
        assert_eq!(v["trigger_event"], "A01");
        assert_eq!(v["message_structure"], "ADT_A01");
        assert_eq!(v["control_id"], "C1");
        assert_eq!(v["processing_id"], "P");
        assert_eq!(v["version"], "2.8");
        assert_eq!(v["sending_application"], "SND");
        assert_eq!(v["receiving_facility"], "RFAC");
        assert_eq!(
            v["segments"],
            serde_json::json!(["MSH", "PID", "NK1", "PV1"])
        );
        assert_eq!(v["patient_class"], "I");
        assert_eq!(v["framing"], "mllp");
        // Masked by the shared policy, over the decoded value.
        let o = opts(false);
        assert_eq!(v["patient"]["patient_name"][0], o.mask(b"DOE^JO*HN"));
        assert_eq!(v["patient"]["date_time_of_birth"], o.mask(b"19000101"));
        assert_eq!(v["next_of_kin"][0], o.mask(b"DOE^MARY"));
        assert!(v.get("answer").is_none() && v.get("answer_lost").is_none());
        for clear in ["MRN-1", "NIR-1", "DOE", "MARY", "19000101"] {
            assert!(!v.to_string().contains(clear), "{clear}");
        }
    }

    #[test]
    fn unmasked_values_use_the_recommended_delimiters() {
        let rec = Record {
            message: msg(ADT),
            answer: None,
            answer_lost: false,
        };
        let v = log(&rec, true);
        assert_eq!(
            v["patient"]["patient_identifier_list"],
            serde_json::json!(["MRN-1^^^AUTH&1.2&ISO^MR", "NIR-1"])
        );
        // `%S%` is an escaped component separator: the message's own, '*'.
        assert_eq!(v["patient"]["patient_name"][0], "DOE^JO*HN");
        assert_eq!(v["next_of_kin"][0], "DOE^MARY");
    }

    #[test]
    fn answer_and_its_errors_are_an_answer_object() {
        let ack = b"MSH|^~\\&|RCV|RFAC|SND|FAC|2024||ACK^A01^ACK|A1|P|2.5\r\
MSA|AE|C1|Patient identifier missing\r\
ERR|^^^101&Required field missing&HL70357|PID^1^3\r";
        let rec = Record {
            message: msg(ADT),
            answer: Some(msg(ack)),
            answer_lost: false,
        };
        let v = log(&rec, false);
        let a = &v["answer"];
        assert_eq!(a["ack_code"], "AE");
        assert_eq!(a["acknowledged_control_id"], "C1");
        assert_eq!(a["text_message"], "Patient identifier missing");
        assert_eq!(
            a["errors"][0]["error_code_and_location"],
            "^^^101&Required field missing&HL70357"
        );
        assert_eq!(a["errors"][0]["error_location"], "PID^1^3");
        let lost = Record {
            message: msg(ADT),
            answer: None,
            answer_lost: true,
        };
        assert_eq!(log(&lost, false)["answer_lost"], true);
    }

    #[test]
    fn long_values_are_capped() {
        let mut t = b"MSH|^~\\&|".to_vec();
        t.extend(std::iter::repeat_n(b'A', 5000));
        t.extend_from_slice(b"|F\r");
        let rec = Record {
            message: msg(&t),
            answer: None,
            answer_lost: false,
        };
        let v = log(&rec, false);
        assert_eq!(v["sending_application"].as_str().unwrap().len(), MAX_STRING);
        // A patient name of 5000 bytes: capped in clear, masked whole.
        let mut t = b"MSH|^~\\&|A|B|C|D|1||ADT^A01|C1|P|2.5\rPID|1||M||".to_vec();
        t.extend(std::iter::repeat_n(b'N', 5000));
        t.push(b'\r');
        let rec = Record {
            message: msg(&t),
            answer: None,
            answer_lost: false,
        };
        let clear = log(&rec, true)["patient"]["patient_name"][0].clone();
        assert_eq!(clear.as_str().unwrap().len(), MAX_STRING);
        let masked = log(&rec, false)["patient"]["patient_name"][0].clone();
        assert!(
            masked.as_str().unwrap().starts_with("***(5000 bytes #"),
            "{masked}"
        );
    }
}
