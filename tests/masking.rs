//! One masking policy for every string wardwatch writes
//! (`src/output/mask.rs`), on real captures whose fake patients
//! `pcaps/README.md` names: TEST^JANE (MRN-TEST-0001) is sent by the CT of
//! `dicom_store_phi.pcap` and published as JSON by the monitor of
//! `mqtt_v311_anon_phi.pcap`; the MR of `dicom_store_phi.pcap` sends
//! DOE^JOHN.
//!
//! - One run over both captures: Jane's name and MRN mask the same way in
//!   the DICOM record, in the PHI evidence of the DICOM alert and in that
//!   of every MQTT alert; John's name masks differently; nothing is in
//!   clear.
//! - With `outputs.mask_key_file`, each mask is the mask of the value
//!   `pcaps/README.md` gives, under that key (computed here), whatever the
//!   run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;

use common::*;
use serde_json::Value;
use wardwatch::output::mask::{key_from_file, LogOptions};

/// The records of one run over both captures, with `config` if given.
fn run_both(config: Option<&str>) -> Vec<Value> {
    let dicom = repo().join("pcaps/dicom_store_phi.pcap");
    let mqtt = repo().join("pcaps/mqtt_v311_anon_phi.pcap");
    let mut cfg = tempfile::NamedTempFile::new().unwrap();
    cfg.write_all(config.unwrap_or("").as_bytes()).unwrap();
    let out = run(&[
        "-r",
        dicom.to_str().unwrap(),
        "-r",
        mqtt.to_str().unwrap(),
        "-c",
        cfg.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_lines(&out.stdout)
}

/// What one run logged of the two patients.
#[derive(Debug)]
struct Seen {
    /// `patient_name` and `patient_id` of the CT's and of the MR's C-STORE
    /// records.
    ct_record: (String, String),
    mr_record: (String, String),
    /// PatientName and PatientID evidence of the CT's PHI alert.
    ct_evidence: (String, String),
    /// `name` and `mrn` evidence of every MQTT PHI alert.
    mqtt_evidence: Vec<(String, String)>,
}

fn evidence(alert: &Value, field: &str) -> String {
    alert["phi"]["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["field"] == field)
        .unwrap_or_else(|| panic!("no {field} evidence in {alert}"))["value"]
        .as_str()
        .unwrap()
        .to_string()
}

fn seen(records: &[Value]) -> Seen {
    let attrs = |r: &Value| r["dimse"]["request"]["data_set"]["attributes"].clone();
    let store = |modality: &str| {
        let a = records
            .iter()
            .filter(|r| r["event_type"] == "dicom")
            .map(|r| attrs(&r["dicom"]))
            .find(|a| a["modality"] == modality)
            .unwrap_or_else(|| panic!("no {modality} C-STORE record"));
        (
            a["patient_name"].as_str().unwrap().to_string(),
            a["patient_id"].as_str().unwrap().to_string(),
        )
    };
    let alerts = || records.iter().filter(|r| r["event_type"] == "alert");
    let ct_alert = alerts()
        .find(|a| a["dicom"].is_object() && attrs(&a["dicom"])["modality"] == "CT")
        .expect("a PHI alert on the CT's C-STORE");
    let mqtt_evidence: Vec<(String, String)> = alerts()
        .filter(|a| a["mqtt"]["publish"].is_object() && a["phi"].is_object())
        .map(|a| (evidence(a, "name"), evidence(a, "mrn")))
        .collect();
    Seen {
        ct_record: store("CT"),
        mr_record: store("MR"),
        ct_evidence: (
            evidence(ct_alert, "PatientName (0010,0010)"),
            evidence(ct_alert, "PatientID (0010,0020)"),
        ),
        mqtt_evidence,
    }
}

#[test]
fn one_patient_masks_the_same_way_in_records_and_in_evidence_of_both_protocols() {
    let records = run_both(None);
    let s = seen(&records);
    // pcaps/README.md: six PUBLISHes of Jane's JSON (four mosquitto_pub
    // runs, the paho client's QoS 0/1/2), one PHI alert per flow.
    assert!(s.mqtt_evidence.len() >= 2, "{s:?}");
    assert_eq!(s.ct_evidence, s.ct_record, "{s:?}");
    for m in &s.mqtt_evidence {
        assert_eq!(*m, s.ct_record, "{s:?}");
    }
    assert_ne!(s.mr_record.0, s.ct_record.0, "two patients, one mask");
    // Masked: length and tag only.
    assert_eq!(untagged(&s.ct_record.0), "***(9 bytes #<tag>)");
    assert_eq!(untagged(&s.ct_record.1), "***(13 bytes #<tag>)");
    assert_eq!(untagged(&s.mr_record.0), "***(8 bytes #<tag>)");
    let text: String = records.iter().map(Value::to_string).collect();
    for secret in ["TEST^JANE", "DOE^JOHN", "MRN-TEST-0001", "19000101"] {
        assert!(!text.contains(secret), "{secret} in clear");
    }
}

#[test]
fn with_a_key_file_masks_are_the_values_masks_under_that_key() {
    let key = repo().join("tests/data/mask.key");
    let o = LogOptions::masked(key_from_file(&key).unwrap());
    let s = seen(&run_both(Some(&format!(
        "outputs: {{mask_key_file: {key:?}}}\n"
    ))));
    let jane = (o.mask(b"TEST^JANE"), o.mask(b"MRN-TEST-0001"));
    assert_eq!(s.ct_record, jane);
    assert_eq!(s.ct_evidence, jane);
    assert!(s.mqtt_evidence.iter().all(|m| *m == jane), "{s:?}");
    assert_eq!(s.mr_record.0, o.mask(b"DOE^JOHN"));
}

#[test]
fn a_short_key_file_is_refused_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("short.key");
    std::fs::write(&key, "tiny").unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, format!("outputs: {{mask_key_file: {key:?}}}\n")).unwrap();
    let out = run(&["-T", "-c", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("outputs.mask_key_file") && err.contains("at least 16 bytes"),
        "{err}"
    );
}

#[test]
fn untagged_replaces_only_the_tags_of_masks() {
    assert_eq!(
        untagged(r#"{"a":"***(9 bytes #5bc2ad6a1f03)","b":"5 bytes #5bc2ad6a1f0"}"#),
        r#"{"a":"***(9 bytes #<tag>)","b":"5 bytes #5bc2ad6a1f0"}"#
    );
}
