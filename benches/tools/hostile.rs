//! Writes the hostile captures of the stress benchmark (`benches/stress.sh`):
//! synthetic traffic (hand-built frames, valid checksums) shaped to make a
//! passive sensor hold memory. Benchmark input only, never test evidence.
//!
//! Usage: `cargo run --release --example hostile -- KIND OUT.pcap [N]`
//!
//! | KIND | what | N (default) |
//! |---|---|---|
//! | `packed-publish` | one MQTT 3.1.1 connection, then N to-server segments of 64 000 bytes, each packed with 12 800 five-byte QoS 0 PUBLISHes (the broker ACKs each) | 200 segments (12.8 MB, 2.56 M PUBLISHes) |
//! | `syn-flood` | N SYNs from distinct pseudo-random sources to one broker (10.10.5.10:1883), 1 µs apart | 1 000 000 |
//! | `frag-flood` | N IPv4 first fragments (MF set, offset 0) of UDP datagrams that never complete, distinct sources and ids | 200 000 |
//! | `unacked-qos1` | one MQTT 3.1.1 connection, then N QoS 1 PUBLISHes (64-byte payloads) the broker ACKs at TCP level but never PUBACKs | 100 000 |
//! | `qos2-open` | N MQTT connections, each with 1 024 QoS 2 PUBLISHes (topic `v`, empty payload, 7 bytes each, packed in one segment) never answered | 1 000 |
//! | `pubrec-repeat` | one MQTT connection, a QoS 2 PUBLISH, then N PUBRECs for it from the broker (4 bytes each, 16 000 to a segment), never a PUBCOMP | 2 000 000 |
//! | `subscribe-tiny` | N MQTT connections, each with one unanswered SUBSCRIBE of ~1 MiB holding 262 000 one-byte topic filters | 48 |
//! | `ooo-pieces` | N TCP connections to the broker, each sending 60 000 one-byte segments at every other byte after a lost first byte (the broker's ACKs stay at the hole) | 24 |
//! | `all-at-once` | every budget at once, within 30 s of packet time so nothing times out: 1 M SYNs, 20 000 first fragments, 8 `ooo-pieces` connections, 1 000 `qos2-open` connections, 24 `subscribe-tiny` connections | — |

use std::fs::File;
use std::io::BufWriter;

#[path = "pcapw.rs"]
mod pcapw;
use pcapw::{flags, ipv4_frame, tcp_frame, PcapWriter};

type Writer = PcapWriter<BufWriter<File>>;

const BROKER: [u8; 4] = [10, 10, 5, 10];
const CLIENT: [u8; 4] = [10, 20, 1, 15];
/// 2025-01-01T00:00:00Z in microseconds.
const T0: u64 = 1_735_689_600_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(kind), Some(path)) = (args.get(1), args.get(2)) else {
        return Err(
            "usage: hostile KIND OUT.pcap [N] (KIND: packed-publish syn-flood frag-flood \
             unacked-qos1 qos2-open pubrec-repeat subscribe-tiny ooo-pieces all-at-once)"
                .into(),
        );
    };
    let n: Option<u64> = args.get(3).map(|s| s.parse()).transpose()?;
    let mut w = PcapWriter::new(BufWriter::with_capacity(1 << 22, File::create(path)?))?;
    match kind.as_str() {
        "packed-publish" => packed_publish(&mut w, n.unwrap_or(200))?,
        "syn-flood" => drop(syn_flood(&mut w, n.unwrap_or(1_000_000), T0)?),
        "frag-flood" => drop(frag_flood(&mut w, n.unwrap_or(200_000), T0)?),
        "unacked-qos1" => unacked_qos1(&mut w, n.unwrap_or(100_000))?,
        "qos2-open" => drop(qos2_open(&mut w, n.unwrap_or(1_000), T0)?),
        "pubrec-repeat" => pubrec_repeat(&mut w, n.unwrap_or(2_000_000))?,
        "subscribe-tiny" => drop(subscribe_tiny(&mut w, n.unwrap_or(48), T0)?),
        "ooo-pieces" => drop(ooo_pieces(&mut w, n.unwrap_or(24), T0)?),
        "all-at-once" => all_at_once(&mut w)?,
        other => return Err(format!("unknown kind {other}").into()),
    }
    eprintln!("{path}: {} packets, {} bytes", w.packets, w.bytes);
    w.finish()?;
    Ok(())
}

/// A TCP connection between a client (CLIENT:40000 unless said) and
/// BROKER:1883 whose segments are written with correct sequence numbers,
/// each data segment acknowledged.
struct Conn {
    t: u64,
    client: ([u8; 4], u16),
    cseq: u32,
    sseq: u32,
    frame: Vec<u8>,
}

const C: ([u8; 4], u16) = (CLIENT, 40_000);
const S: ([u8; 4], u16) = (BROKER, 1883);

/// Largest TCP payload written in one frame.
const MAX_SEGMENT: usize = 64_000;

impl Conn {
    fn open(w: &mut Writer) -> std::io::Result<Conn> {
        Conn::open_from(w, C, T0)
    }

    /// A connection from `client`, its first packet at `t` µs.
    fn open_from(w: &mut Writer, client: ([u8; 4], u16), t: u64) -> std::io::Result<Conn> {
        let mut c = Conn {
            t,
            client,
            cseq: 1_000,
            sseq: 5_000_000,
            frame: Vec::with_capacity(70_000),
        };
        c.emit(w, true, flags::SYN, &[])?;
        c.emit(w, false, flags::SYN | flags::ACK, &[])?;
        c.emit(w, true, flags::ACK, &[])?;
        Ok(c)
    }

    /// One segment; SYN and data advance the sender's sequence number.
    fn emit(
        &mut self,
        w: &mut Writer,
        to_server: bool,
        fl: u8,
        payload: &[u8],
    ) -> std::io::Result<()> {
        let (src, dst, seq, ack) = if to_server {
            (self.client, S, self.cseq, self.sseq)
        } else {
            (S, self.client, self.sseq, self.cseq)
        };
        let ack = if fl & flags::ACK != 0 { ack } else { 0 };
        tcp_frame(&mut self.frame, src, dst, seq, ack, fl, payload);
        self.t += 10;
        w.packet(self.t, &self.frame)?;
        let adv = payload.len() as u32 + u32::from(fl & flags::SYN != 0);
        if to_server {
            self.cseq = self.cseq.wrapping_add(adv);
        } else {
            self.sseq = self.sseq.wrapping_add(adv);
        }
        Ok(())
    }

    /// Data from the client, acknowledged by the broker, in segments of at
    /// most [`MAX_SEGMENT`] bytes.
    fn send(&mut self, w: &mut Writer, payload: &[u8]) -> std::io::Result<()> {
        for seg in payload.chunks(MAX_SEGMENT) {
            self.emit(w, true, flags::PSH | flags::ACK, seg)?;
            self.emit(w, false, flags::ACK, &[])?;
        }
        Ok(())
    }

    /// MQTT 3.1.1 CONNECT (client id `stress`, clean session) and CONNACK 0.
    fn mqtt_login(&mut self, w: &mut Writer) -> std::io::Result<()> {
        // CONNECT: type 1, remaining length 18; "MQTT", level 4, flags 0x02,
        // keepalive 60, client id "stress".
        self.send(w, b"\x10\x12\x00\x04MQTT\x04\x02\x00\x3c\x00\x06stress")?;
        // CONNACK: type 2, remaining length 2, no session, return code 0.
        self.emit(w, false, flags::PSH | flags::ACK, b"\x20\x02\x00\x00")
    }
}

fn packed_publish(w: &mut Writer, segments: u64) -> std::io::Result<()> {
    let mut c = Conn::open(w)?;
    c.mqtt_login(w)?;
    // QoS 0 PUBLISH: type 3, remaining length 3, topic length 1, topic "x",
    // empty payload — 5 bytes.
    let seg: Vec<u8> = b"\x30\x03\x00\x01x".repeat(12_800);
    for _ in 0..segments {
        c.send(w, &seg)?;
    }
    Ok(())
}

fn unacked_qos1(w: &mut Writer, n: u64) -> std::io::Result<()> {
    let mut c = Conn::open(w)?;
    c.mqtt_login(w)?;
    let mut msg = Vec::with_capacity(80);
    for i in 0..n {
        msg.clear();
        // QoS 1 PUBLISH: type 3 flags 0x2, remaining length 2+5+2+64 = 73,
        // topic "vital", packet id 1..=65535 cycling, 64-byte payload.
        msg.extend_from_slice(b"\x32\x49\x00\x05vital");
        msg.extend_from_slice(&((i % 65_535 + 1) as u16).to_be_bytes());
        msg.extend_from_slice(&[b'7'; 64]);
        c.send(w, &msg)?;
    }
    Ok(())
}

/// A xorshift generator: deterministic pseudo-random addresses.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn syn_flood(w: &mut Writer, n: u64, t0: u64) -> std::io::Result<u64> {
    let mut frame = Vec::with_capacity(64);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..n {
        let r = next(&mut x);
        // Unicast addresses 1.0.0.0–223.255.255.255.
        let a = [
            1 + (r % 223) as u8,
            (r >> 8) as u8,
            (r >> 16) as u8,
            (r >> 24) as u8,
        ];
        let port = 1024 + ((r >> 32) % 60_000) as u16;
        tcp_frame(
            &mut frame,
            (a, port),
            S,
            (r >> 40) as u32,
            0,
            flags::SYN,
            &[],
        );
        w.packet(t0 + i, &frame)?;
    }
    Ok(t0 + n)
}

fn frag_flood(w: &mut Writer, n: u64, t0: u64) -> std::io::Result<u64> {
    let mut frame = Vec::with_capacity(1_600);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    // UDP header (ports 40000 → 5000, length 2 008, checksum 0 = none) and
    // the first 1 472 bytes of a 2 000-byte payload.
    let mut l4 = Vec::with_capacity(1_480);
    l4.extend_from_slice(&40_000u16.to_be_bytes());
    l4.extend_from_slice(&5_000u16.to_be_bytes());
    l4.extend_from_slice(&2_008u16.to_be_bytes());
    l4.extend_from_slice(&[0, 0]);
    l4.resize(1_480, b'F');
    for i in 0..n {
        let r = next(&mut x);
        let src = [10, 64 + (r % 64) as u8, (r >> 8) as u8, (r >> 16) as u8];
        // Flags: more fragments (0x2000), offset 0.
        ipv4_frame(&mut frame, src, BROKER, 17, ((r >> 24) as u16, 0x2000), &l4);
        w.packet(t0 + i, &frame)?;
    }
    Ok(t0 + n)
}

/// Client `i` of many in 10.`net`.0.0/16, port 40000.
fn client(net: u8, i: u64) -> ([u8; 4], u16) {
    ([10, net, (i >> 8) as u8, i as u8], 40_000)
}

fn qos2_open(w: &mut Writer, conns: u64, t0: u64) -> std::io::Result<u64> {
    let mut t = t0;
    let mut msgs = Vec::with_capacity(1024 * 7);
    for i in 0..conns {
        let mut c = Conn::open_from(w, client(22, i), t)?;
        c.mqtt_login(w)?;
        msgs.clear();
        for id in 1..=1024u16 {
            // QoS 2 PUBLISH: type 3 flags 0x4, remaining length 5, topic
            // length 1, topic "v", packet id, empty payload — 7 bytes.
            msgs.extend_from_slice(b"\x34\x05\x00\x01v");
            msgs.extend_from_slice(&id.to_be_bytes());
        }
        c.send(w, &msgs)?;
        t = c.t;
    }
    Ok(t)
}

fn pubrec_repeat(w: &mut Writer, n: u64) -> std::io::Result<()> {
    let mut c = Conn::open(w)?;
    c.mqtt_login(w)?;
    // QoS 2 PUBLISH: type 3 flags 0x4, remaining length 5, topic "v",
    // packet id 1, empty payload.
    c.send(w, b"\x34\x05\x00\x01v\x00\x01")?;
    // PUBREC: type 5, remaining length 2, packet id 1 — 4 bytes.
    let seg: Vec<u8> = b"\x50\x02\x00\x01".repeat(16_000);
    let mut left = n;
    while left > 0 {
        let k = left.min(16_000) as usize;
        c.emit(w, false, flags::PSH | flags::ACK, &seg[..k * 4])?;
        c.emit(w, true, flags::ACK, &[])?;
        left -= k as u64;
    }
    Ok(())
}

fn subscribe_tiny(w: &mut Writer, conns: u64, t0: u64) -> std::io::Result<u64> {
    let mut t = t0;
    // SUBSCRIBE: type 8 flags 0x2, remaining length 1 048 002 (variable
    // byte integer 0xc2 0xfb 0x3f), packet id 1, then 262 000 filters of
    // length 1, topic "a", requested QoS 0 — 4 bytes each.
    let mut msg = vec![0x82, 0xc2, 0xfb, 0x3f, 0x00, 0x01];
    for _ in 0..262_000 {
        msg.extend_from_slice(b"\x00\x01a\x00");
    }
    for i in 0..conns {
        let mut c = Conn::open_from(w, client(23, i), t)?;
        c.mqtt_login(w)?;
        c.send(w, &msg)?;
        t = c.t;
    }
    Ok(t)
}

fn ooo_pieces(w: &mut Writer, conns: u64, t0: u64) -> std::io::Result<u64> {
    let mut t = t0;
    for i in 0..conns {
        let mut c = Conn::open_from(w, client(21, i), t)?;
        // The client's first data byte (at cseq) never shows; then one
        // byte at every other sequence number after it. The broker's ACK
        // stays at the hole.
        let hole = c.cseq;
        for k in 0..60_000u32 {
            c.cseq = hole.wrapping_add(1 + 2 * k);
            c.emit(w, true, flags::PSH | flags::ACK, b"x")?;
            if k % 64 == 63 {
                c.cseq = hole;
                c.emit(w, false, flags::ACK, &[])?;
            }
        }
        t = c.t;
    }
    Ok(t)
}

/// The hostile inputs one after the other, each holding its budget while
/// the next fills another: flows, fragments, out-of-order ranges, open
/// transactions (sources of the later parts differ from the SYN flood's,
/// so their flows are the newest and stay).
fn all_at_once(w: &mut Writer) -> std::io::Result<()> {
    let t = syn_flood(w, 1_000_000, T0)?;
    let t = frag_flood(w, 20_000, t)?;
    let t = ooo_pieces(w, 8, t)?;
    let t = qos2_open(w, 1_000, t)?;
    subscribe_tiny(w, 24, t)?;
    Ok(())
}
