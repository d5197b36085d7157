//! Pipeline: reader → workers → writer.
//!
//! With several workers, one reader walks the capture files in order and
//! hands each worker the packets of its flows as offsets into the shared
//! buffer (the file's memory map), in batches. For captures held whole in
//! memory (mapped files; the usual case) there is no reader thread: the
//! worker that first needs the next chunk walks it for all, and each
//! takes its batch from a shared ring ([`run_fanout`]). Otherwise (a
//! pipe, or a capture filter) a reader thread sends the batches over
//! bounded crossbeam channels ([`run_parallel`]). Either way the worker is
//! chosen by [`crate::flow::dispatch_hash`] of the innermost VLANs and
//! address pair, the same for both directions and for every fragment of a
//! datagram, so each conversation lives on exactly one worker and
//! per-flow state needs no lock. Choosing reads only those fields
//! ([`crate::decode::dispatch`]), not the whole frame. A fragment shows
//! the addresses of the IP header that carries it, and a tunnel inside
//! its datagram is seen only once it is reassembled: such a fragment (GRE
//! or IP in IP over a path whose MTU the tunnel exceeds: rare) goes to
//! every worker, the one its addresses name counting it and each
//! reassembling its own copy, and the worker whose flow the datagram
//! decodes to keeps it ([`Worker::fragment_copy`]). Workers serialise
//! their EVE lines themselves and send blocks of them to one writer
//! thread. With one worker the reader runs it inline: no
//! dispatch, no hashing, no channel per packet.
//!
//! A worker of [`run_fanout`] is given the batches that [`run_parallel`]'s
//! reader would send it, in the same order, so the two paths write the
//! same.
//!
//! The output is the same for any number of workers, line order aside.

#[cfg(any(target_os = "linux", all(feature = "libpcap", unix)))]
pub mod live;
pub mod rules;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::capture::bpf::Filter;
use crate::capture::{Buffer, CaptureError, Chunk, LinkType, PacketRef, Reader};
use crate::config::Config;
use crate::decode::dispatch::AddressReader;
use crate::detect::Engine;
use crate::flow::{dispatch_hash, worker_of};
use crate::output::eve;
use crate::output::sink::{Block, Sink, Target};
use crate::time::Timestamp;
use worker::{send_block, Handoff, RunShared, Worker, WorkerStats, OUTPUT_BLOCK};

/// Packets read from a capture at a time.
const CHUNK_PACKETS: usize = 1024;
/// Batches queued per worker before the reader waits.
const WORKER_QUEUE: usize = 64;
/// Blocks of EVE lines queued before workers wait for the writer: 16 MiB
/// ([`worker::send_block`] makes a large block count for several).
const WRITER_QUEUE: usize = 256;
/// Packets a worker asks the CPU to fetch ahead of the one it processes
/// ([`Batch::feed`]).
const FEED_AHEAD: usize = 4;
/// Packets ahead of the one processed whose flow the worker looks up early
/// ([`Worker::expect`]): the index group is asked for this many packets
/// before, the flow's slot half as many (a packet takes about a
/// microsecond, memory a tenth of one).
const FLOW_AHEAD: usize = 4;
/// Bytes of chunks read from a pipe that may wait for workers (in
/// batches) before the reader waits: without it, 64 batches per worker of
/// 4 MiB chunks of jumbo segments would be 256 MiB per worker.
const READ_AHEAD: usize = 16 * 1024 * 1024;

/// What to read and where to write.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Capture files, read in this order as one continuous capture; `-` is
    /// standard input.
    pub inputs: Vec<PathBuf>,
    /// Worker threads (at least 1).
    pub workers: usize,
    pub eve: Target,
    /// Print a progress line to stderr every few seconds.
    pub progress: bool,
    /// The rules every worker evaluates.
    pub engine: std::sync::Arc<crate::detect::Engine>,
    /// Capture filter (`-f`): the reader drops packets it rejects before
    /// they are dispatched (counted as `capture.filtered`).
    pub filter: Option<Filter>,
    /// The process ends with this run (the command line): what the run
    /// built is left to the operating system instead of being freed piece
    /// by piece after the workers stopped (the asset table of 16 384
    /// hosts took 25 ms of one thread).
    pub exiting: bool,
}

/// Outcome of reading one input.
#[derive(Debug, Clone)]
pub struct InputReport {
    pub path: PathBuf,
    pub packets: u64,
    pub bytes: u64,
    /// Set when the capture was damaged: reading stopped there.
    pub error: Option<CaptureError>,
}

/// Outcome of a run.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub inputs: Vec<InputReport>,
    pub stats: WorkerStats,
    pub eve_lines: u64,
    pub elapsed: Duration,
    /// Live capture only: the rings' and the kernel's counters.
    pub capture: Option<crate::capture::afpacket::RingStats>,
}

/// A fatal error: nothing (more) could be done.
#[derive(Debug)]
pub struct RunError(pub String);

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RunError {}

/// A batch for one worker: packets that borrow from one buffer, and the
/// capture's packet time so far (so a worker whose flows fall silent still
/// times them out; an empty batch is just a clock tick).
struct Batch {
    buf: Arc<Buffer>,
    pkts: Vec<PacketRef>,
    /// Packets earlier than the capture's time before them (time ran
    /// backwards): index in `pkts`, and that time
    /// ([`Worker::set_capture_clock`]). Usually empty.
    behind: Vec<(usize, Timestamp)>,
    now: Timestamp,
    /// Packets that are copies of another worker's fragments
    /// ([`Worker::fragment_copy`]): indices in `pkts`. Usually empty.
    copies: Vec<usize>,
    /// The buffer's place in [`READ_AHEAD`] (read from a pipe), given back
    /// when its last batch is done.
    _ticket: Option<Arc<Ticket>>,
}

/// Bytes of read chunks not yet processed by the workers.
#[derive(Default)]
struct ReadAhead {
    bytes: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
}

/// One chunk's bytes in [`ReadAhead`].
struct Ticket {
    n: usize,
    pool: Arc<ReadAhead>,
}

impl ReadAhead {
    /// Takes `n` bytes, waiting while others hold [`READ_AHEAD`] (a chunk
    /// alone may be larger).
    fn take(pool: &Arc<ReadAhead>, n: usize) -> Ticket {
        if let Ok(mut held) = pool.bytes.lock() {
            while *held > 0 && held.saturating_add(n) > READ_AHEAD {
                match pool.freed.wait(held) {
                    Ok(h) => held = h,
                    // A worker panicked holding the lock: stop counting.
                    Err(_) => {
                        return Ticket {
                            n: 0,
                            pool: Arc::clone(pool),
                        }
                    }
                }
            }
            *held = held.saturating_add(n);
        }
        Ticket {
            n,
            pool: Arc::clone(pool),
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Ok(mut held) = self.pool.bytes.lock() {
            *held = held.saturating_sub(self.n);
        }
        self.pool.freed.notify_one();
    }
}

impl Batch {
    /// Hands the batch to `w`: every packet, or for an empty batch a clock
    /// tick; `now` is the worker's packet time so far.
    fn feed(&self, w: &mut Worker, now: &mut Timestamp) {
        *now = (*now).max(self.now);
        if self.pkts.is_empty() {
            w.tick(*now);
        }
        w.set_source(&self.buf);
        let buf: &[u8] = &self.buf;
        let mut behind = self.behind.iter().peekable();
        let mut copies = self.copies.iter().peekable();
        // Another core read these packets' records (and left their bytes
        // in its cache): fetch them a few packets ahead, as the record
        // walk does for one worker.
        let ahead = |q: &PacketRef| {
            crate::hint::prefetch(buf.get(q.offset..).unwrap_or(&[]), q.caplen as usize);
        };
        let frame = |q: &PacketRef| {
            let end = q.offset.saturating_add(q.caplen as usize);
            buf.get(q.offset..end).unwrap_or(&[])
        };
        self.pkts.iter().take(FEED_AHEAD).for_each(ahead);
        for (i, p) in self.pkts.iter().enumerate() {
            if let Some(q) = self.pkts.get(i + FEED_AHEAD) {
                ahead(q);
            }
            if let Some(q) = self.pkts.get(i + FLOW_AHEAD) {
                w.expect(q.link, frame(q));
            }
            if let Some(&(_, clock)) = behind.next_if(|(j, _)| *j == i) {
                w.set_capture_clock(clock);
            }
            let data = frame(p);
            if copies.next_if(|&&j| j == i).is_some() {
                w.fragment_copy(p.ts, p.link, data, p.origlen);
            } else {
                w.packet_summed(p.ts, p.link, data, p.origlen, p.sum);
            }
        }
    }
}

/// Chooses the worker of each packet: [`dispatch_hash`] of its VLANs and
/// address pair (the same both ways and for every fragment), scaled to
/// the number of workers ([`worker_of`]), read by [`AddressReader`]
/// without decoding the rest. Frames with no IP header it can read (not IP, or malformed: the
/// decoder calls them `NotIp` or `Invalid`) go to worker 0; a frame the
/// decoder will find invalid past its IP header goes where its addresses
/// say. Either way the worker counts it and no flow sees it.
struct Dispatch {
    addrs: AddressReader,
    workers: usize,
}

impl Dispatch {
    fn new(cfg: &Config, workers: usize) -> Dispatch {
        Dispatch {
            addrs: AddressReader::new(&cfg.decoder),
            workers: workers.max(1),
        }
    }

    /// The worker (below `workers`) for a packet, and whether every
    /// other worker gets a copy of it (a fragment that may carry a
    /// tunnel: [`Worker::fragment_copy`]).
    fn pick(&mut self, link: LinkType, data: &[u8], origlen: u32) -> (usize, bool) {
        let Some(a) = self.addrs.read(link, data, origlen) else {
            return (0, false);
        };
        let h = dispatch_hash(a.vlan, a.src, a.dst);
        (worker_of(h, self.workers), a.may_tunnel)
    }
}

/// Opens every input first, so a missing or unreadable file is reported
/// before any work starts.
///
/// # Errors
/// The first input that cannot be opened, named.
pub fn open_inputs(inputs: &[PathBuf]) -> Result<Vec<Reader>, RunError> {
    inputs
        .iter()
        .map(|p| Reader::open(p).map_err(|e| RunError(format!("{}: {e}", p.display()))))
        .collect()
}

/// Runs the pipeline over already opened inputs.
///
/// # Errors
/// The EVE destination cannot be opened or written.
pub fn run(
    cfg: &Config,
    opts: &RunOptions,
    mut readers: Vec<Reader>,
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let sink = open_sink(&opts.eve, cfg.outputs.sensor_name.as_deref())?;
    let (out_tx, writer) = spawn_writer(sink, &opts.eve, None)?;

    let paths: Vec<PathBuf> = opts.inputs.clone();
    let mut progress = Progress::new(opts.progress);
    let workers = opts.workers.max(1);
    // One worker: the walk sums each large frame while its bytes are at
    // hand, so the transport checksum reads only the headers again
    // (`Worker::packet_summed`); `dicom_bulk`: CPU ×0.91, wall ×0.95 (9
    // pairs against main). Not with two workers sharing the walk
    // (`run_fanout`): there it cost CPU and wall ×1.04 (9 pairs); the walk,
    // which one worker does while the other may wait, is the serial part.
    if workers == 1 && cfg.decoder.checksum_checks != crate::decode::ChecksumChecks::No {
        for r in &mut readers {
            r.sum_frames(Some(crate::decode::checksum::frame_sum));
        }
    }
    // One worker leaves a core to the kernel's mapping work
    // (`Reader::page_ahead`): dicom_bulk CPU ×0.98, wall ×0.95 (9 pairs).
    // With two workers no gain (CPU ×0.99, wall ×1.02): no core is free.
    if workers == 1 {
        for r in &mut readers {
            r.page_ahead();
        }
    }
    let mut filtering = Filtering {
        filter: opts.filter.clone(),
        dropped: 0,
    };
    let shared = RunShared::with_workers(cfg, workers);
    // Every input held whole in memory (mapped files): the workers walk
    // it themselves ([`run_fanout`]). A pipe keeps the reader thread, whose
    // tickets bound the chunks read ahead; so does a capture filter (not
    // yet moved into the shared walk).
    let fanout = workers > 1 && filtering.filter.is_none() && readers.iter().all(Reader::can_fork);
    let (inputs, stats) = if workers == 1 {
        run_inline(
            cfg,
            &opts.engine,
            &shared,
            readers,
            &paths,
            &out_tx,
            &mut progress,
            &mut filtering,
        )
    } else if fanout {
        run_fanout(
            cfg,
            &opts.engine,
            &shared,
            workers,
            readers,
            &paths,
            &out_tx,
            &mut progress,
        )?
    } else {
        run_parallel(
            cfg,
            &opts.engine,
            &shared,
            workers,
            readers,
            &paths,
            &out_tx,
            &mut progress,
            &mut filtering,
        )?
    };
    // Asset records and the inventory, once every worker handed its view
    // over, to the writer as they are made (a send fails only if the
    // writer stopped on an error, which joining it reports); a failure to
    // write the inventory is reported after the EVE.
    // Every worker has stopped: the asset records are made on every core
    // the run may use, not only as many as there were workers. One
    // worker, mqtt_small: `Hub::finish` is 3 % of the instructions; wall
    // ×0.994 against one thread (median of 11 pairs, spread 0.83–1.09 on
    // this noisy machine: within its noise).
    let cores = thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let inventory = shared
        .assets
        .finish(stats.last_ts, workers.max(cores), &mut |b| {
            let _ = out_tx.send(b);
        });
    let mut tail = Vec::new();
    let mut counters = shared.counters(&stats);
    if filtering.filter.is_some() {
        counters.push(("capture.filtered".into(), filtering.dropped));
    }
    eve::write_stats(
        &mut tail,
        stats.last_ts,
        started.elapsed().as_secs(),
        &counters,
    );
    let eve_lines = close_writer(out_tx, writer, Block::scanned(tail))?;
    if opts.exiting {
        std::mem::forget(shared);
    }
    inventory.map_err(RunError)?;
    Ok(RunReport {
        inputs,
        stats,
        eve_lines,
        elapsed: started.elapsed(),
        capture: None,
    })
}

/// Opens the EVE destination; `host` is `outputs.sensor_name`.
fn open_sink(eve: &Target, host: Option<&str>) -> Result<Sink, RunError> {
    Sink::open_with(eve, host).map_err(|e| RunError(format!("cannot open EVE output: {e}")))
}

/// The writer thread's handle: the EVE lines written, or why writing
/// failed.
type WriterHandle = thread::JoinHandle<Result<u64, String>>;

/// How the writer behaves in live mode.
#[derive(Debug, Clone, Default)]
struct WriterLive {
    /// Set by SIGHUP: reopen the EVE file (after logrotate moved it).
    reopen: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// EVE lines dropped: queue full (workers never wait for the writer),
    /// a Unix-socket reader absent or stalled, or Redis's buffer full.
    dropped: Arc<std::sync::atomic::AtomicU64>,
    /// `outputs.sensor_name`, for the sinks opened again.
    host: Option<String>,
}

/// The live writer: flushes whenever the queue is empty, reopens on the
/// reopen flag, and for a Unix-socket reader drops (and counts) blocks
/// while the reader is absent or stalled, reconnecting at most once a
/// second. A file or stdout write error is fatal as offline.
fn live_writer(
    sink: Sink,
    target: &Target,
    rx: &Receiver<Block>,
    l: &WriterLive,
) -> Result<u64, String> {
    use std::sync::atomic::Ordering;
    let werr = |e: std::io::Error| format!("writing EVE output: {e}");
    let unix = matches!(target, Target::Unix(_));
    let mut sink = Some(sink);
    let mut done = 0u64;
    let mut last_try = Instant::now();
    loop {
        // Only a file is reopened: a socket or Redis connection is not
        // rotated (and Redis's held records must not be thrown away).
        if l.reopen
            .as_ref()
            .is_some_and(|f| f.swap(false, Ordering::SeqCst))
            && matches!(target, Target::File(_))
        {
            if let Some(s) = sink.as_mut() {
                s.flush().map_err(werr)?;
            }
            match Sink::open_with(target, l.host.as_deref()) {
                Ok(new) => {
                    done += sink.replace(new).map_or(0, |s| s.lines());
                }
                Err(e) => eprintln!(
                    "wardwatch: cannot reopen EVE output ({e}); still writing to the old one"
                ),
            }
        }
        if sink.is_none() && last_try.elapsed() >= Duration::from_secs(1) {
            last_try = Instant::now();
            if let Ok(s) = Sink::open_with(target, l.host.as_deref()) {
                eprintln!("wardwatch: EVE reader back; writing again");
                sink = Some(s);
            }
        }
        let block = match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(b) => b,
            // Idle: Redis retries what it holds.
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if let Some(s) = sink.as_mut() {
                    s.flush().map_err(werr)?;
                    l.dropped.fetch_add(s.take_dropped(), Ordering::Relaxed);
                }
                continue;
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        // Empty blocks only hold queue slots for a large one.
        if block.bytes.is_empty() {
            continue;
        }
        let Some(s) = sink.as_mut() else {
            l.dropped.fetch_add(block.tally.lines, Ordering::Relaxed);
            continue;
        };
        // A socket is flushed after every block, so a failure loses that
        // block only.
        let r = s.write_block(&block).and_then(|()| {
            if unix || rx.is_empty() {
                s.flush()
            } else {
                Ok(())
            }
        });
        l.dropped.fetch_add(s.take_dropped(), Ordering::Relaxed);
        if let Err(e) = r {
            if !unix {
                return Err(werr(e));
            }
            eprintln!(
                "wardwatch: EVE reader gone or stalled ({e}); dropping lines until it is back"
            );
            let n = block.tally.lines;
            l.dropped.fetch_add(n, Ordering::Relaxed);
            done += s.lines().saturating_sub(n);
            sink = None;
            last_try = Instant::now();
        }
    }
    match sink {
        Some(mut s) => {
            if let Err(e) = s.flush() {
                if !unix {
                    return Err(werr(e));
                }
            }
            if s.held() > 0 {
                eprintln!(
                    "wardwatch: {} EVE lines still waiting for Redis at exit were dropped",
                    s.held()
                );
            }
            Ok(done + s.lines())
        }
        None => Ok(done),
    }
}

/// Starts the one writer thread on an opened EVE destination; blocks of
/// EVE lines sent to the returned channel are written in order. Live mode
/// (`live` set): see [`live_writer`].
fn spawn_writer(
    mut sink: Sink,
    eve: &Target,
    live: Option<WriterLive>,
) -> Result<(Sender<Block>, WriterHandle), RunError> {
    let (out_tx, out_rx) = bounded::<Block>(WRITER_QUEUE);
    let target = eve.clone();
    let werr = |e: std::io::Error| format!("writing EVE output: {e}");
    let writer = thread::Builder::new()
        .name("ww-writer".into())
        .spawn(move || -> Result<u64, String> {
            if let Some(l) = &live {
                return live_writer(sink, &target, &out_rx, l);
            }
            // Empty blocks only hold queue slots for a large one.
            for block in out_rx.iter().filter(|b| !b.bytes.is_empty()) {
                sink.write_block(&block).map_err(werr)?;
            }
            sink.flush().map_err(werr)?;
            Ok(sink.lines())
        })
        .map_err(|e| RunError(format!("cannot start writer thread: {e}")))?;
    Ok((out_tx, writer))
}

/// Sends the last block (the final `stats` record), closes the channel and
/// waits for the writer; returns the lines it wrote.
///
/// # Errors
/// The writer stopped on a write error, or its thread failed.
fn close_writer(out_tx: Sender<Block>, writer: WriterHandle, last: Block) -> Result<u64, RunError> {
    // A send fails only if the writer already stopped on an error, which
    // joining it reports.
    let _ = out_tx.send(last);
    drop(out_tx);
    match writer.join() {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(RunError(e)),
        Err(_) => Err(RunError("the EVE writer thread failed".into())),
    }
}

/// The offline capture filter and the packets it rejected.
struct Filtering {
    filter: Option<Filter>,
    dropped: u64,
}

/// Holds the first chunks of a run back from the workers until
/// `decoder.checksum_checks: auto` has decided on them
/// (`decode::offload`), so every packet is decoded under the same decision
/// whatever the number of workers or the way the input is read.
struct ChecksumGate<'r> {
    detector: &'r crate::decode::offload::Detector,
    held: Vec<Chunk>,
}

impl ChecksumGate<'_> {
    /// Passes `chunk` to `each`, or holds it while the decision is open;
    /// false when `each` did.
    fn admit(&mut self, chunk: &Chunk, each: &mut impl FnMut(&Chunk) -> bool) -> bool {
        if self.detector.decided().is_some() && self.held.is_empty() {
            return each(chunk);
        }
        for p in &chunk.pkts {
            if let Some(d) = self.detector.observe(p.link, chunk.data(p), p.origlen) {
                if let Some(w) = d.warning() {
                    eprintln!("wardwatch: {w}");
                }
                break;
            }
        }
        // Shares the buffer; the packet list is at most one chunk's.
        self.held.push(chunk.clone());
        if self.detector.decided().is_none() {
            return true;
        }
        self.release(each)
    }

    /// The input ended: decides on what was seen and passes what is held.
    fn finish(&mut self, each: &mut impl FnMut(&Chunk) -> bool) -> bool {
        if let Some(d) = self.detector.finish() {
            if let Some(w) = d.warning() {
                eprintln!("wardwatch: {w}");
            }
        }
        self.release(each)
    }

    fn release(&mut self, each: &mut impl FnMut(&Chunk) -> bool) -> bool {
        std::mem::take(&mut self.held).iter().all(each)
    }
}

/// Reads every input in turn, calling `each` with every chunk (after the
/// filter, if any, took out the packets it rejects, and once the checksum
/// decision is taken: [`ChecksumGate`]); stops early when `each` returns
/// false (the writer is gone). An input's packet and byte counts are of
/// what it holds, filtered packets included.
fn read_all(
    readers: Vec<Reader>,
    paths: &[PathBuf],
    progress: &mut Progress,
    filtering: &mut Filtering,
    shared: &RunShared,
    mut each: impl FnMut(&Chunk) -> bool,
) -> Vec<InputReport> {
    let mut gate = ChecksumGate {
        detector: &shared.checksum,
        held: Vec::new(),
    };
    let mut reports = Vec::new();
    let mut total_packets = 0u64;
    for (mut reader, path) in readers.into_iter().zip(paths) {
        let mut rep = InputReport {
            path: path.clone(),
            packets: 0,
            bytes: 0,
            error: None,
        };
        loop {
            match reader.next_chunk(CHUNK_PACKETS) {
                Ok(Some(mut chunk)) => {
                    rep.packets += chunk.pkts.len() as u64;
                    total_packets += chunk.pkts.len() as u64;
                    rep.bytes += chunk.pkts.iter().map(|p| u64::from(p.caplen)).sum::<u64>();
                    if let Some(f) = filtering.filter.as_mut() {
                        let before = chunk.pkts.len();
                        let buf = Arc::clone(&chunk.buf);
                        chunk.pkts.retain(|p| {
                            let end = p.offset.saturating_add(p.caplen as usize);
                            let data = buf.get(p.offset..end).unwrap_or(&[]);
                            f.matches(p.link, data, p.origlen)
                        });
                        filtering.dropped += (before - chunk.pkts.len()) as u64;
                    }
                    if !gate.admit(&chunk, &mut each) {
                        break;
                    }
                    progress.tick(path, &reader, total_packets);
                }
                Ok(None) => break,
                Err(e) => {
                    rep.error = Some(e);
                    break;
                }
            }
        }
        reports.push(rep);
    }
    gate.finish(&mut each);
    reports
}

// The run's shared state joins the reader's (filter, progress).
#[allow(clippy::too_many_arguments)]
fn run_inline(
    cfg: &Config,
    engine: &Arc<Engine>,
    shared: &RunShared,
    readers: Vec<Reader>,
    paths: &[PathBuf],
    out_tx: &Sender<Block>,
    progress: &mut Progress,
    filtering: &mut Filtering,
) -> (Vec<InputReport>, WorkerStats) {
    let mut w = Worker::with_shared(cfg, Arc::clone(engine), shared);
    w.set_output(Handoff::Wait(out_tx.clone()));
    let mut now = Timestamp(0);
    let inputs = read_all(readers, paths, progress, filtering, shared, |chunk| {
        w.set_source(&chunk.buf);
        for (i, p) in chunk.pkts.iter().enumerate() {
            if let Some(q) = chunk.pkts.get(i + FLOW_AHEAD) {
                w.expect(q.link, chunk.data(q));
            }
            now = now.max(p.ts);
            w.packet_summed(p.ts, p.link, chunk.data(p), p.origlen, p.sum);
        }
        !w.output_closed()
    });
    // A failed send means the writer stopped on an error, reported at join.
    let stats = w.finish_blocks(now, &mut |block| {
        let _ = send_block(out_tx, block);
    });
    (inputs, stats)
}

/// Runs worker `seat.0` of `seat.1` on the batches of `rx`.
fn worker_loop(
    cfg: &Config,
    engine: &Arc<Engine>,
    shared: &RunShared,
    seat: (usize, usize),
    rx: &Receiver<Batch>,
    out_tx: &Sender<Block>,
) -> WorkerStats {
    let mut w = Worker::with_shared(cfg, Arc::clone(engine), shared);
    w.set_output(Handoff::Wait(out_tx.clone()));
    w.set_seat(cfg, seat.0, seat.1);
    let mut now = Timestamp(0);
    for batch in rx {
        batch.feed(&mut w, &mut now);
        if w.output_closed() {
            break;
        }
    }
    w.finish_blocks(now, &mut |block| {
        let _ = send_block(out_tx, block);
    })
}

// One more than clippy's seven: the filter state is the reader's, like the
// progress line.
#[allow(clippy::too_many_arguments)]
fn run_parallel(
    cfg: &Config,
    engine: &Arc<Engine>,
    shared: &RunShared,
    n: usize,
    readers: Vec<Reader>,
    paths: &[PathBuf],
    out_tx: &Sender<Block>,
    progress: &mut Progress,
    filtering: &mut Filtering,
) -> Result<(Vec<InputReport>, WorkerStats), RunError> {
    thread::scope(|scope| {
        let mut txs = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, rx) = bounded::<Batch>(WORKER_QUEUE);
            let out_tx = out_tx.clone();
            let h = thread::Builder::new()
                .name(format!("ww-worker-{i}"))
                .spawn_scoped(scope, move || {
                    worker_loop(cfg, engine, shared, (i, n), &rx, &out_tx)
                })
                .map_err(|e| RunError(format!("cannot start worker thread: {e}")))?;
            txs.push(tx);
            handles.push(h);
        }
        let mut dispatch = Dispatch::new(cfg, n);
        let mut pending: Vec<Vec<PacketRef>> =
            (0..n).map(|_| Vec::with_capacity(CHUNK_PACKETS)).collect();
        let mut behind: Vec<Vec<(usize, Timestamp)>> = vec![Vec::new(); n];
        let mut copies: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut now = Timestamp(0);
        let mut last_tick = vec![Timestamp(0); n];
        let read_ahead = Arc::new(ReadAhead::default());
        // The ticket of the chunk buffer being dispatched (read from a
        // pipe; a mapped file costs no heap), known by its address: holding
        // the buffer itself would stop the stream reader from reusing it.
        // The reader makes each new buffer while the last one is alive, so
        // a new buffer never has the last one's address (except a next
        // input's first, which then shares the last ticket: one buffer
        // uncounted at most).
        let mut ticket: Option<(*const Buffer, Arc<Ticket>)> = None;
        let inputs = read_all(readers, paths, progress, filtering, shared, |chunk| {
            let at = Arc::as_ptr(&chunk.buf);
            if matches!(*chunk.buf, Buffer::Owned(_))
                && ticket.as_ref().is_none_or(|(b, _)| *b != at)
            {
                ticket = None;
                let t = ReadAhead::take(&read_ahead, chunk.buf.len());
                ticket = Some((at, Arc::new(t)));
            }
            for p in &chunk.pkts {
                let before = now;
                now = now.max(p.ts);
                let (i, to_all) = dispatch.pick(p.link, chunk.data(p), p.origlen);
                let targets = if to_all { 0..n } else { i..i + 1 };
                for j in targets {
                    let (Some(v), Some(b), Some(c)) =
                        (pending.get_mut(j), behind.get_mut(j), copies.get_mut(j))
                    else {
                        continue;
                    };
                    if p.ts < before {
                        b.push((v.len(), before));
                    }
                    if j != i {
                        c.push(v.len());
                    }
                    v.push(*p);
                }
            }
            for ((((tx, v), b), c), tick) in txs
                .iter()
                .zip(pending.iter_mut())
                .zip(behind.iter_mut())
                .zip(copies.iter_mut())
                .zip(last_tick.iter_mut())
            {
                // A worker with no packets in this chunk still hears the
                // clock, at most once a second of packet time.
                if v.is_empty() && now.since(*tick) < 1_000_000_000 {
                    continue;
                }
                *tick = now;
                let batch = Batch {
                    buf: Arc::clone(&chunk.buf),
                    pkts: std::mem::replace(v, Vec::with_capacity(CHUNK_PACKETS)),
                    behind: std::mem::take(b),
                    copies: std::mem::take(c),
                    now,
                    _ticket: ticket.as_ref().map(|(_, t)| Arc::clone(t)),
                };
                if tx.send(batch).is_err() {
                    return false;
                }
            }
            true
        });
        // The end of the capture, for every worker's final timeouts.
        for tx in &txs {
            let _ = tx.send(Batch {
                buf: Arc::new(Buffer::Owned(Vec::new())),
                pkts: Vec::new(),
                behind: Vec::new(),
                copies: Vec::new(),
                now,
                _ticket: None,
            });
        }
        drop(txs);
        let mut stats = WorkerStats::default();
        for h in handles {
            match h.join() {
                Ok(s) => stats.merge(&s),
                Err(_) => return Err(RunError("a worker thread failed".into())),
            }
        }
        Ok((inputs, stats))
    })
}

/// Chunks a worker of [`run_fanout`] may be ahead of the slowest other
/// one, as the reader's [`WORKER_QUEUE`] bounds it: the threshold
/// decisions and asset views that wait for every worker stay as few as
/// with a reader thread.
const FANOUT_AHEAD: u64 = WORKER_QUEUE as u64;

/// Chunks [`Walk::walk_ahead`] keeps walked past the one a worker takes.
const WALK_AHEAD: u64 = 2;

/// How far each worker of [`run_fanout`] got (chunks started; `u64::MAX`
/// once it stopped), so none runs more than [`FANOUT_AHEAD`] chunks ahead
/// of another.
struct Pace {
    started: Vec<std::sync::atomic::AtomicU64>,
    /// Workers waiting in [`Pace::start`].
    waiting: std::sync::atomic::AtomicUsize,
    lock: std::sync::Mutex<()>,
    moved: std::sync::Condvar,
}

impl Pace {
    fn new(workers: usize) -> Pace {
        Pace {
            started: (0..workers)
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            lock: std::sync::Mutex::new(()),
            moved: std::sync::Condvar::new(),
        }
    }

    /// The fewest chunks another worker than `me` started.
    fn slowest_other(&self, me: usize) -> u64 {
        use std::sync::atomic::Ordering;
        self.started
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != me)
            .map(|(_, s)| s.load(Ordering::SeqCst))
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Worker `me` starts its chunk number `k` (from 1; `u64::MAX`: it
    /// stopped), first waiting while another worker is more than
    /// [`FANOUT_AHEAD`] chunks behind.
    fn start(&self, me: usize, k: u64) {
        use std::sync::atomic::Ordering;
        if let Some(s) = self.started.get(me) {
            s.store(k, Ordering::SeqCst);
        }
        if self.waiting.load(Ordering::SeqCst) > 0 {
            // Under the lock, so a waiter between its check and its wait
            // cannot miss it.
            let _held = self.lock.lock();
            self.moved.notify_all();
        }
        if k == u64::MAX || self.slowest_other(me).saturating_add(FANOUT_AHEAD) >= k {
            return;
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut held) = self.lock.lock() {
            while self.slowest_other(me).saturating_add(FANOUT_AHEAD) < k {
                // The timeout only guards against a missed wake-up.
                match self.moved.wait_timeout(held, Duration::from_millis(10)) {
                    Ok((h, _)) => held = h,
                    Err(_) => break,
                }
            }
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Marks its worker stopped in [`Pace`] however it ends (a panic
/// included), so no other worker waits for it.
struct PaceSeat<'p> {
    pace: &'p Pace,
    me: usize,
}

impl Drop for PaceSeat<'_> {
    fn drop(&mut self) {
        self.pace.start(self.me, u64::MAX);
    }
}

/// Takes `decoder.checksum_checks: auto`'s decision before any worker
/// starts, on the capture's first packets in capture order (read with
/// readers of its own): what [`ChecksumGate`] does for the reader thread,
/// on the same packets.
fn decide_checksums(detector: &crate::decode::offload::Detector, readers: &[Reader]) {
    if detector.decided().is_some() {
        return;
    }
    for mut r in readers.iter().filter_map(Reader::fork) {
        while let Ok(Some(chunk)) = r.next_chunk(CHUNK_PACKETS) {
            for p in &chunk.pkts {
                if let Some(d) = detector.observe(p.link, chunk.data(p), p.origlen) {
                    if let Some(w) = d.warning() {
                        eprintln!("wardwatch: {w}");
                    }
                    return;
                }
            }
        }
    }
    if let Some(d) = detector.finish() {
        if let Some(w) = d.warning() {
            eprintln!("wardwatch: {w}");
        }
    }
}

/// Runs `n` workers over inputs held whole in memory (mapped files), with
/// no reader thread. The reader's work is done by the workers: the one
/// that first needs a chunk no one walked yet walks it ([`Walk::next`]:
/// reads its records, reads each packet's addresses, makes each worker's
/// batch, as [`run_parallel`]'s reader does) and every worker takes its
/// batch from the chunks walked ([`Ring`]), so each worker is given the
/// same packets, clock and ticks, in the same order, as from a reader
/// thread. Nothing waits on a channel per batch, no third thread competes
/// for the cores, and a worker fetches its packets' bytes ahead of use
/// ([`Batch::feed`]). [`Pace`] keeps the workers within
/// [`FANOUT_AHEAD`] chunks of each other, which bounds the chunks held.
/// `decoder.checksum_checks: auto` is decided first, on the capture's
/// first packets ([`decide_checksums`]).
///
/// # Errors
/// A worker thread cannot be started or failed.
#[allow(clippy::too_many_arguments)]
fn run_fanout(
    cfg: &Config,
    engine: &Arc<Engine>,
    shared: &RunShared,
    n: usize,
    readers: Vec<Reader>,
    paths: &[PathBuf],
    out_tx: &Sender<Block>,
    progress: &mut Progress,
) -> Result<(Vec<InputReport>, WorkerStats), RunError> {
    decide_checksums(&shared.checksum, &readers);
    let walk = Walk {
        walker: std::sync::Mutex::new(Walker {
            readers: readers.into_iter(),
            paths: paths.iter(),
            current: None,
            reports: Vec::new(),
            dispatch: Dispatch::new(cfg, n),
            now: Timestamp(0),
            last_tick: vec![Timestamp(0); n],
            walked: 0,
            total_packets: 0,
            progress,
            stop: false,
        }),
        ring: std::sync::Mutex::new(Ring::default()),
        workers: n,
    };
    let pace = Pace::new(n);
    let stats = thread::scope(|scope| {
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let out_tx = out_tx.clone();
            let (pace, walk) = (&pace, &walk);
            let h = thread::Builder::new()
                .name(format!("ww-worker-{i}"))
                .spawn_scoped(scope, move || {
                    let seat = PaceSeat { pace, me: i };
                    let s = walk_loop(cfg, engine, shared, (i, n), walk, pace, &out_tx);
                    drop(seat);
                    s
                })
                .map_err(|e| RunError(format!("cannot start worker thread: {e}")))?;
            handles.push(h);
        }
        let mut stats = WorkerStats::default();
        for h in handles {
            match h.join() {
                Ok(s) => stats.merge(&s),
                Err(_) => return Err(RunError("a worker thread failed".into())),
            }
        }
        Ok(stats)
    })?;
    let walker = walk
        .walker
        .into_inner()
        .map_err(|_| RunError("a worker thread failed".into()))?;
    let mut inputs = walker.reports;
    inputs.extend(walker.current.map(|(_, rep)| rep));
    Ok((inputs, stats))
}

/// One chunk as [`Walk::next`] walked it: each worker's batch, `None`
/// when the worker has no packet in it and no clock tick is due.
struct Walked {
    parts: Vec<Option<Batch>>,
    /// Workers that have not taken their part yet.
    left: usize,
}

/// The chunks walked and not yet taken by every worker, the first being
/// chunk number `first`.
#[derive(Default)]
struct Ring {
    chunks: std::collections::VecDeque<Walked>,
    first: u64,
    /// Set once the inputs are all read: the number of chunks, and the
    /// capture's last packet time.
    end: Option<(u64, Timestamp)>,
}

/// The reader's state in [`run_fanout`], held by whichever worker walks
/// the next chunk.
struct Walker<'a> {
    readers: std::vec::IntoIter<Reader>,
    paths: std::slice::Iter<'a, PathBuf>,
    /// The input being read, and its report so far.
    current: Option<(Reader, InputReport)>,
    reports: Vec<InputReport>,
    dispatch: Dispatch,
    /// The capture's packet time so far.
    now: Timestamp,
    /// Per worker: the packet time it last heard.
    last_tick: Vec<Timestamp>,
    /// Chunks walked so far.
    walked: u64,
    total_packets: u64,
    progress: &'a mut Progress,
    /// A worker found the writer gone: read no further.
    stop: bool,
}

impl Walker<'_> {
    /// Reads and dispatches the next chunk: what [`run_parallel`]'s reader
    /// does for one chunk, the batches kept for the workers to take.
    /// `None` once every input is read.
    fn walk(&mut self, n: usize) -> Option<Walked> {
        loop {
            if self.stop {
                return None;
            }
            if self.current.is_none() {
                let reader = self.readers.next()?;
                let path = self.paths.next()?;
                let rep = InputReport {
                    path: path.clone(),
                    packets: 0,
                    bytes: 0,
                    error: None,
                };
                self.current = Some((reader, rep));
            }
            let (reader, rep) = self.current.as_mut()?;
            let chunk = match reader.next_chunk(CHUNK_PACKETS) {
                Ok(Some(c)) => c,
                end => {
                    if let Err(e) = end {
                        rep.error = Some(e);
                    }
                    if let Some((_, rep)) = self.current.take() {
                        self.reports.push(rep);
                    }
                    continue;
                }
            };
            rep.packets += chunk.pkts.len() as u64;
            rep.bytes += chunk.pkts.iter().map(|p| u64::from(p.caplen)).sum::<u64>();
            self.total_packets += chunk.pkts.len() as u64;
            let mut parts: Vec<Batch> = (0..n)
                .map(|_| Batch {
                    buf: Arc::clone(&chunk.buf),
                    pkts: Vec::new(),
                    behind: Vec::new(),
                    copies: Vec::new(),
                    now: Timestamp(0),
                    _ticket: None,
                })
                .collect();
            for p in &chunk.pkts {
                let before = self.now;
                self.now = self.now.max(p.ts);
                let (i, to_all) = self.dispatch.pick(p.link, chunk.data(p), p.origlen);
                let targets = if to_all { 0..n } else { i..i + 1 };
                for j in targets {
                    let Some(b) = parts.get_mut(j) else {
                        continue;
                    };
                    if p.ts < before {
                        b.behind.push((b.pkts.len(), before));
                    }
                    if j != i {
                        b.copies.push(b.pkts.len());
                    }
                    b.pkts.push(*p);
                }
            }
            let now = self.now;
            let parts = parts
                .into_iter()
                .zip(self.last_tick.iter_mut())
                .map(|(mut b, tick)| {
                    // A worker with no packets in this chunk still hears
                    // the clock, at most once a second of packet time.
                    if b.pkts.is_empty() && now.since(*tick) < 1_000_000_000 {
                        return None;
                    }
                    *tick = now;
                    b.now = now;
                    Some(b)
                })
                .collect();
            self.walked += 1;
            self.progress.tick(&rep.path, reader, self.total_packets);
            return Some(Walked { parts, left: n });
        }
    }
}

/// What the workers of [`run_fanout`] share: the reader, walked by
/// whichever worker needs a chunk no one walked yet, and the chunks
/// walked.
struct Walk<'a> {
    walker: std::sync::Mutex<Walker<'a>>,
    ring: std::sync::Mutex<Ring>,
    workers: usize,
}

/// What [`Walk::next`] gives a worker.
enum Next {
    /// Its batch of the chunk, if it has one.
    Chunk(Option<Batch>),
    /// Every input is read; the capture's last packet time.
    End(Timestamp),
}

impl Walk<'_> {
    /// Worker `me`'s part of chunk number `k` (from 0), walking it first
    /// if no other worker did.
    fn next(&self, me: usize, k: u64) -> Next {
        loop {
            if let Some(next) = self.take(me, k) {
                self.walk_ahead(k);
                return next;
            }
            // No one walked chunk `k` yet, or someone is walking it.
            let Ok(mut walker) = self.walker.lock() else {
                return Next::End(Timestamp(0));
            };
            if walker.walked > k {
                continue;
            }
            let walked = walker.walk(self.workers);
            let now = walker.now;
            let Ok(mut ring) = self.ring.lock() else {
                return Next::End(now);
            };
            match walked {
                Some(w) => ring.chunks.push_back(w),
                None => ring.end = Some((walker.walked, now)),
            }
        }
    }

    /// Walks up to [`WALK_AHEAD`] chunks past `k` when no other worker is
    /// walking: the workers reach the walk's end at about the same time,
    /// and a worker that had to walk the chunk both need while the other
    /// waited on the walker's lock made the walk serial. Walked ahead, a
    /// chunk is ready when the next worker needs it, and the walk runs
    /// while the other worker processes its batch. Who walks does not
    /// change what is walked: chunks are walked in capture order either
    /// way.
    fn walk_ahead(&self, k: u64) {
        let Ok(mut walker) = self.walker.try_lock() else {
            return;
        };
        while walker.walked <= k.saturating_add(WALK_AHEAD) {
            let walked = walker.walk(self.workers);
            let now = walker.now;
            let Ok(mut ring) = self.ring.lock() else {
                return;
            };
            match walked {
                Some(w) => ring.chunks.push_back(w),
                None => {
                    ring.end = Some((walker.walked, now));
                    return;
                }
            }
        }
    }

    /// Takes worker `me`'s part of chunk `k` if it was walked; `None` when
    /// it is still to be walked.
    fn take(&self, me: usize, k: u64) -> Option<Next> {
        let Ok(mut ring) = self.ring.lock() else {
            return Some(Next::End(Timestamp(0)));
        };
        let first = ring.first;
        let at = usize::try_from(k.checked_sub(first)?).ok()?;
        if let Some(w) = ring.chunks.get_mut(at) {
            let part = w.parts.get_mut(me).and_then(Option::take);
            w.left = w.left.saturating_sub(1);
            while ring.chunks.front().is_some_and(|w| w.left == 0) {
                ring.chunks.pop_front();
                ring.first += 1;
            }
            return Some(Next::Chunk(part));
        }
        match ring.end {
            Some((chunks, now)) if k >= chunks => Some(Next::End(now)),
            _ => None,
        }
    }

    /// Reading stops (the writer is gone).
    fn stop(&self) {
        if let Ok(mut w) = self.walker.lock() {
            w.stop = true;
        }
    }
}

/// Runs worker `seat.0` of `seat.1` on the chunks of `walk`, as
/// [`worker_loop`] on the batches of a reader.
fn walk_loop(
    cfg: &Config,
    engine: &Arc<Engine>,
    shared: &RunShared,
    seat: (usize, usize),
    walk: &Walk<'_>,
    pace: &Pace,
    out_tx: &Sender<Block>,
) -> WorkerStats {
    let (me, n) = seat;
    let mut w = Worker::with_shared(cfg, Arc::clone(engine), shared);
    w.set_output(Handoff::Wait(out_tx.clone()));
    w.set_seat(cfg, me, n);
    let mut now = Timestamp(0);
    let mut k = 0u64;
    loop {
        pace.start(me, k.saturating_add(1));
        match walk.next(me, k) {
            Next::Chunk(batch) => {
                if let Some(b) = batch {
                    b.feed(&mut w, &mut now);
                }
            }
            Next::End(end) => {
                // The end of the capture, as the reader's last (empty)
                // batch.
                now = now.max(end);
                w.tick(now);
                break;
            }
        }
        if w.output_closed() {
            walk.stop();
            break;
        }
        k += 1;
    }
    w.finish_blocks(now, &mut |block| {
        let _ = send_block(out_tx, block);
    })
}

/// A progress line on stderr every few seconds for long runs.
struct Progress {
    enabled: bool,
    started: Instant,
    last: Instant,
}

const PROGRESS_EVERY: Duration = Duration::from_secs(3);

impl Progress {
    fn new(enabled: bool) -> Self {
        let now = Instant::now();
        Progress {
            enabled,
            started: now,
            last: now,
        }
    }

    fn tick(&mut self, path: &std::path::Path, reader: &Reader, packets: u64) {
        if !self.enabled || self.last.elapsed() < PROGRESS_EVERY {
            return;
        }
        self.last = Instant::now();
        let pos = reader.position();
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let pct = reader
            .total_len()
            .filter(|&t| t > 0)
            .map(|t| {
                format!(
                    "{:.0}% of {}, ",
                    pos as f64 * 100.0 / t as f64,
                    human_bytes(t)
                )
            })
            .unwrap_or_default();
        eprintln!(
            "wardwatch: {}: {pct}{} packets read in all, {:.2} M packets/s",
            path.display(),
            packets,
            packets as f64 / secs / 1e6
        );
    }
}

/// `1.2 GB`-style sizes for people.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS.get(u).copied().unwrap_or("B"))
    }
}
