//! Rules on asset changes (issue 13, "Baseline and drift"): what a rule of
//! the `asset` hook sees.
//!
//! A [`Change`] is one `new` or `changed` record of a host (see
//! [`super::log::write_changes`]): its facts as of that record, and at
//! most one difference from the baseline inventory that the record brought
//! (`new-device`, `ae-title-moved`, `device-changed`, see
//! [`super::baseline`]). A record that brings several differences is
//! evaluated once per difference, so that each raises its own alert; one
//! that brings none is evaluated once without. A difference already
//! present in the host's earlier records is not brought again: each
//! difference is alerted on once per run.

use std::net::IpAddr;

use super::baseline::Drift;
use super::{Kind, Seen};

/// A change of one host, as rules on the `asset` hook see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub ip: IpAddr,
    /// Time and flow of the change's last fact (the record's
    /// `timestamp` and `flow_id`).
    pub seen: Seen,
    /// The host's first record (`event: new`), else `changed`.
    pub new: bool,
    /// Kinds of the facts the record added.
    pub changed: Vec<Kind>,
    /// The host's facts as of the record, by kind, then as first seen.
    pub facts: Vec<(Kind, Box<str>)>,
    /// With a baseline inventory: whether it knew the host.
    pub known: Option<bool>,
    /// The difference from the baseline this evaluation is about.
    pub drift: Option<Drift>,
}

impl Change {
    /// The values of `kind`, as first seen.
    pub fn values(&self, kind: Kind) -> impl Iterator<Item = &str> {
        let start = self.facts.partition_point(|(k, _)| *k < kind);
        self.facts[start..]
            .iter()
            .take_while(move |(k, _)| *k == kind)
            .map(|(_, v)| &**v)
    }
}
