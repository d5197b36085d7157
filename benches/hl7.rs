//! HL7 parser throughput over captured streams, fed as the worker hands
//! them over (one call per in-order TCP segment, both directions), one
//! fresh parser per flow and iteration:
//! - `mllp`: every flow of `pcaps/hl7_mllp.pcap` (ADT, ORM, ORU and their
//!   ACKs, three frames in one segment, a 9.4 kB ORU over seven segments);
//! - `variants`: `pcaps/hl7_variants.pcap` (2.1, 2.8 with custom
//!   delimiters, escapes, a batch, a message split before PID);
//! - `bare`: `pcaps/hl7_bare_515.pcap` (unframed, the CMS8000 upload);
//! - `hunt_1mib`: the worst case of looking for a message start — 1 MiB
//!   of text full of line ends and `M` bytes that start no header, in
//!   1448-byte segments, with `max_resync` raised so that all of it is
//!   looked through.
//!
//! Allocations go through mimalloc, as in the sensor.
//!
//! Instruction counts (repeatable where wall time on shared cores is not):
//! `HL7_BENCH_ONCE=<id>` runs that stream's parse [`ONCE_RUNS`] times and
//! exits before criterion, for
//! `valgrind --tool=callgrind --toggle-collect='*hl7::run*'`; divide the
//! instructions by the bytes it prints.

#![allow(clippy::expect_used, clippy::unwrap_used)]

/// The allocator the sensor runs with (`src/main.rs`): a record's text
/// and box are allocated per message, so the system allocator would
/// measure glibc's malloc, not what the sensor spends.
#[global_allocator]
static GLOBAL: wardwatch::alloc::Alloc = wardwatch::alloc::Alloc;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wardwatch::app::hl7::{new_parser, Hl7Config};
use wardwatch::app::{AppProto, StreamContext};
use wardwatch::flow::Direction;

#[path = "../tests/common/parser_input.rs"]
mod parser_input;

/// One flow's calls: the direction and bytes of each.
type Flow = Vec<(Direction, Vec<u8>)>;

/// Every HL7 flow's calls of a capture.
fn streams(name: &str) -> Vec<Flow> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pcaps")
        .join(name);
    parser_input::parser_input(&path, |p, _| p == AppProto::Hl7)
        .iter()
        .map(|f| f.data().into_iter().map(|(d, b)| (d, b.to_vec())).collect())
        .collect()
}

/// Parses of a stream under `HL7_BENCH_ONCE`.
const ONCE_RUNS: usize = 10;

#[inline(never)]
fn run(cfg: &Hl7Config, flows: &[Flow]) -> usize {
    let mut records = Vec::with_capacity(32);
    for f in flows {
        let mut p = new_parser(cfg).unwrap();
        for (dir, data) in f {
            let mut ctx = StreamContext {
                ts: Default::default(),
                records: &mut records,
            };
            p.data(&mut ctx, *dir, data);
        }
        let mut ctx = StreamContext {
            ts: Default::default(),
            records: &mut records,
        };
        p.end(&mut ctx);
    }
    records.len()
}

/// The streams: an id, the configuration, every flow's calls.
fn inputs() -> Vec<(&'static str, Hl7Config, Vec<Flow>)> {
    let mut v: Vec<_> = [
        ("mllp", "hl7_mllp.pcap"),
        ("variants", "hl7_variants.pcap"),
        ("bare", "hl7_bare_515.pcap"),
    ]
    .into_iter()
    .map(|(id, name)| (id, Hl7Config::default(), streams(name)))
    .collect();
    // Hand-made noise (a benchmark input, not traffic): lines of "MMM|x"
    // and "MSX" — every line start is a candidate that fails on its third
    // or fourth byte.
    let line = b"MMM|x MSX|MSH MSH ^~ \r\nM";
    let noise: Vec<u8> = line.iter().copied().cycle().take(1 << 20).collect();
    let flow = noise
        .chunks(1448)
        .map(|c| (Direction::ToServer, c.to_vec()))
        .collect();
    let hunt = Hl7Config {
        max_resync: u64::MAX,
        ..Hl7Config::default()
    };
    v.push(("hunt_1mib", hunt, vec![flow]));
    v
}

fn bench(c: &mut Criterion) {
    let inputs = inputs();
    if let Ok(id) = std::env::var("HL7_BENCH_ONCE") {
        let (_, cfg, flows) = inputs.iter().find(|(i, ..)| *i == id).expect("stream id");
        let bytes: usize = flows.iter().flatten().map(|(_, b)| b.len()).sum();
        let records: usize = (0..ONCE_RUNS).map(|_| run(cfg, flows)).sum();
        println!(
            "{id}: {} bytes parsed, {records} records",
            bytes * ONCE_RUNS
        );
        std::process::exit(0);
    }
    let mut g = c.benchmark_group("hl7");
    for (id, cfg, flows) in &inputs {
        let bytes: usize = flows.iter().flatten().map(|(_, b)| b.len()).sum();
        if *id != "hunt_1mib" {
            assert!(run(cfg, flows) > 0, "{id}: no record");
        }
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_function(*id, |b| b.iter(|| black_box(run(cfg, flows))));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
