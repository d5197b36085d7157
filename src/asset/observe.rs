//! What a worker tells the asset table, and how facts are read out of what
//! it already has: the source MAC of each flow direction's first frame,
//! flow ends (endpoints, ports answered on, countries, traffic),
//! app-layer records (DICOM
//! associations and C-STORE data sets, MQTT CONNECT/PUBLISH/SUBSCRIBE) and
//! alerts (their `metadata.finding`).
//!
//! Contract with the worker (`pipeline::worker`), one call per event:
//! [`View::mac`] for the first frame of each direction of a flow,
//! [`View::flow_end`] when a flow ends, [`View::record`] for each app-layer
//! record as it is written, [`View::alert`] for each alert written at once,
//! [`View::held`] for an alert that waits for its threshold decision and
//! [`View::decided`] when the decision comes, [`View::tick`] with the
//! packet time after each packet (hands the worker's table to the run's
//! [`Hub`] once per second of packet time), [`View::finish`] when the
//! worker stops.
//!
//! Who a fact is about: the side that sent it. A DICOM association's
//! calling AE title and A-ASSOCIATE-RQ items are the requester's (the TCP
//! client), the called AE title and A-ASSOCIATE-AC items the acceptor's —
//! only when it accepted (a rejected called AE title is what the requester
//! asked for, not what the acceptor is). The device attributes of a
//! C-STORE-RQ data set are the sender's: a modality storing its own images
//! (a host forwarding other devices' images collects several
//! manufacturers, which says it is a forwarder). C-FIND/C-GET/C-MOVE data
//! sets describe patients and studies, not devices, and are not read. An
//! MQTT CONNECT, and the PUBLISH and SUBSCRIBE messages a client sends,
//! are the client's; what the broker forwards is not.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use super::{Hub, Kind, Seen, Table};
use crate::app::{dicom, hl7, mqtt, tls, AppProto, AppRecord};
use crate::detect::{Country, RuleMeta, Ticket};
use crate::flow::{Direction, FlowIdent};
use crate::time::Timestamp;

/// What a worker knows of a flow when it ends.
#[derive(Debug, Clone, Copy)]
pub struct FlowEnd<'a> {
    pub ident: &'a FlowIdent,
    pub app: AppProto,
    pub last: Timestamp,
    pub pkts: [u64; 2],
    pub bytes: [u64; 2],
}

/// A finding of an alert waiting for its threshold decision.
#[derive(Debug, Clone)]
pub struct PendingFinding {
    ips: [Option<IpAddr>; 2],
    kind: Box<str>,
    seen: Seen,
}

impl PendingFinding {
    /// The order findings left pending are counted in at the end: by time,
    /// then hosts and kind (not the pending map's, whose hash seed is the
    /// process's own: a full table refuses the same hosts from run to run).
    pub(crate) fn order(&self) -> (Seen, [Option<IpAddr>; 2], &str) {
        (self.seen, self.ips, &self.kind)
    }

    /// Counts the finding on its hosts.
    pub(crate) fn apply(&self, t: &mut Table) {
        count_finding(t, self.ips, &self.kind, self.seen);
    }
}

/// Counts an alert's finding `kind` on the inventoried ends of its flow.
fn count_finding(t: &mut Table, ips: [Option<IpAddr>; 2], kind: &str, seen: Seen) {
    for ip in ips.into_iter().flatten() {
        if let Some(a) = t.host(ip, seen, false) {
            // The key is copied only the first time the host has the
            // finding: most alerts count one it has already.
            let f = match a.findings.get_mut(kind) {
                Some(f) => f,
                None => a.findings.entry(kind.into()).or_default(),
            };
            f.count = f.count.saturating_add(1);
            f.last = f.last.max(seen.ts);
        }
    }
}

/// The roles of a flow's client and server in a protocol.
fn roles(app: &str) -> Option<(&'static str, &'static str)> {
    Some(match app {
        "dicom" => ("dicom-scu", "dicom-scp"),
        "mqtt" => ("mqtt-client", "mqtt-broker"),
        "hl7" => ("hl7-sender", "hl7-receiver"),
        "tls" => ("tls-client", "tls-server"),
        _ => return None,
    })
}

/// Protocols that carry clinical data.
const CLINICAL: [&str; 3] = ["dicom", "mqtt", "hl7"];

/// Device attributes of a C-STORE data set and the fact each is.
const DEVICE_ATTRIBUTES: [(u32, Kind); 7] = [
    (0x0008_0070, Kind::Manufacturer),
    (0x0008_1090, Kind::Model),
    (0x0018_1020, Kind::SoftwareVersion),
    (0x0018_1000, Kind::SerialNumber),
    (0x0008_1010, Kind::StationName),
    (0x0008_0080, Kind::Institution),
    (0x0008_0060, Kind::Modality),
];

/// Kinds whose values are free text a person may have typed (and so may
/// hold patient data): looked at by the PHI detectors before they are
/// kept.
fn free_text(k: Kind) -> bool {
    !matches!(
        k,
        Kind::Mac
            | Kind::Role
            | Kind::Service
            | Kind::ImplementationClassUid
            | Kind::Toolkit
            | Kind::MqttVersion
            | Kind::Modality
    )
}

/// The first two levels of an MQTT topic or filter, up to a wildcard:
/// `ward3/bed12/patient` → `ward3/bed12`, `ward3/+/patient` → `ward3`.
///
/// Bytes looked at by hand (every PUBLISH a client sends comes here): a
/// `/` is never part of a multi-byte character, so the cuts are character
/// boundaries.
pub fn topic_prefix(topic: &str) -> Option<&str> {
    let b = topic.as_bytes();
    let stops = |level: &[u8]| level.is_empty() || level == b"+" || level == b"#";
    let first = b.iter().position(|&c| c == b'/').unwrap_or(b.len());
    if stops(b.get(..first)?) {
        return None;
    }
    let rest = b.get(first + 1..).unwrap_or_default();
    let second = rest.iter().position(|&c| c == b'/').unwrap_or(rest.len());
    let end = match rest.get(..second) {
        Some(level) if first < b.len() && !stops(level) => first + 1 + second,
        _ => first,
    };
    topic.get(..end)
}

fn mqtt_version(level: u8) -> Option<&'static str> {
    match level {
        3 => Some("3.1"),
        4 => Some("3.1.1"),
        5 => Some("5.0"),
        _ => None,
    }
}

/// When a fact was seen: a time, and the flow's id computed once, and
/// only when asked for ([`Table::touch_at`] asks when the time ties with
/// a first seen; a fact made keeps it): most facts a record or flow tells
/// are known, and seen later than first.
struct When<'a> {
    ts: Timestamp,
    ident: Option<&'a FlowIdent>,
    flow: std::cell::Cell<Option<u64>>,
}

impl<'a> When<'a> {
    fn new(ts: Timestamp, ident: &'a FlowIdent) -> When<'a> {
        When {
            ts,
            ident: Some(ident),
            flow: std::cell::Cell::new(None),
        }
    }

    /// A time and flow id known already.
    #[cfg(test)]
    fn known(seen: Seen) -> When<'static> {
        When {
            ts: seen.ts,
            ident: None,
            flow: std::cell::Cell::new(Some(seen.flow)),
        }
    }

    fn flow(&self) -> u64 {
        match self.flow.get() {
            Some(id) => id,
            None => {
                let id = self.ident.map_or(0, FlowIdent::flow_id);
                self.flow.set(Some(id));
                id
            }
        }
    }

    fn seen(&self) -> Seen {
        Seen {
            ts: self.ts,
            flow: self.flow(),
        }
    }
}

/// A worker's share of the inventory: its own table, handed over to the
/// hub once per second of packet time.
#[derive(Debug)]
pub struct View {
    hub: Arc<Hub>,
    table: Table,
    /// Second of packet time of the last hand-over.
    flushed: u64,
    on: bool,
    /// The free-text values [`View::clean`] looked at lately, cut, in
    /// which the PHI detectors found no patient data (what they find
    /// depends on the value alone): such a value is scanned once, not
    /// again each second its host comes back to the emptied table. A value
    /// with patient data is never kept here (it is masked, and scanned
    /// again when seen again): the sensor holds no patient data longer
    /// than the packet or record it came in. Bounded: emptied at
    /// [`CLEANED_MAX`] values.
    cleaned: ahash::AHashSet<Box<str>>,
    /// The alert records the worker wrote to its EVE buffer since it was
    /// last handed on, by severity: this view hears of each one
    /// ([`View::alert`], [`View::decided`], the inventory's own), whether
    /// the inventory is on or not.
    tap: Arc<crate::output::sink::AlertTap>,
}

/// Values [`View::cleaned`] holds at most (each at most
/// `asset.max_value_len` bytes).
const CLEANED_MAX: usize = 1024;

impl View {
    pub fn new(hub: &Arc<Hub>) -> View {
        View {
            table: Table::new(&hub.cfg, false),
            hub: Arc::clone(hub),
            flushed: 0,
            on: hub.enabled() || hub.out.inventory.is_some(),
            cleaned: ahash::AHashSet::new(),
            tap: Arc::default(),
        }
    }

    /// The count of alert records written (see [`View::tap`]'s field),
    /// for the worker's EVE buffer to take when it hands a block on.
    pub fn tap(&self) -> Arc<crate::output::sink::AlertTap> {
        Arc::clone(&self.tap)
    }

    /// Whether the worker needs to call at all (inventory on).
    pub fn on(&self) -> bool {
        self.on
    }

    /// A value as kept: cut at `max_value_len`, masked when the PHI
    /// detectors find patient data in free text.
    fn clean<'v>(&mut self, kind: Kind, value: &'v str) -> Cow<'v, str> {
        let max = self.hub.cfg.max_value_len.max(1);
        let mut v = Cow::Borrowed(value);
        if v.len() > max {
            let mut end = max;
            while !value.is_char_boundary(end) {
                end -= 1;
            }
            v = Cow::Borrowed(&value[..end]);
            self.table.stats.values_cut += 1;
        }
        if free_text(kind) {
            if self.cleaned.contains(&*v) {
                return v;
            }
            let report = crate::detect::phi::scan_payload(v.as_bytes(), &self.hub.phi);
            if let Some(first) = report.kinds.first() {
                self.table.stats.phi_masked += 1;
                let e = crate::detect::phi::Evidence {
                    kind: *first,
                    field: kind.name().into(),
                    value: v.to_string(),
                };
                return Cow::Owned(self.hub.mask.evidence(&e).into_owned());
            }
            if self.cleaned.len() >= CLEANED_MAX {
                self.cleaned.clear();
            }
            self.cleaned.insert((*v).into());
        }
        v
    }

    /// Adds a fact about `ip` if it is inventoried.
    fn put(&mut self, ip: IpAddr, kind: Kind, value: &str, seen: &When<'_>) {
        if value.is_empty() || !self.hub.is_home(ip) {
            return;
        }
        if self
            .table
            .touch_at(ip, kind, value, seen.ts, || seen.flow())
        {
            return;
        }
        let v = self.clean(kind, value);
        self.table.fact(ip, kind, &v, seen.seen(), seen.ts);
    }

    /// A flow ended; `country` is the detection engine's country database.
    pub fn flow_end(&mut self, f: &FlowEnd<'_>, country: &dyn Fn(IpAddr) -> Option<Country>) {
        if !self.on {
            return;
        }
        let ends = [f.ident.client(), f.ident.server()];
        let seen = When::new(f.ident.start, f.ident);
        let app = f.app.eve_name();
        let traffic = app.unwrap_or(match f.ident.key.proto() {
            crate::decode::ip_proto::TCP => "tcp",
            crate::decode::ip_proto::UDP => "udp",
            _ => "ip",
        });
        let decided = app.is_some_and(|a| a != "failed");
        for side in 0..2 {
            let (me, peer) = (ends[side], ends[1 - side]);
            if !self.hub.is_home(me.addr) {
                continue;
            }
            let home_peer = self.hub.is_home(peer.addr);
            let peer_country = if home_peer { None } else { country(peer.addr) };
            let Some(a) = self.table.host(me.addr, seen.seen(), false) else {
                continue;
            };
            a.last = a.last.max(f.last);
            let t = a.traffic.entry(traffic).or_default();
            let (sent, received) = (f.bytes[side], f.bytes[1 - side]);
            if side == 0 {
                t.client_flows += 1;
            } else {
                t.server_flows += 1;
            }
            t.bytes_sent = t.bytes_sent.saturating_add(sent);
            t.bytes_received = t.bytes_received.saturating_add(received);
            if app.is_some_and(|a| CLINICAL.contains(&a)) {
                a.cleartext_clinical = true;
            }
            if let Some(cc) = peer_country {
                let c = a.countries.entry(cc).or_default();
                c.flows += 1;
                c.bytes = c.bytes.saturating_add(sent.saturating_add(received));
            }
            if let Some((client, server)) = app.and_then(roles) {
                self.put(
                    me.addr,
                    Kind::Role,
                    if side == 0 { client } else { server },
                    &seen,
                );
            }
            // A port it answered on: it sent something back, or the bytes
            // said which protocol it serves (a one-way capture).
            if side == 1 && me.port != 0 && (f.pkts[1] > 0 || decided) {
                // On the stack: one is made per flow end. `udp/65535` or
                // `255/65535` fit.
                let mut buf = [0u8; 16];
                let mut n = 0;
                let proto = proto_name(f);
                let mut port = itoa::Buffer::new();
                let port = port.format(me.port);
                for &b in proto.as_bytes().iter().chain(b"/").chain(port.as_bytes()) {
                    if let Some(slot) = buf.get_mut(n) {
                        *slot = b;
                        n += 1;
                    }
                }
                if let Ok(service) = std::str::from_utf8(&buf[..n]) {
                    self.put(me.addr, Kind::Service, service, &seen);
                }
            }
        }
    }

    /// `mac` sent the first frame of a direction of flow `ident` from `ip`.
    pub fn mac(&mut self, ip: IpAddr, mac: [u8; 6], ident: &FlowIdent) {
        if !self.on {
            return;
        }
        let seen = When::new(ident.start, ident);
        self.put(ip, Kind::Mac, super::oui::format(mac).as_str(), &seen);
    }

    /// An app-layer record of flow `ident`, made at `ts`.
    pub fn record(&mut self, ident: &FlowIdent, ts: Timestamp, r: &AppRecord) {
        if !self.on {
            return;
        }
        let seen = When::new(ts, ident);
        let (client, server) = (ident.client().addr, ident.server().addr);
        let from = |d: Direction| match d {
            Direction::ToServer => client,
            Direction::ToClient => server,
        };
        match r {
            AppRecord::Dicom(dicom::Record::Association(a)) => {
                self.put(client, Kind::DicomScuAe, &a.calling_ae_title, &seen);
                if let Some(u) = &a.request {
                    self.user_info(client, u, &seen);
                }
                if let Some(u) = &a.response {
                    self.put(server, Kind::DicomScpAe, &a.called_ae_title, &seen);
                    self.user_info(server, u, &seen);
                }
            }
            AppRecord::Dicom(dicom::Record::Dimse(x)) => {
                let Some(rq) = &x.request else {
                    return;
                };
                // C-STORE-RQ (PS3.7 §9.3.1.1).
                if rq.command.command_field != 0x0001 {
                    return;
                }
                let sender = from(x.request_dir.unwrap_or(Direction::ToServer));
                let sop = rq
                    .command
                    .affected_sop_class_uid
                    .as_deref()
                    .or(x.abstract_syntax.as_deref());
                if let Some(m) = sop.and_then(super::toolkit::modality) {
                    self.put(sender, Kind::Modality, m, &seen);
                }
                if let Some(ds) = &rq.data_set {
                    for (tag, kind) in DEVICE_ATTRIBUTES {
                        if let Some(a) = ds.attributes.iter().find(|a| a.tag == tag) {
                            if !a.truncated {
                                self.put(sender, kind, a.value.trim(), &seen);
                            }
                        }
                    }
                }
            }
            AppRecord::Mqtt(rec) => {
                for m in &rec.messages {
                    let sender = from(m.dir);
                    match &m.body {
                        mqtt::Body::Connect(c) => {
                            self.put(sender, Kind::MqttClientId, &c.client_id, &seen);
                            if let Some(u) = &c.username {
                                self.put(sender, Kind::MqttUsername, u, &seen);
                            }
                            if let Some(v) = mqtt_version(c.protocol_version) {
                                self.put(sender, Kind::MqttVersion, v, &seen);
                            }
                            if let Some(p) = c.will.as_ref().and_then(|w| topic_prefix(&w.topic)) {
                                self.put(sender, Kind::MqttTopicPrefix, p, &seen);
                            }
                        }
                        mqtt::Body::Publish(p) if m.dir == Direction::ToServer => {
                            if let Some(p) = topic_prefix(p.effective_topic()) {
                                self.put(sender, Kind::MqttTopicPrefix, p, &seen);
                            }
                        }
                        mqtt::Body::Subscribe(s) if m.dir == Direction::ToServer => {
                            for t in &s.topics {
                                if let Some(p) = topic_prefix(&t.topic) {
                                    self.put(sender, Kind::MqttTopicPrefix, p, &seen);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            // MSH-3/MSH-4 of a message are its sender's, MSH-5/MSH-6 its
            // receiver's, the sender being the side it travelled from.
            AppRecord::Hl7(rec) => {
                for m in rec.messages() {
                    let (sender, receiver) = (from(m.dir), from(m.dir.reverse()));
                    for (ip, n, kind) in [
                        (sender, 3, Kind::Hl7SendingApplication),
                        (sender, 4, Kind::Hl7SendingFacility),
                        (receiver, 5, Kind::Hl7ReceivingApplication),
                        (receiver, 6, Kind::Hl7ReceivingFacility),
                    ] {
                        let v = m.field(b"MSH", n).unwrap_or(&[]);
                        if !v.is_empty() {
                            self.put(ip, kind, &hl7::log::text(v, m), &seen);
                        }
                    }
                }
            }
            // The name clients asked the server for (RFC 6066 §3).
            AppRecord::Tls(rec) => {
                if let Some(sni) = rec.sni().filter(|s| !s.is_empty()) {
                    self.put(server, Kind::TlsSni, &tls::log::text(sni), &seen);
                }
            }
            AppRecord::Anomaly(_) | AppRecord::StreamAnomaly(_) | AppRecord::Asset(_) => {}
        }
    }

    fn user_info(&mut self, ip: IpAddr, u: &dicom::UserInfo, seen: &When<'_>) {
        if let Some(uid) = &u.implementation_class_uid {
            self.put(ip, Kind::ImplementationClassUid, uid, seen);
            if let Some(t) = super::toolkit::toolkit(uid) {
                self.put(ip, Kind::Toolkit, t, seen);
            }
        }
        if let Some(v) = &u.implementation_version_name {
            self.put(ip, Kind::ImplementationVersion, v.trim(), seen);
        }
    }

    /// The inventoried ends of a flow and the finding of a rule (cut at
    /// `max_value_len`), borrowed.
    fn finding<'r>(
        &self,
        ident: &FlowIdent,
        ts: Timestamp,
        rule: &'r RuleMeta,
    ) -> Option<([Option<IpAddr>; 2], &'r str, Seen)> {
        let kind = rule
            .metadata
            .iter()
            .find(|(k, _)| k == "finding")
            .map(|(_, v)| v.as_str())?;
        let ip = |a: IpAddr| self.hub.is_home(a).then_some(a);
        let ips = [ip(ident.client().addr), ip(ident.server().addr)];
        if ips.iter().all(Option::is_none) {
            return None;
        }
        let max = self.hub.cfg.max_value_len.max(1);
        let cut = kind.get(..max.min(kind.len())).unwrap_or("finding");
        let seen = Seen {
            ts,
            flow: ident.flow_id(),
        };
        Some((ips, cut, seen))
    }

    /// An alert of flow `ident` was written.
    pub fn alert(&mut self, ident: &FlowIdent, ts: Timestamp, rule: &RuleMeta) {
        self.tap.alert(rule.severity);
        if !self.on {
            return;
        }
        if let Some((ips, kind, seen)) = self.finding(ident, ts, rule) {
            count_finding(&mut self.table, ips, kind, seen);
        }
    }

    /// An alert of flow `ident` waits for its threshold decision
    /// (`ticket`).
    pub fn held(&mut self, ticket: Ticket, ident: &FlowIdent, ts: Timestamp, rule: &RuleMeta) {
        // Whichever worker writes the line (the last to leave writes
        // what the others left undecided) counts it by this.
        super::lock(&self.hub.held).insert(ticket, rule.severity);
        if !self.on {
            return;
        }
        if let Some((ips, kind, seen)) = self.finding(ident, ts, rule) {
            let p = PendingFinding {
                ips,
                kind: kind.into(),
                seen,
            };
            super::lock(&self.hub.pending).insert(ticket, p);
        }
    }

    /// The threshold decided on `ticket`: written as an alert or not.
    pub fn decided(&mut self, ticket: Ticket, alert: bool) {
        let severity = super::lock(&self.hub.held).remove(&ticket);
        if let (Some(s), true) = (severity, alert) {
            self.tap.alert(s);
        }
        if !self.on {
            return;
        }
        let p = super::lock(&self.hub.pending).remove(&ticket);
        if let (Some(p), true) = (p, alert) {
            p.apply(&mut self.table);
        }
    }

    /// Packet time reached `now`: once per second the table goes to the
    /// hub (a live run's periodic records, if due, are written to `out`).
    pub fn tick(&mut self, now: Timestamp, out: &mut Vec<u8>) {
        if !self.on || now.secs() == self.flushed {
            return;
        }
        self.flushed = now.secs();
        if !self.table.is_empty() || self.table.stats != super::AssetStats::default() {
            let alerts = self.hub.absorb(&mut self.table, now, out);
            self.tap.add(&alerts);
        }
    }

    /// The worker stops: everything goes to the hub.
    pub fn finish(&mut self, now: Timestamp, out: &mut Vec<u8>) {
        if self.on {
            let alerts = self.hub.absorb(&mut self.table, now, out);
            self.tap.add(&alerts);
        }
    }
}

/// `tcp`, `udp` or the protocol number, for service names.
fn proto_name(f: &FlowEnd<'_>) -> Cow<'static, str> {
    match f.ident.key.proto() {
        crate::decode::ip_proto::TCP => Cow::Borrowed("tcp"),
        crate::decode::ip_proto::UDP => Cow::Borrowed("udp"),
        p => Cow::Owned(p.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(cfg: &crate::config::Config) -> View {
        View::new(&Arc::new(Hub::new(cfg).unwrap()))
    }

    fn seen() -> When<'static> {
        When::known(Seen {
            ts: Timestamp::from_parts(1, 0),
            flow: 7,
        })
    }

    #[test]
    fn values_holding_patient_data_are_masked_and_long_ones_cut() {
        let mut cfg = crate::config::Config::default();
        cfg.asset.max_value_len = 24;
        let mut v = view(&cfg);
        let h: IpAddr = "10.20.1.15".parse().unwrap();
        // Hand-built: a client id embedding a French NIR with a valid key
        // (the synthetic TEST^JANE's of pcaps/README.md), and a topic
        // prefix longer than 24 bytes.
        v.put(h, Kind::MqttClientId, "nir:200017511299931", &seen());
        v.put(
            h,
            Kind::MqttTopicPrefix,
            "ward3/a-very-long-level-name-here",
            &seen(),
        );
        let a = v.table.get(&h).unwrap();
        let ids = a.values(Kind::MqttClientId);
        assert_eq!(ids.len(), 1);
        assert!(!ids[0].contains("200017511299931"), "{ids:?}");
        assert_eq!(
            a.values(Kind::MqttTopicPrefix),
            ["ward3/a-very-long-level-"]
        );
        assert_eq!((v.table.stats.phi_masked, v.table.stats.values_cut), (1, 1));
    }

    #[test]
    fn a_value_cleaned_again_comes_out_the_same_and_is_counted_again() {
        // Hand-built: the NIR client id of the test above, a plain one,
        // each cleaned twice (the second time from what the first left),
        // then more distinct values than are kept.
        let mut v = view(&crate::config::Config::default());
        let phi = "nir:200017511299931";
        let first = v.clean(Kind::MqttClientId, phi).into_owned();
        let again = v.clean(Kind::MqttUsername, phi).into_owned();
        assert_ne!(first, phi);
        assert_eq!(first, again);
        assert_eq!(v.table.stats.phi_masked, 2);
        assert_eq!(v.clean(Kind::MqttClientId, "MON-1"), "MON-1");
        assert_eq!(v.clean(Kind::MqttClientId, "MON-1"), "MON-1");
        assert_eq!(v.table.stats.phi_masked, 2);
        // The plain value is kept; patient data never is.
        assert!(v.cleaned.contains("MON-1"));
        assert!(!v.cleaned.iter().any(|c| c.contains("200017511299931")));
        for i in 0..CLEANED_MAX + 10 {
            v.clean(Kind::MqttTopicPrefix, &format!("ward{i}"));
        }
        assert!(v.cleaned.len() <= CLEANED_MAX);
        assert_eq!(v.clean(Kind::MqttClientId, phi), first);
        assert_eq!(v.table.stats.phi_masked, 3);
    }

    #[test]
    fn hosts_outside_the_home_net_are_not_inventoried() {
        let mut cfg = crate::config::Config::default();
        cfg.asset.home_net = Some("[10.20.0.0/16]".into());
        let mut v = view(&cfg);
        v.put(
            "10.10.5.10".parse().unwrap(),
            Kind::Role,
            "mqtt-broker",
            &seen(),
        );
        v.put(
            "10.20.1.15".parse().unwrap(),
            Kind::Role,
            "mqtt-client",
            &seen(),
        );
        assert_eq!(v.table.len(), 1);
    }

    /// `topic_prefix` as it was written first: the reference of the
    /// byte-wise one.
    fn topic_prefix_by_split(topic: &str) -> Option<&str> {
        let mut end = 0;
        for (i, level) in topic.split('/').take(2).enumerate() {
            if level == "+" || level == "#" || level.is_empty() {
                break;
            }
            end = if i == 0 {
                level.len()
            } else {
                end + 1 + level.len()
            };
        }
        (end > 0).then(|| topic.get(..end)).flatten()
    }

    proptest::proptest! {
        #[test]
        fn topic_prefix_equals_the_split_reference(topic in "[a/+#é]{0,9}") {
            proptest::prop_assert_eq!(topic_prefix(&topic), topic_prefix_by_split(&topic));
        }
    }

    #[test]
    fn topic_prefixes_stop_at_two_levels_and_wildcards() {
        assert_eq!(topic_prefix("ward3/bed12/patient"), Some("ward3/bed12"));
        assert_eq!(topic_prefix("ward3/+/patient"), Some("ward3"));
        assert_eq!(topic_prefix("ward3/#"), Some("ward3"));
        assert_eq!(topic_prefix("hl7"), Some("hl7"));
        assert_eq!(topic_prefix("#"), None);
        assert_eq!(topic_prefix(""), None);
        assert_eq!(topic_prefix("/abs/path"), None);
        assert_eq!(topic_prefix("a//b"), Some("a"));
    }
}
