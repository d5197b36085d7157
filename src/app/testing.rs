//! Test support: the app-layer records the real parsers make of a capture
//! in `pcaps/`, taken as the worker hands them over (the same path as a
//! run, without EVE).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use super::{AppRecord, RecordSink, StreamConsumer, StreamContext};
use crate::capture::Reader;
use crate::config::Config;
use crate::flow::Direction;
use crate::pipeline::worker::Worker;
use crate::time::Timestamp;

/// The real parser of a flow, copying every record it reports.
struct Tap {
    inner: Box<dyn StreamConsumer>,
    out: Arc<Mutex<Vec<AppRecord>>>,
}

/// Passes records on and keeps a copy.
struct Tee<'a, 'b> {
    outer: &'a mut dyn RecordSink,
    copy: &'b Mutex<Vec<AppRecord>>,
}

impl RecordSink for Tee<'_, '_> {
    fn push(&mut self, r: AppRecord) {
        self.copy.lock().unwrap().push(r.clone());
        self.outer.push(r);
    }
}

impl StreamConsumer for Tap {
    fn data(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, data: &[u8]) {
        let mut tee = Tee {
            outer: &mut *ctx.records,
            copy: &self.out,
        };
        let mut c = StreamContext {
            ts: ctx.ts,
            records: &mut tee,
        };
        self.inner.data(&mut c, dir, data);
    }
    fn gap(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, len: u32) {
        let mut tee = Tee {
            outer: &mut *ctx.records,
            copy: &self.out,
        };
        let mut c = StreamContext {
            ts: ctx.ts,
            records: &mut tee,
        };
        self.inner.gap(&mut c, dir, len);
    }
    fn end(&mut self, ctx: &mut StreamContext<'_>) {
        let mut tee = Tee {
            outer: &mut *ctx.records,
            copy: &self.out,
        };
        let mut c = StreamContext {
            ts: ctx.ts,
            records: &mut tee,
        };
        self.inner.end(&mut c);
    }
}

/// Every app-layer record of `pcaps/<name>.pcap`, in the order reported.
pub fn records(name: &str) -> Vec<AppRecord> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pcaps")
        .join(format!("{name}.pcap"));
    let cfg = Config::default();
    let app = cfg.app_layer.clone();
    let out: Arc<Mutex<Vec<AppRecord>>> = Arc::default();
    let shared = Arc::clone(&out);
    let mut w = Worker::new(&cfg);
    w.set_consumer_factory(Arc::new(move |p, _| {
        let inner = super::new_consumer(p, &app)?;
        Some(Box::new(Tap {
            inner,
            out: Arc::clone(&shared),
        }) as Box<dyn StreamConsumer>)
    }));
    let mut reader = Reader::open(&path).unwrap();
    while let Some(chunk) = reader.next_chunk(256).unwrap() {
        for p in &chunk.pkts {
            w.packet(p.ts, p.link, chunk.data(p), p.origlen);
        }
    }
    w.finish(Timestamp(0), &mut |_| {});
    let v = out.lock().unwrap().clone();
    v
}

/// The MQTT records of `pcaps/<name>.pcap`.
pub fn mqtt_records(name: &str) -> Vec<super::mqtt::Record> {
    let v: Vec<_> = records(name)
        .into_iter()
        .filter_map(|r| match r {
            AppRecord::Mqtt(m) => Some(m),
            _ => None,
        })
        .collect();
    assert!(!v.is_empty(), "no MQTT record in {name}");
    v
}

/// The DICOM records of `pcaps/<name>.pcap`.
pub fn dicom_records(name: &str) -> Vec<super::dicom::Record> {
    let v: Vec<_> = records(name)
        .into_iter()
        .filter_map(|r| match r {
            AppRecord::Dicom(d) => Some(d),
            _ => None,
        })
        .collect();
    assert!(!v.is_empty(), "no DICOM record in {name}");
    v
}

/// The events of the app-layer anomalies among `records`, in order.
pub fn anomaly_events(records: &[AppRecord]) -> Vec<&'static str> {
    records
        .iter()
        .filter_map(|r| match r {
            AppRecord::Anomaly(a) => Some(a.event),
            _ => None,
        })
        .collect()
}
