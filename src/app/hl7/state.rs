//! Per-flow HL7 state: framing, message assembly within limits, pairing of
//! messages with their acknowledgments, anomaly events.
//!
//! Framing. Each direction is in one of five modes:
//! - `Hunt` (the stream's start, after lost bytes, after bytes that are no
//!   HL7): the next message start is looked for — an MLLP start block
//!   followed by a header segment, or a header segment at a line start
//!   (after CR, LF or an end block, or at the first byte after a loss).
//!   Nothing is buffered but the at most [`parser::HEADER_PREFIX`] + 1
//!   bytes of a candidate that cannot be decided yet. Past
//!   [`Hl7Config::max_resync`] bytes without one: `resync_failed`, and
//!   the direction is `Stopped`.
//! - `Idle` (after a message's end): CR and LF are skipped; the next byte
//!   must start a message (as above) or it is `invalid_framing` and
//!   `Hunt`.
//! - `Frame` (inside an MLLP block) and `Bare` (bare HL7): segments are
//!   cut at CR, LF or CR LF (blank lines skipped) and appended to the
//!   message being built. A header segment (MSH) starts the next message;
//!   batch headers and trailers (FHS, BHS, BTS, FTS) end the current one
//!   and are not part of any. An end block ends the message (in `Bare`
//!   too: a frame whose start block was lost), a start block starts the
//!   next frame (in `Frame`: `frame_without_end_block`). A bare message
//!   also ends when the other direction sends or loses bytes (the peer
//!   answered, so the sender is done), when bytes of its own direction are
//!   lost, and at the flow's end.
//! - `Stopped`.
//!
//! Every decision is taken on bytes, never on where a call ends: a
//! segment is judged when its terminator arrives, a candidate start when
//! its header prefix is complete, so the records and anomalies of a
//! stream do not depend on how it was cut (the property test below).
//!
//! Limits. A segment keeps at most `max_segment_len` bytes (the rest is
//! counted: `segments_truncated`); a message keeps segments while it holds
//! at most `max_msg_len` bytes, then drops them (`segments_dropped`,
//! anomaly `message_too_large`), except the first [`MAX_LATE`] identity
//! segments ([`LATE`]: PID, NK1, PV1, MSA, ERR, MRG, EVN) cut to
//! [`LATE_BYTES`] — so a megabyte of padding before PID does not hide the
//! patient. At most `max_transactions` messages and `max_open_bytes` of
//! them await an answer per flow; past it the oldest is logged
//! unanswered (`too_many_transactions`).
//!
//! Pairing (HL7 v2.5.1 §2.9 acknowledgment): a message with an MSA
//! segment answers the oldest open message of the other direction whose
//! MSH-10 equals its MSA-2; an answer matching none is logged alone, as is
//! an ACK without MSA (`ack_without_msa`) and a message asking for no
//! acknowledgment (MSH-15 and MSH-16 `NE`). Lost bytes (a gap) in the
//! direction answers travel in close the messages awaiting them with
//! `answer_lost` (a one-way capture reports the direction it never shows
//! as gaps); one `gap` anomaly per run of lost bytes.
//!
//! Anomaly events (Suricata's app-layer event style): `malformed_msh`
//! (frame content not starting with a header, or no MSH-9 message type),
//! `missing_control_id`, `ack_without_msa`, `frame_without_end_block`,
//! `message_too_large`, `invalid_framing` (bytes between messages that
//! start none), `gap`, `resync_failed`, `too_many_transactions`,
//! `memcap_reached` ([`StreamConsumer::shed`]).

use std::collections::VecDeque;

use super::parser::{self, HeaderKind, Verdict, CR, EB, LF, SB};
use super::{Framing, Hl7Config, Message, Record};
use crate::app::{Anomaly, AppProto, AppRecord, StreamConsumer, StreamContext};
use crate::flow::Direction;

/// Identity and answer segments kept past `max_msg_len` (the record and
/// the PHI detector read them).
pub const LATE: [&[u8; 3]; 7] = [b"PID", b"NK1", b"PV1", b"MSA", b"ERR", b"MRG", b"EVN"];
/// How many of them per message.
pub const MAX_LATE: u32 = 8;
/// Bytes kept of each.
pub const LATE_BYTES: usize = 1024;

/// Bytes of a call looked at together with a held candidate.
const HEAD_WINDOW: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Hunt,
    Idle,
    Frame,
    Bare,
    Stopped,
}

/// Where a message may start in the bytes looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// At `at`: an MLLP start block (`framed`) or a bare header.
    Start { at: usize, framed: bool },
    /// A candidate at `at` needs more bytes.
    Need { at: usize },
    /// (`Idle`) the byte at `at` starts nothing.
    Garbage { at: usize },
    /// No start and no candidate.
    Nothing,
}

/// Is there a message start at `b` (a start block and a header, or a
/// header)? The header's segment is cut at its terminator.
fn start_at(b: &[u8]) -> Verdict<bool> {
    let (framed, body) = match b.first() {
        Some(&SB) => (true, b.get(1..).unwrap_or(&[])),
        _ => (false, b),
    };
    // Read on the bytes as they come first: a line end or block byte is
    // no delimiter, so one inside the header prefix makes that reading a
    // No — a Yes or a NeedMore is the segment's verdict too.
    match parser::header(body, false) {
        Verdict::Yes(_) => return Verdict::Yes(framed),
        Verdict::NeedMore => return Verdict::NeedMore,
        Verdict::No => {}
    }
    // A No may be a header segment that ended early (`BHS|^~\&` then CR):
    // judged again on the segment, if it is named like a header at all.
    if !matches!(body, [b'M', b'S', b'H', ..] | [b'B' | b'F', b'H', b'S', ..]) {
        return Verdict::No;
    }
    let window = body.get(..parser::HEADER_PREFIX + 1).unwrap_or(body);
    match window.iter().position(|&c| matches!(c, CR | LF | EB | SB)) {
        Some(e) => match parser::header(body.get(..e).unwrap_or(&[]), true) {
            Verdict::Yes(_) => Verdict::Yes(framed),
            _ => Verdict::No,
        },
        None => Verdict::No,
    }
}

/// `Idle`: skips line ends, then the next byte must start a message.
fn scan_idle(buf: &[u8]) -> Found {
    let Some(at) = buf.iter().position(|&c| !matches!(c, CR | LF)) else {
        return Found::Nothing;
    };
    match start_at(buf.get(at..).unwrap_or(&[])) {
        Verdict::Yes(framed) => Found::Start { at, framed },
        Verdict::NeedMore => Found::Need { at },
        Verdict::No => Found::Garbage { at },
    }
}

/// `Hunt`: the first start block followed by a header, or header at a line
/// start; `line_start` says whether `buf[0]` is at one. Returns what was
/// found and whether the next byte to scan (after `buf`, or the held
/// candidate) is at a line start. Only candidates are looked at — start
/// blocks, and line starts found from line ends by `memchr` — so bytes
/// that are no HL7 cost little each.
fn scan_hunt(buf: &[u8], line_start: bool) -> (Found, bool) {
    let from = |i: usize| buf.get(i..).unwrap_or(&[]);
    let search = parser::Search::get();
    let mut next_sb = memchr::memchr(SB, buf);
    // The next line start (after a line end, or the first byte).
    let line_after = |i: usize| match buf.get(i).copied() {
        // CR LF, blank lines: no search for the next line end.
        Some(CR | LF | EB) => Some(i + 1),
        _ => search.line_end(from(i)).map(|j| i + j + 1),
    };
    let mut next_line = if line_start { Some(0) } else { line_after(0) };
    loop {
        let at = match (next_sb, next_line) {
            (Some(s), Some(l)) => s.min(l),
            (s, l) => match s.or(l) {
                Some(at) => at,
                None => break,
            },
        };
        let Some(&c) = buf.get(at) else { break };
        let at_line_start = next_line == Some(at);
        if c == SB || (at_line_start && matches!(c, b'M' | b'B' | b'F')) {
            match start_at(from(at)) {
                Verdict::Yes(framed) => return (Found::Start { at, framed }, false),
                // Judged again from `at` once more bytes came: with the
                // line start it had.
                Verdict::NeedMore => return (Found::Need { at }, at_line_start),
                Verdict::No => {}
            }
        }
        if next_sb == Some(at) {
            next_sb = memchr::memchr(SB, from(at + 1)).map(|j| at + 1 + j);
        }
        if at_line_start {
            next_line = line_after(at);
        }
    }
    let last = buf
        .last()
        .map_or(line_start, |&c| matches!(c, CR | LF | EB));
    (Found::Nothing, last)
}

/// Offsets in a message's text of the first segments the record reads,
/// so that reading them does not walk a long message. Filled while the
/// message is assembled; a hand-made message has none (`known` false) and
/// is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegIndex {
    known: bool,
    msa: u32,
    pid: u32,
    pv1: u32,
    evn: u32,
    /// Where MSH-2 to MSH-[`MSH_FIELDS`] start in the text (`MSH_NONE`:
    /// the MSH has fewer fields; the slot after the last field holds the
    /// MSH's end + 1). Sixteen bits: a message is moved several times on
    /// its way to its record, and an MSH of [`MSH_INDEXED`] bytes or more
    /// is not indexed (`msh[0]` is 0) but searched.
    msh: [u16; MSH_FIELDS],
}

/// Longest MSH indexed: its end + 1 must stay below [`SegIndex::MSH_NONE`].
const MSH_INDEXED: usize = u16::MAX as usize - 1;

/// MSH fields indexed: up to MSH-16 (application acknowledgment type).
const MSH_FIELDS: usize = 16;

impl SegIndex {
    const NONE: u32 = u32::MAX;
    const MSH_NONE: u16 = u16::MAX;
    const EMPTY: SegIndex = SegIndex {
        known: true,
        msa: Self::NONE,
        pid: Self::NONE,
        pv1: Self::NONE,
        evn: Self::NONE,
        msh: [Self::MSH_NONE; MSH_FIELDS],
    };

    /// Indexes the fields of `msh` (the message's first segment, without
    /// its CR), read with field separator `sep`.
    fn index_msh(&mut self, msh: &[u8], sep: u8) {
        // MSH-2 starts after the separator that is MSH-1; each separator
        // after it starts the next field; the slot after the last field
        // holds the MSH's end + 1, so that every field ends one byte before
        // the next slot.
        self.msh = [Self::MSH_NONE; MSH_FIELDS];
        if msh.len() >= MSH_INDEXED {
            self.msh[0] = 0;
            return;
        }
        self.msh[0] = 4;
        let mut k = 1;
        let mut base = 4;
        // Sixteen bytes at a time (`parser::mask16`); the last block is the
        // MSH's last 16 bytes, those already read (or MSH-1) masked out; an
        // MSH shorter than a block is padded with bytes that are not `sep`.
        while base < msh.len() {
            let (at, skip) = if base + 16 <= msh.len() {
                (base, 0)
            } else {
                let at = msh.len().saturating_sub(16);
                (at, base - at)
            };
            let bits = match msh
                .get(at..at + 16)
                .and_then(|b| <&[u8; 16]>::try_from(b).ok())
            {
                Some(block) => parser::mask16(block, sep),
                None => {
                    let mut block = [!sep; 16];
                    block.iter_mut().zip(msh).for_each(|(w, &b)| *w = b);
                    parser::mask16(&block, sep)
                }
            };
            if !self.mark_fields(&mut k, bits >> skip << skip, at) {
                return;
            }
            base = at + 16;
        }
        if let Some(slot) = self.msh.get_mut(k) {
            *slot = u16::try_from(msh.len() + 1).unwrap_or(Self::MSH_NONE);
        }
    }

    /// Starts fields after the separators of one block of the MSH (`bits`
    /// of [`parser::mask16`], the block at offset `base`) from slot `k`
    /// on; false once every slot is taken.
    fn mark_fields(&mut self, k: &mut usize, mut bits: u32, base: usize) -> bool {
        while bits != 0 {
            let Some(slot) = self.msh.get_mut(*k) else {
                return false;
            };
            let at = base + bits.trailing_zeros() as usize + 1;
            *slot = u16::try_from(at).unwrap_or(Self::MSH_NONE);
            *k += 1;
            bits &= bits - 1;
        }
        true
    }

    /// MSH-`n` as indexed: `Some(None)` when the MSH has no such field,
    /// `None` when not indexed.
    pub fn msh_field<'t>(&self, text: &'t [u8], n: usize) -> Option<Option<&'t [u8]>> {
        if !self.known || self.msh[0] == 0 || !(2..=MSH_FIELDS).contains(&n) {
            return None;
        }
        let start = *self.msh.get(n - 2)?;
        let next = *self.msh.get(n - 1)?;
        if start == Self::MSH_NONE || next == Self::MSH_NONE {
            return Some(None);
        }
        Some(text.get(usize::from(start)..usize::from(next).checked_sub(1)?))
    }

    #[inline]
    fn slot(&mut self, name: &[u8]) -> Option<&mut u32> {
        match name {
            b"MSA" => Some(&mut self.msa),
            b"PID" => Some(&mut self.pid),
            b"PV1" => Some(&mut self.pv1),
            b"EVN" => Some(&mut self.evn),
            _ => None,
        }
    }

    /// `Some(Some(offset))`: the segment is at `offset`; `Some(None)`: the
    /// message has none; `None`: not indexed, search.
    #[inline]
    pub fn get(&self, name: &[u8]) -> Option<Option<usize>> {
        let off = match name {
            b"MSA" => self.msa,
            b"PID" => self.pid,
            b"PV1" => self.pv1,
            b"EVN" => self.evn,
            _ => return None,
        };
        if !self.known {
            return None;
        }
        Some((off != Self::NONE).then(|| usize::try_from(off).unwrap_or(usize::MAX)))
    }

    /// The message has an MSA segment (it is an answer).
    fn has_msa(&self) -> bool {
        self.msa != Self::NONE
    }
}

impl Default for SegIndex {
    /// Nothing indexed: every lookup searches.
    fn default() -> Self {
        SegIndex {
            known: false,
            ..SegIndex::EMPTY
        }
    }
}

#[cfg(test)]
mod index_tests {
    use super::*;

    #[test]
    fn msh_index_gives_the_fields_the_parser_gives() {
        let d = parser::Delimiters::default();
        // Hand-built headers, and every prefix of one whose fields have
        // every length from 0 to 8 (separators in every lane of the last,
        // overlapping block).
        let lanes = b"MSH|^~\\&||A|BC|DEF|GHIJ|KLMNO|PQRSTU|VWXYZ01|23456789|x";
        // Separators at the 15th/16th and 31st/32nd bytes of the blocks
        // the index reads from offset 4 (offsets 19, 20, 35, 36).
        let edges = b"MSH|^~\\&|ABCDEFGHIJ||KLMNOPQRSTUVWX||Y|Z";
        let prefixes = (0..=lanes.len())
            .map(|n| &lanes[..n])
            .chain((0..=edges.len()).map(|n| &edges[..n]));
        for msh in [
            &b"MSH|^~\\&|A|B|C|D|1||ADT^A01|C1|P|2.5|||NE|NE\rPID|1"[..],
            b"MSH|^~\\&||||||||||||||||||||x\r",
            b"MSH|^~\\&|ABCDEFG|HIJKLMNOP||QRSTUVWXYZ012|",
        ]
        .into_iter()
        .chain(prefixes)
        {
            let seg = msh.split(|&b| b == CR).next().unwrap();
            let mut ix = SegIndex::EMPTY;
            ix.index_msh(seg, b'|');
            for n in 2..MSH_FIELDS + 3 {
                // Indexed up to MSH_FIELDS; past it, not indexed (searched).
                let want = (n <= MSH_FIELDS).then(|| parser::field(seg, n, &d));
                assert_eq!(
                    ix.msh_field(msh, n),
                    want,
                    "{:?} MSH-{n}",
                    String::from_utf8_lossy(msh)
                );
            }
        }
    }

    #[test]
    fn msh_too_long_for_the_index_is_searched() {
        // Hand-built: an MSH of MSH_INDEXED bytes whose MSH-3 is padding.
        let mut msh = b"MSH|^~\\&|".to_vec();
        msh.resize(MSH_INDEXED - 4, b'x');
        msh.extend_from_slice(b"|FAC");
        let mut ix = SegIndex::EMPTY;
        ix.index_msh(&msh, b'|');
        assert_eq!(ix.msh_field(&msh, 4), None);
        msh.pop();
        ix.index_msh(&msh, b'|');
        assert_eq!(ix.msh_field(&msh, 4), Some(Some(&b"FA"[..])));
    }
}

/// The message being assembled in one direction.
///
/// Its kept text is `text[..seg_start]` followed by `input[run]`: segments
/// that lie whole in the bytes of the call being read are parsed where
/// they are and copied once, when the message ends (into the record) or
/// the call does (into `text`, because the message goes on in the next
/// call). Only a message that straddles calls, or whose kept text differs
/// from its bytes on the wire (LF line ends, cut or dropped segments), is
/// copied into `text` first.
#[derive(Debug)]
struct Building {
    /// Kept segments copied out of earlier calls (or out of order with the
    /// bytes read), then, from `seg_start`, the kept part of a segment
    /// whose first bytes came in an earlier call.
    text: Vec<u8>,
    /// Kept segments that follow `text[..seg_start]`, each with its CR, as
    /// the range of the call's bytes they are in; empty between calls.
    run_start: usize,
    run_end: usize,
    delimiters: parser::Delimiters,
    /// The kept text starts with an MSH segment: there is a message.
    has_msh: bool,
    seg_start: usize,
    /// Bytes of the current segment seen in earlier calls (kept or not).
    seg_len: u64,
    length: u64,
    segment_count: u32,
    segments_dropped: u32,
    segments_truncated: u32,
    late: u32,
    index: SegIndex,
    /// `message_too_large` raised for this message.
    too_large: bool,
    /// `malformed_msh` raised for segments outside any message.
    junk_reported: bool,
    framing: Framing,
}

/// Where the bytes of a segment that ended are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seg {
    /// Whole in the call's bytes, `input[start..end]`; `cr`: ended by a
    /// CR (else by LF or an end block).
    InPlace { start: usize, end: usize, cr: bool },
    /// Begun in an earlier call: its kept bytes are `text[seg_start..]`.
    Held,
}

impl Building {
    fn new() -> Self {
        Building {
            text: Vec::new(),
            run_start: 0,
            run_end: 0,
            delimiters: parser::Delimiters::default(),
            has_msh: false,
            seg_start: 0,
            seg_len: 0,
            length: 0,
            segment_count: 0,
            segments_dropped: 0,
            segments_truncated: 0,
            late: 0,
            index: SegIndex::EMPTY,
            too_large: false,
            junk_reported: false,
            framing: Framing::Mllp,
        }
    }

    /// Length of the kept segments: where the current segment would
    /// start in the message's text.
    fn kept_len(&self) -> usize {
        self.seg_start + (self.run_end - self.run_start)
    }

    /// Copies the run out of the call's bytes: the call ends, or bytes
    /// that follow it in the message do not follow it in `input`.
    fn flush(&mut self, input: &[u8]) {
        if self.run_end > self.run_start {
            // Copied: the message goes on past these bytes.
            self.text
                .extend_from_slice(input.get(self.run_start..self.run_end).unwrap_or(&[]));
            self.seg_start = self.text.len();
        }
        self.run_start = 0;
        self.run_end = 0;
    }

    /// Counts a segment of the message, `wire` bytes long with its
    /// terminator, kept or not.
    #[inline]
    fn count_segment(&mut self, wire: u64) {
        self.segment_count = self.segment_count.saturating_add(1);
        self.length = self.length.saturating_add(wire);
    }

    /// Keeps the segment `input[start..end]` and its CR (`input[end]`).
    #[inline]
    fn keep_in_place(&mut self, input: &[u8], start: usize, end: usize) {
        if self.run_end != start || self.run_end == self.run_start {
            self.flush(input);
            self.run_start = start;
        }
        self.run_end = end + 1;
    }

    /// Appends bytes of a segment that goes on in the next call, up to
    /// `max_segment_len`.
    fn append(&mut self, input: &[u8], bytes: &[u8], max_segment_len: usize) {
        self.flush(input);
        let kept = self.text.len() - self.seg_start;
        let room = max_segment_len.saturating_sub(kept).min(bytes.len());
        // Copied: the segment's end is in a later call.
        self.text
            .extend_from_slice(bytes.get(..room).unwrap_or(&[]));
        self.seg_len = self
            .seg_len
            .saturating_add(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
    }

    /// Keeps the usual segment where it is and returns true: whole in
    /// the call's bytes (`input[start..end]`, no bytes of it held) and
    /// ended by a CR (`input[end]`), inside a message, not a header or a
    /// trailer (MSH, BHS, FHS, BTS, FTS), within the limits — the outcome
    /// [`Hl7State::judge_segment`] gives it, without its questions. False
    /// (nothing done) for any other segment.
    #[inline]
    fn keep_usual(&mut self, cfg: &Hl7Config, input: &[u8], start: usize, end: usize) -> bool {
        let len = end.saturating_sub(start);
        let at = self.kept_len();
        let Some(&[n0, n1, n2]) = input.get(start..end).and_then(|s| s.get(..3)) else {
            return false;
        };
        let name = [n0, n1, n2];
        if !self.has_msh
            || self.seg_len > 0
            || matches!(&name, b"MSH" | b"BHS" | b"FHS" | b"BTS" | b"FTS")
            || len > cfg.max_segment_len
            || at.saturating_add(len).saturating_add(1) > cfg.max_msg_len
        {
            return false;
        }
        if let Some(slot) = self.index.slot(&name) {
            if *slot == SegIndex::NONE {
                *slot = u32::try_from(at).unwrap_or(SegIndex::NONE);
            }
        }
        self.keep_in_place(input, start, end);
        self.count_segment(u64::try_from(len).unwrap_or(u64::MAX).saturating_add(1));
        true
    }

    /// Keeps the usual first segment of a message where it is and
    /// returns true: an MSH with the recommended delimiters, whole in the
    /// call's bytes and ended by a CR, within `max_segment_len`, no message
    /// before it in the building — the outcome
    /// [`Hl7State::judge_segment`] gives it, without its questions. False
    /// (nothing done) for any other segment.
    #[inline]
    fn keep_first_msh(&mut self, cfg: &Hl7Config, input: &[u8], start: usize, end: usize) -> bool {
        let len = end.saturating_sub(start);
        let Some(msh) = input.get(start..end) else {
            return false;
        };
        if self.has_msh
            || self.seg_len > 0
            || len > cfg.max_segment_len
            || !msh.starts_with(b"MSH|^~\\&|")
        {
            return false;
        }
        self.has_msh = true;
        self.delimiters = parser::Delimiters::default();
        self.index.index_msh(msh, b'|');
        self.keep_in_place(input, start, end);
        self.count_segment(u64::try_from(len).unwrap_or(u64::MAX).saturating_add(1));
        true
    }

    /// The message made of the kept segments, if they hold one; the
    /// building is then ready for the next message, a held segment
    /// (`text[seg_start..]`) kept at its start.
    fn take(&mut self, input: &[u8], dir: Direction, incomplete: bool) -> Option<Message> {
        let run = input.get(self.run_start..self.run_end).unwrap_or(&[]);
        let text = if !self.has_msh {
            // Only segments of a message are kept.
            self.text.drain(..self.seg_start);
            None
        } else if self.seg_start == 0 {
            // The common case: a message whole in the call's bytes, copied
            // once to its exact size (the record owns it).
            Some(run.to_vec())
        } else {
            // The buffer is handed to the record, shrunk in place rather
            // than copied again (a straddling message can be large).
            let held = self.text.split_off(self.seg_start);
            let mut text = std::mem::replace(&mut self.text, held);
            text.extend_from_slice(run);
            // The record owns the buffer: no spare capacity in it.
            text.shrink_to_fit();
            Some(text)
        };
        self.run_start = 0;
        self.run_end = 0;
        self.seg_start = 0;
        let msg = text.map(|text| Message {
            dir,
            framing: self.framing,
            delimiters: self.delimiters,
            text,
            length: self.length,
            segment_count: self.segment_count,
            segments_dropped: self.segments_dropped,
            segments_truncated: self.segments_truncated,
            incomplete,
            index: self.index,
        });
        self.has_msh = false;
        self.length = 0;
        self.segment_count = 0;
        self.segments_dropped = 0;
        self.segments_truncated = 0;
        self.late = 0;
        self.index = SegIndex::EMPTY;
        self.too_large = false;
        msg
    }

    /// After [`Building::take`]: forgets the rest too (the bytes that
    /// follow belong to no message).
    fn clear(&mut self) {
        self.text.clear();
        self.seg_start = 0;
        self.seg_len = 0;
        self.junk_reported = false;
    }
}
#[derive(Debug)]
struct Side {
    mode: Mode,
    /// `Hunt`/`Idle`: the bytes of a candidate start not decided yet.
    head: Vec<u8>,
    b: Building,
    /// A `gap` anomaly was raised and no byte arrived since.
    lost: bool,
    /// `Hunt`: bytes dropped since it began.
    dropped: u64,
    /// `Hunt`: the next byte is at a line start.
    line_start: bool,
}

impl Side {
    fn new() -> Self {
        Side {
            mode: Mode::Hunt,
            head: Vec::new(),
            b: Building::new(),
            lost: false,
            dropped: 0,
            line_start: true,
        }
    }

    fn hunt(&mut self) {
        if self.mode != Mode::Stopped {
            self.mode = Mode::Hunt;
        }
        self.head.clear();
        self.dropped = 0;
        self.line_start = true;
    }
}

/// Messages awaiting their answer.
#[derive(Debug, Default)]
struct Open {
    messages: VecDeque<Message>,
    /// Heap bytes of their texts.
    bytes: usize,
}

/// The parser of one HL7 flow.
#[derive(Debug)]
pub struct Hl7State {
    cfg: Hl7Config,
    sides: [Side; 2],
    open: Open,
}

fn anomaly(ctx: &mut StreamContext<'_>, dir: Direction, event: &'static str) {
    ctx.records.push(AppRecord::Anomaly(Anomaly {
        app_proto: AppProto::Hl7,
        event,
        dir,
    }));
}

fn emit(ctx: &mut StreamContext<'_>, message: Message, answer: Option<Message>, lost: bool) {
    ctx.records.push(AppRecord::Hl7(Box::new(Record {
        message,
        answer,
        answer_lost: lost,
    })));
}

impl Open {
    /// A finished message: answered, answering, or left to await its
    /// answer.
    fn complete(&mut self, cfg: &Hl7Config, ctx: &mut StreamContext<'_>, m: Message) {
        let ty = m.message_type();
        // A message cut by a loss is not malformed.
        if ty.is_empty() && !m.incomplete {
            anomaly(ctx, m.dir, "malformed_msh");
        }
        if m.control_id().is_empty() && !m.incomplete {
            anomaly(ctx, m.dir, "missing_control_id");
        }
        let is_ack = ty == b"ACK";
        match m.acknowledged_id() {
            Some(id) => {
                let want = m.dir.reverse();
                let found = if id.is_empty() {
                    None
                } else {
                    self.messages
                        .iter()
                        .position(|o| o.dir == want && o.control_id() == id)
                };
                match found.and_then(|i| self.remove(i)) {
                    Some(req) => emit(ctx, req, Some(m), false),
                    None => emit(ctx, m, None, false),
                }
            }
            None if is_ack => {
                anomaly(ctx, m.dir, "ack_without_msa");
                emit(ctx, m, None, false);
            }
            None if m.no_ack_wanted() => emit(ctx, m, None, false),
            None => {
                self.bytes = self.bytes.saturating_add(m.text.capacity());
                self.messages.push_back(m);
                while self.messages.len() > 1
                    && (self.messages.len() > cfg.max_transactions
                        || self.bytes > cfg.max_open_bytes)
                {
                    let Some(old) = self.remove(0) else { break };
                    anomaly(ctx, old.dir, "too_many_transactions");
                    emit(ctx, old, None, false);
                }
            }
        }
    }

    fn remove(&mut self, i: usize) -> Option<Message> {
        let m = self.messages.remove(i)?;
        self.bytes = self.bytes.saturating_sub(m.text.capacity());
        Some(m)
    }

    /// Bytes were lost in `dir`: the messages awaiting an answer from that
    /// direction will not see it.
    fn close_lost(&mut self, ctx: &mut StreamContext<'_>, dir: Direction) {
        let mut i = 0;
        while i < self.messages.len() {
            if self.messages.get(i).is_some_and(|m| m.dir == dir.reverse()) {
                if let Some(m) = self.remove(i) {
                    emit(ctx, m, None, true);
                }
            } else {
                i += 1;
            }
        }
    }

    /// Logs every open message unanswered.
    fn flush(&mut self, ctx: &mut StreamContext<'_>) {
        while let Some(m) = self.remove(0) {
            emit(ctx, m, None, false);
        }
        self.messages = VecDeque::new();
    }
}

impl Hl7State {
    pub fn new(cfg: &Hl7Config) -> Self {
        let mut cfg = cfg.clone();
        // A header must fit in a kept segment to be recognised.
        cfg.max_segment_len = cfg.max_segment_len.max(2 * HEAD_WINDOW);
        Hl7State {
            cfg,
            sides: [Side::new(), Side::new()],
            open: Open::default(),
        }
    }

    fn side(&mut self, dir: Direction) -> &mut Side {
        let [s, c] = &mut self.sides;
        match dir {
            Direction::ToServer => s,
            Direction::ToClient => c,
        }
    }

    /// Feeds bytes of `dir`, whatever its mode.
    fn run(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, mut input: &[u8]) {
        while !input.is_empty() {
            let n = match self.side(dir).mode {
                Mode::Stopped => return,
                Mode::Frame | Mode::Bare => self.content(ctx, dir, input),
                Mode::Hunt | Mode::Idle => self.seek(ctx, dir, input),
            };
            input = input.get(n..).unwrap_or(&[]);
        }
    }

    /// `Hunt` and `Idle`: finds the next message start; returns the bytes
    /// of `input` used.
    fn seek(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, input: &[u8]) -> usize {
        let side = self.side(dir);
        // The usual case: after a message (and the CR after its end
        // block), the next one starts right away — what `scan_idle` and
        // `act` make of it, without their questions.
        if side.mode == Mode::Idle && side.head.is_empty() {
            let Some(at) = input.iter().position(|&c| !matches!(c, CR | LF)) else {
                // Only line ends (the CR after an end block at a call's
                // end): skipped, as `scan_idle` and `act` would.
                return input.len();
            };
            let framed = input.get(at) == Some(&SB);
            let body = input.get(at + usize::from(framed)..).unwrap_or(&[]);
            if let Verdict::Yes(_) = parser::header(body, false) {
                side.mode = if framed { Mode::Frame } else { Mode::Bare };
                side.b.framing = if framed { Framing::Mllp } else { Framing::Bare };
                side.b.junk_reported = false;
                return at + usize::from(framed);
            }
        }
        if side.head.is_empty() {
            let found = side.scan(input);
            return match self.act(ctx, dir, found, input) {
                Some(n) => n,
                None => input.len(),
            };
        }
        // Copied: a candidate cut by the end of the last call is judged
        // with the first bytes of this one (at most HEAD_WINDOW).
        let k = input.len().min(HEAD_WINDOW);
        let mut h = std::mem::take(&mut side.head);
        h.extend_from_slice(input.get(..k).unwrap_or(&[]));
        let found = side.scan(&h);
        if let Some(n) = self.act(ctx, dir, found, &h) {
            self.run(ctx, dir, h.get(n..).unwrap_or(&[]));
        }
        k
    }

    /// Acts on what a scan of `buf` found: `Some(n)` when the bytes from
    /// `n` on are to be read in the new mode, `None` when `buf` is used up.
    fn act(
        &mut self,
        ctx: &mut StreamContext<'_>,
        dir: Direction,
        found: Found,
        buf: &[u8],
    ) -> Option<usize> {
        let max_resync = self.cfg.max_resync;
        let side = self.side(dir);
        let hunting = side.mode == Mode::Hunt;
        let drop = |side: &mut Side, n: usize| {
            if hunting {
                side.dropped = side
                    .dropped
                    .saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
            }
        };
        let dropped = match found {
            Found::Start { at, .. } | Found::Need { at } => at,
            Found::Nothing => buf.len(),
            Found::Garbage { .. } => 0,
        };
        drop(side, dropped);
        // Judged on the bytes dropped before the start, wherever calls
        // cut them.
        if hunting && side.dropped > max_resync {
            side.mode = Mode::Stopped;
            side.head = Vec::new();
            anomaly(ctx, dir, "resync_failed");
            return None;
        }
        match found {
            Found::Start { at, framed } => {
                side.mode = if framed { Mode::Frame } else { Mode::Bare };
                side.b.framing = if framed { Framing::Mllp } else { Framing::Bare };
                side.b.junk_reported = false;
                Some(at + usize::from(framed))
            }
            Found::Need { at } => {
                // Copied: at most HEADER_PREFIX + 1 bytes of a candidate.
                side.head = buf.get(at..).unwrap_or(&[]).to_vec();
                None
            }
            Found::Garbage { at } => {
                side.hunt();
                anomaly(ctx, dir, "invalid_framing");
                Some(at)
            }
            Found::Nothing => None,
        }
    }

    /// `Frame` and `Bare`: cuts segments; returns the bytes of `input`
    /// used (all, unless the mode changed). What the message holds of
    /// `input` when this returns is copied out of it.
    fn content(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, input: &[u8]) -> usize {
        let n = self.cut_segments(ctx, dir, input);
        self.side(dir).b.flush(input);
        n
    }

    fn cut_segments(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, input: &[u8]) -> usize {
        let max = self.cfg.max_segment_len;
        // LF, start and end blocks are rare inside a message (an end block
        // ends it): the next one is looked for once, and CR, the usual
        // segment end, only up to it — each byte is searched about twice
        // per call, not once per segment.
        let search = parser::Search::get();
        let special = |from: usize| {
            search
                .special(input.get(from..).unwrap_or(&[]))
                .map(|i| from + i)
        };
        let mut next_special = special(0);
        let mut pos = 0;
        while pos < input.len() {
            if next_special.is_some_and(|s| s < pos) {
                next_special = special(pos);
            }
            let limit = next_special.unwrap_or(input.len());
            let cr = search
                .cr(input.get(pos..limit).unwrap_or(&[]))
                .map(|i| pos + i);
            let Some(t) = cr.or(next_special) else {
                // The segment goes on in the next call.
                let rest = input.get(pos..).unwrap_or(&[]);
                self.side(dir).b.append(input, rest, max);
                return input.len();
            };
            let body = input.get(pos..t).unwrap_or(&[]);
            let end = input.get(t).copied().unwrap_or(CR);
            if end == SB {
                // A start block ends the frame that lacked its end block
                // (or the bare message) and starts the next.
                let b = &mut self.side(dir).b;
                b.append(input, body, max);
                let side = self.side(dir);
                if side.mode == Mode::Frame && (side.b.has_msh || side.b.seg_len > 0) {
                    anomaly(ctx, dir, "frame_without_end_block");
                }
                self.finish(ctx, dir, input, false);
                self.side(dir).mode = Mode::Idle;
                return t;
            }
            let seg = if self.side(dir).b.seg_len > 0 {
                self.side(dir).b.append(input, body, max);
                Seg::Held
            } else {
                Seg::InPlace {
                    start: pos,
                    end: t,
                    cr: end == CR,
                }
            };
            pos = t + 1;
            self.end_segment(ctx, dir, input, seg);
            if end == EB {
                let side = self.side(dir);
                // A bare message ended by an end block was framed; its start
                // block was lost.
                side.b.framing = Framing::Mllp;
                self.finish(ctx, dir, input, false);
                self.side(dir).mode = Mode::Idle;
                return pos;
            }
        }
        pos
    }

    /// The current segment of `dir` ended: keeps, drops or acts on it.
    /// Inlined: called once per segment, and most segments need only
    /// [`Building::keep_usual`].
    #[inline(always)]
    fn end_segment(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, input: &[u8], seg: Seg) {
        let [s, c] = &mut self.sides;
        let b = match dir {
            Direction::ToServer => &mut s.b,
            Direction::ToClient => &mut c.b,
        };
        match seg {
            // A blank line, or no segment begun: nothing to judge.
            Seg::InPlace { start, end, .. } if start == end => return,
            Seg::Held if b.seg_len == 0 => return,
            Seg::InPlace {
                start,
                end,
                cr: true,
            } if b.keep_usual(&self.cfg, input, start, end)
                || b.keep_first_msh(&self.cfg, input, start, end) =>
            {
                return
            }
            _ => {}
        }
        self.judge_segment(ctx, dir, input, seg);
    }

    /// [`Self::end_segment`] for every segment: headers, trailers, segments
    /// outside a message, over a limit, cut by a call's end or a line end
    /// other than CR.
    #[inline(never)]
    fn judge_segment(
        &mut self,
        ctx: &mut StreamContext<'_>,
        dir: Direction,
        input: &[u8],
        seg: Seg,
    ) {
        let max_msg_len = self.cfg.max_msg_len;
        let max_segment_len = self.cfg.max_segment_len;
        let b = &mut self.side(dir).b;
        let (bytes, seg_len) = match seg {
            Seg::InPlace { start, end, .. } => {
                let all = input.get(start..end).unwrap_or(&[]);
                (
                    all.get(..max_segment_len).unwrap_or(all),
                    u64::try_from(all.len()).unwrap_or(u64::MAX),
                )
            }
            Seg::Held => (b.text.get(b.seg_start..).unwrap_or(&[]), b.seg_len),
        };
        if seg_len == 0 {
            return;
        }
        let mut name = [0u8; 3];
        if let Some(n) = bytes.get(..3) {
            name.copy_from_slice(n);
        }
        // Most segments are neither headers nor trailers: their first
        // byte says so.
        let header = match name[0] {
            b'M' | b'B' | b'F' => parser::header(bytes, true),
            _ => Verdict::No,
        };
        let trailer =
            matches!(&name, b"BTS" | b"FTS") && bytes.get(3).is_some_and(u8::is_ascii_punctuation);
        let kept = bytes.len();
        let cut = seg_len > u64::try_from(kept).unwrap_or(u64::MAX);
        let seg_wire = seg_len.saturating_add(1);
        let has_msh = b.has_msh;
        // Kept whole, kept cut to LATE_BYTES, or not kept.
        let (keep, late) = match header {
            Verdict::Yes((HeaderKind::Msh, d)) => {
                if has_msh {
                    self.finish_upto(ctx, dir, input);
                }
                let b = &mut self.side(dir).b;
                b.has_msh = true;
                b.delimiters = d;
                let msh = match seg {
                    Seg::InPlace { start, .. } => input.get(start..start + kept),
                    Seg::Held => b.text.get(b.seg_start..),
                };
                b.index.index_msh(msh.unwrap_or(&[]), d.field);
                (true, false)
            }
            Verdict::Yes(_) => {
                // A batch header: ends the message, belongs to none.
                if has_msh {
                    self.finish_upto(ctx, dir, input);
                }
                (false, false)
            }
            _ if trailer => {
                if has_msh {
                    self.finish_upto(ctx, dir, input);
                }
                (false, false)
            }
            _ if !has_msh => {
                let b = &mut self.side(dir).b;
                if !b.junk_reported {
                    b.junk_reported = true;
                    anomaly(ctx, dir, "malformed_msh");
                }
                (false, false)
            }
            _ => {
                let b = &mut self.side(dir).b;
                if b.kept_len().saturating_add(kept).saturating_add(1) <= max_msg_len {
                    (true, false)
                } else if LATE.iter().any(|l| **l == name) && b.late < MAX_LATE {
                    b.late += 1;
                    (true, true)
                } else {
                    b.segments_dropped = b.segments_dropped.saturating_add(1);
                    b.count_segment(seg_wire);
                    if !b.too_large {
                        b.too_large = true;
                        anomaly(ctx, dir, "message_too_large");
                    }
                    (false, false)
                }
            }
        };
        let b = &mut self.side(dir).b;
        if keep {
            let at = b.kept_len();
            if let Some(slot) = b.index.slot(&name) {
                if *slot == SegIndex::NONE {
                    *slot = u32::try_from(at).unwrap_or(SegIndex::NONE);
                }
            }
            let n = if late { kept.min(LATE_BYTES) } else { kept };
            match seg {
                Seg::InPlace { start, end, cr } if cr && n == end - start => {
                    b.keep_in_place(input, start, end);
                }
                Seg::InPlace { start, .. } => {
                    b.flush(input);
                    // Copied: the kept text differs from the bytes here.
                    b.text
                        .extend_from_slice(input.get(start..start + n).unwrap_or(&[]));
                    b.text.push(CR);
                }
                Seg::Held => {
                    b.text.truncate(b.seg_start + n);
                    b.text.push(CR);
                }
            }
            b.count_segment(seg_wire);
            if cut {
                b.segments_truncated = b.segments_truncated.saturating_add(1);
            }
        } else if seg == Seg::Held {
            b.text.truncate(b.seg_start);
        }
        b.seg_start = b.text.len();
        b.seg_len = 0;
    }

    /// The message of `dir` ends before its current segment (where its
    /// next one starts).
    fn finish_upto(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, input: &[u8]) {
        if let Some(m) = self.side(dir).b.take(input, dir, false) {
            self.open.complete(&self.cfg, ctx, m);
        }
    }

    /// The message of `dir` ends here (its current segment included).
    fn finish(
        &mut self,
        ctx: &mut StreamContext<'_>,
        dir: Direction,
        input: &[u8],
        incomplete: bool,
    ) {
        self.end_segment(ctx, dir, input, Seg::Held);
        let b = &mut self.side(dir).b;
        let m = b.take(input, dir, incomplete);
        b.clear();
        if let Some(m) = m {
            self.open.complete(&self.cfg, ctx, m);
        }
    }

    /// The other side of `dir` sent or lost bytes: a bare message of `dir`
    /// is over. A segment it was in the middle of that may be the next
    /// message's header stays for that message.
    fn peer_moved(&mut self, ctx: &mut StreamContext<'_>, dir: Direction) {
        let side = self.side(dir);
        if side.mode != Mode::Bare {
            return;
        }
        let b = &side.b;
        let seg = b.text.get(b.seg_start..).unwrap_or(&[]);
        if b.seg_len > 0 && parser::header(seg, false) != Verdict::No {
            self.finish_upto(ctx, dir, &[]);
            return;
        }
        if !b.has_msh && b.seg_len == 0 {
            return;
        }
        self.finish(ctx, dir, &[], false);
        self.side(dir).mode = Mode::Idle;
    }

    /// Gives back what can be given back: messages awaiting answers are
    /// logged unanswered, messages being built are logged as they stand.
    fn release(&mut self, ctx: &mut StreamContext<'_>) -> bool {
        let mut any = !self.open.messages.is_empty();
        for dir in [Direction::ToServer, Direction::ToClient] {
            let side = self.side(dir);
            if matches!(side.mode, Mode::Frame | Mode::Bare) || !side.head.is_empty() {
                any |= side.b.has_msh || !side.head.is_empty();
                self.finish(ctx, dir, &[], true);
                let side = self.side(dir);
                side.hunt();
                side.b.text = Vec::new();
                side.head = Vec::new();
            }
        }
        self.open.flush(ctx);
        any
    }
}

impl Side {
    fn scan(&mut self, buf: &[u8]) -> Found {
        if self.mode == Mode::Idle {
            return scan_idle(buf);
        }
        let (found, line_start) = scan_hunt(buf, self.line_start);
        self.line_start = line_start;
        found
    }
}

impl StreamConsumer for Hl7State {
    fn data(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.peer_moved(ctx, dir.reverse());
        self.side(dir).lost = false;
        self.run(ctx, dir, data);
    }

    fn gap(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, _len: u32) {
        let side = self.side(dir);
        if !side.lost {
            side.lost = true;
            anomaly(ctx, dir, "gap");
        }
        let side = self.side(dir);
        if matches!(side.mode, Mode::Frame | Mode::Bare) {
            // Bytes of the message being built may be among those lost,
            // unless a bare message stood at a segment end.
            let cut = side.mode == Mode::Frame || side.b.seg_len > 0;
            self.finish(ctx, dir, &[], cut);
        }
        self.side(dir).hunt();
        self.peer_moved(ctx, dir.reverse());
        self.open.close_lost(ctx, dir);
    }

    fn end(&mut self, ctx: &mut StreamContext<'_>) {
        // Messages before answers, so that an answer still being built
        // finds the message it answers.
        let answers_last = {
            let answers = |s: &Side| {
                let b = &s.b;
                b.index.has_msa()
                    || parser::segment_name(b.text.get(b.seg_start..).unwrap_or(&[])) == b"MSA"
            };
            if answers(&self.sides[0]) && !answers(&self.sides[1]) {
                [Direction::ToClient, Direction::ToServer]
            } else {
                [Direction::ToServer, Direction::ToClient]
            }
        };
        for dir in answers_last {
            let side = self.side(dir);
            match side.mode {
                Mode::Frame => {
                    if side.b.has_msh || side.b.seg_len > 0 {
                        anomaly(ctx, dir, "frame_without_end_block");
                    }
                    self.finish(ctx, dir, &[], true);
                }
                Mode::Bare => self.finish(ctx, dir, &[], false),
                _ => {}
            }
            self.side(dir).mode = Mode::Stopped;
        }
        self.open.flush(ctx);
    }

    fn memuse(&self) -> usize {
        let sides: usize = self
            .sides
            .iter()
            .map(|s| s.b.text.capacity() + s.head.capacity())
            .sum();
        sides + self.open.bytes + self.open.messages.capacity() * std::mem::size_of::<Message>()
    }

    fn shed(&mut self, ctx: &mut StreamContext<'_>) {
        if self.release(ctx) {
            anomaly(ctx, Direction::ToServer, "memcap_reached");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;
    use Direction::{ToClient, ToServer};

    fn feed_cfg(cfg: &Hl7Config, calls: &[(Direction, &[u8])]) -> Vec<AppRecord> {
        let mut s = Hl7State::new(cfg);
        let mut out = Vec::new();
        let mut ctx = StreamContext {
            ts: Timestamp(0),
            records: &mut out,
        };
        for (d, b) in calls {
            s.data(&mut ctx, *d, b);
        }
        s.end(&mut ctx);
        out
    }

    fn feed(calls: &[(Direction, &[u8])]) -> Vec<AppRecord> {
        feed_cfg(&Hl7Config::default(), calls)
    }

    use crate::app::testing::anomaly_events as events;

    fn recs(r: &[AppRecord]) -> Vec<&Record> {
        r.iter()
            .filter_map(|r| match r {
                AppRecord::Hl7(h) => Some(&**h),
                _ => None,
            })
            .collect()
    }

    fn ids(r: &[AppRecord]) -> Vec<(String, Option<String>)> {
        recs(r)
            .iter()
            .map(|r| {
                (
                    String::from_utf8_lossy(r.message.control_id()).into_owned(),
                    r.answer
                        .as_ref()
                        .map(|a| String::from_utf8_lossy(a.control_id()).into_owned()),
                )
            })
            .collect()
    }

    // Hand-built messages in the shape of the python-hl7 peers of
    // pcaps/lib/hl7_peers.py: MSH with delimiters |^~\&, sending and
    // receiving application and facility, message type, control id,
    // processing id P, version 2.5; PID with id, name, birth date.
    fn adt(ctrl: &str) -> Vec<u8> {
        format!(
            "MSH|^~\\&|ADT-SRC|CHU|PACS|RAD|19000101120000||ADT^A01^ADT_A01|{ctrl}|P|2.5\r\
             EVN|A01|19000101120000\r\
             PID|1||MRN-1^^^CHU^MR||TEST^JANE||19000101|F\r\
             PV1|1|I|W3^12^1\r"
        )
        .into_bytes()
    }

    // Hand-built ACK: MSA-1 acknowledgment code, MSA-2 the control id
    // acknowledged.
    fn ack(ctrl: &str, code: &str) -> Vec<u8> {
        format!(
            "MSH|^~\\&|PACS|RAD|ADT-SRC|CHU|19000101120001||ACK^A01^ACK|ACK-{ctrl}|P|2.5\r\
             MSA|{code}|{ctrl}\r"
        )
        .into_bytes()
    }

    fn mllp(m: &[u8]) -> Vec<u8> {
        let mut v = vec![SB];
        v.extend_from_slice(m);
        v.extend_from_slice(&[EB, CR]);
        v
    }

    #[test]
    fn mllp_message_and_its_ack_are_one_record() {
        let out = feed(&[
            (ToServer, &mllp(&adt("C1"))),
            (ToClient, &mllp(&ack("C1", "AA"))),
        ]);
        assert_eq!(events(&out), Vec::<&str>::new());
        let r = recs(&out);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].message.message_type(), b"ADT");
        assert_eq!(r[0].message.trigger_event(), b"A01");
        assert_eq!(r[0].message.framing, Framing::Mllp);
        assert_eq!(r[0].message.segment_count, 4);
        assert_eq!(r[0].message.length, adt("C1").len() as u64);
        assert_eq!(r[0].answer.as_ref().unwrap().ack_code(), Some(&b"AA"[..]));
        assert_eq!(r[0].message.text, adt("C1"));
    }

    #[test]
    fn bare_messages_end_at_the_next_msh_and_at_the_peer_s_answer() {
        // Three bare messages in one call, then ACKs for the first two.
        let mut three = adt("C1");
        three.extend(adt("C2"));
        three.extend(adt("C3"));
        let mut acks = ack("C1", "AA");
        acks.extend(ack("C2", "AE"));
        let out = feed(&[(ToServer, &three), (ToClient, &acks)]);
        assert_eq!(events(&out), Vec::<&str>::new());
        assert_eq!(
            ids(&out),
            [
                ("C1".into(), Some("ACK-C1".into())),
                // C3 ends when the flow does: unanswered, logged at the end
                // after C2's answer (ended by the flow's end too).
                ("C2".into(), Some("ACK-C2".into())),
                ("C3".into(), None),
            ]
        );
        assert!(recs(&out)
            .iter()
            .all(|r| r.message.framing == Framing::Bare));
    }

    #[test]
    fn crlf_and_lf_segment_ends_give_the_canonical_text() {
        let lf: Vec<u8> = adt("C1")
            .iter()
            .flat_map(|&b| if b == CR { vec![CR, LF] } else { vec![b] })
            .collect();
        let only_lf: Vec<u8> = adt("C1")
            .iter()
            .map(|&b| if b == CR { LF } else { b })
            .collect();
        for v in [lf, only_lf] {
            let out = feed(&[(ToServer, &mllp(&v))]);
            assert_eq!(events(&out), Vec::<&str>::new());
            assert_eq!(recs(&out)[0].message.text, adt("C1"));
        }
    }

    /// Events a message cut inside its MSH may raise (MSH-9 or MSH-10 not
    /// reached yet).
    fn cut_msh_events(e: &[&str]) -> bool {
        e.iter()
            .all(|e| matches!(*e, "malformed_msh" | "missing_control_id"))
    }

    #[test]
    fn every_truncation_point_of_an_mllp_message_is_bounded_and_flagged() {
        let m = adt("C1");
        let whole = mllp(&m);
        // Up to the end block: the frame never ends.
        for n in 0..whole.len() - 2 {
            let out = feed(&[(ToServer, &whole[..n])]);
            let r = recs(&out);
            // The start block and a whole header prefix start a message.
            if n < 10 {
                assert!(r.is_empty() && events(&out).is_empty(), "{n}: {out:?}");
                continue;
            }
            assert_eq!(r.len(), 1, "{n}");
            let t = &r[0].message.text;
            assert!(r[0].message.incomplete, "{n}");
            assert!(m.starts_with(&t[..t.len() - 1]), "{n}");
            let e = events(&out);
            assert_eq!(e[0], "frame_without_end_block", "{n}");
            // Incomplete: not malformed, whatever of MSH is missing.
            assert_eq!(e.len(), 1, "{n}: {e:?}");
        }
        // With the end block (and without the final CR): whole.
        for n in [whole.len() - 1, whole.len()] {
            let out = feed(&[(ToServer, &whole[..n])]);
            assert!(events(&out).is_empty());
            assert_eq!(recs(&out)[0].message.text, m);
            assert!(!recs(&out)[0].message.incomplete);
        }
    }

    #[test]
    fn every_truncation_point_of_a_bare_message_yields_its_whole_segments() {
        let whole = adt("C1");
        let msh_len = whole.iter().position(|&b| b == CR).unwrap();
        for n in 0..whole.len() {
            let out = feed(&[(ToServer, &whole[..n])]);
            let r = recs(&out);
            // "MSH|^~\&|" is the shortest header prefix that decides.
            if n < 9 {
                assert!(r.is_empty() && events(&out).is_empty(), "{n}");
                continue;
            }
            assert_eq!(r.len(), 1, "{n}");
            // The flow's end ends the message: a bare message has no end
            // marker, so it is whole, its last segment as far as it went.
            let mut want = whole[..n].to_vec();
            if want.last() != Some(&CR) {
                want.push(CR);
            }
            assert_eq!(r[0].message.text, want, "{n}");
            let e = events(&out);
            if n >= msh_len {
                assert!(e.is_empty(), "{n}: {e:?}");
            } else {
                assert!(cut_msh_events(&e), "{n}: {e:?}");
            }
        }
    }

    #[test]
    fn custom_delimiters_and_escapes_are_read_from_msh() {
        // Hand-built: field separator '!', component '*', repetition '#',
        // escape '%', subcomponent '@'.
        let m = b"MSH!*#%@!APP!FAC!RCV!RFAC!2024!!ORU*R01!C9!P!2.8\rPID!1!!ID1#ID2!!DOE*JOHN%S%X\r";
        let out = feed(&[(ToServer, &mllp(m))]);
        let r = &recs(&out)[0].message;
        assert_eq!(r.message_type(), b"ORU");
        assert_eq!(r.trigger_event(), b"R01");
        assert_eq!(r.version(), b"2.8");
        assert_eq!(r.control_id(), b"C9");
        assert_eq!(r.field(b"PID", 5), Some(&b"DOE*JOHN%S%X"[..]));
    }

    #[test]
    fn batch_envelope_segments_belong_to_no_message() {
        let mut batch = b"FHS|^~\\&|APP\rBHS|^~\\&|APP\r".to_vec();
        batch.extend(adt("C1"));
        batch.extend(adt("C2"));
        batch.extend_from_slice(b"BTS|2\rFTS|1\r");
        let out = feed(&[(ToServer, &mllp(&batch))]);
        assert_eq!(events(&out), Vec::<&str>::new());
        let r = recs(&out);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].message.text, adt("C1"));
        assert_eq!(r[1].message.text, adt("C2"));
    }

    #[test]
    fn garbage_frame_is_malformed_msh_and_the_next_frame_is_read() {
        let mut s = mllp(&adt("C0"));
        s.extend(mllp(b"HELLO|WORLD\rPID|1\r"));
        s.extend(mllp(&adt("C1")));
        let out = feed(&[(ToServer, &s)]);
        // The second frame's start block is not followed by a header: the
        // bytes are no message start; the next start block is.
        assert_eq!(events(&out), ["invalid_framing"]);
        assert_eq!(ids(&out), [("C0".into(), None), ("C1".into(), None)]);
        // The same garbage at the stream's start is a capture picked up
        // mid-stream: no anomaly.
        let out = feed(&[(ToServer, &s[adt("C0").len() + 3..])]);
        assert!(events(&out).is_empty());
        // Inside a frame that began well, a batch trailer then junk.
        let mut f = adt("C1");
        f.extend_from_slice(b"BTS|1\rJUNK|1\r");
        let out = feed(&[(ToServer, &mllp(&f))]);
        assert_eq!(events(&out), ["malformed_msh"]);
    }

    #[test]
    fn ack_without_msa_and_message_without_control_id_are_anomalies() {
        let no_msa = b"MSH|^~\\&|A|B|C|D|1||ACK|X1|P|2.5\r";
        let no_id = b"MSH|^~\\&|A|B|C|D|1||ADT^A01||P|2.5\rPID|1\r";
        let no_type = b"MSH|^~\\&|A|B|C|D|1|||X2|P|2.5\r";
        let out = feed(&[
            (ToServer, &mllp(no_msa)),
            (ToServer, &mllp(no_id)),
            (ToServer, &mllp(no_type)),
        ]);
        assert_eq!(
            events(&out),
            ["ack_without_msa", "missing_control_id", "malformed_msh"]
        );
        assert_eq!(recs(&out).len(), 3);
    }

    #[test]
    fn start_block_without_end_block_is_an_anomaly_and_both_messages_are_kept() {
        let mut s = vec![SB];
        s.extend(adt("C1"));
        s.extend(mllp(&adt("C2")));
        let out = feed(&[(ToServer, &s)]);
        assert_eq!(events(&out), ["frame_without_end_block"]);
        assert_eq!(ids(&out), [("C1".into(), None), ("C2".into(), None)]);
    }

    #[test]
    fn padding_over_max_msg_len_is_dropped_but_pid_after_it_is_kept() {
        let cfg = Hl7Config {
            max_msg_len: 4096,
            max_segment_len: 1024,
            ..Hl7Config::default()
        };
        let mut m = b"MSH|^~\\&|A|B|C|D|1||ORU^R01|C1|P|2.5\r".to_vec();
        for _ in 0..100 {
            m.extend_from_slice(b"NTE|1||");
            m.extend(std::iter::repeat_n(b'x', 2000));
            m.push(CR);
        }
        m.extend_from_slice(b"PID|1||MRN-1||TEST^JANE\r");
        let out = feed_cfg(&cfg, &[(ToServer, &mllp(&m))]);
        assert_eq!(events(&out), ["message_too_large"]);
        let r = &recs(&out)[0].message;
        assert!(r.text.len() <= 4096 + LATE_BYTES, "{}", r.text.len());
        assert_eq!(r.field(b"PID", 5), Some(&b"TEST^JANE"[..]));
        assert_eq!(r.segment_count, 102);
        assert!(r.segments_dropped > 90);
        assert_eq!(r.segments_truncated, 100 - r.segments_dropped);
        assert_eq!(r.length, m.len() as u64);
    }

    #[test]
    fn gap_resynchronises_at_the_next_frame_and_one_way_answers_are_lost() {
        let mut s = Hl7State::new(&Hl7Config::default());
        let mut out = Vec::new();
        let mut ctx = StreamContext {
            ts: Timestamp(0),
            records: &mut out,
        };
        let m1 = mllp(&adt("C1"));
        // The first half of a message, a loss, the end of it, a new frame.
        s.data(&mut ctx, ToServer, &m1[..50]);
        s.gap(&mut ctx, ToServer, 100);
        s.data(&mut ctx, ToServer, &m1[150..]);
        s.data(&mut ctx, ToServer, &mllp(&adt("C2")));
        // One-way: the answers travel in bytes never seen.
        s.gap(&mut ctx, ToClient, 200);
        s.gap(&mut ctx, ToClient, 200);
        s.end(&mut ctx);
        assert_eq!(events(&out), ["gap", "gap"]);
        let r = recs(&out);
        assert_eq!(r.len(), 2);
        assert!(r[0].message.incomplete && r[0].answer_lost);
        assert!(!r[1].message.incomplete && r[1].answer_lost);
    }

    #[test]
    fn picked_up_mid_message_finds_the_next_one() {
        let mut s = adt("C0")[30..].to_vec();
        s.extend(adt("C1"));
        let out = feed(&[(ToServer, &s), (ToClient, &ack("C1", "AA"))]);
        assert_eq!(events(&out), Vec::<&str>::new());
        assert_eq!(ids(&out), [("C1".into(), Some("ACK-C1".into()))]);
    }

    #[test]
    fn answer_without_its_message_is_logged_alone() {
        let out = feed(&[(ToClient, &mllp(&ack("C7", "AE")))]);
        let r = recs(&out);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].message.ack_code(), Some(&b"AE"[..]));
        assert_eq!(r[0].direction(), ToClient);
    }

    #[test]
    fn too_many_unanswered_messages_are_logged_oldest_first() {
        let cfg = Hl7Config {
            max_transactions: 2,
            ..Hl7Config::default()
        };
        let calls: Vec<Vec<u8>> = (0..4).map(|i| mllp(&adt(&format!("C{i}")))).collect();
        let calls: Vec<(Direction, &[u8])> = calls.iter().map(|c| (ToServer, &c[..])).collect();
        let out = feed_cfg(&cfg, &calls);
        assert_eq!(events(&out), ["too_many_transactions"; 2]);
        let got: Vec<String> = ids(&out).into_iter().map(|(c, _)| c).collect();
        assert_eq!(got, ["C0", "C1", "C2", "C3"]);
    }

    #[test]
    fn non_hl7_bytes_stop_the_direction_after_max_resync() {
        let cfg = Hl7Config {
            max_resync: 1000,
            ..Hl7Config::default()
        };
        let junk = vec![b'x'; 3000];
        let out = feed_cfg(&cfg, &[(ToServer, &junk), (ToServer, &mllp(&adt("C1")))]);
        assert_eq!(events(&out), ["resync_failed"]);
        assert!(recs(&out).is_empty());
    }

    #[test]
    fn memuse_counts_buffers_and_open_messages_and_shed_logs_them() {
        let mut s = Hl7State::new(&Hl7Config::default());
        let mut out = Vec::new();
        let mut ctx = StreamContext {
            ts: Timestamp(0),
            records: &mut out,
        };
        s.data(&mut ctx, ToServer, &mllp(&adt("C1")));
        let half = mllp(&adt("C2"));
        s.data(&mut ctx, ToServer, &half[..60]);
        assert!(s.memuse() >= adt("C1").len() + 50, "{}", s.memuse());
        s.shed(&mut ctx);
        assert!(s.memuse() < 64, "{}", s.memuse());
        assert_eq!(events(&out), ["memcap_reached"]);
        let r = recs(&out);
        assert_eq!(r.len(), 2);
        assert!(r[1].message.incomplete);
    }

    /// `scan_hunt` as first written: every byte looked at.
    fn scan_hunt_bytewise(buf: &[u8], line_start: bool) -> (Found, bool) {
        let mut prev_ends_line = line_start;
        for (i, &c) in buf.iter().enumerate() {
            let candidate = c == SB || (prev_ends_line && matches!(c, b'M' | b'B' | b'F'));
            if candidate {
                match start_at_cut(&buf[i..]) {
                    Verdict::Yes(framed) => return (Found::Start { at: i, framed }, false),
                    Verdict::NeedMore => return (Found::Need { at: i }, prev_ends_line),
                    Verdict::No => {}
                }
            }
            prev_ends_line = matches!(c, CR | LF | EB);
        }
        (Found::Nothing, prev_ends_line)
    }

    /// `start_at` as first written: the header's segment cut at its
    /// terminator, then judged.
    fn start_at_cut(b: &[u8]) -> Verdict<bool> {
        let (framed, body) = match b.first() {
            Some(&SB) => (true, &b[1..]),
            _ => (false, b),
        };
        let end = body
            .iter()
            .take(parser::HEADER_PREFIX + 1)
            .position(|&c| matches!(c, CR | LF | EB | SB));
        let (seg, complete) = match end {
            Some(e) => (&body[..e], true),
            None => (body, false),
        };
        match parser::header(seg, complete) {
            Verdict::Yes(_) => Verdict::Yes(framed),
            Verdict::No => Verdict::No,
            Verdict::NeedMore => Verdict::NeedMore,
        }
    }

    proptest::proptest! {
        /// Judging a start on the bytes as they come, then on its segment
        /// only when that can differ, is judging it on its segment.
        #[test]
        fn start_on_the_bytes_as_they_come_is_start_on_the_segment(
            pieces in proptest::collection::vec(proptest::sample::select(vec![
                &b"MSH"[..], b"BHS", b"FHS", b"|", b"^~", b"\\&", b"#", b"!", b"|^~\\&|",
                b"\r", b"\n", b"\x0b", b"\x1c", b"x", b"M", b"S", b"H",
            ]), 0..8),
        ) {
            let buf = pieces.concat();
            proptest::prop_assert_eq!(start_at(&buf), start_at_cut(&buf));
        }

        /// Jumping from candidate to candidate finds what reading every
        /// byte finds.
        #[test]
        fn hunting_by_candidates_finds_what_reading_every_byte_finds(
            pieces in proptest::collection::vec(proptest::sample::select(vec![
                &b"MSH|^~\\&|A"[..], b"MSH|", b"BHS|^~\\&\r", b"FHS|^", b"MSX|", b"M", b"B", b"F",
                b"\r", b"\n", b"\r\n", b"\x0b", b"\x1c", b"\x1c\r", b"x", b"PID|1", b"^~\\&|",
            ]), 0..20),
            line_start in proptest::bool::ANY,
        ) {
            let buf = pieces.concat();
            proptest::prop_assert_eq!(scan_hunt(&buf, line_start), scan_hunt_bytewise(&buf, line_start));
        }
    }

    /// One direction's bytes in one call, or (empty bytes) a loss in that
    /// direction.
    type Turn = (Direction, Vec<u8>);

    fn run_split(cfg: &Hl7Config, turns: &[Turn], cuts: &[Vec<usize>]) -> Vec<AppRecord> {
        let mut s = Hl7State::new(cfg);
        let mut out = Vec::new();
        let mut ctx = StreamContext {
            ts: Timestamp(0),
            records: &mut out,
        };
        for (i, (d, b)) in turns.iter().enumerate() {
            if b.is_empty() {
                s.gap(&mut ctx, *d, 100);
                continue;
            }
            let mut at = 0;
            for &c in cuts.get(i).map_or(&[][..], |v| &v[..]) {
                let end = (at + c).min(b.len());
                if end > at {
                    s.data(&mut ctx, *d, &b[at..end]);
                }
                at = end;
            }
            if at < b.len() {
                s.data(&mut ctx, *d, &b[at..]);
            }
        }
        s.end(&mut ctx);
        out
    }

    /// Pieces streams are made of: whole messages framed or bare, with CR,
    /// LF or CRLF, batch segments, their fragments, garbage and
    /// delimiters.
    fn pieces() -> Vec<Vec<u8>> {
        let a = adt("P1");
        let mut v = vec![
            mllp(&a),
            a.clone(),
            mllp(&ack("P1", "AA")),
            ack("P1", "AE"),
            a[..20].to_vec(),
            a[20..].to_vec(),
            b"BHS|^~\\&|X\r".to_vec(),
            b"BTS|1\r".to_vec(),
            b"MSH!*#%@!A!B!C!D!1!!ORU*R01!Z1!P!2.1\r".to_vec(),
            vec![SB],
            vec![EB, CR],
            vec![CR],
            vec![LF],
            b"MSH|".to_vec(),
            b"^~\\&|".to_vec(),
            b"PID|1||X\r".to_vec(),
            b"garbage".to_vec(),
        ];
        v.push(a.iter().map(|&b| if b == CR { LF } else { b }).collect());
        v
    }

    fn turn() -> impl proptest::strategy::Strategy<Value = Turn> {
        use proptest::prelude::*;
        (
            any::<bool>(),
            any::<u8>(),
            proptest::collection::vec(proptest::sample::select(pieces()), 1..5),
        )
            .prop_map(|(d, g, p)| {
                let dir = if d { ToServer } else { ToClient };
                // One turn in eight is a loss.
                (dir, if g < 32 { Vec::new() } else { p.concat() })
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Records and anomalies depend on the bytes and how the two
        /// directions interleave, never on where calls cut them.
        #[test]
        fn any_split_of_any_streams_gives_the_same_records_and_anomalies(
            turns in proptest::collection::vec(turn(), 1..10),
            cuts in proptest::collection::vec(proptest::collection::vec(0usize..48, 0..6), 10),
            small in proptest::bool::ANY,
        ) {
            let cfg = if small {
                Hl7Config { max_msg_len: 120, max_segment_len: 40, max_resync: 200, ..Hl7Config::default() }
            } else {
                Hl7Config::default()
            };
            let whole = run_split(&cfg, &turns, &[]);
            let bytewise: Vec<Vec<usize>> =
                turns.iter().map(|(_, b)| vec![1; b.len()]).collect();
            proptest::prop_assert_eq!(&run_split(&cfg, &turns, &bytewise), &whole);
            proptest::prop_assert_eq!(&run_split(&cfg, &turns, &cuts), &whole);
        }
    }
}
