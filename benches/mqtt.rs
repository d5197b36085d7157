//! MQTT parser throughput on captured publish-heavy streams.
//!
//! Streams are what the worker hands the MQTT parser for two real captures:
//! `mqtt_telemetry_nophi.pcap` (broker → central station: 300 QoS 0
//! PUBLISHes of ~140 bytes, MQTT 3.1.1) and `mqtt_large_split.pcap` (broker
//! → central station: 400 small PUBLISHes and one of 198 KB).
//!
//! - `ours/parse`: `parser::parse` over the direction's bytes, borrowed
//!   slices, no copy (the parser alone).
//! - `ours/consumer`: the per-flow state fed with the flow's real calls,
//!   both directions: framing, transactions and owned records (EVE
//!   serialisation excluded).
//! - `mqttbytes/v4_read`: `mqttbytes` 0.6 `v4::read` on the same bytes,
//!   which needs them in an owned `BytesMut` (the copy is part of its cost,
//!   as it would be in a sensor) and gives owned packets.
//! - `ours/log`: the records of `ours/consumer` serialised as their EVE
//!   objects with the default options (payloads masked), the part of
//!   writing an `mqtt` event that belongs to the protocol and the masking
//!   policy (the event header is the same for every protocol).

use std::hint::black_box;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wardwatch::app::mqtt::parser::{self, Limits, Progress};
use wardwatch::app::mqtt::{new_parser, MqttConfig};
use wardwatch::app::{AppProto, StreamConsumer, StreamContext};
use wardwatch::capture::Reader;
use wardwatch::config::Config;
use wardwatch::flow::Direction;
use wardwatch::output::mask::LogOptions;
use wardwatch::pipeline::worker::Worker;
use wardwatch::time::Timestamp;

type Calls = Vec<(Direction, Vec<u8>)>;

struct Rec(Arc<Mutex<Vec<Calls>>>, usize);

impl StreamConsumer for Rec {
    fn data(&mut self, _: &mut StreamContext<'_>, dir: Direction, data: &[u8]) {
        if let Ok(mut v) = self.0.lock() {
            if let Some(c) = v.get_mut(self.1) {
                c.push((dir, data.to_vec()));
            }
        }
    }
    fn gap(&mut self, _: &mut StreamContext<'_>, _: Direction, _: u32) {}
    fn end(&mut self, _: &mut StreamContext<'_>) {}
}

/// The MQTT flows of a capture, call by call.
fn flows(capture: &str) -> Vec<Calls> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pcaps")
        .join(capture);
    let Ok(mut reader) = Reader::open(&path) else {
        return Vec::new();
    };
    let mut w = Worker::new(&Config::default());
    let all: Arc<Mutex<Vec<Calls>>> = Arc::default();
    let a2 = Arc::clone(&all);
    w.set_consumer_factory(Arc::new(move |p, _| {
        if p != AppProto::Mqtt {
            return None;
        }
        let mut v = a2.lock().ok()?;
        v.push(Vec::new());
        Some(Box::new(Rec(Arc::clone(&a2), v.len() - 1)) as Box<dyn StreamConsumer>)
    }));
    while let Ok(Some(chunk)) = reader.next_chunk(256) {
        for p in &chunk.pkts {
            w.packet(p.ts, p.link, chunk.data(p), p.origlen);
        }
    }
    w.finish(Timestamp(0), &mut |_| {});
    let v = all.lock().map(|v| v.clone()).unwrap_or_default();
    v
}

/// The flow with the most bytes in one direction, and that direction's bytes.
fn heaviest(flows: &[Calls]) -> (Calls, Vec<u8>) {
    let mut best = (Vec::new(), Vec::new());
    for calls in flows {
        for dir in [Direction::ToServer, Direction::ToClient] {
            let bytes: Vec<u8> = calls
                .iter()
                .filter(|(d, _)| *d == dir)
                .flat_map(|(_, b)| b.iter().copied())
                .collect();
            if bytes.len() > best.1.len() {
                best = (calls.clone(), bytes);
            }
        }
    }
    best
}

fn parse_all(mut input: &[u8], limits: &Limits) -> usize {
    let mut n = 0;
    while let Ok(Progress::Done { msg, consumed }) =
        parser::parse(input, parser::level::V311, limits)
    {
        black_box(&msg);
        n += 1;
        input = input.get(consumed..).unwrap_or(&[]);
    }
    n
}

fn bench(c: &mut Criterion) {
    let limits = Limits {
        max_msg_len: 1 << 20,
    };
    for cap in ["mqtt_telemetry_nophi.pcap", "mqtt_large_split.pcap"] {
        let (calls, stream) = heaviest(&flows(cap));
        let total: usize = calls.iter().map(|(_, b)| b.len()).sum();
        let name = cap.trim_end_matches(".pcap");
        // Both parsers must see the same messages, or the comparison is void.
        let mut buf = BytesMut::from(&stream[..]);
        let mut theirs = 0;
        while mqttbytes::v4::read(&mut buf, 1 << 20).is_ok() {
            theirs += 1;
        }
        assert_eq!(parse_all(&stream, &limits), theirs, "{name}");
        assert!(theirs > 300, "{name}: {theirs} messages");
        let mut g = c.benchmark_group(format!("mqtt/{name}"));
        g.throughput(Throughput::Bytes(stream.len() as u64));
        g.bench_function("ours/parse", |b| {
            b.iter(|| parse_all(black_box(&stream), &limits))
        });
        g.bench_function("mqttbytes/v4_read", |b| {
            b.iter(|| {
                // The copy mqttbytes needs: an owned buffer.
                let mut buf = BytesMut::from(black_box(&stream[..]));
                let mut n = 0;
                while let Ok(p) = mqttbytes::v4::read(&mut buf, 1 << 20) {
                    black_box(&p);
                    n += 1;
                }
                n
            })
        });
        g.throughput(Throughput::Bytes(total as u64));
        g.bench_function("ours/consumer", |b| {
            let mut records = Vec::with_capacity(4096);
            b.iter(|| {
                let Some(mut p) = new_parser(&MqttConfig::default()) else {
                    return 0;
                };
                for (d, bytes) in &calls {
                    let mut ctx = StreamContext {
                        ts: Timestamp(0),
                        records: &mut records,
                    };
                    p.data(&mut ctx, *d, bytes);
                }
                let n = records.len();
                records.clear();
                n
            })
        });
        let records = {
            let mut records = Vec::new();
            if let Some(mut p) = new_parser(&MqttConfig::default()) {
                for (d, bytes) in &calls {
                    let mut ctx = StreamContext {
                        ts: Timestamp(0),
                        records: &mut records,
                    };
                    p.data(&mut ctx, *d, bytes);
                }
            }
            records
        };
        let opts = LogOptions::default();
        g.bench_function("ours/log", |b| {
            let mut out = Vec::with_capacity(1 << 20);
            b.iter(|| {
                out.clear();
                for r in &records {
                    let _ = serde_json::to_writer(&mut out, &r.loggable(&opts));
                }
                black_box(out.len())
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
