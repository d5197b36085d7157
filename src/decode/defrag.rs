//! IPv4 and IPv6 fragment reassembly, bounded in count and in bytes.
//!
//! Fragments are keyed by (VLAN, source, destination, protocol, id). Each
//! tracker holds at most `max_datagram` bytes and `max_fragments` pieces; a
//! tracker older than `timeout_secs` of packet time (counted from its first
//! fragment, as Linux does) is dropped and counted. Overlaps keep the first
//! data received ("first wins"): bytes already held are never overwritten,
//! a later fragment only fills holes.
//!
//! Memory: the table holds at most `max_trackers` trackers, and the bytes
//! they hold (buffer capacity, ranges, plus [`TRACKER_OVERHEAD`] each) are
//! reserved from the run's shared `defrag.memcap` ([`crate::memcap`])
//! before they are allocated. When a new datagram finds the table full
//! (`defrag.max_trackers_reached`) or a reservation is refused
//! (`defrag.memcap_reached`), the oldest tracker is evicted
//! (`defrag.tracker_hard_reuse`) until the new one fits: a flood of
//! fragments that never complete cannot lock out the datagrams that follow
//! it, and the evidence dropped is the oldest. Only when nothing else is
//! left to evict is the new datagram itself dropped.
//!
//! Invariants: a datagram that breaks a limit is dropped at once (its
//! buffer freed) and its tracker stays as a tombstone that swallows the
//! rest of its fragments until it times out or is evicted, so they cannot
//! start a new, doomed tracker. A final fragment that disagrees with data
//! already held about the datagram's end, or a fragment beyond a known end,
//! is an overlap: counted and ignored (first wins again).
//!
//! `expire` and eviction cost O(trackers removed): trackers sit in a queue
//! in the order they were created, which is the order they time out when
//! packet time moves forward and the order they are evicted. Entries of
//! trackers already gone stay in the queue until their turn; the queue is
//! compacted when it grows past twice the table size, so it stays bounded.
//!
//! Specs: RFC 791 §3.2 (IPv4 reassembly), RFC 8200 §4.5 (IPv6), RFC 5722
//! (overlapping IPv6 fragments are an attack; we keep the first data and
//! count the overlap).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::decode::{Fragment, Vlans};
use crate::memcap::{Lease, MemCap};
use crate::time::Timestamp;

/// Limits of the reassembler (the `defrag:` section of the configuration
/// file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DefragConfig {
    /// Datagrams being reassembled at once, per worker; when full the
    /// oldest is evicted.
    pub max_trackers: usize,
    /// Fragments per datagram.
    pub max_fragments: usize,
    /// Bytes per datagram.
    pub max_datagram: usize,
    /// Seconds of packet time before an incomplete datagram is dropped.
    #[serde(rename = "timeout")]
    pub timeout_secs: u64,
    /// Fragment bytes all workers together may hold (`defrag.memcap`).
    pub memcap: crate::memcap::ByteSize,
}

impl Default for DefragConfig {
    fn default() -> Self {
        DefragConfig {
            max_trackers: 4096,
            max_fragments: 64,
            max_datagram: 65_535,
            timeout_secs: 60,
            memcap: crate::memcap::ByteSize::mib(16),
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
    /// A new datagram found the table full (the oldest was evicted).
    pub max_trackers_reached: u64,
    pub max_frags_reached: u64,
    /// Trackers evicted before their time to make room.
    pub hard_reuse: u64,
    /// Reservations `defrag.memcap` refused.
    pub memcap_reached: u64,
    /// Datagrams dropped for exceeding `max_datagram`.
    pub ipv4_too_large: u64,
    pub ipv6_too_large: u64,
    /// Fragments that overlapped data already held (or contradicted the
    /// datagram's known end).
    pub ipv4_overlap: u64,
    pub ipv6_overlap: u64,
}

impl DefragStats {
    /// Every non-zero counter as a dotted path below `stats`, in the names of
    /// Suricata's EVE schema (`defrag.*`, and the fragment events under
    /// `decoder.event.ipv4/ipv6`), plus `defrag.memcap_reached` (declared in
    /// `tests/tools/validate_eve.py`).
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        [
            ("defrag.ipv4.fragments", self.ipv4_fragments),
            ("defrag.ipv4.reassembled", self.ipv4_reassembled),
            ("defrag.ipv6.fragments", self.ipv6_fragments),
            ("defrag.ipv6.reassembled", self.ipv6_reassembled),
            ("defrag.wrk.tracker_timeout", self.timeouts),
            ("defrag.max_trackers_reached", self.max_trackers_reached),
            ("defrag.max_frags_reached", self.max_frags_reached),
            ("defrag.tracker_hard_reuse", self.hard_reuse),
            ("defrag.memcap_reached", self.memcap_reached),
            ("decoder.event.ipv4.frag_pkt_too_large", self.ipv4_too_large),
            ("decoder.event.ipv6.frag_pkt_too_large", self.ipv6_too_large),
            ("decoder.event.ipv4.frag_overlap", self.ipv4_overlap),
            ("decoder.event.ipv6.frag_overlap", self.ipv6_overlap),
        ]
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .collect()
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, o: &DefragStats) {
        self.ipv4_fragments += o.ipv4_fragments;
        self.ipv4_reassembled += o.ipv4_reassembled;
        self.ipv6_fragments += o.ipv6_fragments;
        self.ipv6_reassembled += o.ipv6_reassembled;
        self.timeouts += o.timeouts;
        self.max_trackers_reached += o.max_trackers_reached;
        self.max_frags_reached += o.max_frags_reached;
        self.hard_reuse += o.hard_reuse;
        self.memcap_reached += o.memcap_reached;
        self.ipv4_too_large += o.ipv4_too_large;
        self.ipv6_too_large += o.ipv6_too_large;
        self.ipv4_overlap += o.ipv4_overlap;
        self.ipv6_overlap += o.ipv6_overlap;
    }
}

/// What identifies one datagram's fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    vlan: Vlans,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    id: u32,
}

/// Bytes charged per tracker besides its buffers: the table entry (key and
/// tracker, plus a control byte and slack for the hash table's load
/// factor) and its expiry-queue entry.
pub const TRACKER_OVERHEAD: u64 = (2
    * (std::mem::size_of::<Key>() + std::mem::size_of::<Tracker>() + 1)
    + std::mem::size_of::<(Key, u64, Timestamp)>()) as u64;

/// Bytes per held range.
const RANGE_BYTES: u64 = std::mem::size_of::<(usize, usize)>() as u64;

/// One datagram being put back together.
#[derive(Debug)]
struct Tracker {
    /// Matches the tracker's entry in the expiry queue.
    seq: u64,
    created: Timestamp,
    /// A limit was broken: the datagram is dropped, later fragments too.
    dead: bool,
    /// Bytes at their datagram offsets; holes are zero until filled.
    data: Vec<u8>,
    /// Byte ranges held, sorted, disjoint and not touching.
    have: Vec<(usize, usize)>,
    /// Datagram length, known once the last fragment has arrived.
    total: Option<usize>,
    frames: u32,
    wire_bytes: u64,
    /// Bytes reserved from the memcap for this tracker.
    charged: u64,
}

impl Tracker {
    /// Bytes this tracker's buffers take now, overhead included.
    fn cost(&self) -> u64 {
        TRACKER_OVERHEAD
            .saturating_add(self.data.capacity() as u64)
            .saturating_add((self.have.capacity() as u64).saturating_mul(RANGE_BYTES))
    }

    fn max_end(&self) -> usize {
        self.have.last().map_or(0, |r| r.1)
    }

    /// Copies the parts of `payload` (at `start..end`) not already held and
    /// records the range; returns whether it overlapped held data. The
    /// caller has grown `data` to at least `end` bytes and `have` by one.
    fn fill(&mut self, start: usize, end: usize, payload: &[u8]) -> bool {
        if self.data.len() < end {
            // Capacity was reserved (and charged) by the caller.
            self.data.resize(end, 0);
        }
        let mut cur = start;
        let mut overlapped = false;
        for &(s, e) in &self.have {
            if e <= cur {
                continue;
            }
            if s >= end {
                break;
            }
            overlapped = true;
            if s > cur {
                copy(&mut self.data, payload, start, cur, s);
            }
            cur = cur.max(e);
            if cur >= end {
                break;
            }
        }
        if cur < end {
            copy(&mut self.data, payload, start, cur, end);
        }
        if start < end {
            let at = self.have.partition_point(|r| r.0 < start);
            self.have.insert(at, (start, end));
            // Merge ranges that overlap or touch, in place.
            let mut w = 0;
            for r in 0..self.have.len() {
                let (s, e) = self.have[r];
                if w > 0 && s <= self.have[w - 1].1 {
                    self.have[w - 1].1 = self.have[w - 1].1.max(e);
                } else {
                    self.have[w] = (s, e);
                    w += 1;
                }
            }
            self.have.truncate(w);
        }
        overlapped
    }
}

/// Copies `payload[a - start..b - start]` to `data[a..b]`; the caller
/// guarantees `start <= a <= b <= start + payload.len() <= data.len()`.
fn copy(data: &mut [u8], payload: &[u8], start: usize, a: usize, b: usize) {
    if let (Some(dst), Some(src)) = (data.get_mut(a..b), payload.get(a - start..b - start)) {
        dst.copy_from_slice(src);
    }
}

/// The capacities a tracker needs for data up to `end` and one more range,
/// and the bytes that adds to its charge.
struct Growth {
    data: usize,
    ranges: usize,
    delta: u64,
}

/// Buffers grow by doubling (capped at `max_datagram`), so in-order
/// fragments copy each byte a bounded number of times; the range list
/// doubles when full.
fn growth(t: &Tracker, end: usize, max_dgram: usize) -> Growth {
    let cap = t.data.capacity();
    let data = if end > cap {
        end.max(cap.saturating_mul(2)).min(max_dgram.max(end))
    } else {
        cap
    };
    let ranges = if t.have.len() == t.have.capacity() {
        t.have.capacity().saturating_mul(2).max(4)
    } else {
        t.have.capacity()
    };
    let want = TRACKER_OVERHEAD
        .saturating_add(data as u64)
        .saturating_add((ranges as u64).saturating_mul(RANGE_BYTES));
    Growth {
        data,
        ranges,
        delta: want.saturating_sub(t.charged),
    }
}

/// The reassembly table.
#[derive(Debug)]
pub struct Defrag {
    cfg: DefragConfig,
    stats: DefragStats,
    table: HashMap<Key, Tracker, ahash::RandomState>,
    /// Trackers in creation order: (key, seq, created).
    order: VecDeque<(Key, u64, Timestamp)>,
    next_seq: u64,
    /// This worker's draw on `defrag.memcap`.
    lease: Lease,
}

impl Defrag {
    /// A reassembler alone in its run: its budget is `cfg.memcap`.
    pub fn new(cfg: DefragConfig) -> Self {
        let lease = MemCap::new("defrag.memuse", cfg.memcap.0).lease();
        Defrag::with_lease(cfg, lease)
    }

    /// A reassembler drawing on a budget shared with other workers.
    pub fn with_lease(cfg: DefragConfig, lease: Lease) -> Self {
        Defrag {
            cfg,
            stats: DefragStats::default(),
            table: HashMap::default(),
            order: VecDeque::new(),
            next_seq: 0,
            lease,
        }
    }

    fn timed_out(&self, created: Timestamp, now: Timestamp) -> bool {
        now.since(created) >= self.cfg.timeout_secs.saturating_mul(1_000_000_000)
    }

    /// Removes the tracker of `key` and gives its bytes back.
    fn remove(&mut self, key: &Key) -> Option<Tracker> {
        let t = self.table.remove(key)?;
        self.lease.release(t.charged);
        Some(t)
    }

    /// Evicts the oldest tracker other than `keep`'s; false when there is
    /// none.
    fn evict_oldest(&mut self, keep: Option<&Key>) -> bool {
        let mut kept = None;
        let mut evicted = false;
        while let Some(entry) = self.order.pop_front() {
            let (key, seq, _) = entry;
            if Some(&key) == keep {
                kept = Some(entry);
                continue;
            }
            // One lookup: remove only if the entry is this tracker's.
            let Entry::Occupied(e) = self.table.entry(key) else {
                continue;
            };
            if e.get().seq != seq {
                continue;
            }
            self.lease.release(e.remove().charged);
            self.stats.hard_reuse += 1;
            evicted = true;
            break;
        }
        if let Some(e) = kept {
            self.order.push_front(e);
        }
        evicted
    }

    /// Reserves `n` bytes, evicting the oldest trackers (never `keep`'s)
    /// while the budget refuses; false when nothing is left to evict.
    fn reserve(&mut self, n: u64, keep: Option<&Key>) -> bool {
        while !self.lease.try_reserve(n) {
            self.stats.memcap_reached += 1;
            if !self.evict_oldest(keep) {
                return false;
            }
        }
        true
    }

    /// Drops the datagram of `key` (a limit was broken), keeping its
    /// tracker as a tombstone charged only its overhead.
    fn kill(&mut self, key: &Key) {
        if let Some(t) = self.table.get_mut(key) {
            t.dead = true;
            t.data = Vec::new();
            t.have = Vec::new();
            let freed = t.charged.saturating_sub(TRACKER_OVERHEAD);
            t.charged -= freed;
            self.lease.release(freed);
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
        let v6 = frag.ip.src.is_ipv6();
        if v6 {
            self.stats.ipv6_fragments += 1;
        } else {
            self.stats.ipv4_fragments += 1;
        }
        let key = Key {
            vlan: frag.vlan,
            src: frag.ip.src,
            dst: frag.ip.dst,
            proto: frag.ip.proto,
            id: frag.id,
        };
        // A tracker past its time must not absorb a new datagram that
        // reuses the id.
        let live = match self.table.get(&key) {
            Some(t) if self.timed_out(t.created, now) => {
                if !t.dead {
                    self.stats.timeouts += 1;
                }
                self.remove(&key);
                false
            }
            Some(_) => true,
            None => false,
        };
        if !live && !self.track(now, key) {
            return None;
        }
        self.add(&key, frag, wire_len, v6)
    }

    /// Starts a tracker for `key`, making room by evicting the oldest;
    /// false when even an empty table has no room (memcap below one
    /// tracker, or `max_trackers` 0).
    fn track(&mut self, now: Timestamp, key: Key) -> bool {
        if self.table.len() >= self.cfg.max_trackers {
            self.expire(now);
            if self.table.len() >= self.cfg.max_trackers {
                self.stats.max_trackers_reached += 1;
                while self.table.len() >= self.cfg.max_trackers {
                    if !self.evict_oldest(None) {
                        return false;
                    }
                }
            }
        }
        if !self.reserve(TRACKER_OVERHEAD, None) {
            return false;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.table.insert(
            key,
            Tracker {
                seq,
                created: now,
                dead: false,
                data: Vec::new(),
                have: Vec::new(),
                total: None,
                frames: 0,
                wire_bytes: 0,
                charged: TRACKER_OVERHEAD,
            },
        );
        self.order.push_back((key, seq, now));
        self.compact();
        true
    }

    /// Adds a fragment to the live tracker of `key`.
    fn add(
        &mut self,
        key: &Key,
        frag: &Fragment<'_>,
        wire_len: u32,
        v6: bool,
    ) -> Option<Reassembled> {
        let (max_frags, max_dgram) = (self.cfg.max_fragments, self.cfg.max_datagram);
        let t = self.table.get_mut(key)?;
        if t.dead {
            return None;
        }
        t.frames = t.frames.saturating_add(1);
        t.wire_bytes = t.wire_bytes.saturating_add(u64::from(wire_len));
        let start = usize::try_from(frag.offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(frag.payload.len());
        let conflict = match (frag.more, t.total) {
            (false, Some(total)) => total != end,
            (false, None) => t.max_end() > end,
            (true, Some(total)) => end > total,
            (true, None) => false,
        };
        let growth = growth(t, end, max_dgram);
        if t.frames as usize > max_frags {
            self.stats.max_frags_reached += 1;
            self.kill(key);
            return None;
        }
        if end > max_dgram {
            if v6 {
                self.stats.ipv6_too_large += 1;
            } else {
                self.stats.ipv4_too_large += 1;
            }
            self.kill(key);
            return None;
        }
        // Room for the bytes first (this may evict other trackers), then
        // the copy.
        if !conflict && growth.delta > 0 && !self.reserve(growth.delta, Some(key)) {
            self.kill(key);
            return None;
        }
        let t = self.table.get_mut(key)?;
        let overlapped = conflict || {
            t.charged = t.charged.saturating_add(growth.delta);
            // Exactly the capacities charged: `reserve_exact` on a smaller
            // buffer allocates what it is asked for.
            t.data
                .reserve_exact(growth.data.saturating_sub(t.data.len()));
            t.have
                .reserve_exact(growth.ranges.saturating_sub(t.have.len()));
            debug_assert!(t.cost() <= t.charged);
            let o = t.fill(start, end, frag.payload);
            if !frag.more {
                t.total = Some(end);
            }
            o
        };
        if overlapped {
            if v6 {
                self.stats.ipv6_overlap += 1;
            } else {
                self.stats.ipv4_overlap += 1;
            }
        }
        let total = t.total?;
        let complete = match t.have.as_slice() {
            [] => total == 0,
            [(0, e)] => *e == total,
            _ => false,
        };
        if !complete {
            return None;
        }
        let mut t = self.remove(key)?;
        t.data.truncate(total);
        if v6 {
            self.stats.ipv6_reassembled += 1;
        } else {
            self.stats.ipv4_reassembled += 1;
        }
        Some(Reassembled {
            data: t.data,
            frames: t.frames,
            wire_bytes: t.wire_bytes,
        })
    }

    /// Drops the queue entries of trackers that no longer exist once the
    /// queue is more than twice the table's limit (amortised O(1)).
    fn compact(&mut self) {
        let limit = self.cfg.max_trackers.saturating_mul(2).saturating_add(64);
        if self.order.len() > limit {
            let table = &self.table;
            self.order
                .retain(|(k, seq, _)| table.get(k).is_some_and(|t| t.seq == *seq));
        }
    }

    /// Drops trackers idle for longer than the timeout.
    pub fn expire(&mut self, now: Timestamp) {
        while let Some(&(key, seq, created)) = self.order.front() {
            if !self.timed_out(created, now) {
                break;
            }
            self.order.pop_front();
            if let Some(t) = self.table.get(&key) {
                if t.seq == seq {
                    if !t.dead {
                        self.stats.timeouts += 1;
                    }
                    self.remove(&key);
                }
            }
        }
    }

    /// Number of datagrams being tracked (tombstones included).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Bytes this reassembler has reserved from its budget.
    pub fn memuse(&self) -> u64 {
        self.lease.held()
    }

    pub fn stats(&self) -> &DefragStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{IpInfo, Tunnel};

    fn ip(v6: bool) -> IpInfo {
        let (src, dst): (IpAddr, IpAddr) = if v6 {
            (
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            )
        } else {
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap())
        };
        IpInfo {
            src,
            dst,
            proto: 17,
            ttl: 64,
        }
    }

    fn frag(v6: bool, id: u32, offset: u32, more: bool, payload: &[u8]) -> Fragment<'_> {
        Fragment {
            vlan: Vlans::default(),
            tunnel: Tunnel::None,
            ip: ip(v6),
            id,
            offset,
            more,
            payload,
            depth: 0,
        }
    }

    fn secs(s: u64) -> Timestamp {
        Timestamp::from_parts(s, 0)
    }

    /// A 24-byte datagram: bytes 0..24.
    fn datagram() -> Vec<u8> {
        (0u8..24).collect()
    }

    #[test]
    fn in_order_fragments_reassemble_with_frame_counts() {
        for v6 in [false, true] {
            let d = datagram();
            let mut r = Defrag::new(DefragConfig::default());
            assert_eq!(r.insert(secs(1), &frag(v6, 7, 0, true, &d[..8]), 60), None);
            assert_eq!(
                r.insert(secs(1), &frag(v6, 7, 8, true, &d[8..16]), 60),
                None
            );
            let out = r
                .insert(secs(1), &frag(v6, 7, 16, false, &d[16..]), 58)
                .unwrap();
            assert_eq!(out.data, d);
            assert_eq!((out.frames, out.wire_bytes), (3, 178));
            assert!(r.is_empty());
            let s = r.stats();
            if v6 {
                assert_eq!((s.ipv6_fragments, s.ipv6_reassembled), (3, 1));
            } else {
                assert_eq!((s.ipv4_fragments, s.ipv4_reassembled), (3, 1));
            }
        }
    }

    #[test]
    fn reversed_fragments_reassemble() {
        let d = datagram();
        let mut r = Defrag::new(DefragConfig::default());
        assert_eq!(
            r.insert(secs(1), &frag(false, 1, 16, false, &d[16..]), 60),
            None
        );
        assert_eq!(
            r.insert(secs(1), &frag(false, 1, 8, true, &d[8..16]), 60),
            None
        );
        let out = r
            .insert(secs(1), &frag(false, 1, 0, true, &d[..8]), 60)
            .unwrap();
        assert_eq!(out.data, d);
    }

    #[test]
    fn overlap_keeps_first_data_and_is_counted() {
        let d = datagram();
        let evil = [0xffu8; 16];
        let mut r = Defrag::new(DefragConfig::default());
        assert_eq!(
            r.insert(secs(1), &frag(false, 1, 0, true, &d[..16]), 60),
            None
        );
        // Overlaps bytes 8..16 with different data, then brings 16..24.
        let mut second = evil.to_vec();
        second[8..].copy_from_slice(&d[16..]);
        let out = r
            .insert(secs(1), &frag(false, 1, 8, false, &second), 60)
            .unwrap();
        assert_eq!(out.data, d, "bytes 8..16 must be the first copy");
        assert_eq!(r.stats().ipv4_overlap, 1);
    }

    #[test]
    fn overlap_filling_holes_on_both_sides() {
        let d: Vec<u8> = (0u8..32).collect();
        let mut r = Defrag::new(DefragConfig::default());
        assert_eq!(
            r.insert(secs(1), &frag(true, 9, 8, true, &d[8..16]), 60),
            None
        );
        // Covers 0..24 around the held 8..16 (with junk where it overlaps).
        let mut wide = d[..24].to_vec();
        wide[8..16].fill(0xee);
        assert_eq!(r.insert(secs(1), &frag(true, 9, 0, true, &wide), 60), None);
        let out = r
            .insert(secs(1), &frag(true, 9, 24, false, &d[24..]), 60)
            .unwrap();
        assert_eq!(out.data, d);
        assert_eq!(r.stats().ipv6_overlap, 1);
    }

    #[test]
    fn duplicate_fragment_counted_frames_included() {
        let d = datagram();
        let mut r = Defrag::new(DefragConfig::default());
        r.insert(secs(1), &frag(false, 1, 0, true, &d[..8]), 60);
        r.insert(secs(1), &frag(false, 1, 0, true, &d[..8]), 60);
        r.insert(secs(1), &frag(false, 1, 8, true, &d[8..16]), 60);
        let out = r
            .insert(secs(1), &frag(false, 1, 16, false, &d[16..]), 60)
            .unwrap();
        assert_eq!(out.data, d);
        assert_eq!(out.frames, 4);
        assert_eq!(r.stats().ipv4_overlap, 1);
    }

    #[test]
    fn missing_last_fragment_times_out() {
        let d = datagram();
        let mut r = Defrag::new(DefragConfig {
            timeout_secs: 30,
            ..DefragConfig::default()
        });
        r.insert(secs(100), &frag(false, 1, 0, true, &d[..8]), 60);
        r.insert(secs(101), &frag(false, 1, 8, true, &d[8..16]), 60);
        r.expire(secs(129));
        assert_eq!(r.len(), 1);
        r.expire(secs(130));
        assert_eq!(r.len(), 0);
        assert_eq!(r.stats().timeouts, 1);
        // The late last fragment starts a fresh tracker, not a datagram.
        assert_eq!(
            r.insert(secs(131), &frag(false, 1, 16, false, &d[16..]), 60),
            None
        );
        assert_eq!(r.stats().ipv4_reassembled, 0);
    }

    #[test]
    fn stale_tracker_not_joined_by_reused_id() {
        let d = datagram();
        let mut r = Defrag::new(DefragConfig {
            timeout_secs: 10,
            ..DefragConfig::default()
        });
        // Without calling expire, a fragment arriving after the timeout must
        // not complete the old datagram.
        r.insert(secs(0), &frag(false, 1, 0, true, &d[..8]), 60);
        r.insert(secs(0), &frag(false, 1, 8, true, &d[8..16]), 60);
        assert_eq!(
            r.insert(secs(20), &frag(false, 1, 16, false, &d[16..]), 60),
            None
        );
        assert_eq!(r.stats().timeouts, 1);
    }

    #[test]
    fn over_limit_datagram_dropped_and_rest_swallowed() {
        let d = vec![0u8; 64];
        let mut r = Defrag::new(DefragConfig {
            max_datagram: 100,
            ..DefragConfig::default()
        });
        assert_eq!(r.insert(secs(1), &frag(false, 1, 0, true, &d), 60), None);
        assert_eq!(r.insert(secs(1), &frag(false, 1, 64, false, &d), 60), None);
        assert_eq!(r.stats().ipv4_too_large, 1);
        // The tracker is a tombstone: even bytes that would fit are dropped.
        assert_eq!(
            r.insert(secs(1), &frag(false, 1, 64, false, &d[..8]), 60),
            None
        );
        assert_eq!(r.stats().ipv4_reassembled, 0);
        // A tombstone times out without counting as a timeout.
        r.expire(secs(1000));
        assert!(r.is_empty());
        assert_eq!(r.stats().timeouts, 0);
    }

    #[test]
    fn too_many_fragments_dropped() {
        let d = vec![1u8; 8];
        let mut r = Defrag::new(DefragConfig {
            max_fragments: 3,
            ..DefragConfig::default()
        });
        for i in 0..3u32 {
            assert_eq!(r.insert(secs(1), &frag(true, 5, i * 8, true, &d), 60), None);
        }
        assert_eq!(r.insert(secs(1), &frag(true, 5, 24, false, &d), 60), None);
        assert_eq!(r.stats().max_frags_reached, 1);
        assert_eq!(r.stats().ipv6_reassembled, 0);
    }

    #[test]
    fn full_table_evicts_the_oldest_datagram() {
        let d = datagram();
        let mut r = Defrag::new(DefragConfig {
            max_trackers: 2,
            timeout_secs: 5,
            ..DefragConfig::default()
        });
        r.insert(secs(1), &frag(false, 1, 0, true, &d[..8]), 60);
        r.insert(secs(1), &frag(false, 2, 0, true, &d[..8]), 60);
        // Datagram 3 takes datagram 1's place.
        r.insert(secs(2), &frag(false, 3, 16, false, &d[16..]), 60);
        assert_eq!(r.stats().max_trackers_reached, 1);
        assert_eq!(r.stats().hard_reuse, 1);
        assert_eq!(r.len(), 2);
        r.insert(secs(2), &frag(false, 3, 8, true, &d[8..16]), 60);
        let out = r.insert(secs(2), &frag(false, 3, 0, true, &d[..8]), 60);
        assert_eq!(out.map(|o| o.data), Some(d.clone()));
        // Datagram 1 is gone: its last fragments start a new tracker.
        r.insert(secs(2), &frag(false, 1, 8, true, &d[8..16]), 60);
        assert_eq!(
            r.insert(secs(2), &frag(false, 1, 16, false, &d[16..]), 60),
            None
        );
        // Once the rest time out, a new datagram finds room without eviction.
        r.insert(secs(8), &frag(false, 4, 0, true, &d[..8]), 60);
        assert_eq!(r.len(), 1);
        assert_eq!(r.stats().hard_reuse, 1);
        assert_eq!(r.stats().timeouts, 2);
    }

    #[test]
    fn memcap_evicts_oldest_and_accounts_every_byte() {
        let cap = MemCap::new("defrag.memuse", 4 * TRACKER_OVERHEAD + 4000);
        let mut r = Defrag::with_lease(DefragConfig::default(), cap.lease());
        let big = vec![7u8; 1400];
        // Each first fragment holds ~1.4 kB: the budget fits two of them.
        for id in 0..3u32 {
            assert_eq!(
                r.insert(secs(1), &frag(false, id, 0, true, &big), 1434),
                None
            );
        }
        let s = r.stats().clone();
        assert!(s.memcap_reached >= 1, "{s:?}");
        assert_eq!(s.hard_reuse, 1);
        assert_eq!(r.len(), 2);
        assert!(r.memuse() <= 4 * TRACKER_OVERHEAD + 4000);
        // The newest datagram (id 2) is still there and completes.
        let out = r.insert(secs(1), &frag(false, 2, 1400, false, &big[..8]), 42);
        assert_eq!(out.map(|o| o.data.len()), Some(1408));
        // A datagram larger than the whole budget is dropped, not held.
        let huge = vec![1u8; 8000];
        assert_eq!(r.insert(secs(1), &frag(false, 9, 0, true, &huge), 60), None);
        assert_eq!(r.stats().ipv4_reassembled, 1);
        // Everything given back once the table is empty.
        r.expire(secs(1000));
        assert!(r.is_empty());
        assert_eq!(r.memuse(), 0);
        drop(r);
        assert_eq!(cap.used(), 0);
    }

    #[test]
    fn memuse_follows_held_bytes_and_returns_to_zero() {
        let d: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let mut r = Defrag::new(DefragConfig::default());
        assert_eq!(
            r.insert(secs(1), &frag(true, 5, 0, true, &d[..1000]), 60),
            None
        );
        let one = r.memuse();
        assert!(one >= 1000 + TRACKER_OVERHEAD, "{one}");
        assert_eq!(
            r.insert(secs(1), &frag(true, 5, 1000, true, &d[1000..2000]), 60),
            None
        );
        assert!(r.memuse() >= 2000 + TRACKER_OVERHEAD);
        let out = r.insert(secs(1), &frag(true, 5, 2000, false, &d[2000..]), 60);
        assert_eq!(out.map(|o| o.data), Some(d));
        assert_eq!(r.memuse(), 0);
    }

    /// The real fragments of a committed capture (pcaps/README-link.md),
    /// decoded, with their times and frame lengths.
    fn real_fragments(name: &str) -> Vec<(Timestamp, Vec<u8>, Fragment<'static>, u32)> {
        use crate::capture::Reader;
        use crate::decode::{DecodeConfig, Decoded, Decoder};
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("pcaps")
            .join(name);
        let mut reader = Reader::open(&path).unwrap();
        let mut d = Decoder::new(DecodeConfig::default());
        let mut out = Vec::new();
        while let Some(chunk) = reader.next_chunk(64).unwrap() {
            for p in &chunk.pkts {
                // Leaked so the fragments can borrow their bytes for the
                // whole test (a few kB).
                let data: &'static [u8] = Vec::leak(chunk.data(p).to_vec());
                if let Decoded::Fragment(f) = d.decode(p.link, data, p.origlen) {
                    out.push((p.ts, data.to_vec(), f, p.origlen));
                }
            }
        }
        out
    }

    /// Hand-built flood: `n` first fragments (offset 0, more to come) of
    /// datagrams that never complete, each from its own source address,
    /// 1480 bytes (IPv4) or 1448 bytes (IPv6) of payload like a real
    /// first fragment on a 1500-byte link.
    fn flood(v6: bool, n: u32) -> Vec<(Fragment<'static>, u32)> {
        static PAYLOAD: [u8; 1480] = [0x5a; 1480];
        (0..n)
            .map(|i| {
                let src: IpAddr = if v6 {
                    std::net::Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, (i >> 16) as u16, i as u16)
                        .into()
                } else {
                    std::net::Ipv4Addr::new(10, 99, (i >> 8) as u8, i as u8).into()
                };
                let mut f = frag(
                    v6,
                    i,
                    0,
                    true,
                    if v6 { &PAYLOAD[..1448] } else { &PAYLOAD[..] },
                );
                f.ip.src = src;
                (f, if v6 { 1510 } else { 1514 })
            })
            .collect()
    }

    #[test]
    fn flood_of_never_completed_fragments_leaves_room_for_real_datagrams() {
        // frag_ipv4_udp.pcap: 3 UDP datagrams and an ICMP echo and reply
        // (19 fragments); tcp_ipv6.pcap: 2 UDP datagrams and an ICMPv6 echo
        // and reply (11 fragments). tshark reassembles 5 and 4 of them.
        for (v6, name, want) in [(false, "frag_ipv4_udp.pcap", 5), (true, "tcp_ipv6.pcap", 4)] {
            let real = real_fragments(name);
            let cfg = DefragConfig::default();
            let limit = cfg.memcap.0;
            let mut r = Defrag::new(cfg);
            let t0 = real[0].0;
            for (f, len) in flood(v6, 20_000) {
                r.insert(t0, &f, len);
                assert!(r.memuse() <= limit, "{name}: {} held", r.memuse());
                assert!(r.len() <= 4096);
            }
            let mut done = 0;
            for (ts, _, f, len) in &real {
                if r.insert(*ts, f, *len).is_some() {
                    done += 1;
                }
            }
            assert_eq!(done, want, "{name}");
            let s = r.stats();
            // Every flood fragment past the table's size, and the first
            // real datagram, found it full and evicted the oldest.
            assert_eq!(s.max_trackers_reached, 20_000 - 4096 + 1, "{name}");
            assert_eq!(s.hard_reuse, s.max_trackers_reached, "{name}");
            // Held memory: the table's worth of first fragments, not the
            // flood's 29 MB.
            assert!(
                r.memuse() < 4096 * (1480 + 2 * TRACKER_OVERHEAD + 64),
                "{name}"
            );
            drop(r);
        }
    }

    #[test]
    fn flood_under_a_small_memcap_is_bounded_by_bytes() {
        let real = real_fragments("frag_ipv4_udp.pcap");
        let cap = MemCap::new("defrag.memuse", 1 << 20);
        let mut r = Defrag::with_lease(DefragConfig::default(), cap.lease());
        let t0 = real[0].0;
        for (f, len) in flood(false, 20_000) {
            r.insert(t0, &f, len);
            assert!(cap.used() <= 1 << 20);
        }
        // About 1 MiB / 1.6 kB per tracker: far fewer than max_trackers.
        assert!(r.len() < 1000, "{}", r.len());
        assert!(r.stats().memcap_reached > 0);
        let done = real
            .iter()
            .filter(|(ts, _, f, len)| r.insert(*ts, f, *len).is_some())
            .count();
        assert_eq!(done, 5);
        drop(r);
        assert_eq!(cap.used(), 0);
    }

    #[test]
    fn conflicting_ends_counted_first_end_kept() {
        let d = datagram();
        let mut r = Defrag::new(DefragConfig::default());
        r.insert(secs(1), &frag(false, 1, 16, false, &d[16..]), 60);
        // A second "last" fragment claiming a longer datagram is ignored.
        r.insert(secs(1), &frag(false, 1, 24, false, &d[..8]), 60);
        // So is data beyond the known end.
        r.insert(secs(1), &frag(false, 1, 24, true, &d[..8]), 60);
        r.insert(secs(1), &frag(false, 1, 8, true, &d[8..16]), 60);
        let out = r
            .insert(secs(1), &frag(false, 1, 0, true, &d[..8]), 60)
            .unwrap();
        assert_eq!(out.data, d);
        assert_eq!(r.stats().ipv4_overlap, 2);
    }

    #[test]
    fn different_vlans_are_different_datagrams() {
        let d = datagram();
        let mut r = Defrag::new(DefragConfig::default());
        let mut a = frag(false, 1, 0, true, &d[..16]);
        a.vlan = Vlans {
            ids: [10, 0, 0],
            len: 1,
        };
        r.insert(secs(1), &a, 60);
        assert_eq!(
            r.insert(secs(1), &frag(false, 1, 16, false, &d[16..]), 60),
            None
        );
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn expiry_queue_stays_bounded_when_datagrams_complete() {
        let d = datagram();
        let mut r = Defrag::new(DefragConfig {
            max_trackers: 4,
            ..DefragConfig::default()
        });
        for id in 0..10_000u32 {
            r.insert(secs(1), &frag(false, id, 0, true, &d[..8]), 60);
            assert!(r
                .insert(secs(1), &frag(false, id, 8, false, &d[8..]), 60)
                .is_some());
        }
        assert!(
            r.order.len() <= 2 * 4 + 64 + 1,
            "queue grew to {}",
            r.order.len()
        );
        assert!(r.is_empty());
    }

    #[test]
    fn counter_paths_exist_in_eve_schema_or_are_declared() {
        let Some(stats) = crate::decode::stats::tests::stats_schema() else {
            return;
        };
        let s = DefragStats {
            ipv4_fragments: 1,
            ipv4_reassembled: 1,
            ipv6_fragments: 1,
            ipv6_reassembled: 1,
            timeouts: 1,
            max_trackers_reached: 1,
            max_frags_reached: 1,
            hard_reuse: 1,
            memcap_reached: 1,
            ipv4_too_large: 1,
            ipv6_too_large: 1,
            ipv4_overlap: 1,
            ipv6_overlap: 1,
        };
        let c = s.counters();
        assert_eq!(c.len(), 13);
        for (p, _) in c {
            assert!(
                crate::decode::stats::tests::schema_has(&stats, p)
                    || crate::decode::stats::tests::declared_addition(p),
                "{p} neither in the schema nor declared"
            );
        }
    }
}
