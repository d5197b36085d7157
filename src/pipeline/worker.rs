//! One worker: decode → flow → stream → app for the flows hashed to it, and
//! EVE lines for the flows that end. A worker owns all of its state, so no
//! lock is taken per packet.

use crate::app::{
    AppConfig, AppProto, AppRecord, Detection, Detector, LogOptions, StreamConsumer, StreamContext,
};
use crate::capture::LinkType;
use crate::config::Config;
use crate::decode::defrag::{Defrag, Reassembled};
use crate::decode::{ip_proto, tcp_flags, Decoded, Decoder, IpInfo, TcpSegment, Vlans, L4};
use crate::detect::{Alert, DetectState, DetectStats, Engine, FlowDetect, FlowInfo, PacketInfo};
use crate::flow::tcp::TcpState;
use crate::flow::{Direction, EndReason, Endpoint, Flow, FlowTable, PacketMeta};
use crate::output::alert::{write_alert, AlertFlow};
use crate::output::eve::{self, EventHeader, EventPrefix, FlowFacts, TcpFacts};
use crate::stream::{Event, Reassembler, StreamConfig, StreamStats};
use crate::time::Timestamp;
use std::sync::Arc;

/// What later stages keep per flow.
#[derive(Default)]
pub struct Session {
    streams: [Reassembler; 2],
    detector: Detector,
    /// Data was lost in this direction.
    gap: [bool; 2],
    /// Reassembly stopped: the protocol has no parser (TLS, failed).
    done: bool,
    consumer: Option<Box<dyn StreamConsumer>>,
    /// Rule state of the flow, valid for engine generation `detect_gen`
    /// (0: not made yet). A reloaded ruleset starts it afresh.
    detect: FlowDetect,
    detect_gen: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("detector", &self.detector)
            .field("gap", &self.gap)
            .finish_non_exhaustive()
    }
}

/// What every worker of one run shares: the memory budgets (global, not
/// per worker). Made once per run; a worker clones what it needs.
#[derive(Debug, Clone)]
pub struct RunShared {
    pub memcaps: crate::memcap::Memcaps,
}

impl RunShared {
    pub fn new(cfg: &Config) -> RunShared {
        RunShared {
            memcaps: crate::memcap::Memcaps::new(cfg),
        }
    }
}

/// Counters of a worker, merged at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct WorkerStats {
    pub decode: crate::decode::DecodeStats,
    pub defrag: crate::decode::defrag::DefragStats,
    pub flow: crate::flow::FlowStats,
    pub stream: StreamStats,
    /// Flows per detected app protocol: mqtt, dicom, tls, failed, hl7.
    pub app: [u64; 5],
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
        for (x, y) in self.app.iter_mut().zip(o.app) {
            *x += y;
        }
        self.last_ts = self.last_ts.max(o.last_ts);
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
        let s = &self.stream;
        for (k, n) in [
            ("tcp.reassembly_gap", s.gaps),
            ("tcp.overlap", s.overlaps),
            ("tcp.overlap_diff_data", s.overlap_diff_data),
            ("tcp.ooo_segments", s.ooo_segments),
            ("tcp.retransmissions", s.retransmissions),
            ("tcp.reassembly_gap_bytes", s.gap_bytes),
            ("tcp.ooo_limit_reached", s.ooo_limit_reached),
            ("app_layer.flow.mqtt", self.app[0]),
            ("app_layer.flow.dicom", self.app[1]),
            ("app_layer.flow.tls", self.app[2]),
            ("app_layer.flow.failed_tcp", self.app[3]),
            ("app_layer.flow.hl7", self.app[4]),
        ] {
            v.push((k.to_string(), n));
        }
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
pub type ConsumerFactory =
    Arc<dyn Fn(AppProto, &FlowEnds) -> Option<Box<dyn StreamConsumer>> + Send + Sync>;

/// The endpoints of a flow, for a [`ConsumerFactory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowEnds {
    pub client: Endpoint,
    pub server: Endpoint,
}

/// The fields a flow's events share; `community` and `vlan` are the flow's,
/// computed by the caller so the header can borrow them.
fn event_header<'a>(
    flow: &Flow<Session>,
    app: AppProto,
    community: &'a str,
    vlan: &'a Vlans,
) -> EventHeader<'a> {
    let (c, s) = (flow.client(), flow.server());
    EventHeader {
        flow_id: flow.flow_id(),
        vlan: vlan.as_slice(),
        src_ip: c.addr,
        src_port: c.port,
        dest_ip: s.addr,
        dest_port: s.port,
        proto: flow.key.proto(),
        app_proto: app.eve_name(),
        community_id: community,
    }
}

/// What detection needs from the worker, borrowed apart from its flow
/// table.
struct Detecting<'a> {
    engine: &'a Engine,
    gen: u64,
    state: &'a mut DetectState,
    alerts: &'a mut Vec<Alert>,
    out: &'a mut Vec<u8>,
    seed: u16,
    opts: &'a LogOptions,
}

/// What the engine is told about a flow.
fn flow_info(flow: &Flow<Session>, ts: Timestamp, app: AppProto) -> FlowInfo {
    let both_ways = flow.pkts[0] > 0 && flow.pkts[1] > 0;
    let established = if flow.key.proto() == ip_proto::TCP {
        match flow.tcp_state {
            TcpState::SynSent | TcpState::SynRecv => false,
            // Picked up mid-stream: data both ways is as good as a handshake.
            TcpState::None => both_ways,
            _ => true,
        }
    } else {
        both_ways
    };
    FlowInfo {
        ts,
        client: flow.client(),
        server: flow.server(),
        proto: flow.key.proto(),
        app_proto: app,
        established,
        bytes: flow.bytes,
        pkts: flow.pkts,
    }
}

impl Detecting<'_> {
    /// The flow's rule state, made on first use and after a reload.
    fn flow_state<'f>(&self, flow: &'f mut Flow<Session>) -> &'f mut FlowDetect {
        if flow.state.detect_gen != self.gen {
            let (c, s) = (flow.client(), flow.server());
            flow.state.detect = self.engine.new_flow(c.addr, s.addr);
            flow.state.detect_gen = self.gen;
        }
        &mut flow.state.detect
    }

    /// Packet rules on one packet; alerts are written at once.
    fn packet(&mut self, flow: &mut Flow<Session>, dir: Direction, ts: Timestamp, payload: &[u8]) {
        let app = flow.state.detector.proto();
        if flow.state.detect_gen == self.gen
            && !self.engine.packet_needed(&flow.state.detect, dir, app)
        {
            return;
        }
        let info = flow_info(flow, ts, app);
        self.alerts.clear();
        let engine = self.engine;
        let fd = self.flow_state(flow);
        engine.packet(
            self.state,
            fd,
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
        flow.alerted = true;
        let (community, vlan) = (flow.community_id(self.seed), flow.key.vlan());
        let header = event_header(flow, app, &community, &vlan);
        let af = alert_flow(flow);
        for a in self.alerts.iter() {
            write_alert(self.out, &header, ts, a, &af, None, self.opts);
        }
        self.alerts.clear();
    }

    /// Transaction rules on the app-layer records of one flow, then the
    /// records: each record's alerts are written just before it.
    fn records(
        &mut self,
        flow: &mut Flow<Session>,
        app: AppProto,
        ts: Timestamp,
        records: &[AppRecord],
    ) {
        let mut found: Vec<(usize, Alert)> = Vec::new();
        if self.engine.rule_count() > 0 {
            let info = flow_info(flow, ts, app);
            let engine = self.engine;
            for (i, r) in records.iter().enumerate() {
                if matches!(r, AppRecord::Anomaly(_)) {
                    continue;
                }
                self.alerts.clear();
                let fd = self.flow_state(flow);
                engine.record(self.state, fd, &info, r, self.alerts);
                found.extend(self.alerts.drain(..).map(|a| (i, a)));
            }
        }
        if !found.is_empty() {
            flow.alerted = true;
        }
        let (community, vlan) = (flow.community_id(self.seed), flow.key.vlan());
        let header = event_header(flow, app, &community, &vlan);
        let af = alert_flow(flow);
        let prefix = EventPrefix::new(&header);
        // A record whose messages one side started says which side, and is
        // written from that side (as alerts are): who published is then
        // `src_ip`, whether client or broker.
        let mut reversed: Option<EventPrefix> = None;
        let mut alerts = found.iter().peekable();
        for (i, r) in records.iter().enumerate() {
            while let Some((_, a)) = alerts.next_if(|(j, _)| *j == i) {
                write_alert(self.out, &header, ts, a, &af, Some(r), self.opts);
            }
            let body = r.loggable(self.opts);
            match r.direction() {
                None => eve::write_event(self.out, &prefix, ts, r.event_type(), &body),
                Some(Direction::ToServer) => eve::write_event_with(
                    self.out,
                    &prefix,
                    ts,
                    r.event_type(),
                    &body,
                    &[("direction", &"to_server")],
                ),
                Some(Direction::ToClient) => {
                    let p = reversed.get_or_insert_with(|| {
                        let mut h = header.clone();
                        std::mem::swap(&mut h.src_ip, &mut h.dest_ip);
                        std::mem::swap(&mut h.src_port, &mut h.dest_port);
                        EventPrefix::new(&h)
                    });
                    eve::write_event_with(
                        self.out,
                        p,
                        ts,
                        r.event_type(),
                        &body,
                        &[("direction", &"to_client")],
                    )
                }
            }
        }
    }
}

fn alert_flow(flow: &Flow<Session>) -> AlertFlow {
    AlertFlow {
        pkts: flow.pkts,
        bytes: flow.bytes,
        start: flow.start,
    }
}

/// A worker's state.
pub struct Worker {
    /// The run's budgets (and whatever else all workers share).
    #[expect(
        dead_code,
        reason = "the stages take their leases in the memory-budget work"
    )]
    shared: RunShared,
    factory: ConsumerFactory,
    decoder: Decoder,
    defrag: Defrag,
    flows: FlowTable<Session>,
    stream_cfg: StreamConfig,
    app_cfg: AppConfig,
    stream_stats: StreamStats,
    app_counts: [u64; 5],
    community_seed: u16,
    log_flows: bool,
    ended: Vec<(Flow<Session>, EndReason)>,
    log_opts: LogOptions,
    last_ts: Timestamp,
    /// EVE lines not yet handed to the writer.
    out: Vec<u8>,
    engine: Arc<Engine>,
    /// Generation of `engine` (starts at 1, bumped by each reload).
    engine_gen: u64,
    detect: DetectState,
    detect_cfg: crate::detect::DetectConfig,
    /// Scratch list of the alerts of one packet or record.
    alerts: Vec<Alert>,
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
        Worker {
            shared: shared.clone(),
            factory: {
                let app = cfg.app_layer.clone();
                Arc::new(move |p, _| crate::app::new_consumer(p, &app))
            },
            decoder: Decoder::new(cfg.decoder.clone()),
            defrag: Defrag::new(cfg.defrag.clone()),
            flows: FlowTable::new(cfg.flow.clone()),
            stream_cfg: cfg.stream.clone(),
            app_cfg: cfg.app_layer.clone(),
            stream_stats: StreamStats::default(),
            app_counts: [0; 5],
            community_seed: cfg.outputs.community_id_seed,
            log_flows: cfg.outputs.flow,
            ended: Vec::new(),
            log_opts: LogOptions {
                unmask: cfg.outputs.unmask_sensitive,
            },
            last_ts: Timestamp(0),
            out: Vec::with_capacity(64 * 1024),
            engine,
            engine_gen: 1,
            detect: DetectState::new(&cfg.detect),
            detect_cfg: cfg.detect.clone(),
            alerts: Vec::new(),
        }
    }

    /// Switches to a reloaded ruleset. Flows keep their state; their rule
    /// state (flowbits, per-flow thresholds) starts afresh, and so do the
    /// worker's thresholds.
    pub fn set_engine(&mut self, engine: Arc<Engine>) {
        self.engine = engine;
        self.engine_gen += 1;
        self.detect = DetectState::new(&self.detect_cfg);
    }

    /// Replaces the parser factory (tests use it to collect the reassembled
    /// streams).
    pub fn set_consumer_factory(&mut self, f: ConsumerFactory) {
        self.factory = f;
    }

    /// Detection's borrows, apart from the flow table.
    fn detecting(&mut self) -> (&mut FlowTable<Session>, Detecting<'_>) {
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
            },
        )
    }

    /// Processes one captured frame.
    pub fn packet(&mut self, ts: Timestamp, link: LinkType, data: &[u8], wire_len: u32) {
        if ts > self.last_ts {
            self.last_ts = ts;
        }
        let reassembled: Reassembled;
        let (vlan, ip, l4, frames, wire_bytes) = match self.decoder.decode(link, data, wire_len) {
            Decoded::Packet(p) => (p.vlan, p.ip, p.l4, 1, u64::from(wire_len)),
            Decoded::Fragment(frag) => {
                // Stale datagrams go first (cheap: the oldest are at the
                // front), so they do not hold memory until the table fills.
                self.defrag.expire(ts);
                let Some(r) = self.defrag.insert(ts, &frag, wire_len) else {
                    return;
                };
                reassembled = r;
                let l4 = self.decoder.decode_l4(frag.ip.proto, &reassembled.data);
                (
                    frag.vlan,
                    frag.ip,
                    l4,
                    reassembled.frames,
                    reassembled.wire_bytes,
                )
            }
            Decoded::NotIp | Decoded::Invalid => return,
        };
        self.flow_packet(ts, vlan, ip, l4, frames, wire_bytes);
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
        let (ksport, kdport, flags) = match l4 {
            L4::Tcp(t) => (t.src_port, t.dst_port, t.flags),
            L4::Udp(u) => (u.src_port, u.dst_port, 0),
            L4::Icmp { .. } | L4::Other => (0, 0, 0),
        };
        let meta = PacketMeta {
            ts,
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
        };
        let (idx, dir) = self.flows.update(&meta, &mut self.ended);
        self.flush_ended();
        if let L4::Tcp(seg) = l4 {
            self.tcp_segment(idx, dir, ts, seg);
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
                d.packet(flow, dir, ts, payload);
            }
        }
    }

    /// Reassembly and the app layer for one TCP segment of flow `idx`.
    fn tcp_segment(&mut self, idx: u32, dir: Direction, ts: Timestamp, seg: TcpSegment<'_>) {
        let Some(flow) = self.flows.get_mut(idx) else {
            return;
        };
        if flow.state.done {
            return;
        }
        // The endpoints as addresses are needed only while the protocol is
        // undecided (for detection and the parser factory): not per packet.
        let ends = (flow.state.detector.proto() == AppProto::Unknown).then(|| FlowEnds {
            client: flow.client(),
            server: flow.server(),
        });
        let server_port = ends.map_or(0, |e| e.server.port);
        let s = &mut flow.state;
        let mut batch: Vec<AppRecord> = Vec::new();
        let Session {
            streams,
            detector,
            gap,
            done,
            consumer,
            ..
        } = s;
        let [to_server, to_client] = streams;
        let (this, peer) = match dir {
            Direction::ToServer => (to_server, to_client),
            Direction::ToClient => (to_client, to_server),
        };
        let app_cfg = &self.app_cfg;
        let factory = &self.factory;
        let mut deliver = |dir: Direction, ev: Event<'_>| match ev {
            Event::Data(bytes) => {
                if detector.proto() == AppProto::Unknown {
                    if let Detection::Decided(p) = detector.feed(app_cfg, server_port, dir, bytes) {
                        *consumer = ends.and_then(|e| factory(p, &e));
                        *done =
                            consumer.is_none() && !matches!(p, AppProto::Mqtt | AppProto::Dicom);
                        let held = detector.take_pending();
                        if let Some(c) = consumer.as_mut() {
                            for (d, b) in [Direction::ToServer, Direction::ToClient]
                                .into_iter()
                                .zip(held)
                            {
                                if !b.is_empty() {
                                    let mut ctx = StreamContext {
                                        ts,
                                        records: &mut batch,
                                    };
                                    c.data(&mut ctx, d, &b);
                                }
                            }
                        }
                    }
                }
                if let Some(c) = consumer.as_mut() {
                    let mut ctx = StreamContext {
                        ts,
                        records: &mut batch,
                    };
                    c.data(&mut ctx, dir, bytes);
                }
            }
            Event::Gap(len) => {
                gap[dir.index()] = true;
                if detector.proto() == AppProto::Unknown {
                    // Detection cannot see past a hole: decide on what is
                    // known, and let a parser resynchronise after the gap.
                    let p = detector.finish(app_cfg, server_port);
                    *consumer = ends.and_then(|e| factory(p, &e));
                    *done = consumer.is_none() && !matches!(p, AppProto::Mqtt | AppProto::Dicom);
                    detector.take_pending();
                }
                if let Some(c) = consumer.as_mut() {
                    let mut ctx = StreamContext {
                        ts,
                        records: &mut batch,
                    };
                    c.gap(&mut ctx, dir, len);
                }
            }
        };
        this.segment(
            &self.stream_cfg,
            &mut self.stream_stats,
            seg.seq,
            seg.flags,
            seg.payload,
            &mut |ev| deliver(dir, ev),
        );
        if seg.flags & tcp_flags::ACK != 0 {
            let pdir = dir.reverse();
            peer.peer_ack(&mut self.stream_stats, seg.ack, &mut |ev| deliver(pdir, ev));
        }
        if !batch.is_empty() {
            let app = flow.state.detector.proto();
            let (flows, mut d) = self.detecting();
            if let Some(flow) = flows.get_mut(idx) {
                d.records(flow, app, ts, &batch);
            }
        }
    }

    /// Writes records for flows that ended and frees them.
    fn flush_ended(&mut self) {
        let ended = std::mem::take(&mut self.ended);
        for (flow, reason) in ended {
            self.end_flow(flow, reason);
        }
    }

    fn end_flow(&mut self, mut flow: Flow<Session>, reason: EndReason) {
        let server_port = flow.server().port;
        let ts = flow.last;
        let mut batch: Vec<AppRecord> = Vec::new();
        if flow.key.proto() == ip_proto::TCP && !flow.state.done {
            let Session {
                streams,
                detector,
                gap,
                consumer,
                ..
            } = &mut flow.state;
            for (i, st) in streams.iter_mut().enumerate() {
                let dir = if i == 0 {
                    Direction::ToServer
                } else {
                    Direction::ToClient
                };
                st.flush(&mut self.stream_stats, &mut |ev| {
                    let mut ctx = StreamContext {
                        ts,
                        records: &mut batch,
                    };
                    match ev {
                        Event::Data(bytes) => {
                            if detector.proto() == AppProto::Unknown {
                                detector.feed(&self.app_cfg, server_port, dir, bytes);
                            }
                            if let Some(c) = consumer.as_mut() {
                                c.data(&mut ctx, dir, bytes);
                            }
                        }
                        Event::Gap(len) => {
                            gap[i] = true;
                            if let Some(c) = consumer.as_mut() {
                                c.gap(&mut ctx, dir, len);
                            }
                        }
                    }
                });
            }
        }
        let app = flow.state.detector.finish(&self.app_cfg, server_port);
        if let Some(c) = flow.state.consumer.as_mut() {
            c.end(&mut StreamContext {
                ts,
                records: &mut batch,
            });
        }
        if !batch.is_empty() {
            self.detecting().1.records(&mut flow, app, ts, &batch);
        }
        match app {
            AppProto::Mqtt => self.app_counts[0] += 1,
            AppProto::Dicom => self.app_counts[1] += 1,
            AppProto::Tls => self.app_counts[2] += 1,
            AppProto::Failed => self.app_counts[3] += 1,
            AppProto::Hl7 => self.app_counts[4] += 1,
            AppProto::Unknown => {}
        }
        if !self.log_flows {
            return;
        }
        let (community, vlan) = (flow.community_id(self.community_seed), flow.key.vlan());
        let facts = FlowFacts {
            header: event_header(&flow, app, &community, &vlan),
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
                gap: flow.state.gap,
            }),
        };
        eve::write_flow(&mut self.out, &facts);
    }

    /// EVE lines produced so far (the buffer is left empty).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.out, Vec::with_capacity(64 * 1024))
    }

    /// Bytes of EVE output waiting.
    pub fn pending_output(&self) -> usize {
        self.out.len()
    }

    /// Packet time reached `now` on the capture as a whole (other workers'
    /// packets included): flows idle for longer than their timeout end.
    pub fn tick(&mut self, now: Timestamp) {
        if now > self.last_ts {
            self.last_ts = now;
        }
        self.flows.tick(now, &mut self.ended);
        self.flush_ended();
    }

    /// Ends every flow (the capture is over), handing EVE lines to `emit` a
    /// block at a time, and returns the counters. `end` is the last packet
    /// time of the whole capture: flows idle for longer than their timeout
    /// by then end as timed out, the others as `shutdown` — the same for
    /// every number of workers.
    pub fn finish(&mut self, end: Timestamp, emit: &mut dyn FnMut(Vec<u8>)) -> WorkerStats {
        let end = end.max(self.last_ts);
        self.last_ts = end;
        self.flows.expire(end, &mut self.ended);
        self.flush_ended();
        while self.flows.drain(1024, &mut self.ended) {
            self.flush_ended();
            if self.out.len() >= 64 * 1024 {
                emit(self.take_output());
            }
        }
        self.flush_ended();
        emit(self.take_output());
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
            stream: self.stream_stats.clone(),
            app: self.app_counts,
            detect: self.detect.stats.clone(),
            last_ts: self.last_ts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Anomaly;
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
}
