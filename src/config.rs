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
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Flow table: size cap and timeouts.
    pub flow: FlowConfig,
    /// TCP reassembly limits.
    pub stream: StreamSection,
    /// Decoder: tunnels and VLAN depth.
    pub decoder: DecoderSection,
    /// IP fragment reassembly limits.
    pub defrag: DefragSection,
    /// App-layer protocol detection.
    pub app_layer: crate::app::AppConfig,
    /// EVE output.
    pub outputs: OutputSection,
}

/// `stream:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamSection {
    /// Most out-of-order bytes held per direction of a TCP connection.
    pub max_ooo_bytes: u32,
    /// Most out-of-order segments held per direction.
    pub max_ooo_segments: u16,
}

impl Default for StreamSection {
    fn default() -> Self {
        let d = StreamConfig::default();
        StreamSection {
            max_ooo_bytes: d.max_ooo_bytes,
            max_ooo_segments: d.max_ooo_segments,
        }
    }
}

/// `decoder:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecoderSection {
    /// UDP ports decapsulated as VXLAN.
    pub vxlan_ports: Vec<u16>,
    /// Most VLAN tags on one frame.
    pub max_vlan_layers: u8,
    /// Most tunnel layers peeled off one frame.
    pub max_tunnel_depth: u8,
}

impl Default for DecoderSection {
    fn default() -> Self {
        let d = DecodeConfig::default();
        DecoderSection {
            vxlan_ports: d.vxlan_ports,
            max_vlan_layers: d.max_vlan_layers,
            max_tunnel_depth: d.max_tunnel_depth,
        }
    }
}

/// `defrag:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DefragSection {
    /// Datagrams being reassembled at once.
    pub max_trackers: usize,
    /// Fragments per datagram.
    pub max_fragments: usize,
    /// Bytes per datagram.
    pub max_datagram: usize,
    /// Seconds of packet time before an incomplete datagram is dropped.
    pub timeout: u64,
}

impl Default for DefragSection {
    fn default() -> Self {
        let d = DefragConfig::default();
        DefragSection {
            max_trackers: d.max_trackers,
            max_fragments: d.max_fragments,
            max_datagram: d.max_datagram,
            timeout: d.timeout_secs,
        }
    }
}

/// `outputs:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSection {
    /// Seed of the Community ID (0 unless the SOC's other tools use another).
    pub community_id_seed: u16,
    /// Write `flow` events.
    pub flow: bool,
}

impl Default for OutputSection {
    fn default() -> Self {
        OutputSection {
            community_id_seed: 0,
            flow: true,
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
        serde_norway::from_str(text).map_err(|e| ConfigError(e.to_string()))
    }

    pub fn stream_config(&self) -> StreamConfig {
        StreamConfig {
            max_ooo_bytes: self.stream.max_ooo_bytes,
            max_ooo_segments: self.stream.max_ooo_segments,
        }
    }

    pub fn decode_config(&self) -> DecodeConfig {
        DecodeConfig {
            vxlan_ports: self.decoder.vxlan_ports.clone(),
            max_vlan_layers: self.decoder.max_vlan_layers,
            max_tunnel_depth: self.decoder.max_tunnel_depth,
        }
    }

    pub fn defrag_config(&self) -> DefragConfig {
        DefragConfig {
            max_trackers: self.defrag.max_trackers,
            max_fragments: self.defrag.max_fragments,
            max_datagram: self.defrag.max_datagram,
            timeout_secs: self.defrag.timeout,
        }
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
        let c =
            Config::parse("flow:\n  max_flows: 10\n  tcp: {new: 5, established: 50}\n").unwrap();
        assert_eq!(c.flow.max_flows, 10);
        assert_eq!(c.flow.tcp.closed, 10);
        assert_eq!(c.flow.udp, FlowConfig::default().udp);
    }

    #[test]
    fn unknown_field_is_an_error_naming_it() {
        let e = Config::parse("flow:\n  max_flow: 10\n").unwrap_err();
        assert!(e.0.contains("max_flow"), "{}", e.0);
    }
}
