//! The fields of an X.509 certificate that Suricata logs (RFC 5280 §4.1):
//! subject, issuer, serial number, validity and the SHA-1 fingerprint.
//!
//! ```text
//! Certificate ::= SEQUENCE { tbsCertificate TBSCertificate, … }
//! TBSCertificate ::= SEQUENCE {
//!     version [0] EXPLICIT Version DEFAULT v1, serialNumber INTEGER,
//!     signature AlgorithmIdentifier, issuer Name, validity Validity,
//!     subject Name, … }
//! Validity ::= SEQUENCE { notBefore Time, notAfter Time }
//! Name ::= SEQUENCE OF SET OF SEQUENCE { type OID, value ANY }
//! ```
//!
//! A minimal DER reader (X.690 §8.1: tag, definite length of at most four
//! length bytes, content) walks only these fields, on the certificate's
//! bytes as received: a length can never make a read leave them, and
//! nothing but the logged strings is allocated. Names are written as
//! Suricata (through the x509-parser crate) writes them: relative
//! distinguished names in order joined by `, `, the attributes of one
//! joined by ` + `, each `SHORT=value` (`C`, `ST`, `L`, `O`, `OU`, `CN`,
//! …; the dotted OID when the name is unknown).

use sha1::{Digest, Sha1};

use super::Certificate;
use crate::output::mask::display_bytes;

/// Longest name logged, in characters.
const MAX_NAME: usize = 1024;

/// One DER element at the start of `b`: `(tag, content, rest)`.
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&l0, rest) = rest.split_first()?;
    let (len, rest) = if l0 < 0x80 {
        (usize::from(l0), rest)
    } else {
        let n = usize::from(l0 & 0x7f);
        // Indefinite lengths are not DER; more than 4 bytes is absurd here.
        if n == 0 || n > 4 {
            return None;
        }
        let (lb, rest) = rest.split_at_checked(n)?;
        let len = lb.iter().fold(0usize, |a, &x| a << 8 | usize::from(x));
        (len, rest)
    };
    let (content, rest) = rest.split_at_checked(len)?;
    Some((tag, content, rest))
}

/// The element at the start of `b`, if its tag is `tag`.
fn expect(b: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, c, rest) = tlv(b)?;
    (t == tag).then_some((c, rest))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const BMP_STRING: u8 = 0x1e;

/// The logged fields of a DER certificate; `None` when its structure up
/// to the subject is not what RFC 5280 says.
pub fn certificate(der: &[u8], chain_len: usize) -> Option<Certificate> {
    let (cert, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(cert, SEQUENCE)?;
    let (mut tag, mut content, mut rest) = tlv(tbs)?;
    if tag == 0xa0 {
        (tag, content, rest) = tlv(rest)?;
    }
    if tag != INTEGER {
        return None;
    }
    let serial = content;
    let (_, rest) = expect(rest, SEQUENCE)?;
    let (issuer, rest) = expect(rest, SEQUENCE)?;
    let (validity, rest) = expect(rest, SEQUENCE)?;
    let (subject, _) = expect(rest, SEQUENCE)?;
    let (t1, v1, after) = tlv(validity)?;
    let not_before = time(t1, v1);
    let not_after = tlv(after).and_then(|(t, v, _)| time(t, v));
    Some(Certificate {
        subject: name(subject)?,
        issuer: name(issuer)?,
        serial: hex(serial, b':', true),
        fingerprint: hex(&Sha1::digest(der), b':', false),
        not_before,
        not_after,
        chain_len,
    })
}

/// Bytes as hex pairs joined by `sep`.
fn hex(b: &[u8], sep: u8, upper: bool) -> String {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut s = String::with_capacity(b.len() * 3);
    for (i, &x) in b.iter().enumerate() {
        if i > 0 {
            s.push(char::from(sep));
        }
        s.push(char::from(digits[usize::from(x >> 4)]));
        s.push(char::from(digits[usize::from(x & 0x0f)]));
    }
    s
}

/// UTCTime `YYMMDDHHMMSSZ` (years 50–99 are 19xx, RFC 5280 §4.1.2.5.1) or
/// GeneralizedTime `YYYYMMDDHHMMSSZ`, as `YYYY-MM-DDTHH:MM:SS`.
fn time(tag: u8, v: &[u8]) -> Option<String> {
    let (century, rest): (Option<&[u8]>, &[u8]) = match tag {
        UTC_TIME => (None, v),
        GENERALIZED_TIME => (Some(v.get(..2)?), v.get(2..)?),
        _ => return None,
    };
    let d = rest.get(..12)?;
    if !d.iter().all(u8::is_ascii_digit)
        || century.is_some_and(|c| !c.iter().all(u8::is_ascii_digit))
    {
        return None;
    }
    let cc: &[u8] = match century {
        Some(c) => c,
        None if d[0] >= b'5' => b"19",
        None => b"20",
    };
    let s = |r: std::ops::Range<usize>| {
        std::str::from_utf8(d.get(r).unwrap_or_default()).unwrap_or_default()
    };
    Some(format!(
        "{}{}-{}-{}T{}:{}:{}",
        std::str::from_utf8(cc).unwrap_or_default(),
        s(0..2),
        s(2..4),
        s(4..6),
        s(6..8),
        s(8..10),
        s(10..12)
    ))
}

/// Short names of the attribute types seen in certificates, by the
/// content bytes of their OID.
const ATTRIBUTES: &[(&[u8], &str)] = &[
    (&[0x55, 0x04, 0x03], "CN"),
    (&[0x55, 0x04, 0x04], "SN"),
    (&[0x55, 0x04, 0x05], "serialNumber"),
    (&[0x55, 0x04, 0x06], "C"),
    (&[0x55, 0x04, 0x07], "L"),
    (&[0x55, 0x04, 0x08], "ST"),
    (&[0x55, 0x04, 0x09], "street"),
    (&[0x55, 0x04, 0x0a], "O"),
    (&[0x55, 0x04, 0x0b], "OU"),
    (&[0x55, 0x04, 0x0c], "title"),
    (&[0x55, 0x04, 0x2a], "GN"),
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01],
        "Email",
    ),
    (
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19],
        "DC",
    ),
    (
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01],
        "UID",
    ),
];

/// An OID in dotted decimal (X.690 §8.19).
fn dotted(oid: &[u8]) -> String {
    let mut out = String::new();
    let mut v: u64 = 0;
    let mut first = true;
    for &b in oid {
        v = v
            .checked_shl(7)
            .map_or(u64::MAX, |x| x | u64::from(b & 0x7f));
        if b & 0x80 != 0 {
            continue;
        }
        if first {
            let (a, b) = match v {
                0..=39 => (0, v),
                40..=79 => (1, v - 40),
                _ => (2, v - 80),
            };
            out.push_str(&format!("{a}.{b}"));
            first = false;
        } else {
            out.push_str(&format!(".{v}"));
        }
        v = 0;
    }
    out
}

/// A Name's content as `C=FR, O=…, CN=…`; `None` when malformed.
fn name(mut rdns: &[u8]) -> Option<String> {
    let mut out = String::new();
    while !rdns.is_empty() {
        let (set, rest) = expect(rdns, SET)?;
        rdns = rest;
        if !out.is_empty() {
            out.push_str(", ");
        }
        let mut set = set;
        let mut first = true;
        while !set.is_empty() {
            let (atv, rest) = expect(set, SEQUENCE)?;
            set = rest;
            let (oid, value) = expect(atv, OID)?;
            let (vtag, v, _) = tlv(value)?;
            if !first {
                out.push_str(" + ");
            }
            first = false;
            match ATTRIBUTES.iter().find(|(o, _)| *o == oid) {
                Some((_, n)) => out.push_str(n),
                None => out.push_str(&dotted(oid)),
            }
            out.push('=');
            if vtag == BMP_STRING {
                let units = v.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                out.extend(char::decode_utf16(units).map(|c| c.unwrap_or('\u{fffd}')));
            } else {
                out.push_str(&display_bytes(v));
            }
            if out.len() > MAX_NAME * 4 {
                break;
            }
        }
    }
    if let Some((i, _)) = out.char_indices().nth(MAX_NAME) {
        out.truncate(i);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_past_the_end_and_long_forms_are_refused() {
        assert_eq!(tlv(&[0x30, 0x03, 0x01]), None);
        assert_eq!(tlv(&[0x30, 0x85, 0, 0, 0, 0, 1]), None);
        assert_eq!(tlv(&[0x30, 0x80]), None);
        assert_eq!(
            tlv(&[0x30, 0x81, 0x01, 0xaa]),
            Some((0x30, &[0xaa][..], &[][..]))
        );
    }

    #[test]
    fn times_read_as_rfc_5280_says() {
        assert_eq!(
            time(UTC_TIME, b"491231235959Z").as_deref(),
            Some("2049-12-31T23:59:59")
        );
        assert_eq!(
            time(UTC_TIME, b"500101000000Z").as_deref(),
            Some("1950-01-01T00:00:00")
        );
        assert_eq!(
            time(GENERALIZED_TIME, b"20510101000000Z").as_deref(),
            Some("2051-01-01T00:00:00")
        );
        assert_eq!(time(UTC_TIME, b"4912312359"), None);
        assert_eq!(time(UTC_TIME, b"49123123595xZ"), None);
    }

    #[test]
    fn names_join_rdns_with_commas_and_unknown_types_show_their_oid() {
        // Hand-built Name content: SET{C=FR}, SET{O=CHU + 1.2.3=x}.
        let name_der = [
            0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, b'F', b'R', //
            0x31, 0x15, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x03, b'C', b'H', b'U',
            0x30, 0x07, 0x06, 0x02, 0x2a, 0x03, 0x0c, 0x01, b'x',
        ];
        assert_eq!(name(&name_der).as_deref(), Some("C=FR, O=CHU + 1.2.3=x"));
        assert_eq!(name(&name_der[..20]), None);
    }

    #[test]
    fn serials_are_upper_case_and_fingerprints_lower_case() {
        assert_eq!(hex(&[0x00, 0xab, 0x01], b':', true), "00:AB:01");
        assert_eq!(hex(&[0xab, 0x01], b':', false), "ab:01");
    }
}
