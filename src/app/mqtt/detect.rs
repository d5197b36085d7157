//! Rule keywords of mqtt: pure predicates and sticky buffers over a
//! [`Record`], with the names, value syntax and meanings of Suricata's MQTT
//! keywords (Suricata user guide, "MQTT Keywords"; MQTT 3.1, 3.1.1 §3 and
//! 5.0 §3 for the fields).
//!
//! Contract with the rule engine: [`keyword`] is asked for every option
//! name of a rule; `None` means "not one of mine". A [`Buffer`] yields the
//! byte strings that following `content`/`pcre`/`dataset` options match
//! (several for multi-buffers: a content group matches when one instance
//! matches all of it); a [`Predicate`] is true or false on a record.
//!
//! A record is one transaction (what Suricata calls a transaction: a
//! request and its answers); as in Suricata, a keyword matches when any
//! message of the transaction satisfies it.
//!
//! Predicates (integers use [`UintMatch`]'s syntax: `5`, `<5`, `2-7`, `!5`,
//! `&0x40=0x40`…):
//! - `mqtt.protocol_version:<uint>`: protocol level of the flow's CONNECT
//!   (3 = 3.1, 4 = 3.1.1, 5 = 5.0); never matches while unknown.
//! - `mqtt.type:<NAME|!NAME|uint>`: control packet type of any message;
//!   names `UNASSIGNED` (0), `CONNECT` … `AUTH` (15), any case.
//! - `mqtt.flags:<flag>[,<flag>…]` with flags `dup`, `retain`, each
//!   optionally prefixed by `!` (must not be set); or a uint over the
//!   fixed-header bits (dup 0x08, retain 0x01), of any PUBLISH.
//! - `mqtt.qos:<0|1|2>`: QoS of any PUBLISH.
//!
//!   Unlike Suricata's code, which reads these bits in every message, only
//!   PUBLISH is looked at: it is the only packet whose fixed header carries
//!   DUP, QoS and RETAIN in 3.1.1 and 5.0, and a QoS 1 PUBLISH transaction
//!   also holds its PUBACK (header bits 0), which would make `mqtt.qos:0`
//!   match it.
//! - `mqtt.reason_code:<uint>` (alias `mqtt.connack.return_code`, which
//!   Suricata's documentation lists): the CONNACK return code (3.x) or
//!   reason code (5.0), the reason code of a 5.0 PUBACK, PUBREC, PUBREL,
//!   PUBCOMP, DISCONNECT and AUTH (0 when the wire leaves it out, as the
//!   spec says and Suricata matches), and each SUBACK granted-QoS/reason
//!   code and UNSUBACK reason code.
//! - `mqtt.connack.session_present:<yes|true|no|false>`.
//! - `mqtt.connect.flags:<flag>[,<flag>…]` with `username`, `password`,
//!   `will`, `will_retain`, `clean_session`, each optionally `!`; or a uint
//!   over the connect flags byte (username 0x80, password 0x40, will retain
//!   0x20, will 0x04, clean session 0x02, MQTT 3.1.1 §3.1.2.3).
//!
//! Sticky buffers (no value): `mqtt.connect.clientid`,
//! `mqtt.connect.username`, `mqtt.connect.password`,
//! `mqtt.connect.protocol_string`, `mqtt.connect.willtopic`,
//! `mqtt.connect.willmessage`, `mqtt.publish.topic` (the topic the message
//! went to: a 5.0 topic alias resolved), `mqtt.publish.message`, and the
//! multi-buffers `mqtt.subscribe.topic` and `mqtt.unsubscribe.topic` (one
//! instance per topic filter). As in Suricata, an empty field yields no
//! instance. Payloads are the bytes the record kept (`max_payload_bytes`).
//!
//! Keyword names are matched without regard to case, as Suricata does.
//!
//! Not supported: the multi-integer forms Suricata 8 documents for
//! `mqtt.type` and `mqtt.reason_code` (`[…]` lists with index modifiers);
//! a plain value already matches when any message has it. `mqtt.CONNACK;`
//! and `mqtt.DISCONNECT;` in the doc's reason-code examples are not
//! keywords (Suricata rejects them too); `mqtt.type:CONNACK;` is meant.

use super::parser::{level, packet_type};
use super::{Body, Record};
use crate::app::keyword::required;
use crate::app::keyword::UintMatch;
use crate::app::{AppRecord, Credentials};
use crate::detect::phi::{PhiConfig, PhiReport};
use crate::detect::protocol::{ProtocolKeywords, RecordBuffer, RecordPredicate, TxRecord, Typed};

/// A compiled keyword.
pub type Keyword = Typed<Buffer, Predicate>;

/// A sticky buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buffer {
    ConnectClientId,
    ConnectUsername,
    ConnectPassword,
    ConnectProtocolString,
    ConnectWillTopic,
    ConnectWillMessage,
    PublishTopic,
    PublishMessage,
    /// One instance per topic filter of every SUBSCRIBE.
    SubscribeTopic,
    /// One instance per topic filter of every UNSUBSCRIBE.
    UnsubscribeTopic,
}

/// Buffer keywords and their names.
const BUFFERS: &[(&str, Buffer)] = &[
    ("mqtt.connect.clientid", Buffer::ConnectClientId),
    ("mqtt.connect.username", Buffer::ConnectUsername),
    ("mqtt.connect.password", Buffer::ConnectPassword),
    (
        "mqtt.connect.protocol_string",
        Buffer::ConnectProtocolString,
    ),
    ("mqtt.connect.willtopic", Buffer::ConnectWillTopic),
    ("mqtt.connect.willmessage", Buffer::ConnectWillMessage),
    ("mqtt.publish.topic", Buffer::PublishTopic),
    ("mqtt.publish.message", Buffer::PublishMessage),
    ("mqtt.subscribe.topic", Buffer::SubscribeTopic),
    ("mqtt.unsubscribe.topic", Buffer::UnsubscribeTopic),
];

impl RecordBuffer for Buffer {
    type Record = Record;
    fn any<'r>(&self, rec: &'r Record, f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        // Empty fields are no instance (Suricata gives no buffer for them).
        let mut call = |b: &'r [u8]| !b.is_empty() && f(b);
        for m in &rec.messages {
            let hit = match (&m.body, self) {
                (Body::Connect(c), Buffer::ConnectClientId) => call(c.client_id.as_bytes()),
                (Body::Connect(c), Buffer::ConnectUsername) => {
                    c.username.as_ref().is_some_and(|u| call(u.as_bytes()))
                }
                (Body::Connect(c), Buffer::ConnectPassword) => {
                    c.password.as_ref().is_some_and(|p| call(p))
                }
                (Body::Connect(c), Buffer::ConnectProtocolString) => {
                    call(c.protocol_string.as_bytes())
                }
                (Body::Connect(c), Buffer::ConnectWillTopic) => {
                    c.will.as_ref().is_some_and(|w| call(w.topic.as_bytes()))
                }
                (Body::Connect(c), Buffer::ConnectWillMessage) => {
                    c.will.as_ref().is_some_and(|w| call(&w.message))
                }
                (Body::Publish(p), Buffer::PublishTopic) => call(p.effective_topic().as_bytes()),
                (Body::Publish(p), Buffer::PublishMessage) => call(&p.payload),
                (Body::Subscribe(s), Buffer::SubscribeTopic) => {
                    s.topics.iter().any(|t| call(t.topic.as_bytes()))
                }
                (Body::Unsubscribe(u), Buffer::UnsubscribeTopic) => {
                    u.topics.iter().any(|t| call(t.as_bytes()))
                }
                _ => false,
            };
            if hit {
                return true;
            }
        }
        false
    }
}

impl Buffer {
    /// Keyword name, for messages.
    pub fn name(&self) -> &'static str {
        BUFFERS
            .iter()
            .find(|(_, b)| b == self)
            .map_or("mqtt", |(n, _)| n)
    }
}

/// A predicate keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Predicate {
    /// `mqtt.protocol_version`.
    ProtocolVersion(UintMatch),
    /// `mqtt.type`, over the packet type.
    Type(UintMatch),
    /// `mqtt.flags`, over the fixed-header flags masked to dup (0x08) and
    /// retain (0x01).
    Flags(UintMatch),
    /// `mqtt.qos`.
    Qos(u8),
    /// `mqtt.reason_code` / `mqtt.connack.return_code`.
    ReasonCode(UintMatch),
    /// `mqtt.connack.session_present`.
    SessionPresent(bool),
    /// `mqtt.connect.flags`, over the connect flags byte.
    ConnectFlags(UintMatch),
}

/// Fixed-header flag bits `mqtt.flags` looks at (MQTT 3.1.1 §2.2.2).
const DUP: u8 = 0x08;
const RETAIN: u8 = 0x01;

impl RecordPredicate for Predicate {
    type Record = Record;
    fn matches(&self, rec: &Record) -> bool {
        match self {
            Predicate::ProtocolVersion(m) => {
                rec.protocol_version != 0 && m.matches(u64::from(rec.protocol_version))
            }
            Predicate::Type(m) => rec
                .messages
                .iter()
                .any(|msg| m.matches(u64::from(msg.packet_type))),
            Predicate::Flags(m) => {
                publishes(rec).any(|msg| m.matches(u64::from(msg.flags & (DUP | RETAIN))))
            }
            Predicate::Qos(q) => publishes(rec).any(|msg| msg.qos() == *q),
            Predicate::ReasonCode(m) => {
                let v5 = rec.protocol_version == level::V5;
                rec.messages
                    .iter()
                    .any(|msg| reason_codes(&msg.body, v5, &mut |c| m.matches(u64::from(c))))
            }
            Predicate::SessionPresent(want) => rec.messages.iter().any(|msg| match &msg.body {
                Body::Connack(c) => c.session_present == *want,
                _ => false,
            }),
            Predicate::ConnectFlags(m) => rec.messages.iter().any(|msg| match &msg.body {
                Body::Connect(c) => m.matches(u64::from(c.flags)),
                _ => false,
            }),
        }
    }
}

/// The PUBLISH messages of a record: the only packets whose fixed header
/// carries DUP, QoS and RETAIN in 3.1.1 and 5.0 (elsewhere those bits are
/// reserved, e.g. 0b0010 for PUBREL, SUBSCRIBE, UNSUBSCRIBE).
fn publishes(rec: &Record) -> impl Iterator<Item = &super::Message> {
    rec.messages
        .iter()
        .filter(|m| m.packet_type == packet_type::PUBLISH)
}

/// Calls `f` on each reason or return code a message carries, until it
/// returns true. In 5.0 a PUBACK, PUBREC, PUBREL, PUBCOMP or DISCONNECT
/// that leaves its reason code out means 0x00 Success (MQTT 5.0 §3.4.2.1,
/// §3.14.2.1), and Suricata matches it so; 3.x has no reason codes there.
fn reason_codes(body: &Body, v5: bool, f: &mut dyn FnMut(u8) -> bool) -> bool {
    let omitted = if v5 { Some(0) } else { None };
    match body {
        Body::Connack(c) => f(c.return_code),
        Body::Ack(a) => a.reason_code.or(omitted).is_some_and(&mut *f),
        Body::Disconnect(r) | Body::Auth(r) => r.reason_code.or(omitted).is_some_and(&mut *f),
        Body::Suback(s) => s.qos_granted.iter().any(|c| f(*c)),
        Body::Unsuback(u) => u.reason_codes.iter().any(|c| f(*c)),
        _ => false,
    }
}

/// Packet type names as `mqtt.type` spells them, by value.
const TYPE_NAMES: [&str; 16] = [
    "UNASSIGNED",
    "CONNECT",
    "CONNACK",
    "PUBLISH",
    "PUBACK",
    "PUBREC",
    "PUBREL",
    "PUBCOMP",
    "SUBSCRIBE",
    "SUBACK",
    "UNSUBSCRIBE",
    "UNSUBACK",
    "PINGREQ",
    "PINGRESP",
    "DISCONNECT",
    "AUTH",
];

/// `mqtt.flags` names and bits.
const FLAG_NAMES: &[(&str, u8)] = &[("dup", DUP), ("retain", RETAIN)];

/// `mqtt.connect.flags` names and bits (MQTT 3.1.1 §3.1.2.3).
const CONNECT_FLAG_NAMES: &[(&str, u8)] = &[
    ("username", 0x80),
    ("password", 0x40),
    ("will_retain", 0x20),
    ("will", 0x04),
    ("clean_session", 0x02),
];

/// `Flags`-style value: a uint, or a list of names with optional `!`.
fn parse_flags(v: &str, names: &[(&str, u8)]) -> Result<UintMatch, String> {
    if let Ok(m) = UintMatch::parse(v, u64::from(u8::MAX)) {
        return Ok(m);
    }
    let (mut mask, mut expected) = (0u8, 0u8);
    // Empty items (`dup,`) are skipped, as Suricata's parser does.
    for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (neg, name) = match item.strip_prefix('!') {
            Some(n) => (true, n.trim()),
            None => (false, item),
        };
        let Some(&(_, bit)) = names.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) else {
            let known: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown flag {name:?} (known: {})",
                known.join(", ")
            ));
        };
        if mask & bit != 0 {
            return Err(format!("flag {name:?} given twice"));
        }
        mask |= bit;
        if !neg {
            expected |= bit;
        }
    }
    if mask == 0 {
        return Err("no flag given".to_string());
    }
    Ok(UintMatch::MaskEq(u64::from(mask), u64::from(expected)))
}

fn parse_type(v: &str) -> Result<UintMatch, String> {
    if let Ok(m) = UintMatch::parse(v, u64::from(u8::MAX)) {
        return Ok(m);
    }
    let (neg, name) = match v.strip_prefix('!') {
        Some(n) => (true, n.trim()),
        None => (false, v),
    };
    let Some(t) = TYPE_NAMES.iter().position(|n| n.eq_ignore_ascii_case(name)) else {
        return Err(format!(
            "unknown packet type {name:?} (a number or one of {})",
            TYPE_NAMES.join(", ")
        ));
    };
    let t = t as u64;
    Ok(if neg {
        UintMatch::Ne(t)
    } else {
        UintMatch::Eq(t)
    })
}

fn parse_qos(v: &str) -> Result<u8, String> {
    match v {
        "0" => Ok(0),
        "1" => Ok(1),
        "2" => Ok(2),
        _ => Err(format!("QoS must be 0, 1 or 2, not {v:?}")),
    }
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("expected yes, true, no or false, not {v:?}")),
    }
}

/// Compiles option `name` with its value; `None` when `name` is not a
/// mqtt keyword, `Some(Err(reason))` when the value is wrong.
pub fn keyword(name: &str, value: Option<&str>) -> Option<Result<Keyword, String>> {
    let lower = name.to_ascii_lowercase();
    if let Some(b) = crate::app::keyword::sticky_buffer(BUFFERS, &lower, value) {
        return Some(b.map(Keyword::Buffer));
    }
    let compile: fn(&str) -> Result<Predicate, String> = match lower.as_str() {
        "mqtt.protocol_version" => {
            |v| UintMatch::parse(v, u64::from(u8::MAX)).map(Predicate::ProtocolVersion)
        }
        "mqtt.type" => |v| parse_type(v).map(Predicate::Type),
        "mqtt.flags" => |v| parse_flags(v, FLAG_NAMES).map(Predicate::Flags),
        "mqtt.qos" => |v| parse_qos(v).map(Predicate::Qos),
        "mqtt.reason_code" | "mqtt.connack.return_code" => {
            |v| UintMatch::parse(v, u64::from(u8::MAX)).map(Predicate::ReasonCode)
        }
        "mqtt.connack.session_present" => |v| parse_bool(v).map(Predicate::SessionPresent),
        "mqtt.connect.flags" => |v| parse_flags(v, CONNECT_FLAG_NAMES).map(Predicate::ConnectFlags),
        _ => return None,
    };
    Some(
        required(value)
            .and_then(compile)
            .map(Keyword::Predicate)
            .map_err(|e| format!("{lower}: {e}")),
    )
}

/// The login a record carries, if it is one: `Some` for a transaction
/// holding a CONNECT. The username is `None` without the username flag;
/// the password is `None` unless the password flag is set and a password
/// (possibly empty: an empty password is still a password tried) was
/// read; `accepted` comes from the CONNACK, `None` when none was seen.
pub fn credentials(rec: &Record) -> Option<Credentials<'_>> {
    let c = rec.connect()?;
    Some(Credentials {
        username: c
            .username
            .as_deref()
            .filter(|_| c.username_flag())
            .map(str::as_bytes),
        password: c.password.as_deref().filter(|_| c.password_flag()),
        accepted: rec.accepted(),
    })
}

/// The packet type constants are those of the parser; a check that the
/// name table agrees with them.
const _: () = assert!(packet_type::AUTH as usize == TYPE_NAMES.len() - 1);

// The rule engine's view ([`crate::detect::Keywords`], reached through
// the protocol's entry in [`crate::app::PROTOCOLS`]).

impl TxRecord for Record {
    fn of(rec: &AppRecord) -> Option<&Record> {
        match rec {
            AppRecord::Mqtt(r) => Some(r),
            _ => None,
        }
    }
}

impl ProtocolKeywords for super::Mqtt {
    type Record = Record;
    type Buffer = Buffer;
    type Predicate = Predicate;
    fn keyword(&self, name: &str, value: Option<&str>) -> Option<Result<Keyword, String>> {
        keyword(name, value)
    }
    fn credentials<'r>(&self, rec: &'r Record) -> Option<Credentials<'r>> {
        credentials(rec)
    }
    fn phi(&self, rec: &Record, cfg: &PhiConfig) -> PhiReport {
        crate::detect::phi::scan_mqtt(rec, cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Direction;

    /// The MQTT records wardwatch makes of `pcaps/<name>.pcap`, in order.
    fn capture(name: &str) -> Vec<Record> {
        crate::app::testing::mqtt_records(name)
    }

    use crate::app::mqtt::{Ack, Connack, Connect, Message, Publish, ReasonOnly, Unsuback, Will};

    fn kw(name: &str, value: Option<&str>) -> Keyword {
        keyword(name, value)
            .unwrap_or_else(|| panic!("{name} not known"))
            .unwrap_or_else(|e| panic!("{name}:{value:?}: {e}"))
    }

    fn pred(name: &str, value: &str) -> Predicate {
        match kw(name, Some(value)) {
            Keyword::Predicate(p) => p,
            k => panic!("{name} is {k:?}"),
        }
    }

    fn buf(name: &str) -> Buffer {
        match kw(name, None) {
            Keyword::Buffer(b) => b,
            k => panic!("{name} is {k:?}"),
        }
    }

    fn bad(name: &str, value: Option<&str>) -> String {
        match keyword(name, value) {
            Some(Err(e)) => e,
            other => panic!("{name}:{value:?} gave {other:?}"),
        }
    }

    /// Every instance of `b` in `rec` (a callback that never says "stop").
    fn instances(b: Buffer, rec: &Record) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        assert!(!b.any(rec, &mut |x| {
            v.push(x.to_vec());
            false
        }));
        v
    }

    /// What a `content` of the engine would do: some instance contains `s`.
    fn contains(b: Buffer, rec: &Record, s: &[u8]) -> bool {
        b.any(rec, &mut |x| x.windows(s.len()).any(|w| w == s))
    }

    fn with(recs: &[Record], f: impl Fn(&Record) -> bool) -> &Record {
        recs.iter().find(|r| f(r)).expect("no such record")
    }

    fn client_id(r: &Record) -> &str {
        r.connect().map_or("", |c| c.client_id.as_str())
    }

    // Hand-built records (not from a capture), for situations the captures
    // do not hold.

    fn msg(packet_type: u8, flags: u8, body: Body) -> Message {
        let dir = match packet_type {
            2 | 9 | 11 | 13 => Direction::ToClient,
            _ => Direction::ToServer,
        };
        Message {
            packet_type,
            flags,
            dir,
            body,
        }
    }

    fn rec(version: u8, messages: Vec<Message>) -> Record {
        Record {
            messages,
            protocol_version: version,
            mid_stream_guess: false,
            answer_lost: false,
        }
    }

    fn connect(flags: u8, client_id: &str, user: Option<&str>, pass: Option<&[u8]>) -> Message {
        msg(
            1,
            0,
            Body::Connect(Connect {
                protocol_string: "MQTT".into(),
                protocol_version: 4,
                flags,
                keep_alive: 60,
                client_id: client_id.into(),
                username: user.map(Into::into),
                password: pass.map(<[u8]>::to_vec),
                will: None,
                properties: None,
                skipped_length: 0,
            }),
        )
    }

    fn connack(session_present: bool, return_code: u8) -> Message {
        msg(
            2,
            0,
            Body::Connack(Connack {
                session_present,
                return_code,
                properties: None,
            }),
        )
    }

    fn publish(flags: u8, topic: &str, payload: &[u8]) -> Message {
        msg(
            3,
            flags,
            Body::Publish(Publish {
                topic: topic.into(),
                resolved_topic: None,
                message_id: Some(1),
                properties: None,
                payload: payload.to_vec(),
                payload_length: payload.len(),
            }),
        )
    }

    fn puback(reason_code: Option<u8>) -> Message {
        msg(
            4,
            0,
            Body::Ack(Ack {
                message_id: 1,
                reason_code,
                properties: None,
            }),
        )
    }

    fn disconnect(reason_code: Option<u8>) -> Message {
        msg(
            14,
            0,
            Body::Disconnect(ReasonOnly {
                reason_code,
                properties: None,
            }),
        )
    }

    #[test]
    fn protocol_version_5_matches_v5_flows_only() {
        // Suricata doc example: mqtt.protocol_version:5;
        let p = pred("mqtt.protocol_version", "5");
        let v5 = capture("mqtt_v5_props");
        let v311 = capture("mqtt_v311_anon_phi");
        let v31 = capture("mqtt_v31_default_creds");
        assert!(v5.iter().all(|r| p.matches(r)));
        assert!(!v311.iter().any(|r| p.matches(r)));
        assert!(!v31.iter().any(|r| p.matches(r)));
        // 3.1 is level 3, 3.1.1 level 4.
        assert!(v31
            .iter()
            .all(|r| pred("mqtt.protocol_version", "3").matches(r)));
        assert!(v311
            .iter()
            .all(|r| pred("mqtt.protocol_version", "<5").matches(r)));
        assert!(!v5
            .iter()
            .any(|r| pred("mqtt.protocol_version", "<5").matches(r)));
        // Unknown level (0): never matches, not even "<5".
        let unknown = rec(0, vec![disconnect(None)]);
        assert!(!pred("mqtt.protocol_version", "<5").matches(&unknown));
        assert!(bad("mqtt.protocol_version", Some("256")).contains("larger"));
        bad("mqtt.protocol_version", None);
        bad("mqtt.protocol_version", Some("five"));
    }

    #[test]
    fn type_by_name_and_number_matches_any_message_of_the_transaction() {
        let recs = capture("mqtt_v31_default_creds");
        let login = with(&recs, |r| client_id(r) == "HL7GW-ICU-01");
        let qos0 = with(&recs, |r| r.messages.len() == 1 && r.publish().is_some());
        // Suricata doc examples: mqtt.type:CONNECT; mqtt.type:PUBLISH; mqtt.type:2;
        assert!(pred("mqtt.type", "CONNECT").matches(login));
        assert!(!pred("mqtt.type", "CONNECT").matches(qos0));
        assert!(pred("mqtt.type", "PUBLISH").matches(qos0));
        assert!(!pred("mqtt.type", "PUBLISH").matches(login));
        // 2 is CONNACK, the second message of the login transaction.
        assert!(pred("mqtt.type", "2").matches(login));
        assert!(!pred("mqtt.type", "2").matches(qos0));
        assert!(pred("mqtt.type", "connack").matches(login));
        assert!(pred("mqtt.type", "!PUBLISH").matches(login));
        assert!(!pred("mqtt.type", "!PUBLISH").matches(qos0));
        assert!(pred("mqtt.type", ">13").matches(with(&recs, |r| {
            r.find(packet_type::DISCONNECT).is_some()
        })));
        assert!(pred("MQTT.Type", "AUTH") == Predicate::Type(UintMatch::Eq(15)));
        assert!(pred("mqtt.type", "UNASSIGNED") == Predicate::Type(UintMatch::Eq(0)));
        assert!(bad("mqtt.type", Some("CONNECTED")).contains("unknown packet type"));
        bad("mqtt.type", Some(""));
    }

    #[test]
    fn flags_dup_and_retain_follow_the_doc_examples() {
        let recs = capture("mqtt_v311_anon_phi");
        // The retained QoS 1 message (header flags 0b0011).
        let retained = with(&recs, |r| r.publish().is_some() && r.messages[0].retain());
        let plain = with(&recs, |r| r.publish().is_some() && !r.messages[0].retain());
        // Suricata doc examples: mqtt.flags:dup,!retain; mqtt.flags:retain;
        let dup_not_retain = pred("mqtt.flags", "dup,!retain");
        let retain = pred("mqtt.flags", "retain");
        assert!(retain.matches(retained));
        assert!(!retain.matches(plain));
        assert!(!dup_not_retain.matches(retained));
        assert!(!dup_not_retain.matches(plain));
        // Hand-built: a resent QoS 1 PUBLISH (DUP 0x08 | QoS 1 0x02).
        let resent = rec(4, vec![publish(0x0A, "t", b"x"), puback(None)]);
        assert!(dup_not_retain.matches(&resent));
        assert!(!retain.matches(&resent));
        // `!retain` looks at PUBLISH only: the PUBACK of the retained
        // message (flags 0) does not make it match.
        assert!(!pred("mqtt.flags", "!retain").matches(retained));
        // The numeric form reads the same bits.
        assert!(pred("mqtt.flags", "&0x09=0x08").matches(&resent));
        assert!(pred("mqtt.flags", "1").matches(retained));
        assert!(pred("mqtt.flags", " dup , ") == pred("mqtt.flags", "&0x08=0x08"));
        assert!(bad("mqtt.flags", Some("dup,dup")).contains("twice"));
        assert!(bad("mqtt.flags", Some("qos")).contains("unknown flag"));
        bad("mqtt.flags", Some(","));
        bad("mqtt.flags", None);
    }

    #[test]
    fn qos_is_the_publish_qos() {
        let recs = capture("mqtt_v311_anon_phi");
        let qos = |q: u8| {
            with(&recs, move |r| {
                r.messages[0].packet_type == 3 && r.messages[0].qos() == q
            })
        };
        // Suricata doc examples: mqtt.qos:0; mqtt.qos:2;
        assert!(pred("mqtt.qos", "0").matches(qos(0)));
        assert!(!pred("mqtt.qos", "0").matches(qos(1)));
        assert!(!pred("mqtt.qos", "0").matches(qos(2)));
        assert!(pred("mqtt.qos", "2").matches(qos(2)));
        assert!(!pred("mqtt.qos", "2").matches(qos(1)));
        // The QoS 2 transaction holds PUBREL (header 0b0010, QoS 1 if read
        // as a PUBLISH header): it is not a QoS 1 message.
        assert!(!pred("mqtt.qos", "1").matches(qos(2)));
        for v in ["3", "<2", "", "one"] {
            bad("mqtt.qos", Some(v));
        }
    }

    #[test]
    fn reason_code_covers_connack_acks_disconnect_and_suback() {
        let refused = capture("mqtt_refused");
        let v311 = with(&refused, |r| client_id(r) == "anon-monitor-01");
        let v5 = with(&refused, |r| client_id(r) == "anon-monitor-02");
        // 3.1.1 CONNACK return code 5 (not authorized), also under the
        // alias Suricata documents.
        assert!(pred("mqtt.reason_code", "5").matches(v311));
        assert!(pred("mqtt.connack.return_code", "5").matches(v311));
        assert!(!pred("mqtt.reason_code", "0").matches(v311));
        // 5.0 CONNACK reason 0x87.
        assert!(pred("mqtt.reason_code", "0x87").matches(v5));
        assert!(!pred("mqtt.reason_code", "5").matches(v5));

        // Suricata doc examples, each with a hand-built record of the
        // situation it describes and a real one that is not it.
        let props = capture("mqtt_v5_props");
        // mqtt.type:UNSUBACK; mqtt.reason_code:17; (no subscription existed)
        let unsub = with(&props, |r| r.find(packet_type::UNSUBACK).is_some());
        assert!(!pred("mqtt.reason_code", "17").matches(unsub));
        assert!(pred("mqtt.reason_code", "0").matches(unsub));
        let no_sub = rec(
            5,
            vec![msg(
                11,
                0,
                Body::Unsuback(Unsuback {
                    message_id: 1,
                    reason_codes: vec![0, 17],
                    properties: None,
                }),
            )],
        );
        assert!(pred("mqtt.type", "UNSUBACK").matches(&no_sub));
        assert!(pred("mqtt.reason_code", "17").matches(&no_sub));
        // mqtt.type:PUBACK; mqtt.reason_code:16; (no matching subscribers)
        let denied = with(&props, |r| {
            r.publish().is_some_and(|p| p.topic == "admin/config")
        });
        assert!(pred("mqtt.reason_code", "135").matches(denied));
        assert!(!pred("mqtt.reason_code", "16").matches(denied));
        let nobody = rec(5, vec![publish(0x02, "t", b"x"), puback(Some(16))]);
        assert!(pred("mqtt.reason_code", "16").matches(&nobody));
        // A 5.0 PUBACK that leaves the reason code out means 0 (Success),
        // as Suricata matches it; a 3.1.1 PUBACK has no reason code.
        let ok = with(&props, |r| {
            r.publish().is_some_and(|p| p.topic == "fhir/ward3/patient")
                && r.find(packet_type::PUBACK).is_some()
        });
        assert!(matches!(
            &ok.find(packet_type::PUBACK).unwrap().body,
            Body::Ack(a) if a.reason_code.is_none()
        ));
        assert!(pred("mqtt.reason_code", "0").matches(ok));
        assert!(!pred("mqtt.reason_code", "16").matches(ok));
        let v311_ack = rec(4, vec![publish(0x02, "t", b"x"), puback(None)]);
        assert!(!pred("mqtt.reason_code", "0").matches(&v311_ack));
        assert!(pred("mqtt.reason_code", "0").matches(&rec(5, vec![disconnect(None)])));
        assert!(!pred("mqtt.reason_code", "0").matches(&rec(4, vec![disconnect(None)])));
        // CONNACK 138 (banned) and 134 (bad user name or password);
        // mosquitto answered the wrong password with 0x87 instead.
        let pump = with(&refused, |r| client_id(r) == "infusion-pump-18");
        assert!(!pred("mqtt.reason_code", "134").matches(pump));
        assert!(!pred("mqtt.reason_code", "138").matches(pump));
        let banned = rec(5, vec![connect(2, "c", None, None), connack(false, 138)]);
        let bad_login = rec(
            5,
            vec![
                connect(0xC2, "c", Some("u"), Some(b"p")),
                connack(false, 134),
            ],
        );
        assert!(pred("mqtt.reason_code", "138").matches(&banned));
        assert!(pred("mqtt.reason_code", "134").matches(&bad_login));
        // DISCONNECT 139 (server shutting down); the capture's client sent 4.
        let will_disc = with(&props, |r| {
            r.messages.len() == 1
                && matches!(&r.messages[0].body, Body::Disconnect(d) if d.reason_code == Some(4))
        });
        assert!(!pred("mqtt.reason_code", "139").matches(will_disc));
        assert!(pred("mqtt.reason_code", "4").matches(will_disc));
        assert!(pred("mqtt.reason_code", "139").matches(&rec(5, vec![disconnect(Some(139))])));
        // SUBACK granted QoS values count as codes (3.1.1: [2, 1]).
        let anon = capture("mqtt_v311_anon_phi");
        let sub = with(&anon, |r| r.find(packet_type::SUBACK).is_some());
        assert!(pred("mqtt.reason_code", "2").matches(sub));
        assert!(!pred("mqtt.reason_code", ">=0x80").matches(sub));
        bad("mqtt.reason_code", Some("0x100"));
        bad("mqtt.reason_code", None);
    }

    #[test]
    fn session_present_reads_the_connack_flag() {
        let recs = capture("mqtt_v31_default_creds");
        let login = with(&recs, |r| r.connack().is_some());
        // Suricata doc example: mqtt.connack.session_present:true;
        assert!(!pred("mqtt.connack.session_present", "true").matches(login));
        assert!(pred("mqtt.connack.session_present", "false").matches(login));
        assert!(pred("mqtt.connack.session_present", "no").matches(login));
        let resumed = rec(4, vec![connect(0, "c", None, None), connack(true, 0)]);
        assert!(pred("mqtt.connack.session_present", "true").matches(&resumed));
        assert!(pred("mqtt.connack.session_present", "YES").matches(&resumed));
        assert!(!pred("mqtt.connack.session_present", "false").matches(&resumed));
        // No CONNACK: neither value.
        let publish_only = with(&recs, |r| r.connack().is_none());
        assert!(!pred("mqtt.connack.session_present", "false").matches(publish_only));
        for v in ["1", "maybe", ""] {
            bad("mqtt.connack.session_present", Some(v));
        }
    }

    #[test]
    fn connect_flags_follow_the_doc_examples() {
        let creds = capture("mqtt_v31_default_creds");
        let admin = with(&creds, |r| client_id(r) == "HL7GW-ICU-01"); // 0xC2
        let props = capture("mqtt_v5_props");
        let gw = with(&props, |r| client_id(r) == "icu-gw-07"); // 0xCE: will, QoS 1
        let anon = capture("mqtt_v311_anon_phi");
        let nurse = with(&anon, |r| client_id(r) == "NURSE-STN-W3"); // 0x02
                                                                     // Suricata doc examples.
        let upw = pred("mqtt.connect.flags", "username,password,!will");
        assert!(upw.matches(admin));
        assert!(!upw.matches(gw));
        assert!(!upw.matches(nurse));
        let u_not_p = pred("mqtt.connect.flags", "username,!password");
        assert!(!u_not_p.matches(admin));
        let user_only = rec(4, vec![connect(0x82, "c", Some("u"), None)]);
        assert!(u_not_p.matches(&user_only));
        let clean = pred("mqtt.connect.flags", "clean_session");
        assert!(clean.matches(nurse));
        assert!(!clean.matches(&rec(4, vec![connect(0x80, "c", Some("u"), None)])));
        // The will flag is 0x04 and will retain 0x20 (MQTT 3.1.1 §3.1.2.3):
        // icu-gw-07's will is not retained.
        assert!(pred("mqtt.connect.flags", "will,!will_retain").matches(gw));
        assert!(!pred("mqtt.connect.flags", "will_retain").matches(gw));
        assert!(pred("mqtt.connect.flags", "&0x18=0x08").matches(gw));
        // Only CONNECT carries connect flags.
        let publish_only = with(&creds, |r| r.connect().is_none());
        assert!(!pred("mqtt.connect.flags", "!username").matches(publish_only));
        assert!(bad("mqtt.connect.flags", Some("will,will")).contains("twice"));
        assert!(bad("mqtt.connect.flags", Some("user")).contains("unknown flag"));
    }

    #[test]
    fn connect_buffers_yield_the_connect_fields() {
        let creds = capture("mqtt_v31_default_creds");
        let admin = with(&creds, |r| client_id(r) == "HL7GW-ICU-01");
        let publish_only = with(&creds, |r| r.connect().is_none());
        let one = |s: &str| vec![s.as_bytes().to_vec()];
        assert_eq!(
            instances(buf("mqtt.connect.clientid"), admin),
            one("HL7GW-ICU-01")
        );
        assert_eq!(instances(buf("mqtt.connect.username"), admin), one("admin"));
        assert_eq!(instances(buf("mqtt.connect.password"), admin), one("admin"));
        // Suricata doc example: mqtt.connect.protocol_string; content:"MQIsdp";
        assert!(contains(
            buf("mqtt.connect.protocol_string"),
            admin,
            b"MQIsdp"
        ));
        assert!(!contains(
            buf("mqtt.connect.protocol_string"),
            admin,
            b"MQTT"
        ));
        for (n, b) in BUFFERS
            .iter()
            .filter(|(n, _)| n.starts_with("mqtt.connect."))
        {
            assert!(instances(*b, publish_only).is_empty(), "{n}");
        }
        // content:"MQTT" on a 3.1.1 login.
        let anon = capture("mqtt_v311_anon_phi");
        let nurse = with(&anon, |r| client_id(r) == "NURSE-STN-W3");
        assert!(contains(
            buf("mqtt.connect.protocol_string"),
            nurse,
            b"MQTT"
        ));
        // Anonymous: no username or password instance.
        assert!(instances(buf("mqtt.connect.username"), nurse).is_empty());
        assert!(instances(buf("mqtt.connect.password"), nurse).is_empty());
        assert!(instances(buf("mqtt.connect.willtopic"), nurse).is_empty());

        // The will of icu-gw-07, checked against the PUBLISH the broker
        // made of it after the client's DISCONNECT 0x04.
        let props = capture("mqtt_v5_props");
        let gw = with(&props, |r| client_id(r) == "icu-gw-07");
        assert_eq!(
            instances(buf("mqtt.connect.willtopic"), gw),
            one("ward3/icu-gw-07/status")
        );
        let sent = with(&props, |r| {
            r.publish()
                .is_some_and(|p| p.topic == "ward3/icu-gw-07/status")
        });
        let will = instances(buf("mqtt.connect.willmessage"), gw);
        assert_eq!(will, instances(buf("mqtt.publish.message"), sent));
        assert_eq!(will.len(), 1);
    }

    #[test]
    fn connect_buffer_doc_examples_match_their_situation() {
        // Hand-built CONNECTs holding what the Suricata doc examples look for.
        let mut c = connect(0xE6, "mosq-7nQx1", Some("benson"), Some(b"1234567"));
        if let Body::Connect(x) = &mut c.body {
            x.will = Some(Will {
                topic: "hunter7".into(),
                message: b"foobaz hunter2".to_vec(),
                message_length: 14,
                properties: None,
            });
        }
        let r = rec(4, vec![c]);
        let other = rec(
            4,
            vec![connect(0xC2, "myclient", Some("bob"), Some(b"swordfish"))],
        );
        // mqtt.connect.clientid; pcre:"/^mosq.*/";  content:"myclient";
        let starts = |b: Buffer, r: &Record, p: &[u8]| b.any(r, &mut |x| x.starts_with(p));
        assert!(starts(buf("mqtt.connect.clientid"), &r, b"mosq"));
        assert!(!starts(buf("mqtt.connect.clientid"), &other, b"mosq"));
        assert!(contains(buf("mqtt.connect.clientid"), &other, b"myclient"));
        assert!(!contains(buf("mqtt.connect.clientid"), &r, b"myclient"));
        // mqtt.connect.password; pcre:"/^123[0-9]*/";  content:"swordfish";
        assert!(starts(buf("mqtt.connect.password"), &r, b"123"));
        assert!(contains(buf("mqtt.connect.password"), &other, b"swordfish"));
        assert!(!contains(buf("mqtt.connect.password"), &r, b"swordfish"));
        // mqtt.connect.username; content:"benson";
        assert!(contains(buf("mqtt.connect.username"), &r, b"benson"));
        assert!(!contains(buf("mqtt.connect.username"), &other, b"benson"));
        // mqtt.connect.willmessage; pcre:"/^fooba[rz]/"; content:"hunter2";
        assert!(starts(buf("mqtt.connect.willmessage"), &r, b"foobaz"));
        assert!(contains(buf("mqtt.connect.willmessage"), &r, b"hunter2"));
        assert!(instances(buf("mqtt.connect.willmessage"), &other).is_empty());
        // mqtt.connect.willtopic; pcre:"/^hunter[0-9]/";
        assert!(starts(buf("mqtt.connect.willtopic"), &r, b"hunter7"));
        assert!(instances(buf("mqtt.connect.willtopic"), &other).is_empty());
        // An empty field is no instance.
        let empty = rec(4, vec![connect(0xC2, "", Some(""), Some(b""))]);
        assert!(instances(buf("mqtt.connect.clientid"), &empty).is_empty());
        assert!(instances(buf("mqtt.connect.password"), &empty).is_empty());
    }

    #[test]
    fn publish_topic_is_the_alias_resolved_topic() {
        let props = capture("mqtt_v5_props");
        // The QoS 2 PUBLISH sent with an empty topic and topic alias 1.
        let aliased = with(&props, |r| r.publish().is_some_and(|p| p.topic.is_empty()));
        assert_eq!(
            instances(buf("mqtt.publish.topic"), aliased),
            vec![b"fhir/ward3/patient".to_vec()]
        );
        // Suricata doc example: mqtt.publish.topic; content:"mytopic";
        let mine = rec(4, vec![publish(0, "mytopic", b"x")]);
        assert!(contains(buf("mqtt.publish.topic"), &mine, b"mytopic"));
        assert!(!contains(buf("mqtt.publish.topic"), aliased, b"mytopic"));
    }

    #[test]
    fn publish_message_is_the_payload() {
        let creds = capture("mqtt_v31_default_creds");
        let hl7 = with(&creds, |r| {
            r.publish().is_some_and(|p| p.message_id.is_none())
        });
        let b = buf("mqtt.publish.message");
        // HL7 v2: the payload starts with the MSH segment and holds a PID.
        assert!(b.any(hl7, &mut |x| x.starts_with(b"MSH|")));
        assert!(contains(b, hl7, b"\rPID|"));
        // Suricata doc examples: pcre:"/uid=[0-9]+/";
        // content:"|FF D8 FF E0|"; startswith; (JPEG)
        let uid = rec(4, vec![publish(0, "t", b"login uid=1000 ok")]);
        let jpeg = rec(
            4,
            vec![publish(0, "cam", &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J'])],
        );
        let digits_after_uid = |x: &[u8]| {
            x.windows(5)
                .any(|w| w.starts_with(b"uid=") && w[4].is_ascii_digit())
        };
        assert!(b.any(&uid, &mut |x| digits_after_uid(x)));
        assert!(!b.any(hl7, &mut |x| digits_after_uid(x)));
        assert!(b.any(&jpeg, &mut |x| x.starts_with(&[0xFF, 0xD8, 0xFF, 0xE0])));
        assert!(!b.any(hl7, &mut |x| x.starts_with(&[0xFF, 0xD8, 0xFF, 0xE0])));
        assert!(pred("mqtt.type", "PUBLISH").matches(&jpeg));
    }

    #[test]
    fn subscribe_and_unsubscribe_topics_are_one_instance_per_filter() {
        let anon = capture("mqtt_v311_anon_phi");
        let sub = with(&anon, |r| {
            r.messages[0].packet_type == packet_type::SUBSCRIBE
                && client_id(r).is_empty()
                && matches!(&r.messages[0].body, Body::Subscribe(s) if s.topics.len() == 2)
        });
        let unsub = with(&anon, |r| r.find(packet_type::UNSUBSCRIBE).is_some());
        let both = vec![b"ward3/+/patient".to_vec(), b"ward3/#".to_vec()];
        assert_eq!(instances(buf("mqtt.subscribe.topic"), sub), both);
        assert_eq!(instances(buf("mqtt.unsubscribe.topic"), unsub), both);
        assert!(instances(buf("mqtt.subscribe.topic"), unsub).is_empty());
        assert!(instances(buf("mqtt.unsubscribe.topic"), sub).is_empty());
        // Suricata doc examples: mqtt.subscribe.topic; content:"mytopic";
        assert!(!contains(buf("mqtt.subscribe.topic"), sub, b"mytopic"));
        assert!(contains(buf("mqtt.subscribe.topic"), sub, b"ward3/#"));
        // The engine's callback stops the walk: the second instance is
        // not visited once the first one matched.
        let mut seen = 0;
        assert!(buf("mqtt.subscribe.topic").any(sub, &mut |_| {
            seen += 1;
            true
        }));
        assert_eq!(seen, 1);
    }

    #[test]
    fn buffers_take_no_value_and_unknown_names_are_not_mine() {
        assert!(bad("mqtt.publish.topic", Some("x")).contains("no value"));
        assert_eq!(
            kw("mqtt.publish.topic", Some(" ")),
            Keyword::Buffer(Buffer::PublishTopic)
        );
        for (n, b) in BUFFERS {
            assert_eq!(b.name(), *n);
            assert_eq!(kw(&n.to_ascii_uppercase(), None), Keyword::Buffer(*b));
        }
        // `mqtt.CONNACK` in Suricata's reason_code examples is not a
        // keyword (Suricata rejects it too): `mqtt.type:CONNACK` is meant.
        for n in [
            "mqtt.CONNACK",
            "mqtt.DISCONNECT",
            "mqtt.connect.willqos",
            "http.uri",
            "mqtt",
        ] {
            assert!(keyword(n, None).is_none(), "{n}");
        }
    }

    #[test]
    fn credentials_of_logins_carry_the_broker_answer() {
        let creds = capture("mqtt_v31_default_creds");
        let admin = with(&creds, |r| client_id(r) == "HL7GW-ICU-01");
        let guest = with(&creds, |r| client_id(r) == "PUMP-GW-02");
        let c = credentials(admin).unwrap();
        assert_eq!(
            (c.username, c.password, c.accepted),
            (Some(&b"admin"[..]), Some(&b"admin"[..]), Some(true))
        );
        let c = credentials(guest).unwrap();
        assert_eq!(
            (c.username, c.password, c.accepted),
            (Some(&b"guest"[..]), Some(&b"guest"[..]), Some(true))
        );
        assert!(credentials(with(&creds, |r| r.connect().is_none())).is_none());

        let refused = capture("mqtt_refused");
        let anon = credentials(with(&refused, |r| client_id(r) == "anon-monitor-02")).unwrap();
        assert_eq!(
            (anon.username, anon.password, anon.accepted),
            (None, None, Some(false))
        );
        let pump = credentials(with(&refused, |r| client_id(r) == "infusion-pump-19")).unwrap();
        assert_eq!(
            (pump.username, pump.password, pump.accepted),
            (Some(&b"pump"[..]), Some(&b"pump"[..]), Some(false))
        );

        let anon_ok = capture("mqtt_v311_anon_phi");
        let a = credentials(with(&anon_ok, |r| client_id(r) == "DASH-W3")).unwrap();
        assert_eq!(
            (a.username, a.password, a.accepted),
            (None, None, Some(true))
        );

        // Hand-built: no CONNACK seen; an empty password with its flag is
        // a password; a username without its flag is none.
        let pending = rec(4, vec![connect(0xC2, "c", Some("root"), Some(b""))]);
        let p = credentials(&pending).unwrap();
        assert_eq!(
            (p.username, p.password, p.accepted),
            (Some(&b"root"[..]), Some(&b""[..]), None)
        );
        let unflagged = rec(4, vec![connect(0x02, "c", Some("root"), Some(b"x"))]);
        let u = credentials(&unflagged).unwrap();
        assert_eq!((u.username, u.password), (None, None));
    }
}
