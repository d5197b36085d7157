//! The Elastic assets in `contrib/elastic/` against what wardwatch writes.
//! No Elasticsearch runs here, so the test applies the template's rules
//! itself:
//!
//! - every field of every record of every capture (`pcaps/*.pcap*` and
//!   `pcaps/evasion/*.pcap`, with `pcaps/demo.yaml` so alerts appear, plus
//!   the demo with a sensor name) is mapped — by an explicit field, a
//!   `flattened` ancestor, or a dynamic template of a dynamic ancestor —
//!   with a type that takes the JSON value (an `ip` parses as an address, a
//!   `date` has Suricata's timestamp shape, a `long` is an integer…). A
//!   field the template lacks is reported with its path and a sample value;
//! - every field a dashboard visualisation aggregates on or names in its
//!   query is mapped, and every value its queries look for occurs in the
//!   records;
//! - every ingest pipeline is JSON, sets only mapped fields, and names only
//!   pipelines that exist (or Security Onion's `common`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use common::*;
use serde_json::Value;

fn template() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(repo().join("contrib/elastic/index-template.json")).unwrap(),
    )
    .unwrap()
}

/// What a path resolves to in the mappings.
enum Mapped<'a> {
    /// A field with this mapping (aliases followed).
    Field(&'a Value),
    /// Inside a `flattened` field: any scalar.
    Flattened,
    /// Below an object with `dynamic: true`: the dynamic templates decide.
    Dynamic,
    Missing,
}

fn resolve<'a>(mappings: &'a Value, path: &str) -> Mapped<'a> {
    let mut node = mappings;
    for part in path.split('.') {
        if node["type"] == "flattened" {
            return Mapped::Flattened;
        }
        match node["properties"].get(part) {
            Some(n) => node = n,
            None if node["dynamic"] == "true" => return Mapped::Dynamic,
            None => {
                // A multi-field (`alert.signature.keyword`).
                return match node["fields"].get(part) {
                    Some(f) => Mapped::Field(f),
                    None => Mapped::Missing,
                };
            }
        }
    }
    if node["type"] == "alias" {
        return resolve(mappings, node["path"].as_str().unwrap());
    }
    if node["type"] == "flattened" {
        return Mapped::Flattened;
    }
    if node.get("type").is_none() {
        // An object, not a leaf.
        return Mapped::Missing;
    }
    Mapped::Field(node)
}

/// `yyyy-MM-dd'T'HH:mm:ss.SSSSSSZ`, Suricata's timestamp.
fn is_eve_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    b.len() == 31
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[10] == b'T'
        && b[19] == b'.'
        && digits(20..26)
        && (b[26] == b'+' || b[26] == b'-')
        && digits(27..31)
}

/// Whether a field of mapping type `ty` takes `v`; `None` when the type is
/// one this test does not know (a failure too).
fn fits(ty: &str, v: &Value) -> Option<bool> {
    Some(match ty {
        "keyword" | "text" | "wildcard" => v.is_string(),
        "ip" => v.as_str().is_some_and(|s| s.parse::<IpAddr>().is_ok()),
        "date" => v.as_str().is_some_and(is_eve_timestamp),
        "long" => v.is_i64() || v.as_u64().is_some_and(|n| i64::try_from(n).is_ok()),
        "unsigned_long" => v.is_u64(),
        "double" | "float" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => return None,
    })
}

/// Dynamic templates of the mapping that take `path` with value `v`.
fn dynamic_fits(mappings: &Value, path: &str, v: &Value) -> bool {
    let glob = |pat: &str, s: &str| match pat.strip_suffix('*') {
        Some(prefix) => s.starts_with(prefix),
        None => pat == s,
    };
    mappings["dynamic_templates"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t.as_object().into_iter().flat_map(|o| o.values()))
        .any(|t| {
            let json_type_ok = match t["match_mapping_type"].as_str() {
                Some("long") => v.is_i64() || v.is_u64(),
                Some("string") => v.is_string(),
                Some("boolean") => v.is_boolean(),
                Some("double") => v.is_f64(),
                _ => true,
            };
            t["path_match"].as_str().is_some_and(|p| glob(p, path))
                && json_type_ok
                && fits(t["mapping"]["type"].as_str().unwrap_or(""), v) == Some(true)
        })
}

/// Every scalar of a record with its dotted path (array elements share
/// their array's path, as in Elasticsearch).
fn leaves(v: &Value, path: &mut Vec<String>, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                path.push(k.clone());
                leaves(x, path, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            for x in a {
                leaves(x, path, out);
            }
        }
        Value::Null => {}
        scalar => out.push((path.join("."), scalar.clone())),
    }
}

fn every_record() -> Vec<Value> {
    let demo_cfg = repo().join("pcaps/demo.yaml");
    let mut inputs: Vec<PathBuf> = captures();
    let mut evasion: Vec<PathBuf> = std::fs::read_dir(repo().join("pcaps/evasion"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    evasion.sort();
    inputs.extend(evasion);
    assert!(inputs.len() > 40, "the committed captures");
    let mut records = Vec::new();
    for p in &inputs {
        let out = run(&["-r", p.to_str().unwrap(), "-c", demo_cfg.to_str().unwrap()]);
        assert!(
            matches!(out.status.code(), Some(0 | 3)),
            "{}: {}",
            p.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        records.extend(parse_lines(&out.stdout));
    }
    // The sensor name gives every record a `host`.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("named.yaml");
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&demo_cfg)
            .unwrap()
            .replace("outputs:", "outputs:\n  sensor_name: ward-7")
            + if std::fs::read_to_string(&demo_cfg)
                .unwrap()
                .contains("outputs:")
            {
                ""
            } else {
                "outputs:\n  sensor_name: ward-7\n"
            },
    )
    .unwrap();
    let out = run(&["--demo", "-c", cfg.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let named = parse_lines(&out.stdout);
    assert!(named.iter().all(|r| r["host"] == "ward-7"));
    records.extend(named);
    records
}

#[test]
fn every_field_of_every_record_is_mapped_with_a_fitting_type() {
    let t = template();
    let mappings = &t["template"]["mappings"];
    let mut missing: BTreeMap<String, Value> = BTreeMap::new();
    let mut misfit: BTreeMap<String, (String, Value)> = BTreeMap::new();
    let mut checked = 0usize;
    for r in every_record() {
        let mut out = Vec::new();
        leaves(&r, &mut Vec::new(), &mut out);
        for (path, v) in out {
            checked += 1;
            match resolve(mappings, &path) {
                Mapped::Flattened => {}
                Mapped::Dynamic => {
                    if !dynamic_fits(mappings, &path, &v) {
                        misfit.entry(path).or_insert(("(dynamic)".into(), v));
                    }
                }
                Mapped::Field(f) => {
                    let ty = f["type"].as_str().unwrap_or("?");
                    if fits(ty, &v) != Some(true) {
                        misfit.entry(path).or_insert((ty.to_string(), v));
                    }
                }
                Mapped::Missing => {
                    missing.entry(path).or_insert(v);
                }
            }
        }
    }
    // 58 160 values when this was written: a guard against an empty run.
    assert!(checked > 40_000, "{checked} values checked");
    let mut report = String::new();
    for (p, v) in &missing {
        report += &format!("not in contrib/elastic/index-template.json: {p} (e.g. {v})\n");
    }
    for (p, (ty, v)) in &misfit {
        report += &format!("{p}: mapped as {ty}, which does not take {v}\n");
    }
    assert!(report.is_empty(), "\n{report}");
}

#[test]
fn the_checker_reports_what_it_should() {
    // Hand-made mappings: the checker itself must see a missing field, a
    // misfit and a dynamic counter.
    let m: Value = serde_json::json!({
        "dynamic_templates": [{"c": {"path_match": "stats.*", "match_mapping_type": "long",
                                     "mapping": {"type": "long"}}}],
        "properties": {
            "src_ip": {"type": "ip"},
            "timestamp": {"type": "date"},
            "source": {"properties": {"ip": {"type": "alias", "path": "src_ip"}}},
            "stats": {"dynamic": "true", "properties": {}},
            "mqtt": {"properties": {"connect": {"properties": {"properties": {"type": "flattened"}}}}}
        }
    });
    assert!(matches!(resolve(&m, "src_ip"), Mapped::Field(_)));
    assert!(matches!(resolve(&m, "source.ip"), Mapped::Field(f) if f["type"] == "ip"));
    assert!(matches!(resolve(&m, "dest_ip"), Mapped::Missing));
    assert!(matches!(
        resolve(&m, "mqtt.connect.properties.fw"),
        Mapped::Flattened
    ));
    assert!(matches!(resolve(&m, "stats.decoder.pkts"), Mapped::Dynamic));
    assert!(dynamic_fits(
        &m,
        "stats.decoder.pkts",
        &serde_json::json!(3)
    ));
    assert!(!dynamic_fits(
        &m,
        "stats.decoder.pkts",
        &serde_json::json!("3")
    ));
    assert_eq!(fits("ip", &serde_json::json!("10.0.0.300")), Some(false));
    assert_eq!(
        fits(
            "date",
            &serde_json::json!("2026-11-23T16:29:24.464666+0000")
        ),
        Some(true)
    );
    assert_eq!(
        fits("date", &serde_json::json!("19990101-20251231")),
        Some(false)
    );
    assert_eq!(fits("long", &serde_json::json!(u64::MAX)), Some(false));
}

/// `field:value` pairs of a KQL query (`a:b and c:*`).
fn kql_terms(q: &str) -> Vec<(String, String)> {
    q.split_whitespace()
        .filter_map(|w| {
            let w = w.trim_matches(|c| c == '(' || c == ')');
            let (f, v) = w.split_once(':')?;
            Some((f.to_string(), v.trim_matches('"').to_string()))
        })
        .collect()
}

#[test]
fn dashboard_names_only_mapped_fields_and_values_that_occur() {
    let t = template();
    let mappings = &t["template"]["mappings"];
    let text = std::fs::read_to_string(repo().join("contrib/elastic/dashboard.ndjson")).unwrap();
    let records = every_record();
    let mut fields = Vec::new();
    let mut terms = Vec::new();
    let mut visualisations = 0;
    for line in text.lines() {
        let o: Value = serde_json::from_str(line).unwrap();
        let a = &o["attributes"];
        if let Some(vs) = a["visState"].as_str() {
            visualisations += 1;
            let vs: Value = serde_json::from_str(vs).unwrap();
            for agg in vs["aggs"].as_array().unwrap() {
                if let Some(f) = agg["params"]["field"].as_str() {
                    fields.push(f.to_string());
                }
            }
        }
        if let Some(ss) = a["kibanaSavedObjectMeta"]["searchSourceJSON"].as_str() {
            let ss: Value = serde_json::from_str(ss).unwrap();
            terms.extend(kql_terms(ss["query"]["query"].as_str().unwrap_or("")));
        }
    }
    assert_eq!(visualisations, 4);
    fields.extend(terms.iter().map(|(f, _)| f.clone()));
    for f in &fields {
        assert!(
            matches!(resolve(mappings, f), Mapped::Field(_)),
            "the dashboard names {f}, which the template does not map"
        );
    }
    for (f, v) in terms.iter().filter(|(_, v)| v != "*") {
        let found = records.iter().any(|r| {
            let mut out = Vec::new();
            leaves(r, &mut Vec::new(), &mut out);
            out.iter().any(|(p, x)| p == f && x.as_str() == Some(v))
        });
        assert!(
            found,
            "the dashboard looks for {f}:{v}, which no record has"
        );
    }
}

#[test]
fn ingest_pipelines_set_mapped_fields_and_call_existing_pipelines() {
    let t = template();
    let mappings = &t["template"]["mappings"];
    let dir = repo().join("contrib/elastic/ingest");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".json")
                .to_string()
        })
        .collect();
    for n in &names {
        let p: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{n}.json"))).unwrap())
                .unwrap();
        for proc_ in p["processors"].as_array().unwrap() {
            let (kind, body) = proc_.as_object().unwrap().iter().next().unwrap();
            // Elasticsearch refuses a pipeline whose processor lacks its
            // required options (the ingest processor reference).
            let required: &[&str] = match kind.as_str() {
                "rename" => &["field", "target_field"],
                "set" | "append" => &["field", "value"],
                "date" => &["field", "formats"],
                "convert" => &["field", "type"],
                "remove" | "lowercase" | "uppercase" | "json" | "dot_expander" => &["field"],
                "pipeline" => &["name"],
                _ => &[],
            };
            for key in required {
                assert!(
                    body.get(*key).is_some()
                        || (*key == "value" && body.get("copy_from").is_some()),
                    "{n}: a {kind} processor without {key}: {body}"
                );
            }
            match kind.as_str() {
                "pipeline" => {
                    let called = body["name"].as_str().unwrap();
                    let ok = called == "common"
                        || names.iter().any(|x| x == called)
                        || (called.contains("{{") && body["ignore_missing_pipeline"] == true);
                    assert!(ok, "{n} calls {called}");
                }
                // Our own pipelines write only fields the template maps;
                // Security Onion's rename into its own ECS template.
                "set" | "date" if n.starts_with("wardwatch") => {
                    let target = body["target_field"]
                        .as_str()
                        .or(body["field"].as_str())
                        .unwrap();
                    assert!(
                        matches!(resolve(mappings, target), Mapped::Field(_)),
                        "{n} sets {target}, which the template does not map"
                    );
                }
                _ => {}
            }
        }
    }
    assert!(
        names.iter().any(|n| n == "suricata.mqtt") && names.iter().any(|n| n == "suricata.dicom")
    );
}
