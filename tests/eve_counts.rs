//! The counts a run reports about its EVE output — the records written
//! (the summary line) and the alerts by severity (`--fail-on`) — are
//! those of the lines it wrote. Workers count what they write and the
//! writer thread adds up their counts without reading the lines again
//! (`output::sink::Tally`): here every capture is run with the site
//! configuration of `pcaps/demo.yaml` (its rules alert), with one and two
//! workers, from a mapped file and from a pipe (the reader thread's
//! path), and the counts are checked against the EVE file read back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use common::*;

/// Records and alerts (by severity) of an EVE file, read as JSON.
fn read_back(eve: &[u8]) -> (u64, Vec<u64>) {
    let lines = parse_lines(eve);
    let severities = lines
        .iter()
        .filter(|l| l["event_type"] == "alert")
        .map(|l| l["alert"]["severity"].as_u64().unwrap())
        .collect();
    (lines.len() as u64, severities)
}

/// What the run said: records written, and alerts of severity `fail_on`
/// or worse (0 when it said nothing: none).
fn said(stderr: &str, fail_on: u8) -> (u64, u64) {
    let records = stderr
        .split(" EVE records written")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no record count in {stderr}"));
    let tail = format!(" or worse (--fail-on {fail_on})");
    let alerts = stderr
        .lines()
        .find(|l| l.ends_with(&tail))
        .map(|l| {
            l.trim_start_matches("wardwatch: ")
                .split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no alert count in {l}"))
        })
        .unwrap_or(0);
    (records, alerts)
}

/// Runs `capture` (through a pipe when `piped`) and checks the counts
/// against the file; returns the alerts written.
fn check(capture: &Path, workers: usize, piped: bool, fail_on: u8) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let eve = dir.path().join("eve.json");
    let cfg = repo().join("pcaps/demo.yaml");
    let input = if piped {
        "-".to_string()
    } else {
        capture.to_str().unwrap().to_string()
    };
    let mut child = bin()
        .args(["-r", &input, "-c", cfg.to_str().unwrap()])
        .args(["--eve", eve.to_str().unwrap()])
        .args(["--workers", &workers.to_string()])
        .args(["--fail-on", &fail_on.to_string()])
        .stdin(if piped { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(mut stdin) = child.stdin.take() {
        let bytes = std::fs::read(capture).unwrap();
        // A reader that stops at damage closes the pipe early.
        let _ = stdin.write_all(&bytes);
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let (records, severities) = read_back(&std::fs::read(&eve).unwrap());
    let alerts = severities
        .iter()
        .filter(|&&s| (1..=u64::from(fail_on)).contains(&s) || fail_on > 4 && s > 4)
        .count() as u64;
    let what = format!(
        "{} ({workers} workers{}, --fail-on {fail_on})",
        capture.display(),
        if piped { ", piped" } else { "" }
    );
    assert_eq!(
        said(&stderr, fail_on),
        (records, alerts),
        "{what}: {stderr}"
    );
    // `--fail-on` decides the exit status (4) when it counted any.
    assert_eq!(out.status.code() == Some(4), alerts > 0, "{what}: {stderr}");
    alerts
}

#[test]
fn records_and_alerts_counted_are_those_written_for_every_capture() {
    let mut alerts = 0;
    for cap in captures() {
        for (workers, piped) in [(1, false), (2, false), (2, true)] {
            alerts += check(&cap, workers, piped, u8::MAX);
        }
    }
    assert!(alerts > 100, "the captures alert: {alerts}");
}

#[test]
fn alerts_are_counted_by_their_severity() {
    let mut seen = [0u64; 4];
    for name in [
        "demo.pcap",
        "mqtt_v311_anon_phi.pcap",
        "dicom_store_phi.pcap",
    ] {
        let cap = repo().join("pcaps").join(name);
        for (i, sev) in (1..=4u8).enumerate() {
            seen[i] += check(&cap, 1 + i % 2, false, sev);
        }
    }
    // Severities 1 to 4 take in more and more alerts.
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(seen[0] > 0 && seen[0] < seen[3], "{seen:?}");
}
