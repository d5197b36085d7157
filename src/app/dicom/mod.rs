//! DICOM app layer: the Upper Layer protocol (PS3.8 §9.3), DIMSE command
//! sets (PS3.7 §9, §10) and the patient/study attributes of the data sets
//! they carry (PS3.5 §7), decoded from both directions of a TCP stream.
//!
//! Owns: PDU framing, the association (AE titles, presentation contexts,
//! user information), PDV reassembly per presentation context, request /
//! response pairing by message id, and the [`Record`]s they produce.
//!
//! Invariants: only association PDUs (bounded by
//! [`DicomConfig::max_association_pdu`]), command sets (bounded by
//! [`DicomConfig::max_command_length`]), element headers and the values of
//! kept attributes (bounded by [`DicomConfig::max_value_length`]) are ever
//! copied. A P-DATA-TF PDU is read item by item as its bytes arrive, bulk
//! elements are counted down, never stored, and a data set stops being read
//! at Pixel Data (7FE0,0010): memory does not grow with the size of an
//! image or of a declared length. Kept attributes are bounded per data set
//! ([`DicomConfig::max_attributes`], [`DicomConfig::max_attribute_bytes`]),
//! requests awaiting answers per association
//! ([`DicomConfig::max_open_bytes`]); what is not kept is counted in the
//! record.
//!
//! Lossy input: a stream that does not start with a PDU, or loses bytes,
//! is resynchronised on the next plausible PDU; a gap where an answer was
//! awaited closes what awaited it (`answer_lost`); a data set whose
//! transfer syntax was negotiated out of sight is decoded in an inferred
//! one ([`state`] has the rules).
//!
//! Split: [`parser`] is stateless byte parsing, [`state`] the per-flow
//! state machine and limits, [`log`] the EVE `dicom` object, [`uid`] the
//! names of well-known UIDs.

pub mod dataset;
pub mod detect;
pub mod log;
pub mod parser;
pub mod state;
pub mod uid;

use serde::Deserialize;

use crate::app::StreamConsumer;
use crate::flow::Direction;

pub use state::Parser;

/// `app_layer.dicom` configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DicomConfig {
    /// Largest A-ASSOCIATE/RELEASE/ABORT PDU (bytes after the 6-byte
    /// header) that is buffered and decoded; a longer one is skipped with an
    /// anomaly. P-DATA-TF PDUs are streamed and have no such limit.
    pub max_association_pdu: u32,
    /// Largest DIMSE command set (bytes) that is buffered and decoded.
    pub max_command_length: u32,
    /// Longest attribute value kept from a data set; a longer one is skipped
    /// and marked truncated.
    pub max_value_length: u32,
    /// Requests awaiting a response per association; past it the oldest is
    /// logged unanswered.
    pub max_pending: u32,
    /// C-FIND/C-GET/C-MOVE pending-response data sets logged per exchange
    /// (the rest are counted).
    pub max_matches: u32,
    /// Bytes of a deflated data set inflated before giving up on it. The
    /// inflater streams (fixed 32 KiB window): this bounds time, not
    /// memory.
    pub max_inflated: u64,
    /// Attributes kept per data set; the occurrences past it are counted in
    /// `attributes_dropped`.
    pub max_attributes: u32,
    /// Value bytes kept per data set; values past it are listed as
    /// truncated.
    pub max_attribute_bytes: u32,
    /// Bytes that an association's requests awaiting their final response
    /// (with their data sets and C-FIND matches) may hold; past it the
    /// oldest exchange is logged as it stands.
    pub max_open_bytes: u64,
    /// Bytes scanned for the next plausible PDU after a gap or a framing
    /// error before that direction is given up.
    pub max_resync: u64,
    /// Longest P-DATA-TF PDU taken for a resynchronisation point when the
    /// receiving side announced no maximum length.
    pub max_resync_pdu: u32,
}

impl Default for DicomConfig {
    fn default() -> Self {
        DicomConfig {
            max_association_pdu: 65536,
            max_command_length: 16384,
            max_value_length: 1024,
            max_pending: 64,
            max_matches: 32,
            max_inflated: 64 << 20,
            max_attributes: 64,
            max_attribute_bytes: 16384,
            max_open_bytes: 1 << 20,
            max_resync: 16 << 20,
            max_resync_pdu: 1 << 20,
        }
    }
}

/// One DICOM record for EVE and detection: an association or a DIMSE
/// exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// One per association, written when it ends (released, aborted,
    /// rejected, or the flow ended).
    Association(Box<Association>),
    /// One per DIMSE exchange: a request with its final response.
    Dimse(Box<Exchange>),
}

/// A UID as sent (trailing NUL/space padding removed).
pub type Uid = String;

/// An association: what the A-ASSOCIATE-RQ proposed and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Association {
    /// Calling AE title (the requester), trailing spaces removed.
    pub calling_ae_title: String,
    /// Called AE title (the acceptor).
    pub called_ae_title: String,
    /// Protocol-version field of the A-ASSOCIATE-RQ (bit 0 = version 1).
    pub protocol_version: u16,
    /// Application context name of the request.
    pub application_context: Option<Uid>,
    /// Proposed presentation contexts, with the acceptor's answers.
    pub presentation_contexts: Vec<PresentationContext>,
    /// User information of the A-ASSOCIATE-RQ (empty when the RQ had
    /// none); `None` when the RQ was not seen (picked up mid-association,
    /// or lost in a gap).
    pub request: Option<UserInfo>,
    /// User information of the A-ASSOCIATE-AC.
    pub response: Option<UserInfo>,
    /// How it ended.
    pub outcome: Outcome,
    /// A-ASSOCIATE-RJ fields, when rejected.
    pub reject: Option<Reject>,
    /// A-ABORT fields and the direction it travelled, when aborted.
    pub abort: Option<(Abort, Direction)>,
    /// A-RELEASE-RQ seen.
    pub release_requested: bool,
    /// DIMSE exchanges logged for this association.
    pub exchanges: u32,
    /// The direction answers travel in had a gap while an answer was
    /// awaited (A-ASSOCIATE-AC/RJ, A-RELEASE-RP): it was lost, not refused.
    pub answer_lost: bool,
}

/// How an association ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Outcome {
    /// The flow ended before the association did.
    #[default]
    Incomplete,
    /// A-ASSOCIATE-RJ.
    Rejected,
    /// A-RELEASE-RQ answered by A-RELEASE-RP.
    Released,
    /// A-ABORT.
    Aborted,
}

/// One presentation context item (0x20 in RQ, 0x21 in AC).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PresentationContext {
    pub id: u8,
    /// Abstract syntax (SOP class) proposed.
    pub abstract_syntax: Option<Uid>,
    /// Transfer syntaxes proposed.
    pub transfer_syntaxes: Vec<Uid>,
    /// Result/reason of the AC (0 acceptance … 4 transfer syntaxes not
    /// supported), `None` while unanswered.
    pub result: Option<u8>,
    /// Transfer syntax the acceptor chose.
    pub accepted_transfer_syntax: Option<Uid>,
}

/// User information item (0x50) and its sub-items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// 0x51 maximum length received (0 = unlimited).
    pub max_pdu_length: Option<u32>,
    /// 0x52 implementation class UID.
    pub implementation_class_uid: Option<Uid>,
    /// 0x55 implementation version name.
    pub implementation_version_name: Option<String>,
    /// 0x53 asynchronous operations window: (invoked, performed).
    pub async_ops_window: Option<(u16, u16)>,
    /// 0x54 SCP/SCU role selections.
    pub role_selections: Vec<RoleSelection>,
    /// 0x56 SOP class extended negotiation: SOP class and the length of its
    /// service-class application information.
    pub sop_class_extended: Vec<(Uid, usize)>,
    /// 0x57 SOP class common extended negotiation.
    pub sop_class_common_extended: Vec<CommonExtended>,
    /// 0x58 user identity (RQ).
    pub user_identity: Option<UserIdentity>,
    /// 0x59 user identity server response (AC).
    pub user_identity_server_response: Option<Vec<u8>>,
}

/// SCP/SCU role selection sub-item (0x54).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleSelection {
    pub sop_class_uid: Uid,
    pub scu_role: u8,
    pub scp_role: u8,
}

/// SOP class common extended negotiation sub-item (0x57).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommonExtended {
    pub sop_class_uid: Uid,
    pub service_class_uid: Uid,
    pub related_general_sop_classes: Vec<Uid>,
}

/// User identity negotiation sub-item (0x58, PS3.7 §D.3.3.7).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserIdentity {
    /// 1 username, 2 username and passcode, 3 Kerberos, 4 SAML, 5 JWT.
    pub identity_type: u8,
    pub positive_response_requested: bool,
    /// Username, or the Kerberos ticket / SAML assertion / JWT.
    pub primary_field: Vec<u8>,
    /// Passcode (type 2 only).
    pub secondary_field: Vec<u8>,
}

/// A-ASSOCIATE-RJ fields (PS3.8 §9.3.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reject {
    pub result: u8,
    pub source: u8,
    pub reason: u8,
}

/// A-ABORT fields (PS3.8 §9.3.8).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Abort {
    pub source: u8,
    pub reason: u8,
}

/// The fields of a DIMSE command set (PS3.7 §9.3, §10.3, Annex E).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Command {
    /// (0000,0100).
    pub command_field: u16,
    /// (0000,0110).
    pub message_id: Option<u16>,
    /// (0000,0120).
    pub message_id_responded_to: Option<u16>,
    /// (0000,0002).
    pub affected_sop_class_uid: Option<Uid>,
    /// (0000,0003).
    pub requested_sop_class_uid: Option<Uid>,
    /// (0000,1000).
    pub affected_sop_instance_uid: Option<Uid>,
    /// (0000,1001).
    pub requested_sop_instance_uid: Option<Uid>,
    /// (0000,0700): 0 medium, 1 high, 2 low.
    pub priority: Option<u16>,
    /// (0000,0800): 0x0101 means no data set follows.
    pub data_set_type: Option<u16>,
    /// (0000,0900).
    pub status: Option<u16>,
    /// (0000,0902).
    pub error_comment: Option<String>,
    /// (0000,0600).
    pub move_destination: Option<String>,
    /// (0000,1030).
    pub move_originator_ae_title: Option<String>,
    /// (0000,1031).
    pub move_originator_message_id: Option<u16>,
    /// (0000,1002).
    pub event_type_id: Option<u16>,
    /// (0000,1008).
    pub action_type_id: Option<u16>,
    /// (0000,1020..1023): remaining, completed, failed, warning.
    pub sub_operations: [Option<u16>; 4],
}

impl Command {
    /// Bit 15 of the command field marks responses.
    pub fn is_response(&self) -> bool {
        self.command_field & 0x8000 != 0
    }

    /// A data set follows the command set.
    pub fn has_data_set(&self) -> bool {
        self.data_set_type.is_some_and(|t| t != 0x0101)
    }
}

/// One kept attribute of a data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// (group << 16) | element.
    pub tag: u32,
    /// Value decoded with the data set's specific character set, padding
    /// removed.
    pub value: String,
    /// The value was longer than the configured limit and was not read.
    pub truncated: bool,
}

/// What was read of a data set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataSet {
    /// Transfer syntax it was decoded with.
    pub transfer_syntax: Option<Uid>,
    /// `transfer_syntax` was recognised from the data set's first bytes
    /// (the A-ASSOCIATE-AC was not seen and the context proposed several).
    pub transfer_syntax_guessed: bool,
    /// Kept attributes, in stream order (top level only).
    pub attributes: Vec<Attribute>,
    /// Occurrences of kept attributes that were not kept: repeats of a tag
    /// between its first and latest occurrence, those past
    /// [`DicomConfig::max_attributes`], those dropped under memory
    /// pressure.
    pub attributes_dropped: u32,
    /// Bytes of the data set on the wire.
    pub length: u64,
    /// Pixel Data was reached and skipped.
    pub pixel_data_skipped: bool,
    /// The data set could not be read to its end (malformed, over a limit).
    pub incomplete: bool,
}

impl DataSet {
    /// The value of attribute `tag`, if kept.
    pub fn get(&self, tag: u32) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.tag == tag)
            .map(|a| a.value.as_str())
    }
}

/// A DIMSE message: a command and its data set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub presentation_context_id: u8,
    pub command: Command,
    pub data_set: Option<DataSet>,
}

/// A DIMSE exchange: a request and its final response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exchange {
    /// AE titles of the association (empty when picked up mid-stream).
    pub calling_ae_title: String,
    pub called_ae_title: String,
    /// Abstract syntax of the presentation context used.
    pub abstract_syntax: Option<Uid>,
    /// Direction the request travelled.
    pub request_dir: Option<Direction>,
    pub request: Option<Message>,
    /// The final (non-pending) response.
    pub response: Option<Message>,
    /// Pending responses seen (C-FIND/C-GET/C-MOVE).
    pub pending_responses: u32,
    /// The pending responses with their data sets (C-FIND matches), up to
    /// [`DicomConfig::max_matches`].
    pub pending: Vec<Message>,
    /// A C-CANCEL-RQ was sent for this request.
    pub cancelled: bool,
    /// The direction the response travels in had a gap while it was
    /// awaited: the exchange was closed without its final response.
    pub answer_lost: bool,
}

/// The parser of one DICOM flow.
pub fn new_parser(cfg: &DicomConfig) -> Option<Box<dyn StreamConsumer>> {
    Some(Box::new(Parser::new(cfg)))
}

/// DICOM as the session and the registry see it
/// ([`crate::app::PROTOCOLS`]).
#[derive(Debug)]
pub struct Dicom;

pub static PROTOCOL: Dicom = Dicom;

impl crate::app::AppProtocol for Dicom {
    fn proto(&self) -> crate::app::AppProto {
        crate::app::AppProto::Dicom
    }
    fn name(&self) -> &'static str {
        "dicom"
    }
    fn ports<'c>(&self, cfg: &'c crate::app::AppConfig) -> &'c [u16] {
        &cfg.dicom_ports
    }
    fn probe_start(&self, data: &[u8]) -> crate::app::Verdict {
        crate::app::probe::dicom_start(data)
    }
    fn probe_midstream(&self, data: &[u8]) -> Option<crate::app::Midstream> {
        crate::app::probe::dicom_midstream(data)
    }
    fn parser(&self, cfg: &crate::app::AppConfig) -> Option<Box<dyn StreamConsumer>> {
        new_parser(&cfg.dicom)
    }
    fn keywords(&self) -> Option<&'static dyn crate::detect::Keywords> {
        Some(&PROTOCOL)
    }
}
