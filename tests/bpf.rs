//! Capture filters (`-f`, the `libpcap` feature): offline, a port filter
//! keeps exactly the conversations tshark counted on that port (frozen in
//! `tests/expected/conv/`); our classic BPF interpreter gives libpcap's own
//! verdict (`pcap_offline_filter`) on every packet of every capture; the
//! programs are the ones `tcpdump -dd` prints; a bad expression is a
//! one-line error. Live (root only): in a fresh network namespace, the
//! kernel drops what the filter rejects.
#![cfg(feature = "libpcap")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use wardwatch::capture::bpf::{Filter, Insn, Program};
use wardwatch::capture::{LinkType, Reader};

fn frozen_conv(name: &str) -> ConvCounts {
    let text = std::fs::read_to_string(
        repo()
            .join("tests/expected/conv")
            .join(format!("{name}.tsv")),
    )
    .unwrap();
    conv_from_tsv(&text)
}

fn stats(records: &[Value]) -> &Value {
    &records
        .iter()
        .rfind(|r| r["event_type"] == "stats")
        .expect("a stats record")["stats"]
}

#[test]
fn port_filter_keeps_exactly_the_conversations_on_that_port() {
    let demo = repo().join("pcaps/demo.pcap");
    let all = frozen_conv("demo.pcap");
    let total = stats(&eve(&demo, 1))["decoder"]["pkts"].as_u64().unwrap();
    for port in [11112u16, 1883] {
        let want: ConvCounts = all
            .iter()
            .filter(|(k, _)| k.2 == port || k.4 == port)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert!(!want.is_empty(), "demo.pcap has traffic on {port}");
        let kept: u64 = want.values().map(|(c, _)| c[0] + c[2]).sum();
        for workers in ["1", "2"] {
            let expr = format!("tcp port {port}");
            let out = run(&[
                "-r",
                demo.to_str().unwrap(),
                "-f",
                &expr,
                "--workers",
                workers,
            ]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let recs = parse_lines(&out.stdout);
            assert_eq!(conv_from_eve(&recs), want, "{expr}, {workers} workers");
            // Every other record is about those conversations too.
            for r in recs.iter().filter(|r| r.get("src_port").is_some()) {
                let (s, d) = (r["src_port"].as_u64(), r["dest_port"].as_u64());
                assert!(s == Some(port.into()) || d == Some(port.into()), "{r}");
            }
            let st = stats(&recs);
            assert_eq!(st["decoder"]["pkts"].as_u64(), Some(kept), "{expr}");
            assert_eq!(
                st["capture"]["filtered"].as_u64(),
                Some(total - kept),
                "{expr}"
            );
        }
    }
}

#[test]
fn filtered_stats_record_validates_against_suricata_schema() {
    let demo = repo().join("pcaps/demo.pcap");
    let out = run(&["-r", demo.to_str().unwrap(), "-f", "port 1883"]);
    if let Some(r) = schema_check(&out.stdout) {
        r.unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn bad_expression_is_a_one_line_error_and_exit_1() {
    let demo = repo().join("pcaps/demo.pcap");
    let out = run(&["-r", demo.to_str().unwrap(), "-f", "tcp prot 1883"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("tcp prot 1883"), "{err}");
    assert!(out.stdout.is_empty());
}

/// Expressions for the differential test; none uses `len`, `greater` or
/// `less`, because the pcap crate's `filter` passes the captured length
/// as the wire length.
const EXPRS: &[&str] = &[
    "tcp port 1883",
    "tcp port 11112",
    "host 10.20.1.15",
    "udp",
    "ip6",
    "vlan and tcp",
    "net 10.20.0.0/16 and not port 1883",
    "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0",
    "ip[8] < 64",
    "ip proto 47 or udp port 4789",
    "ether src 00:09:fb:1e:01:0f",
    "tcp[((tcp[12:1] & 0xf0) >> 2):1] = 0x10",
    "tcp portrange 1800-2000",
    "ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2) > 0",
    "ip[8] * 3 > 150 and ip[8] / 3 != 21",
    "ip[8] % 7 = 1",
    "(ip[8] ^ 0xff) > 200",
    "-ip[8] = 0xffffffc0",
    "ip[8] | 1 = 0x41",
];

#[test]
fn interpreter_agrees_with_libpcap_on_every_packet_of_every_capture() {
    let mut compared = 0u64;
    let mut kept = 0u64;
    for cap in captures() {
        for expr in EXPRS {
            let mut ours = Filter::new(expr, 65535).unwrap();
            let mut theirs: Vec<(LinkType, Option<pcap::BpfProgram>)> = Vec::new();
            let mut r = Reader::open(&cap).unwrap();
            while let Ok(Some(chunk)) = r.next_chunk(1024) {
                for p in &chunk.pkts {
                    let data = chunk.data(p);
                    if !theirs.iter().any(|(l, _)| *l == p.link) {
                        let dead =
                            pcap::Capture::dead(pcap::Linktype(i32::from(p.link.0))).unwrap();
                        theirs.push((p.link, dead.compile(expr, true).ok()));
                    }
                    let prog = &theirs.iter().find(|(l, _)| *l == p.link).unwrap().1;
                    let want = prog.as_ref().is_some_and(|b| b.filter(data));
                    let got = ours.matches(p.link, data, p.caplen);
                    assert_eq!(
                        got,
                        want,
                        "{}: {expr}: packet at {}",
                        cap.display(),
                        p.offset
                    );
                    compared += 1;
                    kept += u64::from(got);
                }
            }
        }
    }
    // Enough packets, and both verdicts well represented.
    assert!(compared > 10_000, "{compared}");
    assert!(kept > 500 && kept < compared - 500, "{kept} of {compared}");
}

/// Parses `tcpdump -dd` lines: `{ 0x28, 0, 0, 0x0000000c },`.
fn tcpdump_dd(expr: &str) -> Option<Program> {
    let out = Command::new("tcpdump")
        .args(["-r"])
        .arg(repo().join("pcaps/demo.pcap"))
        .args(["-dd", "--", expr])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let num = |s: &str| -> u32 {
        let s = s.trim();
        match s.strip_prefix("0x") {
            Some(h) => u32::from_str_radix(h, 16).unwrap(),
            None => s.parse().unwrap(),
        }
    };
    let insns: Vec<Insn> = text
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| {
            let f: Vec<&str> = l
                .trim()
                .trim_start_matches('{')
                .trim_end_matches("},")
                .split(',')
                .collect();
            Insn {
                code: num(f[0]) as u16,
                jt: num(f[1]) as u8,
                jf: num(f[2]) as u8,
                k: num(f[3]),
            }
        })
        .collect();
    (!insns.is_empty()).then_some(Program(insns))
}

#[test]
fn programs_are_the_ones_tcpdump_prints() {
    if !have("tcpdump") {
        common::skip("tcpdump not installed");
        return;
    }
    for expr in EXPRS {
        let want = tcpdump_dd(expr).unwrap();
        // tcpdump's programs return the file's snap length; use the same.
        let snap = want
            .0
            .iter()
            .find(|i| i.code == 0x06 && i.k != 0)
            .unwrap()
            .k;
        let f = Filter::new(expr, snap).unwrap();
        assert_eq!(f.program(LinkType::ETHERNET).unwrap(), &want, "{expr}");
    }
}

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A network namespace deleted on drop, with the processes started in it.
struct Netns(String, Vec<std::process::Child>);

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.1 {
            let _ = c.kill();
            let _ = c.wait();
        }
        sh(&["ip", "netns", "del", &self.0]);
    }
}

/// Live: `-f "udp port 1883"` on the loopback of a fresh namespace; UDP
/// datagrams to ports 1883 and 1884 are sent; only the 1883 flow may be
/// seen, and the kernel's own packet count shows the rest never reached
/// the ring.
#[test]
fn live_filter_keeps_rejected_traffic_in_the_kernel() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root || !have("ip") || !have("python3") {
        common::skip("live filter test: needs root, ip and python3");
        return;
    }
    let name = format!("ww_bpf_{}", std::process::id());
    if !sh(&["ip", "netns", "add", &name]) {
        common::skip("live filter test: cannot create a network namespace");
        return;
    }
    let mut ns = Netns(name.clone(), Vec::new());
    assert!(sh(&[
        "ip", "netns", "exec", &name, "ip", "link", "set", "lo", "up"
    ]));
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ww.yaml");
    std::fs::write(
        &conf,
        "capture:\n  block_size: 65536\n  block_count: 8\n  stats_interval: 1\n  allow_root: true\n",
    )
    .unwrap();
    let eve_path = dir.path().join("eve.json");
    let child = Command::new("ip")
        .args(["netns", "exec", &name, env!("CARGO_BIN_EXE_wardwatch")])
        .args([
            "-i",
            "lo",
            "-f",
            "udp port 1883",
            "--workers",
            "2",
            "-q",
            "-c",
        ])
        .arg(&conf)
        .arg("--eve")
        .arg(&eve_path)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    ns.1.push(child);
    let read = || -> Vec<Value> {
        std::fs::read(&eve_path)
            .map(|b| parse_lines(&b))
            .unwrap_or_default()
    };
    let start = Instant::now();
    while !read().iter().any(|r| r["event_type"] == "stats") {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "wardwatch did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Ten datagrams to each port, from fixed source ports.
    let send = "import socket\n\
        for sport, dport in ((40001, 1883), (40002, 1884)):\n\
        \x20   s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
        \x20   s.bind(('127.0.0.1', sport))\n\
        \x20   for i in range(10): s.sendto(b'hello %d' % i, ('127.0.0.1', dport))\n";
    assert!(sh(&["ip", "netns", "exec", &name, "python3", "-c", send]));
    std::thread::sleep(Duration::from_millis(500));
    assert!(sh(&["kill", "-TERM", &pid.to_string()]));
    let c = ns.1.iter_mut().find(|c| c.id() == pid).unwrap();
    let status = loop {
        if let Some(s) = c.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut e) = c.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(status.success(), "exit {status}: {err}");
    let recs = read();
    let flows: Vec<&Value> = recs.iter().filter(|r| r["event_type"] == "flow").collect();
    let ports: Vec<(u64, u64)> = flows
        .iter()
        .map(|r| {
            (
                r["src_port"].as_u64().unwrap_or(0),
                r["dest_port"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert!(ports.contains(&(40001, 1883)), "{ports:?}");
    assert!(
        ports.iter().all(|&(s, d)| s == 1883 || d == 1883),
        "a flow the filter rejects was seen: {ports:?}"
    );
    // Loopback shows each datagram twice (sent and received): 20 packets
    // reached the rings, none of the other port's.
    let st = stats(&recs);
    assert_eq!(st["capture"]["kernel_packets"].as_u64(), Some(20), "{st}");
}
