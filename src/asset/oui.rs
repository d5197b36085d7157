//! MAC address vendors: the IEEE Registration Authority's MA-L (24-bit),
//! MA-M (28-bit) and MA-S/IAB (36-bit) assignments, compiled by
//! `tools/gen_oui.py` from Debian's `ieee-data` into `oui.bin` (a zlib
//! stream of sorted prefixes and interned organisation names; the format
//! is described in the script). Nothing is fetched at build or run time.
//!
//! The table is inflated once, at the first lookup (about 1.2 MB), and
//! read in place afterwards: a lookup is three binary searches over the
//! sorted prefixes, longest prefix first, without allocating.
//! Locally administered and group addresses have no vendor.

use std::sync::OnceLock;

/// `tools/gen_oui.py`'s output, inflated by `build.rs` (empty if
/// `oui.bin` was damaged).
const TABLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/oui.table"));

/// The inflated table and where its parts start.
struct Oui {
    data: &'static [u8],
    names: usize,
    name_count: usize,
    blob: usize,
    /// Per table (24, 28, 36 bits): count, offset of the prefixes, of the
    /// name indices.
    tables: [(usize, usize, usize); 3],
    source: String,
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    let b = d.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(d: &[u8], at: usize) -> Option<u64> {
    let b = d.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

impl Oui {
    fn parse(data: &'static [u8]) -> Option<Oui> {
        let magic = b"WWOUI1\n";
        if !data.starts_with(magic) {
            return None;
        }
        let mut at = magic.len();
        let dlen = u32_at(data, at)? as usize;
        let source = String::from_utf8_lossy(data.get(at + 4..at + 4 + dlen)?).into_owned();
        at += 4 + dlen;
        let name_count = u32_at(data, at)? as usize;
        let names = at + 4;
        at = names.checked_add(name_count.checked_mul(4)?)?;
        let blob_len = u32_at(data, at)? as usize;
        let blob = at + 4;
        at = blob.checked_add(blob_len)?;
        let mut tables = [(0, 0, 0); 3];
        for (i, width) in [4usize, 4, 8].into_iter().enumerate() {
            let n = u32_at(data, at)? as usize;
            let prefixes = at + 4;
            let idx = prefixes.checked_add(n.checked_mul(width)?)?;
            at = idx.checked_add(n.checked_mul(4)?)?;
            tables[i] = (n, prefixes, idx);
        }
        (at == data.len()).then_some(Oui {
            data,
            names,
            name_count,
            blob,
            tables,
            source,
        })
    }

    fn name(&self, i: usize) -> Option<&str> {
        if i >= self.name_count {
            return None;
        }
        let end = u32_at(self.data, self.names + 4 * i)? as usize;
        let start = match i {
            0 => 0,
            _ => u32_at(self.data, self.names + 4 * (i - 1))? as usize,
        };
        std::str::from_utf8(self.data.get(self.blob + start..self.blob + end)?).ok()
    }

    /// The name index of `key` in table `t`.
    fn find(&self, t: usize, key: u64) -> Option<usize> {
        let (n, prefixes, idx) = *self.tables.get(t)?;
        let width = if t == 2 { 8 } else { 4 };
        let at = |i: usize| -> Option<u64> {
            let off = prefixes + i * width;
            if width == 8 {
                u64_at(self.data, off)
            } else {
                u32_at(self.data, off).map(u64::from)
            }
        };
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let v = at(mid)?;
            match v.cmp(&key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    return u32_at(self.data, idx + 4 * mid).map(|x| x as usize)
                }
            }
        }
        None
    }
}

fn table() -> Option<&'static Oui> {
    static T: OnceLock<Option<Oui>> = OnceLock::new();
    T.get_or_init(|| Oui::parse(TABLE)).as_ref()
}

/// The organisation the IEEE assigned the block of `mac` to; `None` for
/// unassigned blocks and for locally administered or group addresses.
pub fn vendor(mac: [u8; 6]) -> Option<&'static str> {
    if mac[0] & 0x03 != 0 {
        return None;
    }
    let t = table()?;
    let v = mac.iter().fold(0u64, |a, &b| a << 8 | u64::from(b));
    [(2, v >> 12), (1, v >> 20), (0, v >> 24)]
        .into_iter()
        .find_map(|(i, k)| t.find(i, k))
        .and_then(|i| t.name(i))
}

/// Where the table came from (the registries' date), for `--version`-style
/// reports and tests.
pub fn source() -> Option<&'static str> {
    table().map(|t| t.source.as_str())
}

/// A MAC address as text, on the stack (one is made per flow end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacText([u8; 17]);

impl MacText {
    pub fn as_str(&self) -> &str {
        // Only hex digits and colons are ever written.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// `00:09:fb:1e:01:0f`.
pub fn format(mac: [u8; 6]) -> MacText {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [b':'; 17];
    for (i, b) in mac.iter().enumerate() {
        t[3 * i] = HEX[usize::from(b >> 4)];
        t[3 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    MacText(t)
}

/// Parses `00:09:fb:1e:01:0f` (or with `-`).
pub fn parse(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendors_of_the_capture_corpus_are_the_ieee_names() {
        // The OUIs of pcaps/README.md's host plan, against the rows of
        // /usr/share/ieee-data/oui.csv (ieee-data 20220827.1).
        for (mac, name) in [
            ("00:09:fb:1e:01:0f", "Philips Patient Monitoring"),
            ("00:0e:8c:03:00:07", "Siemens AG"),
            ("00:14:22:04:00:15", "Dell Inc."),
            ("00:50:56:05:00:0a", "VMware, Inc."),
            ("00:1b:54:0a:00:01", "Cisco Systems, Inc"),
        ] {
            assert_eq!(vendor(parse(mac).unwrap()), Some(name), "{mac}");
        }
        assert!(source().unwrap().contains("ieee-data"));
    }

    #[test]
    fn longer_assignments_win_and_local_addresses_have_none() {
        // 70:B3:D5 is the IEEE's own MA-L block carved into MA-S
        // assignments: oui36.csv row MA-S,70B3D5719,2M Technology.
        assert_eq!(
            vendor(parse("70:b3:d5:71:90:01").unwrap()),
            Some("2M Technology")
        );
        // MA-M row MA-M,208593B,IOG Products LLC.
        assert_eq!(
            vendor(parse("20:85:93:b0:00:01").unwrap()),
            Some("IOG Products LLC")
        );
        // Locally administered (bit 1) and multicast (bit 0).
        assert_eq!(vendor(parse("02:00:00:00:00:01").unwrap()), None);
        assert_eq!(vendor(parse("01:00:5e:00:00:01").unwrap()), None);
    }

    #[test]
    fn macs_print_and_parse() {
        let m = [0, 9, 0xfb, 0x1e, 1, 0x0f];
        assert_eq!(format(m).as_str(), "00:09:fb:1e:01:0f");
        assert_eq!(parse("00-09-FB-1E-01-0F"), Some(m));
        assert_eq!(parse("00:09:fb"), None);
        assert_eq!(parse("00:09:fb:1e:01:0f:00"), None);
    }
}
