//! Configuration: one YAML file (`-c FILE`), every field optional with a
//! working default. Unknown fields are errors, so a typo is reported instead
//! of silently ignored.

use std::path::Path;

use serde::Deserialize;

use crate::decode::defrag::DefragConfig;
use crate::decode::DecodeConfig;
use crate::flow::FlowConfig;
use crate::stream::StreamConfig;

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Flow table: size cap and timeouts.
    pub flow: FlowConfig,
    /// TCP reassembly limits.
    pub stream: StreamConfig,
    /// Decoder: tunnels and VLAN depth.
    pub decoder: DecodeConfig,
    /// IP fragment reassembly limits.
    pub defrag: DefragConfig,
    /// App-layer protocol detection.
    pub app_layer: crate::app::AppConfig,
    /// EVE output.
    pub outputs: OutputSection,
    /// Live capture (`-i`): AF_PACKET ring sizes, snap length, stats interval.
    pub capture: crate::capture::afpacket::CaptureConfig,
    /// Address and port groups for rules (`$HOME_NET`…), in suricata.yaml's
    /// shape.
    pub vars: crate::detect::Vars,
    /// Rules, lists, country database, PHI limits.
    pub detect: crate::detect::DetectConfig,
    /// Asset inventory: which hosts, and its bounds.
    pub asset: crate::asset::AssetConfig,
}

/// `outputs:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSection {
    /// Seed of the Community ID (0 unless the SOC's other tools use another).
    pub community_id_seed: u16,
    /// Write `flow` events.
    pub flow: bool,
    /// Log passwords, passcodes, message payloads and patient data in full
    /// (forensic use). Off by default: they are masked to their length and
    /// a keyed hash (`crate::output::mask`).
    pub unmask_sensitive: bool,
    /// File holding the secret (at least 16 bytes) that keys the masks'
    /// hashes, so that one value masks the same way across restarts and
    /// across the sensors sharing the file. Without it, each run makes a
    /// random key.
    pub mask_key_file: Option<std::path::PathBuf>,
    /// The key read from `mask_key_file` when the configuration is parsed.
    #[serde(skip)]
    pub mask_key: Option<crate::output::mask::MaskKey>,
    /// Written as `host` in every record (Suricata's `sensor-name`), so the
    /// records of several sensors stay apart in one SIEM.
    pub sensor_name: Option<String>,
    /// Where EVE goes when `--eve` does not say: a file, a Unix socket or
    /// Redis.
    pub eve: crate::output::sink::EveConfig,
    /// EVE `asset` records and the inventory file.
    pub asset: crate::asset::AssetOutput,
}

impl Default for OutputSection {
    fn default() -> Self {
        OutputSection {
            community_id_seed: 0,
            flow: true,
            unmask_sensitive: false,
            mask_key_file: None,
            mask_key: None,
            sensor_name: None,
            eve: crate::output::sink::EveConfig::default(),
            asset: crate::asset::AssetOutput::default(),
        }
    }
}

/// A configuration error with the file it came from.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and checks a YAML configuration file.
    ///
    /// # Errors
    /// The file cannot be read, is not YAML, or has unknown or mistyped fields.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        Config::parse(&text).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
    }

    /// Parses configuration text.
    ///
    /// # Errors
    /// Not YAML, or unknown or mistyped fields.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let mut c: Config = serde_norway::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        c.check()?;
        if let Some(f) = &c.outputs.mask_key_file {
            let key = crate::output::mask::key_from_file(f)
                .map_err(|e| ConfigError(format!("outputs.mask_key_file: {e}")))?;
            c.outputs.mask_key = Some(key);
        }
        Ok(c)
    }

    /// Values that parse but cannot work.
    fn check(&self) -> Result<(), ConfigError> {
        if self.flow.memcap < crate::memcap::ByteSize(crate::memcap::GRANULE) {
            return Err(ConfigError(format!(
                "flow.memcap: {} bytes would hold almost no flow (each takes about 250 bytes, \
                 and every worker has an equal share); give at least 64kb, or leave it out \
                 for the default",
                self.flow.memcap.0
            )));
        }
        if self.outputs.eve.redis.pipelining.batch_size == 0 {
            return Err(ConfigError(
                "outputs.eve.redis.pipelining.batch-size: 0; give at least 1 \
                 (or `enabled: false` for one record per round trip)"
                    .into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_default() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.flow, FlowConfig::default());
    }

    #[test]
    fn partial_config_overrides_only_what_it_names() {
        let c = Config::parse("flow:\n  memcap: 10mb\n  tcp: {new: 5, established: 50}\n").unwrap();
        assert_eq!(c.flow.memcap, crate::memcap::ByteSize::mib(10));
        assert_eq!(c.flow.tcp.closed, 10);
        assert_eq!(c.flow.udp, FlowConfig::default().udp);
    }

    #[test]
    fn readme_lists_the_true_defaults() {
        let readme = include_str!("../README.md");
        let section = readme.split("## Configuration").nth(1).unwrap();
        let yaml = section
            .split("```yaml")
            .nth(1)
            .unwrap()
            .split("```")
            .next()
            .unwrap();
        assert_eq!(Config::parse(yaml).unwrap(), Config::default());
    }

    #[test]
    fn flow_memcap_under_a_granule_is_refused_with_the_setting_named() {
        let e = Config::parse("flow:\n  memcap: 0\n").unwrap_err();
        assert!(e.0.contains("flow.memcap"), "{}", e.0);
        assert!(Config::parse("flow:\n  memcap: 64kb\n").is_ok());
    }

    #[test]
    fn unknown_field_is_an_error_naming_it() {
        let e = Config::parse("flow:\n  max_flow: 10\n").unwrap_err();
        assert!(e.0.contains("max_flow"), "{}", e.0);
    }
}
