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

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;

use super::eve::{self, erased::Field, EventHeader, EventPrefix};
use super::json::Raw;
use super::mask::{display_bytes, LogOptions};
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
struct FlowObject {
    pkts_toserver: u64,
    pkts_toclient: u64,
    bytes_toserver: u64,
    bytes_toclient: u64,
    start: String,
    src_ip: String,
    dest_ip: String,
    src_port: u16,
    dest_port: u16,
}

#[derive(Serialize)]
struct PhiObject<'a> {
    kinds: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    evidence: Vec<EvidenceObject<'a>>,
}

#[derive(Serialize)]
struct EvidenceObject<'a> {
    kind: &'static str,
    field: &'a str,
    value: Cow<'a, str>,
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

/// Appends one `alert` event. `header` is the flow's (client → server);
/// `record` is the app-layer record that matched, if any: its
/// `event_type` and its object as the record itself was written
/// ([`crate::app::AppRecord::loggable`], serialised once for both).
pub fn write_alert(
    out: &mut Vec<u8>,
    header: &EventHeader<'_>,
    ts: Timestamp,
    alert: &Alert,
    flow: &AlertFlow,
    record: Option<(&str, Raw<'_>)>,
    opts: &LogOptions,
) {
    let to_client = alert.dir == Direction::ToClient;
    let mut oriented = header.clone();
    if to_client {
        std::mem::swap(&mut oriented.src_ip, &mut oriented.dest_ip);
        std::mem::swap(&mut oriented.src_port, &mut oriented.dest_port);
    }
    let prefix = EventPrefix::new(&oriented);
    let body = RuleObject::of(&alert.rule);
    let direction = if to_client { "to_client" } else { "to_server" };
    let flow_obj = FlowObject {
        pkts_toserver: flow.pkts[0],
        pkts_toclient: flow.pkts[1],
        bytes_toserver: flow.bytes[0],
        bytes_toclient: flow.bytes[1],
        start: {
            let mut s = String::with_capacity(32);
            flow.start.write_eve(&mut s);
            s
        },
        src_ip: eve::ip_string(header.src_ip),
        dest_ip: eve::ip_string(header.dest_ip),
        src_port: header.src_port,
        dest_port: header.dest_port,
    };
    let phi = alert
        .phi
        .as_ref()
        .filter(|p| !p.is_empty())
        .map(|p| PhiObject {
            kinds: p.kinds.iter().map(|k| k.name()).collect(),
            evidence: p
                .evidence
                .iter()
                .map(|e| EvidenceObject {
                    kind: e.kind.name(),
                    field: &e.field,
                    value: opts.evidence(e),
                })
                .collect(),
        });
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
    let mut extra: Vec<(&str, &dyn Field)> = vec![("direction", &direction), ("flow", &flow_obj)];
    if let Some((key, value)) = &record {
        extra.push((key, value));
    }
    if let Some(p) = &phi {
        extra.push(("phi", p));
    }
    if let Some(g) = &geo {
        extra.push(("geo", g));
    }
    eve::write_event_with(out, &prefix, ts, "alert", &body, &extra);
}
