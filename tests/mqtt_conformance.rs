//! MQTT records against Suricata's own test suite: for every capture of
//! `../shared/conformance/suricata-verify-mqtt/` (the 39 MQTT tests of
//! OISF/suricata-verify with what Suricata 8.0.6 logged for each), every
//! field of every `mqtt` record Suricata wrote must be in wardwatch's
//! records of the same flow (passwords unmasked, payloads whole), with the
//! same value — or be one of the documented differences below, each
//! checked against what wardwatch logged instead.
//!
//! Records are compared per flow (both directions together) as multisets
//! of leaf fields (`connect.username = "user"`): a transaction may be cut
//! differently (Suricata logs a PUBLISH and its PUBACK in one record, as
//! wardwatch does, but a DISCONNECT after a QoS 2 exchange differently),
//! but every value must be there as often as Suricata logged it. Fields
//! wardwatch adds (`keep_alive`, `payload_length`…) are not Suricata's and
//! are not looked at here (`tests/mqtt_golden.rs` checks them against
//! tshark).
//!
//! The data is GPL test data read in place, never copied into the project;
//! without the folder the test is skipped with a message, and fails in CI.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// Why a field Suricata logged is not in wardwatch's records as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Difference {
    /// Suricata cuts logged strings at 1 KiB of data and appends
    /// "[truncated N additional bytes]"; wardwatch logs the payload whole
    /// (up to `max_payload_bytes`). Checked: wardwatch's string starts
    /// with Suricata's cut, and has N more bytes.
    CutAt1KiB,
    /// A 5.0 PUBACK, PUBREC, PUBREL, PUBCOMP or DISCONNECT that leaves its
    /// reason code out (remaining length 2, resp. 0, meaning Success):
    /// Suricata logs `reason_code: 0`, wardwatch logs what is on the wire,
    /// as tshark shows it, and matches `mqtt.reason_code:0` on it like
    /// Suricata (`src/app/mqtt/detect.rs`). Checked: wardwatch logged that
    /// message without a reason code.
    OmittedReasonCode,
    /// A 5.0 DISCONNECT with remaining length 1 carries a reason code byte
    /// (4, "Disconnect with Will Message" in tshark); Suricata 8.0.6 logs
    /// 0. Checked: wardwatch logged the DISCONNECT with reason code 4.
    LoneDisconnectReasonCode,
    /// The capture starts after the CONNECT, with the client's first bytes
    /// missing (mqtt-events-missing-connect): the flow's protocol is still
    /// undecided when the gap arrives, and detection after an early gap is
    /// the app-layer session's work (issue 10 item 5), not the parser's.
    /// Checked: wardwatch's flow record has no `app_proto` and no `mqtt`
    /// record; the parser fed such a stream logs the CONNACK
    /// (`tests/mqtt_partial_capture.rs`, `mid_stream_start_*`).
    UndecidedAfterEarlyGap,
}

fn conformance_dir() -> Option<PathBuf> {
    let d = repo().join("../shared/conformance/suricata-verify-mqtt");
    if d.is_dir() {
        Some(d)
    } else if std::env::var_os("CI").is_some() {
        panic!("{} is missing (CI must run this test)", d.display());
    } else {
        eprintln!(
            "SKIPPED: {} is absent (Suricata's MQTT test outputs)",
            d.display()
        );
        None
    }
}

/// Both ends of a record's flow, in a fixed order.
fn flow_key(r: &Value) -> String {
    let a = format!("{}:{}", r["src_ip"].as_str().unwrap(), r["src_port"]);
    let b = format!("{}:{}", r["dest_ip"].as_str().unwrap(), r["dest_port"]);
    if a <= b {
        format!("{a} {b}")
    } else {
        format!("{b} {a}")
    }
}

/// `(path, value)` for every leaf of `v` (arrays are leaves).
fn leaves(path: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                leaves(&p, x, out);
            }
        }
        _ => out.push((path.to_string(), v.clone())),
    }
}

/// Bytes a logged string stands for: `\xNN` is one byte when NN is 80 or
/// more (only those bytes are escaped; `\x41` in a payload is text).
fn raw_len(s: &str) -> usize {
    let escapes = s
        .match_indices("\\x")
        .filter(|(i, _)| {
            let hex = s.as_bytes().get(i + 2..i + 4).unwrap_or_default();
            hex.len() == 2
                && matches!(hex[0], b'8'..=b'9' | b'a'..=b'f')
                && hex[1].is_ascii_hexdigit()
        })
        .count();
    s.len() - 3 * escapes
}

/// Suricata's cut string: the part kept and the bytes left out.
fn cut(s: &str) -> Option<(&str, usize)> {
    let body = s.strip_suffix(" additional bytes]")?;
    let at = body.rfind("[truncated ")?;
    let n = body[at + "[truncated ".len()..].parse().ok()?;
    Some((&s[..at], n))
}

struct Flow {
    /// Our leaves not yet matched.
    ours: Vec<(String, Value)>,
    /// Our flow record, if any.
    flow: Option<Value>,
    /// Our mqtt records.
    records: usize,
    /// Our messages logged without a reason code, by type, not yet used
    /// to explain a difference.
    no_reason_code: BTreeMap<String, usize>,
}

impl Flow {
    /// Takes an unmatched leaf of ours at `path` satisfying `f`.
    fn take(&mut self, path: &str, f: impl Fn(&Value) -> bool) -> bool {
        match self.ours.iter().position(|(p, v)| p == path && f(v)) {
            Some(i) => {
                self.ours.swap_remove(i);
                true
            }
            None => false,
        }
    }
}

/// Which documented difference explains Suricata's `path = sur` missing
/// from our records of the flow, checked against what we logged instead.
fn explain(flow: &mut Flow, path: &str, sur: &Value) -> Option<Difference> {
    if flow.records == 0 {
        let undecided = flow
            .flow
            .as_ref()
            .is_some_and(|f| f.get("app_proto").is_none());
        return undecided.then_some(Difference::UndecidedAfterEarlyGap);
    }
    if let Some(s) = sur.as_str() {
        let (kept, more) = cut(s)?;
        let ok = flow.take(path, |v| {
            v.as_str()
                .is_some_and(|o| o.starts_with(kept) && raw_len(o) == raw_len(kept) + more)
        });
        return ok.then_some(Difference::CutAt1KiB);
    }
    let (msg, "reason_code") = path.rsplit_once('.')? else {
        return None;
    };
    if sur != &Value::from(0) {
        return None;
    }
    if msg == "disconnect" && flow.take(path, |v| v == &Value::from(4)) {
        return Some(Difference::LoneDisconnectReasonCode);
    }
    let acks = ["puback", "pubrec", "pubrel", "pubcomp", "disconnect"];
    if !acks.contains(&msg) {
        return None;
    }
    // One of our messages of that type has no reason code.
    let n = flow.no_reason_code.get_mut(msg)?;
    *n = n.checked_sub(1)?;
    Some(Difference::OmittedReasonCode)
}

/// Runs one suite test; returns (fields, matched, explained by kind) and
/// pushes what is neither to `unexplained`.
fn check(dir: &Path, unexplained: &mut Vec<String>) -> (usize, usize, Vec<Difference>) {
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    let suricata: Vec<Value> = std::fs::read_to_string(dir.join("suricata-eve.json"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        cfg.path(),
        "app_layer:\n  mqtt:\n    max_payload_bytes: 1048576\noutputs:\n  unmask_sensitive: true\n",
    )
    .unwrap();
    let out = run(&[
        "-r",
        dir.join("input.pcap").to_str().unwrap(),
        "-c",
        cfg.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{name}");
    let mut flows: BTreeMap<String, Flow> = BTreeMap::new();
    for r in parse_lines(&out.stdout) {
        let f = match r["event_type"].as_str() {
            Some("mqtt" | "flow") => flows.entry(flow_key(&r)).or_insert(Flow {
                ours: Vec::new(),
                flow: None,
                records: 0,
                no_reason_code: BTreeMap::new(),
            }),
            _ => continue,
        };
        if r["event_type"] == "flow" {
            f.flow = Some(r);
        } else {
            f.records += 1;
            leaves("", &r["mqtt"], &mut f.ours);
            for (t, m) in r["mqtt"].as_object().unwrap() {
                if m.is_object() && m.get("reason_code").is_none() {
                    *f.no_reason_code.entry(t.clone()).or_default() += 1;
                }
            }
        }
    }
    let (mut fields, mut matched, mut explained) = (0, 0, Vec::new());
    for r in suricata.iter().filter(|r| r["event_type"] == "mqtt") {
        let key = flow_key(r);
        let mut sur = Vec::new();
        leaves("", &r["mqtt"], &mut sur);
        for (path, v) in sur {
            fields += 1;
            let Some(flow) = flows.get_mut(&key) else {
                unexplained.push(format!("{name}: no flow {key}"));
                continue;
            };
            // Both tools write bytes that are not UTF-8 by the same rule
            // (`src/output/mask.rs`): values compare as they are.
            if flow.take(&path, |o| *o == v) {
                matched += 1;
            } else if let Some(d) = explain(flow, &path, &v) {
                explained.push(d);
            } else {
                let mut shown = v.to_string();
                shown.truncate(120);
                unexplained.push(format!("{name} {key}: {path} = {shown}"));
            }
        }
    }
    (fields, matched, explained)
}

#[test]
fn every_field_suricata_logs_is_reproduced_or_a_documented_difference() {
    let Some(base) = conformance_dir() else {
        return;
    };
    let mut tests: Vec<PathBuf> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("input.pcap").is_file())
        .collect();
    tests.sort();
    assert_eq!(tests.len(), 39, "the suite's 39 MQTT tests");
    let mut unexplained = Vec::new();
    let (mut fields, mut matched) = (0, 0);
    let mut by_kind: BTreeMap<Difference, usize> = BTreeMap::new();
    for t in &tests {
        let (f, m, e) = check(t, &mut unexplained);
        fields += f;
        matched += m;
        for d in e {
            *by_kind.entry(d).or_default() += 1;
        }
    }
    eprintln!("{matched} of {fields} fields equal; documented differences: {by_kind:?}");
    assert!(
        unexplained.is_empty(),
        "{} fields differ:\n{}",
        unexplained.len(),
        unexplained.join("\n")
    );
    // The differences are the known ones, in the known places: more of
    // them means a regression hidden behind a reason.
    let expected: BTreeMap<Difference, usize> = [
        (Difference::CutAt1KiB, 5),
        (Difference::OmittedReasonCode, 10),
        (Difference::LoneDisconnectReasonCode, 4),
    ]
    .into_iter()
    .collect();
    let mut got = by_kind.clone();
    // Gone once the session detects MQTT after an early gap.
    got.remove(&Difference::UndecidedAfterEarlyGap);
    assert_eq!(got, expected);
    assert!(
        by_kind
            .get(&Difference::UndecidedAfterEarlyGap)
            .copied()
            .unwrap_or(0)
            <= 5
    );
}

#[test]
fn raw_len_counts_an_escaped_byte_once_and_cut_reads_suricatas_suffix() {
    // Hand-built strings: a control byte, an escaped byte, text that
    // looks like an escape.
    assert_eq!(raw_len("\u{0}A\\xff"), 3);
    assert_eq!(raw_len("\\x41\\x8"), 7);
    assert_eq!(cut("abc[truncated 12 additional bytes]"), Some(("abc", 12)));
}
