//! Target `phi`: the PHI detectors on raw bytes (HL7 v2, FHIR and
//! identity-keyed JSON, national identifiers), as they scan MQTT payloads
//! and TCP segments.
//!
//! Input: `cfg:u8 payload` — `max_evidence` is `cfg % 10`; `cfg & 0x80`
//! limits the scan to the first `16 × (cfg & 0x70 >> 4)` bytes.
//!
//! Properties (the report's contract, and precision):
//! - kinds are in [`PhiKind::ALL`] order, each once; at most
//!   `max_evidence` evidence items, each of a reported kind, with field and
//!   value of at most [`MAX_VALUE_CHARS`] characters; when `max_evidence`
//!   allows it, every kind found has evidence (an HL7 or FHIR kind found
//!   only through a precise address has it as location evidence of that
//!   field);
//! - an SSN, NIR or BSN reported (whole, not cut by the value cap) passes
//!   the identifier's own rules, checked here by an independent
//!   implementation of the published rules (SSA area / group / serial,
//!   INSEE key = 97 − n mod 97 with 2A/2B as 19/18, the eleven-proof): a
//!   false identifier is an alert an analyst must dismiss;
//! - the JSON tape the detectors read payloads through
//!   ([`wardwatch::detect::phi::tape`]) agrees with serde_json, its
//!   reference: it accepts exactly the documents serde_json accepts, and
//!   reads an accepted one as the same value, objects' members in
//!   `serde_json::Map` order (a repeated key once, with its last value).

use serde_json::Value;
use wardwatch::detect::phi::tape::{self, Val};
use wardwatch::detect::phi::{scan_payload, PhiConfig, PhiKind, MAX_VALUE_CHARS};
use wardwatch::output::mask::LogOptions;

use super::input::Cursor;

/// The digits (and Corsican letters) of an identifier, separators removed.
fn compact(v: &str) -> Vec<u8> {
    v.bytes()
        .filter(|b| !matches!(b, b' ' | b'.' | b'-'))
        .collect()
}

fn digits(b: &[u8]) -> Option<Vec<u64>> {
    b.iter()
        .map(|&c| c.is_ascii_digit().then(|| u64::from(c - b'0')))
        .collect()
}

fn value(d: &[u64]) -> u64 {
    d.iter().fold(0, |n, &x| n * 10 + x)
}

/// SSA format rules: area not 000, 666 or 9xx; group not 00; serial not
/// 0000.
fn valid_ssn(v: &str) -> bool {
    let Some(d) = digits(&compact(v)) else {
        return false;
    };
    if d.len() != 9 {
        return false;
    }
    let (area, group, serial) = (value(&d[0..3]), value(&d[3..5]), value(&d[5..9]));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// INSEE: the last two digits are 97 − (the first 13 mod 97), Corsica's
/// 2A/2B counting as 19/18.
fn valid_nir(v: &str) -> bool {
    let c = compact(v).to_ascii_uppercase();
    if c.len() != 15 {
        return false;
    }
    let dept: &[u8] = match &c[5..7] {
        b"2A" => b"19",
        b"2B" => b"18",
        d => d,
    };
    let body = [&c[0..5], dept, &c[7..13]].concat();
    let (Some(n), Some(key)) = (digits(&body), digits(&c[13..])) else {
        return false;
    };
    value(&key) == 97 - value(&n) % 97
}

/// The eleven-proof: Σ digit × weight (9 … 2, then −1) ≡ 0 (mod 11).
fn valid_bsn(v: &str) -> bool {
    let Some(d) = digits(&compact(v)) else {
        return false;
    };
    if d.len() != 9 {
        return false;
    }
    let sum: i64 = d
        .iter()
        .zip([9, 8, 7, 6, 5, 4, 3, 2, -1])
        .map(|(&x, w)| x as i64 * w)
        .sum();
    sum % 11 == 0
}

/// Where the tape's reading of a value differs from serde_json's, if it
/// does. `true`, `false` and `null` only as "none of the others": the
/// tape does not tell them apart, and no detector reads them.
fn differs(t: Val<'_>, r: &Value, scratch: &mut Vec<u32>) -> Option<String> {
    match r {
        Value::Object(m) => {
            if !t.is_object() {
                return Some(format!("object read as another kind: {r}"));
            }
            let range = tape::sorted_members(t, scratch);
            let keys: Vec<u32> = scratch.get(range.clone()).unwrap_or_default().to_vec();
            scratch.truncate(range.start);
            if keys.len() != m.len() {
                return Some(format!(
                    "{} members, serde_json {}: {r}",
                    keys.len(),
                    m.len()
                ));
            }
            for (k, (rk, rv)) in keys.into_iter().zip(m) {
                let Some((tk, tv)) = t.doc().member(k) else {
                    return Some(format!("member {k} unreadable in {r}"));
                };
                if tk != rk.as_str() {
                    return Some(format!("key {tk:?} where serde_json has {rk:?}: {r}"));
                }
                if let Some(d) = differs(tv, rv, scratch) {
                    return Some(d);
                }
            }
            None
        }
        Value::Array(a) => {
            if !t.is_array() {
                return Some(format!("array read as another kind: {r}"));
            }
            let n = t.elements().count();
            if n != a.len() {
                return Some(format!("{n} elements, serde_json {}: {r}", a.len()));
            }
            t.elements()
                .zip(a)
                .find_map(|(tv, rv)| differs(tv, rv, scratch))
        }
        Value::String(s) => (t.as_str().as_deref() != Some(s.as_str()))
            .then(|| format!("string {:?}, serde_json {s:?}", t.as_str())),
        Value::Number(n) => (t.number_text() != Some(n.to_string()))
            .then(|| format!("number {:?}, serde_json {n}", t.number_text())),
        Value::Bool(_) | Value::Null => {
            (t.is_object() || t.is_array() || t.is_number() || t.as_str().is_some())
                .then(|| format!("literal {r} read as another kind"))
        }
    }
}

/// The tape against serde_json on the whole payload.
fn tape_agrees_with_serde_json(payload: &[u8]) {
    let mut nodes = Vec::new();
    let doc = tape::parse(payload, &mut nodes);
    match (doc, serde_json::from_slice::<Value>(payload)) {
        (None, Err(_)) => {}
        (Some(doc), Ok(r)) => {
            if let Some(d) = differs(doc.root(), &r, &mut Vec::new()) {
                panic!("tape and serde_json differ: {d}");
            }
        }
        (Some(_), Err(e)) => panic!("tape accepts what serde_json rejects ({e})"),
        (None, Ok(r)) => panic!("tape rejects what serde_json accepts: {r}"),
    }
}

pub fn phi(data: &[u8]) {
    let mut c = Cursor::new(data);
    let b = c.u8();
    let payload = c.rest();
    tape_agrees_with_serde_json(payload);
    let cfg = PhiConfig {
        max_evidence: usize::from(b % 10),
        max_scan_bytes: if b & 0x80 != 0 {
            16 * usize::from((b & 0x70) >> 4)
        } else {
            PhiConfig::default().max_scan_bytes
        },
        ..PhiConfig::default()
    };
    let r = scan_payload(payload, &cfg);
    let order: Vec<PhiKind> = PhiKind::ALL
        .into_iter()
        .filter(|k| r.kinds.contains(k))
        .collect();
    assert_eq!(r.kinds, order, "kinds out of order or repeated");
    assert!(
        r.evidence.len() <= cfg.max_evidence,
        "{} evidence items",
        r.evidence.len()
    );
    for e in &r.evidence {
        assert!(
            r.kinds.contains(&e.kind),
            "evidence of unreported kind {:?}",
            e.kind
        );
        assert!(
            e.value.chars().count() <= MAX_VALUE_CHARS,
            "value too long: {e:?}"
        );
        assert!(
            e.field.chars().count() <= MAX_VALUE_CHARS,
            "field too long: {e:?}"
        );
        // A value at the cap may have lost digits to it (an identifier
        // written with many separators): only whole values are checked.
        let whole = e.value.chars().count() < MAX_VALUE_CHARS;
        let valid = !whole
            || match e.kind {
                PhiKind::Ssn => valid_ssn(&e.value),
                PhiKind::Nir => valid_nir(&e.value),
                PhiKind::Bsn => valid_bsn(&e.value),
                _ => true,
            };
        assert!(
            valid,
            "reported {:?} fails its own rules: {:?}",
            e.kind, e.value
        );
        // The logged forms of the evidence, masked and in full.
        for opts in [LogOptions::default(), LogOptions::unmasked()] {
            let _ = opts.evidence(e);
        }
    }
    if cfg.max_evidence >= r.kinds.len() {
        for k in &r.kinds {
            // A precise address (HL7 PID-11, FHIR Patient.address) is
            // evidence of its format and of a location: it is recorded once,
            // as location evidence naming the field.
            let by_address = |field: &str| {
                r.evidence
                    .iter()
                    .any(|e| e.kind == PhiKind::Location && e.field == field)
            };
            let covered = r.evidence.iter().any(|e| e.kind == *k)
                || (*k == PhiKind::Hl7 && by_address("PID-11"))
                || (*k == PhiKind::Fhir && by_address("Patient.address"));
            assert!(covered, "{k:?} found without evidence");
        }
    }
}
