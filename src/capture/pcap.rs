//! Classic libpcap files: the 24-byte file header and 16-byte record headers.
//!
//! Owns: magic-number detection (byte order, micro- or nanosecond stamps),
//! the link type (FCS bits of the field masked off), and the record loop.
//! Invariant: a record is only turned into a [`PacketRef`] once its header and
//! all `incl_len` bytes are in the buffer; a declared length above
//! [`MAX_PCAP_CAPLEN`] is `Corrupt` before any byte of it is asked for.
//! Spec: draft-ietf-opsawg-pcap (the "PCAP Capture File Format" draft), §4–§5.
//!
//! ```text
//! File header                              Record header
//!  0 magic_number        u32               0 ts_sec            u32
//!  4 version_major u16 | version_minor u16 4 ts_usec / ts_nsec  u32
//!  8 thiszone (reserved) u32               8 incl_len (caplen) u32
//! 12 sigfigs (reserved)  u32              12 orig_len          u32
//! 16 snaplen             u32              16 packet data, incl_len bytes
//! 20 FCS bits (28-31), F (26), link type (0-15)
//! ```

use super::{ByteOrder, FrameDigest, LinkType, PacketRef, Stop, PREFETCH_AHEAD};
use crate::time::Timestamp;

/// Bytes in the file header.
pub(super) const FILE_HEADER_LEN: usize = 24;
/// Bytes in a record header.
const RECORD_HEADER_LEN: usize = 16;

/// Largest `incl_len` accepted; anything larger is treated as corruption.
/// libpcap itself refuses records above 256 KiB (its `MAXIMUM_SNAPLEN`).
pub const MAX_PCAP_CAPLEN: u32 = 256 * 1024;

/// The four magic numbers as read little-endian from the first four bytes.
const MAGIC_MICRO: u32 = 0xa1b2_c3d4;
const MAGIC_MICRO_SWAPPED: u32 = 0xd4c3_b2a1;
const MAGIC_NANO: u32 = 0xa1b2_3c4d;
const MAGIC_NANO_SWAPPED: u32 = 0x4d3c_b2a1;

/// The on-disk first four bytes of each classic pcap flavour, for prefix checks.
pub(super) const MAGICS: [[u8; 4]; 4] = [
    MAGIC_MICRO.to_le_bytes(),
    MAGIC_MICRO_SWAPPED.to_le_bytes(),
    MAGIC_NANO.to_le_bytes(),
    MAGIC_NANO_SWAPPED.to_le_bytes(),
];

/// State of a classic pcap file after its header.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pcap {
    order: ByteOrder,
    /// Nanoseconds per unit of the sub-second field (1000 for µs, 1 for ns).
    subsec_scale: u64,
    link: LinkType,
}

/// What the first bytes of a source say about classic pcap.
pub(super) enum Header {
    /// A classic pcap header, `FILE_HEADER_LEN` bytes long.
    Found(Pcap),
    /// The magic is a classic pcap one, but the header is incomplete.
    NeedMore,
    /// Not a classic pcap magic number.
    NotPcap,
}

impl Pcap {
    /// Reads the file header at the start of `b`.
    pub(super) fn parse_header(b: &[u8]) -> Header {
        let Some(magic) = b.first_chunk::<4>() else {
            return Header::NotPcap;
        };
        let (order, subsec_scale) = match u32::from_le_bytes(*magic) {
            MAGIC_MICRO => (ByteOrder::Little, 1_000),
            MAGIC_MICRO_SWAPPED => (ByteOrder::Big, 1_000),
            MAGIC_NANO => (ByteOrder::Little, 1),
            MAGIC_NANO_SWAPPED => (ByteOrder::Big, 1),
            _ => return Header::NotPcap,
        };
        let Some(h) = b.first_chunk::<FILE_HEADER_LEN>() else {
            return Header::NeedMore;
        };
        let linktype = order.u32([h[20], h[21], h[22], h[23]]);
        // The upper 16 bits carry the FCS length and flag, not the link type.
        let link = LinkType((linktype & 0xffff) as u16);
        Header::Found(Pcap {
            order,
            subsec_scale,
            link,
        })
    }

    /// Appends records starting at `*pos` to `out` until it holds `max`
    /// packets or the buffer ends; `*pos` is left at the first record not
    /// taken. No allocation happens here beyond `out`'s own growth. Each
    /// packet gets `digest` of its bytes, if given.
    pub(super) fn parse_records(
        &self,
        buf: &[u8],
        pos: &mut usize,
        out: &mut Vec<PacketRef>,
        max: usize,
        digest: Option<FrameDigest>,
    ) -> Stop {
        let order = self.order;
        while out.len() < max {
            let rest = buf.get(*pos..).unwrap_or(&[]);
            let Some(h) = rest.first_chunk::<RECORD_HEADER_LEN>() else {
                return Stop::NeedMore(RECORD_HEADER_LEN);
            };
            let ts_sec = order.u32([h[0], h[1], h[2], h[3]]);
            let ts_sub = order.u32([h[4], h[5], h[6], h[7]]);
            let caplen = order.u32([h[8], h[9], h[10], h[11]]);
            let origlen = order.u32([h[12], h[13], h[14], h[15]]);
            if caplen > MAX_PCAP_CAPLEN {
                return Stop::Corrupt(format!(
                    "record length {caplen} exceeds the limit of {MAX_PCAP_CAPLEN}"
                ));
            }
            // Both terms are bounded (16 and 256 KiB), so this cannot overflow.
            let record_len = RECORD_HEADER_LEN + caplen as usize;
            if rest.len() < record_len {
                return Stop::NeedMore(record_len);
            }
            // Each header's place is known only from the one before it, so
            // without this every record waits for memory in turn.
            crate::hint::prefetch(rest.get(PREFETCH_AHEAD..).unwrap_or(&[]), record_len);
            let sum =
                digest.and_then(|f| f(rest.get(RECORD_HEADER_LEN..record_len).unwrap_or(&[])));
            out.push(PacketRef {
                ts: Timestamp::from_parts(
                    u64::from(ts_sec),
                    u64::from(ts_sub).saturating_mul(self.subsec_scale),
                ),
                offset: *pos + RECORD_HEADER_LEN,
                caplen,
                origlen,
                link: self.link,
                sum,
            });
            *pos += record_len;
        }
        Stop::Full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-built classic pcap file header; `magic` is written as given.
    fn header(magic: [u8; 4], big: bool, linktype: u32) -> Vec<u8> {
        let w16 = |v: u16| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let w32 = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut b = Vec::new();
        b.extend_from_slice(&magic); // magic_number
        b.extend_from_slice(&w16(2)); // version_major
        b.extend_from_slice(&w16(4)); // version_minor
        b.extend_from_slice(&w32(0)); // thiszone
        b.extend_from_slice(&w32(0)); // sigfigs
        b.extend_from_slice(&w32(65535)); // snaplen
        b.extend_from_slice(&w32(linktype)); // FCS bits + link type
        b
    }

    #[test]
    fn big_endian_nano_header_with_fcs_bits_gives_masked_link() {
        // Hand-built: nanosecond magic in big-endian order, link type 1 with
        // the F bit (26) and an FCS length of 2 (bits 28-31) set.
        let b = header([0xa1, 0xb2, 0x3c, 0x4d], true, 0x2400_0001);
        let Header::Found(p) = Pcap::parse_header(&b) else {
            unreachable!("header not recognised")
        };
        assert_eq!(p.link, LinkType::ETHERNET);
        assert_eq!(p.order, ByteOrder::Big);
        assert_eq!(p.subsec_scale, 1);
    }

    #[test]
    fn pcap_magic_with_short_header_needs_more() {
        let b = header([0xd4, 0xc3, 0xb2, 0xa1], false, 1);
        assert!(matches!(Pcap::parse_header(&b[..23]), Header::NeedMore));
        assert!(matches!(Pcap::parse_header(&b[..4]), Header::NeedMore));
    }

    #[test]
    fn foreign_magic_is_not_pcap() {
        assert!(matches!(
            Pcap::parse_header(b"GET / HTTP/1.1\r\n\r\n-------"),
            Header::NotPcap
        ));
    }

    #[test]
    fn record_over_limit_is_corrupt_without_reading_it() {
        let p = Pcap {
            order: ByteOrder::Little,
            subsec_scale: 1000,
            link: LinkType::ETHERNET,
        };
        // Hand-built record header: ts 1 s, 0 µs, caplen = limit + 1, origlen 60.
        let mut b = Vec::new();
        b.extend_from_slice(&1u32.to_le_bytes()); // ts_sec
        b.extend_from_slice(&0u32.to_le_bytes()); // ts_usec
        b.extend_from_slice(&(MAX_PCAP_CAPLEN + 1).to_le_bytes()); // incl_len
        b.extend_from_slice(&60u32.to_le_bytes()); // orig_len
        let mut pos = 0;
        let mut out = Vec::new();
        let stop = p.parse_records(&b, &mut pos, &mut out, 10, None);
        assert!(matches!(stop, Stop::Corrupt(_)));
        assert_eq!(pos, 0);
        assert!(out.is_empty());
    }
}
