//! Live mode: workers capture from AF_PACKET rings themselves, or (the
//! `libpcap` feature, `capture.method: libpcap`) one reader thread per
//! libpcap handle hands packets to the workers (see `live/pcap.rs`).
//!
//! This file holds what both methods share — options, rule reloads, the
//! non-blocking hand-over to the writer, opening the output and dropping
//! privileges, the supervising loop (periodic stats, SIGHUP) — and the
//! AF_PACKET method (Linux only).
//!
//! Each worker thread owns one ring per interface (see
//! [`crate::capture::afpacket`]) and a [`Worker`]; the kernel's fanout hash
//! spreads flows over the workers (both directions and every fragment of a
//! conversation to the same one), so there is no dispatcher thread and no
//! copy: packets are processed where the kernel put them. EVE lines go to the
//! same single writer thread as offline.
//!
//! Time: packet time as offline; while a worker's rings are idle it advances
//! packet time from the wall clock after each poll timeout, so flows on a
//! quiet link still time out. Stop: the `stop` flag (set by SIGINT/SIGTERM in
//! `main`, or by a worker whose socket failed) makes every worker end its
//! flows and return; then the final `stats` event is written. Periodic
//! `stats` events every `capture.stats_interval` seconds merge the workers'
//! latest snapshots. SIGHUP (the `reopen` flag) makes the writer reopen the
//! EVE file, for logrotate.
//!
//! Privileges: once the rings and the EVE file are open, the process
//! switches to `capture.user` and drops every capability (and refuses to go
//! on as root unless `capture.allow_root`), before any thread starts.
//!
//! Rings are opened in the calling thread, worker by worker, before any
//! thread starts: a missing interface or a missing privilege is reported at
//! once, and every interface's fanout group has its members in the same
//! order.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Sender};

use crossbeam_channel::Receiver;

use super::worker::WorkerStats;
#[cfg(target_os = "linux")]
use super::worker::{Handoff, Worker};
#[cfg(target_os = "linux")]
use super::{close_writer, InputReport, OUTPUT_BLOCK};
use super::{open_sink, spawn_writer, RunError, RunReport, WriterHandle, WriterLive};
use crate::capture::afpacket::CaptureMethod;
#[cfg(target_os = "linux")]
use crate::capture::afpacket::{poll_rings, Ring, RingStats};
use crate::capture::bpf::Filter;
use crate::capture::privs::{drop_privileges, running_as_root};
use crate::config::Config;
use crate::detect::{Engine, LoadReport};
use crate::output::eve;
use crate::output::sink::{Block, Target};
use crate::pipeline::rules::SharedEngine;
use crate::time::Timestamp;

/// What to capture and where to write.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Interfaces, each captured by every worker.
    pub ifaces: Vec<String>,
    /// Worker threads (at least 1).
    pub workers: usize,
    pub eve: Target,
    /// Set to stop capturing (signals); also set by a failing worker.
    pub stop: Arc<AtomicBool>,
    /// Set to reopen the EVE file (SIGHUP, after logrotate moved it).
    pub reopen: Option<Arc<AtomicBool>>,
    /// The rules the workers evaluate.
    pub engine: Arc<SharedEngine>,
    /// Rebuilds the ruleset when its flag is set (SIGHUP).
    pub reload: Option<Reload>,
    /// Capture filter (`-f`), run by the kernel on every socket.
    pub filter: Option<Filter>,
}

/// How a live run reloads its rules and lists.
#[derive(Clone)]
pub struct Reload {
    /// Set to ask for a reload.
    pub flag: Arc<AtomicBool>,
    /// Builds the new engine (reads the configuration's files again).
    pub load: Arc<dyn Fn() -> Result<(Engine, LoadReport), String> + Send + Sync>,
}

impl std::fmt::Debug for Reload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reload").finish_non_exhaustive()
    }
}

/// Rebuilds the ruleset; a build with any bad rule (or an unreadable list)
/// keeps the running one. Says what happened on stderr (the journal).
fn reload_rules(reload: &Reload, shared: &SharedEngine) {
    match (reload.load)() {
        Ok((engine, report)) if report.errors.is_empty() => {
            let n = engine.rule_count();
            shared.replace(engine);
            eprintln!("wardwatch: rules reloaded: {n} rules");
        }
        Ok((_, report)) => {
            for e in &report.errors {
                eprintln!("wardwatch: reload: {e}");
            }
            eprintln!(
                "wardwatch: reload refused ({} bad rule{}); keeping the previous ruleset",
                report.errors.len(),
                if report.errors.len() == 1 { "" } else { "s" }
            );
        }
        Err(e) => {
            eprintln!("wardwatch: reload refused: {e}; keeping the previous ruleset");
        }
    }
}

#[cfg(all(feature = "libpcap", unix))]
mod pcap;

#[cfg(target_os = "linux")]
/// Blocks taken from one ring before the worker looks at its other rings.
const BLOCKS_PER_TURN: usize = 16;

/// The wall clock as packet time.
fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_parts(d.as_secs(), u64::from(d.subsec_nanos()))
}

#[cfg(target_os = "linux")]
/// A worker's latest counters, for periodic stats.
#[derive(Clone)]
struct Snapshot {
    stats: WorkerStats,
    rings: RingStats,
    /// Per interface: packets and bytes.
    per_iface: Vec<(u64, u64)>,
}

#[cfg(target_os = "linux")]
/// What a worker returns.
struct WorkerEnd {
    snap: Snapshot,
    error: Option<String>,
}

#[cfg(target_os = "linux")]
fn ring_totals(rings: &[Ring]) -> (RingStats, Vec<(u64, u64)>) {
    let mut t = RingStats::default();
    let mut per = Vec::with_capacity(rings.len());
    for r in rings {
        let s = r.stats();
        t.merge(&s);
        per.push((s.packets, s.bytes));
    }
    (t, per)
}

#[cfg(target_os = "linux")]
fn read_kernel(rings: &mut [Ring]) -> Option<String> {
    for r in rings.iter_mut() {
        if let Err(e) = r.read_kernel_stats() {
            return Some(e.to_string());
        }
    }
    None
}

/// What every live worker shares with the others and the main thread.
#[cfg(target_os = "linux")]
struct Common<'a> {
    stop: &'a AtomicBool,
    dropped: &'a Arc<AtomicU64>,
    engine: &'a SharedEngine,
    run: &'a super::worker::RunShared,
}

#[cfg(target_os = "linux")]
fn live_worker(
    idx: usize,
    cfg: &Config,
    mut rings: Vec<Ring>,
    common: &Common<'_>,
    out_tx: &Sender<Block>,
    snap_tx: &Sender<(usize, Snapshot)>,
) -> WorkerEnd {
    let Common {
        stop,
        dropped,
        engine: shared,
        run,
    } = *common;
    let (mut generation, engine) = shared.current();
    let mut w = Worker::with_shared(cfg, engine, run);
    // Never waits for the writer: a full queue drops the block (counted).
    w.set_output(Handoff::Drop(out_tx.clone(), Arc::clone(dropped)));
    let interval = Duration::from_secs(u64::from(cfg.capture.stats_interval));
    let mut last_snap = Instant::now();
    let mut error = None;
    while !stop.load(Ordering::Relaxed) {
        if shared.generation() != generation {
            let (g, engine) = shared.current();
            generation = g;
            w.set_engine(engine);
        }
        let mut any = false;
        for r in rings.iter_mut() {
            for _ in 0..BLOCKS_PER_TURN {
                if r.next_block(|ts, link, data, len| w.packet(ts, link, data, len))
                    .is_none()
                {
                    break;
                }
                any = true;
                if w.output_closed()
                    || (w.pending_output() >= OUTPUT_BLOCK
                        && !offer(out_tx, w.take_block(), dropped))
                {
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
            }
        }
        if !any {
            // Idle: hand over what is pending so the file is current, wait,
            // then let packet time follow the clock.
            if w.pending_output() > 0 && !offer(out_tx, w.take_block(), dropped) {
                break;
            }
            if let Err(e) = poll_rings(&rings, cfg.capture.poll_timeout_ms) {
                error = Some(e.to_string());
                stop.store(true, Ordering::Relaxed);
                break;
            }
            w.tick(now());
        }
        if !interval.is_zero() && last_snap.elapsed() >= interval {
            last_snap = Instant::now();
            if let Some(e) = read_kernel(&mut rings) {
                error = Some(e);
                stop.store(true, Ordering::Relaxed);
                break;
            }
            let (t, per) = ring_totals(&rings);
            // Never blocks: a snapshot the main thread has no room for is
            // superseded by the next one anyway.
            let _ = snap_tx.try_send((
                idx,
                Snapshot {
                    stats: w.stats(),
                    rings: t,
                    per_iface: per,
                },
            ));
        }
    }
    // Blocks the kernel already handed over are still analysed (at most one
    // ring's worth each), so a stop loses nothing that was captured; their
    // lines wait for the writer.
    w.set_output(Handoff::Wait(out_tx.clone()));
    for r in rings.iter_mut() {
        for _ in 0..cfg.capture.block_count {
            if r.next_block(|ts, link, data, len| w.packet(ts, link, data, len))
                .is_none()
            {
                break;
            }
            if w.pending_output() >= OUTPUT_BLOCK {
                let _ = super::worker::send_block(out_tx, w.take_block());
            }
        }
    }
    if let Some(e) = read_kernel(&mut rings) {
        error.get_or_insert(e);
    }
    let stats = w.finish_blocks(now(), &mut |block| {
        let _ = super::worker::send_block(out_tx, block);
    });
    let (t, per) = ring_totals(&rings);
    WorkerEnd {
        snap: Snapshot {
            stats,
            rings: t,
            per_iface: per,
        },
        error,
    }
}

/// The run's last asset records, then the `stats` record `stats` writes
/// once they are (the last block a live run writes: its asset counters
/// include them), and whether the inventory file could be written.
pub(crate) fn with_assets(
    run: &super::worker::RunShared,
    stats: impl FnOnce() -> Vec<u8>,
) -> (Result<(), String>, Block) {
    let mut tail = Block::default();
    let inventory = run.assets.finish(now(), 1, &mut |b| tail.append(&b));
    tail.append(&Block::scanned(stats()));
    (inventory, tail)
}

/// A `stats` record: the capture's counters, the workers' and the run's
/// (budgets, asset inventory: [`RunShared::counters`]), and the EVE lines
/// dropped so far.
///
/// [`RunShared::counters`]: super::worker::RunShared::counters
fn stats_record(
    capture: Vec<(String, u64)>,
    stats: &WorkerStats,
    run: &super::worker::RunShared,
    started: std::time::Instant,
    dropped: &AtomicU64,
) -> Vec<u8> {
    let mut counters = capture;
    counters.extend(run.counters(stats));
    counters.push((
        "output.eve.dropped_lines".into(),
        dropped.load(Ordering::Relaxed),
    ));
    let mut out = Vec::new();
    eve::write_stats(&mut out, now(), started.elapsed().as_secs(), &counters);
    out
}

/// The workers' snapshots merged.
#[cfg(target_os = "linux")]
fn merged(snaps: &[Option<Snapshot>]) -> (WorkerStats, RingStats) {
    let mut stats = WorkerStats::default();
    let mut rings = RingStats::default();
    for s in snaps.iter().flatten() {
        stats.merge(&s.stats);
        rings.merge(&s.rings);
    }
    (stats, rings)
}

/// Hands a block to the writer without waiting: when its queue is full
/// the block is dropped and its lines counted (a stalled EVE reader must
/// not stall the capture). False when the writer is gone.
fn offer(out_tx: &Sender<Block>, block: Block, dropped: &AtomicU64) -> bool {
    match super::worker::try_send_block(out_tx, block) {
        Ok(()) => true,
        Err(crossbeam_channel::TrySendError::Full(b)) => {
            dropped.fetch_add(b.tally.lines, Ordering::Relaxed);
            true
        }
        Err(crossbeam_channel::TrySendError::Disconnected(_)) => false,
    }
}

/// The EVE output of a live run, opened, and its writer thread.
struct Output {
    tx: Sender<Block>,
    writer: WriterHandle,
    /// EVE lines dropped (queue full, socket reader absent).
    dropped: Arc<AtomicU64>,
}

/// Opens the EVE destination, gives up privileges and starts the writer;
/// call it once the capture handles are open and before any worker
/// starts.
///
/// The EVE file is opened while still privileged (a root-owned log
/// directory works; reopening on SIGHUP then needs the directory to be
/// writable by capture.user), then privileges go, before any thread
/// starts.
fn open_output(cfg: &Config, opts: &LiveOptions) -> Result<Output, RunError> {
    let sink = open_sink(&opts.eve, cfg.outputs.sensor_name.as_deref())?;
    let dropped = Arc::new(AtomicU64::new(0));
    if cfg.capture.user.is_empty() && running_as_root() && !cfg.capture.allow_root {
        return Err(RunError(
            "refusing to keep capturing as root: set capture.user (an unprivileged account) \
             or capture.allow_root: true"
                .into(),
        ));
    }
    drop_privileges(&cfg.capture.user).map_err(|e| RunError(e.to_string()))?;
    let (tx, writer) = spawn_writer(
        sink,
        &opts.eve,
        Some(WriterLive {
            reopen: opts.reopen.clone(),
            dropped: Arc::clone(&dropped),
            host: cfg.outputs.sensor_name.clone(),
        }),
    )?;
    Ok(Output {
        tx,
        writer,
        dropped,
    })
}

/// The main thread while capturing: reloads the rules when asked, keeps
/// the latest snapshot of each of `slots` senders (a snapshot is a slot
/// number and its counters) and every `capture.stats_interval` seconds,
/// once every slot has reported, offers `emit`'s stats record to the
/// writer. Returns when `opts.stop` is set.
fn supervise<S>(
    cfg: &Config,
    opts: &LiveOptions,
    out: &Output,
    snaps: &Receiver<(usize, S)>,
    slots: usize,
    mut emit: impl FnMut(&[Option<S>]) -> Vec<u8>,
) {
    let interval = Duration::from_secs(u64::from(cfg.capture.stats_interval));
    let mut latest: Vec<Option<S>> = (0..slots).map(|_| None).collect();
    let mut last = Instant::now();
    while !opts.stop.load(Ordering::Relaxed) {
        if let Some(r) = &opts.reload {
            if r.flag.swap(false, Ordering::Relaxed) {
                reload_rules(r, &opts.engine);
            }
        }
        if let Ok((i, s)) = snaps.recv_timeout(Duration::from_millis(200)) {
            if let Some(slot) = latest.get_mut(i) {
                *slot = Some(s);
            }
        }
        if !interval.is_zero() && last.elapsed() >= interval && latest.iter().all(Option::is_some) {
            last = Instant::now();
            offer(&out.tx, Block::scanned(emit(&latest)), &out.dropped);
        }
    }
}

/// Captures until `opts.stop` is set, then ends every flow and writes the
/// final `stats` event; `capture.method` says how.
///
/// # Errors
/// The capture cannot be opened (or the method is not in this build), the
/// EVE destination cannot be written, or capturing failed while running
/// (the events up to then are written).
pub fn run_live(cfg: &Config, opts: &LiveOptions) -> Result<RunReport, RunError> {
    cfg.capture
        .check()
        .map_err(|e| RunError(format!("configuration: {e}")))?;
    if opts.ifaces.is_empty() {
        return Err(RunError("no interface to capture from".into()));
    }
    match cfg.capture.method {
        #[cfg(target_os = "linux")]
        CaptureMethod::Afpacket => run_afpacket(cfg, opts),
        #[cfg(all(feature = "libpcap", unix))]
        CaptureMethod::Libpcap => pcap::run_pcap(cfg, opts),
        // check() refused what this build cannot do.
        #[allow(unreachable_patterns)]
        m => Err(RunError(format!(
            "capture method {m:?} is not in this build"
        ))),
    }
}

/// Fanout group of the first interface.
#[cfg(target_os = "linux")]
fn fanout_base(cfg: &Config) -> u16 {
    match cfg.capture.fanout_group {
        // The low 16 bits of the pid: unique among running processes often
        // enough, and configurable when not.
        0 => (std::process::id() & 0xffff) as u16,
        g => g,
    }
}

/// AF_PACKET: every worker owns one ring per interface.
#[cfg(target_os = "linux")]
fn run_afpacket(cfg: &Config, opts: &LiveOptions) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let n = opts.workers.max(1);
    let base = fanout_base(cfg);
    let mut all_rings: Vec<Vec<Ring>> = Vec::with_capacity(n);
    for _ in 0..n {
        let mut rings = Vec::with_capacity(opts.ifaces.len());
        for (j, iface) in opts.ifaces.iter().enumerate() {
            let group = base.wrapping_add(j as u16);
            let r = Ring::open(iface, &cfg.capture, group, opts.filter.as_ref())
                .map_err(|e| RunError(format!("cannot capture: {e}")))?;
            rings.push(r);
        }
        all_rings.push(rings);
    }
    let out = open_output(cfg, opts)?;
    let (snap_tx, snap_rx) = bounded::<(usize, Snapshot)>(n.saturating_mul(4));
    let stop: &AtomicBool = &opts.stop;
    let dropped_ref: &Arc<AtomicU64> = &out.dropped;
    let run = super::worker::RunShared::with_workers(cfg, n);
    run.assets.set_live();
    let common = Common {
        stop,
        dropped: dropped_ref,
        engine: &opts.engine,
        run: &run,
    };
    let common = &common;
    let out_ref = &out;

    let ends: Vec<WorkerEnd> = thread::scope(|scope| -> Result<Vec<WorkerEnd>, RunError> {
        let mut handles = Vec::with_capacity(n);
        for (i, rings) in all_rings.into_iter().enumerate() {
            let out_tx = out_ref.tx.clone();
            let snap_tx = snap_tx.clone();
            let h = thread::Builder::new()
                .name(format!("ww-worker-{i}"))
                .spawn_scoped(scope, move || {
                    live_worker(i, cfg, rings, common, &out_tx, &snap_tx)
                });
            match h {
                Ok(h) => handles.push(h),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    for h in handles {
                        let _ = h.join();
                    }
                    return Err(RunError(format!("cannot start worker thread: {e}")));
                }
            }
        }
        drop(snap_tx);
        // Periodic stats from the workers' latest snapshots.
        supervise(cfg, opts, out_ref, &snap_rx, n, |latest| {
            let (stats, rings) = merged(latest);
            stats_record(rings.counters(), &stats, &run, started, dropped_ref)
        });
        let mut ends = Vec::with_capacity(n);
        for h in handles {
            match h.join() {
                Ok(e) => ends.push(e),
                Err(_) => return Err(RunError("a worker thread failed".into())),
            }
        }
        Ok(ends)
    })?;

    let snaps: Vec<Option<Snapshot>> = ends.iter().map(|e| Some(e.snap.clone())).collect();
    let (stats, rings) = merged(&snaps);
    let (inventory, tail) = with_assets(&run, || {
        stats_record(rings.counters(), &stats, &run, started, &out.dropped)
    });
    let eve_lines = close_writer(out.tx, out.writer, tail)?;
    inventory.map_err(RunError)?;
    if let Some(e) = ends.iter().find_map(|e| e.error.clone()) {
        return Err(RunError(format!("capture failed: {e}")));
    }
    let inputs = opts
        .ifaces
        .iter()
        .enumerate()
        .map(|(j, iface)| {
            let (packets, bytes) = ends
                .iter()
                .filter_map(|e| e.snap.per_iface.get(j))
                .fold((0, 0), |(p, b), &(p2, b2)| (p + p2, b + b2));
            InputReport {
                path: iface.into(),
                packets,
                bytes,
                error: None,
            }
        })
        .collect();
    Ok(RunReport {
        inputs,
        stats,
        eve_lines,
        elapsed: started.elapsed(),
        capture: Some(rings),
    })
}
