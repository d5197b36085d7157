//! Memory per tracked idle flow, through the real worker (decode → flow →
//! reassembly → app detection).
//!
//! For N = 100 000 and 1 000 000 conversations, feeds each a TCP handshake
//! and a 16-byte MQTT CONNECT start (hand-built frames, Ethernet/IPv4/TCP,
//! one client address per flow), so every flow is established, detected as
//! MQTT and then idle, and reports the growth of the process's resident
//! memory divided by N. Run with `cargo bench --bench flow_memory`.
//!
//! It allocates with mimalloc, as the sensor does (`src/main.rs`): until
//! issue 15's second round it used the system allocator, whose 16-byte
//! chunks with an 8-byte header put a 112- and a 120-byte parser state in
//! the same 128-byte chunk, so it did not measure what the sensor spends.

/// The sensor's allocator (`src/main.rs`).
#[global_allocator]
static GLOBAL: wardwatch::alloc::Alloc = wardwatch::alloc::Alloc;

use std::net::Ipv4Addr;

use wardwatch::capture::LinkType;
use wardwatch::config::Config;
use wardwatch::decode::tcp_flags::{ACK, PSH, SYN};
use wardwatch::pipeline::worker::Worker;
use wardwatch::time::Timestamp;

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Hand-built Ethernet + IPv4 + TCP frame (no options); checksums are left
/// zero, the pattern of checksum offload, which `checksum_checks: auto`
/// recognises in the first packets and then stops validating.
#[allow(clippy::too_many_arguments)] // one argument per header field, for readability
fn frame(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::with_capacity(54 + payload.len());
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]); // destination MAC
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]); // source MAC
    f.extend_from_slice(&0x0800u16.to_be_bytes()); // ethertype IPv4
    f.push(0x45); // version 4, IHL 5
    f.push(0); // DSCP/ECN
    f.extend_from_slice(&(40 + payload.len() as u16).to_be_bytes()); // total length
    f.extend_from_slice(&[0, 0, 0x40, 0]); // id 0, DF, offset 0
    f.extend_from_slice(&[64, 6, 0, 0]); // TTL 64, protocol TCP, checksum
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&ack.to_be_bytes());
    f.push(0x50); // data offset 5
    f.push(flags);
    f.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]); // window, checksum, urgent
    f.extend_from_slice(payload);
    f
}

fn main() {
    // First 16 bytes of an MQTT 3.1.1 CONNECT: type 1, remaining length 26,
    // "MQTT", level 4, flags, keep-alive 60, client id length 14, "ab".
    let connect = b"\x10\x1a\x00\x04MQTT\x04\x02\x00\x3c\x00\x0eab";
    let server = Ipv4Addr::new(10, 10, 5, 10);
    for n in [100_000u32, 1_000_000] {
        let mut cfg = Config::default();
        cfg.flow.memcap = wardwatch::memcap::ByteSize::mib(1024);
        // Room for every flow's parser state too: with the default 64 MiB
        // the million flows' MQTT states would be shed (logged and their
        // tails dropped, an anomaly each), and the figure would measure
        // those records instead of idle flows.
        cfg.app_layer.memcap = wardwatch::memcap::ByteSize::mib(1024);
        // The asset inventory is per host, with its own budget
        // (`asset.memcap`): every flow here has a client of its own, so
        // with it on the figure would count a host per flow.
        cfg.outputs.asset.enabled = false;
        let mut w = Worker::new(&cfg);
        let before = rss_bytes();
        let ts = Timestamp::from_parts(1_700_000_000, 0);
        for k in 0..n {
            let client = Ipv4Addr::new(10, 20 + (k >> 16) as u8, (k >> 8) as u8, k as u8);
            let pkts = [
                frame(client, server, 40000, 1883, 100, 0, SYN, &[]),
                frame(server, client, 1883, 40000, 500, 101, SYN | ACK, &[]),
                frame(client, server, 40000, 1883, 101, 501, ACK, &[]),
                frame(client, server, 40000, 1883, 101, 501, PSH | ACK, connect),
                frame(server, client, 1883, 40000, 501, 117, ACK, &[]),
            ];
            for p in &pkts {
                w.packet(ts, LinkType::ETHERNET, p, p.len() as u32);
            }
        }
        let after = rss_bytes();
        println!(
            "{n} idle flows: resident memory grew {:.1} MB, {:.0} bytes per flow",
            (after - before) as f64 / 1e6,
            (after.saturating_sub(before)) as f64 / f64::from(n)
        );
        drop(w);
    }
}
