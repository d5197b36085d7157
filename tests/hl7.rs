//! HL7 v2 decoding against independent decoders, end to end.
//!
//! - Facts: every value wardwatch logs of every HL7 message (run with
//!   `unmask_sensitive`) — MSH fields, segment names, PV1-2, MSA, ERR, the
//!   patient fields — and the pairing of each answer with its message
//!   equal what tshark decodes of the same MLLP capture, or, for unframed
//!   HL7 (tshark decodes none), what python-hl7's `hl7.parse` reads of the
//!   same TCP bytes. Frozen in `tests/expected/hl7/<capture>.facts.txt` by
//!   `tests/tools/hl7_facts.py`; when tshark is installed the frozen files
//!   are checked against a live run (required in CI).
//! - Golden EVE: the `hl7` and `anomaly` records of each capture as logged
//!   by default (patient data masked), timestamps and flow ids masked, in
//!   `tests/expected/hl7/<capture>.eve.jsonl`; regenerate with
//!   `WW_REGEN_HL7=1 cargo test --test hl7` and review the diff by hand.
//! - Segmentation: the parser gives the same records whatever the sizes of
//!   the calls the streams are cut into, on every capture.
//! - One-way copies (asymmetric SPAN): with the direction not seen
//!   reported as gaps (shared decision), the direction seen keeps every
//!   fact, messages awaiting an answer are logged `answer_lost`, and each
//!   flow has one `gap` anomaly.
//! - PHI on the whole message: a PID in a later TCP segment than its MSH is
//!   in the record's text, and the PHI detector finds it there.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/parser_input.rs"]
mod parser_input;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;

use common::*;
use serde_json::Value;
use wardwatch::app::hl7::log::Logged;
use wardwatch::app::hl7::{new_parser, Hl7Config};
use wardwatch::app::{AppProto, AppRecord, LogOptions};
use wardwatch::detect::phi::{scan_payload, PhiConfig, PhiKind};
use wardwatch::flow::Direction;

/// Every capture with HL7: the decoder that reads it independently and
/// the ports tshark must be told.
const CAPTURES: &[(&str, &str, &[&str])] = &[
    ("hl7_mllp.pcap", "tshark", &["2575"]),
    ("hl7_nonstd_port.pcap", "tshark", &["6661"]),
    ("hl7_variants.pcap", "tshark", &["2575"]),
    ("cms8000_exfil.pcap", "tshark", &["515"]),
    ("hl7_bare_515.pcap", "python", &[]),
];

fn capture(name: &str) -> std::path::PathBuf {
    repo().join("pcaps").join(name)
}

fn run_eve(path: &std::path::Path, unmask: bool) -> Vec<Value> {
    let mut cfg = tempfile::NamedTempFile::new().unwrap();
    writeln!(cfg, "outputs: {{unmask_sensitive: {unmask}}}").unwrap();
    let out = run(&[
        "-r",
        path.to_str().unwrap(),
        "--workers",
        "1",
        "-c",
        cfg.path().to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_lines(&out.stdout)
}

fn hl7_records(records: &[Value]) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| r["event_type"] == "hl7")
        .collect()
}

/// The facts of one logged message (`tests/tools/hl7_facts.py`'s grammar).
fn message_facts(o: &Value, out: &mut Vec<String>) {
    let c = o["control_id"].as_str().unwrap_or("").to_string();
    let mut add = |k: &str, v: &Value| {
        if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
            out.push(format!("{c}\t{k}\t{s}"));
        }
    };
    for k in [
        "message_type",
        "trigger_event",
        "message_structure",
        "processing_id",
        "version",
        "sending_application",
        "sending_facility",
        "receiving_application",
        "receiving_facility",
        "framing",
        "patient_class",
        "ack_code",
        "acknowledged_control_id",
        "text_message",
    ] {
        add(k, &o[k]);
    }
    let segs: Vec<&str> = o["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    add("segments", &Value::from(segs.join(",")));
    for (i, e) in o["errors"].as_array().into_iter().flatten().enumerate() {
        for (k, v) in e.as_object().unwrap() {
            add(&format!("errors.{i}.{k}"), v);
        }
    }
    for (k, v) in o["patient"].as_object().into_iter().flatten() {
        match v {
            Value::Array(a) => a.iter().for_each(|x| add(&format!("patient.{k}"), x)),
            v => add(&format!("patient.{k}"), v),
        }
    }
    for n in o["next_of_kin"].as_array().into_iter().flatten() {
        add("next_of_kin", n);
    }
}

/// The facts of every `hl7` record, sorted.
fn facts_from_eve(records: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for r in hl7_records(records) {
        let h = &r["hl7"];
        message_facts(h, &mut out);
        if let Some(a) = h.get("answer") {
            message_facts(a, &mut out);
            out.push(format!(
                "{}\tanswers\t{}",
                a["control_id"].as_str().unwrap(),
                h["control_id"].as_str().unwrap()
            ));
        }
    }
    out.sort();
    out
}

fn frozen_facts(name: &str) -> String {
    let p = repo()
        .join("tests/expected/hl7")
        .join(format!("{name}.facts.txt"));
    std::fs::read_to_string(&p).unwrap_or_else(|_| panic!("{} missing", p.display()))
}

fn tshark_present() -> bool {
    let ok = Command::new("tshark")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "tshark is required in CI"
    );
    ok
}

#[test]
fn logged_facts_equal_the_independent_decoders_on_every_hl7_capture() {
    for (name, _, _) in CAPTURES {
        let ours = facts_from_eve(&run_eve(&capture(name), true));
        let theirs: Vec<String> = frozen_facts(name).lines().map(str::to_string).collect();
        assert!(!theirs.is_empty(), "{name}: no facts frozen");
        if ours != theirs {
            let only_ours: Vec<_> = ours.iter().filter(|l| !theirs.contains(l)).collect();
            let only_theirs: Vec<_> = theirs.iter().filter(|l| !ours.contains(l)).collect();
            panic!("{name}: wardwatch and the reference differ\nonly wardwatch: {only_ours:#?}\nonly reference: {only_theirs:#?}");
        }
    }
}

#[test]
fn frozen_facts_equal_live_tshark_and_python_hl7() {
    if !tshark_present() {
        eprintln!("SKIPPED: tshark is not installed; the frozen facts are used as they are");
        return;
    }
    for (name, tool, ports) in CAPTURES {
        let out = Command::new("python3")
            .arg(repo().join("tests/tools/hl7_facts.py"))
            .arg(tool)
            .arg(capture(name))
            .args(*ports)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            frozen_facts(name),
            "{name}: the reference now decodes differently: rerun tests/tools/hl7_facts.py"
        );
    }
}

/// `hl7` and `anomaly` records with run-dependent fields masked.
fn golden_lines(records: &[Value]) -> String {
    let mut out = String::new();
    for r in records {
        if r["event_type"] != "hl7" && r["event_type"] != "anomaly" {
            continue;
        }
        let mut r = r.clone();
        for k in ["timestamp", "flow_id", "community_id"] {
            if r.get(k).is_some() {
                r[k] = Value::from("<masked>");
            }
        }
        // The acknowledgments' MSH-7 is the generating machine's clock
        // (pcaps/README.md); it is not logged, so nothing else varies.
        out += &r.to_string();
        out.push('\n');
    }
    out
}

#[test]
fn golden_eve_records_per_capture() {
    let regen = std::env::var_os("WW_REGEN_HL7").is_some();
    for (name, _, _) in CAPTURES {
        let got = golden_lines(&run_eve(&capture(name), false));
        let p = repo()
            .join("tests/expected/hl7")
            .join(format!("{name}.eve.jsonl"));
        if regen {
            std::fs::write(&p, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&p)
            .unwrap_or_else(|_| panic!("{} missing: WW_REGEN_HL7=1", p.display()));
        assert_eq!(got, want, "{name}: EVE changed (WW_REGEN_HL7=1 to accept)");
    }
}

#[test]
fn default_output_masks_patient_data() {
    let all: String = CAPTURES
        .iter()
        .flat_map(|(n, _, _)| run_eve(&capture(n), false))
        .filter(|r| r["event_type"] == "hl7")
        .map(|r| r.to_string())
        .collect();
    for secret in [
        "TEST^JANE",
        "DOE^JOHN",
        "JEANNE",
        "MRN-TEST-0001",
        "19000101",
        "200017511299931",
        "+33 1 99",
        "RUE DE L",
        "TEST^MARIE",
    ] {
        assert!(!all.contains(secret), "{secret} logged in clear by default");
    }
    assert!(all.contains("\"patient_name\":[\"TE*******\"]"));
    // What is not patient data is logged as sent.
    assert!(all.contains("\"sending_application\":\"CMS8000\""));
}

#[test]
fn every_hl7_capture_gives_records_and_no_anomaly() {
    for (name, _, _) in CAPTURES {
        let recs = run_eve(&capture(name), false);
        assert!(!hl7_records(&recs).is_empty(), "{name}");
        let anomalies: Vec<_> = recs
            .iter()
            .filter(|r| r["event_type"] == "anomaly")
            .collect();
        assert!(anomalies.is_empty(), "{name}: {anomalies:?}");
        for f in recs.iter().filter(|r| r["event_type"] == "flow") {
            assert_eq!(f["app_proto"], "hl7", "{name}: {f}");
        }
    }
}

/// The records of every HL7 flow of a capture, each stream fed in calls
/// of at most `chunk` bytes (0: as the worker hands them over).
fn records_fed(name: &str, chunk: usize) -> Vec<AppRecord> {
    let flows = parser_input::parser_input(&capture(name), |p, _| p == AppProto::Hl7);
    assert!(!flows.is_empty(), "{name}: no HL7 flow");
    let mut out = Vec::new();
    for f in flows {
        let mut input = f.clone();
        if chunk > 0 {
            input.calls = f
                .calls
                .iter()
                .flat_map(|c| match c {
                    parser_input::Call::Data(d, b) => b
                        .chunks(chunk)
                        .map(|p| parser_input::Call::Data(*d, p.to_vec()))
                        .collect::<Vec<_>>(),
                    g => vec![g.clone()],
                })
                .collect();
        }
        out.extend(input.records(new_parser(&Hl7Config::default()).unwrap()));
    }
    out
}

#[test]
fn records_do_not_depend_on_the_split_on_any_capture() {
    for (name, _, _) in CAPTURES {
        let whole = records_fed(name, 0);
        assert!(!whole.is_empty(), "{name}");
        for chunk in [1, 2, 3, 7, 10, 11, 64, 1000] {
            assert!(
                records_fed(name, chunk) == whole,
                "{name}: chunks of {chunk}"
            );
        }
    }
}

#[test]
fn pid_in_a_later_segment_than_msh_is_in_the_record_and_found() {
    // hl7_variants.pcap: the second connection sends one ADT^A01 in two
    // writes, the start block and MSH, then PID and the rest (README).
    let flows =
        parser_input::parser_input(&capture("hl7_variants.pcap"), |p, _| p == AppProto::Hl7);
    let split = flows
        .iter()
        .find(|f| {
            f.calls.iter().any(|c| {
                matches!(c, parser_input::Call::Data(_, b) if b.windows(15).any(|w| w == b"SPLIT-TEST-0001"))
            })
        })
        .unwrap();
    let to_server: Vec<&[u8]> = split
        .data()
        .into_iter()
        .filter(|(d, _)| *d == Direction::ToServer)
        .map(|(_, b)| b)
        .collect();
    assert!(to_server.len() >= 2, "{}", to_server.len());
    let cfg = PhiConfig::default();
    // The segment with MSH alone shows no patient; the one with PID has no
    // MSH, so a per-segment scan finds no HL7 patient in either (the NIR in
    // PID-3 is found by its checksum wherever it is).
    assert!(to_server[0].starts_with(b"\x0bMSH|"));
    for seg in &to_server[..2] {
        assert!(!scan_payload(seg, &cfg).kinds.contains(&PhiKind::Hl7));
    }
    let recs = split.records(new_parser(&Hl7Config::default()).unwrap());
    let rec = recs
        .iter()
        .find_map(|r| match r {
            AppRecord::Hl7(h) => Some(h),
            _ => None,
        })
        .unwrap();
    assert_eq!(rec.message.control_id(), b"SPLIT-TEST-0001");
    let report = scan_payload(&rec.message.text, &cfg);
    assert!(report.kinds.contains(&PhiKind::Hl7), "{report:?}");
    assert!(report.evidence.iter().any(|e| e.field == "PID-5"));
}

/// What the parser of each HL7 flow of a capture gets from a one-way copy
/// that kept only `keep`, as the shared decision has the stream stage
/// report it: the other direction's bytes become gaps where the kept
/// side's next segment acknowledges them, that is where they stood in the
/// stream. The records, EVE-shaped: `event_type`, the `hl7` object
/// (unmasked) or the anomaly's `event`, and `direction`.
fn one_way(name: &str, keep: Direction) -> Vec<Value> {
    let flows = parser_input::parser_input(&capture(name), |p, _| p == AppProto::Hl7);
    let opts = LogOptions { unmask: true };
    let mut out = Vec::new();
    for (i, f) in flows.iter().enumerate() {
        let mut input = f.clone();
        input.calls = f
            .calls
            .iter()
            .map(|c| match c {
                parser_input::Call::Data(d, b) if *d != keep => {
                    parser_input::Call::Gap(*d, b.len() as u32)
                }
                c => c.clone(),
            })
            .collect();
        for r in input.records(new_parser(&Hl7Config::default()).unwrap()) {
            let v = match &r {
                AppRecord::Hl7(h) => serde_json::json!({
                    "event_type": "hl7",
                    "hl7": serde_json::to_value(Logged { rec: h, opts: &opts }).unwrap(),
                    "direction": dir_name(h.direction()),
                }),
                AppRecord::Anomaly(a) => serde_json::json!({
                    "event_type": "anomaly",
                    "event": a.event,
                    "direction": dir_name(a.dir),
                }),
                _ => continue,
            };
            let mut v = v;
            v["flow"] = Value::from(i);
            out.push(v);
        }
    }
    out
}

fn dir_name(d: Direction) -> &'static str {
    match d {
        Direction::ToServer => "to_server",
        Direction::ToClient => "to_client",
    }
}

/// Facts of the messages one side sent, answers' pairing left out.
fn sent_facts(records: &[Value], dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    for r in hl7_records(records) {
        let h = &r["hl7"];
        let first = r["direction"].as_str().unwrap();
        if first == dir {
            message_facts(h, &mut out);
        } else if let Some(a) = h.get("answer") {
            message_facts(a, &mut out);
        }
    }
    out.sort();
    out
}

#[test]
fn one_way_copies_keep_the_direction_seen_and_lose_the_answers() {
    for (name, _, _) in CAPTURES {
        let whole = run_eve(&capture(name), true);
        for keep in [Direction::ToServer, Direction::ToClient] {
            let dir = dir_name(keep);
            let recs = one_way(name, keep);
            assert_eq!(
                sent_facts(&recs, dir),
                sent_facts(&whole, dir),
                "{name} {dir} only"
            );
            for r in hl7_records(&recs) {
                assert!(r["hl7"].get("answer").is_none(), "{name}: {r}");
                assert_eq!(r["direction"], dir, "{name}: {r}");
            }
            // Every message answered in the whole capture waited for an
            // answer that the copy never shows.
            let answered = hl7_records(&whole)
                .iter()
                .filter(|r| r["hl7"].get("answer").is_some() && r["direction"] == dir)
                .count();
            let lost = hl7_records(&recs)
                .iter()
                .filter(|r| r["hl7"]["answer_lost"] == true)
                .count();
            assert_eq!(lost, answered, "{name} {dir} only");
            // One gap anomaly per flow, for the direction never seen.
            let mut gaps: BTreeMap<u64, usize> = BTreeMap::new();
            for a in recs.iter().filter(|r| r["event_type"] == "anomaly") {
                assert_eq!(a["event"], "gap", "{name}: {a}");
                assert_ne!(a["direction"], dir, "{name}: {a}");
                *gaps.entry(a["flow"].as_u64().unwrap()).or_default() += 1;
            }
            assert!(gaps.values().all(|&n| n == 1), "{name}: {gaps:?}");
        }
    }
}
