//! One flow's app layer: which protocol it speaks, which side is the
//! server, the parser, gaps and the end — one object, one code path for
//! data, gap and end ([`Session::event`], [`Session::end`]).
//!
//! The worker hands a session the reassembled bytes and gaps of both
//! directions ([`crate::stream::Event`]) and the flow's end; the session
//! hands parsers their input and their records on to the worker's
//! [`SessionSink`].
//!
//! Detection, per direction, until one protocol matches:
//! - The bytes of a direction seen from its start (handshake seen, no byte
//!   lost) go to the start-of-stream probes of [`PROTOCOLS`]
//!   ([`AppProtocol::probe_start`], at most `probe_depth` bytes). A match
//!   decides. When none can match: a flow on a configured port takes that
//!   port's protocol (its parser then judges the bytes); a flow whose other
//!   direction is still being probed mid-stream goes on probing this one
//!   mid-stream too; otherwise detection has `failed`.
//! - The bytes of a direction picked up without a handshake, or after a gap
//!   (lost bytes never end detection), go to the start probes and to the
//!   mid-stream probes ([`AppProtocol::probe_midstream`]), which find where
//!   a run of messages starts; the parser gets the bytes from there. They
//!   are held (copied, at most `midstream_depth` per direction, charged to
//!   `app_layer.memcap`) and probed again as they grow (each time they
//!   double while under 4 KiB, then at the depth); before a
//!   gap and at the end they get a last look (bytes held before a gap that
//!   match nothing cannot be joined to what follows: they only served
//!   detection). Without a match on the first bytes, a flow on a
//!   configured port takes that port's protocol at once, as above (its
//!   parser resynchronises); elsewhere the flow fails once one direction's
//!   `midstream_depth` bytes matched nothing (a run of messages in the
//!   other direction alone, behind a direction that is all payload, is then
//!   missed: waiting for it would mean dropping bytes).
//! - On any decision the parser is created and gets, in this order, the
//!   bytes held for the client→server direction, those held for the other
//!   direction, then the bytes that decided (requests before answers, as
//!   the pairing of transactions expects).
//! - At the end of the flow an undecided flow is decided on what is known
//!   (a last mid-stream probe, the port, else `failed`), and its held bytes
//!   go to the parser before its end: bytes reassembly still held when the
//!   flow ended are parsed like any others.
//!
//! Orientation: probes say who sent the bytes ([`Role`]: a CONNECT or an
//! A-ASSOCIATE-RQ comes from the client, a CONNACK or A-ASSOCIATE-AC from
//! the server, a ServerHello from the server), and without such a message
//! the configured ports say which side is the server. When the flow's
//! sides (chosen by the flow table from the first packet and the
//! configured ports) are the reverse, and no handshake fixed them, the
//! session swaps its own per-direction state, tells the sink
//! ([`SessionSink::decided`]) so that records made from then on are
//! written client → server, and reports it ([`Session::take_swap`]) so the
//! caller swaps the flow's sides (counters, flags, reassemblers) before
//! the next packet. This happens at the decision, before the first record
//! of the flow; only alerts raised on earlier packets keep the earlier
//! orientation. A handshake (SYN, SYN-ACK) fixes the orientation: a probe
//! whose role contradicts it does not match.
//!
//! Memory: after each call the session charges the change of its held
//! bytes plus the parser's [`StreamConsumer::memuse`] to the worker's
//! `app_layer.memcap` lease; when refused (counted), an undecided flow is
//! decided at once (its held bytes go to the parser) and a parser is asked
//! to [`StreamConsumer::shed`]; everything is released at the end.

use crate::app::{
    AnomalyTally, AppConfig, AppProto, AppRecord, Midstream, RecordSink, Role, StreamConsumer,
    StreamContext, Verdict, PROTOCOLS,
};
use crate::flow::{Direction, Endpoint};
use crate::memcap::Lease;
use crate::stream::Event;
use crate::time::Timestamp;

/// The endpoints of a flow, client first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowEnds {
    pub client: Endpoint,
    pub server: Endpoint,
}

impl FlowEnds {
    fn swapped(self) -> FlowEnds {
        FlowEnds {
            client: self.server,
            server: self.client,
        }
    }
}

/// Creates a flow's parser once its protocol is known; `None`: the flow's
/// bytes are not parsed.
pub type ParserFactory =
    dyn Fn(AppProto, &FlowEnds) -> Option<Box<dyn StreamConsumer>> + Send + Sync;

/// Where a session's output goes: the parser's records, and the news of
/// the decision.
pub trait SessionSink: RecordSink {
    /// The flow's protocol is `proto`; with `swapped`, the flow's sides are
    /// the reverse of what the caller has: records that follow must be
    /// written with client and server exchanged.
    fn decided(&mut self, proto: AppProto, swapped: bool);

    /// Bytes of `dir` that went past while the protocol was unknown (what
    /// detection held), handed on right after [`SessionSink::decided`] so
    /// that payload rules see them with the protocol now known: a flow
    /// whose detection fails only at its end (a one-way capture, bytes
    /// never acknowledged) is still matched by `app-layer-protocol:failed`
    /// rules. Bytes lost to a gap while undecided, and bytes beyond the
    /// probe depths, are not seen again.
    fn raw(&mut self, _dir: Direction, _bytes: &[u8]) {}
}

impl SessionSink for Vec<AppRecord> {
    fn decided(&mut self, _: AppProto, _: bool) {}
}

/// Counters of the app layer, summed over flows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppStats {
    /// Times `app_layer.memcap` refused a flow's growth (and the flow had
    /// to decide at once or its parser to shed).
    pub memcap: u64,
    /// Anomaly records not written because their flow had already raised
    /// [`crate::app::MAX_ANOMALIES_PER_EVENT`] of that event in that
    /// direction.
    pub anomalies_capped: u64,
}

impl AppStats {
    pub fn merge(&mut self, o: &AppStats) {
        self.memcap = self.memcap.saturating_add(o.memcap);
        self.anomalies_capped = self.anomalies_capped.saturating_add(o.anomalies_capped);
    }
}

/// What a session needs from its caller for one call.
pub struct Env<'a> {
    pub cfg: &'a AppConfig,
    /// Time of the packet that delivered the bytes.
    pub ts: Timestamp,
    /// The flow's endpoints as the caller has them oriented; needed only
    /// while [`Session::deciding`].
    pub ends: Option<FlowEnds>,
    /// A handshake fixed the flow's sides: the bytes cannot swap them.
    pub oriented: bool,
    pub factory: &'a ParserFactory,
    pub sink: &'a mut dyn SessionSink,
    /// The worker's share of `app_layer.memcap`.
    pub lease: &'a mut Lease,
    pub stats: &'a mut AppStats,
}

/// Calls a parser with a context whose records go to the session's sink
/// through the flow's [`AnomalyTally`] (made on the first anomaly, in the
/// session's `heap`, which is free once the flow is decided).
fn parse<R>(
    env: &mut Env<'_>,
    heap: &mut Option<Box<Heap>>,
    call: impl FnOnce(&mut StreamContext<'_>) -> R,
) -> R {
    let mut sink = Capped {
        sink: &mut *env.sink,
        heap,
        capped: &mut env.stats.anomalies_capped,
    };
    call(&mut StreamContext {
        ts: env.ts,
        records: &mut sink,
    })
}

/// A parser's records on their way to the sink: anomalies past the cap
/// are counted instead of written.
struct Capped<'a> {
    sink: &'a mut dyn SessionSink,
    heap: &'a mut Option<Box<Heap>>,
    capped: &'a mut u64,
}

impl RecordSink for Capped<'_> {
    fn push(&mut self, record: AppRecord) {
        if let AppRecord::Anomaly(a) = &record {
            let heap = self
                .heap
                .get_or_insert_with(|| Box::new(Heap::Tally(AnomalyTally::default())));
            // While undecided no parser runs, so the box holds a tally here.
            if let Heap::Tally(t) = &mut **heap {
                if !t.admit(a) {
                    *self.capped = self.capped.saturating_add(1);
                    return;
                }
            }
        }
        self.sink.push(record);
    }
}

/// Detection state of one direction.
#[derive(Debug, Default)]
struct DirProbe {
    /// Bytes kept for the probes and the parser to come (copied: the
    /// segment is gone when the next one arrives).
    held: Vec<u8>,
    /// Payload bytes this direction delivered while undecided.
    seen: u64,
    /// The bytes may start inside a message (no handshake, or after a gap).
    mid: bool,
    /// Held length at which the mid-stream probes run again.
    next_run: usize,
}

/// Detection state of a flow, allocated on its first byte and freed once
/// the protocol is decided.
#[derive(Debug, Default)]
struct Probing {
    dirs: [DirProbe; 2],
}

/// What a session keeps beside its parser: one box, so that the
/// session (part of every flow's slot) does not grow for either.
#[derive(Debug)]
enum Heap {
    Probing(Probing),
    Tally(AnomalyTally),
}

/// What probing one view of a direction found.
enum Probe {
    /// This protocol; the run starts `at` bytes into the view; the sides
    /// must be swapped.
    Found(AppProto, usize, bool),
    /// Keep the bytes and wait for more (`true`: a start probe needs more
    /// bytes to decide).
    Wait(bool),
    /// No start probe can match (bytes seen from the direction's start).
    StartNoMatch,
    /// `midstream_depth` bytes matched nothing.
    Exhausted,
}

/// What a `failed` flow's bytes go to: nothing is parsed, and they are
/// reassembled only up to `app_layer.failed_depth` per direction, for what
/// reassembly itself sees (overlaps with different data).
struct Unparsed {
    /// Bytes per direction still wanted (client → server first).
    left: [u64; 2],
}

impl StreamConsumer for Unparsed {
    fn data(&mut self, _: &mut StreamContext<'_>, dir: Direction, data: &[u8]) {
        if let Some(l) = self.left.get_mut(dir.index()) {
            *l = l.saturating_sub(data.len() as u64);
        }
    }

    fn gap(&mut self, _: &mut StreamContext<'_>, _: Direction, _: u32) {}

    fn end(&mut self, _: &mut StreamContext<'_>) {}

    fn finished(&self) -> bool {
        self.left == [0, 0]
    }
}

/// The app layer of one flow.
#[derive(Default)]
pub struct Session {
    proto: AppProto,
    parser: Option<Box<dyn StreamConsumer>>,
    /// Detection's state while undecided, the anomaly tally once decided;
    /// each allocated on first need (most flows never have a tally).
    heap: Option<Box<Heap>>,
    /// Bytes were lost in this direction.
    gap: [bool; 2],
    /// Nothing more is looked at: decided without a parser, or ended.
    done: bool,
    /// The sides were found swapped and the caller has not swapped the flow
    /// yet: the caller's directions are the reverse of the session's.
    swap: bool,
    /// Bytes of `app_layer.memcap` reserved for this flow.
    charged: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("proto", &self.proto)
            .field("gap", &self.gap)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The flow's protocol ([`AppProto::Unknown`] while undecided).
    pub fn proto(&self) -> AppProto {
        self.proto
    }

    /// Still looking for the protocol (the caller must then pass the flow's
    /// endpoints in [`Env::ends`]).
    pub fn deciding(&self) -> bool {
        self.proto == AppProto::Unknown
    }

    /// Whether the flow's bytes are still wanted: false once decided
    /// without a parser (failed), when the parser is finished (a TLS
    /// handshake that became encrypted), or ended.
    pub fn inspecting(&self) -> bool {
        !self.done
    }

    /// Bytes were lost per direction (client → server first).
    pub fn gaps(&self) -> [bool; 2] {
        self.gap
    }

    /// Whether the sides were found swapped since the last call; the caller
    /// must then swap the flow's sides (the session already did its own).
    pub fn take_swap(&mut self) -> bool {
        std::mem::take(&mut self.swap)
    }

    /// The caller swapped the flow's sides on its own evidence (a SYN-ACK
    /// seen late) while the protocol is undecided.
    pub fn swap_sides(&mut self) {
        self.gap.swap(0, 1);
        if let Some(p) = self.probing_mut() {
            p.dirs.swap(0, 1);
        }
    }

    /// Heap bytes held now: detection's copies and the parser's state.
    pub fn memuse(&self) -> usize {
        let held = self.heap.as_deref().map_or(0, |h| {
            std::mem::size_of::<Heap>()
                + match h {
                    Heap::Probing(p) => p.dirs.iter().map(|d| d.held.capacity()).sum::<usize>(),
                    Heap::Tally(t) => t.memuse(),
                }
        });
        held + self.parser.as_ref().map_or(0, |p| p.memuse())
    }

    /// One event of reassembly, in direction `dir` as the caller has the
    /// flow oriented: the one path for data and gaps.
    pub fn event(&mut self, env: &mut Env<'_>, dir: Direction, ev: Event<'_>) {
        if self.done {
            return;
        }
        let dir = if self.swap { dir.reverse() } else { dir };
        match ev {
            Event::Data(bytes) => self.data(env, dir, bytes),
            Event::Gap(len) => self.gap(env, dir, len),
            Event::Anomaly(a) => env.sink.push(AppRecord::StreamAnomaly(a)),
        }
        if self.parser.as_ref().is_some_and(|p| p.finished()) {
            self.parser = None;
            self.done = true;
        }
        self.charge(env);
    }

    /// The flow ended: an undecided flow is decided on what is known, held
    /// bytes are parsed, the parser reports what is still open, and the
    /// memory is released.
    pub fn end(&mut self, env: &mut Env<'_>) {
        if self.proto == AppProto::Unknown {
            self.settle(env);
        }
        if let Some(p) = self.parser.as_mut() {
            parse(env, &mut self.heap, |c| p.end(c));
        }
        self.parser = None;
        self.heap = None;
        self.done = true;
        env.lease.release(self.charged);
        self.charged = 0;
    }

    fn data(&mut self, env: &mut Env<'_>, dir: Direction, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.proto == AppProto::Unknown {
            self.detect(env, dir, bytes);
        } else if let Some(p) = self.parser.as_mut() {
            parse(env, &mut self.heap, |c| p.data(c, dir, bytes));
        }
    }

    fn gap(&mut self, env: &mut Env<'_>, mut dir: Direction, len: u32) {
        if let Some(g) = self.gap.get_mut(dir.index()) {
            *g = true;
        }
        if self.proto == AppProto::Unknown {
            // A last look at what this direction held before the hole.
            if let Some((p, swap, at, held)) = self.last_look(dir, env.oriented) {
                self.decide(env, p, swap, Some((dir, at, held, &[])));
                if swap {
                    dir = dir.reverse();
                }
            }
        }
        if self.proto == AppProto::Unknown {
            // Detection cannot join bytes across a hole: what was held is
            // dropped, and the bytes after it are probed mid-stream.
            let mid = !env.oriented;
            if let Some(st) = self
                .probing_or_new(mid)
                .and_then(|p| p.dirs.get_mut(dir.index()))
            {
                st.held = Vec::new();
                st.mid = true;
                st.next_run = 0;
            }
        } else if let Some(p) = self.parser.as_mut() {
            parse(env, &mut self.heap, |c| p.gap(c, dir, len));
        }
    }

    /// Detection on the next bytes of `dir`.
    fn detect(&mut self, env: &mut Env<'_>, dir: Direction, data: &[u8]) {
        let oriented = env.oriented;
        let cfg = env.cfg;
        let Some(probing) = self.probing_or_new(!oriented) else {
            return;
        };
        let Some(st) = probing.dirs.get_mut(dir.index()) else {
            return;
        };
        st.seen = st.seen.saturating_add(data.len() as u64);
        // The view probed: the bytes held before this call, then this call's
        // bytes up to the depth. Held bytes are `before` plus that prefix.
        let before = st.held.len();
        let outcome = st.look(cfg, data, dir, oriented);
        let outcome = match outcome {
            Probe::StartNoMatch if by_port(env).is_none() && probing.any_mid() => {
                // The other direction is being probed mid-stream: this one
                // is probed mid-stream too.
                match probing.dirs.get_mut(dir.index()) {
                    Some(st) => {
                        st.held.truncate(before);
                        st.mid = true;
                        st.next_run = 0;
                        st.look(cfg, data, dir, oriented)
                    }
                    None => Probe::Wait(false),
                }
            }
            o => o,
        };
        let current = Some((dir, 0, before, data));
        match outcome {
            Probe::Found(p, at, swap) => self.decide(env, p, swap, Some((dir, at, before, data))),
            Probe::Wait(start_pending) => {
                // Mid-stream bytes on a configured port that no start probe
                // waits for: the port decides now, the parser resynchronises.
                if self.dir_is_mid(dir) && !start_pending {
                    if let Some((p, swap)) = by_port(env) {
                        self.decide(env, p, swap, current);
                    }
                }
            }
            Probe::StartNoMatch => match by_port(env) {
                Some((p, swap)) => self.decide(env, p, swap, current),
                None => self.decide(env, AppProto::Failed, false, current),
            },
            // Nothing found in `midstream_depth` bytes: the port decides,
            // else detection failed; what was held is handed on either way
            // (a parser gets every byte, none is dropped while waiting).
            Probe::Exhausted => match by_port(env) {
                Some((p, swap)) => self.decide(env, p, swap, current),
                None => self.decide(env, AppProto::Failed, false, current),
            },
        }
    }

    fn dir_is_mid(&self, dir: Direction) -> bool {
        self.probing()
            .and_then(|p| p.dirs.get(dir.index()))
            .is_some_and(|d| d.mid)
    }

    /// Decides the flow's protocol and hands the parser what detection
    /// held. `current`: the direction whose bytes decided, where the run
    /// starts in its view (held bytes, then this call's `data`), how many
    /// bytes it held before this call (its held bytes may also hold a prefix
    /// of `data`, which is then taken from `data`), and this call's bytes.
    fn decide(
        &mut self,
        env: &mut Env<'_>,
        proto: AppProto,
        swap: bool,
        current: Option<(Direction, usize, usize, &[u8])>,
    ) {
        self.proto = proto;
        let mut current = current;
        let mut probing = self.take_probing();
        if swap {
            self.swap = true;
            self.gap.swap(0, 1);
            if let Some(p) = probing.as_mut() {
                p.dirs.swap(0, 1);
            }
            if let Some(c) = current.as_mut() {
                c.0 = c.0.reverse();
            }
        }
        env.sink.decided(proto, swap);
        if let Some(p) = probing.as_ref() {
            for dir in [Direction::ToServer, Direction::ToClient] {
                let Some(st) = p.dirs.get(dir.index()) else {
                    continue;
                };
                // This call's bytes are the current packet's (or released
                // by it): packet rules see them next, with the protocol.
                let n = match current {
                    Some((d, _, before, _)) if d == dir => before.min(st.held.len()),
                    _ => st.held.len(),
                };
                if let Some(b) = st.held.get(..n).filter(|b| !b.is_empty()) {
                    env.sink.raw(dir, b);
                }
            }
        }
        let ends = env.ends.map(|e| if swap { e.swapped() } else { e });
        self.parser = ends.and_then(|e| (env.factory)(proto, &e));
        if proto == AppProto::Failed && self.parser.is_none() && env.cfg.failed_depth.0 > 0 {
            self.parser = Some(Box::new(Unparsed {
                left: [env.cfg.failed_depth.0; 2],
            }));
        }
        // Reassembly goes on for a protocol wardwatch parses even when the
        // factory (a test's) declined the flow.
        self.done =
            self.parser.is_none() && proto.protocol().is_none_or(|p| p.parser(env.cfg).is_none());
        let Some(parser) = self.parser.as_mut() else {
            return;
        };
        let Some(probing) = probing else {
            if let Some((dir, at, _, data)) = current {
                let data = data.get(at..).unwrap_or(&[]);
                parse(env, &mut self.heap, |c| parser.data(c, dir, data));
            }
            return;
        };
        let protocol = proto.protocol();
        // Held bytes first, client → server direction first.
        for dir in [Direction::ToServer, Direction::ToClient] {
            let Some(st) = probing.dirs.get(dir.index()) else {
                continue;
            };
            let (held, skip) = match current {
                Some((d, at, before, _)) if d == dir => {
                    let before = before.min(st.held.len());
                    (st.held.get(..before).unwrap_or(&[]), at)
                }
                _ => {
                    // Another direction picked up mid-stream starts where
                    // this protocol's messages start, if they can be found.
                    let at = if st.mid {
                        protocol
                            .and_then(|p| p.probe_midstream(&st.held))
                            .map_or(0, |m| m.at)
                    } else {
                        0
                    };
                    (&st.held[..], at)
                }
            };
            if let Some(b) = held.get(skip..).filter(|b| !b.is_empty()) {
                parse(env, &mut self.heap, |c| parser.data(c, dir, b));
            }
        }
        if let Some((dir, at, before, data)) = current {
            let before = probing
                .dirs
                .get(dir.index())
                .map_or(0, |st| before.min(st.held.len()));
            let skip = at.saturating_sub(before);
            if let Some(b) = data.get(skip..).filter(|b| !b.is_empty()) {
                parse(env, &mut self.heap, |c| parser.data(c, dir, b));
            }
        }
    }

    /// Decides an undecided flow on what is known: a last mid-stream probe
    /// over what each direction holds, else the port, else `failed` (no
    /// decision when no byte was seen at all).
    fn settle(&mut self, env: &mut Env<'_>) {
        let Some(probing) = self.probing() else {
            return;
        };
        if probing.dirs.iter().all(|d| d.seen == 0) {
            return;
        }
        let found = [Direction::ToServer, Direction::ToClient]
            .into_iter()
            .find_map(|dir| {
                self.last_look(dir, env.oriented)
                    .map(|(p, swap, at, held)| (p, swap, dir, at, held))
            });
        match (found, by_port(env)) {
            (Some((p, swap, dir, at, held)), _) => {
                self.decide(env, p, swap, Some((dir, at, held, &[])));
            }
            (None, Some((p, swap))) => self.decide(env, p, swap, None),
            (None, None) => self.decide(env, AppProto::Failed, false, None),
        }
    }

    /// A mid-stream probe over everything `dir` holds: the protocol, whether
    /// the sides must be swapped, where its run starts and how many bytes
    /// are held.
    fn last_look(&self, dir: Direction, oriented: bool) -> Option<(AppProto, bool, usize, usize)> {
        let st = self.probing()?.dirs.get(dir.index())?;
        if st.held.is_empty() {
            return None;
        }
        let (p, m) = midstream(&st.held)?;
        let swap = sides(m.role, dir, oriented)?;
        Some((p, swap, m.at, st.held.len()))
    }

    /// Detection's state, while undecided.
    fn probing(&self) -> Option<&Probing> {
        match self.heap.as_deref() {
            Some(Heap::Probing(p)) => Some(p),
            _ => None,
        }
    }

    fn probing_mut(&mut self) -> Option<&mut Probing> {
        match self.heap.as_deref_mut() {
            Some(Heap::Probing(p)) => Some(p),
            _ => None,
        }
    }

    /// Detection's state, made on first need (`mid`: its directions start
    /// mid-stream).
    fn probing_or_new(&mut self, mid: bool) -> Option<&mut Probing> {
        if self.probing().is_none() {
            self.heap = Some(Box::new(Heap::Probing(Probing::new(mid))));
        }
        self.probing_mut()
    }

    /// Takes detection's state out for the decision.
    fn take_probing(&mut self) -> Option<Probing> {
        match self.heap.take().map(|h| *h) {
            Some(Heap::Probing(p)) => Some(p),
            other => {
                self.heap = other.map(Box::new);
                None
            }
        }
    }

    /// Charges the change of this flow's memory to the app-layer budget.
    fn charge(&mut self, env: &mut Env<'_>) {
        let now = self.memuse() as u64;
        if now <= self.charged {
            env.lease.release(self.charged - now);
            self.charged = now;
            return;
        }
        if env.lease.try_reserve(now - self.charged) {
            self.charged = now;
            return;
        }
        // Refused: hand on what detection holds, or let the parser give back
        // what it can (it logs what it drops), then charge what is left.
        env.stats.memcap = env.stats.memcap.saturating_add(1);
        if self.proto == AppProto::Unknown {
            self.settle(env);
        }
        if let Some(p) = self.parser.as_mut() {
            parse(env, &mut self.heap, |c| p.shed(c));
        }
        let now = self.memuse() as u64;
        if now <= self.charged {
            env.lease.release(self.charged - now);
            self.charged = now;
        } else if env.lease.try_reserve(now - self.charged) {
            self.charged = now;
        }
        // Otherwise the excess stays unreserved: the parser's own per-flow
        // limits bound it, and the next call tries again.
    }
}

impl Probing {
    fn new(mid: bool) -> Probing {
        let d = || DirProbe {
            mid,
            ..DirProbe::default()
        };
        Probing { dirs: [d(), d()] }
    }

    /// Some direction is probed mid-stream.
    fn any_mid(&self) -> bool {
        self.dirs.iter().any(|d| d.mid)
    }
}

impl DirProbe {
    /// Probes what this direction held plus `data` (up to the depth of its
    /// mode), keeping the bytes when the answer is to wait.
    fn look(&mut self, cfg: &AppConfig, data: &[u8], dir: Direction, oriented: bool) -> Probe {
        let depth = if self.mid {
            depth_mid(cfg)
        } else {
            cfg.probe_depth.clamp(8, 4096)
        };
        if self.held.is_empty() {
            // The common case: the first segment decides, nothing is copied.
            let view = data.get(..depth.min(data.len())).unwrap_or(data);
            let o = probe(cfg, self.mid, &mut self.next_run, view, dir, oriented);
            if matches!(o, Probe::Wait(_)) {
                // Copied: the probes need these bytes with the next ones.
                self.held.extend_from_slice(view);
            }
            o
        } else {
            let room = depth.saturating_sub(self.held.len());
            // Copied: as above, up to the depth.
            self.held
                .extend_from_slice(data.get(..room.min(data.len())).unwrap_or(&[]));
            probe(cfg, self.mid, &mut self.next_run, &self.held, dir, oriented)
        }
    }
}

fn depth_mid(cfg: &AppConfig) -> usize {
    usize::try_from(cfg.midstream_depth.0)
        .unwrap_or(usize::MAX)
        .clamp(64, 1 << 24)
        .max(cfg.probe_depth)
}

/// Whether a run sent by `role` in `dir` fits the flow's sides: `Some(false)`
/// as they are, `Some(true)` swapped, `None` contradicts the handshake.
fn sides(role: Role, dir: Direction, oriented: bool) -> Option<bool> {
    let want = match role {
        Role::Client => Direction::ToServer,
        Role::Server => Direction::ToClient,
        Role::Either => return Some(false),
    };
    if want == dir {
        Some(false)
    } else if oriented {
        None
    } else {
        Some(true)
    }
}

/// The protocol configured on the flow's server port, or (the sides
/// swapped) on its client port when the handshake did not fix them.
fn by_port(env: &Env<'_>) -> Option<(AppProto, bool)> {
    let ends = env.ends?;
    let server = env.cfg.by_port(ends.server.port);
    if server != AppProto::Unknown {
        return Some((server, false));
    }
    let client = env.cfg.by_port(ends.client.port);
    (client != AppProto::Unknown && !env.oriented).then_some((client, true))
}

/// The earliest mid-stream run of any protocol in `data` (on a tie, the
/// first protocol of the table).
fn midstream(data: &[u8]) -> Option<(AppProto, Midstream)> {
    let mut best: Option<(AppProto, Midstream)> = None;
    for p in PROTOCOLS {
        if let Some(m) = p.probe_midstream(data) {
            if best.is_none_or(|(_, b)| m.at < b.at) {
                best = Some((p.proto(), m));
            }
        }
    }
    best
}

/// Runs the probes on `view`, the bytes of `dir` held so far (this call's
/// included); `mid`: the view may start inside a message.
fn probe(
    cfg: &AppConfig,
    mid: bool,
    next_run: &mut usize,
    view: &[u8],
    dir: Direction,
    oriented: bool,
) -> Probe {
    let start_depth = cfg.probe_depth.clamp(8, 4096);
    let head = view.get(..start_depth.min(view.len())).unwrap_or(view);
    let mut need_more = false;
    for p in PROTOCOLS {
        match p.probe_start(head) {
            Verdict::Match(role) => {
                if let Some(swap) = sides(role, dir, oriented) {
                    return Probe::Found(p.proto(), 0, swap);
                }
            }
            Verdict::NeedMore => need_more = true,
            Verdict::NoMatch => {}
        }
    }
    let start_pending = need_more && view.len() < start_depth;
    if !mid {
        return if start_pending {
            Probe::Wait(true)
        } else {
            Probe::StartNoMatch
        };
    }
    let full = view.len() >= depth_mid(cfg);
    if view.len() >= *next_run || full {
        // Again once the bytes doubled while few (small messages decide
        // quickly), then only at the depth: the runs together cost less
        // than twice the depth per direction (about 2 ns per byte and
        // protocol).
        *next_run = if view.len() < 4096 {
            view.len().saturating_mul(2).max(1)
        } else {
            depth_mid(cfg)
        };
        if let Some((p, m)) = midstream(view) {
            if let Some(swap) = sides(m.role, dir, oriented) {
                return Probe::Found(p, m.at, swap);
            }
        }
    }
    if full {
        Probe::Exhausted
    } else {
        Probe::Wait(start_pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memcap::MemCap;
    use std::net::{IpAddr, Ipv4Addr};
    use Direction::{ToClient, ToServer};

    fn ends(client_port: u16, server_port: u16) -> FlowEnds {
        let ip = |d| IpAddr::V4(Ipv4Addr::new(10, 20, 1, d));
        FlowEnds {
            client: Endpoint {
                addr: ip(15),
                port: client_port,
            },
            server: Endpoint {
                addr: ip(50),
                port: server_port,
            },
        }
    }

    /// Records and the decision a session reported.
    #[derive(Default)]
    struct Out {
        records: Vec<AppRecord>,
        decided: Vec<(AppProto, bool)>,
    }

    impl RecordSink for Out {
        fn push(&mut self, r: AppRecord) {
            self.records.push(r);
        }
    }

    impl SessionSink for Out {
        fn decided(&mut self, p: AppProto, swapped: bool) {
            self.decided.push((p, swapped));
        }
    }

    /// Drives one session with the real parsers.
    struct Harness {
        cfg: AppConfig,
        ends: FlowEnds,
        oriented: bool,
        session: Session,
        out: Out,
        lease: Lease,
        stats: AppStats,
    }

    impl Harness {
        fn new(ends: FlowEnds, oriented: bool) -> Harness {
            Harness::with_cap(ends, oriented, 64 << 20)
        }

        fn with_cap(ends: FlowEnds, oriented: bool, cap: u64) -> Harness {
            Harness {
                cfg: AppConfig::default(),
                ends,
                oriented,
                session: Session::default(),
                out: Out::default(),
                lease: MemCap::new("app_layer.memuse", cap).lease(),
                stats: AppStats::default(),
            }
        }

        fn run(&mut self, dir: Direction, ev: Event<'_>) {
            let cfg = self.cfg.clone();
            let factory = move |p: AppProto, _: &FlowEnds| crate::app::new_consumer(p, &cfg);
            let mut env = Env {
                cfg: &self.cfg,
                ts: Timestamp(0),
                ends: Some(self.ends),
                oriented: self.oriented,
                factory: &factory,
                sink: &mut self.out,
                lease: &mut self.lease,
                stats: &mut self.stats,
            };
            self.session.event(&mut env, dir, ev);
            if self.session.take_swap() {
                // What the worker does: swap the flow's sides.
                self.ends = self.ends.swapped();
            }
        }

        fn data(&mut self, dir: Direction, b: &[u8]) {
            self.run(dir, Event::Data(b));
        }

        fn end(&mut self) {
            let cfg = self.cfg.clone();
            let factory = move |p: AppProto, _: &FlowEnds| crate::app::new_consumer(p, &cfg);
            let mut env = Env {
                cfg: &self.cfg,
                ts: Timestamp(0),
                ends: Some(self.ends),
                oriented: self.oriented,
                factory: &factory,
                sink: &mut self.out,
                lease: &mut self.lease,
                stats: &mut self.stats,
            };
            self.session.end(&mut env);
        }

        fn mqtt_types(&self) -> Vec<(u8, Direction)> {
            self.out
                .records
                .iter()
                .filter_map(|r| match r {
                    AppRecord::Mqtt(m) => Some(m),
                    _ => None,
                })
                .flat_map(|m| m.messages.iter().map(|x| (x.packet_type, x.dir)))
                .collect()
        }
    }

    // Hand-built MQTT 3.1.1 messages (not from a capture): CONNECT with
    // client id "mon", CONNACK accepted, PUBLISH QoS 1 topic "v" packet id
    // 1 payload "72", PUBACK 1, DISCONNECT.
    const CONNECT: &[u8] = &[
        0x10, 0x0f, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x03, b'm',
        b'o', b'n',
    ];
    const CONNACK: &[u8] = &[0x20, 0x02, 0x00, 0x00];
    const PUBLISH: &[u8] = &[0x32, 0x07, 0x00, 0x01, b'v', 0x00, 0x01, b'7', b'2'];
    const PUBACK: &[u8] = &[0x40, 0x02, 0x00, 0x01];
    const DISCONNECT: &[u8] = &[0xe0, 0x00];

    #[test]
    fn connect_in_first_segment_decides_without_holding_bytes() {
        let mut h = Harness::new(ends(50000, 8080), true);
        h.data(ToServer, CONNECT);
        assert_eq!(h.session.proto(), AppProto::Mqtt);
        assert_eq!(h.out.decided, vec![(AppProto::Mqtt, false)]);
        assert!(h.session.heap.is_none());
        h.data(ToClient, CONNACK);
        assert_eq!(h.mqtt_types(), vec![(1, ToServer), (2, ToClient)]);
    }

    #[test]
    fn anomaly_flood_writes_eight_per_event_and_direction_and_counts_the_rest() {
        // Hand-built: after the CONNECT, 1 000 PUBLISHes with QoS 3 (each
        // `malformed_traffic`), then one over `max_msg_len`
        // (`message_too_large`), the same 1 000 from the server, then a
        // valid PUBLISH that must still be logged.
        let mut h = Harness::new(ends(50000, 1883), true);
        h.data(ToServer, CONNECT);
        h.data(ToClient, CONNACK);
        let bad = [0x36, 0x03, 0x00, 0x01, b'A'];
        let flood: Vec<u8> = bad.iter().copied().cycle().take(5 * 1000).collect();
        for chunk in flood.chunks(700) {
            h.data(ToServer, chunk);
        }
        let mut big = vec![0x30, 0xff, 0xff, 0xff, 0x7f]; // PUBLISH of 256 MiB
        big.resize(64, 0);
        h.data(ToServer, &big);
        h.data(ToClient, &flood);
        h.end();
        let events = |dir: Direction| {
            h.out
                .records
                .iter()
                .filter_map(|r| match r {
                    AppRecord::Anomaly(a) if a.dir == dir => Some(a.event),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let mut want = vec!["malformed_traffic"; 8];
        want.push("message_too_large");
        assert_eq!(events(ToServer), want);
        assert_eq!(events(ToClient), vec!["malformed_traffic"; 8]);
        assert_eq!(h.stats.anomalies_capped, 2 * 992);
        assert!(h.mqtt_types().contains(&(1, ToServer)));
    }

    #[test]
    fn connect_split_in_two_segments_is_found_and_parsed_whole() {
        let mut h = Harness::new(ends(50000, 8080), true);
        h.data(ToServer, &CONNECT[..3]);
        assert!(h.session.deciding());
        h.data(ToServer, &CONNECT[3..]);
        assert_eq!(h.session.proto(), AppProto::Mqtt);
        h.data(ToClient, CONNACK);
        assert_eq!(h.mqtt_types(), vec![(1, ToServer), (2, ToClient)]);
    }

    #[test]
    fn unknown_bytes_on_a_configured_port_take_the_port() {
        let mut h = Harness::new(ends(50000, 1883), true);
        h.data(ToServer, PUBLISH);
        assert_eq!(h.session.proto(), AppProto::Mqtt);
    }

    #[test]
    fn http_on_another_port_fails_at_once() {
        let mut h = Harness::new(ends(50000, 8080), true);
        h.cfg.failed_depth = crate::memcap::ByteSize(0);
        h.data(ToServer, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(h.session.proto(), AppProto::Failed);
        assert!(!h.session.inspecting());
    }

    #[test]
    fn failed_flow_is_reassembled_to_failed_depth_and_reports_overlaps() {
        let mut h = Harness::new(ends(50000, 8080), true);
        h.cfg.failed_depth = crate::memcap::ByteSize(100);
        h.data(ToServer, &[b'x'; 60]);
        assert_eq!(h.session.proto(), AppProto::Failed);
        // The decoy's bytes made detection fail; the real copy that
        // follows is only seen by reassembly, whose anomaly is written.
        h.run(
            ToServer,
            Event::Anomaly(crate::stream::Anomaly::OverlapDifferentData),
        );
        assert!(matches!(
            h.out.records.as_slice(),
            [AppRecord::StreamAnomaly(
                crate::stream::Anomaly::OverlapDifferentData
            )]
        ));
        // 100 bytes a direction: the client's 40 more, then the server's.
        h.data(ToServer, &[b'x'; 40]);
        assert!(h.session.inspecting());
        h.data(ToClient, &[b'y'; 99]);
        assert!(h.session.inspecting());
        h.data(ToClient, &[b'y'; 1]);
        assert!(!h.session.inspecting());
        h.run(
            ToServer,
            Event::Anomaly(crate::stream::Anomaly::OverlapDifferentData),
        );
        assert_eq!(h.out.records.len(), 1);
    }

    #[test]
    fn tls_client_hello_on_mqtt_tls_port_is_tls() {
        let mut h = Harness::new(ends(50000, 8883), true);
        // Hand-built: TLS record header (handshake, TLS 1.0, length 200)
        // and handshake type 1 (ClientHello).
        h.data(
            ToServer,
            &[0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4],
        );
        assert_eq!(h.session.proto(), AppProto::Tls);
        // The TLS parser reads the handshake until it is encrypted.
        assert!(h.session.inspecting());
    }

    #[test]
    fn lost_connect_keeps_probing_and_logs_what_follows() {
        // A clean session on a port no protocol is configured on, minus the
        // CONNECT segment: the broker's answers are recognised mid-stream.
        let mut h = Harness::new(ends(50000, 8080), true);
        h.run(ToServer, Event::Gap(CONNECT.len() as u32));
        h.data(ToClient, CONNACK);
        assert!(h.session.deciding(), "one CONNACK is not enough evidence");
        h.data(ToServer, PUBLISH);
        h.data(ToClient, PUBACK);
        assert_eq!(h.session.proto(), AppProto::Mqtt);
        h.data(ToServer, DISCONNECT);
        h.end();
        // The PUBLISH went to the parser first (client side first), so the
        // PUBACK found it; the CONNACK, unpaired, is logged at once.
        assert_eq!(
            h.mqtt_types(),
            vec![(2, ToClient), (3, ToServer), (4, ToClient), (14, ToServer)]
        );
        assert_eq!(h.session.gaps(), [true, false]);
    }

    #[test]
    fn held_run_is_parsed_before_a_gap() {
        // Mid-stream, port 8080: PUBLISH and DISCONNECT held (the probes
        // wait for the held bytes to double), then bytes are lost. The run
        // is recognised on a last look and parsed before the gap.
        let mut h = Harness::new(ends(50000, 8080), false);
        h.data(ToServer, PUBLISH);
        h.data(ToServer, DISCONNECT);
        assert!(h.session.deciding());
        h.run(ToServer, Event::Gap(100));
        assert_eq!(h.session.proto(), AppProto::Mqtt);
        assert_eq!(h.mqtt_types(), vec![(14, ToServer)]);
        h.end();
        assert_eq!(h.mqtt_types(), vec![(14, ToServer), (3, ToServer)]);
    }

    #[test]
    fn pickup_starting_with_the_broker_is_turned_around() {
        // No handshake, first packet from the broker on a port no protocol
        // is configured on: the flow table took the broker for the client.
        let mut h = Harness::new(ends(8080, 50000), false);
        let mut answers = CONNACK.to_vec();
        answers.extend_from_slice(PUBACK);
        h.data(ToServer, &answers);
        assert_eq!(h.session.proto(), AppProto::Mqtt);
        assert_eq!(h.out.decided, vec![(AppProto::Mqtt, true)]);
        assert_eq!(
            h.ends,
            ends(8080, 50000).swapped(),
            "the caller swapped the flow"
        );
        // After the swap the caller's directions are right again.
        h.data(ToServer, PUBLISH);
        h.data(ToClient, PUBACK);
        h.end();
        let t = h.mqtt_types();
        assert!(t.contains(&(2, ToClient)), "{t:?}");
        assert!(t.contains(&(3, ToServer)), "{t:?}");
    }

    #[test]
    fn handshake_forbids_turning_around() {
        // A handshake says who the client is: a CONNECT from the server
        // side does not decide.
        let mut h = Harness::new(ends(50000, 8080), true);
        h.data(ToClient, CONNECT);
        assert_eq!(h.session.proto(), AppProto::Failed);
        assert!(h.out.decided.iter().all(|(_, s)| !s));
    }

    #[test]
    fn bytes_held_at_the_end_are_parsed() {
        // Mid-stream on a port no protocol is configured on: a PUBLISH
        // alone is not enough to decide; with a DISCONNECT it would be, but
        // the probes run again only once the held bytes doubled. The flow
        // ends first: the last probe decides and the held bytes are parsed.
        let mut h = Harness::new(ends(50000, 8080), false);
        h.data(ToServer, PUBLISH);
        h.data(ToServer, DISCONNECT);
        assert!(h.session.deciding());
        h.end();
        assert_eq!(h.session.proto(), AppProto::Mqtt);
        assert_eq!(h.mqtt_types(), vec![(14, ToServer), (3, ToServer)]);
    }

    #[test]
    fn midstream_bytes_on_a_configured_port_take_the_port_at_once() {
        let mut h = Harness::new(ends(50000, 1883), false);
        h.data(ToServer, &PUBLISH[..4]);
        assert_eq!(h.session.proto(), AppProto::Mqtt);
    }

    #[test]
    fn random_binary_midstream_fails_after_the_depth() {
        let mut h = Harness::new(ends(40000, 40001), false);
        let depth = h.cfg.midstream_depth.0 as usize;
        // Deterministic pseudo-random bytes (xorshift), 64 KiB each way.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut bytes = vec![0u8; 1 << 16];
        for b in bytes.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        for (i, c) in bytes.chunks(1448).enumerate() {
            h.data(ToServer, c);
            if (i + 1) * 1448 < depth {
                assert!(h.session.deciding(), "{i}");
            }
        }
        assert_eq!(h.session.proto(), AppProto::Failed);
        assert_eq!(h.session.memuse(), 0);
        assert_eq!(h.lease.held(), 0);
    }

    #[test]
    fn held_bytes_are_charged_and_released() {
        let mut h = Harness::new(ends(40000, 40001), false);
        h.data(ToServer, &[0x5a; 100]);
        assert!(h.session.deciding());
        assert!(h.lease.held() >= 100);
        h.end();
        assert_eq!(h.lease.held(), 0);
    }

    #[test]
    fn refused_memory_decides_at_once_and_is_counted() {
        // A budget smaller than what detection would hold: the flow is
        // decided on what is known (nothing here) instead of holding more.
        let mut h = Harness::with_cap(ends(40000, 40001), false, 64);
        h.data(ToServer, &PUBLISH[..4]);
        assert!(h.stats.memcap >= 1);
        assert_eq!(h.session.proto(), AppProto::Failed);
        assert_eq!(h.lease.held(), 0);
        h.end();
        assert_eq!(h.lease.held(), 0);
    }
}
