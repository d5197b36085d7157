//! Targets `mqtt`, `mqtt_split`, `dicom`, `dicom_split`, `hl7`, `hl7_split`,
//! `tls`, `tls_split`: the MQTT parser and state machine, the DICOM Upper
//! Layer, DIMSE and data-set walker, the HL7 v2 framing (MLLP and bare),
//! message parser and acknowledgment pairing, and the TLS record layer,
//! handshake reassembly, hello, certificate and X.509 readers, fed both
//! directions of a conversation as the worker feeds them.
//!
//! Input: `cfg:u8 [sizes] steps` — `cfg & 0x80` gives the parser small
//! limits from the other bits (message, transaction, payload and value caps
//! reached with small inputs), else the defaults; `sizes` (split targets
//! only, [`Cursor::sizes`]) are the piece sizes of the re-split; `steps` as
//! in `turns`.
//!
//! Properties:
//! - `mqtt`, `dicom`, `hl7`, `tls`: no panic on any bytes, gaps and shed requests in any
//!   order; shedding never raises `memuse`; every record's EVE object
//!   serialises to a JSON object, masked and unmasked.
//! - `mqtt_split`, `dicom_split`, `hl7_split`, `tls_split`: re-segmentation does not change what is
//!   found — the steps as given, the same bytes with each direction's
//!   adjacent data joined, and every data call cut into pieces of the given
//!   sizes give the same records in the same order and the same anomalies
//!   (in any order: two problems noticed in one stretch of bytes may be
//!   reported in either order depending on where a call ended).
//!
//! The split properties are separate targets so that each can be left out
//! of CI (`fuzz/known`) while a finding of its own is open. Found by them
//! and fixed (regressions under `fuzz/regressions/`): MQTT records that
//! depended on segmentation at the start of a stream, at resync boundaries
//! and after a CONNECT refused by its header; DICOM's `max_resync` not
//! applied to bytes discarded within one call, kept value bytes counted
//! by buffer capacity, and a per-flow anomaly cap whose kept anomalies
//! depended on the order they were noticed in (a cap must not depend on
//! order, as this property allows any).

use wardwatch::app::dicom::DicomConfig;
use wardwatch::app::hl7::Hl7Config;
use wardwatch::app::mqtt::MqttConfig;
use wardwatch::app::tls::TlsConfig;
use wardwatch::app::{
    dicom as dicom_app, hl7 as hl7_app, mqtt as mqtt_app, tls as tls_app, AppRecord, StreamConsumer,
};
use wardwatch::output::mask::{LogOptions, MaskKey};

use super::input::Cursor;
use super::turns::{self, feed};

#[derive(Clone, Copy)]
enum Proto {
    Mqtt,
    Dicom,
    Hl7,
    Tls,
}

/// MQTT limits small enough for a fuzzer's inputs to reach. (The struct
/// update keeps this compiling when a limit is added.)
#[allow(clippy::needless_update)]
pub fn mqtt_config(b: u8) -> MqttConfig {
    if b & 0x80 == 0 {
        return MqttConfig::default();
    }
    MqttConfig {
        max_msg_len: 8 + usize::from(b & 0x0f) * 32,
        max_transactions: 1 + usize::from((b >> 4) & 0x03),
        max_payload_bytes: usize::from(b & 0x07) * 4,
        max_open_bytes: 64 + usize::from(b & 0x30) * 8,
        ..MqttConfig::default()
    }
}

/// DICOM limits small enough for a fuzzer's inputs to reach.
#[allow(clippy::needless_update)]
pub fn dicom_config(b: u8) -> DicomConfig {
    if b & 0x80 == 0 {
        return DicomConfig::default();
    }
    DicomConfig {
        max_association_pdu: 64 + u32::from(b & 0x0f) * 64,
        max_command_length: 32 + u32::from(b & 0x0f) * 16,
        max_value_length: u32::from(b & 0x07) * 4,
        max_pending: 1 + u32::from((b >> 4) & 0x03),
        max_matches: u32::from((b >> 5) & 0x01),
        max_inflated: 4096,
        max_attributes: 1 + u32::from(b & 0x07),
        max_attribute_bytes: 16 + u32::from(b & 0x0f) * 8,
        max_open_bytes: 256 + u64::from(b & 0x30) * 16,
        max_resync: 256 + u64::from(b & 0x0f) * 64,
        max_resync_pdu: 64 + u32::from(b & 0x0f) * 64,
        ..DicomConfig::default()
    }
}

/// HL7 limits small enough for a fuzzer's inputs to reach (segment, message,
/// open-message and resync caps of a few dozen bytes).
#[allow(clippy::needless_update)]
pub fn hl7_config(b: u8) -> Hl7Config {
    if b & 0x80 == 0 {
        return Hl7Config::default();
    }
    Hl7Config {
        max_msg_len: 16 + usize::from(b & 0x0f) * 32,
        max_segment_len: 8 + usize::from(b & 0x07) * 16,
        max_transactions: 1 + usize::from((b >> 4) & 0x03),
        max_open_bytes: 64 + usize::from(b & 0x30) * 8,
        max_resync: 32 + u64::from(b & 0x0f) * 64,
        ..Hl7Config::default()
    }
}

/// TLS limits small enough for a fuzzer's inputs to reach (a handshake
/// message cap of a few dozen bytes).
#[allow(clippy::needless_update)]
pub fn tls_config(b: u8) -> TlsConfig {
    if b & 0x80 == 0 {
        return TlsConfig::default();
    }
    TlsConfig {
        max_handshake: wardwatch::memcap::ByteSize(16 + u64::from(b & 0x3f) * 16),
        ..TlsConfig::default()
    }
}

fn parser(p: Proto, cfg: u8) -> Box<dyn StreamConsumer> {
    match p {
        Proto::Mqtt => mqtt_app::new_parser(&mqtt_config(cfg)),
        Proto::Dicom => dicom_app::new_parser(&dicom_config(cfg)),
        Proto::Hl7 => hl7_app::new_parser(&hl7_config(cfg)),
        Proto::Tls => tls_app::new_parser(&tls_config(cfg)),
    }
    .expect("wardwatch parses this protocol")
}

fn check_logs(recs: &[AppRecord]) {
    for r in recs {
        for unmask in [false, true] {
            let opts = if unmask {
                LogOptions::unmasked()
            } else {
                LogOptions::masked(MaskKey::from_secret(b"fuzz"))
            };
            let v = r.log(&opts);
            assert!(v.is_object(), "{} record logs as {v}", r.event_type());
            let direct = serde_json::to_vec(&r.loggable(&opts));
            assert!(direct.is_ok(), "record does not serialise: {r:?}");
        }
    }
}

fn plain(p: Proto, data: &[u8]) {
    let mut c = Cursor::new(data);
    let cfg = c.u8();
    let steps = turns::parse(&mut c);
    let recs = feed(parser(p, cfg), &steps, true);
    check_logs(&recs);
}

fn split(p: Proto, data: &[u8]) {
    let mut c = Cursor::new(data);
    let cfg = c.u8();
    let sizes = c.sizes();
    let steps = turns::parse(&mut c);
    let run = |steps: &[turns::Step]| feed(parser(p, cfg), steps, false);
    let want = run(&turns::merged(&steps));
    let given = run(&steps);
    assert_same(&want, &given, "the steps as given");
    let cut = run(&turns::resplit(&steps, &sizes));
    assert_same(&want, &cut, &format!("pieces of {sizes:?} bytes"));
}

/// Panics when the records differ (in order) or the anomalies differ (as
/// a multiset: where a parser notices two problems in one stretch of bytes
/// may depend on where a call ended, and so may their order).
fn assert_same(want: &[AppRecord], got: &[AppRecord], how: &str) {
    let split = |v: &[AppRecord]| {
        let (mut anomalies, records): (Vec<_>, Vec<_>) = v
            .iter()
            .cloned()
            .partition(|r| matches!(r, AppRecord::Anomaly(_)));
        anomalies.sort_by_key(|r| match r {
            AppRecord::Anomaly(a) => (a.event, a.dir as u8),
            _ => ("", 0),
        });
        (records, anomalies)
    };
    let (want_recs, want_anomalies) = split(want);
    let (got_recs, got_anomalies) = split(got);
    for (i, (w, g)) in want_recs.iter().zip(&got_recs).enumerate() {
        assert_eq!(g, w, "record {i} differs when the stream is cut into {how}");
    }
    assert_eq!(
        got_recs.len(),
        want_recs.len(),
        "{} records instead of {} when the stream is cut into {how}: {:?}",
        got_recs.len(),
        want_recs.len(),
        got_recs
            .get(want_recs.len()..)
            .or(want_recs.get(got_recs.len()..))
    );
    assert_eq!(
        got_anomalies, want_anomalies,
        "anomalies differ when the stream is cut into {how}"
    );
}

pub fn mqtt(data: &[u8]) {
    plain(Proto::Mqtt, data);
}

pub fn mqtt_split(data: &[u8]) {
    split(Proto::Mqtt, data);
}

pub fn dicom(data: &[u8]) {
    plain(Proto::Dicom, data);
}

pub fn dicom_split(data: &[u8]) {
    split(Proto::Dicom, data);
}

pub fn hl7(data: &[u8]) {
    plain(Proto::Hl7, data);
}

pub fn hl7_split(data: &[u8]) {
    split(Proto::Hl7, data);
}

pub fn tls(data: &[u8]) {
    plain(Proto::Tls, data);
}

pub fn tls_split(data: &[u8]) {
    split(Proto::Tls, data);
}
