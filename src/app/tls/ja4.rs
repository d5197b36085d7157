//! JA4, the TLS client fingerprint of FoxIO's JA4+ suite (JA4 technical
//! details, "JA4: TLS Client Fingerprinting"), computed from a
//! ClientHello: `a_b_c` where
//! - `a` is `t` (TLS over TCP), the version (highest non-GREASE
//!   `supported_versions` entry, else `legacy_version`: `13`, `12`, `11`,
//!   `10`, `s3`, `s2`, `s1`, else `00`), `d` with an SNI or `i` without,
//!   the number of cipher suites and of extensions (GREASE ignored, two
//!   digits, at most 99), and the first and last characters of the first
//!   ALPN value (`00` without one; of its hex form when either is not
//!   ASCII alphanumeric);
//! - `b` is the first 12 hex digits of the SHA-256 of the cipher suites,
//!   sorted, as 4-digit lower-case hex joined by `,` (GREASE removed);
//! - `c` likewise of the extensions sorted (GREASE, SNI and ALPN removed),
//!   then `_` and the signature algorithms in the order sent (no `_`
//!   without them).
//!
//! An empty list hashes to `000000000000`.

use sha2::{Digest, Sha256};

use super::parser::{extension, is_grease};
use super::ClientHello;

/// JA4 of a ClientHello.
pub fn ja4(ch: &ClientHello) -> String {
    let version = match ch.version() {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0200 => "s2",
        0x0100 => "s1",
        _ => "00",
    };
    let mut ciphers: Vec<u16> = ch
        .cipher_suites
        .iter()
        .copied()
        .filter(|&c| !is_grease(c))
        .collect();
    let exts: Vec<u16> = ch
        .extensions
        .iter()
        .copied()
        .filter(|&e| !is_grease(e))
        .collect();
    let sni = if ch.extensions.contains(&extension::SERVER_NAME) {
        'd'
    } else {
        'i'
    };
    let alpn = alpn_chars(ch.alpns.first().map(Vec::as_slice));
    let a = format!(
        "t{version}{sni}{:02}{:02}{alpn}",
        ciphers.len().min(99),
        exts.len().min(99)
    );
    ciphers.sort_unstable();
    let b = if ciphers.is_empty() {
        "000000000000".to_string()
    } else {
        hash12(&ciphers, None)
    };
    let mut sorted: Vec<u16> = exts
        .into_iter()
        .filter(|&e| e != extension::SERVER_NAME && e != extension::ALPN)
        .collect();
    sorted.sort_unstable();
    let c = if sorted.is_empty() {
        "000000000000".to_string()
    } else {
        let algs = Some(&ch.signature_algorithms[..]).filter(|a| !a.is_empty());
        hash12(&sorted, algs)
    };
    format!("{a}_{b}_{c}")
}

/// The two ALPN characters of part `a`.
fn alpn_chars(first: Option<&[u8]>) -> String {
    let (Some(&f), Some(&l)) = (first.and_then(|v| v.first()), first.and_then(|v| v.last())) else {
        return "00".to_string();
    };
    if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
        return format!("{}{}", char::from(f), char::from(l));
    }
    let hi = HEX[usize::from(f >> 4)];
    let lo = HEX[usize::from(l & 0x0f)];
    format!("{}{}", char::from(hi), char::from(lo))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `v` as 4 lower-case hex digits.
fn hex4(v: u16) -> [u8; 4] {
    let d = |shift: u16| HEX[usize::from((v >> shift) & 0x0f)];
    [d(12), d(8), d(4), d(0)]
}

/// Feeds `0a0a,1301,…` to the hash (no string is built: a fingerprint
/// costs what hashing its bytes costs).
fn feed(h: &mut Sha256, v: &[u16]) {
    for (i, &x) in v.iter().enumerate() {
        if i > 0 {
            h.update(b",");
        }
        h.update(hex4(x));
    }
}

/// The first 12 hex digits of the SHA-256 of `list` as hex joined by `,`,
/// then `_` and `then` likewise when given.
fn hash12(list: &[u16], then: Option<&[u16]>) -> String {
    let mut h = Sha256::new();
    feed(&mut h, list);
    if let Some(t) = then {
        h.update(b"_");
        feed(&mut h, t);
    }
    let d = h.finalize();
    let mut s = String::with_capacity(12);
    for &b in d.iter().take(6) {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_characters_fall_back_to_hex_when_not_alphanumeric() {
        assert_eq!(alpn_chars(None), "00");
        assert_eq!(alpn_chars(Some(b"")), "00");
        assert_eq!(alpn_chars(Some(b"h2")), "h2");
        assert_eq!(alpn_chars(Some(b"http/1.1")), "h1");
        assert_eq!(alpn_chars(Some(b"mqtt")), "mt");
        assert_eq!(alpn_chars(Some(&[0xab, 0xcd])), "ad");
        assert_eq!(alpn_chars(Some(b"h/")), "6f");
    }

    #[test]
    fn empty_lists_hash_to_zeros_and_grease_is_ignored() {
        let ch = ClientHello {
            legacy_version: 0x0303,
            cipher_suites: vec![0x0a0a],
            extensions: vec![0x0a0a],
            ..ClientHello::default()
        };
        assert_eq!(ja4(&ch), "t12i000000_000000000000_000000000000");
    }

    #[test]
    fn a_hello_with_sni_alpn_and_sigalgs_gives_its_parts() {
        // Hand-built values; the hashes are SHA-256 of the strings below,
        // computed with `printf %s … | sha256sum`.
        let ch = ClientHello {
            legacy_version: 0x0303,
            cipher_suites: vec![0x1302, 0x1301, 0x2a2a],
            extensions: vec![0x0000, 0x0010, 0x002b, 0x000d, 0x3a3a],
            alpns: vec![b"h2".to_vec()],
            supported_versions: vec![0x0304, 0x0303],
            signature_algorithms: vec![0x0804, 0x0403],
            ..ClientHello::default()
        };
        let j = ja4(&ch);
        // SHA-256 of "1301,1302" and of "000d,002b_0804,0403".
        assert_eq!(j, "t13d0204h2_62ed6f6ca7ad_9cb16391150f");
    }
}
