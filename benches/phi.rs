//! PHI detectors on captured MQTT payloads: `scan_payload` whole, and the
//! location passes alone (`location::scan_json` on the parsed document,
//! `location::scan_nmea` on the bytes), so their share of the cost reads
//! off one run.
//!
//! Payloads (the first PUBLISH of each kind in the capture):
//! - `patient_json`: `mqtt_v311_anon_phi`, patient JSON with a NIR;
//! - `telemetry_json`: `mqtt_telemetry_nophi`, vitals without PHI;
//! - `wearable_json`: `mqtt_wearable_gps`, vitals with a GPS fix;
//! - `tracker_nmea`: `mqtt_wearable_gps`, an RMC + GGA epoch with a fix;
//! - `hub_status`: `mqtt_site_hub`, GeoJSON point, GGA and a coarse area;
//! - `hl7_oru`: `mqtt_v31_default_creds`, an HL7 ORU with PID-11;
//! - `waveform`: `mqtt_large_split`, 64 KiB (`max_scan_bytes`) of the
//!   198 kB ECG JSON (cut, so not parsed: the text passes only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wardwatch::app::mqtt::{self, MqttConfig};
use wardwatch::app::{AppProto, AppRecord, StreamContext};
use wardwatch::detect::phi::{self, location, Collector, PhiConfig};

#[path = "../tests/common/parser_input.rs"]
mod parser_input;

/// PUBLISH payloads of a capture, in flow order.
fn payloads(name: &str) -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pcaps")
        .join(name);
    let mut recs = Vec::new();
    for flow in parser_input::parser_input(&path, |p, _| p == AppProto::Mqtt) {
        let mut p = mqtt::new_parser(&MqttConfig::default()).unwrap();
        for call in &flow.calls {
            let mut ctx = StreamContext {
                ts: Default::default(),
                records: &mut recs,
            };
            match call {
                parser_input::Call::Data(d, b) => p.data(&mut ctx, *d, b),
                parser_input::Call::Gap(d, n) => p.gap(&mut ctx, *d, *n),
            }
        }
    }
    recs.iter()
        .filter_map(|r| match r {
            AppRecord::Mqtt(m) => Some(m),
            _ => None,
        })
        .flat_map(|m| m.messages.iter())
        .filter_map(|m| match &m.body {
            mqtt::Body::Publish(p) => Some(p.payload.to_vec()),
            _ => None,
        })
        .collect()
}

fn pick(name: &str, want: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    payloads(name).into_iter().find(|p| want(p)).unwrap()
}

fn has(p: &[u8], s: &[u8]) -> bool {
    p.windows(s.len()).any(|w| w == s)
}

fn bench(c: &mut Criterion) {
    let cfg = PhiConfig::default();
    let mut waveform = pick("mqtt_large_split.pcap", |p| p.len() >= 60_000);
    waveform.truncate(cfg.max_scan_bytes);
    let cases = [
        (
            "patient_json",
            pick("mqtt_v311_anon_phi.pcap", |p| has(p, b"\"nir\"")),
        ),
        (
            "telemetry_json",
            pick("mqtt_telemetry_nophi.pcap", |p| p.starts_with(b"{")),
        ),
        (
            "wearable_json",
            pick("mqtt_wearable_gps.pcap", |p| has(p, b"\"fix\":true")),
        ),
        (
            "tracker_nmea",
            pick("mqtt_wearable_gps.pcap", |p| has(p, b",A,")),
        ),
        (
            "hub_status",
            pick("mqtt_site_hub.pcap", |p| has(p, b"Point")),
        ),
        (
            "hl7_oru",
            pick("mqtt_v31_default_creds.pcap", |p| p.starts_with(b"MSH")),
        ),
        ("waveform", waveform),
    ];
    let mut g = c.benchmark_group("phi");
    for (name, data) in &cases {
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function(format!("scan_payload/{name}"), |b| {
            b.iter(|| black_box(phi::scan_payload(black_box(data), &cfg)))
        });
        let mut nodes = Vec::new();
        if let Some(doc) = phi::tape::parse(data, &mut nodes) {
            let mut members = Vec::new();
            g.bench_function(format!("location_json/{name}"), |b| {
                b.iter(|| {
                    let mut col = Collector::new(&cfg);
                    location::scan_json(black_box(doc.root()), &cfg, &mut col, &mut members);
                    black_box(col.finish())
                })
            });
        }
        g.bench_function(format!("location_nmea/{name}"), |b| {
            b.iter(|| {
                let mut col = Collector::new(&cfg);
                location::scan_nmea(black_box(data), &cfg, &mut col);
                black_box(col.finish())
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
