//! Decode throughput: our `Decoder::decode` against etherparse's
//! `SlicedPacket::from_ethernet` on the same frames.
//!
//! The frames are a realistic mix for a hospital mirror port, built with
//! etherparse's `PacketBuilder`: mostly Ethernet/IPv4/TCP with small
//! payloads (MQTT-sized), some 802.1Q-tagged, some IPv6/TCP and IPv4/UDP.
//! Both sides read the ports and payload length so neither does less work.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etherparse::{PacketBuilder, SlicedPacket, TransportSlice, VlanId};
use wardwatch::capture::LinkType;
use wardwatch::decode::{DecodeConfig, Decoded, Decoder, L4};

/// A small deterministic generator, so runs compare like with like.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn frames(n: usize) -> Vec<Vec<u8>> {
    let mut r = Lcg(42);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let payload = vec![0x30u8; (r.next() % 120) as usize];
        let sport = 30_000 + (r.next() % 1000) as u16;
        let a = [10, 1, (r.next() % 8) as u8, (r.next() % 250) as u8];
        let b = [10, 2, 0, (r.next() % 16) as u8];
        let mut f = Vec::with_capacity(200);
        let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let Ok(vid) = VlanId::try_new(100 + (i % 4) as u16) else {
            continue;
        };
        let written = match i % 10 {
            // 60 %: plain IPv4/TCP.
            0..=5 => eth
                .ipv4(a, b, 64)
                .tcp(sport, 1883, r.next() as u32, 512)
                .ack(r.next() as u32)
                .write(&mut f, &payload),
            // 20 %: VLAN-tagged IPv4/TCP.
            6 | 7 => eth
                .single_vlan(vid)
                .ipv4(a, b, 64)
                .tcp(sport, 104, r.next() as u32, 512)
                .ack(r.next() as u32)
                .write(&mut f, &payload),
            // 10 %: IPv6/TCP.
            8 => {
                let mut s6 = [0u8; 16];
                s6[0] = 0x20;
                s6[15] = a[3];
                let mut d6 = s6;
                d6[15] = b[3];
                eth.ipv6(s6, d6, 64)
                    .tcp(sport, 11112, r.next() as u32, 512)
                    .write(&mut f, &payload)
            }
            // 10 %: IPv4/UDP.
            _ => eth.ipv4(a, b, 64).udp(sport, 53).write(&mut f, &payload),
        };
        // The builder only fails on oversized payloads, which this never makes.
        if written.is_ok() {
            out.push(f);
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let frames = frames(4096);
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(frames.len() as u64));

    g.bench_function("wardwatch", |bch| {
        let mut d = Decoder::new(DecodeConfig::default());
        bch.iter(|| {
            let mut acc = 0usize;
            for f in &frames {
                if let Decoded::Packet(p) =
                    d.decode(LinkType::ETHERNET, black_box(f), f.len() as u32)
                {
                    acc += match p.l4 {
                        L4::Tcp(t) => usize::from(t.dst_port) + t.payload.len(),
                        L4::Udp(u) => usize::from(u.dst_port) + u.payload.len(),
                        _ => 0,
                    };
                }
            }
            black_box(acc)
        })
    });

    g.bench_function("etherparse", |bch| {
        bch.iter(|| {
            let mut acc = 0usize;
            for f in &frames {
                if let Ok(p) = SlicedPacket::from_ethernet(black_box(f)) {
                    acc += match p.transport {
                        Some(TransportSlice::Tcp(t)) => {
                            usize::from(t.destination_port()) + t.payload().len()
                        }
                        Some(TransportSlice::Udp(u)) => {
                            usize::from(u.destination_port()) + u.payload().len()
                        }
                        _ => 0,
                    };
                }
            }
            black_box(acc)
        })
    });
    g.finish();

    // The same work read as bytes of frames per second.
    let bytes: usize = frames.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("decode_bytes");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("wardwatch", |bch| {
        let mut d = Decoder::new(DecodeConfig::default());
        bch.iter(|| {
            let mut n = 0usize;
            for f in &frames {
                if let Decoded::Packet(p) =
                    d.decode(LinkType::ETHERNET, black_box(f), f.len() as u32)
                {
                    n += usize::from(p.ip.proto);
                }
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
