//! Capture reader throughput: every `PacketRef` of a ~50 MB capture of small
//! packets, from a memory-mapped pcap, a memory-mapped pcapng, and a pcap
//! streamed through `Reader::from_read` (the `-r -` path).
//!
//! The capture is generated (64-byte frames, the worst case per byte), so the
//! numbers measure the reader loop, not the page cache: the file is read once
//! before timing and stays cached.

// A benchmark whose setup fails has nothing to measure: stopping is right.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::io::{Cursor, Write};
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wardwatch::capture::Reader;

/// Frame size on the wire and in the capture.
const FRAME: usize = 64;
/// Target capture size.
const TARGET_BYTES: usize = 50 * 1024 * 1024;

/// A classic little-endian microsecond pcap of `n` 64-byte frames.
fn build_pcap(n: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(24 + n * (16 + FRAME));
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes()); // magic
    b.extend_from_slice(&2u16.to_le_bytes()); // version_major
    b.extend_from_slice(&4u16.to_le_bytes()); // version_minor
    b.extend_from_slice(&[0; 8]); // thiszone, sigfigs
    b.extend_from_slice(&65_535u32.to_le_bytes()); // snaplen
    b.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for i in 0..n {
        b.extend_from_slice(&(1_700_000_000 + (i / 1_000_000) as u32).to_le_bytes()); // ts_sec
        b.extend_from_slice(&((i % 1_000_000) as u32).to_le_bytes()); // ts_usec
        b.extend_from_slice(&(FRAME as u32).to_le_bytes()); // incl_len
        b.extend_from_slice(&(FRAME as u32).to_le_bytes()); // orig_len
        b.extend_from_slice(&[i as u8; FRAME]); // frame
    }
    b
}

/// The same frames as a little-endian pcapng with one Ethernet interface.
fn build_pcapng(n: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(48 + n * (32 + FRAME));
    // Section Header Block, 28 bytes.
    b.extend_from_slice(&0x0a0d_0d0au32.to_le_bytes());
    b.extend_from_slice(&28u32.to_le_bytes());
    b.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&u64::MAX.to_le_bytes());
    b.extend_from_slice(&28u32.to_le_bytes());
    // Interface Description Block, 20 bytes, no options.
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&20u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&20u32.to_le_bytes());
    let block_len = (32 + FRAME) as u32;
    for i in 0..n {
        let ts = 1_700_000_000_000_000u64 + i as u64;
        b.extend_from_slice(&6u32.to_le_bytes()); // EPB
        b.extend_from_slice(&block_len.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes()); // interface 0
        b.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        b.extend_from_slice(&(ts as u32).to_le_bytes());
        b.extend_from_slice(&(FRAME as u32).to_le_bytes());
        b.extend_from_slice(&(FRAME as u32).to_le_bytes());
        b.extend_from_slice(&[i as u8; FRAME]);
        b.extend_from_slice(&block_len.to_le_bytes());
    }
    b
}

/// Reads every packet; returns (packets, captured bytes) so nothing is
/// optimised away.
fn read_all(mut r: Reader) -> (u64, u64) {
    let (mut pkts, mut bytes) = (0u64, 0u64);
    while let Ok(Some(chunk)) = r.next_chunk(1024) {
        for p in &chunk.pkts {
            pkts += 1;
            bytes += u64::from(black_box(p).caplen);
        }
    }
    (pkts, bytes)
}

/// Shared bytes that a `Cursor` can read without copying them per run.
struct Shared(Arc<Vec<u8>>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

fn write_temp(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).expect("create");
    f.write_all(bytes).expect("write");
    path
}

fn bench_capture(c: &mut Criterion) {
    let n = TARGET_BYTES / (16 + FRAME);
    let pcap = Arc::new(build_pcap(n));
    let pcapng = build_pcapng(n);
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap_path = write_temp(dir.path(), "small.pcap", &pcap);
    let pcapng_path = write_temp(dir.path(), "small.pcapng", &pcapng);

    let open = |p: &Path| Reader::open(p).expect("open");
    assert_eq!(read_all(open(&pcap_path)).0, n as u64);
    assert_eq!(read_all(open(&pcapng_path)).0, n as u64);

    let mut g = c.benchmark_group("capture_packets");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("pcap_mmap", |b| b.iter(|| read_all(open(&pcap_path))));
    g.bench_function("pcapng_mmap", |b| b.iter(|| read_all(open(&pcapng_path))));
    g.bench_function("pcap_stream", |b| {
        b.iter(|| {
            let rd = Cursor::new(Shared(Arc::clone(&pcap)));
            read_all(Reader::from_read(Box::new(rd)).expect("header"))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("capture_bytes");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(pcap.len() as u64));
    g.bench_function("pcap_mmap", |b| b.iter(|| read_all(open(&pcap_path))));
    g.finish();
}

criterion_group!(benches, bench_capture);
criterion_main!(benches);
