//! Stream: reassembly of one direction of a TCP connection.
//!
//! Owns: turning segments in arrival order into the byte stream the sender
//! wrote, as [`Event::Data`] slices in sequence order, [`Event::Gap`]s where
//! bytes were never seen, and [`Event::Anomaly`] when the sender contradicted
//! itself. One [`Reassembler`] per direction (the flow stage owns two); one
//! [`Stage`] per worker holds the limits, the counters and the worker's
//! [`Lease`] on the global `stream.memcap`, and is lent to every call.
//!
//! Invariants (RFC 9293 sequence space, modulo 2^32; §3.4 for sequence
//! numbers, §3.5 for SYN and §3.6 for FIN each consuming one number):
//! - In-order segments are handed on as the segment's own bytes, no copy.
//! - Out-of-order bytes are copied and held as coalesced ranges (no two held
//!   ranges overlap or touch), bounded in bytes: per direction by
//!   `max_ooo_bytes` and for all flows of all workers by `stream.memcap`,
//!   each range counting its bytes plus [`PIECE_OVERHEAD`], so a million
//!   one-byte holes cost what they occupy. Past a bound the first hole is
//!   declared a gap and what follows it delivered: data is handed on, never
//!   dropped for lack of room.
//! - Held data waits at a hole at most `hole_timeout` seconds of packet time
//!   without the stream advancing (a live sensor on a one-way mirror port
//!   must not sit on a dropped packet's successors for hours), at most until
//!   the byte bounds, and at most until the flow ends ([`Reassembler::flush`]).
//! - Nothing is ever delivered twice, and every delivered byte is the first
//!   copy of that byte the capture showed (see "Overlaps").
//!
//! # Overlaps: first copy wins, and disagreement is reported
//!
//! Bytes already delivered or already held are never replaced by a later
//! segment covering the same sequence numbers; a later segment only
//! contributes bytes nobody sent before. This is what every receiver does for
//! bytes it already accepted in order (data below `RCV.NXT` is discarded),
//! and it is the only policy that needs no knowledge of the receiver: a
//! hospital network mixes Windows workstations, Linux PACS and embedded
//! devices whose stacks resolve *out-of-order* overlaps differently
//! (Suricata models them as `host-os-policy`), and a per-host table would
//! have to be configured and kept right by someone. Instead, a segment whose
//! overlap differs from what was held or recently delivered is counted in
//! `overlap_diff_data` and raises the anomaly
//! `stream.reassembly_overlap_different_data` (Suricata's name, EVE
//! `anomaly.type` `stream`), at most once per direction per flow, so an
//! analyst learns that the receiver may have seen other bytes than the
//! sensor — the mark of an insertion attack (a decoy the receiver never
//! got, e.g. with an expiring TTL) or of a last-wins stack being exploited.
//!
//! To compare retransmissions with delivered bytes, each direction keeps a
//! window of the delivered bytes its peer has not acknowledged yet — the
//! only ones a receiver can still disagree on; bytes it acknowledged it will
//! discard whatever their copy says — at most the last `overlap_window`
//! bytes (0 turns it off). A gap empties it. The window is charged to
//! `stream.memcap` but may grow only while that budget is less than half
//! used, so comparing never takes room from held out-of-order evidence
//! (refusals: `overlap_window_memcap`).
//!
//! The window refers to bytes where it can and copies them where it must.
//! A capture file is one memory mapping that lives for the whole run
//! ([`Stage::set_source`]), so a delivered run of at least [`MIN_SPAN`]
//! bytes that lies in it (an in-order segment's own payload) is kept as a
//! part "stream offset, offset in the mapping, length": no byte is copied,
//! and a retransmission is compared with the mapping. Everything else is
//! copied, as bytes that do not outlive the window must be: live capture
//! (the ring's frames are reused), piped input (the reader reuses its
//! chunks), reassembled datagrams, bytes delivered from held ranges (the
//! store frees them) and runs shorter than [`MIN_SPAN`] (a copy of them
//! costs no more than the part that would refer to them). Copied bytes are
//! charged as before, by the capacity of the copy; a mapped part costs
//! only its entry in the window's list of parts ([`PART_SIZE`] bytes, the
//! list charged by its capacity), and the store holds a handle on the
//! mapping, so no reference can outlive what it points into. A store
//! whose mapped parts belong to another mapping than the one in use
//! (the next file of a run) copies them before it takes a new one.
//!
//! The list of parts stays bounded by construction: parts that continue
//! each other (same kind, consecutive stream and mapping offsets) are one
//! part, every mapped part but the oldest is at least [`MIN_SPAN`] long,
//! so a window of `overlap_window` bytes has at most `2 × overlap_window /
//! MIN_SPAN + 3` parts (about 12 KiB for 64 KiB), whatever the
//! segmentation: a flood of one-byte segments is copied into one part. A
//! list the budget does not let grow drops its oldest part, so the window
//! only ever covers fewer bytes, never more than the last `overlap_window`.
//!
//! Not defended: a differing copy of a byte older than the window, or of a
//! byte delivered before its direction's window could be kept, is not seen;
//! the sensor keeps the first copy even where the receiver took the later
//! one, so the anomaly, not the alert, is then the finding.
//!
//! Why bytes and not something cheaper: comparing exactly needs the bytes.
//! A keyed hash per delivered range cannot check a retransmission that
//! covers part of a range (the hash of the whole says nothing about a
//! part, and hashes at every offset cost more than the bytes), and a window
//! kept only after a direction's first retransmission has nothing to
//! compare that one with. Copying every delivered byte was the most
//! expensive defence in time (the whole 1 GB `dicom_bulk`: 1.3–1.5× the CPU
//! time of a run without the window, as copying a gigabyte costs its memory
//! bandwidth whatever the window's size — 1.15× with a 4 KiB window), which
//! the references into the mapping remove for capture files (README,
//! "What the defences cost"). Measured and dropped (callgrind, 1/20 of
//! `dicom_bulk`), when the window was all copies: a ring indexed by stream
//! offset instead of the `VecDeque` (+3.5 % of instructions: its
//! allocations are zeroed), and regrowing a window straight to its
//! direction's former size (+0.6 %).
//!
//! # One-way and out-of-step captures
//!
//! A mirror port often shows one direction only (asymmetric routing), or
//! shows an ACK a little before the data it acknowledges (the two directions
//! cross the switch on different queues). [`Reassembler::peer_ack`] takes
//! the peer's acknowledgement number, which is the worker's only view of a
//! direction it never sees, before the segment's own payload (that ACK
//! covers what the peer received before sending it):
//! - a direction not started yet starts at the acknowledged number, as a
//!   mid-stream pickup (no gap; data that then shows up just before that
//!   number, the ACK having overtaken it, moves the start back);
//! - bytes acknowledged but never seen are declared a gap one ACK late: on
//!   the next acknowledgement of the peer (any later ACK, a duplicate
//!   included), or at the end of the flow, so data overtaken by its own ACK
//!   still arrives in time. That gap is how an app parser learns that the
//!   answer to an open request was lost (counted in `ack_unseen_data`);
//! - a direction whose peer never acknowledges anything still delivers:
//!   holes go at `hole_timeout`, at the byte bounds, or at the flow's end.
//!
//! Not defended: data overtaken by more than one of its peer's ACKs is
//! old when it arrives (after its gap was declared) and is not delivered;
//! the peer acknowledging a FIN the capture never showed reads as one lost
//! byte at the end of the stream; and two forged ACKs (valid checksums,
//! sent by anyone on the monitored segment) up to 1 GiB ahead make the
//! bytes they cover a gap, where the real sender would drop them as
//! acknowledging data it never sent — the sensor cannot tell that from a
//! capture that lost those bytes.
//!
//! # Details of the policy
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
//!
//! # Storage and complexity
//!
//! An idle [`Reassembler`] is 24 bytes. A `Store` is allocated behind it
//! while it holds something — out-of-order ranges, window bytes, or an
//! acknowledgement still to act on — and handed back as soon as it holds
//! nothing; the [`Stage`] keeps up to 1024 of them (1 MiB, still charged,
//! given back first when the budget is short) for reuse, so a direction
//! whose window empties at every ack allocates nothing per segment.
//!
//! Held ranges sit in a `BTreeMap` keyed by a 64-bit stream offset (so
//! wraparound never reorders keys), each range one `VecDeque` that grows at
//! either end. A segment costs O(log p + k + n) for p held ranges, k ranges
//! it touches and n bytes it carries; only bytes not held yet are copied,
//! and two ranges that become adjacent are joined by moving the shorter into
//! the longer (union by size), so a byte moves O(log n) times at most: no
//! input order, including 64 KiB of one-byte segments in reverse or in
//! alternating order, makes the work quadratic ([`Stage::work`] counts it).
//!
//! # Using a reassembler on its own
//!
//! ```
//! use wardwatch::stream::{Event, Reassembler, Stage, StreamConfig};
//! use wardwatch::time::Timestamp;
//!
//! let mut stage = Stage::standalone(StreamConfig::default());
//! let mut r = Reassembler::new();
//! let mut got = Vec::new();
//! let mut out = |e: Event<'_>| {
//!     if let Event::Data(d) = e {
//!         got.extend_from_slice(d)
//!     }
//! };
//! let t = Timestamp(0);
//! r.segment(&mut stage, t, 100, wardwatch::decode::tcp_flags::SYN, b"", &mut out);
//! r.segment(&mut stage, t, 104, 0, b"def", &mut out); // held
//! r.segment(&mut stage, t, 101, 0, b"abc", &mut out); // fills the hole
//! r.flush(&mut stage, &mut out); // end of the flow: frees what is held
//! assert_eq!(got, b"abcdef");
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::capture::Buffer;
use crate::decode::tcp_flags;
use crate::memcap::{ByteSize, Lease, MemCap};
use crate::time::Timestamp;

/// Reassembly limits (the `stream:` section of the configuration file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// Most out-of-order data one direction may hold: held bytes plus
    /// [`PIECE_OVERHEAD`] per held range. The default holds a 64 KiB
    /// receive window of one-byte segments in any order (at worst 32 768
    /// one-byte ranges) with room to spare.
    pub max_ooo_bytes: ByteSize,
    /// Seconds of packet time held data may wait at a hole while the stream
    /// does not advance; then the hole becomes a gap. 0: no time limit.
    pub hole_timeout: u32,
    /// Most delivered, not yet acknowledged bytes kept per direction to
    /// compare retransmissions with (different data is an anomaly). 0: off.
    pub overlap_window: ByteSize,
    /// Out-of-order bytes and windows of all flows of all workers together
    /// (`stream.memcap`).
    pub memcap: ByteSize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_ooo_bytes: ByteSize::mib(4),
            hole_timeout: 30,
            overlap_window: ByteSize(64 * 1024),
            memcap: ByteSize::mib(32),
        }
    }
}

/// Heap bytes charged per held range beyond its data: the map entry (an
/// 8-byte key and a 32-byte `VecDeque` in B-tree nodes at least half full)
/// and the allocation's header and rounding. Measured: 1.44 M one-byte
/// ranges held took 107 bytes each of resident memory
/// (`benches/stress.sh`, `ooo-pieces`).
pub const PIECE_OVERHEAD: u64 = 112;

/// Heap bytes charged for a `Store` itself (checked against its size in a
/// test).
const STORE_OVERHEAD: u64 = 184;

/// Heap bytes charged per entry of a window's list of parts.
const PART_SIZE: u64 = std::mem::size_of::<Part>() as u64;

/// Shortest delivered run kept as a reference into the capture's mapping;
/// shorter runs are copied (a copy of fewer bytes costs about what its
/// [`Part`] would). It bounds the parts of a window: see [`max_parts`].
const MIN_SPAN: u64 = 256;

/// Fewest parts a window's list is allocated for.
const MIN_PARTS: u64 = 1;

/// Stream offset of `next` when a `Store` is allocated: far enough above
/// zero that an offset [`WINDOW`] behind it never underflows.
const BASE: u64 = 1 << 32;

/// Smallest allocation of a window, so small segments do not regrow it.
const MIN_WINDOW: u64 = 256;

/// Most spare stores a [`Stage`] keeps, and most bytes they may hold
/// together (charged to the budget): enough to absorb the churn of
/// thousands of interleaved request/response flows, little next to
/// `stream.memcap`.
const SPARE_STORES: usize = 1024;
const SPARE_BYTES: u64 = 1 << 20;

/// What a reassembler hands to its consumer, in stream order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// The next bytes of the stream.
    Data(&'a [u8]),
    /// `len` bytes of the stream were never seen; data resumes after them.
    Gap(u32),
    /// Something about this direction an analyst should see (EVE `anomaly`
    /// of type `stream`); the stream itself goes on.
    Anomaly(Anomaly),
}

/// A stream-level anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Anomaly {
    /// A segment carried bytes that differ from the bytes already held or
    /// delivered at the same sequence numbers; the first copy was kept.
    OverlapDifferentData,
}

impl Anomaly {
    /// Suricata's event name (EVE `anomaly.event`, with `anomaly.type`
    /// `stream`).
    pub fn event(self) -> &'static str {
        match self {
            Anomaly::OverlapDifferentData => "stream.reassembly_overlap_different_data",
        }
    }
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
    /// Segments whose overlap with held or windowed delivered bytes differed
    /// from those bytes (the first copy was kept).
    pub overlap_diff_data: u64,
    /// Gaps reported (each [`Event::Gap`]).
    pub gaps: u64,
    /// Bytes covered by the reported gaps.
    pub gap_bytes: u64,
    /// Times a segment did not fit within `max_ooo_bytes`, forcing a gap.
    pub ooo_limit_reached: u64,
    /// Times `stream.memcap` refused to hold a segment's bytes, forcing a
    /// gap (Suricata's `tcp.segment_memcap_drop`; here the segment is
    /// delivered after the gap, not dropped).
    pub segment_memcap_drop: u64,
    /// Holes declared gaps because held data waited `hole_timeout`.
    pub ooo_timeout: u64,
    /// Gaps declared because the peer acknowledged bytes never seen.
    pub ack_unseen_data: u64,
    /// Times a window for comparing retransmissions could not grow because
    /// `stream.memcap` was half used.
    pub overlap_window_memcap: u64,
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
            segment_memcap_drop,
            ooo_timeout,
            ack_unseen_data,
            overlap_window_memcap,
            data_after_fin,
            out_of_window,
        } = other;
        for (a, b) in [
            (&mut self.midstream_pickups, midstream_pickups),
            (&mut self.ooo_segments, ooo_segments),
            (&mut self.retransmissions, retransmissions),
            (&mut self.overlaps, overlaps),
            (&mut self.overlap_diff_data, overlap_diff_data),
            (&mut self.gaps, gaps),
            (&mut self.gap_bytes, gap_bytes),
            (&mut self.ooo_limit_reached, ooo_limit_reached),
            (&mut self.segment_memcap_drop, segment_memcap_drop),
            (&mut self.ooo_timeout, ooo_timeout),
            (&mut self.ack_unseen_data, ack_unseen_data),
            (&mut self.overlap_window_memcap, overlap_window_memcap),
            (&mut self.data_after_fin, data_after_fin),
            (&mut self.out_of_window, out_of_window),
        ] {
            *a = a.saturating_add(*b);
        }
    }

    /// The counters written in the stats record, under Suricata's names
    /// where it has the counter (`tcp.reassembly_gap`, `tcp.overlap`,
    /// `tcp.overlap_diff_data`, `tcp.segment_memcap_drop`,
    /// `tcp.ack_unseen_data`) and ours otherwise. `midstream_pickups` is the
    /// flow stage's to report.
    pub fn counters(&self) -> [(&'static str, u64); 11] {
        [
            ("tcp.reassembly_gap", self.gaps),
            ("tcp.overlap", self.overlaps),
            ("tcp.overlap_diff_data", self.overlap_diff_data),
            ("tcp.ooo_segments", self.ooo_segments),
            ("tcp.retransmissions", self.retransmissions),
            ("tcp.reassembly_gap_bytes", self.gap_bytes),
            ("tcp.ooo_limit_reached", self.ooo_limit_reached),
            ("tcp.segment_memcap_drop", self.segment_memcap_drop),
            ("tcp.ooo_timeout", self.ooo_timeout),
            ("tcp.ack_unseen_data", self.ack_unseen_data),
            ("tcp.overlap_window_memcap", self.overlap_window_memcap),
        ]
    }
}

/// The reassembly stage of one worker: what all of its reassemblers share
/// and lend each other call by call.
#[derive(Debug)]
pub struct Stage {
    /// The limits.
    pub cfg: StreamConfig,
    /// The counters.
    pub stats: StreamStats,
    /// This worker's draw on `stream.memcap`.
    lease: Lease,
    /// Packet time of the current call.
    now: Timestamp,
    /// Stores given up by idle reassemblers, still charged, kept for the
    /// next one that needs a store (at most [`SPARE_STORES`] and
    /// [`SPARE_BYTES`]): a direction whose window empties at every ack then
    /// allocates and regrows nothing per segment.
    #[expect(
        clippy::vec_box,
        reason = "boxes move between reassemblers and the pool without reallocating"
    )]
    spare: Vec<Box<Store>>,
    /// Bytes charged for the spare stores.
    spare_bytes: u64,
    /// The memory-mapped capture file the current packets are read from
    /// ([`Stage::set_source`]): delivered bytes that lie in it are kept in
    /// windows as references, not copied.
    mapped: Option<Arc<Buffer>>,
    /// Units of bookkeeping work done so far: bytes copied or moved between
    /// held ranges and ranges visited. Not reported; tests and fuzzers check
    /// that it grows linearly (up to a log factor) with the input.
    pub work: u64,
}

impl Stage {
    /// A worker's stage drawing on a shared `stream.memcap` through `lease`.
    pub fn new(cfg: StreamConfig, lease: Lease) -> Stage {
        Stage {
            cfg,
            stats: StreamStats::default(),
            lease,
            now: Timestamp(0),
            spare: Vec::new(),
            spare_bytes: 0,
            mapped: None,
            work: 0,
        }
    }

    /// Names the buffer the payloads of the next segments are read from
    /// (the worker calls it once per chunk of packets). Only a
    /// memory-mapped capture file is kept: it lives for the whole run, so
    /// a window may refer to its bytes instead of copying them. Any other
    /// buffer (a chunk read from a pipe, which the reader reuses once it is
    /// done) is not held, and without a mapping every kept byte is copied.
    pub fn set_source(&mut self, buf: &Arc<Buffer>) {
        let mapped = matches!(**buf, Buffer::Mmap(_));
        if self.mapped.as_ref().is_some_and(|m| Arc::ptr_eq(m, buf)) {
            return;
        }
        // Spare stores keep the handle of the mapping in use, so reusing
        // one costs no reference count; a new mapping makes theirs old.
        for s in &mut self.spare {
            s.mapping = None;
        }
        self.mapped = mapped.then(|| Arc::clone(buf));
    }

    /// Where `bytes` start in the current mapping, if they lie in it. The
    /// addresses say it: a live slice whose addresses are inside the
    /// mapping is the mapping's memory, so `bytes` are its bytes at that
    /// offset (payloads from a live ring, a reassembled datagram or held
    /// ranges never are).
    fn mapped_offset(&self, bytes: &[u8]) -> Option<u64> {
        let m = self.mapped.as_deref()?;
        let off = bytes.as_ptr().addr().checked_sub(m.as_ptr().addr())?;
        let end = off.checked_add(bytes.len())?;
        (end <= m.len()).then_some(off as u64)
    }

    /// A stage with a budget of its own (`cfg.memcap`), for using
    /// reassemblers outside a pipeline (tests, fuzzing, tools).
    pub fn standalone(cfg: StreamConfig) -> Stage {
        let cap = MemCap::new("tcp.reassembly_memuse", cfg.memcap.0);
        Stage::new(cfg, cap.lease())
    }

    /// Bytes this stage holds now, as charged to the budget: what its
    /// reassemblers hold plus the spare stores kept for reuse.
    pub fn memuse(&self) -> u64 {
        self.lease.held()
    }

    /// Frees the spare stores (their bytes go back to the budget).
    pub fn release_spares(&mut self) {
        for s in self.spare.drain(..) {
            self.lease.release(s.charged);
        }
        self.spare_bytes = 0;
    }

    /// Reserves `n` bytes, giving the spare stores back first if the
    /// budget is short: they must never cost held data its room.
    fn reserve(&mut self, n: u64) -> bool {
        if self.lease.try_reserve(n) {
            return true;
        }
        if self.spare.is_empty() {
            return false;
        }
        self.release_spares();
        self.lease.try_reserve(n)
    }

    /// A spare store, ready for a reassembler.
    fn take_spare(&mut self) -> Option<Box<Store>> {
        let mut s = self.spare.pop()?;
        self.spare_bytes = self.spare_bytes.saturating_sub(s.charged);
        s.since = self.now;
        Some(s)
    }

    /// Takes back a reassembler's store: kept for reuse when it holds no
    /// range and there is room, else freed.
    fn put_spare(&mut self, mut s: Box<Store>) {
        let room = self.spare_bytes.saturating_add(s.charged) <= SPARE_BYTES;
        if self.spare.len() < SPARE_STORES && room && s.pieces.is_empty() {
            s.clear_window();
            if !s
                .mapping
                .as_ref()
                .zip(self.mapped.as_ref())
                .is_some_and(|(a, b)| Arc::ptr_eq(a, b))
            {
                s.mapping = None;
            }
            s.frontier = None;
            s.next_abs = BASE;
            s.held = 0;
            self.spare_bytes = self.spare_bytes.saturating_add(s.charged);
            self.spare.push(s);
        } else {
            self.lease.release(s.charged);
        }
    }

    /// The window size in bytes, clamped to the sequence window.
    fn window_limit(&self) -> u64 {
        self.cfg.overlap_window.0.min(u64::from(WINDOW))
    }

    /// Reserves `n` bytes for a window, only while the budget is less than
    /// half used after it.
    fn grant_window(&mut self, n: u64) -> bool {
        let cap = self.lease.cap();
        let room = cap.used().saturating_add(n) <= cap.limit() / 2;
        if room && self.reserve(n) {
            return true;
        }
        self.stats.overlap_window_memcap = self.stats.overlap_window_memcap.saturating_add(1);
        false
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
    /// The start came from a segment without SYN or from the peer's
    /// acknowledgement (counted as a pickup).
    pub const PICKUP: u8 = 0x04;
    /// At least one payload byte was delivered or held, or a gap reported.
    pub const DATA: u8 = 0x08;
    /// `fin` holds the sequence number of the FIN.
    pub const FIN: u8 = 0x10;
    /// The different-data anomaly was raised for this direction.
    pub const DIFF_REPORTED: u8 = 0x20;
}

/// What one direction holds beyond its 24 idle bytes, allocated only while
/// it holds something. Every byte of it is charged to the stage's lease
/// (`charged`).
#[derive(Debug)]
struct Store {
    /// Held ranges keyed by stream offset: never overlapping, never
    /// adjacent, all starting after `next_abs`.
    pieces: BTreeMap<u64, VecDeque<u8>>,
    /// Stream offset of the reassembler's `next`. Offsets count from
    /// [`BASE`] at allocation, so they do not wrap.
    next_abs: u64,
    /// Sum of the ranges' lengths.
    held: u64,
    /// The window: the last delivered bytes the peer has not acknowledged,
    /// ending at `next_abs`, as consecutive parts (stream order, no gap
    /// between them, at most `parts_cap` of them): runs of the capture's
    /// mapping and runs of copied bytes. Two parts of the same kind that
    /// continue each other are one part.
    parts: VecDeque<Part>,
    /// Parts the list is allocated for, charged as [`PART_SIZE`] each.
    parts_cap: u64,
    /// The bytes of the copied parts, in window order; at most
    /// `window_cap` bytes.
    window: VecDeque<u8>,
    /// Copy capacity charged to the lease.
    window_cap: u64,
    /// Position of `window[0]` in the count of bytes ever copied into it
    /// (a copied part's `src` is its first byte's position).
    copied_front: u64,
    /// The mapping the mapped parts refer to; it outlives them because
    /// this handle keeps it.
    mapping: Option<Arc<Buffer>>,
    /// The highest acknowledgement beyond `next` not acted on yet: bytes
    /// below it still missing at the next ack become a gap.
    frontier: Option<u32>,
    /// Packet time since held data waits without the stream advancing.
    since: Timestamp,
    /// Bytes reserved from the lease for all of the above.
    charged: u64,
}

impl Store {
    fn new(now: Timestamp) -> Box<Store> {
        Box::new(Store {
            pieces: BTreeMap::new(),
            next_abs: BASE,
            held: 0,
            parts: VecDeque::new(),
            parts_cap: 0,
            window: VecDeque::new(),
            window_cap: 0,
            copied_front: 0,
            mapping: None,
            frontier: None,
            since: now,
            charged: STORE_OVERHEAD,
        })
    }
}

/// A run of the window: `len` bytes from stream offset `abs`, found at
/// offset `src` of the store's mapping (`mapped`) or at position `src` of
/// its copied bytes.
#[derive(Debug, Clone, Copy)]
struct Part {
    abs: u64,
    src: u64,
    len: u32,
    mapped: bool,
}

impl Part {
    fn end(&self) -> u64 {
        self.abs.saturating_add(u64::from(self.len))
    }
}

/// Most parts a window of `limit` bytes needs: every mapped part but the
/// oldest (which may have been cut) is at least [`MIN_SPAN`] long, and no
/// two copied parts are neighbours, so there are at most
/// `limit / MIN_SPAN + 1` mapped parts and one more copied part than that.
fn max_parts(limit: u64) -> u64 {
    (limit / MIN_SPAN).saturating_mul(2).saturating_add(3)
}

impl Store {
    /// Bytes in the window.
    fn window_len(&self) -> u64 {
        match (self.parts.front(), self.parts.back()) {
            (Some(f), Some(b)) => b.end().saturating_sub(f.abs),
            _ => 0,
        }
    }

    fn clear_window(&mut self) {
        self.parts.clear();
        self.window.clear();
        self.copied_front = 0;
    }

    /// Drops the oldest `n` bytes of the window.
    fn drop_front(&mut self, mut n: u64) {
        while n > 0 {
            let Some(p) = self.parts.front_mut() else {
                return;
            };
            let k = n.min(u64::from(p.len));
            if !p.mapped {
                let k_us = usize::try_from(k).unwrap_or(usize::MAX);
                self.window.drain(..k_us.min(self.window.len()));
                self.copied_front = self.copied_front.saturating_add(k);
            }
            if k == u64::from(p.len) {
                self.parts.pop_front();
            } else {
                // k < len, so it fits in a u32.
                p.len -= k as u32;
                p.abs = p.abs.saturating_add(k);
                p.src = p.src.saturating_add(k);
            }
            n -= k;
        }
    }

    /// Makes room in the list of parts for one more, growing it within
    /// [`max_parts`] while the budget allows, else dropping the oldest
    /// part; `false` if no part can be kept at all.
    fn part_room(&mut self, stage: &mut Stage, limit: u64) -> bool {
        if (self.parts.len() as u64) < self.parts_cap {
            return true;
        }
        let target = self
            .parts_cap
            .saturating_mul(2)
            .max(MIN_PARTS)
            .min(max_parts(limit));
        if target > self.parts_cap {
            let grow = (target - self.parts_cap).saturating_mul(PART_SIZE);
            if stage.grant_window(grow) {
                let extra = usize::try_from(target).unwrap_or(usize::MAX);
                self.parts
                    .reserve_exact(extra.saturating_sub(self.parts.len()));
                self.parts_cap = target;
                self.charged = self.charged.saturating_add(grow);
                return true;
            }
        }
        if let Some(len) = self.parts.front().map(|p| p.len) {
            self.drop_front(u64::from(len));
        }
        (self.parts.len() as u64) < self.parts_cap
    }

    /// Keeps `len` delivered bytes at stream offset `abs` that lie at
    /// offset `src` of the stage's mapping: a reference, no copy.
    fn remember_mapped(&mut self, stage: &mut Stage, limit: u64, abs: u64, src: u64, len: u64) {
        let same = self
            .mapping
            .as_ref()
            .zip(stage.mapped.as_ref())
            .is_some_and(|(a, b)| Arc::ptr_eq(a, b));
        if !same {
            // Another file: what refers to the old mapping is copied first.
            self.unmap(stage, limit);
            self.mapping = stage.mapped.clone();
        }
        let over = self.window_len().saturating_add(len).saturating_sub(limit);
        self.drop_front(over);
        let Ok(len32) = u32::try_from(len) else {
            return;
        };
        if let Some(b) = self.parts.back_mut() {
            let joined =
                b.mapped && b.end() == abs && b.src.saturating_add(u64::from(b.len)) == src;
            if let Some(l) = b.len.checked_add(len32).filter(|_| joined) {
                b.len = l;
                return;
            }
        }
        if !self.part_room(stage, limit) {
            self.clear_window();
            return;
        }
        self.parts.push_back(Part {
            abs,
            src,
            len: len32,
            mapped: true,
        });
    }

    /// Raises the capacity for copied window bytes towards `need` (the
    /// next power of two, at least [`MIN_WINDOW`], at most `limit`) when the
    /// budget grants it; whether it grew.
    fn grow_copy_cap(&mut self, stage: &mut Stage, limit: u64, need: u64) -> bool {
        if need <= self.window_cap || self.window_cap >= limit {
            return false;
        }
        let target = need
            .checked_next_power_of_two()
            .unwrap_or(u64::MAX)
            .max(MIN_WINDOW)
            .min(limit);
        let grow = target - self.window_cap;
        if !stage.grant_window(grow) {
            return false;
        }
        self.window_cap = target;
        self.charged = self.charged.saturating_add(grow);
        true
    }

    /// Keeps a copy of `bytes`, delivered at stream offset `abs`.
    fn remember_copy(&mut self, stage: &mut Stage, limit: u64, abs: u64, bytes: &[u8]) {
        let need = (self.window.len() as u64).saturating_add(bytes.len() as u64);
        if self.grow_copy_cap(stage, limit, need) {
            let target_us = usize::try_from(self.window_cap).unwrap_or(usize::MAX);
            self.window
                .reserve_exact(target_us.saturating_sub(self.window.len()));
        }
        let cap = usize::try_from(self.window_cap).unwrap_or(usize::MAX);
        let cut = bytes.len().saturating_sub(cap);
        let (abs, bytes) = (
            abs.saturating_add(cut as u64),
            bytes.get(cut..).unwrap_or(&[]),
        );
        if bytes.is_empty() {
            // Nothing can be kept, and the window must end where the
            // stream is.
            self.clear_window();
            return;
        }
        let n = bytes.len() as u64;
        let over = self.window_len().saturating_add(n).saturating_sub(limit);
        self.drop_front(over);
        // Older parts go until the copies fit (a mapped part in the way
        // goes whole: the window stays one run).
        while self.window.len() + bytes.len() > cap {
            let Some(front) = self.parts.front() else {
                break;
            };
            let short = (self.window.len() + bytes.len() - cap) as u64;
            let k = if front.mapped {
                u64::from(front.len)
            } else {
                short.min(u64::from(front.len))
            };
            self.drop_front(k);
        }
        let len32 = u32::try_from(n).unwrap_or(u32::MAX);
        let mut joined = false;
        if let Some(b) = self
            .parts
            .back_mut()
            .filter(|b| !b.mapped && b.end() == abs)
        {
            if let Some(l) = b.len.checked_add(len32) {
                b.len = l;
                joined = true;
            }
        }
        if !joined {
            if !self.part_room(stage, limit) {
                self.clear_window();
                return;
            }
            let src = self.copied_front.saturating_add(self.window.len() as u64);
            self.parts.push_back(Part {
                abs,
                src,
                len: len32,
                mapped: false,
            });
        }
        self.window.extend(bytes);
    }

    /// Copies the mapped parts (all of the window, then, as one copied
    /// part), so that the window no longer needs the mapping; as much of
    /// the newest bytes as the copy capacity allows.
    fn unmap(&mut self, stage: &mut Stage, limit: u64) {
        if self.parts.iter().all(|p| !p.mapped) {
            self.mapping = None;
            return;
        }
        let total = self.window_len();
        self.grow_copy_cap(stage, limit, total);
        self.drop_front(total.saturating_sub(self.window_cap));
        let Some(abs) = self.parts.front().map(|p| p.abs) else {
            self.mapping = None;
            return;
        };
        let cap = usize::try_from(self.window_cap).unwrap_or(usize::MAX);
        let mut bytes: VecDeque<u8> = VecDeque::with_capacity(cap);
        let mut ok = true;
        for p in &self.parts {
            match self.part_bytes(p) {
                Some((a, b)) => {
                    bytes.extend(a);
                    bytes.extend(b);
                }
                None => ok = false,
            }
        }
        stage.work = stage.work.saturating_add(bytes.len() as u64);
        self.window = bytes;
        self.parts.clear();
        self.copied_front = 0;
        self.mapping = None;
        let len = u32::try_from(self.window.len()).unwrap_or(u32::MAX);
        if !ok || len == 0 {
            self.clear_window();
            return;
        }
        // The list had a part, so it has room for one.
        self.parts.push_back(Part {
            abs,
            src: 0,
            len,
            mapped: false,
        });
    }

    /// The bytes of part `p` (in up to two slices), if the store has them.
    fn part_bytes(&self, p: &Part) -> Option<(&[u8], &[u8])> {
        let len = usize::try_from(p.len).ok()?;
        if p.mapped {
            let m = self.mapping.as_deref()?;
            let at = usize::try_from(p.src).ok()?;
            return Some((m.get(at..at.checked_add(len)?)?, &[]));
        }
        let at = usize::try_from(p.src.checked_sub(self.copied_front)?).ok()?;
        let end = at.checked_add(len).filter(|&e| e <= self.window.len())?;
        let (a, b) = self.window.as_slices();
        let in_a = a.get(at.min(a.len())..end.min(a.len()))?;
        let in_b = b.get(at.saturating_sub(a.len())..end.saturating_sub(a.len()))?;
        Some((in_a, in_b))
    }

    /// Whether `bytes`, which start at stream offset `from`, differ from
    /// the window where it reaches.
    fn window_differs(&self, from: u64, bytes: &[u8]) -> bool {
        let end = from.saturating_add(bytes.len() as u64);
        let first = self.parts.partition_point(|p| p.end() <= from);
        for p in self.parts.range(first..) {
            if p.abs >= end {
                break;
            }
            let (a, b) = (p.abs.max(from), p.end().min(end));
            let Some(mine) = bytes.get((a - from) as usize..(b - from) as usize) else {
                continue;
            };
            let Some((x, y)) = self.part_bytes(p) else {
                continue;
            };
            let at = (a - p.abs) as usize;
            let theirs_a = x.get(at.min(x.len())..(at + mine.len()).min(x.len()));
            let theirs_b =
                y.get(at.saturating_sub(x.len())..(at + mine.len()).saturating_sub(x.len()));
            let (Some(ta), Some(tb)) = (theirs_a, theirs_b) else {
                continue;
            };
            if mine.get(..ta.len()) != Some(ta) || mine.get(ta.len()..) != Some(tb) {
                return true;
            }
        }
        false
    }
}

/// Reassembles one direction. Small while idle; storage is allocated only
/// when needed. Create with [`Reassembler::new`]; feed with
/// [`Reassembler::segment`] and [`Reassembler::peer_ack`]; end with
/// [`Reassembler::flush`] (or [`Reassembler::discard`]), which give the
/// memory back to the stage's budget.
#[derive(Debug, Default)]
pub struct Reassembler {
    /// What is held; `None` when nothing is.
    store: Option<Box<Store>>,
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

/// Outcome of trying to hold bytes.
enum Stored {
    /// Held (or already held).
    Yes,
    /// `max_ooo_bytes` would be exceeded.
    OverLimit,
    /// `stream.memcap` refused.
    Refused,
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

/// Whether `dq[start..start + data.len()]` equals `data`.
fn deque_eq(dq: &VecDeque<u8>, start: usize, data: &[u8]) -> bool {
    let Some(end) = start.checked_add(data.len()).filter(|&e| e <= dq.len()) else {
        return false;
    };
    let (a, b) = dq.as_slices();
    let in_a = a.get(start.min(a.len())..end.min(a.len())).unwrap_or(&[]);
    let in_b = b
        .get(start.saturating_sub(a.len())..end.saturating_sub(a.len()))
        .unwrap_or(&[]);
    data.get(..in_a.len()) == Some(in_a) && data.get(in_a.len()..) == Some(in_b)
}

impl Reassembler {
    /// An idle reassembler; the first segment or acknowledgement starts it.
    pub fn new() -> Reassembler {
        Reassembler::default()
    }

    /// Feeds one segment of this direction seen at packet time `ts`: its
    /// sequence number, TCP flags and payload. In-order bytes (and any held
    /// bytes they unlock) are passed to `out` before returning. Call
    /// [`Reassembler::peer_ack`] for the segment's own ACK field first: it
    /// concerns the other direction.
    pub fn segment(
        &mut self,
        stage: &mut Stage,
        ts: Timestamp,
        seq: u32,
        flags: u8,
        payload: &[u8],
        out: &mut dyn FnMut(Event<'_>),
    ) {
        stage.now = ts;
        if flags & tcp_flags::RST != 0 {
            return;
        }
        // A payload longer than the sequence window cannot be a TCP segment.
        let Ok(len) = u32::try_from(payload.len()) else {
            stage.stats.out_of_window = stage.stats.out_of_window.saturating_add(1);
            return;
        };
        let mut data_seq = seq;
        if flags & tcp_flags::SYN != 0 {
            self.on_syn(stage, seq);
            data_seq = seq.wrapping_add(1);
        } else if self.state & state::STARTED == 0 {
            self.start_at(stage, seq);
        }
        if !payload.is_empty() && self.state & (state::PICKUP | state::DATA) == state::PICKUP {
            // Picked up on a segment without data or on the peer's ack: that
            // number was the sender's next one, but data sent before it may
            // still arrive (reordered, or overtaken by its ack), and it is
            // the real start.
            if let Place::Behind(back) = place(data_seq, self.next) {
                self.start = data_seq;
                self.next = data_seq;
                if let Some(s) = self.store.as_mut() {
                    s.next_abs = s.next_abs.saturating_sub(u64::from(back));
                }
            }
        }
        self.check_timer(stage, out);
        if flags & tcp_flags::FIN != 0 {
            self.on_fin(stage, data_seq.wrapping_add(len));
        }
        if !payload.is_empty() {
            self.feed(stage, data_seq, payload, out);
        }
        self.release_if_idle(stage);
    }

    /// The peer acknowledged `ack` at packet time `ts`: bytes of this
    /// direction below it reached the peer. Starts a direction never seen
    /// (one-way capture); trims the window of unacknowledged bytes; bytes
    /// below an *earlier* acknowledgement that are still missing were lost
    /// by the capture, not the network: they become a gap and held data
    /// after them is delivered (see the module docs for why one ACK late).
    pub fn peer_ack(
        &mut self,
        stage: &mut Stage,
        ts: Timestamp,
        ack: u32,
        out: &mut dyn FnMut(Event<'_>),
    ) {
        stage.now = ts;
        if self.state & state::STARTED == 0 {
            self.start_at(stage, ack);
            return;
        }
        self.check_timer(stage, out);
        match place(ack, self.next) {
            // Old, duplicate, and nonsense (far ahead) acks.
            Place::Outside => {}
            Place::Behind(b) => self.trim_window(u64::from(b)),
            Place::Ahead(d) => {
                self.trim_window(0);
                if d > 0 {
                    if let Some(earlier) = self.store.as_ref().and_then(|s| s.frontier) {
                        self.declare_acked(stage, earlier, out);
                    }
                    self.remember_ack(stage, ack, out);
                }
            }
        }
        self.release_if_idle(stage);
    }

    /// End of the flow: delivers whatever is held, with gaps for the holes
    /// and for bytes the peer acknowledged that never showed up, then frees
    /// the storage. The reassembler is idle again afterwards.
    pub fn flush(&mut self, stage: &mut Stage, out: &mut dyn FnMut(Event<'_>)) {
        while let Some(p) = self.first_piece_rel() {
            if p > 0 {
                self.gap(stage, p, out);
            }
            self.drain_ready(stage, out);
        }
        if let Some(f) = self.store.as_ref().and_then(|s| s.frontier) {
            self.declare_acked(stage, f, out);
        }
        self.discard(stage);
    }

    /// Frees everything held without delivering it (the flow's bytes are no
    /// longer wanted) and returns its memory to the budget. The reassembler
    /// is idle again afterwards.
    pub fn discard(&mut self, stage: &mut Stage) {
        if let Some(s) = self.store.take() {
            stage.put_spare(s);
        }
        *self = Reassembler::default();
    }

    /// Out-of-order bytes held now.
    pub fn held_bytes(&self) -> u64 {
        self.store.as_ref().map_or(0, |s| s.held)
    }

    /// Bytes this direction has charged to the budget now (held ranges with
    /// their overhead, the window, the store).
    pub fn memuse(&self) -> u64 {
        self.store.as_ref().map_or(0, |s| s.charged)
    }

    fn start_at(&mut self, stage: &mut Stage, seq: u32) {
        self.start = seq;
        self.next = seq;
        self.state = state::STARTED | state::PICKUP;
        stage.stats.midstream_pickups = stage.stats.midstream_pickups.saturating_add(1);
    }

    fn on_syn(&mut self, stage: &mut Stage, seq: u32) {
        let start = seq.wrapping_add(1);
        if self.state & state::SYN != 0 && self.start == start {
            // Retransmitted SYN: nothing changes.
            return;
        }
        if self.state & state::STARTED == 0 || self.state & state::DATA == 0 {
            if self.state & state::PICKUP != 0 {
                stage.stats.midstream_pickups = stage.stats.midstream_pickups.saturating_sub(1);
            }
            // First SYN, or a new ISN before any data: (re)start here.
            self.discard(stage);
            self.next = start;
            self.start = start;
            self.state = state::STARTED | state::SYN;
        } else if self.state & state::PICKUP != 0 && self.start == start {
            // Data arrived before its SYN and started exactly after it: the
            // stream was seen from its beginning after all.
            stage.stats.midstream_pickups = stage.stats.midstream_pickups.saturating_sub(1);
            self.state = (self.state & !state::PICKUP) | state::SYN;
        }
        // Any other SYN once data flowed is ignored; its payload, if any, is
        // judged by its sequence number like any segment's.
    }

    fn on_fin(&mut self, stage: &mut Stage, fin: u32) {
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
        let Some(s) = self.store.as_mut() else {
            return;
        };
        // An ack remembered past the FIN stops at it ([`Reassembler::remember_ack`]).
        if let Some(f) = s.frontier {
            if matches!(place(f, fin), Place::Ahead(d) if d > 0) {
                s.frontier = (fin_rel > 0).then_some(fin);
            }
        }
        let end = s.next_abs.saturating_add(u64::from(fin_rel));
        let beyond: Vec<u64> = s.pieces.range(end..).map(|(&k, _)| k).collect();
        let mut dropped: u64 = 0;
        let mut freed: u64 = 0;
        for k in beyond {
            if let Some(v) = s.pieces.remove(&k) {
                dropped = dropped.saturating_add(v.len() as u64);
                freed = freed.saturating_add(PIECE_OVERHEAD);
            }
        }
        if let Some((&k, v)) = s.pieces.range_mut(..end).next_back() {
            let keep = usize::try_from(end.saturating_sub(k)).unwrap_or(usize::MAX);
            if v.len() > keep {
                dropped = dropped.saturating_add((v.len() - keep) as u64);
                v.truncate(keep);
            }
        }
        freed = freed.saturating_add(dropped);
        s.held = s.held.saturating_sub(dropped);
        s.charged = s.charged.saturating_sub(freed);
        stage.lease.release(freed);
        stage.stats.data_after_fin = stage.stats.data_after_fin.saturating_add(dropped);
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
        let s = self.store.as_ref()?;
        let (&k, _) = s.pieces.first_key_value()?;
        Some(k.saturating_sub(s.next_abs))
    }

    /// Allocates the store if there is none, charging it to the budget;
    /// `false` if the budget refused.
    fn ensure_store(&mut self, stage: &mut Stage) -> bool {
        if self.store.is_some() {
            return true;
        }
        if let Some(s) = stage.take_spare() {
            self.store = Some(s);
            return true;
        }
        if !stage.reserve(STORE_OVERHEAD) {
            return false;
        }
        self.store = Some(Store::new(stage.now));
        true
    }

    /// Frees the store once it holds nothing.
    fn release_if_idle(&mut self, stage: &mut Stage) {
        let idle = self
            .store
            .as_ref()
            .is_some_and(|s| s.pieces.is_empty() && s.parts.is_empty() && s.frontier.is_none());
        if idle {
            if let Some(s) = self.store.take() {
                stage.put_spare(s);
            }
        }
    }

    /// Moves `next` on by `n` bytes: the stream advanced.
    fn advance(&mut self, now: Timestamp, n: u64) {
        // Sequence numbers are modulo 2^32: truncation is the arithmetic.
        self.next = self.next.wrapping_add(n as u32);
        if let Some(s) = self.store.as_mut() {
            s.next_abs = s.next_abs.saturating_add(n);
            s.since = now;
            if let Some(f) = s.frontier {
                if !matches!(place(f, self.next), Place::Ahead(d) if d > 0) {
                    s.frontier = None;
                }
            }
        }
    }

    /// Reports `len` never-seen bytes at `next` and moves past them.
    fn gap(&mut self, stage: &mut Stage, len: u64, out: &mut dyn FnMut(Event<'_>)) {
        let mut left = len;
        while left > 0 {
            let chunk = u32::try_from(left).unwrap_or(u32::MAX);
            stage.stats.gaps = stage.stats.gaps.saturating_add(1);
            stage.stats.gap_bytes = stage.stats.gap_bytes.saturating_add(u64::from(chunk));
            out(Event::Gap(chunk));
            left -= u64::from(chunk);
        }
        self.state |= state::DATA;
        if let Some(s) = self.store.as_mut() {
            // The window must end at `next`: bytes before a gap are history.
            s.clear_window();
        }
        self.advance(stage.now, len);
    }

    /// Hands `bytes` (which start at `next`) on, keeps them in the window,
    /// and moves past them.
    fn emit(&mut self, stage: &mut Stage, bytes: &[u8], out: &mut dyn FnMut(Event<'_>)) {
        out(Event::Data(bytes));
        self.remember(stage, bytes);
        self.advance(stage.now, bytes.len() as u64);
    }

    /// Appends delivered bytes to the window, dropping its oldest bytes
    /// past the window's size: a reference when they lie in the capture's
    /// mapping and are at least [`MIN_SPAN`] long, else a copy.
    fn remember(&mut self, stage: &mut Stage, bytes: &[u8]) {
        let limit = stage.window_limit();
        if limit == 0 || bytes.is_empty() {
            return;
        }
        // Bytes the peer already acknowledged (its ack overtook them) need
        // no keeping; they start at `next`.
        let acked = match self.store.as_ref().and_then(|s| s.frontier) {
            Some(f) => match place(f, self.next) {
                Place::Ahead(d) => usize::try_from(d).unwrap_or(usize::MAX),
                _ => 0,
            },
            None => 0,
        };
        let Some(bytes) = bytes.get(acked..).filter(|b| !b.is_empty()) else {
            return;
        };
        // Only the last `limit` bytes can stay.
        let cut = bytes
            .len()
            .saturating_sub(usize::try_from(limit).unwrap_or(usize::MAX));
        let bytes = bytes.get(cut..).unwrap_or(&[]);
        let skip = acked.saturating_add(cut);
        if self.store.is_none() {
            if let Some(s) = stage.take_spare() {
                self.store = Some(s);
            } else if stage.grant_window(STORE_OVERHEAD) {
                self.store = Some(Store::new(stage.now));
            } else {
                return;
            }
        }
        let mapped = if bytes.len() as u64 >= MIN_SPAN {
            stage.mapped_offset(bytes)
        } else {
            None
        };
        let Some(s) = self.store.as_mut() else {
            return;
        };
        let abs = s.next_abs.saturating_add(skip as u64);
        match mapped {
            Some(src) => s.remember_mapped(stage, limit, abs, src, bytes.len() as u64),
            None => s.remember_copy(stage, limit, abs, bytes),
        }
    }

    /// Keeps only the last `keep` bytes of the window (the peer
    /// acknowledged the others).
    fn trim_window(&mut self, keep: u64) {
        if let Some(s) = self.store.as_mut() {
            s.drop_front(s.window_len().saturating_sub(keep));
        }
    }

    /// Whether `old`, bytes that start `behind` bytes before `next`, differ
    /// from the window's copy where the window reaches back that far.
    fn window_differs(&self, behind: u64, old: &[u8]) -> bool {
        self.store
            .as_ref()
            .is_some_and(|s| s.window_differs(s.next_abs.saturating_sub(behind), old))
    }

    /// Remembers an acknowledgement beyond `next`, to act on at the next
    /// one; without room for that, acts on it now.
    fn remember_ack(&mut self, stage: &mut Stage, ack: u32, out: &mut dyn FnMut(Event<'_>)) {
        // An ack past a known FIN acknowledges the FIN, not bytes after it:
        // the frontier stops at the FIN, and once the stream reached it
        // there is nothing to remember. Kept one past the FIN, the frontier
        // would hold the direction's storage (and its share of
        // `stream.memcap`) until the flow timed out, as the stream never
        // moves past its FIN.
        let ack = match (self.fin_rel(), place(ack, self.next)) {
            (Some(f), Place::Ahead(d)) if d > f => self.fin,
            _ => ack,
        };
        if !matches!(place(ack, self.next), Place::Ahead(d) if d > 0) {
            return;
        }
        if self.ensure_store(stage) {
            if let Some(s) = self.store.as_mut() {
                let later = match s.frontier {
                    Some(f) => matches!(place(ack, f), Place::Ahead(_)),
                    None => true,
                };
                if later {
                    s.frontier = Some(ack);
                }
            }
        } else {
            stage.stats.segment_memcap_drop = stage.stats.segment_memcap_drop.saturating_add(1);
            self.declare_acked(stage, ack, out);
        }
    }

    /// Declares every hole below `ack` (but not past the FIN) a gap, and
    /// delivers the held data between them.
    fn declare_acked(&mut self, stage: &mut Stage, ack: u32, out: &mut dyn FnMut(Event<'_>)) {
        // Each round closes one hole and delivers the range after it, so
        // this runs at most once per held range plus one.
        loop {
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
            stage.stats.ack_unseen_data = stage.stats.ack_unseen_data.saturating_add(1);
            self.gap(stage, target, out);
            self.drain_ready(stage, out);
        }
    }

    /// Declares the first hole a gap when held data has waited at it for
    /// `hole_timeout` without the stream advancing.
    fn check_timer(&mut self, stage: &mut Stage, out: &mut dyn FnMut(Event<'_>)) {
        let timeout = stage.cfg.hole_timeout;
        if timeout == 0 {
            return;
        }
        let Some(s) = self.store.as_ref() else {
            return;
        };
        if s.pieces.is_empty() || stage.now.since(s.since) <= u64::from(timeout) * 1_000_000_000 {
            return;
        }
        stage.stats.ooo_timeout = stage.stats.ooo_timeout.saturating_add(1);
        if let Some(p) = self.first_piece_rel() {
            if p > 0 {
                self.gap(stage, p, out);
            }
            self.drain_ready(stage, out);
        }
    }

    /// Delivers held ranges that start at `next`.
    fn drain_ready(&mut self, stage: &mut Stage, out: &mut dyn FnMut(Event<'_>)) {
        loop {
            let Some(s) = self.store.as_mut() else {
                return;
            };
            let ready = matches!(s.pieces.first_key_value(), Some((&k, _)) if k <= s.next_abs);
            if !ready {
                return;
            }
            let Some((k, mut piece)) = s.pieces.pop_first() else {
                return;
            };
            let cost = (piece.len() as u64).saturating_add(PIECE_OVERHEAD);
            s.held = s.held.saturating_sub(piece.len() as u64);
            s.charged = s.charged.saturating_sub(cost);
            stage.lease.release(cost);
            // Ranges never start before `next`; should one, only its part
            // from `next` on is new.
            let skip = usize::try_from(s.next_abs - k).unwrap_or(usize::MAX);
            stage.work = stage.work.saturating_add(1);
            if let Some(rest) = piece.make_contiguous().get(skip..) {
                if !rest.is_empty() {
                    self.emit(stage, rest, out);
                }
            }
        }
    }

    /// Handles the payload of a segment whose data starts at `seq`.
    fn feed(
        &mut self,
        stage: &mut Stage,
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
                stage.stats.data_after_fin = stage.stats.data_after_fin.saturating_add(cut as u64);
                data = data.get(..keep).unwrap_or(&[]);
                if data.is_empty() {
                    return;
                }
            }
        }
        // Each round either finishes or closes the first hole (a gap plus the
        // held data after it), so it runs at most once per held range plus
        // one.
        loop {
            match place(seq, self.next) {
                Place::Outside => {
                    stage.stats.out_of_window = stage.stats.out_of_window.saturating_add(1);
                    return;
                }
                Place::Behind(b) => {
                    // The first `b` bytes were delivered already: first wins,
                    // but a different copy is worth knowing about.
                    note.overlap = true;
                    let b = usize::try_from(b).unwrap_or(usize::MAX);
                    let old = data.get(..b.min(data.len())).unwrap_or(&[]);
                    if self.window_differs(b as u64, old) {
                        note.diff = true;
                    }
                    match data.get(b..) {
                        Some(rest) if !rest.is_empty() => {
                            self.deliver_in_order(stage, rest, &mut note, out);
                        }
                        _ => {}
                    }
                    break;
                }
                Place::Ahead(0) => {
                    self.deliver_in_order(stage, data, &mut note, out);
                    break;
                }
                Place::Ahead(d) => {
                    match self.try_store(stage, d, data, &mut note) {
                        Stored::Yes => break,
                        Stored::OverLimit => {
                            stage.stats.ooo_limit_reached =
                                stage.stats.ooo_limit_reached.saturating_add(1);
                        }
                        Stored::Refused => {
                            stage.stats.segment_memcap_drop =
                                stage.stats.segment_memcap_drop.saturating_add(1);
                        }
                    }
                    // No room: hand on what is held rather than drop this.
                    let hole = self
                        .first_piece_rel()
                        .map_or(u64::from(d), |p| p.min(u64::from(d)));
                    self.gap(stage, hole, out);
                    self.drain_ready(stage, out);
                }
            }
        }
        let stats = &mut stage.stats;
        if note.new_bytes > 0 {
            self.state |= state::DATA;
            if note.overlap {
                stats.overlaps = stats.overlaps.saturating_add(1);
            }
        } else {
            stats.retransmissions = stats.retransmissions.saturating_add(1);
        }
        if note.stored {
            stats.ooo_segments = stats.ooo_segments.saturating_add(1);
        }
        if note.diff {
            stats.overlap_diff_data = stats.overlap_diff_data.saturating_add(1);
            if self.state & state::DIFF_REPORTED == 0 {
                self.state |= state::DIFF_REPORTED;
                out(Event::Anomaly(Anomaly::OverlapDifferentData));
            }
        }
    }

    /// Delivers `data`, which starts exactly at `next`: its own bytes where
    /// nothing is held (no copy), held bytes where they overlap it (first
    /// wins), then whatever held data became contiguous.
    fn deliver_in_order(
        &mut self,
        stage: &mut Stage,
        data: &[u8],
        note: &mut Note,
        out: &mut dyn FnMut(Event<'_>),
    ) {
        let mut c = 0usize;
        while c < data.len() {
            let rest = data.get(c..).unwrap_or(&[]);
            let piece_rel = self
                .first_piece_rel()
                .map(|p| usize::try_from(p).unwrap_or(usize::MAX));
            match piece_rel {
                Some(p) if p < rest.len() => {
                    if p > 0 {
                        self.emit(stage, rest.get(..p).unwrap_or(&[]), out);
                        note.new_bytes = note.new_bytes.saturating_add(p);
                        c += p;
                    }
                    // The held range starts here and was first: it wins over
                    // the overlapping part of `data`.
                    let Some(s) = self.store.as_mut() else {
                        break;
                    };
                    let Some((_, mut piece)) = s.pieces.pop_first() else {
                        break;
                    };
                    let cost = (piece.len() as u64).saturating_add(PIECE_OVERHEAD);
                    s.held = s.held.saturating_sub(piece.len() as u64);
                    s.charged = s.charged.saturating_sub(cost);
                    stage.lease.release(cost);
                    stage.work = stage.work.saturating_add(1);
                    let held = piece.make_contiguous();
                    let ov = held.len().min(data.len() - c);
                    note.overlap = true;
                    if held.get(..ov) != data.get(c..c + ov) {
                        note.diff = true;
                    }
                    self.emit(stage, held, out);
                    c += ov;
                }
                _ => {
                    self.emit(stage, rest, out);
                    note.new_bytes = note.new_bytes.saturating_add(rest.len());
                    c = data.len();
                }
            }
        }
        self.drain_ready(stage, out);
    }

    /// Holds the bytes of `data` (starting `rel` bytes after `next`) that are
    /// not held yet, changing nothing if they do not fit.
    fn try_store(&mut self, stage: &mut Stage, rel: u32, data: &[u8], note: &mut Note) -> Stored {
        let next_abs = self.store.as_ref().map_or(BASE, |s| s.next_abs);
        let s = next_abs.saturating_add(u64::from(rel));
        let e = s.saturating_add(data.len() as u64);
        // Pass 1: which parts of [s, e) are not held, does any held range
        // overlap or touch [s, e), and do the held parts agree with `data`?
        let mut uncovered: Vec<(u64, u64)> = Vec::new();
        let mut touched: u64 = 0;
        let mut overlap = false;
        let mut diff = false;
        let (pieces_held, bytes_held) = match self.store.as_ref() {
            Some(st) => {
                let from = st.pieces.range(..=s).next_back().map_or(s, |(&k, _)| k);
                let mut c = s;
                for (&ps, piece) in st.pieces.range(from..=e) {
                    stage.work = stage.work.saturating_add(1);
                    let pe = ps.saturating_add(piece.len() as u64);
                    if pe < s {
                        continue;
                    }
                    touched += 1;
                    if ps >= e {
                        // Starts right where `data` ends.
                        break;
                    }
                    if ps > c {
                        uncovered.push((c, ps));
                    }
                    let os = ps.max(c);
                    let oe = pe.min(e);
                    if os < oe {
                        overlap = true;
                        let new_part = data.get((os - s) as usize..(oe - s) as usize);
                        if !new_part.is_some_and(|n| deque_eq(piece, (os - ps) as usize, n)) {
                            diff = true;
                        }
                    }
                    c = c.max(oe);
                }
                if c < e {
                    uncovered.push((c, e));
                }
                (st.pieces.len() as u64, st.held)
            }
            None => {
                uncovered.push((s, e));
                (0, 0)
            }
        };
        note.overlap |= overlap;
        note.diff |= diff;
        let new_bytes: u64 = uncovered.iter().map(|&(a, b)| b - a).sum();
        if new_bytes == 0 {
            // Everything here is held already.
            return Stored::Yes;
        }
        // Coalesced ranges: the new bytes and every range they overlap or
        // touch end up as one range.
        let new_piece = u64::from(touched == 0);
        let pieces_after = (pieces_held + 1).saturating_sub(touched);
        let cost_after = bytes_held
            .saturating_add(new_bytes)
            .saturating_add(pieces_after.saturating_mul(PIECE_OVERHEAD));
        if cost_after > stage.cfg.max_ooo_bytes.0 {
            return Stored::OverLimit;
        }
        let fresh = self.store.is_none();
        let reserve = new_bytes
            .saturating_add(new_piece * PIECE_OVERHEAD)
            .saturating_add(if fresh { STORE_OVERHEAD } else { 0 });
        if !stage.reserve(reserve) {
            return Stored::Refused;
        }
        if fresh {
            self.store = Some(Store::new(stage.now));
        }
        let Some(st) = self.store.as_mut() else {
            return Stored::Refused;
        };
        if st.pieces.is_empty() {
            // Held data starts waiting now.
            st.since = stage.now;
        }
        // Pass 2: copy the new bytes (the capture buffer they live in is
        // reused once this call returns) into the ranges they extend.
        for (a, b) in uncovered {
            let bytes = data.get((a - s) as usize..(b - s) as usize).unwrap_or(&[]);
            stage.work = stage.work.saturating_add(bytes.len() as u64);
            let left = match st.pieces.range_mut(..a).next_back() {
                Some((&k, v)) if k.saturating_add(v.len() as u64) == a => {
                    v.extend(bytes);
                    k
                }
                _ => {
                    st.pieces.insert(a, VecDeque::from(bytes.to_vec()));
                    a
                }
            };
            if let Some(right) = st.pieces.remove(&b) {
                stage.work = stage.work.saturating_add(join(&mut st.pieces, left, right));
            }
        }
        // Joins may have removed ranges: give back their overhead, and the
        // new range's if none was made.
        let pieces_after = st.pieces.len() as u64;
        st.held = st.held.saturating_add(new_bytes);
        st.charged = st
            .charged
            .saturating_add(new_bytes)
            .saturating_add(pieces_after.saturating_mul(PIECE_OVERHEAD))
            .saturating_sub(pieces_held.saturating_mul(PIECE_OVERHEAD));
        let unused = (pieces_held + new_piece).saturating_sub(pieces_after);
        stage.lease.release(unused.saturating_mul(PIECE_OVERHEAD));
        note.new_bytes = note.new_bytes.saturating_add(new_bytes as usize);
        note.stored = true;
        Stored::Yes
    }
}

/// Joins `right` onto the range at `left_key`, which ends where `right`
/// starts, by moving the shorter into the longer. Returns the bytes moved.
fn join(pieces: &mut BTreeMap<u64, VecDeque<u8>>, left_key: u64, mut right: VecDeque<u8>) -> u64 {
    let Some(left) = pieces.get_mut(&left_key) else {
        return 0;
    };
    if left.len() >= right.len() {
        let moved = right.len() as u64;
        left.extend(right.iter());
        moved
    } else {
        let moved = left.len() as u64;
        right.reserve(left.len());
        for &b in left.iter().rev() {
            right.push_front(b);
        }
        *left = right;
        moved
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
        Anomaly(Anomaly),
    }

    /// A reassembler with its stage and everything it emitted; packet time
    /// moves on only when a test says so.
    struct Rig {
        r: Reassembler,
        st: Stage,
        evs: Vec<Ev>,
        now: Timestamp,
    }

    impl Rig {
        fn new() -> Self {
            Rig::with(StreamConfig::default())
        }

        fn with(cfg: StreamConfig) -> Self {
            Rig::on(Stage::standalone(cfg))
        }

        fn on(st: Stage) -> Self {
            Rig {
                r: Reassembler::new(),
                st,
                evs: Vec::new(),
                now: Timestamp(0),
            }
        }

        fn seg(&mut self, seq: u32, flags: u8, payload: &[u8]) {
            let evs = &mut self.evs;
            self.r
                .segment(&mut self.st, self.now, seq, flags, payload, &mut |e| {
                    push(evs, e)
                });
        }

        fn ack(&mut self, ack: u32) {
            let evs = &mut self.evs;
            self.r
                .peer_ack(&mut self.st, self.now, ack, &mut |e| push(evs, e));
        }

        fn flush(&mut self) {
            let evs = &mut self.evs;
            self.r.flush(&mut self.st, &mut |e| push(evs, e));
        }

        fn stats(&self) -> &StreamStats {
            &self.st.stats
        }

        /// Bytes charged for what the reassembler holds (spare stores
        /// kept for reuse aside).
        fn used(&self) -> u64 {
            let spare: u64 = self.st.spare.iter().map(|s| s.charged).sum();
            self.st.memuse() - spare
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
                    Ev::Anomaly(_) => {}
                }
            }
            v
        }

        fn gaps(&self) -> Vec<u32> {
            self.evs
                .iter()
                .filter_map(|e| match e {
                    Ev::Gap(n) => Some(*n),
                    _ => None,
                })
                .collect()
        }

        fn anomalies(&self) -> usize {
            self.evs
                .iter()
                .filter(|e| matches!(e, Ev::Anomaly(_)))
                .count()
        }

        fn pieces(&self) -> usize {
            self.r.store.as_ref().map_or(0, |s| s.pieces.len())
        }
    }

    fn push(evs: &mut Vec<Ev>, e: Event<'_>) {
        evs.push(match e {
            Event::Data(d) => Ev::Data(d.to_vec()),
            Event::Gap(n) => Ev::Gap(n),
            Event::Anomaly(a) => Ev::Anomaly(a),
        });
    }

    fn data(b: &[u8]) -> Ev {
        Ev::Data(b.to_vec())
    }

    const DIFF: Ev = Ev::Anomaly(Anomaly::OverlapDifferentData);

    /// A configuration with no window, for tests about held data alone.
    fn no_window() -> StreamConfig {
        StreamConfig {
            overlap_window: ByteSize(0),
            ..StreamConfig::default()
        }
    }

    #[test]
    fn idle_reassembler_is_at_most_24_bytes() {
        let size = std::mem::size_of::<Reassembler>();
        println!("size_of::<Reassembler>() = {size}");
        assert!(size <= 24, "{size}");
    }

    #[test]
    fn store_overhead_covers_the_store() {
        // The box's contents plus an allocator header.
        let size = std::mem::size_of::<Store>() as u64 + 16;
        assert!(size <= STORE_OVERHEAD, "{size}");
    }

    #[test]
    fn in_order_segments_are_delivered_as_the_segments_own_bytes() {
        let mut st = Stage::standalone(StreamConfig::default());
        let mut r = Reassembler::new();
        let mut nothing = |_: Event<'_>| {};
        r.segment(&mut st, Timestamp(0), 999, SYN, &[], &mut nothing);
        let payload = b"hello world".to_vec();
        let mut seen: Vec<(*const u8, usize)> = Vec::new();
        r.segment(&mut st, Timestamp(0), 1000, ACK | PSH, &payload, &mut |e| {
            if let Event::Data(d) = e {
                seen.push((d.as_ptr(), d.len()));
            }
        });
        // Same address and length: the slice handed on is the input, not a copy.
        assert_eq!(seen, vec![(payload.as_ptr(), payload.len())]);
        assert_eq!(r.held_bytes(), 0);
        assert_eq!(st.stats, StreamStats::default());
    }

    #[test]
    fn in_order_stream_after_syn_concatenates() {
        let mut g = Rig::new();
        g.seg(99, SYN, b"");
        g.seg(100, ACK, b"abc");
        g.seg(103, ACK, b"");
        g.seg(103, ACK | PSH, b"def");
        assert_eq!(g.evs, vec![data(b"abc"), data(b"def")]);
        assert_eq!(g.stats().midstream_pickups, 0);
    }

    #[test]
    fn out_of_order_segment_is_held_until_the_hole_fills() {
        let mut g = Rig::with(no_window());
        g.seg(0, SYN, b"");
        g.seg(4, ACK, b"def");
        assert!(g.evs.is_empty());
        assert_eq!(g.r.held_bytes(), 3);
        assert_eq!(g.r.memuse(), STORE_OVERHEAD + 3 + PIECE_OVERHEAD);
        assert_eq!(g.used(), g.r.memuse());
        g.seg(1, ACK, b"abc");
        g.seg(7, ACK, b"g");
        assert_eq!(g.evs, vec![data(b"abc"), data(b"def"), data(b"g")]);
        assert!(g.r.store.is_none(), "storage is freed once drained");
        assert_eq!(g.used(), 0);
        assert_eq!(g.stats().ooo_segments, 1);
        assert_eq!(g.stats().gaps, 0);
    }

    #[test]
    fn window_is_freed_once_the_peer_acknowledges_everything() {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(1, ACK, b"abc");
        assert!(g.r.memuse() > 0, "delivered bytes kept until acknowledged");
        g.ack(3);
        assert!(g.r.memuse() > 0, "one byte still unacknowledged");
        g.ack(4);
        assert!(g.r.store.is_none());
        assert_eq!(g.used(), 0);
    }

    #[test]
    fn idle_stores_are_kept_for_reuse_up_to_a_bound() {
        let mut st = Stage::standalone(StreamConfig::default());
        let t = Timestamp(0);
        let mut nothing = |_: Event<'_>| {};
        let mut rs: Vec<Reassembler> = (0..SPARE_STORES + 8).map(|_| Reassembler::new()).collect();
        for r in &mut rs {
            r.segment(&mut st, t, 0, SYN, b"", &mut nothing);
            r.segment(&mut st, t, 1, ACK, b"abc", &mut nothing);
        }
        // Everything acknowledged: the stores are idle.
        for r in &mut rs {
            r.peer_ack(&mut st, t, 4, &mut nothing);
        }
        assert_eq!(st.spare.len(), SPARE_STORES);
        let before = st.memuse();
        // A new direction takes a spare store: nothing new is reserved.
        let mut r = Reassembler::new();
        r.segment(&mut st, t, 0, SYN, b"", &mut nothing);
        r.segment(&mut st, t, 1, ACK, b"x", &mut nothing);
        assert_eq!(st.spare.len(), SPARE_STORES - 1);
        assert_eq!(st.memuse(), before);
        r.flush(&mut st, &mut nothing);
        for r in &mut rs {
            r.flush(&mut st, &mut nothing);
        }
        st.release_spares();
        assert_eq!(st.memuse(), 0);
    }

    #[test]
    fn adjacent_out_of_order_segments_merge_into_one_range() {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(5, ACK, b"ef");
        g.seg(3, ACK, b"cd"); // before, touching
        g.seg(7, ACK, b"g"); // after, touching
        assert_eq!(g.pieces(), 1);
        g.seg(1, ACK, b"ab");
        assert_eq!(g.data(), b"abcdefg");
    }

    #[test]
    fn a_segment_filling_the_hole_between_two_ranges_joins_them() {
        let mut g = Rig::with(no_window());
        g.seg(0, SYN, b"");
        g.seg(3, ACK, b"c");
        g.seg(5, ACK, b"efgh");
        assert_eq!(g.pieces(), 2);
        g.seg(4, ACK, b"d");
        assert_eq!(g.pieces(), 1);
        // One range: one overhead charged.
        assert_eq!(g.r.memuse(), STORE_OVERHEAD + 6 + PIECE_OVERHEAD);
        assert_eq!(g.used(), g.r.memuse());
        g.seg(1, ACK, b"ab");
        assert_eq!(g.data(), b"abcdefgh");
    }

    #[test]
    fn held_bytes_win_over_a_later_overlapping_segment() {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(4, ACK, b"DEF");
        // Covers 1..9 with different bytes where "DEF" is held.
        g.seg(1, ACK, b"abcxyzgh");
        assert_eq!(g.data(), b"abcDEFgh");
        assert_eq!(g.stats().overlap_diff_data, 1);
        assert_eq!(g.stats().overlaps, 1);
        assert_eq!(g.stats().retransmissions, 0);
        assert_eq!(g.anomalies(), 1);
    }

    #[test]
    fn held_bytes_win_over_a_later_out_of_order_overlap() {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(5, ACK, b"EF");
        // Also out of order, overlapping the held range on both sides.
        g.seg(4, ACK, b"dxyg");
        assert_eq!(g.evs, vec![DIFF]);
        assert_eq!(g.stats().overlap_diff_data, 1);
        g.seg(1, ACK, b"abc");
        assert_eq!(g.data(), b"abcdEFg");
    }

    #[test]
    fn delivered_bytes_win_over_a_later_different_segment_and_raise_the_anomaly_once() {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(1, ACK, b"abcd");
        // Starts 2 bytes back with different bytes there.
        g.seg(3, ACK, b"XYef");
        assert_eq!(g.evs, vec![data(b"abcd"), data(b"ef"), DIFF]);
        assert_eq!(g.stats().overlaps, 1);
        assert_eq!(g.stats().overlap_diff_data, 1);
        // Ten more such retransmissions: all counted, one anomaly per
        // direction.
        for _ in 0..10 {
            g.seg(1, ACK, b"ABCD");
        }
        assert_eq!(g.stats().overlap_diff_data, 11);
        assert_eq!(g.anomalies(), 1);
        assert_eq!(g.data(), b"abcdef");
        // The same bytes again are a plain retransmission.
        g.seg(1, ACK, b"abcdef");
        assert_eq!(g.stats().overlap_diff_data, 11);
    }

    #[test]
    fn different_copy_of_acknowledged_bytes_is_not_compared() {
        // The receiver acknowledged "abcd": it discards any later copy, so
        // there is nothing to disagree on (and nothing kept to compare).
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(1, ACK, b"abcd");
        g.ack(3); // "ab" acknowledged
        g.seg(1, ACK, b"XYcd");
        assert_eq!(g.stats().overlap_diff_data, 0);
        g.seg(1, ACK, b"XYCd"); // "C" was not acknowledged
        assert_eq!(g.stats().overlap_diff_data, 1);
    }

    #[test]
    fn window_keeps_only_the_last_overlap_window_bytes() {
        let mut g = Rig::with(StreamConfig {
            overlap_window: ByteSize(4),
            ..StreamConfig::default()
        });
        g.seg(0, SYN, b"");
        g.seg(1, ACK, b"abcdefgh");
        g.seg(1, ACK, b"ABCD"); // older than the window: not seen
        assert_eq!(g.stats().overlap_diff_data, 0);
        g.seg(5, ACK, b"efgH");
        assert_eq!(g.stats().overlap_diff_data, 1);
        // The 4 bytes and the smallest list of parts.
        assert!(g.r.memuse() <= STORE_OVERHEAD + 4 + MIN_PARTS * PART_SIZE);
    }

    #[test]
    fn bytes_whose_ack_overtook_them_are_not_kept() {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.ack(5);
        g.seg(1, ACK, b"abcdef"); // "abcd" already acknowledged
        assert_eq!(g.r.store.as_ref().map(|s| s.window.len()), Some(2));
        g.seg(1, ACK, b"ABCDeF");
        assert_eq!(g.stats().overlap_diff_data, 1, "only \"F\" is compared");
    }

    #[test]
    fn window_off_compares_nothing_delivered() {
        let mut g = Rig::with(no_window());
        g.seg(0, SYN, b"");
        g.seg(1, ACK, b"abcd");
        g.seg(1, ACK, b"ABCD");
        assert_eq!(g.stats().overlap_diff_data, 0);
        assert!(g.r.store.is_none());
    }

    #[test]
    fn window_grows_only_while_the_budget_is_less_than_half_used() {
        // 1000 bytes of budget: a window may take 500 at most.
        let mut g = Rig::with(StreamConfig {
            memcap: ByteSize(1000),
            ..StreamConfig::default()
        });
        g.seg(0, SYN, b"");
        g.seg(1, ACK, &[7u8; 100]);
        assert!(g.r.memuse() <= 500, "{}", g.r.memuse());
        g.seg(101, ACK, &[7u8; 900]);
        assert!(g.st.memuse() <= 500, "{}", g.st.memuse());
        assert!(g.stats().overlap_window_memcap > 0);
        // Out-of-order data still has the other half.
        g.seg(1201, ACK, &[1u8; 300]);
        assert_eq!(g.r.held_bytes(), 300);
        assert_eq!(g.stats().segment_memcap_drop, 0);
    }

    /// A read-only anonymous mapping holding `chunks`, each followed by
    /// one byte of padding (so two chunks are never one run of the
    /// mapping), as `Buffer::Mmap` like a mapped capture file; and where
    /// each chunk lies in it. The chunks are the tests' own bytes.
    fn mapping(chunks: &[&[u8]]) -> (Arc<Buffer>, Vec<std::ops::Range<usize>>) {
        let total: usize = chunks.iter().map(|c| c.len() + 1).sum();
        let mut m = memmap2::MmapOptions::new()
            .len(total.max(1))
            .map_anon()
            .unwrap();
        let mut at = Vec::new();
        let mut o = 0;
        for c in chunks {
            m[o..o + c.len()].copy_from_slice(c);
            at.push(o..o + c.len());
            o += c.len() + 1;
        }
        (Arc::new(Buffer::Mmap(m.make_read_only().unwrap())), at)
    }

    fn store(g: &Rig) -> &Store {
        g.r.store.as_ref().expect("a store")
    }

    /// Bytes 0, 1, 2… (mod 251, so no run repeats at a power of two).
    fn counting(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn retransmission_differing_from_a_mapped_segment_is_compared_with_the_mapping() {
        let payload = counting(1000);
        let (buf, at) = mapping(&[&payload]);
        let mut g = Rig::new();
        g.st.set_source(&buf);
        g.seg(0, SYN, b"");
        g.seg(1, ACK, &buf[at[0].clone()]);
        let st = store(&g);
        assert_eq!(st.window.len(), 0, "no byte copied");
        assert_eq!(st.parts.len(), 1);
        assert!(st.parts[0].mapped);
        assert_eq!(g.r.memuse(), STORE_OVERHEAD + MIN_PARTS * PART_SIZE);
        // The same bytes again, from elsewhere: a plain retransmission.
        g.seg(101, ACK, &payload[100..400]);
        assert_eq!(g.stats().retransmissions, 1);
        assert_eq!(g.stats().overlap_diff_data, 0);
        let mut other = payload[500..700].to_vec();
        other[150] ^= 1;
        g.seg(501, ACK, &other);
        assert_eq!(g.stats().overlap_diff_data, 1);
        assert_eq!(g.anomalies(), 1);
        assert_eq!(g.data(), payload, "the first copy stays");
    }

    #[test]
    fn retransmission_differing_from_streamed_input_is_compared_with_a_copy() {
        // A chunk read from a pipe: the reader reuses it, so nothing may
        // refer to it.
        let payload = counting(1000);
        let buf = Arc::new(Buffer::Owned(payload.clone()));
        let mut g = Rig::new();
        g.st.set_source(&buf);
        assert!(g.st.mapped.is_none());
        g.seg(0, SYN, b"");
        g.seg(1, ACK, &buf[..]);
        let st = store(&g);
        assert_eq!(st.window.len(), 1000, "copied");
        assert_eq!(st.parts.len(), 1);
        assert!(!st.parts[0].mapped);
        assert_eq!(Arc::strong_count(&buf), 1, "the chunk is not held");
        let mut other = payload[900..].to_vec();
        other[99] ^= 1;
        g.seg(901, ACK, &other);
        assert_eq!(g.stats().overlap_diff_data, 1);
        assert_eq!(g.anomalies(), 1);
    }

    #[test]
    fn contiguous_runs_of_the_mapping_are_one_part() {
        let payload = counting(4000);
        let (buf, at) = mapping(&[&payload]);
        let mut g = Rig::new();
        g.st.set_source(&buf);
        g.seg(0, SYN, b"");
        for k in 0..4 {
            let a = at[0].start + k * 1000;
            g.seg(1 + k as u32 * 1000, ACK, &buf[a..a + 1000]);
        }
        assert_eq!(store(&g).parts.len(), 1);
        assert_eq!(store(&g).window_len(), 4000);
        g.ack(2001);
        assert_eq!(store(&g).window_len(), 2000);
        assert_eq!(store(&g).parts[0].src, at[0].start as u64 + 2000);
    }

    #[test]
    fn one_byte_segments_from_a_mapping_are_copied_into_one_part() {
        let limit = 64 * 1024;
        let payload = counting(limit + 5000);
        let chunks: Vec<&[u8]> = payload.chunks(1).collect();
        let (buf, at) = mapping(&chunks);
        let mut g = Rig::new();
        g.st.set_source(&buf);
        g.seg(0, SYN, b"");
        for (i, r) in at.iter().enumerate() {
            g.seg(1 + i as u32, ACK, &buf[r.clone()]);
        }
        let st = store(&g);
        assert_eq!(st.parts.len(), 1);
        assert_eq!(st.window_len(), limit as u64);
        assert_eq!(
            g.r.memuse(),
            STORE_OVERHEAD + limit as u64 + MIN_PARTS * PART_SIZE
        );
        let end = payload.len();
        let mut last = payload[end - 10..].to_vec();
        last[0] ^= 1;
        g.seg(1 + (end - 10) as u32, ACK, &last);
        assert_eq!(g.stats().overlap_diff_data, 1);
    }

    #[test]
    fn spans_alternating_with_single_bytes_keep_the_window_bounded_and_whole() {
        // The worst segmentation for the list of parts: a shortest mapped
        // run, then one copied byte, again and again.
        let limit: u64 = 64 * 1024;
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        for i in 0..600u32 {
            chunks.push(vec![(i % 200) as u8; MIN_SPAN as usize]);
            chunks.push(vec![0xAA]);
        }
        let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let (buf, at) = mapping(&refs);
        let mut g = Rig::new();
        g.st.set_source(&buf);
        g.seg(0, SYN, b"");
        let mut seq = 1u32;
        for r in &at {
            g.seg(seq, ACK, &buf[r.clone()]);
            seq += r.len() as u32;
            let st = store(&g);
            assert!(
                st.parts.len() as u64 <= max_parts(limit),
                "{}",
                st.parts.len()
            );
            assert!(st.window_len() <= limit);
        }
        let st = store(&g);
        assert_eq!(st.window_len(), limit, "the whole window is kept");
        assert!(st.window_cap <= 512, "copies only of the single bytes");
        assert!(g.r.memuse() <= STORE_OVERHEAD + 512 + max_parts(limit) * PART_SIZE);
        // The oldest byte of the window is compared, the one before is not.
        let oldest = seq - limit as u32;
        let delivered = g.data();
        let byte = |at: u32| delivered[(at - 1) as usize];
        g.seg(oldest - 1, ACK, &[!byte(oldest - 1)]);
        assert_eq!(g.stats().overlap_diff_data, 0);
        g.seg(oldest, ACK, &[!byte(oldest)]);
        assert_eq!(g.stats().overlap_diff_data, 1);
    }

    #[test]
    fn next_mapping_copies_the_parts_of_the_old_one() {
        let (a, at_a) = mapping(&[&counting(1000)]);
        let (b, at_b) = mapping(&[&[7u8; 1000]]);
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.st.set_source(&a);
        g.seg(1, ACK, &a[at_a[0].clone()]);
        assert_eq!(Arc::strong_count(&a), 3, "the stage and the store hold it");
        g.st.set_source(&b);
        assert_eq!(Arc::strong_count(&a), 2, "the store still refers to it");
        g.seg(1001, ACK, &b[at_b[0].clone()]);
        let st = store(&g);
        assert_eq!(Arc::strong_count(&a), 1, "copied, then let go");
        assert!(st.mapping.as_ref().is_some_and(|m| Arc::ptr_eq(m, &b)));
        assert_eq!(st.window.len(), 1000);
        assert_eq!(
            st.parts
                .iter()
                .map(|p| (p.len, p.mapped))
                .collect::<Vec<_>>(),
            vec![(1000, false), (1000, true)]
        );
        // Piped input next: copied after the mapped part, which stays valid.
        let piped = Arc::new(Buffer::Owned(vec![9u8; 300]));
        g.st.set_source(&piped);
        g.seg(2001, ACK, &piped[..]);
        assert_eq!(store(&g).parts.len(), 3);
        // A retransmission over all three differs in the old file's bytes.
        let mut again = g.data();
        assert_eq!(again.len(), 2300);
        g.seg(1, ACK, &again);
        assert_eq!(g.stats().overlap_diff_data, 0);
        again[10] ^= 1;
        g.seg(1, ACK, &again);
        assert_eq!(g.stats().overlap_diff_data, 1);
        again[10] ^= 1;
        again[1500] ^= 1;
        g.seg(1, ACK, &again);
        again[1500] ^= 1;
        again[2200] ^= 1;
        g.seg(1, ACK, &again);
        assert_eq!(g.stats().overlap_diff_data, 3);
        g.flush();
        assert_eq!(g.used(), 0);
    }

    #[test]
    fn spare_stores_let_go_of_an_old_mapping() {
        let (a, at) = mapping(&[&counting(1000)]);
        let mut g = Rig::new();
        g.st.set_source(&a);
        g.seg(0, SYN, b"");
        g.seg(1, ACK, &a[at[0].clone()]);
        g.ack(1001);
        assert!(g.r.store.is_none());
        assert_eq!(g.st.spare.len(), 1);
        assert_eq!(Arc::strong_count(&a), 3, "kept by the spare for reuse");
        g.st.set_source(&Arc::new(Buffer::Owned(Vec::new())));
        assert_eq!(Arc::strong_count(&a), 1);
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
        assert_eq!(g.stats().retransmissions, 3);
        assert_eq!(g.stats().overlaps, 0);
        assert_eq!(g.stats().overlap_diff_data, 0);
    }

    #[test]
    fn peer_ack_past_holes_declares_them_gaps_at_the_next_ack() {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(1, ACK, b"ab");
        g.seg(6, ACK, b"fg");
        g.seg(10, ACK, b"j");
        // The peer got everything up to 11: holes 3..6 and 8..10 were lost
        // by the capture — unless the data is just behind its ack.
        g.ack(11);
        assert_eq!(g.evs, vec![data(b"ab")]);
        g.ack(11); // a later ack: now they are gaps
        assert_eq!(
            g.evs,
            vec![data(b"ab"), Ev::Gap(3), data(b"fg"), Ev::Gap(2), data(b"j")]
        );
        assert_eq!(g.stats().gaps, 2);
        assert_eq!(g.stats().gap_bytes, 5);
        assert_eq!(g.stats().ack_unseen_data, 2);
        assert_eq!(g.r.held_bytes(), 0);
        g.seg(11, ACK, b"k");
        assert_eq!(g.data(), b"abfgjk");
    }

    #[test]
    fn data_overtaken_by_its_ack_is_delivered() {
        // SPAN port: the ack of "cdef" is seen just before "cdef" itself.
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(1, ACK, b"ab");
        g.ack(7);
        g.seg(3, ACK, b"cdef");
        g.ack(7);
        g.seg(7, ACK, b"g");
        g.ack(8);
        assert_eq!(g.evs, vec![data(b"ab"), data(b"cdef"), data(b"g")]);
        assert_eq!(g.stats().gaps, 0);
    }

    #[test]
    fn peer_ack_without_held_data_reports_the_lost_tail_one_ack_late() {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(1, ACK, b"ab");
        g.ack(7);
        g.ack(9); // gap up to the earlier ack; 7..9 waits for the next
        assert_eq!(g.evs, vec![data(b"ab"), Ev::Gap(4)]);
        // The lost bytes arriving later are old: not delivered.
        g.seg(3, ACK, b"cdef");
        g.seg(7, ACK, b"gh");
        assert_eq!(g.data(), b"abgh");
        g.ack(9);
        assert_eq!(g.gaps(), vec![4]);
    }

    #[test]
    fn flush_reports_the_acknowledged_tail_never_seen() {
        // Client→server-only capture: the client's acks are all we know of
        // the server's bytes. The direction starts at the first ack.
        let mut g = Rig::new();
        g.ack(5000);
        assert_eq!(g.stats().midstream_pickups, 1);
        g.ack(5004); // e.g. the CONNACK the capture never showed
        assert!(g.evs.is_empty());
        g.flush();
        assert_eq!(g.evs, vec![Ev::Gap(4)]);
        assert_eq!(g.stats().ack_unseen_data, 1);
        assert_eq!(g.used(), 0);
    }

    #[test]
    fn peer_ack_starts_a_direction_never_seen_and_later_acks_make_gaps() {
        let mut g = Rig::new();
        g.ack(5000);
        g.ack(5010);
        g.ack(5030);
        assert_eq!(g.evs, vec![Ev::Gap(10)]);
        g.ack(5030);
        assert_eq!(g.evs, vec![Ev::Gap(10), Ev::Gap(20)]);
        // The direction shows up after all, where the acks said.
        g.seg(5030, ACK, b"late");
        assert_eq!(g.data(), b"late");
    }

    #[test]
    fn data_just_before_the_first_ack_moves_the_start_back() {
        // The peer's ack is the first packet; the data it acknowledges
        // comes right after it.
        let mut g = Rig::new();
        g.ack(5010);
        g.seg(5000, ACK, b"0123456789");
        g.seg(5010, ACK, b"ab");
        assert_eq!(g.data(), b"0123456789ab");
        assert_eq!(g.stats().gaps, 0);
        assert_eq!(g.stats().midstream_pickups, 1);
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
        g.ack(3);
        assert_eq!(g.gaps(), vec![3]);
    }

    #[test]
    fn byte_limit_counts_each_range_overhead() {
        // Room for two one-byte ranges and their overhead, not three.
        let mut g = Rig::with(StreamConfig {
            max_ooo_bytes: ByteSize(2 * (1 + PIECE_OVERHEAD)),
            ..no_window()
        });
        g.seg(0, SYN, b"");
        g.seg(3, ACK, b"c");
        g.seg(5, ACK, b"e");
        g.seg(7, ACK, b"g"); // a third range: the first hole goes
        assert_eq!(g.evs, vec![Ev::Gap(2), data(b"c")]);
        assert_eq!(g.stats().ooo_limit_reached, 1);
        g.seg(6, ACK, b"f"); // joins two ranges: fits
        assert_eq!(g.pieces(), 1);
        g.seg(4, ACK, b"d");
        assert_eq!(g.data(), b"cdefg");
        assert_eq!(g.stats().ooo_limit_reached, 1);
    }

    #[test]
    fn byte_limit_forces_a_gap_then_delivers_held_data() {
        let mut g = Rig::with(StreamConfig {
            max_ooo_bytes: ByteSize(4 + 2 * PIECE_OVERHEAD),
            ..StreamConfig::default()
        });
        g.seg(0, SYN, b"");
        g.seg(1, ACK, b"a");
        g.seg(4, ACK, b"de"); // hole 2..4
        g.seg(8, ACK, b"hi"); // hole 6..8, held is now 4 bytes in 2 ranges
        g.seg(11, ACK, b"k"); // does not fit
        assert_eq!(g.evs, vec![data(b"a"), Ev::Gap(2), data(b"de")]);
        assert_eq!(g.stats().ooo_limit_reached, 1);
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
    fn alternating_one_byte_holes_are_bounded_by_the_byte_limit() {
        // One byte, one hole, 200 000 times: without the
        // per-range charge all of them would be held.
        let mut g = Rig::with(no_window());
        g.seg(0, SYN, b"");
        for i in 0..200_000u32 {
            g.seg(3 + 2 * i, ACK, b"x");
        }
        let held = g.r.held_bytes();
        let cost = held + g.pieces() as u64 * PIECE_OVERHEAD;
        assert!(cost <= 4 << 20, "{cost}");
        assert!(g.stats().ooo_limit_reached > 0);
        assert!(g.st.memuse() <= (4 << 20) + STORE_OVERHEAD);
        g.flush();
        assert_eq!(g.used(), 0);
    }

    #[test]
    fn segment_larger_than_the_byte_limit_is_delivered_after_a_gap() {
        let mut g = Rig::with(StreamConfig {
            max_ooo_bytes: ByteSize(2),
            ..StreamConfig::default()
        });
        g.seg(0, SYN, b"");
        g.seg(4, ACK, b"defg");
        assert_eq!(g.evs, vec![Ev::Gap(3), data(b"defg")]);
        assert_eq!(g.r.held_bytes(), 0);
    }

    #[test]
    fn zero_byte_limit_delivers_everything_with_gaps() {
        let mut g = Rig::with(StreamConfig {
            max_ooo_bytes: ByteSize(0),
            ..StreamConfig::default()
        });
        g.seg(0, SYN, b"");
        g.seg(3, ACK, b"c");
        g.seg(1, ACK, b"ab");
        assert_eq!(g.evs, vec![Ev::Gap(2), data(b"c")]);
    }

    #[test]
    fn memcap_refusal_hands_held_data_on_and_later_data_is_not_dropped() {
        // Two workers' leases on one small budget.
        let cap = MemCap::new("tcp.reassembly_memuse", 1000);
        let cfg = no_window();
        let mut a = Rig::on(Stage::new(cfg.clone(), cap.lease()));
        let mut b = Rig::on(Stage::new(cfg, cap.lease()));
        a.seg(0, SYN, b"");
        a.seg(11, ACK, &[1u8; 600]); // worker a holds most of the budget
        b.seg(0, SYN, b"");
        b.seg(3, ACK, b"cd");
        b.seg(7, ACK, &[2u8; 300]); // does not fit: hole 1..3 goes first
        assert_eq!(b.evs.first(), Some(&Ev::Gap(2)));
        assert_eq!(b.data().len(), 2 + 300, "nothing dropped");
        assert_eq!(b.gaps(), vec![2, 2]);
        assert!(b.stats().segment_memcap_drop >= 1);
        assert_eq!(a.r.held_bytes(), 600, "the other flow keeps its data");
        a.flush();
        b.flush();
        assert_eq!(a.used() + b.used(), 0);
    }

    #[test]
    fn spare_stores_give_way_to_held_data() {
        let cfg = StreamConfig {
            memcap: ByteSize(1000),
            ..StreamConfig::default()
        };
        let mut g = Rig::with(cfg);
        g.seg(0, SYN, b"");
        g.seg(1, ACK, b"abc");
        g.ack(4); // acknowledged: the store goes spare, still charged
        assert_eq!(g.st.spare.len(), 1);
        let spare = g.st.memuse();
        assert!(spare > 0);
        // Held data needs nearly all of the budget: the spare goes.
        let big = vec![9u8; (1000 - STORE_OVERHEAD - PIECE_OVERHEAD) as usize];
        g.seg(10, ACK, &big);
        assert_eq!(g.r.held_bytes(), big.len() as u64);
        assert_eq!(g.stats().segment_memcap_drop, 0);
        assert!(g.st.spare.is_empty());
    }

    #[test]
    fn held_data_waits_at_most_hole_timeout_without_progress() {
        let mut g = Rig::with(StreamConfig {
            hole_timeout: 30,
            ..StreamConfig::default()
        });
        g.seg(0, SYN, b"");
        g.seg(1, ACK, b"a");
        g.seg(3, ACK, b"c"); // hole at 2 (a drop on a one-way mirror)
        g.now = Timestamp(0).plus_secs(20);
        g.seg(5, ACK, b"e"); // another hole at 4
        assert_eq!(g.data(), b"a");
        g.now = Timestamp(0).plus_secs(31);
        g.seg(6, ACK, b"f");
        // The first hole timed out; the stream advanced, so the second one
        // gets its own 30 seconds.
        assert_eq!(g.evs, vec![data(b"a"), Ev::Gap(1), data(b"c")]);
        g.now = Timestamp(0).plus_secs(62);
        g.ack(2); // the peer's packets carry time too
        assert_eq!(g.data(), b"acef");
        assert_eq!(g.stats().ooo_timeout, 2);
    }

    #[test]
    fn no_hole_timeout_waits_for_the_flow_end() {
        let mut g = Rig::with(StreamConfig {
            hole_timeout: 0,
            ..StreamConfig::default()
        });
        g.seg(0, SYN, b"");
        g.seg(3, ACK, b"c");
        g.now = Timestamp(0).plus_secs(100_000);
        g.seg(4, ACK, b"d");
        assert!(g.evs.is_empty());
        g.flush();
        assert_eq!(g.evs, vec![Ev::Gap(2), data(b"cd")]);
    }

    #[test]
    fn discard_frees_everything_without_events() {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(1, ACK, b"ab");
        g.seg(5, ACK, b"ef");
        g.ack(9);
        assert!(g.st.memuse() > 0);
        let before = g.evs.len();
        g.r.discard(&mut g.st);
        assert_eq!(g.evs.len(), before);
        assert_eq!(g.used(), 0);
        assert!(g.r.store.is_none());
    }

    #[test]
    fn first_segment_without_syn_is_a_midstream_pickup() {
        let mut g = Rig::new();
        g.seg(5000, ACK, b"middle");
        g.seg(5006, ACK, b"end");
        g.seg(4990, ACK, b"earlier bytes"); // before the start: old
        assert_eq!(g.data(), b"middleend");
        assert_eq!(g.stats().midstream_pickups, 1);
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
        assert_eq!(g.stats().overlaps, 1);
    }

    #[test]
    fn data_on_a_syn_starts_after_it() {
        let mut g = Rig::new();
        // TCP Fast Open: the SYN carries the first bytes.
        g.seg(41, SYN, b"tfo");
        g.seg(45, ACK, b"rest");
        g.seg(41, SYN, b"tfo"); // retransmitted SYN with data
        assert_eq!(g.data(), b"tforest");
        assert_eq!(g.stats().retransmissions, 1);
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
        assert_eq!(g.stats().retransmissions, 1);
    }

    #[test]
    fn syn_restart_returns_held_memory() {
        let mut g = Rig::new();
        g.seg(100, SYN, b"");
        g.ack(101);
        g.ack(150); // an ack remembered for later
        assert!(g.st.memuse() > 0);
        g.seg(9000, SYN, b""); // new ISN before any data
        assert_eq!(g.used(), 0);
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
        assert_eq!(g.stats().midstream_pickups, 1);
        g.seg(7000, SYN | ACK, b"");
        g.seg(7010, ACK, b"!");
        assert_eq!(g.data(), b"220 ready!");
        assert_eq!(g.stats().midstream_pickups, 0);
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
        g.ack(5);
        g.flush();
        assert_eq!(g.evs, vec![data(b"bye")]);
        assert_eq!(g.stats().data_after_fin, 2);
        assert_eq!(g.stats().gaps, 0);
    }

    #[test]
    fn an_acked_fin_leaves_the_direction_no_storage() {
        // The peer acks the FIN (one past its sequence number), before or
        // after the sensor saw it: nothing of the closed direction is left
        // charged to `stream.memcap`, however long the flow waits for its
        // closed timeout. mqtt_small kept a store per closed direction and
        // spent the default budget (tcp.overlap_window_memcap 1.06 M).
        for ack_first in [false, true] {
            let mut g = Rig::new();
            g.seg(0, SYN, b"");
            g.seg(1, ACK | PSH, b"hello");
            assert!(g.used() > 0, "the window holds the unacked bytes");
            if ack_first {
                g.ack(8); // the FIN's ack overtook the FIN (SPAN port)
            } else {
                g.ack(6);
            }
            g.seg(6, FIN | ACK, b"!");
            g.ack(8);
            assert_eq!(g.used(), 0, "ack first: {ack_first}");
            assert_eq!(g.r.memuse(), 0, "ack first: {ack_first}");
            g.ack(8);
            assert_eq!(g.used(), 0, "ack first: {ack_first}");
            g.flush();
            assert_eq!(g.evs, vec![data(b"hello"), data(b"!")]);
            assert_eq!(g.stats().gaps, 0);
            assert_eq!(g.stats().ack_unseen_data, 0);
        }
    }

    #[test]
    fn out_of_order_fin_cuts_held_data_after_it() {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        g.seg(8, ACK, b"xyz"); // beyond the FIN that comes next
        g.seg(4, ACK, b"de");
        g.seg(6, FIN | ACK, b"f"); // FIN at 7, held "xyz" at 8..11 goes
        assert_eq!(g.stats().data_after_fin, 3);
        g.seg(6, ACK, b"fghi"); // "ghi" from 7 on is after the FIN
        g.seg(1, ACK, b"abc");
        assert_eq!(g.data(), b"abcdef");
        assert_eq!(g.stats().data_after_fin, 6);
        assert_eq!(g.r.held_bytes(), 0);
        g.flush();
        assert_eq!(g.used(), 0);
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
        g.seg(u32::MAX, ACK, b"D"); // old and different: first wins
        g.seg(3, ACK, b"h");
        assert_eq!(g.data(), b"abcdefgh");
        assert_eq!(g.stats().retransmissions, 1);
        assert_eq!(g.stats().overlap_diff_data, 1);
        assert_eq!(g.stats().ooo_segments, 1);
        assert_eq!(g.stats().gaps, 0);
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
        assert_eq!(g.stats().out_of_window, 2);
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
        assert!(g.r.store.is_none());
        assert_eq!(g.used(), 0);
        // Reset: the next segment is a new pickup.
        g.seg(500, ACK, b"z");
        assert_eq!(g.data(), b"acfgz");
        assert_eq!(g.stats().midstream_pickups, 1);
    }

    /// Feeds one-byte segments of `n` bytes in `order` (offsets) with the
    /// default configuration; returns the rig after a flush.
    fn one_byte_segments(n: u32, order: impl Iterator<Item = u32>) -> Rig {
        let mut g = Rig::new();
        g.seg(0, SYN, b"");
        for i in order {
            g.seg(1 + i, ACK, &[(i % 251) as u8]);
        }
        g.flush();
        let want: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        assert_eq!(g.data(), want);
        assert!(g.gaps().is_empty());
        assert_eq!(g.stats().ooo_limit_reached, 0);
        g
    }

    #[test]
    fn receive_window_of_one_byte_segments_in_reverse_costs_linear_work() {
        const N: u32 = 64 * 1024;
        let g = one_byte_segments(N, (0..N).rev());
        // Each byte is copied once, moved once onto the range after it,
        // and its range visited a bounded number of times.
        assert!(g.st.work <= 8 * u64::from(N), "work {}", g.st.work);
    }

    #[test]
    fn receive_window_of_one_byte_segments_alternating_costs_linear_work() {
        // Every odd byte first (32 768 one-byte holes), then the even ones
        // from the end, then in order: the most ranges any order can make.
        const N: u32 = 64 * 1024;
        let odd = (1..N).step_by(2);
        let even_back = (2..N).step_by(2).rev();
        let g = one_byte_segments(N, odd.chain(even_back).chain(std::iter::once(0)));
        assert!(g.st.work <= 8 * u64::from(N), "work {}", g.st.work);
        let g = one_byte_segments(N, (1..N).step_by(2).chain((0..N).step_by(2)));
        assert!(g.st.work <= 8 * u64::from(N), "work {}", g.st.work);
    }

    #[test]
    fn receive_window_of_one_byte_segments_shuffled_costs_n_log_n_work() {
        const N: u32 = 64 * 1024;
        let mut order: Vec<u32> = (0..N).collect();
        let mut rng = Lcg(7);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let g = one_byte_segments(N, order.into_iter());
        // Union by size: a byte moves at most log2(N) = 16 times.
        assert!(g.st.work <= 24 * u64::from(N), "work {}", g.st.work);
    }

    #[test]
    fn many_one_byte_segments_interleaved_then_covered_are_reassembled() {
        // Every other byte held, then one segment fills all the holes: the
        // ranges join instead of being rescanned.
        const N: u32 = 100_000;
        let mut g = Rig::with(StreamConfig {
            max_ooo_bytes: ByteSize(u64::from(N) * 100),
            ..StreamConfig::default()
        });
        g.seg(0, SYN, b"");
        let byte = |i: u32| (i % 253) as u8;
        for i in (2..N).step_by(2) {
            g.seg(1 + i, ACK, &[byte(i)]);
        }
        let all: Vec<u8> = (0..N).map(byte).collect();
        g.seg(2, ACK, &all[1..]);
        assert_eq!(g.pieces(), 1);
        g.seg(1, ACK, &all[..1]);
        assert_eq!(g.data(), all);
        assert!(g.st.work <= 8 * u64::from(N), "work {}", g.st.work);
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
            segment_memcap_drop: 9,
            ooo_timeout: 10,
            ack_unseen_data: 11,
            overlap_window_memcap: 12,
            data_after_fin: 13,
            out_of_window: 14,
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
                segment_memcap_drop: 18,
                ooo_timeout: 20,
                ack_unseen_data: 22,
                overlap_window_memcap: 24,
                data_after_fin: 26,
                out_of_window: 28,
            }
        );
        let names: Vec<&str> = one.counters().iter().map(|(k, _)| *k).collect();
        assert!(names.contains(&"tcp.segment_memcap_drop"));
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

    /// Shuffles within consecutive flights of at most `flight` ranges.
    fn shuffle_flights(v: &mut [(usize, usize)], flight: usize, rng: &mut Lcg) {
        for chunk in v.chunks_mut(flight.max(1)) {
            for i in (1..chunk.len()).rev() {
                chunk.swap(i, rng.below(i + 1));
            }
        }
    }

    fn isn_strategy() -> impl Strategy<Value = u32> {
        prop_oneof![any::<u32>(), (u32::MAX - 4000)..=u32::MAX]
    }

    fn unlimited() -> StreamConfig {
        StreamConfig {
            max_ooo_bytes: ByteSize(u64::MAX),
            hole_timeout: 0,
            overlap_window: ByteSize(1 << 20),
            memcap: ByteSize(u64::MAX),
        }
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
            let mut g = Rig::with(unlimited());
            g.seg(isn, SYN, b"");
            // The first segment to carry a byte carries the original; any
            // later one carries different bytes, which first-wins must drop
            // and the overlap check must see.
            let mut sent = vec![false; original.len()];
            let mut conflicts = 0u64;
            for (a, b) in ranges {
                let mut conflict = false;
                let payload: Vec<u8> = (a..b)
                    .map(|i| if std::mem::replace(&mut sent[i], true) { conflict = true; !original[i] } else { original[i] })
                    .collect();
                conflicts += u64::from(conflict);
                g.seg(isn.wrapping_add(1).wrapping_add(a as u32), ACK, &payload);
            }
            g.flush();
            prop_assert!(g.gaps().is_empty(), "gaps {:?}", g.gaps());
            prop_assert_eq!(g.data(), original);
            prop_assert_eq!(g.stats().overlap_diff_data, conflicts);
            prop_assert_eq!(g.anomalies(), usize::from(conflicts > 0));
            prop_assert_eq!(g.used(), 0);
        }

        #[test]
        fn output_matches_a_first_wins_bitmap_model(
            len in 1usize..2000,
            isn in isn_strategy(),
            seed in any::<u64>(),
            max_seg in 1usize..300,
            extra in 0usize..30,
            drop_pct in 0usize..50,
            limits in 0u8..4,
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
            // 0: no limits; 1: a small per-direction limit; 2: a small
            // global budget; 3: a short hole timeout.
            let cfg = match limits {
                1 => StreamConfig { max_ooo_bytes: ByteSize(rng.below(900) as u64), ..unlimited() },
                2 => StreamConfig { memcap: ByteSize(rng.below(1500) as u64), ..unlimited() },
                3 => StreamConfig { hole_timeout: 1 + rng.below(3) as u32, ..unlimited() },
                _ => unlimited(),
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
                g.now = g.now.plus_secs(rng.below(2) as u64);
                g.seg(isn.wrapping_add(1).wrapping_add(a as u32), ACK, &payload);
                prop_assert!(g.st.memuse() <= g.st.cfg.memcap.0);
            }
            g.flush();
            prop_assert_eq!(g.used(), 0);
            // The stream ends with the last byte anyone sent.
            let end = model.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
            model.truncate(end);
            let got = g.content();
            prop_assert_eq!(got.len(), model.len());
            let s = g.stats();
            let forced = s.ooo_limit_reached + s.segment_memcap_drop + s.ooo_timeout;
            for (i, (m, o)) in model.iter().zip(&got).enumerate() {
                match (m, o) {
                    // Delivered bytes are always the first ones sent.
                    (_, Some(b)) => prop_assert_eq!(*m, Some(*b), "offset {}", i),
                    // A gap over a byte the model has is only allowed when a
                    // bound forced it.
                    (Some(_), None) => prop_assert!(forced > 0, "offset {}", i),
                    (None, None) => {}
                }
            }
            if forced == 0 {
                prop_assert_eq!(got, model);
            }
        }

        #[test]
        fn arbitrary_segments_and_acks_keep_the_books_straight(
            ops in proptest::collection::vec(
                (any::<bool>(), 0u32..3000, any::<u8>(), 0usize..60, 0u64..3),
                1..300,
            ),
            isn in isn_strategy(),
            max_ooo in 0u64..2000,
            memcap in 0u64..4000,
            window in 0u64..300,
        ) {
            // Anything a sender and a capture can do, near one ISN: no
            // panic, nothing held beyond the bounds, every charged byte
            // accounted for and given back.
            let mut g = Rig::with(StreamConfig {
                max_ooo_bytes: ByteSize(max_ooo),
                hole_timeout: 2,
                overlap_window: ByteSize(window),
                memcap: ByteSize(memcap),
            });
            for (is_ack, off, flags, len, secs) in ops {
                g.now = g.now.plus_secs(secs);
                let n = isn.wrapping_add(off);
                if is_ack {
                    g.ack(n);
                } else {
                    let payload: Vec<u8> = (0..len).map(|i| (i as u8) ^ flags).collect();
                    g.seg(n, flags & (SYN | FIN | RST | ACK), &payload);
                }
                prop_assert!(g.st.memuse() <= memcap);
                if let Some(st) = g.r.store.as_ref() {
                    let ranges = st.pieces.len() as u64;
                    let held: u64 = st.pieces.values().map(|v| v.len() as u64).sum();
                    prop_assert_eq!(held, st.held);
                    prop_assert!(held + ranges * PIECE_OVERHEAD <= max_ooo);
                    prop_assert_eq!(
                        st.charged,
                        STORE_OVERHEAD
                            + st.window_cap
                            + st.parts_cap * PART_SIZE
                            + held
                            + ranges * PIECE_OVERHEAD
                    );
                    prop_assert!(st.window.len() as u64 <= st.window_cap);
                    prop_assert!(st.parts.len() as u64 <= st.parts_cap);
                    prop_assert!(st.window_len() <= window);
                    let copied: u64 = st.parts.iter().filter(|p| !p.mapped).map(|p| u64::from(p.len)).sum();
                    prop_assert_eq!(copied, st.window.len() as u64);
                    if let Some(last) = st.parts.back() {
                        prop_assert_eq!(last.end(), st.next_abs);
                    }
                    for w in st.parts.iter().zip(st.parts.iter().skip(1)) {
                        prop_assert_eq!(w.0.end(), w.1.abs);
                    }
                }
                prop_assert_eq!(g.used(), g.r.memuse());
            }
            g.flush();
            prop_assert_eq!(g.used(), 0);
            g.st.release_spares();
            prop_assert_eq!(g.st.memuse(), 0);
        }

        #[test]
        fn mapped_and_copied_windows_report_the_overlaps_of_a_model(
            original in proptest::collection::vec(any::<u8>(), 1..6000),
            seed in any::<u64>(),
            max_seg in 1usize..1500,
            window in 0u64..3000,
            acks in any::<bool>(),
        ) {
            // In-order segments, some preceded by a retransmission of
            // delivered bytes with one byte changed or none, some followed
            // by the peer's ack of part of what it got; fed once from a
            // mapping (segments of at least MIN_SPAN bytes are referred to)
            // and once from the heap (all copied). Model: a changed byte is
            // reported when it lies in the last `window` delivered bytes
            // above the highest ack.
            let mut rng = Lcg(seed);
            let mut segs: Vec<(usize, Vec<u8>, Option<usize>)> = Vec::new();
            let mut want = 0u64;
            let mut acked = 0usize;
            for (a, b) in cut(original.len(), max_seg, &mut rng) {
                if a > 0 && rng.below(3) == 0 {
                    let s = rng.below(a);
                    let e = (s + 1 + rng.below(max_seg)).min(a);
                    let mut p = original[s..e].to_vec();
                    if rng.below(2) == 0 {
                        let i = rng.below(p.len());
                        p[i] ^= 0x55;
                        let lo = (a as u64).saturating_sub(window).max(acked as u64);
                        want += u64::from((s + i) as u64 >= lo);
                    }
                    segs.push((s, p, None));
                }
                let ack = (acks && rng.below(2) == 0).then(|| rng.below(b + 1));
                if let Some(k) = ack {
                    acked = acked.max(k);
                }
                segs.push((a, original[a..b].to_vec(), ack));
            }
            let refs: Vec<&[u8]> = segs.iter().map(|s| s.1.as_slice()).collect();
            let (buf, at) = mapping(&refs);
            let run = |mapped: bool| {
                let mut g = Rig::with(StreamConfig { overlap_window: ByteSize(window), ..unlimited() });
                if mapped {
                    g.st.set_source(&buf);
                }
                g.seg(0, SYN, b"");
                for ((off, p, ack), r) in segs.iter().zip(&at) {
                    let payload = if mapped { &buf[r.clone()] } else { p.as_slice() };
                    g.seg(1 + *off as u32, ACK, payload);
                    if let Some(k) = ack {
                        g.ack(1 + *k as u32);
                    }
                }
                let out = (g.stats().clone(), g.data());
                g.flush();
                assert_eq!(g.used(), 0);
                out
            };
            let (m, m_data) = run(true);
            let (c, c_data) = run(false);
            prop_assert_eq!(&m_data, &original);
            prop_assert_eq!(&c_data, &original);
            prop_assert_eq!(m.overlap_diff_data, want);
            prop_assert_eq!(m, c);
        }

        #[test]
        fn acks_from_a_receiver_even_one_packet_early_never_make_gaps(
            original in proptest::collection::vec(any::<u8>(), 1..4000),
            isn in isn_strategy(),
            seed in any::<u64>(),
            max_seg in 1usize..300,
            flight in 1usize..40,
            early in any::<bool>(),
        ) {
            // The peer acks what it has contiguously after each segment; on
            // a SPAN port that ack may be seen before the segment itself.
            let mut rng = Lcg(seed);
            let mut ranges = cut(original.len(), max_seg, &mut rng);
            shuffle_flights(&mut ranges, flight, &mut rng);
            let mut g = Rig::new();
            g.seg(isn, SYN, b"");
            let base = isn.wrapping_add(1);
            let mut got = vec![false; original.len()];
            let mut prefix = 0usize;
            for (a, b) in ranges {
                for x in &mut got[a..b] {
                    *x = true;
                }
                while prefix < got.len() && got[prefix] {
                    prefix += 1;
                }
                let ack = base.wrapping_add(prefix as u32);
                if early {
                    g.ack(ack);
                }
                g.seg(base.wrapping_add(a as u32), ACK, &original[a..b]);
                if !early {
                    g.ack(ack);
                }
            }
            g.flush();
            prop_assert!(g.gaps().is_empty(), "gaps {:?}", g.gaps());
            prop_assert_eq!(g.data(), original);
            prop_assert_eq!(g.used(), 0);
        }
    }
}
