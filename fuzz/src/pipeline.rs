//! Target `pipeline`: the whole sensor — capture reading, decoding,
//! defragmentation, flows, reassembly, protocol detection, the MQTT and
//! DICOM parsers, the default ruleset and the EVE writer — over an
//! arbitrary capture, as a one-worker run does it.
//!
//! Input: `mode:u8 rest`. `mode & 2` logs sensitive values unmasked
//! (`outputs.unmask_sensitive`); `mode & 4` turns checksum validation off
//! (`decoder.checksum_checks: no`, else `auto`), so the fuzzer's packets
//! reach the flows without valid checksums. `mode & 1`: `rest` is the
//! capture file itself.
//! Otherwise `rest = sel:u8 frame*` in the `decode` layout (link
//! type from `decode::LINKS`, packet time steps, cut frames), and
//! the harness writes a well-formed pcap around the frames, so the fuzzer's
//! effort goes into packet contents rather than file framing.
//!
//! Properties: every EVE line written, the closing `stats` record
//! included, is one JSON object with a string `event_type` and a
//! `timestamp`; the run ends normally on any input.
//!
//! Target `pipeline_workers`: the same input through the real multi-threaded
//! run ([`wardwatch::pipeline::run`]: reader, dispatch by flow hash,
//! workers, writer) with 1, 2 and 3 workers. Property (a shared decision
//! of the project): the output is the same, line order aside, the `stats`
//! record included except its timing field (`uptime`). Found by it and
//! fixed: per-worker thresholds, and `detect.threshold_late` depending on
//! the worker count and thread timing when the capture's time runs
//! backwards, and the `flow` record of a connection lost when one reusing
//! its tuple in the same instant waited for the same threshold decision,
//! and a closed flow ended `timeout` or `tcp_reuse` by whether its worker
//! saw the time jump before the SYN that reused its tuple
//! (regressions under `fuzz/regressions/pipeline_workers/`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use wardwatch::capture::{Buffer, Reader};
use wardwatch::config::Config;
use wardwatch::decode::ChecksumChecks;
use wardwatch::detect::Engine;
use wardwatch::output::eve;
use wardwatch::output::sink::Target;
use wardwatch::pipeline::worker::{RunShared, Worker};
use wardwatch::pipeline::{run, RunOptions};
use wardwatch::time::Timestamp;

use super::decode::LINKS;
use super::input::Cursor;

fn engine() -> Arc<Engine> {
    static E: OnceLock<Arc<Engine>> = OnceLock::new();
    E.get_or_init(|| {
        let medical = Engine::default_rules().text;
        Arc::new(super::detect::build(&medical).0)
    })
    .clone()
}

/// A little-endian microsecond pcap of `link` around frames in the
/// `decode` layout.
pub fn pcap_of_frames(c: &mut Cursor<'_>) -> Vec<u8> {
    let sel = c.u8();
    let link = LINKS[usize::from(sel) % LINKS.len()];
    let mut out = Vec::new();
    // magic, version 2.4, thiszone, sigfigs, snaplen, network
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&u32::from(link.0).to_le_bytes());
    let mut secs = 1_700_000_000u32;
    while !c.is_empty() {
        secs = secs.wrapping_add(u32::from(c.u8()));
        let cut = u32::from(c.u8());
        let len = usize::from(c.u16());
        let frame = c.bytes(len);
        // ts_sec, ts_usec, incl_len, orig_len
        out.extend_from_slice(&secs.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32 + cut).to_le_bytes());
        out.extend_from_slice(frame);
    }
    out
}

/// The capture file an input describes (see the module docs).
fn capture_file(data: &[u8]) -> Vec<u8> {
    let mut c = Cursor::new(data);
    let mode = c.u8();
    if mode & 1 == 1 {
        c.rest().to_vec()
    } else {
        pcap_of_frames(&mut c)
    }
}

pub fn pipeline(data: &[u8]) {
    let Ok(mut reader) = Reader::from_buffer(Buffer::Owned(capture_file(data))) else {
        return;
    };
    let mut cfg = Config::default();
    let mode = data.first().copied().unwrap_or(0);
    cfg.outputs.unmask_sensitive = mode & 2 != 0;
    if mode & 4 != 0 {
        cfg.decoder.checksum_checks = ChecksumChecks::No;
    }
    let shared = RunShared::new(&cfg);
    let mut w = Worker::with_shared(&cfg, engine(), &shared);
    let mut out = Vec::new();
    let mut now = Timestamp(0);
    while let Ok(Some(chunk)) = reader.next_chunk(64) {
        for p in &chunk.pkts {
            now = now.max(p.ts);
            w.packet(p.ts, p.link, chunk.data(p), p.origlen);
        }
        out.extend_from_slice(&w.take_output());
    }
    let stats = w.finish(now, &mut |block| out.extend_from_slice(&block));
    let mut counters = stats.counters();
    counters.extend(shared.memcaps.counters());
    eve::write_stats(&mut out, stats.last_ts, 0, &counters);
    let mut lines = 0;
    for line in out.split(|&b| b == b'\n') {
        if line.is_empty() {
            continue;
        }
        lines += 1;
        let v: serde_json::Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(e) => panic!(
                "EVE line is not JSON ({e}): {}",
                String::from_utf8_lossy(line)
            ),
        };
        let ok = v
            .get("event_type")
            .is_some_and(serde_json::Value::is_string)
            && v.get("timestamp").is_some_and(serde_json::Value::is_string);
        assert!(ok, "EVE line without event_type or timestamp: {v}");
    }
    assert!(lines >= 1, "no stats record");
    assert_eq!(
        out.last(),
        Some(&b'\n'),
        "output does not end with a newline"
    );
}

/// The EVE lines of a real run over `file` with `workers` workers, each
/// made canonical (keys sorted by `serde_json`, `stats.uptime` removed)
/// and sorted; `None` when the capture does not open.
fn run_lines(mode: u8, file: &[u8], workers: usize) -> Option<Vec<String>> {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let reader = Reader::from_buffer(Buffer::Owned(file.to_vec())).ok()?;
    let path = std::env::temp_dir().join(format!(
        "wardwatch-fuzz-{}-{}.eve",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let opts = RunOptions {
        inputs: vec!["fuzz".into()],
        workers,
        eve: Target::File(path.clone()),
        progress: false,
        engine: engine(),
        filter: None,
        exiting: false,
    };
    // The same configuration as `pipeline` for the same mode byte.
    let mut cfg = Config::default();
    if mode & 4 != 0 {
        cfg.decoder.checksum_checks = ChecksumChecks::No;
    }
    let report = run(&cfg, &opts, vec![reader]);
    let text = std::fs::read(&path);
    let _ = std::fs::remove_file(&path);
    report.expect("an offline run to a file completes");
    let text = text.expect("the run wrote its EVE file");
    let mut lines: Vec<String> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_slice(l).expect("EVE lines are JSON");
            if let Some(s) = v
                .get_mut("stats")
                .and_then(serde_json::Value::as_object_mut)
            {
                s.remove("uptime");
            }
            v.to_string()
        })
        .collect();
    lines.sort();
    Some(lines)
}

pub fn pipeline_workers(data: &[u8]) {
    let mode = data.first().copied().unwrap_or(0);
    let file = capture_file(data);
    let Some(one) = run_lines(mode, &file, 1) else {
        return;
    };
    // Two and three: which flows share a worker changes with the count
    // (and with the build: the dispatch hash may differ between the fuzz
    // build and the tests'), so each is a different split of the flows.
    for n in [2, 3] {
        let many = run_lines(mode, &file, n).expect("the capture opened once");
        if one == many {
            continue;
        }
        // As multisets: a line may differ only in how often it occurs.
        let count = |v: &[String], l: &String| v.iter().filter(|x| *x == l).count();
        let only = |a: &[String], b: &[String]| -> Vec<String> {
            let mut d: Vec<String> = a
                .iter()
                .filter(|l| count(a, l) > count(b, l))
                .map(|l| format!("{}x {l}", count(a, l) - count(b, l)))
                .collect();
            d.dedup();
            d
        };
        panic!(
            "output differs between 1 and {n} workers ({} and {} lines):\n1 more: {:#?}\n{n} more: {:#?}",
            one.len(),
            many.len(),
            only(&one, &many),
            only(&many, &one)
        );
    }
}
