//! Target `rules`: the rule parser and compiler on arbitrary rule text.
//!
//! Input: the text of a rules file (non-UTF-8 bytes replaced, as a reader
//! of a file with `read_to_string` would refuse them anyway).
//!
//! Properties:
//! - building never fails on rule text (only variables and lists can make
//!   a build fail, and those are fixed here);
//! - every rule of the file is either loaded or reported, once: loaded +
//!   errors equals the rules counted by the file syntax (blank and `#` lines
//!   skipped, a trailing `\` continues a rule), and the engine holds the
//!   loaded ones;
//! - errors point at lines of the file, in file order, with a reason;
//! - the rules that loaded run on a fixed set of real MQTT and DICOM flows
//!   ([`probes`]) with the engine's contract checked as in
//!   `detect`.

use std::sync::OnceLock;

use wardwatch::detect::{DetectConfig, Engine, FlowInfo, RuleSource, Vars};

use super::detect::{evaluate, flow, lookups, Item};
use super::turns::Step;

/// The rules in `text` by the file syntax: a test-side count.
fn count_rules(text: &str) -> usize {
    let mut n = 0;
    let mut open = false;
    for raw in text.lines() {
        let line = raw.trim_end();
        if !open {
            let t = line.trim_start();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
        }
        open = line.ends_with('\\');
        if !open {
            n += 1;
        }
    }
    n + usize::from(open)
}

/// Real flows to run compiled rules on: the MQTT and DICOM conversations
/// of small captures in `pcaps/`, each as its packets and records, once
/// between its own endpoints' kind of hosts and once towards the CMS8000's
/// known-bad address.
pub fn probes() -> &'static [(FlowInfo, Vec<Item>)] {
    static P: OnceLock<Vec<(FlowInfo, Vec<Item>)>> = OnceLock::new();
    P.get_or_init(|| {
        let captures: [&[u8]; 4] = [
            include_bytes!("../../pcaps/mqtt_v31_default_creds.pcap"),
            include_bytes!("../../pcaps/mqtt_v5_props.pcap"),
            include_bytes!("../../pcaps/dicom_userid.pcap"),
            include_bytes!("../../pcaps/cms8000_exfil.pcap"),
        ];
        let mut v = Vec::new();
        for cap in captures {
            for f in super::seeds::flows(cap) {
                let steps: Vec<Step> = f.steps;
                let items = super::detect::items(f.proto, 0, &steps);
                for ends in [0, 1] {
                    v.push((flow(ends, f.proto), items.clone()));
                }
            }
        }
        v
    })
}

pub fn rules(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let src = RuleSource {
        name: "fuzz".into(),
        text: text.to_string(),
    };
    let (engine, report) = Engine::build_with(
        &Vars::default(),
        &DetectConfig::default(),
        lookups().clone(),
        &[src],
    )
    .expect("rule text alone cannot fail a build");
    assert_eq!(
        report.loaded + report.errors.len(),
        count_rules(&text),
        "rules lost or counted twice: {:?}",
        report.errors
    );
    assert_eq!(engine.rule_count(), report.loaded);
    let lines = text.lines().count();
    let mut last = 0;
    for e in &report.errors {
        assert!(
            e.line >= 1 && e.line <= lines,
            "error on line {} of {lines}",
            e.line
        );
        assert!(e.line >= last, "errors out of file order");
        assert!(!e.reason.is_empty(), "error without a reason");
        last = e.line;
    }
    if report.loaded > 0 {
        for (f, items) in probes() {
            evaluate(&engine, *f, items);
        }
    }
}
