//! MQTT app layer: MQTT 3.1, 3.1.1 and 5.0 on reassembled TCP streams.
//!
//! Owns: the byte parser ([`parser`], stateless, borrowed slices), the
//! per-flow state machine ([`state`]: buffering of an incomplete message
//! tail, transactions, limits, anomaly events) and the EVE `mqtt` object
//! ([`log`]). The types here are what the worker, the EVE writer and
//! detection see: a [`Record`] is one transaction — a request and the
//! answers paired with it (CONNECT↔CONNACK, PUBLISH↔PUBACK or
//! PUBREC/PUBREL/PUBCOMP, SUBSCRIBE↔SUBACK, UNSUBSCRIBE↔UNSUBACK,
//! PINGREQ↔PINGRESP) or one unpaired message (QoS 0 PUBLISH, DISCONNECT,
//! AUTH, an answer without its request).
//!
//! Invariants: values in records are owned copies bounded by the message
//! size limit; payloads are kept up to `max_payload_bytes`, with their full
//! length beside them.

pub mod detect;
pub mod log;
pub mod parser;
pub mod state;

use serde::Deserialize;

use crate::app::StreamConsumer;
use crate::flow::Direction;

/// `app_layer.mqtt` configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Largest message parsed, fixed header included; a longer one is
    /// skipped by its declared length (never buffered), logged as
    /// `truncated` and raises the anomaly `message_too_large`.
    pub max_msg_len: usize,
    /// Open transactions per flow; past it the oldest is logged unanswered
    /// and the anomaly `too_many_transactions` is raised.
    pub max_transactions: usize,
    /// PUBLISH payload bytes (and will message bytes) kept in a record for
    /// logging and detection; the full length is always recorded.
    pub max_payload_bytes: usize,
    /// Bytes (on the wire) of the messages of a flow's open transactions;
    /// past it the oldest is logged unanswered, as with `max_transactions`.
    /// Without it, a client that never gets answers could make one flow
    /// hold `max_transactions` × `max_msg_len`.
    /// (Each flow keeps these limits in 32 bits: past 4 GiB they act as
    /// 4 GiB.)
    pub max_open_bytes: usize,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            max_msg_len: 1 << 20,
            max_transactions: 1024,
            max_payload_bytes: 64 * 1024,
            max_open_bytes: 1 << 20,
        }
    }
}

/// One MQTT transaction, for EVE and detection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The messages, request first, in the order seen.
    pub messages: Vec<Message>,
    /// Protocol level (3, 4, 5) from the flow's CONNECT, or guessed; 0 when
    /// unknown.
    pub protocol_version: u8,
    /// The flow was picked up without its CONNECT: the protocol level was
    /// guessed from the bytes.
    pub mid_stream_guess: bool,
    /// The answer this transaction waited for was in bytes the capture
    /// lost (or never showed: a one-way capture).
    pub answer_lost: bool,
}

/// One control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Packet type, 1–15 (`parser::packet_type`).
    pub packet_type: u8,
    /// Fixed-header flags (DUP, QoS, RETAIN for PUBLISH).
    pub flags: u8,
    /// Who sent it.
    pub dir: Direction,
    pub body: Body,
}

impl Message {
    pub fn dup(&self) -> bool {
        parser::flag::dup(self.flags)
    }
    pub fn qos(&self) -> u8 {
        parser::flag::qos(self.flags)
    }
    pub fn retain(&self) -> bool {
        parser::flag::retain(self.flags)
    }
}

/// What a message carries, per type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Connect(Connect),
    Connack(Connack),
    Publish(Publish),
    /// PUBACK, PUBREC, PUBREL, PUBCOMP.
    Ack(Ack),
    Subscribe(Subscribe),
    Suback(Suback),
    Unsubscribe(Unsubscribe),
    Unsuback(Unsuback),
    Pingreq,
    Pingresp,
    Disconnect(ReasonOnly),
    Auth(ReasonOnly),
    /// Over `max_msg_len`: skipped unparsed.
    Truncated {
        skipped_length: usize,
    },
}

/// A v5 property (MQTT 5.0 §2.2.2.2), by identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// Property identifier (0x01 payload format indicator … 0x2a shared
    /// subscription available).
    pub id: u8,
    pub value: PropertyValue,
}

/// A property's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyValue {
    /// Byte, two-byte, four-byte and variable byte integers.
    Int(u32),
    Str(String),
    /// Binary data (correlation data, authentication data).
    Bin(Vec<u8>),
    /// User property.
    Pair(String, String),
}

/// A property list; `None` in a record means the message had none (3.x).
pub type Properties = Option<Vec<Property>>;

/// Finds a string property by identifier.
pub fn property_str(props: &Properties, id: u8) -> Option<&str> {
    props.as_ref()?.iter().find_map(|p| match (&p.value, p.id) {
        (PropertyValue::Str(s), i) if i == id => Some(s.as_str()),
        _ => None,
    })
}

/// Finds an integer property by identifier.
pub fn property_int(props: &Properties, id: u8) -> Option<u32> {
    props.as_ref()?.iter().find_map(|p| match (&p.value, p.id) {
        (PropertyValue::Int(v), i) if i == id => Some(*v),
        _ => None,
    })
}

/// CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub protocol_string: String,
    pub protocol_version: u8,
    /// Connect flags byte: username 0x80, password 0x40, will retain
    /// 0x20, will QoS 0x18, will 0x04, clean session 0x02.
    pub flags: u8,
    pub keep_alive: u16,
    pub client_id: String,
    pub username: Option<String>,
    /// Bytes as sent (binary in 3.1.1 and 5.0).
    pub password: Option<Vec<u8>>,
    pub will: Option<Will>,
    pub properties: Properties,
    /// Property bytes dropped unread from a CONNECT over `max_msg_len`
    /// (0: the whole CONNECT was read).
    pub skipped_length: usize,
}

impl Connect {
    pub fn username_flag(&self) -> bool {
        parser::connect_flag::username(self.flags)
    }
    pub fn password_flag(&self) -> bool {
        parser::connect_flag::password(self.flags)
    }
    pub fn will_retain(&self) -> bool {
        parser::connect_flag::will_retain(self.flags)
    }
    pub fn will_flag(&self) -> bool {
        parser::connect_flag::will(self.flags)
    }
    pub fn clean_session(&self) -> bool {
        parser::connect_flag::clean_session(self.flags)
    }
}

/// The will of a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    pub topic: String,
    /// Up to `max_payload_bytes`.
    pub message: Vec<u8>,
    pub message_length: usize,
    pub properties: Properties,
}

/// CONNACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connack {
    pub session_present: bool,
    /// Return code (3.x: 0 accepted) or reason code (5.0: below 0x80
    /// accepted).
    pub return_code: u8,
    pub properties: Properties,
}

impl Connack {
    /// Did the broker accept the connection?
    pub fn accepted(&self) -> bool {
        self.return_code == 0
    }
}

/// PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// As on the wire (empty in 5.0 when only a topic alias is sent).
    pub topic: String,
    /// The topic a 5.0 topic alias stood for, when the wire topic was
    /// empty and the alias was known.
    pub resolved_topic: Option<String>,
    pub message_id: Option<u16>,
    pub properties: Properties,
    /// Up to `max_payload_bytes` of the payload.
    pub payload: Vec<u8>,
    /// Full payload length.
    pub payload_length: usize,
}

impl Publish {
    /// The topic the message went to: resolved from the alias if needed.
    pub fn effective_topic(&self) -> &str {
        self.resolved_topic.as_deref().unwrap_or(&self.topic)
    }
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub message_id: u16,
    pub reason_code: Option<u8>,
    pub properties: Properties,
}

/// One subscription request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicFilter {
    pub topic: String,
    /// Requested QoS.
    pub qos: u8,
    /// The whole options byte (5.0: no local 0x04, retain as published
    /// 0x08, retain handling 0x30).
    pub options: u8,
}

/// SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub message_id: u16,
    pub topics: Vec<TopicFilter>,
    pub properties: Properties,
}

/// SUBACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suback {
    pub message_id: u16,
    /// Granted QoS (3.x) or reason codes (5.0), per filter.
    pub qos_granted: Vec<u8>,
    pub properties: Properties,
}

/// UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub message_id: u16,
    pub topics: Vec<String>,
    pub properties: Properties,
}

/// UNSUBACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsuback {
    pub message_id: u16,
    /// 5.0 only.
    pub reason_codes: Vec<u8>,
    pub properties: Properties,
}

/// DISCONNECT or AUTH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonOnly {
    pub reason_code: Option<u8>,
    pub properties: Properties,
}

impl Record {
    /// The first message of a given type.
    pub fn find(&self, packet_type: u8) -> Option<&Message> {
        self.messages.iter().find(|m| m.packet_type == packet_type)
    }

    pub fn connect(&self) -> Option<&Connect> {
        self.messages.iter().find_map(|m| match &m.body {
            Body::Connect(c) => Some(c),
            _ => None,
        })
    }

    pub fn connack(&self) -> Option<&Connack> {
        self.messages.iter().find_map(|m| match &m.body {
            Body::Connack(c) => Some(c),
            _ => None,
        })
    }

    pub fn publish(&self) -> Option<&Publish> {
        self.messages.iter().find_map(|m| match &m.body {
            Body::Publish(p) => Some(p),
            _ => None,
        })
    }

    /// Who sent the message that opened the record: `ToClient` for what
    /// the broker started (a PUBLISH to a subscriber, or an answer whose
    /// request was not seen).
    pub fn direction(&self) -> Direction {
        self.messages.first().map_or(Direction::ToServer, |m| m.dir)
    }

    /// Was the CONNECT of this transaction accepted? `None` without a
    /// CONNACK.
    pub fn accepted(&self) -> Option<bool> {
        self.connack().map(Connack::accepted)
    }
}

/// The parser of one MQTT flow.
pub fn new_parser(cfg: &MqttConfig) -> Option<Box<dyn StreamConsumer>> {
    Some(Box::new(state::MqttState::new(cfg)))
}

/// MQTT as the session and the registry see it
/// ([`crate::app::PROTOCOLS`]).
#[derive(Debug)]
pub struct Mqtt;

pub static PROTOCOL: Mqtt = Mqtt;

impl crate::app::AppProtocol for Mqtt {
    fn proto(&self) -> crate::app::AppProto {
        crate::app::AppProto::Mqtt
    }
    fn name(&self) -> &'static str {
        "mqtt"
    }
    fn ports<'c>(&self, cfg: &'c crate::app::AppConfig) -> &'c [u16] {
        &cfg.mqtt_ports
    }
    fn probe_start(&self, data: &[u8]) -> crate::app::Verdict {
        crate::app::probe::mqtt_start(data)
    }
    fn probe_midstream(&self, data: &[u8]) -> Option<crate::app::Midstream> {
        crate::app::probe::mqtt_midstream(data)
    }
    fn parser(&self, cfg: &crate::app::AppConfig) -> Option<Box<dyn StreamConsumer>> {
        new_parser(&cfg.mqtt)
    }
    fn keywords(&self) -> Option<&'static dyn crate::detect::Keywords> {
        Some(&PROTOCOL)
    }
}
