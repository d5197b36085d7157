//! Reassembly throughput: in-order 1460-byte segments (the zero-copy fast
//! path), with and without the peer's acks and with the overlap window off;
//! the same stream with about 5 % of segments swapped with their successor
//! (each swap holds one segment out of order, then drains it); and 64 KiB
//! of one-byte segments shuffled (an attacker's segmentation).
//!
//! The sink reads one byte per delivered slice, so for the 1460-byte cases
//! the GiB/s figure is the per-segment overhead expressed as bytes (the
//! in-order path hands the input on and only the overlap window copies it);
//! divide the time by 4096 for the cost per segment.
//!
//! The input is generated, not captured: reassembly cost depends only on
//! sequence numbers, lengths and acks, which a generator controls exactly.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wardwatch::decode::tcp_flags::{ACK, SYN};
use wardwatch::memcap::ByteSize;
use wardwatch::stream::{Event, Reassembler, Stage, StreamConfig};
use wardwatch::time::Timestamp;

const MSS: usize = 1460;
const SEGMENTS: usize = 4096;
/// Starts close to the wrap so the benchmark crosses it.
const ISN: u32 = u32::MAX - 1_000_000;

/// (offset, len) of each segment in arrival order.
fn in_order() -> Vec<(usize, usize)> {
    (0..SEGMENTS).map(|i| (i * MSS, MSS)).collect()
}

/// A deterministic xorshift generator.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Swaps about 1 segment in 20 with its successor.
fn reordered() -> Vec<(usize, usize)> {
    let mut v = in_order();
    let mut x = Xorshift(0x9e37_79b9_7f4a_7c15);
    let mut i = 0;
    while i + 1 < v.len() {
        if x.next() % 20 == 0 {
            v.swap(i, i + 1);
            i += 2;
        } else {
            i += 1;
        }
    }
    v
}

/// 64 KiB of one-byte segments in a random order.
fn one_byte_shuffled() -> Vec<(usize, usize)> {
    let mut v: Vec<(usize, usize)> = (0..64 * 1024).map(|i| (i, 1)).collect();
    let mut x = Xorshift(0x2545_f491_4f6c_dd1d);
    for i in (1..v.len()).rev() {
        v.swap(i, (x.next() % (i as u64 + 1)) as usize);
    }
    v
}

/// Feeds `order`; with `ack_every` > 0 the peer acknowledges everything
/// delivered after every `ack_every` segments, as a receiver with delayed
/// acks does. With `hot`, each payload is read before it is fed, as the
/// decoder's checksum validation does in the pipeline, so what remains is
/// reassembly's own cost on cached bytes.
fn run(
    cfg: &StreamConfig,
    stream: &[u8],
    order: &[(usize, usize)],
    ack_every: usize,
    hot: bool,
) -> u64 {
    let mut stage = Stage::standalone(cfg.clone());
    let mut r = Reassembler::new();
    let mut total = 0u64;
    let mut sink = |e: Event<'_>| {
        if let Event::Data(d) = e {
            // Touch the bytes the way a parser would look at them.
            total += u64::from(d.first().copied().unwrap_or(0)) + d.len() as u64;
        }
    };
    let t = Timestamp(0);
    r.segment(&mut stage, t, ISN, SYN, &[], &mut sink);
    let mut delivered_to = ISN.wrapping_add(1);
    for (n, &(off, len)) in order.iter().enumerate() {
        let seq = ISN.wrapping_add(1).wrapping_add(off as u32);
        let payload = &stream[off..off + len];
        if hot {
            black_box(
                payload
                    .iter()
                    .fold(0u32, |a, &b| a.wrapping_add(u32::from(b))),
            );
        }
        r.segment(&mut stage, t, seq, ACK, payload, &mut sink);
        if ack_every > 0 && (n + 1) % ack_every == 0 {
            // In order here, so the peer has everything up to this segment.
            delivered_to = delivered_to.max(seq.wrapping_add(len as u32));
            r.peer_ack(&mut stage, t, delivered_to, &mut sink);
        }
    }
    r.flush(&mut stage, &mut sink);
    total
}

fn bench(c: &mut Criterion) {
    let stream: Vec<u8> = (0..SEGMENTS * MSS).map(|i| (i % 251) as u8).collect();
    let default = StreamConfig::default();
    let no_window = StreamConfig {
        overlap_window: ByteSize(0),
        ..StreamConfig::default()
    };
    let mut g = c.benchmark_group("reassembly");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    let ordered = in_order();
    for (name, cfg, acks, hot) in [
        ("in_order_1460", &default, 0, false),
        ("in_order_1460_acked", &default, 2, false),
        ("in_order_1460_no_window", &no_window, 0, false),
        ("in_order_1460_hot", &default, 2, true),
        ("in_order_1460_hot_no_window", &no_window, 2, true),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| run(cfg, black_box(&stream), black_box(&ordered), acks, hot))
        });
    }
    let shuffled = reordered();
    g.bench_function("reordered_5pct_1460", |b| {
        b.iter(|| run(&default, black_box(&stream), black_box(&shuffled), 0, false))
    });
    let ones = one_byte_shuffled();
    g.throughput(Throughput::Bytes(ones.len() as u64));
    g.bench_function("one_byte_shuffled_64k", |b| {
        b.iter(|| run(&default, black_box(&stream), black_box(&ones), 0, false))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
