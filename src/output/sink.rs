//! Where EVE lines go: a file in the log directory, stdout, a Unix stream
//! socket, or Redis (see [`crate::output::redis`]). The writer thread
//! receives whole lines already serialised by the workers, so writing is a
//! plain copy; the channel in front of it is bounded, so a slow disk slows
//! the readers down (offline) instead of growing memory.
//!
//! `outputs.sensor_name` is added here, once for every event type: each
//! line `{…}` leaves as `{…,"host":"NAME"}` (Suricata's `host` field,
//! which its `sensor-name` setting fills), so the records of several
//! sensors stay apart in one SIEM index.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;

use super::redis::{RedisConfig, RedisSink, RedisTarget};

/// An EVE destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stdout,
    /// Appended to, as Suricata does with `eve.json`.
    File(PathBuf),
    /// A listening Unix stream socket that wardwatch connects to (Suricata's
    /// `unix_stream` EVE output): `--eve unix:/run/x.sock`. Live capture
    /// drops (and counts) lines while the reader is absent or too slow
    /// rather than growing memory or stalling the capture.
    Unix(PathBuf),
    /// Redis (Suricata's `filetype: redis`): offline waits for it, live
    /// holds a bounded buffer and counts what it drops.
    Redis(Box<RedisTarget>),
}

/// `outputs.eve:` — Suricata's `eve-log` `filetype`, `filename` and
/// `redis` settings. `--eve` on the command line overrides them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EveConfig {
    pub filetype: FileType,
    /// `regular`: the file, relative to `-l DIR`; `unix_stream`: the socket.
    pub filename: PathBuf,
    pub redis: RedisConfig,
}

impl Default for EveConfig {
    fn default() -> Self {
        EveConfig {
            filetype: FileType::Regular,
            filename: PathBuf::from("eve.json"),
            redis: RedisConfig::default(),
        }
    }
}

/// Suricata's `filetype` values that wardwatch writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileType {
    Regular,
    UnixStream,
    Redis,
}

impl EveConfig {
    /// The destination this section names; relative file names start at
    /// `log_dir`. `live` selects Redis's live behaviour.
    pub fn target(&self, log_dir: &Path, live: bool) -> Target {
        match self.filetype {
            FileType::Regular => Target::File(log_dir.join(&self.filename)),
            FileType::UnixStream => Target::Unix(self.filename.clone()),
            FileType::Redis => Target::Redis(Box::new(RedisTarget {
                config: self.redis.clone(),
                live,
            })),
        }
    }
}

/// The message of the error a write to a closed standard output gives
/// (`--eve - | head -1`): `main` ends such a run quietly with success.
pub const STDOUT_CLOSED: &str = "standard output closed by its reader";

/// Alert records written by this process's sinks, by severity (index 1 to
/// 4; 0 holds anything else): `--fail-on` reads them at exit. One count for
/// the process, because one process runs one pipeline.
static ALERTS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

/// Alert records of severity `sev` or worse (a lower number) written so
/// far by this process.
pub fn alerts_written(sev: u8) -> u64 {
    ALERTS
        .iter()
        .enumerate()
        .filter(|(i, _)| *i >= 1 && *i <= usize::from(sev))
        .map(|(_, n)| n.load(Ordering::Relaxed))
        .sum::<u64>()
        + if sev > 4 {
            ALERTS[0].load(Ordering::Relaxed)
        } else {
            0
        }
}

/// What a block of EVE lines holds: its lines, and its alert records by
/// `alert.severity` (index 1 to 4; 0 holds any other severity), counted
/// by whoever wrote them (a worker knows each alert it writes and its
/// rule's severity), so that the writer thread does not read the lines
/// again: [`Tally::scan`] counts the same from the bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub lines: u64,
    pub alerts: [u64; 5],
}

impl Tally {
    /// Counts one alert record of `severity`.
    pub fn alert(&mut self, severity: u8) {
        if let Some(n) = self.alerts.get_mut(severity_slot(u64::from(severity))) {
            *n += 1;
        }
    }

    pub fn add(&mut self, o: &Tally) {
        self.lines += o.lines;
        for (x, y) in self.alerts.iter_mut().zip(o.alerts) {
            *x += y;
        }
    }

    /// The tally of a block read from its bytes: its newlines, and the
    /// lines whose head says `"event_type":"alert"` by the first
    /// `"severity":` after it (every field before it in an alert record
    /// is ours and fixed, and no JSON string can hold an unescaped quote).
    /// For blocks whose writer did not count (a few small ones), and
    /// what the counting writers are tested against.
    pub fn scan(block: &[u8]) -> Tally {
        let (alerts, lines) = scan_block(block);
        Tally { lines, alerts }
    }
}

/// Where [`ALERTS`] counts an alert of `severity`.
fn severity_slot(severity: u64) -> usize {
    match severity {
        1..=4 => severity as usize,
        _ => 0,
    }
}

/// A block of whole EVE lines on its way to the writer, with its
/// [`Tally`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Block {
    pub bytes: Vec<u8>,
    pub tally: Tally,
}

impl Block {
    /// A block whose writer did not count it: [`Tally::scan`].
    pub fn scanned(bytes: Vec<u8>) -> Block {
        let tally = Tally::scan(&bytes);
        Block { bytes, tally }
    }

    /// Appends `o` (lines and counts).
    pub fn append(&mut self, o: &Block) {
        self.bytes.extend_from_slice(&o.bytes);
        self.tally.add(&o.tally);
    }
}

/// Alert records in a worker's EVE buffer not handed on yet, by
/// severity slot ([`Tally::alerts`]): counted where the worker learns of
/// each alert line it wrote (its asset view hears of every one:
/// `asset::observe::View`), taken when the buffer is handed on. Atomic
/// only so that it may be shared by the two; one thread uses it.
#[derive(Debug, Default)]
pub struct AlertTap([AtomicU64; 5]);

impl AlertTap {
    /// One alert record of `severity` was written.
    pub fn alert(&self, severity: u8) {
        if let Some(n) = self.0.get(severity_slot(u64::from(severity))) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Alerts of a [`Tally`] were written.
    pub fn add(&self, alerts: &[u64; 5]) {
        for (n, &a) in self.0.iter().zip(alerts) {
            if a > 0 {
                n.fetch_add(a, Ordering::Relaxed);
            }
        }
    }

    /// The counts so far, leaving zeros.
    pub fn take(&self) -> [u64; 5] {
        let mut out = [0; 5];
        for (o, n) in out.iter_mut().zip(&self.0) {
            if n.load(Ordering::Relaxed) > 0 {
                *o = n.swap(0, Ordering::Relaxed);
            }
        }
        out
    }
}

/// Counts the newlines of `bytes` (vectorised).
pub fn newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// Adds a block's alerts to the process's count.
fn tally_alerts(tally: &Tally) {
    for (total, &n) in ALERTS.iter().zip(&tally.alerts) {
        if n > 0 {
            total.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Where `"event_type":"alert"` may start in a line that counts.
const ALERT_HEAD: usize = 160;

/// The alert records of a block by severity, as [`ALERTS`] counts them.
#[cfg(test)]
fn count_alerts(block: &[u8]) -> [u64; 5] {
    scan_block(block).0
}

/// The alert records of a block by severity, and its newlines, in one
/// pass: line by line (a vectorised newline search), each line's head
/// searched for the alert's `event_type`. A search over the whole block
/// for it went through many false starts in JSON text (0.5 instructions a
/// byte, and another pass to count the lines).
fn scan_block(block: &[u8]) -> ([u64; 5], u64) {
    use memchr::memmem::Finder;
    use std::sync::LazyLock;
    const EVENT: &[u8] = b"\"event_type\":\"alert\"";
    static ALERT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(EVENT));
    static SEVERITY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"severity\":"));
    let mut counts = [0u64; 5];
    let mut lines = 0u64;
    let mut start = 0;
    while start < block.len() {
        let end = match memchr::memchr(b'\n', block.get(start..).unwrap_or_default()) {
            Some(i) => {
                lines += 1;
                start + i
            }
            None => block.len(),
        };
        let line = block.get(start..end).unwrap_or_default();
        start = end + 1;
        // The first occurrence starts before `ALERT_HEAD` exactly when one
        // is found in the head that holds an occurrence starting there.
        let head = line.get(..ALERT_HEAD - 1 + EVENT.len()).unwrap_or(line);
        let Some(at) = ALERT.find(head).filter(|&at| at < ALERT_HEAD) else {
            continue;
        };
        let line = line.get(at..).unwrap_or_default();
        let Some(s) = SEVERITY.find(line) else {
            continue;
        };
        let digits = line.get(s + 11..).unwrap_or_default();
        let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
        let sev = std::str::from_utf8(digits.get(..n).unwrap_or_default())
            .ok()
            .and_then(|d| d.parse::<u64>().ok());
        let Some(sev) = sev else {
            continue;
        };
        if let Some(n) = counts.get_mut(severity_slot(sev)) {
            *n += 1;
        }
    }
    (counts, lines)
}

/// How long a write to a Unix-socket reader may block before the reader
/// counts as stalled (the connection is dropped and retried later).
pub const UNIX_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

enum Out {
    Stream(BufWriter<Box<dyn Write + Send>>),
    Redis(Box<RedisSink>),
}

/// An open destination.
pub struct Sink {
    out: Out,
    lines: u64,
    /// `,"host":"NAME"}` when a sensor name is set.
    host: Option<Vec<u8>>,
    /// The block with `host` added to each line.
    scratch: Vec<u8>,
    /// Writing to standard output (a closed pipe ends the run quietly).
    stdout: bool,
}

impl Sink {
    /// Opens the target (creating the file, appending to an existing one).
    ///
    /// # Errors
    /// The file cannot be created or opened for appending; the socket
    /// cannot be connected; Redis refuses the password, or (offline) stays
    /// unreachable.
    pub fn open(target: &Target) -> io::Result<Sink> {
        Sink::open_with(target, None)
    }

    /// [`Sink::open`], adding `"host": sensor_name` to every record when a
    /// name is given.
    ///
    /// # Errors
    /// As [`Sink::open`].
    pub fn open_with(target: &Target, sensor_name: Option<&str>) -> io::Result<Sink> {
        let out = match target {
            Target::Stdout => Out::Stream(stream(Box::new(io::stdout()))),
            Target::File(p) => Out::Stream(stream(Box::new(open_append(p)?))),
            Target::Unix(p) => {
                let c = std::os::unix::net::UnixStream::connect(p)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
                c.set_write_timeout(Some(UNIX_WRITE_TIMEOUT))?;
                Out::Stream(stream(Box::new(c)))
            }
            Target::Redis(r) => Out::Redis(Box::new(RedisSink::open(r)?)),
        };
        let host = sensor_name.filter(|n| !n.is_empty()).map(|n| {
            let mut h = b",\"host\":".to_vec();
            // A string always serialises.
            h.extend_from_slice(serde_json::to_string(n).unwrap_or_default().as_bytes());
            h.push(b'}');
            h
        });
        Ok(Sink {
            out,
            lines: 0,
            host,
            scratch: Vec::new(),
            stdout: matches!(target, Target::Stdout),
        })
    }

    /// Writes a block of complete lines, counting its lines and alerts as
    /// its writer tallied them.
    ///
    /// # Errors
    /// The underlying write failed (disk full, closed pipe; Redis offline:
    /// unreachable past its timeout, or a record refused).
    pub fn write_block(&mut self, b: &Block) -> io::Result<()> {
        tally_alerts(&b.tally);
        let lines = b.tally.lines;
        let block = match &self.host {
            Some(h) => {
                add_host(&mut self.scratch, &b.bytes, h);
                &self.scratch[..]
            }
            None => &b.bytes[..],
        };
        match &mut self.out {
            Out::Stream(w) => {
                // `add_host` puts a field in each line: the same newlines.
                self.lines += lines;
                w.write_all(block)
                    .map_err(|e| closed_stdout(e, self.stdout))
            }
            Out::Redis(r) => r.write_lines(block),
        }
    }

    /// Lines written so far (for Redis: acknowledged by it).
    pub fn lines(&self) -> u64 {
        match &self.out {
            Out::Stream(_) => self.lines,
            Out::Redis(r) => r.delivered(),
        }
    }

    /// Lines this sink dropped since the last call (live Redis: buffer full
    /// or refused by Redis; 0 for the other targets, which drop nothing
    /// themselves).
    pub fn take_dropped(&mut self) -> u64 {
        match &mut self.out {
            Out::Stream(_) => 0,
            Out::Redis(r) => r.take_dropped(),
        }
    }

    /// Lines accepted but not written yet (live Redis while it is away).
    pub fn held(&self) -> u64 {
        match &self.out {
            Out::Stream(_) => 0,
            Out::Redis(r) => r.held(),
        }
    }

    /// Pushes out what is buffered; for live Redis, also the retry of held
    /// records that the live writer calls while idle.
    ///
    /// # Errors
    /// The final write failed.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Out::Stream(w) => w.flush().map_err(|e| closed_stdout(e, self.stdout)),
            Out::Redis(r) => r.flush(),
        }
    }
}

/// On standard output, a broken pipe is said in [`STDOUT_CLOSED`]'s words.
fn closed_stdout(e: io::Error, stdout: bool) -> io::Error {
    if stdout && e.kind() == io::ErrorKind::BrokenPipe {
        io::Error::new(io::ErrorKind::BrokenPipe, STDOUT_CLOSED)
    } else {
        e
    }
}

/// The buffer of a file or standard output: as large as a worker's
/// output block (64 KiB, `pipeline::worker::OUTPUT_BLOCK`), so that a
/// block goes to `write` as it is, not copied into the buffer first
/// (`BufWriter` writes what does not fit its buffer directly), while
/// small writes (the end of a run, a live run's idle flushes) are still
/// gathered. With 1 MiB every byte of the run was copied once more
/// (27 M instructions of the 1/20 MQTT bench), against a `write` call per
/// 64 KiB instead of per 1 MiB now.
const STREAM_BUFFER: usize = 64 * 1024;

fn stream(w: Box<dyn Write + Send>) -> BufWriter<Box<dyn Write + Send>> {
    BufWriter::with_capacity(STREAM_BUFFER, w)
}

/// Copies `block` into `out` with `host` (`,"host":…}`) in place of the
/// closing brace of every line. A line that does not end in `}` is copied
/// as it is.
fn add_host(out: &mut Vec<u8>, block: &[u8], host: &[u8]) {
    out.clear();
    for line in block.split_inclusive(|&b| b == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        match body.strip_suffix(b"}") {
            Some(open) => {
                out.extend_from_slice(open);
                out.extend_from_slice(host);
            }
            None => out.extend_from_slice(body),
        }
        if line.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
}

fn open_append(p: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_goes_into_every_line_as_a_json_string() {
        let mut out = Vec::new();
        // Hand-made lines: an object, a nested object, an escaped name.
        add_host(
            &mut out,
            b"{\"a\":1}\n{\"b\":{\"c\":2}}\n",
            b",\"host\":\"ward \\\"3\\\"\"}",
        );
        let lines: Vec<serde_json::Value> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["host"], "ward \"3\"");
        assert_eq!(lines[1]["b"]["c"], 2);
        assert_eq!(lines[1]["host"], "ward \"3\"");
    }

    #[test]
    fn alerts_are_counted_by_the_severity_of_their_alert_object() {
        // Hand-made lines in the shape of our records: two alerts of
        // severity 1 and 3, a severity of 9 (counted as "other"), an mqtt
        // record whose payload names an alert and a severity (escaped
        // quotes: not a field), and an alert line cut before its severity.
        let block = b"{\"timestamp\":\"t\",\"flow_id\":1,\"event_type\":\"alert\",\"src_ip\":\"10.0.0.1\",\"alert\":{\"action\":\"allowed\",\"signature\":\"x\",\"severity\":1,\"metadata\":{}}}\n\
{\"timestamp\":\"t\",\"event_type\":\"mqtt\",\"mqtt\":{\"m\":\"\\\"event_type\\\":\\\"alert\\\",\\\"severity\\\":2\"}}\n\
{\"event_type\":\"alert\",\"alert\":{\"severity\":3}}\n\
{\"event_type\":\"alert\",\"alert\":{\"severity\":9}}\n\
{\"event_type\":\"alert\",\"alert\":{\"sig";
        assert_eq!(count_alerts(block), [1, 1, 0, 1, 0]);
    }

    use proptest::strategy::Strategy as _;

    /// The whole-block search `scan_block` replaced: the first occurrence
    /// of the alert's `event_type` in a line, counted when it starts within
    /// the line's first 160 bytes.
    fn count_alerts_whole_block(block: &[u8]) -> [u64; 5] {
        use memchr::memmem::Finder;
        let alert = Finder::new(b"\"event_type\":\"alert\"");
        let severity = Finder::new(b"\"severity\":");
        let mut counts = [0u64; 5];
        let mut pos = 0;
        while let Some(at) = block
            .get(pos..)
            .and_then(|b| alert.find(b))
            .map(|i| pos + i)
        {
            let start = memchr::memrchr(b'\n', &block[..at]).map_or(0, |i| i + 1);
            let end = memchr::memchr(b'\n', &block[at..]).map_or(block.len(), |i| at + i);
            pos = end;
            if at - start >= 160 {
                continue;
            }
            let line = &block[at..end];
            let Some(s) = severity.find(line) else {
                continue;
            };
            let digits = &line[s + 11..];
            let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
            let Some(sev) = std::str::from_utf8(&digits[..n])
                .ok()
                .and_then(|d| d.parse::<u64>().ok())
            else {
                continue;
            };
            let i = usize::try_from(sev)
                .ok()
                .filter(|s| (1..=4).contains(s))
                .unwrap_or(0);
            counts[i] += 1;
        }
        counts
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Line by line counts what the whole-block search counted, on
        /// blocks of alert-like fragments, padding that moves the
        /// `event_type` around the 160-byte mark, and newlines.
        #[test]
        fn line_scan_counts_as_the_whole_block_search(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(vec![
                        "\"event_type\":\"alert\"",
                        "\"event_type\":\"alert",
                        "\"severity\":",
                        "\"severity\":1",
                        "\"severity\":3,",
                        "\"severity\":42",
                        "\"severity\":x",
                        "\n",
                        "{\"timestamp\":\"t\",",
                        "\\\"",
                        "é",
                    ]).prop_map(str::to_string),
                    (0usize..200).prop_map(|n| "a".repeat(n)),
                ],
                0..24,
            ),
        ) {
            let block = parts.concat();
            let (counts, lines) = scan_block(block.as_bytes());
            proptest::prop_assert_eq!(counts, count_alerts_whole_block(block.as_bytes()));
            proptest::prop_assert_eq!(
                lines,
                block.bytes().filter(|&b| b == b'\n').count() as u64
            );
        }
    }

    #[test]
    fn eve_section_names_its_target() {
        let c: EveConfig =
            serde_norway::from_str("filetype: unix_stream\nfilename: /run/e.sock").unwrap();
        assert_eq!(
            c.target(Path::new("/log"), false),
            Target::Unix("/run/e.sock".into())
        );
        let d = EveConfig::default();
        assert_eq!(
            d.target(Path::new("/log"), false),
            Target::File("/log/eve.json".into())
        );
        assert!(serde_norway::from_str::<EveConfig>("filetype: syslog").is_err());
    }
}
