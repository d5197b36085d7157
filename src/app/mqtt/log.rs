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
use crate::output::mask::{display_bytes, LogOptions};

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
