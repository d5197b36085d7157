//! Stateless parsing of DICOM Upper Layer PDUs (PS3.8 §9.3) and DIMSE
//! command sets (PS3.7 §6.3, always Implicit VR Little Endian).
//!
//! Every function reads only the slice it is given and checks each length
//! against what is present before touching it; nothing here allocates more
//! than the bytes in hand. Headers follow the incremental contract
//! ([`Progress`]); bodies (association PDUs, command sets) are parsed on an
//! exact slice whose length the caller already checked against its limits.

use super::{
    Abort, Association, Command, CommonExtended, PresentationContext, Reject, RoleSelection,
    UserIdentity, UserInfo,
};

/// Outcome of an incremental parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress<T> {
    /// A whole unit was read from the first `consumed` bytes.
    Done { msg: T, consumed: usize },
    /// At least `needed` more bytes are required.
    NeedMore { needed: usize },
    /// The next `len` bytes are to be skipped.
    Skip { len: usize },
}

/// Why bytes could not be parsed; [`ParseError::event`] is the anomaly
/// event name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// A PDU type that PS3.8 does not define.
    UnknownPduType(u8),
    /// A PDU whose fixed fields or items do not fit its length.
    MalformedPdu,
    /// An item or sub-item whose length overruns its parent.
    MalformedItem,
    /// A PDV item shorter than its 2-byte header or longer than its PDU.
    InvalidPdvLength,
    /// A command set element whose length overruns the command set.
    MalformedElement,
    /// A command set without a command field.
    MissingCommandField,
}

impl ParseError {
    /// Anomaly event name.
    pub fn event(self) -> &'static str {
        match self {
            ParseError::UnknownPduType(_) => "unknown_pdu_type",
            ParseError::MalformedPdu => "malformed_pdu",
            ParseError::MalformedItem => "malformed_item",
            ParseError::InvalidPdvLength => "invalid_pdv_length",
            ParseError::MalformedElement => "malformed_element",
            ParseError::MissingCommandField => "missing_command_field",
        }
    }
}

/// PDU types (PS3.8 Table 9-11).
pub mod pdu_type {
    pub const ASSOCIATE_RQ: u8 = 0x01;
    pub const ASSOCIATE_AC: u8 = 0x02;
    pub const ASSOCIATE_RJ: u8 = 0x03;
    pub const P_DATA_TF: u8 = 0x04;
    pub const RELEASE_RQ: u8 = 0x05;
    pub const RELEASE_RP: u8 = 0x06;
    pub const ABORT: u8 = 0x07;
}

/// Bytes of a PDU header.
pub const PDU_HEADER_LEN: usize = 6;
/// Bytes of a PDV item header (length, context id, control header).
pub const PDV_HEADER_LEN: usize = 6;

/// The 6-byte header every PDU starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PduHeader {
    pub pdu_type: u8,
    /// Bytes that follow the header.
    pub length: u32,
}

/// Reads a PDU header.
///
/// ```text
/// 0        1        2                 6
/// +--------+--------+-----------------+
/// |  type  |reserved| length (u32 BE) |
/// +--------+--------+-----------------+
/// ```
///
/// # Errors
/// [`ParseError::UnknownPduType`] for a type outside 1..=7.
pub fn parse_pdu_header(input: &[u8]) -> Result<Progress<PduHeader>, ParseError> {
    let Some(h) = input.get(..PDU_HEADER_LEN) else {
        return Ok(Progress::NeedMore {
            needed: PDU_HEADER_LEN - input.len(),
        });
    };
    let pdu_type = h[0];
    if !(pdu_type::ASSOCIATE_RQ..=pdu_type::ABORT).contains(&pdu_type) {
        return Err(ParseError::UnknownPduType(pdu_type));
    }
    Ok(Progress::Done {
        msg: PduHeader {
            pdu_type,
            length: u32::from_be_bytes([h[2], h[3], h[4], h[5]]),
        },
        consumed: PDU_HEADER_LEN,
    })
}

/// A PDV item header inside a P-DATA-TF PDU (PS3.8 §9.3.5.1, Annex E.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdvHeader {
    /// Fragment bytes after the context id and control header.
    pub fragment_len: u32,
    pub presentation_context_id: u8,
    /// Bit 0: command (1) or data set (0); bit 1: last fragment.
    pub control: u8,
}

impl PdvHeader {
    pub fn is_command(&self) -> bool {
        self.control & 0x01 != 0
    }
    pub fn is_last(&self) -> bool {
        self.control & 0x02 != 0
    }
}

/// Reads a PDV item header; `pdu_left` is what remains of the P-DATA-TF
/// PDU, header included.
///
/// ```text
/// 0                 4        5        6
/// +-----------------+--------+--------+------------
/// | length (u32 BE) | ctx id | control| fragment…
/// +-----------------+--------+--------+------------
/// ```
///
/// # Errors
/// [`ParseError::InvalidPdvLength`] when the item is shorter than 2 or
/// longer than the rest of its PDU.
pub fn parse_pdv_header(input: &[u8], pdu_left: u64) -> Result<Progress<PdvHeader>, ParseError> {
    let Some(h) = input.get(..PDV_HEADER_LEN) else {
        return Ok(Progress::NeedMore {
            needed: PDV_HEADER_LEN - input.len(),
        });
    };
    let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    if len < 2 || u64::from(len).saturating_add(4) > pdu_left {
        return Err(ParseError::InvalidPdvLength);
    }
    Ok(Progress::Done {
        msg: PdvHeader {
            fragment_len: len - 2,
            presentation_context_id: h[4],
            control: h[5],
        },
        consumed: PDV_HEADER_LEN,
    })
}

/// How much a PDU boundary found without framing is checked
/// ([`plausible_pdu`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Only what a receiving peer checks too (PS3.8 §9.3: reserved fields
    /// "shall not be tested"): at the start of a stream, where the bytes
    /// are most likely a real PDU and a stricter check than the peer's would
    /// let a sender hide an association by setting a reserved byte.
    Lenient,
    /// Also reserved fields and fixed-size bodies: after a gap or a framing
    /// error, where a PDU boundary is being guessed inside arbitrary data.
    Strict,
}

/// What is known when a PDU boundary is checked.
#[derive(Debug, Clone, Copy)]
pub struct BoundaryLimits<'a> {
    /// Longest association PDU decoded (`max_association_pdu`).
    pub max_association_pdu: u32,
    /// Longest P-DATA-TF the receiver accepts, `None` when it announced no
    /// maximum (or the announcement was not seen).
    pub max_pdata_pdu: Option<u32>,
    /// Longest P-DATA-TF taken for a boundary in strict mode when
    /// `max_pdata_pdu` is `None`.
    pub max_resync_pdu: u32,
    /// Presentation context ids of the association, when an
    /// A-ASSOCIATE-RQ or -AC was seen.
    pub contexts: Option<&'a [u8]>,
}

/// Outcome of [`plausible_pdu`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plausible {
    Yes,
    No,
    /// Undecided until `n` bytes from the candidate's start are present
    /// (never more than [`BOUNDARY_LOOKAHEAD`]).
    NeedMore(usize),
}

/// Bytes from a candidate PDU start that [`plausible_pdu`] may look at:
/// the decision depends on these bytes only, never on where a segment
/// ended, so the same stream gives the same boundary however it is cut.
pub const BOUNDARY_LOOKAHEAD: usize = 4096;
/// PDV headers of a candidate P-DATA-TF checked (the first ones).
pub const BOUNDARY_MAX_PDVS: usize = 8;

/// Whether `b` starts with a plausible PDU (PS3.8 §9.3):
/// - every type: 1..=7; strict: reserved byte 0;
/// - A-ASSOCIATE-RQ/AC: the 68 bytes of fixed fields fit, protocol version
///   bit 0 set; strict: within `max_association_pdu`, reserved fields 0,
///   the first item a known one (0x10, 0x20/0x21, 0x50);
/// - A-ASSOCIATE-RJ, A-ABORT: a 4-byte body; strict: exactly 4 bytes with
///   result, source and reason in their ranges (Tables 9-21, 9-26);
/// - A-RELEASE-RQ/RP: strict: a 4-byte body of zeros;
/// - P-DATA-TF: within the receiver's maximum (strict: within
///   `max_resync_pdu` when none was announced); PDV items of at least 2
///   bytes on odd presentation context ids (those of the association when
///   known) that tile the PDU exactly, checked over the first
///   [`BOUNDARY_MAX_PDVS`] items within [`BOUNDARY_LOOKAHEAD`]; strict:
///   control header bits 2-7 zero.
pub fn plausible_pdu(b: &[u8], check: Check, lim: &BoundaryLimits<'_>) -> Plausible {
    use Plausible::{NeedMore, No, Yes};
    let strict = check == Check::Strict;
    let Some(h) = b.get(..PDU_HEADER_LEN) else {
        return match b.first() {
            Some(t) if !(pdu_type::ASSOCIATE_RQ..=pdu_type::ABORT).contains(t) => No,
            Some(_) if strict && b.get(1).is_some_and(|&r| r != 0) => No,
            _ => NeedMore(PDU_HEADER_LEN),
        };
    };
    let t = h[0];
    if !(pdu_type::ASSOCIATE_RQ..=pdu_type::ABORT).contains(&t) || (strict && h[1] != 0) {
        return No;
    }
    let len = u32::from_be_bytes([h[2], h[3], h[4], h[5]]);
    let total = u64::from(len) + PDU_HEADER_LEN as u64;
    // The bytes this check needs, and a closure reading one of them.
    let need = |n: usize| -> Option<Plausible> { (b.len() < n).then_some(NeedMore(n)) };
    match t {
        pdu_type::ASSOCIATE_RQ | pdu_type::ASSOCIATE_AC => {
            if len < 68 || (strict && len > lim.max_association_pdu) {
                return No;
            }
            // Strict reads the reserved bytes up to offset 74 and, past the
            // fixed part, the first item's type at 74.
            let n = match (strict, len > 68) {
                (true, true) => 75,
                (true, false) => 74,
                (false, _) => 10,
            };
            if let Some(m) = need(n) {
                return m;
            }
            if b[7] & 1 == 0 {
                return No;
            }
            if strict {
                let reserved = b[8] == 0 && b[9] == 0 && b[42..74].iter().all(|&x| x == 0);
                let item = len == 68 || matches!(b[74], 0x10 | 0x20 | 0x21 | 0x50);
                return if reserved && item { Yes } else { No };
            }
            Yes
        }
        pdu_type::ASSOCIATE_RJ | pdu_type::ABORT | pdu_type::RELEASE_RQ | pdu_type::RELEASE_RP => {
            let fixed = matches!(t, pdu_type::ASSOCIATE_RJ | pdu_type::ABORT);
            if !strict {
                return if (fixed && len < 4) || len > lim.max_association_pdu {
                    No
                } else {
                    Yes
                };
            }
            if len != 4 {
                return No;
            }
            if let Some(m) = need(10) {
                return m;
            }
            let ok = match t {
                pdu_type::ASSOCIATE_RJ => {
                    b[6] == 0 && matches!(b[7], 1 | 2) && matches!(b[8], 1..=3)
                }
                pdu_type::ABORT => b[6] == 0 && b[7] == 0 && matches!(b[8], 0 | 2) && b[9] <= 6,
                _ => b[6..10].iter().all(|&x| x == 0),
            };
            if ok {
                Yes
            } else {
                No
            }
        }
        _ => {
            // P-DATA-TF.
            let max = match (lim.max_pdata_pdu, check) {
                (Some(m), _) => Some(m),
                (None, Check::Strict) => Some(lim.max_resync_pdu),
                (None, Check::Lenient) => None,
            };
            if len < PDV_HEADER_LEN as u32 || max.is_some_and(|m| len > m) {
                return No;
            }
            let mut at = PDU_HEADER_LEN as u64;
            for _ in 0..BOUNDARY_MAX_PDVS {
                let Ok(pos) = usize::try_from(at) else {
                    return Yes;
                };
                let end = pos.saturating_add(PDV_HEADER_LEN);
                if end > BOUNDARY_LOOKAHEAD {
                    return Yes;
                }
                if let Some(m) = need(end) {
                    return m;
                }
                let v = &b[pos..end];
                let pdv = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
                let next = at + 4 + u64::from(pdv);
                let (id, control) = (v[4], v[5]);
                let known = lim.contexts.is_none_or(|c| c.contains(&id));
                if pdv < 2 || next > total || id & 1 == 0 || !known {
                    return No;
                }
                if strict && control & 0xFC != 0 {
                    return No;
                }
                if next == total {
                    return Yes;
                }
                // Another PDV item must fit in what is left.
                if total - next < PDV_HEADER_LEN as u64 {
                    return No;
                }
                at = next;
            }
            Yes
        }
    }
}

/// A bounds-checked big-endian reader over one slice.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    fn left(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.bytes(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.bytes(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// An item: type, reserved, u16 length, value.
    fn item(&mut self) -> Option<(u8, &'a [u8])> {
        let t = self.u8()?;
        self.u8()?;
        let len = self.u16()?;
        Some((t, self.bytes(usize::from(len))?))
    }
}

/// Text of a UID or AE title: padding (NUL and spaces) removed, bytes that
/// are not UTF-8 by the output's one rule (UIDs and AE titles are ASCII by
/// PS3.5 §6.2).
pub fn text(b: &[u8]) -> String {
    crate::output::mask::display_bytes(b)
        .trim_matches(|c: char| c == '\0' || c == ' ')
        .to_string()
}

/// The fields of an A-ASSOCIATE-RQ or -AC, and how many items were not
/// understood.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssociatePdu {
    /// Association fields; `request`/`response` filled from the user
    /// information according to the PDU type.
    pub assoc: Association,
    /// Items of unknown type, skipped.
    pub unknown_items: u32,
}

/// Parses the body (after the 6-byte header) of an A-ASSOCIATE-RQ
/// (`ac = false`) or A-ASSOCIATE-AC (`ac = true`), PS3.8 §9.3.2-9.3.3.
///
/// ```text
/// 0         2         4                20                36        68
/// +---------+---------+----------------+----------------+---------+------
/// | version |reserved | called AE (16) | calling AE (16)|reserved | items…
/// +---------+---------+----------------+----------------+---------+------
/// ```
///
/// # Errors
/// [`ParseError::MalformedPdu`] when the fixed fields do not fit,
/// [`ParseError::MalformedItem`] when an item overruns its parent.
pub fn parse_associate(body: &[u8], ac: bool) -> Result<AssociatePdu, ParseError> {
    let mut r = Reader::new(body);
    let (Some(version), Some(_), Some(called), Some(calling), Some(_)) =
        (r.u16(), r.u16(), r.bytes(16), r.bytes(16), r.bytes(32))
    else {
        return Err(ParseError::MalformedPdu);
    };
    let mut out = AssociatePdu::default();
    let a = &mut out.assoc;
    a.protocol_version = version;
    a.called_ae_title = text(called);
    a.calling_ae_title = text(calling);
    while r.left() > 0 {
        let (t, v) = r.item().ok_or(ParseError::MalformedItem)?;
        match t {
            0x10 => a.application_context = Some(text(v)),
            0x20 if !ac => a.presentation_contexts.push(parse_pctx_rq(v)?),
            0x21 if ac => a.presentation_contexts.push(parse_pctx_ac(v)?),
            0x50 => {
                let (ui, unknown) = parse_user_info(v)?;
                out.unknown_items = out.unknown_items.saturating_add(unknown);
                if ac {
                    a.response = Some(ui);
                } else {
                    a.request = Some(ui);
                }
            }
            _ => out.unknown_items = out.unknown_items.saturating_add(1),
        }
    }
    Ok(out)
}

/// Presentation context item of an RQ (0x20): id, 3 reserved bytes, an
/// abstract syntax sub-item (0x30) and transfer syntax sub-items (0x40).
fn parse_pctx_rq(v: &[u8]) -> Result<PresentationContext, ParseError> {
    let mut r = Reader::new(v);
    let id = r.u8().ok_or(ParseError::MalformedItem)?;
    r.bytes(3).ok_or(ParseError::MalformedItem)?;
    let mut pc = PresentationContext {
        id,
        ..Default::default()
    };
    while r.left() > 0 {
        let (t, v) = r.item().ok_or(ParseError::MalformedItem)?;
        match t {
            0x30 => pc.abstract_syntax = Some(text(v)),
            0x40 => pc.transfer_syntaxes.push(text(v)),
            _ => {}
        }
    }
    Ok(pc)
}

/// Presentation context item of an AC (0x21): id, reserved, result/reason,
/// reserved, one transfer syntax sub-item (0x40).
fn parse_pctx_ac(v: &[u8]) -> Result<PresentationContext, ParseError> {
    let mut r = Reader::new(v);
    let (Some(id), Some(_), Some(result), Some(_)) = (r.u8(), r.u8(), r.u8(), r.u8()) else {
        return Err(ParseError::MalformedItem);
    };
    let mut pc = PresentationContext {
        id,
        result: Some(result),
        ..Default::default()
    };
    while r.left() > 0 {
        let (t, v) = r.item().ok_or(ParseError::MalformedItem)?;
        if t == 0x40 {
            pc.accepted_transfer_syntax = Some(text(v));
        }
    }
    Ok(pc)
}

/// A u16-length-prefixed field inside a sub-item.
fn field<'a>(r: &mut Reader<'a>) -> Option<&'a [u8]> {
    let n = r.u16()?;
    r.bytes(usize::from(n))
}

/// User information item (0x50) and its sub-items (PS3.7 Annex D.3.3,
/// PS3.8 Annex D.1); returns the sub-items and how many were unknown.
fn parse_user_info(v: &[u8]) -> Result<(UserInfo, u32), ParseError> {
    let mut r = Reader::new(v);
    let mut ui = UserInfo::default();
    let mut unknown = 0u32;
    let bad = ParseError::MalformedItem;
    while r.left() > 0 {
        let (t, v) = r.item().ok_or(bad)?;
        let mut s = Reader::new(v);
        match t {
            0x51 => ui.max_pdu_length = Some(s.u32().ok_or(bad)?),
            0x52 => ui.implementation_class_uid = Some(text(v)),
            0x53 => ui.async_ops_window = Some((s.u16().ok_or(bad)?, s.u16().ok_or(bad)?)),
            0x54 => {
                let uid = field(&mut s).ok_or(bad)?;
                let (Some(scu), Some(scp)) = (s.u8(), s.u8()) else {
                    return Err(bad);
                };
                ui.role_selections.push(RoleSelection {
                    sop_class_uid: text(uid),
                    scu_role: scu,
                    scp_role: scp,
                });
            }
            0x55 => ui.implementation_version_name = Some(text(v)),
            0x56 => {
                let uid = field(&mut s).ok_or(bad)?;
                ui.sop_class_extended.push((text(uid), s.left()));
            }
            0x57 => {
                let sop = field(&mut s).ok_or(bad)?;
                let service = field(&mut s).ok_or(bad)?;
                let related = field(&mut s).ok_or(bad)?;
                let mut rr = Reader::new(related);
                let mut list = Vec::new();
                while rr.left() > 0 {
                    list.push(text(field(&mut rr).ok_or(bad)?));
                }
                ui.sop_class_common_extended.push(CommonExtended {
                    sop_class_uid: text(sop),
                    service_class_uid: text(service),
                    related_general_sop_classes: list,
                });
            }
            0x58 => {
                let (Some(ty), Some(rsp)) = (s.u8(), s.u8()) else {
                    return Err(bad);
                };
                let primary = field(&mut s).ok_or(bad)?;
                // The secondary field length is present for every type; its
                // value only for type 2.
                let secondary = field(&mut s).ok_or(bad)?;
                // Copied: the record outlives the PDU buffer; both fields
                // are bounded by the 64 KiB item length.
                ui.user_identity = Some(UserIdentity {
                    identity_type: ty,
                    positive_response_requested: rsp == 1,
                    primary_field: primary.to_vec(),
                    secondary_field: secondary.to_vec(),
                });
            }
            0x59 => {
                let resp = field(&mut s).ok_or(bad)?;
                ui.user_identity_server_response = Some(resp.to_vec());
            }
            _ => unknown = unknown.saturating_add(1),
        }
    }
    Ok((ui, unknown))
}

/// A-ASSOCIATE-RJ body: reserved, result, source, reason (PS3.8 §9.3.4).
///
/// # Errors
/// [`ParseError::MalformedPdu`] when shorter than 4 bytes.
pub fn parse_reject(body: &[u8]) -> Result<Reject, ParseError> {
    match body.get(..4) {
        Some(b) => Ok(Reject {
            result: b[1],
            source: b[2],
            reason: b[3],
        }),
        None => Err(ParseError::MalformedPdu),
    }
}

/// A-ABORT body: 2 reserved, source, reason (PS3.8 §9.3.8).
///
/// # Errors
/// [`ParseError::MalformedPdu`] when shorter than 4 bytes.
pub fn parse_abort(body: &[u8]) -> Result<Abort, ParseError> {
    match body.get(..4) {
        Some(b) => Ok(Abort {
            source: b[2],
            reason: b[3],
        }),
        None => Err(ParseError::MalformedPdu),
    }
}

/// Parses a whole command set (PS3.7 §6.3, §9.3, §10.3): group 0000
/// elements in Implicit VR Little Endian — tag (u16 group, u16 element),
/// u32 length, value.
///
/// # Errors
/// [`ParseError::MalformedElement`] when an element overruns the set,
/// [`ParseError::MissingCommandField`] without (0000,0100).
pub fn parse_command(bytes: &[u8]) -> Result<Command, ParseError> {
    let mut c = Command::default();
    let mut have_field = false;
    let mut pos = 0usize;
    while pos < bytes.len() {
        let h = bytes
            .get(pos..pos.saturating_add(8))
            .ok_or(ParseError::MalformedElement)?;
        let group = u16::from_le_bytes([h[0], h[1]]);
        let elem = u16::from_le_bytes([h[2], h[3]]);
        let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        let start = pos.saturating_add(8);
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .ok_or(ParseError::MalformedElement)?;
        let v = bytes.get(start..end).ok_or(ParseError::MalformedElement)?;
        pos = end;
        if group != 0x0000 {
            continue;
        }
        let us = || v.get(..2).map(|b| u16::from_le_bytes([b[0], b[1]]));
        match elem {
            0x0002 => c.affected_sop_class_uid = Some(text(v)),
            0x0003 => c.requested_sop_class_uid = Some(text(v)),
            0x0100 => {
                c.command_field = us().ok_or(ParseError::MalformedElement)?;
                have_field = true;
            }
            0x0110 => c.message_id = us(),
            0x0120 => c.message_id_responded_to = us(),
            0x0600 => c.move_destination = Some(text(v)),
            0x0700 => c.priority = us(),
            0x0800 => c.data_set_type = us(),
            0x0900 => c.status = us(),
            0x0902 => c.error_comment = Some(text(v)),
            0x1000 => c.affected_sop_instance_uid = Some(text(v)),
            0x1001 => c.requested_sop_instance_uid = Some(text(v)),
            0x1002 => c.event_type_id = us(),
            0x1008 => c.action_type_id = us(),
            0x1020..=0x1023 => {
                if let Some(s) = c.sub_operations.get_mut(usize::from(elem - 0x1020)) {
                    *s = us();
                }
            }
            0x1030 => c.move_originator_ae_title = Some(text(v)),
            0x1031 => c.move_originator_message_id = us(),
            _ => {}
        }
    }
    if have_field {
        Ok(c)
    } else {
        Err(ParseError::MissingCommandField)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn item(t: u8, v: &[u8]) -> Vec<u8> {
        let mut o = vec![t, 0];
        o.extend_from_slice(&(v.len() as u16).to_be_bytes());
        o.extend_from_slice(v);
        o
    }

    fn field(v: &[u8]) -> Vec<u8> {
        let mut o = (v.len() as u16).to_be_bytes().to_vec();
        o.extend_from_slice(v);
        o
    }

    /// Hand-built A-ASSOCIATE-RQ body with every item type.
    pub(crate) fn rq_body() -> Vec<u8> {
        let mut b = vec![0x00, 0x01]; // protocol version 1
        b.extend_from_slice(&[0, 0]); // reserved
        b.extend_from_slice(b"PACS            "); // called AE
        b.extend_from_slice(b"MODALITY1       "); // calling AE
        b.extend_from_slice(&[0; 32]); // reserved
        b.extend(item(0x10, b"1.2.840.10008.3.1.1.1")); // application context
        let mut pc = vec![1, 0, 0, 0]; // context id 1, 3 reserved
        pc.extend(item(0x30, b"1.2.840.10008.5.1.4.1.1.2\0")); // abstract syntax: CT
        pc.extend(item(0x40, b"1.2.840.10008.1.2\0")); // implicit LE
        pc.extend(item(0x40, b"1.2.840.10008.1.2.1\0")); // explicit LE
        b.extend(item(0x20, &pc));
        let mut ui = Vec::new();
        ui.extend(item(0x51, &16384u32.to_be_bytes())); // max PDU length
        ui.extend(item(0x52, b"1.2.3.4")); // implementation class UID
        ui.extend(item(0x53, &[0, 2, 0, 3])); // async window: 2 invoked, 3 performed
        let mut role = field(b"1.2.840.10008.5.1.4.1.1.2"); // role selection: SOP class
        role.extend_from_slice(&[1, 0]); // SCU role 1, SCP role 0
        ui.extend(item(0x54, &role));
        ui.extend(item(0x55, b"TEST_1")); // implementation version name
        let mut ext = field(b"1.2.840.10008.5.1.4.1.2.1.1"); // SOP class extended
        ext.extend_from_slice(&[1, 1]); // 2 bytes of application info
        ui.extend(item(0x56, &ext));
        let mut com = field(b"1.2.840.10008.5.1.4.1.1.2"); // common ext: SOP class
        com.extend(field(b"1.2.840.10008.4.2")); // service class (storage)
        com.extend(field(&field(b"1.2.840.10008.5.1.4.1.1.2.1"))); // related general SOP classes
        ui.extend(item(0x57, &com));
        let mut uid = vec![2, 1]; // user identity type 2, positive response requested
        uid.extend(field(b"radiology")); // primary field
        uid.extend(field(b"secret")); // secondary field
        ui.extend(item(0x58, &uid));
        b.extend(item(0x50, &ui));
        b
    }

    #[test]
    fn associate_rq_with_every_item_type_decodes() {
        let p = parse_associate(&rq_body(), false).unwrap();
        let a = &p.assoc;
        assert_eq!(p.unknown_items, 0);
        assert_eq!(a.called_ae_title, "PACS");
        assert_eq!(a.calling_ae_title, "MODALITY1");
        assert_eq!(a.protocol_version, 1);
        assert_eq!(
            a.application_context.as_deref(),
            Some("1.2.840.10008.3.1.1.1")
        );
        assert_eq!(a.presentation_contexts.len(), 1);
        let pc = &a.presentation_contexts[0];
        assert_eq!(
            pc.abstract_syntax.as_deref(),
            Some("1.2.840.10008.5.1.4.1.1.2")
        );
        assert_eq!(
            pc.transfer_syntaxes,
            ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"]
        );
        let ui = a.request.as_ref().unwrap();
        assert_eq!(ui.max_pdu_length, Some(16384));
        assert_eq!(ui.implementation_class_uid.as_deref(), Some("1.2.3.4"));
        assert_eq!(ui.implementation_version_name.as_deref(), Some("TEST_1"));
        assert_eq!(ui.async_ops_window, Some((2, 3)));
        assert_eq!(ui.role_selections[0].scu_role, 1);
        assert_eq!(ui.sop_class_extended[0].1, 2);
        assert_eq!(
            ui.sop_class_common_extended[0].related_general_sop_classes,
            ["1.2.840.10008.5.1.4.1.1.2.1"]
        );
        let id = ui.user_identity.as_ref().unwrap();
        assert_eq!(id.identity_type, 2);
        assert!(id.positive_response_requested);
        assert_eq!(id.primary_field, b"radiology");
        assert_eq!(id.secondary_field, b"secret");
    }

    #[test]
    fn associate_rq_every_truncation_is_an_error_or_fewer_items() {
        let body = rq_body();
        for n in 0..body.len() {
            // A prefix either fails cleanly or (when cut between items)
            // yields a subset; it never panics.
            if let Ok(p) = parse_associate(&body[..n], false) {
                assert!(n >= 68, "fixed fields need 68 bytes, got {n}");
                assert!(p.assoc.presentation_contexts.len() <= 1);
            }
        }
    }

    #[test]
    fn associate_ac_with_result_and_server_response() {
        let mut b = vec![0x00, 0x01, 0, 0]; // version 1, reserved
        b.extend_from_slice(b"PACS            RADWS01         "); // called, calling
        b.extend_from_slice(&[0; 32]); // reserved
        let mut pc = vec![3, 0, 4, 0]; // id 3, reserved, result 4, reserved
        pc.extend(item(0x40, b"1.2.840.10008.1.2")); // transfer syntax
        b.extend(item(0x21, &pc));
        let mut ui = item(0x51, &0u32.to_be_bytes()); // max PDU 0 = unlimited
        ui.extend(item(0x59, &field(b"ok"))); // server response
        ui.extend(item(0x77, b"x")); // unknown sub-item
        b.extend(item(0x50, &ui));
        let p = parse_associate(&b, true).unwrap();
        assert_eq!(p.unknown_items, 1);
        let pc = &p.assoc.presentation_contexts[0];
        assert_eq!((pc.id, pc.result), (3, Some(4)));
        let r = p.assoc.response.as_ref().unwrap();
        assert_eq!(r.user_identity_server_response.as_deref(), Some(&b"ok"[..]));
        assert_eq!(r.max_pdu_length, Some(0));
    }

    #[test]
    fn item_with_oversized_length_is_malformed() {
        let mut b = rq_body()[..68].to_vec();
        b.extend_from_slice(&[0x10, 0, 0xff, 0xff, b'1']); // app context claiming 65535 bytes
        assert_eq!(parse_associate(&b, false), Err(ParseError::MalformedItem));
    }

    #[test]
    fn garbage_associate_never_panics() {
        let mut x: u32 = 12345;
        for len in 0..300 {
            let v: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = parse_associate(&v, false);
            let _ = parse_associate(&v, true);
            let _ = parse_command(&v);
        }
    }

    #[test]
    fn pdu_header_needs_six_bytes_and_known_type() {
        // Hand-built: P-DATA-TF header, reserved, length 0xffffffff (4 GiB).
        let h = [0x04, 0x00, 0xff, 0xff, 0xff, 0xff];
        for n in 0..6 {
            assert_eq!(
                parse_pdu_header(&h[..n]),
                Ok(Progress::NeedMore { needed: 6 - n })
            );
        }
        assert_eq!(
            parse_pdu_header(&h),
            Ok(Progress::Done {
                msg: PduHeader {
                    pdu_type: 4,
                    length: u32::MAX
                },
                consumed: 6
            })
        );
        assert_eq!(
            parse_pdu_header(&[0x47, 0x45, 0x54, 0x20, 0x2f, 0x20]),
            Err(ParseError::UnknownPduType(0x47))
        );
    }

    #[test]
    fn pdv_header_checks_length_against_pdu() {
        // Hand-built: PDV length 10, context 1, control 0x03 (last command).
        let h = [0, 0, 0, 10, 1, 3];
        let Ok(Progress::Done { msg, .. }) = parse_pdv_header(&h, 14) else {
            panic!("expected a header");
        };
        assert_eq!(msg.fragment_len, 8);
        assert!(msg.is_command() && msg.is_last());
        assert_eq!(parse_pdv_header(&h, 13), Err(ParseError::InvalidPdvLength));
        assert_eq!(
            parse_pdv_header(&[0, 0, 0, 1, 1, 3], 100),
            Err(ParseError::InvalidPdvLength)
        );
        assert_eq!(
            parse_pdv_header(&h[..3], 14),
            Ok(Progress::NeedMore { needed: 3 })
        );
    }

    #[test]
    fn reject_and_abort_fields() {
        // Hand-built: reserved, result 1, source 1, reason 7.
        assert_eq!(
            parse_reject(&[0, 1, 1, 7]),
            Ok(Reject {
                result: 1,
                source: 1,
                reason: 7
            })
        );
        // Hand-built: 2 reserved, source 2, reason 6.
        assert_eq!(
            parse_abort(&[0, 0, 2, 6]),
            Ok(Abort {
                source: 2,
                reason: 6
            })
        );
        assert_eq!(parse_reject(&[0, 1, 1]), Err(ParseError::MalformedPdu));
        assert_eq!(parse_abort(&[]), Err(ParseError::MalformedPdu));
    }

    fn elem(e: u16, v: &[u8]) -> Vec<u8> {
        let mut o = vec![0, 0];
        o.extend_from_slice(&e.to_le_bytes());
        o.extend_from_slice(&(v.len() as u32).to_le_bytes());
        o.extend_from_slice(v);
        o
    }

    #[test]
    fn c_find_rsp_command_set_decodes() {
        let mut c = elem(0x0002, b"1.2.840.10008.5.1.4.1.2.1.1\0"); // affected SOP class
        c.extend(elem(0x0100, &0x8020u16.to_le_bytes())); // command field C-FIND-RSP
        c.extend(elem(0x0120, &7u16.to_le_bytes())); // responded-to id 7
        c.extend(elem(0x0800, &0x0102u16.to_le_bytes())); // data set present
        c.extend(elem(0x0900, &0xff00u16.to_le_bytes())); // status pending
        c.extend(elem(0x1021, &5u16.to_le_bytes())); // completed sub-operations
        let cmd = parse_command(&c).unwrap();
        assert!(cmd.is_response() && cmd.has_data_set());
        assert_eq!(cmd.command_field, 0x8020);
        assert_eq!(cmd.message_id_responded_to, Some(7));
        assert_eq!(cmd.status, Some(0xff00));
        assert_eq!(cmd.sub_operations[1], Some(5));
        // Element boundaries: 36, 46, 56, 66, 76, 86 (the first element is
        // 8 + 28 bytes, the others 8 + 2). A prefix cut inside an element
        // is an error; one cut between elements is a command without the
        // later fields, or an error before the command field arrives.
        let bounds = [36, 46, 56, 66, 76, 86];
        for n in 0..c.len() {
            match parse_command(&c[..n]) {
                Ok(_) => assert!(bounds.contains(&n) && n >= 46, "prefix {n}"),
                Err(e) if bounds.contains(&n) || n == 0 => {
                    assert_eq!(e, ParseError::MissingCommandField, "prefix {n}")
                }
                Err(e) => assert_eq!(e, ParseError::MalformedElement, "prefix {n}"),
            }
        }
        let mut bad = c.clone();
        bad.extend_from_slice(&[0, 0, 0, 9, 0xff, 0xff, 0xff, 0xff]); // length 4 GiB
        assert_eq!(parse_command(&bad), Err(ParseError::MalformedElement));
    }

    const LIM: BoundaryLimits<'static> = BoundaryLimits {
        max_association_pdu: 65536,
        max_pdata_pdu: None,
        max_resync_pdu: 1 << 20,
        contexts: None,
    };

    fn with_header(t: u8, reserved: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![t, reserved];
        v.extend_from_slice(&(body.len() as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn real_pdus_are_plausible_in_both_modes_at_every_length_they_need() {
        let mut pdata = vec![0, 0, 0, 4, 1, 3, 0xaa, 0xbb]; // PDV: length 4, context 1, last command
        pdata.extend_from_slice(&[0, 0, 0, 3, 1, 2, 0xcc]); // PDV: length 3, context 1, last data
        let pdus = [
            with_header(1, 0, &rq_body()),
            with_header(4, 0, &pdata),
            with_header(3, 0, &[0, 1, 1, 7]), // RJ: permanent, user, reason 7
            with_header(5, 0, &[0; 4]),       // RELEASE-RQ
            with_header(7, 0, &[0, 0, 2, 6]), // ABORT: provider, reason 6
        ];
        for p in &pdus {
            for check in [Check::Lenient, Check::Strict] {
                assert_eq!(plausible_pdu(p, check, &LIM), Plausible::Yes, "{p:02x?}");
                // A prefix is undecided until the bytes the check needs.
                let Plausible::NeedMore(n) = plausible_pdu(&p[..5], check, &LIM) else {
                    panic!("5 bytes decided {p:02x?}");
                };
                assert_eq!(n, 6);
                for k in 6..p.len() {
                    match plausible_pdu(&p[..k], check, &LIM) {
                        Plausible::Yes => {}
                        Plausible::NeedMore(n) => assert!(n > k, "{k}: {n}"),
                        Plausible::No => panic!("prefix {k} of {p:02x?} rejected"),
                    }
                }
            }
        }
    }

    #[test]
    fn reserved_bytes_are_checked_only_when_strict() {
        // Hand-built: the RQ and a RELEASE-RQ with their reserved PDU byte
        // set (PS3.8: sent as 00H, not tested by the receiver).
        for p in [with_header(1, 9, &rq_body()), with_header(5, 9, &[0; 4])] {
            assert_eq!(plausible_pdu(&p, Check::Lenient, &LIM), Plausible::Yes);
            assert_eq!(plausible_pdu(&p, Check::Strict, &LIM), Plausible::No);
        }
    }

    #[test]
    fn pdvs_that_do_not_tile_or_use_even_contexts_are_implausible() {
        // Hand-built P-DATA-TF bodies.
        let bad = [
            vec![0, 0, 0, 4, 1, 3, 0xaa, 0xbb, 0xcc], // PDV 4 bytes in a 9-byte PDU: 1 byte left over
            vec![0, 0, 0, 9, 1, 3, 0xaa, 0xbb],       // PDV longer than the PDU
            vec![0, 0, 0, 2, 2, 3],                   // context 2 (even)
            vec![0, 0, 0, 1, 1, 3],                   // PDV shorter than its header
            vec![0, 0, 0, 2, 1, 3, 0, 0, 0, 2, 4, 0], // second PDV on context 4
        ];
        for b in &bad {
            let p = with_header(4, 0, b);
            assert_eq!(
                plausible_pdu(&p, Check::Lenient, &LIM),
                Plausible::No,
                "{b:02x?}"
            );
        }
        // Control header bits 2-7 are reserved: checked when strict only.
        let p = with_header(4, 0, &[0, 0, 0, 2, 1, 0x43]);
        assert_eq!(plausible_pdu(&p, Check::Lenient, &LIM), Plausible::Yes);
        assert_eq!(plausible_pdu(&p, Check::Strict, &LIM), Plausible::No);
        // Contexts of the association, when known.
        let lim = BoundaryLimits {
            contexts: Some(&[1, 3]),
            ..LIM
        };
        let p = with_header(4, 0, &[0, 0, 0, 2, 5, 3]);
        assert_eq!(plausible_pdu(&p, Check::Lenient, &lim), Plausible::No);
    }

    #[test]
    fn pdata_length_is_bounded_by_the_receiver_or_the_resync_limit() {
        // Hand-built: a P-DATA-TF of 2 MiB with one PDV covering it.
        let mut p = vec![4, 0];
        p.extend_from_slice(&(2u32 << 20).to_be_bytes());
        p.extend_from_slice(&((2u32 << 20) - 4).to_be_bytes());
        p.extend_from_slice(&[1, 0]);
        assert_eq!(plausible_pdu(&p, Check::Lenient, &LIM), Plausible::Yes);
        assert_eq!(plausible_pdu(&p, Check::Strict, &LIM), Plausible::No);
        let announced = BoundaryLimits {
            max_pdata_pdu: Some(16384),
            ..LIM
        };
        assert_eq!(plausible_pdu(&p, Check::Lenient, &announced), Plausible::No);
    }

    #[test]
    fn garbage_is_never_plausible_past_the_lookahead() {
        let mut x: u32 = 99;
        let g: Vec<u8> = (0..20000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        for i in 0..g.len() {
            for check in [Check::Lenient, Check::Strict] {
                if let Plausible::NeedMore(n) = plausible_pdu(&g[i..], check, &LIM) {
                    assert!(n <= BOUNDARY_LOOKAHEAD && n > g.len() - i);
                }
            }
        }
    }
}
