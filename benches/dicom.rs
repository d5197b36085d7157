//! DICOM parser throughput over the captured 2 MiB C-STORE
//! (`pcaps/dicom_store_large.pcap`: 16 KiB P-DATA-TF PDUs), both
//! directions fed as the capture's TCP segments (about 1448 bytes each),
//! one fresh parser per iteration. Pixel Data is skipped, not scanned, so
//! the figure is per-segment overhead expressed in bytes/s. A second run
//! loses one to-server segment in 64 (gaps counted through the pixels); a
//! third measures the worst case of hunting for a PDU after a gap.
//!
//! `log_find_and_store_phi`: the records of `dicom_find.pcap` (C-FIND
//! matches of three patients) and `dicom_store_phi.pcap` (two C-STOREs
//! with a full patient module) serialised as their EVE `dicom` objects
//! with the default options (patient data masked); throughput in bytes of
//! JSON written.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wardwatch::app::dicom::{DicomConfig, Parser};
use wardwatch::app::{StreamConsumer, StreamContext};
use wardwatch::output::mask::LogOptions;

#[path = "../tests/common/parser_input.rs"]
mod parser_input;

fn bench(c: &mut Criterion) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/pcaps/dicom_store_large.pcap");
    // What the worker hands the parser: one call per in-order TCP segment.
    let flows = parser_input::parser_input(std::path::Path::new(path), |_, e| e.server.port == 104);
    let segs = flows[0].data();
    let bytes: usize = segs.iter().map(|s| s.1.len()).sum();
    let cfg = DicomConfig::default();
    let mut g = c.benchmark_group("dicom");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("c_store_2mib_segments", |b| {
        let mut records = Vec::with_capacity(16);
        b.iter(|| {
            records.clear();
            let mut p = Parser::new(&cfg);
            for (dir, data) in &segs {
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
            black_box(records.len())
        })
    });
    // The same with every 64th to-server segment lost: each gap falls in
    // pixel data and is counted through (the lossy path).
    g.bench_function("c_store_2mib_segments_1_in_64_lost", |b| {
        let mut records = Vec::with_capacity(64);
        b.iter(|| {
            records.clear();
            let mut p = Parser::new(&cfg);
            let mut n = 0usize;
            for (dir, data) in &segs {
                let mut ctx = StreamContext {
                    ts: Default::default(),
                    records: &mut records,
                };
                n += usize::from(*dir == wardwatch::flow::Direction::ToServer);
                if n % 64 == 63 {
                    p.gap(&mut ctx, *dir, data.len() as u32);
                } else {
                    p.data(&mut ctx, *dir, data);
                }
            }
            let mut ctx = StreamContext {
                ts: Default::default(),
                records: &mut records,
            };
            p.end(&mut ctx);
            black_box(records.len())
        })
    });
    // Worst case of the hunt for a PDU after a gap: 2 MiB of noise in which
    // every byte is 0..=15, so about half the positions start a candidate
    // (type 1..=7) that must be checked, in 1448-byte segments.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..2usize << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x & 0x0f) as u8
        })
        .collect();
    g.throughput(Throughput::Bytes(noise.len() as u64));
    g.bench_function("hunt_2mib_dense_candidates", |b| {
        let mut records = Vec::with_capacity(4);
        b.iter(|| {
            records.clear();
            let mut p = Parser::new(&cfg);
            let mut ctx = StreamContext {
                ts: Default::default(),
                records: &mut records,
            };
            p.gap(&mut ctx, wardwatch::flow::Direction::ToServer, 1);
            for seg in noise.chunks(1448) {
                p.data(&mut ctx, wardwatch::flow::Direction::ToServer, seg);
            }
            p.end(&mut ctx);
            black_box(records.len())
        })
    });
    let mut logged = Vec::new();
    for name in ["dicom_find.pcap", "dicom_store_phi.pcap"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("pcaps")
            .join(name);
        for f in parser_input::parser_input(&path, |_, e| e.server.port == 104) {
            logged.extend(f.records(Box::new(Parser::new(&cfg))));
        }
    }
    let opts = LogOptions::default();
    let json_len: usize = logged
        .iter()
        .map(|r| serde_json::to_vec(&r.loggable(&opts)).unwrap().len())
        .sum();
    assert!(logged.len() >= 8, "{} records", logged.len());
    g.throughput(Throughput::Bytes(json_len as u64));
    g.bench_function("log_find_and_store_phi", |b| {
        let mut out = Vec::with_capacity(json_len);
        b.iter(|| {
            out.clear();
            for r in &logged {
                let _ = serde_json::to_writer(&mut out, &r.loggable(&opts));
            }
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
