//! The per-flow DICOM state machine: PDU framing of each direction, the
//! association, PDV reassembly per presentation context, and DIMSE request
//! / response pairing (PS3.8 §9.3, PS3.7 §9.1, §10.1).
//!
//! Framing, per direction:
//!
//! ```text
//!   PduHeader ──type 1,2,3,5,6,7 (≤ max_association_pdu)──► AssocBody ──► PduHeader
//!       │     ──over the limit──► Skip(len) ──► PduHeader
//!       └──type 4 (P-DATA-TF)──► PdvHeader ⇄ PdvData ──PDU consumed──► PduHeader
//! ```
//!
//! A P-DATA-TF PDU is never buffered: its 6-byte header, then each PDV
//! item header, are read, and fragment bytes go straight to the
//! presentation context's assembler — a bounded command buffer or a
//! [`DataSetReader`] that keeps only small attributes. An unknown PDU type
//! stops the direction (nothing left to frame on); a bad PDV length skips
//! to the end of its PDU; a gap stops the direction. Every stop, skip and
//! malformed unit is an anomaly record (at most [`MAX_ANOMALIES`] a flow).

use super::dataset::{DataSetReader, Syntax};
use super::parser::{self, pdu_type, ParseError, PdvHeader, Progress};
use super::{
    Association, DataSet, DicomConfig, Exchange, Message, Outcome, PresentationContext, Record,
};
use crate::app::{Anomaly, AppProto, AppRecord, StreamConsumer, StreamContext};
use crate::flow::Direction;

/// Anomaly records a flow may raise; later ones are counted only.
pub const MAX_ANOMALIES: u32 = 32;
/// Presentation context ids are odd numbers 1..=255: at most 128.
const MAX_CONTEXTS: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    PduHeader,
    AssocBody { pdu_type: u8, len: usize },
    PdvHeader,
    PdvData(PdvHeader),
    Skip(u64),
    Stopped,
}

/// A message being assembled on one presentation context of one direction.
#[derive(Debug)]
struct Assembly {
    id: u8,
    command_buf: Vec<u8>,
    command_over: bool,
    /// The command, once complete, while its data set arrives.
    command: Option<super::Command>,
    data: Option<DataSetReader>,
}

#[derive(Debug)]
struct DirState {
    phase: Phase,
    /// Bytes of a PDU or PDV header cut by a segment end (≤ 6).
    hdr: Vec<u8>,
    /// An association PDU body being gathered (≤ `max_association_pdu`).
    body: Vec<u8>,
    /// Bytes left in the current P-DATA-TF PDU.
    pdu_left: u64,
    /// Bytes left in the current PDV fragment.
    pdv_left: u64,
    contexts: Vec<Assembly>,
    /// A data set fragment arrived with no command before it (reported once).
    orphan_reported: bool,
}

impl Default for DirState {
    fn default() -> Self {
        DirState {
            phase: Phase::PduHeader,
            hdr: Vec::new(),
            body: Vec::new(),
            pdu_left: 0,
            pdv_left: 0,
            contexts: Vec::new(),
            orphan_reported: false,
        }
    }
}

/// A request waiting for its final response.
#[derive(Debug)]
struct Open {
    /// Direction of the request and its message id.
    dir: Direction,
    id: u16,
    ex: Exchange,
}

/// The DICOM parser of one flow.
#[derive(Debug)]
pub struct Parser {
    cfg: DicomConfig,
    dirs: [DirState; 2],
    /// The association in progress, if an A-ASSOCIATE-RQ/AC (or P-DATA
    /// mid-stream) was seen since the last one ended.
    assoc: Option<Association>,
    open: Vec<Open>,
    anomalies: u32,
    /// P-DATA-TF without an association (mid-stream pickup), reported once.
    missing_assoc_reported: bool,
}

impl Parser {
    pub fn new(cfg: &DicomConfig) -> Self {
        Parser {
            cfg: cfg.clone(),
            dirs: Default::default(),
            assoc: None,
            open: Vec::new(),
            anomalies: 0,
            missing_assoc_reported: false,
        }
    }

    /// Bytes this parser holds for incomplete units — PDU/PDV headers,
    /// association PDU bodies, command sets, cut element headers and kept
    /// values (test hook for the memory bound; decoded records are not
    /// counted).
    #[doc(hidden)]
    pub fn buffered_bytes(&self) -> usize {
        self.dirs
            .iter()
            .map(|d| {
                d.hdr.capacity()
                    + d.body.capacity()
                    + d.contexts
                        .iter()
                        .map(|c| {
                            c.command_buf.capacity()
                                + c.data.as_ref().map_or(0, DataSetReader::buffered)
                        })
                        .sum::<usize>()
            })
            .sum()
    }

    fn anomaly(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, event: &'static str) {
        self.anomalies = self.anomalies.saturating_add(1);
        if self.anomalies <= MAX_ANOMALIES {
            ctx.records.push(AppRecord::Anomaly(Anomaly {
                app_proto: AppProto::Dicom,
                event,
                dir,
            }));
        }
    }

    fn feed(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, mut data: &[u8]) {
        let d = dir.index();
        while !data.is_empty() {
            let Some(st) = self.dirs.get_mut(d) else {
                return;
            };
            match st.phase {
                Phase::Stopped => return,
                Phase::Skip(n) => {
                    let k = usize::try_from(n).unwrap_or(usize::MAX).min(data.len());
                    data = data.get(k..).unwrap_or(&[]);
                    let left = n.saturating_sub(k as u64);
                    st.phase = if left > 0 {
                        Phase::Skip(left)
                    } else {
                        Phase::PduHeader
                    };
                }
                Phase::PduHeader | Phase::PdvHeader => {
                    let Some((h, rest)) = take_header(&mut st.hdr, data) else {
                        return;
                    };
                    data = rest;
                    if st.phase == Phase::PduHeader {
                        self.on_pdu_header(ctx, dir, &h);
                    } else {
                        self.on_pdv_header(ctx, dir, &h);
                    }
                }
                Phase::AssocBody { pdu_type, len } => {
                    let k = len.saturating_sub(st.body.len()).min(data.len());
                    // Copied: an association PDU is decoded whole; its
                    // length was checked against `max_association_pdu`.
                    st.body.extend_from_slice(data.get(..k).unwrap_or(&[]));
                    data = data.get(k..).unwrap_or(&[]);
                    if st.body.len() >= len {
                        let body = std::mem::take(&mut st.body);
                        st.phase = Phase::PduHeader;
                        self.on_assoc_pdu(ctx, dir, pdu_type, &body);
                    }
                }
                Phase::PdvData(h) => {
                    let k = usize::try_from(st.pdv_left)
                        .unwrap_or(usize::MAX)
                        .min(data.len());
                    let (frag, rest) = data.split_at(k);
                    data = rest;
                    st.pdv_left -= k as u64;
                    st.pdu_left = st.pdu_left.saturating_sub(k as u64);
                    self.on_fragment(ctx, dir, h, frag);
                }
            }
        }
    }

    fn on_pdu_header(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, h: &[u8]) {
        let hdr = match parser::parse_pdu_header(h) {
            Ok(Progress::Done { msg, .. }) => msg,
            Ok(_) => return,
            Err(e) => {
                self.anomaly(ctx, dir, e.event());
                self.stop(dir);
                return;
            }
        };
        let max = self.cfg.max_association_pdu;
        let Some(st) = self.dirs.get_mut(dir.index()) else {
            return;
        };
        if hdr.pdu_type == pdu_type::P_DATA_TF {
            st.pdu_left = u64::from(hdr.length);
            st.phase = Phase::PdvHeader;
            if hdr.length == 0 {
                st.phase = Phase::PduHeader;
            }
            if self.assoc.is_none() && !self.missing_assoc_reported {
                self.missing_assoc_reported = true;
                self.anomaly(ctx, dir, "missing_association");
            }
        } else if hdr.length > max {
            st.phase = Phase::Skip(u64::from(hdr.length));
            self.anomaly(ctx, dir, "pdu_too_long");
        } else {
            let len = usize::try_from(hdr.length).unwrap_or(0);
            st.phase = Phase::AssocBody {
                pdu_type: hdr.pdu_type,
                len,
            };
            if len == 0 {
                st.phase = Phase::PduHeader;
                self.on_assoc_pdu(ctx, dir, hdr.pdu_type, &[]);
            }
        }
    }

    fn on_pdv_header(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, h: &[u8]) {
        let Some(st) = self.dirs.get_mut(dir.index()) else {
            return;
        };
        match parser::parse_pdv_header(h, st.pdu_left) {
            Ok(Progress::Done { msg, consumed }) => {
                st.pdu_left = st.pdu_left.saturating_sub(consumed as u64);
                st.pdv_left = u64::from(msg.fragment_len);
                st.phase = Phase::PdvData(msg);
                if msg.fragment_len == 0 {
                    self.on_fragment(ctx, dir, msg, &[]);
                }
            }
            Ok(_) => {}
            Err(e) => {
                // Resynchronise on the next PDU: the rest of this one
                // (after the 6 header bytes already read) is skipped.
                let left = st.pdu_left.saturating_sub(6);
                st.pdu_left = 0;
                st.phase = if left > 0 {
                    Phase::Skip(left)
                } else {
                    Phase::PduHeader
                };
                self.anomaly(ctx, dir, e.event());
            }
        }
    }

    fn stop(&mut self, dir: Direction) {
        if let Some(st) = self.dirs.get_mut(dir.index()) {
            *st = DirState {
                phase: Phase::Stopped,
                ..Default::default()
            };
        }
    }

    /// The transfer syntax accepted for presentation context `id`.
    fn transfer_syntax(&self, id: u8) -> Option<String> {
        self.assoc
            .as_ref()?
            .presentation_contexts
            .iter()
            .find(|p| p.id == id)?
            .accepted_transfer_syntax
            .clone()
    }

    fn on_fragment(
        &mut self,
        ctx: &mut StreamContext<'_>,
        dir: Direction,
        h: PdvHeader,
        frag: &[u8],
    ) {
        let d = dir.index();
        let Some(st) = self.dirs.get_mut(d) else {
            return;
        };
        let done = st.pdv_left == 0;
        let mut short = false;
        if done {
            st.phase = if st.pdu_left == 0 {
                Phase::PduHeader
            } else if st.pdu_left < parser::PDV_HEADER_LEN as u64 {
                // Too few bytes left for another PDV item: skip them.
                short = true;
                Phase::Skip(std::mem::take(&mut st.pdu_left))
            } else {
                Phase::PdvHeader
            };
        }
        if short {
            self.anomaly(ctx, dir, "invalid_pdv_length");
        }
        let id = h.presentation_context_id;
        let max_cmd = self.cfg.max_command_length as usize;
        let Some(st) = self.dirs.get_mut(d) else {
            return;
        };
        let pos = match st.contexts.iter().position(|c| c.id == id) {
            Some(p) => p,
            None if st.contexts.len() < MAX_CONTEXTS => {
                st.contexts.push(Assembly {
                    id,
                    command_buf: Vec::new(),
                    command_over: false,
                    command: None,
                    data: None,
                });
                st.contexts.len() - 1
            }
            None => return,
        };
        let Some(asm) = st.contexts.get_mut(pos) else {
            return;
        };
        if h.is_command() {
            if asm.command_buf.len().saturating_add(frag.len()) > max_cmd {
                asm.command_over = true;
                asm.command_buf = Vec::new();
            } else if !asm.command_over {
                // Copied: a command set is decoded whole (≤ max_command_length).
                asm.command_buf.extend_from_slice(frag);
            }
            if done && h.is_last() {
                let buf = std::mem::take(&mut asm.command_buf);
                let over = std::mem::replace(&mut asm.command_over, false);
                asm.data = None;
                asm.command = None;
                if over {
                    self.anomaly(ctx, dir, "command_too_long");
                    return;
                }
                match parser::parse_command(&buf) {
                    Ok(cmd) if cmd.has_data_set() => {
                        let ts = self.transfer_syntax(id);
                        let syntax = ts.as_deref().map_or(Syntax::IMPLICIT_LE, Syntax::from_uid);
                        let reader = DataSetReader::new(
                            syntax,
                            self.cfg.max_value_length as usize,
                            self.cfg.max_inflated,
                        );
                        if let Some(asm) =
                            self.dirs.get_mut(d).and_then(|s| s.contexts.get_mut(pos))
                        {
                            asm.command = Some(cmd);
                            asm.data = Some(reader);
                        }
                    }
                    Ok(cmd) => self.on_message(
                        ctx,
                        dir,
                        Message {
                            presentation_context_id: id,
                            command: cmd,
                            data_set: None,
                        },
                    ),
                    Err(e) => self.anomaly(ctx, dir, e.event()),
                }
            }
            return;
        }
        // A data set fragment.
        let Some(reader) = asm.data.as_mut() else {
            if !st.orphan_reported {
                st.orphan_reported = true;
                self.anomaly(ctx, dir, "unexpected_data_set");
            }
            return;
        };
        reader.feed(frag);
        let err = reader.take_error();
        let finished = done && h.is_last();
        let taken = if finished {
            asm.data.take().zip(asm.command.take())
        } else {
            None
        };
        if let Some(e) = err {
            self.anomaly(ctx, dir, e);
        }
        if let Some((reader, command)) = taken {
            let ds: DataSet = reader.finish(self.transfer_syntax(id));
            self.on_message(
                ctx,
                dir,
                Message {
                    presentation_context_id: id,
                    command,
                    data_set: Some(ds),
                },
            );
        }
    }

    fn new_exchange(&self, id: u8) -> Exchange {
        let (calling, called, abs) = match &self.assoc {
            Some(a) => (
                a.calling_ae_title.clone(),
                a.called_ae_title.clone(),
                a.presentation_contexts
                    .iter()
                    .find(|p| p.id == id)
                    .and_then(|p| p.abstract_syntax.clone()),
            ),
            None => Default::default(),
        };
        Exchange {
            calling_ae_title: calling,
            called_ae_title: called,
            abstract_syntax: abs,
            ..Default::default()
        }
    }

    fn emit_exchange(&mut self, ctx: &mut StreamContext<'_>, ex: Exchange) {
        if let Some(a) = self.assoc.as_mut() {
            a.exchanges = a.exchanges.saturating_add(1);
        }
        ctx.records
            .push(AppRecord::Dicom(Record::Dimse(Box::new(ex))));
    }

    fn on_message(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, msg: Message) {
        let c = &msg.command;
        if c.command_field == 0x0FFF {
            // C-CANCEL-RQ refers to the request it cancels.
            let to = c.message_id_responded_to;
            if let Some(o) = self
                .open
                .iter_mut()
                .find(|o| o.dir == dir && Some(o.id) == to)
            {
                o.ex.cancelled = true;
            }
            return;
        }
        if !c.is_response() {
            if self.open.len() >= self.cfg.max_pending as usize && !self.open.is_empty() {
                let oldest = self.open.remove(0);
                self.anomaly(ctx, dir, "too_many_pending_requests");
                self.emit_exchange(ctx, oldest.ex);
            }
            let mut ex = self.new_exchange(msg.presentation_context_id);
            ex.request_dir = Some(dir);
            let id = c.message_id.unwrap_or(0);
            ex.request = Some(msg);
            self.open.push(Open { dir, id, ex });
            return;
        }
        let to = c.message_id_responded_to.unwrap_or(0);
        let pending = matches!(c.status, Some(0xFF00 | 0xFF01));
        let pos = self.open.iter().position(|o| o.dir != dir && o.id == to);
        let pos = match pos {
            Some(p) => p,
            None => {
                // A response to a request not seen (mid-stream pickup).
                let mut ex = self.new_exchange(msg.presentation_context_id);
                ex.request_dir = Some(dir.reverse());
                self.open.push(Open {
                    dir: dir.reverse(),
                    id: to,
                    ex,
                });
                self.open.len() - 1
            }
        };
        if pending {
            let max = self.cfg.max_matches as usize;
            if let Some(o) = self.open.get_mut(pos) {
                o.ex.pending_responses = o.ex.pending_responses.saturating_add(1);
                if o.ex.pending.len() < max {
                    o.ex.pending.push(msg);
                }
            }
            return;
        }
        let mut o = self.open.remove(pos);
        o.ex.response = Some(msg);
        self.emit_exchange(ctx, o.ex);
    }

    fn flush_open(&mut self, ctx: &mut StreamContext<'_>) {
        for o in std::mem::take(&mut self.open) {
            self.emit_exchange(ctx, o.ex);
        }
    }

    fn end_association(&mut self, ctx: &mut StreamContext<'_>, outcome: Outcome) {
        self.flush_open(ctx);
        if let Some(mut a) = self.assoc.take() {
            a.outcome = outcome;
            ctx.records
                .push(AppRecord::Dicom(Record::Association(Box::new(a))));
        }
        for st in &mut self.dirs {
            st.contexts.clear();
        }
    }

    fn on_assoc_pdu(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, t: u8, body: &[u8]) {
        match t {
            pdu_type::ASSOCIATE_RQ => match parser::parse_associate(body, false) {
                Ok(p) => {
                    if self.assoc.is_some() {
                        self.anomaly(ctx, dir, "unexpected_pdu");
                        self.end_association(ctx, Outcome::Incomplete);
                    }
                    if p.unknown_items > 0 {
                        self.anomaly(ctx, dir, "unknown_item");
                    }
                    self.assoc = Some(p.assoc);
                }
                Err(e) => self.anomaly(ctx, dir, e.event()),
            },
            pdu_type::ASSOCIATE_AC => match parser::parse_associate(body, true) {
                Ok(p) => {
                    if p.unknown_items > 0 {
                        self.anomaly(ctx, dir, "unknown_item");
                    }
                    let fresh = self.assoc.as_ref().is_some_and(|a| a.response.is_none());
                    if !fresh {
                        // An AC with no RQ before it (mid-stream) or a second AC.
                        self.anomaly(ctx, dir, "unexpected_pdu");
                        self.assoc = Some(Association {
                            calling_ae_title: p.assoc.calling_ae_title.clone(),
                            called_ae_title: p.assoc.called_ae_title.clone(),
                            protocol_version: p.assoc.protocol_version,
                            application_context: p.assoc.application_context.clone(),
                            ..Default::default()
                        });
                    }
                    if let Some(a) = self.assoc.as_mut() {
                        merge_ac(a, p.assoc);
                    }
                }
                Err(e) => self.anomaly(ctx, dir, e.event()),
            },
            pdu_type::ASSOCIATE_RJ => match parser::parse_reject(body) {
                Ok(rj) => {
                    if self.assoc.is_none() {
                        self.anomaly(ctx, dir, "unexpected_pdu");
                        self.assoc = Some(Association::default());
                    }
                    if let Some(a) = self.assoc.as_mut() {
                        a.reject = Some(rj);
                    }
                    self.end_association(ctx, Outcome::Rejected);
                }
                Err(e) => self.anomaly(ctx, dir, e.event()),
            },
            pdu_type::RELEASE_RQ => match self.assoc.as_mut() {
                Some(a) => a.release_requested = true,
                None => self.anomaly(ctx, dir, "unexpected_pdu"),
            },
            pdu_type::RELEASE_RP => {
                if !self.assoc.as_ref().is_some_and(|a| a.release_requested) {
                    self.anomaly(ctx, dir, "unexpected_pdu");
                }
                self.end_association(ctx, Outcome::Released);
            }
            pdu_type::ABORT => match parser::parse_abort(body) {
                Ok(ab) => {
                    let a = self.assoc.get_or_insert_with(Association::default);
                    a.abort = Some((ab, dir));
                    self.end_association(ctx, Outcome::Aborted);
                }
                Err(e) => self.anomaly(ctx, dir, e.event()),
            },
            _ => self.anomaly(ctx, dir, ParseError::UnknownPduType(t).event()),
        }
    }
}

/// Gathers a 6-byte header from `held` (bytes of earlier calls) and `data`;
/// returns it and the rest of `data`, or `None` when `data` ran out (its
/// bytes are then held).
fn take_header<'a>(held: &mut Vec<u8>, data: &'a [u8]) -> Option<([u8; 6], &'a [u8])> {
    if held.is_empty() {
        if let Some(h) = data.get(..6) {
            let mut out = [0u8; 6];
            out.copy_from_slice(h);
            return Some((out, data.get(6..).unwrap_or(&[])));
        }
    }
    let k = 6usize.saturating_sub(held.len()).min(data.len());
    // Copied: a header cut by a segment end (≤ 6 bytes).
    held.extend_from_slice(data.get(..k).unwrap_or(&[]));
    let rest = data.get(k..).unwrap_or(&[]);
    if held.len() < 6 {
        return None;
    }
    let mut out = [0u8; 6];
    out.copy_from_slice(held.get(..6).unwrap_or(&[0; 6]));
    held.clear();
    Some((out, rest))
}

/// Adds an A-ASSOCIATE-AC's answers to the request's contexts.
fn merge_ac(a: &mut Association, ac: Association) {
    for pc in ac.presentation_contexts {
        match a.presentation_contexts.iter_mut().find(|p| p.id == pc.id) {
            Some(p) => {
                p.result = pc.result;
                p.accepted_transfer_syntax = pc.accepted_transfer_syntax;
            }
            None => a.presentation_contexts.push(PresentationContext {
                id: pc.id,
                result: pc.result,
                accepted_transfer_syntax: pc.accepted_transfer_syntax,
                ..Default::default()
            }),
        }
    }
    a.response = Some(ac.response.unwrap_or_default());
}

impl StreamConsumer for Parser {
    fn data(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, data: &[u8]) {
        self.feed(ctx, dir, data);
    }

    fn gap(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, _len: u32) {
        let stopped = self
            .dirs
            .get(dir.index())
            .is_some_and(|s| s.phase == Phase::Stopped);
        if !stopped {
            self.anomaly(ctx, dir, "stream_gap");
            self.stop(dir);
        }
    }

    fn end(&mut self, ctx: &mut StreamContext<'_>) {
        self.end_association(ctx, Outcome::Incomplete);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::dicom::parser::tests::rq_body;
    use Direction::{ToClient, ToServer};

    fn pdu(t: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![t, 0];
        v.extend_from_slice(&(body.len() as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    /// Hand-built A-ASSOCIATE-AC body: version 1, AE titles, one accepted
    /// context (id 1, Implicit VR LE).
    fn ac_body() -> Vec<u8> {
        let mut b = vec![0, 1, 0, 0]; // version 1, reserved
        b.extend_from_slice(b"PACS            MODALITY1       "); // called, calling
        b.extend_from_slice(&[0; 32]); // reserved
        b.extend_from_slice(&[0x21, 0, 0, 25, 1, 0, 0, 0]); // pctx AC item, id 1, result 0
        b.extend_from_slice(&[0x40, 0, 0, 17]); // transfer syntax sub-item
        b.extend_from_slice(b"1.2.840.10008.1.2"); // implicit VR LE
        b
    }

    /// Hand-built P-DATA-TF with one PDV: context 1, control `ctl`.
    fn pdata(ctl: u8, frag: &[u8]) -> Vec<u8> {
        let mut item = ((frag.len() + 2) as u32).to_be_bytes().to_vec(); // PDV length
        item.push(1); // presentation context id
        item.push(ctl); // message control header
        item.extend_from_slice(frag);
        pdu(4, &item)
    }

    fn elem(g: u16, e: u16, v: &[u8]) -> Vec<u8> {
        let mut o = g.to_le_bytes().to_vec();
        o.extend_from_slice(&e.to_le_bytes());
        o.extend_from_slice(&(v.len() as u32).to_le_bytes());
        o.extend_from_slice(v);
        o
    }

    /// Hand-built C-STORE-RQ command (data set follows) and its data set
    /// with a PatientName and 64 KiB of Pixel Data.
    fn store() -> (Vec<u8>, Vec<u8>) {
        let mut c = elem(0, 0x0002, b"1.2.840.10008.5.1.4.1.1.2\0"); // CT Image Storage
        c.extend(elem(0, 0x0100, &1u16.to_le_bytes())); // C-STORE-RQ
        c.extend(elem(0, 0x0110, &5u16.to_le_bytes())); // message id 5
        c.extend(elem(0, 0x0800, &0u16.to_le_bytes())); // data set present
        let mut d = elem(0x0010, 0x0010, b"TEST^JANE "); // PatientName
        d.extend(elem(0x7fe0, 0x0010, &vec![0x55; 65536])); // Pixel Data
        (c, d)
    }

    fn rsp() -> Vec<u8> {
        let mut c = elem(0, 0x0100, &0x8001u16.to_le_bytes()); // C-STORE-RSP
        c.extend(elem(0, 0x0120, &5u16.to_le_bytes())); // responded to 5
        c.extend(elem(0, 0x0800, &0x0101u16.to_le_bytes())); // no data set
        c.extend(elem(0, 0x0900, &0xa700u16.to_le_bytes())); // out of resources
        c
    }

    fn run(steps: &[(Direction, Vec<u8>)], chunk: usize) -> (Vec<AppRecord>, usize) {
        let mut p = Parser::new(&DicomConfig::default());
        let mut records = Vec::new();
        let mut max = 0;
        for (dir, bytes) in steps {
            for c in bytes.chunks(chunk.max(1)) {
                let mut ctx = StreamContext {
                    ts: Default::default(),
                    records: &mut records,
                };
                p.data(&mut ctx, *dir, c);
                max = max.max(p.buffered_bytes());
            }
        }
        let mut ctx = StreamContext {
            ts: Default::default(),
            records: &mut records,
        };
        p.end(&mut ctx);
        (records, max)
    }

    fn session() -> Vec<(Direction, Vec<u8>)> {
        let (c, d) = store();
        // The data set in two fragments across two PDUs.
        let (d1, d2) = d.split_at(20);
        vec![
            (ToServer, pdu(1, &rq_body())),
            (ToClient, pdu(2, &ac_body())),
            (ToServer, pdata(0x03, &c)),
            (ToServer, pdata(0x00, d1)),
            (ToServer, pdata(0x02, d2)),
            (ToClient, pdata(0x03, &rsp())),
            (ToServer, pdu(5, &[0; 4])),
            (ToClient, pdu(6, &[0; 4])),
        ]
    }

    fn anomalies(r: &[AppRecord]) -> Vec<&'static str> {
        r.iter()
            .filter_map(|r| match r {
                AppRecord::Anomaly(a) => Some(a.event),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn store_session_yields_exchange_then_association_for_any_split() {
        let (whole, _) = run(&session(), usize::MAX);
        assert_eq!(whole.len(), 2, "{whole:?}");
        let AppRecord::Dicom(Record::Dimse(ex)) = &whole[0] else {
            panic!("{:?}", whole[0]);
        };
        let ds = ex.request.as_ref().unwrap().data_set.as_ref().unwrap();
        assert_eq!(ds.get(0x0010_0010), Some("TEST^JANE"));
        assert!(ds.pixel_data_skipped);
        assert_eq!(ex.response.as_ref().unwrap().command.status, Some(0xa700));
        let AppRecord::Dicom(Record::Association(a)) = &whole[1] else {
            panic!("{:?}", whole[1]);
        };
        assert_eq!(a.outcome, Outcome::Released);
        assert_eq!(a.exchanges, 1);
        assert_eq!(
            a.presentation_contexts[0]
                .accepted_transfer_syntax
                .as_deref(),
            Some("1.2.840.10008.1.2")
        );
        for chunk in [1, 2, 5, 6, 7, 100, 1000] {
            let (r, max) = run(&session(), chunk);
            assert_eq!(r, whole, "chunk {chunk}");
            assert!(max < 2048, "chunk {chunk}: held {max}");
        }
    }

    #[test]
    fn every_truncation_point_is_safe_and_reports_what_was_complete() {
        let all = session();
        let total: usize = all.iter().map(|s| s.1.len()).sum();
        // Every byte through the association and the command, then every
        // 4099th through the 64 KiB data set.
        for cut in (0..700).chain((700..total).step_by(4099)) {
            let mut left = cut;
            let mut steps = Vec::new();
            for (d, b) in &all {
                let k = left.min(b.len());
                steps.push((*d, b[..k].to_vec()));
                left -= k;
            }
            let (r, _) = run(&steps, 7);
            // An association seen is reported at the end, complete or not.
            let assoc = r
                .iter()
                .filter(|r| matches!(r, AppRecord::Dicom(Record::Association(_))))
                .count();
            assert!(assoc <= 1, "cut {cut}");
            assert!(anomalies(&r).is_empty(), "cut {cut}: {r:?}");
        }
    }

    #[test]
    fn four_gib_pdata_is_streamed_not_buffered() {
        // Hand-built: P-DATA-TF declaring 0xffffffff bytes, one PDV item
        // declaring 0xfffffffb (the rest of it), data set fragment on
        // context 1, then 1 MiB of its bytes.
        let mut v = vec![4, 0, 0xff, 0xff, 0xff, 0xff]; // PDU header
        v.extend_from_slice(&[0xff, 0xff, 0xff, 0xfb, 1, 0]); // PDV header
        let (c, _) = store();
        let steps = vec![
            (ToServer, pdu(1, &rq_body())),
            (ToClient, pdu(2, &ac_body())),
            (ToServer, pdata(0x03, &c)),
            (ToServer, v),
            (ToServer, vec![0u8; 1 << 20]),
        ];
        let (r, max) = run(&steps, 65536);
        assert!(max < 2048, "held {max}");
        assert!(anomalies(&r).is_empty(), "{r:?}");
    }

    #[test]
    fn oversized_association_pdu_is_skipped_with_an_anomaly() {
        // Hand-built: A-ASSOCIATE-RQ declaring 1 MiB, over the 64 KiB limit.
        let mut big = vec![1, 0, 0, 0x10, 0, 0];
        big.extend_from_slice(&vec![0x20; 1 << 20]);
        let steps = vec![(ToServer, big), (ToServer, pdu(1, &rq_body()))];
        let (r, max) = run(&steps, 4096);
        assert_eq!(anomalies(&r), ["pdu_too_long"]);
        assert!(max < 1 << 16);
        // The next (normal) PDU after the skipped one is decoded.
        assert!(matches!(
            r.last(),
            Some(AppRecord::Dicom(Record::Association(_)))
        ));
    }

    #[test]
    fn garbage_stops_the_direction_with_one_anomaly() {
        let steps = vec![(ToServer, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()); 3];
        let (r, _) = run(&steps, 5);
        assert_eq!(anomalies(&r), ["unknown_pdu_type"]);
    }

    #[test]
    fn unexpected_order_and_bad_pdv_length_are_reported() {
        let steps = vec![
            (ToServer, pdata(0x03, &rsp())),
            (ToClient, pdu(6, &[0; 4])),
            // Hand-built: PDV length 1 (shorter than its 2-byte header).
            (ToServer, pdu(4, &[0, 0, 0, 1, 1, 3, 0, 0])),
            (ToServer, pdu(7, &[0, 0, 2, 1])),
        ];
        let (r, _) = run(&steps, 3);
        assert_eq!(
            anomalies(&r),
            [
                "missing_association",
                "unexpected_pdu",
                "invalid_pdv_length"
            ]
        );
    }

    #[test]
    fn gap_stops_the_direction() {
        let mut p = Parser::new(&DicomConfig::default());
        let mut records = Vec::new();
        let mut ctx = StreamContext {
            ts: Default::default(),
            records: &mut records,
        };
        p.data(&mut ctx, ToServer, &pdu(1, &rq_body())[..20]);
        p.gap(&mut ctx, ToServer, 100);
        p.gap(&mut ctx, ToServer, 100);
        p.data(&mut ctx, ToServer, &pdu(1, &rq_body()));
        p.end(&mut ctx);
        assert_eq!(anomalies(&records), ["stream_gap"]);
        assert_eq!(records.len(), 1);
    }
}
