//! The EVE `tls` object of a flow's handshake, with Suricata's field names
//! and shapes (its EVE schema's `tls`; field by field in README's "TLS
//! records"):
//! - certificate of the server (TLS ≤ 1.2): `subject`, `issuerdn`,
//!   `serial`, `fingerprint`, `notbefore`, `notafter`;
//! - `sni` (the ClientHello's server name), `version` (negotiated, as
//!   Suricata writes it: `TLS 1.2`, `TLS 1.3`, `TLSv1`; `UNDETERMINED`
//!   without a ServerHello), `session_resumed` (only when true);
//! - `ja4`, `client_alpns`, `server_alpns`;
//! - `client_handshake` (`version`, `ciphers`, `exts`, `sig_algs`: the
//!   ClientHello's lists as sent) and `server_handshake` (`version`,
//!   `cipher`, `exts`).
//!
//! Strings follow [`crate::output::mask`]'s rule for bytes that are not
//! UTF-8 and are cut to [`MAX_STRING`] characters. Nothing here is
//! sensitive: a server name is no patient data.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::{version_name, ClientHello, Record, ServerHello};
use crate::output::mask::{display_bytes, LogOptions};

/// Longest string logged, in characters.
pub const MAX_STRING: usize = 1024;

/// Bytes as logged: by the non-UTF-8 rule, capped.
pub fn text(b: &[u8]) -> String {
    let s = display_bytes(b);
    match s.char_indices().nth(MAX_STRING) {
        Some((i, _)) => s.get(..i).unwrap_or_default().to_string(),
        None => s.into_owned(),
    }
}

/// The EVE `tls` object of a record, serialised straight into the output.
pub struct Logged<'a> {
    pub rec: &'a Record,
    pub opts: &'a LogOptions,
}

struct Strings<'a>(&'a [Vec<u8>]);

impl Serialize for Strings<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|b| text(b)))
    }
}

struct ClientHandshake<'a>(&'a ClientHello);

impl Serialize for ClientHandshake<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("version", &version_name(c.version()))?;
        if !c.cipher_suites.is_empty() {
            m.serialize_entry("ciphers", &c.cipher_suites)?;
        }
        if !c.extensions.is_empty() {
            m.serialize_entry("exts", &c.extensions)?;
        }
        if !c.signature_algorithms.is_empty() {
            m.serialize_entry("sig_algs", &c.signature_algorithms)?;
        }
        m.end()
    }
}

struct ServerHandshake<'a>(&'a ServerHello);

impl Serialize for ServerHandshake<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let h = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("version", &version_name(h.version()))?;
        m.serialize_entry("cipher", &h.cipher_suite)?;
        if !h.extensions.is_empty() {
            m.serialize_entry("exts", &h.extensions)?;
        }
        m.end()
    }
}

impl Serialize for Logged<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.rec;
        let mut m = s.serialize_map(None)?;
        if let Some(c) = &r.certificate {
            m.serialize_entry("subject", &c.subject)?;
            m.serialize_entry("issuerdn", &c.issuer)?;
            m.serialize_entry("serial", &c.serial)?;
            m.serialize_entry("fingerprint", &c.fingerprint)?;
        }
        if let Some(sni) = r.sni() {
            m.serialize_entry("sni", &text(sni))?;
        }
        match r.version() {
            Some(v) => m.serialize_entry("version", &version_name(v))?,
            None => m.serialize_entry("version", "UNDETERMINED")?,
        }
        if r.session_resumed() {
            m.serialize_entry("session_resumed", &true)?;
        }
        if let Some(c) = &r.certificate {
            if let Some(t) = &c.not_before {
                m.serialize_entry("notbefore", t)?;
            }
            if let Some(t) = &c.not_after {
                m.serialize_entry("notafter", t)?;
            }
        }
        if let Some(c) = &r.client_hello {
            m.serialize_entry("ja4", &c.ja4)?;
            if !c.alpns.is_empty() {
                m.serialize_entry("client_alpns", &Strings(&c.alpns))?;
            }
        }
        if let Some(a) = r.server_hello.as_ref().and_then(|h| h.alpn.as_ref()) {
            m.serialize_entry("server_alpns", &Strings(std::slice::from_ref(a)))?;
        }
        if let Some(c) = &r.client_hello {
            m.serialize_entry("client_handshake", &ClientHandshake(c))?;
        }
        if let Some(h) = &r.server_hello {
            m.serialize_entry("server_handshake", &ServerHandshake(h))?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::tls::Certificate;

    #[test]
    fn a_full_record_logs_suricatas_fields() {
        // Hand-built record.
        let rec = Record {
            client_hello: Some(ClientHello {
                legacy_version: 0x0303,
                cipher_suites: vec![0xc02f],
                extensions: vec![0, 16],
                sni: Some(b"pacs.example".to_vec()),
                alpns: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
                ja4: "t12d0102h2_x_y".into(),
                ..ClientHello::default()
            }),
            server_hello: Some(ServerHello {
                legacy_version: 0x0303,
                cipher_suite: 0xc02f,
                alpn: Some(b"h2".to_vec()),
                ..ServerHello::default()
            }),
            certificate: Some(Certificate {
                subject: "CN=pacs".into(),
                issuer: "CN=ca".into(),
                serial: "01".into(),
                fingerprint: "aa".into(),
                not_before: Some("2024-01-01T00:00:00".into()),
                not_after: None,
                chain_len: 1,
            }),
        };
        let v = serde_json::to_value(Logged {
            rec: &rec,
            opts: &LogOptions::unmasked(),
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "subject": "CN=pacs", "issuerdn": "CN=ca", "serial": "01", "fingerprint": "aa",
                "sni": "pacs.example", "version": "TLS 1.2", "notbefore": "2024-01-01T00:00:00",
                "ja4": "t12d0102h2_x_y", "client_alpns": ["h2", "http/1.1"], "server_alpns": ["h2"],
                "client_handshake": {"version": "TLS 1.2", "ciphers": [49199], "exts": [0, 16]},
                "server_handshake": {"version": "TLS 1.2", "cipher": 49199}
            })
        );
    }

    #[test]
    fn without_a_server_hello_the_version_is_undetermined() {
        let rec = Record {
            client_hello: Some(ClientHello::default()),
            ..Record::default()
        };
        let v = serde_json::to_value(Logged {
            rec: &rec,
            opts: &LogOptions::unmasked(),
        })
        .unwrap();
        assert_eq!(v["version"], "UNDETERMINED");
    }
}
