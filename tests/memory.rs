//! Memory budgets acting on a real capture (issue 11, "How it is checked":
//! a cap hit on a small crafted input is counted, the evidence before it is
//! kept, and the run ends normally).
//!
//! `flow.memcap`: a SYN flood (hand-built frames with valid checksums, one
//! source per SYN in 10.99.0.0/16, to the broker of the capture) sent
//! before or after `mqtt_v311_anon_phi.pcap`, under a budget of 64 KiB —
//! 261 flows for one worker, 130 for each of two. The expected alerts are
//! those `tests/alerts.rs` derives by hand from `pcaps/README.md` for the
//! capture (7 anonymous logins from 3 hosts, one alert per host; 7 flows
//! carrying patient data), the records those of the run without the flood.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use common::{normalised, parse_lines, repo, run};

/// A little-endian microsecond pcap (what tcpdump wrote in `pcaps/`): its
/// 24-byte header and its records (seconds, microseconds, frame).
struct Pcap {
    header: Vec<u8>,
    packets: Vec<(u32, u32, Vec<u8>)>,
}

impl Pcap {
    fn read(path: &Path) -> Pcap {
        let b = std::fs::read(path).unwrap();
        assert_eq!(&b[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "{}", path.display());
        let le = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        let mut packets = Vec::new();
        let mut at = 24;
        while at + 16 <= b.len() {
            let caplen = le(at + 8) as usize;
            packets.push((le(at), le(at + 4), b[at + 16..at + 16 + caplen].to_vec()));
            at += 16 + caplen;
        }
        Pcap {
            header: b[..24].to_vec(),
            packets,
        }
    }

    fn write(&self, path: &Path) {
        let mut out = self.header.clone();
        for (s, us, f) in &self.packets {
            let len = (f.len() as u32).to_le_bytes();
            out.extend_from_slice(&s.to_le_bytes());
            out.extend_from_slice(&us.to_le_bytes());
            out.extend_from_slice(&len); // captured length
            out.extend_from_slice(&len); // wire length
            out.extend_from_slice(f);
        }
        std::fs::write(path, out).unwrap();
    }
}

/// SYN floods in these tests, and where they come from.
const FLOOD: usize = 3000;
const FLOOD_NET: &str = "10.99.";

/// RFC 1071 one's complement sum of big-endian words.
fn ones_sum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for p in parts {
        for w in p.chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Hand-built SYN `i`: Ethernet, IPv4 from 10.99.x.y to `dst`, TCP from
/// port 40000 to 1883, checksums right.
fn syn(i: usize, dst: [u8; 4]) -> Vec<u8> {
    let src = [10, 99, (i >> 8) as u8, i as u8];
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&40000u16.to_be_bytes()); // source port
    tcp.extend_from_slice(&1883u16.to_be_bytes()); // destination port
    tcp.extend_from_slice(&(i as u32).to_be_bytes()); // sequence number
    tcp.extend_from_slice(&[0, 0, 0, 0]); // ack number
    tcp.extend_from_slice(&[0x50, 0x02]); // data offset 5, SYN
    tcp.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]); // window, checksum, urgent
    let pseudo = [&src[..], &dst[..], &[0, 6, 0, 20]].concat();
    let c = !ones_sum(&[&pseudo, &tcp]);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]; // IPv4, 40 bytes, DF, TTL 64, TCP
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = !ones_sum(&[&ip]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = vec![
        0x02, 0, 0, 0, 0, 0x10, 0x02, 0, 0, 0, 0x99, 0x01, 0x08, 0x00,
    ]; // dst, src MAC, IPv4
    f.extend_from_slice(&ip);
    f.extend_from_slice(&tcp);
    f
}

/// The capture with the flood before its first packet or after its last,
/// one second away, one SYN per microsecond.
fn with_flood(p: &Pcap, before: bool) -> Pcap {
    let broker = [10, 10, 5, 10];
    let at = if before {
        p.packets[0].0 - 1
    } else {
        p.packets.last().unwrap().0 + 1
    };
    let flood = (0..FLOOD).map(|i| (at, i as u32, syn(i, broker)));
    let mut packets = Vec::new();
    if before {
        packets.extend(flood);
        packets.extend(p.packets.iter().cloned());
    } else {
        packets.extend(p.packets.iter().cloned());
        packets.extend(flood);
    }
    Pcap {
        header: p.header.clone(),
        packets,
    }
}

fn records(path: &Path, workers: usize, config: &Path) -> Vec<Value> {
    let w = workers.to_string();
    let out = run(&[
        "-r",
        path.to_str().unwrap(),
        "--workers",
        &w,
        "-c",
        config.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_lines(&out.stdout)
}

fn from_flood(r: &Value) -> bool {
    [&r["src_ip"], &r["dest_ip"]]
        .iter()
        .any(|a| a.as_str().is_some_and(|a| a.starts_with(FLOOD_NET)))
}

/// Records of the real flows of `event_type` (all but flow, stats and
/// asset records when `None`: a host's asset record sums all its traffic,
/// the flood's included, and is compared by [`findings`]).
fn real(recs: &[Value], event_type: Option<&str>) -> Vec<String> {
    let v: Vec<Value> = recs
        .iter()
        .filter(|r| !from_flood(r))
        .filter(|r| match event_type {
            Some(t) => r["event_type"] == t,
            None => !matches!(r["event_type"].as_str(), Some("flow" | "stats" | "asset")),
        })
        .cloned()
        .collect();
    normalised(&v)
}

/// Each host's findings in its final asset record: what the flood must
/// not take away from the inventory.
fn findings(recs: &[Value]) -> BTreeMap<String, Value> {
    recs.iter()
        .filter(|r| !from_flood(r))
        .filter(|r| r["event_type"] == "asset" && r["asset"]["event"] == "snapshot")
        .map(|r| (r["src_ip"].to_string(), r["asset"]["findings"].clone()))
        .collect()
}

fn alerts(recs: &[Value]) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for r in recs.iter().filter(|r| r["event_type"] == "alert") {
        *m.entry(r["alert"]["signature_id"].as_u64().unwrap())
            .or_insert(0) += 1;
    }
    m
}

fn stats(recs: &[Value]) -> &Value {
    &recs
        .iter()
        .rev()
        .find(|r| r["event_type"] == "stats")
        .expect("a stats record")["stats"]
}

#[test]
fn syn_flood_over_flow_memcap_evicts_idle_flows_and_keeps_every_finding() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("small.yaml");
    std::fs::write(&config, "flow:\n  memcap: 64kb\n").unwrap();
    let original = repo().join("pcaps/mqtt_v311_anon_phi.pcap");
    let p = Pcap::read(&original);
    let want = records(&original, 1, &config);
    // tests/alerts.rs: anonymous login (sid 9420003) once per host, PHI in
    // MQTT (9420020) once per flow.
    let expected = BTreeMap::from([(9420003, 3), (9420020, 7)]);
    assert_eq!(alerts(&want), expected);
    assert_eq!(stats(&want)["flow"]["memcap"], 0);
    let real_flows = real(&want, Some("flow")).len();
    assert!(real_flows >= 7, "{real_flows}");
    for before in [true, false] {
        let path = dir.path().join(format!("flood_before_{before}.pcap"));
        with_flood(&p, before).write(&path);
        for workers in [1, 2] {
            let got = records(&path, workers, &config);
            let what = format!("flood before: {before}, {workers} workers");
            assert_eq!(alerts(&got), expected, "{what}");
            assert_eq!(real(&got, None), real(&want, None), "{what}");
            assert_eq!(findings(&got), findings(&want), "{what}");
            let flows: Vec<&Value> = got
                .iter()
                .filter(|r| r["event_type"] == "flow" && !from_flood(r))
                .collect();
            assert_eq!(flows.len(), real_flows, "{what}");
            // Room for 261 flows (130 per worker): most of the flood was
            // evicted, each eviction counted once.
            let s = stats(&got);
            let evicted = s["flow"]["memcap"].as_u64().unwrap();
            assert!(evicted >= (FLOOD - 261) as u64, "{what}: {evicted}");
            assert_eq!(s["flow"]["total"], (FLOOD + real_flows) as u64, "{what}");
            let forced = got
                .iter()
                .filter(|r| r["event_type"] == "flow" && r["flow"]["reason"] == "forced")
                .count() as u64;
            assert_eq!(forced, evicted, "{what}");
            if before {
                // The real flows came last and were seen last: none was
                // evicted, their flow records are as without the flood.
                assert_eq!(
                    real(&got, Some("flow")),
                    real(&want, Some("flow")),
                    "{what}"
                );
            } else {
                // Idle when the flood came: ended by eviction, records
                // written as for any other end.
                assert!(
                    flows.iter().all(|f| f["flow"]["reason"] == "forced"),
                    "{what}"
                );
            }
        }
    }
}
