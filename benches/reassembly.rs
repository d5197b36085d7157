//! Reassembly throughput: in-order 1460-byte segments (the zero-copy fast
//! path) and the same stream with about 5 % of segments swapped with their
//! successor (each swap holds one segment out of order, then drains it).
//!
//! The sink reads one byte per delivered slice, so the GiB/s figure is the
//! per-segment overhead expressed as bytes (the in-order path copies nothing
//! and never reads the payload), not memory bandwidth; divide the time by
//! 4096 for the cost per segment.
//!
//! The input is generated, not captured: reassembly cost depends only on
//! sequence numbers and lengths, which a generator controls exactly.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wardwatch::decode::tcp_flags::{ACK, SYN};
use wardwatch::stream::{Event, Reassembler, StreamConfig, StreamStats};

const MSS: usize = 1460;
const SEGMENTS: usize = 4096;
/// Starts close to the wrap so the benchmark crosses it.
const ISN: u32 = u32::MAX - 1_000_000;

/// (offset, len) of each segment in arrival order.
fn in_order() -> Vec<(usize, usize)> {
    (0..SEGMENTS).map(|i| (i * MSS, MSS)).collect()
}

/// Swaps about 1 segment in 20 with its successor (deterministic).
fn reordered() -> Vec<(usize, usize)> {
    let mut v = in_order();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut i = 0;
    while i + 1 < v.len() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x % 20 == 0 {
            v.swap(i, i + 1);
            i += 2;
        } else {
            i += 1;
        }
    }
    v
}

fn run(stream: &[u8], order: &[(usize, usize)]) -> u64 {
    let cfg = StreamConfig::default();
    let mut stats = StreamStats::default();
    let mut r = Reassembler::default();
    let mut total = 0u64;
    let mut sink = |e: Event<'_>| {
        if let Event::Data(d) = e {
            // Touch the bytes the way a parser would look at them.
            total += u64::from(d.first().copied().unwrap_or(0)) + d.len() as u64;
        }
    };
    r.segment(&cfg, &mut stats, ISN, SYN, &[], &mut sink);
    for &(off, len) in order {
        let seq = ISN.wrapping_add(1).wrapping_add(off as u32);
        r.segment(
            &cfg,
            &mut stats,
            seq,
            ACK,
            &stream[off..off + len],
            &mut sink,
        );
    }
    r.flush(&mut stats, &mut sink);
    total
}

fn bench(c: &mut Criterion) {
    let stream: Vec<u8> = (0..SEGMENTS * MSS).map(|i| (i % 251) as u8).collect();
    let mut g = c.benchmark_group("reassembly");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    let ordered = in_order();
    g.bench_function("in_order_1460", |b| {
        b.iter(|| run(black_box(&stream), black_box(&ordered)))
    });
    let shuffled = reordered();
    g.bench_function("reordered_5pct_1460", |b| {
        b.iter(|| run(black_box(&stream), black_box(&shuffled)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
