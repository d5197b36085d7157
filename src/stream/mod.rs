//! Stream: reassembly of one direction of a TCP connection.
//!
//! Owns: turning segments in arrival order into the byte stream the sender
//! wrote, as [`Event::Data`] slices in sequence order and [`Event::Gap`]s
//! where bytes were never seen. One [`Reassembler`] per direction; the flow
//! stage owns two of them.
//!
//! Invariants (RFC 9293 sequence space, modulo 2^32; §3.4 for sequence
//! numbers, §3.5 for SYN and §3.6 for FIN each consuming one number):
//! - In-order segments are handed on as the segment's own bytes, no copy.
//! - Out-of-order segments are copied and held, up to `max_ooo_bytes` and
//!   `max_ooo_segments` per direction; past that the first hole is declared
//!   a gap and the held data delivered.
//! - Overlap policy: *first wins* — bytes already delivered or already held
//!   are never replaced by a later segment covering the same sequence numbers;
//!   a later segment only contributes bytes nobody sent before. So a
//!   retransmission is never delivered twice.
//! - Mid-stream pickup: without a SYN, the first segment seen sets the start
//!   of the stream.
//!
//! Details of the policy:
//! - A SYN sets the start to its sequence number + 1; data on a SYN (TCP Fast
//!   Open) is data at that number. A SYN with another ISN before any data
//!   restarts the direction. A SYN whose ISN + 1 equals the start of a stream
//!   picked up mid-stream (data seen before its SYN) confirms that start and
//!   takes the pickup back out of `midstream_pickups`.
//! - Without a SYN the first segment sets the start, even a pure ACK (its
//!   sequence number is the sender's next one). Until a data byte has been
//!   seen, a data segment starting before that point moves the start back.
//! - A FIN ends the stream at its sequence number (its payload comes first);
//!   the first FIN wins, and bytes after it are dropped and counted in
//!   `data_after_fin`, including bytes already held when an out-of-order FIN
//!   arrives.
//! - Segments more than 1 GiB ahead of the next expected byte, or more than
//!   1 GiB behind it, are nonsense for a real connection: dropped and counted
//!   in `out_of_window`. Acks more than 1 GiB ahead are ignored the same way.
//! - RST segments are ignored here; ending the flow (and calling
//!   [`Reassembler::flush`]) is the flow stage's decision.
//! - `overlap_diff_data` compares a segment only with *held* bytes: delivered
//!   bytes are gone (the in-order path keeps no copy), so a retransmission
//!   that differs from already delivered data is counted as an overlap or a
//!   retransmission, never as different data.
//! - The peer acknowledging our FIN without the capture having seen it looks
//!   like one lost byte: [`Reassembler::peer_ack`] then reports a 1-byte gap at
//!   the end of the stream. It cannot tell the two apart.
//!
//! Storage and complexity: held bytes sit in a `BTreeMap` of pieces keyed by a
//! 64-bit stream offset (so wraparound never reorders keys), allocated behind
//! an `Option<Box<_>>` on the first out-of-order segment and freed as soon as
//! it drains; an idle [`Reassembler`] is 24 bytes. Storing a segment costs
//! O(log p + k + n) for p held pieces, k pieces it overlaps and n bytes it
//! carries; only bytes not held yet are copied. New bytes are appended to the
//! piece that ends where they start, and a following adjacent piece is merged
//! in only when it is not longer than the growing one (union by size), so a
//! byte is moved at most O(log n) times: no input order, including thousands
//! of one-byte segments in reverse, makes the work quadratic. Held memory is
//! bounded by the caps (piece vectors may have up to twice their length in
//! capacity, plus a fixed overhead per piece).

use std::collections::BTreeMap;

use crate::decode::tcp_flags;

/// Per-direction reassembly limits (the `stream:` section of the
/// configuration file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// Most out-of-order bytes held for one direction.
    pub max_ooo_bytes: u32,
    /// Most out-of-order pieces held for one direction. A piece is a run of
    /// held bytes: a segment that continues a held run usually extends it
    /// rather than adding a piece (see the module docs for when runs merge).
    pub max_ooo_segments: u16,
    /// Out-of-order bytes all flows of all workers together may hold
    /// (`stream.memcap`).
    pub memcap: crate::memcap::ByteSize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_ooo_bytes: 256 * 1024,
            max_ooo_segments: 64,
            memcap: crate::memcap::ByteSize::mib(64),
        }
    }
}

/// What a reassembler hands to its consumer, in stream order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// The next bytes of the stream.
    Data(&'a [u8]),
    /// `len` bytes of the stream were never seen; data resumes after them.
    Gap(u32),
}

/// Reassembly counters, summed over directions and flows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Directions whose start was set without a SYN.
    pub midstream_pickups: u64,
    /// Segments whose new bytes were held because an earlier hole was open.
    pub ooo_segments: u64,
    /// Segments with payload that carried no byte not already delivered or
    /// held.
    pub retransmissions: u64,
    /// Segments that carried new bytes and also bytes already delivered or
    /// held.
    pub overlaps: u64,
    /// Segments whose overlap with held bytes differed from those bytes (the
    /// held bytes were kept).
    pub overlap_diff_data: u64,
    /// Gaps reported (each [`Event::Gap`]).
    pub gaps: u64,
    /// Bytes covered by the reported gaps.
    pub gap_bytes: u64,
    /// Times a segment did not fit within the out-of-order caps, forcing a
    /// gap.
    pub ooo_limit_reached: u64,
    /// Payload bytes at or after the FIN, dropped.
    pub data_after_fin: u64,
    /// Segments more than 1 GiB away from the next expected byte, dropped.
    pub out_of_window: u64,
}

impl StreamStats {
    /// Adds `other`'s counters to these.
    pub fn merge(&mut self, other: &StreamStats) {
        let StreamStats {
            midstream_pickups,
            ooo_segments,
            retransmissions,
            overlaps,
            overlap_diff_data,
            gaps,
            gap_bytes,
            ooo_limit_reached,
            data_after_fin,
            out_of_window,
        } = other;
        self.midstream_pickups = self.midstream_pickups.saturating_add(*midstream_pickups);
        self.ooo_segments = self.ooo_segments.saturating_add(*ooo_segments);
        self.retransmissions = self.retransmissions.saturating_add(*retransmissions);
        self.overlaps = self.overlaps.saturating_add(*overlaps);
        self.overlap_diff_data = self.overlap_diff_data.saturating_add(*overlap_diff_data);
        self.gaps = self.gaps.saturating_add(*gaps);
        self.gap_bytes = self.gap_bytes.saturating_add(*gap_bytes);
        self.ooo_limit_reached = self.ooo_limit_reached.saturating_add(*ooo_limit_reached);
        self.data_after_fin = self.data_after_fin.saturating_add(*data_after_fin);
        self.out_of_window = self.out_of_window.saturating_add(*out_of_window);
    }
}

/// How far from the next expected byte a segment or an ack may point before
/// it is treated as nonsense.
const WINDOW: u32 = 1 << 30;

/// Bits of [`Reassembler::state`].
mod state {
    /// The start of the stream is known.
    pub const STARTED: u8 = 0x01;
    /// The start came from a SYN.
    pub const SYN: u8 = 0x02;
    /// The start came from a segment without SYN (counted as a pickup).
    pub const PICKUP: u8 = 0x04;
    /// At least one payload byte was delivered or held, or a gap reported.
    pub const DATA: u8 = 0x08;
    /// `fin` holds the sequence number of the FIN.
    pub const FIN: u8 = 0x10;
}

/// Out-of-order bytes of one direction, allocated only while some are held.
#[derive(Debug, Default)]
struct Held {
    /// Pieces keyed by stream offset; never overlapping, never adjacent to a
    /// shorter following piece, all starting after `next_abs`.
    pieces: BTreeMap<u64, Vec<u8>>,
    /// Stream offset of the reassembler's `next`. Offsets count from an
    /// arbitrary base fixed when this was allocated, so they do not wrap.
    next_abs: u64,
    /// Sum of the pieces' lengths.
    bytes: u32,
}

/// Reassembles one direction. Small while idle; out-of-order storage is
/// allocated only when needed.
#[derive(Debug, Default)]
pub struct Reassembler {
    /// Held out-of-order pieces; `None` when nothing is held.
    held: Option<Box<Held>>,
    /// Sequence number of the next byte to deliver.
    next: u32,
    /// Sequence number of the first byte of the stream.
    start: u32,
    /// Sequence number of the FIN, valid when `state::FIN` is set.
    fin: u32,
    /// `state::*` bits.
    state: u8,
}

/// What one segment did, turned into counters once it is fully handled (a
/// segment may go round the store loop more than once and must count once).
#[derive(Default)]
struct Note {
    new_bytes: usize,
    overlap: bool,
    diff: bool,
    stored: bool,
}

/// Where a sequence number lies relative to `next`.
enum Place {
    /// This many bytes ahead (0 = exactly next).
    Ahead(u32),
    /// This many bytes behind.
    Behind(u32),
    /// More than [`WINDOW`] away in either direction.
    Outside,
}

fn place(seq: u32, next: u32) -> Place {
    let d = seq.wrapping_sub(next);
    if d <= WINDOW {
        Place::Ahead(d)
    } else if d.wrapping_neg() <= WINDOW {
        Place::Behind(d.wrapping_neg())
    } else {
        Place::Outside
    }
}

impl Reassembler {
    /// Feeds one segment of this direction: its sequence number, TCP flags
    /// and payload. In-order bytes (and any held bytes they unlock) are passed
    /// to `out` before returning.
    pub fn segment(
        &mut self,
        cfg: &StreamConfig,
        stats: &mut StreamStats,
        seq: u32,
        flags: u8,
        payload: &[u8],
        out: &mut dyn FnMut(Event<'_>),
    ) {
        if flags & tcp_flags::RST != 0 {
            return;
        }
        // A payload longer than the sequence window cannot be a TCP segment.
        let Ok(len) = u32::try_from(payload.len()) else {
            stats.out_of_window = stats.out_of_window.saturating_add(1);
            return;
        };
        let mut data_seq = seq;
        if flags & tcp_flags::SYN != 0 {
            self.on_syn(stats, seq);
            data_seq = seq.wrapping_add(1);
        } else if self.state & state::STARTED == 0 {
            self.start = seq;
            self.next = seq;
            self.state = state::STARTED | state::PICKUP;
            stats.midstream_pickups = stats.midstream_pickups.saturating_add(1);
        }
        if !payload.is_empty() && self.state & (state::PICKUP | state::DATA) == state::PICKUP {
            // Picked up on a segment without data: its sequence number was
            // the sender's next one, but data sent before it may still arrive
            // (reordered), and it is the real start.
            if let Place::Behind(_) = place(data_seq, self.next) {
                self.start = data_seq;
                self.next = data_seq;
            }
        }
        if flags & tcp_flags::FIN != 0 {
            self.on_fin(stats, data_seq.wrapping_add(len));
        }
        if !payload.is_empty() {
            self.feed(cfg, stats, data_seq, payload, out);
        }
    }

    /// The peer acknowledged `ack`: bytes of this direction below it were
    /// sent. If the reassembler is waiting on a hole the peer has
    /// acknowledged, the hole was lost by the capture, not the network: it
    /// is declared a gap and held data after it delivered.
    pub fn peer_ack(&mut self, stats: &mut StreamStats, ack: u32, out: &mut dyn FnMut(Event<'_>)) {
        if self.state & state::STARTED == 0 {
            return;
        }
        // Each round closes one hole and delivers the piece after it, so this
        // runs at most once per held piece plus one.
        loop {
            // Old, duplicate, and nonsense (far ahead) acks all land here.
            let Place::Ahead(d) = place(ack, self.next) else {
                return;
            };
            let mut target = u64::from(d);
            if let Some(fin) = self.fin_rel() {
                target = target.min(u64::from(fin));
            }
            if let Some(p) = self.first_piece_rel() {
                target = target.min(p);
            }
            if target == 0 {
                return;
            }
            self.gap(stats, target, out);
            self.drain_ready(out);
        }
    }

    /// End of the flow: delivers whatever is held, with gaps for the holes.
    pub fn flush(&mut self, stats: &mut StreamStats, out: &mut dyn FnMut(Event<'_>)) {
        while let Some(p) = self.first_piece_rel() {
            if p > 0 {
                self.gap(stats, p, out);
            }
            self.drain_ready(out);
        }
        *self = Reassembler::default();
    }

    /// Bytes currently held out of order.
    pub fn held_bytes(&self) -> u32 {
        self.held.as_ref().map_or(0, |h| h.bytes)
    }

    fn on_syn(&mut self, stats: &mut StreamStats, seq: u32) {
        let start = seq.wrapping_add(1);
        if self.state & state::SYN != 0 && self.start == start {
            // Retransmitted SYN: nothing changes.
            return;
        }
        if self.state & state::STARTED == 0 || self.state & state::DATA == 0 {
            if self.state & state::PICKUP != 0 {
                stats.midstream_pickups = stats.midstream_pickups.saturating_sub(1);
            }
            // First SYN, or a new ISN before any data: (re)start here.
            *self = Reassembler {
                held: None,
                next: start,
                start,
                fin: 0,
                state: state::STARTED | state::SYN,
            };
        } else if self.state & state::PICKUP != 0 && self.start == start {
            // Data arrived before its SYN and started exactly after it: the
            // stream was seen from its beginning after all.
            stats.midstream_pickups = stats.midstream_pickups.saturating_sub(1);
            self.state = (self.state & !state::PICKUP) | state::SYN;
        }
        // Any other SYN once data flowed is ignored; its payload, if any, is
        // judged by its sequence number like any segment's.
    }

    fn on_fin(&mut self, stats: &mut StreamStats, fin: u32) {
        if self.state & state::FIN != 0 {
            return;
        }
        let Place::Ahead(fin_rel) = place(fin, self.next) else {
            // A FIN before bytes already delivered cannot be right.
            return;
        };
        self.fin = fin;
        self.state |= state::FIN;
        // Held bytes at or after the FIN are not part of the stream.
        let Some(held) = self.held.as_mut() else {
            return;
        };
        let end = held.next_abs.saturating_add(u64::from(fin_rel));
        let beyond: Vec<u64> = held.pieces.range(end..).map(|(&k, _)| k).collect();
        let mut dropped: usize = 0;
        for k in beyond {
            if let Some(v) = held.pieces.remove(&k) {
                dropped = dropped.saturating_add(v.len());
            }
        }
        if let Some((&k, v)) = held.pieces.range_mut(..end).next_back() {
            let keep = usize::try_from(end.saturating_sub(k)).unwrap_or(usize::MAX);
            if v.len() > keep {
                dropped = dropped.saturating_add(v.len() - keep);
                v.truncate(keep);
            }
        }
        let dropped32 = u32::try_from(dropped).unwrap_or(u32::MAX);
        held.bytes = held.bytes.saturating_sub(dropped32);
        stats.data_after_fin = stats.data_after_fin.saturating_add(dropped as u64);
        if held.pieces.is_empty() {
            self.held = None;
        }
    }

    /// Distance from `next` to the FIN, if one is known.
    fn fin_rel(&self) -> Option<u32> {
        if self.state & state::FIN == 0 {
            return None;
        }
        match place(self.fin, self.next) {
            Place::Ahead(d) => Some(d),
            _ => Some(0),
        }
    }

    /// Distance from `next` to the first held byte.
    fn first_piece_rel(&self) -> Option<u64> {
        let held = self.held.as_ref()?;
        let (&k, _) = held.pieces.first_key_value()?;
        Some(k.saturating_sub(held.next_abs))
    }

    /// Moves `next` on by `n` bytes.
    fn advance(&mut self, n: u64) {
        // Sequence numbers are modulo 2^32: truncation is the arithmetic.
        self.next = self.next.wrapping_add(n as u32);
        if let Some(held) = self.held.as_mut() {
            held.next_abs = held.next_abs.saturating_add(n);
        }
    }

    /// Reports `len` never-seen bytes at `next` and moves past them.
    fn gap(&mut self, stats: &mut StreamStats, len: u64, out: &mut dyn FnMut(Event<'_>)) {
        let mut left = len;
        while left > 0 {
            let chunk = u32::try_from(left).unwrap_or(u32::MAX);
            stats.gaps = stats.gaps.saturating_add(1);
            stats.gap_bytes = stats.gap_bytes.saturating_add(u64::from(chunk));
            out(Event::Gap(chunk));
            left -= u64::from(chunk);
        }
        self.state |= state::DATA;
        self.advance(len);
    }

    /// Delivers held pieces that start at `next`, freeing the storage once
    /// empty.
    fn drain_ready(&mut self, out: &mut dyn FnMut(Event<'_>)) {
        loop {
            let Some(held) = self.held.as_mut() else {
                return;
            };
            let ready =
                matches!(held.pieces.first_key_value(), Some((&k, _)) if k <= held.next_abs);
            if !ready {
                if held.pieces.is_empty() {
                    self.held = None;
                }
                return;
            }
            let Some((k, piece)) = held.pieces.pop_first() else {
                return;
            };
            let piece_len = u32::try_from(piece.len()).unwrap_or(u32::MAX);
            held.bytes = held.bytes.saturating_sub(piece_len);
            // Pieces never start before `next`; should one, only its part
            // from `next` on is new.
            let skip = usize::try_from(held.next_abs - k).unwrap_or(usize::MAX);
            if let Some(rest) = piece.get(skip..) {
                if !rest.is_empty() {
                    out(Event::Data(rest));
                    self.advance(rest.len() as u64);
                }
            }
        }
    }

    /// Handles the payload of a segment whose data starts at `seq`.
    fn feed(
        &mut self,
        cfg: &StreamConfig,
        stats: &mut StreamStats,
        seq: u32,
        payload: &[u8],
        out: &mut dyn FnMut(Event<'_>),
    ) {
        let mut note = Note::default();
        let mut data = payload;
        // Cut the part at and after the FIN.
        if let Some(fin_rel) = self.fin_rel() {
            let keep = match place(seq, self.next) {
                Place::Ahead(d) => fin_rel.saturating_sub(d),
                Place::Behind(b) => fin_rel.saturating_add(b),
                Place::Outside => u32::MAX,
            };
            let keep = usize::try_from(keep).unwrap_or(usize::MAX);
            if data.len() > keep {
                let cut = data.len() - keep;
                stats.data_after_fin = stats.data_after_fin.saturating_add(cut as u64);
                data = &data[..keep];
                if data.is_empty() {
                    return;
                }
            }
        }
        // Each round either finishes or closes the first hole (a gap plus the
        // held data after it), so it runs at most once per held piece plus
        // one.
        loop {
            match place(seq, self.next) {
                Place::Outside => {
                    stats.out_of_window = stats.out_of_window.saturating_add(1);
                    return;
                }
                Place::Behind(b) => {
                    // The first `b` bytes were delivered already: first wins.
                    note.overlap = true;
                    let b = usize::try_from(b).unwrap_or(usize::MAX);
                    match data.get(b..) {
                        Some(rest) if !rest.is_empty() => {
                            self.deliver_in_order(rest, &mut note, out);
                        }
                        _ => {}
                    }
                    break;
                }
                Place::Ahead(0) => {
                    self.deliver_in_order(data, &mut note, out);
                    break;
                }
                Place::Ahead(d) => {
                    if self.try_store(cfg, d, data, &mut note) {
                        break;
                    }
                    stats.ooo_limit_reached = stats.ooo_limit_reached.saturating_add(1);
                    let hole = self
                        .first_piece_rel()
                        .map_or(u64::from(d), |p| p.min(u64::from(d)));
                    self.gap(stats, hole, out);
                    self.drain_ready(out);
                }
            }
        }
        if note.new_bytes > 0 {
            self.state |= state::DATA;
            if note.overlap {
                stats.overlaps = stats.overlaps.saturating_add(1);
            }
        } else {
            stats.retransmissions = stats.retransmissions.saturating_add(1);
        }
        if note.diff {
            stats.overlap_diff_data = stats.overlap_diff_data.saturating_add(1);
        }
        if note.stored {
            stats.ooo_segments = stats.ooo_segments.saturating_add(1);
        }
    }

    /// Delivers `data`, which starts exactly at `next`: its own bytes where
    /// nothing is held (no copy), held bytes where they overlap it (first
    /// wins), then whatever held data became contiguous.
    fn deliver_in_order(&mut self, data: &[u8], note: &mut Note, out: &mut dyn FnMut(Event<'_>)) {
        let mut c = 0usize;
        while c < data.len() {
            let remaining = data.len() - c;
            let piece_rel = self
                .first_piece_rel()
                .map(|p| usize::try_from(p).unwrap_or(usize::MAX));
            match piece_rel {
                Some(p) if p < remaining => {
                    if p > 0 {
                        out(Event::Data(&data[c..c + p]));
                        note.new_bytes = note.new_bytes.saturating_add(p);
                        self.advance(p as u64);
                        c += p;
                    }
                    // The held piece starts here and was first: it wins over
                    // the overlapping part of `data`.
                    let Some(held) = self.held.as_mut() else {
                        break;
                    };
                    let Some((_, piece)) = held.pieces.pop_first() else {
                        break;
                    };
                    let piece_len = u32::try_from(piece.len()).unwrap_or(u32::MAX);
                    held.bytes = held.bytes.saturating_sub(piece_len);
                    let ov = piece.len().min(data.len() - c);
                    note.overlap = true;
                    if piece[..ov] != data[c..c + ov] {
                        note.diff = true;
                    }
                    out(Event::Data(&piece));
                    self.advance(piece.len() as u64);
                    c += ov;
                }
                _ => {
                    out(Event::Data(&data[c..]));
                    note.new_bytes = note.new_bytes.saturating_add(remaining);
                    self.advance(remaining as u64);
                    c = data.len();
                }
            }
        }
        self.drain_ready(out);
    }

    /// Holds the bytes of `data` (starting `rel` bytes after `next`) that are
    /// not held yet. Returns false, changing nothing, if they do not fit in
    /// the caps.
    fn try_store(&mut self, cfg: &StreamConfig, rel: u32, data: &[u8], note: &mut Note) -> bool {
        let next_abs = self.held.as_ref().map_or(0, |h| h.next_abs);
        let s = next_abs.saturating_add(u64::from(rel));
        let e = s.saturating_add(data.len() as u64);
        // Pass 1: which parts of [s, e) are not held, and do the held parts
        // agree with `data`?
        let mut uncovered: Vec<(u64, u64)> = Vec::new();
        let mut left_adjacent = false;
        let mut overlap = false;
        let mut diff = false;
        let (pieces_held, bytes_held) = match self.held.as_ref() {
            Some(held) => {
                let from = held.pieces.range(..=s).next_back().map_or(s, |(&k, _)| k);
                let mut c = s;
                for (&ps, piece) in held.pieces.range(from..e) {
                    let pe = ps.saturating_add(piece.len() as u64);
                    if pe <= s {
                        left_adjacent = pe == s;
                        continue;
                    }
                    if ps > c {
                        uncovered.push((c, ps));
                    }
                    let os = ps.max(c);
                    let oe = pe.min(e);
                    if os < oe {
                        overlap = true;
                        let held_part = &piece[(os - ps) as usize..(oe - ps) as usize];
                        let new_part = &data[(os - s) as usize..(oe - s) as usize];
                        if held_part != new_part {
                            diff = true;
                        }
                    }
                    c = c.max(oe);
                }
                if c < e {
                    uncovered.push((c, e));
                }
                (held.pieces.len(), held.bytes)
            }
            None => {
                uncovered.push((s, e));
                (0, 0)
            }
        };
        let new_bytes: u64 = uncovered.iter().map(|&(a, b)| b - a).sum();
        if new_bytes == 0 {
            // Everything here is held already.
            note.overlap |= overlap;
            note.diff |= diff;
            return true;
        }
        // Only the first uncovered run can start a new piece: every later one
        // starts where a held piece ends.
        let new_piece = matches!(uncovered.first(), Some(&(a, _)) if a == s && !left_adjacent);
        let fits_bytes =
            u64::from(bytes_held).saturating_add(new_bytes) <= u64::from(cfg.max_ooo_bytes);
        let fits_pieces =
            pieces_held.saturating_add(usize::from(new_piece)) <= usize::from(cfg.max_ooo_segments);
        if !fits_bytes || !fits_pieces {
            return false;
        }
        // Pass 2: copy the new bytes (the capture buffer they live in is
        // reused once this call returns).
        let held = self.held.get_or_insert_with(|| {
            Box::new(Held {
                pieces: BTreeMap::new(),
                next_abs,
                bytes: 0,
            })
        });
        for (a, b) in uncovered {
            let bytes = &data[(a - s) as usize..(b - s) as usize];
            let left = match held.pieces.range_mut(..a).next_back() {
                Some((&k, v)) if k.saturating_add(v.len() as u64) == a => {
                    v.extend_from_slice(bytes);
                    k
                }
                _ => {
                    held.pieces.insert(a, bytes.to_vec());
                    a
                }
            };
            // Merge a following adjacent piece only when it is not longer
            // (union by size keeps total copying O(n log n)).
            let left_len = held.pieces.get(&left).map_or(0, Vec::len);
            let right_len = held.pieces.get(&b).map(Vec::len);
            if let Some(rl) = right_len {
                if rl <= left_len {
                    if let Some(right) = held.pieces.remove(&b) {
                        if let Some(l) = held.pieces.get_mut(&left) {
                            l.extend_from_slice(&right);
                        }
                    }
                }
            }
        }
        held.bytes =
            u32::try_from(u64::from(held.bytes).saturating_add(new_bytes)).unwrap_or(u32::MAX);
        note.new_bytes = note.new_bytes.saturating_add(new_bytes as usize);
        note.overlap |= overlap;
        note.diff |= diff;
        note.stored = true;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::tcp_flags::{ACK, FIN, PSH, RST, SYN};
    use proptest::prelude::*;

    /// An owned copy of an [`Event`], for comparing.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Ev {
        Data(Vec<u8>),
        Gap(u32),
    }

    /// A reassembler with its config, counters and everything it emitted.
    struct Rig {
        r: Reassembler,
        cfg: StreamConfig,
        stats: StreamStats,
        evs: Vec<Ev>,
    }

    impl Rig {
        fn new() -> Self {
            Rig::with(StreamConfig::default())
        }

        fn with(cfg: StreamConfig) -> Self {
            Rig {
                r: Reassembler::default(),
                cfg,
                stats: StreamStats::default(),
                evs: Vec::new(),
            }
        }

        fn seg(&mut self, seq: u32, flags: u8, payload: &[u8]) {
            let evs = &mut self.evs;
            self.r
                .segment(&self.cfg, &mut self.stats, seq, flags, payload, &mut |e| {
                    push(evs, e)
                });
        }

        fn ack(&mut self, ack: u32) {
            let evs = &mut self.evs;
            self.r.peer_ack(&mut self.stats, ack, &mut |e| push(evs, e));
        }

        fn flush(&mut self) {
            let evs = &mut self.evs;
            self.r.flush(&mut self.stats, &mut |e| push(evs, e));
        }

        /// All delivered data bytes, concatenated.
        fn data(&self) -> Vec<u8> {
            let mut v = Vec::new();
            for e in &self.evs {
                if let Ev::Data(d) = e {
                    v.extend_from_slice(d);
                }
            }
            v
        }

        /// The stream as emitted: `Some(byte)` for data, `None` per gap byte.
        fn content(&self) -> Vec<Option<u8>> {
            let mut v = Vec::new();
            for e in &self.evs {
                match e {
                    Ev::Data(d) => v.extend(d.iter().map(|&b| Some(b))),
                    Ev::Gap(n) => v.extend(std::iter::repeat_n(None, *n as usize)),
                }
            }
            v
        }

        fn gaps(&self) -> Vec<u32> {
            self.evs
                .iter()
                .filter_map(|e| match e {
                    Ev::Gap(n) => Some(*n),
                    Ev::Data(_) => None,
                })
                .collect()
        }
    }

    fn push(evs: &mut Vec<Ev>, e: Event<'_>) {
        evs.push(match e {
            Event::Data(d) => Ev::Data(d.to_vec()),
            Event::Gap(n) => Ev::Gap(n),
        });
    }

    fn data(b: &[u8]) -> Ev {
        Ev::Data(b.to_vec())
    }

    #[test]
    fn idle_reassembler_is_at_most_24_bytes() {
        let size = std::mem::size_of::<Reassembler>();
        println!("size_of::<Reassembler>() = {size}");
        assert!(size <= 24, "{size}");
    }

    #[test]
    fn in_order_segments_are_delivered_as_the_segments_own_bytes() {
        let cfg = StreamConfig::default();
        let mut stats = StreamStats::default();
        let mut r = Reassembler::default();
        let mut nothing = |_: Event<'_>| {};
        r.segment(&cfg, &mut stats, 999, SYN, &[], &mut nothing);
        let payload = b"hello world".to_vec();
        let mut seen: Vec<(*const u8, usize)> = Vec::new();
        r.segment(&cfg, &mut stats, 1000, ACK | PSH, &payload, &mut |e| {
            if let Event::Data(d) = e {
                seen.push((d.as_ptr(), d.len()));
            }
        });
        // Same address and length: the slice handed on is the input, not a copy.
        assert_eq!(seen, vec![(payload.as_ptr(), payload.len())]);
        assert!(r.held.is_none());
        assert_eq!(stats, StreamStats::default());
    }

    #[test]
    fn in_order_stream_after_syn_concatenates() {
        let mut g = Rig::new();
        g.seg(99, SYN, b"");
        g.seg(100, ACK, b"abc");
        g.seg(103, ACK, b"");
        g.seg(103, ACK | PSH, b"def");
        assert_eq!(g.evs, vec![data(b"abc"), data(b"def")]);
        assert_eq!(g.stats.midstream_pickups, 0);
    }

    #[test]
    fn out_of_order_segment_is_held_until_the_hole_fills() {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(4, ACK, b"def");
        assert!(g.evs.is_empty());
        assert_eq!(g.r.held_bytes(), 3);
        g.seg(1, ACK, b"abc");
        g.seg(7, ACK, b"g");
        assert_eq!(g.evs, vec![data(b"abc"), data(b"def"), data(b"g")]);
        assert!(g.r.held.is_none(), "storage is freed once drained");
        assert_eq!(g.stats.ooo_segments, 1);
        assert_eq!(g.stats.gaps, 0);
    }

    #[test]
    fn adjacent_out_of_order_segments_merge_into_one_piece() {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(3, ACK, b"cd");
        g.seg(5, ACK, b"ef");
        g.seg(7, ACK, b"g");
        assert_eq!(g.r.held.as_ref().map(|h| h.pieces.len()), Some(1));
        g.seg(1, ACK, b"ab");
        assert_eq!(g.data(), b"abcdefg");
    }

    #[test]
    fn held_bytes_win_over_a_later_overlapping_segment() {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(4, ACK, b"DEF");
        // Covers 1..9 with different bytes where "DEF" is held.
        g.seg(1, ACK, b"abcxyzgh");
        assert_eq!(g.data(), b"abcDEFgh");
        assert_eq!(g.stats.overlap_diff_data, 1);
        assert_eq!(g.stats.overlaps, 1);
        assert_eq!(g.stats.retransmissions, 0);
    }

    #[test]
    fn held_bytes_win_over_a_later_out_of_order_overlap() {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(5, ACK, b"EF");
        // Also out of order, overlapping the held piece on both sides.
        g.seg(4, ACK, b"dxyg");
        assert!(g.evs.is_empty());
        assert_eq!(g.stats.overlap_diff_data, 1);
        g.seg(1, ACK, b"abc");
        assert_eq!(g.data(), b"abcdEFg");
    }

    #[test]
    fn delivered_bytes_win_over_a_later_overlapping_segment() {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(1, ACK, b"abcd");
        // Starts 2 bytes back with different bytes there.
        g.seg(3, ACK, b"XYef");
        assert_eq!(g.evs, vec![data(b"abcd"), data(b"ef")]);
        assert_eq!(g.stats.overlaps, 1);
        // Delivered bytes are not kept, so the difference is not seen.
        assert_eq!(g.stats.overlap_diff_data, 0);
    }

    #[test]
    fn duplicate_retransmission_is_not_delivered_twice() {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(1, ACK, b"abc");
        g.seg(1, ACK, b"abc");
        g.seg(2, ACK, b"b");
        g.seg(5, ACK, b"e");
        g.seg(5, ACK, b"e");
        g.seg(4, ACK, b"d");
        assert_eq!(g.data(), b"abcde");
        assert_eq!(g.stats.retransmissions, 3);
        assert_eq!(g.stats.overlaps, 0);
    }

    #[test]
    fn peer_ack_past_a_hole_declares_it_a_gap_and_delivers_held_data() {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(1, ACK, b"ab");
        g.seg(6, ACK, b"fg");
        g.seg(10, ACK, b"j");
        // The peer got everything up to 11: holes 3..6 and 8..10 were lost
        // by the capture.
        g.ack(11);
        assert_eq!(
            g.evs,
            vec![data(b"ab"), Ev::Gap(3), data(b"fg"), Ev::Gap(2), data(b"j")]
        );
        assert_eq!(g.stats.gaps, 2);
        assert_eq!(g.stats.gap_bytes, 5);
        assert!(g.r.held.is_none());
        g.seg(11, ACK, b"k");
        assert_eq!(g.data(), b"abfgjk");
    }

    #[test]
    fn peer_ack_without_held_data_reports_the_lost_tail() {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(1, ACK, b"ab");
        g.ack(7);
        assert_eq!(g.evs, vec![data(b"ab"), Ev::Gap(4)]);
        // The lost bytes arriving later are old: not delivered.
        g.seg(3, ACK, b"cdef");
        g.seg(7, ACK, b"g");
        assert_eq!(g.data(), b"abg");
    }

    #[test]
    fn old_duplicate_wrapped_and_far_acks_are_ignored() {
        let mut g = Rig::new();
        g.seg(u32::MAX - 10, SYN, b"");
        g.seg(u32::MAX - 9, ACK, b"012345678");
        // next is u32::MAX now.
        g.ack(u32::MAX); // exactly next
        g.ack(u32::MAX - 5); // old
        g.ack(u32::MAX - 9); // older
        g.ack(5u32.wrapping_add(1 << 31)); // half the space away
        g.ack(u32::MAX.wrapping_add(WINDOW + 1)); // just over 1 GiB ahead
        g.seg(u32::MAX, ACK, b"x");
        assert_eq!(g.evs, vec![data(b"012345678"), data(b"x")]);
        // An ack across the wrap is real: 0 is one past next (0xffff_ffff + 1).
        g.ack(3);
        assert_eq!(g.gaps(), vec![3]);
    }

    #[test]
    fn peer_ack_before_any_segment_does_nothing() {
        let mut g = Rig::new();
        g.ack(12345);
        g.seg(100, ACK, b"a");
        assert_eq!(g.evs, vec![data(b"a")]);
    }

    #[test]
    fn byte_limit_forces_a_gap_then_delivers_held_data() {
        let mut g = Rig::with(StreamConfig {
            max_ooo_bytes: 4,
            max_ooo_segments: 64,
            ..StreamConfig::default()
        });
        g.seg(0, SYN, b"");
        g.seg(1, ACK, b"a");
        g.seg(4, ACK, b"de"); // hole 2..4
        g.seg(8, ACK, b"hi"); // hole 6..8, held is now 4 bytes
        g.seg(11, ACK, b"k"); // does not fit
        assert_eq!(g.evs, vec![data(b"a"), Ev::Gap(2), data(b"de")]);
        assert_eq!(g.stats.ooo_limit_reached, 1);
        assert_eq!(g.r.held_bytes(), 3);
        g.flush();
        assert_eq!(
            g.evs,
            vec![
                data(b"a"),
                Ev::Gap(2),
                data(b"de"),
                Ev::Gap(2),
                data(b"hi"),
                Ev::Gap(1),
                data(b"k")
            ]
        );
    }

    #[test]
    fn segment_limit_forces_gaps_until_the_segment_fits() {
        let mut g = Rig::with(StreamConfig {
            max_ooo_bytes: 1000,
            max_ooo_segments: 2,
            ..StreamConfig::default()
        });
        g.seg(0, SYN, b"");
        g.seg(3, ACK, b"c");
        g.seg(5, ACK, b"e");
        g.seg(7, ACK, b"g"); // a third piece: the first hole goes
        assert_eq!(g.evs, vec![Ev::Gap(2), data(b"c")]);
        g.seg(4, ACK, b"d");
        assert_eq!(g.data(), b"cde");
        g.seg(6, ACK, b"f");
        assert_eq!(g.data(), b"cdefg");
        assert_eq!(g.stats.ooo_limit_reached, 1);
    }

    #[test]
    fn segment_larger_than_the_byte_limit_is_delivered_after_a_gap() {
        let mut g = Rig::with(StreamConfig {
            max_ooo_bytes: 2,
            max_ooo_segments: 64,
            ..StreamConfig::default()
        });
        g.seg(0, SYN, b"");
        g.seg(4, ACK, b"defg");
        assert_eq!(g.evs, vec![Ev::Gap(3), data(b"defg")]);
        assert!(g.r.held.is_none());
    }

    #[test]
    fn zero_segment_limit_delivers_everything_with_gaps() {
        let mut g = Rig::with(StreamConfig {
            max_ooo_bytes: 0,
            max_ooo_segments: 0,
            ..StreamConfig::default()
        });
        g.seg(0, SYN, b"");
        g.seg(3, ACK, b"c");
        g.seg(1, ACK, b"ab");
        assert_eq!(g.evs, vec![Ev::Gap(2), data(b"c")]);
    }

    #[test]
    fn first_segment_without_syn_is_a_midstream_pickup() {
        let mut g = Rig::new();
        g.seg(5000, ACK, b"middle");
        g.seg(5006, ACK, b"end");
        g.seg(4990, ACK, b"earlier bytes"); // before the start: old
        assert_eq!(g.data(), b"middleend");
        assert_eq!(g.stats.midstream_pickups, 1);
    }

    #[test]
    fn pure_ack_pickup_moves_back_to_earlier_first_data() {
        let mut g = Rig::new();
        g.seg(5010, ACK, b"");
        g.seg(5000, ACK, b"0123456789");
        g.seg(5010, ACK, b"ab");
        assert_eq!(g.data(), b"0123456789ab");
        // Once data flowed, earlier bytes are old.
        g.seg(4990, ACK, b"x");
        assert_eq!(g.data(), b"0123456789ab");
    }

    #[test]
    fn pure_ack_pickup_then_later_data_is_a_gap_at_flush() {
        let mut g = Rig::new();
        g.seg(5000, ACK, b"");
        g.seg(5004, ACK, b"ef");
        g.flush();
        assert_eq!(g.evs, vec![Ev::Gap(4), data(b"ef")]);
    }

    #[test]
    fn syn_consumes_one_sequence_number() {
        let mut g = Rig::new();
        g.seg(41, SYN, b"");
        g.seg(41, ACK, b"Xa"); // "X" would sit on the SYN's number
        assert_eq!(g.data(), b"a");
        assert_eq!(g.stats.overlaps, 1);
    }

    #[test]
    fn data_on_a_syn_starts_after_it() {
        let mut g = Rig::new();
        // TCP Fast Open: the SYN carries the first bytes.
        g.seg(41, SYN, b"tfo");
        g.seg(45, ACK, b"rest");
        g.seg(41, SYN, b"tfo"); // retransmitted SYN with data
        assert_eq!(g.data(), b"tforest");
        assert_eq!(g.stats.retransmissions, 1);
    }

    #[test]
    fn repeated_syn_with_a_new_isn_before_data_restarts() {
        let mut g = Rig::new();
        g.seg(100, SYN, b"");
        g.seg(100, SYN, b""); // retransmission, same ISN
        g.seg(9000, SYN, b""); // new ISN, nothing sent yet
        g.seg(9001, ACK, b"new");
        g.seg(101, ACK, b"old"); // before the new start: old
        assert_eq!(g.data(), b"new");
        assert_eq!(g.stats.retransmissions, 1);
    }

    #[test]
    fn syn_with_a_new_isn_after_data_is_ignored() {
        let mut g = Rig::new();
        g.seg(100, SYN, b"");
        g.seg(101, ACK, b"ab");
        g.seg(5000, SYN, b"");
        g.seg(103, ACK, b"c");
        assert_eq!(g.data(), b"abc");
    }

    #[test]
    fn data_before_its_syn_is_delivered_once_and_unpicked() {
        // Server direction: the capture shows the server's first data before
        // its SYN-ACK (reordering between capture queues).
        let mut g = Rig::new();
        g.seg(7001, ACK | PSH, b"220 ready");
        assert_eq!(g.stats.midstream_pickups, 1);
        g.seg(7000, SYN | ACK, b"");
        g.seg(7010, ACK, b"!");
        assert_eq!(g.data(), b"220 ready!");
        assert_eq!(g.stats.midstream_pickups, 0);
    }

    #[test]
    fn client_data_before_the_syn_ack_is_delivered() {
        // Client direction: SYN then data, no SYN-ACK or ack ever seen.
        let mut g = Rig::new();
        g.seg(10, SYN, b"");
        g.seg(11, ACK | PSH, b"CONNECT");
        assert_eq!(g.data(), b"CONNECT");
    }

    #[test]
    fn fin_consumes_one_and_later_data_is_dropped() {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(1, FIN | ACK, b"bye");
        g.seg(4, ACK, b"zz"); // on the FIN's number and after
        g.seg(1, FIN | ACK, b"bye"); // retransmitted FIN
        g.ack(5); // the peer acks the FIN: no gap
        assert_eq!(g.evs, vec![data(b"bye")]);
        assert_eq!(g.stats.data_after_fin, 2);
        assert_eq!(g.stats.gaps, 0);
    }

    #[test]
    fn out_of_order_fin_cuts_held_data_after_it() {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(8, ACK, b"xyz"); // beyond the FIN that comes next
        g.seg(4, ACK, b"de");
        g.seg(6, FIN | ACK, b"f"); // FIN at 7, held "xyz" at 8..11 goes
        assert_eq!(g.stats.data_after_fin, 3);
        g.seg(6, ACK, b"fghi"); // "ghi" from 7 on is after the FIN
        g.seg(1, ACK, b"abc");
        assert_eq!(g.data(), b"abcdef");
        assert_eq!(g.stats.data_after_fin, 6);
        assert!(g.r.held.is_none());
    }

    #[test]
    fn rst_is_ignored() {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(1, RST, b"diagnostic");
        g.seg(1, ACK, b"a");
        assert_eq!(g.data(), b"a");
    }

    #[test]
    fn stream_across_the_sequence_wrap_is_contiguous() {
        let mut g = Rig::new();
        g.seg(u32::MAX - 4, SYN, b""); // stream starts at u32::MAX - 3
        g.seg(u32::MAX - 3, ACK, b"ab");
        // Bytes: a, b, c, d at u32::MAX - 3 ..= u32::MAX; e, f, g at 0..3.
        g.seg(1, ACK, b"fg"); // out of order, after the wrap
        g.seg(u32::MAX - 1, ACK, b"cd"); // in order, up to the wrap
        g.seg(0, ACK, b"e"); // fills the hole at 0
        g.seg(u32::MAX, ACK, b"D"); // old: first wins
        g.seg(3, ACK, b"h");
        assert_eq!(g.data(), b"abcdefgh");
        assert_eq!(g.stats.retransmissions, 1);
        assert_eq!(g.stats.ooo_segments, 1);
        assert_eq!(g.stats.gaps, 0);
    }

    #[test]
    fn segment_far_ahead_is_out_of_window() {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(1 + WINDOW + 1, ACK, b"far");
        g.seg(1u32.wrapping_add(1 << 31), ACK, b"half");
        g.seg(1, ACK, b"a");
        g.flush();
        assert_eq!(g.evs, vec![data(b"a")]);
        assert_eq!(g.stats.out_of_window, 2);
    }

    #[test]
    fn flush_delivers_held_data_with_gaps_and_resets() {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(1, ACK, b"a");
        g.seg(3, ACK, b"c");
        g.seg(6, ACK, b"fg");
        g.flush();
        assert_eq!(
            g.evs,
            vec![data(b"a"), Ev::Gap(1), data(b"c"), Ev::Gap(2), data(b"fg")]
        );
        assert!(g.r.held.is_none());
        // Reset: the next segment is a new pickup.
        g.seg(500, ACK, b"z");
        assert_eq!(g.data(), b"acfgz");
        assert_eq!(g.stats.midstream_pickups, 1);
    }

    #[test]
    fn many_one_byte_segments_in_reverse_order_are_reassembled() {
        // 60 000 pieces: quadratic storage would take minutes here.
        const N: u32 = 60_000;
        let mut g = Rig::with(StreamConfig {
            max_ooo_bytes: N,
            max_ooo_segments: u16::MAX,
            ..StreamConfig::default()
        });
        g.seg(0, SYN, b"");
        let byte = |i: u32| (i % 251) as u8;
        for i in (1..N).rev() {
            g.seg(1 + i, ACK, &[byte(i)]);
        }
        assert_eq!(g.r.held_bytes(), N - 1);
        g.seg(1, ACK, &[byte(0)]);
        let want: Vec<u8> = (0..N).map(byte).collect();
        assert_eq!(g.data(), want);
        assert!(g.r.held.is_none());
    }

    #[test]
    fn many_one_byte_segments_interleaved_then_covered_are_reassembled() {
        // Every other byte held, then one segment fills all the holes: the
        // pieces merge instead of being rescanned.
        const N: u32 = 100_000;
        let mut g = Rig::with(StreamConfig {
            max_ooo_bytes: N,
            max_ooo_segments: u16::MAX,
            ..StreamConfig::default()
        });
        g.seg(0, SYN, b"");
        let byte = |i: u32| (i % 253) as u8;
        for i in (2..N).step_by(2) {
            g.seg(1 + i, ACK, &[byte(i)]);
        }
        let all: Vec<u8> = (0..N).map(byte).collect();
        g.seg(2, ACK, &all[1..]);
        assert_eq!(g.r.held.as_ref().map(|h| h.pieces.len()), Some(1));
        g.seg(1, ACK, &all[..1]);
        assert_eq!(g.data(), all);
    }

    #[test]
    fn merge_adds_every_counter() {
        let one = StreamStats {
            midstream_pickups: 1,
            ooo_segments: 2,
            retransmissions: 3,
            overlaps: 4,
            overlap_diff_data: 5,
            gaps: 6,
            gap_bytes: 7,
            ooo_limit_reached: 8,
            data_after_fin: 9,
            out_of_window: 10,
        };
        let mut sum = one.clone();
        sum.merge(&one);
        assert_eq!(
            sum,
            StreamStats {
                midstream_pickups: 2,
                ooo_segments: 4,
                retransmissions: 6,
                overlaps: 8,
                overlap_diff_data: 10,
                gaps: 12,
                gap_bytes: 14,
                ooo_limit_reached: 16,
                data_after_fin: 18,
                out_of_window: 20,
            }
        );
    }

    /// A small deterministic generator for shuffles inside property tests
    /// (proptest shrinks the seed).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }

        fn below(&mut self, n: usize) -> usize {
            if n == 0 {
                0
            } else {
                (self.next() % n as u64) as usize
            }
        }
    }

    /// Cuts `len` bytes into segments of 1..=max_seg bytes, as offset ranges.
    fn cut(len: usize, max_seg: usize, rng: &mut Lcg) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        let mut at = 0;
        while at < len {
            let n = (1 + rng.below(max_seg)).min(len - at);
            v.push((at, at + n));
            at += n;
        }
        v
    }

    fn isn_strategy() -> impl Strategy<Value = u32> {
        prop_oneof![any::<u32>(), (u32::MAX - 4000)..=u32::MAX]
    }

    proptest! {
        #[test]
        fn shuffled_duplicated_segments_reassemble_the_original(
            original in proptest::collection::vec(any::<u8>(), 1..3000),
            isn in isn_strategy(),
            seed in any::<u64>(),
            max_seg in 1usize..400,
            extra in 0usize..40,
        ) {
            let mut rng = Lcg(seed);
            let mut ranges = cut(original.len(), max_seg, &mut rng);
            // Extra arbitrary ranges: retransmissions and overlaps.
            for _ in 0..extra {
                let a = rng.below(original.len());
                let b = (a + 1 + rng.below(max_seg)).min(original.len());
                ranges.push((a, b));
            }
            for i in (1..ranges.len()).rev() {
                ranges.swap(i, rng.below(i + 1));
            }
            let mut g = Rig::with(StreamConfig { max_ooo_bytes: u32::MAX, max_ooo_segments: u16::MAX , ..StreamConfig::default()});
            g.seg(isn, SYN, b"");
            // The first segment to carry a byte carries the original; any
            // later one carries different bytes, which first-wins must drop.
            let mut sent = vec![false; original.len()];
            for (a, b) in ranges {
                let payload: Vec<u8> = (a..b)
                    .map(|i| if std::mem::replace(&mut sent[i], true) { !original[i] } else { original[i] })
                    .collect();
                g.seg(isn.wrapping_add(1).wrapping_add(a as u32), ACK, &payload);
            }
            g.flush();
            prop_assert!(g.gaps().is_empty(), "gaps {:?}", g.gaps());
            prop_assert_eq!(g.data(), original);
        }

        #[test]
        fn output_matches_a_first_wins_bitmap_model(
            len in 1usize..2000,
            isn in isn_strategy(),
            seed in any::<u64>(),
            max_seg in 1usize..300,
            extra in 0usize..30,
            drop_pct in 0usize..50,
            small_limits in any::<bool>(),
        ) {
            let mut rng = Lcg(seed);
            let mut ranges = cut(len, max_seg, &mut rng);
            for _ in 0..extra {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(max_seg)).min(len);
                ranges.push((a, b));
            }
            for i in (1..ranges.len()).rev() {
                ranges.swap(i, rng.below(i + 1));
            }
            ranges.retain(|_| rng.below(100) >= drop_pct);
            let cfg = if small_limits {
                StreamConfig { max_ooo_bytes: 1 + rng.below(600) as u32, max_ooo_segments: rng.below(8) as u16, ..StreamConfig::default() }
            } else {
                StreamConfig { max_ooo_bytes: u32::MAX, max_ooo_segments: u16::MAX, ..StreamConfig::default() }
            };
            let mut g = Rig::with(cfg);
            g.seg(isn, SYN, b"");
            // Naive model: one slot per offset, the first sender fills it.
            let mut model: Vec<Option<u8>> = vec![None; len];
            for (a, b) in ranges {
                let payload: Vec<u8> = (a..b).map(|_| rng.next() as u8).collect();
                for (i, &byte) in (a..b).zip(&payload) {
                    model[i].get_or_insert(byte);
                }
                g.seg(isn.wrapping_add(1).wrapping_add(a as u32), ACK, &payload);
            }
            g.flush();
            // The stream ends with the last byte anyone sent.
            let end = model.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
            model.truncate(end);
            let got = g.content();
            prop_assert_eq!(got.len(), model.len());
            for (i, (m, o)) in model.iter().zip(&got).enumerate() {
                match (m, o) {
                    // Delivered bytes are always the first ones sent.
                    (_, Some(b)) => prop_assert_eq!(*m, Some(*b), "offset {}", i),
                    // A gap over a byte the model has is only allowed when a
                    // limit forced it.
                    (Some(_), None) => prop_assert!(g.stats.ooo_limit_reached > 0, "offset {}", i),
                    (None, None) => {}
                }
            }
            if g.stats.ooo_limit_reached == 0 {
                prop_assert_eq!(got, model);
            }
        }
    }
}
