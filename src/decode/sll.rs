//! Linux cooked capture (SLL v1 and v2) and BSD loopback (NULL/LOOP) headers.
//!
//! Owns: the pseudo link headers that `tcpdump -i any` and BSD loopback
//! captures put in front of the network layer. Invariant: a view built by
//! `new_checked` is long enough for every getter.
//! Specs: tcpdump.org link-layer header types LINKTYPE_LINUX_SLL (113),
//! LINKTYPE_LINUX_SLL2 (276), LINKTYPE_NULL (0), LINKTYPE_LOOP (108).
//!
//! ```text
//! SLL v1 (16 bytes):
//! | packet type (2) | ARPHRD type (2) | addr len (2) | addr (8) | protocol (2) |
//! SLL v2 (20 bytes):
//! | protocol (2) | reserved (2) | ifindex (4) | ARPHRD type (2) |
//! | packet type (1) | addr len (1) | addr (8) |
//! NULL / LOOP (4 bytes): address family, host order (NULL) or big endian (LOOP).
//! ```
//!
//! The protocol field is an ethertype for ordinary packets; the values 0x0003
//! (ETH_P_ALL, used for 802.3 frames) and 0x0004 (ETH_P_802_2, LLC) and
//! anything else below 0x0600 mean "not an ethertype", which the decoder
//! reports as not IP.

use super::wire::{be16, be32};

mod field {
    pub const V1_ARPHRD: usize = 2;
    pub const V1_PROTOCOL: usize = 14;
    pub const V1_LEN: usize = 16;

    pub const V2_PROTOCOL: usize = 0;
    pub const V2_IFINDEX: usize = 4;
    pub const V2_ARPHRD: usize = 8;
    pub const V2_LEN: usize = 20;
}

/// Length of an SLL v1 header.
pub const SLL_LEN: usize = field::V1_LEN;
/// Length of an SLL v2 header.
pub const SLL2_LEN: usize = field::V2_LEN;

/// A view of a Linux cooked v1 header.
#[derive(Debug, Clone, Copy)]
pub struct SllHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SllHeader<T> {
    pub fn new_checked(buffer: T) -> Option<Self> {
        (buffer.as_ref().len() >= SLL_LEN).then_some(SllHeader { buffer })
    }

    /// ARPHRD_* type of the interface (1 = Ethernet, 772 = loopback).
    pub fn arphrd(&self) -> u16 {
        be16(self.buffer.as_ref(), field::V1_ARPHRD)
    }

    #[inline]
    pub fn protocol(&self) -> u16 {
        be16(self.buffer.as_ref(), field::V1_PROTOCOL)
    }
}

impl<'a> SllHeader<&'a [u8]> {
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[SLL_LEN..]
    }
}

/// A view of a Linux cooked v2 header.
#[derive(Debug, Clone, Copy)]
pub struct Sll2Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Sll2Header<T> {
    pub fn new_checked(buffer: T) -> Option<Self> {
        (buffer.as_ref().len() >= SLL2_LEN).then_some(Sll2Header { buffer })
    }

    #[inline]
    pub fn protocol(&self) -> u16 {
        be16(self.buffer.as_ref(), field::V2_PROTOCOL)
    }

    pub fn ifindex(&self) -> u32 {
        be32(self.buffer.as_ref(), field::V2_IFINDEX)
    }

    pub fn arphrd(&self) -> u16 {
        be16(self.buffer.as_ref(), field::V2_ARPHRD)
    }
}

impl<'a> Sll2Header<&'a [u8]> {
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[SLL2_LEN..]
    }
}

/// Network layer announced by a NULL/LOOP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullFamily {
    Ipv4,
    Ipv6,
    /// Another family (OSI, IPX…).
    Other,
}

/// Length of the NULL/LOOP header.
pub const NULL_LEN: usize = 4;

/// Reads the NULL/LOOP address family. `either_order` accepts both byte
/// orders (DLT_NULL is in the capturing host's order, which the file does not
/// record); LOOP is always big endian. IPv6 is 24 (NetBSD, OpenBSD), 28
/// (FreeBSD) or 30 (macOS). Returns `None` when fewer than 4 bytes are there.
pub fn null_family(data: &[u8], either_order: bool) -> Option<NullFamily> {
    let b: [u8; 4] = data.get(..NULL_LEN)?.try_into().ok()?;
    let classify = |af: u32| match af {
        2 => NullFamily::Ipv4,
        24 | 28 | 30 => NullFamily::Ipv6,
        _ => NullFamily::Other,
    };
    let be = classify(u32::from_be_bytes(b));
    if be != NullFamily::Other || !either_order {
        return Some(be);
    }
    Some(classify(u32::from_le_bytes(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sll_v1_reads_protocol_and_arphrd() {
        // Hand-built SLL v1 header.
        let h: [u8; 16] = [
            0x00, 0x00, // packet type: to us
            0x00, 0x01, // ARPHRD_ETHER
            0x00, 0x06, // address length 6
            2, 0, 0, 0, 0, 1, 0, 0, // address, padded to 8
            0x86, 0xdd, // protocol IPv6
        ];
        assert!(SllHeader::new_checked(&h[..15]).is_none());
        let s = SllHeader::new_checked(&h[..]).unwrap();
        assert_eq!(s.protocol(), 0x86dd);
        assert_eq!(s.arphrd(), 1);
        assert!(s.payload().is_empty());
    }

    #[test]
    fn sll_v2_reads_protocol_ifindex_arphrd() {
        // Hand-built SLL v2 header.
        let h: [u8; 20] = [
            0x08, 0x00, // protocol IPv4
            0x00, 0x00, // reserved
            0x00, 0x00, 0x00, 0x07, // interface index 7
            0x03, 0x04, // ARPHRD_LOOPBACK (772)
            0x00, // packet type: to us
            0x06, // address length
            0, 0, 0, 0, 0, 0, 0, 0, // address
        ];
        assert!(Sll2Header::new_checked(&h[..19]).is_none());
        let s = Sll2Header::new_checked(&h[..]).unwrap();
        assert_eq!(s.protocol(), 0x0800);
        assert_eq!(s.ifindex(), 7);
        assert_eq!(s.arphrd(), 772);
    }

    #[test]
    fn null_family_accepts_both_byte_orders_loop_only_big_endian() {
        assert_eq!(null_family(&[2, 0, 0, 0], true), Some(NullFamily::Ipv4));
        assert_eq!(null_family(&[0, 0, 0, 2], true), Some(NullFamily::Ipv4));
        assert_eq!(null_family(&[30, 0, 0, 0], true), Some(NullFamily::Ipv6));
        assert_eq!(null_family(&[0, 0, 0, 24], true), Some(NullFamily::Ipv6));
        assert_eq!(null_family(&[0, 0, 0, 28], false), Some(NullFamily::Ipv6));
        assert_eq!(null_family(&[2, 0, 0, 0], false), Some(NullFamily::Other));
        assert_eq!(null_family(&[7, 0, 0, 0], true), Some(NullFamily::Other));
        assert_eq!(null_family(&[2, 0, 0], true), None);
    }
}
