//! App layer: which protocol a TCP conversation speaks, the interface every
//! application protocol implements, and the per-flow [`session`] that ties
//! them together.
//!
//! Owns:
//! - [`AppProtocol`], the one interface of an application protocol: its EVE
//!   name, configured ports, start-of-stream probe, mid-stream probe, which
//!   side its bytes say is the server, and its parser constructor. Every
//!   protocol is one entry of [`PROTOCOLS`]; the pipeline, the stats and
//!   detection reach protocols only through that table and [`AppProto`]. A
//!   new protocol is a folder `app/<proto>/` (its `AppProtocol` value and
//!   its `AppProto` constant) plus one line in [`PROTOCOLS`].
//! - [`StreamConsumer`], the contract between a flow's session and a
//!   parser: in-order bytes, gaps, end, and the parser's memory use; and
//!   [`RecordSink`], where a parser puts each record as soon as it is made
//!   (the worker detects on it and serialises it at once, so memory does not
//!   grow with the number of records one segment holds).
//! - [`session::Session`]: one flow's app layer — detection, orientation,
//!   the parser, gaps and end — with one code path for data, gap and end.
//! - [`probe`]: the probes (start of stream and mid-stream) of MQTT, DICOM
//!   and TLS.
//!
//! Detection order: see [`session`].

pub mod dicom;
pub mod hl7;
pub mod keyword;
pub mod mqtt;
pub mod probe;
pub mod session;
#[cfg(test)]
pub(crate) mod testing;
pub mod tls;

use serde::Deserialize;

use crate::flow::Direction;
use crate::output::mask::LogOptions;
use crate::time::Timestamp;

/// An application protocol: [`AppProto::Unknown`] while undecided,
/// [`AppProto::Failed`] when nothing matched, else one entry of
/// [`PROTOCOLS`] (each protocol declares its constant next to its
/// [`AppProtocol`] value). A small number, the same in every run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AppProto(u8);

// The constants read like the enum variants they replace, so `match`
// arms and `AppProto::Mqtt` comparisons stay as they were.
#[allow(non_upper_case_globals)]
impl AppProto {
    /// Not decided yet (or no payload seen).
    pub const Unknown: AppProto = AppProto(1);
    pub const Mqtt: AppProto = AppProto(2);
    pub const Dicom: AppProto = AppProto(3);
    /// TLS: the clear-text handshake ([`tls`]).
    pub const Tls: AppProto = AppProto(4);
    /// Payload was seen but matched no protocol.
    pub const Failed: AppProto = AppProto(5);
    /// No protocol: the hook of rules on asset changes (`alert asset …`,
    /// [`crate::asset::detect`]). No flow carries it; it names the hook
    /// for the rule engine only.
    pub const Asset: AppProto = AppProto(15);

    /// A protocol's constant; ids must be unique (a test checks the table).
    pub const fn new(id: u8) -> AppProto {
        AppProto(id)
    }

    /// The number behind the constant, never 0.
    pub fn id(self) -> u8 {
        self.0
    }

    /// The protocol's entry in [`PROTOCOLS`], if it is one.
    pub fn protocol(self) -> Option<&'static dyn AppProtocol> {
        PROTOCOLS.iter().copied().find(|p| p.proto() == self)
    }

    /// EVE `app_proto`; `None` while undecided.
    pub fn eve_name(self) -> Option<&'static str> {
        match self {
            AppProto::Unknown => None,
            AppProto::Failed => Some("failed"),
            p => p.protocol().map(|p| p.name()),
        }
    }

    /// The protocol whose EVE name is `name` (`failed` included).
    pub fn from_name(name: &str) -> Option<AppProto> {
        if name == "failed" {
            return Some(AppProto::Failed);
        }
        PROTOCOLS
            .iter()
            .find(|p| p.name() == name)
            .map(|p| p.proto())
    }
}

impl Default for AppProto {
    fn default() -> Self {
        AppProto::Unknown
    }
}

/// Every application protocol wardwatch recognises, in probing order (on a
/// tie, the earlier entry wins). One line per protocol.
pub static PROTOCOLS: &[&dyn AppProtocol] = &[
    &mqtt::PROTOCOL,
    &dicom::PROTOCOL,
    &tls::PROTOCOL,
    &hl7::PROTOCOL,
];

/// Who sends the bytes a probe looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
    /// The bytes could come from either side.
    Either,
}

/// A start-of-stream probe's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The bytes open a conversation of this protocol, sent by this side.
    Match(Role),
    /// A consistent prefix, too short to decide.
    NeedMore,
    NoMatch,
}

/// A mid-stream probe's find: a run of the protocol's messages starts `at`
/// bytes in and continues to the end of what was looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Midstream {
    pub at: usize,
    /// Who sends them, when their types say (an MQTT CONNACK comes from the
    /// broker, a DICOM A-ASSOCIATE-AC from the acceptor).
    pub role: Role,
}

/// One application protocol, as the session, the stats and the EVE output
/// see it. Implementations are stateless values in [`PROTOCOLS`].
pub trait AppProtocol: Sync {
    /// The protocol's constant.
    fn proto(&self) -> AppProto;
    /// EVE `app_proto` (and the `app_layer.flow.<name>` counter).
    fn name(&self) -> &'static str;
    /// Server ports configured for it.
    fn ports<'c>(&self, cfg: &'c AppConfig) -> &'c [u16];
    /// Do these first bytes of a direction open a conversation of this
    /// protocol? Reads only `data`; [`Verdict::NeedMore`] for a consistent
    /// prefix too short to decide.
    fn probe_start(&self, data: &[u8]) -> Verdict;
    /// Do these bytes, taken from the middle of a stream (after a gap, or
    /// picked up without a handshake), hold a run of this protocol's
    /// messages that continues to their end (or to a message cut by the
    /// end)? Must answer in time linear in `data.len()`, and must not take
    /// random binary or text (HTTP, HL7) for the protocol.
    fn probe_midstream(&self, _data: &[u8]) -> Option<Midstream> {
        None
    }
    /// The parser of one flow; `None` for a protocol that is only
    /// recognised.
    fn parser(&self, cfg: &AppConfig) -> Option<Box<dyn StreamConsumer>>;
    /// The rule keywords the protocol offers ([`crate::detect::Keywords`]);
    /// `None` for a protocol rules cannot look into.
    fn keywords(&self) -> Option<&'static dyn crate::detect::Keywords> {
        None
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
    /// Bytes per direction examined by the start-of-stream probes before
    /// detection gives up.
    pub probe_depth: usize,
    /// Bytes per direction held and examined by the mid-stream probes (a
    /// stream picked up without its handshake, or after lost bytes) before
    /// detection gives up on that direction. Held bytes count towards
    /// `memcap`; probing costs about 6 ns per byte (three protocols). The
    /// default covers the 16 KiB PDUs of dcmtk and pynetdicom: a DICOM
    /// transfer picked up inside a PDU finds the next one.
    pub midstream_depth: crate::memcap::ByteSize,
    /// Bytes per direction still reassembled on a flow whose protocol was
    /// not recognised (`app_proto: failed`), so that overlaps with
    /// different data are seen: an attacker's decoy, sent first, can be
    /// what made detection fail. 0: such flows are not reassembled.
    pub failed_depth: crate::memcap::ByteSize,
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
    /// TLS parser limits.
    pub tls: tls::TlsConfig,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            mqtt_ports: vec![1883],
            dicom_ports: vec![104, 11112],
            hl7_ports: vec![2575],
            tls_ports: vec![443, 2762, 8883],
            probe_depth: 64,
            midstream_depth: crate::memcap::ByteSize(16 * 1024),
            failed_depth: crate::memcap::ByteSize::mib(1),
            memcap: crate::memcap::ByteSize::mib(64),
            mqtt: mqtt::MqttConfig::default(),
            dicom: dicom::DicomConfig::default(),
            hl7: hl7::Hl7Config::default(),
            tls: tls::TlsConfig::default(),
        }
    }
}

impl AppConfig {
    /// The protocol configured on a port, if any (the first in
    /// [`PROTOCOLS`] order).
    pub fn by_port(&self, port: u16) -> AppProto {
        PROTOCOLS
            .iter()
            .find(|p| p.ports(self).contains(&port))
            .map_or(AppProto::Unknown, |p| p.proto())
    }

    /// Every configured server port, of every protocol.
    pub fn service_ports(&self) -> impl Iterator<Item = u16> + '_ {
        PROTOCOLS.iter().flat_map(|p| p.ports(self).iter().copied())
    }
}

/// Where a parser puts each record it makes. The worker's sink runs
/// detection on the record and serialises it before the parser goes on;
/// tests collect into a `Vec`.
pub trait RecordSink {
    fn push(&mut self, record: AppRecord);
}

impl RecordSink for Vec<AppRecord> {
    fn push(&mut self, record: AppRecord) {
        Vec::push(self, record);
    }
}

/// Context handed to a consumer with each call.
pub struct StreamContext<'a> {
    /// Time of the packet that delivered the bytes.
    pub ts: Timestamp,
    /// Where the parser puts what it decoded, one record at a time: the
    /// worker writes each as an EVE event of the flow (after detection
    /// matched on it) before the call returns.
    pub records: &'a mut dyn RecordSink,
}

impl std::fmt::Debug for StreamContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamContext")
            .field("ts", &self.ts)
            .finish_non_exhaustive()
    }
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
    /// A flow's TLS handshake (EVE `tls`); boxed, as it is larger than
    /// the other records.
    Tls(Box<tls::Record>),
    /// Malformed or unexpected input (EVE `anomaly` of type `applayer`).
    Anomaly(Anomaly),
    /// What reassembly saw wrong in the flow's TCP stream (EVE `anomaly` of
    /// type `stream`).
    StreamAnomaly(crate::stream::Anomaly),
    /// A host's change, which rules of the `asset` hook are evaluated on
    /// (`asset::log`); never made by a flow.
    Asset(Box<crate::asset::detect::Change>),
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

/// Anomaly records of one event that one direction of a flow may write;
/// later ones are only counted (`app_layer.anomalies_capped`).
pub const MAX_ANOMALIES_PER_EVENT: u8 = 8;

/// How many anomaly records of each event each direction of one flow has
/// raised: a flood of malformed messages (five bytes each can make an
/// MQTT parser raise one) must not turn into a flood of EVE lines. The cap
/// is per event, not one total for the flow, so a sender cannot hide a
/// later, different problem behind a flood of cheap ones; and as each
/// direction's anomalies come in stream order, what is kept does not depend
/// on how the bytes were segmented. Events are the parsers' `&'static str`
/// names, a fixed set, so the table stays small; past [`Self::EVENTS`]
/// distinct ones (none of ours comes near) they share one count.
#[derive(Debug, Default)]
pub struct AnomalyTally {
    seen: Vec<(&'static str, [u8; 2])>,
    shared: [u8; 2],
}

impl AnomalyTally {
    /// Distinct events counted on their own.
    pub const EVENTS: usize = 64;

    /// Counts `a`; whether its record is still written.
    pub fn admit(&mut self, a: &Anomaly) -> bool {
        let i = match self.seen.iter().position(|(e, _)| *e == a.event) {
            Some(i) => Some(i),
            None if self.seen.len() < Self::EVENTS => {
                self.seen.push((a.event, [0; 2]));
                Some(self.seen.len() - 1)
            }
            None => None,
        };
        let counts = match i.and_then(|i| self.seen.get_mut(i)) {
            Some((_, c)) => c,
            None => &mut self.shared,
        };
        let Some(n) = counts.get_mut(a.dir.index()) else {
            return false;
        };
        *n = n.saturating_add(1);
        *n <= MAX_ANOMALIES_PER_EVENT
    }

    /// Heap bytes held.
    pub fn memuse(&self) -> usize {
        self.seen.capacity() * std::mem::size_of::<(&'static str, [u8; 2])>()
    }
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

/// A record's EVE object, serialised straight into the output: each
/// protocol's `log.rs` describes its record as a `Serialize` type; masking
/// and the non-UTF-8 rule are [`crate::output::mask`]'s.
pub struct Loggable<'a> {
    rec: &'a AppRecord,
    opts: &'a LogOptions,
}

impl serde::Serialize for Loggable<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let opts = self.opts;
        match self.rec {
            AppRecord::Mqtt(rec) => mqtt::log::Logged { rec, opts }.serialize(s),
            AppRecord::Dicom(rec) => dicom::log::Logged { rec, opts }.serialize(s),
            AppRecord::Hl7(rec) => hl7::log::Logged { rec, opts }.serialize(s),
            AppRecord::Tls(rec) => tls::log::Logged { rec, opts }.serialize(s),
            AppRecord::Anomaly(a) => AnomalyLog {
                kind: "applayer",
                event: a.event,
                layer: Some("proto_parser"),
            }
            .serialize(s),
            AppRecord::StreamAnomaly(a) => AnomalyLog {
                kind: "stream",
                event: a.event(),
                layer: None,
            }
            .serialize(s),
            AppRecord::Asset(c) => c.record().serialize(s),
        }
    }
}

/// The EVE `anomaly` object (Suricata's `type`, `event`, `layer`).
#[derive(serde::Serialize)]
struct AnomalyLog {
    #[serde(rename = "type")]
    kind: &'static str,
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    layer: Option<&'static str>,
}

impl AppRecord {
    /// EVE `event_type` of the record.
    pub fn event_type(&self) -> &'static str {
        match self {
            AppRecord::Mqtt(_) => "mqtt",
            AppRecord::Dicom(_) => "dicom",
            AppRecord::Hl7(_) => "hl7",
            AppRecord::Tls(_) => "tls",
            AppRecord::Anomaly(_) | AppRecord::StreamAnomaly(_) => "anomaly",
            AppRecord::Asset(_) => "asset",
        }
    }

    /// The protocol of a transaction record (`None` for anomalies).
    pub fn app_proto(&self) -> Option<AppProto> {
        match self {
            AppRecord::Mqtt(_) => Some(AppProto::Mqtt),
            AppRecord::Dicom(_) => Some(AppProto::Dicom),
            AppRecord::Hl7(_) => Some(AppProto::Hl7),
            AppRecord::Tls(_) => Some(AppProto::Tls),
            AppRecord::Asset(_) => Some(AppProto::Asset),
            AppRecord::Anomaly(_) | AppRecord::StreamAnomaly(_) => None,
        }
    }

    /// An anomaly rather than a transaction: rules do not look at it.
    pub fn is_anomaly(&self) -> bool {
        matches!(self, AppRecord::Anomaly(_) | AppRecord::StreamAnomaly(_))
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
        Loggable { rec: self, opts }
    }

    /// Appends [`AppRecord::loggable`] as JSON, byte for byte what
    /// [`crate::output::json::write`] makes of it: MQTT records, the most
    /// numerous, by their hand-written twin ([`mqtt::log::Logged::write_json`]),
    /// the others through `Serialize`.
    ///
    /// # Errors
    /// As [`crate::output::json::write`]; `out` may then hold part of the
    /// object.
    pub fn write_loggable(
        &self,
        out: &mut Vec<u8>,
        opts: &LogOptions,
    ) -> Result<(), crate::output::json::Error> {
        match self {
            AppRecord::Mqtt(rec) => mqtt::log::Logged { rec, opts }.write_json(out),
            _ => crate::output::json::write(out, &self.loggable(opts)),
        }
    }

    /// The object logged under the key [`AppRecord::event_type`] as a JSON
    /// value (tests and tools; the EVE writer serialises
    /// [`AppRecord::loggable`]).
    pub fn log(&self, opts: &LogOptions) -> serde_json::Value {
        serde_json::to_value(self.loggable(opts)).unwrap_or(serde_json::Value::Null)
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
    /// Wants no more bytes in either direction: the session stops
    /// reassembling the flow.
    fn finished(&self) -> bool {
        false
    }
}

/// The parser for a flow of protocol `p`, if wardwatch parses it.
pub fn new_consumer(p: AppProto, cfg: &AppConfig) -> Option<Box<dyn StreamConsumer>> {
    p.protocol().and_then(|proto| proto.parser(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_protocol_has_its_own_id_and_name() {
        let mut ids: Vec<u8> = PROTOCOLS.iter().map(|p| p.proto().id()).collect();
        ids.extend([AppProto::Unknown.id(), AppProto::Failed.id()]);
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "ids collide");
        assert!(ids.iter().all(|&i| i > 0 && usize::from(i) < 16));
        for p in PROTOCOLS {
            assert_eq!(p.proto().eve_name(), Some(p.name()));
            assert_eq!(AppProto::from_name(p.name()), Some(p.proto()));
        }
        assert_eq!(AppProto::Unknown.eve_name(), None);
        assert_eq!(AppProto::from_name("failed"), Some(AppProto::Failed));
        assert_eq!(AppProto::from_name("http"), None);
    }

    #[test]
    fn ports_name_their_protocol() {
        let cfg = AppConfig::default();
        assert_eq!(cfg.by_port(1883), AppProto::Mqtt);
        assert_eq!(cfg.by_port(11112), AppProto::Dicom);
        assert_eq!(cfg.by_port(8883), AppProto::Tls);
        assert_eq!(cfg.by_port(2575), AppProto::Hl7);
        assert_eq!(cfg.by_port(8080), AppProto::Unknown);
        let mut all: Vec<u16> = cfg.service_ports().collect();
        all.sort_unstable();
        assert_eq!(all, vec![104, 443, 1883, 2575, 2762, 8883, 11112]);
    }

    #[test]
    fn parsers_exist_for_every_protocol() {
        let cfg = AppConfig::default();
        assert!(new_consumer(AppProto::Mqtt, &cfg).is_some());
        assert!(new_consumer(AppProto::Dicom, &cfg).is_some());
        assert!(new_consumer(AppProto::Hl7, &cfg).is_some());
        assert!(new_consumer(AppProto::Tls, &cfg).is_some());
        assert!(new_consumer(AppProto::Failed, &cfg).is_none());
    }
}
