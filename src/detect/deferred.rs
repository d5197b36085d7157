//! Alerts whose threshold decision waits for other workers (module
//! `threshold`, "Why a decision may wait"), kept by the worker that raised
//! them, and the run-wide table they wait on.
//!
//! Contract with the worker (`pipeline::worker`):
//! - an [`Alert`](super::Alert) with `undecided: Some(ticket)` is written to
//!   a line of its own and given to [`DetectState::hold`] with the flow it
//!   belongs to, named by a key from [`DetectState::wait_key`] that the
//!   flow keeps (not its flow id: a connection reusing a closed one's
//!   tuple in the same nanosecond has the same id); the line comes back
//!   when it must be written at once (the detection memory budget is
//!   spent: the alert is written undecided and counted, never dropped);
//! - [`DetectState::sync`] with the worker's packet time after every packet
//!   or clock tick publishes the worker's floor and writes the lines decided
//!   as alerts; it calls back for each flow that got one, so the flow's
//!   `alerted` is set;
//! - a flow that ends while one of its alerts is undecided
//!   ([`DetectState::flow_waits`]) hands over its `flow` record in both
//!   forms ([`DetectState::park_flow`]); the right one is written when the
//!   last decision comes;
//! - [`DetectState::set_clock`] before each packet with the capture's
//!   packet time before it — over every worker's packets, when the run
//!   knows it, else this worker's — and with `None` while flows' ends are
//!   evaluated (their end time is never behind: a flow times out within
//!   the margin); a packet's match more than the margin before that time is
//!   *late* (time ran backwards in the capture): counted in
//!   `detect.threshold_late` and ranked as if it came at that time less
//!   the margin (where the capture put it; its window stays its own), so
//!   decided like any other, never ahead of an undecided earlier one.
//!   Judged against the
//!   capture's time rather than against how far the other workers got, what
//!   is late depends on the capture only, not on the worker count or on
//!   thread timing; and a match that is not late is never earlier than
//!   the table's settled time (at most this worker's floor), so the table
//!   decides it in match order;
//! - [`DetectState::leave`] when the worker stops or switches rulesets
//!   (after joining the new ruleset's table, so that a table replaced
//!   before every worker reached it is closed first): what is still
//!   undecided goes to the table, and the last worker to leave writes it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use super::threshold::{Key, Table, Threshold, Ticket, Verdict};
use super::{DetectStats, Engine};
use crate::memcap::{Lease, MemCap};

/// The flow an undecided alert belongs to: its wait key
/// ([`DetectState::wait_key`]), and its slot in the worker's flow table
/// (`u32::MAX` once the flow ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRef {
    /// Not the flow id: a flow that reuses a closed connection's tuple in
    /// the same nanosecond has its id, and each needs its own record.
    pub id: u64,
    pub slot: u32,
}

/// Bytes counted per held line besides its text (map entry, bookkeeping).
const LINE_OVERHEAD: u64 = 64;

#[derive(Debug, Default)]
struct FlowWait {
    undecided: u32,
    /// One of its undecided alerts was decided as an alert.
    alerted: bool,
    /// The flow ended: its `flow` record without and with `alerted`.
    record: Option<[Vec<u8>; 2]>,
}

/// Undecided alert lines and the flow records waiting for them.
#[derive(Debug, Default)]
pub(crate) struct Held {
    lines: ahash::AHashMap<Ticket, (Vec<u8>, FlowRef)>,
    flows: ahash::AHashMap<u64, FlowWait>,
}

impl Held {
    fn hold(&mut self, t: Ticket, flow: FlowRef, line: Vec<u8>) {
        self.lines.insert(t, (line, flow));
        self.flows.entry(flow.id).or_default().undecided += 1;
    }

    /// Applies one decision; returns the bytes freed.
    fn decide(
        &mut self,
        t: Ticket,
        alert: bool,
        out: &mut Vec<u8>,
        stats: &mut DetectStats,
        decided: &mut dyn FnMut(FlowRef, Ticket, bool),
    ) -> u64 {
        let Some((line, flow)) = self.lines.remove(&t) else {
            return 0;
        };
        if alert {
            out.extend_from_slice(&line);
            stats.alerts += 1;
        } else {
            stats.suppressed += 1;
        }
        decided(flow, t, alert);
        if let Some(w) = self.flows.get_mut(&flow.id) {
            w.alerted |= alert;
            w.undecided = w.undecided.saturating_sub(1);
            if w.undecided == 0 {
                if let Some(r) = w.record.take() {
                    let [without, with] = r;
                    out.extend_from_slice(if w.alerted { &with } else { &without });
                }
                self.flows.remove(&flow.id);
            }
        }
        line.len() as u64 + LINE_OVERHEAD
    }

    fn merge(&mut self, o: Held) {
        self.lines.extend(o.lines);
        for (id, w) in o.flows {
            let mine = self.flows.entry(id).or_default();
            mine.undecided += w.undecided;
            mine.alerted |= w.alerted;
            if mine.record.is_none() {
                mine.record = w.record;
            }
        }
    }

    fn bytes(&self) -> u64 {
        self.lines
            .values()
            .map(|(l, _)| l.len() as u64 + LINE_OVERHEAD)
            .sum()
    }
}

/// One ruleset's shared table, with what departed workers left undecided.
#[derive(Debug)]
pub(crate) struct RunTable {
    pub table: Table,
    orphans: Mutex<Held>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The thresholds of one run: the table the workers share, one per
/// ruleset (a reload starts a fresh one, as each worker switches), and the
/// memory budget of undecided alerts.
#[derive(Debug)]
pub struct ThresholdHub {
    workers: usize,
    max_entries: usize,
    memcap: Arc<MemCap>,
    current: Mutex<Option<(Weak<Engine>, Arc<RunTable>)>>,
}

impl ThresholdHub {
    /// A hub for a run of `workers` workers.
    pub fn new(cfg: &super::DetectConfig, workers: usize) -> Arc<ThresholdHub> {
        Arc::new(ThresholdHub {
            workers,
            max_entries: cfg.max_threshold_entries,
            memcap: MemCap::new("detect.threshold_memuse", cfg.threshold_memcap.0),
            current: Mutex::new(None),
        })
    }

    /// The table of `engine`'s ruleset: the current one, or a new one when
    /// the engine is new (the first worker to switch after a reload).
    fn table(&self, engine: &Arc<Engine>) -> Arc<RunTable> {
        let mut cur = lock(&self.current);
        if let Some((e, t)) = cur.as_ref() {
            if std::ptr::eq(e.as_ptr(), Arc::as_ptr(engine)) {
                return Arc::clone(t);
            }
        }
        let t = Arc::new(RunTable {
            table: Table::shared(self.max_entries, self.workers),
            orphans: Mutex::new(Held::default()),
        });
        if let Some((_, old)) = cur.replace((Arc::downgrade(engine), Arc::clone(&t))) {
            // Workers that have not switched to the old table never will.
            old.table.close();
        }
        t
    }
}

/// A worker's membership of a shared table.
#[derive(Debug)]
pub(crate) struct Joined {
    run: Arc<RunTable>,
    slot: usize,
    held: Held,
    lease: Lease,
    /// Nanoseconds between the worker's packet time and its floor.
    margin: u64,
    /// Second of the floor last published.
    published: u64,
    /// The capture's packet time before the packet being evaluated (ns);
    /// `None` while flows' ends are ([`DetectState::set_clock`]).
    clock: Option<u64>,
}

/// Where a worker's thresholds are counted.
#[derive(Debug)]
pub(crate) enum Tracker {
    /// Alone: every match decided when it arrives.
    Private(Table),
    Shared(Box<Joined>),
    /// Left its table (stopped).
    Gone,
}

impl Tracker {
    /// Joins `engine`'s table of `hub`; a private table when no slot is
    /// left.
    pub(crate) fn join(
        hub: &ThresholdHub,
        engine: &Arc<Engine>,
        margin_secs: u64,
        max: usize,
    ) -> Tracker {
        let run = hub.table(engine);
        match run.table.claim() {
            Some(slot) => Tracker::Shared(Box::new(Joined {
                run,
                slot,
                held: Held::default(),
                lease: hub.memcap.lease(),
                margin: margin_secs.saturating_mul(1_000_000_000),
                published: u64::MAX,
                clock: None,
            })),
            None => Tracker::Private(Table::private(max)),
        }
    }
}

impl Tracker {
    /// Records a match (module `threshold`, [`Table::submit`]).
    pub(crate) fn submit(
        &self,
        key: Key,
        t: &Threshold,
        ts: crate::time::Timestamp,
        flow: u64,
        seq: u32,
    ) -> Verdict {
        match self {
            Tracker::Private(tab) => tab.submit(None, key, t, ts, flow, seq),
            Tracker::Shared(j) if j.clock.is_some_and(|c| ts.0 < c.saturating_sub(j.margin)) => {
                // Late: ranked at the earliest time a match read here could
                // be on time, so where the capture put it, whatever the
                // worker count. Deciding it at once instead would rank it
                // against whichever earlier matches happen to be settled
                // (thread timing), and counted it before every undecided
                // one, so that a `limit 1` could suppress both the late
                // match and the undecided first one.
                let at = j.clock.map_or(ts.0, |c| c.saturating_sub(j.margin));
                match j
                    .run
                    .table
                    .submit_ranked(Some(j.slot), key, t, ts, at, flow, seq)
                {
                    Verdict::Pending(k) => Verdict::LatePending(k),
                    Verdict::Decided(a) => Verdict::Late(a),
                    v => v,
                }
            }
            Tracker::Shared(j) => j.run.table.submit(Some(j.slot), key, t, ts, flow, seq),
            // Nothing is evaluated after leaving; decide as a first match.
            Tracker::Gone => Verdict::Full(t.alerts(0)),
        }
    }
}

use super::DetectState;

impl DetectState {
    /// Keeps the line of an undecided alert until its decision; `Some` with
    /// the line when it must be written now (budget spent, counted in
    /// `detect.threshold_memcap`, or no shared table).
    pub fn hold(&mut self, ticket: Ticket, flow: FlowRef, line: Vec<u8>) -> Option<Vec<u8>> {
        let Tracker::Shared(j) = &mut self.tracker else {
            self.stats.alerts += 1;
            return Some(line);
        };
        if !j.lease.try_reserve(line.len() as u64 + LINE_OVERHEAD) {
            self.stats.threshold_memcap += 1;
            self.stats.alerts += 1;
            return Some(line);
        }
        j.held.hold(ticket, flow, line);
        None
    }

    /// Publishes the worker's floor for packet time `now` (at most once
    /// per second) and writes the alerts decided since the last call to
    /// `out`; `decided` is called with the flow, the ticket and the
    /// outcome (written as an alert or not) of each held alert decided.
    ///
    /// Runs for every packet: in the same second as the last call and
    /// without mail (nearly always) it returns after two tests, inline in
    /// the caller.
    #[inline]
    pub fn sync(
        &mut self,
        now: crate::time::Timestamp,
        out: &mut Vec<u8>,
        decided: &mut dyn FnMut(FlowRef, Ticket, bool),
    ) {
        let Tracker::Shared(j) = &self.tracker else {
            return;
        };
        let floor = now.0.saturating_sub(j.margin);
        if floor / 1_000_000_000 == j.published && !j.run.table.has_mail(j.slot) {
            return;
        }
        self.sync_now(now, out, decided);
    }

    /// [`DetectState::sync`] past its quick tests.
    fn sync_now(
        &mut self,
        now: crate::time::Timestamp,
        out: &mut Vec<u8>,
        decided: &mut dyn FnMut(FlowRef, Ticket, bool),
    ) {
        let Tracker::Shared(j) = &mut self.tracker else {
            return;
        };
        let floor = now.0.saturating_sub(j.margin);
        if floor / 1_000_000_000 != j.published {
            j.published = floor / 1_000_000_000;
            j.run.table.advance(j.slot, floor);
        }
        let mut decisions = j.run.table.take_decisions(j.slot);
        // Shards deliver in their own order; tickets are handed out in
        // match order, so lines come out in the order their alerts were
        // raised (the same on every run).
        decisions.sort_unstable_by_key(|&(t, _)| t);
        for (t, a) in decisions {
            let freed = j.held.decide(t, a, out, &mut self.stats, decided);
            j.lease.release(freed);
        }
    }

    /// Sets the capture's packet time before the packet whose matches come
    /// next (`None`: a flow's end comes next); returns the previous
    /// setting. See the module docs.
    pub fn set_clock(
        &mut self,
        clock: Option<crate::time::Timestamp>,
    ) -> Option<crate::time::Timestamp> {
        match &mut self.tracker {
            Tracker::Shared(j) => {
                std::mem::replace(&mut j.clock, clock.map(|c| c.0)).map(crate::time::Timestamp)
            }
            _ => None,
        }
    }

    /// A key for a flow's held alerts and parked record ([`FlowRef`]):
    /// never 0, and unique in the process, so that the keys of every
    /// worker and of every table a worker joined (reloads) never meet in
    /// a table's orphans. Never written out: output does not depend on it.
    /// 32 bits (it lives in every flow's slot): the count wraps after 2^32
    /// waits, skipping 0, and two flows then meet only if one has waited
    /// through four billion others' alerts.
    pub fn wait_key(&mut self) -> u32 {
        static KEYS: AtomicU32 = AtomicU32::new(1);
        loop {
            let k = KEYS.fetch_add(1, Ordering::Relaxed);
            if k != 0 {
                return k;
            }
        }
    }

    /// Whether an alert of flow `id` is still undecided.
    pub fn flow_waits(&self, id: u64) -> bool {
        match &self.tracker {
            Tracker::Shared(j) => j.held.flows.get(&id).is_some_and(|w| w.undecided > 0),
            _ => false,
        }
    }

    /// Keeps the `flow` record of ended flow `id` (without and with
    /// `alerted`) until its alerts are decided.
    pub fn park_flow(&mut self, id: u64, record: [Vec<u8>; 2]) {
        if let Tracker::Shared(j) = &mut self.tracker {
            if let Some(w) = j.held.flows.get_mut(&id) {
                w.record = Some(record);
            }
        }
    }

    /// Leaves the shared table (the worker stops, or switches to a new
    /// ruleset): what is still undecided is left to the table, and the last
    /// worker to leave writes every remaining decided line and parked
    /// record to `out`; `decided` hears of every held alert decided
    /// meanwhile, as with [`DetectState::sync`] (a line whose decision was
    /// lost is written: it counts as an alert).
    pub fn leave(&mut self, out: &mut Vec<u8>, decided: &mut dyn FnMut(FlowRef, Ticket, bool)) {
        let tracker = std::mem::replace(&mut self.tracker, Tracker::Gone);
        let Tracker::Shared(mut j) = tracker else {
            return;
        };
        let mut decisions = j.run.table.take_decisions(j.slot);
        decisions.sort_unstable_by_key(|&(t, _)| t);
        for (t, a) in decisions {
            j.held.decide(t, a, out, &mut self.stats, decided);
        }
        let held = std::mem::take(&mut j.held);
        j.lease.release(held.bytes());
        lock(&j.run.orphans).merge(held);
        if j.run.table.depart(j.slot) {
            let mut orphans = lock(&j.run.orphans);
            let mut decisions: Vec<(Ticket, bool)> = (0..j.run.table.slot_count())
                .flat_map(|slot| j.run.table.take_decisions(slot))
                .collect();
            decisions.sort_unstable_by_key(|&(t, _)| t);
            for (t, a) in decisions {
                orphans.decide(t, a, out, &mut self.stats, decided);
            }
            // Every match is decided once all workers left; a line still
            // here lost its decision (a slot that never joined): written,
            // as evidence is never dropped.
            let rest = std::mem::take(&mut *orphans);
            let mut alerted = ahash::AHashSet::new();
            let mut rest_lines: Vec<_> = rest.lines.into_iter().collect();
            rest_lines.sort_unstable_by_key(|&(t, _)| t);
            for (t, (line, flow)) in rest_lines {
                out.extend_from_slice(&line);
                self.stats.alerts += 1;
                alerted.insert(flow.id);
                decided(flow, t, true);
            }
            let mut flows: Vec<_> = rest.flows.into_iter().collect();
            flows.sort_unstable_by_key(|&(id, _)| id);
            for (id, w) in flows {
                if let Some([without, with]) = w.record {
                    let a = w.alerted || alerted.contains(&id);
                    out.extend_from_slice(if a { &with } else { &without });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::DetectConfig;
    use crate::time::Timestamp;

    /// Submits a `limit 1` match by source `10.0.0.1` at `secs` in flow
    /// `flow`; returns the ticket when it waits.
    fn submit(st: &DetectState, secs: u64, flow: u64) -> Option<Ticket> {
        let t = Threshold::parse("type limit, track by_src, count 1, seconds 60", false).unwrap();
        let ip = std::net::IpAddr::from([10, 0, 0, 1]);
        let key = Key::new(0, &t, ip, ip).unwrap();
        match st
            .tracker
            .submit(key, &t, Timestamp::from_parts(secs, 0), flow, 0)
        {
            Verdict::Pending(k) | Verdict::LatePending(k) => Some(k),
            _ => None,
        }
    }

    #[test]
    fn held_alerts_and_parked_records_come_out_with_their_decisions() {
        let cfg = DetectConfig::default();
        let hub = ThresholdHub::new(&cfg, 2);
        let e = Arc::new(Engine::empty());
        let (mut a, mut b) = (
            DetectState::shared(&cfg, &hub, &e, 1),
            DetectState::shared(&cfg, &hub, &e, 1),
        );
        // Worker a holds the match at 20 s (flow 1), worker b the one at 10 s
        // (flow 2): only b's alerts.
        let ka = submit(&a, 20, 1).unwrap();
        let kb = submit(&b, 10, 2).unwrap();
        assert!(a
            .hold(ka, FlowRef { id: 1, slot: 5 }, b"A\n".to_vec())
            .is_none());
        assert!(b
            .hold(kb, FlowRef { id: 2, slot: 7 }, b"B\n".to_vec())
            .is_none());
        assert!(a.flow_waits(1) && b.flow_waits(2));
        b.park_flow(2, [b"flow2 no\n".to_vec(), b"flow2 yes\n".to_vec()]);
        let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
        let mut alive = Vec::new();
        // Both past 30 s (plus the one-second margin): decided.
        let mut note = |f: FlowRef, _: Ticket, alert: bool| {
            if alert {
                alive.push(f)
            }
        };
        a.sync(Timestamp::from_parts(31, 0), &mut out_a, &mut note);
        b.sync(Timestamp::from_parts(31, 0), &mut out_b, &mut note);
        a.sync(Timestamp::from_parts(31, 0), &mut out_a, &mut note);
        assert_eq!(out_a, b"");
        assert_eq!(out_b, b"B\nflow2 yes\n");
        assert_eq!(alive, [FlowRef { id: 2, slot: 7 }]);
        assert_eq!((a.stats.suppressed, b.stats.alerts), (1, 1));
        assert!(!a.flow_waits(1) && !b.flow_waits(2));
    }

    #[test]
    fn a_match_behind_the_capture_clock_is_late_whatever_other_workers_did() {
        // Found by fuzzing (pipeline_workers): with time running backwards
        // in the capture, whether a match was counted late depended on how
        // far the other workers had got (their floors), so on the worker
        // count and on thread timing. A match at 10 s after the capture
        // reached 100 s: late with one worker, and with two whether or
        // not the idle one has published a floor; a match within the
        // margin is not.
        let cfg = DetectConfig::default();
        for (workers, idle_synced) in [(1, false), (2, false), (2, true)] {
            let hub = ThresholdHub::new(&cfg, workers);
            let e = Arc::new(Engine::empty());
            let mut a = DetectState::shared(&cfg, &hub, &e, 1);
            let mut idle = (workers == 2).then(|| DetectState::shared(&cfg, &hub, &e, 1));
            let mut out = Vec::new();
            a.sync(Timestamp::from_parts(100, 0), &mut out, &mut |_, _, _| {});
            if let (Some(b), true) = (idle.as_mut(), idle_synced) {
                b.sync(Timestamp::from_parts(100, 0), &mut out, &mut |_, _, _| {});
            }
            a.set_clock(Some(Timestamp::from_parts(100, 0)));
            let t =
                Threshold::parse("type limit, track by_src, count 1, seconds 60", false).unwrap();
            let ip = std::net::IpAddr::from([10, 0, 0, 1]);
            let key = Key::new(0, &t, ip, ip).unwrap();
            let late = a
                .tracker
                .submit(key, &t, Timestamp::from_parts(10, 0), 1, 0);
            assert!(
                matches!(late, Verdict::LatePending(_)),
                "{workers} workers: {late:?}"
            );
            let on_time = a
                .tracker
                .submit(key, &t, Timestamp::from_parts(99, 500_000_000), 1, 1);
            assert!(
                matches!(on_time, Verdict::Pending(_)),
                "{workers} workers: {on_time:?}"
            );
        }
    }

    #[test]
    fn a_late_match_after_an_undecided_first_leaves_it_the_alert_whatever_the_worker_count() {
        // Found by fuzzing (pipeline_workers, issue 11): a late match was
        // decided at once and counted before every undecided match of its
        // window, so with two workers (the idle one holding the first match
        // undecided) a `limit 1` suppressed both the late match and the
        // first one, while one worker (the first already decided) wrote
        // the first. Matches of one 60 s window [120 s, 180 s): X at 121 s
        // (flow 1), then the capture reaches 179 s and Y comes at 150 s
        // (flow 2): late. Exactly one alert, X, for 1 and 2 workers.
        let cfg = DetectConfig::default();
        for workers in [1, 2] {
            let hub = ThresholdHub::new(&cfg, workers);
            let e = Arc::new(Engine::empty());
            let mut a = DetectState::shared(&cfg, &hub, &e, 1);
            let mut idle = (workers == 2).then(|| DetectState::shared(&cfg, &hub, &e, 1));
            let mut out = Vec::new();
            a.set_clock(Some(Timestamp::from_parts(121, 0)));
            let kx = submit(&a, 121, 1).unwrap();
            assert!(a
                .hold(kx, FlowRef { id: 1, slot: 1 }, b"X\n".to_vec())
                .is_none());
            a.sync(Timestamp::from_parts(179, 0), &mut out, &mut |_, _, _| {});
            a.set_clock(Some(Timestamp::from_parts(179, 0)));
            // One worker: X is decided, so Y (second) is at once; two: Y
            // waits behind X.
            if let Some(ky) = submit(&a, 150, 2) {
                assert!(a
                    .hold(ky, FlowRef { id: 2, slot: 2 }, b"Y\n".to_vec())
                    .is_none());
            }
            a.sync(Timestamp::from_parts(179, 0), &mut out, &mut |_, _, _| {});
            if let Some(b) = idle.as_mut() {
                b.leave(&mut out, &mut |_, _, _| {});
            }
            a.leave(&mut out, &mut |_, _, _| {});
            assert_eq!(out, b"X\n", "{workers} workers");
        }
    }

    #[test]
    fn a_ruleset_replaced_before_every_worker_switched_still_writes_its_alerts() {
        // Two reloads in a row: worker a goes through ruleset 2 while worker
        // b goes straight from 1 to 3; a's undecided alert of ruleset 2
        // must still be written.
        let cfg = DetectConfig::default();
        let hub = ThresholdHub::new(&cfg, 2);
        let [e1, e2, e3] = [(); 3].map(|_| Arc::new(Engine::empty()));
        let mut a = DetectState::shared(&cfg, &hub, &e1, 1);
        let mut b = DetectState::shared(&cfg, &hub, &e1, 1);
        let mut out = Vec::new();
        let mut a2 = DetectState::shared(&cfg, &hub, &e2, 1);
        a.leave(&mut out, &mut |_, _, _| {});
        let k = submit(&a2, 10, 1).unwrap();
        assert!(a2
            .hold(k, FlowRef { id: 1, slot: 0 }, b"A2\n".to_vec())
            .is_none());
        let mut a3 = DetectState::shared(&cfg, &hub, &e3, 1);
        a2.leave(&mut out, &mut |_, _, _| {});
        let mut b3 = DetectState::shared(&cfg, &hub, &e3, 1);
        b.leave(&mut out, &mut |_, _, _| {});
        assert_eq!(out, b"A2\n");
        a3.leave(&mut out, &mut |_, _, _| {});
        b3.leave(&mut out, &mut |_, _, _| {});
        assert_eq!(out, b"A2\n");
    }
}
