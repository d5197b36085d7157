//! Assets: what the traffic tells about each host of the home network — its
//! MAC address and vendor, the roles it plays per protocol, the services it
//! serves, DICOM AE titles and device facts, MQTT client ids, HL7
//! applications, TLS server names, the countries it reached, the findings
//! raised on its flows — kept in one bounded table, written as EVE `asset`
//! records and as an inventory file (issue 13).
//!
//! Owns:
//! - [`Table`]: facts per host, bounded ([`AssetConfig`]), and the merge of
//!   one table into another;
//! - [`observe::View`]: a worker's own table, fed by the worker with what
//!   it already has (flow ends with their first MAC per side, app-layer
//!   records, alerts) and handed to the run's [`Hub`] once per second of
//!   packet time, and when the worker stops;
//! - [`Hub`]: the run's table, the EVE `asset` records it makes
//!   ([`log`]), the inventory file ([`log::write_inventory`]) and the
//!   comparison with a baseline inventory ([`baseline`]).
//!
//! Facts are strings of a [`Kind`] with the time and flow they were first
//! seen in ([`Seen`]) and the time last seen. Facts with a [`Seen`] — and
//! counters (flows, bytes, countries, findings) — are merged with `min`,
//! `max` and `+`, which do not care in which order, by which worker or in
//! how many pieces they arrive: the table at the end of a run is the same
//! for any number of workers. So are the records made from it: an offline
//! run writes them at its end (one `new` record when a host is first seen
//! with an identifying fact, one `changed` record per later group of facts
//! first seen in the same flow at the same time, in the order the capture
//! showed them, then one `snapshot` per host); a live run writes the
//! changes merged so far and a snapshot of every host every
//! `outputs.asset.interval` seconds.
//!
//! Bounds: at most `max_hosts` hosts (when full, a host with no
//! identifying fact makes room for one that has; otherwise the newcomer is
//! dropped; both counted), `max_values` values per kind and host (the
//! earliest seen are kept — again independent of order — and the list is
//! marked truncated), values cut at `max_value_len` bytes, and
//! `memcap` bytes for the whole table (facts refused beyond it, counted).
//! The bounds are where the output may depend on the number of workers:
//! which host or value a full table refused depends on when each worker
//! handed its table over. Every such refusal is counted in `stats`
//! (`asset.*`).
//!
//! PHI never enters the table: patient attributes are not device facts
//! (only the device attributes of [`observe`] are read), and a free-text
//! value in which the PHI detectors find patient data (a client id or
//! topic holding a record number) is kept masked (`asset.phi_masked`).

pub mod baseline;
pub mod detect;
pub mod log;
pub mod observe;
pub mod oui;
pub mod toolkit;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Deserialize;

use crate::detect::Country;
use crate::time::Timestamp;

/// `asset:` configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssetConfig {
    /// The hosts inventoried, in rule address syntax; `None`: the rules'
    /// `$HOME_NET` (`vars.address-groups.HOME_NET`).
    pub home_net: Option<String>,
    /// Hosts kept in the table.
    pub max_hosts: usize,
    /// Values kept per kind of fact and host (AE titles, client ids, …).
    pub max_values: usize,
    /// Longest value kept, in bytes; longer ones are cut.
    pub max_value_len: usize,
    /// Bytes the run's table may hold (estimated: entries and values).
    pub memcap: crate::memcap::ByteSize,
    /// A previous inventory (`--inventory-baseline`): new, moved and
    /// changed devices are reported against it.
    pub baseline: Option<std::path::PathBuf>,
}

impl Default for AssetConfig {
    fn default() -> Self {
        AssetConfig {
            home_net: None,
            max_hosts: 16384,
            max_values: 16,
            max_value_len: 128,
            memcap: crate::memcap::ByteSize::mib(16),
            baseline: None,
        }
    }
}

/// `outputs.asset:` — the EVE `asset` records and the inventory file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssetOutput {
    /// Write EVE `asset` records.
    pub enabled: bool,
    /// Live capture: seconds between snapshots of every host (0: only at
    /// the end). Offline runs write theirs at the end.
    pub interval: u64,
    /// Inventory file written at the end (`--inventory`): JSON, or CSV when
    /// the name ends in `.csv`.
    pub inventory: Option<std::path::PathBuf>,
}

impl Default for AssetOutput {
    fn default() -> Self {
        AssetOutput {
            enabled: true,
            interval: 300,
            inventory: None,
        }
    }
}

/// A kind of fact. The order is the order of the inventory's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Source MAC address of its packets, `00:09:fb:1e:01:0f`.
    Mac,
    /// `dicom-scu`, `dicom-scp`, `mqtt-client`, `mqtt-broker`,
    /// `hl7-sender`, `hl7-receiver`, `tls-client`, `tls-server`.
    Role,
    /// A port it answered on, `tcp/104`.
    Service,
    /// Calling AE title of its associations (DICOM SCU).
    DicomScuAe,
    /// Called AE title of associations it accepted (DICOM SCP).
    DicomScpAe,
    /// Implementation class UID it sent (A-ASSOCIATE-RQ/AC item 0x52).
    ImplementationClassUid,
    /// Implementation version name (item 0x55).
    ImplementationVersion,
    /// Toolkit or vendor named by the implementation class UID's root.
    Toolkit,
    /// (0008,0070) of the data sets it stored.
    Manufacturer,
    /// (0008,1090) Manufacturer's Model Name.
    Model,
    /// (0018,1020) Software Versions.
    SoftwareVersion,
    /// (0018,1000) Device Serial Number.
    SerialNumber,
    /// (0008,1010) Station Name.
    StationName,
    /// (0008,0080) Institution Name.
    Institution,
    /// (0008,0060) Modality, or the modality of the SOP class it stored.
    Modality,
    /// MQTT client identifier of its CONNECTs.
    MqttClientId,
    /// MQTT user name of its CONNECTs (never the password).
    MqttUsername,
    /// MQTT protocol version of its CONNECTs (`3.1`, `3.1.1`, `5.0`).
    MqttVersion,
    /// First two levels of the topics it published or subscribed to.
    MqttTopicPrefix,
    /// HL7 MSH-3 of the messages it sent.
    Hl7SendingApplication,
    /// HL7 MSH-4 of the messages it sent.
    Hl7SendingFacility,
    /// HL7 MSH-5 of the messages it received.
    Hl7ReceivingApplication,
    /// HL7 MSH-6 of the messages it received.
    Hl7ReceivingFacility,
    /// TLS server name clients asked it for (SNI).
    TlsSni,
}

impl Kind {
    pub const ALL: [Kind; 24] = [
        Kind::Mac,
        Kind::Role,
        Kind::Service,
        Kind::DicomScuAe,
        Kind::DicomScpAe,
        Kind::ImplementationClassUid,
        Kind::ImplementationVersion,
        Kind::Toolkit,
        Kind::Manufacturer,
        Kind::Model,
        Kind::SoftwareVersion,
        Kind::SerialNumber,
        Kind::StationName,
        Kind::Institution,
        Kind::Modality,
        Kind::MqttClientId,
        Kind::MqttUsername,
        Kind::MqttVersion,
        Kind::MqttTopicPrefix,
        Kind::Hl7SendingApplication,
        Kind::Hl7SendingFacility,
        Kind::Hl7ReceivingApplication,
        Kind::Hl7ReceivingFacility,
        Kind::TlsSni,
    ];

    /// Name in EVE, the inventory and rules (`asset.<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Mac => "mac",
            Kind::Role => "roles",
            Kind::Service => "services",
            Kind::DicomScuAe => "dicom_scu_ae_titles",
            Kind::DicomScpAe => "dicom_scp_ae_titles",
            Kind::ImplementationClassUid => "implementation_class_uids",
            Kind::ImplementationVersion => "implementation_version_names",
            Kind::Toolkit => "toolkits",
            Kind::Manufacturer => "manufacturers",
            Kind::Model => "models",
            Kind::SoftwareVersion => "software_versions",
            Kind::SerialNumber => "serial_numbers",
            Kind::StationName => "station_names",
            Kind::Institution => "institutions",
            Kind::Modality => "modalities",
            Kind::MqttClientId => "mqtt_client_ids",
            Kind::MqttUsername => "mqtt_usernames",
            Kind::MqttVersion => "mqtt_versions",
            Kind::MqttTopicPrefix => "mqtt_topic_prefixes",
            Kind::Hl7SendingApplication => "hl7_sending_applications",
            Kind::Hl7SendingFacility => "hl7_sending_facilities",
            Kind::Hl7ReceivingApplication => "hl7_receiving_applications",
            Kind::Hl7ReceivingFacility => "hl7_receiving_facilities",
            Kind::TlsSni => "tls_sni",
        }
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Says what the host is: a host is announced (`new` record) when it
    /// is first seen with one. Its MAC and the ports it answers on alone do
    /// not (every host has them).
    pub fn identifying(self) -> bool {
        !matches!(self, Kind::Mac | Kind::Service)
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// When a fact was first seen: packet time, then the flow (so that facts
/// of one packet time are ordered the same in every run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seen {
    pub ts: Timestamp,
    pub flow: u64,
}

/// One fact about a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub kind: Kind,
    /// Shared, not copied, with the changes the rules see
    /// ([`detect::Change::facts`]): a host's values are in each of its
    /// change records.
    pub value: Arc<str>,
    /// `value` has nothing JSON escapes ([`log::plain`]): looked at once,
    /// not in each record that lists it.
    pub plain: bool,
    pub first: Seen,
    pub last: Timestamp,
    /// Written in a `new` or `changed` record already.
    pub reported: bool,
}

/// Traffic of a host under one application protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Flows it opened (client).
    pub client_flows: u64,
    /// Flows it answered (server).
    pub server_flows: u64,
    /// Bytes on the wire it sent, and received.
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

impl Traffic {
    fn add(&mut self, o: &Traffic) {
        self.client_flows = self.client_flows.saturating_add(o.client_flows);
        self.server_flows = self.server_flows.saturating_add(o.server_flows);
        self.bytes_sent = self.bytes_sent.saturating_add(o.bytes_sent);
        self.bytes_received = self.bytes_received.saturating_add(o.bytes_received);
    }
}

/// Flows and bytes to or from one country.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Contact {
    pub flows: u64,
    pub bytes: u64,
}

/// Alerts of one finding kind on a host's flows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Findings {
    pub count: u64,
    pub last: Timestamp,
}

/// Everything known about one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    pub ip: IpAddr,
    /// Its earliest flow.
    pub first: Seen,
    pub last: Timestamp,
    /// Facts, at most `max_values` per kind.
    pub facts: Vec<Fact>,
    /// Kinds (bits of [`Kind`]) whose values did not all fit.
    pub truncated: u32,
    /// Traffic by application protocol (`mqtt`, `dicom`, `tls`, `failed`,
    /// or the transport `tcp`/`udp`/… when nothing was decided).
    pub traffic: BTreeMap<&'static str, Traffic>,
    /// Countries of the peers outside the home network.
    pub countries: BTreeMap<Country, Contact>,
    /// Alerts on its flows by `metadata.finding`.
    pub findings: BTreeMap<Box<str>, Findings>,
    /// A flow of a clinical protocol (MQTT, DICOM, HL7) was in clear text.
    pub cleartext_clinical: bool,
}

/// Heap bytes charged per host besides its facts.
const HOST_BYTES: u64 = 256;
/// Heap bytes charged per fact besides its value.
const FACT_BYTES: u64 = 64;

impl Asset {
    pub fn new(ip: IpAddr, first: Seen) -> Asset {
        Asset {
            ip,
            first,
            last: first.ts,
            facts: Vec::new(),
            truncated: 0,
            traffic: BTreeMap::new(),
            countries: BTreeMap::new(),
            findings: BTreeMap::new(),
            cleartext_clinical: false,
        }
    }

    /// Has a fact that says what it is ([`Kind::identifying`]).
    pub fn identified(&self) -> bool {
        self.facts.iter().any(|f| f.kind.identifying())
    }

    /// The values of `kind`, earliest first.
    pub fn values(&self, kind: Kind) -> Vec<&str> {
        let mut v: Vec<&Fact> = self.facts.iter().filter(|f| f.kind == kind).collect();
        v.sort_by(|a, b| (a.first, &a.value).cmp(&(b.first, &b.value)));
        v.into_iter().map(|f| &*f.value).collect()
    }

    /// Whether `kind` lost values to `max_values`.
    pub fn is_truncated(&self, kind: Kind) -> bool {
        self.truncated & kind.bit() != 0
    }

    fn bytes(&self) -> u64 {
        HOST_BYTES
            + self
                .facts
                .iter()
                .map(|f| FACT_BYTES + f.value.len() as u64)
                .sum::<u64>()
    }

    /// Adds a fact seen at `seen` and `last`, keeping the `max` earliest of
    /// its kind; returns the change of the host's estimated bytes (negative
    /// when a later value made room), or `None` when nothing changed but
    /// times. `room` says whether a new value may grow the host.
    fn add_fact(
        &mut self,
        kind: Kind,
        value: &str,
        seen: Seen,
        last: Timestamp,
        max: usize,
        room: bool,
    ) -> FactOutcome {
        if let Some(f) = self
            .facts
            .iter_mut()
            .find(|f| f.kind == kind && &*f.value == value)
        {
            if seen < f.first {
                f.first = seen;
                f.reported = false;
            }
            f.last = f.last.max(last);
            return FactOutcome::Updated;
        }
        let of_kind = self.facts.iter().filter(|f| f.kind == kind).count();
        if of_kind >= max {
            self.truncated |= kind.bit();
            // The latest first seen of the kind gives way to an earlier
            // one, so the values kept do not depend on arrival order.
            let latest = self
                .facts
                .iter()
                .enumerate()
                .filter(|(_, f)| f.kind == kind)
                .max_by(|(_, a), (_, b)| (a.first, &a.value).cmp(&(b.first, &b.value)))
                .map(|(i, f)| (i, f.first, Arc::clone(&f.value)));
            match latest {
                Some((i, first, v)) if (seen, value) < (first, &*v) => {
                    let old = self.facts.swap_remove(i);
                    self.facts.push(Fact {
                        kind,
                        value: value.into(),
                        plain: log::plain(value),
                        first: seen,
                        last,
                        reported: false,
                    });
                    return FactOutcome::Replaced(value.len() as i64 - old.value.len() as i64);
                }
                _ => return FactOutcome::Refused,
            }
        }
        if !room {
            return FactOutcome::NoRoom;
        }
        self.facts.push(Fact {
            kind,
            value: value.into(),
            plain: log::plain(value),
            first: seen,
            last,
            reported: false,
        });
        FactOutcome::Added(FACT_BYTES + value.len() as u64)
    }

    /// Adds what `o` (the same host) knows; returns the bytes added.
    fn merge_counters(&mut self, o: &Asset) {
        self.first = self.first.min(o.first);
        self.last = self.last.max(o.last);
        self.truncated |= o.truncated;
        for (k, t) in &o.traffic {
            self.traffic.entry(k).or_default().add(t);
        }
        for (c, n) in &o.countries {
            let e = self.countries.entry(*c).or_default();
            e.flows = e.flows.saturating_add(n.flows);
            e.bytes = e.bytes.saturating_add(n.bytes);
        }
        for (k, n) in &o.findings {
            match self.findings.get_mut(k) {
                Some(e) => {
                    e.count = e.count.saturating_add(n.count);
                    e.last = e.last.max(n.last);
                }
                None => {
                    self.findings.insert(k.clone(), *n);
                }
            }
        }
        self.cleartext_clinical |= o.cleartext_clinical;
    }
}

enum FactOutcome {
    Updated,
    Added(u64),
    Replaced(i64),
    Refused,
    NoRoom,
}

/// Counters of the asset stage (`stats.asset.*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssetStats {
    /// Hosts dropped because the table was full (`max_hosts`).
    pub hosts_dropped: u64,
    /// Hosts without an identifying fact evicted for one that had one.
    pub hosts_evicted: u64,
    /// Facts refused because the table's memory budget was spent.
    pub memcap: u64,
    /// Values cut at `max_value_len`.
    pub values_cut: u64,
    /// Values kept masked because the PHI detectors found patient data in
    /// them.
    pub phi_masked: u64,
}

impl AssetStats {
    pub fn merge(&mut self, o: &AssetStats) {
        self.hosts_dropped += o.hosts_dropped;
        self.hosts_evicted += o.hosts_evicted;
        self.memcap += o.memcap;
        self.values_cut += o.values_cut;
        self.phi_masked += o.phi_masked;
    }
}

/// Hosts without an identifying fact, latest first seen last: the ones a
/// full table gives up first.
///
/// Kept only from the first time the table is full on (made then from its
/// hosts, once): until then nothing asks for it, and most tables never
/// are full — a worker's, emptied every second, nor the run's below
/// `max_hosts` — so the hosts and facts they take do not pay a tree
/// insert and remove each. Emptying the table stops it again.
#[derive(Debug, Clone, Default)]
struct Factless {
    on: bool,
    set: BTreeSet<(Seen, IpAddr)>,
}

impl Factless {
    /// Keeps the set from now on, made from `hosts` if it was not kept.
    fn start(&mut self, hosts: &ahash::AHashMap<IpAddr, Asset>) {
        if !self.on {
            self.set = hosts
                .values()
                .filter(|a| !a.identified())
                .map(|a| (a.first, a.ip))
                .collect();
            self.on = true;
        }
    }

    fn insert(&mut self, k: (Seen, IpAddr)) {
        if self.on {
            self.set.insert(k);
        }
    }

    fn remove(&mut self, k: (Seen, IpAddr)) {
        if self.on {
            self.set.remove(&k);
        }
    }

    /// The table was emptied.
    fn clear(&mut self) {
        self.on = false;
        self.set.clear();
    }
}

/// Hosts and their facts, bounded.
#[derive(Debug)]
pub struct Table {
    pub(crate) hosts: ahash::AHashMap<IpAddr, Asset>,
    factless: Factless,
    max_hosts: usize,
    max_values: usize,
    /// `None`: no byte budget (a worker's table, emptied every second).
    memcap: Option<u64>,
    bytes: u64,
    pub stats: AssetStats,
}

impl Table {
    pub fn new(cfg: &AssetConfig, budgeted: bool) -> Table {
        Table {
            hosts: ahash::AHashMap::new(),
            factless: Factless::default(),
            max_hosts: cfg.max_hosts.max(1),
            max_values: cfg.max_values.max(1),
            memcap: budgeted.then_some(cfg.memcap.0),
            bytes: 0,
            stats: AssetStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Estimated heap bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn get(&self, ip: &IpAddr) -> Option<&Asset> {
        self.hosts.get(ip)
    }

    /// Every host, by address.
    pub fn sorted(&self) -> Vec<&Asset> {
        let mut v: Vec<&Asset> = self.hosts.values().collect();
        v.sort_unstable_by_key(|a| ip_order(a.ip));
        v
    }

    pub(crate) fn sorted_mut(&mut self) -> Vec<&mut Asset> {
        let mut v: Vec<&mut Asset> = self.hosts.values_mut().collect();
        v.sort_unstable_by_key(|a| ip_order(a.ip));
        v
    }

    fn room(&self, n: u64) -> bool {
        self.memcap
            .is_none_or(|m| self.bytes.saturating_add(n) <= m)
    }

    /// The entry of `ip`, made if there is room; `identifying`: the caller
    /// brings a fact that says what the host is (it may then evict a host
    /// that has none).
    pub fn host(&mut self, ip: IpAddr, seen: Seen, identifying: bool) -> Option<&mut Asset> {
        self.host_kept(ip, seen, identifying).map(|(a, _)| a)
    }

    /// [`Table::host`], and whether the factless set is kept.
    fn host_kept(
        &mut self,
        ip: IpAddr,
        seen: Seen,
        identifying: bool,
    ) -> Option<(&mut Asset, bool)> {
        if self.hosts.len() >= self.max_hosts && !self.hosts.contains_key(&ip) {
            self.factless.start(&self.hosts);
            match self.factless.set.last().copied() {
                Some((k, v)) if identifying => {
                    self.factless.remove((k, v));
                    if let Some(a) = self.hosts.remove(&v) {
                        self.bytes = self.bytes.saturating_sub(a.bytes());
                    }
                    self.stats.hosts_evicted += 1;
                }
                _ => {
                    self.stats.hosts_dropped += 1;
                    return None;
                }
            }
        }
        // One lookup for a host the table has (nearly every call) and
        // for one it makes.
        let room = self.room(HOST_BYTES);
        let a = match self.hosts.entry(ip) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                if !room {
                    self.stats.memcap += 1;
                    return None;
                }
                self.bytes += HOST_BYTES;
                self.factless.insert((seen, ip));
                e.insert(Asset::new(ip, seen))
            }
        };
        if seen < a.first {
            if self.factless.on && !a.identified() {
                self.factless.remove((a.first, ip));
                self.factless.insert((seen, ip));
            }
            a.first = seen;
        }
        Some((a, self.factless.on))
    }

    /// Whether host `ip` has this fact already; if so its times are
    /// updated.
    ///
    /// What [`Table::fact`] does for a fact the host has (its times, and
    /// the host's first seen), in one lookup: most facts of a run are
    /// seen again (a client id in every record of its flows).
    pub fn touch(&mut self, ip: IpAddr, kind: Kind, value: &str, seen: Seen) -> bool {
        self.touch_at(ip, kind, value, seen.ts, || seen.flow)
    }

    /// [`Table::touch`] seen at `ts` in the flow `flow` gives: its id is
    /// asked for only when `ts` ties with a first seen (a fact seen again
    /// is nearly always seen later, which the time alone tells; a flow's
    /// id is a hash of its key and start).
    pub(crate) fn touch_at(
        &mut self,
        ip: IpAddr,
        kind: Kind,
        value: &str,
        ts: Timestamp,
        flow: impl Fn() -> u64,
    ) -> bool {
        // `Seen { ts, flow } < first`, the id computed when needed.
        let earlier = |first: Seen| ts < first.ts || (ts == first.ts && flow() < first.flow);
        let Some(a) = self.hosts.get_mut(&ip) else {
            return false;
        };
        let Some(f) = a
            .facts
            .iter_mut()
            .find(|f| f.kind == kind && &*f.value == value)
        else {
            return false;
        };
        if earlier(f.first) {
            f.first = Seen { ts, flow: flow() };
            f.reported = false;
        }
        f.last = f.last.max(ts);
        if earlier(a.first) {
            let seen = Seen { ts, flow: flow() };
            if self.factless.on && !a.identified() {
                self.factless.remove((a.first, ip));
                self.factless.insert((seen, ip));
            }
            a.first = seen;
        }
        true
    }

    /// Adds a fact to host `ip` (made if needed).
    pub fn fact(&mut self, ip: IpAddr, kind: Kind, value: &str, seen: Seen, last: Timestamp) {
        let room = self.room(FACT_BYTES + value.len() as u64);
        let max = self.max_values;
        let Some((a, kept)) = self.host_kept(ip, seen, kind.identifying()) else {
            return;
        };
        // Only a kept factless set needs to know whether the host became
        // identified.
        let track = kept && kind.identifying();
        let was = track && a.identified();
        let first = a.first;
        match a.add_fact(kind, value, seen, last, max, room) {
            FactOutcome::Added(n) => self.bytes += n,
            FactOutcome::Replaced(d) => {
                self.bytes = self.bytes.saturating_add_signed(d);
            }
            FactOutcome::NoRoom => self.stats.memcap += 1,
            FactOutcome::Updated | FactOutcome::Refused => {}
        }
        if track && !was {
            if let Some(a) = self.hosts.get(&ip) {
                if a.identified() {
                    self.factless.remove((first, ip));
                }
            }
        }
    }

    /// Adds everything `other` holds (another worker's view of the same
    /// run), then leaves `other` empty.
    pub fn absorb(&mut self, other: &mut Table) {
        self.stats.merge(&other.stats);
        other.stats = AssetStats::default();
        let mut hosts: Vec<Option<Asset>> = other.hosts.drain().map(|(_, a)| Some(a)).collect();
        other.factless.clear();
        other.bytes = 0;
        // In a fixed order, so that what a full table refuses is the same
        // whatever order the hash map had. The keys are sorted, not the
        // hosts (a few hundred bytes each); addresses are unique, so an
        // unstable sort gives the one order.
        let mut order: Vec<(Seen, (bool, u128), usize)> = hosts
            .iter()
            .enumerate()
            .filter_map(|(i, a)| a.as_ref().map(|a| (a.first, ip_order(a.ip), i)))
            .collect();
        order.sort_unstable();
        for o in order
            .into_iter()
            .filter_map(|(_, _, i)| hosts.get_mut(i).and_then(Option::take))
        {
            let Some(o) = self.adopt(o) else {
                continue;
            };
            let identified = o.identified();
            let Some(a) = self.host(o.ip, o.first, identified) else {
                continue;
            };
            a.merge_counters(&o);
            // The facts the host has already (most of them, when a host
            // is seen over several seconds) only get their times, in the
            // one lookup above; from the first it has not (or one that
            // would move the host's first seen), each goes through
            // `fact` in order, as all of them did.
            let mut known = 0;
            for f in &o.facts {
                if f.first < a.first {
                    break;
                }
                let Some(g) = a
                    .facts
                    .iter_mut()
                    .find(|g| g.kind == f.kind && *g.value == *f.value)
                else {
                    break;
                };
                if f.first < g.first {
                    g.first = f.first;
                    g.reported = false;
                }
                g.last = g.last.max(f.last);
                known += 1;
            }
            for f in o.facts.get(known..).unwrap_or_default() {
                self.fact(o.ip, f.kind, &f.value, f.first, f.last);
            }
        }
    }

    /// Takes `o` whole (another table's host, absorbed) when this table
    /// does not know its address and has room for it and all its facts:
    /// what making the host and adding its facts one by one would leave
    /// (its facts are distinct, at most `max_values` of a kind, none
    /// first seen before it), without a lookup per fact. Otherwise gives
    /// `o` back.
    fn adopt(&mut self, mut o: Asset) -> Option<Asset> {
        if self.hosts.len() >= self.max_hosts
            || !self.room(o.bytes())
            || o.facts.iter().any(|f| f.first < o.first)
        {
            return Some(o);
        }
        if o.facts.len() > self.max_values {
            let mut of_kind = [0usize; Kind::ALL.len()];
            for f in &o.facts {
                let n = &mut of_kind[f.kind as usize];
                *n += 1;
                if *n > self.max_values {
                    return Some(o);
                }
            }
        }
        let std::collections::hash_map::Entry::Vacant(slot) = self.hosts.entry(o.ip) else {
            return Some(o);
        };
        self.bytes += o.bytes();
        if self.factless.on && !o.identified() {
            self.factless.insert((o.first, o.ip));
        }
        o.last = o.last.max(o.first.ts);
        for f in &mut o.facts {
            f.reported = false;
        }
        slot.insert(o);
        None
    }
}

/// A key in `IpAddr`'s order (IPv4 first, each by its bits), compared as
/// two integers rather than through `IpAddr`'s own comparison: the whole
/// table is sorted by address for the changes and again for the
/// snapshots. Addresses are unique in the table, so an unstable sort
/// gives the one order.
fn ip_order(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The run's assets: the table every worker's view is merged into, the
/// findings of alerts whose threshold decision is pending, and what was
/// written so far.
#[derive(Debug)]
pub struct Hub {
    pub cfg: AssetConfig,
    pub out: AssetOutput,
    /// The hosts inventoried.
    home: crate::detect::AddrSet,
    /// What a finding's value must be, as PHI detection configures it.
    phi: crate::detect::phi::PhiConfig,
    /// How a value that looks like PHI is masked: always, with the run's
    /// key (`outputs.unmask_sensitive` does not reach asset records).
    mask: crate::output::mask::LogOptions,
    table: Mutex<Table>,
    /// Findings of alerts held for a threshold decision, by ticket.
    pending: Mutex<ahash::AHashMap<crate::detect::Ticket, observe::PendingFinding>>,
    /// Severities of the alerts held for a threshold decision, by ticket
    /// (inventory on or not): the worker that writes one counts it
    /// ([`observe::View::decided`]).
    held: Mutex<ahash::AHashMap<crate::detect::Ticket, u8>>,
    /// Live run: write changes and snapshots every `out.interval`.
    periodic: std::sync::atomic::AtomicBool,
    /// Packet time (s) of the last periodic records.
    last_emit: std::sync::atomic::AtomicU64,
    baseline: Option<baseline::Baseline>,
    /// Rules on asset changes: the ruleset in force (the workers') and
    /// their detection state.
    rules: Mutex<ChangeRules>,
}

/// The ruleset the `asset` hook's rules come from, and where their
/// thresholds are counted.
struct ChangeRules {
    engine: Option<Arc<crate::detect::Engine>>,
    state: crate::detect::DetectState,
    /// Some rule of `engine` may fire on this run's changes
    /// ([`detect::may_fire`]): else they are not evaluated.
    fires: bool,
    /// Alerts written.
    alerts: u64,
}

impl std::fmt::Debug for ChangeRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeRules")
            .field("alerts", &self.alerts)
            .finish_non_exhaustive()
    }
}

impl ChangeRules {
    fn new(cfg: &crate::config::Config) -> Mutex<ChangeRules> {
        Mutex::new(ChangeRules {
            engine: None,
            state: crate::detect::DetectState::new(&cfg.detect),
            fires: false,
            alerts: 0,
        })
    }
}

impl Hub {
    /// The hub of a run configured by `cfg`.
    ///
    /// # Errors
    /// `asset.home_net` does not parse, or the baseline cannot be read.
    pub fn new(cfg: &crate::config::Config) -> Result<Hub, String> {
        let text = cfg
            .asset
            .home_net
            .clone()
            .unwrap_or_else(|| "$HOME_NET".to_string());
        let home = crate::detect::AddrSet::parse(&text, &cfg.vars)
            .map_err(|e| format!("asset.home_net: {e}"))?;
        let baseline = match &cfg.asset.baseline {
            Some(p) => Some(baseline::Baseline::load(p)?),
            None => None,
        };
        Ok(Hub {
            cfg: cfg.asset.clone(),
            out: cfg.outputs.asset.clone(),
            home,
            phi: cfg.detect.phi.clone(),
            mask: crate::output::mask::LogOptions::masked(
                cfg.outputs
                    .mask_key
                    .unwrap_or_else(crate::output::mask::MaskKey::per_process),
            ),
            table: Mutex::new(Table::new(&cfg.asset, true)),
            pending: Mutex::new(ahash::AHashMap::new()),
            held: Mutex::new(ahash::AHashMap::new()),
            periodic: std::sync::atomic::AtomicBool::new(false),
            last_emit: std::sync::atomic::AtomicU64::new(0),
            baseline,
            rules: ChangeRules::new(cfg),
        })
    }

    /// A hub that inventories nothing and writes nothing (what a run
    /// gets when its asset configuration was refused; `main` reports
    /// that before any run starts).
    pub fn disabled(cfg: &crate::config::Config) -> Hub {
        let mut out = cfg.outputs.asset.clone();
        out.enabled = false;
        out.inventory = None;
        Hub {
            cfg: cfg.asset.clone(),
            out,
            home: crate::detect::AddrSet::default(),
            phi: cfg.detect.phi.clone(),
            mask: crate::output::mask::LogOptions::masked(
                cfg.outputs
                    .mask_key
                    .unwrap_or_else(crate::output::mask::MaskKey::per_process),
            ),
            table: Mutex::new(Table::new(&cfg.asset, true)),
            pending: Mutex::new(ahash::AHashMap::new()),
            held: Mutex::new(ahash::AHashMap::new()),
            periodic: std::sync::atomic::AtomicBool::new(false),
            last_emit: std::sync::atomic::AtomicU64::new(0),
            baseline: None,
            rules: ChangeRules::new(cfg),
        }
    }

    /// Inventory is on (`outputs.asset.enabled`).
    pub fn enabled(&self) -> bool {
        self.out.enabled
    }

    /// Whether `ip` is inventoried.
    pub fn is_home(&self, ip: IpAddr) -> bool {
        self.home.contains(ip)
    }

    /// The ruleset in force (each worker tells it when it starts and at
    /// each reload): the `asset` hook's rules are evaluated on the
    /// changes written from now on.
    pub fn set_engine(&self, engine: &Arc<crate::detect::Engine>) {
        let mut r = lock(&self.rules);
        if !r.engine.as_ref().is_some_and(|e| Arc::ptr_eq(e, engine)) {
            r.engine = Some(Arc::clone(engine));
            r.fires = detect::may_fire(engine, self.baseline.is_some());
        }
    }

    /// Writes the changes not written yet, and the alerts of the rules on
    /// them (counted in `out`'s tally).
    fn changes(&self, t: &mut Table, out: &mut log::Blocks<'_>, threads: usize) {
        let mut r = lock(&self.rules);
        let ChangeRules {
            engine,
            state,
            fires,
            alerts,
        } = &mut *r;
        let engine = engine.as_deref().filter(|_| *fires);
        let mut eval = |rec: &crate::app::AppRecord| match engine {
            Some(e) => detect::evaluate(e, state, rec),
            None => Vec::new(),
        };
        let on: Option<log::ChangeRules<'_>> = match engine {
            Some(_) => Some(&mut eval),
            None => None,
        };
        *alerts += log::write_changes(t, self.baseline.as_ref(), out, on, threads);
    }

    /// A live run: changes and snapshots are written every
    /// `outputs.asset.interval` seconds, not only at the end.
    pub fn set_live(&self) {
        self.periodic
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Merges a worker's table; in a live run, every `interval` seconds of
    /// packet time, writes the changes merged so far and a snapshot of
    /// every host to `out`. Returns the alert records written, by
    /// severity slot ([`crate::output::sink::Tally::alerts`]).
    pub fn absorb(&self, view: &mut Table, now: Timestamp, out: &mut Vec<u8>) -> [u64; 5] {
        let mut t = lock(&self.table);
        t.absorb(view);
        use std::sync::atomic::Ordering;
        if !self.periodic.load(Ordering::Relaxed) || self.out.interval == 0 || !self.enabled() {
            return [0; 5];
        }
        let last = self.last_emit.load(Ordering::Relaxed);
        if last == 0 {
            self.last_emit.store(now.secs(), Ordering::Relaxed);
            return [0; 5];
        }
        if now.secs() < last.saturating_add(self.out.interval) {
            return [0; 5];
        }
        self.last_emit.store(now.secs(), Ordering::Relaxed);
        let mut blocks = log::Blocks::kept(std::mem::take(out));
        self.changes(&mut t, &mut blocks, 1);
        log::write_snapshots(&t, now, self.baseline.as_ref(), 1, &mut blocks);
        let (kept, added) = blocks.into_kept();
        *out = kept;
        added.alerts
    }

    /// The end of the run (every worker has handed its table over): the
    /// changes not written yet and a snapshot of every host, made by up
    /// to `threads` threads and handed to `emit` a block at a time, and
    /// the inventory file when one was asked for.
    ///
    /// # Errors
    /// The inventory file cannot be written.
    pub fn finish(
        &self,
        end: Timestamp,
        threads: usize,
        emit: &mut dyn FnMut(crate::output::sink::Block),
    ) -> Result<(), String> {
        let mut t = lock(&self.table);
        // Findings still pending lost their decision: counted as written
        // (their alert lines were written).
        let mut rest: Vec<observe::PendingFinding> =
            lock(&self.pending).drain().map(|(_, p)| p).collect();
        rest.sort_by(|a, b| a.order().cmp(&b.order()));
        for p in rest {
            p.apply(&mut t);
        }
        if self.enabled() {
            let mut out = log::Blocks::to(emit);
            self.changes(&mut t, &mut out, threads);
            log::write_snapshots(&t, end, self.baseline.as_ref(), threads, &mut out);
            out.finish();
        }
        if let Some(p) = &self.out.inventory {
            log::write_inventory(&t, self.baseline.as_ref(), p)
                .map_err(|e| format!("cannot write the inventory {}: {e}", p.display()))?;
        }
        Ok(())
    }

    /// `stats.asset.*`, from the table as it stands.
    pub fn counters(&self) -> Vec<(String, u64)> {
        let t = lock(&self.table);
        let truncated = t
            .hosts
            .values()
            .map(|a| u64::from(a.truncated.count_ones()))
            .sum();
        let s = &t.stats;
        vec![
            ("asset.hosts".into(), t.len() as u64),
            ("asset.memuse".into(), t.bytes()),
            ("asset.hosts_dropped".into(), s.hosts_dropped),
            ("asset.hosts_evicted".into(), s.hosts_evicted),
            ("asset.memcap".into(), s.memcap),
            ("asset.lists_truncated".into(), truncated),
            ("asset.values_cut".into(), s.values_cut),
            ("asset.phi_masked".into(), s.phi_masked),
            ("asset.alerts".into(), lock(&self.rules).alerts),
        ]
    }

    /// A copy of the table's hosts, by address (tests, tools).
    pub fn hosts(&self) -> Vec<Asset> {
        lock(&self.table).sorted().into_iter().cloned().collect()
    }
}

#[cfg(test)]
impl Table {
    /// The hosts without an identifying fact, from the hosts; checks that
    /// the kept set, when kept, is the same.
    fn factless_checked(&self) -> BTreeSet<(Seen, IpAddr)> {
        let now: BTreeSet<(Seen, IpAddr)> = self
            .hosts
            .values()
            .filter(|a| !a.identified())
            .map(|a| (a.first, a.ip))
            .collect();
        if self.factless.on {
            assert_eq!(self.factless.set, now, "the kept factless set");
        }
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The sort key orders addresses as `IpAddr` does.
        #[test]
        fn ip_order_is_the_address_order(a in proptest::prelude::any::<IpAddr>(), b in proptest::prelude::any::<IpAddr>()) {
            proptest::prop_assert_eq!(ip_order(a).cmp(&ip_order(b)), a.cmp(&b));
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn seen(secs: u64, flow: u64) -> Seen {
        Seen {
            ts: Timestamp::from_parts(secs, 0),
            flow,
        }
    }

    fn cfg(max_hosts: usize, max_values: usize) -> AssetConfig {
        AssetConfig {
            max_hosts,
            max_values,
            ..AssetConfig::default()
        }
    }

    #[test]
    fn values_past_the_limit_keep_the_earliest_whatever_the_order() {
        // Hand-built: five AE titles first seen at 1..5 s, limit 3, given
        // in two different orders and split over two tables.
        let titles = [(5, "E"), (1, "A"), (4, "D"), (2, "B"), (3, "C")];
        let mut results = Vec::new();
        for order in [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0]] {
            let mut all = Table::new(&cfg(10, 3), true);
            let mut part = Table::new(&cfg(10, 3), false);
            for (n, &i) in order.iter().enumerate() {
                let (s, v) = titles[i];
                let t = if n % 2 == 0 { &mut all } else { &mut part };
                t.fact(
                    ip("10.0.0.1"),
                    Kind::DicomScuAe,
                    v,
                    seen(s, 9),
                    Timestamp::from_parts(s, 0),
                );
            }
            all.absorb(&mut part);
            let a = all.get(&ip("10.0.0.1")).unwrap();
            assert!(a.is_truncated(Kind::DicomScuAe));
            results.push(a.values(Kind::DicomScuAe).join(","));
        }
        assert_eq!(results, ["A,B,C", "A,B,C"]);
    }

    #[test]
    fn a_full_table_gives_a_factless_host_up_for_an_identified_one() {
        // Hand-built: two hosts seen only in flows fill a table of two; a
        // third with an AE title evicts the later of them; a fourth with
        // nothing to say is dropped.
        let mut t = Table::new(&cfg(2, 4), true);
        t.host(ip("10.0.0.1"), seen(1, 1), false);
        t.host(ip("10.0.0.2"), seen(2, 2), false);
        t.fact(
            ip("10.0.0.3"),
            Kind::DicomScuAe,
            "CT01",
            seen(3, 3),
            Timestamp::from_parts(3, 0),
        );
        assert!(t.get(&ip("10.0.0.2")).is_none());
        assert!(t.get(&ip("10.0.0.3")).is_some());
        assert!(t.host(ip("10.0.0.4"), seen(4, 4), false).is_none());
        assert_eq!((t.stats.hosts_evicted, t.stats.hosts_dropped), (1, 1));
        // The set is kept from the first time the table was full.
        assert!(t.factless.on);
        assert_eq!(t.factless_checked().len(), 1);
        // Both left have identifying facts or are the earliest: a fifth
        // identified host evicts the remaining factless one.
        t.fact(
            ip("10.0.0.5"),
            Kind::MqttClientId,
            "x",
            seen(5, 5),
            Timestamp::from_parts(5, 0),
        );
        assert!(t.get(&ip("10.0.0.1")).is_none());
        // Now every host is identified: a sixth is dropped.
        t.fact(
            ip("10.0.0.6"),
            Kind::MqttClientId,
            "y",
            seen(6, 6),
            Timestamp::from_parts(6, 0),
        );
        assert!(t.get(&ip("10.0.0.6")).is_none());
        assert_eq!((t.stats.hosts_evicted, t.stats.hosts_dropped), (2, 2));
    }

    #[test]
    fn memcap_refuses_facts_and_counts_them() {
        // Hand-built: a budget of one host and one 4-byte fact.
        let mut c = cfg(10, 10);
        c.memcap = crate::memcap::ByteSize(HOST_BYTES + FACT_BYTES + 4);
        let mut t = Table::new(&c, true);
        let now = Timestamp::from_parts(1, 0);
        t.fact(ip("10.0.0.1"), Kind::MqttClientId, "abcd", seen(1, 1), now);
        t.fact(ip("10.0.0.1"), Kind::MqttClientId, "efgh", seen(1, 1), now);
        t.fact(ip("10.0.0.2"), Kind::MqttClientId, "ijkl", seen(1, 1), now);
        assert_eq!(t.get(&ip("10.0.0.1")).unwrap().facts.len(), 1);
        assert!(t.get(&ip("10.0.0.2")).is_none());
        assert_eq!(t.stats.memcap, 2);
        assert!(t.bytes() <= c.memcap.0);
    }

    #[test]
    fn a_live_run_writes_changes_and_snapshots_every_interval_only() {
        // Hand-built: one worker's table handed over at 10 s, 200 s and
        // 320 s of packet time, interval 300 s.
        let cfg = crate::config::Config::default();
        let hub = Hub::new(&cfg).unwrap();
        hub.set_live();
        let mut view = Table::new(&cfg.asset, false);
        let h = ip("10.20.1.15");
        let mut out = Vec::new();
        for (s, id) in [(10, "MON-1"), (200, "MON-2"), (320, "MON-3")] {
            let now = Timestamp::from_parts(s, 0);
            view.fact(h, Kind::MqttClientId, id, seen(s, s), now);
            hub.absorb(&mut view, now, &mut out);
            if s < 320 {
                assert!(out.is_empty(), "nothing before the interval");
            }
        }
        let text = String::from_utf8(out).unwrap();
        let events: Vec<&str> = text
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                match v["asset"]["event"].as_str().unwrap() {
                    "new" => "new",
                    "changed" => "changed",
                    _ => "snapshot",
                }
            })
            .collect();
        assert_eq!(events, ["new", "changed", "changed", "snapshot"]);
        // An offline hub (not live) writes nothing before its end.
        let offline = Hub::new(&cfg).unwrap();
        let mut out = Vec::new();
        view.fact(
            h,
            Kind::MqttClientId,
            "MON-4",
            seen(999, 9),
            Timestamp::from_parts(999, 0),
        );
        offline.absorb(&mut view, Timestamp::from_parts(999, 0), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn changes_are_evaluated_without_a_baseline_only_when_a_rule_may_fire() {
        // Hand-built: one host's client id, at the end of an offline run
        // without a baseline; a rule on new hosts fires, the shipped rules
        // (all on baseline differences) are not evaluated.
        let cfg = crate::config::Config::default();
        let run = |rules: &str| {
            let hub = Hub::new(&cfg).unwrap();
            hub.set_engine(&Arc::new(crate::detect::Engine::from_test_rules(rules)));
            let fires = lock(&hub.rules).fires;
            let mut view = Table::new(&cfg.asset, false);
            let now = Timestamp::from_parts(10, 0);
            view.fact(
                ip("10.20.1.15"),
                Kind::MqttClientId,
                "MON-1",
                seen(10, 1),
                now,
            );
            hub.absorb(&mut view, now, &mut Vec::new());
            let mut out = Vec::new();
            hub.finish(now, 1, &mut |b| out.extend_from_slice(&b.bytes))
                .unwrap();
            let alerts = String::from_utf8(out)
                .unwrap()
                .lines()
                .filter(|l| l.contains("\"event_type\":\"alert\""))
                .count();
            (fires, alerts)
        };
        assert_eq!(
            run("alert asset any any -> any any (msg:\"n\"; asset.event:new; sid:1;)"),
            (true, 1)
        );
        let shipped = super::detect::tests::shipped_asset_rules();
        assert_eq!(run(&shipped), (false, 0));
    }

    proptest::proptest! {
        /// `touch` then `fact` for what it does not know leaves the table
        /// as `fact` alone does, whatever the facts and their order.
        #[test]
        fn touching_a_known_fact_is_adding_it_again(
            facts in proptest::collection::vec(
                (0u8..3, 0usize..4, 0u8..3, 0u64..5, 0u64..3),
                1..40,
            ),
        ) {
            let kinds = [Kind::Role, Kind::MqttClientId, Kind::Mac, Kind::Service];
            let mut slow = Table::new(&cfg(2, 2), true);
            let mut fast = Table::new(&cfg(2, 2), true);
            for (host, kind, value, secs, flow) in facts {
                let ip = ip(&format!("10.0.0.{host}"));
                let kind = kinds[kind];
                let value = format!("v{value}");
                let s = seen(secs, flow);
                slow.fact(ip, kind, &value, s, s.ts);
                if !fast.touch(ip, kind, &value, s) {
                    fast.fact(ip, kind, &value, s, s.ts);
                }
            }
            proptest::prop_assert_eq!(slow.sorted(), fast.sorted());
            proptest::prop_assert_eq!(slow.factless_checked(), fast.factless_checked());
            proptest::prop_assert_eq!(slow.bytes, fast.bytes);
        }
    }

    /// `Table::absorb` as it was: every host through `host` and every
    /// fact through `fact` (the reference of the one-lookup paths).
    fn absorb_fact_by_fact(t: &mut Table, other: &mut Table) {
        t.stats.merge(&other.stats);
        other.stats = AssetStats::default();
        let mut hosts: Vec<Asset> = other.hosts.drain().map(|(_, a)| a).collect();
        other.factless.clear();
        other.bytes = 0;
        hosts.sort_by_key(|a| (a.first, a.ip));
        for o in hosts {
            if t.host(o.ip, o.first, o.identified()).is_none() {
                continue;
            }
            for f in &o.facts {
                t.fact(o.ip, f.kind, &f.value, f.first, f.last);
            }
            if let Some(a) = t.hosts.get_mut(&o.ip) {
                a.merge_counters(&o);
            }
        }
    }

    proptest::proptest! {
        /// Absorbing views (hosts taken whole, known facts updated in one
        /// lookup) leaves the table, its order of refusal and its counters
        /// as adding every host and fact one by one does, under full
        /// tables, value limits and a byte budget too.
        #[test]
        fn absorbing_equals_adding_fact_by_fact(
            rounds in proptest::collection::vec(
                proptest::collection::vec(
                    (0u8..6, 0usize..4, 0u8..4, 0u64..6, 0u64..4, 0u64..3),
                    0..30,
                ),
                1..5,
            ),
            max_hosts in 1usize..6,
            max_values in 1usize..4,
            memcap in proptest::option::of(300u64..2500),
        ) {
            let kinds = [Kind::Role, Kind::MqttClientId, Kind::Mac, Kind::Service];
            let mut c = cfg(max_hosts, max_values);
            if let Some(m) = memcap {
                c.memcap = crate::memcap::ByteSize(m);
            }
            let mut slow = Table::new(&c, true);
            let mut fast = Table::new(&c, true);
            for facts in rounds {
                let mut view = Table::new(&c, false);
                for (host, kind, value, secs, flow, extra) in facts {
                    let ip = ip(&format!("10.0.0.{host}"));
                    let s = seen(secs, flow);
                    view.fact(ip, kinds[kind], &format!("v{value}"), s, Timestamp::from_parts(secs + extra, 0));
                    if let Some(a) = view.host(ip, s, false) {
                        a.last = a.last.max(Timestamp::from_parts(secs + extra, 0));
                        a.traffic.entry("mqtt").or_default().client_flows += 1;
                        if extra == 1 {
                            a.countries.entry(*b"CN").or_default().flows += 1;
                        }
                    }
                }
                let mut copy = Table::new(&c, false);
                copy.hosts = view.hosts.clone();
                copy.factless = view.factless.clone();
                copy.bytes = view.bytes;
                copy.stats = view.stats.clone();
                absorb_fact_by_fact(&mut slow, &mut copy);
                fast.absorb(&mut view);
                proptest::prop_assert!(view.is_empty());
                proptest::prop_assert_eq!(slow.sorted(), fast.sorted());
                proptest::prop_assert_eq!(slow.factless_checked(), fast.factless_checked());
                proptest::prop_assert_eq!(slow.bytes, fast.bytes);
                proptest::prop_assert_eq!(&slow.stats, &fast.stats);
            }
        }
    }

    #[test]
    fn merging_takes_the_earliest_first_seen_and_adds_counters() {
        let mut a = Table::new(&cfg(10, 10), true);
        let mut b = Table::new(&cfg(10, 10), false);
        let h = ip("10.0.0.1");
        a.fact(
            h,
            Kind::Role,
            "mqtt-client",
            seen(5, 2),
            Timestamp::from_parts(9, 0),
        );
        b.fact(
            h,
            Kind::Role,
            "mqtt-client",
            seen(3, 1),
            Timestamp::from_parts(4, 0),
        );
        b.host(h, seen(3, 1), false).unwrap().countries.insert(
            *b"CN",
            Contact {
                flows: 1,
                bytes: 10,
            },
        );
        a.host(h, seen(5, 2), false)
            .unwrap()
            .countries
            .insert(*b"CN", Contact { flows: 2, bytes: 5 });
        a.absorb(&mut b);
        assert!(b.is_empty());
        let x = a.get(&h).unwrap();
        assert_eq!(x.first, seen(3, 1));
        assert_eq!(x.facts[0].first, seen(3, 1));
        assert_eq!(x.facts[0].last, Timestamp::from_parts(9, 0));
        assert_eq!(
            x.countries[b"CN"],
            Contact {
                flows: 3,
                bytes: 15
            }
        );
    }
}
