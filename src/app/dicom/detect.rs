//! Rule keywords of dicom: pure predicates and sticky buffers over a
//! [`Record`] (an association or a DIMSE exchange). The names are ours, in
//! the style of Suricata's protocol keywords; the fields are those of the
//! Upper Layer protocol (PS3.8 §9.3), DIMSE command sets (PS3.7 §9, §10,
//! Annex C for statuses, Annex D.3.3.7 for user identity) and the data sets
//! the decoder keeps (PS3.5, [`super::dataset::KEPT`]).
//!
//! Contract with the rule engine: [`keyword`] is asked for every option
//! name of a rule; `None` means "not one of mine". A [`Buffer`] yields the
//! byte strings that following `content`/`pcre`/`dataset` options match
//! (several for multi-buffers: a content group matches when one instance
//! matches all of it); a [`Predicate`] is true or false on a record.
//!
//! Sticky buffers (no value unless shown; an empty field yields no
//! instance, as Suricata's buffers do):
//! - `dicom.calling_ae`, `dicom.called_ae`: AE titles, trailing spaces
//!   removed (associations and exchanges).
//! - `dicom.sop_class`: association: every proposed abstract syntax UID
//!   (multi-buffer); exchange: the request's Affected (0000,0002), else
//!   Requested (0000,0003) SOP Class UID, else the abstract syntax of the
//!   presentation context used.
//! - `dicom.accepted_sop_class`: association: the abstract syntax of every
//!   context the acceptor accepted (result 0).
//! - `dicom.username`: association: the user identity primary field
//!   (PS3.7 D.3.3.7.1) when the identity type is 1 (username) or 2
//!   (username and passcode).
//! - `dicom.passcode`: association: the secondary field of identity type 2.
//! - `dicom.implementation_version`, `dicom.implementation_class_uid`:
//!   association: the requester's implementation version name (0x55) and
//!   class UID (0x52) sub-items.
//! - `dicom.move_destination`: exchange: Move Destination (0000,0600) of
//!   the C-MOVE request.
//! - `dicom.attr:<Keyword|gggg,eeee|(gggg,eeee)>`: exchange: the value of
//!   that attribute in every data set of the exchange (request, final
//!   response, kept pending responses), as decoded text. Keywords are the
//!   standard data dictionary's (`PatientName`, case as in PS3.6); an
//!   unknown keyword, or an attribute the decoder does not keep, is an
//!   error (such a rule could never match).
//!
//! Predicates (lists are "any of"):
//! - `dicom.association:<accepted|rejected|released|aborted|incomplete>[,…]`:
//!   association records only. `accepted`: an A-ASSOCIATE-AC was seen and
//!   no A-ASSOCIATE-RJ (the association came up, whatever the fate of
//!   its presentation contexts and however it ended); the others: how the
//!   association ended (an accepted association also ends `released`,
//!   `aborted` or `incomplete`).
//! - `dicom.command:<name|number>[,…]`: exchange: the request's command,
//!   `C-STORE`, `C-FIND`, `C-GET`, `C-MOVE`, `C-ECHO`, `C-CANCEL`,
//!   `N-EVENT-REPORT`, `N-GET`, `N-SET`, `N-ACTION`, `N-CREATE`, `N-DELETE`
//!   (any case, `-RQ` optional) or the request's command field number
//!   (`0x0030`); without the request, the response's field with bit 15
//!   cleared. `C-CANCEL` matches an exchange a C-CANCEL-RQ was sent for.
//! - `dicom.status:<uint comparison|success|pending|warning|failure|cancel>`:
//!   exchange: the status (0000,0900) of the final response, compared as a
//!   16-bit unsigned integer or by its PS3.7 Annex C category. The final
//!   response is never pending; `pending` matches an exchange that had
//!   pending responses (C-FIND/C-GET/C-MOVE matches and progress).
//! - `dicom.user_identity:<none|username|username_passcode|kerberos|saml|jwt|number>[,…]`:
//!   association: the user identity type of the A-ASSOCIATE-RQ (`none`:
//!   no user identity sub-item).
//!
//! Keyword names are matched without regard to case, as Suricata does.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_dictionary_std::StandardDataDictionary;

use super::{dataset, uid, Association, Exchange, Outcome, Record, UserIdentity};
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
    CallingAe,
    CalledAe,
    SopClass,
    AcceptedSopClass,
    Username,
    Passcode,
    ImplementationVersion,
    ImplementationClassUid,
    MoveDestination,
    /// `dicom.attr`: (group << 16) | element.
    Attr(u32),
}

/// Buffer keywords without a value, and their names.
const BUFFERS: &[(&str, Buffer)] = &[
    ("dicom.calling_ae", Buffer::CallingAe),
    ("dicom.called_ae", Buffer::CalledAe),
    ("dicom.sop_class", Buffer::SopClass),
    ("dicom.accepted_sop_class", Buffer::AcceptedSopClass),
    ("dicom.username", Buffer::Username),
    ("dicom.passcode", Buffer::Passcode),
    (
        "dicom.implementation_version",
        Buffer::ImplementationVersion,
    ),
    (
        "dicom.implementation_class_uid",
        Buffer::ImplementationClassUid,
    ),
    ("dicom.move_destination", Buffer::MoveDestination),
];

/// User identity types (PS3.7 Table D.3-14).
const USERNAME: u8 = 1;
const USERNAME_PASSCODE: u8 = 2;

/// The user identity sub-item of the A-ASSOCIATE-RQ.
fn identity(a: &Association) -> Option<&UserIdentity> {
    a.request.as_ref()?.user_identity.as_ref()
}

/// The username of identity types 1 and 2.
fn username(a: &Association) -> Option<&[u8]> {
    identity(a)
        .filter(|i| matches!(i.identity_type, USERNAME | USERNAME_PASSCODE))
        .map(|i| i.primary_field.as_slice())
}

/// The passcode of identity type 2.
fn passcode(a: &Association) -> Option<&[u8]> {
    identity(a)
        .filter(|i| i.identity_type == USERNAME_PASSCODE)
        .map(|i| i.secondary_field.as_slice())
}

/// Was the association accepted? An A-ASSOCIATE-AC was seen (the decoder
/// always records the AC's user information then, empty if the AC had
/// none) and the association was not rejected.
pub fn accepted(a: &Association) -> bool {
    a.response.is_some() && a.outcome != Outcome::Rejected && a.reject.is_none()
}

/// The SOP class an exchange is about.
fn exchange_sop_class(e: &Exchange) -> Option<&str> {
    let cmd = e.request.as_ref().map(|m| &m.command);
    cmd.and_then(|c| c.affected_sop_class_uid.as_deref())
        .or_else(|| cmd.and_then(|c| c.requested_sop_class_uid.as_deref()))
        .or(e.abstract_syntax.as_deref())
}

impl RecordBuffer for Buffer {
    type Record = Record;
    fn any<'r>(&self, rec: &'r Record, f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        let mut call = |b: &'r [u8]| !b.is_empty() && f(b);
        let text = |s: &'r Option<String>| s.as_deref().map(str::as_bytes);
        match (rec, self) {
            (Record::Association(a), Buffer::CallingAe) => call(a.calling_ae_title.as_bytes()),
            (Record::Dimse(e), Buffer::CallingAe) => call(e.calling_ae_title.as_bytes()),
            (Record::Association(a), Buffer::CalledAe) => call(a.called_ae_title.as_bytes()),
            (Record::Dimse(e), Buffer::CalledAe) => call(e.called_ae_title.as_bytes()),
            (Record::Association(a), Buffer::SopClass) => a
                .presentation_contexts
                .iter()
                .filter_map(|p| text(&p.abstract_syntax))
                .any(call),
            (Record::Dimse(e), Buffer::SopClass) => {
                exchange_sop_class(e).is_some_and(|s| call(s.as_bytes()))
            }
            (Record::Association(a), Buffer::AcceptedSopClass) => a
                .presentation_contexts
                .iter()
                .filter(|p| p.result == Some(0))
                .filter_map(|p| text(&p.abstract_syntax))
                .any(call),
            (Record::Association(a), Buffer::Username) => username(a).is_some_and(call),
            (Record::Association(a), Buffer::Passcode) => passcode(a).is_some_and(call),
            (Record::Association(a), Buffer::ImplementationVersion) => a
                .request
                .as_ref()
                .and_then(|u| text(&u.implementation_version_name))
                .is_some_and(call),
            (Record::Association(a), Buffer::ImplementationClassUid) => a
                .request
                .as_ref()
                .and_then(|u| text(&u.implementation_class_uid))
                .is_some_and(call),
            (Record::Dimse(e), Buffer::MoveDestination) => e
                .request
                .as_ref()
                .and_then(|m| text(&m.command.move_destination))
                .is_some_and(call),
            (Record::Dimse(e), Buffer::Attr(tag)) => {
                let sets = e
                    .request
                    .iter()
                    .chain(e.response.iter())
                    .chain(e.pending.iter())
                    .filter_map(|m| m.data_set.as_ref());
                for ds in sets {
                    for at in &ds.attributes {
                        // A truncated value was not read: nothing to match.
                        if at.tag == *tag && !at.truncated && call(at.value.as_bytes()) {
                            return true;
                        }
                    }
                }
                false
            }
            _ => false,
        }
    }
}

impl Buffer {
    /// Keyword name, for messages.
    pub fn name(&self) -> &'static str {
        if let Buffer::Attr(_) = self {
            return "dicom.attr";
        }
        BUFFERS
            .iter()
            .find(|(_, b)| b == self)
            .map_or("dicom", |(n, _)| n)
    }
}

/// How an association ended, or that it was accepted: bits of
/// [`Predicate::Association`].
const ASSOCIATION_STATES: &[(&str, u8)] = &[
    ("accepted", 0x01),
    ("rejected", 0x02),
    ("released", 0x04),
    ("aborted", 0x08),
    ("incomplete", 0x10),
];

/// A `dicom.status` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    /// The final response's status compared as an integer.
    Value(UintMatch),
    /// The final response's PS3.7 Annex C category: `success`, `warning`,
    /// `failure`, `cancel` (as [`uid::status_category`] names them).
    Category(&'static str),
    /// Pending responses were seen.
    Pending,
}

/// A predicate keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Predicate {
    /// `dicom.association`: a set of [`ASSOCIATION_STATES`] bits.
    Association(u8),
    /// `dicom.command`: request command fields (0x0FFF for C-CANCEL).
    Command(Vec<u16>),
    /// `dicom.status`.
    Status(StatusMatch),
    /// `dicom.user_identity`: identity types, `None` for no user identity.
    UserIdentity(Vec<Option<u8>>),
}

/// C-CANCEL-RQ command field (PS3.7 §9.3.2.3).
const C_CANCEL: u16 = 0x0FFF;

impl RecordPredicate for Predicate {
    type Record = Record;
    fn matches(&self, rec: &Record) -> bool {
        match (self, rec) {
            (Predicate::Association(bits), Record::Association(a)) => {
                let ended = match a.outcome {
                    Outcome::Rejected => 0x02,
                    Outcome::Released => 0x04,
                    Outcome::Aborted => 0x08,
                    Outcome::Incomplete => 0x10,
                };
                let state = ended | if accepted(a) { 0x01 } else { 0 };
                bits & state != 0
            }
            (Predicate::Command(fields), Record::Dimse(e)) => {
                let field = match (&e.request, &e.response) {
                    (Some(rq), _) => Some(rq.command.command_field),
                    (None, Some(rsp)) => Some(rsp.command.command_field & 0x7FFF),
                    (None, None) => None,
                };
                fields
                    .iter()
                    .any(|f| Some(*f) == field || (*f == C_CANCEL && e.cancelled))
            }
            (Predicate::Status(m), Record::Dimse(e)) => {
                let status = e.response.as_ref().and_then(|r| r.command.status);
                match m {
                    StatusMatch::Value(u) => status.is_some_and(|s| u.matches(u64::from(s))),
                    StatusMatch::Category(c) => {
                        status.is_some_and(|s| uid::status_category(s) == *c)
                    }
                    StatusMatch::Pending => {
                        e.pending_responses > 0
                            || status.is_some_and(|s| uid::status_category(s) == "pending")
                    }
                }
            }
            (Predicate::UserIdentity(types), Record::Association(a)) => {
                let t = identity(a).map(|i| i.identity_type);
                types.contains(&t)
            }
            _ => false,
        }
    }
}

/// The non-empty items of a comma-separated list; at least one.
fn items(v: &str) -> Result<Vec<&str>, String> {
    let l: Vec<&str> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if l.is_empty() {
        Err("empty list".to_string())
    } else {
        Ok(l)
    }
}

fn number(s: &str, max: u64) -> Option<u64> {
    crate::app::keyword::number(s).ok().filter(|&n| n <= max)
}

fn parse_association(v: &str) -> Result<Predicate, String> {
    let mut bits = 0;
    for item in items(v)? {
        let Some((_, b)) = ASSOCIATION_STATES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(item))
        else {
            return Err(format!(
                "unknown association state {item:?} (accepted, rejected, released, aborted, incomplete)"
            ));
        };
        bits |= b;
    }
    Ok(Predicate::Association(bits))
}

/// Request command fields by service name (PS3.7 §9.3, §10.3, E.1).
const COMMANDS: &[(&str, u16)] = &[
    ("C-STORE", 0x0001),
    ("C-GET", 0x0010),
    ("C-FIND", 0x0020),
    ("C-MOVE", 0x0021),
    ("C-ECHO", 0x0030),
    ("N-EVENT-REPORT", 0x0100),
    ("N-GET", 0x0110),
    ("N-SET", 0x0120),
    ("N-ACTION", 0x0130),
    ("N-CREATE", 0x0140),
    ("N-DELETE", 0x0150),
    ("C-CANCEL", C_CANCEL),
];

fn parse_command(v: &str) -> Result<Predicate, String> {
    let mut fields = Vec::new();
    for item in items(v)? {
        let field = if let Some(n) = number(item, u64::from(u16::MAX)) {
            let f = u16::try_from(n).map_err(|e| e.to_string())?;
            if f & 0x8000 != 0 {
                return Err(format!(
                    "{item} is a response command field; give the request's"
                ));
            }
            f
        } else {
            let name = item
                .strip_suffix("-RQ")
                .or_else(|| item.strip_suffix("-rq"))
                .unwrap_or(item);
            match COMMANDS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                Some((_, f)) => *f,
                None => {
                    let known: Vec<&str> = COMMANDS.iter().map(|(n, _)| *n).collect();
                    return Err(format!(
                        "unknown command {item:?} (a number or one of {})",
                        known.join(", ")
                    ));
                }
            }
        };
        fields.push(field);
    }
    Ok(Predicate::Command(fields))
}

fn parse_status(v: &str) -> Result<Predicate, String> {
    let m = match v.to_ascii_lowercase().as_str() {
        "success" => StatusMatch::Category("success"),
        "warning" => StatusMatch::Category("warning"),
        "failure" => StatusMatch::Category("failure"),
        "cancel" => StatusMatch::Category("cancel"),
        "pending" => StatusMatch::Pending,
        _ => StatusMatch::Value(UintMatch::parse(v, u64::from(u16::MAX)).map_err(|e| {
            format!("{e} (a comparison or success, pending, warning, failure, cancel)")
        })?),
    };
    Ok(Predicate::Status(m))
}

/// User identity type names (PS3.7 Table D.3-14), `none` for no sub-item.
const IDENTITY_TYPES: &[(&str, Option<u8>)] = &[
    ("none", None),
    ("username", Some(1)),
    ("username_passcode", Some(2)),
    ("kerberos", Some(3)),
    ("saml", Some(4)),
    ("jwt", Some(5)),
];

fn parse_user_identity(v: &str) -> Result<Predicate, String> {
    let mut types = Vec::new();
    for item in items(v)? {
        let t = match IDENTITY_TYPES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(item))
        {
            Some((_, t)) => *t,
            None => match number(item, u64::from(u8::MAX)) {
                Some(n) => Some(u8::try_from(n).map_err(|e| e.to_string())?),
                None => {
                    return Err(format!(
                        "unknown user identity type {item:?} (none, username, \
                         username_passcode, kerberos, saml, jwt or a number)"
                    ))
                }
            },
        };
        types.push(t);
    }
    Ok(Predicate::UserIdentity(types))
}

/// `gggg,eeee` or `(gggg,eeee)`, four hexadecimal digits each.
fn parse_tag_numbers(v: &str) -> Option<u32> {
    let v = v
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(v);
    let (g, e) = v.split_once(',')?;
    let (g, e) = (g.trim(), e.trim());
    let hex4 = |s: &str| {
        if s.len() == 4 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            u16::from_str_radix(s, 16).ok()
        } else {
            None
        }
    };
    Some(u32::from(hex4(g)?) << 16 | u32::from(hex4(e)?))
}

fn parse_attr(v: &str) -> Result<Keyword, String> {
    let tag = match parse_tag_numbers(v) {
        Some(t) => t,
        None => {
            let e = StandardDataDictionary
                .by_name(v)
                .ok_or_else(|| format!("unknown attribute keyword {v:?}"))?;
            let t = e.tag();
            u32::from(t.group()) << 16 | u32::from(t.element())
        }
    };
    if dataset::kept(tag).is_none() {
        let kept: Vec<String> = dataset::KEPT
            .iter()
            .map(|(t, _, _)| format!("{:04X},{:04X}", t >> 16, t & 0xFFFF))
            .collect();
        return Err(format!(
            "attribute ({:04X},{:04X}) is not one the decoder keeps, so it could never match \
             (kept: {})",
            tag >> 16,
            tag & 0xFFFF,
            kept.join(" ")
        ));
    }
    Ok(Keyword::Buffer(Buffer::Attr(tag)))
}

/// Compiles option `name` with its value; `None` when `name` is not a
/// dicom keyword, `Some(Err(reason))` when the value is wrong.
pub fn keyword(name: &str, value: Option<&str>) -> Option<Result<Keyword, String>> {
    let lower = name.to_ascii_lowercase();
    if let Some(b) = crate::app::keyword::sticky_buffer(BUFFERS, &lower, value) {
        return Some(b.map(Keyword::Buffer));
    }
    let compile: fn(&str) -> Result<Keyword, String> = match lower.as_str() {
        "dicom.attr" => parse_attr,
        "dicom.association" => |v| parse_association(v).map(Keyword::Predicate),
        "dicom.command" => |v| parse_command(v).map(Keyword::Predicate),
        "dicom.status" => |v| parse_status(v).map(Keyword::Predicate),
        "dicom.user_identity" => |v| parse_user_identity(v).map(Keyword::Predicate),
        _ => return None,
    };
    Some(
        required(value)
            .and_then(compile)
            .map_err(|e| format!("{lower}: {e}")),
    )
}

/// The login a record carries, if it is one: every association record
/// whose A-ASSOCIATE-RQ was seen (an association without user identity is
/// an anonymous login; one picked up after its RQ says nothing of it).
/// The username is the primary field of identity types 1 and 2, the
/// password the non-empty passcode of type 2; `accepted` is [`accepted`],
/// `Some(false)` when rejected, `None` when the outcome is unknown (no AC
/// nor RJ seen: a one-way capture, or the answer lost in a gap).
/// Exchanges carry no login.
pub fn credentials(rec: &Record) -> Option<Credentials<'_>> {
    let Record::Association(a) = rec else {
        return None;
    };
    a.request.as_ref()?;
    let answer = if accepted(a) {
        Some(true)
    } else if a.outcome == Outcome::Rejected {
        Some(false)
    } else {
        None
    };
    Some(Credentials {
        username: username(a),
        password: passcode(a).filter(|p| !p.is_empty()),
        accepted: answer,
    })
}

// The rule engine's view ([`crate::detect::Keywords`], reached through
// the protocol's entry in [`crate::app::PROTOCOLS`]).

impl TxRecord for Record {
    fn of(rec: &AppRecord) -> Option<&Record> {
        match rec {
            AppRecord::Dicom(r) => Some(r),
            _ => None,
        }
    }
}

impl ProtocolKeywords for super::Dicom {
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
        crate::detect::phi::scan_dicom(rec, cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The DICOM records wardwatch makes of `pcaps/<name>.pcap`, in order.
    fn capture(name: &str) -> Vec<Record> {
        crate::app::testing::dicom_records(name)
    }

    use crate::app::dicom::{Attribute, Command, DataSet, Message, PresentationContext, UserInfo};

    const VERIFICATION: &str = "1.2.840.10008.1.1";
    const CT_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
    const MR_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.4";
    const PATIENT_ROOT_FIND: &str = "1.2.840.10008.5.1.4.1.2.1.1";

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

    fn buf(name: &str, value: Option<&str>) -> Buffer {
        match kw(name, value) {
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

    /// Every instance of `b` in `rec`, as text.
    fn instances(b: Buffer, rec: &Record) -> Vec<String> {
        let mut v = Vec::new();
        assert!(!b.any(rec, &mut |x| {
            v.push(String::from_utf8_lossy(x).into_owned());
            false
        }));
        v
    }

    fn assoc(r: &Record) -> Option<&Association> {
        match r {
            Record::Association(a) => Some(a),
            Record::Dimse(_) => None,
        }
    }

    fn exchange(r: &Record) -> Option<&Exchange> {
        match r {
            Record::Dimse(e) => Some(e),
            Record::Association(_) => None,
        }
    }

    /// The association records of a capture, in the order they ended.
    fn associations(name: &str) -> Vec<Record> {
        capture(name)
            .into_iter()
            .filter(|r| assoc(r).is_some())
            .collect()
    }

    /// The exchange records of a capture, in order.
    fn exchanges(name: &str) -> Vec<Record> {
        capture(name)
            .into_iter()
            .filter(|r| exchange(r).is_some())
            .collect()
    }

    // Hand-built exchanges (not from a capture), for commands and statuses
    // the captures do not hold.
    fn hand_exchange(rq_field: u16, status: Option<u16>) -> Exchange {
        let cmd = |f: u16| Command {
            command_field: f,
            ..Default::default()
        };
        Exchange {
            request: Some(Message {
                presentation_context_id: 1,
                command: cmd(rq_field),
                data_set: None,
            }),
            response: status.map(|s| Message {
                presentation_context_id: 1,
                command: Command {
                    status: Some(s),
                    ..cmd(rq_field | 0x8000)
                },
                data_set: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn association_states_on_the_rejected_and_userid_captures() {
        let rej = associations("dicom_rejected");
        // 1: RJ (called AE), 2: RJ (calling AE), 3: accepted then A-ABORT.
        assert_eq!(rej.len(), 3);
        let p = |v: &str| pred("dicom.association", v);
        assert!(p("rejected").matches(&rej[0]) && p("rejected").matches(&rej[1]));
        assert!(!p("accepted").matches(&rej[0]) && !p("accepted").matches(&rej[1]));
        assert!(p("accepted").matches(&rej[2]));
        assert!(p("aborted").matches(&rej[2]));
        assert!(!p("rejected").matches(&rej[2]) && !p("released").matches(&rej[2]));
        assert!(p("released,aborted").matches(&rej[2]));
        assert!(!p("released, incomplete").matches(&rej[2]));

        let uid = associations("dicom_userid");
        // radiology (accepted, released), JWT (accepted, released), admin (RJ).
        assert_eq!(uid.len(), 3);
        assert!(p("accepted").matches(&uid[0]) && p("released").matches(&uid[0]));
        assert!(p("accepted").matches(&uid[1]));
        assert!(p("rejected").matches(&uid[2]) && !p("accepted").matches(&uid[2]));

        // Hand-built: an RQ whose flow ended before any answer.
        let pending = Record::Association(Box::new(Association {
            calling_ae_title: "A".into(),
            ..Default::default()
        }));
        assert!(p("incomplete").matches(&pending) && !p("accepted").matches(&pending));
        // Exchanges are not associations.
        assert!(!p("accepted,rejected,released,aborted,incomplete")
            .matches(&exchanges("dicom_echo")[0]));
        assert!(bad("dicom.association", Some("refused")).contains("unknown association state"));
        bad("dicom.association", Some(","));
        bad("dicom.association", None);
    }

    #[test]
    fn ae_titles_of_associations_and_exchanges() {
        let recs = capture("dicom_echo");
        for r in &recs {
            assert_eq!(instances(buf("dicom.calling_ae", None), r), ["ECHOSCU"]);
            assert_eq!(instances(buf("dicom.called_ae", None), r), ["STORESCP"]);
        }
        let rej = associations("dicom_rejected");
        assert_eq!(
            instances(buf("dicom.called_ae", None), &rej[0]),
            ["ANY-SCP"]
        );
        assert_eq!(
            instances(buf("dicom.calling_ae", None), &rej[1]),
            ["ECHOSCU"]
        );
        // Picked up mid-stream: no AE titles, no instance.
        let bare = Record::Dimse(Box::new(hand_exchange(0x0030, Some(0))));
        assert!(instances(buf("dicom.calling_ae", None), &bare).is_empty());
        assert!(bad("dicom.calling_ae", Some("ECHOSCU")).contains("no value"));
    }

    #[test]
    fn sop_class_is_every_proposal_or_the_exchange_class() {
        let store = capture("dicom_store_phi");
        let ct_assoc = store
            .iter()
            .find(|r| assoc(r).is_some_and(|a| a.calling_ae_title == "MODALITY1"))
            .unwrap();
        let proposed = instances(buf("dicom.sop_class", None), ct_assoc);
        // storescu proposes 128 presentation contexts (pcaps/README.md).
        assert_eq!(proposed.len(), 128);
        assert!(proposed.iter().any(|u| u == CT_STORAGE));
        assert!(instances(buf("dicom.accepted_sop_class", None), ct_assoc)
            .iter()
            .any(|u| u == CT_STORAGE));
        let ct = store
            .iter()
            .find(|r| exchange(r).is_some_and(|e| e.calling_ae_title == "MODALITY1"))
            .unwrap();
        let mr = store
            .iter()
            .find(|r| exchange(r).is_some_and(|e| e.calling_ae_title == "MR_SCANNER2"))
            .unwrap();
        assert_eq!(instances(buf("dicom.sop_class", None), ct), [CT_STORAGE]);
        assert_eq!(instances(buf("dicom.sop_class", None), mr), [MR_STORAGE]);
        let find = exchanges("dicom_find");
        assert_eq!(
            instances(buf("dicom.sop_class", None), &find[0]),
            [PATIENT_ROOT_FIND]
        );
        // Exchanges have no accepted_sop_class.
        assert!(instances(buf("dicom.accepted_sop_class", None), ct).is_empty());

        // Rejected: proposed, none accepted.
        let rej = associations("dicom_rejected");
        assert_eq!(
            instances(buf("dicom.sop_class", None), &rej[0]),
            [VERIFICATION]
        );
        assert!(instances(buf("dicom.accepted_sop_class", None), &rej[0]).is_empty());
        assert_eq!(
            instances(buf("dicom.accepted_sop_class", None), &rej[2]),
            [VERIFICATION]
        );

        // Hand-built: no SOP class in the command: the context's.
        let mut e = hand_exchange(0x0030, Some(0));
        e.abstract_syntax = Some(VERIFICATION.into());
        assert_eq!(
            instances(
                buf("dicom.sop_class", None),
                &Record::Dimse(Box::new(e.clone()))
            ),
            [VERIFICATION]
        );
        if let Some(rq) = e.request.as_mut() {
            rq.command.requested_sop_class_uid = Some("1.2.840.10008.5.1.1.1".into());
        }
        assert_eq!(
            instances(buf("dicom.sop_class", None), &Record::Dimse(Box::new(e))),
            ["1.2.840.10008.5.1.1.1"]
        );
        // Hand-built: a context the acceptor refused (result 3) is proposed
        // but not accepted.
        let a = Record::Association(Box::new(Association {
            presentation_contexts: vec![
                PresentationContext {
                    id: 1,
                    abstract_syntax: Some(CT_STORAGE.into()),
                    result: Some(3),
                    ..Default::default()
                },
                PresentationContext {
                    id: 3,
                    abstract_syntax: Some(MR_STORAGE.into()),
                    result: Some(0),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }));
        assert_eq!(
            instances(buf("dicom.sop_class", None), &a),
            [CT_STORAGE, MR_STORAGE]
        );
        assert_eq!(
            instances(buf("dicom.accepted_sop_class", None), &a),
            [MR_STORAGE]
        );
    }

    #[test]
    fn user_identity_fields_and_types() {
        let uid = associations("dicom_userid");
        let user = buf("dicom.username", None);
        let pass = buf("dicom.passcode", None);
        assert_eq!(instances(user, &uid[0]), ["radiology"]);
        assert_eq!(instances(pass, &uid[0]), ["Radiology123!"]);
        // JWT (type 5): the token is not a username.
        assert!(instances(user, &uid[1]).is_empty());
        assert!(instances(pass, &uid[1]).is_empty());
        assert_eq!(instances(user, &uid[2]), ["admin"]);
        assert_eq!(instances(pass, &uid[2]), ["admin"]);
        let echo = associations("dicom_echo");
        assert!(instances(user, &echo[0]).is_empty());

        let t = |v: &str| pred("dicom.user_identity", v);
        assert!(t("username_passcode").matches(&uid[0]));
        assert!(!t("username").matches(&uid[0]));
        assert!(t("jwt").matches(&uid[1]) && t("5").matches(&uid[1]));
        assert!(!t("saml,kerberos").matches(&uid[1]));
        assert!(t("none").matches(&echo[0]) && !t("none").matches(&uid[0]));
        assert!(t("username, 2").matches(&uid[2]));
        assert!(!t("none").matches(&exchanges("dicom_echo")[0]));
        assert!(bad("dicom.user_identity", Some("password")).contains("unknown user identity"));
        bad("dicom.user_identity", Some("256"));
    }

    #[test]
    fn implementation_items_are_the_requester_s() {
        // dcmtk 3.6.7 identifies itself with OFFIS's root and version name.
        let echo = associations("dicom_echo");
        assert_eq!(
            instances(buf("dicom.implementation_version", None), &echo[0]),
            ["OFFIS_DCMTK_367"]
        );
        assert_eq!(
            instances(buf("dicom.implementation_class_uid", None), &echo[0]),
            ["1.2.276.0.7230010.3.0.3.6.7"]
        );
        // findscu (dcmtk) asked a pynetdicom SCP: the requester's, not the
        // acceptor's.
        let find = associations("dicom_find");
        assert_eq!(
            instances(buf("dicom.implementation_version", None), &find[0]),
            ["OFFIS_DCMTK_367"]
        );
        let uid = associations("dicom_userid");
        assert!(
            instances(buf("dicom.implementation_version", None), &uid[0])[0]
                .starts_with("PYNETDICOM")
        );
        assert!(instances(
            buf("dicom.implementation_version", None),
            &exchanges("dicom_echo")[0]
        )
        .is_empty());
    }

    #[test]
    fn command_is_the_request_s() {
        let echo = &exchanges("dicom_echo")[0];
        let find = &exchanges("dicom_find")[0];
        let store = &exchanges("dicom_store_phi")[0];
        let c = |v: &str| pred("dicom.command", v);
        assert!(c("C-ECHO").matches(echo) && !c("C-ECHO").matches(find));
        assert!(c("c-find").matches(find) && c("C-FIND-RQ").matches(find));
        assert!(c("C-STORE").matches(store) && !c("C-MOVE,C-GET").matches(store));
        assert!(c("C-MOVE, C-STORE").matches(store));
        assert!(c("0x0030").matches(echo) && c("48").matches(echo) && !c("0x0020").matches(echo));
        assert!(!c("C-ECHO").matches(&associations("dicom_echo")[0]));
        // Hand-built: N-ACTION; a cancelled C-FIND; only a response seen.
        let n = Record::Dimse(Box::new(hand_exchange(0x0130, Some(0))));
        assert!(c("N-ACTION").matches(&n) && !c("N-SET").matches(&n));
        let mut cancelled = hand_exchange(0x0020, Some(0xFE00));
        cancelled.cancelled = true;
        let cancelled = Record::Dimse(Box::new(cancelled));
        assert!(c("C-CANCEL").matches(&cancelled) && c("C-FIND").matches(&cancelled));
        assert!(!c("C-CANCEL").matches(find));
        let mut rsp_only = hand_exchange(0x0021, Some(0));
        rsp_only.request = None;
        assert!(c("C-MOVE").matches(&Record::Dimse(Box::new(rsp_only))));
        assert!(bad("dicom.command", Some("0x8030")).contains("response"));
        assert!(bad("dicom.command", Some("C-PRINT")).contains("unknown command"));
        bad("dicom.command", Some(""));
    }

    #[test]
    fn status_is_the_final_response_s() {
        let echo = &exchanges("dicom_echo")[0];
        let find = &exchanges("dicom_find")[0];
        let s = |v: &str| pred("dicom.status", v);
        assert!(s("success").matches(echo) && s("0").matches(echo));
        assert!(!s("failure").matches(echo) && !s(">0").matches(echo));
        // C-FIND: three pending responses, then success.
        assert!(s("pending").matches(find) && s("success").matches(find));
        assert!(!s("pending").matches(echo));
        assert!(!s("0xFF00").matches(find));
        let st = |v: u16| Record::Dimse(Box::new(hand_exchange(0x0001, Some(v))));
        // PS3.7 Annex C: B000 warning, A700 failure (out of resources),
        // FE00 cancel, 0107 warning (attribute list error).
        assert!(s("warning").matches(&st(0xB000)) && s("warning").matches(&st(0x0107)));
        assert!(s("failure").matches(&st(0xA700)) && !s("warning").matches(&st(0xA700)));
        assert!(s("cancel").matches(&st(0xFE00)));
        assert!(s("0xA700-0xA7FF").matches(&st(0xA701)) && s("!0").matches(&st(0xA701)));
        // No final response: no status.
        let open = Record::Dimse(Box::new(hand_exchange(0x0001, None)));
        assert!(!s("!0").matches(&open) && !s("failure").matches(&open));
        assert!(!s("success").matches(&associations("dicom_echo")[0]));
        assert!(bad("dicom.status", Some("0x10000")).contains("larger"));
        bad("dicom.status", Some("ok"));
    }

    #[test]
    fn move_destination_of_a_c_move() {
        // Hand-built: no capture holds a C-MOVE.
        let mut e = hand_exchange(0x0021, Some(0));
        if let Some(rq) = e.request.as_mut() {
            rq.command.move_destination = Some("EVIL_SCP".into());
        }
        let r = Record::Dimse(Box::new(e));
        assert_eq!(
            instances(buf("dicom.move_destination", None), &r),
            ["EVIL_SCP"]
        );
        assert!(instances(
            buf("dicom.move_destination", None),
            &exchanges("dicom_find")[0]
        )
        .is_empty());
    }

    #[test]
    fn attr_resolves_keywords_and_tags_of_kept_attributes() {
        assert_eq!(
            buf("dicom.attr", Some("PatientName")),
            Buffer::Attr(0x0010_0010)
        );
        assert_eq!(
            buf("dicom.attr", Some("0010,0020")),
            Buffer::Attr(0x0010_0020)
        );
        assert_eq!(
            buf("dicom.attr", Some("(0010,0030)")),
            Buffer::Attr(0x0010_0030)
        );
        assert_eq!(buf("dicom.attr", Some("0010,0030")).name(), "dicom.attr");
        assert!(bad("dicom.attr", Some("PatientNom")).contains("unknown attribute keyword"));
        // Known to the dictionary but not kept by the decoder: Rows.
        assert!(bad("dicom.attr", Some("Rows")).contains("(0028,0010) is not one"));
        bad("dicom.attr", Some("0010,00200"));
        bad("dicom.attr", None);
    }

    #[test]
    fn attr_yields_values_of_every_data_set_of_the_exchange() {
        let finds = exchanges("dicom_find");
        let name = buf("dicom.attr", Some("PatientName"));
        // Request key "*", then the three pending matches.
        assert_eq!(
            instances(name, &finds[0]),
            ["*", "TEST^JANE", "DOE^JOHN", "TEST^ALEX"]
        );
        // Study level: the query holds only MRN-TEST-0001 (PatientName an
        // empty return key); the two matches are TEST^JANE's studies.
        let id = buf("dicom.attr", Some("PatientID"));
        assert!(instances(id, &finds[1])
            .iter()
            .all(|v| v == "MRN-TEST-0001"));
        assert_eq!(instances(name, &finds[1]), ["TEST^JANE", "TEST^JANE"]);
        let store = exchanges("dicom_store_phi");
        assert_eq!(instances(name, &store[0]), ["TEST^JANE"]);
        assert_eq!(
            instances(buf("dicom.attr", Some("OtherPatientIDs")), &store[1]),
            ["100017511299882"]
        );
        assert!(instances(name, &exchanges("dicom_echo")[0]).is_empty());
        assert!(instances(name, &associations("dicom_echo")[0]).is_empty());
        // Hand-built: a truncated value was not read and yields nothing.
        let mut e = hand_exchange(0x0001, Some(0));
        if let Some(rq) = e.request.as_mut() {
            rq.data_set = Some(DataSet {
                attributes: vec![Attribute {
                    tag: 0x0010_0010,
                    value: String::new(),
                    truncated: true,
                }],
                ..Default::default()
            });
        }
        let mut called = false;
        assert!(!name.any(&Record::Dimse(Box::new(e)), &mut |_| {
            called = true;
            true
        }));
        assert!(!called);
    }

    #[test]
    fn credentials_of_associations_only() {
        let uid = associations("dicom_userid");
        let c = credentials(&uid[0]).unwrap();
        assert_eq!(
            (c.username, c.password, c.accepted),
            (
                Some(&b"radiology"[..]),
                Some(&b"Radiology123!"[..]),
                Some(true)
            )
        );
        let c = credentials(&uid[1]).unwrap();
        assert_eq!(
            (c.username, c.password, c.accepted),
            (None, None, Some(true))
        );
        let c = credentials(&uid[2]).unwrap();
        assert_eq!(
            (c.username, c.password, c.accepted),
            (Some(&b"admin"[..]), Some(&b"admin"[..]), Some(false))
        );
        // No user identity: anonymous, accepted by the SCP.
        let echo = associations("dicom_echo");
        let c = credentials(&echo[0]).unwrap();
        assert_eq!(
            (c.username, c.password, c.accepted),
            (None, None, Some(true))
        );
        let rej = associations("dicom_rejected");
        let c = credentials(&rej[1]).unwrap();
        assert_eq!(c.accepted, Some(false));
        assert!(credentials(&exchanges("dicom_echo")[0]).is_none());
        // Hand-built: type 1 (no passcode), an empty type-2 passcode, and
        // an association whose answer was never seen.
        let with_identity = |t: u8, secondary: &[u8]| {
            Record::Association(Box::new(Association {
                request: Some(UserInfo {
                    user_identity: Some(UserIdentity {
                        identity_type: t,
                        positive_response_requested: false,
                        primary_field: b"tech".to_vec(),
                        secondary_field: secondary.to_vec(),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }))
        };
        let type1 = with_identity(1, b"ignored");
        let c = credentials(&type1).unwrap();
        assert_eq!(
            (c.username, c.password, c.accepted),
            (Some(&b"tech"[..]), None, None)
        );
        let empty = with_identity(2, b"");
        let c = credentials(&empty).unwrap();
        assert_eq!((c.username, c.password), (Some(&b"tech"[..]), None));
        assert!(pred("dicom.user_identity", "username").matches(&with_identity(1, b"")));
        // Hand-built: an association known from its A-ASSOCIATE-AC only
        // (the RQ lost or before the capture): no login to judge.
        let ac_only = Record::Association(Box::new(Association {
            response: Some(UserInfo::default()),
            ..Default::default()
        }));
        assert!(credentials(&ac_only).is_none());
    }

    #[test]
    fn names_are_case_insensitive_and_others_are_not_mine() {
        assert_eq!(
            kw("DICOM.Calling_AE", None),
            Keyword::Buffer(Buffer::CallingAe)
        );
        for (n, b) in BUFFERS {
            assert_eq!(b.name(), *n);
        }
        for n in ["dicom", "dicom.attribute", "mqtt.type", "dicom.ae"] {
            assert!(keyword(n, Some("x")).is_none(), "{n}");
        }
    }
}
