//! Issue 10's permanent evasion suite: what an attacker, a lossy SPAN port
//! or a one-way mirror makes of the real captures must not hide a finding.
//!
//! Every application capture of `pcaps/` (`mqtt_*`, `dicom_*`,
//! `cms8000_exfil`, `demo`) is rewritten by the variant generator
//! (`tests/common/evasion.rs`, described in `pcaps/README.md`, "Evasion
//! variants") and run through the library pipeline with the default ruleset
//! and the modelled hospital's configuration (`pcaps/demo.yaml`), as
//! `tests/alerts.rs` runs the originals. For each variant class:
//! - the alerts, as (flow, signature id) → count, equal those of the
//!   original capture (whose own alerts `tests/alerts.rs` checks against
//!   hand-derived expectations), except where the lost side's answer is
//!   needed: those classes have hand-derived tables below, one line per
//!   capture, with the reason. Rules limited per source host count per
//!   host, not per flow (which of a host's flows gets the one alert
//!   depends on when each flow's data is delivered);
//! - the output is the same for 1, 2 and 3 workers (sorted lines, the
//!   stats record without its timing field).
//!
//! Each (class, capture) is its own `#[test]`, `class::capture`. A case
//! that fails on today's code is marked `#[ignore = "needs <mechanism>
//! (<branch>): <first symptom>"]`, so the lead can un-ignore it when the
//! branch lands (`cargo test --test evasion -- --ignored` lists what is
//! still missing). Three more tests check what a class must report besides
//! alerts: overlap anomalies, checksum counters, lost answers; and the
//! adversarial captures of `pcaps/evasion/` have their own tests at the
//! end.
//!
//! Replay a failing case by hand:
//! `cargo run --example evasion -- pcaps/X.pcap /tmp/v VARIANT`, then
//! `wardwatch -r /tmp/v/X.VARIANT.pcap -c pcaps/demo.yaml --eve -`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/evasion.rs"]
mod evasion;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use common::{normalised, parse_lines, repo};
use evasion::{Options, Pcap, Variant};
use serde_json::Value;
use wardwatch::capture::{Buffer, Reader};
use wardwatch::config::Config;
use wardwatch::output::sink::Target;
use wardwatch::pipeline::{self, rules::load_engine, RunOptions};

/// 1-byte splitting covers the first 4 KiB of each direction of each
/// flow: every MQTT login and first messages, the DICOM association
/// requests (the 9.6 kB one of `dicom_store_phi` in part), and 1-byte
/// flights of up to 1448 pieces; the whole file stays under a minute.
const OPTS: Options = Options {
    split_cap: 4096,
    seed: 0x5eed_0010,
};

// ------------------------------------------------------------ running

/// The application captures the variants are made of.
fn app_captures() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo().join("pcaps"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".pcap"))
        .filter(|n| {
            n.starts_with("mqtt_")
                || n.starts_with("dicom_")
                || n.starts_with("hl7_")
                || n == "cms8000_exfil.pcap"
                || n == "demo.pcap"
        })
        .collect();
    v.sort();
    assert!(v.len() >= 22, "application captures missing: {v:?}");
    v
}

/// EVE records of one run of the pipeline over a capture held in memory,
/// with the demo configuration and the default ruleset (built per run: no
/// detection state is shared between runs).
fn pipeline_run(pcap: Vec<u8>, workers: usize) -> Vec<Value> {
    pipeline_run_from(Reader::from_buffer(Buffer::Owned(pcap)).unwrap(), workers)
}

/// [`pipeline_run`] over any reader (a mapped file, say).
fn pipeline_run_from(reader: Reader, workers: usize) -> Vec<Value> {
    let pcaps = repo().join("pcaps");
    let cfg = Config::load(&pcaps.join("demo.yaml")).unwrap();
    let (engine, report) = load_engine(&cfg, &pcaps, &[]).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let dir = tempfile::tempdir().unwrap();
    let eve = dir.path().join("eve.json");
    let opts = RunOptions {
        inputs: vec![PathBuf::from("variant.pcap")],
        workers,
        eve: Target::File(eve.clone()),
        progress: false,
        engine: Arc::new(engine),
        filter: None,
        exiting: false,
    };
    pipeline::run(&cfg, &opts, vec![reader]).unwrap();
    parse_lines(&std::fs::read(&eve).unwrap())
}

/// Where an alert is counted: its flow (protocol, then the lower and the
/// higher address and port), or — for rules limited per source host
/// (`track by_src`), where which of a host's flows gets the one alert
/// depends on arrival order — its source host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    Flow(String, (IpAddr, u16), (IpAddr, u16)),
    Host(IpAddr),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Flow(_, a, b) => write!(f, "{}:{}-{}:{}", a.0, a.1, b.0, b.1),
            Place::Host(h) => write!(f, "host {h}"),
        }
    }
}

fn flow_of(r: &Value) -> Place {
    let ep = |ip: &str, port: &str| -> (IpAddr, u16) {
        (
            r[ip].as_str().unwrap().parse().unwrap(),
            r[port].as_u64().unwrap() as u16,
        )
    };
    let (a, b) = (ep("src_ip", "src_port"), ep("dest_ip", "dest_port"));
    let proto = r["proto"].as_str().unwrap_or("").to_string();
    Place::Flow(proto, a.min(b), a.max(b))
}

/// Signature ids of the default ruleset's rules limited per source host.
fn by_src_sids() -> &'static BTreeSet<u64> {
    static SIDS: OnceLock<BTreeSet<u64>> = OnceLock::new();
    SIDS.get_or_init(|| {
        let rules = std::fs::read_to_string(repo().join("rules/medical.rules")).unwrap();
        rules
            .lines()
            .filter(|l| l.starts_with("alert") && l.contains("track by_src"))
            .filter_map(|l| {
                l.split("sid:")
                    .nth(1)?
                    .split(';')
                    .next()?
                    .trim()
                    .parse()
                    .ok()
            })
            .collect()
    })
}

/// Alerts as (place, signature id) → count.
type Alerts = BTreeMap<(Place, u64), usize>;

fn alerts(records: &[Value]) -> Alerts {
    let mut m = Alerts::new();
    for r in records.iter().filter(|r| r["event_type"] == "alert") {
        let sid = r["alert"]["signature_id"].as_u64().unwrap();
        let place = if by_src_sids().contains(&sid) {
            Place::Host(r["src_ip"].as_str().unwrap().parse().unwrap())
        } else {
            flow_of(r)
        };
        *m.entry((place, sid)).or_default() += 1;
    }
    m
}

fn by_sid(a: &Alerts) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for ((_, sid), n) in a {
        *m.entry(*sid).or_default() += n;
    }
    m
}

fn show(a: &Alerts) -> String {
    a.iter()
        .map(|((p, sid), n)| format!("{sid}x{n} on {p}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An original capture and its alerts, computed once per test process.
struct Original {
    pcap: Pcap,
    alerts: Alerts,
    /// Records of transactions that wait for an answer (see
    /// [`awaits_answer`]).
    awaiting: usize,
}

fn original(capture: &str) -> Arc<Original> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Original>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(o) = cache.lock().unwrap().get(capture) {
        return o.clone();
    }
    let bytes = std::fs::read(repo().join("pcaps").join(capture)).unwrap();
    let pcap = Pcap::parse(&bytes).unwrap();
    let records = pipeline_run(bytes, 1);
    let o = Arc::new(Original {
        pcap,
        alerts: alerts(&records),
        awaiting: records
            .iter()
            .filter(|r| awaits_answer(r).is_some())
            .count(),
    });
    cache.lock().unwrap().insert(capture.to_string(), o.clone());
    o
}

/// What one variant of one capture gave with one worker.
struct Outcome {
    records: Vec<Value>,
    alerts: Alerts,
    /// Packets in the variant.
    packets: usize,
}

fn run_once(capture: &str, v: Variant) -> (Outcome, Vec<u8>) {
    let pcap = v.apply(&original(capture).pcap, &OPTS);
    let bytes = pcap.write();
    let records = pipeline_run(bytes.clone(), 1);
    let o = Outcome {
        alerts: alerts(&records),
        records,
        packets: pcap.packets.len(),
    };
    (o, bytes)
}

/// Runs the variant with 1 worker, then 2 and 3: `Err` names the first
/// line that differs between worker counts (stats without timing).
fn run_variant(capture: &str, v: Variant) -> Result<Outcome, String> {
    let (o, bytes) = run_once(capture, v);
    same_for_2_and_3_workers(&o.records, &bytes)?;
    Ok(o)
}

/// `Err` names the first line that differs between `one` (the records of
/// a 1-worker run of `pcap`) and a run with 2, then 3 workers.
fn same_for_2_and_3_workers(one: &[Value], pcap: &[u8]) -> Result<(), String> {
    let one = normalised(one);
    for w in [2, 3] {
        let other = normalised(&pipeline_run(pcap.to_vec(), w));
        if other != one {
            let a: BTreeSet<&String> = one.iter().collect();
            let b: BTreeSet<&String> = other.iter().collect();
            let first =
                a.symmetric_difference(&b)
                    .next()
                    .map_or("(line counts differ)".to_string(), |l| {
                        let side = if a.contains(l) {
                            "1 worker only".to_string()
                        } else {
                            format!("{w} workers only")
                        };
                        format!("{side}: {}", &l[..l.len().min(400)])
                    });
            return Err(format!("output differs between 1 and {w} workers; {first}"));
        }
    }
    Ok(())
}

/// One (capture, variant) case: the output is the same for 1, 2 and 3
/// workers, and `check` holds.
fn case(v: Variant, capture: &str, check: impl Fn(&str, &Outcome) -> Result<(), String>) {
    if let Err(e) = run_variant(capture, v).and_then(|o| check(capture, &o)) {
        panic!("{capture} {}: {e}", v.name());
    }
}

/// Runs `check` on one run of every application capture's variant;
/// panics listing every capture that failed, with its first symptom.
fn each_capture(v: Variant, check: impl Fn(&str, &Outcome) -> Result<(), String>) {
    let caps = app_captures();
    let failed: Vec<String> = caps
        .iter()
        .filter_map(|cap| {
            let (o, _) = run_once(cap, v);
            check(cap, &o)
                .err()
                .map(|e| format!("{cap} {}: {e}", v.name()))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} captures failed:\n{}",
        failed.len(),
        caps.len(),
        failed.join("\n")
    );
}

// -------------------------------------------------------- expectations

/// The variant must raise exactly the original's alerts.
fn same_alerts(capture: &str, o: &Outcome) -> Result<(), String> {
    alerts_equal(capture, &o.alerts)
}

fn alerts_equal(capture: &str, got: &Alerts) -> Result<(), String> {
    let want = &original(capture).alerts;
    if got == want {
        return Ok(());
    }
    let missing: Alerts = want
        .iter()
        .filter(|(k, n)| got.get(k) != Some(n))
        .map(|(k, n)| (k.clone(), *n))
        .collect();
    let extra: Alerts = got
        .iter()
        .filter(|(k, n)| want.get(k) != Some(n))
        .map(|(k, n)| (k.clone(), *n))
        .collect();
    Err(format!(
        "alerts differ from the original's: missing [{}]; unexpected [{}]",
        show(&missing),
        show(&extra)
    ))
}

/// The volume rule: "more than 2 KiB to a country outside the allowlist".
const VOLUME: u64 = 9420041;

/// `got` without volume alerts the original did not have.
fn without_new_volume_alerts(capture: &str, got: &Alerts) -> Alerts {
    let orig = &original(capture).alerts;
    got.iter()
        .filter(|((flow, sid), _)| *sid != VOLUME || orig.contains_key(&(flow.clone(), *sid)))
        .map(|(k, n)| (k.clone(), *n))
        .collect()
}

/// Retransmissions put bytes on the wire twice, and 1-byte segments carry
/// a header each; volume rules count wire bytes (`flow.bytes_toserver`, as
/// in Suricata): the same alerts, except that a volume alert (9420041) may
/// fire on a flow the original kept just under its threshold
/// (hl7_bare_515: 1 086 bytes of payload).
fn same_alerts_more_bytes(capture: &str, o: &Outcome) -> Result<(), String> {
    alerts_equal(capture, &without_new_volume_alerts(capture, &o.alerts))
}

/// Header-only rules: their alerts do not depend on a byte of payload.
const PAYLOAD_FREE: [u64; 3] = [9420040, 9420041, 9420050];

/// The same finding raised by another rule: the raw-TCP PHI rule (9420022)
/// and the HL7 one (9420024). When different bytes sent first make HL7
/// detection fail on a flow, the raw-TCP rule still reads the packets
/// carrying the patient (which the host dropped as retransmissions, but
/// which crossed the network in clear).
const SAME_FINDING: [(u64, u64); 1] = [(9420022, 9420024)];

/// Overlaps with different bytes sent *before* the original: the host
/// keeps that first copy, so which payload alerts survive depends on the
/// sensor's documented overlap policy. Whatever the policy: no finding the
/// original did not have ([`SAME_FINDING`]), and every header-only alert
/// kept.
fn subset_keeping_header_alerts(capture: &str, o: &Outcome) -> Result<(), String> {
    let orig = &original(capture).alerts;
    let as_orig = |((flow, sid), _): &(&(Place, u64), &usize)| {
        let alias = SAME_FINDING
            .iter()
            .find(|(raw, _)| raw == sid)
            .map(|(_, parsed)| (flow.clone(), *parsed))
            .filter(|k| orig.contains_key(k));
        alias.unwrap_or_else(|| (flow.clone(), *sid))
    };
    let extra: Alerts = without_new_volume_alerts(capture, &o.alerts)
        .iter()
        .filter(|e| orig.get(&as_orig(e)).is_none_or(|m| e.1 > m))
        .map(|(k, n)| (k.clone(), *n))
        .collect();
    let lost: Alerts = orig
        .iter()
        .filter(|((_, sid), _)| PAYLOAD_FREE.contains(sid))
        .filter(|(k, n)| o.alerts.get(k) != Some(n))
        .map(|(k, n)| (k.clone(), *n))
        .collect();
    if extra.is_empty() && lost.is_empty() {
        return Ok(());
    }
    Err(format!(
        "alerts the original did not have: [{}]; header-only alerts lost: [{}]",
        show(&extra),
        show(&lost)
    ))
}

/// Per capture, the alerts (signature id, count) a variant class must
/// raise, derived by hand from `pcaps/README.md`'s description of each
/// exchange, the segments tshark shows, and the rules; `demo.pcap` raises
/// the sum of its parts. A capture missing here is an error.
type Table = &'static [(&'static str, &'static [(u64, usize)])];

/// The captures `demo.pcap` is merged from (`pcaps/generate.sh`).
const DEMO_PARTS: &[&str] = &[
    "mqtt_v311_anon_phi.pcap",
    "mqtt_v31_default_creds.pcap",
    "mqtt_tls.pcap",
    "mqtt_foreign_broker.pcap",
    "dicom_echo.pcap",
    "dicom_store_phi.pcap",
    "dicom_userid.pcap",
    "cms8000_exfil.pcap",
];

/// Client → server only. No answer is seen: "accepted" and "refused"
/// cannot be decided, so default credentials raise "default credentials,
/// outcome unknown" (9420005) instead of 9420001/9420002, anonymous logins
/// nothing, and the DICOM known-AE rule (it needs the accepted contexts)
/// nothing. Patient data the client sends, clear-text passwords, DICOM
/// user identity, exposure and geography stay; patient data only the
/// broker/SCP sends is gone.
const TO_SERVER_ONLY: Table = &[
    // Three ORU messages sent to CN: everything is client → server (the
    // HL7 records are logged with their answers lost; 9420024, 9420023 and
    // 9420042 need only the messages).
    (
        "cms8000_exfil.pcap",
        &[
            (9420023, 1),
            (9420024, 1),
            (9420040, 1),
            (9420041, 1),
            (9420042, 1),
            (9420050, 1),
        ],
    ),
    // HL7: everything the default rules see is client → server.
    (
        "hl7_bare_515.pcap",
        &[
            (9420023, 1),
            (9420024, 1),
            (9420040, 1),
            (9420042, 1),
            (9420050, 1),
        ],
    ),
    ("hl7_mllp.pcap", &[]),
    ("hl7_nonstd_port.pcap", &[(9420023, 1)]),
    // Internal hosts on the HL7 port: nothing to report in any copy.
    ("hl7_variants.pcap", &[]),
    ("dicom_echo.pcap", &[]),
    // The second query's identifier carries PatientID=MRN-TEST-0001 (PHI by
    // itself, src/detect/phi/dicom.rs); the first asks PatientName=* only.
    ("dicom_find.pcap", &[(9420021, 1)]),
    ("dicom_internet_echo.pcap", &[(9420032, 1)]),
    ("dicom_nonstd_port.pcap", &[]),
    ("dicom_rejected.pcap", &[]),
    ("dicom_store_large.pcap", &[(9420021, 1)]),
    ("dicom_store_phi.pcap", &[(9420021, 2)]),
    ("dicom_tls.pcap", &[]),
    // The identities are in the requests.
    ("dicom_userid.pcap", &[(9420012, 1), (9420013, 1)]),
    (
        "mqtt_foreign_broker.pcap",
        &[(9420004, 1), (9420040, 1), (9420041, 1)],
    ),
    ("mqtt_incountry.pcap", &[(9420004, 1)]),
    // pump/pump's refusal unseen; the scanner's CONNECTs still reach the
    // broker from the internet.
    (
        "mqtt_internet_refused.pcap",
        &[(9420004, 1), (9420005, 1), (9420031, 3)],
    ),
    ("mqtt_large_split.pcap", &[(9420004, 3)]),
    // The two monitor connections publish; the nurse station only receives.
    ("mqtt_nonstd_port.pcap", &[(9420004, 2), (9420020, 2)]),
    ("mqtt_refused.pcap", &[(9420004, 1), (9420005, 1)]),
    // The hub's position is on the site; both clients' passwords.
    ("mqtt_site_hub.pcap", &[(9420004, 2)]),
    ("mqtt_telemetry_nophi.pcap", &[(9420004, 3)]),
    ("mqtt_tls.pcap", &[]),
    // Five publishing connections; the two subscribers only receive.
    ("mqtt_v311_anon_phi.pcap", &[(9420020, 5)]),
    (
        "mqtt_v31_default_creds.pcap",
        &[(9420004, 2), (9420005, 2), (9420020, 2)],
    ),
    // The ICU gateway publishes the FHIR Patients; the bridge receives them.
    ("mqtt_v5_props.pcap", &[(9420004, 3), (9420020, 1)]),
    // The wearable and the tracker publish their positions; the central
    // station only receives them. Three passwords.
    ("mqtt_wearable_gps.pcap", &[(9420004, 3), (9420020, 2)]),
];

/// Server → client only: no CONNECT, no A-ASSOCIATE-RQ is seen, so no
/// credential finding at all; what the broker forwards and the SCP answers
/// carries patient data; an exposed service is seen answering the
/// internet. Header rules about devices sending abroad do not match the
/// foreign host's packets (`$MEDICAL_DEVICES -> $EXTERNAL_NET`); the
/// known-bad host rule matches any packet.
const TO_CLIENT_ONLY: Table = &[
    // The CN host's answers to the monitor: still a medical device talking
    // to a country outside its allowlist (the rule is `<>`), and the
    // backdoor address. Its ACKs are HL7 records of the flow, which
    // transaction rules see client → server like any record: HL7 on port
    // 515 (9420023) of a device-to-CN flow (9420042); no patient in them.
    (
        "cms8000_exfil.pcap",
        &[(9420023, 1), (9420040, 1), (9420042, 1), (9420050, 1)],
    ),
    (
        "hl7_bare_515.pcap",
        &[(9420023, 1), (9420040, 1), (9420042, 1), (9420050, 1)],
    ),
    ("hl7_mllp.pcap", &[]),
    // The engine's ACK is HL7 on port 6661.
    ("hl7_nonstd_port.pcap", &[(9420023, 1)]),
    // Internal hosts on the HL7 port: nothing to report in any copy.
    ("hl7_variants.pcap", &[]),
    ("dicom_echo.pcap", &[]),
    // Both sets of C-FIND responses carry patients.
    ("dicom_find.pcap", &[(9420021, 2)]),
    // The PACS accepts the scanner's association (A-ASSOCIATE-AC).
    ("dicom_internet_echo.pcap", &[(9420032, 1)]),
    ("dicom_nonstd_port.pcap", &[]),
    ("dicom_rejected.pcap", &[]),
    ("dicom_store_large.pcap", &[]),
    ("dicom_store_phi.pcap", &[]),
    ("dicom_tls.pcap", &[]),
    ("dicom_userid.pcap", &[]),
    // The foreign broker's packets to the infusion pump.
    ("mqtt_foreign_broker.pcap", &[(9420040, 1)]),
    ("mqtt_incountry.pcap", &[]),
    // The broker's CONNACKs to the scanner's three connections.
    ("mqtt_internet_refused.pcap", &[(9420031, 3)]),
    ("mqtt_large_split.pcap", &[]),
    // The nurse station receives both patients.
    ("mqtt_nonstd_port.pcap", &[(9420020, 1)]),
    ("mqtt_refused.pcap", &[]),
    ("mqtt_site_hub.pcap", &[]),
    ("mqtt_telemetry_nophi.pcap", &[]),
    ("mqtt_tls.pcap", &[]),
    // The nurse station and the dashboard receive patient JSON.
    ("mqtt_v311_anon_phi.pcap", &[(9420020, 2)]),
    ("mqtt_v31_default_creds.pcap", &[]),
    // The EHR bridge receives the forwarded FHIR Patients.
    ("mqtt_v5_props.pcap", &[(9420020, 1)]),
    // The central station receives both devices' positions.
    ("mqtt_wearable_gps.pcap", &[(9420020, 1)]),
];

/// The first client → server data segment lost. In every capture it holds
/// the login alone (MQTT CONNECT; DICOM A-ASSOCIATE-RQ or its first 1448
/// bytes; the CMS8000's first ORU), so login findings go and what follows
/// stays: later messages are found by resynchronising, on any port.
const FIRST_TO_SERVER_LOST: Table = &[
    // Two ORUs left: 1756 bytes to CN (tshark conv), under the 2 KiB rule.
    (
        "cms8000_exfil.pcap",
        &[
            (9420023, 1),
            (9420024, 1),
            (9420040, 1),
            (9420042, 1),
            (9420050, 1),
        ],
    ),
    // Two unframed ORUs remain (724 bytes).
    (
        "hl7_bare_515.pcap",
        &[
            (9420023, 1),
            (9420024, 1),
            (9420040, 1),
            (9420042, 1),
            (9420050, 1),
        ],
    ),
    ("hl7_mllp.pcap", &[]),
    // Its only message was in the lost segment; the engine's ACK of it is
    // still HL7 on port 6661.
    ("hl7_nonstd_port.pcap", &[(9420023, 1)]),
    // Internal hosts on the HL7 port: nothing to report in any copy.
    ("hl7_variants.pcap", &[]),
    ("dicom_echo.pcap", &[]),
    ("dicom_find.pcap", &[(9420021, 2)]),
    ("dicom_internet_echo.pcap", &[(9420032, 1)]),
    ("dicom_nonstd_port.pcap", &[]),
    ("dicom_rejected.pcap", &[]),
    ("dicom_store_large.pcap", &[(9420021, 1)]),
    ("dicom_store_phi.pcap", &[(9420021, 2)]),
    ("dicom_tls.pcap", &[]),
    // The identities were in the lost requests.
    ("dicom_userid.pcap", &[]),
    // 4476 bytes still reach KP.
    ("mqtt_foreign_broker.pcap", &[(9420040, 1), (9420041, 1)]),
    ("mqtt_incountry.pcap", &[]),
    ("mqtt_internet_refused.pcap", &[(9420031, 3)]),
    ("mqtt_large_split.pcap", &[]),
    ("mqtt_nonstd_port.pcap", &[(9420020, 3)]),
    ("mqtt_refused.pcap", &[]),
    ("mqtt_site_hub.pcap", &[]),
    ("mqtt_telemetry_nophi.pcap", &[]),
    ("mqtt_tls.pcap", &[]),
    ("mqtt_v311_anon_phi.pcap", &[(9420020, 7)]),
    ("mqtt_v31_default_creds.pcap", &[(9420020, 2)]),
    ("mqtt_v5_props.pcap", &[(9420020, 2)]),
    // Each login alone is lost; the positions follow on all three
    // connections.
    ("mqtt_wearable_gps.pcap", &[(9420020, 3)]),
];

/// The capture starts at the server's first data segment (CONNACK,
/// A-ASSOCIATE-AC, the first MLLP ACK): the same findings as when the first
/// request is lost — the flow must be oriented by what the server's bytes
/// say, on ports ≥ 1024 too.
const PICKUP_AT_SERVER_DATA: Table = &[
    // Two ORUs: 1616 bytes to CN, under the 2 KiB rule.
    (
        "cms8000_exfil.pcap",
        &[
            (9420023, 1),
            (9420024, 1),
            (9420040, 1),
            (9420042, 1),
            (9420050, 1),
        ],
    ),
    (
        "hl7_bare_515.pcap",
        &[
            (9420023, 1),
            (9420024, 1),
            (9420040, 1),
            (9420042, 1),
            (9420050, 1),
        ],
    ),
    ("hl7_mllp.pcap", &[]),
    // The capture starts at the engine's ACK: HL7 on port 6661.
    ("hl7_nonstd_port.pcap", &[(9420023, 1)]),
    // Internal hosts on the HL7 port: nothing to report in any copy.
    ("hl7_variants.pcap", &[]),
    ("dicom_echo.pcap", &[]),
    ("dicom_find.pcap", &[(9420021, 2)]),
    ("dicom_internet_echo.pcap", &[(9420032, 1)]),
    ("dicom_nonstd_port.pcap", &[]),
    ("dicom_rejected.pcap", &[]),
    ("dicom_store_large.pcap", &[(9420021, 1)]),
    ("dicom_store_phi.pcap", &[(9420021, 2)]),
    ("dicom_tls.pcap", &[]),
    ("dicom_userid.pcap", &[]),
    // 4336 bytes still reach KP.
    ("mqtt_foreign_broker.pcap", &[(9420040, 1), (9420041, 1)]),
    ("mqtt_incountry.pcap", &[]),
    ("mqtt_internet_refused.pcap", &[(9420031, 3)]),
    ("mqtt_large_split.pcap", &[]),
    ("mqtt_nonstd_port.pcap", &[(9420020, 3)]),
    ("mqtt_refused.pcap", &[]),
    ("mqtt_site_hub.pcap", &[]),
    ("mqtt_telemetry_nophi.pcap", &[]),
    ("mqtt_tls.pcap", &[]),
    ("mqtt_v311_anon_phi.pcap", &[(9420020, 7)]),
    ("mqtt_v31_default_creds.pcap", &[(9420020, 2)]),
    ("mqtt_v5_props.pcap", &[(9420020, 2)]),
    // Each login alone is lost; the positions follow on all three
    // connections.
    ("mqtt_wearable_gps.pcap", &[(9420020, 3)]),
];

/// Alerts a class may raise or not, because deriving them takes an
/// inference the sensor is free to make: without the A-ASSOCIATE-RQ the
/// accepted abstract syntaxes are known only from the DIMSE commands that
/// follow (VIEWER01's C-FIND contexts, sid 9420030).
const MAY: &[(Variant, &str, u64)] = &[
    (Variant::ToClientOnly, "dicom_find.pcap", 9420030),
    (Variant::FirstToServerLost, "dicom_find.pcap", 9420030),
    (Variant::PickupAtServerData, "dicom_find.pcap", 9420030),
];

/// Default credentials with the outcome unknown (rule from wt-detect).
const DEFAULT_CREDS_UNKNOWN: u64 = 9420005;

fn table_want(table: Table, capture: &str) -> Result<BTreeMap<u64, usize>, String> {
    if capture == "demo.pcap" {
        let mut m = BTreeMap::new();
        for part in DEMO_PARTS {
            for (sid, n) in table_want(table, part)? {
                *m.entry(sid).or_default() += n;
            }
        }
        return Ok(m);
    }
    table
        .iter()
        .find(|(c, _)| *c == capture)
        .map(|(_, v)| v.iter().copied().filter(|(_, n)| *n > 0).collect())
        .ok_or_else(|| format!("no expectation for {capture} in this class's table"))
}

/// The class's table holds: per signature the count, and every alert on a
/// flow that had it (or, for 9420005, a default-credential alert) in the
/// original.
fn as_table(v: Variant, table: Table) -> impl Fn(&str, &Outcome) -> Result<(), String> {
    move |capture, o| {
        let want = table_want(table, capture)?;
        let may: Vec<u64> = MAY
            .iter()
            .filter(|(mv, c, _)| *mv == v && *c == capture)
            .map(|(_, _, sid)| *sid)
            .collect();
        let mut got = by_sid(&o.alerts);
        got.retain(|sid, _| !may.contains(sid));
        if got != want {
            return Err(format!(
                "alerts by sid: got {got:?}, want {want:?} ({})",
                show(&o.alerts)
            ));
        }
        let orig = &original(capture).alerts;
        for ((flow, sid), n) in &o.alerts {
            let from: &[u64] = if *sid == DEFAULT_CREDS_UNKNOWN {
                &[9420001, 9420002]
            } else {
                std::slice::from_ref(sid)
            };
            let had: usize = from
                .iter()
                .filter_map(|s| orig.get(&(flow.clone(), *s)))
                .sum();
            if *n > had && !may.contains(sid) {
                return Err(format!(
                    "sid {sid} x{n} on {flow}, where the original had {had}"
                ));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- cases

/// One `#[test]` per (variant class, capture): `cases!(Variant, check;
/// capture, #[ignore = "…"] capture, …)` inside the class's module. The
/// test is named after the capture (`split1::dicom_find`); `CAPTURES`
/// lists them for the completeness check.
macro_rules! cases {
    ($variant:ident, $check:expr; $( $(#[$attr:meta])* $name:ident ),* $(,)?) => {
        pub const CAPTURES: &[&str] = &[$(stringify!($name)),*];
        $(
            $(#[$attr])*
            #[test]
            fn $name() {
                case(Variant::$variant, concat!(stringify!($name), ".pcap"), $check);
            }
        )*
    };
}

#[test]
fn every_application_capture_has_a_case_in_every_class() {
    let want: Vec<String> = app_captures()
        .iter()
        .map(|c| c.trim_end_matches(".pcap").to_string())
        .collect();
    for (class, caps) in [
        ("split1", split1::CAPTURES),
        ("reorder", reorder::CAPTURES),
        ("split1_reorder", split1_reorder::CAPTURES),
        ("retrans_same", retrans_same::CAPTURES),
        ("retrans_partial", retrans_partial::CAPTURES),
        ("retrans_diff_after", retrans_diff_after::CAPTURES),
        ("retrans_diff_before", retrans_diff_before::CAPTURES),
        ("decoy_badsum", decoy_badsum::CAPTURES),
        ("rst_out_of_window", rst_out_of_window::CAPTURES),
        ("rst_badsum", rst_badsum::CAPTURES),
        ("to_server_only", to_server_only::CAPTURES),
        ("to_client_only", to_client_only::CAPTURES),
        ("first_to_server_lost", first_to_server_lost::CAPTURES),
        ("pickup_at_server_data", pickup_at_server_data::CAPTURES),
    ] {
        let mut got: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
        got.sort();
        assert_eq!(got, want, "{class}: cases and captures differ");
    }
    assert_eq!(
        Variant::ALL.len(),
        14,
        "a new variant class needs its module"
    );
}

/// Every payload byte (up to the cap) in its own segment.
mod split1 {
    use super::*;
    cases!(Split1, same_alerts_more_bytes;
        cms8000_exfil,
        hl7_bare_515,
        hl7_mllp,
        hl7_nonstd_port,
        hl7_variants,
        demo,
        dicom_echo,
        dicom_find,
        dicom_internet_echo,
        dicom_nonstd_port,
        dicom_rejected,
        dicom_store_large,
        dicom_store_phi,
        dicom_tls,
        dicom_userid,
        mqtt_foreign_broker,
        mqtt_incountry,
        mqtt_internet_refused,
        mqtt_large_split,
        mqtt_nonstd_port,
        mqtt_refused,
        mqtt_site_hub,
        mqtt_telemetry_nophi,
        mqtt_tls,
        mqtt_v311_anon_phi,
        mqtt_v31_default_creds,
        mqtt_v5_props,
        mqtt_wearable_gps,
    );
}

/// Data segments shuffled within their flights.
mod reorder {
    use super::*;
    cases!(Reorder, same_alerts;
        cms8000_exfil,
        hl7_bare_515,
        hl7_mllp,
        hl7_nonstd_port,
        hl7_variants,
        demo,
        dicom_echo,
        dicom_find,
        dicom_internet_echo,
        dicom_nonstd_port,
        dicom_rejected,
        dicom_store_large,
        dicom_store_phi,
        dicom_tls,
        dicom_userid,
        mqtt_foreign_broker,
        mqtt_incountry,
        mqtt_internet_refused,
        mqtt_large_split,
        mqtt_nonstd_port,
        mqtt_refused,
        mqtt_site_hub,
        mqtt_telemetry_nophi,
        mqtt_tls,
        mqtt_v311_anon_phi,
        mqtt_v31_default_creds,
        mqtt_v5_props,
        mqtt_wearable_gps,
    );
}

/// 1-byte segments shuffled within their flights.
mod split1_reorder {
    use super::*;
    cases!(Split1Reorder, same_alerts_more_bytes;
        cms8000_exfil,
        hl7_bare_515,
        hl7_mllp,
        hl7_nonstd_port,
        hl7_variants,
        demo,
        dicom_echo,
        dicom_find,
        dicom_internet_echo,
        dicom_nonstd_port,
        dicom_rejected,
        dicom_store_large,
        dicom_store_phi,
        dicom_tls,
        dicom_userid,
        mqtt_foreign_broker,
        mqtt_incountry,
        mqtt_internet_refused,
        mqtt_large_split,
        mqtt_nonstd_port,
        mqtt_refused,
        mqtt_site_hub,
        mqtt_telemetry_nophi,
        mqtt_tls,
        mqtt_v311_anon_phi,
        mqtt_v31_default_creds,
        mqtt_v5_props,
        mqtt_wearable_gps,
    );
}

/// Every data segment retransmitted, same bytes.
mod retrans_same {
    use super::*;
    cases!(RetransSame, same_alerts_more_bytes;
        cms8000_exfil,
        hl7_bare_515,
        hl7_mllp,
        hl7_nonstd_port,
        hl7_variants,
        demo,
        dicom_echo,
        dicom_find,
        dicom_internet_echo,
        dicom_nonstd_port,
        dicom_rejected,
        dicom_store_large,
        dicom_store_phi,
        dicom_tls,
        dicom_userid,
        mqtt_foreign_broker,
        mqtt_incountry,
        mqtt_internet_refused,
        mqtt_large_split,
        mqtt_nonstd_port,
        mqtt_refused,
        mqtt_site_hub,
        mqtt_telemetry_nophi,
        mqtt_tls,
        mqtt_v311_anon_phi,
        mqtt_v31_default_creds,
        mqtt_v5_props,
        mqtt_wearable_gps,
    );
}

/// Retransmissions straddling two segments, same bytes.
mod retrans_partial {
    use super::*;
    cases!(RetransPartial, same_alerts_more_bytes;
        cms8000_exfil,
        hl7_bare_515,
        hl7_mllp,
        hl7_nonstd_port,
        hl7_variants,
        demo,
        dicom_echo,
        dicom_find,
        dicom_internet_echo,
        dicom_nonstd_port,
        dicom_rejected,
        dicom_store_large,
        dicom_store_phi,
        dicom_tls,
        dicom_userid,
        mqtt_foreign_broker,
        mqtt_incountry,
        mqtt_internet_refused,
        mqtt_large_split,
        mqtt_nonstd_port,
        mqtt_refused,
        mqtt_site_hub,
        mqtt_telemetry_nophi,
        mqtt_tls,
        mqtt_v311_anon_phi,
        mqtt_v31_default_creds,
        mqtt_v5_props,
        mqtt_wearable_gps,
    );
}

/// A copy with different bytes after every data segment: the host has the original.
mod retrans_diff_after {
    use super::*;
    cases!(RetransDiffAfter, same_alerts_more_bytes;
        cms8000_exfil,
        hl7_bare_515,
        hl7_mllp,
        hl7_nonstd_port,
        hl7_variants,
        demo,
        dicom_echo,
        dicom_find,
        dicom_internet_echo,
        dicom_nonstd_port,
        dicom_rejected,
        dicom_store_large,
        dicom_store_phi,
        dicom_tls,
        dicom_userid,
        mqtt_foreign_broker,
        mqtt_incountry,
        mqtt_internet_refused,
        mqtt_large_split,
        mqtt_nonstd_port,
        mqtt_refused,
        mqtt_site_hub,
        mqtt_telemetry_nophi,
        mqtt_tls,
        mqtt_v311_anon_phi,
        mqtt_v31_default_creds,
        mqtt_v5_props,
        mqtt_wearable_gps,
    );
}

/// A copy with different bytes before every data segment.
mod retrans_diff_before {
    use super::*;
    cases!(RetransDiffBefore, subset_keeping_header_alerts;
        cms8000_exfil,
        hl7_bare_515,
        hl7_mllp,
        hl7_nonstd_port,
        hl7_variants,
        demo,
        dicom_echo,
        dicom_find,
        dicom_internet_echo,
        dicom_nonstd_port,
        dicom_rejected,
        dicom_store_large,
        dicom_store_phi,
        dicom_tls,
        dicom_userid,
        mqtt_foreign_broker,
        mqtt_incountry,
        mqtt_internet_refused,
        mqtt_large_split,
        mqtt_nonstd_port,
        mqtt_refused,
        mqtt_site_hub,
        mqtt_telemetry_nophi,
        mqtt_tls,
        mqtt_v311_anon_phi,
        mqtt_v31_default_creds,
        mqtt_v5_props,
        mqtt_wearable_gps,
    );
}

/// A bad-checksum decoy before every data segment.
mod decoy_badsum {
    use super::*;
    cases!(DecoyBadChecksum, same_alerts;
        cms8000_exfil,
        hl7_bare_515,
        hl7_mllp,
        hl7_nonstd_port,
        hl7_variants,
        demo,
        dicom_echo,
        dicom_find,
        dicom_internet_echo,
        dicom_nonstd_port,
        dicom_rejected,
        dicom_store_large,
        dicom_store_phi,
        dicom_tls,
        dicom_userid,
        mqtt_foreign_broker,
        mqtt_incountry,
        mqtt_internet_refused,
        mqtt_large_split,
        mqtt_nonstd_port,
        mqtt_refused,
        mqtt_site_hub,
        mqtt_telemetry_nophi,
        mqtt_tls,
        mqtt_v311_anon_phi,
        mqtt_v31_default_creds,
        mqtt_v5_props,
        mqtt_wearable_gps,
    );
}

/// Out-of-window RSTs after each direction's first data.
mod rst_out_of_window {
    use super::*;
    cases!(RstOutOfWindow, same_alerts;
        cms8000_exfil,
        hl7_bare_515,
        hl7_mllp,
        hl7_nonstd_port,
        hl7_variants,
        demo,
        dicom_echo,
        dicom_find,
        dicom_internet_echo,
        dicom_nonstd_port,
        dicom_rejected,
        dicom_store_large,
        dicom_store_phi,
        dicom_tls,
        dicom_userid,
        mqtt_foreign_broker,
        mqtt_incountry,
        mqtt_internet_refused,
        mqtt_large_split,
        mqtt_nonstd_port,
        mqtt_refused,
        mqtt_site_hub,
        mqtt_telemetry_nophi,
        mqtt_tls,
        mqtt_v311_anon_phi,
        mqtt_v31_default_creds,
        mqtt_v5_props,
        mqtt_wearable_gps,
    );
}

/// In-window RSTs with a bad checksum after each direction's first data.
mod rst_badsum {
    use super::*;
    cases!(RstBadChecksum, same_alerts;
        cms8000_exfil,
        hl7_bare_515,
        hl7_mllp,
        hl7_nonstd_port,
        hl7_variants,
        demo,
        dicom_echo,
        dicom_find,
        dicom_internet_echo,
        dicom_nonstd_port,
        dicom_rejected,
        dicom_store_large,
        dicom_store_phi,
        dicom_tls,
        dicom_userid,
        mqtt_foreign_broker,
        mqtt_incountry,
        mqtt_internet_refused,
        mqtt_large_split,
        mqtt_nonstd_port,
        mqtt_refused,
        mqtt_site_hub,
        mqtt_telemetry_nophi,
        mqtt_tls,
        mqtt_v311_anon_phi,
        mqtt_v31_default_creds,
        mqtt_v5_props,
        mqtt_wearable_gps,
    );
}

/// Client to server only.
mod to_server_only {
    use super::*;
    cases!(ToServerOnly, as_table(Variant::ToServerOnly, TO_SERVER_ONLY);
        cms8000_exfil,
        hl7_bare_515,
        hl7_mllp,
        hl7_nonstd_port,
        hl7_variants,
        demo,
        dicom_echo,
        dicom_find,
        dicom_internet_echo,
        dicom_nonstd_port,
        dicom_rejected,
        dicom_store_large,
        dicom_store_phi,
        dicom_tls,
        dicom_userid,
        mqtt_foreign_broker,
        mqtt_incountry,
        mqtt_internet_refused,
        mqtt_large_split,
        mqtt_nonstd_port,
        mqtt_refused,
        mqtt_site_hub,
        mqtt_telemetry_nophi,
        mqtt_tls,
        mqtt_v311_anon_phi,
        mqtt_v31_default_creds,
        mqtt_v5_props,
        mqtt_wearable_gps,
    );
}

/// Server to client only.
mod to_client_only {
    use super::*;
    cases!(ToClientOnly, as_table(Variant::ToClientOnly, TO_CLIENT_ONLY);
        cms8000_exfil,
        hl7_bare_515,
        hl7_mllp,
        hl7_nonstd_port,
        hl7_variants,
        demo,
        dicom_echo,
        dicom_find,
        dicom_internet_echo,
        dicom_nonstd_port,
        dicom_rejected,
        dicom_store_large,
        dicom_store_phi,
        dicom_tls,
        dicom_userid,
        mqtt_foreign_broker,
        mqtt_incountry,
        mqtt_internet_refused,
        mqtt_large_split,
        mqtt_nonstd_port,
        mqtt_refused,
        mqtt_site_hub,
        mqtt_telemetry_nophi,
        mqtt_tls,
        mqtt_v311_anon_phi,
        mqtt_v31_default_creds,
        mqtt_v5_props,
        mqtt_wearable_gps,
    );
}

/// The first request segment lost.
mod first_to_server_lost {
    use super::*;
    cases!(FirstToServerLost, as_table(Variant::FirstToServerLost, FIRST_TO_SERVER_LOST);
        cms8000_exfil,
        hl7_bare_515,
        hl7_mllp,
        hl7_nonstd_port,
        hl7_variants,
        demo,
        dicom_echo,
        dicom_find,
        dicom_internet_echo,
        dicom_nonstd_port,
        dicom_rejected,
        dicom_store_large,
        dicom_store_phi,
        dicom_tls,
        dicom_userid,
        mqtt_foreign_broker,
        mqtt_incountry,
        mqtt_internet_refused,
        mqtt_large_split,
        mqtt_nonstd_port,
        mqtt_refused,
        mqtt_site_hub,
        mqtt_telemetry_nophi,
        mqtt_tls,
        mqtt_v311_anon_phi,
        mqtt_v31_default_creds,
        mqtt_v5_props,
        mqtt_wearable_gps,
    );
}

/// Picked up at the server's first data.
mod pickup_at_server_data {
    use super::*;
    cases!(PickupAtServerData, as_table(Variant::PickupAtServerData, PICKUP_AT_SERVER_DATA);
        cms8000_exfil,
        hl7_bare_515,
        hl7_mllp,
        hl7_nonstd_port,
        hl7_variants,
        demo,
        dicom_echo,
        dicom_find,
        dicom_internet_echo,
        dicom_nonstd_port,
        dicom_rejected,
        dicom_store_large,
        dicom_store_phi,
        dicom_tls,
        dicom_userid,
        mqtt_foreign_broker,
        mqtt_incountry,
        mqtt_internet_refused,
        mqtt_large_split,
        mqtt_nonstd_port,
        mqtt_refused,
        mqtt_site_hub,
        mqtt_telemetry_nophi,
        mqtt_tls,
        mqtt_v311_anon_phi,
        mqtt_v31_default_creds,
        mqtt_v5_props,
        mqtt_wearable_gps,
    );
}
// ------------------------------------------------- what must be reported

/// A flow of the capture as the EVE records place it.
fn place(f: &(evasion::Endpoint, evasion::Endpoint)) -> Place {
    let ip = |e: &evasion::Endpoint| (IpAddr::from(e.0), e.1);
    Place::Flow("TCP".into(), ip(&f.0), ip(&f.1))
}

/// Issue 10 item 9: bytes that overlap delivered data with other values
/// are an attack or a broken stack; Suricata's
/// `stream.reassembly_overlap_different_data` anomaly says so, on every
/// flow that had them, whichever copy came first — also where the decoy,
/// first, made protocol detection fail on a port of no configured
/// protocol (`failed` flows are reassembled to `app_layer.failed_depth`)
/// — except TLS flows,
/// whose bytes nobody inspects and which are not reassembled at all (the
/// TLS layer itself refuses bytes that were changed).
#[test]
fn different_data_overlaps_are_reported_on_every_flow() {
    for v in [Variant::RetransDiffAfter, Variant::RetransDiffBefore] {
        each_capture(v, |cap, o| {
            let tls: BTreeSet<Place> = o
                .records
                .iter()
                .filter(|r| r["event_type"] == "flow" && r["app_proto"] == "tls")
                .map(flow_of)
                .collect();
            let want: BTreeSet<Place> = evasion::data_flows(&original(cap).pcap)
                .iter()
                .map(place)
                .filter(|p| !tls.contains(p))
                .collect();
            let got: BTreeSet<Place> = o
                .records
                .iter()
                .filter(|r| r["event_type"] == "anomaly")
                .filter(|r| {
                    r["anomaly"]["event"]
                        .as_str()
                        .unwrap_or("")
                        .to_ascii_lowercase()
                        .ends_with("reassembly_overlap_different_data")
                })
                .map(flow_of)
                .collect();
            let missing: Vec<String> = want.difference(&got).map(Place::to_string).collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("no overlap anomaly on {}", missing.join(", ")))
            }
        });
    }
}

/// The overlap window refers to the bytes of a mapped capture file and
/// copies those of streamed input (`src/stream`, "Overlaps"): a variant
/// with differing retransmissions read from a file, with 1 and 2 workers,
/// gives the records it gives read from memory, anomalies included. The
/// DICOM captures carry segments long enough to be referred to; the MQTT
/// one's are copied either way.
#[test]
fn overlaps_read_from_a_mapped_file_are_reported_as_from_a_stream() {
    let dir = tempfile::tempdir().unwrap();
    for v in [Variant::RetransDiffAfter, Variant::RetransDiffBefore] {
        for cap in [
            "dicom_store_phi.pcap",
            "dicom_store_large.pcap",
            "mqtt_v311_anon_phi.pcap",
        ] {
            let (o, bytes) = run_once(cap, v);
            let anomalies = anomaly_events(&o.records)
                .iter()
                .filter(|e| {
                    e.to_ascii_lowercase()
                        .ends_with("reassembly_overlap_different_data")
                })
                .count();
            assert!(anomalies > 0, "{cap} {v:?}: no overlap anomaly");
            let path = dir.path().join(cap);
            std::fs::write(&path, &bytes).unwrap();
            let streamed = normalised(&o.records);
            for w in [1, 2] {
                let reader = Reader::open(&path).unwrap();
                let mapped = normalised(&pipeline_run_from(reader, w));
                assert!(
                    mapped == streamed,
                    "{cap} {v:?}, {w} workers: a mapped file gives other records"
                );
            }
        }
    }
}

/// Issue 10 item 1: a packet with a bad TCP checksum is counted
/// (`tcp.invalid_checksum`, Suricata's name) — every decoy and bad RST
/// the generator added, no more.
#[test]
fn bad_checksum_packets_are_counted() {
    for v in [Variant::DecoyBadChecksum, Variant::RstBadChecksum] {
        each_capture(v, |cap, o| {
            let injected = (o.packets - original(cap).pcap.packets.len()) as u64;
            let stats = o
                .records
                .iter()
                .rfind(|r| r["event_type"] == "stats")
                .ok_or("no stats record")?;
            match stats["stats"]["tcp"]["invalid_checksum"].as_u64() {
                Some(n) if n == injected => Ok(()),
                n => Err(format!("tcp.invalid_checksum {n:?}, {injected} injected")),
            }
        });
    }
}

/// Shared decision "one-way captures": a transaction whose answer travels
/// in the direction the capture never shows is closed and logged with
/// `"answer_lost": true` — every MQTT CONNECT and every DICOM association
/// and exchange of a client-to-server-only copy.
#[test]
fn one_way_transactions_say_their_answer_was_lost() {
    each_capture(Variant::ToServerOnly, |cap, o| {
        let mut seen = 0;
        for (r, proto) in o
            .records
            .iter()
            .filter_map(|r| Some((r, awaits_answer(r)?)))
        {
            seen += 1;
            // At the top level of the protocol's object (`mqtt`, `dicom`).
            if r[proto]["answer_lost"] != true {
                let line = r.to_string();
                return Err(format!("no answer_lost: {}", &line[..line.len().min(300)]));
            }
        }
        let want = original(cap).awaiting;
        if seen == want {
            Ok(())
        } else {
            Err(format!(
                "{seen} CONNECT/DICOM records, the original has {want}"
            ))
        }
    });
}

/// The protocol of a record whose transaction waits for an answer: an MQTT
/// CONNECT (CONNACK), any DICOM association or exchange.
fn awaits_answer(r: &Value) -> Option<&'static str> {
    match r["event_type"].as_str()? {
        "mqtt" if r["mqtt"].get("connect").is_some() => Some("mqtt"),
        "dicom" => Some("dicom"),
        _ => None,
    }
}

// ------------------------------------------------- adversarial captures

/// The records of a capture of `pcaps/evasion/` (`pcaps/gen_evasion.sh`),
/// checked to be the same for 1, 2 and 3 workers.
fn adversarial(name: &str) -> Vec<Value> {
    let bytes = std::fs::read(repo().join("pcaps/evasion").join(name)).unwrap();
    let records = pipeline_run(bytes.clone(), 1);
    if let Err(e) = same_for_2_and_3_workers(&records, &bytes) {
        panic!("{name}: {e}");
    }
    records
}

fn anomaly_events(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["event_type"] == "anomaly")
        .map(|r| r["anomaly"]["event"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Every counter of the stats record as (dotted path, value).
fn stats_counters(records: &[Value]) -> BTreeMap<String, u64> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, u64>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, v, out);
                }
            }
            Value::Number(n) => {
                out.insert(prefix.to_string(), n.as_u64().unwrap_or(0));
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    if let Some(s) = records.iter().rfind(|r| r["event_type"] == "stats") {
        walk("", &s["stats"], &mut out);
    }
    out
}

/// Per-conversation frames and bytes of a capture of `pcaps/evasion/`
/// against tshark's, frozen in `tests/expected/conv/` by
/// `tests/tools/freeze_conv.sh`.
fn conv_equals_tsharks(name: &str, records: &[Value]) {
    let tsv = std::fs::read_to_string(
        repo()
            .join("tests/expected/conv")
            .join(format!("{name}.tsv")),
    )
    .unwrap_or_else(|e| panic!("{name}: run tests/tools/freeze_conv.sh ({e})"));
    let want = common::conv_from_tsv(&tsv);
    let got = common::conv_from_eve(records);
    assert_eq!(got, want, "{name}: conversations differ from tshark's");
}

#[test]
fn padded_and_huge_connects_are_counted_like_tshark() {
    for name in [
        "mqtt_padded_connect.pcap",
        "mqtt_v5_padded_connect.pcap",
        "mqtt_huge_declared.pcap",
        "mqtt_anomaly_flood.pcap",
    ] {
        conv_equals_tsharks(name, &adversarial(name));
    }
}

/// `mqtt_padded_connect.pcap`: mosquitto 2.0.11 accepted (CONNACK 0) an
/// MQTT 5 CONNECT as admin/admin carrying 1,154,861 bytes of user
/// properties, then a PUBLISH of TEST^JANE's record (pcaps/README.md). The
/// padding must hide none of the three findings, and make no anomaly flood
/// (the over-long part is skipped and counted: at most one anomaly).
#[test]
fn padded_connect_hides_neither_credentials_nor_patient_data() {
    let records = adversarial("mqtt_padded_connect.pcap");
    let got = by_sid(&alerts(&records));
    let want: BTreeMap<u64, usize> = [(9420001, 1), (9420004, 1), (9420020, 1)].into();
    assert_eq!(got, want, "default credentials, clear-text password, PHI");
    let login = records
        .iter()
        .find(|r| r["alert"]["signature_id"] == 9420001)
        .unwrap();
    assert_eq!(login["mqtt"]["connect"]["username"], "admin", "{login}");
    assert_eq!(
        login["mqtt"]["connect"]["client_id"], "MON-W3-BED12",
        "{login}"
    );
    let anomalies = anomaly_events(&records);
    assert!(
        anomalies.len() <= 1 && anomalies.iter().all(|e| e == "message_too_large"),
        "{} anomalies: {:?}",
        anomalies.len(),
        &anomalies[..anomalies.len().min(5)]
    );
}

/// `mqtt_huge_declared.pcap`: a CONNECT whose fixed header declares
/// 268,435,455 bytes, 4,129 bytes of it sent, mosquitto (max_packet_size
/// 1 MiB) resets the connection: one `message_too_large` anomaly, one
/// `malformed_traffic` for the bytes past the CONNECT's fields, nothing
/// else, and no buffer of that size.
#[test]
fn huge_declared_connect_is_one_message_too_large_anomaly() {
    let records = adversarial("mqtt_huge_declared.pcap");
    // The CONNECT's fields end after the client id (flags 0x02: no will,
    // username or password) while its length claims 268 MB: what the
    // client sent after the fields is itself malformed, said once.
    assert_eq!(
        anomaly_events(&records),
        ["message_too_large", "malformed_traffic"]
    );
    assert!(alerts(&records).is_empty());
}

/// `mqtt_anomaly_flood.pcap` (pcaps/lib/mqtt_flood.py): a login to
/// mosquitto as admin/admin, then in one write 2 000 five-byte PUBLISHes
/// with QoS 3 (malformed) and a PUBLISH of TEST^JANE's record; mosquitto
/// resets the connection after the first malformed one, but every byte was
/// on the wire. tshark decodes 2 001 PUBLISHes there, 2 000 of them with
/// QoS 3 (`tshark -r … -Y 'mqtt.qos == 3' | wc -l`, checked by hand): each
/// is a `malformed_traffic` anomaly, of which 8 are written and the rest
/// counted, and the flood hides none of the three findings.
#[test]
fn anomaly_flood_writes_eight_anomalies_and_hides_no_finding() {
    let records = adversarial("mqtt_anomaly_flood.pcap");
    assert_eq!(anomaly_events(&records), vec!["malformed_traffic"; 8]);
    let stats = records
        .iter()
        .rfind(|r| r["event_type"] == "stats")
        .unwrap();
    assert_eq!(
        stats["stats"]["app_layer"]["anomalies_capped"],
        2000 - 8,
        "{stats}"
    );
    let got = by_sid(&alerts(&records));
    let want: BTreeMap<u64, usize> = [(9420001, 1), (9420004, 1), (9420020, 1)].into();
    assert_eq!(got, want, "default credentials, clear-text password, PHI");
}

/// `frag_flood.pcap`: 20,000 never-completed first fragments (generated by
/// scapy), then the real exchange of `frag_ipv4_udp.pcap` between the same
/// hosts: its five datagrams (3 UDP, 2 ICMP, as tshark reassembles them)
/// are reassembled, the UDP conversation is tshark's, and the evictions the
/// flood forced are counted (Suricata's `defrag.tracker_hard_reuse`: a
/// tracker taken from the oldest datagram).
#[test]
fn fragment_flood_does_not_hide_the_real_datagrams() {
    let records = adversarial("frag_flood.pcap");
    conv_equals_tsharks("frag_flood.pcap", &records);
    let stats = stats_counters(&records);
    assert_eq!(stats.get("defrag.ipv4.reassembled"), Some(&5), "{stats:?}");
    let evicted = stats.get("defrag.tracker_hard_reuse").copied().unwrap_or(0);
    assert!(evicted > 0, "no defrag eviction counted: {stats:?}");
}
