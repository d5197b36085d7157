//! TLS (README "TLS records") end to end, against independent decoders,
//! on the TLS captures of `pcaps/` (OpenSSL 3 `s_server`/`s_client` in TLS
//! 1.2 and 1.3 with SNI, ALPN, a certificate chain sent in 512-byte records
//! and a resumed session; mosquitto's TLS 1.3 listener; dcmtk's TLS
//! association, which sends no SNI):
//!
//! - Every handshake's `sni`, `version`, `client_alpns`, `server_alpns`
//!   and certificate fields (`subject`, `issuerdn`, `serial`,
//!   `fingerprint`, `notbefore`, `notafter`) are exactly what
//!   `tests/tools/tls_tshark.py` reads with tshark and openssl, flow by
//!   flow, and there is one `tls` record per such flow.
//! - `ja4` is what the `ja4plus` package (FoxIO's JA4 in Python, PyPI
//!   1.4.0) computes, frozen in `tests/expected/tls/<capture>.ja4.tsv`
//!   (`ja4plus --format csv --types ja4 analyze pcaps/X.pcap`, the client
//!   port and the fingerprint of each row).
//! - The records are schema-valid and the same for 1, 2 and 3 workers.
//! - The same captures cut into 1-byte segments, and reordered, give the
//!   same records; a to-server-only copy still gives each flow's SNI.
//! - `tls.sni` and `tls.version` rules alert on exactly the flows tshark
//!   shows with that name or version.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/evasion.rs"]
mod evasion;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::*;
use evasion::{Options, Pcap, Variant};
use serde_json::Value;

const CAPTURES: [&str; 3] = ["tls_openssl", "mqtt_tls", "dicom_tls"];

/// The fields tshark and openssl give.
const CHECKED: [&str; 10] = [
    "sni",
    "version",
    "client_alpns",
    "server_alpns",
    "subject",
    "issuerdn",
    "serial",
    "fingerprint",
    "notbefore",
    "notafter",
];

fn capture(name: &str) -> PathBuf {
    repo().join("pcaps").join(format!("{name}.pcap"))
}

/// The `tls` objects of a run, by client port (records are written client
/// → server).
fn tls_by_port(records: &[Value]) -> BTreeMap<u64, Value> {
    let mut m = BTreeMap::new();
    for r in records.iter().filter(|r| r["event_type"] == "tls") {
        let port = r["src_port"].as_u64().unwrap();
        assert!(
            m.insert(port, r["tls"].clone()).is_none(),
            "two tls records for port {port}"
        );
    }
    m
}

fn tshark_handshakes(name: &str) -> BTreeMap<u64, Value> {
    parse_lines(&common::python_tool("tls_tshark.py", [capture(name)]))
        .into_iter()
        .map(|v| (v["client_port"].as_u64().unwrap(), v))
        .collect()
}

#[test]
fn handshakes_are_what_tshark_and_openssl_decode() {
    if !have("tshark") || !have("openssl") {
        skip("tshark and openssl are needed");
        return;
    }
    for name in CAPTURES {
        let want = tshark_handshakes(name);
        let got = tls_by_port(&eve(&capture(name), 1));
        assert!(!want.is_empty(), "{name}: tshark shows no handshake");
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{name}: flows"
        );
        for (port, w) in &want {
            let g = &got[port];
            for k in CHECKED {
                assert_eq!(g.get(k), w.get(k), "{name} port {port}: {k}");
            }
        }
    }
}

#[test]
fn ja4_is_what_ja4plus_computes() {
    for name in CAPTURES {
        let frozen =
            std::fs::read_to_string(repo().join(format!("tests/expected/tls/{name}.ja4.tsv")))
                .unwrap();
        let want: BTreeMap<u64, String> = frozen
            .lines()
            .map(|l| {
                let (p, j) = l.split_once('\t').unwrap();
                (p.parse().unwrap(), j.to_string())
            })
            .collect();
        let got: BTreeMap<u64, String> = tls_by_port(&eve(&capture(name), 1))
            .into_iter()
            .map(|(p, t)| (p, t["ja4"].as_str().unwrap().to_string()))
            .collect();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn records_are_schema_valid_and_the_same_for_1_2_and_3_workers() {
    for name in CAPTURES {
        let one = eve(&capture(name), 1);
        for n in [2, 3] {
            assert_eq!(
                normalised(&one),
                normalised(&eve(&capture(name), n)),
                "{name}: {n} workers"
            );
        }
        let lines: Vec<u8> = one
            .iter()
            .filter(|r| r["event_type"] == "tls")
            .flat_map(|r| format!("{r}\n").into_bytes())
            .collect();
        assert!(!lines.is_empty());
        match schema_check(&lines) {
            Some(r) => r.unwrap(),
            None => return,
        }
    }
}

/// The records of `name` made into `variant`.
fn variant_records(name: &str, variant: Variant) -> BTreeMap<u64, Value> {
    let cap = Pcap::parse(&std::fs::read(capture(name)).unwrap()).unwrap();
    let opts = Options {
        split_cap: u32::MAX,
        ..Options::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.{}.pcap", variant.name()));
    std::fs::write(&path, variant.apply(&cap, &opts).write()).unwrap();
    tls_by_port(&eve(&path, 1))
}

#[test]
fn one_byte_segments_and_reordering_give_the_same_records() {
    for name in CAPTURES {
        let whole = tls_by_port(&eve(&capture(name), 1));
        for v in [Variant::Split1, Variant::Split1Reorder] {
            assert_eq!(variant_records(name, v), whole, "{name} {}", v.name());
        }
    }
}

#[test]
fn a_to_server_only_copy_still_names_each_server() {
    for name in CAPTURES {
        let whole = tls_by_port(&eve(&capture(name), 1));
        let one_way = variant_records(name, Variant::ToServerOnly);
        assert_eq!(
            one_way.keys().collect::<Vec<_>>(),
            whole.keys().collect::<Vec<_>>(),
            "{name}"
        );
        for (port, t) in &one_way {
            assert_eq!(t.get("sni"), whole[port].get("sni"), "{name} {port}");
            assert_eq!(t["ja4"], whole[port]["ja4"], "{name} {port}");
            assert_eq!(t["version"], "UNDETERMINED", "{name} {port}");
        }
    }
}

#[test]
fn sni_and_version_rules_alert_on_the_flows_tshark_shows() {
    if !have("tshark") || !have("openssl") {
        skip("tshark and openssl are needed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("tls.rules");
    std::fs::write(
        &rules,
        "alert tls any any -> any any (msg:\"fhir sni\"; tls.sni; content:\"fhir.hopital\"; startswith; sid:9000001;)\n\
         alert tls any any -> any any (msg:\"tls 1.3\"; tls.version:1.3; sid:9000002;)\n\
         alert tls any any -> any any (msg:\"h2\"; tls.alpn; content:\"h2\"; bsize:2; sid:9000003;)\n",
    )
    .unwrap();
    for name in CAPTURES {
        let want = tshark_handshakes(name);
        let out = run(&[
            "-r",
            capture(name).to_str().unwrap(),
            "-S",
            rules.to_str().unwrap(),
        ]);
        let alerts = parse_lines(&out.stdout);
        let ports = |sid: u64| -> Vec<u64> {
            let mut v: Vec<u64> = alerts
                .iter()
                .filter(|r| r["event_type"] == "alert" && r["alert"]["signature_id"] == sid)
                .map(|r| r["src_port"].as_u64().unwrap())
                .collect();
            v.sort_unstable();
            v
        };
        let expect = |f: &dyn Fn(&Value) -> bool| -> Vec<u64> {
            want.iter().filter(|(_, w)| f(w)).map(|(p, _)| *p).collect()
        };
        assert_eq!(
            ports(9000001),
            expect(&|w| w["sni"]
                .as_str()
                .is_some_and(|s| s.starts_with("fhir.hopital"))),
            "{name}: sni"
        );
        assert_eq!(
            ports(9000002),
            expect(&|w| w["version"] == "TLS 1.3"),
            "{name}: version"
        );
        assert_eq!(
            ports(9000003),
            expect(&|w| w["client_alpns"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == "h2"))),
            "{name}: alpn"
        );
    }
}

#[test]
fn the_readme_sample_is_what_a_run_writes() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let (_, after) = readme
        .split_once("## TLS records")
        .unwrap()
        .1
        .split_once("```json\n")
        .unwrap();
    let sample: Value = serde_json::from_str(after.split_once("```").unwrap().0).unwrap();
    let run = eve(&capture("tls_openssl"), 1);
    let got = run
        .iter()
        .find(|r| r["event_type"] == "tls" && r["src_port"] == sample["src_port"])
        .unwrap();
    assert_eq!(got, &sample);
}
