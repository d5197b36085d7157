//! EVE `alert` events.
//!
//! Shape (Suricata 8's, so its schema validates them and Filebeat's
//! Suricata module ingests them): the flow's header oriented as the packet
//! or transaction that matched (`src_ip` is the server for `to_client`),
//! `alert{action, gid, signature_id, rev, signature, category, severity,
//! metadata, references}` (`action` is `allowed`: wardwatch is passive;
//! `metadata` maps each key to the list of its values, as Suricata does),
//! `app_proto`, `direction` (`to_server`/`to_client`), `flow{pkts_toserver,
//! pkts_toclient, bytes_toserver, bytes_toclient, start, src_ip, dest_ip,
//! src_port, dest_port}` (the flow's own client→server orientation), the
//! record that triggered it under its own key (`mqtt`, `dicom`), and two
//! objects of ours: `phi{kinds, evidence[{kind, field, value}]}` (values
//! masked by [`super::mask`]'s one policy unless `outputs.unmask_sensitive`:
//! a patient name masks the same way here as in the record beside it) and
//! `geo{src_country,
//! dest_country}` (ISO codes, each present only when the country database
//! knows the address).

use std::collections::BTreeMap;

use serde::Serialize;

use super::eve::{self, erased::Field, erased::Written, EventHeader, Oriented};
use super::json::{self, Raw};
use super::mask::{display_bytes, LogOptions};
use crate::detect::phi::{PhiKind, PhiReport};
use crate::detect::{Alert, Country, RuleMeta};
use crate::flow::Direction;
use crate::time::Timestamp;

/// Flow counters an alert carries.
#[derive(Debug, Clone, Copy)]
pub struct AlertFlow {
    pub pkts: [u64; 2],
    pub bytes: [u64; 2],
    pub start: Timestamp,
}

/// The `alert` object: what the rule says (also the alerts of rules on
/// asset changes, `asset::log`).
#[derive(Serialize)]
pub struct RuleObject<'a> {
    action: &'static str,
    gid: u32,
    signature_id: u32,
    rev: u32,
    signature: &'a str,
    category: &'a str,
    severity: u8,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metadata: BTreeMap<&'a str, Vec<&'a str>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    references: &'a [String],
}

#[derive(Serialize)]
struct GeoObject {
    #[serde(skip_serializing_if = "Option::is_none")]
    src_country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_country: Option<String>,
}

impl RuleObject<'_> {
    pub fn of(r: &RuleMeta) -> RuleObject<'_> {
        let mut metadata: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (k, v) in &r.metadata {
            metadata.entry(k.as_str()).or_default().push(v.as_str());
        }
        RuleObject {
            action: "allowed",
            gid: r.gid,
            signature_id: r.sid,
            rev: r.rev,
            signature: &r.msg,
            category: &r.category,
            severity: r.severity,
            metadata,
            references: &r.references,
        }
    }
}

fn country(c: Option<Country>) -> Option<String> {
    c.map(|c| display_bytes(&c).into_owned())
}

/// The rule's `alert` object as JSON: serialised at the rule's first
/// alert, copied afterwards ([`RuleMeta::eve`]). Empty if it could not be
/// serialised (it cannot: its keys are names of ours).
fn rule_json(r: &RuleMeta) -> &[u8] {
    r.eve.get_or_init(|| {
        let mut b = Vec::with_capacity(256);
        if json::write(&mut b, &RuleObject::of(r)).is_err() {
            b.clear();
        }
        b.into_boxed_slice()
    })
}

/// The `flow` object of an alert: its counters and the flow's own
/// client → server orientation.
fn write_flow_object(out: &mut Vec<u8>, header: &EventHeader<'_>, flow: &AlertFlow) {
    eve::push_flow_counts(out, flow.pkts, flow.bytes, flow.start);
    // Addresses and numbers need no escaping.
    out.extend_from_slice(b"\",\"src_ip\":\"");
    eve::push_ip(out, header.src_ip);
    out.extend_from_slice(b"\",\"dest_ip\":\"");
    eve::push_ip(out, header.dest_ip);
    out.extend_from_slice(b"\",\"src_port\":");
    json::write_u64(out, u64::from(header.src_port));
    out.extend_from_slice(b",\"dest_port\":");
    json::write_u64(out, u64::from(header.dest_port));
    out.push(b'}');
}

/// The `phi` object: kind names (ours: no escaping), then the evidence,
/// its field escaped and its value as [`LogOptions::write_evidence`]
/// writes it.
fn write_phi_object(out: &mut Vec<u8>, p: &PhiReport, opts: &LogOptions) {
    out.extend_from_slice(b"{\"kinds\":[");
    for (i, k) in p.kinds.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(k.name().as_bytes());
        out.push(b'"');
    }
    out.push(b']');
    if !p.evidence.is_empty() {
        out.extend_from_slice(b",\"evidence\":[");
        for (i, e) in p.evidence.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(evidence_head(e.kind));
            json::write_str(out, &e.field);
            out.extend_from_slice(b",\"value\":");
            opts.write_evidence(e, out);
            out.push(b'}');
        }
        out.push(b']');
    }
    out.push(b'}');
}

/// `{"kind":"…","field":` of an evidence item of `kind`, one copy per
/// item (a test checks each against the kind's name).
fn evidence_head(kind: PhiKind) -> &'static [u8] {
    macro_rules! head {
        ($name:literal) => {
            concat!("{\"kind\":\"", $name, "\",\"field\":").as_bytes()
        };
    }
    match kind {
        PhiKind::Hl7 => head!("hl7"),
        PhiKind::Fhir => head!("fhir"),
        PhiKind::Json => head!("json"),
        PhiKind::Ssn => head!("ssn"),
        PhiKind::Nir => head!("nir"),
        PhiKind::Bsn => head!("bsn"),
        PhiKind::Dicom => head!("dicom"),
        PhiKind::Location => head!("location"),
    }
}

/// Appends one `alert` event. `header` is the flow's (client → server),
/// written from the alert's side ([`Oriented`] by `alert.dir`) and as it is
/// in the `flow` object;
/// `record` is the app-layer record that matched, if any: its
/// `event_type` and its object as the record itself was written
/// ([`crate::app::AppRecord::loggable`], serialised once for both).
/// The rule's object is serialised once per rule, the `flow` and `phi`
/// objects are written by hand (no `String` per address, time or mask).
#[allow(clippy::too_many_arguments)]
pub fn write_alert(
    out: &mut Vec<u8>,
    header: &EventHeader<'_>,
    ts: Timestamp,
    alert: &Alert,
    flow: &AlertFlow,
    record: Option<(&str, Raw<'_>)>,
    opts: &LogOptions,
) {
    let rule = rule_json(&alert.rule);
    if rule.is_empty() {
        return;
    }
    let to_client = alert.dir == Direction::ToClient;
    let direction = Raw(if to_client {
        b"\"to_client\"".as_slice()
    } else {
        b"\"to_server\""
    });
    let flow_obj = Written(|out: &mut Vec<u8>| write_flow_object(out, header, flow));
    let phi = alert
        .phi
        .as_ref()
        .filter(|p| !p.is_empty())
        .map(|p| Written(move |out: &mut Vec<u8>| write_phi_object(out, p, opts)));
    let [client_c, server_c] = alert.countries;
    let (src_c, dest_c) = if to_client {
        (server_c, client_c)
    } else {
        (client_c, server_c)
    };
    let geo = (src_c.is_some() || dest_c.is_some()).then(|| GeoObject {
        src_country: country(src_c),
        dest_country: country(dest_c),
    });
    // At most five fields, in a list on the stack (no allocation per alert).
    let mut extra: [(&str, &dyn Field); 5] = [("direction", &direction); 5];
    let mut n = 1;
    let more: [Option<(&str, &dyn Field)>; 4] = [
        Some(("flow", &flow_obj)),
        record
            .as_ref()
            .map(|(key, value)| (*key, value as &dyn Field)),
        phi.as_ref().map(|p| ("phi", p as &dyn Field)),
        geo.as_ref().map(|g| ("geo", g as &dyn Field)),
    ];
    for field in more.into_iter().flatten() {
        if let Some(slot) = extra.get_mut(n) {
            *slot = field;
            n += 1;
        }
    }
    let extra = extra.get(..n).unwrap_or_default();
    let head = Oriented::new(header, to_client);
    eve::write_event_with(out, head, ts, "alert", &Raw(rule), extra);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::phi::Evidence;
    use crate::detect::Action;
    use serde_json::Value;
    use std::sync::Arc;

    #[test]
    fn evidence_heads_name_their_kind() {
        for k in PhiKind::ALL {
            let want = format!("{{\"kind\":\"{}\",\"field\":", k.name());
            assert_eq!(String::from_utf8_lossy(evidence_head(k)), want);
        }
    }

    fn alert(phi: Option<PhiReport>, dir: Direction) -> Alert {
        Alert {
            rule: Arc::new(RuleMeta {
                action: Action::Alert,
                gid: 1,
                sid: 9,
                rev: 2,
                msg: "a \"quoted\" msg".into(),
                classtype: None,
                category: "cat\\egory".into(),
                severity: 2,
                metadata: vec![
                    ("finding".into(), "x".into()),
                    ("finding".into(), "y".into()),
                ],
                references: vec!["url,example.org".into()],
                eve: Default::default(),
            }),
            dir,
            phi: phi.map(Arc::new),
            countries: [None, None],
            undecided: None,
        }
    }

    fn write(a: &Alert, opts: &LogOptions) -> Value {
        let header = EventHeader {
            flow_id: 7,
            vlan: &[],
            src_ip: "10.20.1.15".parse().unwrap(),
            src_port: 40000,
            dest_ip: "10.10.5.10".parse().unwrap(),
            dest_port: 1883,
            proto: crate::decode::ip_proto::TCP,
            app_proto: Some("mqtt"),
            community_id: "1:x",
        };
        let flow = AlertFlow {
            pkts: [3, 4],
            bytes: [300, 400],
            start: Timestamp::from_parts(1, 5_000),
        };
        let mut out = Vec::new();
        write_alert(&mut out, &header, Timestamp(0), a, &flow, None, opts);
        assert!(out.ends_with(b"}\n"));
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn alert_objects_written_by_hand_read_as_their_parts() {
        let report = PhiReport {
            kinds: vec![PhiKind::Json, PhiKind::Location],
            evidence: vec![
                Evidence {
                    kind: PhiKind::Json,
                    field: "na\"me".into(),
                    value: "TEST^JANE".into(),
                },
                Evidence {
                    kind: PhiKind::Location,
                    field: "gps".into(),
                    value: "48.84512,2.35601".into(),
                },
                Evidence {
                    kind: PhiKind::Json,
                    field: "empty".into(),
                    value: String::new(),
                },
            ],
        };
        let a = alert(Some(report.clone()), Direction::ToClient);
        for opts in [LogOptions::default(), LogOptions::unmasked()] {
            // Twice: the rule's object the second time is the cached one.
            for _ in 0..2 {
                let v = write(&a, &opts);
                let mut rule = Vec::new();
                json::write(&mut rule, &RuleObject::of(&a.rule)).unwrap();
                assert_eq!(v["alert"], serde_json::from_slice::<Value>(&rule).unwrap());
                assert_eq!(
                    v["alert"]["metadata"]["finding"],
                    serde_json::json!(["x", "y"])
                );
                assert_eq!(v["direction"], "to_client");
                assert_eq!(v["src_ip"], "10.10.5.10");
                assert_eq!(
                    v["flow"],
                    serde_json::json!({"pkts_toserver": 3, "pkts_toclient": 4,
                        "bytes_toserver": 300, "bytes_toclient": 400,
                        "start": "1970-01-01T00:00:01.000005+0000",
                        "src_ip": "10.20.1.15", "dest_ip": "10.10.5.10",
                        "src_port": 40000, "dest_port": 1883})
                );
                assert_eq!(v["phi"]["kinds"], serde_json::json!(["json", "location"]));
                let ev = v["phi"]["evidence"].as_array().unwrap();
                assert_eq!(ev.len(), 3);
                for (got, e) in ev.iter().zip(&report.evidence) {
                    assert_eq!(got["kind"], e.kind.name());
                    assert_eq!(got["field"], e.field.as_str());
                    assert_eq!(got["value"], &*opts.evidence(e));
                }
            }
        }
        // Kinds without evidence: no `evidence` member.
        let bare = alert(
            Some(PhiReport {
                kinds: vec![PhiKind::Nir],
                evidence: Vec::new(),
            }),
            Direction::ToServer,
        );
        let v = write(&bare, &LogOptions::default());
        assert_eq!(v["phi"], serde_json::json!({"kinds": ["nir"]}));
        assert_eq!(v["src_ip"], "10.20.1.15");
        assert!(
            write(&alert(None, Direction::ToServer), &LogOptions::default())
                .get("phi")
                .is_none()
        );
    }
}
