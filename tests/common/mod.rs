//! Helpers shared by the integration tests: run the real binary on the
//! committed captures and parse what it writes.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(target_os = "linux")]
pub mod netns;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wardwatch"))
}

/// Every committed capture, sorted.
pub fn captures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("pcaps"))
        .expect("pcaps/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.ends_with(".pcap") || n.ends_with(".pcapng")
        })
        .collect();
    v.sort();
    v
}

/// Runs wardwatch with `args` plus `--eve - -q` and returns its output.
pub fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .args(["--eve", "-", "-q"])
        .stdin(Stdio::null())
        .output()
        .expect("run wardwatch")
}

/// EVE records of a run over one capture with `workers` workers; the exit
/// status must be 0, or 3 for a damaged capture.
pub fn eve(capture: &Path, workers: usize) -> Vec<Value> {
    let out = run(&[
        "-r",
        capture.to_str().unwrap(),
        "--workers",
        &workers.to_string(),
    ]);
    let code = out.status.code();
    assert!(
        code == Some(0) || code == Some(3),
        "{}: exit {:?}: {}",
        capture.display(),
        code,
        String::from_utf8_lossy(&out.stderr)
    );
    parse_lines(&out.stdout)
}

pub fn parse_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8(bytes.to_vec())
        .expect("EVE is UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad EVE line {l}: {e}")))
        .collect()
}

/// A conversation's endpoints in canonical order: IP version, address
/// bytes, port — the order `tests/tools/tshark_conv.py` uses.
pub type ConvKey = (String, IpAddr, u16, IpAddr, u16);

fn order(ip: &IpAddr, port: u16) -> (u8, Vec<u8>, u16) {
    match ip {
        IpAddr::V4(a) => (4, a.octets().to_vec(), port),
        IpAddr::V6(a) => (6, a.octets().to_vec(), port),
    }
}

/// Frames and bytes a→b, b→a, and the Community ID, per conversation.
pub type ConvCounts = BTreeMap<ConvKey, ([u64; 4], String)>;

/// Sums wardwatch's `flow` records per TCP/UDP conversation.
pub fn conv_from_eve(records: &[Value]) -> ConvCounts {
    let mut m = ConvCounts::new();
    for r in records.iter().filter(|r| r["event_type"] == "flow") {
        let proto = r["proto"].as_str().unwrap().to_string();
        if proto != "TCP" && proto != "UDP" {
            continue;
        }
        let s: IpAddr = r["src_ip"].as_str().unwrap().parse().unwrap();
        let d: IpAddr = r["dest_ip"].as_str().unwrap().parse().unwrap();
        let sp = r["src_port"].as_u64().unwrap() as u16;
        let dp = r["dest_port"].as_u64().unwrap() as u16;
        let f = &r["flow"];
        let ts = [
            f["pkts_toserver"].as_u64().unwrap(),
            f["bytes_toserver"].as_u64().unwrap(),
        ];
        let tc = [
            f["pkts_toclient"].as_u64().unwrap(),
            f["bytes_toclient"].as_u64().unwrap(),
        ];
        let fwd = order(&s, sp) <= order(&d, dp);
        let (key, ab, ba) = if fwd {
            ((proto, s, sp, d, dp), ts, tc)
        } else {
            ((proto, d, dp, s, sp), tc, ts)
        };
        let e = m.entry(key).or_insert(([0; 4], String::new()));
        e.0[0] += ab[0];
        e.0[1] += ab[1];
        e.0[2] += ba[0];
        e.0[3] += ba[1];
        e.1 = r["community_id"].as_str().unwrap().to_string();
    }
    m
}

/// Parses the TSV that `tests/tools/tshark_conv.py` prints.
pub fn conv_from_tsv(text: &str) -> ConvCounts {
    let mut m = ConvCounts::new();
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let c: Vec<&str> = line.split('\t').collect();
        assert_eq!(c.len(), 10, "bad line {line}");
        let n = |i: usize| c[i].parse::<u64>().unwrap();
        m.insert(
            (
                c[0].to_string(),
                c[1].parse().unwrap(),
                c[2].parse().unwrap(),
                c[3].parse().unwrap(),
                c[4].parse().unwrap(),
            ),
            ([n(5), n(6), n(7), n(8)], c[9].to_string()),
        );
    }
    m
}

/// Ends a test that cannot run here (no root, a tool missing). Under `CI`
/// nothing may skip: the test fails, naming what is missing. Elsewhere it
/// prints `SKIPPED` and, when `WARDWATCH_SKIP_LOG` names a file, appends the
/// test's name and reason to it, so `.ci/run`'s closing line counts real
/// skips (cargo counts such a test as passed). Call it and return.
pub fn skip(reason: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("(unnamed test)")
        .to_string();
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{test}: cannot run in CI: {reason}");
    }
    eprintln!("SKIPPED {test}: {reason}");
    if let Some(log) = std::env::var_os("WARDWATCH_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(f, "{test}\t{reason}");
        }
    }
}

/// What `python3 tests/tools/<script> args…` writes on stdout (one of the
/// independent decoders' drivers); fails the test, with the tool's
/// stderr, when it does not succeed.
pub fn python_tool<A: AsRef<std::ffi::OsStr>>(
    script: &str,
    args: impl IntoIterator<Item = A>,
) -> Vec<u8> {
    let out = Command::new("python3")
        .arg(repo().join("tests/tools").join(script))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tests/tools/{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Records without the fields that legitimately differ between runs
/// (`stats.uptime`; the tags of masked values, keyed per run without
/// `outputs.mask_key_file`: see [`untagged`]), as sorted JSON lines.
pub fn normalised(records: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if let Some(s) = r.get_mut("stats").and_then(Value::as_object_mut) {
                s.remove("uptime");
            }
            untagged(&r.to_string())
        })
        .collect();
    v.sort();
    v
}

/// `text` with the tag of every masked value (`***(9 bytes #5bc2ad6a1f03)`,
/// `src/output/mask.rs`) replaced by `#<tag>`: the length stays compared.
pub fn untagged(text: &str) -> String {
    const MARK: &str = " bytes #";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(MARK) {
        let (head, tail) = rest.split_at(i + MARK.len());
        out.push_str(head);
        let tag = tail
            .get(..12)
            .filter(|t| t.bytes().all(|b| b.is_ascii_hexdigit()));
        match (tag, tail.get(12..13)) {
            (Some(_), Some(")")) => {
                out.push_str("<tag>");
                rest = &tail[12..];
            }
            _ => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// Validates EVE lines against Suricata's schema plus our additions
/// (`tests/tools/validate_eve.py`). `None` (with a printed reason) when it
/// cannot run here: no schema file, no python3 or no jsonschema package;
/// `Some(Err(report))` when a record does not validate.
pub fn schema_check(lines: &[u8]) -> Option<Result<(), String>> {
    use std::io::Write;
    let schema = repo().join("../shared/eve-schema.json");
    if !schema.exists() {
        skip(&format!("schema check: {} not present", schema.display()));
        return None;
    }
    let has_jsonschema = Command::new("python3")
        .args(["-c", "import jsonschema"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_jsonschema {
        skip("schema check: python3 with the jsonschema package is not installed");
        return None;
    }
    let mut child = Command::new("python3")
        .arg(repo().join("tests/tools/validate_eve.py"))
        .arg(&schema)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(lines).unwrap();
    let out = child.wait_with_output().unwrap();
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    })
}

/// The records of event type `event_type` and the anomalies, one JSON line
/// each, with what differs between runs (`timestamp`, `flow_id`,
/// `community_id`) masked: a protocol's golden EVE.
pub fn golden_lines(records: &[Value], event_type: &str) -> String {
    let mut out = String::new();
    for r in records {
        if r["event_type"] != event_type && r["event_type"] != "anomaly" {
            continue;
        }
        let mut r = r.clone();
        for k in ["timestamp", "flow_id", "community_id"] {
            if r.get(k).is_some() {
                r[k] = Value::from("<masked>");
            }
        }
        out += &r.to_string();
        out.push('\n');
    }
    out
}

/// The EVE records of a run over `capture` with one worker, patient data
/// masked or not (`outputs.unmask_sensitive`), masks made with the test
/// key `tests/data/mask.key` (so that they are the same in every run).
pub fn run_eve(capture: &Path, unmask: bool) -> Vec<Value> {
    let mut cfg = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(
        &mut cfg,
        format!(
            "outputs: {{unmask_sensitive: {unmask}, mask_key_file: {:?}}}\n",
            repo().join("tests/data/mask.key")
        )
        .as_bytes(),
    )
    .unwrap();
    let out = run(&[
        "-r",
        capture.to_str().unwrap(),
        "--workers",
        "1",
        "-c",
        cfg.path().to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_lines(&out.stdout)
}
