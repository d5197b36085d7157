//! The decode stage end to end: checksum validation (issue 10, item 1: the
//! bad-checksum decoy; checksum offload) and defragmentation under a flood
//! of fragments that never complete (issue 10, item 8; `defrag.memcap`).
//!
//! Checksums. The captures are real (`pcaps/README.md`); the decoys are hand-built
//! here, in memory: before every TCP segment that carries data, a copy of
//! it with the same headers and sequence number, its payload replaced by
//! garbage of the same length and its TCP checksum made wrong. The
//! receiving host drops such a segment; if wardwatch kept it, reassembly
//! would keep the first copy and every credential and PHI finding would
//! vanish. The decoys are checked against a plain RFC 1071 computation
//! written here, independent of `src/decode/checksum.rs`.
//!
//! Fragments. 20 000 hand-built first fragments (offset 0, more to come,
//! never completed) in front of the real fragmented exchanges of
//! `frag_ipv4_udp.pcap` and `tcp_ipv6.pcap`: every record of the real
//! traffic must come out as without the flood.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use serde_json::Value;

use common::{normalised, parse_lines, repo, run};

/// A classic pcap file: its 24-byte header and its records (16-byte record
/// header, frame bytes).
struct Pcap {
    header: Vec<u8>,
    records: Vec<([u8; 16], Vec<u8>)>,
}

/// Reads a little-endian microsecond pcap (what tcpdump wrote here).
fn read_pcap(path: &Path) -> Pcap {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "{}", path.display());
    let mut records = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let hdr: [u8; 16] = b[at..at + 16].try_into().unwrap();
        let caplen = u32::from_le_bytes(hdr[8..12].try_into().unwrap()) as usize;
        records.push((hdr, b[at + 16..at + 16 + caplen].to_vec()));
        at += 16 + caplen;
    }
    Pcap {
        header: b[..24].to_vec(),
        records,
    }
}

fn write_pcap(path: &Path, p: &Pcap) {
    let mut out = p.header.clone();
    for (hdr, data) in &p.records {
        out.extend_from_slice(hdr);
        out.extend_from_slice(data);
    }
    std::fs::write(path, out).unwrap();
}

/// RFC 1071 one's complement sum, big-endian words, the plain way.
fn ones_sum(parts: &[&[u8]]) -> u16 {
    let all = parts.concat();
    let mut s: u32 = 0;
    for c in all.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The offsets of an Ethernet/IPv4/TCP frame's TCP header and payload, or
/// `None` for anything else (or a segment without data).
fn tcp_data(f: &[u8]) -> Option<(usize, usize, usize)> {
    if f.len() < 14 + 20 || f[12..14] != [0x08, 0x00] || f[14 + 9] != 6 {
        return None;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let tcp = 14 + ihl;
    let data = tcp + usize::from(f[tcp + 12] >> 4) * 4;
    let end = 14 + total;
    (data < end).then_some((tcp, data, end))
}

/// The TCP checksum the segment at `tcp..end` of `f` should carry.
fn tcp_checksum(f: &[u8], tcp: usize, end: usize) -> u16 {
    let mut seg = f[tcp..end].to_vec();
    seg[16..18].copy_from_slice(&[0, 0]);
    let len = ((end - tcp) as u16).to_be_bytes();
    !ones_sum(&[&f[26..34], &[0, 6], &len, &seg])
}

/// Hand-built decoy of a real data segment: same Ethernet, IPv4 (valid
/// header checksum: unchanged) and TCP headers, garbage payload, and a TCP
/// checksum that is wrong for it (the right one with bits flipped).
fn decoy(f: &[u8]) -> Option<Vec<u8>> {
    let (tcp, data, end) = tcp_data(f)?;
    let mut d = f.to_vec();
    for (i, b) in d[data..end].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0xa5; // garbage
    }
    let wrong = tcp_checksum(&d, tcp, end) ^ 0x5a5a;
    d[tcp + 16..tcp + 18].copy_from_slice(&wrong.to_be_bytes());
    Some(d)
}

/// The capture with a decoy before every TCP data segment, and how many
/// decoys it got.
fn with_decoys(p: &Pcap) -> (Pcap, usize) {
    let mut records = Vec::new();
    let mut n = 0;
    for (hdr, data) in &p.records {
        if let Some(d) = decoy(data) {
            // The same record header: same time, same lengths.
            records.push((*hdr, d));
            n += 1;
        }
        records.push((*hdr, data.clone()));
    }
    (
        Pcap {
            header: p.header.clone(),
            records,
        },
        n,
    )
}

/// EVE records of a run over `path` with `workers` workers and, if given,
/// a configuration file.
fn records(path: &Path, workers: usize, config: Option<&Path>) -> Vec<Value> {
    let w = workers.to_string();
    let mut args = vec!["-r", path.to_str().unwrap(), "--workers", &w];
    if let Some(c) = config {
        args.extend(["-c", c.to_str().unwrap()]);
    }
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_lines(&out.stdout)
}

/// Everything but the stats record, normalised.
fn findings(recs: &[Value]) -> Vec<String> {
    let v: Vec<Value> = recs
        .iter()
        .filter(|r| r["event_type"] != "stats")
        .cloned()
        .collect();
    normalised(&v)
}

fn stats(recs: &[Value]) -> &Value {
    &recs
        .iter()
        .rev()
        .find(|r| r["event_type"] == "stats")
        .expect("a stats record")["stats"]
}

fn alert_count(recs: &[Value]) -> usize {
    recs.iter().filter(|r| r["event_type"] == "alert").count()
}

#[test]
fn decoys_sent_before_every_data_segment_do_not_hide_any_finding() {
    let dir = tempfile::tempdir().unwrap();
    let no_checks = dir.path().join("no_checks.yaml");
    std::fs::write(&no_checks, "decoder:\n  checksum_checks: no\n").unwrap();
    for name in ["mqtt_v31_default_creds.pcap", "dicom_store_phi.pcap"] {
        let original = repo().join("pcaps").join(name);
        let p = read_pcap(&original);
        // The real segments carry right checksums (what the decoys are
        // told apart by).
        for (_, f) in &p.records {
            if let Some((tcp, _, end)) = tcp_data(f) {
                let field = u16::from_be_bytes([f[tcp + 16], f[tcp + 17]]);
                assert_eq!(field, tcp_checksum(f, tcp, end), "{name}");
            }
        }
        let (decoyed, n) = with_decoys(&p);
        assert!(n >= 5, "{name}: only {n} data segments");
        let path = dir.path().join(name);
        write_pcap(&path, &decoyed);

        let want = records(&original, 1, None);
        assert!(alert_count(&want) >= 2, "{name}: the capture has findings");
        for workers in [1, 2] {
            let got = records(&path, workers, None);
            // Alerts, app records and flows (packet counts included) are
            // exactly the original's: the decoys never got past decoding.
            assert_eq!(findings(&got), findings(&want), "{name}, {workers} workers");
            let s = stats(&got);
            assert_eq!(s["tcp"]["invalid_checksum"], n as u64, "{name}");
            assert_eq!(s["decoder"]["pkts"], (p.records.len() + n) as u64, "{name}");
            assert!(s["decoder"].get("invalid").is_none(), "{name}: {s}");
            assert!(s["decoder"].get("checksum_offload_detected").is_none());
        }
        // The control: without validation the decoys win (first copy
        // kept) and findings are lost, so the test above can fail.
        let blind = records(&path, 1, Some(&no_checks));
        assert!(
            alert_count(&blind) < alert_count(&want),
            "{name}: decoys had no effect without validation"
        );
    }
}

/// `pcaps/offload_sender.pcap` (`pcaps/gen_offload.sh`), taken on a host
/// with transmit checksum offload on. `tshark -o tcp.check_checksum:TRUE -o
/// udp.check_checksum:TRUE` finds 7 TCP segments (SYN, ACKs, CONNECT,
/// PUBLISH, DISCONNECT, FIN) and 1 UDP datagram from the gateway 10.31.0.15
/// with wrong checksums (the pseudo-header sum only), every other checksum
/// right, and 5 MQTT messages: CONNECT (admin/admin), CONNACK, PUBLISH
/// (an HL7 ORU^R01 with a PID segment), PUBACK, DISCONNECT. The last test
/// checks these numbers against tshark where it is installed.
const OFFLOAD: &str = "offload_sender.pcap";
const OFFLOAD_BAD_TCP: u64 = 7;
const OFFLOAD_BAD_UDP: u64 = 1;

/// The message types of the `mqtt` records, in order.
fn mqtt_types(recs: &[Value]) -> Vec<String> {
    recs.iter()
        .filter(|r| r["event_type"] == "mqtt")
        .map(|r| {
            let mut k: Vec<&String> = r["mqtt"].as_object().unwrap().keys().collect();
            k.sort();
            k.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("+")
        })
        .collect()
}

fn alert_sids(recs: &[Value]) -> Vec<u64> {
    let mut v: Vec<u64> = recs
        .iter()
        .filter(|r| r["event_type"] == "alert")
        .map(|r| r["alert"]["signature_id"].as_u64().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn auto_recognises_offload_and_keeps_every_record_the_traffic_carries() {
    let cap = repo().join("pcaps").join(OFFLOAD);
    let one = records(&cap, 1, None);
    let s = stats(&one);
    assert_eq!(s["decoder"]["checksum_offload_detected"], 1, "{s}");
    assert!(s["tcp"].get("invalid_checksum").is_none(), "{s}");
    assert!(s["decoder"].get("event").is_none(), "{s}");
    assert_eq!(
        mqtt_types(&one),
        ["connack+connect", "puback+publish", "disconnect"]
    );
    // Default credentials accepted, password in clear text, PHI
    // (rules/medical.rules sids 9420001, 9420004, 9420020).
    assert_eq!(alert_sids(&one), [9420001, 9420004, 9420020]);
    // The decision is the same with two workers and through a pipe.
    let two = records(&cap, 2, None);
    assert_eq!(normalised(&two), normalised(&one));
    let out = common::bin()
        .args(["-r", "-", "--eve", "-", "-q", "--workers", "2"])
        .stdin(std::fs::File::open(&cap).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(normalised(&parse_lines(&out.stdout)), normalised(&one));
    // Said once on stderr.
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("checksum offload").count(), 1, "{err}");
}

#[test]
fn yes_drops_the_offloaded_packets_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let yes = dir.path().join("yes.yaml");
    std::fs::write(&yes, "decoder:\n  checksum_checks: yes\n").unwrap();
    let cap = repo().join("pcaps").join(OFFLOAD);
    for workers in [1, 2] {
        let recs = records(&cap, workers, Some(&yes));
        let s = stats(&recs);
        assert_eq!(s["tcp"]["invalid_checksum"], OFFLOAD_BAD_TCP, "{s}");
        assert_eq!(
            s["decoder"]["event"]["udp"]["invalid_checksum"], OFFLOAD_BAD_UDP,
            "{s}"
        );
        assert!(s["decoder"].get("checksum_offload_detected").is_none());
        // Nothing the gateway sent reached the app layer: no CONNECT, no
        // PUBLISH, so none of the three findings.
        let types = mqtt_types(&recs);
        assert!(
            types
                .iter()
                .all(|t| !t.contains("connect") && !t.contains("publish")),
            "{types:?}"
        );
        assert_eq!(alert_sids(&recs), Vec::<u64>::new());
    }
}

#[test]
fn offload_capture_numbers_are_what_tshark_says() {
    if !common::have("tshark") {
        assert!(std::env::var_os("CI").is_none(), "tshark is needed in CI");
        eprintln!("SKIPPED: tshark not installed");
        return;
    }
    let cap = repo().join("pcaps").join(OFFLOAD);
    let count = |filter: &str| {
        let out = std::process::Command::new("tshark")
            .args(["-r", cap.to_str().unwrap()])
            .args([
                "-o",
                "tcp.check_checksum:TRUE",
                "-o",
                "udp.check_checksum:TRUE",
            ])
            .args(["-Y", filter, "-T", "fields", "-e", "frame.number"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count() as u64
    };
    assert_eq!(count("tcp.checksum.status == 0"), OFFLOAD_BAD_TCP);
    assert_eq!(count("udp.checksum.status == 0"), OFFLOAD_BAD_UDP);
    assert_eq!(count("ip.src == 10.31.0.10 && tcp.checksum.status == 0"), 0);
    assert_eq!(count("mqtt"), 5);
    assert_eq!(count("mqtt.msgtype == 1 && mqtt.username == \"admin\""), 1);
}

/// Hand-built flood frame `i`: Ethernet, then an IPv4 first fragment
/// (identification `i`, MF set, offset 0, protocol UDP, valid header
/// checksum) from 10.99.x.y, or an IPv6 packet whose fragment header says
/// offset 0, M set, identification `i`, next header UDP, from fd00:99::x:y;
/// then 1480 (IPv4) or 1448 (IPv6) bytes of filler, like a first fragment
/// on a 1500-byte link.
fn flood_frame(v6: bool, i: u32) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x10, 0x02, 0, 0, 0, 0x99, 0x01]; // dst, src MAC
    if v6 {
        f.extend_from_slice(&[0x86, 0xdd]); // ethertype IPv6
        f.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, class, flow label
        f.extend_from_slice(&(8u16 + 1448).to_be_bytes()); // payload length
        f.extend_from_slice(&[44, 64]); // next header: fragment; hop limit
        f.extend_from_slice(&[0xfd, 0, 0, 0x99, 0, 0, 0, 0, 0, 0, 0, 0]); // source fd00:99::
        f.extend_from_slice(&i.to_be_bytes()); // … ::x:y
        f.extend_from_slice(&[0xfd, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10]); // dest fd00:10::10
        f.extend_from_slice(&[17, 0]); // fragment header: next UDP, reserved
        f.extend_from_slice(&[0x00, 0x01]); // offset 0, M = 1
        f.extend_from_slice(&i.to_be_bytes()); // identification
        f.extend_from_slice(&[0x5a; 1448]); // filler
    } else {
        f.extend_from_slice(&[0x08, 0x00]); // ethertype IPv4
        let mut ip = vec![0x45, 0]; // version 4, IHL 5, TOS
        ip.extend_from_slice(&(20u16 + 1480).to_be_bytes()); // total length
        ip.extend_from_slice(&(i as u16).to_be_bytes()); // identification
        ip.extend_from_slice(&[0x20, 0x00]); // MF, offset 0
        ip.extend_from_slice(&[64, 17, 0, 0]); // TTL, UDP, checksum (below)
        ip.extend_from_slice(&[10, 99, (i >> 8) as u8, i as u8]); // source
        ip.extend_from_slice(&[10, 18, 0, 10]); // destination
        let c = !ones_sum(&[&ip]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0x5a; 1480]); // filler
    }
    f
}

/// The capture with `n` flood frames in front, all at the first real
/// packet's time (so none has timed out when the real fragments come).
fn with_flood(p: &Pcap, v6: bool, n: u32) -> Pcap {
    let mut records = Vec::new();
    let first = p.records[0].0;
    for i in 0..n {
        let f = flood_frame(v6, i);
        let mut hdr = first;
        hdr[8..12].copy_from_slice(&(f.len() as u32).to_le_bytes()); // caplen
        hdr[12..16].copy_from_slice(&(f.len() as u32).to_le_bytes()); // wire length
        records.push((hdr, f));
    }
    records.extend(p.records.iter().cloned());
    Pcap {
        header: p.header.clone(),
        records,
    }
}

#[test]
fn fragment_flood_does_not_lock_out_the_real_datagrams() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.yaml");
    std::fs::write(&small, "defrag:\n  memcap: 1mb\n").unwrap();
    // tshark reassembles 5 datagrams in frag_ipv4_udp.pcap (3 UDP, an ICMP
    // echo and reply) and 4 in tcp_ipv6.pcap (2 UDP, an ICMPv6 echo and
    // reply); pcaps/README-link.md.
    for (v6, name, reassembled) in [
        (false, "frag_ipv4_udp.pcap", 5u64),
        (true, "tcp_ipv6.pcap", 4),
    ] {
        let original = repo().join("pcaps").join(name);
        let want = records(&original, 1, None);
        let ip = if v6 { "ipv6" } else { "ipv4" };
        assert_eq!(stats(&want)["defrag"][ip]["reassembled"], reassembled);
        let path = dir.path().join(name);
        write_pcap(&path, &with_flood(&read_pcap(&original), v6, 20_000));
        for (workers, config) in [(1, None), (2, None), (1, Some(small.as_path()))] {
            let got = records(&path, workers, config);
            let what = format!("{name}, {workers} workers, {config:?}");
            // Flows, app records and alerts as without the flood (flood
            // fragments never complete, so they make no flow).
            assert_eq!(findings(&got), findings(&want), "{what}");
            let d = &stats(&got)["defrag"];
            assert_eq!(d[ip]["reassembled"], reassembled, "{what}");
            assert!(
                d["tracker_hard_reuse"].as_u64().unwrap() >= 20_000 - 4096 * 2,
                "{what}: {d}"
            );
            if config.is_some() {
                // 1 MiB holds ~600 first fragments: the byte budget acted.
                assert!(d["memcap_reached"].as_u64().unwrap() > 0, "{what}: {d}");
            } else {
                assert!(
                    d["max_trackers_reached"].as_u64().unwrap() > 0,
                    "{what}: {d}"
                );
            }
        }
    }
}
