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

use super::eve::{self, erased::Field, EventHeader, Oriented};
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

/// Evidence items whose written values a later item may copy
/// ([`write_phi_object`]): the first few of a report, so the look-back
/// stays bounded whatever `max_evidence` allows.
const REUSED_VALUES: usize = 8;

/// The `phi` object: kind names (ours: no escaping), then the evidence,
/// its field escaped and its value as [`LogOptions::write_evidence`]
/// writes it. That value depends on the options, the evidence's value and
/// only whether its kind is [`PhiKind::Location`]: an item with the same
/// value as one of the first [`REUSED_VALUES`] items before it (the same
/// number found by the JSON and the national-ID scans) copies those bytes
/// instead of masking again (a keyed hash per mask).
fn write_phi_object(out: &mut Vec<u8>, p: &PhiReport, opts: &LogOptions) {
    out.extend_from_slice(b"{\"kinds\":[");
    for (i, k) in p.kinds.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(kind_texts(*k).1);
    }
    out.push(b']');
    if !p.evidence.is_empty() {
        out.extend_from_slice(b",\"evidence\":[");
        // Where each of the first items' values was written.
        let mut spans = [(0usize, 0usize); REUSED_VALUES];
        for (i, e) in p.evidence.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(kind_texts(e.kind).0);
            json::write_str(out, &e.field);
            out.extend_from_slice(b",\"value\":");
            let location = e.kind == PhiKind::Location;
            let earlier = p
                .evidence
                .iter()
                .zip(&spans)
                .take(i)
                .find(|(prev, _)| {
                    (prev.kind == PhiKind::Location) == location && prev.value == e.value
                })
                .map(|(_, span)| *span);
            let from = out.len();
            match earlier {
                Some((a, b)) => out.extend_from_within(a..b),
                None => opts.write_evidence(e, out),
            }
            if let Some(span) = spans.get_mut(i) {
                *span = (from, out.len());
            }
            out.push(b'}');
        }
        out.push(b']');
    }
    out.push(b'}');
}

/// The two texts an alert writes for an evidence kind, made from one list
/// of the kinds' names (a test checks each against the kind's name): an
/// evidence item's head, `{"kind":"…","field":`, and the name as a JSON
/// string.
fn kind_texts(kind: PhiKind) -> (&'static [u8], &'static [u8]) {
    macro_rules! texts {
        ($name:literal) => {
            (
                concat!("{\"kind\":\"", $name, "\",\"field\":").as_bytes(),
                concat!("\"", $name, "\"").as_bytes(),
            )
        };
    }
    match kind {
        PhiKind::Hl7 => texts!("hl7"),
        PhiKind::Fhir => texts!("fhir"),
        PhiKind::Json => texts!("json"),
        PhiKind::Ssn => texts!("ssn"),
        PhiKind::Nir => texts!("nir"),
        PhiKind::Bsn => texts!("bsn"),
        PhiKind::Dicom => texts!("dicom"),
        PhiKind::Location => texts!("location"),
    }
}

/// Everything an alert writes under and after its `alert` key, as one
/// value of [`eve::write_event_with`]: the rule's object, then
/// `direction`, `flow`, the record under its own key, `phi` and `geo`
/// (the order they had as separate fields), with no list of fields to
/// build and walk per alert.
struct AlertBody<'a> {
    rule: &'a [u8],
    to_client: bool,
    header: &'a EventHeader<'a>,
    flow: &'a AlertFlow,
    record: Option<(&'a str, Raw<'a>)>,
    phi: Option<&'a PhiReport>,
    opts: &'a LogOptions,
    countries: (Option<Country>, Option<Country>),
}

impl Field for AlertBody<'_> {
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), json::Error> {
        out.extend_from_slice(self.rule);
        out.extend_from_slice(if self.to_client {
            b",\"direction\":\"to_client\",\"flow\":".as_slice()
        } else {
            b",\"direction\":\"to_server\",\"flow\":"
        });
        write_flow_object(out, self.header, self.flow);
        if let Some((key, value)) = self.record {
            // An event type of ours: no escaping.
            out.extend_from_slice(b",\"");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(value.0);
        }
        if let Some(p) = self.phi {
            out.extend_from_slice(b",\"phi\":");
            write_phi_object(out, p, self.opts);
        }
        let (src_c, dest_c) = self.countries;
        if src_c.is_some() || dest_c.is_some() {
            out.extend_from_slice(b",\"geo\":");
            json::write(
                out,
                &GeoObject {
                    src_country: country(src_c),
                    dest_country: country(dest_c),
                },
            )?;
        }
        Ok(())
    }
}

/// Room an alert takes besides its rule object, record and evidence:
/// its header, `flow` object and keys (about 600 bytes with IPv6
/// addresses), so the line is written without growing its buffer.
const ALERT_ROOM: usize = 768;

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
    let phi = alert.phi.as_deref().filter(|p| !p.is_empty());
    let [client_c, server_c] = alert.countries;
    let countries = if to_client {
        (server_c, client_c)
    } else {
        (client_c, server_c)
    };
    // A guess, not a bound: a held alert's line starts empty, and the
    // block buffer is reserved once rather than checked per piece.
    let evidence = phi.map_or(0, |p| {
        p.evidence
            .iter()
            .map(|e| e.field.len() + e.value.len() + 64)
            .sum::<usize>()
    });
    out.reserve(
        ALERT_ROOM
            + rule.len()
            + record.map_or(0, |(k, v)| k.len() + v.0.len())
            + evidence
            + header.community_id.len(),
    );
    let body = AlertBody {
        rule,
        to_client,
        header,
        flow,
        record,
        phi,
        opts,
        countries,
    };
    let head = Oriented::new(header, to_client);
    eve::write_event_with(out, head, ts, "alert", &body, &[]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::phi::Evidence;
    use crate::detect::Action;
    use serde_json::Value;
    use std::sync::Arc;

    #[test]
    fn kind_texts_name_their_kind() {
        for k in PhiKind::ALL {
            let (head, quoted) = kind_texts(k);
            let want = format!("{{\"kind\":\"{}\",\"field\":", k.name());
            assert_eq!(String::from_utf8_lossy(head), want);
            assert_eq!(String::from_utf8_lossy(quoted), format!("\"{}\"", k.name()));
        }
    }

    /// The alert as it was written before its body was one value: every
    /// part a field of [`eve::write_event_with`], each evidence value
    /// masked on its own.
    mod reference {
        use super::super::*;
        use crate::output::eve::erased::Written;

        fn phi_object(out: &mut Vec<u8>, p: &PhiReport, opts: &LogOptions) {
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
                    out.extend_from_slice(kind_texts(e.kind).0);
                    json::write_str(out, &e.field);
                    out.extend_from_slice(b",\"value\":");
                    opts.write_evidence(e, out);
                    out.push(b'}');
                }
                out.push(b']');
            }
            out.push(b'}');
        }

        pub fn alert(
            out: &mut Vec<u8>,
            header: &EventHeader<'_>,
            ts: Timestamp,
            alert: &Alert,
            flow: &AlertFlow,
            record: Option<(&str, Raw<'_>)>,
            opts: &LogOptions,
        ) {
            let mut rule = Vec::new();
            json::write(&mut rule, &RuleObject::of(&alert.rule)).unwrap();
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
                .map(|p| Written(move |out: &mut Vec<u8>| phi_object(out, p, opts)));
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
            let mut extra: Vec<(&str, &dyn Field)> = vec![("direction", &direction)];
            extra.push(("flow", &flow_obj));
            if let Some((key, value)) = record.as_ref() {
                extra.push((key, value));
            }
            if let Some(p) = phi.as_ref() {
                extra.push(("phi", p));
            }
            if let Some(g) = geo.as_ref() {
                extra.push(("geo", g));
            }
            let head = Oriented::new(header, to_client);
            eve::write_event_with(out, head, ts, "alert", &Raw(&rule), &extra);
        }
    }

    fn any_kind() -> impl proptest::strategy::Strategy<Value = PhiKind> {
        proptest::sample::select(PhiKind::ALL.to_vec())
    }

    proptest::proptest! {
        #[test]
        fn alerts_written_as_one_body_equal_the_field_list(
            to_client in proptest::prelude::any::<bool>(),
            unmask in proptest::prelude::any::<bool>(),
            kinds in proptest::collection::vec(any_kind(), 0..4),
            // Values from a few, so that many items repeat an earlier one
            // (also past the items whose values are reused).
            evidence in proptest::collection::vec(
                (any_kind(), "[a-z\"\\\\\u{1}é]{0,5}", proptest::sample::select(vec![
                    "", "12", "1 85 05 78 006 084 91", "48.84512,2.35601", "TEST^JANE", "x\"\u{1}é",
                ])),
                0..14,
            ),
            countries in proptest::prelude::any::<[Option<[u8; 2]>; 2]>(),
            record in proptest::option::of(proptest::sample::select(vec!["mqtt", "dicom"])),
            rule_meta in proptest::collection::vec(("[a-z\"]{1,3}", "[a-z\\\\é]{0,3}"), 0..3),
            flow_id in proptest::prelude::any::<u64>(),
            counts in proptest::prelude::any::<[u64; 4]>(),
            ts in proptest::prelude::any::<u64>(),
        ) {
            let mut a = alert(None, if to_client { Direction::ToClient } else { Direction::ToServer });
            a.rule = Arc::new(RuleMeta {
                metadata: rule_meta,
                ..(*a.rule).clone()
            });
            a.phi = Some(Arc::new(PhiReport {
                kinds,
                evidence: evidence
                    .into_iter()
                    .map(|(kind, field, value)| Evidence {
                        kind,
                        field,
                        value: value.to_string(),
                    })
                    .collect(),
            }));
            a.countries = countries;
            // A VLAN, an IPv6 peer and a Community ID needing escapes.
            let header = EventHeader {
                flow_id,
                vlan: &[7],
                dest_ip: "2001:db8::1".parse().unwrap(),
                community_id: "1:x\"y",
                ..header()
            };
            let flow = AlertFlow {
                pkts: [counts[0], counts[1]],
                bytes: [counts[2], counts[3]],
                start: Timestamp(ts / 2),
            };
            let opts = if unmask { LogOptions::unmasked() } else { LogOptions::default() };
            let body = br#"{"publish":{"topic":"a/b"}}"#;
            let record = record.map(|k| (k, Raw(body)));
            // A buffer already holding a line: spans copied are the item's
            // own, not offsets from the start of the line.
            let (mut ours, mut theirs) = (b"{}\n".to_vec(), b"{}\n".to_vec());
            write_alert(&mut ours, &header, Timestamp(ts), &a, &flow, record, &opts);
            reference::alert(&mut theirs, &header, Timestamp(ts), &a, &flow, record, &opts);
            proptest::prop_assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(theirs).unwrap());
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

    /// The event header of the tests' MQTT flow.
    fn header() -> EventHeader<'static> {
        EventHeader {
            flow_id: 7,
            vlan: &[],
            src_ip: "10.20.1.15".parse().unwrap(),
            src_port: 40000,
            dest_ip: "10.10.5.10".parse().unwrap(),
            dest_port: 1883,
            proto: crate::decode::ip_proto::TCP,
            app_proto: Some("mqtt"),
            community_id: "1:x",
        }
    }

    fn write(a: &Alert, opts: &LogOptions) -> Value {
        let header = header();
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
