//! Ethernet II and IEEE 802.1Q / 802.1ad VLAN tag views.
//!
//! Owns: the 14-byte Ethernet header and the 4-byte VLAN tag. Invariant: a
//! view built by `new_checked` is long enough for every getter.
//! Specs: IEEE 802.3 §3.2 (frame format), IEEE 802.1Q §9.6 (tag format).
//!
//! ```text
//!  0                   6                   12      14
//! +-------------------+-------------------+-------+-------------
//! |  destination MAC  |    source MAC     | type  | payload ...
//! +-------------------+-------------------+-------+-------------
//! VLAN tag (after a TPID of 0x8100, 0x88a8 or 0x9100 in `type`):
//! +-----+---+----------+--------------+
//! | PCP |DEI| VID (12) | inner type   |
//! +-----+---+----------+--------------+
//! ```

use super::wire::be16;

mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: usize = 14;

    pub const TCI: usize = 0;
    pub const INNER_TYPE: usize = 2;
    pub const TAG_LEN: usize = 4;
}

/// Ethertypes the decoder knows by name.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const IPV6: u16 = 0x86dd;
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ TPID used by some switches.
    pub const QINQ_OLD: u16 = 0x9100;
    /// Transparent Ethernet bridging (inner Ethernet in GRE, "gretap").
    pub const TEB: u16 = 0x6558;
    pub const ERSPAN_II: u16 = 0x88be;
    pub const ERSPAN_III: u16 = 0x22eb;
    /// PPP, carried by PPTP's enhanced GRE (version 1).
    pub const PPP: u16 = 0x880b;
    /// Values below this are an 802.3 length, not a type (LLC follows).
    pub const MIN_TYPE: u16 = 0x0600;

    /// True for the three VLAN tag protocol identifiers.
    #[inline]
    pub fn is_vlan(t: u16) -> bool {
        matches!(t, VLAN | QINQ | QINQ_OLD)
    }
}

/// Length of the Ethernet header.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Length of one VLAN tag.
pub const TAG_LEN: usize = field::TAG_LEN;

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` if it holds a whole Ethernet header.
    pub fn new_checked(buffer: T) -> Option<Self> {
        (buffer.as_ref().len() >= HEADER_LEN).then_some(EthernetFrame { buffer })
    }

    pub fn dst_addr(&self) -> [u8; 6] {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        a
    }

    pub fn src_addr(&self) -> [u8; 6] {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        a
    }

    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ETHERTYPE)
    }
}

impl<'a> EthernetFrame<&'a [u8]> {
    /// The bytes after the header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[field::PAYLOAD..]
    }
}

/// A view of one 802.1Q tag (the 4 bytes after its TPID).
#[derive(Debug, Clone, Copy)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Wraps `buffer` if it holds a whole tag.
    pub fn new_checked(buffer: T) -> Option<Self> {
        (buffer.as_ref().len() >= TAG_LEN).then_some(VlanTag { buffer })
    }

    /// The 12-bit VLAN identifier.
    #[inline]
    pub fn vid(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TCI) & 0x0fff
    }

    /// Priority code point (3 bits).
    pub fn pcp(&self) -> u8 {
        (be16(self.buffer.as_ref(), field::TCI) >> 13) as u8
    }

    /// The type of what follows the tag (another TPID, or a payload type).
    #[inline]
    pub fn inner_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::INNER_TYPE)
    }
}

impl<'a> VlanTag<&'a [u8]> {
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[field::TAG_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethernet_short_header_rejected_full_header_read() {
        // Hand-built Ethernet header.
        let f: [u8; 14] = [
            0x02, 0, 0, 0, 0, 0x01, // destination MAC
            0x02, 0, 0, 0, 0, 0x02, // source MAC
            0x08, 0x00, // ethertype IPv4
        ];
        assert!(EthernetFrame::new_checked(&f[..13]).is_none());
        let e = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(e.ethertype(), ethertype::IPV4);
        assert_eq!(e.dst_addr(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(e.src_addr(), [2, 0, 0, 0, 0, 2]);
        assert!(e.payload().is_empty());
    }

    #[test]
    fn vlan_tag_reads_vid_pcp_and_inner_type() {
        // Hand-built tag: PCP 5, DEI 0, VID 0x123; inner type IPv6.
        let t: [u8; 4] = [0xa1, 0x23, 0x86, 0xdd];
        assert!(VlanTag::new_checked(&t[..3]).is_none());
        let v = VlanTag::new_checked(&t[..]).unwrap();
        assert_eq!(v.vid(), 0x123);
        assert_eq!(v.pcp(), 5);
        assert_eq!(v.inner_type(), ethertype::IPV6);
    }
}
