//! Detection: rules in Suricata's syntax evaluated on packets and on the
//! app-layer records (MQTT, DICOM and HL7 transactions) of each flow, plus the
//! medical building blocks no IDS has — PHI ([`phi`]), default credentials
//! and reputation lists ([`lists`]), and the country of each flow end
//! ([`geo`]).
//!
//! Configuration is in `config`, per-worker and per-flow state in
//! `state`, evaluation (the [`Engine`]) in `engine`. Rule text is cut by
//! `text`, headers compiled by `addr`, options by
//! `rule` (payload matching in `content`, rate limits in `threshold`);
//! outside knowledge comes through [`Lookups`]; each application protocol
//! offers its keywords through [`protocol::Keywords`]. Rules are grouped by
//! hook (packet rules per IP protocol, each protocol's transactions); per hook
//! and buffer an aho-corasick automaton over each rule's fast pattern
//! picks the candidates, and only those are evaluated, `pass` rules first,
//! then the others in load order. Each flow caches whether any rule header
//! fits it, so flows no rule can match cost one flag test per packet.
//!
//! Contract:
//! - An [`Engine`] is built once from [`Vars`], [`DetectConfig`] and rule
//!   texts, is immutable afterwards and shared by all workers (`Arc`). A
//!   reload builds a new one; a rule that fails to parse is reported in the
//!   [`LoadReport`] with file, line and reason and the others still load.
//! - Each worker owns a [`DetectState`] (counters, and its place in the
//!   run's [`ThresholdHub`]: thresholds tracked by source, destination,
//!   address pair or rule are shared by all workers and decided by match
//!   time, module `threshold`); each flow owns a [`FlowDetect`] (flowbits,
//!   per-flow thresholds, cached countries).
//! - The worker calls [`Engine::packet`] for every packet of a flow and
//!   [`Engine::record`] for every app-layer record, before writing the
//!   record; alerts come back in `out` and the worker writes them, except
//!   those marked `undecided`, which it holds through the contract of
//!   module `deferred` ([`DetectState::hold`], [`DetectState::sync`]).
//! - [`FlowInfo::ts`] is the match time thresholds count in; every match a
//!   worker produces after calling [`DetectState::sync`] with packet time
//!   `t` is at least `t` less the margin given to [`DetectState::shared`].

mod addr;
mod config;
mod content;
mod deferred;
mod engine;
pub mod geo;
pub mod lists;
mod lookup;
pub mod phi;
pub mod protocol;
mod rule;
mod state;
mod text;
mod threshold;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use serde::Deserialize;

use crate::app::{AppProto, AppRecord};
use crate::flow::{Direction, Endpoint};
use crate::time::Timestamp;

pub(crate) use addr::AddrSet;
pub use config::{
    DatasetConfig, DatasetKind, DetectConfig, Error, LoadReport, ReputationConfig, RuleError,
    RuleSource, Vars,
};
pub use deferred::{FlowRef, ThresholdHub};
pub use engine::Engine;
pub use lookup::{
    CountryLookup, CredentialLookup, Dataset, IpLookup, Lookups, Nothing, PhiDetectors, PhiScanner,
    ReputationLookup, StringLookup,
};
pub use protocol::{Keyword, Keywords, TxBuffer, TxPredicate};
use rule::{BufId, Cond, CredTest, FlowbitAction, Proto, Rule, Side};
pub use state::{DetectState, DetectStats, FlowDetect};
pub use threshold::Ticket;

/// ISO 3166-1 alpha-2 country code, upper case ASCII (`*b"FR"`).
pub type Country = [u8; 2];

/// Rule action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Alert,
    /// A match stops inspection of the flow: no further alerts on it.
    Pass,
}

/// What an alert says about its rule (shared by all its alerts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMeta {
    pub action: Action,
    pub gid: u32,
    pub sid: u32,
    pub rev: u32,
    /// `msg`.
    pub msg: String,
    pub classtype: Option<String>,
    /// The classtype's description ("" without classtype, like Suricata).
    pub category: String,
    /// `priority`, else the classtype's, else 3.
    pub severity: u8,
    /// `metadata` key/value pairs in rule order (`finding plaintext-phi`).
    pub metadata: Vec<(String, String)>,
    /// `reference` values as `type,value` (`url,www.cisa.gov/…`).
    pub references: Vec<String>,
    /// The EVE `alert` object of this rule, serialised at its first alert
    /// and copied into every later one (`output::alert`). A rule reload
    /// builds new [`RuleMeta`]s, so the copy never outlives its rule.
    pub eve: EveCache,
}

/// Bytes an output module serialised once for a value that does not
/// change ([`RuleMeta::eve`]). Equality, cloning and `Debug` ignore what
/// it holds: it is a cache of the other fields.
#[derive(Default)]
pub struct EveCache(std::sync::OnceLock<Box<[u8]>>);

impl EveCache {
    /// The bytes, made by `make` the first time.
    pub fn get_or_init(&self, make: impl FnOnce() -> Box<[u8]>) -> &[u8] {
        self.0.get_or_init(make)
    }
}

impl Clone for EveCache {
    fn clone(&self) -> Self {
        EveCache::default()
    }
}

impl PartialEq for EveCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for EveCache {}

impl std::fmt::Debug for EveCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EveCache")
    }
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub rule: Arc<RuleMeta>,
    /// Direction of the packet or transaction that matched: the EVE
    /// `src_ip` is the client for `ToServer`, the server for `ToClient`.
    pub dir: Direction,
    /// Patient data the rule's `phi` keyword found (shared by the alerts
    /// of one packet or record: made once, not copied per alert).
    pub phi: Option<Arc<phi::PhiReport>>,
    /// Country of the client and of the server, when known.
    pub countries: [Option<Country>; 2],
    /// The rule's threshold decides later (the match is tracked with other
    /// workers' matches): hand the alert to [`DetectState::hold`].
    pub undecided: Option<Ticket>,
}

/// What the engine knows of a flow at a packet or record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowInfo {
    /// The match time: the packet's time, or for a transaction logged when
    /// its flow ended, the time the flow ended (thresholds count in it).
    pub ts: Timestamp,
    /// The flow's EVE `flow_id` (orders matches of equal time).
    pub flow_id: u64,
    pub client: Endpoint,
    pub server: Endpoint,
    /// IP protocol number.
    pub proto: u8,
    pub app_proto: AppProto,
    /// TCP: the handshake completed as far as the capture shows (both
    /// sides', or the client's ACK after its SYN, or the server sending
    /// after its SYN/ACK when the client side is not captured), or the flow
    /// was picked up mid-stream. UDP: packets both ways.
    pub established: bool,
    /// Bytes on the wire to the server and to the client so far.
    pub bytes: [u64; 2],
    pub pkts: [u64; 2],
}

/// A packet of a flow.
#[derive(Debug, Clone, Copy)]
pub struct PacketInfo<'a> {
    pub flow: FlowInfo,
    pub dir: Direction,
    /// TCP/UDP payload of this packet (not reassembled).
    pub payload: &'a [u8],
}
