//! TLS app layer: the clear-text part of a TLS handshake — ClientHello,
//! ServerHello and, for TLS ≤ 1.2, the server's Certificate — until the
//! handshake becomes encrypted (RFC 8446 §4 for TLS 1.3, RFC 5246 §7.4 for
//! TLS ≤ 1.2). What follows is opaque: the parser then says it is
//! [`crate::app::StreamConsumer::finished`] and the flow is no longer
//! reassembled.
//!
//! Owns: the byte parser ([`parser`], stateless: record and handshake
//! headers, hello bodies, extensions, the certificate list), the X.509
//! fields Suricata logs ([`x509`]), the JA4 client fingerprint ([`ja4`]),
//! the per-flow state machine ([`state`]: record layer, handshake
//! reassembly within `max_handshake`, anomaly events), the EVE `tls`
//! object ([`log`], Suricata's field names) and the rule keywords
//! ([`detect`], Suricata's `tls.sni`, `tls.version`, …). A [`Record`] is
//! one flow's handshake: one per flow.
//!
//! Invariants: a [`Record`] holds only what the handshake showed in clear
//! text, and lists are bounded by the message they came from (itself
//! bounded by [`TlsConfig::max_handshake`]) or by [`MAX_LIST`].

pub mod detect;
pub mod ja4;
pub mod log;
pub mod parser;
pub mod state;
pub mod x509;

use std::borrow::Cow;

use serde::Deserialize;

use crate::app::{AppConfig, AppProto, AppProtocol, Midstream, StreamConsumer, Verdict};
use crate::memcap::ByteSize;

/// `app_layer.tls` configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Bytes of one handshake message reassembled (across records and
    /// segments). A longer message is skipped by its declared length and
    /// raises `handshake_too_large`. The default holds the largest
    /// ClientHello its length fields allow (131 620 bytes), so padding
    /// cannot push the SNI out of reach, and any real certificate chain.
    pub max_handshake: ByteSize,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            max_handshake: ByteSize(160 * 1024),
        }
    }
}

/// Most ALPN names kept per hello.
pub const MAX_LIST: usize = 64;

/// A ClientHello (RFC 8446 §4.1.2) as logged and fingerprinted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub legacy_version: u16,
    /// Echoed by a ServerHello that resumes a TLS ≤ 1.2 session.
    pub session_id: Vec<u8>,
    /// In the order sent, GREASE included.
    pub cipher_suites: Vec<u16>,
    /// Extension types in the order sent, GREASE included.
    pub extensions: Vec<u16>,
    /// First `host_name` of `server_name`, as sent.
    pub sni: Option<Vec<u8>>,
    /// Protocol names offered by ALPN, in order.
    pub alpns: Vec<Vec<u8>>,
    /// `supported_versions` in the order sent, GREASE included.
    pub supported_versions: Vec<u16>,
    /// `signature_algorithms` in the order sent.
    pub signature_algorithms: Vec<u16>,
    /// JA4 fingerprint ([`ja4`]).
    pub ja4: String,
}

impl ClientHello {
    /// The highest version offered: from `supported_versions` (GREASE
    /// ignored), else `legacy_version`.
    pub fn version(&self) -> u16 {
        self.supported_versions
            .iter()
            .copied()
            .filter(|&v| !parser::is_grease(v))
            .max()
            .unwrap_or(self.legacy_version)
    }
}

/// A ServerHello (RFC 8446 §4.1.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerHello {
    pub legacy_version: u16,
    /// `supported_versions` (TLS 1.3 and later).
    pub selected_version: Option<u16>,
    pub cipher_suite: u16,
    pub session_id: Vec<u8>,
    /// Extension types in the order sent.
    pub extensions: Vec<u16>,
    /// The protocol chosen by ALPN.
    pub alpn: Option<Vec<u8>>,
    /// A HelloRetryRequest: the client sends a second ClientHello.
    pub retry_request: bool,
}

impl ServerHello {
    /// The negotiated version: `supported_versions` when present, else
    /// `legacy_version` (RFC 8446 §4.2.1).
    pub fn version(&self) -> u16 {
        self.selected_version.unwrap_or(self.legacy_version)
    }
}

/// The server's certificate (the first of the chain), as Suricata logs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Certificate {
    /// Distinguished name, `C=FR, O=…, CN=…`.
    pub subject: String,
    pub issuer: String,
    /// Serial number bytes as upper-case hex pairs joined by `:`.
    pub serial: String,
    /// SHA-1 of the DER certificate, lower-case hex pairs joined by `:`.
    pub fingerprint: String,
    /// Validity, `YYYY-MM-DDTHH:MM:SS` (UTC).
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    /// Certificates in the chain the server sent.
    pub chain_len: usize,
}

/// One flow's TLS handshake as seen in clear text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub client_hello: Option<ClientHello>,
    pub server_hello: Option<ServerHello>,
    /// TLS ≤ 1.2 only: TLS 1.3 encrypts it.
    pub certificate: Option<Certificate>,
}

impl Record {
    /// The negotiated version, when the ServerHello was seen.
    pub fn version(&self) -> Option<u16> {
        self.server_hello.as_ref().map(ServerHello::version)
    }

    /// The name the client asked for.
    pub fn sni(&self) -> Option<&[u8]> {
        self.client_hello.as_ref()?.sni.as_deref()
    }

    /// Heap bytes the record holds (an upper-bound estimate, for
    /// `app_layer.memcap`): its lists, names and strings.
    pub fn heap_bytes(&self) -> usize {
        let ch = self.client_hello.as_ref().map_or(0, |c| {
            c.session_id.capacity()
                + 2 * (c.cipher_suites.capacity()
                    + c.extensions.capacity()
                    + c.supported_versions.capacity()
                    + c.signature_algorithms.capacity())
                + c.sni.as_ref().map_or(0, Vec::capacity)
                + c.alpns.iter().map(|a| a.capacity() + 24).sum::<usize>()
                + c.ja4.capacity()
        });
        let sh = self.server_hello.as_ref().map_or(0, |s| {
            s.session_id.capacity()
                + 2 * s.extensions.capacity()
                + s.alpn.as_ref().map_or(0, Vec::capacity)
        });
        let cert = self.certificate.as_ref().map_or(0, |c| {
            c.subject.capacity()
                + c.issuer.capacity()
                + c.serial.capacity()
                + c.fingerprint.capacity()
                + 2 * 20
        });
        ch + sh + cert
    }

    /// An abbreviated TLS ≤ 1.2 handshake (RFC 5246 §7.3): the server
    /// echoed the client's non-empty session id.
    pub fn session_resumed(&self) -> bool {
        match (&self.client_hello, &self.server_hello) {
            (Some(c), Some(s)) => {
                s.version() <= 0x0303 && !c.session_id.is_empty() && c.session_id == s.session_id
            }
            _ => false,
        }
    }
}

/// A version as Suricata writes it (`SSLv3`, `TLSv1`, `TLS 1.1`,
/// `TLS 1.2`, `TLS 1.3`, else `0x%04x`).
pub fn version_name(v: u16) -> Cow<'static, str> {
    match v {
        0x0200 => "SSLv2".into(),
        0x0300 => "SSLv3".into(),
        0x0301 => "TLSv1".into(),
        0x0302 => "TLS 1.1".into(),
        0x0303 => "TLS 1.2".into(),
        0x0304 => "TLS 1.3".into(),
        v => format!("0x{v:04x}").into(),
    }
}

/// The parser of one TLS flow.
pub fn new_parser(cfg: &TlsConfig) -> Option<Box<dyn StreamConsumer>> {
    Some(Box::new(state::TlsState::new(cfg)))
}

/// TLS as the session and the registry see it ([`crate::app::PROTOCOLS`]).
#[derive(Debug)]
pub struct Tls;

pub static PROTOCOL: Tls = Tls;

impl AppProtocol for Tls {
    fn proto(&self) -> AppProto {
        AppProto::Tls
    }
    fn name(&self) -> &'static str {
        "tls"
    }
    fn ports<'c>(&self, cfg: &'c AppConfig) -> &'c [u16] {
        &cfg.tls_ports
    }
    fn probe_start(&self, data: &[u8]) -> Verdict {
        super::probe::tls_start(data)
    }
    fn probe_midstream(&self, data: &[u8]) -> Option<Midstream> {
        super::probe::tls_midstream(data)
    }
    fn parser(&self, cfg: &AppConfig) -> Option<Box<dyn StreamConsumer>> {
        new_parser(&cfg.tls)
    }
    fn keywords(&self) -> Option<&'static dyn crate::detect::Keywords> {
        Some(&PROTOCOL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_named_as_suricata_names_them() {
        assert_eq!(version_name(0x0300), "SSLv3");
        assert_eq!(version_name(0x0301), "TLSv1");
        assert_eq!(version_name(0x0302), "TLS 1.1");
        assert_eq!(version_name(0x0303), "TLS 1.2");
        assert_eq!(version_name(0x0304), "TLS 1.3");
        assert_eq!(version_name(0x7f1c), "0x7f1c");
    }
}
