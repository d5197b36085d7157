//! The one masking policy and the one rule for bytes that are not UTF-8,
//! for every string wardwatch writes: the EVE records of every protocol,
//! the records alerts carry, and the PHI evidence of alerts. A protocol's
//! `log.rs` says *which* of its fields are sensitive ([`LogOptions::sensitive`])
//! or raw bytes ([`Text`]); how they are written is decided here, once.
//!
//! # Masking
//!
//! A sensitive value — a password, passcode or identity token, an MQTT
//! message or will payload, a DICOM patient attribute, PHI evidence — is
//! written in full only with `outputs.unmask_sensitive: true`. Otherwise it
//! is written as
//!
//! ```text
//! ***(9 bytes #5bc2ad6a1f03)
//! ```
//!
//! - `9 bytes`: its length in bytes (of the bytes as sent for byte strings
//!   — passwords, payloads —, of its UTF-8 text for decoded text; for a
//!   payload kept only up to `max_payload_bytes`, the length sent);
//! - `#5bc2ad6a1f03`: the first 48 bits of SipHash-1-3 of those bytes (of
//!   the kept bytes, for a cut payload) under the run's *mask key*, in hex
//!   (1-3 rather than 2-4: a 64 KiB payload is hashed in about half the
//!   time, and the variant Rust's hash tables rely on against attackers
//!   who choose the input is margin enough for a keyed tag of 48 bits).
//!   The same value masks the same way in every record and alert of a run
//!   — a patient name in a DICOM record, in the PHI evidence of the DICOM
//!   alert and in that of an MQTT alert —, so an analyst can follow one
//!   patient, password or payload across protocols and devices without
//!   reading it. Without the key the hash says nothing about the value: a
//!   list of common names or every birth date of a century cannot be tried
//!   against it, as it could against a plain hash;
//! - no character of the value: two characters of a name are the initials,
//!   a prefix of a short code is most of it, and a prefix of a payload may
//!   be a name.
//!
//! An empty value is written empty (nothing to hide, and "empty password"
//! is a finding). One exception keeps a coarse meaning: PHI evidence of
//! kind `location` that is a position is coarsened to one decimal of a
//! degree (`~48.8,2.4`, about 11 km: where, not who;
//! [`crate::detect::phi::location::coarsened`]); a street address is
//! masked like any value.
//!
//! The mask key: SipHash-2-4-128 of the contents of
//! `outputs.mask_key_file` (at least 16 bytes of secret, e.g.
//! `head -c 32 /dev/urandom`), so that masks stay the same across restarts
//! and across the sensors that share the file; without it, a random key
//! made once per process (masks then match within a run only).
//!
//! # Bytes that are not UTF-8
//!
//! Suricata's rule, so that queries and dashboards written for its EVE
//! read ours the same way: a value that is valid UTF-8 is written as that
//! text; any other value is written whole with every byte from 0x80 up as
//! the four characters `\xNN` (lowercase hex) and every ASCII byte as
//! itself (control characters then take JSON's `\u00NN` escape). Chosen
//! over U+FFFD replacement because it keeps every byte (two different
//! binary payloads never look the same, and an analyst can recover them)
//! and over escaping everything non-printable because Suricata does not.
//! The one ambiguity, Suricata's too: text that contains the characters
//! `\x` followed by two hex digits reads like an escaped byte.

use std::borrow::Cow;
use std::fmt;
use std::hash::Hasher as _;
use std::sync::OnceLock;

use serde::{Serialize, Serializer};
use siphasher::sip::SipHasher13;
use siphasher::sip128::{Hasher128 as _, SipHasher24 as SipHasher24x128};

use crate::detect::phi::{location, Evidence, PhiKind};

/// Shortest `outputs.mask_key_file` accepted, in bytes.
pub const MIN_KEY_FILE_BYTES: usize = 16;

/// The secret key of the masks' hashes. Its `Debug` does not show it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MaskKey {
    k0: u64,
    k1: u64,
}

impl fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MaskKey(..)")
    }
}

impl MaskKey {
    /// The key made from a secret (the contents of `outputs.mask_key_file`).
    pub fn from_secret(secret: &[u8]) -> MaskKey {
        // Fixed all-zero key: this only spreads the secret's entropy over
        // 128 bits; the secret is what must stay secret.
        let mut h = SipHasher24x128::new_with_keys(0, 0);
        h.write(b"wardwatch mask key v1\0");
        h.write(secret);
        let h = h.finish128();
        MaskKey { k0: h.h1, k1: h.h2 }
    }

    /// This process's random key, made on first use from the operating
    /// system's random source.
    pub fn per_process() -> MaskKey {
        static KEY: OnceLock<MaskKey> = OnceLock::new();
        *KEY.get_or_init(|| {
            let mut b = [0u8; 16];
            if getrandom::fill(&mut b).is_err() {
                // No OS random source: std's hash keys are seeded from
                // whatever it could get, and never leave the process.
                use std::hash::BuildHasher as _;
                let s = std::collections::hash_map::RandomState::new();
                b[..8].copy_from_slice(&s.hash_one(1u8).to_le_bytes());
                b[8..].copy_from_slice(&s.hash_one(2u8).to_le_bytes());
            }
            MaskKey::from_secret(&b)
        })
    }

    /// The 48-bit tag of `value`.
    fn tag(&self, value: &[u8]) -> u64 {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write(value);
        h.finish() >> 16
    }
}

/// Reads `outputs.mask_key_file`.
///
/// # Errors
/// The file cannot be read, or holds fewer than [`MIN_KEY_FILE_BYTES`].
pub fn key_from_file(path: &std::path::Path) -> Result<MaskKey, String> {
    let secret = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if secret.len() < MIN_KEY_FILE_BYTES {
        return Err(format!(
            "{}: {} bytes; a mask key needs at least {MIN_KEY_FILE_BYTES} bytes of secret \
             (head -c 32 /dev/urandom > FILE)",
            path.display(),
            secret.len()
        ));
    }
    Ok(MaskKey::from_secret(&secret))
}

/// How sensitive values are logged: the policy of this module, with the
/// run's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// Log passwords, passcodes, payloads and patient data in full
    /// (`outputs.unmask_sensitive`). Off by default: the sensor must not
    /// become a leak of what it protects.
    pub unmask: bool,
    key: MaskKey,
}

impl Default for LogOptions {
    /// What a run with the default configuration does: mask, with this
    /// process's key.
    fn default() -> Self {
        LogOptions::masked(MaskKey::per_process())
    }
}

impl LogOptions {
    /// Masks with `key`.
    pub fn masked(key: MaskKey) -> LogOptions {
        LogOptions { unmask: false, key }
    }

    /// Logs everything in full.
    pub fn unmasked() -> LogOptions {
        LogOptions {
            unmask: true,
            ..LogOptions::default()
        }
    }

    /// The options of a run: `outputs.unmask_sensitive`, and the key read
    /// from `outputs.mask_key_file` when the configuration was loaded (else
    /// this process's key).
    pub fn from_config(o: &crate::config::OutputSection) -> LogOptions {
        LogOptions {
            unmask: o.unmask_sensitive,
            key: o.mask_key.unwrap_or_else(MaskKey::per_process),
        }
    }

    /// A sensitive value, for a `Serialize` record.
    pub fn sensitive<'a>(&'a self, value: &'a [u8]) -> Sensitive<'a> {
        self.sensitive_cut(value, value.len())
    }

    /// A sensitive value of which only `kept` (a prefix) was kept of `len`
    /// bytes sent.
    pub fn sensitive_cut<'a>(&'a self, kept: &'a [u8], len: usize) -> Sensitive<'a> {
        Sensitive {
            kept,
            len,
            opts: self,
        }
    }

    /// The masked form of a value, whatever `unmask` says.
    pub fn mask(&self, value: &[u8]) -> String {
        Masked {
            kept: value,
            len: value.len(),
            key: &self.key,
        }
        .to_string()
    }

    /// [`LogOptions::evidence`] written as a JSON string, the mask
    /// without a `String` of its own.
    pub fn write_evidence(&self, e: &Evidence, out: &mut Vec<u8>) {
        if self.unmask || e.kind == PhiKind::Location {
            super::json::write_str(out, &self.evidence(e));
            return;
        }
        let t = Masked {
            kept: e.value.as_bytes(),
            len: e.value.len(),
            key: &self.key,
        }
        .text();
        // A mask is ASCII letters, digits, `*`, `(`, `)`, `#` and spaces:
        // nothing to escape.
        out.push(b'"');
        out.extend_from_slice(t.as_bytes());
        out.push(b'"');
    }

    /// A PHI evidence value as logged: in full with `unmask`; a position
    /// coarsened; anything else masked.
    pub fn evidence<'a>(&self, e: &'a Evidence) -> Cow<'a, str> {
        if self.unmask {
            return Cow::Borrowed(&e.value);
        }
        if e.kind == PhiKind::Location {
            if let Some(coarse) = location::coarsened(&e.value) {
                return Cow::Owned(coarse);
            }
        }
        Cow::Owned(self.mask(e.value.as_bytes()))
    }
}

/// A sensitive value as logged ([`LogOptions::sensitive`]): serialises to
/// the value ([`Text`]) with `unmask`, else to its mask.
#[derive(Clone, Copy)]
pub struct Sensitive<'a> {
    kept: &'a [u8],
    len: usize,
    opts: &'a LogOptions,
}

impl Serialize for Sensitive<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.opts.unmask {
            return Text(self.kept).serialize(s);
        }
        if self.len == 0 {
            return s.serialize_str("");
        }
        let text = Masked {
            kept: self.kept,
            len: self.len,
            key: &self.opts.key,
        }
        .text();
        s.serialize_str(text.as_str())
    }
}

impl Sensitive<'_> {
    /// Appends what [`Serialize`] writes, without a serializer: a mask is
    /// ASCII letters, digits, `*`, `(`, `)`, `#` and spaces, so it is
    /// copied between quotes; an unmasked value goes through
    /// [`super::json::write`] (its one UTF-8 and escaping rule).
    ///
    /// # Errors
    /// As [`super::json::write`] (never, for a string).
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), super::json::Error> {
        if self.opts.unmask {
            return super::json::write(out, &Text(self.kept));
        }
        out.push(b'"');
        if self.len > 0 {
            let text = Masked {
                kept: self.kept,
                len: self.len,
                key: &self.opts.key,
            }
            .text();
            out.extend_from_slice(text.as_bytes());
        }
        out.push(b'"');
        Ok(())
    }
}

/// `***(N bytes #tag)`, written without an intermediate string.
struct Masked<'a> {
    kept: &'a [u8],
    len: usize,
    key: &'a MaskKey,
}

impl Masked<'_> {
    /// The mask's text in a stack buffer (at most 4 + 20 + 7 + 12 + 1
    /// bytes), without `core::fmt`: every masked value of every record
    /// comes through here.
    fn text(&self) -> MaskText {
        let mut t = MaskText {
            buf: [0; 48],
            len: 0,
        };
        if self.len == 0 {
            return t;
        }
        // `***(N bytes #` then twelve hex digits and `)`: the fixed parts
        // and the digits copied as whole arrays, the hex two digits per
        // byte of the tag from a table.
        let mut digits = itoa::Buffer::new();
        let n = digits.format(self.len).as_bytes();
        let tag = self.key.tag(self.kept).to_be_bytes();
        let mut hex = [0u8; 12];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(tag.iter().skip(2)) {
            pair.copy_from_slice(&HEX_PAIRS[usize::from(*byte)]);
        }
        let at = 4 + n.len();
        let parts: [(usize, &[u8]); 5] = [
            (0, b"***("),
            (4, n),
            (at, b" bytes #"),
            (at + 8, &hex),
            (at + 20, b")"),
        ];
        for (from, part) in parts {
            if let Some(dst) = t.buf.get_mut(from..from + part.len()) {
                dst.copy_from_slice(part);
            }
        }
        t.len = at + 21;
        t
    }
}

/// Every byte as two lower-case hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 0xf]];
        i += 1;
    }
    t
};

/// A mask's text ([`Masked::text`]).
struct MaskText {
    buf: [u8; 48],
    len: usize,
}

impl MaskText {
    /// The mask's bytes, for a byte buffer: no UTF-8 check per value.
    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    fn as_str(&self) -> &str {
        // ASCII only.
        std::str::from_utf8(self.buf.get(..self.len).unwrap_or_default()).unwrap_or_default()
    }
}

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text().as_str())
    }
}

/// Bytes written as an EVE string by the rule of this module (UTF-8 as
/// is, otherwise bytes from 0x80 as `\xNN`).
#[derive(Debug, Clone, Copy)]
pub struct Text<'a>(pub &'a [u8]);

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(self.0) {
            Ok(t) => s.serialize_str(t),
            Err(_) => s.collect_str(&Escaped(self.0)),
        }
    }
}

/// `b` as text by the rule of this module: borrowed when it is UTF-8.
pub fn display_bytes(b: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(t) => Cow::Borrowed(t),
        Err(_) => Cow::Owned(Escaped(b).to_string()),
    }
}

/// Every byte from 0x80 as `\xNN`, ASCII as is.
struct Escaped<'a>(&'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        loop {
            let n = rest
                .iter()
                .position(|b| !b.is_ascii())
                .unwrap_or(rest.len());
            let (run, tail) = rest.split_at(n);
            // An ASCII run is UTF-8.
            f.write_str(std::str::from_utf8(run).unwrap_or_default())?;
            let Some((b, tail)) = tail.split_first() else {
                return Ok(());
            };
            write!(f, "\\x{b:02x}")?;
            rest = tail;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MaskKey {
        MaskKey::from_secret(b"a test secret of some length")
    }

    fn json<T: Serialize>(v: T) -> String {
        serde_json::to_string(&v).unwrap()
    }

    proptest::proptest! {
        /// The mask as built by hand is the mask as `format!` writes it.
        #[test]
        fn mask_text_is_the_formatted_mask(
            value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
            len in proptest::prelude::any::<usize>(),
        ) {
            let k = key();
            let len = if len % 2 == 0 { value.len() } else { len };
            let m = Masked { kept: &value, len, key: &k };
            let want = if len == 0 {
                String::new()
            } else {
                format!("***({len} bytes #{:012x})", k.tag(&value))
            };
            let text = m.text();
            proptest::prop_assert_eq!(text.as_str(), want.as_str());
            proptest::prop_assert_eq!(text.as_bytes(), want.as_bytes());
        }
    }

    #[test]
    fn tag_is_siphash_1_3_as_openssl_computes_it() {
        // Key 00 01 … 0f, message 00 01 … 0e (the SipHash paper's
        // inputs): `openssl mac -macopt hexkey:000102030405060708090a0b0c0d0e0f
        // -macopt size:8 -macopt c-rounds:1 -macopt d-rounds:3 SIPHASH`
        // (OpenSSL 3.0.19) prints 5699512A6DD820D3, little-endian.
        let k = MaskKey {
            k0: u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]),
            k1: u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]),
        };
        let msg: Vec<u8> = (0u8..15).collect();
        assert_eq!(k.tag(&msg), 0xd320_d86d_2a51_9956 >> 16);
    }

    #[test]
    fn masked_value_shows_length_and_keyed_tag_only() {
        let o = LogOptions::masked(key());
        let m = o.mask(b"TEST^JANE");
        assert!(m.starts_with("***(9 bytes #"), "{m}");
        assert_eq!(m.len(), "***(9 bytes #)".len() + 12, "{m}");
        assert!(!m.contains("TE") && !m.contains("JANE"), "{m}");
        // Same value, same mask; another value or another key, another tag.
        assert_eq!(o.mask(b"TEST^JANE"), m);
        assert_ne!(o.mask(b"TEST^JANF"), m);
        let other = LogOptions::masked(MaskKey::from_secret(b"another secret of some length"));
        assert_ne!(other.mask(b"TEST^JANE"), m);
        assert_eq!(o.mask(b""), "");
    }

    #[test]
    fn sensitive_serialises_masked_or_in_full() {
        let o = LogOptions::masked(key());
        assert_eq!(json(o.sensitive(b"admin")), json(o.mask(b"admin")));
        assert_eq!(json(o.sensitive(b"")), r#""""#);
        let full = LogOptions {
            unmask: true,
            key: key(),
        };
        assert_eq!(json(full.sensitive(b"admin")), r#""admin""#);
        assert_eq!(json(full.sensitive(b"a\xffb")), r#""a\\xffb""#);
    }

    #[test]
    fn cut_payload_masks_with_the_length_sent_and_the_kept_bytes() {
        let o = LogOptions::masked(key());
        let m = json(o.sensitive_cut(b"{\"name\"", 2000));
        assert!(m.starts_with(r#""***(2000 bytes #"#), "{m}");
        // The tag is the kept bytes' tag.
        let tag = |m: &str| {
            m.rsplit('#')
                .next()
                .unwrap()
                .trim_end_matches([')', '"'])
                .to_string()
        };
        assert_eq!(tag(&m), tag(&o.mask(b"{\"name\"")));
        let full = LogOptions {
            unmask: true,
            key: key(),
        };
        assert_eq!(
            json(full.sensitive_cut(b"{\"name\"", 2000)),
            r#""{\"name\"""#
        );
    }

    #[test]
    fn non_utf8_bytes_follow_suricatas_rule() {
        // Valid UTF-8: as is (JSON escapes what it must).
        assert_eq!(json(Text("é\\x41\n".as_bytes())), r#""é\\x41\n""#);
        // Otherwise bytes from 0x80 as \xNN, ASCII (controls too) as is.
        assert_eq!(json(Text(b"\xf0\xf1\xf2")), r#""\\xf0\\xf1\\xf2""#);
        assert_eq!(json(Text(b"A\x00\\\xc3")), r#""A\u0000\\\\xc3""#);
        assert_eq!(display_bytes(b"ok"), Cow::Borrowed("ok"));
        assert_eq!(display_bytes(b"M\xdcLLER"), "M\\xdcLLER");
        // A valid sequence inside an invalid value is escaped byte by byte.
        assert_eq!(display_bytes("é\u{0}".as_bytes()), "é\u{0}");
        assert_eq!(display_bytes(b"\xc3\xa9\xff"), "\\xc3\\xa9\\xff");
        assert_eq!(display_bytes(b""), "");
    }

    #[test]
    fn evidence_is_masked_a_position_coarsened_and_all_shown_unmasked() {
        let o = LogOptions::masked(key());
        let name = Evidence {
            kind: PhiKind::Json,
            field: "name".into(),
            value: "TEST^JANE".into(),
        };
        assert_eq!(o.evidence(&name), o.mask(b"TEST^JANE"));
        let pos = Evidence {
            kind: PhiKind::Location,
            field: "gps".into(),
            value: "48.84512,2.35601".into(),
        };
        assert_eq!(o.evidence(&pos), "~48.8,2.4");
        let addr = Evidence {
            value: "1 RUE DE L'EXEMPLE^^PARIS^^75012^FR".into(),
            ..pos.clone()
        };
        assert_eq!(o.evidence(&addr), o.mask(addr.value.as_bytes()));
        // Another kind's value that looks like a position is not coarsened.
        let other = Evidence {
            kind: PhiKind::Json,
            ..pos.clone()
        };
        assert_eq!(o.evidence(&other), o.mask(b"48.84512,2.35601"));
        let full = LogOptions {
            unmask: true,
            key: key(),
        };
        assert_eq!(full.evidence(&pos), "48.84512,2.35601");
        assert_eq!(full.evidence(&name), "TEST^JANE");
    }

    #[test]
    fn key_comes_from_a_secret_file_of_sixteen_bytes_or_more() {
        let dir = std::env::temp_dir().join(format!("ww-mask-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("key");
        std::fs::write(&f, b"0123456789abcdef").unwrap();
        assert_eq!(
            key_from_file(&f).unwrap(),
            MaskKey::from_secret(b"0123456789abcdef")
        );
        std::fs::write(&f, b"short").unwrap();
        assert!(key_from_file(&f).unwrap_err().contains("at least 16 bytes"));
        assert!(key_from_file(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn per_process_key_is_stable_and_not_printed() {
        assert_eq!(MaskKey::per_process(), MaskKey::per_process());
        assert_eq!(format!("{:?}", key()), "MaskKey(..)");
        assert_eq!(
            LogOptions::default().mask(b"x"),
            LogOptions::masked(MaskKey::per_process()).mask(b"x")
        );
    }
}
