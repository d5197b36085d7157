//! MQTT records over the real captures equal what an independent decoder
//! sees: every field of every MQTT message wardwatch logs is compared with
//! `tshark -Y mqtt -T json` on the same capture.
//!
//! `tests/tools/mqtt_tshark.py` turns tshark's decode into a canonical list
//! of messages; that list is frozen in `tests/expected/mqtt/<capture>.json`
//! for machines without tshark (refreeze with `WW_REGEN_MQTT=1 cargo test
//! --test mqtt_golden` and review the diff by hand). Where tshark is
//! installed, the frozen list must also equal tshark's live output.
//!
//! A record says who started it (`direction`), not which way each of its
//! messages went, so messages are compared per conversation (both
//! directions together), as multisets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The MQTT captures, with the tshark options they need.
const CAPTURES: &[(&str, &[&str])] = &[
    ("demo.pcap", &[]),
    ("mqtt_foreign_broker.pcap", &[]),
    ("mqtt_incountry.pcap", &[]),
    ("mqtt_large_split.pcap", &[]),
    ("mqtt_nonstd_port.pcap", &["-d", "tcp.port==8080,mqtt"]),
    ("mqtt_refused.pcap", &[]),
    ("mqtt_telemetry_nophi.pcap", &[]),
    ("mqtt_v311_anon_phi.pcap", &[]),
    ("mqtt_v31_default_creds.pcap", &[]),
    ("mqtt_v5_props.pcap", &[]),
    ("mqtt_wearable_gps.pcap", &[]),
    ("mqtt_site_hub.pcap", &[]),
];

fn digest(b: &[u8]) -> Value {
    json!({"len": b.len(), "sha256": format!("{:x}", Sha256::digest(b))})
}

fn undirected(a: &str, b: &str) -> String {
    if a <= b {
        format!("{a} {b}")
    } else {
        format!("{b} {a}")
    }
}

const TYPES: &[&str] = &[
    "",
    "connect",
    "connack",
    "publish",
    "puback",
    "pubrec",
    "pubrel",
    "pubcomp",
    "subscribe",
    "suback",
    "unsubscribe",
    "unsuback",
    "pingreq",
    "pingresp",
    "disconnect",
    "auth",
];

/// Copies `keys` of `from` that are present.
fn copy(to: &mut Map<String, Value>, from: &Value, keys: &[&str]) {
    for k in keys {
        if let Some(v) = from.get(*k) {
            to.insert(k.to_string(), v.clone());
        }
    }
}

fn props(to: &mut Map<String, Value>, from: &Value) {
    if let Some(p) = from.get("properties") {
        if p.as_object().is_some_and(|o| !o.is_empty()) {
            to.insert("properties".into(), p.clone());
        }
    }
}

/// wardwatch's records of `cap` (unmasked, payloads kept whole) as
/// canonical messages.
fn ours(cap: &Path) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ww.yaml");
    std::fs::write(
        &cfg,
        "app_layer:\n  mqtt:\n    max_payload_bytes: 1048576\noutputs:\n  unmask_sensitive: true\n",
    )
    .unwrap();
    let out = run(&["-r", cap.to_str().unwrap(), "-c", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", cap.display());
    let mut v = Vec::new();
    for r in parse_lines(&out.stdout) {
        if r["event_type"] != "mqtt" {
            continue;
        }
        let flow = undirected(
            &format!("{}:{}", r["src_ip"].as_str().unwrap(), r["src_port"]),
            &format!("{}:{}", r["dest_ip"].as_str().unwrap(), r["dest_port"]),
        );
        for (name, m) in r["mqtt"].as_object().unwrap() {
            let Some(t) = TYPES.iter().position(|x| x == name) else {
                continue;
            };
            let b = |k: &str| u8::from(m[k].as_bool().unwrap());
            let flags = b("dup") << 3 | (m["qos"].as_u64().unwrap() as u8) << 1 | b("retain");
            let mut c = Map::new();
            c.insert("flow".into(), json!(flow));
            c.insert("type".into(), json!(t));
            c.insert("flags".into(), json!(flags));
            copy(&mut c, m, &["message_id"]);
            props(&mut c, m);
            match name.as_str() {
                "connect" => {
                    let f = &m["flags"];
                    let fb = |k: &str| u8::from(f[k].as_bool().unwrap());
                    let cf = fb("username") << 7
                        | fb("password") << 6
                        | fb("will_retain") << 5
                        | fb("will") << 2
                        | fb("clean_session") << 1;
                    c.insert("connect_flags".into(), json!(cf));
                    copy(
                        &mut c,
                        m,
                        &[
                            "protocol_string",
                            "protocol_version",
                            "keep_alive",
                            "client_id",
                            "username",
                        ],
                    );
                    if let Some(p) = m.get("password") {
                        c.insert("password".into(), digest(p.as_str().unwrap().as_bytes()));
                    }
                    if let Some(w) = m.get("will") {
                        let mut wo = Map::new();
                        copy(&mut wo, w, &["topic"]);
                        wo.insert(
                            "message".into(),
                            digest(w["message"].as_str().unwrap().as_bytes()),
                        );
                        props(&mut wo, w);
                        c.insert("will".into(), Value::Object(wo));
                    }
                }
                "connack" => copy(&mut c, m, &["session_present", "return_code"]),
                "publish" => {
                    // tshark resolves v5 topic aliases too: compare the
                    // topic the message went to.
                    let topic = m.get("resolved_topic").unwrap_or(&m["topic"]);
                    c.insert("topic".into(), topic.clone());
                    let msg = m["message"].as_str().unwrap().as_bytes();
                    assert_eq!(msg.len() as u64, m["payload_length"].as_u64().unwrap());
                    c.insert("message".into(), digest(msg));
                }
                "puback" | "pubrec" | "pubrel" | "pubcomp" | "disconnect" => {
                    copy(&mut c, m, &["reason_code"])
                }
                "subscribe" | "unsubscribe" => copy(&mut c, m, &["topics"]),
                "suback" => copy(&mut c, m, &["qos_granted"]),
                "unsuback" => copy(&mut c, m, &["reason_codes"]),
                _ => {}
            }
            v.push(Value::Object(c).to_string());
        }
    }
    v.sort();
    v
}

/// The tool's list (frozen or live) as canonical messages.
fn canonical(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let mut m = m.as_object().unwrap().clone();
            let src = m.remove("src").unwrap();
            let dst = m.remove("dst").unwrap();
            m.insert(
                "flow".into(),
                json!(undirected(src.as_str().unwrap(), dst.as_str().unwrap())),
            );
            // EVE logs neither the will QoS nor the reserved bit.
            if let Some(cf) = m.get_mut("connect_flags") {
                *cf = json!(cf.as_u64().unwrap() & 0xe6);
            }
            if m.get("properties")
                .is_some_and(|p| p.as_object().unwrap().is_empty())
            {
                m.remove("properties");
            }
            if let Some(w) = m.get_mut("will").and_then(Value::as_object_mut) {
                if w.get("properties")
                    .is_some_and(|p| p.as_object().unwrap().is_empty())
                {
                    w.remove("properties");
                }
            }
            Value::Object(m).to_string()
        })
        .collect();
    v.sort();
    v
}

fn tshark_live(cap: &Path, opts: &[&str]) -> Option<Value> {
    let ok = Command::new("tshark")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        return None;
    }
    let out = Command::new("python3")
        .arg(repo().join("tests/tools/mqtt_tshark.py"))
        .arg(cap)
        .args(opts)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn diff(a: &[String], b: &[String]) -> String {
    let mut count: BTreeMap<&String, i64> = BTreeMap::new();
    for x in a {
        *count.entry(x).or_default() += 1;
    }
    for x in b {
        *count.entry(x).or_default() -= 1;
    }
    let mut s = String::new();
    for (k, n) in count.iter().filter(|(_, n)| **n != 0).take(6) {
        s.push_str(&format!("{n:+} {k}\n"));
    }
    s
}

#[test]
fn mqtt_messages_equal_tshark_on_every_capture() {
    let regen = std::env::var_os("WW_REGEN_MQTT").is_some();
    let mut live_checked = 0;
    for (name, opts) in CAPTURES {
        let cap = repo().join("pcaps").join(name);
        let frozen_path = repo()
            .join("tests/expected/mqtt")
            .join(format!("{name}.json"));
        let live = tshark_live(&cap, opts);
        if regen {
            let live = live.as_ref().expect("regenerating needs tshark");
            std::fs::create_dir_all(frozen_path.parent().unwrap()).unwrap();
            let mut text = serde_json::to_string_pretty(live).unwrap();
            text.push('\n');
            std::fs::write(&frozen_path, text).unwrap();
        }
        let frozen: Value =
            serde_json::from_str(&std::fs::read_to_string(&frozen_path).unwrap()).unwrap();
        let want = canonical(&frozen);
        if let Some(live) = &live {
            assert_eq!(
                canonical(live),
                want,
                "{name}: tshark's decode differs from the frozen one"
            );
            live_checked += 1;
        }
        assert!(!want.is_empty(), "{name}: tshark saw no MQTT");
        let got = ours(&cap);
        assert!(
            got == want,
            "{name}: wardwatch (+) vs tshark (-):\n{}",
            diff(&got, &want)
        );
    }
    if live_checked == 0 {
        common::skip("live comparison: tshark is not installed (frozen lists used)");
    }
}

/// The `mqtt` objects of a run with default options (masked).
fn mqtt_records(name: &str) -> Vec<Value> {
    eve(&repo().join("pcaps").join(name), 1)
        .into_iter()
        .filter(|r| r["event_type"] == "mqtt" || r["event_type"] == "anomaly")
        .collect()
}

/// Facts from `pcaps/README.md` (how the captures were made), checked on
/// the transactions: logins and their answers are one record.
#[test]
fn logins_are_paired_with_their_answers() {
    // mqtt_refused: six CONNECTs, each refused (3.x return code 5, 5.0
    // reason 0x87).
    let recs = mqtt_records("mqtt_refused.pcap");
    let connects: Vec<&Value> = recs
        .iter()
        .filter(|r| r["mqtt"]["connect"].is_object())
        .collect();
    assert_eq!(connects.len(), 6);
    for r in &connects {
        let m = &r["mqtt"];
        assert_eq!(m["connect"]["accepted"], false, "{m}");
        let code = m["connack"]["return_code"].as_u64().unwrap();
        let v = m["connect"]["protocol_version"].as_u64().unwrap();
        assert_eq!(code, if v == 5 { 0x87 } else { 5 }, "{m}");
    }
    // mqtt_v311_anon_phi: seven anonymous logins, all accepted.
    let recs = mqtt_records("mqtt_v311_anon_phi.pcap");
    let anon: Vec<&Value> = recs
        .iter()
        .filter(|r| r["mqtt"]["connect"].is_object())
        .collect();
    assert_eq!(anon.len(), 7);
    for r in &anon {
        assert_eq!(r["mqtt"]["connect"]["accepted"], true);
        assert!(r["mqtt"]["connect"].get("username").is_none());
    }
    // Every QoS 1/2 PUBLISH got its PUBACK / PUBREC+PUBREL+PUBCOMP in the
    // same record, and nothing was unexpected.
    assert!(recs.iter().all(|r| r["event_type"] == "mqtt"), "no anomaly");
    for r in &recs {
        let m = &r["mqtt"];
        match m["publish"]["qos"].as_u64() {
            Some(1) => assert!(m["puback"].is_object(), "{m}"),
            Some(2) => {
                for k in ["pubrec", "pubrel", "pubcomp"] {
                    assert!(m[k].is_object(), "{m}");
                }
            }
            _ => {}
        }
    }
    // 3.1 with default credentials: password masked by default.
    let recs = mqtt_records("mqtt_v31_default_creds.pcap");
    let c = &recs[0]["mqtt"]["connect"];
    assert_eq!(c["protocol_string"], "MQIsdp");
    assert_eq!(c["username"], "admin");
    assert_eq!(
        common::untagged(c["password"].as_str().unwrap()),
        "***(5 bytes #<tag>)"
    );
}

#[test]
fn v5_topic_alias_is_resolved_per_connection() {
    let recs = mqtt_records("mqtt_v5_props.pcap");
    let aliased: Vec<&Value> = recs
        .iter()
        .filter(|r| r["mqtt"]["publish"]["topic"] == "")
        .collect();
    assert_eq!(aliased.len(), 1);
    let p = &aliased[0]["mqtt"]["publish"];
    assert_eq!(p["resolved_topic"], "fhir/ward3/patient");
    assert_eq!(p["properties"]["topic_alias"], 1);
    // The client's DISCONNECT reason string (MQTT 5.0 property 0x1f).
    assert!(recs
        .iter()
        .any(|r| r["mqtt"]["disconnect"]["properties"]["reason_string"] == "bridge shutting down"));
}

#[test]
fn records_say_who_sent_them() {
    // pcaps/README.md: two monitors publish 150 messages each to the broker
    // 10.10.5.10:1883, which forwards all 300 to the central station
    // 10.20.8.30. Each record is written from its sender's side, with
    // Suricata's `direction`.
    let recs = mqtt_records("mqtt_telemetry_nophi.pcap");
    let publishes: Vec<&Value> = recs
        .iter()
        .filter(|r| r["mqtt"]["publish"].is_object())
        .collect();
    assert_eq!(publishes.len(), 600);
    let mut from_broker = 0;
    for r in &publishes {
        match r["direction"].as_str().unwrap() {
            "to_client" => {
                from_broker += 1;
                assert_eq!(
                    (&r["src_ip"], &r["src_port"]),
                    (&json!("10.10.5.10"), &json!(1883))
                );
                assert_eq!(r["dest_ip"], "10.20.8.30");
            }
            "to_server" => {
                assert_eq!(
                    (&r["dest_ip"], &r["dest_port"]),
                    (&json!("10.10.5.10"), &json!(1883))
                );
                assert!(r["src_ip"] == "10.20.1.15" || r["src_ip"] == "10.20.1.16");
            }
            d => panic!("direction {d}"),
        }
    }
    assert_eq!(from_broker, 300);
    // A login is the client's.
    let c = recs
        .iter()
        .find(|r| r["mqtt"]["connect"].is_object())
        .unwrap();
    assert_eq!(c["direction"], "to_server");
}
