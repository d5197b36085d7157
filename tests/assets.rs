//! The asset inventory (README "Asset inventory") against an independent
//! decoder, end to end, on the application captures of `pcaps/` read
//! together in one run (`-r` for each, in the order of their packet times;
//! see [`app_captures`]):
//!
//! - Facts: every internal host has exactly one `snapshot` record, and its
//!   MACs and their vendors, MQTT, DICOM and HL7 roles, AE titles,
//!   implementation class UIDs and version names, device attributes, MQTT
//!   client ids, user names, versions and topic prefixes, HL7 sending and
//!   receiving applications and facilities, TLS server names (SNI), and
//!   countries are
//!   exactly what `tests/tools/asset_tshark.py` derives from tshark's
//!   decode (vendors from Debian's `ieee-data`, countries from the
//!   registry allocations documented in `pcaps/README.md`), frozen in
//!   `tests/expected/assets/`; when tshark is installed the frozen facts
//!   are checked against a live run (in CI tshark is required).
//!   Regenerate with `WW_REGEN_ASSETS=1 cargo test --test assets` and
//!   review the diff.
//! - The same asset records, alerts on asset changes and stats for 1, 2
//!   and 3 workers.
//! - A baseline made from part of the captures, and a run over all of them:
//!   exactly the new-device, ae-title-moved and device-changed drift that
//!   the split implies, derived from tshark's facts of each side, in the
//!   records and as alerts of the default rules (one per difference, the
//!   same for 1 and 2 workers).
//! - No patient data of the corpus appears in any asset record.
//! - Bounds (`asset.max_hosts`, `asset.max_values`) are hit and counted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// Packet time of the first packet of a pcap file (seconds, fraction).
fn first_packet_time(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    let le = matches!(b[..4], [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1]);
    let word = |at: usize| {
        let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    (word(24), word(28))
}

/// The captures with application traffic, in the order of their first
/// packet, so that packet time never runs backwards from one file to the
/// next (a threshold match earlier than what was decided is decided on
/// what is known, `detect.threshold_late`, and that depends on the worker
/// count). Left out: the link-layer, damaged and offload captures (they
/// test other things; their hosts are not the hospital's), and
/// `mqtt_internet_refused` and `dicom_internet_echo`, rewritten copies of
/// `mqtt_refused` and `dicom_echo` with the same packet times.
fn app_captures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = captures()
        .into_iter()
        .filter(|c| {
            let n = c.file_name().unwrap().to_str().unwrap();
            ["mqtt_", "dicom_", "hl7_", "tls_", "cms8000"]
                .iter()
                .any(|p| n.starts_with(p))
                && !n.contains("_internet_")
                && n.ends_with(".pcap")
        })
        .collect();
    v.sort_by_key(|c| first_packet_time(c));
    v
}

/// The captures the baseline is made of.
const PART: [&str; 3] = [
    "mqtt_v311_anon_phi.pcap",
    "dicom_echo.pcap",
    "dicom_store_phi.pcap",
];

fn part_captures() -> Vec<PathBuf> {
    PART.iter().map(|n| repo().join("pcaps").join(n)).collect()
}

/// EVE of one run over `caps` with `workers` workers and `extra` options.
fn run_over(caps: &[PathBuf], workers: usize, extra: &[&str]) -> Vec<Value> {
    let mut args: Vec<String> = Vec::new();
    for c in caps {
        args.push("-r".into());
        args.push(c.to_str().unwrap().into());
    }
    args.push("--workers".into());
    args.push(workers.to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&refs);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_lines(&out.stdout)
}

fn snapshots(records: &[Value]) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| r["event_type"] == "asset" && r["asset"]["event"] == "snapshot")
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// The facts of `asset_tshark.py`, from `snapshot` records.
fn facts_from_eve(records: &[Value]) -> BTreeSet<String> {
    let mut f = BTreeSet::new();
    for r in snapshots(records) {
        let a = &r["asset"];
        let ip = a["ip"].as_str().unwrap();
        let mut add = |kind: &str, v: &str| {
            f.insert(format!("{ip} {kind} {v}"));
        };
        for m in a["macs"].as_array().into_iter().flatten() {
            add("mac", m["address"].as_str().unwrap());
            if let Some(v) = m["vendor"].as_str() {
                add("mac_vendor", v);
            }
        }
        for role in strings(&a["roles"]) {
            if ["mqtt-", "dicom-", "hl7-"]
                .iter()
                .any(|p| role.starts_with(p))
            {
                add("roles", &role);
            }
        }
        for (group, prefix) in [
            ("dicom", "dicom_"),
            ("device", ""),
            ("mqtt", "mqtt_"),
            ("hl7", "hl7_"),
            ("tls", "tls_"),
        ] {
            for (k, v) in a[group].as_object().into_iter().flatten() {
                let kind = match (group, k.as_str()) {
                    // The toolkit is ours (a UID root table), not tshark's.
                    ("dicom", "toolkits") => continue,
                    ("dicom", "implementation_class_uids" | "implementation_version_names") => {
                        k.clone()
                    }
                    _ => format!("{prefix}{k}"),
                };
                for s in strings(v) {
                    add(&kind, &s);
                }
            }
        }
        for c in a["countries"].as_array().into_iter().flatten() {
            add("countries", c["country"].as_str().unwrap());
        }
    }
    f
}

fn expected_dir() -> PathBuf {
    repo().join("tests/expected/assets")
}

fn tshark_facts(caps: &[PathBuf]) -> String {
    String::from_utf8(common::python_tool("asset_tshark.py", caps)).unwrap()
}

/// The frozen facts `name` (`all` or `part`), rewritten from a live run
/// with `WW_REGEN_ASSETS=1`.
fn frozen(name: &str, caps: &[PathBuf]) -> BTreeSet<String> {
    let p = expected_dir().join(format!("{name}.tshark.txt"));
    if std::env::var_os("WW_REGEN_ASSETS").is_some() {
        std::fs::create_dir_all(expected_dir()).unwrap();
        std::fs::write(&p, tshark_facts(caps)).unwrap();
    }
    std::fs::read_to_string(&p)
        .unwrap_or_else(|_| panic!("{} missing", p.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn every_internal_host_has_the_facts_tshark_shows() {
    let records = run_over(&app_captures(), 1, &[]);
    let ours = facts_from_eve(&records);
    let theirs = frozen("all", &app_captures());
    let only_ours: Vec<_> = ours.difference(&theirs).collect();
    let only_theirs: Vec<_> = theirs.difference(&ours).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "only wardwatch: {only_ours:#?}\nonly tshark: {only_theirs:#?}"
    );
    // One snapshot per host, and the hosts are tshark's.
    let mut hosts: Vec<&str> = snapshots(&records)
        .iter()
        .map(|r| r["src_ip"].as_str().unwrap())
        .collect();
    let n = hosts.len();
    hosts.sort_unstable();
    hosts.dedup();
    assert_eq!(hosts.len(), n, "one snapshot per host");
    let tshark_hosts: BTreeSet<&str> = theirs
        .iter()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(hosts.into_iter().collect::<BTreeSet<_>>(), tshark_hosts);
    // Every host with an identifying fact was announced once.
    for r in snapshots(&records) {
        let ip = &r["src_ip"];
        let news = records
            .iter()
            .filter(|x| x["event_type"] == "asset" && x["src_ip"] == *ip)
            .filter(|x| x["asset"]["event"] == "new")
            .count();
        let identified = r["asset"]["roles"].is_array();
        assert_eq!(news, usize::from(identified), "{ip}");
    }
}

#[test]
fn frozen_facts_equal_live_tshark() {
    if !(common::have("tshark") && Path::new("/usr/share/ieee-data/oui.csv").exists()) {
        common::skip("tshark or /usr/share/ieee-data/oui.csv missing; the frozen facts are used");
        return;
    }
    for (name, caps) in [("all", app_captures()), ("part", part_captures())] {
        let live: BTreeSet<String> = tshark_facts(&caps).lines().map(str::to_string).collect();
        assert_eq!(
            live,
            frozen(name, &caps),
            "{name}: tshark decodes differently now: WW_REGEN_ASSETS=1 and review"
        );
    }
}

/// A record without the timing field of `stats`.
fn timeless(mut r: Value) -> String {
    if let Some(s) = r.get_mut("stats").and_then(Value::as_object_mut) {
        s.remove("uptime");
    }
    r.to_string()
}

#[test]
fn one_two_and_three_workers_write_the_same_asset_records_alerts_and_stats() {
    // With a baseline, so that the rules on asset changes fire.
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("baseline.json");
    run_over(
        &part_captures(),
        1,
        &["--inventory", base.to_str().unwrap()],
    );
    let caps = app_captures();
    let of = |w: usize| -> Vec<String> {
        let mut v: Vec<String> =
            run_over(&caps, w, &["--inventory-baseline", base.to_str().unwrap()])
                .into_iter()
                .filter(|r| {
                    r["event_type"] == "asset"
                        || r["event_type"] == "stats"
                        || r["asset"].is_object()
                })
                .map(timeless)
                .collect();
        v.sort();
        v
    };
    let one = of(1);
    assert!(one.len() > 40, "{}", one.len());
    assert!(one.iter().any(|l| l.contains("\"event_type\":\"alert\"")));
    for w in [2, 3] {
        assert_eq!(of(w), one, "1 vs {w} workers");
    }
}

/// Facts by host and kind.
type ByHost = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn by_host(facts: &BTreeSet<String>) -> ByHost {
    let mut m = ByHost::new();
    for l in facts {
        let mut it = l.splitn(3, ' ');
        let (h, k, v) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        m.entry(h.into())
            .or_default()
            .entry(k.into())
            .or_default()
            .insert(v.into());
    }
    m
}

/// The drift a baseline of `part` implies for a run over `all` (see
/// `src/asset/baseline.rs`), as `host finding value` lines.
fn implied_drift(part: &ByHost, all: &ByHost) -> BTreeSet<String> {
    let empty = BTreeMap::new();
    let none = BTreeSet::new();
    let get = |m: &ByHost, h: &str, k: &str| -> BTreeSet<String> {
        m.get(h).unwrap_or(&empty).get(k).unwrap_or(&none).clone()
    };
    let mut owners: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (h, kinds) in part {
        for k in ["dicom_scu_ae_titles", "dicom_scp_ae_titles"] {
            for t in kinds.get(k).unwrap_or(&none) {
                owners.entry(t.clone()).or_default().insert(h.clone());
            }
        }
    }
    let mut d = BTreeSet::new();
    for (h, kinds) in all {
        let known = part.contains_key(h);
        if !known && !get(all, h, "roles").is_empty() {
            d.insert(format!("{h} new-device "));
        }
        for k in ["dicom_scu_ae_titles", "dicom_scp_ae_titles"] {
            for t in kinds.get(k).unwrap_or(&none) {
                if owners.get(t).is_some_and(|o| !o.contains(h)) {
                    d.insert(format!("{h} ae-title-moved {t}"));
                }
            }
        }
        if known {
            for k in [
                "manufacturers",
                "models",
                "software_versions",
                "implementation_version_names",
            ] {
                let before = get(part, h, k);
                if before.is_empty() {
                    continue;
                }
                for v in get(all, h, k).difference(&before) {
                    d.insert(format!("{h} device-changed {v}"));
                }
            }
        }
    }
    d
}

#[test]
fn a_baseline_of_part_of_the_captures_flags_what_the_rest_adds() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("baseline.json");
    let part = run_over(
        &part_captures(),
        1,
        &["--inventory", base.to_str().unwrap()],
    );
    assert!(snapshots(&part)
        .iter()
        .all(|r| r["asset"]["baseline"].is_null()));
    let all = run_over(
        &app_captures(),
        2,
        &["--inventory-baseline", base.to_str().unwrap()],
    );
    let mut seen = BTreeSet::new();
    for r in snapshots(&all) {
        let ip = r["src_ip"].as_str().unwrap();
        for d in r["asset"]["baseline"]["drift"].as_array().unwrap() {
            seen.insert(format!(
                "{ip} {} {}",
                d["finding"].as_str().unwrap(),
                d["value"].as_str().unwrap_or("")
            ));
        }
    }
    let expected = implied_drift(
        &by_host(&frozen("part", &part_captures())),
        &by_host(&frozen("all", &app_captures())),
    );
    // The split has each kind of drift.
    for k in ["new-device", "ae-title-moved", "device-changed"] {
        assert!(expected.iter().any(|l| l.contains(k)), "{k}: {expected:#?}");
    }
    assert_eq!(seen, expected);
    // The default rules raise one alert per difference (a list, not a
    // set: none twice), each with the host as source and the finding's
    // rule, and the hosts' snapshots count them.
    let raised = drift_alerts(&all);
    assert_eq!(raised, expected.iter().cloned().collect::<Vec<_>>());
    for r in snapshots(&all) {
        let ip = r["src_ip"].as_str().unwrap();
        for k in ["new-device", "ae-title-moved", "device-changed"] {
            let alerts = raised
                .iter()
                .filter(|l| l.starts_with(&format!("{ip} {k} ")))
                .count() as u64;
            let counted = r["asset"]["findings"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|f| f["kind"] == k)
                .map_or(0, |f| f["count"].as_u64().unwrap());
            assert_eq!(counted, alerts, "{ip} {k}");
        }
    }
    assert_eq!(
        stats_of(&all)["asset"]["alerts"].as_u64().unwrap() as usize,
        raised.len()
    );
    // detect.alert counts every alert line, the inventory's included.
    let alert_lines = all.iter().filter(|r| r["event_type"] == "alert").count();
    assert!(
        alert_lines > raised.len(),
        "the captures raise other alerts too"
    );
    assert_eq!(
        stats_of(&all)["detect"]["alert"].as_u64().unwrap() as usize,
        alert_lines
    );
    // Records and alerts are Suricata's EVE with our declared additions.
    let lines: Vec<u8> = all
        .iter()
        .flat_map(|r| format!("{r}\n").into_bytes())
        .collect();
    if let Some(r) = schema_check(&lines) {
        r.unwrap_or_else(|e| panic!("{e}"));
    }
    // A CSV baseline says the same.
    let csv = dir.path().join("baseline.csv");
    run_over(&part_captures(), 1, &["--inventory", csv.to_str().unwrap()]);
    let again = run_over(
        &app_captures(),
        1,
        &["--inventory-baseline", csv.to_str().unwrap()],
    );
    let drift = |rs: &[Value]| -> Vec<String> {
        let mut v: Vec<String> = snapshots(rs)
            .iter()
            .map(|r| r["asset"]["baseline"].to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(drift(&again), drift(&all));
    // With one worker as with two.
    assert_eq!(drift_alerts(&again), raised);
}

/// The alerts of the default asset rules, as `host finding value` lines
/// (sorted), each checked against the rule that raised it.
fn drift_alerts(records: &[Value]) -> Vec<String> {
    let sids = [
        ("new-device", 9420060),
        ("ae-title-moved", 9420061),
        ("device-changed", 9420062),
    ];
    let mut v: Vec<String> = records
        .iter()
        .filter(|r| r["event_type"] == "alert" && r["asset"].is_object())
        .map(|r| {
            let finding = r["alert"]["metadata"]["finding"][0].as_str().unwrap();
            let sid = sids.iter().find(|(f, _)| *f == finding).unwrap().1;
            assert_eq!(r["alert"]["signature_id"], sid, "{r}");
            assert_eq!(r["src_ip"], r["asset"]["ip"], "{r}");
            let drift = r["asset"]["baseline"]["drift"].as_array().unwrap();
            assert_eq!(drift.len(), 1, "{r}");
            assert_eq!(drift[0]["finding"], finding, "{r}");
            format!(
                "{} {finding} {}",
                r["src_ip"].as_str().unwrap(),
                drift[0]["value"].as_str().unwrap_or("")
            )
        })
        .collect();
    v.sort();
    v
}

fn stats_of(records: &[Value]) -> &Value {
    &records
        .iter()
        .rev()
        .find(|r| r["event_type"] == "stats")
        .unwrap()["stats"]
}

#[test]
fn no_patient_data_enters_an_asset_record() {
    // The synthetic identities of pcaps/README.md.
    const PHI: [&str; 9] = [
        "TEST^JANE",
        "DOE^JOHN",
        "TEST^ALEX",
        "MRN-TEST-",
        "1900-01-0",
        "19000101",
        "200017511299931",
        "100017511299882",
        "111222333",
    ];
    let demo = repo().join("pcaps/demo.yaml");
    let records = run_over(&app_captures(), 1, &["-c", demo.to_str().unwrap()]);
    let assets: Vec<String> = records
        .iter()
        .filter(|r| r["event_type"] == "asset")
        .map(Value::to_string)
        .collect();
    assert!(assets.len() > 40);
    for a in &assets {
        for p in PHI {
            assert!(!a.contains(p), "{p} in {a}");
        }
    }
}

#[test]
fn full_tables_and_lists_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("small.yaml");
    std::fs::write(&cfg, "asset:\n  max_hosts: 3\n  max_values: 2\n").unwrap();
    let records = run_over(&app_captures(), 1, &["-c", cfg.to_str().unwrap()]);
    let snaps = snapshots(&records);
    assert_eq!(snaps.len(), 3);
    let stats = &records.last().unwrap()["stats"]["asset"];
    assert_eq!(stats["hosts"], 3);
    assert!(
        stats["hosts_dropped"].as_u64().unwrap() + stats["hosts_evicted"].as_u64().unwrap() > 0
    );
    assert!(stats["lists_truncated"].as_u64().unwrap() > 0);
    for r in snaps {
        for (_, group) in r["asset"].as_object().unwrap() {
            for (_, list) in group.as_object().into_iter().flatten() {
                assert!(list.as_array().is_none_or(|l| l.len() <= 2), "{r}");
            }
        }
        if let Some(l) = r["asset"]["roles"].as_array() {
            assert!(l.len() <= 2);
        }
    }
}
