//! Rule keywords of tls, with Suricata's names and meanings (Suricata 8
//! "SSL/TLS Keywords", "JA4 Keywords"), offered to the engine through
//! [`ProtocolKeywords`]; a TLS record carries neither a login nor patient
//! data.
//!
//! Sticky buffers (no value; an absent or empty field yields no instance):
//! - `tls.sni`: the ClientHello's server name, as sent;
//! - `tls.alpn`: multi-buffer, every protocol name the client offered;
//! - `tls.cert_subject`, `tls.cert_issuer`, `tls.cert_serial`,
//!   `tls.cert_fingerprint`: the server certificate's fields as logged
//!   (TLS ≤ 1.2: TLS 1.3 encrypts the certificate);
//! - `ja4.hash`: the JA4 fingerprint.
//!
//! Predicate: `tls.version:<v>`, the negotiated version (ServerHello):
//! `1.0`, `1.1`, `1.2`, `1.3`, `ssl3` or a number (`0x0303`); false
//! without a ServerHello.

use super::Record;
use crate::app::AppRecord;
use crate::detect::phi::{PhiConfig, PhiReport};
use crate::detect::protocol::{ProtocolKeywords, RecordBuffer, RecordPredicate, TxRecord, Typed};

/// A compiled keyword.
pub type Keyword = Typed<Buffer, Predicate>;

/// A sticky buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buffer {
    Sni,
    Alpn,
    CertSubject,
    CertIssuer,
    CertSerial,
    CertFingerprint,
    Ja4,
}

const BUFFERS: &[(&str, Buffer)] = &[
    ("tls.sni", Buffer::Sni),
    ("tls.alpn", Buffer::Alpn),
    ("tls.cert_subject", Buffer::CertSubject),
    ("tls.cert_issuer", Buffer::CertIssuer),
    ("tls.cert_serial", Buffer::CertSerial),
    ("tls.cert_fingerprint", Buffer::CertFingerprint),
    ("ja4.hash", Buffer::Ja4),
];

/// Calls `f` on `v` unless it is empty.
fn one(v: &[u8], f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
    !v.is_empty() && f(v)
}

impl RecordBuffer for Buffer {
    type Record = Record;
    fn any(&self, rec: &Record, f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        let cert = rec.certificate.as_ref();
        let hello = rec.client_hello.as_ref();
        match self {
            Buffer::Sni => rec.sni().is_some_and(|s| one(s, f)),
            Buffer::Alpn => hello.is_some_and(|c| c.alpns.iter().any(|a| one(a, f))),
            Buffer::CertSubject => cert.is_some_and(|c| one(c.subject.as_bytes(), f)),
            Buffer::CertIssuer => cert.is_some_and(|c| one(c.issuer.as_bytes(), f)),
            Buffer::CertSerial => cert.is_some_and(|c| one(c.serial.as_bytes(), f)),
            Buffer::CertFingerprint => cert.is_some_and(|c| one(c.fingerprint.as_bytes(), f)),
            Buffer::Ja4 => hello.is_some_and(|c| one(c.ja4.as_bytes(), f)),
        }
    }
}

/// A predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Predicate {
    /// The negotiated version is this one.
    Version(u16),
}

impl RecordPredicate for Predicate {
    type Record = Record;
    fn matches(&self, rec: &Record) -> bool {
        match self {
            Predicate::Version(v) => rec.version() == Some(*v),
        }
    }
}

/// `1.2`, `ssl3`, `0x0303`.
fn parse_version(v: &str) -> Result<u16, String> {
    let t = v.trim().trim_matches('"').to_ascii_lowercase();
    Ok(match t.as_str() {
        "ssl3" | "sslv3" | "3.0" => 0x0300,
        "1.0" | "tls1.0" | "tlsv1" => 0x0301,
        "1.1" => 0x0302,
        "1.2" => 0x0303,
        "1.3" => 0x0304,
        _ => {
            let n = crate::app::keyword::number(&t)?;
            u16::try_from(n).map_err(|_| format!("{n} is not a 16-bit version"))?
        }
    })
}

/// Compiles option `name` with its value; `None` when `name` is not a tls
/// keyword, `Some(Err(reason))` when the value is wrong.
pub fn keyword(name: &str, value: Option<&str>) -> Option<Result<Keyword, String>> {
    let lower = name.to_ascii_lowercase();
    if let Some(b) = crate::app::keyword::sticky_buffer(BUFFERS, &lower, value) {
        return Some(b.map(Keyword::Buffer));
    }
    if lower == "tls.version" {
        return Some(
            crate::app::keyword::required(value)
                .and_then(parse_version)
                .map(|v| Keyword::Predicate(Predicate::Version(v)))
                .map_err(|e| format!("{lower}: {e}")),
        );
    }
    None
}

// The rule engine's view ([`crate::detect::Keywords`], reached through
// the protocol's entry in [`crate::app::PROTOCOLS`]).

impl TxRecord for Record {
    fn of(rec: &AppRecord) -> Option<&Record> {
        match rec {
            AppRecord::Tls(r) => Some(r),
            _ => None,
        }
    }
}

impl ProtocolKeywords for super::Tls {
    type Record = Record;
    type Buffer = Buffer;
    type Predicate = Predicate;
    fn keyword(&self, name: &str, value: Option<&str>) -> Option<Result<Keyword, String>> {
        keyword(name, value)
    }
    fn phi(&self, _: &Record, _: &PhiConfig) -> PhiReport {
        PhiReport::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::tls::{ClientHello, ServerHello};

    fn all(b: Buffer, r: &Record) -> Vec<String> {
        let mut v = Vec::new();
        b.any(r, &mut |x| {
            v.push(String::from_utf8_lossy(x).into_owned());
            false
        });
        v
    }

    #[test]
    fn buffers_yield_the_record_fields_and_nothing_when_absent() {
        // Hand-built record: a ClientHello with SNI and two ALPN names.
        let rec = Record {
            client_hello: Some(ClientHello {
                sni: Some(b"pacs.example".to_vec()),
                alpns: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
                ja4: "t13d".into(),
                ..ClientHello::default()
            }),
            ..Record::default()
        };
        assert_eq!(all(Buffer::Sni, &rec), ["pacs.example"]);
        assert_eq!(all(Buffer::Alpn, &rec), ["h2", "http/1.1"]);
        assert_eq!(all(Buffer::Ja4, &rec), ["t13d"]);
        assert!(all(Buffer::CertSubject, &rec).is_empty());
        assert!(all(Buffer::Sni, &Record::default()).is_empty());
    }

    #[test]
    fn version_matches_the_negotiated_version_only() {
        let k = |v| match keyword("tls.version", Some(v)) {
            Some(Ok(Typed::Predicate(p))) => p,
            k => panic!("{v}: {k:?}"),
        };
        let mut rec = Record::default();
        assert!(!k("1.3").matches(&rec));
        rec.server_hello = Some(ServerHello {
            legacy_version: 0x0303,
            selected_version: Some(0x0304),
            ..ServerHello::default()
        });
        assert!(k("1.3").matches(&rec));
        assert!(k("0x0304").matches(&rec));
        assert!(!k("1.2").matches(&rec));
        assert!(keyword("tls.version", Some("banana")).unwrap().is_err());
        assert!(keyword("tls.version", None).unwrap().is_err());
        assert!(keyword("tls.sni", Some("x")).unwrap().is_err());
        assert!(keyword("tls.nope", None).is_none());
    }
}
