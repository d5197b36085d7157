//! Packet time.
//!
//! Every timestamp in wardwatch is packet time — the time the capture says a
//! packet was seen — never wall time, so replaying a capture gives the same
//! flows, timeouts and records as watching it live. A [`Timestamp`] is
//! nanoseconds since the Unix epoch in a `u64` (good until the year 2554).

use std::fmt;

/// Nanoseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

const NANOS_PER_SEC: u64 = 1_000_000_000;

impl Timestamp {
    /// Builds a timestamp from seconds and a sub-second part in nanoseconds;
    /// saturates rather than wrapping on absurd input.
    pub fn from_parts(secs: u64, nanos: u64) -> Self {
        Timestamp(secs.saturating_mul(NANOS_PER_SEC).saturating_add(nanos))
    }

    /// Whole seconds since the epoch.
    pub fn secs(self) -> u64 {
        self.0 / NANOS_PER_SEC
    }

    /// The sub-second part in microseconds (EVE prints microseconds).
    pub fn subsec_micros(self) -> u32 {
        // The remainder is below 10^9, so the quotient fits in u32.
        ((self.0 % NANOS_PER_SEC) / 1_000) as u32
    }

    /// `self - earlier` in nanoseconds, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// Adds a duration in seconds, saturating.
    pub fn plus_secs(self, secs: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(secs.saturating_mul(NANOS_PER_SEC)))
    }

    /// Writes the EVE form, `2020-03-25T22:05:35.383888+0000`, always in UTC
    /// so that output does not depend on the sensor's time zone.
    pub fn write_eve(self, out: &mut String) {
        // The form is ASCII digits and punctuation.
        out.push_str(
            std::str::from_utf8(self.eve_bytes().get(..31).unwrap_or_default()).unwrap_or_default(),
        );
    }

    /// [`Timestamp::write_eve`] into a byte buffer.
    pub fn push_eve(self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.eve_bytes().get(..31).unwrap_or_default());
    }

    /// The EVE form: 31 bytes, as a `u64` of nanoseconds ends in 2554, and
    /// a zero byte.
    ///
    /// The form of the second last written by this thread is kept, as
    /// four little-endian words (date, time of day, `.`, `+0000`): the
    /// records of a run come in packet-time order, many to a second, so
    /// most only put their six digits of microseconds into two of the
    /// words (a byte array patched in place moved byte by byte). Another
    /// second of the same day rewrites the time of day only.
    fn eve_bytes(self) -> [u8; 32] {
        thread_local! {
            /// A second (`u64::MAX`: none yet) and its EVE form's words.
            static LAST: std::cell::Cell<(u64, [u64; 4])> =
                const { std::cell::Cell::new((u64::MAX, [0; 4])) };
        }
        let secs = self.secs();
        let [w0, w1, w2, w3] = LAST.with(|last| {
            let (at, words) = last.get();
            if at == secs {
                return words;
            }
            let mut form = to_bytes(words);
            if at == u64::MAX || at / 86_400 != secs / 86_400 {
                form = *b"0000-00-00T00:00:00.000000+0000\0";
                if let Some(d) = form.get_mut(..10) {
                    d.copy_from_slice(&date(secs / 86_400));
                }
            }
            let rem = (secs % 86_400) as u32;
            put_pair(&mut form, 11, rem / 3600);
            put_pair(&mut form, 14, rem / 60 % 60);
            put_pair(&mut form, 17, rem % 60);
            let words = to_words(form);
            last.set((secs, words));
            words
        });
        // Bytes 20..26 are the microseconds: the top half of word 2 and
        // the bottom quarter of word 3.
        let micros = self.subsec_micros();
        let w2 = (w2 & 0xffff_ffff)
            | u64::from(pair(micros / 10_000)) << 32
            | u64::from(pair(micros / 100 % 100)) << 48;
        let w3 = (w3 & !0xffff) | u64::from(pair(micros % 100));
        to_bytes([w0, w1, w2, w3])
    }

    /// [`Timestamp::eve_bytes`] without the kept second (the reference of
    /// its test).
    #[cfg(test)]
    fn eve_bytes_uncached(self) -> [u8; 32] {
        let mut b = *b"0000-00-00T00:00:00.000000+0000\0";
        b[..19].copy_from_slice(&date_and_time(self.secs()));
        put_digits(&mut b[20..26], u64::from(self.subsec_micros()));
        b
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of a second since the epoch. Digits by hand: this
/// runs for every EVE record, and the format machinery costs several times
/// more.
#[cfg(test)]
fn date_and_time(secs: u64) -> [u8; 19] {
    let rem = secs % 86_400;
    let mut b = *b"0000-00-00T00:00:00";
    b[..10].copy_from_slice(&date(secs / 86_400));
    put_digits(&mut b[11..13], rem / 3600);
    put_digits(&mut b[14..16], (rem / 60) % 60);
    put_digits(&mut b[17..19], rem % 60);
    b
}

/// `YYYY-MM-DD` of a day since the epoch.
fn date(days: u64) -> [u8; 10] {
    let (y, m, d) = civil_from_days(days);
    let mut b = *b"0000-00-00";
    put_digits(&mut b[0..4], y);
    put_digits(&mut b[5..7], m);
    put_digits(&mut b[8..10], d);
    b
}

/// `"00"` to `"99"`.
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// The two digits of `v % 100`, the first in the low byte (little-endian
/// order, as they are stored).
#[inline]
fn pair(v: u32) -> u16 {
    let i = (v % 100) as usize * 2;
    match PAIRS.get(i..i + 2) {
        Some(&[a, b]) => u16::from_le_bytes([a, b]),
        _ => 0,
    }
}

/// Writes `v % 100` as two digits at `b[at..at + 2]`.
fn put_pair(b: &mut [u8; 32], at: usize, v: u32) {
    if let Some(d) = b.get_mut(at..at + 2) {
        d.copy_from_slice(&pair(v).to_le_bytes());
    }
}

/// 32 bytes as four little-endian words.
fn to_words(b: [u8; 32]) -> [u64; 4] {
    let mut w = [0u64; 4];
    for (w, c) in w.iter_mut().zip(b.chunks_exact(8)) {
        let mut x = [0u8; 8];
        x.copy_from_slice(c);
        *w = u64::from_le_bytes(x);
    }
    w
}

/// [`to_words`] undone.
#[inline]
fn to_bytes(w: [u64; 4]) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (c, w) in b.chunks_exact_mut(8).zip(w) {
        c.copy_from_slice(&w.to_le_bytes());
    }
    b
}

/// Fills `out` with the last `out.len()` decimal digits of `v`,
/// zero-padded.
fn put_digits(out: &mut [u8], mut v: u64) {
    for c in out.iter_mut().rev() {
        *c = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(32);
        self.write_eve(&mut s);
        f.write_str(&s)
    }
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day).
/// This is Howard Hinnant's `civil_from_days` algorithm, for unsigned days.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Whatever the order of the times written (the same second again,
        /// another one, back and forth), the kept second changes nothing.
        #[test]
        fn kept_second_writes_what_the_full_conversion_writes(
            times in proptest::collection::vec((0usize..5, 0u64..NANOS_PER_SEC), 1..50),
        ) {
            // Few distinct seconds (the epoch, its next second, the end of
            // a day, a leap day, the last second of 2099), so that most
            // are written again.
            const SECONDS: [u64; 5] = [0, 1, 86_399, 951_782_400, 4_102_444_799];
            for (i, nanos) in times {
                let t = Timestamp::from_parts(SECONDS[i], nanos);
                proptest::prop_assert_eq!(t.eve_bytes(), t.eve_bytes_uncached());
            }
        }
    }

    #[test]
    fn eve_format_matches_suricata_example() {
        // 2020-03-25T22:05:35.383888 UTC, checked with `date -u -d @1585173935`.
        let t = Timestamp::from_parts(1_585_173_935, 383_888_123);
        assert_eq!(t.to_string(), "2020-03-25T22:05:35.383888+0000");
    }

    #[test]
    fn epoch_and_leap_day() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000000+0000");
        // 2024-02-29T12:00:00Z = 1709208000 (date -u -d 2024-02-29T12:00:00 +%s).
        let t = Timestamp::from_parts(1_709_208_000, 0);
        assert_eq!(t.to_string(), "2024-02-29T12:00:00.000000+0000");
    }
}
