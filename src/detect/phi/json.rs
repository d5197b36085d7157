//! JSON payloads: FHIR Patient resources (HL7 FHIR R4 §8.1, Patient) and
//! objects keyed with patient-identity names.
//!
//! FHIR: a resource with `resourceType: "Patient"` — at the top, in a
//! Bundle's `entry[].resource`, in `contained[]` or in a Parameters'
//! `parameter[].resource` — is PHI ([`PhiKind::Fhir`]) when it holds a
//! non-empty `name`, `identifier`, `birthDate`, `telecom` or `address`.
//! Other resources (an Observation pointing at `Patient/123`) are not.
//! An address with a `line` or a postal code of at least 4 characters
//! places the patient finer than a city: it is recorded as
//! [`PhiKind::Location`] evidence (the resource still counts as FHIR PHI,
//! without a second copy of the address); a `text`, `city` or `district`
//! alone stays FHIR evidence. Coordinates (the `geolocation` extension of
//! an address) are read by [`super::location`].
//! Identifiers whose system is the French INS (`urn:oid:1.2.250.1.213.1.4.8`
//! and its NIA/test OIDs), the Dutch BSN (`http://fhir.nl/fhir/NamingSystem/bsn`
//! or `urn:oid:2.16.840.1.113883.2.4.6.3`) or the US SSN
//! (`http://hl7.org/fhir/sid/us-ssn`) are checked with that identifier's
//! checksum or format.
//!
//! Keys ([`PhiKind::Json`]): each object (any depth) is judged on its own
//! direct members. Keys are compared lower case with separators removed
//! (`patient_name`, `patientName`, `Patient-Name` are one key). Four
//! categories of identity: *name*, *patient id* (MRN, IPP…), *birth date*
//! and *national id*. A value counts when it is non-empty and not a
//! placeholder (`unknown`, `n/a`, `null`, `*`…); a name needs a letter; a
//! birth date must read as a calendar date (1850–2100). The object is PHI
//! when:
//! - two or more categories are present (`{"name":…, "mrn":…}`), or
//! - a patient-qualified name key is present (`patient_name`,
//!   `patientFullName`…), or
//! - a national-id key holds an identifier that passes its check
//!   (`{"nir":"200017511299931"}`).
//!
//! So a bare `name` (`{"name":"ECG lead II"}`), a bare `mrn` or a bare
//! `dob` is not enough, and telemetry (`device`, `hr`, `ts`) has no
//! identity key at all.
//!
//! Work: the payload is read once into a tape ([`super::tape`]: what
//! serde_json accepts, objects in its key order) of at most
//! `max_scan_bytes`; the walks below stop at [`MAX_DEPTH`].

use std::borrow::Cow;

use super::ids::{self, Hint};
use super::location;
use super::tape::{self, Val};
use super::{Collector, PhiConfig, PhiKind};

/// Nesting walked (objects and arrays).
pub const MAX_DEPTH: usize = 32;

/// Scans a parsed JSON document: FHIR resources, then identity keys and
/// positions ([`location::judge_object`]) in one walk, the positions'
/// evidence recorded after the keys' as when they were two walks;
/// `scratch` is reused between documents.
pub fn scan(doc: Val<'_>, cfg: &PhiConfig, col: &mut Collector, scratch: &mut Vec<u32>) {
    scan_fhir(doc, col, 0);
    let mut places = location::Places::default();
    tape::walk_objects(doc, MAX_DEPTH, scratch, &mut |_, members, key| {
        judge_object(members, col);
        location::judge_object(members, key, cfg, &mut places);
    });
    places.record(col);
}

fn str_of<'a>(v: Val<'a>, key: &str) -> Option<Cow<'a, str>> {
    v.get(key).and_then(Val::as_str)
}

fn non_empty(s: &str) -> bool {
    !s.trim().is_empty()
}

fn arr<'a>(v: Val<'a>, key: &str) -> impl Iterator<Item = Val<'a>> + 'a {
    v.get(key).into_iter().flat_map(Val::elements)
}

fn scan_fhir(v: Val<'_>, col: &mut Collector, depth: usize) {
    if depth > 4 || !v.is_object() {
        return;
    }
    match str_of(v, "resourceType").as_deref() {
        Some("Patient") => patient(v, col),
        Some("Bundle") => {
            for e in arr(v, "entry") {
                if let Some(r) = e.get("resource") {
                    scan_fhir(r, col, depth + 1);
                }
            }
        }
        Some("Parameters") => {
            for p in arr(v, "parameter") {
                if let Some(r) = p.get("resource") {
                    scan_fhir(r, col, depth + 1);
                }
            }
        }
        Some(_) => {}
        None => return,
    }
    for c in arr(v, "contained") {
        scan_fhir(c, col, depth + 1);
    }
}

/// First non-empty string among `keys` of `v`, or the first non-empty
/// string of an array under one of them (`given`, `line`).
fn first_text<'a>(v: Val<'a>, keys: &[&str]) -> Option<Cow<'a, str>> {
    keys.iter().find_map(|k| {
        let m = v.get(k)?;
        if m.is_array() {
            m.elements()
                .find_map(|x| x.as_str().filter(|s| non_empty(s)))
        } else {
            m.as_str().filter(|s| non_empty(s))
        }
    })
}

fn patient(p: Val<'_>, col: &mut Collector) {
    for n in arr(p, "name") {
        if let Some(t) = first_text(n, &["text", "family", "given"]) {
            col.add(PhiKind::Fhir, "Patient.name", &t);
            break;
        }
    }
    for id in arr(p, "identifier") {
        let Some(value) = str_of(id, "value").filter(|s| non_empty(s)) else {
            continue;
        };
        col.add(PhiKind::Fhir, "Patient.identifier", &value);
        let system = str_of(id, "system").unwrap_or_default();
        if let Some(hint) = system_hint(&system) {
            ids::check_hinted(hint, &value, "Patient.identifier", col);
        }
    }
    if let Some(b) = str_of(p, "birthDate").filter(|s| non_empty(s)) {
        col.add(PhiKind::Fhir, "Patient.birthDate", &b);
    }
    for t in arr(p, "telecom") {
        if let Some(value) = str_of(t, "value").filter(|s| non_empty(s)) {
            col.add(PhiKind::Fhir, "Patient.telecom", &value);
            break;
        }
    }
    for a in arr(p, "address") {
        let postal = str_of(a, "postalCode").unwrap_or_default();
        let street = first_text(a, &["line"]).is_some()
            || location::postal_code_is_precise(postal.as_bytes());
        let text = if street {
            first_text(a, &["text", "line", "postalCode"])
        } else {
            first_text(a, &["text", "city", "district", "postalCode"])
        };
        match text {
            Some(t) if street => {
                col.mark(PhiKind::Fhir);
                col.add(PhiKind::Location, "Patient.address", &t);
            }
            Some(t) => col.add(PhiKind::Fhir, "Patient.address", &t),
            None => {}
        }
    }
}

fn system_hint(system: &str) -> Option<Hint> {
    let oid = system.strip_prefix("urn:oid:").unwrap_or(system);
    if ids::INS_OIDS.contains(&oid) {
        Some(Hint::Nir)
    } else if system == ids::BSN_SYSTEM || oid == ids::BSN_OID {
        Some(Hint::Bsn)
    } else if system == ids::SSN_SYSTEM || oid == ids::SSN_OID {
        Some(Hint::Ssn)
    } else {
        None
    }
}

/// Identity categories of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    /// A name key qualified by "patient" (counts alone).
    PatientName,
    Name,
    PatientId,
    BirthDate,
    NationalId(Hint),
}

fn category(key: &str) -> Option<Category> {
    let mut buf = [0u8; 32];
    let k = ids::normalize(key.as_bytes(), &mut buf)?;
    if let Some(h) = ids::hint_of_normalized(k) {
        return Some(Category::NationalId(h));
    }
    let c = match k {
        b"patientname" | b"patientfullname" | b"patientlastname" | b"patientfirstname"
        | b"patientfamilyname" | b"patientgivenname" | b"nompatient" | b"nomdupatient"
        | b"birthname" | b"nomdenaissance" | b"nomnaissance" | b"maidenname"
        | b"mothersmaidenname" => Category::PatientName,
        b"name" | b"fullname" | b"firstname" | b"lastname" | b"givenname" | b"familyname"
        | b"surname" | b"given" | b"family" | b"nom" | b"prenom" | b"nomusuel" => Category::Name,
        b"mrn"
        | b"patientid"
        | b"patientidentifier"
        | b"medicalrecordnumber"
        | b"medicalrecordno"
        | b"ipp"
        | b"numipp"
        | b"patientnumber"
        | b"hospitalnumber"
        | b"patientmrn" => Category::PatientId,
        b"dob" | b"birthdate" | b"dateofbirth" | b"birthday" | b"datenaissance"
        | b"datedenaissance" | b"naissance" | b"ddn" | b"patientbirthdate" | b"patientdob" => {
            Category::BirthDate
        }
        _ => return None,
    };
    Some(c)
}

const PLACEHOLDERS: [&str; 13] = [
    "null",
    "none",
    "unknown",
    "n/a",
    "na",
    "-",
    "*",
    "?",
    "anonymous",
    "redacted",
    "xxx",
    "inconnu",
    "test",
];

/// The longest of [`PLACEHOLDERS`], in bytes.
const PLACEHOLDER_MAX: usize = {
    let mut max = 0;
    let mut i = 0;
    while i < PLACEHOLDERS.len() {
        if PLACEHOLDERS[i].len() > max {
            max = PLACEHOLDERS[i].len();
        }
        i += 1;
    }
    max
};

/// The text of a scalar value, when it is not empty or a placeholder:
/// borrowed from the payload when it is a string without escapes (the
/// common case: no copy per identity value).
fn scalar_text(v: Val<'_>) -> Option<Cow<'_, str>> {
    let s = match v.as_str() {
        Some(Cow::Borrowed(s)) => Cow::Borrowed(s.trim()),
        Some(Cow::Owned(s)) => Cow::Owned(s.trim().to_string()),
        None => Cow::Owned(v.number_text()?),
    };
    // No placeholder is longer than PLACEHOLDER_MAX bytes: longer values
    // (most identity values) are not compared with each.
    if s.is_empty()
        || s.len() <= PLACEHOLDER_MAX && PLACEHOLDERS.iter().any(|p| s.eq_ignore_ascii_case(p))
    {
        return None;
    }
    Some(s)
}

/// A calendar date at the start of `s`: `YYYY-MM-DD`, `YYYY/MM/DD`,
/// `YYYYMMDD`, or `DD/MM/YYYY` (also with `-` and `.`; day and month
/// may swap, both checked within 1–31 and 1–12 one way or the other).
pub fn looks_like_date(s: &str) -> bool {
    let b = s.as_bytes();
    let d = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(r)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0u32, |n, &c| n * 10 + u32::from(c - b'0')))
    };
    let sep = |i: usize| b.get(i).is_some_and(|c| matches!(c, b'-' | b'/' | b'.'));
    let ymd = |y: u32, m: u32, day: u32| {
        (1850..=2100).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&day)
    };
    let ended = |i: usize| !b.get(i).is_some_and(u8::is_ascii_digit);
    if let (Some(y), true, Some(m), true, Some(day)) = (d(0..4), sep(4), d(5..7), sep(7), d(8..10))
    {
        return ymd(y, m, day) && ended(10);
    }
    if let (Some(y), Some(m), Some(day)) = (d(0..4), d(4..6), d(6..8)) {
        return ymd(y, m, day) && ended(8);
    }
    if let (Some(a), true, Some(m), true, Some(y)) = (d(0..2), sep(2), d(3..5), sep(5), d(6..10)) {
        return (ymd(y, m, a) || ymd(y, a, m)) && ended(10);
    }
    false
}

/// `members`: the object's members in key order.
fn judge_object(members: &[tape::Member<'_>], col: &mut Collector) {
    // (category, key, value) of the identity members, at most one per key.
    let mut found: Vec<(Category, &str, Cow<'_, str>)> = Vec::new();
    for (key, value) in members {
        let Some(cat) = category(key) else { continue };
        let Some(text) = scalar_text(*value) else {
            continue;
        };
        let ok = match cat {
            Category::PatientName | Category::Name => text.chars().any(char::is_alphabetic),
            Category::BirthDate => looks_like_date(&text),
            Category::PatientId | Category::NationalId(_) => true,
        };
        if ok {
            // One allocation for the object's identity members (a
            // patient object has several), not one per doubling.
            if found.capacity() == 0 {
                found.reserve_exact(members.len());
            }
            found.push((cat, key, text));
        }
    }
    if found.is_empty() {
        return;
    }
    let mut classes = [false; 4];
    let mut alone = false;
    for (cat, key, text) in &found {
        let idx = match cat {
            Category::PatientName => {
                alone = true;
                0
            }
            Category::Name => 0,
            Category::PatientId => 1,
            Category::BirthDate => 2,
            Category::NationalId(h) => {
                if ids::check_hinted(*h, text, key, col) {
                    alone = true;
                }
                3
            }
        };
        if let Some(c) = classes.get_mut(idx) {
            *c = true;
        }
    }
    if alone || classes.iter().filter(|c| **c).count() >= 2 {
        for (_, key, text) in &found {
            col.add(PhiKind::Json, key, text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::phi::{PhiConfig, PhiReport};

    fn run(text: &str) -> PhiReport {
        let mut col = Collector::new(&PhiConfig {
            max_evidence: 32,
            ..PhiConfig::default()
        });
        let mut tape = Vec::new();
        let doc = tape::parse(text.as_bytes(), &mut tape).unwrap();
        scan(doc.root(), &PhiConfig::default(), &mut col, &mut Vec::new());
        col.finish()
    }

    #[test]
    fn telemetry_and_lone_names_are_clean() {
        assert!(run(r#"{"device":"MON-0042","hr":69,"ts":1735689600000}"#).is_empty());
        assert!(run(r#"{"name":"ECG lead II"}"#).is_empty());
        assert!(run(r#"{"name":"MON-0042","id":"42","serial":"SN1"}"#).is_empty());
        assert!(run(r#"{"mrn":"MRN-1"}"#).is_empty());
        assert!(run(r#"{"dob":"1900-01-01"}"#).is_empty());
        // Name plus a birth "date" that is not a date.
        assert!(run(r#"{"name":"lead","dob":"n/a"}"#).is_empty());
        assert!(run(r#"{"name":"lead","dob":"1735689600000"}"#).is_empty());
    }

    #[test]
    fn two_identity_categories_make_phi() {
        let r = run(r#"{"patient":{"name":"TEST^JANE","mrn":"MRN-TEST-0001","sex":"F"}}"#);
        assert_eq!(r.kinds, vec![PhiKind::Json]);
        assert_eq!(r.evidence.len(), 2);
        let r = run(r#"[{"x":1},{"lastName":"Doe","date_of_birth":"02/01/1900"}]"#);
        assert_eq!(r.kinds, vec![PhiKind::Json]);
        let r = run(r#"{"patient_id":17,"birth_date":19000101}"#);
        assert_eq!(r.kinds, vec![PhiKind::Json]);
    }

    #[test]
    fn patient_name_key_alone_is_phi() {
        assert_eq!(
            run(r#"{"patientName":"Doe^Jane"}"#).kinds,
            vec![PhiKind::Json]
        );
        assert!(run(r#"{"patientName":"unknown"}"#).is_empty());
        assert!(run(r#"{"patient_name":""}"#).is_empty());
    }

    #[test]
    fn national_id_key_alone_counts_only_when_valid() {
        let r = run(r#"{"nir":"200017511299931"}"#);
        assert_eq!(r.kinds, vec![PhiKind::Json, PhiKind::Nir]);
        assert!(run(r#"{"nir":"200017511299932"}"#).is_empty());
        let r = run(r#"{"bsn":111222333}"#);
        assert_eq!(r.kinds, vec![PhiKind::Json, PhiKind::Bsn]);
        assert!(run(r#"{"bsn":"111222334"}"#).is_empty());
        // Invalid id still counts as a category next to a name.
        let r = run(r#"{"name":"Jane","ssn":"000-12-3456"}"#);
        assert_eq!(r.kinds, vec![PhiKind::Json]);
    }

    #[test]
    fn fhir_patient_is_phi_and_checks_identifier_systems() {
        let r = run(
            r#"{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.250.1.213.1.4.8","value":"100017511299882"},{"value":"111222333","system":"http://fhir.nl/fhir/NamingSystem/bsn"}],"name":[{"family":"DOE","given":["JOHN"]}],"birthDate":"1900-01-02"}"#,
        );
        assert_eq!(r.kinds, vec![PhiKind::Fhir, PhiKind::Nir, PhiKind::Bsn]);
        let fields: Vec<_> = r.evidence.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"Patient.name"));
        assert!(fields.contains(&"Patient.birthDate"));
    }

    #[test]
    fn fhir_bsn_system_with_bad_checksum_is_only_fhir() {
        let r = run(
            r#"{"resourceType":"Patient","identifier":[{"system":"http://fhir.nl/fhir/NamingSystem/bsn","value":"111222334"}]}"#,
        );
        assert_eq!(r.kinds, vec![PhiKind::Fhir]);
    }

    #[test]
    fn fhir_observation_and_empty_patient_are_clean() {
        assert!(run(
            r#"{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/test-mrn-test-0001"},"valueQuantity":{"value":72,"unit":"/min"}}"#
        )
        .is_empty());
        assert!(run(r#"{"resourceType":"Patient","id":"p1","gender":"female","name":[{}],"telecom":[{"system":"phone"}]}"#).is_empty());
    }

    #[test]
    fn fhir_patient_inside_bundle_or_contained_is_found() {
        let r = run(
            r#"{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation"}},{"resource":{"resourceType":"Patient","telecom":[{"value":"+33 1 99 00 12 34"}]}}]}"#,
        );
        assert_eq!(r.kinds, vec![PhiKind::Fhir]);
        let r = run(
            r#"{"resourceType":"Observation","contained":[{"resourceType":"Patient","address":[{"city":"PARIS"}]}]}"#,
        );
        assert_eq!(r.kinds, vec![PhiKind::Fhir]);
    }

    #[test]
    fn dates_are_recognised_strictly() {
        for s in [
            "1900-01-01",
            "19000101",
            "01/02/1900",
            "12.31.1980",
            "1980-12-31T10:00:00Z",
        ] {
            assert!(looks_like_date(s), "{s}");
        }
        for s in [
            "1735689600000",
            "2.4.1",
            "1900-13-01",
            "00000000",
            "190001011",
            "MON-0042",
        ] {
            assert!(!looks_like_date(s), "{s}");
        }
    }

    #[test]
    fn fhir_street_address_is_location_evidence_and_a_city_is_not() {
        let patient = |address: &str| {
            run(&format!(
                r#"{{"resourceType":"Patient","birthDate":"1900-01-01","address":[{address}]}}"#
            ))
        };
        let r = patient(r#"{"line":["1 RUE DE L'EXEMPLE"],"city":"PARIS","postalCode":"75012"}"#);
        assert_eq!(r.kinds, vec![PhiKind::Fhir, PhiKind::Location]);
        let addr: Vec<_> = r
            .evidence
            .iter()
            .filter(|e| e.field == "Patient.address")
            .collect();
        assert_eq!(addr.len(), 1, "the address is listed once");
        assert_eq!(addr[0].kind, PhiKind::Location);
        assert_eq!(addr[0].value, "1 RUE DE L'EXEMPLE");
        let r = patient(r#"{"text":"Paris 12e","postalCode":"75012"}"#);
        assert_eq!(r.kinds, vec![PhiKind::Fhir, PhiKind::Location]);
        // A city, a district, a 2-digit department: FHIR only.
        for a in [
            r#"{"city":"PARIS","country":"FR"}"#,
            r#"{"district":"Paris","state":"IDF"}"#,
            r#"{"city":"PARIS","postalCode":"75"}"#,
        ] {
            let r = patient(a);
            assert_eq!(r.kinds, vec![PhiKind::Fhir], "{a}");
        }
        // The address alone makes the resource PHI: both kinds.
        let r = run(r#"{"resourceType":"Patient","address":[{"line":["2 AVENUE DU TEST"]}]}"#);
        assert_eq!(r.kinds, vec![PhiKind::Fhir, PhiKind::Location]);
        assert_eq!(r.evidence.len(), 1);
    }
}
