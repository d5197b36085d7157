//! Detection configuration: the `vars:` and `detect:` sections, rule
//! sources, and what loading reports (module `detect` has the contract).

use super::*;
/// `vars:` — the same shape as suricata.yaml, so a SOC can paste theirs.
/// Values use Suricata's address/port syntax (`[10.0.0.0/8,!10.1.0.0/16]`,
/// `$HOME_NET`, `!$HOME_NET`, `[1883,8883]`, `1024:`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Vars {
    #[serde(rename = "address-groups")]
    pub address_groups: BTreeMap<String, String>,
    #[serde(rename = "port-groups")]
    pub port_groups: BTreeMap<String, String>,
}

impl Default for Vars {
    fn default() -> Self {
        let a = |k: &str, v: &str| (k.to_string(), v.to_string());
        Vars {
            address_groups: BTreeMap::from([
                a("HOME_NET", "[10.0.0.0/8,172.16.0.0/12,192.168.0.0/16]"),
                a("EXTERNAL_NET", "!$HOME_NET"),
                a("MEDICAL_DEVICES", "$HOME_NET"),
                a("CLINICAL_SERVERS", "$HOME_NET"),
            ]),
            port_groups: BTreeMap::from([
                a("MQTT_PORTS", "[1883]"),
                a("DICOM_PORTS", "[104,11112]"),
                a("HL7_PORTS", "[2575]"),
            ]),
        }
    }
}

/// `detect:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Rule files; empty means the embedded `rules/medical.rules`.
    /// Relative paths are relative to the configuration file.
    pub rule_files: Vec<PathBuf>,
    /// MaxMind-format country database; `None` means the embedded one.
    pub geoip_database: Option<PathBuf>,
    /// Countries (ISO codes) an address group may talk to; the rule keyword
    /// `geoip:dst,!allowed` tests the other end against the list of the
    /// first group (in this map's order) that holds this end. A group with
    /// no entry has no restriction.
    pub allowed_countries: BTreeMap<String, Vec<String>>,
    /// Default-credential list (CSV); `None` means the embedded one.
    pub default_credentials: Option<PathBuf>,
    /// `dataset` lists by name.
    pub datasets: BTreeMap<String, DatasetConfig>,
    /// `iprep` categories and reputation files; `None` means the embedded
    /// known-bad list (the Contec CMS8000 addresses).
    pub reputation: Option<ReputationConfig>,
    /// Entries (a rule, tracked address and window) plus undecided matches
    /// kept for `threshold`/`detection_filter` by all workers together;
    /// beyond it a match is decided on what is known (counted in
    /// `detect.threshold_table_full`).
    pub max_threshold_entries: usize,
    /// Bytes of alert lines all workers may hold while their threshold
    /// decision waits for other workers; beyond it an alert is written
    /// undecided (counted in `detect.threshold_memcap`).
    pub threshold_memcap: crate::memcap::ByteSize,
    /// PHI detector limits.
    pub phi: phi::PhiConfig,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            rule_files: Vec::new(),
            geoip_database: None,
            allowed_countries: BTreeMap::new(),
            default_credentials: None,
            datasets: BTreeMap::new(),
            reputation: None,
            max_threshold_entries: 65536,
            threshold_memcap: crate::memcap::ByteSize::mib(16),
            phi: phi::PhiConfig::default(),
        }
    }
}

/// One `datasets:` entry (Suricata's `type` and `load`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// `string` (one value per line) or `ip` (address or CIDR per line).
    #[serde(rename = "type")]
    pub kind: DatasetKind,
    /// File to load (relative to the configuration file).
    #[serde(default)]
    pub load: Option<PathBuf>,
    /// Values given in the configuration itself, one per item, added to
    /// those of `load` (a short allowlist needs no file).
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    String,
    Ip,
}

/// `reputation:` — Suricata's iprep files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReputationConfig {
    /// `id,short name,description` per line.
    pub categories: PathBuf,
    /// `address[/prefix],category id,score` per line.
    pub files: Vec<PathBuf>,
}

/// A rule text and where it came from (for error messages).
#[derive(Debug, Clone)]
pub struct RuleSource {
    /// File path, or `<embedded>/medical.rules`.
    pub name: String,
    pub text: String,
}

/// A rule that did not load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: String,
    pub line: usize,
    pub sid: Option<u32>,
    pub reason: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        if let Some(sid) = self.sid {
            write!(f, "sid {sid}: ")?;
        }
        f.write_str(&self.reason)
    }
}

/// What a build loaded.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub loaded: usize,
    pub errors: Vec<RuleError>,
    /// Not errors, but worth telling the operator (an empty dataset, …).
    pub warnings: Vec<String>,
}

/// A detection setup that cannot be built at all (a list or database file
/// is unreadable or malformed, a variable does not parse).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    Invalid {
        what: String,
        reason: String,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Invalid { what, reason } => write!(f, "{what}: {reason}"),
        }
    }
}

impl std::error::Error for Error {}
