//! Rules on asset changes (issue 13, "Baseline and drift"): the `asset`
//! hook and its keywords.
//!
//! A [`Change`] is one `new` or `changed` record of a host (see
//! [`super::log::write_changes`]): its facts as of that record, and at
//! most one difference from the baseline inventory that the record brought
//! (`new-device`, `ae-title-moved`, `device-changed`, see
//! [`super::baseline`]). A record that brings several differences is
//! evaluated once per difference, so that each raises its own alert; one
//! that brings none is evaluated once without. A difference already
//! present in the host's earlier records is not brought again: each
//! difference is alerted on once per run.
//!
//! Rules say `alert asset <host> any -> any any (…)`: the source address
//! is the host, the other end is unspecified (`0.0.0.0`, port 0). Their
//! keywords reach the engine through [`ProtocolKeywords`] as a protocol's
//! do (the hook is no protocol: no flow carries it, and
//! [`crate::app::AppProto::Asset`] names it only for the engine). They
//! are evaluated where the records are written — at the end of an offline
//! run, every `outputs.asset.interval` live — on the table merged from
//! every worker, so the alerts are the same for any number of workers.
//!
//! Keywords:
//! - predicates (lists are "any of"): `asset.event:<new|changed>`,
//!   `asset.status:<known|new>` (whether the baseline knew the host; false
//!   without a baseline), `asset.drift:<new-device|ae-title-moved|device-changed>`
//!   (the difference this evaluation is about);
//! - sticky buffers over the host's values as of the change, one instance
//!   per value: `asset.role`, `asset.service`, `asset.mac`,
//!   `asset.mac_vendor`, `asset.ae_title` (calling and called),
//!   `asset.implementation_class_uid`, `asset.implementation_version`,
//!   `asset.toolkit`, `asset.manufacturer`, `asset.model`,
//!   `asset.software_version`, `asset.serial_number`, `asset.station_name`,
//!   `asset.institution`, `asset.modality`, `asset.mqtt.client_id`,
//!   `asset.mqtt.username`, `asset.mqtt.topic_prefix`,
//!   `asset.hl7.sending_application`, `asset.hl7.sending_facility`,
//!   `asset.hl7.receiving_application`, `asset.hl7.receiving_facility`,
//!   `asset.tls.sni`; and `asset.drift.value`, the value that differs (the
//!   moved AE title, the new software version).

use std::net::IpAddr;
use std::sync::Arc;

use super::baseline::{Comparison, Drift};
use super::log::{Body, Mac, MacInfo, Ordered};
use super::{Kind, Seen};
use crate::app::{AppProto, AppRecord};
use crate::detect::phi::{PhiConfig, PhiReport};
use crate::detect::protocol::{ProtocolKeywords, RecordBuffer, RecordPredicate, TxRecord, Typed};
use crate::detect::{DetectState, Engine, FlowInfo, RuleMeta};
use crate::flow::Endpoint;

/// A change of one host, as rules on the `asset` hook see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub ip: IpAddr,
    /// Time and flow of the change's last fact (the record's
    /// `timestamp` and `flow_id`).
    pub seen: Seen,
    /// The host's first record (`event: new`), else `changed`.
    pub new: bool,
    /// Kinds of the facts the record added.
    pub changed: Vec<Kind>,
    /// The host's facts as of the record, by kind, then as first seen.
    pub facts: Vec<(Kind, Arc<str>)>,
    /// With a baseline inventory: whether it knew the host.
    pub known: Option<bool>,
    /// The difference from the baseline this evaluation is about.
    pub drift: Option<Drift>,
    /// The host's first seen, its MAC addresses' (one per MAC of
    /// `facts`, in order), the kinds whose lists were cut, and the
    /// record's `baseline` (its `drift` this one difference): what the
    /// record's `asset` object is made of besides `facts` ([`Change::record`]).
    pub first_seen: crate::time::Timestamp,
    pub macs: Vec<Mac>,
    pub truncated: u32,
    pub baseline: Option<serde_json::Value>,
}

impl Change {
    /// Makes `drift` the difference this evaluation is about, in the
    /// record too.
    pub fn set_drift(&mut self, drift: Option<Drift>) {
        if let Some(known) = self.known {
            if self.baseline.is_some() {
                let one = Comparison {
                    known,
                    drift: drift.iter().cloned().collect(),
                };
                self.baseline = Some(one.to_value());
            }
        }
        self.drift = drift;
    }

    /// The record's `asset` object (as written, but for its `baseline`,
    /// which has this evaluation's difference): what an alert on the
    /// change carries. Made when asked for (alerts are few; every change
    /// is evaluated).
    pub fn record(&self) -> Ordered {
        Body {
            ip: self.ip,
            event: Some(if self.new { "new" } else { "changed" }),
            changed: (!self.new).then_some(&self.changed[..]),
            first_seen: self.first_seen,
            facts: &self.facts[..],
            macs: MacInfo::Listed(&self.macs),
            truncated: self.truncated,
            full: None,
            baseline: self.baseline.as_ref(),
        }
        .ordered()
    }

    /// The values of `kind`, as first seen.
    pub fn values(&self, kind: Kind) -> impl Iterator<Item = &str> {
        let start = self.facts.partition_point(|(k, _)| *k < kind);
        self.facts[start..]
            .iter()
            .take_while(move |(k, _)| *k == kind)
            .map(|(_, v)| &**v)
    }
}

/// The rules of `engine`'s `asset` hook that fire on `rec` (an
/// [`AppRecord::Asset`]); `state` keeps their thresholds (changes are
/// evaluated in one place, in order, so thresholds decide at once).
pub fn evaluate(engine: &Engine, state: &mut DetectState, rec: &AppRecord) -> Vec<Arc<RuleMeta>> {
    let AppRecord::Asset(c) = rec else {
        return Vec::new();
    };
    // The other end is nobody.
    let nobody = match c.ip {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    };
    let f = FlowInfo {
        ts: c.seen.ts,
        flow_id: c.seen.flow,
        client: Endpoint {
            addr: c.ip,
            port: 0,
        },
        server: Endpoint {
            addr: nobody,
            port: 0,
        },
        proto: 0,
        app_proto: AppProto::Asset,
        established: true,
        bytes: [0; 2],
        pkts: [0; 2],
    };
    let mut fd = engine.new_flow(c.ip, nobody);
    let mut alerts = Vec::new();
    engine.record(state, &mut fd, &f, rec, &mut alerts);
    alerts
        .into_iter()
        .filter(|a| a.undecided.is_none())
        .map(|a| a.rule)
        .collect()
}

/// A compiled keyword.
pub type Keyword = Typed<Buffer, Predicate>;

/// A sticky buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buffer {
    /// The values of these kinds.
    Facts(&'static [Kind]),
    /// The IEEE registry's organisation of each MAC.
    MacVendor,
    /// The value that differs from the baseline.
    DriftValue,
}

/// Buffer keywords and what they read.
const BUFFERS: &[(&str, Buffer)] = &[
    ("asset.role", Buffer::Facts(&[Kind::Role])),
    ("asset.service", Buffer::Facts(&[Kind::Service])),
    ("asset.mac", Buffer::Facts(&[Kind::Mac])),
    ("asset.mac_vendor", Buffer::MacVendor),
    (
        "asset.ae_title",
        Buffer::Facts(&[Kind::DicomScuAe, Kind::DicomScpAe]),
    ),
    (
        "asset.implementation_class_uid",
        Buffer::Facts(&[Kind::ImplementationClassUid]),
    ),
    (
        "asset.implementation_version",
        Buffer::Facts(&[Kind::ImplementationVersion]),
    ),
    ("asset.toolkit", Buffer::Facts(&[Kind::Toolkit])),
    ("asset.manufacturer", Buffer::Facts(&[Kind::Manufacturer])),
    ("asset.model", Buffer::Facts(&[Kind::Model])),
    (
        "asset.software_version",
        Buffer::Facts(&[Kind::SoftwareVersion]),
    ),
    ("asset.serial_number", Buffer::Facts(&[Kind::SerialNumber])),
    ("asset.station_name", Buffer::Facts(&[Kind::StationName])),
    ("asset.institution", Buffer::Facts(&[Kind::Institution])),
    ("asset.modality", Buffer::Facts(&[Kind::Modality])),
    ("asset.mqtt.client_id", Buffer::Facts(&[Kind::MqttClientId])),
    ("asset.mqtt.username", Buffer::Facts(&[Kind::MqttUsername])),
    (
        "asset.mqtt.topic_prefix",
        Buffer::Facts(&[Kind::MqttTopicPrefix]),
    ),
    (
        "asset.hl7.sending_application",
        Buffer::Facts(&[Kind::Hl7SendingApplication]),
    ),
    (
        "asset.hl7.sending_facility",
        Buffer::Facts(&[Kind::Hl7SendingFacility]),
    ),
    (
        "asset.hl7.receiving_application",
        Buffer::Facts(&[Kind::Hl7ReceivingApplication]),
    ),
    (
        "asset.hl7.receiving_facility",
        Buffer::Facts(&[Kind::Hl7ReceivingFacility]),
    ),
    ("asset.tls.sni", Buffer::Facts(&[Kind::TlsSni])),
    ("asset.drift.value", Buffer::DriftValue),
];

impl RecordBuffer for Buffer {
    type Record = Change;
    fn any(&self, c: &Change, f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        match self {
            Buffer::Facts(kinds) => kinds.iter().any(|&k| c.values(k).any(|v| f(v.as_bytes()))),
            Buffer::MacVendor => c
                .values(Kind::Mac)
                .filter_map(|m| super::oui::parse(m).and_then(super::oui::vendor))
                .any(|v| f(v.as_bytes())),
            Buffer::DriftValue => c
                .drift
                .as_ref()
                .and_then(|d| d.value.as_deref())
                .is_some_and(|v| f(v.as_bytes())),
        }
    }
}

/// The differences from the baseline, by name.
pub const FINDINGS: [&str; 3] = ["new-device", "ae-title-moved", "device-changed"];

/// A predicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Predicate {
    /// `asset.event`: the host's first record (`new`) or a later one.
    Event { new: bool },
    /// `asset.status`: whether the baseline knew the host.
    Status { known: bool },
    /// `asset.drift`: the difference is one of these.
    Drift(Vec<&'static str>),
}

impl RecordPredicate for Predicate {
    type Record = Change;
    /// Reads only the change's `new`, `known` and `drift`: [`may_fire`]
    /// relies on it.
    fn matches(&self, c: &Change) -> bool {
        match self {
            Predicate::Event { new } => c.new == *new,
            Predicate::Status { known } => c.known == Some(*known),
            Predicate::Drift(kinds) => c.drift.as_ref().is_some_and(|d| kinds.contains(&d.finding)),
        }
    }
}

fn parse_predicate(name: &str, v: &str) -> Result<Predicate, String> {
    let one_of = |allowed: &[&str]| -> Result<usize, String> {
        allowed
            .iter()
            .position(|a| a.eq_ignore_ascii_case(v))
            .ok_or_else(|| format!("{v:?}: expected {}", allowed.join(" or ")))
    };
    Ok(match name {
        "asset.event" => Predicate::Event {
            new: one_of(&["new", "changed"])? == 0,
        },
        "asset.status" => Predicate::Status {
            known: one_of(&["known", "new"])? == 0,
        },
        _ => {
            let mut kinds = Vec::new();
            for k in v.split(',').map(str::trim) {
                let f = FINDINGS
                    .iter()
                    .find(|f| f.eq_ignore_ascii_case(k))
                    .ok_or_else(|| format!("{k:?}: expected {}", FINDINGS.join(", ")))?;
                kinds.push(*f);
            }
            Predicate::Drift(kinds)
        }
    })
}

/// Compiles option `name` with its value; `None` when `name` is not an
/// asset keyword, `Some(Err(reason))` when the value is wrong.
pub fn keyword(name: &str, value: Option<&str>) -> Option<Result<Keyword, String>> {
    let lower = name.to_ascii_lowercase();
    if let Some(b) = crate::app::keyword::sticky_buffer(BUFFERS, &lower, value) {
        return Some(b.map(Keyword::Buffer));
    }
    if !matches!(
        lower.as_str(),
        "asset.event" | "asset.status" | "asset.drift"
    ) {
        return None;
    }
    Some(
        crate::app::keyword::required(value)
            .and_then(|v| parse_predicate(&lower, v))
            .map(Keyword::Predicate)
            .map_err(|e| format!("{lower}: {e}")),
    )
}

impl TxRecord for Change {
    fn of(rec: &AppRecord) -> Option<&Change> {
        match rec {
            AppRecord::Asset(c) => Some(c),
            _ => None,
        }
    }
}

/// Whether a rule of the `asset` hook may fire on a change of a run
/// with (`baseline`) or without a baseline inventory. Without one no
/// change is `known` or brings a difference, and the predicates read
/// nothing else but whether the change is `new` ([`Predicate::matches`]):
/// a rule whose predicates fail on a `new` and on a `changed` change
/// without them (every shipped rule: they need `asset.drift`) fires on no
/// change of the run, whatever its facts. Evaluating nothing then spares
/// building each change for the rules (the end of an offline run).
pub fn may_fire(engine: &Engine, baseline: bool) -> bool {
    if !engine.has_tx_rules(AppProto::Asset) {
        return false;
    }
    baseline
        || [true, false]
            .into_iter()
            .any(|new| engine.tx_predicates_hold(AppProto::Asset, &without_baseline(new)))
}

/// A change of a run without a baseline, with no facts (predicates do
/// not read them).
fn without_baseline(new: bool) -> AppRecord {
    AppRecord::Asset(Box::new(Change {
        ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        seen: Seen {
            ts: crate::time::Timestamp(0),
            flow: 0,
        },
        new,
        changed: Vec::new(),
        facts: Vec::new(),
        known: None,
        drift: None,
        first_seen: crate::time::Timestamp(0),
        macs: Vec::new(),
        truncated: 0,
        baseline: None,
    }))
}

/// The asset hook's keywords, as the engine holds them.
#[derive(Debug, Clone, Copy)]
pub struct AssetKeywords;

pub static KEYWORDS: AssetKeywords = AssetKeywords;

impl ProtocolKeywords for AssetKeywords {
    type Record = Change;
    type Buffer = Buffer;
    type Predicate = Predicate;
    fn keyword(&self, name: &str, value: Option<&str>) -> Option<Result<Keyword, String>> {
        keyword(name, value)
    }
    /// Asset records hold no patient data (PHI never enters the table).
    fn phi(&self, _: &Change, _: &PhiConfig) -> PhiReport {
        PhiReport::default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::detect::DetectConfig;
    use crate::time::Timestamp;

    fn engine(rules: &str) -> Engine {
        Engine::from_test_rules(rules)
    }

    fn errors(rules: &str) -> Vec<String> {
        let (_, report) = Engine::build_test_rules(rules);
        report.errors.into_iter().map(|e| e.reason).collect()
    }

    /// Hand-built: a workstation at 10.20.9.66 with a Dell MAC, calling as
    /// ECHOSCU with dcmtk, new to the baseline; `drift` is the difference
    /// evaluated.
    fn change(drift: Option<(&'static str, Option<&str>)>) -> AppRecord {
        let mut facts: Vec<(Kind, Arc<str>)> = vec![
            (Kind::Mac, "00:14:22:09:00:42".into()),
            (Kind::Role, "dicom-scu".into()),
            (Kind::DicomScuAe, "ECHOSCU".into()),
            (Kind::ImplementationVersion, "OFFIS_DCMTK_367".into()),
        ];
        facts.sort();
        AppRecord::Asset(Box::new(Change {
            ip: "10.20.9.66".parse().unwrap(),
            seen: Seen {
                ts: Timestamp::from_parts(1_700_000_000, 0),
                flow: 7,
            },
            new: true,
            changed: Vec::new(),
            facts,
            known: Some(false),
            drift: drift.map(|(finding, value)| Drift {
                finding,
                kind: None,
                value: value.map(str::to_string),
                baseline: Vec::new(),
            }),
            first_seen: Timestamp::from_parts(1_700_000_000, 0),
            macs: Vec::new(),
            truncated: 0,
            baseline: None,
        }))
    }

    fn sids(e: &Engine, rec: &AppRecord) -> Vec<u32> {
        let cfg = DetectConfig::default();
        let mut st = DetectState::new(&cfg);
        evaluate(e, &mut st, rec).iter().map(|r| r.sid).collect()
    }

    #[test]
    fn keywords_match_the_facts_and_the_difference_of_a_change() {
        let e = engine(
            "alert asset any any -> any any (msg:\"ae\"; asset.ae_title; content:\"ECHOSCU\"; sid:1;)\n\
             alert asset any any -> any any (msg:\"vendor\"; asset.mac_vendor; content:\"Dell\"; sid:2;)\n\
             alert asset any any -> any any (msg:\"moved\"; asset.drift:ae-title-moved; asset.drift.value; content:\"ECHOSCU\"; sid:3;)\n\
             alert asset any any -> any any (msg:\"new\"; asset.drift:new-device,device-changed; asset.status:new; asset.event:new; sid:4;)\n\
             alert asset any any -> any any (msg:\"known\"; asset.status:known; sid:5;)\n\
             alert asset any any -> any any (msg:\"changed\"; asset.event:changed; sid:6;)\n\
             alert asset 10.10.0.0/16 any -> any any (msg:\"elsewhere\"; sid:7;)\n\
             alert asset any any -> any any (msg:\"model\"; asset.model; content:\"CT\"; sid:8;)\n",
        );
        assert!(e.has_tx_rules(AppProto::Asset));
        assert_eq!(sids(&e, &change(None)), [1, 2]);
        assert_eq!(
            sids(&e, &change(Some(("ae-title-moved", Some("ECHOSCU"))))),
            [1, 2, 3]
        );
        assert_eq!(sids(&e, &change(Some(("new-device", None)))), [1, 2, 4]);
        // Not an asset change: nothing.
        let other = AppRecord::Anomaly(crate::app::Anomaly {
            app_proto: AppProto::Mqtt,
            event: "x",
            dir: crate::flow::Direction::ToServer,
        });
        assert!(sids(&e, &other).is_empty());
    }

    /// The asset rules as shipped (the other default rules need lists not
    /// loaded in these tests).
    pub(crate) fn shipped_asset_rules() -> String {
        Engine::default_rules()
            .text
            .lines()
            .filter(|l| l.starts_with("alert asset "))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    #[test]
    fn default_rules_raise_each_difference_with_its_finding() {
        let e = engine(&shipped_asset_rules());
        for (finding, sid) in [
            ("new-device", 9420060),
            ("ae-title-moved", 9420061),
            ("device-changed", 9420062),
        ] {
            let cfg = DetectConfig::default();
            let mut st = DetectState::new(&cfg);
            let fired = evaluate(&e, &mut st, &change(Some((finding, Some("v")))));
            assert_eq!(fired.len(), 1, "{finding}");
            assert_eq!(fired[0].sid, sid);
            assert!(fired[0]
                .metadata
                .contains(&("finding".to_string(), finding.to_string())));
        }
        assert!(sids(&e, &change(None)).is_empty());
    }

    #[test]
    fn misplaced_or_wrong_asset_keywords_are_load_errors() {
        let errs = errors(
            "alert tcp any any -> any any (msg:\"a\"; asset.drift:new-device; sid:1;)\n\
             alert asset any any -> any any (msg:\"b\"; asset.drift:moved; sid:2;)\n\
             alert asset any any -> any any (msg:\"c\"; asset.role; mqtt.connect.clientid; content:\"x\"; sid:3;)\n\
             alert asset any any -> any any (msg:\"d\"; asset.status; sid:4;)\n\
             alert asset any any -> any any (msg:\"e\"; asset.role:x; sid:5;)\n\
             alert asset any any -> any any (msg:\"f\"; content:\"x\"; sid:6;)\n",
        );
        assert_eq!(errs.len(), 6, "{errs:#?}");
        assert!(
            errs[0].contains("asset keywords need an asset rule"),
            "{}",
            errs[0]
        );
        assert!(errs[1].contains("expected new-device"), "{}", errs[1]);
        assert!(errs[2].contains("mixes asset and mqtt"), "{}", errs[2]);
        assert!(errs[3].contains("needs a value"), "{}", errs[3]);
        assert!(errs[4].contains("takes no value"), "{}", errs[4]);
        assert!(errs[5].contains("without a sticky buffer"), "{}", errs[5]);
    }

    #[test]
    fn rules_that_need_a_baseline_are_not_evaluated_without_one() {
        let shipped = shipped_asset_rules();
        let rule =
            |opts: &str| format!("alert asset any any -> any any (msg:\"r\"; {opts} sid:1;)\n");
        // (rules, may fire without a baseline)
        let cases = [
            (shipped, false),
            (rule("asset.drift:new-device;"), false),
            (rule("asset.status:known;"), false),
            (rule("asset.status:new; asset.event:new;"), false),
            (rule("asset.event:new;"), true),
            (rule("asset.event:changed;"), true),
            (rule("asset.role; content:\"dicom\";"), true),
            // A buffer alone is not looked at: evaluated (it finds nothing).
            (rule("asset.drift.value; content:\"x\";"), true),
            (
                rule("asset.drift:device-changed;")
                    + &rule("asset.event:new;").replace("sid:1", "sid:2"),
                true,
            ),
            (
                "alert mqtt any any -> any any (msg:\"m\"; sid:1;)\n".to_string(),
                false,
            ),
        ];
        for (rules, without) in cases {
            let e = engine(&rules);
            let any = e.has_tx_rules(AppProto::Asset);
            assert_eq!(may_fire(&e, false), without, "{rules}");
            assert_eq!(may_fire(&e, true), any, "{rules}");
            if without {
                continue;
            }
            // What is skipped would have found nothing: every shape of a
            // change without a baseline, with facts.
            for new in [true, false] {
                let mut rec = change(None);
                if let AppRecord::Asset(c) = &mut rec {
                    c.new = new;
                    c.known = None;
                }
                assert!(sids(&e, &rec).is_empty(), "{rules}");
            }
        }
    }
}
