//! The EVE `dicom` object (field by field in README's "DICOM records"), as
//! `Serialize` types borrowing from the [`Record`].
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
//! knows it). Which values are sensitive is said here — patient attributes
//! (the `phi` column of [`super::dataset::kept`]), passcodes, identity
//! tokens, the server's identity response —, how they are written is
//! [`crate::output::mask`]'s one policy. Logged strings are capped at
//! [`MAX_STRING`] characters (a masked value's length and tag are those of
//! the whole value).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

use super::dataset::kept;
use super::uid;
use super::{
    Association, Command, DataSet, Exchange, Message, Outcome, PresentationContext, Record,
    UserIdentity, UserInfo,
};
use crate::flow::Direction;
use crate::output::mask::{display_bytes, LogOptions, Sensitive};

/// Longest string logged, in characters.
pub const MAX_STRING: usize = 1024;

/// `s` cut to [`MAX_STRING`] characters.
fn cap(s: &str) -> &str {
    // No more characters than bytes: the common short string is not
    // walked character by character (every UID of a record comes here).
    if s.len() <= MAX_STRING {
        return s;
    }
    match s.char_indices().nth(MAX_STRING) {
        Some((i, _)) => s.get(..i).unwrap_or(s),
        None => s,
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The EVE `dicom` object of a record.
pub struct Logged<'a> {
    pub rec: &'a Record,
    pub opts: &'a LogOptions,
}

impl Serialize for Logged<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let opts = self.opts;
        match self.rec {
            Record::Association(a) => RecordLog {
                kind: "association",
                association: Some(AssociationLog::new(a, opts)),
                dimse: None,
                answer_lost: a.answer_lost,
            },
            Record::Dimse(e) => RecordLog {
                kind: "dimse",
                association: None,
                dimse: Some(ExchangeLog::new(e, opts)),
                answer_lost: e.answer_lost,
            },
        }
        .serialize(s)
    }
}

#[derive(Serialize)]
struct RecordLog<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    association: Option<AssociationLog<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimse: Option<ExchangeLog<'a>>,
    #[serde(skip_serializing_if = "is_false")]
    answer_lost: bool,
}

/// `{"uid": …, "name": …}`.
#[derive(Serialize)]
struct UidLog<'a> {
    uid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'static str>,
}

fn uid_log(u: &str) -> UidLog<'_> {
    UidLog {
        uid: cap(u),
        name: uid::name(u),
    }
}

fn uid_opt(u: &Option<String>) -> Option<UidLog<'_>> {
    u.as_deref().map(uid_log)
}

fn dir_name(d: Direction) -> &'static str {
    match d {
        Direction::ToServer => "toserver",
        Direction::ToClient => "toclient",
    }
}

#[derive(Serialize)]
struct AssociationLog<'a> {
    calling_ae_title: &'a str,
    called_ae_title: &'a str,
    protocol_version: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    application_context: Option<UidLog<'a>>,
    presentation_contexts: ContextsLog<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<UserInfoLog<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<UserInfoLog<'a>>,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reject: Option<RejectLog>,
    #[serde(skip_serializing_if = "Option::is_none")]
    abort: Option<AbortLog>,
    release_requested: bool,
    exchanges: u32,
}

impl<'a> AssociationLog<'a> {
    fn new(a: &'a Association, opts: &'a LogOptions) -> Self {
        AssociationLog {
            calling_ae_title: cap(&a.calling_ae_title),
            called_ae_title: cap(&a.called_ae_title),
            protocol_version: a.protocol_version,
            application_context: uid_opt(&a.application_context),
            presentation_contexts: ContextsLog(&a.presentation_contexts),
            request: a.request.as_ref().map(|u| UserInfoLog::new(u, opts)),
            response: a.response.as_ref().map(|u| UserInfoLog::new(u, opts)),
            outcome: match a.outcome {
                Outcome::Incomplete => "incomplete",
                Outcome::Rejected => "rejected",
                Outcome::Released => "released",
                Outcome::Aborted => "aborted",
            },
            reject: a.reject.map(|rj| RejectLog {
                result: rj.result,
                result_name: uid::reject_result_name(rj.result),
                source: rj.source,
                source_name: uid::reject_source_name(rj.source),
                reason: rj.reason,
                reason_name: uid::reject_reason_name(rj.source, rj.reason),
            }),
            abort: a.abort.map(|(ab, d)| AbortLog {
                source: ab.source,
                source_name: uid::abort_source_name(ab.source),
                reason: ab.reason,
                reason_name: uid::abort_reason_name(ab.source, ab.reason),
                direction: dir_name(d),
            }),
            release_requested: a.release_requested,
            exchanges: a.exchanges,
        }
    }
}

#[derive(Serialize)]
struct PresentationContextLog<'a> {
    id: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    abstract_syntax: Option<UidLog<'a>>,
    #[serde(skip_serializing_if = "UidsLog::is_empty")]
    transfer_syntaxes: UidsLog<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result_name: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accepted_transfer_syntax: Option<UidLog<'a>>,
}

impl<'a> PresentationContextLog<'a> {
    fn new(p: &'a PresentationContext) -> Self {
        PresentationContextLog {
            id: p.id,
            abstract_syntax: uid_opt(&p.abstract_syntax),
            transfer_syntaxes: UidsLog(&p.transfer_syntaxes),
            result: p.result,
            result_name: p.result.map(uid::pctx_result_name),
            accepted_transfer_syntax: uid_opt(&p.accepted_transfer_syntax),
        }
    }
}

/// The presentation contexts, each made into its log as it is written: an
/// association proposes up to 128, and collecting their logs (with a
/// vector of transfer syntaxes each) first cost 129 allocations per
/// association record for nothing.
struct ContextsLog<'a>(&'a [PresentationContext]);

impl Serialize for ContextsLog<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(PresentationContextLog::new))
    }
}

/// UIDs written as [`UidLog`]s as they are written (see [`ContextsLog`]).
struct UidsLog<'a>(&'a [String]);

impl UidsLog<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for UidsLog<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|u| uid_log(u)))
    }
}

#[derive(Serialize)]
struct RejectLog {
    result: u8,
    result_name: &'static str,
    source: u8,
    source_name: &'static str,
    reason: u8,
    reason_name: &'static str,
}

#[derive(Serialize)]
struct AbortLog {
    source: u8,
    source_name: &'static str,
    reason: u8,
    reason_name: &'static str,
    direction: &'static str,
}

#[derive(Serialize)]
struct UserInfoLog<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_pdu_length: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    implementation_class_uid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    implementation_version_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    async_ops_window: Option<AsyncOpsLog>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    role_selections: Vec<RoleSelectionLog<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sop_class_extended: Vec<SopExtendedLog<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sop_class_common_extended: Vec<CommonExtendedLog<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_identity: Option<UserIdentityLog<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_identity_server_response: Option<Value<'a>>,
}

impl<'a> UserInfoLog<'a> {
    fn new(u: &'a UserInfo, opts: &'a LogOptions) -> Self {
        UserInfoLog {
            max_pdu_length: u.max_pdu_length,
            implementation_class_uid: u.implementation_class_uid.as_deref().map(cap),
            implementation_version_name: u.implementation_version_name.as_deref().map(cap),
            async_ops_window: u
                .async_ops_window
                .map(|(invoked, performed)| AsyncOpsLog { invoked, performed }),
            role_selections: u
                .role_selections
                .iter()
                .map(|r| RoleSelectionLog {
                    sop_class: uid_log(&r.sop_class_uid),
                    scu_role: r.scu_role,
                    scp_role: r.scp_role,
                })
                .collect(),
            sop_class_extended: u
                .sop_class_extended
                .iter()
                .map(|(s, n)| SopExtendedLog {
                    sop_class: uid_log(s),
                    info_length: *n,
                })
                .collect(),
            sop_class_common_extended: u
                .sop_class_common_extended
                .iter()
                .map(|c| CommonExtendedLog {
                    sop_class: uid_log(&c.sop_class_uid),
                    service_class_uid: cap(&c.service_class_uid),
                    related_general_sop_classes: c
                        .related_general_sop_classes
                        .iter()
                        .map(|r| uid_log(r))
                        .collect(),
                })
                .collect(),
            user_identity: u
                .user_identity
                .as_ref()
                .map(|id| UserIdentityLog::new(id, opts)),
            user_identity_server_response: u
                .user_identity_server_response
                .as_deref()
                .map(|r| sensitive(opts, r)),
        }
    }
}

#[derive(Serialize)]
struct AsyncOpsLog {
    invoked: u16,
    performed: u16,
}

#[derive(Serialize)]
struct RoleSelectionLog<'a> {
    sop_class: UidLog<'a>,
    scu_role: u8,
    scp_role: u8,
}

#[derive(Serialize)]
struct SopExtendedLog<'a> {
    sop_class: UidLog<'a>,
    info_length: usize,
}

#[derive(Serialize)]
struct CommonExtendedLog<'a> {
    sop_class: UidLog<'a>,
    service_class_uid: &'a str,
    related_general_sop_classes: Vec<UidLog<'a>>,
}

#[derive(Serialize)]
struct UserIdentityLog<'a> {
    #[serde(rename = "type")]
    identity_type: u8,
    type_name: &'static str,
    positive_response_requested: bool,
    primary_field: Value<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secondary_field: Option<Value<'a>>,
}

impl<'a> UserIdentityLog<'a> {
    fn new(id: &'a UserIdentity, opts: &'a LogOptions) -> Self {
        UserIdentityLog {
            identity_type: id.identity_type,
            type_name: uid::user_identity_type_name(id.identity_type),
            positive_response_requested: id.positive_response_requested,
            // A username is logged like MQTT's; a Kerberos ticket, SAML
            // assertion or JWT is a credential.
            primary_field: if matches!(id.identity_type, 1 | 2) {
                Value::Text(display_bytes(&id.primary_field))
            } else {
                sensitive(opts, &id.primary_field)
            },
            secondary_field: (!id.secondary_field.is_empty())
                .then(|| sensitive(opts, &id.secondary_field)),
        }
    }
}

/// A sensitive value: masked (over the whole value), or with `unmask` in
/// clear and capped like any logged string.
fn sensitive<'a>(opts: &'a LogOptions, value: &'a [u8]) -> Value<'a> {
    if opts.unmask {
        Value::Text(display_bytes(value))
    } else {
        Value::Sensitive(opts.sensitive(value))
    }
}

/// A string value: in clear (capped), or masked.
enum Value<'a> {
    Text(Cow<'a, str>),
    Sensitive(Sensitive<'a>),
}

impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Text(t) => s.serialize_str(cap(t)),
            Value::Sensitive(v) => v.serialize(s),
        }
    }
}

#[derive(Serialize)]
struct ExchangeLog<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<&'static str>,
    calling_ae_title: &'a str,
    called_ae_title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    presentation_context_id: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sop_class: Option<UidLog<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_direction: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<MessageLog<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<MessageLog<'a>>,
    #[serde(skip_serializing_if = "is_zero")]
    pending_responses: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pending: Vec<MessageLog<'a>>,
    #[serde(skip_serializing_if = "is_false")]
    cancelled: bool,
}

impl<'a> ExchangeLog<'a> {
    fn new(e: &'a Exchange, opts: &'a LogOptions) -> Self {
        let any = e.request.as_ref().or(e.response.as_ref());
        let sop = any
            .and_then(|x| {
                x.command
                    .affected_sop_class_uid
                    .as_deref()
                    .or(x.command.requested_sop_class_uid.as_deref())
            })
            .or(e.abstract_syntax.as_deref());
        ExchangeLog {
            command: any.and_then(|x| uid::service_name(x.command.command_field & 0x7FFF)),
            calling_ae_title: cap(&e.calling_ae_title),
            called_ae_title: cap(&e.called_ae_title),
            presentation_context_id: any.map(|x| x.presentation_context_id),
            sop_class: sop.map(uid_log),
            request_direction: e.request_dir.map(dir_name),
            request: e.request.as_ref().map(|x| MessageLog::new(x, opts)),
            response: e.response.as_ref().map(|x| MessageLog::new(x, opts)),
            pending_responses: e.pending_responses,
            pending: e.pending.iter().map(|x| MessageLog::new(x, opts)).collect(),
            cancelled: e.cancelled,
        }
    }
}

/// A DIMSE message: its command set's fields, then its data set.
#[derive(Serialize)]
struct MessageLog<'a> {
    command_field: Cow<'static, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id_responded_to: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    affected_sop_class: Option<UidLog<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    requested_sop_class: Option<UidLog<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    affected_sop_instance_uid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    requested_sop_instance_uid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_set_type: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_category: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_meaning: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_comment: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    move_destination: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    move_originator_ae_title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    move_originator_message_id: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_type_id: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action_type_id: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remaining_sub_operations: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed_sub_operations: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failed_sub_operations: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warning_sub_operations: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_set: Option<DataSetLog<'a>>,
}

impl<'a> MessageLog<'a> {
    fn new(x: &'a Message, opts: &'a LogOptions) -> Self {
        let c: &'a Command = &x.command;
        let [remaining, completed, failed, warning] = c.sub_operations;
        MessageLog {
            command_field: match uid::command_name(c.command_field) {
                Some(n) => Cow::Borrowed(n),
                None => Cow::Owned(format!("0x{:04x}", c.command_field)),
            },
            message_id: c.message_id,
            message_id_responded_to: c.message_id_responded_to,
            affected_sop_class: uid_opt(&c.affected_sop_class_uid),
            requested_sop_class: uid_opt(&c.requested_sop_class_uid),
            affected_sop_instance_uid: c.affected_sop_instance_uid.as_deref().map(cap),
            requested_sop_instance_uid: c.requested_sop_instance_uid.as_deref().map(cap),
            priority: c.priority.map(|p| match p {
                0 => "medium",
                1 => "high",
                2 => "low",
                _ => "invalid",
            }),
            data_set_type: c.data_set_type,
            status: c.status,
            status_category: c.status.map(uid::status_category),
            status_meaning: c.status.and_then(uid::status_meaning),
            error_comment: c.error_comment.as_deref().map(cap),
            move_destination: c.move_destination.as_deref().map(cap),
            move_originator_ae_title: c.move_originator_ae_title.as_deref().map(cap),
            move_originator_message_id: c.move_originator_message_id,
            event_type_id: c.event_type_id,
            action_type_id: c.action_type_id,
            remaining_sub_operations: remaining,
            completed_sub_operations: completed,
            failed_sub_operations: failed,
            warning_sub_operations: warning,
            data_set: x.data_set.as_ref().map(|d| DataSetLog::new(d, opts)),
        }
    }
}

#[derive(Serialize)]
struct DataSetLog<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    transfer_syntax: Option<UidLog<'a>>,
    #[serde(skip_serializing_if = "is_false")]
    transfer_syntax_guessed: bool,
    length: u64,
    pixel_data_skipped: bool,
    #[serde(skip_serializing_if = "is_false")]
    incomplete: bool,
    /// By name; a tag kept twice (first and latest occurrence) shows its
    /// latest value.
    attributes: BTreeMap<&'static str, Value<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    truncated: Vec<&'static str>,
    #[serde(skip_serializing_if = "is_zero")]
    attributes_dropped: u32,
}

impl<'a> DataSetLog<'a> {
    fn new(d: &'a DataSet, opts: &'a LogOptions) -> Self {
        let mut attributes = BTreeMap::new();
        let mut truncated = Vec::new();
        for a in &d.attributes {
            let Some((_, name, phi)) = kept(a.tag) else {
                continue;
            };
            if a.truncated {
                truncated.push(*name);
                continue;
            }
            let v = if *phi {
                sensitive(opts, a.value.as_bytes())
            } else {
                Value::Text(Cow::Borrowed(&a.value))
            };
            attributes.insert(*name, v);
        }
        DataSetLog {
            transfer_syntax: uid_opt(&d.transfer_syntax),
            transfer_syntax_guessed: d.transfer_syntax_guessed,
            length: d.length,
            pixel_data_skipped: d.pixel_data_skipped,
            incomplete: d.incomplete,
            attributes,
            truncated,
            attributes_dropped: d.attributes_dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::dicom::{Attribute, UserIdentity};
    use crate::output::mask::MaskKey;

    fn json(rec: &Record, opts: &LogOptions) -> serde_json::Value {
        serde_json::to_value(Logged { rec, opts }).unwrap()
    }

    /// A C-STORE request with a patient name, a modality and an over-long
    /// value (hand-built: the record, not wire bytes).
    fn store() -> Record {
        let attr = |tag, value: &str, truncated| Attribute {
            tag,
            value: value.to_string(),
            truncated,
        };
        Record::Dimse(Box::new(Exchange {
            calling_ae_title: "MODALITY1".into(),
            called_ae_title: "PACS".into(),
            request: Some(Message {
                presentation_context_id: 1,
                command: Command {
                    command_field: 0x0001,
                    message_id: Some(7),
                    ..Command::default()
                },
                data_set: Some(DataSet {
                    attributes: vec![
                        attr(0x0010_0010, "TEST^JANE", false),
                        attr(0x0008_0060, "CT", false),
                        attr(0x0010_0020, "", true),
                    ],
                    length: 100,
                    ..DataSet::default()
                }),
            }),
            ..Exchange::default()
        }))
    }

    #[test]
    fn patient_attributes_follow_the_one_masking_policy() {
        let o = LogOptions::masked(MaskKey::from_secret(b"0123456789abcdef"));
        let v = json(&store(), &o);
        let ds = &v["dimse"]["request"]["data_set"];
        assert_eq!(ds["attributes"]["patient_name"], o.mask(b"TEST^JANE"));
        assert_eq!(ds["attributes"]["modality"], "CT");
        assert_eq!(ds["truncated"], serde_json::json!(["patient_id"]));
        assert_eq!(v["type"], "dimse");
        assert_eq!(v["dimse"]["request"]["command_field"], "C-STORE-RQ");
        assert_eq!(v["dimse"]["command"], "C-STORE");
        assert!(v.get("answer_lost").is_none());
        let full = json(&store(), &LogOptions::unmasked());
        assert_eq!(
            full["dimse"]["request"]["data_set"]["attributes"]["patient_name"],
            "TEST^JANE"
        );
    }

    #[test]
    fn tokens_and_passcodes_are_masked_usernames_are_not() {
        let o = LogOptions::masked(MaskKey::from_secret(b"0123456789abcdef"));
        let rec = |identity_type, primary: &[u8], secondary: &[u8]| {
            Record::Association(Box::new(Association {
                request: Some(UserInfo {
                    user_identity: Some(UserIdentity {
                        identity_type,
                        positive_response_requested: true,
                        primary_field: primary.to_vec(),
                        secondary_field: secondary.to_vec(),
                    }),
                    ..UserInfo::default()
                }),
                response: Some(UserInfo {
                    user_identity_server_response: Some(b"token".to_vec()),
                    ..UserInfo::default()
                }),
                ..Association::default()
            }))
        };
        let v = json(&rec(2, b"radiology", b"Radiology123!"), &o);
        let id = &v["association"]["request"]["user_identity"];
        assert_eq!(id["primary_field"], "radiology");
        assert_eq!(id["secondary_field"], o.mask(b"Radiology123!"));
        assert_eq!(
            v["association"]["response"]["user_identity_server_response"],
            o.mask(b"token")
        );
        let jwt = json(&rec(5, b"eyJhbGciOiJub25l", b""), &o);
        let id = &jwt["association"]["request"]["user_identity"];
        assert_eq!(id["primary_field"], o.mask(b"eyJhbGciOiJub25l"));
        assert!(id.get("secondary_field").is_none());
        // A non-UTF-8 username follows the one rule.
        let odd = json(&rec(1, b"r\xe9mi", b""), &o);
        assert_eq!(
            odd["association"]["request"]["user_identity"]["primary_field"],
            "r\\xe9mi"
        );
    }

    #[test]
    fn cap_counts_characters_at_the_limit() {
        // The character walk the short-string shortcut must agree with.
        let reference =
            |s: &str| -> usize { s.char_indices().nth(MAX_STRING).map_or(s.len(), |(i, _)| i) };
        for n in [0, 1, MAX_STRING - 1, MAX_STRING, MAX_STRING + 1] {
            for unit in ["A", "é", "€", "😀"] {
                let s = unit.repeat(n);
                assert_eq!(cap(&s).len(), reference(&s), "{n} × {unit:?}");
                assert_eq!(cap(&s).chars().count(), n.min(MAX_STRING));
            }
        }
        // Bytes past the limit, characters not: kept whole.
        let s = "é".repeat(MAX_STRING);
        assert!(s.len() > MAX_STRING);
        assert_eq!(cap(&s), s);
    }

    #[test]
    fn logged_strings_are_capped_but_masks_cover_the_whole_value() {
        let long = "A".repeat(MAX_STRING + 10);
        assert_eq!(cap(&long).len(), MAX_STRING);
        assert_eq!(cap("é").len(), 2);
        let o = LogOptions::masked(MaskKey::from_secret(b"0123456789abcdef"));
        let Record::Dimse(mut e) = store() else {
            unreachable!()
        };
        if let Some(ds) = e.request.as_mut().and_then(|m| m.data_set.as_mut()) {
            ds.attributes[0].value = long.clone();
            ds.attributes[1].value = long.clone();
        }
        let rec = Record::Dimse(e);
        let v = json(&rec, &o);
        let attrs = &v["dimse"]["request"]["data_set"]["attributes"];
        assert_eq!(attrs["patient_name"], o.mask(long.as_bytes()));
        assert_eq!(attrs["modality"].as_str().unwrap().len(), MAX_STRING);
        let v = json(&rec, &LogOptions::unmasked());
        let attrs = &v["dimse"]["request"]["data_set"]["attributes"];
        assert_eq!(attrs["patient_name"].as_str().unwrap().len(), MAX_STRING);
    }
}
