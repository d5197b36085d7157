//! IPv4 header view.
//!
//! Owns: validation of the IPv4 header and the slice of its payload.
//! Invariant: a view built by `new_checked` holds the whole header (options
//! included), so every getter is in bounds; the payload is cut at the total
//! length, which strips Ethernet padding.
//! Spec: RFC 791 §3.1.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |Type of Service|          Total Length         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Identification        |Flags|      Fragment Offset    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       Source Address                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Destination Address                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Options                    |    Padding    |
//! ```

use std::net::Ipv4Addr;

use super::stats::Counter;
use super::wire::be16;

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// A view of an IPv4 packet.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Validates the header. `snapped` says the capture cut the frame short
    /// (captured length below wire length): then a total length beyond the
    /// captured bytes is expected and the payload is what was captured;
    /// otherwise it is a truncated packet.
    ///
    /// # Errors
    /// The counter naming the first problem found, in Suricata's order:
    /// shorter than 20 bytes, version not 4, IHL below 5, total length below
    /// the header length, fewer bytes than the total length (or the header).
    pub fn new_checked(buffer: T, snapped: bool) -> Result<Self, Counter> {
        let d = buffer.as_ref();
        if d.len() < MIN_HEADER_LEN {
            return Err(Counter::Ipv4PktTooSmall);
        }
        let p = Ipv4Packet { buffer };
        if p.version() != 4 {
            return Err(Counter::Ipv4WrongIpVersion);
        }
        let hlen = p.header_len();
        if hlen < MIN_HEADER_LEN {
            return Err(Counter::Ipv4HlenTooSmall);
        }
        let total = usize::from(p.total_len());
        if total < hlen {
            return Err(Counter::Ipv4IplenSmallerThanHlen);
        }
        let have = p.buffer.as_ref().len();
        if have < hlen || (have < total && !snapped) {
            return Err(Counter::Ipv4TruncPkt);
        }
        Ok(p)
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TOTAL_LEN)
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }

    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & 0x4000 != 0
    }

    #[inline]
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & 0x2000 != 0
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u32 {
        u32::from(be16(self.buffer.as_ref(), field::FLG_OFF) & 0x1fff) * 8
    }

    /// True for any fragment but an unfragmented datagram.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & 0x3fff != 0
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        let d = self.buffer.as_ref();
        Ipv4Addr::new(
            d[field::SRC],
            d[field::SRC + 1],
            d[field::SRC + 2],
            d[field::SRC + 3],
        )
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        let d = self.buffer.as_ref();
        Ipv4Addr::new(
            d[field::DST],
            d[field::DST + 1],
            d[field::DST + 2],
            d[field::DST + 3],
        )
    }

    /// The header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The header, options included (what its checksum covers).
    #[inline]
    pub fn header(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        d.get(..self.header_len()).unwrap_or(d)
    }

    /// Payload length the header declares (total length − header length).
    #[inline]
    pub fn payload_len(&self) -> usize {
        usize::from(self.total_len()).saturating_sub(self.header_len())
    }
}

impl<'a> Ipv4Packet<&'a [u8]> {
    /// The payload, cut at the total length and at the captured bytes.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let end = usize::from(self.total_len()).min(self.buffer.len());
        self.buffer.get(self.header_len()..end).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-built IPv4 header with one 4-byte option, carrying 4 bytes of
    /// payload and 2 bytes of Ethernet padding.
    fn with_option() -> Vec<u8> {
        vec![
            0x46, // version 4, IHL 6 (24 bytes)
            0x00, // TOS
            0x00, 0x1c, // total length 28
            0x12, 0x34, // identification
            0x40, 0x00, // flags DF, offset 0
            0x40, // TTL 64
            0x11, // protocol UDP
            0x00, 0x00, // checksum (not checked by the view)
            10, 0, 0, 1, // source
            10, 0, 0, 2, // destination
            0x01, 0x01, 0x01, 0x00, // options: NOP NOP NOP EOL
            0xde, 0xad, 0xbe, 0xef, // payload
            0x00, 0x00, // Ethernet padding
        ]
    }

    #[test]
    fn options_skipped_padding_stripped() {
        let b = with_option();
        let p = Ipv4Packet::new_checked(&b[..], false).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!((p.ttl(), p.protocol(), p.ident()), (64, 17, 0x1234));
        assert!(p.dont_frag() && !p.is_fragment());
    }

    #[test]
    fn each_malformation_named() {
        let b = with_option();
        assert_eq!(
            Ipv4Packet::new_checked(&b[..19], false).err(),
            Some(Counter::Ipv4PktTooSmall)
        );
        let mut v = b.clone();
        v[0] = 0x56;
        assert_eq!(
            Ipv4Packet::new_checked(&v[..], false).err(),
            Some(Counter::Ipv4WrongIpVersion)
        );
        let mut v = b.clone();
        v[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&v[..], false).err(),
            Some(Counter::Ipv4HlenTooSmall)
        );
        let mut v = b.clone();
        v[3] = 20; // total length below the 24-byte header
        assert_eq!(
            Ipv4Packet::new_checked(&v[..], false).err(),
            Some(Counter::Ipv4IplenSmallerThanHlen)
        );
        assert_eq!(
            Ipv4Packet::new_checked(&b[..27], false).err(),
            Some(Counter::Ipv4TruncPkt)
        );
        // Snapped by the capture: accepted, payload is what was captured.
        let p = Ipv4Packet::new_checked(&b[..26], true).unwrap();
        assert_eq!(p.payload(), &[0xde, 0xad]);
        // Even when snapped, the header itself must be there.
        assert_eq!(
            Ipv4Packet::new_checked(&b[..22], true).err(),
            Some(Counter::Ipv4TruncPkt)
        );
    }

    #[test]
    fn fragment_fields() {
        let mut b = with_option();
        b[6] = 0x20; // MF
        b[7] = 0x03; // offset 3 × 8
        let p = Ipv4Packet::new_checked(&b[..], false).unwrap();
        assert!(p.is_fragment() && p.more_frags());
        assert_eq!(p.frag_offset(), 24);
    }
}
