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
//! `mqtt.mid_stream_guess`, `connect.accepted` (with a CONNACK),
//! `connect.keep_alive`, `publish.payload_length`, `publish.resolved_topic`
//! (v5 topic alias), `properties` on `subscribe`, `suback`, `unsubscribe`,
//! `unsuback`, `truncated`/`skipped_length` on every type, and `auth`.
//!
//! Byte strings (passwords, payloads, will messages, correlation and
//! authentication data) are written as text when they are UTF-8, otherwise
//! with every byte outside printable ASCII as `\xNN`. Secrets and payloads
//! are masked unless [`LogOptions::unmask`]: a short prefix, an ellipsis
//! and the length, e.g. `"a… (5 bytes)"`.

use serde_json::{json, Map, Value};

use super::parser::packet_type as pt;
use super::{Body, Message, Properties, PropertyValue, Record};
use crate::app::LogOptions;

/// Longest password prefix shown when masked.
const PASSWORD_PREFIX: usize = 2;
/// Longest payload prefix shown when masked.
const PAYLOAD_PREFIX: usize = 4;

/// Bytes as text: UTF-8 as is, otherwise non-printable bytes as `\xNN`.
pub fn bytes_text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => {
            let mut out = String::with_capacity(b.len() * 2);
            for &c in b {
                if (0x20..0x7f).contains(&c) && c != b'\\' {
                    out.push(char::from(c));
                } else {
                    out.push_str(&format!("\\x{c:02x}"));
                }
            }
            out
        }
    }
}

/// A secret or payload as logged: in full with `unmask`, else a prefix of
/// at most `max_prefix` bytes (and at most a quarter of the value) and the
/// length.
pub fn masked(b: &[u8], total_len: usize, max_prefix: usize, opts: &LogOptions) -> String {
    if opts.unmask {
        return bytes_text(b);
    }
    if total_len == 0 {
        return String::new();
    }
    let n = max_prefix.min(total_len / 4).min(b.len());
    // Cut at a character boundary so the prefix stays readable.
    let mut prefix = b.get(..n).unwrap_or(&[]);
    while !prefix.is_empty() && std::str::from_utf8(prefix).is_err() && n - prefix.len() < 4 {
        prefix = prefix.get(..prefix.len() - 1).unwrap_or(&[]);
    }
    format!("{}… ({total_len} bytes)", bytes_text(prefix))
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
                json!(masked(b, b.len(), PASSWORD_PREFIX, opts))
            }
            PropertyValue::Bin(b) => json!(bytes_text(b)),
            PropertyValue::Pair(k, v) => {
                m.insert(k.clone(), json!(v));
                continue;
            }
        };
        m.insert(name.to_string(), v);
    }
    Some(Value::Object(m))
}

fn header(m: &Message) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("qos".into(), json!(m.qos()));
    o.insert("retain".into(), json!(m.retain()));
    o.insert("dup".into(), json!(m.dup()));
    o
}

fn put_props(o: &mut Map<String, Value>, p: &Properties, opts: &LogOptions) {
    if let Some(v) = properties(p, opts) {
        o.insert("properties".into(), v);
    }
}

fn message(rec: &Record, m: &Message, opts: &LogOptions) -> Value {
    let mut o = header(m);
    match &m.body {
        Body::Connect(c) => {
            o.insert("protocol_string".into(), json!(c.protocol_string));
            o.insert("protocol_version".into(), json!(c.protocol_version));
            o.insert("client_id".into(), json!(c.client_id));
            o.insert(
                "flags".into(),
                json!({
                    "username": c.username_flag(),
                    "password": c.password_flag(),
                    "will_retain": c.will_retain(),
                    "will": c.will_flag(),
                    "clean_session": c.clean_session(),
                }),
            );
            if let Some(u) = &c.username {
                o.insert("username".into(), json!(u));
            }
            if let Some(p) = &c.password {
                o.insert(
                    "password".into(),
                    json!(masked(p, p.len(), PASSWORD_PREFIX, opts)),
                );
            }
            if let Some(w) = &c.will {
                let mut wo = Map::new();
                wo.insert("topic".into(), json!(w.topic));
                wo.insert(
                    "message".into(),
                    json!(masked(&w.message, w.message_length, PAYLOAD_PREFIX, opts)),
                );
                put_props(&mut wo, &w.properties, opts);
                o.insert("will".into(), Value::Object(wo));
            }
            put_props(&mut o, &c.properties, opts);
            o.insert("keep_alive".into(), json!(c.keep_alive));
            if let Some(a) = rec.accepted() {
                o.insert("accepted".into(), json!(a));
            }
        }
        Body::Connack(c) => {
            o.insert("session_present".into(), json!(c.session_present));
            o.insert("return_code".into(), json!(c.return_code));
            put_props(&mut o, &c.properties, opts);
        }
        Body::Publish(p) => {
            o.insert("topic".into(), json!(p.topic));
            if let Some(t) = &p.resolved_topic {
                o.insert("resolved_topic".into(), json!(t));
            }
            if let Some(id) = p.message_id {
                o.insert("message_id".into(), json!(id));
            }
            o.insert(
                "message".into(),
                json!(masked(&p.payload, p.payload_length, PAYLOAD_PREFIX, opts)),
            );
            o.insert("payload_length".into(), json!(p.payload_length));
            put_props(&mut o, &p.properties, opts);
        }
        Body::Ack(a) => {
            o.insert("message_id".into(), json!(a.message_id));
            if let Some(r) = a.reason_code {
                o.insert("reason_code".into(), json!(r));
            }
        }
        Body::Subscribe(s) => {
            o.insert("message_id".into(), json!(s.message_id));
            let topics: Vec<Value> = s
                .topics
                .iter()
                .map(|t| json!({"topic": t.topic, "qos": t.qos}))
                .collect();
            o.insert("topics".into(), Value::Array(topics));
            put_props(&mut o, &s.properties, opts);
        }
        Body::Suback(s) => {
            o.insert("message_id".into(), json!(s.message_id));
            o.insert("qos_granted".into(), json!(s.qos_granted));
            put_props(&mut o, &s.properties, opts);
        }
        Body::Unsubscribe(u) => {
            o.insert("message_id".into(), json!(u.message_id));
            o.insert("topics".into(), json!(u.topics));
            put_props(&mut o, &u.properties, opts);
        }
        Body::Unsuback(u) => {
            o.insert("message_id".into(), json!(u.message_id));
            if !u.reason_codes.is_empty() {
                o.insert("reason_codes".into(), json!(u.reason_codes));
            }
            put_props(&mut o, &u.properties, opts);
        }
        Body::Pingreq | Body::Pingresp => {}
        Body::Disconnect(d) | Body::Auth(d) => {
            if let Some(r) = d.reason_code {
                o.insert("reason_code".into(), json!(r));
            }
            put_props(&mut o, &d.properties, opts);
        }
        Body::Truncated { skipped_length } => {
            o.insert("truncated".into(), json!(true));
            o.insert("skipped_length".into(), json!(skipped_length));
        }
    }
    Value::Object(o)
}

/// The EVE `mqtt` object of `rec`.
pub fn log(rec: &Record, opts: &LogOptions) -> Value {
    let mut o = Map::new();
    for m in &rec.messages {
        let name = pt::name(m.packet_type);
        // A resent message of a type already logged (DUP) keeps the first.
        if !o.contains_key(name) {
            o.insert(name.to_string(), message(rec, m, opts));
        }
    }
    // PUBACK/PUBACK of a v5 ack: Suricata logs properties of acks too.
    for m in &rec.messages {
        if let Body::Ack(a) = &m.body {
            if let (Some(v), Some(Value::Object(obj))) = (
                properties(&a.properties, opts),
                o.get_mut(pt::name(m.packet_type)),
            ) {
                obj.insert("properties".into(), v);
            }
        }
    }
    if rec.mid_stream_guess {
        o.insert("mid_stream_guess".into(), json!(true));
    }
    Value::Object(o)
}
