//! Rule evaluation cost per transaction: the records of real captures
//! (MQTT CONNECT+CONNACK, PUBLISH with a JSON payload, a DICOM C-STORE
//! association) through `Engine::record`, with
//! - `small`: a representative hand-written ruleset (credentials, PHI,
//!   topics, AE titles, commands — 20 rules);
//! - `default`: the embedded default ruleset (`Engine::default_rules()`);
//! - `gen10k`: 10 000 generated rules with distinct contents spread over
//!   MQTT and DICOM buffers, none of which occurs in the traffic — the
//!   aho-corasick prefilter should keep the cost close to `small`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use wardwatch::app::dicom::DicomConfig;
use wardwatch::app::mqtt::{MqttConfig, Record as MqttRecord};
use wardwatch::app::{AppProto, AppRecord};
use wardwatch::detect::{DetectConfig, DetectState, Engine, FlowInfo, Lookups, RuleSource, Vars};
use wardwatch::pipeline::worker::FlowEnds;
use wardwatch::time::Timestamp;

#[path = "../tests/common/parser_input.rs"]
mod parser_input;

const SMALL: &str = r##"alert mqtt any any -> any any (msg:"default creds"; credentials:default,accepted; classtype:default-login-attempt; sid:1;)
alert mqtt any any -> any any (msg:"anonymous"; credentials:none,accepted; classtype:policy-violation; sid:2;)
alert mqtt any any -> any any (msg:"cleartext"; credentials:cleartext; threshold:type limit, track by_src, count 1, seconds 3600; sid:3;)
alert mqtt any any -> any any (msg:"phi"; mqtt.type:PUBLISH; phi; sid:4;)
alert mqtt any any -> any any (msg:"hl7 topic"; mqtt.publish.topic; content:"hl7/"; startswith; sid:5;)
alert mqtt any any -> any any (msg:"hl7 body"; mqtt.publish.message; content:"MSH|7C|"; depth:4; content:"PID|7C|"; distance:0; sid:6;)
alert mqtt any any -> any any (msg:"admin topic"; mqtt.publish.topic; content:"admin/"; startswith; sid:7;)
alert mqtt any any -> any any (msg:"wildcard sub"; mqtt.subscribe.topic; content:"#"; endswith; sid:8;)
alert mqtt any any -> any any (msg:"v3.1"; mqtt.connect.protocol_string; content:"MQIsdp"; sid:9;)
alert mqtt any any -> any any (msg:"will"; mqtt.connect.flags:will; sid:10;)
alert mqtt any any -> any any (msg:"refused"; mqtt.type:CONNACK; mqtt.reason_code:>0; flow:to_client; sid:11;)
alert mqtt any any -> any any (msg:"json name"; mqtt.publish.message; content:"\"name\""; nocase; pcre:"/\"birth_?date\"\s*:/i"; sid:12;)
alert mqtt $EXTERNAL_NET any -> $HOME_NET any (msg:"from internet"; sid:13;)
alert dicom any any -> any any (msg:"dicom default creds"; credentials:default,accepted; sid:20;)
alert dicom any any -> any any (msg:"dicom phi"; dicom.command:C-STORE,C-FIND,C-GET,C-MOVE; phi:dicom; sid:21;)
alert dicom any any -> any any (msg:"echo"; dicom.command:C-ECHO; sid:22;)
alert dicom any any -> any any (msg:"calling ae"; dicom.calling_ae; content:"MODALITY"; startswith; sid:23;)
alert dicom any any -> any any (msg:"ct storage"; dicom.sop_class; content:"1.2.840.10008.5.1.4.1.1.2"; startswith; endswith; sid:24;)
alert dicom any any -> any any (msg:"passcode"; dicom.user_identity:username_passcode; credentials:cleartext; sid:25;)
alert dicom $EXTERNAL_NET any -> $HOME_NET any (msg:"dicom from internet"; sid:26;)
"##;

fn generated(n: usize) -> String {
    let bufs = [
        "mqtt.publish.topic",
        "mqtt.publish.message",
        "mqtt.connect.clientid",
        "mqtt.connect.username",
        "dicom.calling_ae",
        "dicom.sop_class",
    ];
    let mut s = String::new();
    for i in 0..n {
        let b = bufs[i % bufs.len()];
        let proto = if b.starts_with("mqtt") {
            "mqtt"
        } else {
            "dicom"
        };
        s.push_str(&format!(
            "alert {proto} any any -> any any (msg:\"gen {i}\"; {b}; content:\"zq{i:05}x\"; sid:{};)\n",
            1_000_000 + i
        ));
    }
    s
}

fn engine(text: &str, name: &str) -> Engine {
    let cfg = DetectConfig::default();
    let lookups = Lookups::load(&cfg, Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
    let (e, report) = Engine::build_with(
        &Vars::default(),
        &cfg,
        lookups,
        &[RuleSource {
            name: name.into(),
            text: text.into(),
        }],
    )
    .unwrap();
    eprintln!(
        "{name}: {} rules, {} errors",
        e.rule_count(),
        report.errors.len()
    );
    e
}

/// Records of the flows of a capture on `port`.
fn records(capture: &str, proto: AppProto) -> Vec<(FlowEnds, Vec<AppRecord>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pcaps")
        .join(capture);
    parser_input::parser_input(&path, move |p, _| p == proto)
        .iter()
        .map(|f| {
            let p = match proto {
                AppProto::Mqtt => wardwatch::app::mqtt::new_parser(&MqttConfig::default()),
                _ => wardwatch::app::dicom::new_parser(&DicomConfig::default()),
            }
            .unwrap();
            (f.ends, f.records(p))
        })
        .collect()
}

fn info(ends: &FlowEnds, app: AppProto) -> FlowInfo {
    FlowInfo {
        ts: Timestamp::from_parts(1_700_000_000, 0),
        // Orders matches of equal time only; the client port tells this
        // capture's flows apart.
        flow_id: u64::from(ends.client.port),
        client: ends.client,
        server: ends.server,
        proto: 6,
        app_proto: app,
        established: true,
        bytes: [0, 0],
        pkts: [0, 0],
    }
}

fn mqtt_pick(
    flows: &[(FlowEnds, Vec<AppRecord>)],
    want: impl Fn(&MqttRecord) -> bool,
) -> (FlowEnds, AppRecord) {
    for (ends, recs) in flows {
        for r in recs {
            if let AppRecord::Mqtt(m) = r {
                if want(m) {
                    return (*ends, r.clone());
                }
            }
        }
    }
    panic!("no such record");
}

fn bench(c: &mut Criterion) {
    let creds = records("mqtt_v31_default_creds.pcap", AppProto::Mqtt);
    let connect = mqtt_pick(&creds, |m| {
        m.messages.first().is_some_and(|x| x.packet_type == 1)
    });
    let anon = records("mqtt_v311_anon_phi.pcap", AppProto::Mqtt);
    let publish = mqtt_pick(&anon, |m| {
        m.messages.first().is_some_and(|x| {
            x.packet_type == 3 && matches!(&x.body, wardwatch::app::mqtt::Body::Publish(p) if p.payload.starts_with(b"{"))
        })
    });
    let dicom = records("dicom_store_phi.pcap", AppProto::Dicom);
    let (dicom_ends, dicom_recs) = dicom[0].clone();

    let engines = [
        ("small", engine(SMALL, "small")),
        ("default", {
            let d = Engine::default_rules();
            engine(&d.text, "default")
        }),
        ("gen10k", engine(&generated(10_000), "gen10k")),
    ];
    let mut g = c.benchmark_group("detect");
    for (name, e) in &engines {
        for (what, ends, recs, app) in [
            (
                "mqtt_connect_connack",
                connect.0,
                vec![connect.1.clone()],
                AppProto::Mqtt,
            ),
            (
                "mqtt_publish_json",
                publish.0,
                vec![publish.1.clone()],
                AppProto::Mqtt,
            ),
            (
                "dicom_c_store_association",
                dicom_ends,
                dicom_recs.clone(),
                AppProto::Dicom,
            ),
        ] {
            let f = info(&ends, app);
            let mut st = DetectState::new(&DetectConfig::default());
            let mut out = Vec::with_capacity(16);
            g.bench_function(format!("{name}/{what}"), |b| {
                b.iter(|| {
                    // A fresh flow state each time: per-flow thresholds and
                    // the header cache start empty, as on a new flow.
                    let mut fd = e.new_flow(f.client.addr, f.server.addr);
                    out.clear();
                    for r in &recs {
                        e.record(&mut st, &mut fd, &f, black_box(r), &mut out);
                    }
                    black_box(out.len())
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
