//! `threshold` and `detection_filter` (Suricata userguide "Thresholding
//! Keywords"): how often a matching rule may alert, decided so that the
//! outcome depends only on the matches' packet times, never on which worker
//! saw a match first.
//!
//! Semantics. Time is cut into fixed windows of `seconds` counted from the
//! Unix epoch (`[k·S, (k+1)·S)`; without `seconds`, one window for ever).
//! The matches of one rule, tracked key (source, destination, address pair,
//! rule or flow) and window are ranked in *match order* — packet time,
//! then flow id, then the order within the flow — and the match of rank `r`
//! (from 0) alerts when:
//!
//! - `type limit, count C`: `r < C` (the first C of the window);
//! - `type threshold`: `(r + 1) % C == 0` (every C-th);
//! - `type both`: `r + 1 == C` (once per window, at the C-th);
//! - `detection_filter`: `r >= C` (every match after the C-th).
//!
//! Why a decision may wait. Matches tracked by address or rule come from
//! several workers in any interleaving; a decision taken when a match
//! arrives would depend on that interleaving (for `limit 1`, whichever
//! match arrives first alerts). So the shared [`Table`] ranks a match only
//! once no worker can still produce an earlier one: each worker publishes a
//! *floor* (no match it produces later is earlier than that), and matches
//! before the least floor — the *settled* time — are decided in match order
//! and the decisions delivered to the worker that holds each alert
//! ([`Table::take_decisions`]). A match whose rank is already certain when
//! it arrives (a `limit` whose first C are known, a `detection_filter` past
//! its C-th) is decided at once. `track by_flow` is decided at once in the
//! flow ([`FlowEntry`]): a flow's matches are always seen in the same order.
//!
//! Invariants: per window entry, `settled + undecided.len() <= C` for
//! `limit`, `both` and `detection_filter` (a match ranked C or later is
//! decided at once), so their state is O(C); entries plus undecided matches
//! never exceed `max` (beyond it a match is decided on what is known and
//! counted). A match arriving at or after the settled time is *on time*;
//! one before it (time running backwards in the capture, a flow evicted
//! under memory pressure) is *late*: decided on what is known, counted.
//! Lock order: a shard, then a worker's inbox; never two shards.
//!
//! Post-match actions (`flowbits`) happen whatever the threshold decides.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Limit,
    Threshold,
    Both,
    DetectionFilter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Track {
    Src,
    Dst,
    Both,
    Rule,
    Flow,
}

/// A rule's threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Threshold {
    pub kind: Kind,
    pub track: Track,
    pub count: u32,
    /// Window length; `None`: one window for ever.
    pub seconds: Option<u32>,
}

impl Threshold {
    /// Parses the value of `threshold` (`detection == false`) or
    /// `detection_filter`.
    ///
    /// # Errors
    /// A missing or unknown part.
    pub(crate) fn parse(v: &str, detection: bool) -> Result<Threshold, String> {
        let mut kind = detection.then_some(Kind::DetectionFilter);
        let (mut track, mut count, mut seconds) = (None, None, None);
        for part in super::text::list(v) {
            let (k, val) = part
                .split_once(char::is_whitespace)
                .map(|(k, v)| (k, v.trim()))
                .ok_or_else(|| format!("{part:?} is not 'name value'"))?;
            match k {
                "type" if !detection => {
                    kind = Some(match val {
                        "limit" => Kind::Limit,
                        "threshold" => Kind::Threshold,
                        "both" => Kind::Both,
                        _ => return Err(format!("unknown threshold type {val:?}")),
                    })
                }
                "track" => {
                    track = Some(match val {
                        "by_src" => Track::Src,
                        "by_dst" => Track::Dst,
                        "by_both" => Track::Both,
                        "by_rule" => Track::Rule,
                        "by_flow" => Track::Flow,
                        _ => return Err(format!("unknown track {val:?}")),
                    })
                }
                "count" => {
                    count = Some(
                        val.parse::<u32>()
                            .map_err(|_| format!("bad count {val:?}"))?,
                    )
                }
                "seconds" => {
                    let s = val
                        .parse::<u32>()
                        .map_err(|_| format!("bad seconds {val:?}"))?;
                    // Windows are whole seconds anchored at the epoch.
                    if s == 0 {
                        return Err("seconds must be at least 1".to_string());
                    }
                    seconds = Some(s);
                }
                _ => return Err(format!("unknown threshold part {k:?}")),
            }
        }
        let kind = kind.ok_or("threshold needs 'type'")?;
        let track = track.ok_or("threshold needs 'track'")?;
        let count = count.ok_or("threshold needs 'count'")?;
        if count == 0 && kind != Kind::DetectionFilter {
            return Err("threshold count must be at least 1".to_string());
        }
        Ok(Threshold {
            kind,
            track,
            count,
            seconds,
        })
    }

    /// The window a match at `ts` falls in.
    pub(crate) fn window(&self, ts: Timestamp) -> u64 {
        self.seconds.map_or(0, |s| ts.secs() / u64::from(s.max(1)))
    }

    /// First second after window `w` (`u64::MAX` for the endless one).
    fn window_end(&self, w: u64) -> u64 {
        self.seconds.map_or(u64::MAX, |s| {
            w.saturating_add(1).saturating_mul(u64::from(s))
        })
    }

    /// Whether the match of rank `rank` (from 0) in its window alerts.
    pub(crate) fn alerts(&self, rank: u64) -> bool {
        let c = u64::from(self.count);
        match self.kind {
            Kind::Limit => rank < c,
            // `count` is at least 1 for these (checked by `parse`).
            Kind::Threshold => (rank + 1) % c.max(1) == 0,
            Kind::Both => rank + 1 == c,
            Kind::DetectionFilter => rank >= c,
        }
    }

    /// For the kinds whose decision is fixed for every rank from `count`
    /// on (limit, both, detection_filter): that rank.
    fn certain_from(&self) -> Option<u64> {
        (self.kind != Kind::Threshold).then_some(u64::from(self.count))
    }
}

/// A `track by_flow` count, kept in the flow (its matches always arrive in
/// the same order, so the count is decided at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlowEntry {
    window: u64,
    seen: u64,
}

impl FlowEntry {
    /// An entry with no match yet.
    pub(crate) fn new() -> FlowEntry {
        FlowEntry {
            window: u64::MAX,
            seen: 0,
        }
    }

    /// A `limit` whose count is reached in the window of `ts`: any further
    /// match at `ts` is suppressed, so evaluating the rule again can be
    /// skipped (when it has no other effect, such as flowbits).
    pub(crate) fn saturated(&self, t: &Threshold, ts: Timestamp) -> bool {
        t.kind == Kind::Limit && self.window == t.window(ts) && self.seen >= u64::from(t.count)
    }

    /// Records a match at `ts`; returns whether it alerts.
    pub(crate) fn hit(&mut self, t: &Threshold, ts: Timestamp) -> bool {
        let w = t.window(ts);
        if w != self.window {
            *self = FlowEntry { window: w, seen: 0 };
        }
        let rank = self.seen;
        self.seen = self.seen.saturating_add(1);
        t.alerts(rank)
    }
}

/// What a non-flow threshold is counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Rule(u32),
    Addr(u32, IpAddr),
    Pair(u32, IpAddr, IpAddr),
}

impl Key {
    /// The key of rule `rule` for a match from `src` to `dst`; `None` for
    /// `by_flow` (kept in the flow).
    pub(crate) fn new(rule: u32, t: &Threshold, src: IpAddr, dst: IpAddr) -> Option<Key> {
        Some(match t.track {
            Track::Rule => Key::Rule(rule),
            Track::Src => Key::Addr(rule, src),
            Track::Dst => Key::Addr(rule, dst),
            // Both directions between two addresses count as one pair.
            Track::Both => Key::Pair(rule, src.min(dst), src.max(dst)),
            Track::Flow => return None,
        })
    }
}

/// Identifies an undecided match to the worker holding its alert.
pub type Ticket = u64;

/// A match's place in match order: packet time (ns), flow id, sequence
/// within the flow, then the ticket (only ever needed between matches of
/// one flow tuple, which one worker sees in a fixed order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct MatchKey {
    time: u64,
    flow: u64,
    seq: u32,
    ticket: Ticket,
}

/// Outcome of [`Table::submit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Decided now, for good.
    Decided(bool),
    /// Decided later; the decision comes back with this ticket.
    Pending(Ticket),
    /// The table was full: decided on what was known (as a first match
    /// when the key was new).
    Full(bool),
    /// The match was earlier than the settled time: decided on what was
    /// known.
    Late(bool),
    /// The match came late in the capture (module `deferred`): ranked
    /// where the capture put it, decided later as [`Verdict::Pending`].
    LatePending(Ticket),
}

/// Shards of the table, so workers rarely wait for each other.
const SHARDS: usize = 64;
/// Workers a shared table can serve (the command line allows 1024).
pub(crate) const MAX_SLOTS: usize = 1024;

type EntryKey = (Key, u64);

#[derive(Debug)]
struct EntryState {
    t: Threshold,
    /// Matches of the window already ranked (saturating).
    settled: u64,
    /// Undecided matches, in match order.
    undecided: VecDeque<MatchKey>,
}

#[derive(Debug, Default)]
struct Shard {
    entries: ahash::AHashMap<EntryKey, EntryState>,
    /// Every undecided match of the shard in match order, with its entry
    /// and the worker slot holding its alert.
    queue: BTreeMap<MatchKey, (EntryKey, usize)>,
}

/// One worker's place in a shared table.
#[derive(Debug)]
struct Slot {
    /// No match this worker produces from now on is earlier (ns);
    /// `u64::MAX` once it left.
    floor: AtomicU64,
    inbox: Mutex<Vec<(Ticket, bool)>>,
    mail: AtomicBool,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            floor: AtomicU64::new(0),
            inbox: Mutex::new(Vec::new()),
            mail: AtomicBool::new(false),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A worker that panicked mid-update cannot leave a count in a state
    // worse than slightly wrong; carry on rather than spread the panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Thresholds tracked by source, destination, address pair or rule, shared
/// by every worker of a run (or private to one caller: [`Table::private`]).
#[derive(Debug)]
pub(crate) struct Table {
    shards: Box<[Mutex<Shard>]>,
    /// Earliest undecided match time per shard (`u64::MAX`: none), so a
    /// settling worker skips idle shards without locking them.
    earliest: Box<[AtomicU64]>,
    slots: Box<[Slot]>,
    /// Workers announced at creation; their floors count from the start.
    declared: usize,
    /// No more workers will join ([`Table::close`]): only the claimed slots
    /// count.
    closed: AtomicBool,
    claimed: AtomicUsize,
    departed: AtomicUsize,
    /// Matches before this time (ns) are decided.
    settled_to: AtomicU64,
    /// Latest match time seen (ns), for retiring finished windows.
    latest: AtomicU64,
    /// Entries plus undecided matches.
    used: AtomicUsize,
    max: usize,
    /// Second of the last sweep of finished windows (a full table is swept
    /// at most once per second of packet time).
    last_sweep: AtomicU64,
    tickets: AtomicU64,
    hasher: ahash::RandomState,
}

impl Table {
    /// A table for `workers` workers of one run, each of which claims a
    /// slot ([`Table::claim`]) before its first packet.
    pub(crate) fn shared(max: usize, workers: usize) -> Table {
        let mut t = Table::private(max);
        t.slots = (0..MAX_SLOTS).map(|_| Slot::new()).collect();
        t.declared = workers.clamp(1, MAX_SLOTS);
        t.settled_to = AtomicU64::new(0);
        t
    }

    /// A table for one caller that submits matches in match order (tests,
    /// tools): every match is decided when it arrives.
    pub(crate) fn private(max: usize) -> Table {
        Table {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            earliest: (0..SHARDS).map(|_| AtomicU64::new(u64::MAX)).collect(),
            slots: Box::new([]),
            declared: 0,
            closed: AtomicBool::new(false),
            claimed: AtomicUsize::new(0),
            departed: AtomicUsize::new(0),
            settled_to: AtomicU64::new(u64::MAX),
            latest: AtomicU64::new(0),
            used: AtomicUsize::new(0),
            max,
            last_sweep: AtomicU64::new(u64::MAX),
            tickets: AtomicU64::new(0),
            hasher: ahash::RandomState::new(),
        }
    }

    /// A worker's slot; `None` when all are taken. A slot claimed beyond
    /// the declared workers starts at the settled time (it cannot hold back
    /// what was already decided).
    pub(crate) fn claim(&self) -> Option<usize> {
        let i = self.claimed.fetch_add(1, Ordering::AcqRel);
        let s = self.slots.get(i)?;
        if i >= self.declared {
            s.floor
                .store(self.settled_to.load(Ordering::Acquire), Ordering::Release);
        }
        Some(i)
    }

    /// No worker that has not claimed a slot yet will (a newer ruleset
    /// replaced this table before every worker switched to it): the
    /// unclaimed slots stop holding decisions back.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    fn active_slots(&self) -> &[Slot] {
        let claimed = self.claimed.load(Ordering::Acquire);
        let n = if self.closed.load(Ordering::Acquire) {
            claimed
        } else {
            claimed.max(self.declared)
        }
        .min(self.slots.len());
        self.slots.get(..n).unwrap_or(&[])
    }

    /// Worker `slot` will produce no match earlier than `floor` (ns):
    /// matches before every worker's floor are decided.
    pub(crate) fn advance(&self, slot: usize, floor: u64) {
        if let Some(s) = self.slots.get(slot) {
            s.floor.fetch_max(floor, Ordering::AcqRel);
            self.settle();
        }
    }

    /// Worker `slot` is done: its floor no longer holds anything back.
    /// Returns true for the last worker to leave, after every match has
    /// been decided.
    pub(crate) fn depart(&self, slot: usize) -> bool {
        let Some(s) = self.slots.get(slot) else {
            return false;
        };
        s.floor.store(u64::MAX, Ordering::Release);
        self.settle();
        let gone = self.departed.fetch_add(1, Ordering::AcqRel) + 1;
        let last = gone >= self.active_slots().len();
        if last {
            // Another leaving worker may still be settling: make sure
            // every shard is done before the caller collects decisions.
            self.settled_to.store(u64::MAX, Ordering::Release);
            self.settle_shards(u64::MAX);
        }
        last
    }

    fn settle(&self) {
        let w = self
            .active_slots()
            .iter()
            .map(|s| s.floor.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX);
        if self.settled_to.fetch_max(w, Ordering::AcqRel) >= w {
            return;
        }
        self.settle_shards(w);
    }

    fn settle_shards(&self, w: u64) {
        for (m, e) in self.shards.iter().zip(self.earliest.iter()) {
            if e.load(Ordering::Acquire) >= w {
                continue;
            }
            let mut sh = lock(m);
            while let Some((&mk, &(ek, slot))) = sh.queue.first_key_value() {
                if mk.time >= w {
                    break;
                }
                sh.queue.remove(&mk);
                self.used.fetch_sub(1, Ordering::AcqRel);
                let Some(en) = sh.entries.get_mut(&ek) else {
                    continue;
                };
                // Every earlier match of the window is ranked already, so
                // this one is the first undecided.
                if en.undecided.front() == Some(&mk) {
                    en.undecided.pop_front();
                } else if let Some(pos) = en.undecided.iter().position(|k| *k == mk) {
                    en.undecided.remove(pos);
                }
                let rank = en.settled;
                en.settled = en.settled.saturating_add(1);
                self.deliver(slot, mk.ticket, en.t.alerts(rank));
            }
            let next = sh.queue.first_key_value().map_or(u64::MAX, |(k, _)| k.time);
            e.store(next, Ordering::Release);
        }
    }

    fn deliver(&self, slot: usize, ticket: Ticket, alert: bool) {
        if let Some(s) = self.slots.get(slot) {
            lock(&s.inbox).push((ticket, alert));
            s.mail.store(true, Ordering::Release);
        }
    }

    /// Decisions delivered to worker `slot` since the last call.
    /// Whether decisions wait for the worker in `slot` (a plain load: what
    /// [`Table::take_decisions`] looks at first).
    #[inline]
    pub(crate) fn has_mail(&self, slot: usize) -> bool {
        self.slots
            .get(slot)
            .is_some_and(|s| s.mail.load(Ordering::Acquire))
    }

    pub(crate) fn take_decisions(&self, slot: usize) -> Vec<(Ticket, bool)> {
        match self.slots.get(slot) {
            // A plain load first: this runs for every packet, mail is rare.
            Some(s) if s.mail.load(Ordering::Acquire) && s.mail.swap(false, Ordering::AcqRel) => {
                std::mem::take(&mut *lock(&s.inbox))
            }
            _ => Vec::new(),
        }
    }

    /// Workers' slots, for collecting what departed workers left.
    pub(crate) fn slot_count(&self) -> usize {
        self.active_slots().len()
    }

    /// Records a match of rule threshold `t` under `key` at `time` (ns) in
    /// flow `flow` (its `seq`-th tracked match), for the worker in `slot`
    /// (`None`: a private table's caller).
    pub(crate) fn submit(
        &self,
        slot: Option<usize>,
        key: Key,
        t: &Threshold,
        time: Timestamp,
        flow: u64,
        seq: u32,
    ) -> Verdict {
        self.submit_ranked(slot, key, t, time, time.0, flow, seq)
    }

    /// [`Table::submit`] of a match counted in the window of `time` but
    /// ranked as if at `rank_time` (ns): a match that came late in the
    /// capture is ranked where the capture put it (module `deferred`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn submit_ranked(
        &self,
        slot: Option<usize>,
        key: Key,
        t: &Threshold,
        time: Timestamp,
        rank_time: u64,
        flow: u64,
        seq: u32,
    ) -> Verdict {
        let ek: EntryKey = (key, t.window(time));
        let si = (self.hasher.hash_one(ek) as usize) % SHARDS;
        let (Some(m), Some(earliest)) = (self.shards.get(si), self.earliest.get(si)) else {
            return Verdict::Full(t.alerts(0));
        };
        self.latest.fetch_max(time.0, Ordering::AcqRel);
        if self.used.load(Ordering::Acquire) >= self.max {
            self.sweep(time);
        }
        let mut sh = lock(m);
        if !sh.entries.contains_key(&ek) {
            if self.used.load(Ordering::Acquire) >= self.max {
                return Verdict::Full(t.alerts(0));
            }
            self.used.fetch_add(1, Ordering::AcqRel);
            sh.entries.insert(
                ek,
                EntryState {
                    t: *t,
                    settled: 0,
                    undecided: VecDeque::new(),
                },
            );
        }
        let settled_to = self.settled_to.load(Ordering::Acquire);
        let ticket = self.tickets.fetch_add(1, Ordering::AcqRel);
        let mk = MatchKey {
            time: rank_time,
            flow,
            seq,
            ticket,
        };
        let full = self.used.load(Ordering::Acquire) >= self.max;
        let Some(en) = sh.entries.get_mut(&ek) else {
            return Verdict::Full(t.alerts(0));
        };
        let pos = en.undecided.partition_point(|k| *k < mk);
        let known = en.settled.saturating_add(pos as u64);
        let late = rank_time < settled_to || slot.is_none();
        if late {
            en.settled = en.settled.saturating_add(1);
            let alert = t.alerts(known);
            let evicted = Table::enforce_cap(en);
            for k in evicted {
                self.forget(&mut sh, k, t);
            }
            return if slot.is_some() {
                Verdict::Late(alert)
            } else {
                Verdict::Decided(alert)
            };
        }
        if t.certain_from().is_some_and(|c| known >= c) {
            return Verdict::Decided(t.alerts(known));
        }
        if full {
            return Verdict::Full(t.alerts(known));
        }
        let slot = slot.unwrap_or(0);
        en.undecided.insert(pos, mk);
        let evicted = Table::enforce_cap(en);
        self.used.fetch_add(1, Ordering::AcqRel);
        sh.queue.insert(mk, (ek, slot));
        for k in evicted {
            self.forget(&mut sh, k, t);
        }
        let next = sh.queue.first_key_value().map_or(u64::MAX, |(k, _)| k.time);
        earliest.store(next, Ordering::Release);
        Verdict::Pending(ticket)
    }

    /// Restores `settled + undecided <= C` for the kinds that have a C:
    /// the last undecided matches are ranked C or later, so decided now.
    /// Returns them.
    fn enforce_cap(en: &mut EntryState) -> Vec<MatchKey> {
        let mut out = Vec::new();
        if let Some(c) = en.t.certain_from() {
            while en.settled.saturating_add(en.undecided.len() as u64) > c {
                match en.undecided.pop_back() {
                    Some(k) => out.push(k),
                    None => break,
                }
            }
        }
        out
    }

    /// An undecided match whose rank became certain: out of the queue, its
    /// decision to its worker.
    fn forget(&self, sh: &mut Shard, k: MatchKey, t: &Threshold) {
        if let Some((_, slot)) = sh.queue.remove(&k) {
            self.used.fetch_sub(1, Ordering::AcqRel);
            // Ranked C or later.
            self.deliver(slot, k.ticket, t.alerts(u64::from(t.count)));
        }
    }

    /// Drops the entries of windows that are over and have nothing
    /// undecided, in every shard (one at a time), at most once per second
    /// of packet time.
    fn sweep(&self, now: Timestamp) {
        if self.last_sweep.swap(now.secs(), Ordering::AcqRel) == now.secs() {
            return;
        }
        let horizon = self
            .settled_to
            .load(Ordering::Acquire)
            .min(self.latest.load(Ordering::Acquire))
            / 1_000_000_000;
        for m in self.shards.iter() {
            let mut sh = lock(m);
            let before = sh.entries.len();
            sh.entries
                .retain(|(_, w), en| !en.undecided.is_empty() || en.t.window_end(*w) > horizon);
            self.used
                .fetch_sub(before - sh.entries.len(), Ordering::AcqRel);
        }
    }

    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Timestamp {
        Timestamp::from_parts(s, 0)
    }

    fn th(spec: &str, detection: bool) -> Threshold {
        Threshold::parse(spec, detection).unwrap()
    }

    /// Alerts for matches at the given seconds, one flow, in this order.
    fn run(spec: &str, detection: bool, times: &[u64]) -> Vec<bool> {
        let t = th(spec, detection);
        let mut e = FlowEntry::new();
        times.iter().map(|&s| e.hit(&t, at(s))).collect()
    }

    #[test]
    fn limit_alerts_the_first_count_per_window() {
        let r = run(
            "type limit, track by_src, count 2, seconds 10",
            false,
            &[0, 1, 2, 9, 10, 11, 12],
        );
        assert_eq!(r, [true, true, false, false, true, true, false]);
    }

    #[test]
    fn windows_are_anchored_at_the_epoch_not_at_the_first_match() {
        // Suricata would open a window at 9 s and keep it until 19 s; here
        // 9 s is in [0, 10) and 11 s in [10, 20): both alert.
        let r = run(
            "type limit, track by_src, count 1, seconds 10",
            false,
            &[9, 11, 19, 20],
        );
        assert_eq!(r, [true, true, false, true]);
    }

    #[test]
    fn threshold_alerts_every_count_th_match() {
        let r = run(
            "type threshold, track by_dst, count 3, seconds 60",
            false,
            &[0, 1, 2, 3, 4, 5, 6],
        );
        assert_eq!(r, [false, false, true, false, false, true, false]);
        // The window ends before the third match: counting starts again.
        let r = run(
            "type threshold, track by_dst, count 3, seconds 5",
            false,
            &[0, 1, 6, 7, 8],
        );
        assert_eq!(r, [false, false, false, false, true]);
    }

    #[test]
    fn both_alerts_once_per_window_at_count() {
        let r = run(
            "type both, track by_rule, count 2, seconds 10",
            false,
            &[0, 1, 2, 3, 10, 11, 12],
        );
        assert_eq!(r, [false, true, false, false, false, true, false]);
    }

    #[test]
    fn detection_filter_alerts_every_match_after_count() {
        let r = run(
            "track by_src, count 2, seconds 10",
            true,
            &[0, 1, 2, 3, 10, 11, 12],
        );
        assert_eq!(r, [false, false, true, true, false, false, true]);
    }

    #[test]
    fn without_seconds_the_window_never_ends() {
        let r = run(
            "type limit, track by_flow, count 1",
            false,
            &[0, 1000, 100000],
        );
        assert_eq!(r, [true, false, false]);
    }

    #[test]
    fn bad_specs_are_errors() {
        for bad in [
            "type limit, track by_src",
            "type nope, track by_src, count 1",
            "type limit, track by_nope, count 1",
            "track by_src, count 1",
            "type limit, track by_src, count x",
            "type limit, track by_src, count 0",
            "type limit, track by_src, count 1, seconds 0",
            "type limit, track by_src, count 1, colour red",
        ] {
            assert!(Threshold::parse(bad, false).is_err(), "{bad}");
        }
        assert!(Threshold::parse("type limit, track by_src, count 1", true).is_err());
    }

    #[test]
    fn by_both_keys_ignore_direction() {
        let t = th("type limit, track by_both, count 1", false);
        let (a, b) = ("1.1.1.1".parse().unwrap(), "2.2.2.2".parse().unwrap());
        assert_eq!(Key::new(1, &t, a, b), Key::new(1, &t, b, a));
        let s = th("type limit, track by_src, count 1", false);
        assert_ne!(Key::new(1, &s, a, b), Key::new(1, &s, b, a));
    }

    fn ip(i: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, i])
    }

    /// Each worker's matches: (worker, second, flow id).
    type Plan = [(usize, u64, u64)];

    /// Runs `plan` on a shared table with `workers` workers, the matches
    /// submitted in the plan's order (each worker's own in time order, as a
    /// worker sees them), every worker's floor following its own last
    /// match; returns the decisions sorted by (time, flow).
    fn shared_run(t: &Threshold, workers: usize, plan: &Plan) -> Vec<(u64, u64, bool)> {
        let tab = Table::shared(1000, workers);
        let slots: Vec<usize> = (0..workers).map(|_| tab.claim().unwrap()).collect();
        let mut tickets = Vec::new();
        let mut got = Vec::new();
        let key = Key::new(7, t, ip(1), ip(9)).unwrap();
        for &(w, s, flow) in plan {
            match tab.submit(Some(slots[w]), key, t, at(s), flow, 0) {
                Verdict::Pending(k) => tickets.push((k, s, flow)),
                Verdict::Decided(a) => got.push((s, flow, a)),
                v => panic!("{v:?}"),
            }
            tab.advance(slots[w], at(s).0);
        }
        let mut last = false;
        for &s in &slots {
            last = tab.depart(s);
        }
        assert!(last);
        for &s in &slots {
            for (k, a) in tab.take_decisions(s) {
                let (_, s, f) = tickets.iter().find(|x| x.0 == k).copied().unwrap();
                got.push((s, f, a));
            }
        }
        assert_eq!(got.len(), plan.len(), "every match decided once");
        got.sort_unstable();
        got
    }

    /// The same matches in time order, decided one by one.
    fn in_order(t: &Threshold, plan: &Plan) -> Vec<(u64, u64, bool)> {
        let mut v: Vec<(u64, u64)> = plan.iter().map(|&(_, s, f)| (s, f)).collect();
        v.sort_unstable();
        let tab = Table::private(1000);
        let key = Key::new(7, t, ip(1), ip(9)).unwrap();
        v.iter()
            .map(|&(s, f)| match tab.submit(None, key, t, at(s), f, 0) {
                Verdict::Decided(a) => (s, f, a),
                v => panic!("{v:?}"),
            })
            .collect()
    }

    #[test]
    fn every_kind_decides_by_match_time_whatever_the_arrival_order() {
        // Worker 1 runs ahead: its matches at 100..103 s arrive before
        // worker 0's at 50..53 s (hand-made plan; flow ids tell flows apart).
        let plan: &Plan = &[
            (1, 100, 11),
            (1, 101, 12),
            (1, 102, 13),
            (0, 50, 1),
            (1, 103, 14),
            (0, 51, 2),
            (0, 52, 3),
            (0, 53, 4),
        ];
        for (spec, df) in [
            ("type limit, track by_src, count 2, seconds 3600", false),
            ("type threshold, track by_src, count 3, seconds 3600", false),
            ("type both, track by_src, count 3, seconds 3600", false),
            ("track by_src, count 5, seconds 3600", true),
            ("type limit, track by_src, count 1, seconds 60", false),
        ] {
            let t = th(spec, df);
            let want = in_order(&t, plan);
            assert_eq!(shared_run(&t, 2, plan), want, "{spec}");
            // One worker sees the same matches in time order.
            let one: Vec<_> = want.iter().map(|&(s, f, _)| (0, s, f)).collect();
            assert_eq!(shared_run(&t, 1, &one), want, "{spec}, one worker");
        }
        // By hand, limit 2: the two earliest (50 s, 51 s) alert, not the two
        // that arrived first.
        let t = th("type limit, track by_src, count 2, seconds 3600", false);
        let alerted: Vec<u64> = shared_run(&t, 2, plan)
            .into_iter()
            .filter(|x| x.2)
            .map(|x| x.0)
            .collect();
        assert_eq!(alerted, [50, 51]);
    }

    #[test]
    fn a_certain_rank_is_decided_at_once_and_late_matches_are_told_apart() {
        let t = th("type limit, track by_dst, count 1, seconds 60", false);
        let tab = Table::shared(1000, 2);
        let (a, b) = (tab.claim().unwrap(), tab.claim().unwrap());
        let key = Key::new(1, &t, ip(1), ip(9)).unwrap();
        assert!(matches!(
            tab.submit(Some(a), key, &t, at(10), 1, 0),
            Verdict::Pending(_)
        ));
        // Worker b's match at 20 s has one earlier match known: certain.
        assert_eq!(
            tab.submit(Some(b), key, &t, at(20), 2, 0),
            Verdict::Decided(false)
        );
        tab.advance(a, at(30).0);
        tab.advance(b, at(30).0);
        assert_eq!(tab.take_decisions(a).len(), 1);
        // A match at 5 s after both floors passed 30 s is late.
        assert_eq!(
            tab.submit(Some(a), key, &t, at(5), 3, 0),
            Verdict::Late(false)
        );
    }

    #[test]
    fn a_later_earlier_match_overturns_an_undecided_one() {
        // limit 1: worker 0 holds a match at 40 s; worker 1's match at 30 s
        // takes rank 0, so the one at 40 s is decided (suppressed) at once.
        let t = th("type limit, track by_src, count 1, seconds 60", false);
        let tab = Table::shared(1000, 2);
        let (a, b) = (tab.claim().unwrap(), tab.claim().unwrap());
        let key = Key::new(1, &t, ip(1), ip(9)).unwrap();
        let Verdict::Pending(k40) = tab.submit(Some(a), key, &t, at(40), 1, 0) else {
            panic!()
        };
        let Verdict::Pending(k30) = tab.submit(Some(b), key, &t, at(30), 2, 0) else {
            panic!()
        };
        assert_eq!(tab.take_decisions(a), [(k40, false)]);
        assert!(!tab.depart(a));
        assert!(tab.depart(b));
        assert_eq!(tab.take_decisions(b), [(k30, true)]);
    }

    #[test]
    fn full_table_refuses_new_keys_until_windows_end() {
        let t = th("type limit, track by_src, count 1, seconds 10", false);
        let tab = Table::private(2);
        let k = |i| Key::new(1, &t, ip(i), ip(9)).unwrap();
        assert_eq!(
            tab.submit(None, k(1), &t, at(0), 1, 0),
            Verdict::Decided(true)
        );
        assert_eq!(
            tab.submit(None, k(2), &t, at(1), 2, 0),
            Verdict::Decided(true)
        );
        assert_eq!(tab.submit(None, k(3), &t, at(2), 3, 0), Verdict::Full(true));
        assert_eq!(
            tab.submit(None, k(1), &t, at(3), 1, 1),
            Verdict::Decided(false)
        );
        // At 10 s the first window is over: swept, the new key fits.
        assert_eq!(
            tab.submit(None, k(3), &t, at(10), 3, 1),
            Verdict::Decided(true)
        );
        assert_eq!(tab.used(), 1);
    }
}
