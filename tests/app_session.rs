//! The app-layer session on real captures made worse the way a mirror port
//! or an attacker makes them: the CONNECT segment lost, a pickup that starts
//! with the broker's packet, a one-way copy whose data stays out of order
//! until the flow ends. Each variant is the committed capture with whole
//! packets removed (nothing else changes), written to a temporary file and
//! given to the real binary; the MQTT messages wardwatch logs per flow are
//! compared with tshark's decode of the same file (an independent
//! decoder), and the flow's orientation with the capture's handshake.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{have, parse_lines, repo, run};
use serde_json::Value;

/// A classic little-endian pcap file's packets (record header and bytes).
fn packets(capture: &str) -> (Vec<u8>, Vec<Vec<u8>>) {
    let data = std::fs::read(repo().join("pcaps").join(capture)).unwrap();
    assert_eq!(&data[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
    let header = data[..24].to_vec();
    let mut pkts = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let incl = u32::from_le_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
        pkts.push(data[at..at + 16 + incl].to_vec());
        at += 16 + incl;
    }
    (header, pkts)
}

/// Writes `capture` without the packets (numbered from 1, as tshark does)
/// for which `drop` holds.
fn variant(capture: &str, name: &str, drop: impl Fn(usize) -> bool) -> PathBuf {
    let (header, pkts) = packets(capture);
    let mut out = header;
    for (i, p) in pkts.iter().enumerate() {
        if !drop(i + 1) {
            out.extend_from_slice(p);
        }
    }
    let dir = std::env::temp_dir().join(format!("ww-app-session-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.pcap"));
    std::fs::write(&path, out).unwrap();
    path
}

fn eve(path: &Path) -> Vec<Value> {
    let out = run(&["-r", path.to_str().unwrap(), "--workers", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_lines(&out.stdout)
}

/// Whether tshark can be used; in CI its absence is a failure.
fn tshark_here() -> bool {
    if have("tshark") {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "tshark is required in CI for the app-session tests"
    );
    eprintln!("SKIPPED: tshark not installed");
    false
}

/// MQTT control packet names by type, as our records nest them.
const NAMES: [&str; 16] = [
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

/// tshark's MQTT message types per client port, sorted.
fn tshark_types(
    path: &Path,
    port: u16,
    client_port: &dyn Fn(u16, u16) -> u16,
) -> BTreeMap<u16, Vec<u8>> {
    let out = Command::new("tshark")
        .args([
            "-r",
            path.to_str().unwrap(),
            "-d",
            &format!("tcp.port=={port},mqtt"),
        ])
        .args([
            "-T",
            "fields",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "mqtt.msgtype",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut m: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 3 || f[2].is_empty() {
            continue;
        }
        let (s, d): (u16, u16) = (f[0].parse().unwrap(), f[1].parse().unwrap());
        for t in f[2].split(',') {
            m.entry(client_port(s, d))
                .or_default()
                .push(t.parse().unwrap());
        }
    }
    for v in m.values_mut() {
        v.sort_unstable();
    }
    m
}

/// Our MQTT message types per client port, sorted; every record must be
/// oriented by who sent it: a broker-started record (`direction`
/// `to_client`) from the broker's port, the others to it.
fn our_types(recs: &[Value], port: u16) -> BTreeMap<u16, Vec<u8>> {
    let mut m: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
    for r in recs.iter().filter(|r| r["event_type"] == "mqtt") {
        let (broker, client) = if r["direction"] == "to_client" {
            ("src_port", "dest_port")
        } else {
            ("dest_port", "src_port")
        };
        assert_eq!(r[broker], port, "record oriented by its sender: {r}");
        let client = r[client].as_u64().unwrap() as u16;
        let obj = r["mqtt"].as_object().unwrap();
        for (t, name) in NAMES.iter().enumerate().skip(1) {
            if obj.contains_key(*name) {
                m.entry(client).or_default().push(t as u8);
            }
        }
    }
    for v in m.values_mut() {
        v.sort_unstable();
    }
    m
}

fn client_is_not(port: u16) -> impl Fn(u16, u16) -> u16 {
    move |s, d| if s == port { d } else { s }
}

fn flow_of(recs: &[Value], client_port: u16) -> Value {
    recs.iter()
        .find(|r| {
            r["event_type"] == "flow"
                && (r["src_port"] == client_port || r["dest_port"] == client_port)
        })
        .cloned()
        .unwrap_or_else(|| panic!("no flow of client port {client_port}"))
}

#[test]
fn lost_connect_segment_still_logs_connack_publish_puback() {
    // mqtt_nonstd_port, flow 10.20.1.15:60320 → broker:8080 (frames
    // 11–25): frame 14 is the CONNECT. Port 8080 is configured for no
    // protocol: the session must find MQTT in the bytes after the gap.
    let path = variant("mqtt_nonstd_port.pcap", "no_connect", |n| n == 14);
    let recs = eve(&path);
    let ours = our_types(&recs, 8080);
    assert_eq!(ours.get(&60320), Some(&vec![2, 3, 4, 14]), "{ours:?}");
    let flow = flow_of(&recs, 60320);
    assert_eq!(flow["app_proto"], "mqtt");
    assert_eq!(flow["tcp"]["ts_gap"], true, "the CONNECT was lost");
    if tshark_here() {
        assert_eq!(ours, tshark_types(&path, 8080, &client_is_not(8080)));
    }
}

#[test]
fn pickup_at_the_brokers_first_packet_is_oriented_and_decoded() {
    // Flow 60320 of mqtt_nonstd_port seen from frame 16 (the broker's
    // CONNACK) on: no handshake, and the broker's port 8080 is configured
    // for nothing, so only the bytes can say the broker is the server.
    let path = variant("mqtt_nonstd_port.pcap", "pickup_8080", |n| {
        (11..=15).contains(&n)
    });
    let recs = eve(&path);
    let ours = our_types(&recs, 8080);
    assert_eq!(ours.get(&60320), Some(&vec![2, 3, 4, 14]), "{ours:?}");
    let flow = flow_of(&recs, 60320);
    assert_eq!(flow["src_ip"], "10.20.1.15");
    assert_eq!(flow["dest_port"], 8080);
    assert_eq!(flow["app_proto"], "mqtt");
    // Client: PUBLISH, DISCONNECT, FIN, ACK (frames 18, 22, 24 and 17).
    assert_eq!(flow["flow"]["pkts_toserver"], 4);
    assert_eq!(flow["flow"]["pkts_toclient"], 4);
    if tshark_here() {
        assert_eq!(ours, tshark_types(&path, 8080, &client_is_not(8080)));
    }

    // mqtt_v311_anon_phi, flow :40138 → broker:1883 seen from frame 16
    // (CONNACK) on: the configured port says who the broker is.
    let path = variant("mqtt_v311_anon_phi.pcap", "pickup_1883", |n| {
        (11..=15).contains(&n)
    });
    let recs = eve(&path);
    let ours = our_types(&recs, 1883);
    assert!(ours
        .get(&40138)
        .is_some_and(|t| t.contains(&2) && t.contains(&3)));
    let flow = flow_of(&recs, 40138);
    assert_eq!(flow["dest_port"], 1883);
    assert_eq!(flow["app_proto"], "mqtt");
    if tshark_here() {
        assert_eq!(ours, tshark_types(&path, 1883, &client_is_not(1883)));
    }
}

#[test]
fn one_way_data_held_until_the_end_is_parsed() {
    // Flow 60320 of mqtt_nonstd_port, client → broker only and without the
    // CONNECT (frame 14): the PUBLISH and DISCONNECT wait behind a hole no
    // ACK ever explains, until the flow ends. They are parsed then.
    let path = variant("mqtt_nonstd_port.pcap", "one_way_held", |n| {
        !matches!(n, 11 | 13 | 17 | 18 | 22 | 24)
    });
    let recs = eve(&path);
    let ours = our_types(&recs, 8080);
    assert_eq!(ours.get(&60320), Some(&vec![3, 14]), "{ours:?}");
    assert_eq!(flow_of(&recs, 60320)["app_proto"], "mqtt");
    if tshark_here() {
        assert_eq!(ours, tshark_types(&path, 8080, &client_is_not(8080)));
    }
}

#[test]
fn variants_give_the_same_output_for_one_two_and_three_workers() {
    for (name, cap, drop) in [
        ("w_no_connect", "mqtt_nonstd_port.pcap", 14..=14),
        ("w_pickup", "mqtt_nonstd_port.pcap", 11..=15),
    ] {
        let path = variant(cap, name, |n| drop.contains(&n));
        let runs: Vec<Vec<String>> = (1..=3)
            .map(|w| {
                let out = run(&["-r", path.to_str().unwrap(), "--workers", &w.to_string()]);
                common::normalised(&parse_lines(&out.stdout))
            })
            .collect();
        assert_eq!(runs[0], runs[1], "{name}");
        assert_eq!(runs[0], runs[2], "{name}");
    }
}
