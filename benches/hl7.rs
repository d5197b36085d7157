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

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wardwatch::app::hl7::{new_parser, Hl7Config};
use wardwatch::app::{AppProto, StreamContext};
use wardwatch::flow::Direction;

#[path = "../tests/common/parser_input.rs"]
mod parser_input;

/// Every HL7 flow's calls of a capture.
fn streams(name: &str) -> Vec<Vec<(Direction, Vec<u8>)>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pcaps")
        .join(name);
    parser_input::parser_input(&path, |p, _| p == AppProto::Hl7)
        .iter()
        .map(|f| f.data().into_iter().map(|(d, b)| (d, b.to_vec())).collect())
        .collect()
}

fn run(cfg: &Hl7Config, flows: &[Vec<(Direction, Vec<u8>)>]) -> usize {
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

fn bench(c: &mut Criterion) {
    let cfg = Hl7Config::default();
    let mut g = c.benchmark_group("hl7");
    for (id, name) in [
        ("mllp", "hl7_mllp.pcap"),
        ("variants", "hl7_variants.pcap"),
        ("bare", "hl7_bare_515.pcap"),
    ] {
        let flows = streams(name);
        let bytes: usize = flows.iter().flatten().map(|(_, b)| b.len()).sum();
        assert!(run(&cfg, &flows) > 0, "{name}: no record");
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_function(id, |b| b.iter(|| black_box(run(&cfg, &flows))));
    }
    // Hand-made noise (a benchmark input, not traffic): lines of "MMM|x"
    // and "MSX" — every line start is a candidate that fails on its third
    // or fourth byte.
    let line = b"MMM|x MSX|MSH MSH ^~ \r\nM";
    let noise: Vec<u8> = line.iter().copied().cycle().take(1 << 20).collect();
    let flows = vec![noise
        .chunks(1448)
        .map(|c| (Direction::ToServer, c.to_vec()))
        .collect::<Vec<_>>()];
    let hunt = Hl7Config {
        max_resync: u64::MAX,
        ..Hl7Config::default()
    };
    g.throughput(Throughput::Bytes(noise.len() as u64));
    g.bench_function("hunt_1mib", |b| b.iter(|| black_box(run(&hunt, &flows))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
