//! The EVE `dicom` object (field by field in README's "DICOM records").
//!
//! Two shapes, told apart by `type`:
//! - `association`: AE titles, application context, presentation contexts
//!   with their results, the user information of the request and of the
//!   response, and how it ended (`outcome`, `reject`, `abort`).
//! - `dimse`: one request with its final response — command, message ids,
//!   SOP class, status with its category and meaning, sub-operation counts
//!   and the kept attributes of the data sets (C-FIND query keys in the
//!   request, matches in the `pending` responses).
//!
//! Both carry `"answer_lost": true` at the top of the object when the
//! direction their answer travels in had a gap while it was awaited.
//!
//! UIDs are logged as `{"uid": …, "name": …}` (`name` when the standard
//! knows it). Patient data, passcodes and identity tokens are masked unless
//! [`LogOptions::unmask`]: see [`mask`]. Logged strings are capped at
//! [`MAX_STRING`] characters.

use serde_json::{json, Map, Value};

use super::dataset::kept;
use super::uid;
use super::{Association, Command, DataSet, Exchange, Message, Outcome, Record, UserInfo};
use crate::app::LogOptions;
use crate::flow::Direction;

/// Longest string logged, in characters.
pub const MAX_STRING: usize = 1024;

/// A sensitive value as logged: in full with `unmask`, otherwise its length
/// kept and its characters replaced by `*`, the first two shown when it has
/// more than four (`TEST^JANE` → `TE*******`).
pub fn mask(s: &str, opts: &LogOptions) -> String {
    if opts.unmask {
        return cap(s);
    }
    let n = s.chars().count();
    let shown = if n > 4 { 2 } else { 0 };
    s.chars()
        .take(MAX_STRING)
        .enumerate()
        .map(|(i, c)| if i < shown { c } else { '*' })
        .collect()
}

fn cap(s: &str) -> String {
    s.chars().take(MAX_STRING).collect()
}

fn uid_obj(u: &str) -> Value {
    let mut m = Map::new();
    m.insert("uid".into(), Value::from(cap(u)));
    if let Some(n) = uid::name(u) {
        m.insert("name".into(), Value::from(n));
    }
    Value::Object(m)
}

fn put<T: Into<Value>>(m: &mut Map<String, Value>, k: &str, v: Option<T>) {
    if let Some(v) = v {
        m.insert(k.to_string(), v.into());
    }
}

fn dir_name(d: Direction) -> &'static str {
    match d {
        Direction::ToServer => "toserver",
        Direction::ToClient => "toclient",
    }
}

/// The EVE `dicom` object of a record.
pub fn record(r: &Record, opts: &LogOptions) -> Value {
    match r {
        Record::Association(a) => {
            let mut v = json!({"type": "association", "association": association(a, opts)});
            if a.answer_lost {
                v["answer_lost"] = true.into();
            }
            v
        }
        Record::Dimse(e) => {
            let mut v = json!({"type": "dimse", "dimse": exchange(e, opts)});
            if e.answer_lost {
                v["answer_lost"] = true.into();
            }
            v
        }
    }
}

fn association(a: &Association, opts: &LogOptions) -> Value {
    let mut m = Map::new();
    m.insert("calling_ae_title".into(), cap(&a.calling_ae_title).into());
    m.insert("called_ae_title".into(), cap(&a.called_ae_title).into());
    m.insert("protocol_version".into(), a.protocol_version.into());
    put(
        &mut m,
        "application_context",
        a.application_context.as_deref().map(uid_obj),
    );
    let pcs: Vec<Value> = a
        .presentation_contexts
        .iter()
        .map(|p| {
            let mut o = Map::new();
            o.insert("id".into(), p.id.into());
            put(
                &mut o,
                "abstract_syntax",
                p.abstract_syntax.as_deref().map(uid_obj),
            );
            if !p.transfer_syntaxes.is_empty() {
                let ts: Vec<Value> = p.transfer_syntaxes.iter().map(|t| uid_obj(t)).collect();
                o.insert("transfer_syntaxes".into(), ts.into());
            }
            if let Some(r) = p.result {
                o.insert("result".into(), r.into());
                o.insert("result_name".into(), uid::pctx_result_name(r).into());
            }
            put(
                &mut o,
                "accepted_transfer_syntax",
                p.accepted_transfer_syntax.as_deref().map(uid_obj),
            );
            Value::Object(o)
        })
        .collect();
    m.insert("presentation_contexts".into(), pcs.into());
    put(
        &mut m,
        "request",
        a.request.as_ref().map(|u| user_info(u, opts)),
    );
    put(
        &mut m,
        "response",
        a.response.as_ref().map(|u| user_info(u, opts)),
    );
    let outcome = match a.outcome {
        Outcome::Incomplete => "incomplete",
        Outcome::Rejected => "rejected",
        Outcome::Released => "released",
        Outcome::Aborted => "aborted",
    };
    m.insert("outcome".into(), outcome.into());
    if let Some(rj) = a.reject {
        m.insert(
            "reject".into(),
            json!({
                "result": rj.result,
                "result_name": uid::reject_result_name(rj.result),
                "source": rj.source,
                "source_name": uid::reject_source_name(rj.source),
                "reason": rj.reason,
                "reason_name": uid::reject_reason_name(rj.source, rj.reason),
            }),
        );
    }
    if let Some((ab, d)) = a.abort {
        m.insert(
            "abort".into(),
            json!({
                "source": ab.source,
                "source_name": uid::abort_source_name(ab.source),
                "reason": ab.reason,
                "reason_name": uid::abort_reason_name(ab.source, ab.reason),
                "direction": dir_name(d),
            }),
        );
    }
    m.insert("release_requested".into(), a.release_requested.into());
    m.insert("exchanges".into(), a.exchanges.into());
    Value::Object(m)
}

fn user_info(u: &UserInfo, opts: &LogOptions) -> Value {
    let mut m = Map::new();
    put(&mut m, "max_pdu_length", u.max_pdu_length);
    put(
        &mut m,
        "implementation_class_uid",
        u.implementation_class_uid.as_deref().map(cap),
    );
    put(
        &mut m,
        "implementation_version_name",
        u.implementation_version_name.as_deref().map(cap),
    );
    if let Some((i, p)) = u.async_ops_window {
        m.insert(
            "async_ops_window".into(),
            json!({"invoked": i, "performed": p}),
        );
    }
    if !u.role_selections.is_empty() {
        let v: Vec<Value> = u
            .role_selections
            .iter()
            .map(|r| json!({"sop_class": uid_obj(&r.sop_class_uid), "scu_role": r.scu_role, "scp_role": r.scp_role}))
            .collect();
        m.insert("role_selections".into(), v.into());
    }
    if !u.sop_class_extended.is_empty() {
        let v: Vec<Value> = u
            .sop_class_extended
            .iter()
            .map(|(s, n)| json!({"sop_class": uid_obj(s), "info_length": n}))
            .collect();
        m.insert("sop_class_extended".into(), v.into());
    }
    if !u.sop_class_common_extended.is_empty() {
        let v: Vec<Value> = u
            .sop_class_common_extended
            .iter()
            .map(|c| {
                json!({
                    "sop_class": uid_obj(&c.sop_class_uid),
                    "service_class_uid": cap(&c.service_class_uid),
                    "related_general_sop_classes":
                        c.related_general_sop_classes.iter().map(|r| uid_obj(r)).collect::<Vec<_>>(),
                })
            })
            .collect();
        m.insert("sop_class_common_extended".into(), v.into());
    }
    if let Some(id) = &u.user_identity {
        let primary = String::from_utf8_lossy(&id.primary_field);
        let mut o = Map::new();
        o.insert("type".into(), id.identity_type.into());
        o.insert(
            "type_name".into(),
            uid::user_identity_type_name(id.identity_type).into(),
        );
        o.insert(
            "positive_response_requested".into(),
            id.positive_response_requested.into(),
        );
        // A username is logged like MQTT's; a Kerberos ticket, SAML
        // assertion or JWT is a credential and masked.
        let p = if matches!(id.identity_type, 1 | 2) {
            cap(&primary)
        } else {
            mask(&primary, opts)
        };
        o.insert("primary_field".into(), p.into());
        if !id.secondary_field.is_empty() {
            let s = String::from_utf8_lossy(&id.secondary_field);
            o.insert("secondary_field".into(), mask(&s, opts).into());
        }
        m.insert("user_identity".into(), Value::Object(o));
    }
    if let Some(r) = &u.user_identity_server_response {
        let s = String::from_utf8_lossy(r);
        m.insert(
            "user_identity_server_response".into(),
            mask(&s, opts).into(),
        );
    }
    Value::Object(m)
}

fn exchange(e: &Exchange, opts: &LogOptions) -> Value {
    let mut m = Map::new();
    let any = e.request.as_ref().or(e.response.as_ref());
    let field = any.map(|x| x.command.command_field & 0x7FFF);
    put(&mut m, "command", field.and_then(uid::service_name));
    m.insert("calling_ae_title".into(), cap(&e.calling_ae_title).into());
    m.insert("called_ae_title".into(), cap(&e.called_ae_title).into());
    put(
        &mut m,
        "presentation_context_id",
        any.map(|x| x.presentation_context_id),
    );
    let sop = any
        .and_then(|x| {
            x.command
                .affected_sop_class_uid
                .clone()
                .or_else(|| x.command.requested_sop_class_uid.clone())
        })
        .or_else(|| e.abstract_syntax.clone());
    put(&mut m, "sop_class", sop.as_deref().map(uid_obj));
    put(&mut m, "request_direction", e.request_dir.map(dir_name));
    put(
        &mut m,
        "request",
        e.request.as_ref().map(|x| message(x, opts)),
    );
    put(
        &mut m,
        "response",
        e.response.as_ref().map(|x| message(x, opts)),
    );
    if e.pending_responses > 0 {
        m.insert("pending_responses".into(), e.pending_responses.into());
    }
    if !e.pending.is_empty() {
        let v: Vec<Value> = e.pending.iter().map(|x| message(x, opts)).collect();
        m.insert("pending".into(), v.into());
    }
    if e.cancelled {
        m.insert("cancelled".into(), true.into());
    }
    Value::Object(m)
}

fn message(x: &Message, opts: &LogOptions) -> Value {
    let mut m = command(&x.command);
    if let Some(d) = &x.data_set {
        m.insert("data_set".into(), data_set(d, opts));
    }
    Value::Object(m)
}

fn command(c: &Command) -> Map<String, Value> {
    let mut m = Map::new();
    let name = uid::command_name(c.command_field)
        .map(str::to_string)
        .unwrap_or_else(|| format!("0x{:04x}", c.command_field));
    m.insert("command_field".into(), name.into());
    put(&mut m, "message_id", c.message_id);
    put(&mut m, "message_id_responded_to", c.message_id_responded_to);
    put(
        &mut m,
        "affected_sop_class",
        c.affected_sop_class_uid.as_deref().map(uid_obj),
    );
    put(
        &mut m,
        "requested_sop_class",
        c.requested_sop_class_uid.as_deref().map(uid_obj),
    );
    put(
        &mut m,
        "affected_sop_instance_uid",
        c.affected_sop_instance_uid.as_deref().map(cap),
    );
    put(
        &mut m,
        "requested_sop_instance_uid",
        c.requested_sop_instance_uid.as_deref().map(cap),
    );
    put(
        &mut m,
        "priority",
        c.priority.map(|p| match p {
            0 => "medium",
            1 => "high",
            2 => "low",
            _ => "invalid",
        }),
    );
    put(&mut m, "data_set_type", c.data_set_type);
    if let Some(s) = c.status {
        m.insert("status".into(), s.into());
        m.insert("status_category".into(), uid::status_category(s).into());
        put(&mut m, "status_meaning", uid::status_meaning(s));
    }
    put(&mut m, "error_comment", c.error_comment.as_deref().map(cap));
    put(
        &mut m,
        "move_destination",
        c.move_destination.as_deref().map(cap),
    );
    put(
        &mut m,
        "move_originator_ae_title",
        c.move_originator_ae_title.as_deref().map(cap),
    );
    put(
        &mut m,
        "move_originator_message_id",
        c.move_originator_message_id,
    );
    put(&mut m, "event_type_id", c.event_type_id);
    put(&mut m, "action_type_id", c.action_type_id);
    for (k, v) in [
        "remaining_sub_operations",
        "completed_sub_operations",
        "failed_sub_operations",
        "warning_sub_operations",
    ]
    .iter()
    .zip(c.sub_operations)
    {
        put(&mut m, k, v);
    }
    m
}

fn data_set(d: &DataSet, opts: &LogOptions) -> Value {
    let mut m = Map::new();
    put(
        &mut m,
        "transfer_syntax",
        d.transfer_syntax.as_deref().map(uid_obj),
    );
    if d.transfer_syntax_guessed {
        m.insert("transfer_syntax_guessed".into(), true.into());
    }
    m.insert("length".into(), d.length.into());
    m.insert("pixel_data_skipped".into(), d.pixel_data_skipped.into());
    if d.incomplete {
        m.insert("incomplete".into(), true.into());
    }
    let mut attrs = Map::new();
    let mut truncated = Vec::new();
    for a in &d.attributes {
        let Some((_, name, phi)) = kept(a.tag) else {
            continue;
        };
        if a.truncated {
            truncated.push(Value::from(*name));
            continue;
        }
        let v = if *phi {
            mask(&a.value, opts)
        } else {
            cap(&a.value)
        };
        attrs.insert((*name).to_string(), v.into());
    }
    m.insert("attributes".into(), Value::Object(attrs));
    if !truncated.is_empty() {
        m.insert("truncated".into(), truncated.into());
    }
    if d.attributes_dropped > 0 {
        m.insert("attributes_dropped".into(), d.attributes_dropped.into());
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_keeps_length_and_a_short_prefix() {
        let o = LogOptions::default();
        assert_eq!(mask("TEST^JANE", &o), "TE*******");
        assert_eq!(mask("F", &o), "*");
        assert_eq!(mask("", &o), "");
        assert_eq!(mask("TEST^JANE", &LogOptions { unmask: true }), "TEST^JANE");
    }
}
