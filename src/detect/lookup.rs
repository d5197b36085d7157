//! The outside knowledge rules consult — country database, reputation
//! lists, default credentials, datasets, PHI detectors — behind small
//! traits, so the engine is built from the real files in production and
//! from fakes in tests ([`Lookups`], [`super::Engine::build_with`]).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use super::{geo, lists, phi, Country, DatasetKind, DetectConfig, Error};
use crate::app::AppRecord;

/// Country of an address.
pub trait CountryLookup: Send + Sync + Debug {
    /// `None` when unknown (private and reserved ranges).
    fn country(&self, ip: IpAddr) -> Option<Country>;
}

impl CountryLookup for geo::GeoDb {
    fn country(&self, ip: IpAddr) -> Option<Country> {
        geo::GeoDb::country(self, ip)
    }
}

/// Suricata iprep.
pub trait ReputationLookup: Send + Sync + Debug {
    fn category(&self, name: &str) -> Option<u8>;
    fn score(&self, ip: IpAddr, cat: u8) -> Option<u8>;
}

impl ReputationLookup for lists::Reputation {
    fn category(&self, name: &str) -> Option<u8> {
        lists::Reputation::category(self, name)
    }
    fn score(&self, ip: IpAddr, cat: u8) -> Option<u8> {
        lists::Reputation::score(self, ip, cat)
    }
}

/// Default-credential list.
pub trait CredentialLookup: Send + Sync + Debug {
    /// Whether the login is a listed default; `protocol` is `mqtt` or `dicom`.
    fn is_default(&self, protocol: &str, username: &[u8], password: Option<&[u8]>) -> bool;
}

impl CredentialLookup for lists::CredentialList {
    fn is_default(&self, protocol: &str, username: &[u8], password: Option<&[u8]>) -> bool {
        self.lookup(protocol, username, password).is_some()
    }
}

/// A `type: string` dataset.
pub trait StringLookup: Send + Sync + Debug {
    fn contains(&self, v: &[u8]) -> bool;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl StringLookup for lists::StringSet {
    fn contains(&self, v: &[u8]) -> bool {
        lists::StringSet::contains(self, v)
    }
    fn len(&self) -> usize {
        lists::StringSet::len(self)
    }
}

/// A `type: ip` dataset.
pub trait IpLookup: Send + Sync + Debug {
    fn contains(&self, ip: IpAddr) -> bool;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl IpLookup for lists::IpSet {
    fn contains(&self, ip: IpAddr) -> bool {
        lists::IpSet::contains(self, ip)
    }
    fn len(&self) -> usize {
        lists::IpSet::len(self)
    }
}

/// A dataset by type.
#[derive(Debug, Clone)]
pub enum Dataset {
    Strings(Arc<dyn StringLookup>),
    Ips(Arc<dyn IpLookup>),
}

impl Dataset {
    pub fn len(&self) -> usize {
        match self {
            Dataset::Strings(s) => s.len(),
            Dataset::Ips(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The PHI detectors.
pub trait PhiScanner: Send + Sync + Debug {
    fn payload(&self, data: &[u8]) -> phi::PhiReport;
    /// A transaction record, as its protocol says it is scanned
    /// ([`super::Keywords::phi`]).
    fn record(&self, rec: &AppRecord) -> phi::PhiReport;
}

/// [`phi`]'s detectors with their configured limits.
#[derive(Debug, Clone)]
pub struct PhiDetectors(pub phi::PhiConfig);

impl PhiScanner for PhiDetectors {
    fn payload(&self, data: &[u8]) -> phi::PhiReport {
        phi::scan_payload(data, &self.0)
    }
    fn record(&self, rec: &AppRecord) -> phi::PhiReport {
        super::protocol::of_record(rec)
            .map_or_else(phi::PhiReport::default, |k| k.phi(rec, &self.0))
    }
}

/// Knows nothing: the lookups of [`super::Engine::empty`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Nothing;

impl CountryLookup for Nothing {
    fn country(&self, _: IpAddr) -> Option<Country> {
        None
    }
}

impl ReputationLookup for Nothing {
    fn category(&self, _: &str) -> Option<u8> {
        None
    }
    fn score(&self, _: IpAddr, _: u8) -> Option<u8> {
        None
    }
}

impl CredentialLookup for Nothing {
    fn is_default(&self, _: &str, _: &[u8], _: Option<&[u8]>) -> bool {
        false
    }
}

/// Everything rules consult, loaded once per engine.
#[derive(Debug, Clone)]
pub struct Lookups {
    pub geo: Arc<dyn CountryLookup>,
    pub reputation: Arc<dyn ReputationLookup>,
    pub credentials: Arc<dyn CredentialLookup>,
    pub datasets: BTreeMap<String, Dataset>,
    pub phi: Arc<dyn PhiScanner>,
}

impl Default for Lookups {
    fn default() -> Self {
        Lookups {
            geo: Arc::new(Nothing),
            reputation: Arc::new(Nothing),
            credentials: Arc::new(Nothing),
            datasets: BTreeMap::new(),
            phi: Arc::new(PhiDetectors(phi::PhiConfig::default())),
        }
    }
}

fn read(base: &Path, p: &Path) -> Result<(String, String), Error> {
    let path = base.join(p);
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    Ok((path.display().to_string(), text))
}

impl Lookups {
    /// Loads what `cfg` names (relative paths against `base`), the
    /// embedded lists and database otherwise.
    ///
    /// # Errors
    /// A file cannot be read or does not parse.
    pub fn load(cfg: &DetectConfig, base: &Path) -> Result<Lookups, Error> {
        let geo = match &cfg.geoip_database {
            Some(p) => geo::GeoDb::open(&base.join(p))?,
            None => geo::GeoDb::embedded()?,
        };
        let reputation = match &cfg.reputation {
            Some(r) => {
                let (_, cats) = read(base, &r.categories)?;
                let files = r
                    .files
                    .iter()
                    .map(|f| read(base, f))
                    .collect::<Result<Vec<_>, _>>()?;
                lists::Reputation::parse(&cats, &files)?
            }
            None => lists::Reputation::embedded()?,
        };
        let credentials = match &cfg.default_credentials {
            Some(p) => {
                let (name, text) = read(base, p)?;
                lists::CredentialList::parse(&text, &name)?
            }
            None => lists::CredentialList::embedded()?,
        };
        let mut datasets = BTreeMap::new();
        for (name, d) in &cfg.datasets {
            let (src, mut text) = match &d.load {
                Some(f) => read(base, f)?,
                None => (format!("datasets.{name}"), String::new()),
            };
            for v in &d.values {
                text.push('\n');
                text.push_str(v);
            }
            let set = match d.kind {
                DatasetKind::String => {
                    Dataset::Strings(Arc::new(lists::StringSet::parse(&text, &src)?))
                }
                DatasetKind::Ip => Dataset::Ips(Arc::new(lists::IpSet::parse(&text, &src)?)),
            };
            datasets.insert(name.clone(), set);
        }
        Ok(Lookups {
            geo: Arc::new(geo),
            reputation: Arc::new(reputation),
            credentials: Arc::new(credentials),
            datasets,
            phi: Arc::new(PhiDetectors(cfg.phi.clone())),
        })
    }
}
