//! Decode throughput: our `Decoder::decode` against etherparse's
//! `SlicedPacket::from_ethernet` on the same frames, and the cost of
//! checksum validation (`checksum_*` groups).
//!
//! The frames are a realistic mix for a hospital mirror port, built with
//! etherparse's `PacketBuilder`: mostly Ethernet/IPv4/TCP with small
//! payloads (MQTT-sized), some 802.1Q-tagged, some IPv6/TCP and IPv4/UDP.
//! Both sides read the ports and payload length so neither does less work.
//!
//! The `checksum_*` groups decode 1000 frames per iteration, so the time
//! criterion prints in µs is also the time per packet in ns; `small` is the
//! mix above, `1500` full-sized IPv4/IPv6 TCP segments (DICOM bulk data).
//! `validate` checks every checksum, `skip` runs with `checksum_checks: no`
//! and `sum` is the bare one's complement sum over the same bytes. The
//! `checksum_payload_N` groups do the same on 1000 IPv4/TCP frames of N
//! payload bytes each (64, 512, 1460, and 9000 for jumbo frames).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etherparse::{PacketBuilder, SlicedPacket, TransportSlice, VlanId};
use wardwatch::capture::LinkType;
use wardwatch::decode::{checksum, DecodeConfig, Decoded, Decoder, Validation, L4};

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

/// `n` full-sized TCP segments (1514-byte frames over IPv4, 1494 over
/// IPv6: 1448 and 1428 bytes of data), three IPv4 for one IPv6.
fn big_frames(n: usize) -> Vec<Vec<u8>> {
    let mut r = Lcg(7);
    (0..n)
        .filter_map(|i| {
            let payload: Vec<u8> = (0..1448).map(|_| r.next() as u8).collect();
            let mut f = Vec::with_capacity(1514);
            let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
            let ok = if i % 4 == 3 {
                let (mut s6, mut d6) = ([0u8; 16], [0u8; 16]);
                (s6[0], s6[15], d6[0], d6[15]) = (0x20, 1, 0x20, 2);
                eth.ipv6(s6, d6, 64)
                    .tcp(40000, 11112, r.next() as u32, 512)
                    .write(&mut f, &payload[..1428])
            } else {
                eth.ipv4([10, 1, 0, 1], [10, 2, 0, 1], 64)
                    .tcp(40000, 104, r.next() as u32, 512)
                    .ack(r.next() as u32)
                    .write(&mut f, &payload)
            };
            ok.is_ok().then_some(f)
        })
        .collect()
}

/// `n` IPv4/TCP frames of `len` payload bytes each.
fn sized_frames(n: usize, len: usize) -> Vec<Vec<u8>> {
    let mut r = Lcg(11);
    (0..n)
        .filter_map(|_| {
            let payload: Vec<u8> = (0..len).map(|_| r.next() as u8).collect();
            let mut f = Vec::with_capacity(len + 54);
            let ok = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
                .ipv4([10, 1, 0, 1], [10, 2, 0, 1], 64)
                .tcp(40000, 104, r.next() as u32, 512)
                .ack(r.next() as u32)
                .write(&mut f, &payload);
            ok.is_ok().then_some(f)
        })
        .collect()
}

/// Decodes every frame; returns something that depends on every packet.
fn decode_all(d: &mut Decoder, frames: &[Vec<u8>]) -> usize {
    let mut n = 0usize;
    for f in frames {
        if let Decoded::Packet(p) = d.decode(LinkType::ETHERNET, black_box(f), f.len() as u32) {
            n += usize::from(p.ip.proto);
        }
    }
    n
}

fn bench_checksums(c: &mut Criterion) {
    let sets = [
        ("small".to_string(), frames(1000)),
        ("1500".to_string(), big_frames(1000)),
    ]
    .into_iter()
    .chain([64, 512, 1460, 9000].map(|len| (format!("payload_{len}"), sized_frames(1000, len))));
    for (name, frames) in sets {
        let bytes: usize = frames.iter().map(Vec::len).sum();
        let mut g = c.benchmark_group(format!("checksum_{name}"));
        g.throughput(Throughput::Bytes(bytes as u64));
        for (label, v) in [("validate", Validation::Strict), ("skip", Validation::Off)] {
            g.bench_function(label, |bch| {
                let mut d = Decoder::new(DecodeConfig::default());
                d.set_validation(v, false);
                // Every frame must pass, or the bench measures drops.
                let passed = frames
                    .iter()
                    .filter(|f| {
                        matches!(
                            d.decode(LinkType::ETHERNET, f, f.len() as u32),
                            Decoded::Packet(_)
                        )
                    })
                    .count();
                assert_eq!(passed, frames.len(), "{name} {label}");
                bch.iter(|| black_box(decode_all(&mut d, &frames)))
            });
        }
        g.bench_function("sum", |bch| {
            bch.iter(|| {
                let mut s = 0u64;
                for f in &frames {
                    s = s.wrapping_add(u64::from(checksum::fold(checksum::add(
                        0,
                        black_box(&f[14..]),
                    ))));
                }
                black_box(s)
            })
        });
        g.finish();
    }
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

criterion_group!(benches, bench, bench_checksums);
criterion_main!(benches);
