//! The EVE `asset` record and the inventory file.
//!
//! An `asset` record (our addition to EVE, declared in
//! `tests/tools/validate_eve.py`): `timestamp`, `event_type: "asset"`,
//! `src_ip` (the host), `flow_id` (`new`/`changed`: the flow the facts
//! were first seen in), and `asset`:
//! - `ip`, `event` (`new`: first seen with an identifying fact;
//!   `changed`: later facts, named in `changed`; `snapshot`: everything,
//!   at the end of a run or every `outputs.asset.interval` live),
//!   `first_seen`;
//! - `macs` (`address`, `vendor` from the IEEE registries, `shared` when
//!   several inventoried hosts send from it: a router's, the host is not
//!   on the sensor's segment), `roles`, `services` (`tcp/104`);
//! - `dicom` (`scu_ae_titles`, `scp_ae_titles`,
//!   `implementation_class_uids`, `implementation_version_names`,
//!   `toolkits`), `device` (`manufacturers`, `models`,
//!   `software_versions`, `serial_numbers`, `station_names`,
//!   `institutions`, `modalities`), `mqtt` (`client_ids`, `usernames`,
//!   `versions`, `topic_prefixes`), `hl7` (`sending_applications`,
//!   `sending_facilities`, `receiving_applications`,
//!   `receiving_facilities`), `tls` (`sni`) — each list earliest first,
//!   only when not empty; `truncated` names the lists that hit
//!   `asset.max_values`;
//! - snapshots also: `last_seen`, `traffic` (per `app_proto`:
//!   `client_flows`, `server_flows`, `bytes_sent`, `bytes_received`),
//!   `countries` (`country`, `flows`, `bytes`), `findings` (`kind`,
//!   `count`, `last`), `cleartext_clinical`;
//! - `baseline` when a baseline inventory was given: `status` (`known` or
//!   `new`) and `drift` (see [`super::baseline`]).
//!
//! The inventory file holds the snapshots' `asset` objects: JSON
//! (`{"hosts": [...]}`) or CSV (one row per host, lists joined with `;`,
//! fields quoted as RFC 4180 says).

use std::io::Write;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{json, Value};

use std::sync::{Arc, PoisonError};

use super::baseline::{Baseline, Drift};
use super::detect::Change;
use super::{Asset, Kind, Seen, Table};
use crate::app::AppRecord;
use crate::detect::RuleMeta;
use crate::output::eve::ip_string;
use crate::output::json;
use crate::output::sink::{Block, Tally};
use crate::time::Timestamp;

/// A JSON object written in insertion order: the record reads `ip`,
/// `event`, … as documented. Its members are typed ([`Field`]), so that a
/// record is written without building `serde_json` values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ordered(pub Vec<(&'static str, Field)>);

impl Ordered {
    fn insert(&mut self, k: &'static str, v: Field) {
        self.0.push((k, v));
    }
}

/// Named members as a JSON object, in the order given.
fn members_in_order<S: Serializer, V: Serialize>(
    members: &[(&'static str, V)],
    s: S,
) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(members.len()))?;
    for (k, v) in members {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

impl Serialize for Ordered {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        members_in_order(&self.0, s)
    }
}

impl Ordered {
    /// Appends the object as compact JSON, written by hand: the bytes
    /// [`crate::output::json::write`] writes for it through `Serialize`
    /// (a property test compares them), at a fraction of the cost (every
    /// host's records at the end of a run come through here). Keys and
    /// kind names are ours and need no escaping; values are escaped.
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), json::Error> {
        out.push(b'{');
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            key(out, k);
            v.write_json(out)?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// `"k":` for a key of ours.
fn key(out: &mut Vec<u8>, k: &str) {
    out.push(b'"');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Whether JSON writes `s` as it is, with nothing to escape (no `"`,
/// `\` or control character: what [`json::write_str`] escapes).
pub(crate) fn plain(s: &str) -> bool {
    // Eight bytes at a time, as the escaping looks at them.
    let mut words = s.as_bytes().chunks_exact(8);
    words
        .by_ref()
        .all(|w| <[u8; 8]>::try_from(w).is_ok_and(|w| json::special(u64::from_le_bytes(w)) == 0))
        && !words
            .remainder()
            .iter()
            .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// `"w"` for a word of ours (an event, a kind's name), which has nothing
/// to escape.
fn word(out: &mut Vec<u8>, w: &str) {
    out.push(b'"');
    out.extend_from_slice(w.as_bytes());
    out.push(b'"');
}

/// A value as a JSON string: copied as it is when known [`plain`] (a
/// fact's values are written in many records: looked at once, when the
/// fact was made), else escaped.
fn text<T: Text>(out: &mut Vec<u8>, v: &T) {
    if v.plain() {
        word(out, v.text());
    } else {
        json::write_str(out, v.text());
    }
}

/// `[…]` of `items`, each written by `one`.
fn list<I>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = I>,
    mut one: impl FnMut(&mut Vec<u8>, I),
) {
    out.push(b'[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        one(out, item);
    }
    out.push(b']');
}

/// `[…]` of values ([`text`]).
fn texts<T: Text>(out: &mut Vec<u8>, v: &[T]) {
    list(out, v, text);
}

/// `[…]` of words of ours ([`word`]).
fn words<'s>(out: &mut Vec<u8>, v: impl Iterator<Item = &'s str>) {
    list(out, v, word);
}

/// `[…]` of strings, escaped.
fn strings<'s>(out: &mut Vec<u8>, v: impl Iterator<Item = &'s str>) {
    list(out, v, json::write_str);
}

/// `[…]` of objects each written by `f`.
fn objects<T>(out: &mut Vec<u8>, v: &[T], f: impl Fn(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        f(out, x);
        out.push(b'}');
    }
    out.push(b']');
}

impl Field {
    /// See [`Ordered::write_json`].
    fn write_json(&self, out: &mut Vec<u8>) -> Result<(), json::Error> {
        match self {
            Field::Text(t) => json::write_str(out, t),
            Field::Word(w) => json::write_str(out, w),
            Field::Ip(ip) => {
                out.push(b'"');
                crate::output::eve::push_ip(out, *ip);
                out.push(b'"');
            }
            Field::Time(t) => {
                out.push(b'"');
                t.push_eve(out);
                out.push(b'"');
            }
            Field::Flag(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Field::Names(v) => strings(out, v.iter().copied()),
            Field::Values(v) => strings(out, v.iter().map(|s| &**s)),
            Field::Macs(v) => objects(out, v, |out, m| {
                key(out, "address");
                json::write_str(out, &m.address);
                if m.shared {
                    out.extend_from_slice(b",\"shared\":true");
                }
                if let Some(vendor) = m.vendor {
                    out.extend_from_slice(b",\"vendor\":");
                    json::write_str(out, vendor);
                }
            }),
            Field::Group(g) => {
                out.push(b'{');
                for (i, (name, values)) in g.0.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    key(out, name);
                    strings(out, values.iter().map(|s| &**s));
                }
                out.push(b'}');
            }
            Field::Traffic(v) => objects(out, v, |out, t| {
                key(out, "app_proto");
                json::write_str(out, t.app_proto);
                for (k, n) in [
                    (",\"bytes_received\":", t.bytes_received),
                    (",\"bytes_sent\":", t.bytes_sent),
                    (",\"client_flows\":", t.client_flows),
                    (",\"server_flows\":", t.server_flows),
                ] {
                    out.extend_from_slice(k.as_bytes());
                    json::write_u64(out, n);
                }
            }),
            Field::Countries(v) => objects(out, v, |out, c| {
                key(out, "bytes");
                json::write_u64(out, c.bytes);
                out.extend_from_slice(b",\"country\":");
                json::write_str(out, &c.country);
                out.extend_from_slice(b",\"flows\":");
                json::write_u64(out, c.flows);
            }),
            Field::Findings(v) => objects(out, v, |out, f| {
                key(out, "count");
                json::write_u64(out, f.count);
                out.extend_from_slice(b",\"kind\":");
                json::write_str(out, &f.kind);
                out.extend_from_slice(b",\"last\":\"");
                f.last.push_eve(out);
                out.push(b'"');
            }),
            Field::Json(v) => json::write(out, v)?,
        }
        Ok(())
    }
}

/// One member of an [`Ordered`] record. Objects inside it list their
/// members in byte-wise key order, as the `serde_json` maps that wrote
/// them before did (field order of the structs below).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Field {
    Text(String),
    /// A word of ours (`event`).
    Word(&'static str),
    /// An address, written as text.
    #[serde(serialize_with = "as_text")]
    Ip(std::net::IpAddr),
    /// A time, written as EVE writes times.
    #[serde(serialize_with = "as_eve_time")]
    Time(Timestamp),
    Flag(bool),
    /// Kind names (`changed`, `truncated`).
    Names(Vec<&'static str>),
    /// Fact values, earliest first.
    Values(Vec<Box<str>>),
    Macs(Vec<MacEntry>),
    /// A group's lists (`dicom`, `device`…).
    Group(Group),
    Traffic(Vec<TrafficEntry>),
    Countries(Vec<CountryEntry>),
    Findings(Vec<FindingEntry>),
    /// The baseline comparison ([`Comparison::to_value`]).
    Json(Value),
}

/// A `macs` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MacEntry {
    address: Box<str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    shared: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    vendor: Option<&'static str>,
}

/// A group's non-empty lists, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group(Vec<(&'static str, Vec<Box<str>>)>);

impl Serialize for Group {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        members_in_order(&self.0, s)
    }
}

/// A `traffic` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrafficEntry {
    app_proto: &'static str,
    bytes_received: u64,
    bytes_sent: u64,
    client_flows: u64,
    server_flows: u64,
}

/// A `countries` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CountryEntry {
    bytes: u64,
    country: String,
    flows: u64,
}

/// A `findings` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FindingEntry {
    count: u64,
    kind: Box<str>,
    #[serde(serialize_with = "as_eve_time")]
    last: Timestamp,
}

fn ts(t: Timestamp) -> String {
    let mut s = String::with_capacity(32);
    t.write_eve(&mut s);
    s
}

/// `Serialize` of [`Field::Time`]: the text [`Field::write_json`] writes.
fn as_eve_time<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&ts(*t))
}

/// `Serialize` of [`Field::Ip`].
fn as_text<S: Serializer>(ip: &std::net::IpAddr, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&ip_string(*ip))
}

/// Groups of the record and the kinds in each, with the name each list
/// has in its group.
pub(crate) const GROUPS: &[(&str, &[(Kind, &str)])] = &[
    (
        "dicom",
        &[
            (Kind::DicomScuAe, "scu_ae_titles"),
            (Kind::DicomScpAe, "scp_ae_titles"),
            (Kind::ImplementationClassUid, "implementation_class_uids"),
            (Kind::ImplementationVersion, "implementation_version_names"),
            (Kind::Toolkit, "toolkits"),
        ],
    ),
    (
        "device",
        &[
            (Kind::Manufacturer, "manufacturers"),
            (Kind::Model, "models"),
            (Kind::SoftwareVersion, "software_versions"),
            (Kind::SerialNumber, "serial_numbers"),
            (Kind::StationName, "station_names"),
            (Kind::Institution, "institutions"),
            (Kind::Modality, "modalities"),
        ],
    ),
    (
        "mqtt",
        &[
            (Kind::MqttClientId, "client_ids"),
            (Kind::MqttUsername, "usernames"),
            (Kind::MqttVersion, "versions"),
            (Kind::MqttTopicPrefix, "topic_prefixes"),
        ],
    ),
    (
        "hl7",
        &[
            (Kind::Hl7SendingApplication, "sending_applications"),
            (Kind::Hl7SendingFacility, "sending_facilities"),
            (Kind::Hl7ReceivingApplication, "receiving_applications"),
            (Kind::Hl7ReceivingFacility, "receiving_facilities"),
        ],
    ),
    ("tls", &[(Kind::TlsSni, "sni")]),
];

/// What the records say of one MAC address of the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mac {
    /// Hosts sending from it (several: a router's).
    hosts: usize,
    /// Its IEEE registries' vendor.
    vendor: Option<&'static str>,
    /// The vendor is [`plain`].
    vendor_plain: bool,
}

impl Mac {
    fn shared(self) -> bool {
        self.hosts > 1
    }
}

/// What the records say of each MAC address of the table (ahash: looked
/// up once per MAC of every record).
pub type Macs = ahash::AHashMap<String, Mac>;

/// The MAC addresses of the table, each with its hosts and vendor: looked
/// up once per address, not once per record that lists it.
pub fn mac_hosts(t: &Table) -> Macs {
    let mut m = Macs::new();
    for a in t.hosts.values() {
        for f in a.facts.iter().filter(|f| f.kind == Kind::Mac) {
            // Many hosts behind one router share its MAC: a key is made
            // once per address, not once per host.
            if let Some(mac) = m.get_mut(&*f.value) {
                mac.hosts += 1;
                continue;
            }
            let vendor = super::oui::parse(&f.value).and_then(super::oui::vendor);
            let vendor_plain = vendor.is_some_and(plain);
            m.insert(
                f.value.to_string(),
                Mac {
                    hosts: 1,
                    vendor,
                    vendor_plain,
                },
            );
        }
    }
    m
}

/// The values of `kind` first seen no later than `upto`, earliest first.
fn values(a: &Asset, kind: Kind, upto: Option<Seen>) -> Vec<&str> {
    Facts::of(a, upto).values(kind)
}

/// A host's facts first seen no later than a time, sorted by kind, then as
/// they were first seen: each kind's values are one run, found by binary
/// search (one sort per record, not one per kind).
struct Facts<'a>(Vec<&'a super::Fact>);

impl<'a> Facts<'a> {
    fn of(a: &'a Asset, upto: Option<Seen>) -> Facts<'a> {
        let mut v: Vec<&super::Fact> = a
            .facts
            .iter()
            .filter(|f| upto.is_none_or(|u| f.first <= u))
            .collect();
        v.sort_unstable_by(|x, y| (x.kind, x.first, &x.value).cmp(&(y.kind, y.first, &y.value)));
        Facts(v)
    }

    fn values(&self, kind: Kind) -> Vec<&'a str> {
        let start = self.0.partition_point(|f| f.kind < kind);
        self.0[start..]
            .iter()
            .take_while(|f| f.kind == kind)
            .map(|f| &*f.value)
            .collect()
    }
}

/// Values sorted by kind, then as first seen: a host's facts
/// ([`Facts`]) or a change's copy of them ([`Change::facts`]).
pub(crate) trait Runs {
    type Value: Text;
    fn all(&self) -> &[Self::Value];
}

/// A value of a [`Runs`], and its kind.
pub(crate) trait Text {
    fn text(&self) -> &str;
    fn kind(&self) -> Kind;
    /// Known to need no escaping ([`plain`]); `false`: not known.
    fn plain(&self) -> bool {
        false
    }
}

impl Text for &super::Fact {
    fn text(&self) -> &str {
        &self.value
    }
    fn kind(&self) -> Kind {
        self.kind
    }
    fn plain(&self) -> bool {
        self.plain
    }
}

impl Text for (Kind, Arc<str>) {
    fn text(&self) -> &str {
        &self.1
    }
    fn kind(&self) -> Kind {
        self.0
    }
}

impl<'a> Runs for Facts<'a> {
    type Value = &'a super::Fact;
    fn all(&self) -> &[&'a super::Fact] {
        &self.0
    }
}

impl Runs for [(Kind, Arc<str>)] {
    type Value = (Kind, Arc<str>);
    fn all(&self) -> &[(Kind, Arc<str>)] {
        self
    }
}

/// Where each kind's values are in a [`Runs`]: found in one pass, not
/// by a search per kind (a record looks at every kind).
#[derive(Clone, Copy)]
pub(crate) struct Spans([(u32, u32); Kind::ALL.len()]);

impl Spans {
    fn of<T: Text>(values: &[T]) -> Spans {
        let mut s = [(0, 0); Kind::ALL.len()];
        for (i, v) in values.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            let span = &mut s[v.kind() as usize];
            if span.1 == 0 {
                span.0 = i;
            }
            span.1 = i.saturating_add(1);
        }
        Spans(s)
    }
}

/// What the records say of a host's MAC addresses: the table's
/// [`Macs`], or a change's list (one per MAC value, in order).
#[derive(Clone, Copy)]
pub(crate) enum MacInfo<'a> {
    Table(&'a Macs),
    Listed(&'a [Mac]),
}

impl MacInfo<'_> {
    /// The `i`-th MAC value, `address`.
    fn get(self, i: usize, address: &str) -> Mac {
        match self {
            MacInfo::Table(m) => m.get(address).copied().unwrap_or_default(),
            MacInfo::Listed(l) => l.get(i).copied().unwrap_or_default(),
        }
    }
}

/// Groups and their kinds with their names.
type Groups = Vec<(&'static str, Vec<(Kind, &'static str)>)>;

/// The groups with their lists sorted by name, as the record writes them.
fn groups_by_name() -> &'static Groups {
    static SORTED: std::sync::OnceLock<Groups> = std::sync::OnceLock::new();
    SORTED.get_or_init(|| {
        GROUPS
            .iter()
            .map(|(group, kinds)| {
                let mut k = kinds.to_vec();
                k.sort_by_key(|(_, name)| *name);
                (*group, k)
            })
            .collect()
    })
}

/// What an `asset` object says, borrowed from the table (or a change):
/// written straight as JSON ([`Body::write_json`], every record of a run
/// goes through it) or made into an [`Ordered`] ([`Body::ordered`], the
/// reference, and what rules' alerts and the inventory carry). The
/// members, in order: `ip`, `event`, `changed`, `first_seen`,
/// `last_seen` (full), `macs`, `roles`, `services`, the groups, each
/// with its non-empty lists by name, `truncated`, then with `full` the
/// host's counters, and `baseline`.
pub(crate) struct Body<'a, R: Runs + ?Sized> {
    pub ip: std::net::IpAddr,
    /// `event` (`None`: the inventory's object, which has none).
    pub event: Option<&'static str>,
    /// `changed`: kinds, sorted.
    pub changed: Option<&'a [Kind]>,
    pub first_seen: Timestamp,
    pub facts: &'a R,
    pub macs: MacInfo<'a>,
    /// Bits of the kinds whose lists were cut.
    pub truncated: u32,
    /// A snapshot's host, whose counters are written.
    pub full: Option<&'a Asset>,
    pub baseline: Option<&'a Value>,
}

impl<R: Runs + ?Sized> Body<'_, R> {
    /// The values of `kind`, earliest first. `spans`: [`Spans::of`]
    /// `self.facts`.
    fn run(&self, spans: &Spans, kind: Kind) -> &[R::Value] {
        let (start, end) = spans.0[kind as usize];
        self.facts
            .all()
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    fn macs(&self, spans: &Spans) -> Vec<MacEntry> {
        self.run(spans, Kind::Mac)
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let mac = self.macs.get(i, v.text());
                MacEntry {
                    address: v.text().into(),
                    shared: mac.shared(),
                    vendor: mac.vendor,
                }
            })
            .collect()
    }

    fn values(&self, spans: &Spans, kind: Kind) -> Vec<Box<str>> {
        self.run(spans, kind)
            .iter()
            .map(|v| Box::from(v.text()))
            .collect()
    }

    fn truncated(&self) -> impl Iterator<Item = &'static str> + '_ {
        Kind::ALL
            .into_iter()
            .filter(|k| self.truncated & k.bit() != 0)
            .map(Kind::name)
    }

    /// The object as an [`Ordered`].
    pub fn ordered(&self) -> Ordered {
        let spans = Spans::of(self.facts.all());
        let mut o = Ordered(Vec::with_capacity(16));
        o.insert("ip", Field::Ip(self.ip));
        if let Some(e) = self.event {
            o.insert("event", Field::Word(e));
        }
        if let Some(k) = self.changed {
            o.insert(
                "changed",
                Field::Names(k.iter().copied().map(Kind::name).collect()),
            );
        }
        o.insert("first_seen", Field::Time(self.first_seen));
        if let Some(a) = self.full {
            o.insert("last_seen", Field::Time(a.last));
        }
        let m = self.macs(&spans);
        if !m.is_empty() {
            o.insert("macs", Field::Macs(m));
        }
        for (kind, name) in [(Kind::Role, "roles"), (Kind::Service, "services")] {
            let v = self.values(&spans, kind);
            if !v.is_empty() {
                o.insert(name, Field::Values(v));
            }
        }
        for (group, kinds) in groups_by_name() {
            let g: Vec<(&'static str, Vec<Box<str>>)> = kinds
                .iter()
                .map(|(kind, name)| (*name, self.values(&spans, *kind)))
                .filter(|(_, v)| !v.is_empty())
                .collect();
            if !g.is_empty() {
                o.insert(group, Field::Group(Group(g)));
            }
        }
        let truncated: Vec<&str> = self.truncated().collect();
        if !truncated.is_empty() {
            o.insert("truncated", Field::Names(truncated));
        }
        if let Some(a) = self.full {
            let (traffic, countries, findings) = counters(a);
            o.insert("traffic", Field::Traffic(traffic));
            if !countries.is_empty() {
                o.insert("countries", Field::Countries(countries));
            }
            if !findings.is_empty() {
                o.insert("findings", Field::Findings(findings));
            }
            o.insert("cleartext_clinical", Field::Flag(a.cleartext_clinical));
        }
        if let Some(b) = self.baseline {
            o.insert("baseline", Field::Json(b.clone()));
        }
        o
    }

    /// Appends the object as compact JSON: the bytes of
    /// [`Body::ordered`]'s [`Ordered::write_json`] (a property test
    /// compares them), without a copy of any value.
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), json::Error> {
        let spans = Spans::of(self.facts.all());
        out.extend_from_slice(b"{\"ip\":\"");
        crate::output::eve::push_ip(out, self.ip);
        out.push(b'"');
        if let Some(e) = self.event {
            out.extend_from_slice(b",\"event\":");
            word(out, e);
        }
        if let Some(k) = self.changed {
            out.extend_from_slice(b",\"changed\":");
            words(out, k.iter().copied().map(Kind::name));
        }
        out.extend_from_slice(b",\"first_seen\":\"");
        self.first_seen.push_eve(out);
        out.push(b'"');
        if let Some(a) = self.full {
            out.extend_from_slice(b",\"last_seen\":\"");
            a.last.push_eve(out);
            out.push(b'"');
        }
        let macs = self.run(&spans, Kind::Mac);
        if !macs.is_empty() {
            out.extend_from_slice(b",\"macs\":[");
            for (i, v) in macs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let mac = self.macs.get(i, v.text());
                out.extend_from_slice(b"{\"address\":");
                text(out, v);
                if mac.shared() {
                    out.extend_from_slice(b",\"shared\":true");
                }
                if let Some(vendor) = mac.vendor {
                    out.extend_from_slice(b",\"vendor\":");
                    if mac.vendor_plain {
                        word(out, vendor);
                    } else {
                        json::write_str(out, vendor);
                    }
                }
                out.push(b'}');
            }
            out.push(b']');
        }
        for (kind, name) in [(Kind::Role, "roles"), (Kind::Service, "services")] {
            let v = self.run(&spans, kind);
            if !v.is_empty() {
                out.push(b',');
                key(out, name);
                texts(out, v);
            }
        }
        for (group, kinds) in groups_by_name() {
            let mut first = true;
            for (kind, name) in kinds {
                let v = self.run(&spans, *kind);
                if v.is_empty() {
                    continue;
                }
                if first {
                    out.push(b',');
                    key(out, group);
                    out.push(b'{');
                    first = false;
                } else {
                    out.push(b',');
                }
                key(out, name);
                texts(out, v);
            }
            if !first {
                out.push(b'}');
            }
        }
        if self.truncated != 0 {
            out.extend_from_slice(b",\"truncated\":");
            words(out, self.truncated());
        }
        if let Some(a) = self.full {
            // Snapshots only, one a host: their counters go through the
            // `Field`s the reference writes.
            let (traffic, countries, findings) = counters(a);
            out.extend_from_slice(b",\"traffic\":");
            Field::Traffic(traffic).write_json(out)?;
            if !countries.is_empty() {
                out.extend_from_slice(b",\"countries\":");
                Field::Countries(countries).write_json(out)?;
            }
            if !findings.is_empty() {
                out.extend_from_slice(b",\"findings\":");
                Field::Findings(findings).write_json(out)?;
            }
            out.extend_from_slice(if a.cleartext_clinical {
                b",\"cleartext_clinical\":true"
            } else {
                b",\"cleartext_clinical\":false"
            });
        }
        if let Some(b) = self.baseline {
            out.extend_from_slice(b",\"baseline\":");
            json::write(out, b)?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// A snapshot's `traffic`, `countries` and `findings`.
fn counters(a: &Asset) -> (Vec<TrafficEntry>, Vec<CountryEntry>, Vec<FindingEntry>) {
    let traffic = a
        .traffic
        .iter()
        .map(|(p, t)| TrafficEntry {
            app_proto: p,
            bytes_received: t.bytes_received,
            bytes_sent: t.bytes_sent,
            client_flows: t.client_flows,
            server_flows: t.server_flows,
        })
        .collect();
    let countries = a
        .countries
        .iter()
        .map(|(c, n)| CountryEntry {
            bytes: n.bytes,
            country: String::from_utf8_lossy(c).into_owned(),
            flows: n.flows,
        })
        .collect();
    let findings = a
        .findings
        .iter()
        .map(|(k, f)| FindingEntry {
            count: f.count,
            kind: k.clone(),
            last: f.last,
        })
        .collect();
    (traffic, countries, findings)
}

/// The inventory's object of `a`: `ip`, its facts and counters.
pub fn asset_object(a: &Asset, macs: &Macs, baseline: Option<&Baseline>) -> Ordered {
    let facts = Facts::of(a, None);
    let baseline = baseline.map(|b| b.compare(a, None).to_value());
    Body {
        ip: a.ip,
        event: None,
        changed: None,
        first_seen: a.first.ts,
        facts: &facts,
        macs: MacInfo::Table(macs),
        truncated: a.truncated,
        full: Some(a),
        baseline: baseline.as_ref(),
    }
    .ordered()
}

/// Appends the EVE `asset` record of host `a` at `at`: its `asset` object
/// `body`. False: it could not be written (nothing was).
fn write_record<R: Runs + ?Sized>(
    out: &mut Vec<u8>,
    at: Timestamp,
    a: &Asset,
    flow: Option<u64>,
    body: &Body<'_, R>,
) -> bool {
    let start = out.len();
    out.extend_from_slice(b"{\"timestamp\":\"");
    at.push_eve(out);
    out.push(b'"');
    if let Some(id) = flow {
        out.extend_from_slice(b",\"flow_id\":");
        json::write_u64(out, id);
    }
    out.extend_from_slice(b",\"event_type\":\"asset\",\"src_ip\":\"");
    crate::output::eve::push_ip(out, a.ip);
    out.extend_from_slice(b"\",\"asset\":");
    if body.write_json(out).is_ok() {
        out.extend_from_slice(b"}\n");
        true
    } else {
        out.truncate(start);
        false
    }
}

/// What evaluates the rules of the `asset` hook on a change: the rules
/// that fired.
/// ([`AppRecord::Asset`]).
pub type ChangeRules<'a> = &'a mut dyn FnMut(&AppRecord) -> Vec<Arc<RuleMeta>>;

/// Hosts whose records are made at a time ([`by_batches`]); the rules are
/// evaluated on a batch's changes in order once it is made.
const BATCH: usize = 1024;

/// Made batches each thread of [`by_batches`] may hold ahead of the one
/// being handed on.
const AHEAD: usize = 2;

/// Threads [`by_batches`] starts at most, whatever it is asked for: each
/// holds up to [`AHEAD`] + 1 batches of records, so the memory of the end
/// phase must not grow with the machine's cores (the hand-on, one batch
/// at a time in order, is the serial part past a few threads anyway).
const MAX_THREADS: usize = 4;

/// The batches one thread of [`by_batches`] makes, in order; whoever is
/// to make the next takes it (the thread, or the caller if the thread
/// never started).
type Deal<'a, H> = std::sync::Mutex<std::collections::VecDeque<&'a mut [H]>>;

/// The next batch of `deal` to make.
fn next_batch<'a, H>(deal: &Deal<'a, H>) -> Option<&'a mut [H]> {
    deal.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .pop_front()
}

/// Runs `make` over `hosts` (in address order) a batch of [`BATCH`] at a
/// time and gives `done` each batch's hosts with what was made of them,
/// in order. With `threads` > 1 the batches are dealt in turn to that
/// many threads started once (not one per batch: a thread each time, and
/// batches handed on one after another, left the second core idle half
/// the time at the end of a two-worker run), each making its batches
/// ahead of this thread by at most [`AHEAD`]: the output is the same as
/// one thread's, and at most [`MAX_THREADS`] × ([`AHEAD`] + 1) batches are
/// held.
fn by_batches<H: Send, T: Send>(
    hosts: &mut [H],
    threads: usize,
    make: impl Fn(&mut [H], usize) -> T + Sync,
    mut done: impl FnMut(&mut [H], Vec<T>),
) {
    let batches = hosts.len().div_ceil(BATCH);
    let n = threads.min(batches).min(MAX_THREADS);
    if n <= 1 {
        for batch in hosts.chunks_mut(BATCH) {
            let made = make(batch, 0);
            done(batch, vec![made]);
        }
        return;
    }
    let mut deals: Vec<Deal<'_, H>> = (0..n).map(|_| Deal::default()).collect();
    for (i, batch) in hosts.chunks_mut(BATCH).enumerate() {
        if let Some(d) = deals.get_mut(i % n) {
            d.get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .push_back(batch);
        }
    }
    let make = &make;
    std::thread::scope(|s| {
        let queues: Vec<_> = deals
            .iter()
            .map(|deal| {
                let (tx, rx) = crossbeam_channel::bounded::<(&mut [H], T)>(AHEAD);
                // A thread the system will not start leaves its batches
                // to this one (its queue is then closed and empty).
                let _ = std::thread::Builder::new().spawn_scoped(s, move || {
                    while let Some(batch) = next_batch(deal) {
                        let made = make(batch, 0);
                        if tx.send((batch, made)).is_err() {
                            return;
                        }
                    }
                });
                rx
            })
            .collect();
        for i in 0..batches {
            let (Some(rx), Some(deal)) = (queues.get(i % n), deals.get(i % n)) else {
                continue;
            };
            let (batch, made) = match rx.recv() {
                Ok(m) => m,
                Err(_) => match next_batch(deal) {
                    Some(batch) => {
                        let made = make(batch, 0);
                        (batch, made)
                    }
                    None => continue,
                },
            };
            done(batch, vec![made]);
        }
    });
}

/// A run's records (`lines` of them), and the changes among them the
/// rules are still to see.
struct Made {
    out: Vec<u8>,
    lines: u64,
    pending: Vec<Pending>,
}

/// A change made, for the rules: its alerts go at `at` in the run's
/// bytes, just before its record; `host` is its host's place in the batch.
struct Pending {
    at: usize,
    host: usize,
    change: Box<Change>,
    /// The baseline differences it brings, each evaluated on its own
    /// (none: evaluated once without).
    brought: Vec<Drift>,
}

/// Writes a `new` or `changed` record for each group of facts not written
/// yet, host by host in address order, groups in the order they were
/// seen, and marks them written. A group is a run of facts first seen in
/// one flow with no other flow's fact first seen in between (a DICOM
/// association's AE title, implementation class and toolkit, with the
/// role and MAC its flow showed); its record has the host's facts as of
/// the group's last one. Facts seen before a host's first identifying
/// fact are written with it. Up to `threads` threads make the records
/// ([`by_batches`]).
///
/// With `rules`, each record is a [`Change`] the rules are evaluated on
/// (once per baseline difference it brings), in the records' order;
/// their alerts are written just before it, and their findings counted
/// on the host. Returns the number of alerts.
pub fn write_changes(
    t: &mut Table,
    baseline: Option<&Baseline>,
    blocks: &mut Blocks<'_>,
    mut rules: Option<ChangeRules<'_>>,
    threads: usize,
) -> u64 {
    let macs = mac_hosts(t);
    let evaluated = rules.is_some();
    let mut alerts = 0;
    let mut hosts = t.sorted_mut();
    let make = |run: &mut [&mut Asset], start: usize| {
        // Each fact not written yet is in about one record, and in every
        // later record of its host: sized from them, the run's buffer is
        // not copied as it grows (one to a few MB at the end of a run).
        let unwritten: usize = run
            .iter()
            .map(|a| a.facts.iter().filter(|f| !f.reported).count())
            .sum();
        let mut m = Made {
            out: Vec::with_capacity(unwritten.saturating_mul(CHANGE_GUESS).min(CHANGES_MAX)),
            lines: 0,
            pending: Vec::new(),
        };
        for (i, a) in run.iter_mut().enumerate() {
            host_changes(a, start + i, &macs, baseline, evaluated, &mut m);
        }
        m
    };
    by_batches(&mut hosts, threads, make, |batch, made| {
        for m in made {
            let mut tally = Tally {
                lines: m.lines,
                alerts: [0; 5],
            };
            let Some(eval) = rules.as_deref_mut() else {
                blocks.hand(m.out, &tally);
                continue;
            };
            // Each change's alerts, with where they go.
            let mut fired: Vec<(usize, Vec<u8>)> = Vec::new();
            for p in m.pending {
                let mut lines = Vec::new();
                if let Some(a) = batch.get_mut(p.host) {
                    alerts += fire(a, p.change, p.brought, eval, &mut lines, &mut tally);
                }
                if !lines.is_empty() {
                    fired.push((p.at, lines));
                }
            }
            if fired.is_empty() {
                blocks.hand(m.out, &tally);
                continue;
            }
            let mut out =
                Vec::with_capacity(m.out.len() + fired.iter().map(|f| f.1.len()).sum::<usize>());
            let mut from = 0;
            for (at, lines) in fired {
                out.extend_from_slice(m.out.get(from..at).unwrap_or_default());
                out.extend_from_slice(&lines);
                from = at;
            }
            out.extend_from_slice(m.out.get(from..).unwrap_or_default());
            blocks.hand(out, &tally);
        }
    });
    alerts
}
/// The `new` and `changed` records of one host (`host`: its place in
/// the batch) into `m`, and with `evaluated` the changes for the rules.
fn host_changes(
    a: &mut Asset,
    host: usize,
    macs: &Macs,
    baseline: Option<&Baseline>,
    evaluated: bool,
    m: &mut Made,
) {
    let mut pending: Vec<usize> = (0..a.facts.len())
        .filter(|&i| !a.facts[i].reported)
        .collect();
    if pending.is_empty() {
        return;
    }
    pending.sort_by(|&x, &y| {
        let (f, g) = (&a.facts[x], &a.facts[y]);
        (f.first, f.kind, &f.value).cmp(&(g.first, g.kind, &g.value))
    });
    let mut announced = a.facts.iter().any(|f| f.reported && f.kind.identifying());
    // The host's facts as its records list them, sorted once: each
    // record takes those first seen by its time.
    let mut by_kind: Vec<usize> = (0..a.facts.len()).collect();
    by_kind.sort_unstable_by(|&x, &y| {
        let (f, g) = (&a.facts[x], &a.facts[y]);
        (f.kind, f.first, &f.value).cmp(&(g.kind, g.first, &g.value))
    });
    // What the records say of each of the host's MACs, in that order,
    // looked up once for all its records: a record lists the first of
    // them (those first seen by its time).
    let host_macs: Vec<Mac> = by_kind
        .iter()
        .filter_map(|&k| a.facts.get(k))
        .filter(|f| f.kind == Kind::Mac)
        .map(|f| macs.get(&*f.value).copied().unwrap_or_default())
        .collect();
    let mut i = 0;
    while i < pending.len() {
        let flow = a.facts[pending[i]].first.flow;
        let mut j = i;
        while j < pending.len() && a.facts[pending[j]].first.flow == flow {
            j += 1;
        }
        let group = &pending[i..j];
        let last = a.facts[pending[j - 1]].first;
        let identifying = group.iter().any(|&k| a.facts[k].kind.identifying());
        // The differences from the baseline written before this group,
        // to tell the rules only what it brings.
        let before = match (evaluated, baseline) {
            (true, Some(b)) => b.compare_facts(a, |f| f.reported).drift,
            _ => Vec::new(),
        };
        for &k in group {
            a.facts[k].reported = true;
        }
        i = j;
        if !(announced || identifying) {
            continue;
        }
        // The kinds it adds, sorted and once each (kinds are few: a bit
        // each, on the stack).
        let bits = group.iter().fold(0u32, |b, &k| b | a.facts[k].kind.bit());
        let mut kinds = [Kind::Mac; Kind::ALL.len()];
        let mut n = 0;
        for k in Kind::ALL.into_iter().filter(|k| bits & k.bit() != 0) {
            if let Some(slot) = kinds.get_mut(n) {
                *slot = k;
                n += 1;
            }
        }
        let kinds = kinds.get(..n).unwrap_or_default();
        let mut facts = Facts(Vec::with_capacity(by_kind.len()));
        facts.0.extend(
            by_kind
                .iter()
                .filter_map(|&k| a.facts.get(k))
                .filter(|f| f.first <= last),
        );
        // The record's MACs are the host's first ones (by first seen).
        let macs_listed = facts.0.iter().filter(|f| f.kind == Kind::Mac).count();
        let compared = baseline.map(|b| b.compare(a, Some(last)).to_value());
        let body = Body {
            ip: a.ip,
            event: Some(if announced { "changed" } else { "new" }),
            changed: announced.then_some(kinds),
            first_seen: a.first.ts,
            facts: &facts,
            macs: MacInfo::Listed(&host_macs),
            truncated: a.truncated,
            full: None,
            baseline: compared.as_ref(),
        };
        let at = m.out.len();
        if write_record(&mut m.out, last.ts, a, Some(flow), &body) {
            m.lines += 1;
        }
        if evaluated {
            // The record is written as made: the rules' alerts go before
            // it, and `Change::set_drift` rewrites only the rules' copy.
            let now = baseline.map(|b| b.compare_facts(a, |f| f.reported));
            let brought: Vec<Drift> = now
                .as_ref()
                .map(|c| c.drift.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|d| !before.contains(d))
                .collect();
            let change = Box::new(Change {
                ip: a.ip,
                seen: last,
                new: !announced,
                changed: kinds.to_vec(),
                facts: facts
                    .0
                    .iter()
                    .map(|f| (f.kind, Arc::clone(&f.value)))
                    .collect(),
                known: now.map(|c| c.known),
                drift: None,
                first_seen: a.first.ts,
                macs: host_macs.get(..macs_listed).unwrap_or_default().to_vec(),
                truncated: a.truncated,
                baseline: compared,
            });
            m.pending.push(Pending {
                at,
                host,
                change,
                brought,
            });
        }
        announced = true;
    }
}

/// Evaluates the rules on `change` once per baseline difference it brings
/// (`brought`), writes their alerts (the record's `baseline.drift` the
/// one difference; counted in `tally`), counts their findings on `a`.
/// Returns the number of alerts.
fn fire(
    a: &mut Asset,
    change: Box<Change>,
    brought: Vec<Drift>,
    eval: ChangeRules<'_>,
    out: &mut Vec<u8>,
    tally: &mut Tally,
) -> u64 {
    let mut rec = AppRecord::Asset(change);
    let mut n = 0;
    let once = brought.is_empty().then_some(None);
    for drift in brought.into_iter().map(Some).chain(once) {
        if let AppRecord::Asset(c) = &mut rec {
            c.set_drift(drift);
        }
        let fired = eval(&rec);
        let AppRecord::Asset(c) = &rec else {
            continue;
        };
        for rule in fired {
            if write_alert(out, c, &rule) {
                tally.lines += 1;
                tally.alert(rule.severity);
            }
            n += 1;
            for (k, kind) in &rule.metadata {
                if k == "finding" {
                    let f = a.findings.entry(kind.as_str().into()).or_default();
                    f.count += 1;
                    f.last = f.last.max(c.seen.ts);
                }
            }
        }
    }
    n
}

/// An EVE `alert` of a rule on the `asset` hook: the change's time and
/// flow, `src_ip` the host, `alert` as for any alert, and the record's
/// `asset` object with the difference the rule saw. False: it could not
/// be written (nothing was).
fn write_alert(out: &mut Vec<u8>, c: &Change, rule: &RuleMeta) -> bool {
    #[derive(serde::Serialize)]
    struct Record<'a> {
        timestamp: String,
        flow_id: u64,
        event_type: &'static str,
        src_ip: String,
        alert: crate::output::alert::RuleObject<'a>,
        asset: &'a Ordered,
    }
    let r = Record {
        timestamp: ts(c.seen.ts),
        flow_id: c.seen.flow,
        event_type: "alert",
        src_ip: ip_string(c.ip),
        alert: crate::output::alert::RuleObject::of(rule),
        asset: &c.record(),
    };
    let start = out.len();
    if crate::output::json::write(out, &r).is_ok() {
        out.push(b'\n');
        true
    } else {
        out.truncate(start);
        false
    }
}

/// Records of many hosts handed on a block at a time ([`Blocks::to`]), so
/// that the EVE writer writes the first while the last are made, or kept
/// whole ([`Blocks::kept`]); each block with its lines and alerts
/// counted as they were written ([`Tally`]).
pub struct Blocks<'a> {
    buf: Vec<u8>,
    /// What was added to `buf`.
    tally: Tally,
    emit: Option<&'a mut dyn FnMut(Block)>,
}

impl<'a> Blocks<'a> {
    /// About this many bytes a block.
    pub const SIZE: usize = 256 * 1024;

    /// Hands `emit` each block as it fills, the rest at [`Blocks::finish`].
    pub fn to(emit: &'a mut dyn FnMut(Block)) -> Blocks<'a> {
        Blocks {
            buf: Vec::new(),
            tally: Tally::default(),
            emit: Some(emit),
        }
    }

    /// Appends everything to `buf`, given back by [`Blocks::into_kept`].
    pub fn kept(buf: Vec<u8>) -> Blocks<'static> {
        Blocks {
            buf,
            tally: Tally::default(),
            emit: None,
        }
    }

    /// What [`Blocks::kept`] held, and the tally of what was added to it.
    pub fn into_kept(self) -> (Vec<u8>, Tally) {
        (self.buf, self.tally)
    }

    /// Called between hosts: hands the block on once it is full.
    fn spill(&mut self) {
        if self.buf.len() >= Self::SIZE {
            if let Some(emit) = self.emit.as_mut() {
                emit(Block {
                    bytes: std::mem::take(&mut self.buf),
                    tally: std::mem::take(&mut self.tally),
                });
            }
        }
    }

    /// Takes `block`, tallied `tally`, after what is held, in order.
    fn hand(&mut self, block: Vec<u8>, tally: &Tally) {
        if self.buf.is_empty() {
            self.buf = block;
        } else {
            self.buf.extend_from_slice(&block);
        }
        self.tally.add(tally);
        self.spill();
    }

    /// Hands on what is left.
    pub fn finish(mut self) {
        if let Some(emit) = self.emit.as_mut() {
            if !self.buf.is_empty() {
                emit(Block {
                    bytes: std::mem::take(&mut self.buf),
                    tally: std::mem::take(&mut self.tally),
                });
            }
        }
    }
}

/// Bytes a host's snapshot takes, about (a run's buffer starts that
/// large).
const RECORD_GUESS: usize = 1024;

/// Bytes of change records per fact not written yet, about (MQTT clients
/// with three to ten facts: 197).
const CHANGE_GUESS: usize = 256;

/// The most a run's change buffer starts with (beyond, it grows).
const CHANGES_MAX: usize = 16 << 20;

/// Writes a `snapshot` record of every host at `now`, in address order,
/// made by up to `threads` threads ([`by_batches`]).
pub fn write_snapshots(
    t: &Table,
    now: Timestamp,
    baseline: Option<&Baseline>,
    threads: usize,
    out: &mut Blocks<'_>,
) {
    let macs = mac_hosts(t);
    let make = |run: &mut [&Asset], _: usize| {
        let mut made = Vec::with_capacity(run.len() * RECORD_GUESS);
        let mut lines = 0;
        for a in run.iter() {
            let facts = Facts::of(a, None);
            let compared = baseline.map(|b| b.compare(a, None).to_value());
            let body = Body {
                ip: a.ip,
                event: Some("snapshot"),
                changed: None,
                first_seen: a.first.ts,
                facts: &facts,
                macs: MacInfo::Table(&macs),
                truncated: a.truncated,
                full: Some(a),
                baseline: compared.as_ref(),
            };
            if write_record(&mut made, now, a, None, &body) {
                lines += 1;
            }
        }
        (made, lines)
    };
    by_batches(&mut t.sorted(), threads, make, |_, made| {
        for (m, lines) in made {
            out.hand(
                m,
                &Tally {
                    lines,
                    alerts: [0; 5],
                },
            );
        }
    });
}

/// Columns of the CSV inventory.
pub const CSV_COLUMNS: &[&str] = &[
    "ip",
    "first_seen",
    "last_seen",
    "mac",
    "mac_vendor",
    "roles",
    "services",
    "dicom_scu_ae_titles",
    "dicom_scp_ae_titles",
    "implementation_class_uids",
    "implementation_version_names",
    "toolkits",
    "manufacturers",
    "models",
    "software_versions",
    "serial_numbers",
    "station_names",
    "institutions",
    "modalities",
    "mqtt_client_ids",
    "mqtt_usernames",
    "mqtt_versions",
    "mqtt_topic_prefixes",
    "hl7_sending_applications",
    "hl7_sending_facilities",
    "hl7_receiving_applications",
    "hl7_receiving_facilities",
    "tls_sni",
    "countries",
    "findings",
    "cleartext_clinical",
];

/// One CSV field, quoted when it has to be (RFC 4180 §2).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The CSV row of `a`.
pub fn csv_row(a: &Asset, macs: &Macs) -> Vec<String> {
    let mut row = Vec::with_capacity(CSV_COLUMNS.len());
    let mac_list = values(a, Kind::Mac, None);
    for col in CSV_COLUMNS {
        let v = match *col {
            "ip" => ip_string(a.ip),
            "first_seen" => ts(a.first.ts),
            "last_seen" => ts(a.last),
            "mac" => mac_list.join(";"),
            "mac_vendor" => mac_list
                .iter()
                .map(|m| {
                    let mac = macs.get(*m).copied().unwrap_or_default();
                    let v = mac.vendor.unwrap_or("");
                    if mac.shared() {
                        format!("{v} (shared)")
                    } else {
                        v.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(";"),
            "countries" => a
                .countries
                .iter()
                .map(|(c, n)| format!("{}:{}", String::from_utf8_lossy(c), n.flows))
                .collect::<Vec<_>>()
                .join(";"),
            "findings" => a
                .findings
                .iter()
                .map(|(k, f)| format!("{k}:{}", f.count))
                .collect::<Vec<_>>()
                .join(";"),
            "cleartext_clinical" => a.cleartext_clinical.to_string(),
            name => Kind::from_name(name)
                .map(|k| values(a, k, None).join(";"))
                .unwrap_or_default(),
        };
        row.push(v);
    }
    row
}

/// Writes the inventory to `path`: CSV when it ends in `.csv`, else JSON.
///
/// # Errors
/// The file cannot be created or written.
pub fn write_inventory(
    t: &Table,
    baseline: Option<&Baseline>,
    path: &std::path::Path,
) -> std::io::Result<()> {
    let macs = mac_hosts(t);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if csv {
        writeln!(f, "{}", CSV_COLUMNS.join(","))?;
        for a in t.sorted() {
            let row: Vec<String> = csv_row(a, &macs).iter().map(|v| csv_field(v)).collect();
            writeln!(f, "{}", row.join(","))?;
        }
    } else {
        let hosts: Vec<Ordered> = t
            .sorted()
            .into_iter()
            .map(|a| asset_object(a, &macs, baseline))
            .collect();
        serde_json::to_writer_pretty(&mut f, &json!({ "hosts": hosts }))?;
        writeln!(f)?;
    }
    f.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_batches_keeps_order_and_starts_at_most_max_threads() {
        // 40 batches asked of 64 threads: each batch's hosts come back in
        // order, made by at most MAX_THREADS threads besides this one.
        let mut hosts: Vec<usize> = (0..40 * BATCH).collect();
        let makers = std::sync::Mutex::new(std::collections::HashSet::new());
        let mut seen = Vec::new();
        by_batches(
            &mut hosts,
            64,
            |b: &mut [usize], _| {
                makers.lock().unwrap().insert(std::thread::current().id());
                b.iter().sum::<usize>()
            },
            |b, made| {
                assert_eq!(made, vec![b.iter().sum::<usize>()]);
                seen.extend_from_slice(b);
            },
        );
        assert_eq!(seen, (0..40 * BATCH).collect::<Vec<_>>());
        let makers = makers.into_inner().unwrap();
        assert!(
            !makers.is_empty() && makers.len() <= MAX_THREADS + 1,
            "{}",
            makers.len()
        );
    }
    use crate::asset::AssetConfig;

    fn seen(s: u64, flow: u64) -> Seen {
        Seen {
            ts: Timestamp::from_parts(s, 0),
            flow,
        }
    }

    fn records(out: &[u8]) -> Vec<Value> {
        String::from_utf8(out.to_vec())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn a_host_is_new_at_its_first_identifying_fact_then_changes_by_group() {
        // Hand-built: a MAC at 1 s (not identifying, flow 1), an
        // association at 2 s (AE title and toolkit of flow 2: one group),
        // a second AE title at 3 s in flow 3.
        let mut t = Table::new(&AssetConfig::default(), true);
        let h: std::net::IpAddr = "10.20.3.7".parse().unwrap();
        let now = Timestamp::from_parts(9, 0);
        t.fact(h, Kind::Mac, "00:0e:8c:03:00:07", seen(1, 1), now);
        t.fact(h, Kind::DicomScuAe, "MODALITY1", seen(2, 2), now);
        t.fact(h, Kind::Toolkit, "OFFIS DCMTK", seen(2, 2), now);
        t.fact(h, Kind::DicomScuAe, "CT01", seen(3, 3), now);
        let mut out = Blocks::kept(Vec::new());
        write_changes(&mut t, None, &mut out, None, 1);
        let out = checked_kept(out);
        let r = records(&out);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0]["asset"]["event"], "new");
        assert_eq!(r[0]["flow_id"], 2);
        assert_eq!(r[0]["src_ip"], "10.20.3.7");
        assert_eq!(r[0]["asset"]["macs"][0]["vendor"], "Siemens AG");
        assert_eq!(
            r[0]["asset"]["dicom"]["scu_ae_titles"],
            json!(["MODALITY1"])
        );
        assert_eq!(r[1]["asset"]["event"], "changed");
        assert_eq!(r[1]["asset"]["changed"], json!(["dicom_scu_ae_titles"]));
        assert_eq!(
            r[1]["asset"]["dicom"]["scu_ae_titles"],
            json!(["MODALITY1", "CT01"])
        );
        // Nothing new: nothing written.
        let mut again = Blocks::kept(Vec::new());
        write_changes(&mut t, None, &mut again, None, 1);
        assert!(checked_kept(again).is_empty());
    }

    #[test]
    fn snapshots_made_by_several_threads_are_the_ones_one_thread_makes_in_order() {
        // Hand-built: 1 500 hosts (two batches),
        // inserted out of address order, each with a MAC, a client id that
        // needs escaping and a version.
        let mut t = Table::new(&AssetConfig::default(), true);
        let now = Timestamp::from_parts(9, 0);
        for i in (0..1500u32).rev() {
            let h = std::net::IpAddr::from([10, 20, (i >> 8) as u8, i as u8]);
            t.fact(
                h,
                Kind::Mac,
                "00:0e:8c:03:00:07",
                seen(1, u64::from(i)),
                now,
            );
            let id = format!("BED-{i}\"\u{1}");
            t.fact(h, Kind::MqttClientId, &id, seen(2, u64::from(i)), now);
            t.fact(h, Kind::MqttVersion, "5.0", seen(2, u64::from(i)), now);
        }
        let mut one = Blocks::kept(Vec::new());
        write_snapshots(&t, now, None, 1, &mut one);
        let one = checked_kept(one);
        assert_eq!(records(&one).len(), 1500);
        let ips: Vec<String> = records(&one)
            .iter()
            .map(|r| r["src_ip"].as_str().unwrap_or_default().to_string())
            .collect();
        let mut sorted: Vec<std::net::IpAddr> = ips.iter().map(|s| s.parse().unwrap()).collect();
        sorted.sort();
        assert_eq!(
            ips,
            sorted.iter().map(ToString::to_string).collect::<Vec<_>>()
        );
        for threads in [2, 3, 8] {
            let mut blocks = Vec::new();
            let mut emit = |b: Block| blocks.push(checked(b));
            let mut out = Blocks::to(&mut emit);
            write_snapshots(&t, now, None, threads, &mut out);
            out.finish();
            assert!(
                blocks.len() > 1,
                "{threads} threads: {} blocks",
                blocks.len()
            );
            assert!(blocks.iter().all(|b| !b.is_empty() && b.ends_with(b"\n")));
            assert_eq!(blocks.concat(), one, "{threads} threads");
        }
    }

    /// A block's bytes, once its tally is found to be what a scan of
    /// them counts.
    fn checked(b: Block) -> Vec<u8> {
        assert_eq!(b.tally, Tally::scan(&b.bytes));
        b.bytes
    }

    /// What `Blocks::kept` held (from empty), checked as [`checked`].
    fn checked_kept(b: Blocks<'_>) -> Vec<u8> {
        let (bytes, tally) = b.into_kept();
        checked(Block { bytes, tally })
    }

    fn rule(sid: u32, finding: &str) -> Arc<RuleMeta> {
        Arc::new(RuleMeta {
            action: crate::detect::Action::Alert,
            gid: 1,
            sid,
            rev: 1,
            msg: format!("drift {finding}"),
            classtype: None,
            category: String::new(),
            severity: 3,
            metadata: vec![("finding".into(), finding.into())],
            references: Vec::new(),
            eve: Default::default(),
        })
    }

    #[test]
    fn changes_made_by_several_threads_are_evaluated_and_written_as_by_one() {
        // Hand-built: 2 600 hosts (three batches, the first two cut into
        // runs), inserted out of address order: a MAC (flow 1), then an
        // AE title and a version (flow 2: `new`), then another version
        // (flow 3: `changed`). The baseline knows every third host with
        // the first version; the rules see every change in order, and
        // alert on each difference: new devices, changed devices.
        let mut csv = String::from("ip,dicom_scu_ae_titles,implementation_version_names\n");
        let ip = |i: u32| std::net::IpAddr::from([10, 20, (i >> 8) as u8, i as u8]);
        for i in (0..2600u32).step_by(3) {
            csv.push_str(&format!("{},AE{i},V1\n", ip(i)));
        }
        let base = Baseline::parse_csv(&csv).unwrap();
        let table = || {
            let mut t = Table::new(&AssetConfig::default(), true);
            let now = Timestamp::from_parts(9, 0);
            for i in (0..2600u32).rev() {
                let f = u64::from(i) * 10;
                t.fact(ip(i), Kind::Mac, "00:0e:8c:03:00:07", seen(1, f + 1), now);
                t.fact(ip(i), Kind::Role, "dicom-scu", seen(2, f + 2), now);
                t.fact(
                    ip(i),
                    Kind::DicomScuAe,
                    &format!("AE{i}"),
                    seen(2, f + 2),
                    now,
                );
                t.fact(
                    ip(i),
                    Kind::ImplementationVersion,
                    "V1",
                    seen(2, f + 2),
                    now,
                );
                t.fact(
                    ip(i),
                    Kind::ImplementationVersion,
                    "V\"2",
                    seen(3, f + 3),
                    now,
                );
            }
            t
        };
        let run = |threads: usize| {
            let mut t = table();
            let mut order = Vec::new();
            let mut eval = |rec: &AppRecord| -> Vec<Arc<RuleMeta>> {
                let AppRecord::Asset(c) = rec else {
                    panic!("{rec:?}")
                };
                order.push((c.ip, c.new));
                c.drift.iter().map(|d| rule(1, d.finding)).collect()
            };
            let mut blocks = Vec::new();
            let mut emit = |b: Block| blocks.push(checked(b));
            let mut out = Blocks::to(&mut emit);
            let n = write_changes(&mut t, Some(&base), &mut out, Some(&mut eval), threads);
            out.finish();
            let findings: Vec<(String, u64)> = t
                .sorted()
                .iter()
                .flat_map(|a| {
                    a.findings
                        .iter()
                        .map(|(k, f)| (format!("{} {k}", a.ip), f.count))
                })
                .collect();
            (n, blocks, order, findings)
        };
        let (n, one, order, findings) = run(1);
        let one = one.concat();
        let lines = records(&one);
        // Per host: `new` and `changed`; every third host (known) has its
        // change alerted as a device change, the others their first record
        // as a new device: each alert just before its record.
        assert_eq!(n, 2600);
        assert_eq!(lines.len(), 2600 * 3);
        let shape: Vec<String> = lines[..6]
            .iter()
            .map(|r| match r["event_type"].as_str() {
                Some("alert") => format!("alert {}", r["alert"]["metadata"]["finding"][0]),
                _ => format!(
                    "{} {}",
                    r["asset"]["event"].as_str().unwrap_or("?"),
                    r["src_ip"]
                ),
            })
            .collect();
        assert_eq!(
            shape,
            [
                r#"new "10.20.0.0""#,
                r#"alert "device-changed""#,
                r#"changed "10.20.0.0""#,
                r#"alert "new-device""#,
                r#"new "10.20.0.1""#,
                r#"changed "10.20.0.1""#,
            ]
        );
        assert_eq!(order.len(), 2600 * 2);
        assert!(order.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_eq!(findings.len(), 2600);
        for threads in [2, 3] {
            let (m, blocks, o, f) = run(threads);
            assert!(
                blocks.len() > 1,
                "{threads} threads: {} blocks",
                blocks.len()
            );
            assert_eq!(m, n, "{threads} threads");
            assert_eq!(blocks.concat(), one, "{threads} threads");
            assert_eq!(o, order, "{threads} threads");
            assert_eq!(f, findings, "{threads} threads");
        }
    }

    #[test]
    fn each_baseline_difference_is_alerted_once_with_its_record() {
        // Hand-built: the baseline knew 10.20.4.21 calling as ECHOSCU with
        // OFFIS_DCMTK_367; this run sees a host it never knew calling as
        // ECHOSCU (new device, moved AE title: one record, two
        // differences), then the same host again with another AE title (a
        // change bringing no difference), and 10.20.4.21 with another
        // implementation version (device changed).
        let base = Baseline::parse_csv(
            "ip,dicom_scu_ae_titles,implementation_version_names\n\
             10.20.4.21,ECHOSCU,OFFIS_DCMTK_367\n",
        )
        .unwrap();
        let mut t = Table::new(&AssetConfig::default(), true);
        let (new, known): (std::net::IpAddr, std::net::IpAddr) =
            ("10.20.9.66".parse().unwrap(), "10.20.4.21".parse().unwrap());
        let now = Timestamp::from_parts(9, 0);
        t.fact(new, Kind::Role, "dicom-scu", seen(1, 1), now);
        t.fact(new, Kind::DicomScuAe, "ECHOSCU", seen(1, 1), now);
        t.fact(new, Kind::DicomScuAe, "RADWS01", seen(2, 2), now);
        t.fact(known, Kind::Role, "dicom-scu", seen(3, 3), now);
        t.fact(
            known,
            Kind::ImplementationVersion,
            "OFFIS_DCMTK_367",
            seen(3, 3),
            now,
        );
        t.fact(
            known,
            Kind::ImplementationVersion,
            "PYNETDICOM_304",
            seen(4, 4),
            now,
        );
        let mut seen_changes = Vec::new();
        let mut eval = |rec: &AppRecord| -> Vec<Arc<RuleMeta>> {
            let AppRecord::Asset(c) = rec else {
                panic!("{rec:?}")
            };
            seen_changes.push((c.ip, c.new, c.known, c.drift.clone()));
            match &c.drift {
                Some(d) => vec![rule(1, d.finding)],
                None => Vec::new(),
            }
        };
        let mut out = Blocks::kept(Vec::new());
        let n = write_changes(&mut t, Some(&base), &mut out, Some(&mut eval), 1);
        let out = checked_kept(out);
        assert_eq!(n, 3);
        // Evaluated: the new host's first record twice (one difference
        // each), its change once without; the known host's first record
        // once without, its change once with the new version.
        let drifts: Vec<_> = seen_changes
            .iter()
            .map(|(ip, new, known, d)| {
                (
                    ip.to_string(),
                    *new,
                    *known,
                    d.as_ref().map(|d| (d.finding, d.value.clone())),
                )
            })
            .collect();
        assert_eq!(
            drifts,
            [
                ("10.20.4.21".into(), true, Some(true), None),
                (
                    "10.20.4.21".into(),
                    false,
                    Some(true),
                    Some(("device-changed", Some("PYNETDICOM_304".into())))
                ),
                (
                    "10.20.9.66".into(),
                    true,
                    Some(false),
                    Some(("new-device", None))
                ),
                (
                    "10.20.9.66".into(),
                    true,
                    Some(false),
                    Some(("ae-title-moved", Some("ECHOSCU".into())))
                ),
                ("10.20.9.66".into(), false, Some(false), None),
            ]
        );
        let r = records(&out);
        let kinds: Vec<String> = r
            .iter()
            .map(|r| {
                format!(
                    "{} {} {}",
                    r["event_type"].as_str().unwrap(),
                    r["src_ip"].as_str().unwrap(),
                    r["alert"]["metadata"]["finding"][0]
                        .as_str()
                        .or(r["asset"]["event"].as_str())
                        .unwrap()
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "asset 10.20.4.21 new",
                "alert 10.20.4.21 device-changed",
                "asset 10.20.4.21 changed",
                "alert 10.20.9.66 new-device",
                "alert 10.20.9.66 ae-title-moved",
                "asset 10.20.9.66 new",
                "asset 10.20.9.66 changed",
            ]
        );
        // An alert's asset object names its one difference, at the time
        // and flow of its record.
        assert_eq!(
            r[4]["asset"]["baseline"]["drift"].as_array().unwrap().len(),
            1
        );
        assert_eq!(
            r[4]["asset"]["baseline"]["drift"][0]["baseline"],
            json!(["10.20.4.21"])
        );
        assert_eq!(r[4]["flow_id"], 1);
        assert_eq!(
            r[5]["asset"]["baseline"]["drift"].as_array().unwrap().len(),
            2
        );
        // The findings are the host's.
        let a = t.get(&new).unwrap();
        assert_eq!(a.findings.len(), 2);
        assert_eq!(a.findings["new-device"].count, 1);
        // Nothing new: no evaluation.
        let mut calls = 0;
        let mut count = |_: &AppRecord| -> Vec<Arc<RuleMeta>> {
            calls += 1;
            Vec::new()
        };
        write_changes(
            &mut t,
            Some(&base),
            &mut Blocks::kept(Vec::new()),
            Some(&mut count),
            1,
        );
        assert_eq!(calls, 0);
    }

    proptest::proptest! {
        /// Every kind of member, with text that needs escaping: the
        /// record written by hand is what `Serialize` writes.
        #[test]
        fn records_by_hand_equal_the_serialised_members(
            text in "[a-z\"\\\\\u{1}\u{7f}é]{0,8}",
            flag in proptest::prelude::any::<bool>(),
            n in proptest::prelude::any::<[u64; 4]>(),
            values in proptest::collection::vec("[a-z\"\\\\\n]{0,5}", 0..3),
            vendor in proptest::option::of("[A-Za-z ,\"]{0,6}"),
            json_member in proptest::prelude::any::<bool>(),
            ip in proptest::prelude::any::<std::net::IpAddr>(),
            secs in 0u64..4_102_444_800,
            usecs in 0u64..1_000_000,
        ) {
            let when = Timestamp::from_parts(secs, usecs * 1000);
            let boxed = || values.iter().map(|v| Box::from(v.as_str())).collect::<Vec<Box<str>>>();
            let mut o = Ordered::default();
            o.insert("ip", Field::Ip(ip));
            o.insert("event", Field::Word(if flag { "new" } else { "snapshot" }));
            o.insert("first_seen", Field::Time(when));
            o.insert("text", Field::Text(text.clone()));
            o.insert("cleartext_clinical", Field::Flag(flag));
            o.insert("changed", Field::Names(vec!["mqtt_client_ids", "roles"]));
            o.insert("roles", Field::Values(boxed()));
            o.insert("macs", Field::Macs(vec![
                MacEntry { address: text.as_str().into(), shared: flag, vendor: None },
                MacEntry {
                    address: "00:09:fb:1e:01:0f".into(),
                    shared: !flag,
                    vendor: vendor.as_deref().map(|v| &*Box::leak(Box::<str>::from(v))),
                },
            ]));
            o.insert("mqtt", Field::Group(Group(vec![("client_ids", boxed()), ("versions", Vec::new())])));
            o.insert("traffic", Field::Traffic(vec![TrafficEntry {
                app_proto: "mqtt",
                bytes_received: n[0],
                bytes_sent: n[1],
                client_flows: n[2],
                server_flows: n[3],
            }]));
            o.insert("countries", Field::Countries(vec![CountryEntry { bytes: n[1], country: text.clone(), flows: n[0] }]));
            o.insert("findings", Field::Findings(vec![
                FindingEntry { count: n[2], kind: text.as_str().into(), last: when },
                FindingEntry { count: 0, kind: "x".into(), last: Timestamp(0) },
            ]));
            if json_member {
                o.insert("baseline", Field::Json(serde_json::json!({"status": text, "drift": [n[0]]})));
            }
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            o.write_json(&mut ours).unwrap();
            json::write(&mut theirs, &o).unwrap();
            proptest::prop_assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(theirs).unwrap());
        }
    }

    proptest::proptest! {
        /// An `asset` object written straight from a host's facts is the
        /// one its `Ordered` writes, for a record, a snapshot and a
        /// change's copy of the facts (any kinds, values to escape, cut
        /// lists, counters, MACs shared or not, a baseline member).
        #[test]
        fn objects_written_from_the_facts_equal_their_ordered_members(
            facts in proptest::collection::vec(
                (0usize..24, "[a-z\"\\\u{1}é:0-9]{0,6}", 0u64..5, 0u64..4),
                0..30,
            ),
            truncated in proptest::prelude::any::<u32>(),
            n in proptest::prelude::any::<[u64; 4]>(),
            country in proptest::option::of("[A-Z\"]{2}"),
            finding in proptest::option::of("[a-z\"-]{0,6}"),
            flag in proptest::prelude::any::<bool>(),
            full in proptest::prelude::any::<bool>(),
            event in 0usize..4,
            upto in proptest::option::of((0u64..5, 0u64..4)),
            json_member in proptest::prelude::any::<bool>(),
            ip in proptest::prelude::any::<std::net::IpAddr>(),
        ) {
            let mut t = Table::new(&AssetConfig { max_values: 3, ..AssetConfig::default() }, true);
            let other: std::net::IpAddr = "10.0.0.99".parse().unwrap();
            for (kind, value, secs, flow) in &facts {
                let kind = Kind::ALL[*kind];
                let s = seen(*secs, *flow);
                t.fact(ip, kind, value, s, Timestamp::from_parts(secs + 1, 0));
                if flag && kind == Kind::Mac {
                    t.fact(other, kind, value, s, s.ts);
                }
            }
            let Some(a) = t.hosts.get_mut(&ip) else {
                return Ok(());
            };
            a.truncated |= truncated & ((1 << Kind::ALL.len()) - 1);
            a.cleartext_clinical = flag;
            a.traffic.insert("mqtt", crate::asset::Traffic {
                client_flows: n[0],
                server_flows: n[1],
                bytes_sent: n[2],
                bytes_received: n[3],
            });
            if let Some(c) = &country {
                let c: [u8; 2] = c.as_bytes().try_into().unwrap();
                a.countries.insert(c, crate::asset::Contact { flows: n[1], bytes: n[0] });
            }
            if let Some(f) = &finding {
                a.findings.insert(f.as_str().into(), crate::asset::Findings {
                    count: n[2],
                    last: Timestamp::from_parts(n[3] % 4_102_444_800, 0),
                });
            }
            let a = &t.hosts[&ip];
            let macs = mac_hosts(&t);
            let upto = upto.map(|(s, f)| seen(s, f));
            let facts = Facts::of(a, upto);
            let baseline = json_member.then(|| json!({"status": "new", "drift": [n[0]]}));
            let kinds = [Kind::Mac, Kind::MqttClientId];
            let body = Body {
                ip: a.ip,
                event: [None, Some("new"), Some("changed"), Some("snapshot")][event],
                changed: (event == 2).then_some(&kinds[..]),
                first_seen: a.first.ts,
                facts: &facts,
                macs: MacInfo::Table(&macs),
                truncated: a.truncated,
                full: full.then_some(a),
                baseline: baseline.as_ref(),
            };
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            body.write_json(&mut ours).unwrap();
            body.ordered().write_json(&mut theirs).unwrap();
            let ours = String::from_utf8(ours).unwrap();
            proptest::prop_assert_eq!(&ours, &String::from_utf8(theirs).unwrap());
            // A change's copy of the facts and of its MACs' entries.
            let copy: Vec<(Kind, Arc<str>)> = facts.0.iter().map(|f| (f.kind, Arc::clone(&f.value))).collect();
            let listed: Vec<Mac> = facts
                .0
                .iter()
                .filter(|f| f.kind == Kind::Mac)
                .map(|f| macs.get(&*f.value).copied().unwrap_or_default())
                .collect();
            let copied = Body {
                ip: a.ip,
                event: body.event,
                changed: body.changed,
                first_seen: a.first.ts,
                facts: &copy[..],
                macs: MacInfo::Listed(&listed),
                truncated: a.truncated,
                full: body.full,
                baseline: baseline.as_ref(),
            };
            let mut again = Vec::new();
            copied.write_json(&mut again).unwrap();
            proptest::prop_assert_eq!(&ours, &String::from_utf8(again).unwrap());
            proptest::prop_assert_eq!(body.ordered(), copied.ordered());
            proptest::prop_assert!(serde_json::from_str::<Value>(&ours).is_ok());
        }
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        assert_eq!(csv_field("a"), "a");
        assert_eq!(csv_field("VMware, Inc."), "\"VMware, Inc.\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    proptest::proptest! {
        /// A value is `plain` exactly when JSON writes it as it is, so
        /// copying a plain value writes what escaping it writes.
        #[test]
        fn plain_values_are_the_ones_json_writes_unchanged(
            s in proptest::string::string_regex("(?s).{0,24}").unwrap(),
        ) {
            let mut escaped = Vec::new();
            json::write_str(&mut escaped, &s);
            let unchanged = escaped == format!("\"{s}\"").into_bytes();
            proptest::prop_assert_eq!(plain(&s), unchanged);
            if plain(&s) {
                let mut copied = Vec::new();
                word(&mut copied, &s);
                proptest::prop_assert_eq!(copied, escaped);
            }
        }
    }

    #[test]
    fn our_words_need_no_escaping() {
        let mut all: Vec<&str> = vec!["new", "changed", "snapshot"];
        all.extend(Kind::ALL.iter().map(|k| k.name()));
        for (group, kinds) in GROUPS {
            all.push(group);
            all.extend(kinds.iter().map(|(_, name)| *name));
        }
        for w in all {
            assert!(plain(w), "{w}");
        }
        for (is_plain, v) in [
            (false, "a\"b"),
            (false, "a\\b"),
            (false, "\u{1f}"),
            (true, "é ü"),
        ] {
            assert_eq!(plain(v), is_plain, "{v:?}");
        }
    }
}
