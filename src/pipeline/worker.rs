//! One worker: decode → flow → stream → app for the flows hashed to it, and
//! EVE lines for what they produce. A worker owns all of its state, so no
//! lock is taken per packet.
//!
//! Per TCP segment: the flow table updates counters and TCP state (an RST
//! out of window changes nothing, see [`crate::flow`]); then the segment's
//! ACK goes to the reverse direction's reassembler *before* its payload
//! goes to its own (the ACK covers bytes its sender had received before
//! sending this segment, so a gap it reveals comes first); every
//! reassembly event goes to the flow's app-layer session
//! ([`crate::app::session`]) through one path, and when the session finds
//! the flow's sides reversed the worker swaps them (flow counters and
//! flags, reassemblers, session) before the next packet.
//!
//! Output: each app-layer record goes to detection and is serialised as
//! soon as the parser makes it ([`FlowWriter`]); the worker's EVE buffer is
//! handed to the writer whenever it reaches [`OUTPUT_BLOCK`] bytes, in the
//! middle of a packet if need be ([`Handoff`]): offline the worker waits
//! for room, live it drops the block and counts its lines. So the memory a
//! worker holds for output does not depend on how many records one packet
//! produces.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};

use crate::app::session::{AppStats, Env, ParserFactory, Session as AppSession, SessionSink};
use crate::app::{AppConfig, AppProto, AppRecord, RecordSink, PROTOCOLS};
use crate::capture::LinkType;
use crate::config::Config;
use crate::decode::defrag::{Defrag, Reassembled};
use crate::decode::{ip_proto, tcp_flags, Decoded, Decoder, IpInfo, Packet, TcpSegment, Vlans, L4};
use crate::detect::{
    Alert, DetectState, DetectStats, Engine, FlowDetect, FlowInfo, FlowRef, PacketInfo,
    ThresholdHub,
};
use crate::flow::tcp::TcpState;
use crate::flow::{
    dispatch_hash, worker_of, Direction, EndReason, Endpoint, Flow, FlowIdent, FlowTable,
    PacketMeta, TcpMeta,
};
use crate::memcap::Lease;
use crate::output::alert::{write_alert, AlertFlow};
use crate::output::eve::{self, EventHeader, FlowFacts, Oriented, TcpFacts};
use crate::output::json::Raw;
use crate::output::mask::LogOptions;
use crate::output::sink::{newlines, AlertTap, Block, Tally};
use crate::stream::{self, Reassembler, StreamStats};
use crate::time::Timestamp;

pub use crate::app::session::FlowEnds;

/// A worker hands its EVE lines to the writer once it holds this many
/// bytes (a record or an alert may take it a little past).
pub const OUTPUT_BLOCK: usize = 64 * 1024;

/// What a worker gathers before handing it on when it may wait for the
/// writer (offline: [`Handoff::Wait`]): the writer is woken once per
/// block, and with 64 KiB blocks the wake-ups (a futex call each, and the
/// writer's thread switched in) took 2.8 % of one worker's samples on
/// `mqtt_small` (perf, one worker) and as much again on the writer's
/// core. The queue's bound is still counted in [`OUTPUT_BLOCK`] slots.
pub const WAIT_BLOCK: usize = 8 * OUTPUT_BLOCK;

/// What a block of `size` is allocated with: the record that takes it
/// past `size` then fits without the buffer doubling (a reallocation
/// copying the whole block, once per block before).
const fn block_capacity(size: usize) -> usize {
    size + size / 4
}

/// [`block_capacity`] of an [`OUTPUT_BLOCK`].
const BLOCK_CAPACITY: usize = block_capacity(OUTPUT_BLOCK);

/// Slots of the writer's queue a block of `len` bytes takes: one per
/// [`OUTPUT_BLOCK`] begun.
fn block_slots(len: usize) -> usize {
    len.div_ceil(OUTPUT_BLOCK).max(1)
}

/// Sends a block of EVE lines to the writer, waiting for room. A block
/// longer than [`OUTPUT_BLOCK`] (records of a megabyte SUBSCRIBE run to
/// megabytes) holds its further slots with empty blocks, so the queue
/// never holds more than its length × [`OUTPUT_BLOCK`] bytes, whatever
/// the records. False: the writer is gone.
pub fn send_block(tx: &Sender<Block>, block: Block) -> bool {
    let extra = block_slots(block.bytes.len()) - 1;
    if tx.send(block).is_err() {
        return false;
    }
    (0..extra).all(|_| tx.send(Block::default()).is_ok())
}

/// [`send_block`] without waiting: a block the queue has no room for
/// comes back in `Full`.
///
/// # Errors
/// `Full` (no room for all its slots) or `Disconnected`, with the block.
pub fn try_send_block(tx: &Sender<Block>, block: Block) -> Result<(), TrySendError<Block>> {
    let slots = block_slots(block.bytes.len());
    let room = tx
        .capacity()
        .map_or(usize::MAX, |c| c.saturating_sub(tx.len()));
    if room < slots {
        return Err(TrySendError::Full(block));
    }
    tx.try_send(block)?;
    for _ in 1..slots {
        // Another worker may have taken a slot meanwhile: the block is
        // queued anyway.
        let _ = tx.try_send(Block::default());
    }
    Ok(())
}

/// What later stages keep per flow.
#[derive(Default)]
pub struct FlowState {
    streams: [Reassembler; 2],
    app: AppSession,
    /// Rule state of the flow, valid for engine generation `detect_gen`
    /// (0: not made yet). A reloaded ruleset, or the flow's sides found
    /// reversed, starts it afresh.
    detect: FlowDetect,
    detect_gen: u32,
    /// The flow's Community ID once its first event needed it.
    community: Community,
    /// Its key in the shared thresholds' wait (`DetectState::wait_key`;
    /// 0 until an alert of the flow waits there). 32 bits: it shares
    /// the slot's padding with `detect_gen`, so no flow grows for it.
    wait: u32,
}

impl std::fmt::Debug for FlowState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowState")
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

use community::Community;

/// A flow's Community ID, in a module of its own so that nothing but
/// [`community::Id::of`] can set the bytes an id holds (see
/// [`community::Id::as_str`]).
mod community {
    use crate::flow::community_id::LEN;
    use crate::flow::FlowIdent;

    /// A flow's Community ID, made on first use and kept for the flow's
    /// every later record, alert and flow record (one SHA-1 per flow, not
    /// one per packet that logs; v1 is the same whichever side is the
    /// client, so a flow found reversed keeps it). A thin box: 8 bytes in
    /// the flow's slot, 32 on the heap once made.
    #[derive(Default)]
    pub(super) struct Community(Option<Box<Id>>);

    /// One Community ID: `1:` and 28 base64 characters.
    #[derive(Clone, Copy)]
    pub(super) struct Id([u8; LEN]);

    impl Id {
        /// The id of `ident`'s flow.
        pub(super) fn of(ident: &FlowIdent, seed: u16) -> Id {
            Id(ident.community_id_bytes(seed))
        }

        /// The id as text. Measured reason for `unsafe`: checking the 30
        /// bytes again with `from_utf8` on every event that names the flow
        /// (its records, alerts and flow record) was 5.4 M Ir of 908 M on
        /// mq20, 116 per call.
        #[allow(unsafe_code)]
        pub(super) fn as_str(&self) -> &str {
            debug_assert!(self.0.is_ascii());
            // SAFETY: the field is private to this module and set only in
            // `Id::of`, to `community_id_bytes`, which writes `1:` and
            // characters of the base64 alphabet: ASCII, so UTF-8.
            unsafe { std::str::from_utf8_unchecked(&self.0) }
        }
    }

    impl Community {
        /// The ID, made now if it was not.
        pub(super) fn get(&mut self, ident: &FlowIdent, seed: u16) -> &str {
            self.0
                .get_or_insert_with(|| Box::new(Id::of(ident, seed)))
                .as_str()
        }

        /// The ID at the flow's end: the one kept, else made now on the
        /// stack (a flow that logged nothing before its flow record needs
        /// no box for it).
        pub(super) fn last(&self, ident: &FlowIdent, seed: u16) -> Id {
            self.0
                .as_deref()
                .copied()
                .unwrap_or_else(|| Id::of(ident, seed))
        }

        /// The bytes kept, if any (for the tests).
        #[cfg(test)]
        pub(super) fn bytes(&self) -> Option<&[u8; LEN]> {
            self.0.as_deref().map(|id| &id.0)
        }
    }
}

/// What every worker of one run shares: the memory budgets (global, not
/// per worker) and the checksum decision. Made once per run; a worker
/// clones what it needs.
#[derive(Debug, Clone)]
pub struct RunShared {
    pub memcaps: crate::memcap::Memcaps,
    /// `decoder.checksum_checks`, decided once for the run
    /// (`decode::offload`).
    pub checksum: Arc<crate::decode::offload::Detector>,
    /// `threshold`/`detection_filter` state tracked by address or rule.
    pub thresholds: Arc<ThresholdHub>,
    /// The asset inventory every worker's view is merged into.
    pub assets: Arc<crate::asset::Hub>,
}

impl RunShared {
    /// For a run of one worker.
    pub fn new(cfg: &Config) -> RunShared {
        RunShared::with_workers(cfg, 1)
    }

    /// For a run of `workers` workers (each made with `Worker::with_shared`):
    /// threshold decisions shared by workers wait for all of them, so the
    /// count must be the number of workers that will call
    /// `Worker::packet`/`tick`.
    pub fn with_workers(cfg: &Config, workers: usize) -> RunShared {
        RunShared {
            memcaps: crate::memcap::Memcaps::new(cfg, workers),
            checksum: Arc::new(crate::decode::offload::Detector::new(&cfg.decoder)),
            thresholds: ThresholdHub::new(&cfg.detect, workers),
            // A configuration the hub refuses is reported by `main` before
            // any run; here it only means no inventory.
            assets: Arc::new(
                crate::asset::Hub::new(cfg).unwrap_or_else(|_| crate::asset::Hub::disabled(cfg)),
            ),
        }
    }

    /// The counters of a `stats` record, offline or live: the workers'
    /// (merged into `stats`), then the run's budgets (`*.memuse`) and the
    /// asset inventory's. `detect.alert` counts every alert line written,
    /// the asset hook's included (as Suricata's counts every alert), so a
    /// dashboard's alert total matches the EVE; `asset.alerts` says how
    /// many of them were the inventory's.
    pub fn counters(&self, stats: &WorkerStats) -> Vec<(String, u64)> {
        let mut counters = stats.counters();
        let assets = self.assets.counters();
        let asset_alerts = assets
            .iter()
            .find(|(n, _)| n == "asset.alerts")
            .map_or(0, |(_, v)| *v);
        if let Some((_, v)) = counters.iter_mut().find(|(n, _)| n == "detect.alert") {
            *v = v.saturating_add(asset_alerts);
        }
        counters.extend(self.memcaps.counters());
        counters.extend(assets);
        counters
    }
}

/// Flows per app-layer protocol, indexed by [`AppProto::id`].
const APP_SLOTS: usize = 16;

/// Counters of a worker, merged at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct WorkerStats {
    pub decode: crate::decode::DecodeStats,
    pub defrag: crate::decode::defrag::DefragStats,
    pub flow: crate::flow::FlowStats,
    pub stream: StreamStats,
    /// Flows per decided app protocol, by [`AppProto::id`].
    pub app: [u64; APP_SLOTS],
    /// App-layer counters (memory budget).
    pub app_layer: AppStats,
    /// Rule evaluation.
    pub detect: DetectStats,
    /// Last packet time seen.
    pub last_ts: Timestamp,
}

impl WorkerStats {
    pub fn merge(&mut self, o: &WorkerStats) {
        self.decode.merge(&o.decode);
        self.defrag.merge(&o.defrag);
        self.flow.merge(&o.flow);
        self.stream.merge(&o.stream);
        self.detect.merge(&o.detect);
        self.app_layer.merge(&o.app_layer);
        for (x, y) in self.app.iter_mut().zip(o.app) {
            *x += y;
        }
        self.last_ts = self.last_ts.max(o.last_ts);
    }

    /// Flows whose protocol was decided as `p`.
    pub fn app_flows(&self, p: AppProto) -> u64 {
        self.app.get(usize::from(p.id())).copied().unwrap_or(0)
    }

    /// Every counter as a dotted path below `stats`.
    pub fn counters(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = Vec::new();
        v.extend(
            self.decode
                .counters()
                .into_iter()
                .map(|(k, n)| (k.to_string(), n)),
        );
        v.extend(
            self.defrag
                .counters()
                .into_iter()
                .map(|(k, n)| (k.to_string(), n)),
        );
        v.extend(
            self.flow
                .counters()
                .into_iter()
                .map(|(k, n)| (k.to_string(), n)),
        );
        v.extend(
            self.stream
                .counters()
                .into_iter()
                .map(|(k, n)| (k.to_string(), n)),
        );
        for p in PROTOCOLS {
            v.push((
                format!("app_layer.flow.{}", p.name()),
                self.app_flows(p.proto()),
            ));
        }
        v.push((
            "app_layer.flow.failed_tcp".to_string(),
            self.app_flows(AppProto::Failed),
        ));
        v.push(("app_layer.memcap".to_string(), self.app_layer.memcap));
        v.push((
            "app_layer.anomalies_capped".to_string(),
            self.app_layer.anomalies_capped,
        ));
        v.extend(
            self.detect
                .counters()
                .into_iter()
                .map(|(k, n)| (k.to_string(), n)),
        );
        v
    }
}

/// Creates the app-layer parser of a flow once its protocol is known; `None`
/// means the flow's bytes are not parsed. Called once per TCP flow.
pub type ConsumerFactory = Arc<ParserFactory>;

/// Where a worker's EVE blocks go once they reach [`Handoff::block`] bytes.
#[derive(Debug, Clone)]
pub enum Handoff {
    /// Offline: wait for room in the writer's queue (nothing is lost).
    Wait(Sender<Block>),
    /// Live: never wait; a block the queue has no room for is dropped and
    /// its lines are added to the counter (`output.eve.dropped_lines`).
    Drop(Sender<Block>, Arc<AtomicU64>),
}

impl Handoff {
    /// Bytes gathered before a hand-off: [`WAIT_BLOCK`] when waiting is
    /// allowed; live, [`OUTPUT_BLOCK`], so that lines leave soon and a
    /// block dropped on a full queue loses few of them.
    pub fn block(&self) -> usize {
        match self {
            Handoff::Wait(_) => WAIT_BLOCK,
            Handoff::Drop(..) => OUTPUT_BLOCK,
        }
    }
}

/// A worker's EVE lines not yet handed to the writer.
struct EveOut {
    buf: Vec<u8>,
    /// The object of the record being written, serialised once for the
    /// record and for each of its alerts (reused from record to record).
    record: Vec<u8>,
    handoff: Option<Handoff>,
    /// Bytes of a block: the hand-off's [`Handoff::block`], else
    /// [`OUTPUT_BLOCK`].
    block: usize,
    /// The writer is gone (it stopped on an error): lines are discarded.
    closed: bool,
    /// Most bytes held unsent at once (after a record was written).
    peak: usize,
    /// The alert records in `buf`, by severity, as the worker's asset
    /// view hears of each ([`crate::asset::observe::View::tap`]): a block
    /// leaves with its [`Tally`], so the writer does not read it again.
    alerts: Arc<AlertTap>,
}

impl EveOut {
    /// Hands the buffer on when it reached the block size.
    fn written(&mut self) {
        self.peak = self.peak.max(self.buf.len());
        if self.buf.len() >= self.block && self.handoff.is_some() {
            self.hand_off();
        }
    }

    /// The buffer is taken, with its tally: a new one with room for a
    /// block. Its lines are counted here, by a vectorised newline count
    /// (0.2 instructions a byte; the writer's scan for alerts, which this
    /// replaces, took 0.7).
    fn take(&mut self) -> Block {
        let bytes = std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(block_capacity(self.block)),
        );
        let tally = Tally {
            lines: newlines(&bytes),
            alerts: self.alerts.take(),
        };
        Block { bytes, tally }
    }

    /// Hands whatever is buffered to the writer now (nothing without a
    /// hand-off: the caller takes the buffer).
    fn hand_off(&mut self) {
        if self.handoff.is_none() || self.buf.is_empty() {
            return;
        }
        let block = self.take();
        let Some(h) = self.handoff.as_ref().filter(|_| !self.closed) else {
            return;
        };
        match h {
            Handoff::Wait(tx) => {
                if !send_block(tx, block) {
                    self.closed = true;
                }
            }
            Handoff::Drop(tx, dropped) => match try_send_block(tx, block) {
                Ok(()) => {}
                Err(TrySendError::Full(b)) => {
                    dropped.fetch_add(b.tally.lines, Ordering::Relaxed);
                }
                Err(TrySendError::Disconnected(_)) => self.closed = true,
            },
        }
    }
}

/// What detection and serialisation need, borrowed apart from the flow
/// table.
struct Detecting<'a> {
    engine: &'a Engine,
    gen: u32,
    state: &'a mut DetectState,
    alerts: &'a mut Vec<Alert>,
    out: &'a mut EveOut,
    seed: u16,
    opts: &'a LogOptions,
    assets: &'a mut crate::asset::observe::View,
}

/// What the engine is told about a flow; `ts` is the match time.
///
/// TCP `established` (rule option `flow:established`) keeps Suricata's
/// meaning where both sides are captured — the three-way handshake
/// completed — and still holds on a one-way capture (an asymmetric mirror
/// port) where the handshake cannot be seen whole: the client's ACK after
/// its SYN, the server sending after its SYN/ACK with no client packet
/// captured, or any flow picked up mid-stream. `flow_id` is the ident's
/// (`FlowIdent::flow_id`, a hash the caller computes once per call).
fn flow_info(
    (ident, flow_id): (&FlowIdent, u64),
    tcp_state: TcpState,
    pkts: [u64; 2],
    bytes: [u64; 2],
    ts: Timestamp,
    app: AppProto,
) -> FlowInfo {
    let [to_server, to_client] = pkts;
    let proto = ident.key.proto();
    let established = if proto == ip_proto::TCP {
        match tcp_state {
            TcpState::SynSent => false,
            TcpState::SynRecv => to_server == 0 && to_client > 1,
            _ => true,
        }
    } else {
        to_server > 0 && to_client > 0
    };
    FlowInfo {
        ts,
        flow_id,
        client: ident.client(),
        server: ident.server(),
        proto,
        app_proto: app,
        established,
        bytes,
        pkts,
    }
}

/// The fields a flow's events share; `community` and `vlan` are the flow's,
/// computed by the caller so the header can borrow them, as is `flow_id`
/// (`FlowIdent::flow_id`).
fn event_header<'a>(
    (ident, flow_id): (&FlowIdent, u64),
    app: AppProto,
    community: &'a str,
    vlan: &'a Vlans,
) -> EventHeader<'a> {
    let (c, s) = (ident.client(), ident.server());
    EventHeader {
        flow_id,
        vlan: vlan.as_slice(),
        src_ip: c.addr,
        src_port: c.port,
        dest_ip: s.addr,
        dest_port: s.port,
        proto: ident.key.proto(),
        app_proto: app.eve_name(),
        community_id: community,
    }
}

impl Detecting<'_> {
    /// Writes one alert of the flow `id` in table slot `slot` (`u32::MAX`
    /// once ended), or hands it to the shared threshold table's wait when
    /// its decision is not known yet (`alerted` is set when it is written).
    /// `header` is the flow's, written from the alert's side.
    #[allow(clippy::too_many_arguments)]
    fn alert(
        &mut self,
        alerted: &mut bool,
        (ident, slot, wait): (&FlowIdent, u32, &mut u32),
        header: &EventHeader<'_>,
        ts: Timestamp,
        a: &Alert,
        af: &AlertFlow,
        record: Option<(&str, Raw<'_>)>,
    ) {
        let Some(ticket) = a.undecided else {
            write_alert(&mut self.out.buf, header, ts, a, af, record, self.opts);
            *alerted = true;
            self.assets.alert(ident, ts, &a.rule);
            return;
        };
        let mut line = Vec::new();
        write_alert(&mut line, header, ts, a, af, record, self.opts);
        if *wait == 0 {
            *wait = self.state.wait_key();
        }
        if let Some(line) = self.state.hold(
            ticket,
            FlowRef {
                id: u64::from(*wait),
                slot,
            },
            line,
        ) {
            self.out.buf.extend_from_slice(&line);
            *alerted = true;
            self.assets.alert(ident, ts, &a.rule);
        } else {
            self.assets.held(ticket, ident, ts, &a.rule);
        }
    }

    /// Packet rules on one packet of the flow in table slot `slot`; alerts
    /// are written at once (or held while a threshold decides).
    fn packet(
        &mut self,
        flow: &mut Flow<FlowState>,
        slot: u32,
        dir: Direction,
        ts: Timestamp,
        payload: &[u8],
    ) {
        let app = flow.state.app.proto();
        if flow.state.detect_gen == self.gen
            && !self.engine.packet_needed(&flow.state.detect, dir, app)
        {
            return;
        }
        let ident = flow.ident();
        let flow_id = ident.flow_id();
        let info = flow_info(
            (&ident, flow_id),
            flow.tcp_state,
            flow.pkts,
            flow.bytes,
            ts,
            app,
        );
        self.alerts.clear();
        if flow.state.detect_gen != self.gen {
            flow.state.detect = self.engine.new_flow(info.client.addr, info.server.addr);
            flow.state.detect_gen = self.gen;
        }
        self.engine.packet(
            self.state,
            &mut flow.state.detect,
            &PacketInfo {
                flow: info,
                dir,
                payload,
            },
            self.alerts,
        );
        if self.alerts.is_empty() {
            return;
        }
        let vlan = ident.key.vlan();
        let community = flow.state.community.get(&ident, self.seed);
        let header = event_header((&ident, flow_id), app, community, &vlan);
        let af = AlertFlow {
            pkts: flow.pkts,
            bytes: flow.bytes,
            start: flow.start,
        };
        let alerts = std::mem::take(self.alerts);
        for a in &alerts {
            self.alert(
                &mut flow.alerted,
                (&ident, slot, &mut flow.state.wait),
                &header,
                ts,
                a,
                &af,
                None,
            );
        }
        *self.alerts = alerts;
        self.alerts.clear();
        self.out.written();
    }
}

/// The session's sink for one flow and one call: each record goes through
/// transaction rules (its alerts are written just before it) and is
/// serialised at once; the buffer is handed on at [`OUTPUT_BLOCK`].
struct FlowWriter<'a> {
    d: Detecting<'a>,
    ident: FlowIdent,
    /// The flow's table slot (`u32::MAX` once ended), for held alerts.
    slot: u32,
    /// The flow's `FlowState::wait`.
    wait: &'a mut u32,
    tcp_state: TcpState,
    pkts: [u64; 2],
    bytes: [u64; 2],
    /// Time of the records.
    ts: Timestamp,
    /// Time thresholds count their matches at (later than `ts` for the
    /// records of a flow that ended by timeout).
    match_ts: Timestamp,
    app: AppProto,
    detect: &'a mut FlowDetect,
    detect_gen: &'a mut u32,
    alerted: &'a mut bool,
    /// The flow's Community ID.
    community: &'a mut Community,
    /// The flow's `flow_id` once this call needed it (the same from
    /// either side, so a flow found reversed keeps it).
    flow_id: Option<u64>,
}

impl FlowWriter<'_> {
    /// The ident and its `flow_id`, hashed on the first use of the call.
    fn ident_and_id(&mut self) -> (FlowIdent, u64) {
        let ident = self.ident;
        (ident, *self.flow_id.get_or_insert_with(|| ident.flow_id()))
    }

    /// The flow as the engine sees it now, with rule state made for the
    /// ruleset in force.
    fn info(&mut self) -> FlowInfo {
        let (ident, flow_id) = self.ident_and_id();
        let info = flow_info(
            (&ident, flow_id),
            self.tcp_state,
            self.pkts,
            self.bytes,
            self.match_ts,
            self.app,
        );
        if *self.detect_gen != self.d.gen {
            *self.detect = self.d.engine.new_flow(info.client.addr, info.server.addr);
            *self.detect_gen = self.d.gen;
        }
        info
    }

    /// Writes the alerts the engine left in `d.alerts`, with the record
    /// that raised them.
    fn write_alerts(&mut self, record: Option<(&str, Raw<'_>)>) {
        if self.d.alerts.is_empty() {
            return;
        }
        let (ident, flow_id) = self.ident_and_id();
        let (app, vlan) = (self.app, ident.key.vlan());
        let community = self.community.get(&ident, self.d.seed);
        let header = event_header((&ident, flow_id), app, community, &vlan);
        let af = AlertFlow {
            pkts: self.pkts,
            bytes: self.bytes,
            start: ident.start,
        };
        let alerts = std::mem::take(self.d.alerts);
        for a in &alerts {
            self.d.alert(
                self.alerted,
                (&ident, self.slot, self.wait),
                &header,
                self.ts,
                a,
                &af,
                record,
            );
        }
        *self.d.alerts = alerts;
        self.d.alerts.clear();
    }

    fn write(&mut self, r: &AppRecord) {
        self.d.alerts.clear();
        if self.d.engine.rule_count() > 0 && !r.is_anomaly() {
            let info = self.info();
            let engine = self.d.engine;
            engine.record(self.d.state, self.detect, &info, r, self.d.alerts);
        }
        // The record's object, serialised once for its alerts and itself
        // (it cannot fail: its keys are strings; if it did, the record
        // would be left out and its alerts written without it).
        let mut body = std::mem::take(&mut self.d.out.record);
        body.clear();
        let logged = r.write_loggable(&mut body, self.d.opts).is_ok();
        self.write_alerts(logged.then_some((r.event_type(), Raw(&body))));
        self.d.assets.record(&self.ident, self.ts, r);
        if logged {
            self.write_record(r, Raw(&body));
        }
        self.d.out.record = body;
    }

    /// Writes the record `r`, whose object is `body`.
    fn write_record(&mut self, r: &AppRecord, body: Raw<'_>) {
        let (ident, flow_id) = self.ident_and_id();
        let (app, vlan) = (self.app, ident.key.vlan());
        let community = self.community.get(&ident, self.d.seed);
        let header = event_header((&ident, flow_id), app, community, &vlan);
        // A record whose messages one side started says which side, and is
        // written from that side (as alerts are): who published is then
        // `src_ip`, whether client or broker.
        let buf = &mut self.d.out.buf;
        let (head, extra): (_, &[(&str, &dyn eve::erased::Field)]) = match r.direction() {
            None => (Oriented::client(&header), &[]),
            Some(Direction::ToServer) => (
                Oriented::client(&header),
                &[("direction", &Raw(b"\"to_server\""))],
            ),
            Some(Direction::ToClient) => (
                Oriented::new(&header, true),
                &[("direction", &Raw(b"\"to_client\""))],
            ),
        };
        eve::write_event_with(buf, head, self.ts, r.event_type(), &body, extra);
        self.d.out.written();
    }
}

impl RecordSink for FlowWriter<'_> {
    fn push(&mut self, record: AppRecord) {
        self.write(&record);
    }
}

impl SessionSink for FlowWriter<'_> {
    fn raw(&mut self, dir: Direction, bytes: &[u8]) {
        self.d.alerts.clear();
        if self.d.engine.rule_count() == 0 {
            return;
        }
        let info = self.info();
        let engine = self.d.engine;
        engine.replay(
            self.d.state,
            self.detect,
            &PacketInfo {
                flow: info,
                dir,
                payload: bytes,
            },
            self.d.alerts,
        );
        self.write_alerts(None);
        self.d.out.written();
    }

    fn decided(&mut self, proto: AppProto, swapped: bool) {
        self.app = proto;
        if swapped {
            self.ident = self.ident.swapped();
            self.pkts.swap(0, 1);
            self.bytes.swap(0, 1);
            self.tcp_state = self.tcp_state.mirrored();
            // Rule state was made for the other orientation.
            *self.detect_gen = 0;
        }
    }
}

/// The decoder and defragmenter of a worker's copies of other workers'
/// fragments ([`Worker::fragment_copy`]); their counters are the other
/// workers'.
struct Copies {
    decoder: Decoder,
    defrag: Defrag,
}

/// Whether a worker at `seat` keeps a packet: without a seat every one;
/// with one, those whose flow the reader sends it.
#[inline]
fn keeps(seat: Option<(usize, usize)>, p: &Packet<'_>) -> bool {
    seat.is_none_or(|(i, n)| worker_of(dispatch_hash(p.vlan, p.ip.src, p.ip.dst), n) == i)
}

/// A worker's state.
pub struct Worker {
    /// The run's budgets (and whatever else all workers share).
    shared: RunShared,
    /// The run's checksum decision is known and applied to `decoder`.
    checksum_settled: bool,
    factory: ConsumerFactory,
    decoder: Decoder,
    defrag: Defrag,
    flows: FlowTable<FlowState>,
    /// Reassembly limits, counters and this worker's `stream.memcap` lease.
    stream: stream::Stage,
    app_cfg: AppConfig,
    app_flows: [u64; APP_SLOTS],
    app_stats: AppStats,
    /// This worker's share of `app_layer.memcap`.
    app_lease: Lease,
    community_seed: u16,
    log_flows: bool,
    ended: Vec<(Flow<FlowState>, EndReason)>,
    log_opts: LogOptions,
    last_ts: Timestamp,
    /// The capture's packet time before the next packet, over every
    /// worker's packets, when the reader said so ([`Worker::set_capture_clock`]).
    capture_clock: Timestamp,
    /// The capture's packet time before the packet being processed (this
    /// worker's own when the reader said nothing): what its threshold
    /// matches are late against and its flow's idle time is counted to.
    clock: Timestamp,
    /// EVE lines not yet handed to the writer.
    out: EveOut,
    engine: Arc<Engine>,
    /// Generation of `engine` (starts at 1, bumped by each reload).
    engine_gen: u32,
    detect: DetectState,
    detect_cfg: crate::detect::DetectConfig,
    /// Flow timeouts, for the time a flow ended by timeout ends at.
    flow_cfg: crate::flow::FlowConfig,
    /// Scratch list of the alerts of one packet or record.
    alerts: Vec<Alert>,
    /// This worker's share of the asset inventory.
    assets: crate::asset::observe::View,
    /// Source MAC of the frame being processed (inventory on).
    src_mac: Option<[u8; 6]>,
    /// This worker's index among the run's workers, and their number
    /// ([`Worker::set_seat`]); `None`: it keeps every flow.
    seat: Option<(usize, usize)>,
    /// Copies of other workers' fragments that may carry a tunnel.
    copies: Option<Box<Copies>>,
}

impl Worker {
    /// A worker without rules.
    pub fn new(cfg: &Config) -> Worker {
        Worker::with_engine(cfg, Arc::new(Engine::empty()))
    }

    /// A worker evaluating `engine`'s rules, alone in its run.
    pub fn with_engine(cfg: &Config, engine: Arc<Engine>) -> Worker {
        Worker::with_shared(cfg, engine, &RunShared::new(cfg))
    }

    /// A worker evaluating `engine`'s rules, one of the workers sharing
    /// `shared`.
    pub fn with_shared(cfg: &Config, engine: Arc<Engine>, shared: &RunShared) -> Worker {
        let detect = DetectState::shared(
            &cfg.detect,
            &shared.thresholds,
            &engine,
            cfg.flow.sweep_interval.max(1),
        );
        let mut flows = FlowTable::with_lease(cfg.flow.clone(), shared.memcaps.flow_lease());
        flows.set_service_ports(cfg.app_layer.service_ports());
        shared.assets.set_engine(&engine);
        let assets = crate::asset::observe::View::new(&shared.assets);
        Worker {
            factory: {
                let app = cfg.app_layer.clone();
                Arc::new(move |p, _: &FlowEnds| crate::app::new_consumer(p, &app))
            },
            shared: shared.clone(),
            checksum_settled: false,
            decoder: Decoder::new(cfg.decoder.clone()),
            defrag: Defrag::with_lease(cfg.defrag.clone(), shared.memcaps.defrag.lease()),
            flows,
            stream: stream::Stage::new(cfg.stream.clone(), shared.memcaps.stream.lease()),
            app_cfg: cfg.app_layer.clone(),
            app_flows: [0; APP_SLOTS],
            app_stats: AppStats::default(),
            app_lease: shared.memcaps.app.lease(),
            community_seed: cfg.outputs.community_id_seed,
            log_flows: cfg.outputs.flow,
            ended: Vec::new(),
            log_opts: LogOptions::from_config(&cfg.outputs),
            last_ts: Timestamp(0),
            capture_clock: Timestamp(0),
            clock: Timestamp(0),
            out: EveOut {
                buf: Vec::with_capacity(BLOCK_CAPACITY),
                record: Vec::new(),
                handoff: None,
                block: OUTPUT_BLOCK,
                closed: false,
                peak: 0,
                alerts: assets.tap(),
            },
            engine,
            engine_gen: 1,
            detect,
            detect_cfg: cfg.detect.clone(),
            flow_cfg: cfg.flow.clone(),
            alerts: Vec::new(),
            assets,
            src_mac: None,
            seat: None,
            copies: None,
        }
    }

    /// Switches to a reloaded ruleset. Flows keep their state; their rule
    /// state (flowbits, per-flow thresholds) starts afresh, and so do the
    /// run's shared thresholds (a table per ruleset); the counters go on.
    pub fn set_engine(&mut self, engine: Arc<Engine>) {
        let new = DetectState::shared(
            &self.detect_cfg,
            &self.shared.thresholds,
            &engine,
            self.flow_cfg.sweep_interval.max(1),
        );
        let mut old = std::mem::replace(&mut self.detect, new);
        let assets = &mut self.assets;
        old.leave(&mut self.out.buf, &mut |_, t, alert| {
            assets.decided(t, alert)
        });
        self.out.written();
        self.detect.stats = old.stats;
        self.shared.assets.set_engine(&engine);
        self.engine = engine;
        // 0 means "no rule state yet" in a flow.
        self.engine_gen = self.engine_gen.wrapping_add(1).max(1);
    }

    /// Tells the shared thresholds how far this worker got (after the last
    /// packet or tick, every flow timeout due before its packet time less
    /// one sweep interval has happened), and writes the alerts decided
    /// meanwhile.
    fn sync_detect(&mut self) {
        let (flows, assets) = (&mut self.flows, &mut self.assets);
        self.detect.sync(
            self.last_ts,
            &mut self.out.buf,
            &mut |f: FlowRef, t, alert| {
                assets.decided(t, alert);
                if !alert {
                    return;
                }
                if let Some(flow) = flows.get_mut(f.slot) {
                    if u64::from(flow.state.wait) == f.id {
                        flow.alerted = true;
                    }
                }
            },
        );
        self.assets.tick(self.last_ts, &mut self.out.buf);
        self.out.written();
    }

    /// Replaces the parser factory (tests use it to collect the reassembled
    /// streams).
    pub fn set_consumer_factory(&mut self, f: ConsumerFactory) {
        self.factory = f;
    }

    /// Hands EVE blocks to the writer as they fill (see [`Handoff`]);
    /// without it they wait in the worker until [`Worker::take_output`].
    pub fn set_output(&mut self, handoff: Handoff) {
        self.out.block = handoff.block();
        let room = block_capacity(self.out.block);
        self.out
            .buf
            .reserve(room.saturating_sub(self.out.buf.len()));
        self.out.handoff = Some(handoff);
    }

    /// The writer went away (it stopped on an error): reading can stop.
    pub fn output_closed(&self) -> bool {
        self.out.closed
    }

    /// Most EVE bytes this worker held unsent at any time (after a record
    /// or a packet's alerts were written).
    pub fn peak_pending_output(&self) -> usize {
        self.out.peak
    }

    /// Bytes of `app_layer.memcap` this worker's flows hold now.
    pub fn app_memory_held(&self) -> u64 {
        self.app_lease.held()
    }

    /// Detection's borrows, apart from the flow table.
    fn detecting(&mut self) -> (&mut FlowTable<FlowState>, Detecting<'_>) {
        (
            &mut self.flows,
            Detecting {
                engine: &self.engine,
                gen: self.engine_gen,
                state: &mut self.detect,
                alerts: &mut self.alerts,
                out: &mut self.out,
                seed: self.community_seed,
                opts: &self.log_opts,
                assets: &mut self.assets,
            },
        )
    }

    /// Applies the run's checksum decision once it is known. Until then
    /// (live capture, or a worker used without the offline reader) this
    /// worker's packets feed the decision, and the offload pattern passes
    /// (`decode::offload`).
    fn settle_checksums(&mut self, link: LinkType, data: &[u8], wire_len: u32) {
        use crate::decode::Validation;
        let det = Arc::clone(&self.shared.checksum);
        if det.decided().is_none() {
            if let Some(d) = det.observe(link, data, wire_len) {
                if let Some(w) = d.warning() {
                    eprintln!("wardwatch: {w}");
                }
            }
        }
        match det.decided() {
            Some(v) => {
                self.decoder.set_validation(v, det.offload_detected());
                self.checksum_settled = true;
            }
            None => self.decoder.set_validation(Validation::Lenient, false),
        }
    }

    /// Names the buffer the next frames are read from (once per chunk):
    /// the stream stage keeps references into a mapped capture file
    /// instead of copies ([`stream::Stage::set_source`]).
    pub fn set_source(&mut self, buf: &Arc<crate::capture::Buffer>) {
        self.stream.set_source(buf);
    }

    /// Says that the frame `data` comes a few packets on
    /// ([`FlowTable::expect`]): a hint that changes no result.
    #[inline]
    pub fn expect(&mut self, link: LinkType, data: &[u8]) {
        if link != LinkType::ETHERNET || !self.flows.worth_expecting() {
            return;
        }
        if let Some(t) = crate::decode::dispatch::ethernet_tuple(data) {
            let (src, dst) = (
                Endpoint {
                    addr: t.src.0,
                    port: t.src.1,
                },
                Endpoint {
                    addr: t.dst.0,
                    port: t.dst.1,
                },
            );
            let (key, _) = crate::flow::FlowKey::new(t.vlan, t.proto, src, dst);
            self.flows.expect(&key);
        }
    }

    /// Processes one captured frame.
    #[inline]
    pub fn packet(&mut self, ts: Timestamp, link: LinkType, data: &[u8], wire_len: u32) {
        self.packet_summed(ts, link, data, wire_len, None);
    }

    /// [`Worker::packet`] with the frame's checksum sum when the capture
    /// computed it ([`crate::capture::PacketRef::sum`],
    /// [`crate::decode::Decoder::decode_summed`]).
    pub fn packet_summed(
        &mut self,
        ts: Timestamp,
        link: LinkType,
        data: &[u8],
        wire_len: u32,
        sum: Option<u16>,
    ) {
        self.sync_detect();
        // What a threshold match of this packet is late against (module
        // `detect::deferred`): the same for any number of workers.
        self.clock = std::mem::take(&mut self.capture_clock).max(self.last_ts);
        self.detect.set_clock(Some(self.clock));
        if ts > self.last_ts {
            self.last_ts = ts;
        }
        if !self.checksum_settled {
            self.settle_checksums(link, data, wire_len);
        }
        let reassembled: Reassembled;
        let decoded = match self.decoder.decode_summed(link, data, wire_len, sum) {
            Decoded::Packet(p) => Some((p, 1, u64::from(wire_len))),
            Decoded::Fragment(frag) => {
                // Stale datagrams go first (cheap: the oldest are at the
                // front), so they do not hold memory until the table fills.
                self.defrag.expire(ts);
                match self.defrag.insert(ts, &frag, wire_len) {
                    None => None,
                    Some(r) => {
                        reassembled = r;
                        // A fragment inside a reassembled datagram's tunnel is
                        // not reassembled again. A tunnel inside it may make
                        // its flow another worker's, which keeps it from its
                        // copies ([`Worker::fragment_copy`]).
                        match self.decoder.decode_reassembled(&frag, &reassembled.data) {
                            Decoded::Packet(p) if keeps(self.seat, &p) => {
                                Some((p, reassembled.frames, reassembled.wire_bytes))
                            }
                            _ => None,
                        }
                    }
                }
            }
            Decoded::NotIp | Decoded::Invalid => None,
        };
        let Some((p, frames, wire_bytes)) = decoded else {
            // No flow saw this packet, but its time counts: flows idle past
            // their timeout end now, as on a tick, so the floor published
            // at the next packet holds (module `detect::deferred`).
            self.flows.tick(self.last_ts, &mut self.ended);
            self.flush_ended();
            return;
        };
        self.src_mac = if self.assets.on() {
            self.decoder.macs().map(|[src, _]| src)
        } else {
            None
        };
        self.flow_packet(ts, p.vlan, p.ip, p.l4, frames, wire_bytes);
    }

    /// Processes a copy of a fragment the reader gave every worker of the
    /// run (a fragment whose datagram may carry a tunnel:
    /// [`crate::decode::dispatch::Addresses::may_tunnel`]). Another worker
    /// counts it; this one reassembles its copies apart, with a decoder
    /// and defragmenter of their own whose counters are thrown away, and
    /// keeps a datagram only when the flow it decodes to is this worker's
    /// ([`Worker::set_seat`]), so that flow's packets, whole or fragmented,
    /// meet on one worker. A copy is always a fragment, so the frame
    /// itself never reaches a flow here.
    pub fn fragment_copy(&mut self, ts: Timestamp, link: LinkType, data: &[u8], wire_len: u32) {
        let Some(mut c) = self.copies.take() else {
            return;
        };
        // The copy validates as its owner does (the run's decision, or
        // lenient until there is one), but neither feeds the run's
        // checksum sample (its owner did) nor settles this worker's own
        // decoder: with the copies' decoder in its place, that decoder
        // would never learn the decision.
        let v = self.shared.checksum.decided();
        c.decoder
            .set_validation(v.unwrap_or(crate::decode::Validation::Lenient), false);
        let settled = std::mem::replace(&mut self.checksum_settled, true);
        // The copies' decoder and defragmenter stand in for the worker's
        // own for this frame: the per-packet path stays one function.
        std::mem::swap(&mut self.decoder, &mut c.decoder);
        std::mem::swap(&mut self.defrag, &mut c.defrag);
        self.packet(ts, link, data, wire_len);
        std::mem::swap(&mut self.decoder, &mut c.decoder);
        std::mem::swap(&mut self.defrag, &mut c.defrag);
        self.checksum_settled = settled;
        self.copies = Some(c);
    }

    /// Names this worker's place among the `of` workers of a run, so it
    /// keeps only the reassembled datagrams whose flow the reader sends it
    /// ([`Worker::fragment_copy`]). A worker without a seat keeps all.
    pub fn set_seat(&mut self, cfg: &Config, index: usize, of: usize) {
        self.seat = Some((index, of.max(1)));
        self.copies = Some(Box::new(Copies {
            decoder: Decoder::new(cfg.decoder.clone()),
            defrag: Defrag::with_lease(cfg.defrag.clone(), self.shared.memcaps.defrag.lease()),
        }));
    }

    fn flow_packet(
        &mut self,
        ts: Timestamp,
        vlan: Vlans,
        ip: IpInfo,
        l4: L4<'_>,
        frames: u32,
        wire_bytes: u64,
    ) {
        // ICMP type/code stay out of the key, so a request and its reply are
        // one flow; the first packet's are kept for the Community ID.
        let (ksport, kdport, flags, tcp) = match l4 {
            L4::Tcp(t) => (
                t.src_port,
                t.dst_port,
                t.flags,
                TcpMeta {
                    seq: t.seq,
                    ack: t.ack,
                    flags: t.flags,
                    payload_len: u32::try_from(t.payload.len()).unwrap_or(u32::MAX),
                },
            ),
            L4::Udp(u) => (u.src_port, u.dst_port, 0, TcpMeta::default()),
            L4::Icmp { .. } | L4::Other => (0, 0, 0, TcpMeta::default()),
        };
        let meta = PacketMeta {
            ts,
            clock: self.clock,
            vlan,
            proto: ip.proto,
            src: Endpoint {
                addr: ip.src,
                port: ksport,
            },
            dst: Endpoint {
                addr: ip.dst,
                port: kdport,
            },
            tcp_flags: flags,
            wire_bytes,
            frames,
            icmp: match l4 {
                L4::Icmp { icmp_type, code } => [icmp_type, code],
                _ => [0, 0],
            },
            tcp,
        };
        let (idx, mut dir) = self.flows.update(&meta, &mut self.ended);
        // The source MAC of each direction's first frame, for the inventory
        // (by address: which side is the client does not matter).
        if let (Some(m), Some(f)) = (self.src_mac, self.flows.get_mut(idx)) {
            if f.pkts[dir.index()] == 1 {
                self.assets.mac(ip.src, m, &f.ident());
            }
        }
        self.flush_ended();
        if let L4::Tcp(seg) = l4 {
            dir = self.tcp_segment(idx, dir, ts, seg);
        }
        // Packet rules run after the segment went through reassembly and
        // the app layer, so the packet that decides the flow's protocol is
        // already seen with it (`app-layer-protocol:failed` on a one-packet
        // exfiltration).
        if self.engine.rule_count() > 0 {
            let payload = match l4 {
                L4::Tcp(t) => t.payload,
                L4::Udp(u) => u.payload,
                L4::Icmp { .. } | L4::Other => &[],
            };
            let (flows, mut d) = self.detecting();
            if let Some(flow) = flows.get_mut(idx) {
                d.packet(flow, idx, dir, ts, payload);
            }
        }
    }

    /// Reassembly and the app layer for one TCP segment of flow `idx`;
    /// returns the segment's direction (reversed when the flow's sides
    /// were found swapped).
    fn tcp_segment(
        &mut self,
        idx: u32,
        mut dir: Direction,
        ts: Timestamp,
        seg: TcpSegment<'_>,
    ) -> Direction {
        let (flows, d) = self.detecting_flows();
        let Some(flow) = flows.get_mut(idx) else {
            return dir;
        };
        if !flow.state.app.inspecting() {
            // Not parsed (TLS, failed): hold nothing for it.
            for st in &mut flow.state.streams {
                st.discard(d.stream);
            }
            return dir;
        }
        // A SYN or SYN-ACK seen after the flow began without one (capture
        // reordering) says who the client is, while nothing was decided.
        let syn = seg.flags & (tcp_flags::SYN | tcp_flags::ACK);
        let late = (syn == tcp_flags::SYN && dir == Direction::ToClient)
            || (syn == tcp_flags::SYN | tcp_flags::ACK && dir == Direction::ToServer);
        if late && flow.midstream && flow.state.app.deciding() {
            flow.swap_sides();
            flow.state.streams.swap(0, 1);
            flow.state.app.swap_sides();
            flow.state.detect_gen = 0;
            dir = dir.reverse();
        }
        let oriented = (flow.tcp_flags[0] | flow.tcp_flags[1]) & tcp_flags::SYN != 0;
        let ends = flow.state.app.deciding().then(|| FlowEnds {
            client: flow.client(),
            server: flow.server(),
        });
        let ident = flow.ident();
        let (tcp_state, pkts, bytes) = (flow.tcp_state, flow.pkts, flow.bytes);
        let Flow { state, alerted, .. } = flow;
        let FlowState {
            streams,
            app,
            detect,
            detect_gen,
            community,
            wait,
            ..
        } = state;
        let mut writer = FlowWriter {
            ident,
            slot: idx,
            wait,
            tcp_state,
            pkts,
            bytes,
            ts,
            match_ts: ts,
            app: app.proto(),
            detect,
            detect_gen,
            alerted,
            community,
            flow_id: None,
            d: d.detecting,
        };
        let mut env = Env {
            cfg: d.app_cfg,
            ts,
            ends,
            oriented,
            factory: &**d.factory,
            sink: &mut writer,
            lease: d.lease,
            stats: d.app_stats,
        };
        let [to_server, to_client] = streams;
        let (this, peer) = match dir {
            Direction::ToServer => (to_server, to_client),
            Direction::ToClient => (to_client, to_server),
        };
        // The ACK first: it covers bytes the sender had received before it
        // sent this segment.
        if seg.flags & tcp_flags::ACK != 0 {
            let pdir = dir.reverse();
            peer.peer_ack(d.stream, ts, seg.ack, &mut |ev| {
                app.event(&mut env, pdir, ev);
            });
        }
        this.segment(d.stream, ts, seg.seq, seg.flags, seg.payload, &mut |ev| {
            app.event(&mut env, dir, ev)
        });
        if app.take_swap() {
            flow.swap_sides();
            flow.state.streams.swap(0, 1);
            dir = dir.reverse();
        }
        dir
    }

    /// The worker's parts a TCP segment needs, borrowed apart from the flow
    /// table.
    fn detecting_flows(&mut self) -> (&mut FlowTable<FlowState>, SegmentParts<'_>) {
        (
            &mut self.flows,
            SegmentParts {
                detecting: Detecting {
                    engine: &self.engine,
                    gen: self.engine_gen,
                    state: &mut self.detect,
                    alerts: &mut self.alerts,
                    out: &mut self.out,
                    seed: self.community_seed,
                    opts: &self.log_opts,
                    assets: &mut self.assets,
                },
                app_cfg: &self.app_cfg,
                factory: &self.factory,
                lease: &mut self.app_lease,
                app_stats: &mut self.app_stats,
                stream: &mut self.stream,
            },
        )
    }

    /// Writes records for flows that ended and frees them.
    fn flush_ended(&mut self) {
        if self.ended.is_empty() {
            return;
        }
        // A flow's end is never late (module `detect::deferred`).
        let clock = self.detect.set_clock(None);
        let ended = std::mem::take(&mut self.ended);
        for (flow, reason) in ended {
            self.end_flow(flow, reason);
        }
        self.detect.set_clock(clock);
    }

    fn end_flow(&mut self, mut flow: Flow<FlowState>, reason: EndReason) {
        let ts = flow.last;
        // Thresholds count what the flow's end brings at the time the flow
        // ended: its timeout's expiry, or now (capture end, eviction,
        // reuse) — a time no earlier than this worker's published floor.
        let ended = match reason {
            EndReason::Timeout => flow
                .last
                .plus_secs(self.flow_cfg.timeout(&flow).saturating_add(1)),
            _ => self.last_ts.max(flow.last),
        };
        if flow.key.proto() == ip_proto::TCP && flow.state.app.inspecting() {
            let oriented = (flow.tcp_flags[0] | flow.tcp_flags[1]) & tcp_flags::SYN != 0;
            let ends = FlowEnds {
                client: flow.client(),
                server: flow.server(),
            };
            let ident = flow.ident();
            let (tcp_state, pkts, bytes) = (flow.tcp_state, flow.pkts, flow.bytes);
            let (_, d) = self.detecting_flows();
            let Flow { state, alerted, .. } = &mut flow;
            let FlowState {
                streams,
                app,
                detect,
                detect_gen,
                community,
                wait,
                ..
            } = state;
            let mut writer = FlowWriter {
                ident,
                slot: u32::MAX,
                wait,
                tcp_state,
                pkts,
                bytes,
                ts,
                match_ts: ended,
                app: app.proto(),
                detect,
                detect_gen,
                alerted,
                community,
                flow_id: None,
                d: d.detecting,
            };
            let mut env = Env {
                cfg: d.app_cfg,
                ts,
                ends: Some(ends),
                oriented,
                factory: &**d.factory,
                sink: &mut writer,
                lease: d.lease,
                stats: d.app_stats,
            };
            // Bytes reassembly still holds take the same path as any others,
            // then the session ends (deciding on what is known).
            for (i, st) in streams.iter_mut().enumerate() {
                let dir = if i == 0 {
                    Direction::ToServer
                } else {
                    Direction::ToClient
                };
                st.flush(d.stream, &mut |ev| app.event(&mut env, dir, ev));
            }
            app.end(&mut env);
            if app.take_swap() {
                // Decided at the very end: the flow record takes the sides
                // the bytes gave.
                flow.swap_sides();
            }
        } else {
            for st in &mut flow.state.streams {
                st.discard(&mut self.stream);
            }
        }
        let app = flow.state.app.proto();
        if let Some(n) = self.app_flows.get_mut(usize::from(app.id())) {
            if app != AppProto::Unknown {
                *n += 1;
            }
        }
        if self.assets.on() {
            let engine = &self.engine;
            self.assets.flow_end(
                &crate::asset::observe::FlowEnd {
                    ident: &flow.ident(),
                    app,
                    last: flow.last,
                    pkts: flow.pkts,
                    bytes: flow.bytes,
                },
                &|ip| engine.country_of(ip),
            );
        }
        if !self.log_flows {
            return;
        }
        let ident = flow.ident();
        let vlan = ident.key.vlan();
        let community = flow.state.community.last(&ident, self.community_seed);
        let mut facts = FlowFacts {
            header: event_header((&ident, ident.flow_id()), app, community.as_str(), &vlan),
            pkts: flow.pkts,
            bytes: flow.bytes,
            start: flow.start,
            end: flow.last,
            state: flow.state_name(),
            reason: reason.as_str(),
            alerted: flow.alerted,
            tcp: (flow.key.proto() == ip_proto::TCP).then_some(TcpFacts {
                flags: flow.tcp_flags,
                state: flow.tcp_state.as_str(),
                gap: flow.state.app.gaps(),
            }),
        };
        let id = u64::from(flow.state.wait);
        if !flow.alerted && self.detect.flow_waits(id) {
            // An alert of the flow waits for its threshold decision: the
            // record is written, with the right `alerted`, once it comes.
            let mut without = Vec::new();
            eve::write_flow(&mut without, &facts);
            facts.alerted = true;
            let mut with = Vec::new();
            eve::write_flow(&mut with, &facts);
            self.detect.park_flow(id, [without, with]);
            return;
        }
        eve::write_flow(&mut self.out.buf, &facts);
        self.out.written();
    }

    /// EVE lines produced and not handed on yet (the buffer is left empty).
    pub fn take_output(&mut self) -> Vec<u8> {
        self.out.take().bytes
    }

    /// [`Worker::take_output`] with the lines' [`Tally`].
    pub fn take_block(&mut self) -> Block {
        self.out.take()
    }

    /// Bytes of EVE output waiting.
    pub fn pending_output(&self) -> usize {
        self.out.buf.len()
    }

    /// The next packet is earlier than `clock`, the capture's packet time
    /// before it (other workers' packets included; the reader of a
    /// multi-worker run says so): its threshold matches more than the
    /// margin before `clock` are late whatever the worker count.
    pub fn set_capture_clock(&mut self, clock: Timestamp) {
        self.capture_clock = clock;
    }

    /// Packet time reached `now` on the capture as a whole (other workers'
    /// packets included): flows idle for longer than their timeout end.
    pub fn tick(&mut self, now: Timestamp) {
        self.sync_detect();
        if now > self.last_ts {
            self.last_ts = now;
        }
        self.flows.tick(now, &mut self.ended);
        self.flush_ended();
    }

    /// Ends every flow (the capture is over), handing EVE lines to `emit` a
    /// block at a time (or to the hand-off, when set), and returns the
    /// counters. `end` is the last packet time of the whole capture: flows
    /// idle for longer than their timeout by then end as timed out, the
    /// others as `shutdown` — the same for every number of workers.
    pub fn finish(&mut self, end: Timestamp, emit: &mut dyn FnMut(Vec<u8>)) -> WorkerStats {
        self.finish_blocks(end, &mut |b| emit(b.bytes))
    }

    /// [`Worker::finish`], each block with its [`Tally`].
    pub fn finish_blocks(&mut self, end: Timestamp, emit: &mut dyn FnMut(Block)) -> WorkerStats {
        let end = end.max(self.last_ts);
        self.last_ts = end;
        self.flows.expire(end, &mut self.ended);
        self.flush_ended();
        while self.flows.drain(1024, &mut self.ended) {
            self.flush_ended();
            if self.out.buf.len() >= self.out.block {
                emit(self.out.take());
            }
        }
        self.flush_ended();
        self.sync_detect();
        let assets = &mut self.assets;
        self.detect.leave(&mut self.out.buf, &mut |_, t, alert| {
            assets.decided(t, alert)
        });
        self.assets.finish(self.last_ts, &mut self.out.buf);
        emit(self.out.take());
        self.defrag
            .expire(self.last_ts.plus_secs(u64::from(u32::MAX)));
        self.stats()
    }

    /// The counters so far (live capture reports them periodically).
    pub fn stats(&self) -> WorkerStats {
        WorkerStats {
            decode: self.decoder.stats().clone(),
            defrag: self.defrag.stats().clone(),
            flow: self.flows.stats().clone(),
            stream: self.stream.stats.clone(),
            app: self.app_flows,
            app_layer: self.app_stats.clone(),
            detect: self.detect.stats.clone(),
            last_ts: self.last_ts,
        }
    }
}

/// What a TCP segment's reassembly and app layer borrow from the worker.
struct SegmentParts<'a> {
    detecting: Detecting<'a>,
    app_cfg: &'a AppConfig,
    factory: &'a ConsumerFactory,
    lease: &'a mut Lease,
    app_stats: &'a mut AppStats,
    stream: &'a mut stream::Stage,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn community_kept_as_bytes_reads_as_the_id_made_afresh() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for i in 0..2_000u32 {
            let r = next();
            let (a, b): (std::net::IpAddr, std::net::IpAddr) = if i % 2 == 0 {
                (
                    std::net::IpAddr::from((r as u32).to_be_bytes()),
                    std::net::IpAddr::from(((r >> 32) as u32).to_be_bytes()),
                )
            } else {
                (
                    std::net::IpAddr::from(u128::from(r).rotate_left(64).to_be_bytes()),
                    std::net::IpAddr::from((u128::from(r) * 0x9e37_79b9).to_be_bytes()),
                )
            };
            let proto = [
                ip_proto::TCP,
                ip_proto::UDP,
                ip_proto::ICMP,
                ip_proto::ICMPV6,
                132,
                47,
            ][(i % 6) as usize];
            let (key, _) = crate::flow::FlowKey::new(
                Default::default(),
                proto,
                crate::flow::Endpoint {
                    addr: a,
                    port: (r >> 8) as u16,
                },
                crate::flow::Endpoint {
                    addr: b,
                    port: (r >> 24) as u16,
                },
            );
            let ident = crate::flow::FlowIdent::for_test(
                key,
                i % 3 == 0,
                Timestamp(r),
                [(r >> 40) as u8, (r >> 48) as u8],
            );
            let seed = (r >> 56) as u16 * (i as u16 % 3);
            let mut c = Community::default();
            let want = ident.community_id(seed);
            assert_eq!(c.last(&ident, seed).as_str(), want, "made at the end");
            assert!(c.bytes().is_none(), "nothing kept for the end");
            assert_eq!(c.get(&ident, seed), want);
            assert_eq!(c.last(&ident, seed).as_str(), want, "the one kept");
            let kept = c.bytes().expect("a 30-byte id is kept");
            assert!(std::str::from_utf8(kept).is_ok());
            assert_eq!(c.get(&ident, seed), want, "read again from the bytes kept");
            assert_eq!(c.get(&ident.swapped(), seed), want, "either side");
        }
    }
    use crate::app::{Anomaly, StreamConsumer, StreamContext};
    use crate::capture::Reader;

    /// Reports one anomaly per `data` call and one at the end.
    struct Noisy;

    impl StreamConsumer for Noisy {
        fn data(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, _: &[u8]) {
            ctx.records.push(AppRecord::Anomaly(Anomaly {
                app_proto: AppProto::Mqtt,
                event: "test_data",
                dir,
            }));
        }
        fn gap(&mut self, _: &mut StreamContext<'_>, _: Direction, _: u32) {}
        fn end(&mut self, ctx: &mut StreamContext<'_>) {
            ctx.records.push(AppRecord::Anomaly(Anomaly {
                app_proto: AppProto::Mqtt,
                event: "test_end",
                dir: Direction::ToServer,
            }));
        }
    }

    #[test]
    fn parser_records_become_eve_events_with_the_flow_header() {
        // A real capture: MQTT 3.1.1 on port 8080 (pcaps/README.md).
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/mqtt_nonstd_port.pcap");
        let mut reader = Reader::open(&path).unwrap();
        let mut w = Worker::new(&Config::default());
        w.set_consumer_factory(Arc::new(|p, _| {
            (p == AppProto::Mqtt).then(|| Box::new(Noisy) as Box<dyn StreamConsumer>)
        }));
        while let Some(chunk) = reader.next_chunk(64).unwrap() {
            for p in &chunk.pkts {
                w.packet(p.ts, p.link, chunk.data(p), p.origlen);
            }
        }
        let mut out = w.take_output();
        w.finish(Timestamp(0), &mut |b| out.extend_from_slice(&b));
        let recs: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let anomalies: Vec<_> = recs
            .iter()
            .filter(|r| r["event_type"] == "anomaly")
            .collect();
        assert!(anomalies.len() >= 3, "data in both directions and the end");
        assert_eq!(anomalies.last().unwrap()["anomaly"]["event"], "test_end");
        for a in &anomalies {
            let flow = recs
                .iter()
                .find(|r| r["event_type"] == "flow" && r["flow_id"] == a["flow_id"])
                .expect("an anomaly belongs to a logged flow");
            for k in [
                "flow_id",
                "src_ip",
                "src_port",
                "dest_ip",
                "dest_port",
                "community_id",
            ] {
                assert_eq!(a[k], flow[k], "{k}");
            }
            assert_eq!(a["app_proto"], "mqtt");
            assert_eq!(a["anomaly"]["type"], "applayer");
        }
    }

    /// Hand-built frames (not from a capture): Ethernet II, IPv4 without
    /// options, TCP without options, checksums computed.
    mod wire {
        pub const CLIENT: ([u8; 4], u16) = ([10, 20, 1, 15], 50000);
        pub const FIN: u8 = 0x01;
        pub const SYN: u8 = 0x02;
        pub const RST: u8 = 0x04;
        pub const PSH: u8 = 0x08;
        pub const ACK: u8 = 0x10;

        fn sum16(data: &[u8], mut acc: u32) -> u32 {
            for c in data.chunks(2) {
                acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            }
            acc
        }

        fn fold(mut acc: u32) -> u16 {
            while acc > 0xffff {
                acc = (acc & 0xffff) + (acc >> 16);
            }
            !(acc as u16)
        }

        /// One TCP segment from `src` to `dst`.
        pub fn tcp(
            src: ([u8; 4], u16),
            dst: ([u8; 4], u16),
            seq: u32,
            ack: u32,
            flags: u8,
            payload: &[u8],
        ) -> Vec<u8> {
            let mut t = Vec::with_capacity(20 + payload.len());
            t.extend_from_slice(&src.1.to_be_bytes()); // source port
            t.extend_from_slice(&dst.1.to_be_bytes()); // destination port
            t.extend_from_slice(&seq.to_be_bytes()); // sequence number
            t.extend_from_slice(&ack.to_be_bytes()); // acknowledgement number
            t.push(0x50); // data offset 5 words
            t.push(flags);
            t.extend_from_slice(&[0xff, 0xff]); // window
            t.extend_from_slice(&[0, 0]); // checksum, filled below
            t.extend_from_slice(&[0, 0]); // urgent pointer
            t.extend_from_slice(payload);
            let mut pseudo = Vec::with_capacity(12);
            pseudo.extend_from_slice(&src.0);
            pseudo.extend_from_slice(&dst.0);
            pseudo.extend_from_slice(&[0, 6]); // zero, protocol TCP
            pseudo.extend_from_slice(&(t.len() as u16).to_be_bytes());
            let c = fold(sum16(&t, sum16(&pseudo, 0)));
            t[16..18].copy_from_slice(&c.to_be_bytes());
            let mut ip = vec![0x45, 0]; // version 4, IHL 5; DSCP
            ip.extend_from_slice(&((20 + t.len()) as u16).to_be_bytes()); // total length
            ip.extend_from_slice(&[0, 0, 0x40, 0]); // id, DF
            ip.extend_from_slice(&[64, 6, 0, 0]); // TTL, TCP, checksum below
            ip.extend_from_slice(&src.0);
            ip.extend_from_slice(&dst.0);
            let c = fold(sum16(&ip, 0));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]; // MACs
            f.extend_from_slice(&[0x08, 0x00]); // IPv4
            f.extend_from_slice(&ip);
            f.extend_from_slice(&t);
            f
        }
    }

    /// Runs `frames` (1 ms apart) through a worker and returns its EVE
    /// records and counters.
    fn run_frames(cfg: &Config, frames: &[Vec<u8>]) -> (Vec<serde_json::Value>, WorkerStats) {
        let mut w = Worker::new(cfg);
        for (i, f) in frames.iter().enumerate() {
            let ts = Timestamp::from_parts(1_700_000_000, i as u64 * 1_000_000);
            w.packet(ts, LinkType::ETHERNET, f, f.len() as u32);
        }
        let mut out = w.take_output();
        let stats = w.finish(Timestamp(0), &mut |b| out.extend_from_slice(&b));
        let recs = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (recs, stats)
    }

    // Hand-built MQTT 3.1.1 messages: CONNECT with client id "mon",
    // CONNACK accepted, PUBLISH QoS 0 topic "t" payload "72".
    const CONNECT: &[u8] = &[
        0x10, 0x0f, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x03, b'm',
        b'o', b'n',
    ];
    const CONNACK: &[u8] = &[0x20, 0x02, 0x00, 0x00];
    const PUBLISH: &[u8] = &[0x30, 0x05, 0x00, 0x01, b't', b'7', b'2'];

    fn of_type<'a>(recs: &'a [serde_json::Value], t: &str) -> Vec<&'a serde_json::Value> {
        recs.iter().filter(|r| r["event_type"] == t).collect()
    }

    #[test]
    fn bytes_held_at_flow_end_reach_the_parser() {
        use wire::*;
        // A pure ACK at seq 1000 starts the stream there; the CONNECT at
        // seq 1010 waits behind a 10-byte hole nobody acknowledges until
        // the flow ends (port 8080: content decides).
        let srv = ([10, 10, 5, 10], 8080);
        let frames = [
            tcp(CLIENT, srv, 1000, 1, ACK, &[]),
            tcp(CLIENT, srv, 1010, 1, PSH | ACK, CONNECT),
        ];
        let (recs, _) = run_frames(&Config::default(), &frames);
        let mqtt = of_type(&recs, "mqtt");
        assert_eq!(mqtt.len(), 1, "{recs:?}");
        assert_eq!(mqtt[0]["mqtt"]["connect"]["client_id"], "mon");
        let flow = of_type(&recs, "flow");
        assert_eq!(flow[0]["app_proto"], "mqtt");
        assert_eq!(flow[0]["tcp"]["ts_gap"], true);
    }

    #[test]
    fn a_packet_no_flow_sees_still_ends_idle_flows() {
        use wire::*;
        // Found by fuzzing (pipeline_workers): frames that reach no flow
        // (not IP, invalid) moved the worker's packet time, and so the
        // threshold floor it publishes, without sweeping its flows; a flow
        // that timed out in between ended at the capture's end with a match
        // time behind that floor, decided late with one worker and on time
        // with several. Hand-built: a TCP SYN, then 300 s later a frame of
        // an unknown EtherType: the flow has ended before the capture does.
        let srv = ([10, 10, 5, 10], 1883);
        let mut other = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]; // MACs
        other.extend_from_slice(&[0x88, 0xb5, 0, 0]); // local experimental EtherType
        let mut w = Worker::new(&Config::default());
        let syn = tcp(CLIENT, srv, 1000, 0, SYN, &[]);
        for (secs, f) in [(0, &syn), (300, &other)] {
            let ts = Timestamp::from_parts(1_700_000_000 + secs, 0);
            w.packet(ts, LinkType::ETHERNET, f, f.len() as u32);
        }
        let out = String::from_utf8(w.take_output()).unwrap();
        assert!(out.contains("\"event_type\":\"flow\""), "{out}");
    }

    /// A handshake and a CONNECT/CONNACK on 1883, then `rst` (from the
    /// broker), then a PUBLISH from the client.
    fn session_with_rst(rst_seq: u32) -> (Vec<serde_json::Value>, WorkerStats) {
        use wire::*;
        let srv = ([10, 10, 5, 10], 1883);
        let c = 101 + CONNECT.len() as u32;
        let frames = [
            tcp(CLIENT, srv, 100, 0, SYN, &[]),
            tcp(srv, CLIENT, 5000, 101, SYN | ACK, &[]),
            tcp(CLIENT, srv, 101, 5001, ACK, &[]),
            tcp(CLIENT, srv, 101, 5001, PSH | ACK, CONNECT),
            tcp(srv, CLIENT, 5001, c, PSH | ACK, CONNACK),
            tcp(srv, CLIENT, rst_seq, c, RST | ACK, &[]),
            tcp(CLIENT, srv, c, 5005, PSH | ACK, PUBLISH),
        ];
        run_frames(&Config::default(), &frames)
    }

    #[test]
    fn rst_out_of_window_neither_closes_nor_blinds() {
        // An attacker's blind RST, a million bytes away from the broker's
        // next sequence number (5005).
        let (recs, stats) = session_with_rst(5005 + 1_000_000);
        let flow = of_type(&recs, "flow");
        assert_eq!(flow[0]["flow"]["state"], "established");
        assert_eq!(flow[0]["tcp"]["state"], "established");
        assert_eq!(stats.flow.rst_out_of_window, 1);
        let mqtt = of_type(&recs, "mqtt");
        assert!(mqtt.iter().any(|r| r["mqtt"].get("publish").is_some()));
    }

    #[test]
    fn rst_in_window_closes_the_flow() {
        let (recs, stats) = session_with_rst(5005);
        let flow = of_type(&recs, "flow");
        assert_eq!(flow[0]["flow"]["state"], "closed");
        assert_eq!(stats.flow.rst_out_of_window, 0);
        assert_eq!(stats.flow.rst, 1);
    }

    #[test]
    fn reused_tuple_in_the_same_instant_keeps_both_flow_records_with_two_workers() {
        use wire::*;
        // Found by fuzzing (pipeline_workers): two connections on one tuple
        // starting in the same nanosecond have the same flow id; the
        // shared thresholds' wait kept ended flows' records by flow id, so
        // the second flow's record replaced the first's while both waited
        // for a decision, and the first was never written (in the fuzzed
        // capture, with two workers only: one worker's decision came in
        // time; here nothing moves time, so both lost it). Hand-built frames,
        // all at one instant: a CONNECT without credentials (a rule with a
        // threshold matches it), a RST from the broker, then a SYN on the
        // same tuple (TCP reuse) and a CONNECT with a password.
        let engine = Arc::new(Engine::from_test_rules(
            "alert mqtt any any -> any any (msg:\"anonymous\"; credentials:none; \
                       threshold:type limit, track by_src, count 1, seconds 3600; sid:1;)\n\
                       alert mqtt any any -> any any (msg:\"clear\"; credentials:cleartext; \
                       threshold:type limit, track by_src, count 1, seconds 3600; sid:2;)",
        ));
        let srv = ([10, 10, 5, 10], 1883);
        let mut frames = Vec::new();
        // The second CONNECT (hand-built) has user name "u" and password
        // "p": each flow's match is the first of its rule, so both wait.
        let with_password: &[u8] = &[
            0x10, 0x15, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0xc2, 0x00, 0x3c, 0x00, 0x03,
            b'm', b'o', b'n', 0x00, 0x01, b'u', 0x00, 0x01, b'p',
        ];
        for (isn, connect) in [(100, CONNECT), (9000, with_password)] {
            let c = isn + 1 + connect.len() as u32;
            frames.extend([
                tcp(CLIENT, srv, isn, 0, SYN, &[]),
                tcp(srv, CLIENT, 5000, isn + 1, SYN | ACK, &[]),
                tcp(CLIENT, srv, isn + 1, 5001, ACK, &[]),
                tcp(CLIENT, srv, isn + 1, 5001, PSH | ACK, connect),
                tcp(srv, CLIENT, 5001, c, RST | ACK, &[]),
            ]);
        }
        let cfg = Config::default();
        let ts = Timestamp::from_parts(1_700_000_000, 0);
        let mut flows = Vec::new();
        for workers in [1, 2] {
            let shared = RunShared::with_workers(&cfg, workers);
            let mut ws: Vec<Worker> = (0..workers)
                .map(|_| Worker::with_shared(&cfg, Arc::clone(&engine), &shared))
                .collect();
            for f in &frames {
                ws[0].packet(ts, LinkType::ETHERNET, f, f.len() as u32);
            }
            flows.push(flow_end_reasons(&mut ws, ts));
        }
        assert_eq!(flows[0], ["\"shutdown\"", "\"tcp_reuse\""], "one worker");
        assert_eq!(flows[1], flows[0], "two workers");
    }

    /// Ends every worker's run at `t` and returns the `flow` records'
    /// end reasons (JSON strings), sorted.
    fn flow_end_reasons(ws: &mut [Worker], t: Timestamp) -> Vec<String> {
        let mut out = Vec::new();
        for w in ws {
            out.extend(w.take_output());
            w.finish(t, &mut |b| out.extend_from_slice(&b));
        }
        let recs: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let mut reasons: Vec<String> = of_type(&recs, "flow")
            .iter()
            .map(|f| f["flow"]["reason"].to_string())
            .collect();
        reasons.sort();
        reasons
    }

    #[test]
    fn syn_after_a_time_jump_another_worker_saw_ends_the_closed_flow_by_timeout() {
        use wire::*;
        // Found by fuzzing (pipeline_workers): a closed MQTT flow, then a
        // frame that is not IP 32 s later (worker 0 of two), then a SYN on
        // the flow's tuple. One worker swept the flow at the jump
        // (`timeout`); the flow's worker in a two-worker run had not, and
        // ended it `tcp_reuse`. Hand-built frames: a handshake reset by the
        // broker, a 14-byte Ethernet header with an unknown EtherType, the
        // SYN.
        let srv = ([10, 10, 5, 10], 1883);
        let t0 = Timestamp::from_parts(1_700_000_000, 0);
        let t1 = Timestamp::from_parts(1_700_000_032, 0);
        let closed = [
            tcp(CLIENT, srv, 100, 0, SYN, &[]),
            tcp(srv, CLIENT, 5000, 101, SYN | ACK, &[]),
            tcp(srv, CLIENT, 5001, 101, RST | ACK, &[]),
        ];
        // Destination, source, EtherType 0x3435 (unassigned).
        let not_ip: Vec<u8> = [[0x02; 6], [0x04; 6]]
            .concat()
            .into_iter()
            .chain([0x34, 0x35])
            .collect();
        let syn = tcp(CLIENT, srv, 9000, 0, SYN, &[]);
        let cfg = Config::default();
        let mut reasons = Vec::new();
        for workers in [1, 2] {
            let shared = RunShared::with_workers(&cfg, workers);
            let mut ws: Vec<Worker> = (0..workers)
                .map(|_| Worker::with_shared(&cfg, Arc::new(Engine::empty()), &shared))
                .collect();
            let last = workers - 1;
            for f in &closed {
                ws[last].packet(t0, LinkType::ETHERNET, f, f.len() as u32);
            }
            ws[0].packet(t1, LinkType::ETHERNET, &not_ip, not_ip.len() as u32);
            ws[last].packet(t1, LinkType::ETHERNET, &syn, syn.len() as u32);
            reasons.push(flow_end_reasons(&mut ws, t1));
        }
        assert_eq!(reasons[0], ["\"shutdown\"", "\"timeout\""], "one worker");
        assert_eq!(reasons[1], reasons[0], "two workers");
    }

    #[test]
    fn huge_segments_of_tiny_messages_never_pile_up_output() {
        use wire::*;
        // Hand-built: one client, a handshake, CONNECT/CONNACK, then
        // `segments` segments of 65 000 bytes, each 13 000 five-byte QoS 0
        // PUBLISHes (topic "t", no payload): 13 000 records per packet.
        fn frames(segments: u32) -> Vec<Vec<u8>> {
            let srv = ([10, 10, 5, 10], 1883);
            let tiny = [0x30, 0x03, 0x00, 0x01, b't'];
            let packed: Vec<u8> = tiny.iter().copied().cycle().take(65_000).collect();
            let mut seq = 101 + CONNECT.len() as u32;
            let mut v = vec![
                tcp(CLIENT, srv, 100, 0, SYN, &[]),
                tcp(srv, CLIENT, 5000, 101, SYN | ACK, &[]),
                tcp(CLIENT, srv, 101, 5001, PSH | ACK, CONNECT),
                tcp(srv, CLIENT, 5001, seq, PSH | ACK, CONNACK),
            ];
            for _ in 0..segments {
                v.push(tcp(CLIENT, srv, seq, 5005, ACK, &packed));
                seq += packed.len() as u32;
            }
            v.push(tcp(CLIENT, srv, seq, 5005, FIN | ACK, &[]));
            v
        }
        let mut peaks = Vec::new();
        for segments in [1, 4] {
            let (tx, rx) = crossbeam_channel::bounded::<Block>(2);
            // The counting sink: a slow-ish writer that sees every block
            // (and checks its tally).
            let sink = std::thread::spawn(move || {
                let (mut lines, mut largest) = (0usize, 0usize);
                for b in rx {
                    assert_eq!(b.tally, Tally::scan(&b.bytes));
                    largest = largest.max(b.bytes.len());
                    lines += b.bytes.iter().filter(|&&c| c == b'\n').count();
                }
                (lines, largest)
            });
            let mut w = Worker::new(&Config::default());
            w.set_output(Handoff::Wait(tx.clone()));
            for (i, f) in frames(segments).iter().enumerate() {
                let ts = Timestamp::from_parts(1_700_000_000, i as u64 * 1_000_000);
                w.packet(ts, LinkType::ETHERNET, f, f.len() as u32);
            }
            w.finish_blocks(Timestamp(0), &mut |b| {
                tx.send(b).unwrap();
            });
            let peak = w.peak_pending_output();
            drop(w);
            drop(tx);
            let (lines, largest) = sink.join().unwrap();
            // Every PUBLISH, the CONNECT transaction and the flow.
            assert_eq!(lines, 13_000 * segments as usize + 2);
            // One record is far below 4 KiB: the worker never held more than
            // a block and a record, and no block was bigger.
            assert!(peak < WAIT_BLOCK + 4096, "peak {peak}");
            assert!(largest < WAIT_BLOCK + 4096, "block {largest}");
            // Blocks were handed on as they filled, not at the end.
            assert!(peak >= WAIT_BLOCK, "peak {peak}");
            peaks.push(peak);
        }
        // The bound does not grow with the records a packet produces.
        assert!(peaks[1] < WAIT_BLOCK + 4096 && peaks[0] < WAIT_BLOCK + 4096);
    }

    #[test]
    fn app_memcap_refusals_are_counted_and_released() {
        use wire::*;
        // Hand-built: 20 flows picked up mid-stream on a port no protocol
        // is configured on, each sending 2 000 bytes nothing recognises,
        // under an app-layer budget of 4 KiB: detection cannot hold them
        // all, flows are decided early (counted), and the run ends normally
        // with nothing left charged.
        let mut cfg = Config::default();
        cfg.app_layer.memcap = crate::memcap::ByteSize(4096);
        let shared = RunShared::new(&cfg);
        let mut w = Worker::with_shared(&cfg, Arc::new(Engine::empty()), &shared);
        let mut n = 0u64;
        for i in 0..20u16 {
            let cli = ([10, 20, 1, 15], 40000 + i);
            let srv = ([10, 10, 5, 10], 40404);
            for k in 0..2u32 {
                let f = tcp(cli, srv, 1 + k * 1000, 1, ACK, &[0xa5; 1000]);
                n += 1;
                let ts = Timestamp::from_parts(1_700_000_000, n * 1_000_000);
                w.packet(ts, LinkType::ETHERNET, &f, f.len() as u32);
            }
        }
        let stats = w.finish(Timestamp(0), &mut |_| {});
        assert!(stats.app_layer.memcap > 0);
        assert_eq!(stats.app_flows(AppProto::Failed), 20);
        assert_eq!(w.app_memory_held(), 0);
    }

    #[test]
    fn live_output_drops_whole_blocks_and_counts_every_line() {
        use wire::*;
        // Hand-built: 39 000 QoS 0 PUBLISHes in three 65 000-byte segments.
        let srv = ([10, 10, 5, 10], 1883);
        let tiny = [0x30, 0x03, 0x00, 0x01, b't'];
        let packed: Vec<u8> = tiny.iter().copied().cycle().take(65_000).collect();
        let mut seq = 101 + CONNECT.len() as u32;
        let mut frames = vec![
            tcp(CLIENT, srv, 100, 0, SYN, &[]),
            tcp(CLIENT, srv, 101, 5001, PSH | ACK, CONNECT),
        ];
        for _ in 0..3 {
            frames.push(tcp(CLIENT, srv, seq, 5001, ACK, &packed));
            seq += packed.len() as u32;
        }
        let lines = |b: &[u8]| b.iter().filter(|&&c| c == b'\n').count() as u64;
        // Lines written through `handoff` (and at the end), and those dropped.
        let run = |cap: usize, live: bool| -> (u64, u64) {
            let (tx, rx) = crossbeam_channel::bounded::<Block>(cap);
            let dropped = Arc::new(AtomicU64::new(0));
            let mut w = Worker::new(&Config::default());
            w.set_output(if live {
                Handoff::Drop(tx, Arc::clone(&dropped))
            } else {
                Handoff::Wait(tx)
            });
            for (i, f) in frames.iter().enumerate() {
                let ts = Timestamp::from_parts(1_700_000_000, i as u64 * 1_000_000);
                w.packet(ts, LinkType::ETHERNET, f, f.len() as u32);
            }
            let mut tail = Vec::new();
            w.finish(Timestamp(0), &mut |b| tail.extend_from_slice(&b));
            drop(w);
            let written = rx.iter().map(|b| lines(&b.bytes)).sum::<u64>() + lines(&tail);
            (written, dropped.load(Ordering::Relaxed))
        };
        // Offline, with room for everything: nothing is lost.
        let (all, none) = run(4096, false);
        assert_eq!(none, 0);
        assert!(all > 39_000);
        // Live, with a queue of one block nobody reads until the end: whole
        // blocks are dropped, and every line is either written or counted.
        let (written, lost) = run(1, true);
        assert!(lost > 0, "the queue was full");
        assert_eq!(written + lost, all);
    }

    #[test]
    fn late_syn_ack_turns_a_pickup_around() {
        use wire::*;
        // Hand-built: the capture shows the server's ACK first (port 8080,
        // configured for nothing, so it is taken for the client), then its
        // SYN-ACK (reordered), then the client's CONNECT.
        let srv = ([10, 10, 5, 10], 8080);
        let frames = [
            tcp(srv, CLIENT, 5001, 101, ACK, &[]),
            tcp(srv, CLIENT, 5000, 101, SYN | ACK, &[]),
            tcp(CLIENT, srv, 101, 5001, PSH | ACK, CONNECT),
            tcp(srv, CLIENT, 5001, 118, PSH | ACK, CONNACK),
        ];
        let (recs, _) = run_frames(&Config::default(), &frames);
        let flow = of_type(&recs, "flow");
        assert_eq!(flow[0]["src_port"], 50000);
        assert_eq!(flow[0]["dest_port"], 8080);
        assert_eq!(flow[0]["flow"]["pkts_toserver"], 1);
        let mqtt = of_type(&recs, "mqtt");
        assert_eq!(mqtt.len(), 1);
        assert_eq!(mqtt[0]["src_port"], 50000);
        assert!(mqtt[0]["mqtt"].get("connack").is_some());
    }

    /// Records the calls a parser receives.
    struct Calls(Arc<std::sync::Mutex<Vec<String>>>);

    impl StreamConsumer for Calls {
        fn data(&mut self, _: &mut StreamContext<'_>, dir: Direction, d: &[u8]) {
            self.0
                .lock()
                .unwrap()
                .push(format!("data {dir:?} {}", d.len()));
        }
        fn gap(&mut self, _: &mut StreamContext<'_>, dir: Direction, len: u32) {
            self.0.lock().unwrap().push(format!("gap {dir:?} {len}"));
        }
        fn end(&mut self, _: &mut StreamContext<'_>) {}
    }

    #[test]
    fn a_segments_ack_reaches_the_parser_before_its_payload() {
        use wire::*;
        // Hand-built: after the CONNACK the broker's next 100 bytes are lost
        // by the capture; the client's PUBLISHes acknowledge them.
        // Reassembly declares acknowledged-but-unseen bytes lost at the
        // peer's *next* ACK (the first one may have overtaken its data on
        // the mirror port), and that ACK is taken before the payload of the
        // segment carrying it: the parser hears of the hole before the
        // second PUBLISH, which the client sent after the hole.
        let srv = ([10, 10, 5, 10], 1883);
        let c = 101 + CONNECT.len() as u32;
        let c2 = c + PUBLISH.len() as u32;
        let frames = [
            tcp(CLIENT, srv, 100, 0, SYN, &[]),
            tcp(srv, CLIENT, 5000, 101, SYN | ACK, &[]),
            tcp(CLIENT, srv, 101, 5001, PSH | ACK, CONNECT),
            tcp(srv, CLIENT, 5001, c, PSH | ACK, CONNACK),
            tcp(CLIENT, srv, c, 5105, PSH | ACK, PUBLISH),
            tcp(CLIENT, srv, c2, 5105, PSH | ACK, PUBLISH),
        ];
        let calls: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let shared = Arc::clone(&calls);
        let mut w = Worker::new(&Config::default());
        w.set_consumer_factory(Arc::new(move |_, _| {
            Some(Box::new(Calls(Arc::clone(&shared))) as Box<dyn StreamConsumer>)
        }));
        for (i, f) in frames.iter().enumerate() {
            let ts = Timestamp::from_parts(1_700_000_000, i as u64 * 1_000_000);
            w.packet(ts, LinkType::ETHERNET, f, f.len() as u32);
        }
        w.finish(Timestamp(0), &mut |_| {});
        let calls = calls.lock().unwrap().clone();
        assert_eq!(
            calls,
            vec![
                format!("data ToServer {}", CONNECT.len()),
                "data ToClient 4".to_string(),
                format!("data ToServer {}", PUBLISH.len()),
                "gap ToClient 100".to_string(),
                format!("data ToServer {}", PUBLISH.len()),
            ]
        );
    }
}
#[cfg(test)]
mod size {
    /// What later stages keep in every flow's slot (README "Benchmarks",
    /// per idle flow): 120 bytes on main bc8058c, before the threshold
    /// wait key, which fills padding instead of growing the slot.
    #[test]
    fn flow_state_stays_within_120_bytes() {
        assert!(std::mem::size_of::<super::FlowState>() <= 120);
    }
}
