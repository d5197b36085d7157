//! DICOM parser throughput over the captured 2 MiB C-STORE
//! (`pcaps/dicom_store_large.pcap`: 16 KiB P-DATA-TF PDUs), both
//! directions fed as the capture's TCP segments (about 1448 bytes each),
//! one fresh parser per iteration. Pixel Data is skipped, not scanned, so
//! the figure is per-segment overhead expressed in bytes/s. A second run
//! loses one to-server segment in 64: the parser then hunts through pixel
//! data for the next PDU, which scans every byte.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wardwatch::app::dicom::{DicomConfig, Parser};
use wardwatch::app::{StreamConsumer, StreamContext};

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
    // The same with every 64th to-server segment lost: after each gap the
    // parser hunts through pixel data for the next PDU (the resync path).
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
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
