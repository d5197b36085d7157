//! Detection state: per worker ([`DetectState`]: counters, scratch space,
//! the worker's place in the shared threshold table) and per flow
//! ([`FlowDetect`]: flowbits, per-flow thresholds, cached countries).

use super::*;
/// Per-worker detection state: counters, scratch space, and where the
/// worker's thresholds are counted (module `deferred`).
#[derive(Debug)]
pub struct DetectState {
    pub stats: DetectStats,
    pub(super) tracker: deferred::Tracker,
    pub(super) scratch: Scratch,
}

impl Default for DetectState {
    fn default() -> Self {
        DetectState::new(&DetectConfig::default())
    }
}

impl DetectState {
    /// State of a caller alone with its thresholds, evaluating matches in
    /// match order (tests, tools): every threshold decides at once.
    pub fn new(cfg: &DetectConfig) -> DetectState {
        DetectState {
            stats: DetectStats::default(),
            tracker: deferred::Tracker::Private(threshold::Table::private(
                cfg.max_threshold_entries,
            )),
            scratch: Scratch::default(),
        }
    }

    /// State of one worker of a run evaluating `engine`: thresholds tracked
    /// by address or rule are shared through `hub`. `margin_secs` is how
    /// far behind its packet time the worker may still produce a match
    /// (the flow table's sweep interval: flows time out at most that late).
    pub fn shared(
        cfg: &DetectConfig,
        hub: &ThresholdHub,
        engine: &Arc<Engine>,
        margin_secs: u64,
    ) -> DetectState {
        DetectState {
            stats: DetectStats::default(),
            tracker: deferred::Tracker::join(hub, engine, margin_secs, cfg.max_threshold_entries),
            scratch: Scratch::default(),
        }
    }
}

/// Counters reported in `stats` as `detect.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetectStats {
    /// Alerts raised.
    pub alerts: u64,
    /// Matches held back by `threshold`/`detection_filter`.
    pub suppressed: u64,
    /// Threshold matches decided on what was known because the table was
    /// full.
    pub threshold_table_full: u64,
    /// Threshold matches more than the margin before the capture's packet
    /// time so far (its time ran backwards): decided at once on what was
    /// known (module `deferred`).
    pub threshold_late: u64,
    /// Alerts written before their threshold decision because the
    /// detection memory budget was spent.
    pub threshold_memcap: u64,
}

impl DetectStats {
    pub fn merge(&mut self, o: &DetectStats) {
        self.alerts += o.alerts;
        self.suppressed += o.suppressed;
        self.threshold_table_full += o.threshold_table_full;
        self.threshold_late += o.threshold_late;
        self.threshold_memcap += o.threshold_memcap;
    }

    pub fn counters(&self) -> [(&'static str, u64); 5] {
        [
            ("detect.alert", self.alerts),
            ("detect.alerts_suppressed", self.suppressed),
            ("detect.threshold_table_full", self.threshold_table_full),
            ("detect.threshold_late", self.threshold_late),
            ("detect.threshold_memcap", self.threshold_memcap),
        ]
    }
}

/// Candidate rules of one evaluation: positions in a hook's order, each
/// once (marked with a generation number, so nothing is cleared per call).
#[derive(Debug, Default)]
pub(super) struct Scratch {
    pub(super) marks: Vec<u32>,
    pub(super) generation: u32,
    pub(super) cands: Vec<u32>,
}

impl Scratch {
    pub(super) fn begin(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.marks.fill(0);
            self.generation = 1;
        }
        self.cands.clear();
    }

    pub(super) fn add(&mut self, pos: u32) {
        if let Some(m) = self.marks.get_mut(pos as usize) {
            if *m != self.generation {
                *m = self.generation;
                self.cands.push(pos);
            }
        }
    }
}

// FlowDetect flag bits.
pub(super) const PASSED: u8 = 1;
pub(super) const GEO_DONE: u8 = 2;
/// Header cache: whether any packet rule's header fits the flow in a
/// direction (known / some), and any transaction rule's (known / some).
pub(super) const PKT_KNOWN: [u8; 2] = [4, 16];
pub(super) const PKT_SOME: [u8; 2] = [8, 32];
pub(super) const REC_KNOWN: u8 = 64;
pub(super) const REC_SOME: u8 = 128;

/// Per-flow detection state: 16 bytes while no flowbit or per-flow
/// threshold is set; those live in a box allocated on first use.
#[derive(Debug, Default)]
pub struct FlowDetect {
    pub(super) flags: u8,
    /// Per direction (bit 0 to server, bit 1 to client): some packet rule
    /// with a payload pattern has a header that fits, so the packet
    /// prefilter is worth running.
    pub(super) patterned: u8,
    /// The app-layer protocol (`app_code`) the packet-rule cache bits were
    /// computed for; 0: not computed.
    pub(super) pkt_app: u8,
    /// Client and server countries once looked up (`[0, 0]`: unknown).
    pub(super) countries: [Country; 2],
    /// Set with `REC_KNOWN`: bit `p` says the transaction rule at position
    /// `p` (below 8) of the flow's hook has a header that fits the flow,
    /// so a record does not look at that rule's addresses and ports again
    /// (they cannot change while the flow's sides stay as they are).
    pub(super) rec_fits: u8,
    pub(super) extra: Option<Box<FlowExtra>>,
}

#[derive(Debug, Default)]
pub(super) struct FlowExtra {
    pub(super) bits: Vec<u64>,
    /// `track by_flow` entries by rule index.
    pub(super) thresholds: Vec<(u32, threshold::FlowEntry)>,
    /// Matches of this flow sent to the shared threshold table so far (their
    /// order within the flow).
    pub(super) tracked: u32,
}

impl FlowDetect {
    /// A `pass` rule matched: no more alerts on this flow.
    pub fn passed(&self) -> bool {
        self.flags & PASSED != 0
    }

    pub(super) fn bit(&self, b: u16) -> bool {
        let (w, m) = (usize::from(b / 64), 1u64 << (b % 64));
        self.extra
            .as_ref()
            .and_then(|e| e.bits.get(w))
            .is_some_and(|x| x & m != 0)
    }

    pub(super) fn apply(&mut self, a: FlowbitAction, words: usize) {
        let b = match a {
            FlowbitAction::Set(b) | FlowbitAction::Unset(b) | FlowbitAction::Toggle(b) => b,
        };
        let (w, m) = (usize::from(b / 64), 1u64 << (b % 64));
        if matches!(a, FlowbitAction::Unset(_)) && !self.bit(b) {
            return;
        }
        let e = self.extra.get_or_insert_with(Box::default);
        if e.bits.len() < words {
            e.bits.resize(words, 0);
        }
        if let Some(x) = e.bits.get_mut(w) {
            match a {
                FlowbitAction::Set(_) => *x |= m,
                FlowbitAction::Unset(_) => *x &= !m,
                FlowbitAction::Toggle(_) => *x ^= m,
            }
        }
    }

    /// The rule's `track by_flow` limit is reached for this flow.
    pub(super) fn threshold_saturated(
        &self,
        rule: u32,
        t: &threshold::Threshold,
        ts: Timestamp,
    ) -> bool {
        self.extra.as_ref().is_some_and(|e| {
            e.thresholds
                .iter()
                .any(|(r, entry)| *r == rule && entry.saturated(t, ts))
        })
    }

    pub(super) fn threshold_hit(
        &mut self,
        rule: u32,
        t: &threshold::Threshold,
        ts: Timestamp,
    ) -> bool {
        let e = self.extra.get_or_insert_with(Box::default);
        match e.thresholds.iter_mut().find(|(r, _)| *r == rule) {
            Some((_, entry)) => entry.hit(t, ts),
            None => {
                let mut entry = threshold::FlowEntry::new();
                let alert = entry.hit(t, ts);
                e.thresholds.push((rule, entry));
                alert
            }
        }
    }

    /// The order of the next tracked match within the flow.
    pub(super) fn next_tracked(&mut self) -> u32 {
        let e = self.extra.get_or_insert_with(Box::default);
        let n = e.tracked;
        e.tracked = e.tracked.saturating_add(1);
        n
    }
}
