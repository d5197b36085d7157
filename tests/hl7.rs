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
//! - Rules: every `hl7.*` keyword value the independent decoder read
//!   selects exactly the records holding it; `phi`, `geoip` and `iprep` on
//!   hl7 records.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/parser_input.rs"]
mod parser_input;

use std::collections::BTreeMap;

use common::*;
use serde_json::Value;
use wardwatch::app::hl7::log::Logged;
use wardwatch::app::hl7::{new_parser, Hl7Config};
use wardwatch::app::{AppProto, AppRecord};
use wardwatch::detect::phi::{scan_payload, PhiConfig, PhiKind};
use wardwatch::detect::{DetectConfig, DetectState, Engine, FlowInfo, Lookups, RuleSource, Vars};
use wardwatch::flow::Direction;
use wardwatch::output::mask::{key_from_file, LogOptions};

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
    if !common::have("tshark") {
        common::skip("tshark is not installed; the frozen facts are used as they are");
        return;
    }
    for (name, tool, ports) in CAPTURES {
        let cap = capture(name);
        let args = [std::ffi::OsStr::new(tool), cap.as_os_str()]
            .into_iter()
            .chain(ports.iter().map(std::ffi::OsStr::new));
        assert_eq!(
            String::from_utf8(common::python_tool("hl7_facts.py", args)).unwrap(),
            frozen_facts(name),
            "{name}: the reference now decodes differently: rerun tests/tools/hl7_facts.py"
        );
    }
}

#[test]
fn golden_eve_records_per_capture() {
    let regen = std::env::var_os("WW_REGEN_HL7").is_some();
    for (name, _, _) in CAPTURES {
        // The acknowledgments' MSH-7 is the generating machine's clock
        // (pcaps/README.md); it is not logged, so nothing else varies.
        let got = golden_lines(&run_eve(&capture(name), false), "hl7");
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
    // Masked by the shared policy with the runs' key (tests/data/mask.key).
    let key = key_from_file(&repo().join("tests/data/mask.key")).unwrap();
    let jane = LogOptions::masked(key).mask(b"TEST^JANE");
    assert!(
        all.contains(&format!("\"patient_name\":[\"{jane}\"]")),
        "{jane}"
    );
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
    let opts = LogOptions::unmasked();
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

// ------------------------------------------------------------ rules

/// An engine with `rules` (one per line) and the given lookups.
fn engine_with(rules: &str, lookups: Lookups) -> Engine {
    let (e, report) = Engine::build_with(
        &Vars::default(),
        &DetectConfig::default(),
        lookups,
        &[RuleSource {
            name: "hl7-test.rules".into(),
            text: rules.into(),
        }],
    )
    .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(e.rule_count(), rules.lines().count());
    e
}

/// An HL7 flow as the engine sees it when its records are written.
fn flow_info(f: &parser_input::FlowInput) -> FlowInfo {
    FlowInfo {
        ts: wardwatch::time::Timestamp::from_parts(1_700_000_000, 0),
        // Orders matches of equal time only.
        flow_id: u64::from(f.ends.client.port),
        client: f.ends.client,
        server: f.ends.server,
        proto: 6,
        app_proto: AppProto::Hl7,
        established: true,
        bytes: [0, 0],
        pkts: [0, 0],
    }
}

/// Alerts per sid over the `hl7` records of every HL7 flow of a capture,
/// each flow seen as the parser orients it.
fn hl7_alerts(e: &Engine, name: &str) -> BTreeMap<u32, usize> {
    let mut st = DetectState::default();
    let mut by_sid = BTreeMap::new();
    let flows = parser_input::parser_input(&capture(name), |p, _| p == AppProto::Hl7);
    for f in flows {
        let info = flow_info(&f);
        let mut fd = e.new_flow(info.client.addr, info.server.addr);
        for r in f.records(new_parser(&Hl7Config::default()).unwrap()) {
            let mut out = Vec::new();
            e.record(&mut st, &mut fd, &info, &r, &mut out);
            for a in out {
                *by_sid.entry(a.rule.sid).or_insert(0) += 1;
            }
        }
    }
    by_sid
}

/// A rule's content matching exactly `v` (hex, so that no character of
/// the value needs escaping).
fn exact(v: &str) -> String {
    let hex: Vec<String> = v.bytes().map(|b| format!("{b:02x}")).collect();
    format!("content:\"|{}|\"; startswith; endswith;", hex.join(" "))
}

/// The records of a capture as the independent decoder's frozen facts
/// describe them: each message with the facts of its answer (by the
/// `answers` fact), as (key, value) sets.
fn records_from_facts(name: &str) -> Vec<Vec<(String, String)>> {
    let mut by_ctrl: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut answer_of: BTreeMap<String, String> = BTreeMap::new();
    for line in frozen_facts(name).lines() {
        let mut p = line.splitn(3, '\t');
        let (c, k, v) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
        if k == "answers" {
            answer_of.insert(c.to_string(), v.to_string());
        }
        by_ctrl
            .entry(c.to_string())
            .or_default()
            .push((k.to_string(), v.to_string()));
    }
    let mut records: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (c, facts) in by_ctrl {
        let owner = match answer_of.get(&c) {
            Some(m) => m.clone(),
            None => c,
        };
        records.entry(owner).or_default().extend(facts);
    }
    records.into_values().collect()
}

#[test]
fn hl7_keywords_match_the_records_the_independent_decoder_describes() {
    // For every value tshark (or python-hl7) decoded of a header field,
    // ack code or patient name, a rule matching that value exactly alerts
    // on exactly the records (message and answer) holding it.
    const KEYWORDS: &[(&str, &str)] = &[
        ("hl7.message_type", "message_type"),
        ("hl7.trigger_event", "trigger_event"),
        ("hl7.message_structure", "message_structure"),
        ("hl7.version", "version"),
        ("hl7.processing_id", "processing_id"),
        ("hl7.sending_application", "sending_application"),
        ("hl7.sending_facility", "sending_facility"),
        ("hl7.receiving_application", "receiving_application"),
        ("hl7.receiving_facility", "receiving_facility"),
        ("hl7.ack_code", "ack_code"),
        ("hl7.field:PID-5", "patient.patient_name"),
        ("hl7.field:MSA-1", "ack_code"),
        ("hl7.field:PV1-2", "patient_class"),
    ];
    for (name, _, _) in CAPTURES {
        let records = records_from_facts(name);
        let mut rules = String::new();
        let mut want = BTreeMap::new();
        let mut sid = 0u32;
        for (kw, key) in KEYWORDS {
            let values: std::collections::BTreeSet<&str> = records
                .iter()
                .flatten()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .collect();
            for v in values {
                sid += 1;
                let n = records
                    .iter()
                    .filter(|r| r.iter().any(|(k, x)| k == key && x == v))
                    .count();
                want.insert(sid, n);
                rules.push_str(&format!(
                    "alert hl7 any any -> any any (msg:\"{kw} {sid}\"; {kw}; {} sid:{sid};)\n",
                    exact(v)
                ));
            }
        }
        assert!(sid >= 10, "{name}: {sid} rules");
        let got = hl7_alerts(&engine_with(&rules, Lookups::default()), name);
        let got: BTreeMap<u32, usize> = (1..=sid)
            .map(|s| (s, got.get(&s).copied().unwrap_or(0)))
            .collect();
        assert_eq!(got, want, "{name}:\n{rules}");
    }
}

#[test]
fn segment_and_field_rules_on_the_captured_messages() {
    // hl7_mllp.pcap (pcaps/README.md): nine messages, each acknowledged
    // (nine MSA segments); one ACK AE with an ERR segment; NK1 only in
    // the ADT^A01 and the four ADT^A08 (tshark's facts: five next of kin).
    let e = engine_with(
        "alert hl7 any any -> any any (hl7.segment; content:\"MSA|7C|\"; startswith; sid:1;)\n\
         alert hl7 any any -> any any (hl7.segment; content:\"ERR|7C|\"; startswith; sid:2;)\n\
         alert hl7 any any -> any any (hl7.segment; content:\"NK1|7C|\"; startswith; sid:3;)\n\
         alert hl7 any any -> any any (hl7.field:MSA-3; content:\"Patient identifier missing\"; sid:4;)\n\
         alert hl7 any any -> any any (hl7.message_type; content:\"ORM\"; hl7.ack_code; content:\"AE\"; sid:5;)\n\
         alert hl7 any any -> any any (hl7.message_type; content:\"ADT\"; hl7.ack_code; content:\"AE\"; sid:6;)\n\
         alert hl7 any any -> any 2575 (hl7.message_type; content:\"ORU\"; sid:7;)\n\
         alert hl7 any any -> any !2575 (hl7.message_type; content:\"ORU\"; sid:8;)",
        Lookups::default(),
    );
    let got = hl7_alerts(&e, "hl7_mllp.pcap");
    let want = BTreeMap::from([(1, 9), (2, 1), (3, 5), (4, 1), (5, 1), (7, 2)]);
    assert_eq!(got, want);
    // Custom delimiters (hl7_variants.pcap: `MSH!*#%@$` in the 2.8 ORU)
    // and escapes (`D\X27\ARC^JEANNE`) read as logged.
    let e = engine_with(
        "alert hl7 any any -> any any (hl7.field:PID-5; content:\"D'ARC^JEANNE\"; startswith; endswith; sid:1;)\n\
         alert hl7 any any -> any any (hl7.version; content:\"2.8\"; hl7.field:MSH-2; content:\"*#%@$\"; sid:2;)",
        Lookups::default(),
    );
    assert_eq!(
        hl7_alerts(&e, "hl7_variants.pcap"),
        BTreeMap::from([(1, 1), (2, 1)])
    );
}

#[test]
fn phi_geoip_and_iprep_work_on_hl7_records() {
    // The real country database and known-bad list: cms8000_exfil.pcap's
    // three ORU^R01 (TEST^JANE) go to 202.114.4.120, CN, on the CMS8000
    // backdoor list (pcaps/README.md).
    let lookups = Lookups::load(&DetectConfig::default(), &repo()).unwrap();
    let rules = "alert hl7 any any -> any any (phi; sid:1;)\n\
                 alert hl7 any any -> any any (geoip:dst,CN; sid:2;)\n\
                 alert hl7 any any -> any any (iprep:dst,KnownBadMedical,>,0; sid:3;)\n\
                 alert hl7 any any -> any any (geoip:dst,FR; sid:4;)\n\
                 alert hl7 $HOME_NET any -> $EXTERNAL_NET any (hl7.message_type; content:\"ORU\"; phi:hl7; sid:5;)";
    let e = engine_with(rules, lookups.clone());
    for cap in ["cms8000_exfil.pcap", "hl7_bare_515.pcap"] {
        assert_eq!(
            hl7_alerts(&e, cap),
            BTreeMap::from([(1, 3), (2, 3), (3, 3), (5, 3)]),
            "{cap}"
        );
    }
    // Internal hosts: patient data (every message of hl7_mllp names its
    // patient), nothing foreign.
    assert_eq!(hl7_alerts(&e, "hl7_mllp.pcap"), BTreeMap::from([(1, 9)]));
    // The PID that travelled in a later TCP segment than its MSH
    // (hl7_variants.pcap, SPLIT-TEST-0001) is found by `phi` on the
    // record, and the alert carries its evidence.
    let e = engine_with(
        "alert hl7 any any -> any any (hl7.control_id; content:\"SPLIT-TEST-0001\"; phi:hl7; sid:1;)",
        lookups,
    );
    let flows =
        parser_input::parser_input(&capture("hl7_variants.pcap"), |p, _| p == AppProto::Hl7);
    let mut st = DetectState::default();
    let mut evidence = Vec::new();
    for f in flows {
        let info = flow_info(&f);
        let mut fd = e.new_flow(info.client.addr, info.server.addr);
        for r in f.records(new_parser(&Hl7Config::default()).unwrap()) {
            let mut out = Vec::new();
            e.record(&mut st, &mut fd, &info, &r, &mut out);
            for a in out {
                evidence.extend(a.phi.unwrap().evidence.iter().map(|e| e.field.clone()));
            }
        }
    }
    assert!(evidence.iter().any(|f| f == "PID-5"), "{evidence:?}");
}

#[test]
fn hl7_rules_that_cannot_work_are_rejected() {
    for bad in [
        // A content without a sticky buffer in a transaction rule.
        "alert hl7 any any -> any any (content:\"MSH\"; sid:1;)",
        // Two protocols' keywords.
        "alert tcp any any -> any any (hl7.message_type; content:\"ADT\"; mqtt.type:PUBLISH; sid:1;)",
        // Another protocol's keyword in an hl7 rule.
        "alert hl7 any any -> any any (mqtt.type:PUBLISH; sid:1;)",
        "alert hl7 any any -> any any (hl7.field:PID; content:\"x\"; sid:1;)",
        "alert udp any any -> any any (hl7.version; content:\"2.5\"; sid:1;)",
    ] {
        let (_, report) = Engine::build_with(
            &Vars::default(),
            &DetectConfig::default(),
            Lookups::default(),
            &[RuleSource {
                name: "bad.rules".into(),
                text: bad.into(),
            }],
        )
        .unwrap();
        assert_eq!(report.errors.len(), 1, "{bad}");
    }
}
