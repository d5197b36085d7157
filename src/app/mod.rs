//! App layer: which protocol a TCP conversation speaks, and the interface
//! protocol parsers implement.
//!
//! Owns: protocol detection — by the first bytes of each direction
//! ([`probe`]) and by configurable ports — and the [`StreamConsumer`]
//! contract that the MQTT and DICOM parsers implement.
//!
//! Detection order: a content match in either direction decides (so MQTT on
//! 8080 or DICOM on 4242 is found, and TLS on 8883 is recorded as `tls`, not
//! parsed as MQTT). When the first bytes match nothing, a flow on a
//! configured port is assigned that port's protocol — its parser then
//! decides whether the stream is really that protocol (mid-stream pickup
//! sees no CONNECT or A-ASSOCIATE); otherwise detection has `failed`.
//! At most `probe_depth` bytes per direction are looked at, and only the
//! bytes of a first segment shorter than the probe needs are copied.

pub mod dicom;
pub mod hl7;
pub mod keyword;
pub mod mqtt;
pub mod probe;
#[cfg(test)]
pub(crate) mod testing;

use serde::Deserialize;

use crate::flow::Direction;
use crate::time::Timestamp;

/// An application protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AppProto {
    /// Not decided yet (or no payload seen).
    #[default]
    Unknown,
    Mqtt,
    Dicom,
    Hl7,
    /// TLS: recorded as encrypted, not parsed.
    Tls,
    /// Payload was seen but matched no protocol.
    Failed,
}

impl AppProto {
    /// EVE `app_proto`; `None` while undecided.
    pub fn eve_name(self) -> Option<&'static str> {
        match self {
            AppProto::Unknown => None,
            AppProto::Mqtt => Some("mqtt"),
            AppProto::Dicom => Some("dicom"),
            AppProto::Hl7 => Some("hl7"),
            AppProto::Tls => Some("tls"),
            AppProto::Failed => Some("failed"),
        }
    }
}

/// `app_layer:` configuration: the ports each protocol is expected on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppConfig {
    /// Ports of clear-text MQTT (IANA 1883).
    pub mqtt_ports: Vec<u16>,
    /// Ports of clear-text DICOM (104, 11112).
    pub dicom_ports: Vec<u16>,
    /// Ports of HL7 v2 over MLLP (2575).
    pub hl7_ports: Vec<u16>,
    /// Ports of TLS-wrapped services (MQTT 8883, DICOM 2762, HTTPS 443).
    pub tls_ports: Vec<u16>,
    /// Bytes per direction examined before detection gives up.
    pub probe_depth: usize,
    /// Parser state all flows of all workers together may hold: buffered
    /// message tails, open transactions, kept attributes
    /// (`app_layer.memcap`).
    pub memcap: crate::memcap::ByteSize,
    /// MQTT parser limits.
    pub mqtt: mqtt::MqttConfig,
    /// DICOM parser limits.
    pub dicom: dicom::DicomConfig,
    /// HL7 parser limits.
    pub hl7: hl7::Hl7Config,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            mqtt_ports: vec![1883],
            dicom_ports: vec![104, 11112],
            hl7_ports: vec![2575],
            tls_ports: vec![443, 2762, 8883],
            probe_depth: 64,
            memcap: crate::memcap::ByteSize::mib(64),
            mqtt: mqtt::MqttConfig::default(),
            dicom: dicom::DicomConfig::default(),
            hl7: hl7::Hl7Config::default(),
        }
    }
}

impl AppConfig {
    /// The protocol expected on a server port, if any.
    pub fn by_port(&self, port: u16) -> AppProto {
        if self.mqtt_ports.contains(&port) {
            AppProto::Mqtt
        } else if self.dicom_ports.contains(&port) {
            AppProto::Dicom
        } else if self.hl7_ports.contains(&port) {
            AppProto::Hl7
        } else if self.tls_ports.contains(&port) {
            AppProto::Tls
        } else {
            AppProto::Unknown
        }
    }
}

/// Context handed to a consumer with each call.
#[derive(Debug)]
pub struct StreamContext<'a> {
    /// Time of the packet that delivered the bytes.
    pub ts: Timestamp,
    /// Where the parser puts what it decoded; the worker writes each record
    /// as an EVE event of the flow (and detection will match on them).
    pub records: &'a mut Vec<AppRecord>,
}

/// What an app-layer parser reports.
#[derive(Debug, Clone, PartialEq)]
pub enum AppRecord {
    /// An MQTT transaction (EVE `mqtt`).
    Mqtt(mqtt::Record),
    /// A DICOM association or DIMSE exchange (EVE `dicom`).
    Dicom(dicom::Record),
    /// An HL7 message and its answer (EVE `hl7`); boxed, as it is larger
    /// than the other records.
    Hl7(Box<hl7::Record>),
    /// Malformed or unexpected input (EVE `anomaly`).
    Anomaly(Anomaly),
}

/// An app-layer anomaly, as Suricata's EVE `anomaly` event of type
/// `applayer` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// Protocol whose parser raised it.
    pub app_proto: AppProto,
    /// Event name, Suricata's where it has one (`invalid_length`,
    /// `missing_connect`, …).
    pub event: &'static str,
    /// Direction the offending bytes travelled.
    pub dir: Direction,
}

/// A login as a rule sees it: MQTT CONNECT (with its CONNACK) or DICOM user
/// identity (with the association's outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// `None`: no username sent (anonymous).
    pub username: Option<&'a [u8]>,
    /// `None`: no password or passcode sent.
    pub password: Option<&'a [u8]>,
    /// The server's answer, `None` when not seen.
    pub accepted: Option<bool>,
}

/// A record's EVE object: serialised directly where the protocol's logger
/// supports it (MQTT, the busiest), else through a JSON value.
pub enum Loggable<'a> {
    Mqtt(mqtt::log::Logged<'a>),
    Hl7(hl7::log::Logged<'a>),
    Value(serde_json::Value),
}

impl serde::Serialize for Loggable<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Loggable::Mqtt(l) => l.serialize(s),
            Loggable::Hl7(l) => l.serialize(s),
            Loggable::Value(v) => v.serialize(s),
        }
    }
}

/// How sensitive values are logged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Log passwords, passcodes, payloads and patient data in full. Off by
    /// default: the sensor must not become a leak of what it protects.
    pub unmask: bool,
}

impl AppRecord {
    /// EVE `event_type` of the record.
    pub fn event_type(&self) -> &'static str {
        match self {
            AppRecord::Mqtt(_) => "mqtt",
            AppRecord::Dicom(_) => "dicom",
            AppRecord::Hl7(_) => "hl7",
            AppRecord::Anomaly(_) => "anomaly",
        }
    }

    /// Who started the record, for records that have a side (EVE
    /// `direction`, `src_ip` the sender): an MQTT transaction opened by the
    /// broker is `ToClient`. `None`: written as the flow is oriented.
    pub fn direction(&self) -> Option<Direction> {
        match self {
            AppRecord::Mqtt(r) => Some(r.direction()),
            AppRecord::Hl7(r) => Some(r.direction()),
            _ => None,
        }
    }

    /// What is logged under the key [`AppRecord::event_type`], ready to be
    /// serialised straight into the output.
    pub fn loggable<'a>(&'a self, opts: &'a LogOptions) -> Loggable<'a> {
        match self {
            AppRecord::Mqtt(r) => Loggable::Mqtt(mqtt::log::Logged { rec: r, opts }),
            AppRecord::Hl7(r) => Loggable::Hl7(hl7::log::Logged { rec: r, opts }),
            other => Loggable::Value(other.log(opts)),
        }
    }

    /// The object logged under the key [`AppRecord::event_type`].
    pub fn log(&self, opts: &LogOptions) -> serde_json::Value {
        match self {
            AppRecord::Mqtt(r) => r.log(opts),
            AppRecord::Dicom(r) => r.log(opts),
            AppRecord::Hl7(r) => serde_json::to_value(hl7::log::Logged { rec: r, opts })
                .unwrap_or(serde_json::Value::Null),
            AppRecord::Anomaly(a) => serde_json::json!({
                "type": "applayer",
                "event": a.event,
                "layer": "proto_parser",
            }),
        }
    }
}

/// The contract between reassembly and an app-layer parser.
///
/// Calls for one flow come in stream order per direction, from one thread.
/// A parser must not keep references to `data` beyond the call: it copies
/// only an incomplete message's tail, bounded by its own limits.
pub trait StreamConsumer: Send {
    /// The next in-order bytes of direction `dir`.
    fn data(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, data: &[u8]);
    /// `len` bytes of direction `dir` were lost; the parser must
    /// resynchronise or stop parsing that direction.
    fn gap(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, len: u32);
    /// The flow ended; no more calls follow. Transactions still open are
    /// reported now.
    fn end(&mut self, ctx: &mut StreamContext<'_>);
    /// Heap bytes this parser holds now — buffered message tails, open
    /// transactions, kept values — as an upper-bound estimate computed in
    /// O(1). The caller charges it to the shared `app_layer.memcap`
    /// ([`crate::memcap`]) after each call.
    fn memuse(&self) -> usize {
        0
    }
    /// The shared app-layer budget is exhausted: give back what can be
    /// given back without losing evidence silently — log the oldest open
    /// transactions as unanswered, drop buffered tails with an anomaly —
    /// so that [`StreamConsumer::memuse`] falls.
    fn shed(&mut self, _ctx: &mut StreamContext<'_>) {}
}

/// The parser for a flow of protocol `p`, if wardwatch parses it.
pub fn new_consumer(p: AppProto, cfg: &AppConfig) -> Option<Box<dyn StreamConsumer>> {
    match p {
        AppProto::Mqtt => mqtt::new_parser(&cfg.mqtt),
        AppProto::Dicom => dicom::new_parser(&cfg.dicom),
        AppProto::Hl7 => hl7::new_parser(&cfg.hl7),
        _ => None,
    }
}

/// Per-flow detection state: small until the first payload arrives.
#[derive(Debug, Default)]
pub struct Detector {
    proto: AppProto,
    /// First bytes of each direction, kept only while a probe needs more
    /// than the first segment gave (copied: the segment is gone by the
    /// time the next one arrives).
    pending: Option<Box<[Vec<u8>; 2]>>,
    /// Payload bytes looked at per direction.
    seen: [u16; 2],
}

/// Outcome of feeding a detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detection {
    /// Still looking.
    Pending,
    /// Decided (possibly [`AppProto::Failed`]).
    Decided(AppProto),
}

impl Detector {
    pub fn proto(&self) -> AppProto {
        self.proto
    }

    /// Looks at the next in-order bytes of `dir`; `server_port` is the
    /// flow's server-side port. Bytes of earlier segments that the probes
    /// needed are kept (see [`Detector::take_pending`]); `data` itself is
    /// never kept once a decision is made.
    pub fn feed(
        &mut self,
        cfg: &AppConfig,
        server_port: u16,
        dir: Direction,
        data: &[u8],
    ) -> Detection {
        if self.proto != AppProto::Unknown {
            return Detection::Decided(self.proto);
        }
        if data.is_empty() {
            return Detection::Pending;
        }
        let d = dir.index();
        let depth = cfg.probe_depth.clamp(8, 4096);
        let held: &[u8] = self
            .pending
            .as_ref()
            .and_then(|p| p.get(d))
            .map_or(&[], Vec::as_slice);
        let verdict = if held.is_empty() {
            probe::probe(dir, data.get(..depth.min(data.len())).unwrap_or(&[]))
        } else {
            // Copied: the probe needs the earlier bytes and these in one slice.
            let mut view = held.to_vec();
            let take = data.len().min(depth.saturating_sub(view.len()));
            view.extend_from_slice(data.get(..take).unwrap_or(&[]));
            probe::probe(dir, &view)
        };
        let seen = self.seen.get(d).copied().unwrap_or(0);
        let seen = seen.saturating_add(u16::try_from(data.len()).unwrap_or(u16::MAX));
        if let Some(s) = self.seen.get_mut(d) {
            *s = seen;
        }
        match verdict {
            probe::Verdict::Match(p) => self.decide(p),
            probe::Verdict::NeedMore if usize::from(seen) < depth => {
                let pending = self.pending.get_or_insert_with(Default::default);
                if let Some(buf) = pending.get_mut(d) {
                    // Copied: the segment is gone when the next one arrives;
                    // at most `depth` bytes per direction.
                    buf.extend_from_slice(data);
                }
                Detection::Pending
            }
            _ => {
                // Neither a match nor worth waiting for in this direction:
                // fall back on the port, else fail.
                let by_port = cfg.by_port(server_port);
                if by_port != AppProto::Unknown {
                    self.decide(by_port)
                } else if hl7::probe_midstream(data.get(..depth).unwrap_or(data)) {
                    // Weaker than a port: HL7 in the middle of a stream.
                    self.decide(AppProto::Hl7)
                } else {
                    self.decide(AppProto::Failed)
                }
            }
        }
    }

    fn decide(&mut self, p: AppProto) -> Detection {
        self.proto = p;
        if !matches!(p, AppProto::Mqtt | AppProto::Dicom | AppProto::Hl7) {
            self.pending = None;
        }
        Detection::Decided(p)
    }

    /// Bytes of earlier segments held while probing, per direction
    /// (to-server first), which a parser created on the decision must be
    /// given before the segment that decided. Empties the store.
    pub fn take_pending(&mut self) -> [Vec<u8>; 2] {
        self.pending.take().map(|b| *b).unwrap_or_default()
    }

    /// The flow ended or lost data before detection finished: decide on
    /// what is known.
    pub fn finish(&mut self, cfg: &AppConfig, server_port: u16) -> AppProto {
        if self.proto == AppProto::Unknown && self.seen != [0, 0] {
            let by_port = cfg.by_port(server_port);
            self.proto = if by_port != AppProto::Unknown {
                by_port
            } else {
                AppProto::Failed
            };
        }
        self.proto
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Hand-built: the first 10 bytes of an MQTT 3.1.1 CONNECT.
    const CONNECT: &[u8] = &[0x10, 0x1a, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02];

    #[test]
    fn mqtt_on_any_port_is_found_by_content() {
        let mut d = Detector::default();
        let cfg = AppConfig::default();
        assert_eq!(
            d.feed(&cfg, 8080, Direction::ToServer, CONNECT),
            Detection::Decided(AppProto::Mqtt)
        );
    }

    #[test]
    fn connect_split_in_two_segments_is_found() {
        let mut d = Detector::default();
        let cfg = AppConfig::default();
        assert_eq!(
            d.feed(&cfg, 8080, Direction::ToServer, &CONNECT[..3]),
            Detection::Pending
        );
        assert_eq!(
            d.feed(&cfg, 8080, Direction::ToServer, &CONNECT[3..]),
            Detection::Decided(AppProto::Mqtt)
        );
    }

    #[test]
    fn unknown_bytes_on_mqtt_port_fall_back_to_port() {
        let mut d = Detector::default();
        let cfg = AppConfig::default();
        // Hand-built: a PUBLISH header, as seen when picking up mid-stream.
        let publish = [0x30, 0x05, 0x00, 0x01, b't', b'h', b'i'];
        assert_eq!(
            d.feed(&cfg, 1883, Direction::ToServer, &publish),
            Detection::Decided(AppProto::Mqtt)
        );
    }

    #[test]
    fn unknown_bytes_elsewhere_fail() {
        let mut d = Detector::default();
        let cfg = AppConfig::default();
        assert_eq!(
            d.feed(
                &cfg,
                8080,
                Direction::ToServer,
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
            ),
            Detection::Decided(AppProto::Failed)
        );
    }

    #[test]
    fn tls_on_mqtt_tls_port_is_tls() {
        let mut d = Detector::default();
        let cfg = AppConfig::default();
        // Hand-built: TLS record header (handshake, TLS 1.0 record version,
        // length 0x00c8) and handshake type 1 (ClientHello).
        let hello = [
            0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03,
        ];
        assert_eq!(
            d.feed(&cfg, 8883, Direction::ToServer, &hello),
            Detection::Decided(AppProto::Tls)
        );
    }
}
