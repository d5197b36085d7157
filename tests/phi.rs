//! PHI detectors on the committed captures and on random input.
//!
//! Each capture goes through the real capture → reassembly path
//! (`common/parser_input.rs`), then the MQTT or DICOM parser, and the
//! records are scanned as the rule engine scans them. What is expected of
//! each capture comes from `pcaps/README.md` (what the generator put in,
//! the fake patients' identifiers), not from our own output:
//! - positives: `mqtt_v311_anon_phi` (JSON with name/MRN/birth date and
//!   NIR), `mqtt_v31_default_creds` (HL7 with NIRs in PID-3 and street
//!   addresses in PID-11),
//!   `mqtt_v5_props` (FHIR Patients with NIRs and a BSN; its FHIR
//!   Observation alone is clean), `mqtt_nonstd_port` (patient JSON),
//!   `cms8000_exfil` (HL7 over MLLP on raw TCP, no national id),
//!   `dicom_store_phi`, `dicom_store_large` and `dicom_find` (DICOM),
//!   `mqtt_wearable_gps` (a wearable's and a tracker's positions along
//!   paths listed in `pcaps/lib/mqtt_clients.py`, before and after their
//!   first fix, the tracker's last fixes on the hospital's grounds);
//! - negatives: every capture whose README entry says "PHI strings: none"
//!   yields nothing, from its records and from its raw TCP payloads, and
//!   `mqtt_site_hub` (a fixed hub's installed position, coarse and
//!   vital-sign numbers) yields nothing with the modelled hospital's
//!   configuration (`pcaps/demo.yaml`, its site) — and its position
//!   without it, so the site is what keeps it clean.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/parser_input.rs"]
mod parser_input;

use std::collections::BTreeSet;
use std::path::Path;

use common::repo;
use parser_input::{Call, FlowInput};
use proptest::prelude::*;
use wardwatch::app::{dicom, mqtt, AppProto, AppRecord, StreamContext};
use wardwatch::detect::phi::{self, PhiConfig, PhiKind, PhiReport};
use wardwatch::flow::Direction;
use wardwatch::output::mask::LogOptions;

use PhiKind::*;

fn cfg() -> PhiConfig {
    PhiConfig::default()
}

fn capture(name: &str) -> std::path::PathBuf {
    repo().join("pcaps").join(name)
}

/// Every flow of a capture, whatever its protocol.
fn flows(name: &str) -> Vec<FlowInput> {
    parser_input::parser_input(&capture(name), |_, _| true)
}

/// The app-layer records of a capture: each MQTT or DICOM flow through a
/// fresh parser.
fn records(name: &str) -> Vec<AppRecord> {
    let mut out = Vec::new();
    let fl = parser_input::parser_input(&capture(name), |p, _| {
        matches!(p, AppProto::Mqtt | AppProto::Dicom)
    });
    assert!(!fl.is_empty(), "{name}: no MQTT/DICOM flow");
    for flow in fl {
        // The protocol is not recorded per flow: DICOM starts with an
        // A-ASSOCIATE-RQ PDU (type 0x01, reserved 0x00), MQTT with CONNECT
        // (0x10) or, mid-stream, another control packet.
        let first = flow.calls.iter().find_map(|c| match c {
            Call::Data(_, b) if !b.is_empty() => Some(b.clone()),
            _ => None,
        });
        let is_dicom = first.is_some_and(|b| b.len() > 1 && b[0] == 0x01 && b[1] == 0x00);
        let mut p = if is_dicom {
            dicom::new_parser(&dicom::DicomConfig::default())
        } else {
            mqtt::new_parser(&mqtt::MqttConfig::default())
        }
        .unwrap();
        for call in &flow.calls {
            let mut ctx = StreamContext {
                ts: Default::default(),
                records: &mut out,
            };
            match call {
                Call::Data(d, b) => p.data(&mut ctx, *d, b),
                Call::Gap(d, n) => p.gap(&mut ctx, *d, *n),
            }
        }
        let mut ctx = StreamContext {
            ts: Default::default(),
            records: &mut out,
        };
        p.end(&mut ctx);
    }
    out
}

fn scan(r: &AppRecord) -> PhiReport {
    match r {
        AppRecord::Mqtt(m) => phi::scan_mqtt(m, &cfg()),
        AppRecord::Dicom(d) => phi::scan_dicom(d, &cfg()),
        // The whole reassembled message (src/app/hl7: `Message::text`).
        AppRecord::Hl7(h) => phi::scan_payload(&h.message.text, &cfg()),
        AppRecord::Anomaly(_)
        | AppRecord::StreamAnomaly(_)
        | AppRecord::Asset(_)
        | AppRecord::Tls(_) => PhiReport::default(),
    }
}

fn union(reports: &[PhiReport]) -> Vec<PhiKind> {
    let s: BTreeSet<PhiKind> = reports.iter().flat_map(|r| r.kinds.clone()).collect();
    s.into_iter().collect()
}

fn values(reports: &[PhiReport], kind: PhiKind) -> BTreeSet<String> {
    reports
        .iter()
        .flat_map(|r| r.evidence.iter())
        .filter(|e| e.kind == kind)
        .map(|e| e.value.clone())
        .collect()
}

fn publishes(recs: &[AppRecord]) -> Vec<&mqtt::Publish> {
    recs.iter()
        .filter_map(|r| match r {
            AppRecord::Mqtt(m) => Some(m),
            _ => None,
        })
        .flat_map(|m| m.messages.iter())
        .filter_map(|m| match &m.body {
            mqtt::Body::Publish(p) => Some(p),
            _ => None,
        })
        .collect()
}

/// Every report of a capture is well-formed: kinds sorted and unique,
/// evidence within the cap, values capped at 64 characters, evidence only
/// of reported kinds.
fn check_shape(reports: &[PhiReport]) {
    for r in reports {
        assert!(r.kinds.windows(2).all(|w| w[0] < w[1]), "{:?}", r.kinds);
        assert!(r.evidence.len() <= cfg().max_evidence);
        for e in &r.evidence {
            assert!(r.kinds.contains(&e.kind));
            assert!(e.value.chars().count() <= 64);
            assert!(
                e.value.chars().count() < 3
                    || !LogOptions::default().evidence(e).contains(&e.value)
            );
        }
    }
}

#[test]
fn mqtt_v311_anon_phi_patient_json_with_nir() {
    let recs = records("mqtt_v311_anon_phi.pcap");
    let reports: Vec<_> = recs.iter().map(scan).collect();
    check_shape(&reports);
    assert_eq!(union(&reports), vec![Json, Nir]);
    assert_eq!(
        values(&reports, Nir),
        BTreeSet::from(["200017511299931".to_string()])
    );
    // Every PUBLISH to the patient topic carries the patient.
    let pubs = publishes(&recs);
    let patient: Vec<_> = pubs
        .iter()
        .filter(|p| p.effective_topic() == "ward3/bed12/patient")
        .collect();
    assert!(patient.len() >= 8, "{} patient publishes", patient.len());
    for p in patient {
        let r = phi::scan_payload(&p.payload, &cfg());
        assert_eq!(r.kinds, vec![Json, Nir]);
        let fields: BTreeSet<_> = r.evidence.iter().map(|e| e.field.as_str()).collect();
        for f in ["name", "mrn", "birthDate", "nir"] {
            assert!(fields.contains(f), "{f} in {fields:?}");
        }
    }
}

#[test]
fn mqtt_v31_default_creds_hl7_pid_with_nirs() {
    let recs = records("mqtt_v31_default_creds.pcap");
    let reports: Vec<_> = recs.iter().map(scan).collect();
    check_shape(&reports);
    assert_eq!(union(&reports), vec![Hl7, Nir, Location]);
    assert_eq!(
        values(&reports, Nir),
        BTreeSet::from(["100017511299882".to_string(), "200017511299931".to_string()])
    );
    let pubs = publishes(&recs);
    assert_eq!(pubs.len(), 3);
    for p in pubs {
        let r = phi::scan_payload(
            &p.payload,
            &PhiConfig {
                max_evidence: 16,
                ..cfg()
            },
        );
        let fields: BTreeSet<_> = r
            .evidence
            .iter()
            .filter(|e| e.kind == Hl7)
            .map(|e| e.field.as_str())
            .collect();
        assert_eq!(
            fields,
            BTreeSet::from(["PID-3", "PID-5", "PID-7", "PID-13"])
        );
        // PID-11, the patients' street addresses (fakeids.py), is location
        // evidence, listed once.
        let addr: Vec<_> = r.evidence.iter().filter(|e| e.field == "PID-11").collect();
        assert_eq!(addr.len(), 1);
        assert_eq!(addr[0].kind, Location);
        assert!(
            [
                "1 RUE DE L'EXEMPLE^^PARIS^^75012^FR",
                "2 AVENUE DU TEST^^LYON^^69001^FR"
            ]
            .contains(&addr[0].value.as_str()),
            "{:?}",
            addr[0]
        );
    }
}

#[test]
fn mqtt_v5_props_fhir_patients_but_not_the_observation() {
    let recs = records("mqtt_v5_props.pcap");
    let reports: Vec<_> = recs.iter().map(scan).collect();
    check_shape(&reports);
    assert_eq!(union(&reports), vec![Fhir, Nir, Bsn]);
    assert_eq!(
        values(&reports, Bsn),
        BTreeSet::from(["111222333".to_string()])
    );
    let pubs = publishes(&recs);
    let obs: Vec<_> = pubs
        .iter()
        .filter(|p| p.payload.windows(11).any(|w| w == b"Observation"))
        .collect();
    assert!(!obs.is_empty());
    for p in obs {
        assert!(phi::scan_payload(&p.payload, &cfg()).is_empty());
    }
    let patients = pubs
        .iter()
        .filter(|p| p.payload.windows(7).any(|w| w == b"Patient"))
        .filter(|p| phi::scan_payload(&p.payload, &cfg()).kinds.contains(&Fhir))
        .count();
    assert!(patients >= 2, "{patients} FHIR Patient publishes");
}

#[test]
fn mqtt_nonstd_port_patient_json() {
    let reports: Vec<_> = records("mqtt_nonstd_port.pcap").iter().map(scan).collect();
    assert_eq!(union(&reports), vec![Json, Nir]);
}

#[test]
fn mqtt_telemetry_nophi_600_payloads_are_clean() {
    let recs = records("mqtt_telemetry_nophi.pcap");
    let pubs = publishes(&recs);
    assert_eq!(pubs.len(), 600);
    for p in &pubs {
        let r = phi::scan_payload(&p.payload, &cfg());
        assert!(
            r.is_empty(),
            "{:?}: {r:?}",
            String::from_utf8_lossy(&p.payload)
        );
    }
    assert!(recs.iter().all(|r| scan(r).is_empty()));
}

#[test]
fn mqtt_large_split_waveform_is_clean() {
    let recs = records("mqtt_large_split.pcap");
    assert!(publishes(&recs).len() >= 800);
    for r in &recs {
        assert!(scan(r).is_empty(), "{:?}", scan(r));
    }
}

#[test]
fn cms8000_exfil_hl7_over_mllp_on_raw_tcp() {
    let fl: Vec<_> = flows("cms8000_exfil.pcap")
        .into_iter()
        .filter(|f| f.ends.server.port == 515)
        .collect();
    assert_eq!(fl.len(), 1);
    let mut messages = 0;
    for (dir, bytes) in fl[0].data() {
        let r = phi::scan_payload(bytes, &cfg());
        check_shape(std::slice::from_ref(&r));
        match dir {
            // ACKs (MSH + MSA) carry no PID.
            Direction::ToClient => assert!(r.is_empty(), "{r:?}"),
            Direction::ToServer => {
                if bytes.windows(4).any(|w| w == b"PID|") {
                    assert_eq!(r.kinds, vec![Hl7]);
                    messages += 1;
                }
            }
        }
    }
    assert_eq!(messages, 3);
    // The whole stream at once: the three messages in MLLP frames.
    let all = phi::scan_payload(&fl[0].stream(Direction::ToServer), &cfg());
    assert_eq!(all.kinds, vec![Hl7]);
    assert!(all
        .evidence
        .iter()
        .any(|e| e.field == "PID-5" && e.value == "TEST^JANE"));
}

fn dicom_reports(name: &str) -> (Vec<AppRecord>, Vec<PhiReport>) {
    let recs = records(name);
    let reports: Vec<_> = recs.iter().map(scan).collect();
    check_shape(&reports);
    (recs, reports)
}

#[test]
fn dicom_store_phi_patient_module_and_nirs() {
    let (_, reports) = dicom_reports("dicom_store_phi.pcap");
    assert_eq!(union(&reports), vec![Nir, Dicom]);
    assert_eq!(
        values(&reports, Nir),
        BTreeSet::from(["100017511299882".to_string(), "200017511299931".to_string()])
    );
    let names = values(&reports, Dicom);
    assert!(
        names.contains("TEST^JANE") && names.contains("DOE^JOHN"),
        "{names:?}"
    );
}

#[test]
fn dicom_store_large_patient_module() {
    let (_, reports) = dicom_reports("dicom_store_large.pcap");
    assert_eq!(union(&reports), vec![Nir, Dicom]);
}

#[test]
fn dicom_find_responses_are_phi_and_the_wildcard_query_is_not() {
    let (recs, reports) = dicom_reports("dicom_find.pcap");
    assert_eq!(union(&reports), vec![Dicom]);
    let names = values(&reports, Dicom);
    for n in ["TEST^JANE", "DOE^JOHN", "TEST^ALEX"] {
        assert!(names.contains(n), "{n} in {names:?}");
    }
    // The requests alone: the patient-level query has only universal keys
    // (PatientName=*, the rest empty); the study-level one names a
    // PatientID.
    let mut request_only = Vec::new();
    for r in &recs {
        if let AppRecord::Dicom(dicom::Record::Dimse(ex)) = r {
            let mut ex = ex.as_ref().clone();
            if ex
                .request
                .as_ref()
                .and_then(|m| m.data_set.as_ref())
                .is_none()
            {
                continue;
            }
            ex.response = None;
            ex.pending.clear();
            request_only.push(phi::scan_dicom(&dicom::Record::Dimse(Box::new(ex)), &cfg()));
        }
    }
    assert_eq!(request_only.len(), 2);
    assert!(request_only[0].is_empty(), "{:?}", request_only[0]);
    assert_eq!(request_only[1].kinds, vec![Dicom]);
    assert_eq!(request_only[1].evidence[0].value, "MRN-TEST-0001");
}

/// Captures with no PHI in them (README: "PHI strings: none").
const NEGATIVES: [&str; 10] = [
    "mqtt_refused.pcap",
    "mqtt_telemetry_nophi.pcap",
    "mqtt_tls.pcap",
    "mqtt_large_split.pcap",
    "mqtt_foreign_broker.pcap",
    "mqtt_incountry.pcap",
    "dicom_echo.pcap",
    "dicom_userid.pcap",
    "dicom_rejected.pcap",
    "dicom_nonstd_port.pcap",
];

#[test]
fn negative_captures_yield_nothing_from_records_or_raw_payloads() {
    for name in NEGATIVES {
        if name != "mqtt_tls.pcap" {
            for r in records(name) {
                assert!(scan(&r).is_empty(), "{name}: {:?}", scan(&r));
            }
        }
        for f in flows(name) {
            for c in &f.calls {
                if let Call::Data(_, b) = c {
                    let r = phi::scan_payload(b, &cfg());
                    assert!(r.is_empty(), "{name}: {r:?}");
                }
            }
        }
    }
}

/// The modelled hospital's PHI settings (`pcaps/demo.yaml`: its grounds
/// as the one site).
fn site_cfg() -> PhiConfig {
    let c = wardwatch::config::Config::load(&repo().join("pcaps/demo.yaml")).unwrap();
    assert_eq!(c.detect.phi.site_locations.len(), 1);
    c.detect.phi
}

/// The paths of `pcaps/lib/mqtt_clients.py` (WEARABLE_PATH, TRACKER_PATH),
/// copied by hand: the positions the devices were given.
const WEARABLE_PATH: [(f64, f64); 20] = [
    (48.84512, 2.35601),
    (48.84504, 2.35626),
    (48.84496, 2.35651),
    (48.84488, 2.35676),
    (48.84480, 2.35701),
    (48.84472, 2.35726),
    (48.84464, 2.35751),
    (48.84456, 2.35776),
    (48.84448, 2.35801),
    (48.84440, 2.35826),
    (48.84433, 2.35852),
    (48.84425, 2.35877),
    (48.84417, 2.35902),
    (48.84409, 2.35927),
    (48.84401, 2.35952),
    (48.84393, 2.35977),
    (48.84385, 2.36002),
    (48.84377, 2.36027),
    (48.84369, 2.36052),
    (48.84361, 2.36077),
];

/// The tracker's fixes outside the 300 m site (1510 to 398 m from its
/// centre); its last three (224, 99 and 18 m) are inside.
const TRACKER_OUTSIDE: [(f64, f64); 5] = [
    (48.85027, 2.37285),
    (48.84853, 2.37612),
    (48.84684, 2.37915),
    (48.84521, 2.38163),
    (48.84362, 2.38420),
];
const TRACKER_INSIDE: [(f64, f64); 3] = [
    (48.84260, 2.38600),
    (48.84180, 2.38720),
    (48.84130, 2.38800),
];

/// The one position of a report (`lat,lon`).
fn position(r: &PhiReport) -> (f64, f64) {
    assert_eq!(r.kinds, vec![Location], "{r:?}");
    let e = &r.evidence[0];
    let (a, b) = e.value.split_once(',').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

fn near(a: (f64, f64), b: (f64, f64)) -> bool {
    // NMEA carries 1e-4 minute: 2e-6 degree.
    (a.0 - b.0).abs() < 5e-6 && (a.1 - b.1).abs() < 5e-6
}

#[test]
fn mqtt_wearable_gps_every_fix_is_a_location_and_none_before_it() {
    let recs = records("mqtt_wearable_gps.pcap");
    let site = site_cfg();
    let pubs = publishes(&recs);
    // pcaps/README.md: 21 wearable and 10 tracker messages, each also
    // forwarded to the central station.
    assert_eq!(pubs.len(), 62);
    let (mut wearable, mut tracker) = (Vec::new(), Vec::new());
    for p in &pubs {
        match p.effective_topic() {
            "rpm/wear-0007/vitals" => wearable.push(phi::scan_payload(&p.payload, &site)),
            "rpm/trk-0031/nmea" => tracker.push((
                phi::scan_payload(&p.payload, &site),
                phi::scan_payload(&p.payload, &cfg()),
            )),
            t => panic!("topic {t}"),
        }
    }
    assert_eq!((wearable.len(), tracker.len()), (42, 20));
    check_shape(&wearable);
    // Each direction in order: the first message (before the first fix,
    // 0.0/0.0) is clean, then the path.
    for run in [&wearable[..21], &wearable[21..]] {
        let (first, fixes) = run.split_first().unwrap();
        let fixes: Vec<_> = fixes.iter().map(position).collect();
        assert!(first.is_empty(), "{first:?}");
        assert_eq!(fixes.len(), WEARABLE_PATH.len());
        for (got, want) in fixes.iter().zip(WEARABLE_PATH) {
            assert!(near(*got, want), "{got:?} {want:?}");
        }
        assert_eq!(wearable[1].evidence[0].field, "gps");
        assert_eq!(
            LogOptions::default().evidence(&wearable[1].evidence[0]),
            "~48.8,2.4"
        );
    }
    for run in [&tracker[..10], &tracker[10..]] {
        // Two epochs without a fix, five fixes outside the site, three on
        // the grounds: found only without the site configured.
        for (with_site, without) in &run[..2] {
            assert!(with_site.is_empty() && without.is_empty());
        }
        for ((with_site, _), want) in run[2..7].iter().zip(TRACKER_OUTSIDE) {
            assert!(near(position(with_site), want), "{with_site:?}");
            assert_eq!(with_site.evidence[0].field, "$GPRMC");
        }
        for ((with_site, without), want) in run[7..].iter().zip(TRACKER_INSIDE) {
            assert!(with_site.is_empty(), "{with_site:?}");
            assert!(near(position(without), want), "{without:?}");
        }
    }
}

#[test]
fn mqtt_site_hub_installed_position_is_clean_only_at_the_site() {
    let recs = records("mqtt_site_hub.pcap");
    let pubs = publishes(&recs);
    assert_eq!(pubs.len(), 42);
    let site = site_cfg();
    let mut flagged_without_site = 0;
    for p in &pubs {
        let r = phi::scan_payload(&p.payload, &site);
        assert!(r.is_empty(), "{r:?}");
        let bare = phi::scan_payload(&p.payload, &cfg());
        if p.effective_topic() == "ward3/hub-w3-12/status" {
            // GeoJSON point and its receiver's GGA: one place, once.
            assert!(near(position(&bare), (48.84133, 2.38795)), "{bare:?}");
            flagged_without_site += 1;
        } else {
            // Vitals: blood-pressure pairs, temperatures, "2.4.1".
            assert!(bare.is_empty(), "{bare:?}");
        }
    }
    assert_eq!(flagged_without_site, 2);
    for r in &recs {
        if let AppRecord::Mqtt(m) = r {
            assert!(phi::scan_mqtt(m, &site).is_empty());
        }
    }
}

#[test]
fn dicom_association_records_are_clean() {
    for name in ["dicom_store_phi.pcap", "dicom_userid.pcap"] {
        for r in records(name) {
            if let AppRecord::Dicom(d @ dicom::Record::Association(_)) = &r {
                assert!(phi::scan_dicom(d, &cfg()).is_empty());
            }
        }
    }
}

#[test]
fn bsn_alone_needs_context_and_random_nine_digit_numbers_stay_clean() {
    // Hand-built payloads.
    assert!(phi::scan_payload(b"{\"count\":111222333}", &cfg()).is_empty());
    assert_eq!(
        phi::scan_payload(b"{\"bsn\":\"111222333\"}", &cfg()).kinds,
        vec![Json, Bsn]
    );
    // 1000 consecutive 9-digit numbers: about 1 in 11 pass the eleven
    // proof, none counts without a label.
    let mut text = String::new();
    for n in 123_456_000u32..123_457_000 {
        text.push_str(&format!("{{\"v\":{n}}}\n"));
    }
    assert!(phi::scan_payload(text.as_bytes(), &cfg()).is_empty());
}

#[test]
fn capture_readme_describes_the_fixtures_used_here() {
    let readme = std::fs::read_to_string(repo().join("pcaps/README.md")).unwrap();
    for s in ["200017511299931", "100017511299882", "111222333"] {
        assert!(readme.contains(s), "{s}");
    }
    assert!(Path::new(&capture("cms8000_exfil.pcap")).exists());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic_and_respect_the_evidence_cap(
        data in proptest::collection::vec(any::<u8>(), 0..2048),
        max_evidence in 0usize..4,
        max_scan_bytes in 0usize..4096,
    ) {
        let c = PhiConfig { max_scan_bytes, max_evidence, ..PhiConfig::default() };
        let r = phi::scan_payload(&data, &c);
        prop_assert!(r.evidence.len() <= max_evidence);
        prop_assert!(r.kinds.windows(2).all(|w| w[0] < w[1]));
    }

    /// Precision first, as a property: numbers under telemetry keys, and
    /// coordinates with at most two decimals under latitude/longitude
    /// keys, are never a location, whatever their values.
    #[test]
    fn unkeyed_or_coarse_numbers_are_never_a_location(
        members in proptest::collection::vec(
            (
                prop_oneof![
                    Just("hr"), Just("spo2"), Just("sys"), Just("dia"), Just("temp"),
                    Just("x"), Just("y"), Just("alt"), Just("speed"), Just("latency"),
                    Just("longueur"), Just("lateral"), Just("fw"), Just("ts"),
                ],
                -200.0f64..200.0,
                0usize..7,
            ),
            0..12,
        ),
        lat in -90.0f64..90.0,
        lon in -180.0f64..180.0,
        coarse in 0usize..3,
    ) {
        let mut doc = serde_json::Map::new();
        for (k, v, d) in members {
            doc.insert(k.into(), serde_json::from_str(&format!("{v:.d$}")).unwrap());
        }
        doc.insert("lat".into(), serde_json::from_str(&format!("{lat:.coarse$}")).unwrap());
        doc.insert("lon".into(), serde_json::from_str(&format!("{lon:.coarse$}")).unwrap());
        let text = serde_json::to_vec(&doc).unwrap();
        prop_assert!(phi::scan_payload(&text, &cfg()).is_empty(), "{}", String::from_utf8_lossy(&text));
    }

    /// And the other side: a pair with 3 to 6 decimals (the last not 0),
    /// in range, off the open sea around (0, 0) and outside any site, is
    /// always found, with its text as evidence and a one-decimal mask.
    #[test]
    fn precise_pairs_are_always_a_location(
        lat in -89.9f64..89.9,
        lon in -179.9f64..179.9,
        dlat in 3usize..7,
        dlon in 3usize..7,
        key in prop_oneof![Just(("lat", "lon")), Just(("latitude", "longitude")), Just(("Lat", "Lng")), Just(("gps_lat", "gps_long"))],
    ) {
        let t = |v: f64, d: usize| {
            let s = format!("{v:.d$}");
            // A last digit 0 would be one decimal fewer: make it 1.
            if s.ends_with('0') { format!("{}1", &s[..s.len() - 1]) } else { s }
        };
        let (a, b) = (t(lat, dlat), t(lon, dlon));
        let (la, lo): (f64, f64) = (a.parse().unwrap(), b.parse().unwrap());
        prop_assume!(la.abs() >= 4.0 || lo.abs() >= 4.0);
        prop_assume!(la != 0.0 && lo != 0.0);
        let text = format!(r#"{{"{}":{a},"{}":{b}}}"#, key.0, key.1);
        let r = phi::scan_payload(text.as_bytes(), &cfg());
        prop_assert_eq!(&r.kinds, &vec![Location], "{}", text);
        prop_assert_eq!(&r.evidence[0].value, &format!("{a},{b}"));
        prop_assert_eq!(
            LogOptions::default().evidence(&r.evidence[0]),
            format!("~{la:.1},{lo:.1}")
        );
        // With a site around it, nothing.
        let site = PhiConfig {
            site_locations: vec![phi::location::SiteLocation::new(la, lo, 10.0).unwrap()],
            ..cfg()
        };
        prop_assert!(phi::scan_payload(text.as_bytes(), &site).is_empty());
    }

    #[test]
    fn structured_noise_never_panics(
        body in proptest::collection::vec(
            prop_oneof![
                Just(b'|'), Just(b'^'), Just(b'~'), Just(b'&'), Just(b'\r'), Just(b'\n'),
                Just(b' '), Just(b'-'), Just(b'.'), Just(b'"'), Just(b':'), Just(b','),
                Just(b'{'), Just(b'}'), Just(b'['), Just(b']'), 0x0Bu8..=0x0B, 0x1Cu8..=0x1C,
                b'0'..=b'9', b'A'..=b'Z',
            ],
            0..1024,
        ),
        prefix in prop_oneof![
            Just(&b"MSH|^~\\&|"[..]), Just(&b"\x0bMSH|^~\\&|A\rPID|"[..]),
            Just(&b"{\"resourceType\":\"Patient\","[..]), Just(&b"{\"bsn\":"[..]), Just(&b""[..]),
        ],
    ) {
        let mut data = prefix.to_vec();
        data.extend_from_slice(&body);
        let c = PhiConfig { max_scan_bytes: 4096, max_evidence: 3, ..PhiConfig::default() };
        let r = phi::scan_payload(&data, &c);
        prop_assert!(r.evidence.len() <= 3);
        for e in &r.evidence {
            prop_assert!(e.value.chars().count() <= 64);
        }
    }
}
