//! PHI detectors: whether a payload or an app-layer record carries patient
//! data, and the evidence, for the `phi` rule keyword and the EVE `phi`
//! object.
//!
//! Owns the detectors, one file each: HL7 v2 PID segments ([`hl7`]), FHIR
//! Patient resources and identity-keyed JSON ([`json`]), DICOM patient
//! attributes ([`dicom`]), national identifiers validated by checksum or
//! format ([`ids`]: US SSN, French NIR, Dutch BSN), which also run on the
//! values the other detectors extract, and patient locations ([`location`]:
//! precise positions in JSON and NMEA outside the configured sites; the
//! street-level addresses of HL7 PID-11 and FHIR `Patient.address` are
//! location evidence instead of HL7/FHIR evidence, so one address is not
//! listed twice).
//!
//! Precision over recall: every rule here is chosen so that telemetry
//! (vital signs, device serials, firmware versions, timestamps, UUIDs,
//! random numbers, the coordinates of a fixed device) does not look like
//! PHI; each detector documents its rule.
//!
//! Invariants: at most [`PhiConfig::max_scan_bytes`] of a payload are
//! examined; every pass is linear in them (no regex, no backtracking); the
//! only allocations are at most `max_evidence` per kind evidence items of
//! at most [`MAX_VALUE_CHARS`] characters and the text of the few values a
//! detector reads (a string with escapes, a number under an identity or
//! coordinate key), so a hostile declared size costs nothing; a JSON
//! payload is read into a per-thread tape ([`tape`]) reused from payload
//! to payload, given back when it grew past [`TAPE_KEPT`] nodes.

pub mod dicom;
pub mod hl7;
pub mod ids;
pub mod json;
pub mod location;
pub mod tape;

use std::cell::RefCell;

use serde::Deserialize;

use crate::app::{dicom as dicom_app, mqtt};

/// A kind of patient data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PhiKind {
    /// HL7 v2 message with a PID segment carrying identity fields.
    Hl7,
    /// FHIR Patient resource (JSON).
    Fhir,
    /// JSON object with patient name / MRN / birth-date keys.
    Json,
    /// US Social Security number (format rules).
    Ssn,
    /// French NIR with a valid mod-97 key.
    Nir,
    /// Dutch BSN passing the eleven-proof.
    Bsn,
    /// DICOM patient-module attribute with a non-empty value.
    Dicom,
    /// A person-level position or street-level address ([`location`]).
    Location,
}

impl PhiKind {
    pub const ALL: [PhiKind; 8] = [
        PhiKind::Hl7,
        PhiKind::Fhir,
        PhiKind::Json,
        PhiKind::Ssn,
        PhiKind::Nir,
        PhiKind::Bsn,
        PhiKind::Dicom,
        PhiKind::Location,
    ];

    /// Name in rules (`phi:nir,bsn`) and in EVE.
    pub fn name(self) -> &'static str {
        match self {
            PhiKind::Hl7 => "hl7",
            PhiKind::Fhir => "fhir",
            PhiKind::Json => "json",
            PhiKind::Ssn => "ssn",
            PhiKind::Nir => "nir",
            PhiKind::Bsn => "bsn",
            PhiKind::Dicom => "dicom",
            PhiKind::Location => "location",
        }
    }

    pub fn parse(s: &str) -> Option<PhiKind> {
        PhiKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// `detect.phi:` limits and what a patient location is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhiConfig {
    /// Bytes of one payload examined.
    pub max_scan_bytes: usize,
    /// Evidence items kept per report.
    pub max_evidence: usize,
    /// Significant decimal places of a degree both coordinates of a
    /// position need to be a person's location (3: about 111 m).
    pub location_min_decimals: u8,
    /// The hospital's own grounds: positions within one of these are fixed
    /// devices reporting where they are installed, not patients.
    pub site_locations: Vec<location::SiteLocation>,
}

impl Default for PhiConfig {
    fn default() -> Self {
        PhiConfig {
            max_scan_bytes: 65536,
            max_evidence: 8,
            location_min_decimals: 3,
            site_locations: Vec::new(),
        }
    }
}

/// One piece of evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub kind: PhiKind,
    /// Where: `PID-5`, `birthDate`, `PatientName (0010,0010)`, `nir`.
    pub field: String,
    /// The value as found (capped), as text by the output's non-UTF-8 rule
    /// ([`crate::output::mask::display_bytes`]); logged through the one
    /// masking policy ([`crate::output::mask::LogOptions::evidence`]).
    pub value: String,
}

/// Longest evidence value kept, in characters.
pub const MAX_VALUE_CHARS: usize = 64;

/// What was found in one payload or record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhiReport {
    /// Kinds found, sorted, each once.
    pub kinds: Vec<PhiKind>,
    pub evidence: Vec<Evidence>,
}

impl PhiReport {
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// Any of `kinds` was found (any kind at all when `kinds` is empty).
    pub fn has_any(&self, kinds: &[PhiKind]) -> bool {
        if kinds.is_empty() {
            !self.kinds.is_empty()
        } else {
            kinds.iter().any(|k| self.kinds.contains(k))
        }
    }
}

/// Gathers kinds and evidence while the detectors run, then picks what the
/// report keeps.
///
/// Evidence is deduplicated by kind and value (the first finder names the
/// field, so detectors that know the structure run before the text scan).
/// Each kind keeps at most `max_evidence` items; [`Collector::finish`]
/// takes the first item of every kind found, then the others in the order
/// found, up to `max_evidence`, so one verbose detector cannot hide the
/// others' evidence.
#[derive(Debug)]
pub struct Collector {
    max: usize,
    /// Bit per kind (`PhiKind as u8`).
    kinds: u16,
    items: Vec<Evidence>,
}

impl Collector {
    pub fn new(cfg: &PhiConfig) -> Self {
        Collector {
            max: cfg.max_evidence,
            kinds: 0,
            items: Vec::new(),
        }
    }

    /// Records that `kind` was found, with its evidence.
    pub fn add(&mut self, kind: PhiKind, field: &str, value: &str) {
        self.kinds |= 1 << (kind as u8);
        let mut per_kind = 0usize;
        for e in &self.items {
            if e.kind == kind {
                per_kind += 1;
                if capped_eq(&e.value, value) {
                    return;
                }
            }
        }
        if per_kind >= self.max {
            return;
        }
        // Copied: evidence outlives the payload; capped at MAX_VALUE_CHARS.
        let value = capped(value).to_owned();
        let field = capped(field).to_owned();
        if self.items.is_empty() {
            // Room for a report's worth at once (at most 16), not grown
            // from four.
            self.items.reserve(self.max.clamp(1, 16));
        }
        self.items.push(Evidence { kind, field, value });
    }

    /// Records that `kind` was found, its evidence being recorded under
    /// another kind (a PID-11 address is HL7 PHI and location evidence).
    pub fn mark(&mut self, kind: PhiKind) {
        self.kinds |= 1 << (kind as u8);
    }

    /// Has `kind` been found?
    pub fn has(&self, kind: PhiKind) -> bool {
        self.kinds & (1 << (kind as u8)) != 0
    }

    /// The report: kinds in [`PhiKind`] order, evidence chosen as described
    /// on the type.
    pub fn finish(self) -> PhiReport {
        let kinds: Vec<PhiKind> = PhiKind::ALL
            .into_iter()
            .filter(|k| self.kinds & (1 << (*k as u8)) != 0)
            .collect();
        let mut items = self.items;
        if items.len() > self.max {
            // Which items the report keeps: the first of every kind
            // found, then the others in the order found, up to `max`.
            // Items are unique (deduplicated by kind and value), so the
            // kept ones stay in discovery order. (At most `max` items,
            // the common case, are all kept: nothing to choose.)
            let mut keep = vec![false; items.len()];
            let mut kept = 0usize;
            for k in &kinds {
                if kept >= self.max {
                    break;
                }
                if let Some(i) = items.iter().position(|e| e.kind == *k) {
                    if let Some(f) = keep.get_mut(i) {
                        *f = true;
                        kept += 1;
                    }
                }
            }
            for f in &mut keep {
                if kept >= self.max {
                    break;
                }
                if !*f {
                    *f = true;
                    kept += 1;
                }
            }
            let mut flags = keep.into_iter();
            items.retain(|_| flags.next().unwrap_or(false));
        }
        PhiReport {
            kinds,
            evidence: items,
        }
    }
}

/// `stored` (already capped) equals `value` once capped.
fn capped_eq(stored: &str, value: &str) -> bool {
    stored == capped(value)
}

/// The first [`MAX_VALUE_CHARS`] characters of `s` (all of it when it has
/// no more bytes than that: one length test, no character walk, for the
/// short values evidence almost always is).
fn capped(s: &str) -> &str {
    if s.len() <= MAX_VALUE_CHARS {
        return s;
    }
    let end = s
        .char_indices()
        .nth(MAX_VALUE_CHARS)
        .map_or(s.len(), |(i, _)| i);
    s.get(..end).unwrap_or(s)
}

/// Scans raw bytes (an MQTT payload, a TCP segment): HL7 v2 messages, FHIR,
/// identity-keyed JSON and positions when the bytes are a JSON document,
/// national identifiers and NMEA positions anywhere, on at most
/// `max_scan_bytes`.
pub fn scan_payload(data: &[u8], cfg: &PhiConfig) -> PhiReport {
    let mut col = Collector::new(cfg);
    scan_into(data, cfg, &mut col);
    col.finish()
}

/// Tape nodes (16 bytes each) a thread keeps between payloads; a larger
/// document's tape is freed after its scan.
pub const TAPE_KEPT: usize = 4096;

thread_local! {
    /// The JSON tape and the walks' member lists, reused from payload to
    /// payload.
    static SCRATCH: RefCell<(Vec<tape::Node>, Vec<u32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

fn scan_into(data: &[u8], cfg: &PhiConfig, col: &mut Collector) {
    let data = data.get(..cfg.max_scan_bytes).unwrap_or(data);
    if data.is_empty() {
        return;
    }
    hl7::scan(data, col);
    let first = data.iter().find(|b| !b.is_ascii_whitespace());
    if matches!(first, Some(b'{' | b'[')) {
        // A payload cut by max_scan_bytes does not parse; the text scan
        // below still sees it.
        SCRATCH.with_borrow_mut(|(nodes, members)| {
            if let Some(doc) = tape::parse(data, nodes) {
                json::scan(doc.root(), cfg, col, members);
            }
            if nodes.capacity() > TAPE_KEPT {
                *nodes = Vec::new();
                *members = Vec::new();
            }
        });
    }
    ids::scan_text(data, None, col);
    location::scan_nmea(data, cfg, col);
}

/// Scans the PUBLISH payloads and the CONNECT will message of an MQTT
/// transaction through [`scan_payload`]'s detectors, and PUBLISH topics
/// for national identifiers.
pub fn scan_mqtt(rec: &mqtt::Record, cfg: &PhiConfig) -> PhiReport {
    let mut col = Collector::new(cfg);
    for m in &rec.messages {
        match &m.body {
            mqtt::Body::Publish(p) => {
                scan_into(&p.payload, cfg, &mut col);
                let topic = p.effective_topic().as_bytes();
                let topic = topic.get(..cfg.max_scan_bytes).unwrap_or(topic);
                ids::scan_text(topic, Some("topic"), &mut col);
            }
            mqtt::Body::Connect(c) => {
                if let Some(w) = &c.will {
                    scan_into(&w.message, cfg, &mut col);
                }
            }
            _ => {}
        }
    }
    col.finish()
}

/// Scans the data sets of a DICOM exchange (request, final response,
/// pending responses); an association record has none and yields an empty
/// report.
pub fn scan_dicom(rec: &dicom_app::Record, cfg: &PhiConfig) -> PhiReport {
    let mut col = Collector::new(cfg);
    dicom::scan(rec, &mut col);
    col.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max_evidence: usize) -> PhiConfig {
        PhiConfig {
            max_evidence,
            ..PhiConfig::default()
        }
    }

    #[test]
    fn kind_names_round_trip() {
        for k in PhiKind::ALL {
            assert_eq!(PhiKind::parse(k.name()), Some(k));
        }
        assert_eq!(PhiKind::parse("NIR"), None);
    }

    #[test]
    fn config_rejects_unknown_fields_and_defaults_missing_ones() {
        let c: PhiConfig = serde_norway::from_str("max_evidence: 3").unwrap();
        assert_eq!(c.max_evidence, 3);
        assert_eq!(c.max_scan_bytes, 65536);
        assert!(serde_norway::from_str::<PhiConfig>("max_evidenc: 3").is_err());
        let c: PhiConfig = serde_norway::from_str(
            "location_min_decimals: 4\nsite_locations:\n  - {lat: 48.84832, lon: 2.3959, radius_m: 200}\n",
        )
        .unwrap();
        assert_eq!(c.location_min_decimals, 4);
        assert_eq!(
            c.site_locations,
            vec![location::SiteLocation::new(48.84832, 2.3959, 200.0).unwrap()]
        );
        let bad = "site_locations:\n  - {lat: 148.8, lon: 2.3, radius_m: 200}\n";
        let e = serde_norway::from_str::<PhiConfig>(bad).unwrap_err();
        assert!(e.to_string().contains("latitude"), "{e}");
    }

    /// The report's evidence as first written: a flag per item, the first
    /// item of every kind found flagged, then the others in order, up to
    /// `max`.
    fn chosen_by_flags(items: &[Evidence], kinds: &[PhiKind], max: usize) -> Vec<Evidence> {
        let mut keep = vec![false; items.len()];
        let mut kept = 0;
        for k in kinds {
            if kept >= max {
                break;
            }
            if let Some(i) = items.iter().position(|e| e.kind == *k) {
                keep[i] = true;
                kept += 1;
            }
        }
        for f in &mut keep {
            if kept >= max {
                break;
            }
            if !*f {
                *f = true;
                kept += 1;
            }
        }
        items
            .iter()
            .zip(keep)
            .filter(|(_, k)| *k)
            .map(|(e, _)| e.clone())
            .collect()
    }

    proptest::proptest! {
        /// Whatever is found and however few items a report keeps, the
        /// report keeps what the per-item flags chose.
        #[test]
        fn finish_keeps_what_the_flags_chose(
            adds in proptest::collection::vec((0usize..8, 0u8..6), 0..40),
            max in 0usize..12,
        ) {
            let mut c = Collector::new(&cfg(max));
            for (k, v) in &adds {
                c.add(PhiKind::ALL[*k], "f", &format!("v{v}"));
            }
            let items = c.items.clone();
            let r = c.finish();
            let want = chosen_by_flags(&items, &r.kinds, max);
            proptest::prop_assert_eq!(r.evidence, want);
        }
    }

    #[test]
    fn collector_caps_values_dedups_and_keeps_one_per_kind() {
        let mut c = Collector::new(&cfg(2));
        let long = "x".repeat(200);
        c.add(PhiKind::Hl7, "PID-3", &long);
        c.add(PhiKind::Hl7, "PID-3", &long);
        c.add(PhiKind::Hl7, "PID-5", "DOE^JOHN");
        c.add(PhiKind::Hl7, "PID-7", "19000102");
        c.add(PhiKind::Nir, "nir", "100017511299882");
        let r = c.finish();
        assert_eq!(r.kinds, vec![PhiKind::Hl7, PhiKind::Nir]);
        assert_eq!(r.evidence.len(), 2);
        assert_eq!(r.evidence[0].value.chars().count(), MAX_VALUE_CHARS);
        assert_eq!(r.evidence[1].kind, PhiKind::Nir);
    }

    #[test]
    fn zero_evidence_still_reports_kinds() {
        let r = scan_payload(b"nir 200017511299931", &cfg(0));
        assert_eq!(r.kinds, vec![PhiKind::Nir]);
        assert!(r.evidence.is_empty());
        assert!(r.has_any(&[PhiKind::Nir, PhiKind::Bsn]));
        assert!(!r.has_any(&[PhiKind::Bsn]));
        assert!(r.has_any(&[]));
    }

    #[test]
    fn only_max_scan_bytes_are_examined() {
        let mut data = vec![b' '; 100];
        data.extend_from_slice(b"200017511299931");
        let small = PhiConfig {
            max_scan_bytes: 100,
            ..PhiConfig::default()
        };
        assert!(scan_payload(&data, &small).is_empty());
        assert_eq!(scan_payload(&data, &cfg(8)).kinds, vec![PhiKind::Nir]);
    }

    #[test]
    fn json_payload_telemetry_is_clean_and_patient_json_is_not() {
        let t = br#"{"hr":69,"spo2":95,"rr":19,"temp":37.2,"ts":1735689600000,"device":"MON-0042","fw":"2.4.1","batt":100}"#;
        assert!(scan_payload(t, &cfg(8)).is_empty());
        let p = br#"{"device":"MON-W3-BED12","patient":{"name":"TEST^JANE","mrn":"MRN-TEST-0001","birthDate":"1900-01-01","sex":"F","nir":"200017511299931"}}"#;
        let r = scan_payload(p, &cfg(8));
        assert_eq!(r.kinds, vec![PhiKind::Json, PhiKind::Nir]);
        // The NIR was found by the JSON detector first: named by its key.
        let nir = r.evidence.iter().find(|e| e.kind == PhiKind::Nir).unwrap();
        assert_eq!(nir.field, "nir");
    }

    #[test]
    fn payload_positions_in_json_and_nmea_are_found_and_the_site_is_not() {
        // Hand-built: a wearable's vitals with its GPS fix, and an NMEA
        // fix (checksum from pynmea2) after a void one, not JSON.
        let w = br#"{"hr":88,"spo2":96,"gps":{"lat":48.84512,"lon":2.35601}}"#;
        let r = scan_payload(w, &cfg(8));
        assert_eq!(r.kinds, vec![PhiKind::Location]);
        assert_eq!(r.evidence[0].field, "gps");
        let n = b"$GPRMC,101500.00,V,,,,,,,010125,,,N*7F\r\n$GPRMC,101500.00,A,4850.7072,N,00221.3606,E,0.5,90.0,010125,,,A*69\r\n";
        assert_eq!(scan_payload(n, &cfg(8)).kinds, vec![PhiKind::Location]);
        let at_site = PhiConfig {
            site_locations: vec![location::SiteLocation::new(48.8451, 2.356, 100.0).unwrap()],
            ..cfg(8)
        };
        assert!(scan_payload(w, &at_site).is_empty());
        assert!(scan_payload(n, &at_site).is_empty());
    }
}
