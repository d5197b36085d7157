//! Target `detect`: the rule engine on fuzzer-chosen traffic — packet
//! payloads, and the MQTT, DICOM and HL7 records the real parsers make of them —
//! with the rules fixed: the engines are built once per process, one with
//! every rule of `rules/medical.rules` and `fuzz/detect.rules` (a rule per
//! keyword family) and one per single rule of those files.
//!
//! Input: `sel:u8 ends:u8 proto:u8 cfg:u8 steps` — `sel` picks the engine,
//! `ends` the flow's endpoints from [`ENDS`] (home network, internet, the
//! CMS8000's known-bad address, IPv6), `proto % 5` the flow's app-layer
//! protocol (MQTT, DICOM, failed, TLS, HL7), `cfg` the parser limits as in
//! `app`, `steps` the conversation as in `turns`. Each
//! data step is one packet of the flow (evaluated by the packet rules),
//! then goes to the parser, whose records are evaluated by the transaction
//! rules, as the worker does.
//!
//! Properties (the engine's contract with the worker):
//! - when [`Engine::packet_needed`] says a packet can be skipped, evaluating
//!   it anyway raises no alert (the per-flow cache hides no finding);
//! - once a `pass` rule matched, the flow raises no alert;
//! - a packet's alerts carry the packet's direction;
//! - an alert that reports PHI names at least one kind.

use std::net::IpAddr;
use std::path::Path;
use std::sync::OnceLock;

use wardwatch::app::{AppProto, AppRecord};
use wardwatch::detect::{
    DetectConfig, DetectState, Engine, FlowInfo, Lookups, PacketInfo, RuleSource, Vars,
};
use wardwatch::flow::{Direction, Endpoint};
use wardwatch::time::Timestamp;

use super::app::{dicom_config, hl7_config, mqtt_config};
use super::input::Cursor;
use super::turns::{self, Call, Step};

/// This target's own rules (see the file's header).
pub const DETECT_RULES: &str = include_str!("../detect.rules");

/// Client and server of the flows the target evaluates.
pub const ENDS: &[(&str, u16, &str, u16)] = &[
    ("192.168.1.20", 50000, "192.168.1.10", 1883),
    ("10.0.0.5", 41000, "202.114.4.120", 515),
    ("8.8.8.8", 33000, "192.168.1.10", 104),
    ("192.168.1.20", 50001, "81.2.69.160", 11112),
    ("fd00::20", 50002, "2001:db8::1", 2575),
    ("10.1.1.1", 40000, "10.1.1.2", 8883),
];

/// Lists, country database and PHI detectors: the embedded defaults.
pub fn lookups() -> &'static Lookups {
    static L: OnceLock<Lookups> = OnceLock::new();
    L.get_or_init(|| {
        Lookups::load(&DetectConfig::default(), Path::new("."))
            .expect("the embedded lists and database load")
    })
}

/// An engine of `text`, with the errors of the rules that did not load.
pub fn build(text: &str) -> (Engine, Vec<String>) {
    let src = RuleSource {
        name: "fuzz".into(),
        text: text.into(),
    };
    let (engine, report) = Engine::build_with(
        &Vars::default(),
        &DetectConfig::default(),
        lookups().clone(),
        &[src],
    )
    .expect("default variables compile");
    (
        engine,
        report.errors.iter().map(ToString::to_string).collect(),
    )
}

/// Rule lines of a rules file (no continuation lines in the files used).
fn rule_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

fn engines() -> &'static [Engine] {
    static E: OnceLock<Vec<Engine>> = OnceLock::new();
    E.get_or_init(|| {
        let medical = Engine::default_rules().text;
        let mut v = vec![build(&format!("{medical}\n{DETECT_RULES}")).0];
        for line in rule_lines(&medical).chain(rule_lines(DETECT_RULES)) {
            v.push(build(line).0);
        }
        v
    })
}

/// What the engine is asked about, in flow order.
#[derive(Debug, Clone)]
pub enum Item {
    Packet(Direction, Vec<u8>),
    Record(AppRecord),
}

/// The packets of `steps` and the records `proto`'s parser makes of them,
/// interleaved as the worker evaluates them.
pub fn items(proto: AppProto, cfg: u8, steps: &[Step]) -> Vec<Item> {
    let mut parser = match proto {
        AppProto::Mqtt => wardwatch::app::mqtt::new_parser(&mqtt_config(cfg)),
        AppProto::Dicom => wardwatch::app::dicom::new_parser(&dicom_config(cfg)),
        AppProto::Hl7 => wardwatch::app::hl7::new_parser(&hl7_config(cfg)),
        _ => None,
    };
    let mut out = Vec::new();
    let mut recs = Vec::new();
    for s in steps {
        let mut ctx = wardwatch::app::StreamContext {
            ts: Timestamp(0),
            records: &mut recs,
        };
        match &s.call {
            Call::Data(d, b) => {
                out.push(Item::Packet(*d, b.clone()));
                if let Some(p) = parser.as_mut() {
                    p.data(&mut ctx, *d, b);
                }
            }
            Call::Gap(d, n) => {
                if let Some(p) = parser.as_mut() {
                    p.gap(&mut ctx, *d, *n);
                }
            }
        }
        out.extend(recs.drain(..).map(Item::Record));
    }
    if let Some(p) = parser.as_mut() {
        p.end(&mut wardwatch::app::StreamContext {
            ts: Timestamp(0),
            records: &mut recs,
        });
    }
    out.extend(recs.drain(..).map(Item::Record));
    out
}

/// A flow between `ENDS[i]` speaking `app`, before its first packet.
pub fn flow(i: usize, app: AppProto) -> FlowInfo {
    let (c, cp, s, sp) = ENDS[i % ENDS.len()];
    let ip = |a: &str| a.parse::<IpAddr>().expect("a literal address");
    FlowInfo {
        ts: Timestamp(0),
        flow_id: i as u64 + 1,
        client: Endpoint {
            addr: ip(c),
            port: cp,
        },
        server: Endpoint {
            addr: ip(s),
            port: sp,
        },
        proto: 6,
        app_proto: app,
        established: false,
        bytes: [0, 0],
        pkts: [0, 0],
    }
}

/// Evaluates `items` on one flow, checking the properties; returns the
/// number of alerts.
pub fn evaluate(engine: &Engine, mut f: FlowInfo, items: &[Item]) -> usize {
    let mut st = DetectState::new(&DetectConfig::default());
    let mut fd = engine.new_flow(f.client.addr, f.server.addr);
    let mut alerts = 0;
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        // A second apart, so thresholds' time windows matter.
        f.ts = Timestamp(i as u64 * 1_000_000_000);
        let passed = fd.passed();
        out.clear();
        match item {
            Item::Packet(dir, payload) => {
                let d = dir.index();
                f.pkts[d] += 1;
                f.bytes[d] += payload.len() as u64 + 54;
                f.established = f.pkts[0] > 0 && f.pkts[1] > 0;
                let needed = engine.packet_needed(&fd, *dir, f.app_proto);
                let p = PacketInfo {
                    flow: f,
                    dir: *dir,
                    payload,
                };
                engine.packet(&mut st, &mut fd, &p, &mut out);
                assert!(
                    needed || out.is_empty(),
                    "packet_needed said skip, but the packet raises {:?}",
                    out.iter().map(|a| a.rule.sid).collect::<Vec<_>>()
                );
                for a in &out {
                    assert_eq!(a.dir, *dir, "sid {}: alert direction", a.rule.sid);
                }
            }
            Item::Record(r) => engine.record(&mut st, &mut fd, &f, r, &mut out),
        }
        assert!(
            !passed || out.is_empty(),
            "alerts after a pass rule matched: {:?}",
            out.iter().map(|a| a.rule.sid).collect::<Vec<_>>()
        );
        for a in &out {
            if let Some(phi) = &a.phi {
                assert!(
                    !phi.kinds.is_empty(),
                    "sid {}: PHI alert without a kind",
                    a.rule.sid
                );
            }
        }
        alerts += out.len();
    }
    alerts
}

const PROTOS: [AppProto; 5] = [
    AppProto::Mqtt,
    AppProto::Dicom,
    AppProto::Failed,
    AppProto::Tls,
    AppProto::Hl7,
];

pub fn detect(data: &[u8]) {
    let mut c = Cursor::new(data);
    let all = engines();
    let engine = &all[usize::from(c.u8()) % all.len()];
    let ends = usize::from(c.u8());
    let app = PROTOS[usize::from(c.u8()) % PROTOS.len()];
    let cfg = c.u8();
    let steps = turns::parse(&mut c);
    evaluate(engine, flow(ends, app), &items(app, cfg, &steps));
}
