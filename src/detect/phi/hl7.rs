//! HL7 v2 messages (HL7 v2.5 ch. 2): the PID segment's identity fields.
//!
//! A message starts with an `MSH` segment whose fourth byte is the field
//! separator and whose next bytes, up to the next field separator, are the
//! encoding characters (component, repetition, escape, subcomponent and,
//! from v2.7, truncation). Segments end with CR; LF and CRLF are tolerated.
//! MLLP framing (start block 0x0B, end 0x1C 0x0D; HL7 v2 ch. C.4.3) and
//! several messages per payload are handled by treating 0x0B and 0x1C as
//! segment ends too. A `PID` segment counts only after a valid `MSH` and is
//! read with that message's separators.
//!
//! PHI: a non-empty PID-3 (patient identifier list), PID-5 (name), PID-7
//! (birth date), PID-11 (address), PID-13 (home phone) or PID-19 (SSN). A
//! field is empty when it holds only separators, spaces or the HL7 null
//! `""`. Inside PID-3, each repetition's CX components are read: ID (1),
//! assigning authority (4, its subcomponents namespace & OID & type) and
//! identifier type code (5); an authority or type naming the French INS,
//! the Dutch BSN or the US SSN has its ID checked with that identifier's
//! checksum or format.
//!
//! Location: a PID-11 (XAD) with, in any repetition, a street address
//! (XAD-1), other designation (XAD-2: flat, building), census tract
//! (XAD-10) or a postal code of at least 4 characters (XAD-5) places the
//! patient finer than a city ([`location`]): it is recorded as
//! [`PhiKind::Location`] evidence and the message as HL7 PHI without a
//! second copy of the address. A city, county, state or country alone stays
//! HL7 evidence only.
//!
//! Work: one pass over the bytes; PID fields past 19 are not split.

use super::ids::{self, Hint};
use super::location;
use super::{Collector, PhiKind};
use crate::output::mask::display_bytes;

/// The PID fields that identify a patient, with their evidence names.
const PID_FIELDS: [(usize, &str); 6] = [
    (3, "PID-3"),
    (5, "PID-5"),
    (7, "PID-7"),
    (11, "PID-11"),
    (13, "PID-13"),
    (19, "PID-19"),
];

/// Bytes of a field converted for evidence (64 characters of UTF-8).
const EVIDENCE_BYTES: usize = 256;

/// Separators of one message.
#[derive(Debug, Clone, Copy)]
struct Delims {
    field: u8,
    component: u8,
    repetition: u8,
    subcomponent: u8,
}

fn is_separator_char(b: u8) -> bool {
    b.is_ascii_punctuation()
}

/// Reads the separators of an `MSH` segment.
fn parse_msh(seg: &[u8]) -> Option<Delims> {
    if !seg.starts_with(b"MSH") {
        return None;
    }
    let field = *seg.get(3)?;
    if !is_separator_char(field) {
        return None;
    }
    let rest = seg.get(4..)?;
    let n = rest.iter().position(|&b| b == field)?;
    let enc = rest.get(..n)?;
    if !(2..=5).contains(&enc.len()) || !enc.iter().all(|&b| is_separator_char(b) && b != field) {
        return None;
    }
    Some(Delims {
        field,
        component: *enc.first()?,
        repetition: *enc.get(1)?,
        subcomponent: enc.get(3).copied().unwrap_or(b'&'),
    })
}

/// Scans `data` for HL7 v2 messages; returns whether one was seen.
pub fn scan(data: &[u8], col: &mut Collector) -> bool {
    // Without an `MSH` anywhere no segment starts with one: no delimiters,
    // no PID read, nothing seen. One vectorised search turns away the
    // payloads that are not HL7 (JSON, text) before the split looks at
    // every byte.
    // The searcher is built once: `memmem::find` builds one per call,
    // which costs more than searching a small payload.
    static MSH: std::sync::OnceLock<memchr::memmem::Finder<'static>> = std::sync::OnceLock::new();
    let msh = MSH.get_or_init(|| memchr::memmem::Finder::new(b"MSH"));
    if msh.find(data).is_none() {
        return false;
    }
    let mut delims: Option<Delims> = None;
    let mut seen = false;
    for seg in data.split(|&b| matches!(b, b'\r' | b'\n' | 0x0B | 0x1C)) {
        if seg.starts_with(b"MSH") {
            delims = parse_msh(seg);
            seen |= delims.is_some();
        } else if seg.starts_with(b"PID") {
            if let Some(d) = delims {
                if seg.get(3) == Some(&d.field) {
                    scan_pid(seg, d, col);
                }
            }
        }
    }
    seen
}

fn is_empty_value(v: &[u8], d: Delims) -> bool {
    v == b"\"\""
        || v.iter()
            .all(|&b| b == b' ' || b == d.component || b == d.repetition || b == d.subcomponent)
}

fn scan_pid(seg: &[u8], d: Delims, col: &mut Collector) {
    // Field 0 is the segment id "PID"; PID-n is field n.
    for (n, value) in seg.split(|&b| b == d.field).enumerate().take(20) {
        let Some(&(_, name)) = PID_FIELDS.iter().find(|(i, _)| *i == n) else {
            continue;
        };
        if is_empty_value(value, d) {
            continue;
        }
        // Only the start is converted: evidence keeps 64 characters, and
        // the SSN check needs at most 11 bytes.
        let head = value.get(..EVIDENCE_BYTES).unwrap_or(value);
        let text = display_bytes(head);
        if n == 11 && address_is_precise(value, d) {
            col.mark(PhiKind::Hl7);
            col.add(PhiKind::Location, name, &text);
            continue;
        }
        col.add(PhiKind::Hl7, name, &text);
        if n == 3 {
            scan_identifiers(value, d, col);
        } else if n == 19 {
            ids::check_hinted(Hint::Ssn, &text, name, col);
        }
    }
}

/// Whether an XAD field (PID-11) places someone finer than a city: street
/// (XAD-1), other designation (XAD-2), census tract (XAD-10) or a detailed
/// postal code (XAD-5) in some repetition.
fn address_is_precise(value: &[u8], d: Delims) -> bool {
    value.split(|&b| b == d.repetition).any(|rep| {
        rep.split(|&b| b == d.component)
            .enumerate()
            .take(10)
            .any(|(i, c)| match i + 1 {
                1 | 2 | 10 => !is_empty_value(c, d),
                5 => !is_empty_value(c, d) && location::postal_code_is_precise(c),
                _ => false,
            })
    })
}

/// Checks each CX repetition of PID-3 whose authority or type names a
/// national identifier.
fn scan_identifiers(value: &[u8], d: Delims, col: &mut Collector) {
    for rep in value.split(|&b| b == d.repetition) {
        let mut comps = rep.split(|&b| b == d.component);
        let id = comps.next().unwrap_or_default();
        let authority = comps.nth(2).unwrap_or_default();
        let type_code = comps.next().unwrap_or_default();
        if let Some(hint) = hint_of(authority, type_code, d) {
            ids::check_hinted(hint, &display_bytes(id), "PID-3", col);
        }
    }
}

fn hint_of(authority: &[u8], type_code: &[u8], d: Delims) -> Option<Hint> {
    for part in authority.split(|&b| b == d.subcomponent) {
        let p = String::from_utf8_lossy(part);
        let p = p.trim();
        if ids::INS_OIDS.contains(&p) {
            return Some(Hint::Nir);
        }
        if p == ids::BSN_OID || p.eq_ignore_ascii_case("NLMINBIZA") {
            return Some(Hint::Bsn);
        }
        if p == ids::SSN_OID || p.eq_ignore_ascii_case("SSA") {
            return Some(Hint::Ssn);
        }
    }
    // Identifier type codes (HL7 table 0203): SS social security number,
    // NNNLD Dutch national person identifier; INS / INS-NIR are the
    // French INS types of IHE PAM France.
    match type_code.to_ascii_uppercase().as_slice() {
        b"SS" => Some(Hint::Ssn),
        b"NNNLD" => Some(Hint::Bsn),
        b"INS" | b"INS-NIR" | b"NIR" => Some(Hint::Nir),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::phi::{PhiConfig, PhiReport};

    fn run(data: &[u8]) -> PhiReport {
        let mut col = Collector::new(&PhiConfig {
            max_evidence: 32,
            ..PhiConfig::default()
        });
        scan(data, &mut col);
        col.finish()
    }

    fn fields(r: &PhiReport) -> Vec<String> {
        r.evidence.iter().map(|e| e.field.clone()).collect()
    }

    // Hand-built: an ORU with the capture README's fake patient DOE^JOHN.
    const ORU: &[u8] = b"MSH|^~\\&|ICU-GW|CHU|EPIC|CHU|19000101120000||ORU^R01|1|P|2.5\r\
PID|1||MRN-TEST-0002^^^CHU^MR~100017511299882^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS||DOE^JOHN||19000102|M|||2 AVENUE DU TEST^^LYON^^69001^FR||+33 1 99 00 56 78\r\
OBX|1|NM|8867-4^Heart rate^LN||72|/min\r";

    #[test]
    fn pid_identity_fields_each_give_evidence() {
        let r = run(ORU);
        assert_eq!(r.kinds, vec![PhiKind::Hl7, PhiKind::Nir, PhiKind::Location]);
        let f = fields(&r);
        for want in ["PID-3", "PID-5", "PID-7", "PID-11", "PID-13"] {
            assert!(f.contains(&want.to_string()), "{want} in {f:?}");
        }
        // The street address is location evidence, listed once.
        let pid11: Vec<_> = r.evidence.iter().filter(|e| e.field == "PID-11").collect();
        assert_eq!(pid11.len(), 1);
        assert_eq!(pid11[0].kind, PhiKind::Location);
        assert_eq!(pid11[0].value, "2 AVENUE DU TEST^^LYON^^69001^FR");
        assert!(r
            .evidence
            .iter()
            .any(|e| e.kind == PhiKind::Nir && e.value == "100017511299882"));
    }

    #[test]
    fn mllp_framed_lf_separated_messages_are_read() {
        let mut m = vec![0x0B];
        m.extend_from_slice(b"MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\nPID|1||X1^^^H^MR||DOE^JOHN\n");
        m.extend_from_slice(&[0x1C, 0x0D, 0x0B]);
        m.extend_from_slice(b"MSH|^~\\&|A|B|C|D|1||ADT^A01|2|P|2.5\r\nPID|1||||||19000101\r\n");
        m.extend_from_slice(&[0x1C, 0x0D]);
        let r = run(&m);
        assert_eq!(r.kinds, vec![PhiKind::Hl7]);
        let f = fields(&r);
        assert!(f.contains(&"PID-3".into()) && f.contains(&"PID-7".into()));
    }

    #[test]
    fn other_separators_from_msh_are_used() {
        let r = run(b"MSH#*~\\&#A#B\rPID#1##MRN1*** *H##DOE*JOHN\r");
        assert_eq!(fields(&r), vec!["PID-3", "PID-5"]);
    }

    #[test]
    fn message_without_pid_is_clean() {
        let r = run(b"MSH|^~\\&|CMS8000|X|Y|Z|1||ACK|1|P|2.3.1\rMSA|AA|1\r");
        assert!(r.is_empty());
    }

    #[test]
    fn pid_with_empty_identity_fields_is_clean() {
        // PID-3 only separators, PID-5 the HL7 null, PID-8 (sex) set.
        let r = run(b"MSH|^~\\&|A|B\rPID|1||^^^~^^||\"\"||| M\r");
        assert!(r.is_empty(), "{r:?}");
    }

    #[test]
    fn pid_without_msh_or_with_bad_msh_is_ignored() {
        assert!(run(b"PID|1||MRN1||DOE^JOHN\r").is_empty());
        assert!(run(b"MSHA^~\\&|\rPID|1||MRN1||DOE^JOHN\r").is_empty());
        // PID not at a segment start.
        assert!(run(b"MSH|^~\\&|A\rOBX|PID|1||MRN1||DOE^JOHN\r").is_empty());
    }

    #[test]
    fn bsn_and_ssn_by_authority_or_type_code() {
        let r =
            run(b"MSH|^~\\&|A\rPID|1||111222333^^^NLMINBIZA&2.16.840.1.113883.2.4.6.3&ISO^NNNLD\r");
        assert_eq!(r.kinds, vec![PhiKind::Hl7, PhiKind::Bsn]);
        // Same number with a local authority: no BSN (no context).
        let r = run(b"MSH|^~\\&|A\rPID|1||111222333^^^CHU^MR\r");
        assert_eq!(r.kinds, vec![PhiKind::Hl7]);
        // Fails the eleven-proof despite the BSN type.
        let r = run(b"MSH|^~\\&|A\rPID|1||111222334^^^^NNNLD\r");
        assert_eq!(r.kinds, vec![PhiKind::Hl7]);
        let r = run(b"MSH|^~\\&|A\rPID|1||123456789^^^^SS\r");
        assert_eq!(r.kinds, vec![PhiKind::Hl7, PhiKind::Ssn]);
        // PID-19 (SSN): "PID", "1", then 18 more separators.
        let pid19 = |v: &str| format!("MSH|^~\\&|A\rPID|1{}{v}\r", "|".repeat(18));
        let r = run(pid19("123456789").as_bytes());
        assert_eq!(r.kinds, vec![PhiKind::Hl7, PhiKind::Ssn]);
        assert_eq!(r.evidence[0].field, "PID-19");
        // Area 666 is never issued: HL7 PHI but no SSN.
        let r = run(pid19("666456789").as_bytes());
        assert_eq!(r.kinds, vec![PhiKind::Hl7]);
    }

    #[test]
    fn nir_by_authority_with_invalid_key_is_not_nir() {
        let r = run(b"MSH|^~\\&|A\rPID|1||100017511299883^^^X&1.2.250.1.213.1.4.8&ISO^INS\r");
        assert_eq!(r.kinds, vec![PhiKind::Hl7]);
    }

    #[test]
    fn street_or_postal_code_in_pid11_is_a_location_and_a_city_is_not() {
        let pid11 = |v: &str| run(format!("MSH|^~\\&|A\rPID|1{}{v}\r", "|".repeat(10)).as_bytes());
        for v in [
            "1 RUE DE L'EXEMPLE^^PARIS^^75012^FR",
            "^BATIMENT B^PARIS",
            "^^PARIS^^75012",
            // Second repetition: the first is the birth place's country.
            "^^^^^FR^BDL~12 RUE DU TEST",
            "^^^^^^^^^1234.00",
        ] {
            let r = pid11(v);
            assert_eq!(r.kinds, vec![PhiKind::Hl7, PhiKind::Location], "{v}");
            assert_eq!(fields(&r), vec!["PID-11"], "{v}");
        }
        // City, state, country, county, a department number: HL7 PHI only.
        for v in [
            "^^PARIS^^^FR",
            "^^^IDF^^FR",
            "^^^^75",
            "^^^^^^^^075",
            "\"\"^^PARIS",
        ] {
            let r = pid11(v);
            assert_eq!(r.kinds, vec![PhiKind::Hl7], "{v}");
            assert_eq!(r.evidence[0].kind, PhiKind::Hl7, "{v}");
        }
        // Only separators or the HL7 null: nothing.
        assert!(pid11("^^^~^^").is_empty());
        assert!(pid11("\"\"").is_empty());
    }
}
