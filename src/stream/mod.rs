//! Stream: reassembly of one direction of a TCP connection.
//!
//! Owns: turning segments in arrival order into the byte stream the sender
//! wrote, as [`Event::Data`] slices in sequence order and [`Event::Gap`]s
//! where bytes were never seen. One [`Reassembler`] per direction; the flow
//! stage owns two of them.
//!
//! Invariants (RFC 9293 sequence space, modulo 2^32):
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

/// Per-direction reassembly limits.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Most out-of-order bytes held for one direction.
    pub max_ooo_bytes: u32,
    /// Most out-of-order segments held for one direction.
    pub max_ooo_segments: u16,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_ooo_bytes: 256 * 1024,
            max_ooo_segments: 64,
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
    pub midstream_pickups: u64,
    pub ooo_segments: u64,
    pub retransmissions: u64,
    pub overlaps: u64,
    pub overlap_diff_data: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    pub ooo_limit_reached: u64,
}

impl StreamStats {
    pub fn merge(&mut self, other: &StreamStats) {
        let _ = other;
    }
}

/// Reassembles one direction. Small while idle; out-of-order storage is
/// allocated only when needed.
#[derive(Debug, Default)]
pub struct Reassembler {
    _private: (),
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
        let _ = (cfg, stats, seq, flags, payload, out);
    }

    /// The peer acknowledged `ack`: bytes of this direction below it were
    /// sent. If the reassembler is waiting on a hole the peer has
    /// acknowledged, the hole was lost by the capture, not the network: it
    /// is declared a gap and held data after it delivered.
    pub fn peer_ack(&mut self, stats: &mut StreamStats, ack: u32, out: &mut dyn FnMut(Event<'_>)) {
        let _ = (stats, ack, out);
    }

    /// End of the flow: delivers whatever is held, with gaps for the holes.
    pub fn flush(&mut self, stats: &mut StreamStats, out: &mut dyn FnMut(Event<'_>)) {
        let _ = (stats, out);
    }
}
