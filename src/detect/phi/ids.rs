//! National identifiers: validators and a linear scanner over text.
//!
//! - US Social Security number, dashed form `AAA-GG-SSSS` only when found
//!   in free text, with the SSA's format rules: area not 000, 666 or
//!   900–999, group not 00, serial not 0000 (SSA, "Social Security Number
//!   Randomization", 2011), and not the two numbers the SSA voided after
//!   they were printed in advertising (078-05-1120, 219-09-9999). Nine
//!   undashed digits count only where the context names an SSN (HL7 PID-19,
//!   identifier type `SS`, FHIR system `http://hl7.org/fhir/sid/us-ssn`).
//! - French NIR (INSEE): sex digit, year, month, département (`2A`/`2B`
//!   for Corsica), commune, order number, then a 2-digit key equal to
//!   97 − (the 13-digit number mod 97), where Corsica's `2A`/`2B` count as
//!   19/18. Sex digit 1 or 2 in free text; with an explicit NIR context
//!   (INS OID, `nir` key) also 3, 4, 7 and 8, used for provisional numbers.
//!   Month 01–12 or 20–42 (pseudo-months given when the civil status is
//!   incomplete); with context also 50–99. Written as 15 characters, or in
//!   the printed groups `2 00 01 75 112 999 31`. The form "13 digits,
//!   space, key" is not accepted in free text: a 13-digit millisecond
//!   timestamp followed by a 2-digit reading (`1735689600123 72`) has that
//!   shape, and its digits land in the 50–99 month range.
//! - Dutch BSN: 9 digits passing the eleven-proof (weights 9…2 and −1),
//!   not all digits equal. One random 9-digit number in 11 passes, so a BSN
//!   counts only with context: a `bsn` / `burgerservicenummer` label just
//!   before it, the BSN naming system or its OID 2.16.840.1.113883.2.4.6.3.
//!
//! A candidate must be a whole token: not inside a longer run of letters,
//! digits or underscores, not part of a decimal or dotted number, not part
//! of a longer dash-joined run. Context-free candidates whose label names a
//! device field (IMEI, IMSI, serial, timestamp…) are dropped: those are the
//! 15-digit numbers telemetry carries.
//!
//! Work: one pass over the text; at each token start a bounded look-ahead
//! (the longest written form is 21 bytes) and a bounded look-behind
//! ([`LABEL_WINDOW`] bytes) for labels. No allocation except evidence.

use super::{Collector, PhiKind};
use crate::output::mask::display_bytes;

/// Bytes looked back from a number for its label.
pub const LABEL_WINDOW: usize = 48;

/// OID of the Dutch BSN (assigning authority NLMINBIZA).
pub const BSN_OID: &str = "2.16.840.1.113883.2.4.6.3";
/// FHIR naming system of the Dutch BSN.
pub const BSN_SYSTEM: &str = "http://fhir.nl/fhir/NamingSystem/bsn";
/// OIDs of the French INS: NIR, NIA, and their test variants (ANS,
/// "Référentiel INS").
pub const INS_OIDS: [&str; 4] = [
    "1.2.250.1.213.1.4.8",
    "1.2.250.1.213.1.4.9",
    "1.2.250.1.213.1.4.10",
    "1.2.250.1.213.1.4.11",
];
/// OID of the US SSN (HL7 OID registry).
pub const SSN_OID: &str = "2.16.840.1.113883.4.1";
/// FHIR naming system of the US SSN.
pub const SSN_SYSTEM: &str = "http://hl7.org/fhir/sid/us-ssn";

fn digit(b: u8) -> Option<u32> {
    b.is_ascii_digit().then(|| u32::from(b - b'0'))
}

fn all_digits(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(u8::is_ascii_digit)
}

fn num(s: &[u8]) -> u32 {
    s.iter().fold(0u32, |n, &b| {
        n.saturating_mul(10)
            .saturating_add(u32::from(b.wrapping_sub(b'0')))
    })
}

/// A US SSN in the dashed form `AAA-GG-SSSS` that follows the SSA's format
/// rules.
pub fn is_ssn_dashed(s: &[u8]) -> bool {
    if s.len() != 11 || s.get(3) != Some(&b'-') || s.get(6) != Some(&b'-') {
        return false;
    }
    let (Some(a), Some(g), Some(n)) = (s.get(0..3), s.get(4..6), s.get(7..11)) else {
        return false;
    };
    ssn_parts(a, g, n)
}

/// A US SSN dashed or as 9 digits (only where the context says SSN).
pub fn is_ssn_any(s: &[u8]) -> bool {
    if s.len() == 9 {
        match (s.get(0..3), s.get(3..5), s.get(5..9)) {
            (Some(a), Some(g), Some(n)) => ssn_parts(a, g, n),
            _ => false,
        }
    } else {
        is_ssn_dashed(s)
    }
}

fn ssn_parts(area: &[u8], group: &[u8], serial: &[u8]) -> bool {
    if !(all_digits(area) && all_digits(group) && all_digits(serial)) {
        return false;
    }
    let (a, g, n) = (num(area), num(group), num(serial));
    let voided = (a, g, n) == (78, 5, 1120) || (a, g, n) == (219, 9, 9999);
    a != 0 && a != 666 && a < 900 && g != 0 && n != 0 && !voided
}

/// A French NIR: 15 characters (`2A`/`2B` allowed as département), no
/// spaces. `strict` (free text) allows only sex digits 1 and 2.
pub fn is_nir(s: &[u8], strict: bool) -> bool {
    if s.len() != 15 {
        return false;
    }
    let sex = s.first().copied().and_then(digit);
    let sex_ok = match sex {
        Some(1 | 2) => true,
        Some(3 | 4 | 7 | 8) => !strict,
        _ => false,
    };
    if !sex_ok {
        return false;
    }
    let (Some(year), Some(month), Some(dept), Some(rest)) =
        (s.get(1..3), s.get(3..5), s.get(5..7), s.get(7..15))
    else {
        return false;
    };
    if !(all_digits(year) && all_digits(month) && all_digits(rest)) {
        return false;
    }
    let m = num(month);
    let month_ok = match m {
        1..=12 | 20..=42 => true,
        50..=99 => !strict,
        _ => false,
    };
    if !month_ok {
        return false;
    }
    // Corsica: 2A and 2B stand for 19 and 18 in the key computation.
    let dept_value = match dept {
        b"2A" | b"2a" => 19,
        b"2B" | b"2b" => 18,
        d if all_digits(d) && num(d) != 0 => num(d),
        _ => return false,
    };
    let (Some(commune), Some(order), Some(key)) = (s.get(7..10), s.get(10..13), s.get(13..15))
    else {
        return false;
    };
    if num(order) == 0 && num(commune) == 0 {
        return false;
    }
    let mut n: u64 = 0;
    let sex_digit = s.get(0..1).unwrap_or_default();
    for part in [sex_digit, year, month] {
        for &b in part {
            n = n * 10 + u64::from(b - b'0');
        }
    }
    n = n * 100 + u64::from(dept_value);
    for &b in commune.iter().chain(order) {
        n = n * 10 + u64::from(b - b'0');
    }
    let k = u64::from(num(key));
    (1..=97).contains(&k) && k == 97 - n % 97
}

/// A Dutch BSN: 9 digits passing the eleven-proof, not all equal.
pub fn is_bsn(s: &[u8]) -> bool {
    if s.len() != 9 || !all_digits(s) {
        return false;
    }
    if s.iter().all(|&b| Some(&b) == s.first()) {
        return false;
    }
    let mut sum: i64 = 0;
    for (i, &b) in s.iter().enumerate() {
        let d = i64::from(b - b'0');
        // Weights 9, 8 … 2 for the first eight digits, −1 for the last.
        let w = if i == 8 { -1 } else { 9 - i as i64 };
        sum += w * d;
    }
    sum % 11 == 0
}

/// Removes the spaces, dots and dashes people put in identifiers, into a
/// fixed buffer; `None` when the value holds anything else or is too long.
pub fn compact(value: &str) -> Option<([u8; 16], usize)> {
    let mut out = [0u8; 16];
    let mut n = 0usize;
    for &b in value.trim().as_bytes() {
        match b {
            b' ' | b'.' | b'-' => {}
            b if b.is_ascii_alphanumeric() => {
                *out.get_mut(n)? = b;
                n += 1;
            }
            _ => return None,
        }
    }
    Some((out, n))
}

/// What a structured context (key, identifier system) says a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    Nir,
    Bsn,
    Ssn,
}

/// Checks a value that its context declares to be a national identifier;
/// records it when valid. Returns whether it was.
pub fn check_hinted(hint: Hint, value: &str, field: &str, col: &mut Collector) -> bool {
    let ok = match hint {
        Hint::Ssn => {
            let v = value.trim().as_bytes();
            is_ssn_any(v)
        }
        Hint::Nir | Hint::Bsn => match compact(value) {
            Some((buf, n)) => {
                let v = buf.get(..n).unwrap_or_default();
                if hint == Hint::Nir {
                    is_nir(v, false)
                } else {
                    is_bsn(v)
                }
            }
            None => false,
        },
    };
    if ok {
        let kind = match hint {
            Hint::Nir => PhiKind::Nir,
            Hint::Bsn => PhiKind::Bsn,
            Hint::Ssn => PhiKind::Ssn,
        };
        col.add(kind, field, value.trim());
    }
    ok
}

/// Hint from a label (JSON key, DICOM issuer, HL7 type code…), compared
/// without case and without separators.
pub fn hint_of_label(label: &str) -> Option<Hint> {
    let mut buf = [0u8; 32];
    hint_of_normalized(normalize(label.as_bytes(), &mut buf)?)
}

/// [`hint_of_label`] of a label already [`normalize`]d.
pub fn hint_of_normalized(norm: &[u8]) -> Option<Hint> {
    match norm {
        b"nir"
        | b"nirpp"
        | b"insnir"
        | b"insee"
        | b"numeroinsee"
        | b"nss"
        | b"numsecu"
        | b"numerosecu"
        | b"numsecuritesociale"
        | b"numerosecuritesociale"
        | b"matriculeins" => Some(Hint::Nir),
        b"bsn" | b"burgerservicenummer" | b"sofinummer" => Some(Hint::Bsn),
        b"ssn" | b"socialsecuritynumber" | b"socialsecurityno" | b"ussn" => Some(Hint::Ssn),
        _ => None,
    }
}

/// Lower-case ASCII letters and digits of `s` into `buf`; `None` when they
/// do not fit.
pub fn normalize<'b>(s: &[u8], buf: &'b mut [u8; 32]) -> Option<&'b [u8]> {
    let mut n = 0usize;
    for &b in s {
        // One table load per byte: zero for what is left out, else the
        // lower-case byte (this runs on every key of every JSON object
        // the PHI walk meets).
        let c = LOWER_ALNUM[usize::from(b)];
        if c != 0 {
            *buf.get_mut(n)? = c;
            n += 1;
        }
    }
    buf.get(..n)
}

/// Each ASCII letter or digit as [`normalize`] keeps it (lower case);
/// zero for every other byte.
const LOWER_ALNUM: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        if b.is_ascii_alphanumeric() {
            t[i] = b.to_ascii_lowercase();
        }
        i += 1;
    }
    t
};

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Byte before a token start does not join it to something longer.
fn left_ok(text: &[u8], start: usize) -> bool {
    match start.checked_sub(1).and_then(|i| text.get(i)) {
        None => true,
        Some(&b) => !(is_word(b) || b == b'.' || b == b'-'),
    }
}

/// Byte after a token end does not join it to something longer: a word
/// character, or `.`/`-` followed by a word character (decimals, versions,
/// dash-joined runs). A sentence's final full stop is fine.
fn right_ok(text: &[u8], end: usize) -> bool {
    match text.get(end) {
        None => true,
        Some(&b) if is_word(b) => false,
        Some(b'.' | b'-') => !text.get(end + 1).is_some_and(|&c| is_word(c)),
        Some(_) => true,
    }
}

fn word_end(text: &[u8], start: usize) -> usize {
    let mut j = start;
    while text.get(j).is_some_and(|&b| ALNUM[usize::from(b)]) {
        j += 1;
    }
    j
}

/// `u8::is_ascii_alphanumeric` as a table: one load per byte of the
/// text scans, instead of two range tests.
const ALNUM: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u8).is_ascii_alphanumeric();
        i += 1;
    }
    t
};

/// What the label before a number says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    /// Names a BSN.
    Bsn,
    /// Names a device field: serial, IMEI, timestamp…
    Device,
    None,
}

/// Words allowed between a label and its number ("BSN nummer: …",
/// `"system":"…/bsn","value":"…"`).
const CONNECTORS: [&[u8]; 7] = [b"value", b"nr", b"no", b"number", b"nummer", b"id", b"is"];

/// Label tokens that mark device fields, by substring.
const DEVICE_SUBSTRINGS: [&[u8]; 11] = [
    b"imei",
    b"imsi",
    b"iccid",
    b"msisdn",
    b"serial",
    b"timestamp",
    b"uuid",
    b"guid",
    b"crc",
    b"hash",
    b"checksum",
];
/// Label tokens that mark device fields, whole.
const DEVICE_WORDS: [&[u8]; 8] = [
    b"sn", b"ts", b"seq", b"mac", b"lot", b"udi", b"gtin", b"ean",
];

fn is_label_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':')
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Classifies one label token (lower case, punctuation at its ends cut);
/// `prev` is the byte before the token in the text (the token may have
/// been cut by the look-behind window).
fn classify_token(tok: &[u8], prev: Option<u8>) -> Option<Label> {
    if tok.ends_with(BSN_OID.as_bytes()) || tok.ends_with(b"burgerservicenummer") {
        return Some(Label::Bsn);
    }
    if tok.ends_with(b"bsn") {
        let before = match tok.len().checked_sub(4) {
            Some(i) => tok.get(i).copied(),
            None => prev,
        };
        if !before.is_some_and(|b| b.is_ascii_alphabetic()) {
            return Some(Label::Bsn);
        }
    }
    if DEVICE_WORDS.contains(&tok)
        || DEVICE_SUBSTRINGS.iter().any(|d| contains(tok, d))
        || tok.ends_with(b"_sn")
        || tok.ends_with(b"_ts")
    {
        return Some(Label::Device);
    }
    if CONNECTORS.contains(&tok) {
        return None;
    }
    Some(Label::None)
}

/// Looks back from `start` over at most [`LABEL_WINDOW`] bytes for the
/// label of the number there: the nearest label token, skipping connector
/// words and punctuation.
fn label_before(text: &[u8], start: usize) -> Label {
    let lo = start.saturating_sub(LABEL_WINDOW);
    let mut i = start;
    while i > lo {
        let Some(&b) = text.get(i - 1) else {
            return Label::None;
        };
        if !is_label_char(b) {
            i -= 1;
            continue;
        }
        // A token ends at i; find its start (may run past the window: the
        // token is then cut, which only matters for very long labels).
        let end = i;
        while i > lo && text.get(i - 1).is_some_and(|&c| is_label_char(c)) {
            i -= 1;
        }
        let Some(raw) = text.get(i..end) else {
            return Label::None;
        };
        let trimmed = trim_punct(raw);
        if trimmed.is_empty() {
            continue;
        }
        // The byte before the trimmed token in the text (it matters when
        // the window cut the token: `…absn` must not read as `bsn`).
        let lead = raw.len() - trim_start_len(raw);
        let prev = (i + lead).checked_sub(1).and_then(|p| text.get(p)).copied();
        let mut buf = [0u8; LABEL_WINDOW];
        let Some(dst) = buf.get_mut(..trimmed.len()) else {
            return Label::None;
        };
        for (d, s) in dst.iter_mut().zip(trimmed) {
            *d = s.to_ascii_lowercase();
        }
        match classify_token(dst, prev) {
            Some(l) => return l,
            None => continue,
        }
    }
    Label::None
}

/// Length of `s` without its leading non-alphanumeric bytes.
fn trim_start_len(s: &[u8]) -> usize {
    let lead = s.iter().take_while(|b| !b.is_ascii_alphanumeric()).count();
    s.len() - lead
}

fn trim_punct(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_alphanumeric() {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_alphanumeric() {
            break;
        }
        s = rest;
    }
    s
}

/// A NIR written with spaces in the printed groups 1 2 2 2 3 3 2 (the
/// département group may be `2A`/`2B`). Returns the compacted number and
/// the end offset.
fn spaced_nir(text: &[u8], start: usize) -> Option<([u8; 15], usize)> {
    const LAYOUTS: [&[usize]; 1] = [&[1, 2, 2, 2, 3, 3, 2]];
    'layout: for layout in LAYOUTS {
        let mut out = [0u8; 15];
        let mut n = 0usize;
        let mut pos = start;
        for (gi, &len) in layout.iter().enumerate() {
            if gi > 0 {
                if text.get(pos) != Some(&b' ') {
                    continue 'layout;
                }
                pos += 1;
            }
            let end = word_end(text, pos);
            if end - pos != len {
                continue 'layout;
            }
            for &b in text.get(pos..end)? {
                *out.get_mut(n)? = b;
                n += 1;
            }
            pos = end;
        }
        if n == 15 {
            return Some((out, pos));
        }
    }
    None
}

/// Scans free text for national identifiers and records what it finds
/// under `field` (the kind's name when `None`).
///
/// Every identifier starts with a digit at the start of a word (a run of
/// ASCII letters and digits), so the scan jumps from digit to digit
/// ([`next_digit`], eight bytes a step) rather than from word to word: a
/// digit right after a letter or digit is inside a word, which
/// [`left_ok`] refuses as a walk from word to word would have skipped it
/// (the rest of its word is then skipped whole). The scan is never left
/// inside a word (an identifier found must not be joined to one), so the
/// digits tried are the word starts that walk would try, in the same
/// order (`scan_text_by_words`, in the tests, is that walk).
pub fn scan_text(text: &[u8], field: Option<&str>, col: &mut Collector) {
    let mut i = 0usize;
    while let Some(j) = next_digit(text, i) {
        let end = word_end(text, j);
        if left_ok(text, j) {
            if let Some(next) = candidate_at(text, j, end, field, col) {
                i = next.max(end);
                continue;
            }
        }
        i = end.max(j + 1);
    }
}

/// The first ASCII digit of `text` at or after `from`.
fn next_digit(text: &[u8], from: usize) -> Option<usize> {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    while let Some(w) = text.get(i..i + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
        let x = u64::from_le_bytes(w);
        // Per byte, with no carry into the next: the high bit of
        // `y + 0x50` says `y >= 0x30`, that of `y + 0x46` says
        // `y >= 0x3a`, and bytes from 0x80 are no digit.
        let y = x & LOW7;
        let digits = (y + 0x5050_5050_5050_5050) & !(y + 0x4646_4646_4646_4646) & !x & HIGH;
        if digits != 0 {
            return Some(i + (digits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    text.get(i..)?
        .iter()
        .position(u8::is_ascii_digit)
        .map(|k| i + k)
}

/// Tries every identifier form at a token start; returns the end of what
/// was recognised.
fn candidate_at(
    text: &[u8],
    start: usize,
    end: usize,
    field: Option<&str>,
    col: &mut Collector,
) -> Option<usize> {
    let word = text.get(start..end)?;
    // SSN: three digits, dash, two, dash, four, and nothing joined on.
    if word.len() == 3 {
        let s_end = start + 11;
        if let Some(s) = text.get(start..s_end) {
            if is_ssn_dashed(s) && right_ok(text, s_end) {
                record(PhiKind::Ssn, s, field, col);
                return Some(s_end);
            }
        }
    }
    // NIR: one 15-character word, or a spaced form.
    let nir = if word.len() == 15 {
        right_ok(text, end).then_some((word, end))
    } else {
        None
    };
    let spaced;
    let nir = match nir {
        Some(n) => Some(n),
        // The spaced form starts with its one-digit sex group: a longer
        // number (a reading, a count, a year) is not looked at again.
        None if word.len() != 1 => None,
        None => {
            spaced = spaced_nir(text, start);
            match &spaced {
                Some((buf, e)) if right_ok(text, *e) => Some((&buf[..], *e)),
                _ => None,
            }
        }
    };
    if let Some((digits, e)) = nir {
        if is_nir(digits, true) && label_before(text, start) != Label::Device {
            let raw = text.get(start..e).unwrap_or(digits);
            record(PhiKind::Nir, raw, field, col);
            return Some(e);
        }
    }
    // BSN: 9 digits with a BSN label before them.
    if word.len() == 9
        && is_bsn(word)
        && right_ok(text, end)
        && label_before(text, start) == Label::Bsn
    {
        record(PhiKind::Bsn, word, field, col);
        return Some(end);
    }
    None
}

fn record(kind: PhiKind, raw: &[u8], field: Option<&str>, col: &mut Collector) {
    col.add(kind, field.unwrap_or(kind.name()), &display_bytes(raw));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::phi::PhiConfig;

    /// [`scan_text`] as a walk from word start to word start: the
    /// reference of its digit-to-digit scan.
    fn scan_text_by_words(text: &[u8], field: Option<&str>, col: &mut Collector) {
        let mut i = 0usize;
        while i < text.len() {
            let Some(&b) = text.get(i) else { break };
            if !ALNUM[usize::from(b)] {
                i += 1;
                continue;
            }
            let end = word_end(text, i);
            if b.is_ascii_digit() && left_ok(text, i) {
                if let Some(next) = candidate_at(text, i, end, field, col) {
                    i = next.max(end);
                    continue;
                }
            }
            i = end.max(i + 1);
        }
    }

    /// Text made of pieces that put identifiers, digits inside words, and
    /// joiners next to each other.
    fn pieces() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            Just(b"200017511299931".to_vec()),
            Just(b"2 00 01 75 112 999 31".to_vec()),
            Just(b"123-45-6789".to_vec()),
            Just(b"111222333".to_vec()),
            Just(b"bsn".to_vec()),
            Just(b"nir:".to_vec()),
            Just(b"W3".to_vec()),
            Just(b"serial".to_vec()),
            Just(b"\xe9".to_vec()),
            Just(vec![0xc3, 0xa9]),
            proptest::collection::vec(
                prop_oneof![
                    (b'0'..=b'9'),
                    Just(b'a'),
                    Just(b'Z'),
                    Just(b'_'),
                    Just(b'-'),
                    Just(b'.'),
                    Just(b' '),
                    Just(b'"'),
                    Just(b':'),
                    Just(b'/'),
                    Just(0x80u8),
                    Just(0xffu8),
                ],
                0..12
            ),
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat())
    }

    proptest::proptest! {
        #[test]
        fn scan_text_jumping_to_digits_finds_what_the_word_walk_finds(text in pieces()) {
            let cfg = PhiConfig { max_evidence: 64, ..PhiConfig::default() };
            let (mut fast, mut slow) = (Collector::new(&cfg), Collector::new(&cfg));
            scan_text(&text, Some("f"), &mut fast);
            scan_text_by_words(&text, Some("f"), &mut slow);
            proptest::prop_assert_eq!(fast.finish(), slow.finish());
        }
    }

    #[test]
    fn next_digit_finds_the_first_digit_at_or_after() {
        let mut t = b"abcdefgh".to_vec();
        t.extend_from_slice(&[0xff, 0x80, 0xb0, 0xb9, b'/', b':']);
        t.extend_from_slice(b"ijk9lmnopqrstu0");
        for from in 0..=t.len() + 1 {
            let want = (from..t.len()).find(|&i| t[i].is_ascii_digit());
            assert_eq!(next_digit(&t, from), want, "from {from}");
        }
        // Every byte value once: digits are 0x30..=0x39 only.
        let bytes: Vec<u8> = (0..=255u8).collect();
        for from in 0..bytes.len() {
            let want = match from {
                0..=0x30 => Some(0x30),
                0x31..=0x39 => Some(from),
                _ => None,
            };
            assert_eq!(next_digit(&bytes, from), want, "from {from}");
        }
    }

    fn kinds(text: &str) -> Vec<PhiKind> {
        let mut col = Collector::new(&PhiConfig::default());
        scan_text(text.as_bytes(), None, &mut col);
        col.finish().kinds
    }

    // NIR keys below were computed independently (python3: 97 - n % 97).
    // 2000175112999 mod 97 = 66 -> key 31; 1000175112998 mod 97 = 15 -> 82.
    #[test]
    fn nir_fixtures_from_the_capture_readme_are_valid() {
        assert!(is_nir(b"200017511299931", true));
        assert!(is_nir(b"100017511299882", true));
    }

    #[test]
    fn nir_with_key_off_by_one_is_invalid() {
        assert!(!is_nir(b"200017511299930", true));
        assert!(!is_nir(b"200017511299932", true));
        assert!(!is_nir(b"100017511299881", true));
    }

    #[test]
    fn nir_with_impossible_month_or_sex_is_invalid() {
        // 2 00 13 75 112 999: 2001375112999 mod 97 = 68 -> key 29, but month 13.
        assert!(!is_nir(b"200137511299929", true));
        // Sex 5: 5000175112999 mod 97 = 22 -> key 75.
        assert!(!is_nir(b"500017511299975", true));
        assert!(!is_nir(b"500017511299975", false));
    }

    #[test]
    fn nir_provisional_sex_digit_only_with_context() {
        // 8 00 01 75 112 999: 8000175112999 mod 97 = 75 -> key 22.
        assert!(!is_nir(b"800017511299922", true));
        assert!(is_nir(b"800017511299922", false));
    }

    #[test]
    fn nir_corsica_2a_2b_use_19_and_18_in_the_key() {
        // 1 85 05 2A 004 123: with 19 -> 1850519004123 mod 97 = 41 -> key 56.
        assert!(is_nir(b"185052A00412356", true));
        // 1 85 05 2B 004 123: with 18 -> 1850518004123 mod 97 = 14 -> key 83.
        assert!(is_nir(b"185052B00412383", true));
        // 2B with 2A's key.
        assert!(!is_nir(b"185052B00412356", true));
    }

    #[test]
    fn bsn_eleven_proof() {
        // 111222333: 9+8+7+2*6+2*5+2*4+3*3+3*2-3 = 66 = 6*11.
        assert!(is_bsn(b"111222333"));
        // 123456782: 9+16+21+24+25+24+21+16-2 = 154 = 14*11.
        assert!(is_bsn(b"123456782"));
        assert!(!is_bsn(b"123456789"));
        assert!(!is_bsn(b"111222334"));
        // All zeros would pass the sum; all-equal digits are refused.
        assert!(!is_bsn(b"000000000"));
        assert!(!is_bsn(b"12345678"));
    }

    #[test]
    fn ssn_format_rules() {
        assert!(is_ssn_dashed(b"123-45-6789"));
        assert!(!is_ssn_dashed(b"000-45-6789"));
        assert!(!is_ssn_dashed(b"666-45-6789"));
        assert!(!is_ssn_dashed(b"900-45-6789"));
        assert!(!is_ssn_dashed(b"999-45-6789"));
        assert!(!is_ssn_dashed(b"123-00-6789"));
        assert!(!is_ssn_dashed(b"123-45-0000"));
        assert!(!is_ssn_dashed(b"078-05-1120"));
        assert!(!is_ssn_dashed(b"123456789"));
        assert!(is_ssn_any(b"123456789"));
        assert!(!is_ssn_any(b"666456789"));
    }

    #[test]
    fn text_ssn_dashed_found_but_not_in_longer_runs() {
        assert_eq!(kinds("ssn 123-45-6789."), vec![PhiKind::Ssn]);
        assert!(kinds("1123-45-6789").is_empty());
        assert!(kinds("123-45-67890").is_empty());
        assert!(kinds("9-123-45-6789").is_empty());
        assert!(kinds("123-45-6789-1").is_empty());
        assert!(kinds("A123-45-6789").is_empty());
        assert!(kinds("123 45 6789").is_empty());
    }

    #[test]
    fn text_nir_in_its_written_forms() {
        assert_eq!(kinds("nir 200017511299931"), vec![PhiKind::Nir]);
        assert_eq!(kinds("NIR: 2 00 01 75 112 999 31"), vec![PhiKind::Nir]);
        // 13 + space + key is not taken in free text (timestamp + reading).
        assert!(kinds("2000175112999 31").is_empty());
        assert_eq!(kinds("\"x\":200017511299931}"), vec![PhiKind::Nir]);
    }

    #[test]
    fn text_nir_inside_longer_numbers_or_tokens_is_ignored() {
        assert!(kinds("1200017511299931").is_empty());
        assert!(kinds("2000175112999312").is_empty());
        assert!(kinds("SN200017511299931").is_empty());
        assert!(kinds("37.200017511299931").is_empty());
        assert!(kinds("200017511299931.5").is_empty());
        assert!(kinds("2.25.200017511299931").is_empty());
        assert!(kinds("200017511299930").is_empty());
    }

    #[test]
    fn text_nir_pseudo_months_50_99_only_with_context() {
        // 1 73 56 89 600 012: 1735689600012 mod 97 = 60 -> key 37, the
        // shape of a millisecond timestamp.
        assert!(!is_nir(b"173568960001237", true));
        assert!(is_nir(b"173568960001237", false));
        assert!(kinds("173568960001237").is_empty());
    }

    #[test]
    fn text_nir_labelled_as_device_field_is_ignored() {
        assert!(kinds("\"imei\":\"200017511299931\"").is_empty());
        assert!(kinds("device_serial=200017511299931").is_empty());
        assert_eq!(kinds("\"patient\":\"200017511299931\""), vec![PhiKind::Nir]);
    }

    #[test]
    fn text_bsn_needs_a_label() {
        assert!(kinds("111222333").is_empty());
        assert!(kinds("count 111222333").is_empty());
        assert_eq!(kinds("BSN: 111222333"), vec![PhiKind::Bsn]);
        assert_eq!(kinds("\"bsn\":\"111222333\""), vec![PhiKind::Bsn]);
        assert_eq!(kinds("burgerservicenummer 111222333"), vec![PhiKind::Bsn]);
        assert_eq!(
            kinds(r#"{"system":"http://fhir.nl/fhir/NamingSystem/bsn","value":"111222333"}"#),
            vec![PhiKind::Bsn]
        );
        assert_eq!(
            kinds("urn:oid:2.16.840.1.113883.2.4.6.3 value 111222333"),
            vec![PhiKind::Bsn]
        );
        // Label present but the number fails the eleven-proof.
        assert!(kinds("BSN: 111222334").is_empty());
        // A label further back, behind another field, does not count.
        assert!(kinds("\"bsn\":\"\",\"count\":\"111222333\"").is_empty());
        // "absn" is not the label.
        assert!(kinds("absn 111222333").is_empty());
        // Nor when the look-behind window starts right at "bsn".
        let cut = format!("absn{}111222333", " ".repeat(LABEL_WINDOW - 3));
        assert!(kinds(&cut).is_empty());
        let whole = format!("bsn{}111222333", " ".repeat(LABEL_WINDOW - 3));
        assert_eq!(kinds(&whole), vec![PhiKind::Bsn]);
    }

    #[test]
    fn telemetry_numbers_are_not_identifiers() {
        let t = r#"{"hr":69,"spo2":95,"rr":19,"temp":37.2,"ts":1735689600000,"device":"MON-0042","fw":"2.4.1","batt":100}"#;
        assert!(kinds(t).is_empty());
        assert!(kinds("550e8400-e29b-41d4-a716-446655440000").is_empty());
        assert!(kinds("2024-01-15T10:00:00Z 1735689600123 987654321").is_empty());
    }

    /// [`normalize`] as it was written before its table: ASCII letters
    /// and digits kept, lower-cased, a byte at a time.
    fn normalize_by_tests(s: &[u8], buf: &mut [u8; 32]) -> Option<Vec<u8>> {
        let mut n = 0usize;
        for &b in s {
            if b.is_ascii_alphanumeric() {
                *buf.get_mut(n)? = b.to_ascii_lowercase();
                n += 1;
            }
        }
        Some(buf[..n].to_vec())
    }

    proptest::proptest! {
        #[test]
        fn normalize_keeps_the_lower_case_letters_and_digits(
            key in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..48),
        ) {
            let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
            let ours = normalize(&key, &mut a).map(<[u8]>::to_vec);
            proptest::prop_assert_eq!(ours, normalize_by_tests(&key, &mut b));
        }
    }
}
