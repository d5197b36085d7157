//! The README's samples are output of a real run and stay so: `--demo`
//! with one worker is run, and the "Sample output" section's alert, flow
//! and stats records must equal the run's records of the same flow id and
//! signature (compared as JSON values; `stats.uptime` and the per-run tags
//! of masked values aside), the summary
//! paragraph its counts, and "raises N alerts" the number of alerts.
//!
//! `WARDWATCH_BLESS_README=1 cargo test --test readme` rewrites the samples
//! from the run (review the diff before committing it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::Value;

/// The demo's records (parsed, and as written) and its stderr summary.
fn demo() -> (Vec<Value>, Vec<String>, String) {
    let out = bin()
        .args(["--demo", "--workers", "1", "--eve", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let raw = String::from_utf8(out.stdout.clone()).unwrap();
    (
        parse_lines(&out.stdout),
        raw.lines().map(str::to_string).collect(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Indents one JSON line as written (field order kept), two spaces a level.
fn pretty(line: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    let (mut in_str, mut escaped) = (false, false);
    let chars: Vec<char> = line.chars().collect();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    for (i, &c) in chars.iter().enumerate() {
        if in_str {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                let empty = matches!(chars.get(i + 1), Some('}' | ']'));
                if !empty {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                if !matches!(chars.get(i.wrapping_sub(1)), Some('{' | '[')) {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c => out.push(c),
        }
    }
    out
}

/// A record without what differs between runs: `stats.uptime`, and the
/// tags of masked values (keyed per run: `src/output/mask.rs`).
fn without_uptime(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(s) = v.get_mut("stats").and_then(Value::as_object_mut) {
        s.remove("uptime");
    }
    serde_json::from_str(&untagged(&v.to_string())).unwrap()
}

/// The run's record a README sample shows: the same event type, flow id
/// and (alerts) signature; the stats record.
fn counterpart(sample: &Value, records: &[Value]) -> usize {
    records
        .iter()
        .position(|r| {
            r["event_type"] == sample["event_type"]
                && r["flow_id"] == sample["flow_id"]
                && r["alert"]["signature_id"] == sample["alert"]["signature_id"]
        })
        .unwrap_or_else(|| panic!("no record of the run matches the README sample {sample}"))
}

/// The summary without its timing (`in 0.02 s (0.02 M packets/s)`), as one
/// line.
fn untimed(summary: &str) -> String {
    let one = summary.split_whitespace().collect::<Vec<_>>().join(" ");
    let start = one.find(") in ").map(|i| i + 1);
    let end = one.find(" M packets/s)").map(|i| i + " M packets/s)".len());
    match (start, end) {
        (Some(s), Some(e)) => format!("{}{}", &one[..s], &one[e..]),
        _ => one,
    }
}

#[test]
fn readme_samples_are_what_the_demo_writes() {
    let path = repo().join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (records, raw, stderr) = demo();
    let bless = std::env::var_os("WARDWATCH_BLESS_README").is_some();
    let (head, rest) = readme.split_once("## Sample output").unwrap();
    let (section, tail) = rest.split_once("\n## ").unwrap();
    let mut new_section = String::new();
    let mut problems = Vec::new();
    let mut blocks = 0;
    // Every ```json block of the section is one record.
    let mut parts = section.split("```json\n");
    new_section.push_str(parts.next().unwrap());
    for part in parts {
        let (block, after) = part.split_once("```").unwrap();
        let sample: Value = serde_json::from_str(block).unwrap();
        let i = counterpart(&sample, &records);
        let real = &records[i];
        blocks += 1;
        if without_uptime(&sample) != without_uptime(real) {
            problems.push(format!(
                "README sample differs from the run:\n  README: {sample}\n  run:    {real}"
            ));
        }
        new_section.push_str("```json\n");
        new_section.push_str(&pretty(&raw[i]));
        new_section.push('\n');
        new_section.push_str("```");
        new_section.push_str(after);
    }
    assert_eq!(blocks, 3, "alert, flow and stats samples");
    // The summary paragraph (a ``` block starting with "wardwatch: read").
    let summary = stderr
        .lines()
        .find(|l| l.starts_with("wardwatch: read"))
        .unwrap();
    let (before, after) = new_section.split_once("```\nwardwatch: read").unwrap();
    let (old_summary, after) = after.split_once("```").unwrap();
    let old_summary = format!("wardwatch: read{old_summary}");
    if untimed(&old_summary) != untimed(summary) {
        problems.push(format!(
            "README summary differs from the run:\n  README: {}\n  run:    {}",
            untimed(&old_summary),
            untimed(summary)
        ));
    }
    let new_section = format!("{before}```\n{}\n```{after}", wrap(summary, 100));
    // "raises N alerts" in the introduction.
    let alerts = records
        .iter()
        .filter(|r| r["event_type"] == "alert")
        .count();
    let claim = head
        .split("raises ")
        .skip(1)
        .filter_map(|t| t.split_whitespace().next())
        .find(|n| n.chars().all(|c| c.is_ascii_digit()))
        .expect("the introduction says how many alerts the demo raises");
    let new_head = head.replacen(
        &format!("raises {claim} alerts"),
        &format!("raises {alerts} alerts"),
        1,
    );
    if claim != alerts.to_string() {
        problems.push(format!(
            "README says the demo raises {claim} alerts; it raises {alerts}"
        ));
    }
    if bless {
        std::fs::write(
            &path,
            format!("{new_head}## Sample output{new_section}\n## {tail}"),
        )
        .unwrap();
        return;
    }
    assert!(
        problems.is_empty(),
        "{}\n(WARDWATCH_BLESS_README=1 cargo test --test readme rewrites them)",
        problems.join("\n")
    );
}

/// `text` broken into lines of at most `width` characters, at spaces.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for w in text.split(' ') {
        if !line.is_empty() && line.len() + 1 + w.len() > width {
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    out.push_str(&line);
    out
}

#[test]
fn pretty_printing_keeps_order_and_strings() {
    let line = r#"{"b":1,"a":{"s":"x,{\"y\":[]}","e":[],"l":[1,2]}}"#;
    let p = pretty(line);
    assert_eq!(
        serde_json::from_str::<Value>(&p).unwrap(),
        serde_json::from_str::<Value>(line).unwrap()
    );
    assert!(p.starts_with("{\n  \"b\": 1,\n  \"a\": {"), "{p}");
    assert!(p.contains("\"e\": []"), "{p}");
}

#[test]
fn untimed_summary_drops_only_the_timing() {
    assert_eq!(
        untimed(
            "wardwatch: read 1 input (86.7 kB, 446 packets) in 0.02 s (0.02 M packets/s); 20 flows"
        ),
        "wardwatch: read 1 input (86.7 kB, 446 packets); 20 flows"
    );
}
