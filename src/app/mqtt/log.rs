//! The EVE `mqtt` object of one transaction.
//!
//! Owns: field names and shapes, which are Suricata's (`rust/src/mqtt/
//! logger.rs` facts, Suricata 8 EVE schema `properties.mqtt`): one object
//! per message type of the transaction (`connect`, `connack`, `publish`,
//! `puback`, `pubrec`, `pubrel`, `pubcomp`, `subscribe`, `suback`,
//! `unsubscribe`, `unsuback`, `pingreq`, `pingresp`, `disconnect`, `auth`),
//! each with `qos`, `retain`, `dup`; v5 properties under `properties` named
//! in snake case after the spec (user properties as `key: value`).
//!
//! Our additions (listed in `tests/tools/validate_eve.py`):
//! `mqtt.mid_stream_guess`, `mqtt.answer_lost` (the answer was in bytes
//! the capture lost or never showed), `connect.accepted` (with a CONNACK),
//! `connect.keep_alive`, `publish.payload_length`, `publish.resolved_topic`
//! (v5 topic alias), `properties` on `subscribe`, `suback`, `unsubscribe`,
//! `unsuback`, `truncated`/`skipped_length` on every type (a message over
//! the size limit: skipped whole; a CONNECT: its property bytes dropped
//! unread, its fields still logged), and `auth`.
//!
//! Which fields are sensitive is said here — passwords, authentication
//! data, message and will payloads —; how they and other byte strings
//! (correlation data) are written is [`crate::output::mask`]'s one policy
//! and one non-UTF-8 rule.

use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::parser::packet_type as pt;
use super::{Body, Message, Properties, PropertyValue, Record};
use crate::output::json;
use crate::output::mask::{display_bytes, LogOptions};

/// A key of this file as the hand-written object has it: quoted, with its
/// colon (`"qos":`), made at compile time.
macro_rules! k {
    ($key:literal) => {
        concat!("\"", $key, "\":")
    };
}

/// Property identifier → EVE name (Suricata's).
fn property_name(id: u8) -> &'static str {
    match id {
        0x01 => "payload_format_indicator",
        0x02 => "message_expiry_interval",
        0x03 => "content_type",
        0x08 => "response_topic",
        0x09 => "correlation_data",
        0x0b => "subscription_identifier",
        0x11 => "session_expiry_interval",
        0x12 => "assigned_client_identifier",
        0x13 => "server_keep_alive",
        0x15 => "authentication_method",
        0x16 => "authentication_data",
        0x17 => "request_problem_information",
        0x18 => "will_delay_interval",
        0x19 => "request_response_information",
        0x1a => "response_information",
        0x1c => "server_reference",
        0x1f => "reason_string",
        0x21 => "receive_maximum",
        0x22 => "topic_alias_maximum",
        0x23 => "topic_alias",
        0x24 => "maximum_qos",
        0x25 => "retain_available",
        0x27 => "maximum_packet_size",
        0x28 => "wildcard_subscription_available",
        0x29 => "subscription_identifier_available",
        0x2a => "shared_subscription_available",
        _ => "unknown",
    }
}

fn properties(p: &Properties, opts: &LogOptions) -> Option<Value> {
    let p = p.as_ref()?;
    let mut m = Map::new();
    for prop in p {
        let name = property_name(prop.id);
        let v = match &prop.value {
            PropertyValue::Int(v) => json!(v),
            PropertyValue::Str(s) => json!(s),
            // Authentication data is a credential.
            PropertyValue::Bin(b) if prop.id == 0x16 => {
                serde_json::to_value(opts.sensitive(b)).unwrap_or(Value::Null)
            }
            PropertyValue::Bin(b) => json!(display_bytes(b)),
            PropertyValue::Pair(k, v) => {
                m.insert(k.clone(), json!(v));
                continue;
            }
        };
        m.insert(name.to_string(), v);
    }
    Some(Value::Object(m))
}

/// The EVE `mqtt` object of a record, serialised straight into the output
/// (no intermediate `Value`: this runs for every MQTT transaction). Keys come
/// in a fixed order; v5 properties, rare and possibly repeated, still go
/// through a map so that a repeated name is written once.
///
/// The objects here are written as structs, not maps: every key is a
/// `&'static str` of this file, which the EVE writer copies without
/// escaping (on `mqtt_small` the key escapes were 4 % of all
/// instructions). A struct's `len` is a hint: serde_json reads only
/// whether it is 0, which would close the object at once, so each gives
/// the number of fields always written.
pub struct Logged<'a> {
    pub rec: &'a Record,
    pub opts: &'a LogOptions,
}

impl Serialize for Logged<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut o = s.serialize_struct("mqtt", 1)?;
        // A resent message of a type already logged (DUP) keeps the first.
        let mut logged: Vec<&'static str> = Vec::with_capacity(4);
        for m in &self.rec.messages {
            let name = pt::name(m.packet_type);
            if logged.contains(&name) {
                continue;
            }
            logged.push(name);
            o.serialize_field(
                name,
                &MessageLog {
                    rec: self.rec,
                    m,
                    opts: self.opts,
                },
            )?;
        }
        if self.rec.mid_stream_guess {
            o.serialize_field("mid_stream_guess", &true)?;
        }
        if self.rec.answer_lost {
            o.serialize_field("answer_lost", &true)?;
        }
        o.end()
    }
}

impl Logged<'_> {
    /// Appends the bytes [`json::write`] makes of `self` through
    /// [`Serialize`], written by hand: this runs for every MQTT
    /// transaction, and the serializer's calls per field were 7 % of the
    /// instructions on `mqtt_small`. Every string from the wire goes through
    /// [`json::write_str`]; keys are names of this file (no escaping); v5
    /// properties, rare, still go through [`properties`] and its map.
    /// A proptest below compares both on arbitrary records.
    ///
    /// # Errors
    /// As [`json::write`] (never: every value is a string, a number, a
    /// boolean or a list of them); `out` may then hold part of the object.
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), json::Error> {
        let mut o = Obj::open(out);
        // A resent message of a type already logged (DUP) keeps the first;
        // types 1–15 have a name each, every other the one `unassigned`.
        let mut logged = 0u16;
        for m in &self.rec.messages {
            let bit = 1u16
                << if (1..=15).contains(&m.packet_type) {
                    m.packet_type
                } else {
                    0
                };
            if logged & bit != 0 {
                continue;
            }
            logged |= bit;
            o.name(pt::name(m.packet_type));
            write_message(o.out, self.rec, m, self.opts)?;
        }
        if self.rec.mid_stream_guess {
            o.key(k!("mid_stream_guess"));
            o.out.extend_from_slice(b"true");
        }
        if self.rec.answer_lost {
            o.key(k!("answer_lost"));
            o.out.extend_from_slice(b"true");
        }
        o.close();
        Ok(())
    }
}

/// An object being written by hand: `{` first, a comma before every key
/// but the first.
struct Obj<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Obj<'o> {
    fn open(out: &'o mut Vec<u8>) -> Obj<'o> {
        out.push(b'{');
        Obj { out, first: true }
    }

    /// A key as [`k!`] writes it, `"key":`: one copy.
    fn key(&mut self, quoted: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.extend_from_slice(quoted.as_bytes());
    }

    /// `"name":` for a name of this file's (nothing to escape) not known
    /// until run time.
    fn name(&mut self, name: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn uint(&mut self, key: &str, v: impl Into<u64>) {
        self.key(key);
        json::write_u64(self.out, v.into());
    }

    fn bool(&mut self, key: &str, v: bool) {
        self.key(key);
        self.out
            .extend_from_slice(if v { b"true".as_slice() } else { b"false" });
    }

    fn str(&mut self, key: &str, v: &str) {
        self.key(key);
        json::write_str(self.out, v);
    }

    /// `properties` when the message has any (a 3.x message has none: a
    /// test inline, no call).
    #[inline]
    fn props(&mut self, p: &Properties, opts: &LogOptions) -> Result<(), json::Error> {
        if p.is_none() {
            return Ok(());
        }
        self.some_props(p, opts)
    }

    /// [`Obj::props`] of a message with a property list (5.0).
    #[inline(never)]
    fn some_props(&mut self, p: &Properties, opts: &LogOptions) -> Result<(), json::Error> {
        match properties(p, opts) {
            Some(v) => {
                self.key(k!("properties"));
                json::write(self.out, &v)
            }
            None => Ok(()),
        }
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

/// `[n,…]`.
fn write_u8_list(out: &mut Vec<u8>, v: &[u8]) {
    out.push(b'[');
    for (i, n) in v.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_u64(out, u64::from(*n));
    }
    out.push(b']');
}

/// The opening of a message's object for each value of its fixed header's
/// low four bits (DUP 0x08, QoS 0x06, RETAIN 0x01), as [`Obj`] writes
/// `qos`, `retain` and `dup` (a test checks every entry against it).
const HEADS: [&[u8]; 16] = [
    br#"{"qos":0,"retain":false,"dup":false"#,
    br#"{"qos":0,"retain":true,"dup":false"#,
    br#"{"qos":1,"retain":false,"dup":false"#,
    br#"{"qos":1,"retain":true,"dup":false"#,
    br#"{"qos":2,"retain":false,"dup":false"#,
    br#"{"qos":2,"retain":true,"dup":false"#,
    br#"{"qos":3,"retain":false,"dup":false"#,
    br#"{"qos":3,"retain":true,"dup":false"#,
    br#"{"qos":0,"retain":false,"dup":true"#,
    br#"{"qos":0,"retain":true,"dup":true"#,
    br#"{"qos":1,"retain":false,"dup":true"#,
    br#"{"qos":1,"retain":true,"dup":true"#,
    br#"{"qos":2,"retain":false,"dup":true"#,
    br#"{"qos":2,"retain":true,"dup":true"#,
    br#"{"qos":3,"retain":false,"dup":true"#,
    br#"{"qos":3,"retain":true,"dup":true"#,
];

/// [`MessageLog`]'s bytes, by hand.
fn write_message(
    out: &mut Vec<u8>,
    rec: &Record,
    m: &Message,
    opts: &LogOptions,
) -> Result<(), json::Error> {
    // `{"qos":…,"retain":…,"dup":…` of every message: one copy of the
    // fixed-header flags' line ([`HEADS`]).
    out.extend_from_slice(
        HEADS
            .get(usize::from(m.flags & 0x0f))
            .copied()
            .unwrap_or_default(),
    );
    let mut o = Obj { out, first: false };
    match &m.body {
        Body::Connect(c) => {
            o.str(k!("protocol_string"), &c.protocol_string);
            o.uint(k!("protocol_version"), c.protocol_version);
            o.str(k!("client_id"), &c.client_id);
            o.key(k!("flags"));
            let mut f = Obj::open(o.out);
            f.bool(k!("username"), c.username_flag());
            f.bool(k!("password"), c.password_flag());
            f.bool(k!("will_retain"), c.will_retain());
            f.bool(k!("will"), c.will_flag());
            f.bool(k!("clean_session"), c.clean_session());
            f.close();
            if let Some(u) = &c.username {
                o.str(k!("username"), u);
            }
            if let Some(p) = &c.password {
                o.key(k!("password"));
                opts.sensitive(p).write_json(o.out)?;
            }
            if let Some(w) = &c.will {
                o.key(k!("will"));
                let mut wo = Obj::open(o.out);
                wo.str(k!("topic"), &w.topic);
                wo.key(k!("message"));
                opts.sensitive_cut(&w.message, w.message_length)
                    .write_json(wo.out)?;
                wo.props(&w.properties, opts)?;
                wo.close();
            }
            o.props(&c.properties, opts)?;
            if c.skipped_length > 0 {
                o.bool(k!("truncated"), true);
                o.uint(k!("skipped_length"), c.skipped_length as u64);
            }
            o.uint(k!("keep_alive"), c.keep_alive);
            if let Some(a) = rec.accepted() {
                o.bool(k!("accepted"), a);
            }
        }
        Body::Connack(c) => {
            o.bool(k!("session_present"), c.session_present);
            o.uint(k!("return_code"), c.return_code);
            o.props(&c.properties, opts)?;
        }
        Body::Publish(p) => {
            o.str(k!("topic"), &p.topic);
            if let Some(t) = &p.resolved_topic {
                o.str(k!("resolved_topic"), t);
            }
            if let Some(id) = p.message_id {
                o.uint(k!("message_id"), id);
            }
            o.key(k!("message"));
            opts.sensitive_cut(&p.payload, p.payload_length)
                .write_json(o.out)?;
            o.uint(k!("payload_length"), p.payload_length as u64);
            o.props(&p.properties, opts)?;
        }
        Body::Ack(a) => {
            o.uint(k!("message_id"), a.message_id);
            if let Some(r) = a.reason_code {
                o.uint(k!("reason_code"), r);
            }
            o.props(&a.properties, opts)?;
        }
        Body::Subscribe(sub) => {
            o.uint(k!("message_id"), sub.message_id);
            o.key(k!("topics"));
            o.out.push(b'[');
            for (i, t) in sub.topics.iter().enumerate() {
                if i > 0 {
                    o.out.push(b',');
                }
                let mut to = Obj::open(o.out);
                to.str(k!("topic"), &t.topic);
                to.uint(k!("qos"), t.qos);
                to.close();
            }
            o.out.push(b']');
            o.props(&sub.properties, opts)?;
        }
        Body::Suback(sub) => {
            o.uint(k!("message_id"), sub.message_id);
            o.key(k!("qos_granted"));
            write_u8_list(o.out, &sub.qos_granted);
            o.props(&sub.properties, opts)?;
        }
        Body::Unsubscribe(u) => {
            o.uint(k!("message_id"), u.message_id);
            o.key(k!("topics"));
            o.out.push(b'[');
            for (i, t) in u.topics.iter().enumerate() {
                if i > 0 {
                    o.out.push(b',');
                }
                json::write_str(o.out, t);
            }
            o.out.push(b']');
            o.props(&u.properties, opts)?;
        }
        Body::Unsuback(u) => {
            o.uint(k!("message_id"), u.message_id);
            if !u.reason_codes.is_empty() {
                o.key(k!("reason_codes"));
                write_u8_list(o.out, &u.reason_codes);
            }
            o.props(&u.properties, opts)?;
        }
        Body::Pingreq | Body::Pingresp => {}
        Body::Disconnect(d) | Body::Auth(d) => {
            if let Some(r) = d.reason_code {
                o.uint(k!("reason_code"), r);
            }
            o.props(&d.properties, opts)?;
        }
        Body::Truncated { skipped_length } => {
            o.bool(k!("truncated"), true);
            o.uint(k!("skipped_length"), *skipped_length as u64);
        }
    }
    o.close();
    Ok(())
}

/// One message of a record: `qos`, `retain`, `dup`, then its type's fields.
struct MessageLog<'a> {
    rec: &'a Record,
    m: &'a Message,
    opts: &'a LogOptions,
}

/// Writes `properties` when the message has any.
fn put_props<M: SerializeStruct>(
    o: &mut M,
    p: &Properties,
    opts: &LogOptions,
) -> Result<(), M::Error> {
    match properties(p, opts) {
        Some(v) => o.serialize_field("properties", &v),
        None => Ok(()),
    }
}

impl Serialize for MessageLog<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (m, opts) = (self.m, self.opts);
        let mut o = s.serialize_struct("message", 3)?;
        o.serialize_field("qos", &m.qos())?;
        o.serialize_field("retain", &m.retain())?;
        o.serialize_field("dup", &m.dup())?;
        match &m.body {
            Body::Connect(c) => {
                o.serialize_field("protocol_string", &c.protocol_string)?;
                o.serialize_field("protocol_version", &c.protocol_version)?;
                o.serialize_field("client_id", &c.client_id)?;
                o.serialize_field(
                    "flags",
                    &ConnectFlags {
                        username: c.username_flag(),
                        password: c.password_flag(),
                        will_retain: c.will_retain(),
                        will: c.will_flag(),
                        clean_session: c.clean_session(),
                    },
                )?;
                if let Some(u) = &c.username {
                    o.serialize_field("username", u)?;
                }
                if let Some(p) = &c.password {
                    o.serialize_field("password", &opts.sensitive(p))?;
                }
                if let Some(w) = &c.will {
                    o.serialize_field("will", &WillLog { w, opts })?;
                }
                put_props(&mut o, &c.properties, opts)?;
                if c.skipped_length > 0 {
                    o.serialize_field("truncated", &true)?;
                    o.serialize_field("skipped_length", &c.skipped_length)?;
                }
                o.serialize_field("keep_alive", &c.keep_alive)?;
                if let Some(a) = self.rec.accepted() {
                    o.serialize_field("accepted", &a)?;
                }
            }
            Body::Connack(c) => {
                o.serialize_field("session_present", &c.session_present)?;
                o.serialize_field("return_code", &c.return_code)?;
                put_props(&mut o, &c.properties, opts)?;
            }
            Body::Publish(p) => {
                o.serialize_field("topic", &p.topic)?;
                if let Some(t) = &p.resolved_topic {
                    o.serialize_field("resolved_topic", t)?;
                }
                if let Some(id) = p.message_id {
                    o.serialize_field("message_id", &id)?;
                }
                o.serialize_field("message", &opts.sensitive_cut(&p.payload, p.payload_length))?;
                o.serialize_field("payload_length", &p.payload_length)?;
                put_props(&mut o, &p.properties, opts)?;
            }
            Body::Ack(a) => {
                o.serialize_field("message_id", &a.message_id)?;
                if let Some(r) = a.reason_code {
                    o.serialize_field("reason_code", &r)?;
                }
                // Suricata logs the properties of v5 acks too.
                put_props(&mut o, &a.properties, opts)?;
            }
            Body::Subscribe(sub) => {
                o.serialize_field("message_id", &sub.message_id)?;
                let topics: Vec<TopicLog<'_>> = sub
                    .topics
                    .iter()
                    .map(|t| TopicLog {
                        topic: &t.topic,
                        qos: t.qos,
                    })
                    .collect();
                o.serialize_field("topics", &topics)?;
                put_props(&mut o, &sub.properties, opts)?;
            }
            Body::Suback(sub) => {
                o.serialize_field("message_id", &sub.message_id)?;
                o.serialize_field("qos_granted", &sub.qos_granted)?;
                put_props(&mut o, &sub.properties, opts)?;
            }
            Body::Unsubscribe(u) => {
                o.serialize_field("message_id", &u.message_id)?;
                o.serialize_field("topics", &u.topics)?;
                put_props(&mut o, &u.properties, opts)?;
            }
            Body::Unsuback(u) => {
                o.serialize_field("message_id", &u.message_id)?;
                if !u.reason_codes.is_empty() {
                    o.serialize_field("reason_codes", &u.reason_codes)?;
                }
                put_props(&mut o, &u.properties, opts)?;
            }
            Body::Pingreq | Body::Pingresp => {}
            Body::Disconnect(d) | Body::Auth(d) => {
                if let Some(r) = d.reason_code {
                    o.serialize_field("reason_code", &r)?;
                }
                put_props(&mut o, &d.properties, opts)?;
            }
            Body::Truncated { skipped_length } => {
                o.serialize_field("truncated", &true)?;
                o.serialize_field("skipped_length", skipped_length)?;
            }
        }
        o.end()
    }
}

#[derive(Serialize)]
struct ConnectFlags {
    username: bool,
    password: bool,
    will_retain: bool,
    will: bool,
    clean_session: bool,
}

#[derive(Serialize)]
struct TopicLog<'a> {
    topic: &'a str,
    qos: u8,
}

struct WillLog<'a> {
    w: &'a super::Will,
    opts: &'a LogOptions,
}

impl Serialize for WillLog<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut o = s.serialize_struct("will", 2)?;
        o.serialize_field("topic", &self.w.topic)?;
        o.serialize_field(
            "message",
            &self
                .opts
                .sensitive_cut(&self.w.message, self.w.message_length),
        )?;
        put_props(&mut o, &self.w.properties, self.opts)?;
        o.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Direction;
    use crate::output::mask::MaskKey;
    use proptest::prelude::*;

    use super::super::{
        Ack, Connack, Connect, Property, ReasonOnly, Suback, Subscribe, TopicFilter, Unsuback,
        Unsubscribe, Will,
    };

    #[test]
    fn every_flags_head_is_what_obj_writes() {
        for flags in 0u8..16 {
            let mut want = Vec::new();
            let mut o = Obj::open(&mut want);
            o.uint(k!("qos"), super::super::parser::flag::qos(flags));
            o.bool(k!("retain"), super::super::parser::flag::retain(flags));
            o.bool(k!("dup"), super::super::parser::flag::dup(flags));
            assert_eq!(
                String::from_utf8_lossy(HEADS[usize::from(flags)]),
                String::from_utf8_lossy(&want),
                "flags {flags:#x}"
            );
        }
    }

    /// Text a hostile sender could put in a string field: quotes,
    /// backslashes, control characters, DEL, non-ASCII.
    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                4 => prop::char::range('a', 'z'),
                1 => prop::sample::select(vec!['"', '\\', '\n', '\u{0}', '\u{1f}', '\u{7f}', 'é', '€', '𝄞', '/']),
                1 => any::<char>(),
            ],
            0..12,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..16),
            text().prop_map(String::into_bytes),
        ]
    }

    fn properties() -> impl Strategy<Value = Properties> {
        let value = prop_oneof![
            any::<u32>().prop_map(PropertyValue::Int),
            text().prop_map(PropertyValue::Str),
            bytes().prop_map(PropertyValue::Bin),
            (text(), text()).prop_map(|(k, v)| PropertyValue::Pair(k, v)),
        ];
        let prop = (
            prop::sample::select(vec![0x01u8, 0x03, 0x09, 0x16, 0x23, 0x26, 0x7f]),
            value,
        )
            .prop_map(|(id, value)| Property { id, value });
        prop::option::of(prop::collection::vec(prop, 0..4))
    }

    fn body() -> impl Strategy<Value = Body> {
        let will = (text(), bytes(), 0usize..40, properties()).prop_map(
            |(topic, message, extra, properties)| Will {
                topic,
                message_length: message.len() + extra,
                message,
                properties,
            },
        );
        let connect = (
            (text(), any::<u8>(), any::<u8>(), any::<u16>(), text()),
            (
                prop::option::of(text()),
                prop::option::of(bytes()),
                prop::option::of(will),
                properties(),
                prop_oneof![Just(0usize), 1usize..100_000],
            ),
        )
            .prop_map(
                |(
                    (protocol_string, protocol_version, flags, keep_alive, client_id),
                    (username, password, will, properties, skipped_length),
                )| {
                    Body::Connect(Connect {
                        protocol_string,
                        protocol_version,
                        flags,
                        keep_alive,
                        client_id,
                        username,
                        password,
                        will,
                        properties,
                        skipped_length,
                    })
                },
            );
        let publish = (
            text(),
            prop::option::of(text()),
            prop::option::of(any::<u16>()),
            properties(),
            bytes(),
            0usize..1000,
        )
            .prop_map(
                |(topic, resolved_topic, message_id, properties, payload, extra)| {
                    Body::Publish(super::super::Publish {
                        topic,
                        resolved_topic,
                        message_id,
                        properties,
                        payload_length: payload.len() + extra,
                        payload,
                    })
                },
            );
        prop_oneof![
            connect,
            (any::<bool>(), any::<u8>(), properties()).prop_map(|(s, r, p)| Body::Connack(
                Connack {
                    session_present: s,
                    return_code: r,
                    properties: p,
                }
            )),
            publish,
            (any::<u16>(), prop::option::of(any::<u8>()), properties()).prop_map(
                |(message_id, reason_code, properties)| Body::Ack(Ack {
                    message_id,
                    reason_code,
                    properties,
                })
            ),
            (
                any::<u16>(),
                prop::collection::vec((text(), any::<u8>(), any::<u8>()), 0..3),
                properties()
            )
                .prop_map(|(message_id, topics, properties)| Body::Subscribe(
                    Subscribe {
                        message_id,
                        topics: topics
                            .into_iter()
                            .map(|(topic, qos, options)| TopicFilter {
                                topic,
                                qos,
                                options,
                            })
                            .collect(),
                        properties,
                    }
                )),
            (any::<u16>(), bytes(), properties()).prop_map(|(message_id, q, properties)| {
                Body::Suback(Suback {
                    message_id,
                    qos_granted: q,
                    properties,
                })
            }),
            (
                any::<u16>(),
                prop::collection::vec(text(), 0..3),
                properties()
            )
                .prop_map(|(message_id, topics, properties)| Body::Unsubscribe(
                    Unsubscribe {
                        message_id,
                        topics,
                        properties,
                    }
                )),
            (any::<u16>(), bytes(), properties()).prop_map(|(message_id, r, properties)| {
                Body::Unsuback(Unsuback {
                    message_id,
                    reason_codes: r,
                    properties,
                })
            }),
            Just(Body::Pingreq),
            Just(Body::Pingresp),
            (prop::option::of(any::<u8>()), properties()).prop_map(|(reason_code, properties)| {
                Body::Disconnect(ReasonOnly {
                    reason_code,
                    properties,
                })
            }),
            (prop::option::of(any::<u8>()), properties()).prop_map(|(reason_code, properties)| {
                Body::Auth(ReasonOnly {
                    reason_code,
                    properties,
                })
            }),
            (0usize..1 << 24).prop_map(|skipped_length| Body::Truncated { skipped_length }),
        ]
    }

    fn message() -> impl Strategy<Value = Message> {
        // Packet types 0 and 16+ (not on the wire: four bits) share the
        // name `unassigned`, as 1–15 each have their own.
        (
            prop_oneof![4 => 1u8..=15, 1 => Just(0u8), 1 => 16u8..=255],
            any::<u8>(),
            any::<bool>(),
            body(),
        )
            .prop_map(|(packet_type, flags, to_server, body)| Message {
                packet_type,
                flags,
                dir: if to_server {
                    Direction::ToServer
                } else {
                    Direction::ToClient
                },
                body,
            })
    }

    fn record() -> impl Strategy<Value = Record> {
        (
            prop::collection::vec(message(), 0..5),
            any::<u8>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(messages, protocol_version, mid_stream_guess, answer_lost)| Record {
                    messages,
                    protocol_version,
                    mid_stream_guess,
                    answer_lost,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The hand-written object is the `Serialize` one, masked or not,
        /// on any record.
        #[test]
        fn write_json_matches_serialize(rec in record(), unmask in any::<bool>()) {
            let opts = if unmask {
                LogOptions::unmasked()
            } else {
                LogOptions::masked(MaskKey::from_secret(b"a test secret of some length"))
            };
            let logged = Logged { rec: &rec, opts: &opts };
            let mut by_serde = b"prefix".to_vec();
            json::write(&mut by_serde, &logged).unwrap();
            let mut by_hand = b"prefix".to_vec();
            logged.write_json(&mut by_hand).unwrap();
            prop_assert_eq!(
                String::from_utf8_lossy(&by_hand),
                String::from_utf8_lossy(&by_serde)
            );
            // And it is the JSON serde_json writes.
            let reference = serde_json::to_vec(&logged).unwrap();
            prop_assert_eq!(by_hand.get(6..).unwrap(), reference.as_slice());
        }
    }
}
