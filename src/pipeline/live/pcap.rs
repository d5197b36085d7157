//! Live capture through libpcap (`capture.method: libpcap`, the `libpcap`
//! feature): one handle per interface ([`PcapHandle`]).
//!
//! There is no kernel fanout, so each interface has one reader thread that
//! picks every packet's worker by the offline pipeline's symmetric flow
//! hash ([`Dispatch`]) and hands the workers [`Batch`]es, as the offline
//! reader does. libpcap lends a packet for the callback only, so the
//! reader copies it into the batch of its worker (one copy per packet, the
//! price of not owning the buffer). With one worker and one interface the
//! worker reads the handle itself: no thread hop, no copy.
//!
//! Everything else is the AF_PACKET live mode's (see `live.rs`): periodic
//! and final `stats` with libpcap's counters (`pcap_stats`: kernel
//! packets, drops and interface drops), SIGINT/SIGTERM stop, SIGHUP reopens the EVE
//! file and reloads the rules (workers take the new engine when its
//! generation moves), privileges dropped after opening, non-blocking
//! hand-over of EVE lines to the writer.
//!
//! Stop: readers see the flag after their current read (at most
//! `capture.poll_timeout_ms`), read what libpcap still holds (bounded), send
//! their last batches and end; workers end once every reader is gone and
//! their queue is empty.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};

use super::super::worker::{Handoff, Worker, WorkerStats};
use super::super::{
    close_writer, Batch, Dispatch, InputReport, RunError, RunReport, OUTPUT_BLOCK, WORKER_QUEUE,
};
use super::{now, offer, open_output, stats_record, supervise, LiveOptions, Output};
use crate::capture::libpcap::{PcapHandle, PcapStats};
use crate::capture::{Buffer, LinkType, PacketRef};
use crate::config::Config;
use crate::output::sink::Block;
use crate::pipeline::rules::SharedEngine;
use crate::time::Timestamp;

/// Packets taken from libpcap per read.
const READ_BATCH: usize = 1024;
/// Packets read at stop from what libpcap still holds, per handle.
const DRAIN_MAX: usize = 1 << 20;

/// Counters of one thread, for periodic and final stats.
#[derive(Clone, Default)]
struct Snap {
    stats: WorkerStats,
    capture: PcapStats,
    /// The interface whose capture counters these are (readers, and the
    /// worker that reads its handle itself).
    iface: Option<usize>,
}

/// What a thread returns.
struct End {
    snap: Snap,
    error: Option<String>,
}

/// What the threads share.
struct Shared<'a> {
    cfg: &'a Config,
    stop: &'a AtomicBool,
    dropped: &'a Arc<AtomicU64>,
    engine: &'a SharedEngine,
    snaps: Sender<(usize, Snap)>,
    run: crate::pipeline::worker::RunShared,
}

impl Shared<'_> {
    fn interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.cfg.capture.stats_interval))
    }
}

/// Takes the current engine when a reload replaced it.
fn follow_engine(shared: &SharedEngine, generation: &mut u64, w: &mut Worker) {
    if shared.generation() != *generation {
        let (g, engine) = shared.current();
        *generation = g;
        w.set_engine(engine);
    }
}

/// Reads every interface's counters from libpcap; the first failure.
fn read_stats(h: &mut PcapHandle) -> Option<String> {
    h.read_kernel_stats().err()
}

/// Reads at stop what libpcap still holds (bounded, never waits).
fn drain(h: &mut PcapHandle, mut each: impl FnMut(Timestamp, LinkType, &[u8], u32)) {
    let mut left = DRAIN_MAX;
    while left > 0 {
        match h.read_now(left.min(READ_BATCH), &mut each) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

/// One worker and one interface: the worker reads the handle itself.
fn inline_worker(mut h: PcapHandle, sh: &Shared<'_>, out_tx: &Sender<Block>) -> End {
    let (mut generation, engine) = sh.engine.current();
    let mut w = Worker::with_shared(sh.cfg, engine, &sh.run);
    // Never waits for the writer: a full queue drops the block (counted).
    w.set_output(Handoff::Drop(out_tx.clone(), Arc::clone(sh.dropped)));
    let interval = sh.interval();
    let mut last_snap = Instant::now();
    let mut error = None;
    while !sh.stop.load(Ordering::Relaxed) {
        follow_engine(sh.engine, &mut generation, &mut w);
        match h.read(READ_BATCH, |ts, link, data, len| {
            w.packet(ts, link, data, len)
        }) {
            Ok(0) => {
                // Idle: hand over what is pending, let packet time follow
                // the clock.
                if w.pending_output() > 0 && !offer(out_tx, w.take_block(), sh.dropped) {
                    sh.stop.store(true, Ordering::Relaxed);
                    break;
                }
                w.tick(now());
            }
            Ok(_) => {
                if w.output_closed()
                    || (w.pending_output() >= OUTPUT_BLOCK
                        && !offer(out_tx, w.take_block(), sh.dropped))
                {
                    sh.stop.store(true, Ordering::Relaxed);
                    break;
                }
            }
            Err(e) => {
                error = Some(e);
                sh.stop.store(true, Ordering::Relaxed);
                break;
            }
        }
        if !interval.is_zero() && last_snap.elapsed() >= interval {
            last_snap = Instant::now();
            if let Some(e) = read_stats(&mut h) {
                error = Some(e);
                sh.stop.store(true, Ordering::Relaxed);
                break;
            }
            let _ = sh.snaps.try_send((
                0,
                Snap {
                    stats: w.stats(),
                    capture: h.stats(),
                    iface: Some(0),
                },
            ));
        }
    }
    if error.is_none() {
        // What libpcap still holds is analysed; its lines wait for the writer.
        w.set_output(Handoff::Wait(out_tx.clone()));
        drain(&mut h, |ts, link, data, len| w.packet(ts, link, data, len));
    }
    if let Some(e) = read_stats(&mut h) {
        error.get_or_insert(e);
    }
    let stats = w.finish_blocks(now(), &mut |block| {
        let _ = crate::pipeline::worker::send_block(out_tx, block);
    });
    End {
        snap: Snap {
            stats,
            capture: h.stats(),
            iface: Some(0),
        },
        error,
    }
}

/// A worker fed by the readers: worker `slot` of `of`.
fn batch_worker(
    slot: usize,
    of: usize,
    rx: &Receiver<Batch>,
    sh: &Shared<'_>,
    out_tx: &Sender<Block>,
) -> End {
    let (mut generation, engine) = sh.engine.current();
    let mut w = Worker::with_shared(sh.cfg, engine, &sh.run);
    // Never waits for the writer: a full queue drops the block (counted).
    w.set_output(Handoff::Drop(out_tx.clone(), Arc::clone(sh.dropped)));
    w.set_seat(sh.cfg, slot, of);
    let interval = sh.interval();
    let idle = Duration::from_millis(u64::from(sh.cfg.capture.poll_timeout_ms));
    let mut last_snap = Instant::now();
    let mut now_ts = Timestamp(0);
    // Ends when every reader is gone and the queue is empty: what was
    // captured is analysed, even after a stop.
    loop {
        follow_engine(sh.engine, &mut generation, &mut w);
        match rx.recv_timeout(idle) {
            Ok(batch) => {
                batch.feed(&mut w, &mut now_ts);
                if w.output_closed()
                    || (w.pending_output() >= OUTPUT_BLOCK
                        && !offer(out_tx, w.take_block(), sh.dropped))
                {
                    // The writer is gone: stop everything.
                    sh.stop.store(true, Ordering::Relaxed);
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if w.pending_output() > 0 && !offer(out_tx, w.take_block(), sh.dropped) {
                    sh.stop.store(true, Ordering::Relaxed);
                    break;
                }
                now_ts = now_ts.max(now());
                w.tick(now_ts);
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if !interval.is_zero() && last_snap.elapsed() >= interval {
            last_snap = Instant::now();
            let _ = sh.snaps.try_send((
                slot,
                Snap {
                    stats: w.stats(),
                    ..Snap::default()
                },
            ));
        }
    }
    let stats = w.finish_blocks(now_ts.max(now()), &mut |block| {
        let _ = crate::pipeline::worker::send_block(out_tx, block);
    });
    End {
        snap: Snap {
            stats,
            ..Snap::default()
        },
        error: None,
    }
}

/// Packets a reader has copied for one worker, not yet sent.
struct Pending {
    data: Vec<u8>,
    pkts: Vec<PacketRef>,
    /// Indices in `pkts` of copies of another worker's fragments
    /// ([`Worker::fragment_copy`]).
    copies: Vec<usize>,
}

impl Pending {
    fn new() -> Pending {
        Pending {
            data: Vec::new(),
            pkts: Vec::with_capacity(READ_BATCH),
            copies: Vec::new(),
        }
    }

    /// Copies one packet in: libpcap reuses its buffer after the callback.
    fn push(&mut self, ts: Timestamp, link: LinkType, data: &[u8], origlen: u32) {
        let offset = self.data.len();
        self.data.extend_from_slice(data);
        self.pkts.push(PacketRef {
            ts,
            offset,
            caplen: u32::try_from(data.len()).unwrap_or(u32::MAX),
            origlen,
            link,
            sum: None,
        });
    }

    /// Sends what is pending (nothing when empty); false when the worker
    /// is gone.
    fn flush(&mut self, tx: &Sender<Batch>, now: Timestamp) -> bool {
        if self.pkts.is_empty() {
            return true;
        }
        let p = std::mem::replace(self, Pending::new());
        tx.send(Batch {
            buf: Arc::new(Buffer::Owned(p.data)),
            pkts: p.pkts,
            // Live, a late packet is judged against its worker's own
            // packet time (interfaces' clocks are not merged).
            behind: Vec::new(),
            copies: p.copies,
            now,
            _ticket: None,
        })
        .is_ok()
    }
}

/// One interface's reader: reads, picks each packet's worker, hands the
/// workers batches (waiting when a worker's queue is full: libpcap's
/// buffer then fills and its drops are counted).
fn reader(
    slot: usize,
    iface: usize,
    mut h: PcapHandle,
    txs: &[Sender<Batch>],
    sh: &Shared<'_>,
) -> End {
    let mut router = Router {
        dispatch: Dispatch::new(sh.cfg, txs.len()),
        pending: txs.iter().map(|_| Pending::new()).collect(),
        latest: Timestamp(0),
    };
    let interval = sh.interval();
    let mut last_snap = Instant::now();
    let mut error = None;
    while !sh.stop.load(Ordering::Relaxed) {
        match h.read(READ_BATCH, |ts, link, data, len| {
            router.route(ts, link, data, len)
        }) {
            Ok(_) => {}
            Err(e) => {
                error = Some(e);
                sh.stop.store(true, Ordering::Relaxed);
                break;
            }
        }
        if !router.flush(txs) {
            sh.stop.store(true, Ordering::Relaxed);
            break;
        }
        if !interval.is_zero() && last_snap.elapsed() >= interval {
            last_snap = Instant::now();
            if let Some(e) = read_stats(&mut h) {
                error = Some(e);
                sh.stop.store(true, Ordering::Relaxed);
                break;
            }
            let _ = sh.snaps.try_send((
                slot,
                Snap {
                    capture: h.stats(),
                    iface: Some(iface),
                    ..Snap::default()
                },
            ));
        }
    }
    if error.is_none() {
        drain(&mut h, |ts, link, data, len| {
            router.route(ts, link, data, len)
        });
    }
    let _ = router.flush(txs);
    if let Some(e) = read_stats(&mut h) {
        error.get_or_insert(e);
    }
    End {
        snap: Snap {
            capture: h.stats(),
            iface: Some(iface),
            ..Snap::default()
        },
        error,
    }
}

/// A reader's packets on their way to the workers.
struct Router {
    dispatch: Dispatch,
    /// Per worker.
    pending: Vec<Pending>,
    /// The latest packet time seen.
    latest: Timestamp,
}

impl Router {
    fn route(&mut self, ts: Timestamp, link: LinkType, data: &[u8], len: u32) {
        self.latest = self.latest.max(ts);
        let (i, to_all) = self.dispatch.pick(link, data, len);
        for (j, p) in self.pending.iter_mut().enumerate() {
            if j == i {
                p.push(ts, link, data, len);
            } else if to_all {
                p.copies.push(p.pkts.len());
                p.push(ts, link, data, len);
            }
        }
    }

    /// Sends every worker its pending packets; false when one is gone.
    fn flush(&mut self, txs: &[Sender<Batch>]) -> bool {
        let now = self.latest;
        self.pending
            .iter_mut()
            .zip(txs)
            .all(|(p, tx)| p.flush(tx, now))
    }
}

impl Snap {
    /// The `stats` record of these (merged) counters, the run's and the
    /// EVE lines dropped so far.
    fn stats_record(&self, sh: &Shared<'_>, started: std::time::Instant) -> Vec<u8> {
        stats_record(
            self.capture.counters(),
            &self.stats,
            &sh.run,
            started,
            sh.dropped,
        )
    }
}

/// The snapshots merged.
fn merged(snaps: &[Option<Snap>]) -> Snap {
    let mut all = Snap::default();
    for s in snaps.iter().flatten() {
        all.stats.merge(&s.stats);
        all.capture.merge(&s.capture);
    }
    all
}

/// Starts a scoped thread; on failure sets `stop` and says why.
fn spawn<'s, 'e, T: Send + 's>(
    scope: &'s thread::Scope<'s, 'e>,
    name: String,
    stop: &AtomicBool,
    f: impl FnOnce() -> T + Send + 's,
) -> Result<thread::ScopedJoinHandle<'s, T>, RunError> {
    thread::Builder::new()
        .name(name)
        .spawn_scoped(scope, f)
        .map_err(|e| {
            stop.store(true, Ordering::Relaxed);
            RunError(format!("cannot start a capture thread: {e}"))
        })
}

/// Captures with libpcap until `opts.stop` is set (see the module doc).
///
/// # Errors
/// A handle cannot be opened, the EVE destination cannot be written, a
/// thread cannot start, or a read failed while running (the events up to
/// then are written).
pub(super) fn run_pcap(cfg: &Config, opts: &LiveOptions) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let n = opts.workers.max(1);
    let mut handles = Vec::with_capacity(opts.ifaces.len());
    for iface in &opts.ifaces {
        let h = PcapHandle::open(iface, &cfg.capture, opts.filter.as_ref())
            .map_err(|e| RunError(format!("cannot capture: {e}")))?;
        handles.push(h);
    }
    let out: Output = open_output(cfg, opts)?;
    let inline = n == 1 && handles.len() == 1;
    // Slots: the inline worker; or the workers, then the readers.
    let slots = if inline { 1 } else { n + handles.len() };
    let (snap_tx, snap_rx) = bounded::<(usize, Snap)>(slots.saturating_mul(4));
    let sh = Shared {
        cfg,
        stop: &opts.stop,
        dropped: &out.dropped,
        engine: &opts.engine,
        snaps: snap_tx,
        run: crate::pipeline::worker::RunShared::with_workers(cfg, n),
    };
    sh.run.assets.set_live();
    let (sh, out_ref) = (&sh, &out);
    let stop: &AtomicBool = &opts.stop;

    let ends: Vec<End> = thread::scope(|scope| -> Result<Vec<End>, RunError> {
        let mut joins = Vec::new();
        let started_threads = (|| -> Result<(), RunError> {
            if inline {
                let tx = out_ref.tx.clone();
                let h = handles.pop();
                joins.push(spawn(scope, "ww-worker-0".into(), stop, move || match h {
                    Some(h) => inline_worker(h, sh, &tx),
                    None => End {
                        snap: Snap::default(),
                        error: None,
                    },
                })?);
                return Ok(());
            }
            let mut txs = Vec::with_capacity(n);
            for i in 0..n {
                let (tx, rx) = bounded::<Batch>(WORKER_QUEUE);
                let out_tx = out_ref.tx.clone();
                joins.push(spawn(scope, format!("ww-worker-{i}"), stop, move || {
                    batch_worker(i, n, &rx, sh, &out_tx)
                })?);
                txs.push(tx);
            }
            for (j, h) in handles.drain(..).enumerate() {
                let txs = txs.clone();
                joins.push(spawn(scope, format!("ww-reader-{j}"), stop, move || {
                    reader(n + j, j, h, &txs, sh)
                })?);
            }
            Ok(())
        })();
        if started_threads.is_ok() {
            supervise(cfg, opts, out_ref, &snap_rx, slots, |latest| {
                merged(latest).stats_record(sh, started)
            });
        }
        let mut ends = Vec::with_capacity(joins.len());
        for j in joins {
            match j.join() {
                Ok(e) => ends.push(e),
                Err(_) => return Err(RunError("a capture thread failed".into())),
            }
        }
        started_threads.map(|()| ends)
    })?;

    let snaps: Vec<Option<Snap>> = ends.iter().map(|e| Some(e.snap.clone())).collect();
    let all = merged(&snaps);
    let (inventory, tail) = super::with_assets(&sh.run, || all.stats_record(sh, started));
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
            let c = ends
                .iter()
                .find(|e| e.snap.iface == Some(j))
                .map(|e| e.snap.capture)
                .unwrap_or_default();
            InputReport {
                path: iface.into(),
                packets: c.packets,
                bytes: c.bytes,
                error: None,
            }
        })
        .collect();
    Ok(RunReport {
        inputs,
        stats: all.stats,
        eve_lines,
        elapsed: started.elapsed(),
        capture: Some(all.capture.as_ring_stats()),
    })
}
