//! GRE and ERSPAN (types II and III) header views.
//!
//! Owns: validation of GRE version 0 (RFC 2784 with the key and sequence
//! fields of RFC 2890) and version 1 (PPTP's enhanced GRE, RFC 2637 §4.1),
//! and of the ERSPAN headers that follow GRE on remote mirror sessions.
//! Invariants: a view built by `new_checked` holds its whole header
//! (optional fields included) and knows its length; the payload starts there.
//! Specs: RFC 2784 §2, RFC 2890 §2, RFC 2637 §4.1, draft-foschiano-erspan-03
//! §4.1–4.3.
//!
//! ```text
//! GRE:
//! |C|R|K|S|s|Recur|A| Flags | Ver |         Protocol Type         |
//! |      Checksum (if C or R)     |       Reserved/Offset         |
//! |                         Key (if K)                            |
//! |                  Sequence Number (if S)                       |
//! |            Acknowledgment Number (version 1, if A)            |
//!
//! ERSPAN type II (8 bytes, GRE protocol 0x88be, GRE S bit set):
//! |  Ver  |         VLAN          | COS |En |T|    Session ID     |
//! |       Reserved        |                 Index                 |
//!
//! ERSPAN type III (12 bytes, GRE protocol 0x22eb):
//! |  Ver  |         VLAN          | COS |BSO|T|    Session ID     |
//! |                          Timestamp                            |
//! |             SGT               |P|   FT    |   Hw ID   |D|Gra|O|
//! | Platform-specific subheader, 8 bytes, present when O is set   |
//! ```
//!
//! ERSPAN type I (GRE protocol 0x88be with no sequence number) has no ERSPAN
//! header at all: the mirrored Ethernet frame follows the 4-byte GRE header.

use super::stats::Counter;
use super::wire::{be16, be32};

mod field {
    pub const FLAGS_VER: usize = 0;
    pub const PROTOCOL: usize = 2;
    pub const MIN_LEN: usize = 4;

    pub const ER_VER_VLAN: usize = 0;
    pub const ER_SESSION: usize = 2;
    pub const ER2_LEN: usize = 8;
    pub const ER3_TIMESTAMP: usize = 4;
    pub const ER3_FT_O: usize = 10;
    pub const ER3_LEN: usize = 12;
    pub const ER3_SUBHEADER_LEN: usize = 8;
}

mod bit {
    pub const C: u16 = 0x8000;
    pub const R: u16 = 0x4000;
    pub const K: u16 = 0x2000;
    pub const S: u16 = 0x1000;
    pub const SSR: u16 = 0x0800;
    pub const RECUR: u16 = 0x0700;
    /// Version 1 acknowledgment-present bit.
    pub const A: u16 = 0x0080;
    pub const FLAGS_V0: u16 = 0x00f8;
    pub const FLAGS_V1: u16 = 0x0078;
    pub const VER: u16 = 0x0007;
}

/// A view of a GRE header.
#[derive(Debug, Clone, Copy)]
pub struct GreHeader<T: AsRef<[u8]>> {
    buffer: T,
    header_len: usize,
}

impl<T: AsRef<[u8]>> GreHeader<T> {
    /// Validates the header and its optional fields.
    ///
    /// # Errors
    /// `gre.pkt_too_small` below 4 bytes; `gre.wrong_version` above 1;
    /// version 0: `version0_recur`, `version0_flags` (routing, strict source
    /// route or reserved bits set — RFC 2784 receivers discard those),
    /// `version0_hdr_too_big`; version 1: `version1_chksum`, `version1_route`,
    /// `version1_ssr`, `version1_recur`, `version1_flags`, `version1_no_key`,
    /// `version1_wrong_protocol` (not PPP), `version1_hdr_too_big`.
    pub fn new_checked(buffer: T) -> Result<Self, Counter> {
        let d = buffer.as_ref();
        if d.len() < field::MIN_LEN {
            return Err(Counter::GrePktTooSmall);
        }
        let fv = be16(d, field::FLAGS_VER);
        let proto = be16(d, field::PROTOCOL);
        let mut len = field::MIN_LEN;
        let too_big = match fv & bit::VER {
            0 => {
                if fv & bit::RECUR != 0 {
                    return Err(Counter::GreVersion0Recur);
                }
                if fv & (bit::R | bit::SSR | bit::FLAGS_V0) != 0 {
                    return Err(Counter::GreVersion0Flags);
                }
                for b in [bit::C, bit::K, bit::S] {
                    if fv & b != 0 {
                        len += 4;
                    }
                }
                Counter::GreVersion0HdrTooBig
            }
            1 => {
                let checks = [
                    (bit::C, Counter::GreVersion1Chksum),
                    (bit::R, Counter::GreVersion1Route),
                    (bit::SSR, Counter::GreVersion1Ssr),
                    (bit::RECUR, Counter::GreVersion1Recur),
                    (bit::FLAGS_V1, Counter::GreVersion1Flags),
                ];
                for (b, c) in checks {
                    if fv & b != 0 {
                        return Err(c);
                    }
                }
                if fv & bit::K == 0 {
                    return Err(Counter::GreVersion1NoKey);
                }
                if proto != super::ethernet::ethertype::PPP {
                    return Err(Counter::GreVersion1WrongProtocol);
                }
                len += 4;
                for b in [bit::S, bit::A] {
                    if fv & b != 0 {
                        len += 4;
                    }
                }
                Counter::GreVersion1HdrTooBig
            }
            _ => return Err(Counter::GreWrongVersion),
        };
        if d.len() < len {
            return Err(too_big);
        }
        Ok(GreHeader {
            buffer,
            header_len: len,
        })
    }

    pub fn version(&self) -> u8 {
        (be16(self.buffer.as_ref(), field::FLAGS_VER) & bit::VER) as u8
    }

    /// The type of the payload, an ethertype.
    #[inline]
    pub fn protocol(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PROTOCOL)
    }

    /// True when a sequence number is present.
    #[inline]
    pub fn has_seq(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLAGS_VER) & bit::S != 0
    }

    /// The key (version 0) or payload length and call id (version 1).
    pub fn key(&self) -> Option<u32> {
        let fv = be16(self.buffer.as_ref(), field::FLAGS_VER);
        if fv & bit::K == 0 {
            return None;
        }
        let at = if fv & bit::C != 0 { 8 } else { 4 };
        Some(be32(self.buffer.as_ref(), at))
    }

    pub fn header_len(&self) -> usize {
        self.header_len
    }
}

impl<'a> GreHeader<&'a [u8]> {
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        self.buffer.get(self.header_len..).unwrap_or(&[])
    }
}

/// What an ERSPAN header says follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErspanPayload {
    Ethernet,
    /// Type III frame type 2: an IP packet without its Ethernet header.
    Ip,
}

/// A view of an ERSPAN type II or III header.
#[derive(Debug, Clone, Copy)]
pub struct ErspanHeader<T: AsRef<[u8]>> {
    buffer: T,
    header_len: usize,
}

impl<T: AsRef<[u8]>> ErspanHeader<T> {
    /// Validates a type II header (`type3` false) or a type III header and
    /// its optional platform-specific subheader.
    ///
    /// # Errors
    /// `erspan.header_too_small` when the header is cut;
    /// `erspan.unsupported_version` when the version field is not 1 (type II)
    /// or 2 (type III), or a type III frame type is neither Ethernet (0) nor
    /// IP (2).
    pub fn new_checked(buffer: T, type3: bool) -> Result<Self, Counter> {
        let d = buffer.as_ref();
        let (want_ver, mut len) = if type3 {
            (2, field::ER3_LEN)
        } else {
            (1, field::ER2_LEN)
        };
        if d.len() < len {
            return Err(Counter::ErspanHeaderTooSmall);
        }
        if d[field::ER_VER_VLAN] >> 4 != want_ver {
            return Err(Counter::ErspanUnsupportedVersion);
        }
        if type3 {
            if d[field::ER3_FT_O + 1] & 1 != 0 {
                len += field::ER3_SUBHEADER_LEN;
                if d.len() < len {
                    return Err(Counter::ErspanHeaderTooSmall);
                }
            }
            if !matches!(ft(d), 0 | 2) {
                return Err(Counter::ErspanUnsupportedVersion);
            }
        }
        Ok(ErspanHeader {
            buffer,
            header_len: len,
        })
    }

    /// 1 for type II, 2 for type III.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::ER_VER_VLAN] >> 4
    }

    /// The VLAN field: the mirrored frame's VLAN as seen by the source
    /// switch (informational; the decoder uses the inner frame's own tags).
    pub fn vlan(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ER_VER_VLAN) & 0x0fff
    }

    /// The 10-bit mirror session id.
    pub fn session_id(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ER_SESSION) & 0x03ff
    }

    /// Type III timestamp (units set by the granularity field).
    pub fn timestamp(&self) -> Option<u32> {
        (self.version() == 2).then(|| be32(self.buffer.as_ref(), field::ER3_TIMESTAMP))
    }

    pub fn payload_kind(&self) -> ErspanPayload {
        if self.version() == 2 && ft(self.buffer.as_ref()) == 2 {
            ErspanPayload::Ip
        } else {
            ErspanPayload::Ethernet
        }
    }

    pub fn header_len(&self) -> usize {
        self.header_len
    }
}

/// Type III frame type: the 5 bits after P in the 11th byte.
fn ft(d: &[u8]) -> u8 {
    (d[field::ER3_FT_O] >> 2) & 0x1f
}

impl<'a> ErspanHeader<&'a [u8]> {
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        self.buffer.get(self.header_len..).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gre_v0_optional_fields_lengthen_header() {
        // Hand-built GRE v0 header with checksum, key and sequence.
        let h = [
            0xb0, 0x00, // C, K, S set; version 0
            0x08, 0x00, // protocol IPv4
            0x00, 0x00, 0x00, 0x00, // checksum, reserved1
            0x00, 0x00, 0x00, 0x2a, // key 42
            0x00, 0x00, 0x00, 0x07, // sequence 7
            0x45, // payload starts
        ];
        let g = GreHeader::new_checked(&h[..]).unwrap();
        assert_eq!(
            (g.header_len(), g.protocol(), g.key()),
            (16, 0x0800, Some(42))
        );
        assert!(g.has_seq());
        assert_eq!(g.payload(), &[0x45]);
        assert_eq!(
            GreHeader::new_checked(&h[..15]).err(),
            Some(Counter::GreVersion0HdrTooBig)
        );
        assert_eq!(
            GreHeader::new_checked(&h[..3]).err(),
            Some(Counter::GrePktTooSmall)
        );
    }

    #[test]
    fn gre_v0_bad_bits_and_versions_named() {
        let cases: [([u8; 4], Counter); 4] = [
            ([0x01, 0x00, 0x08, 0x00], Counter::GreVersion0Recur), // recursion 1
            ([0x40, 0x00, 0x08, 0x00], Counter::GreVersion0Flags), // routing present
            ([0x00, 0x08, 0x08, 0x00], Counter::GreVersion0Flags), // reserved flag bit
            ([0x00, 0x02, 0x08, 0x00], Counter::GreWrongVersion),  // version 2
        ];
        for (h, c) in cases {
            assert_eq!(GreHeader::new_checked(&h[..]).err(), Some(c), "{h:02x?}");
        }
    }

    #[test]
    fn gre_v1_pptp_checked() {
        // Hand-built enhanced GRE (PPTP) header with key, sequence, ack.
        let h = [
            0x30, 0x81, // K, S set; A set; version 1
            0x88, 0x0b, // protocol PPP
            0x00, 0x10, 0x00, 0x01, // payload length 16, call id 1
            0x00, 0x00, 0x00, 0x01, // sequence
            0x00, 0x00, 0x00, 0x00, // acknowledgment
        ];
        let g = GreHeader::new_checked(&h[..]).unwrap();
        assert_eq!((g.version(), g.header_len()), (1, 16));
        assert_eq!(
            GreHeader::new_checked(&h[..15]).err(),
            Some(Counter::GreVersion1HdrTooBig)
        );
        let cases: [([u8; 4], Counter); 7] = [
            ([0xa0, 0x01, 0x88, 0x0b], Counter::GreVersion1Chksum),
            ([0x60, 0x01, 0x88, 0x0b], Counter::GreVersion1Route),
            ([0x28, 0x01, 0x88, 0x0b], Counter::GreVersion1Ssr),
            ([0x21, 0x01, 0x88, 0x0b], Counter::GreVersion1Recur),
            ([0x20, 0x09, 0x88, 0x0b], Counter::GreVersion1Flags),
            ([0x00, 0x01, 0x88, 0x0b], Counter::GreVersion1NoKey),
            ([0x20, 0x01, 0x08, 0x00], Counter::GreVersion1WrongProtocol),
        ];
        for (h, c) in cases {
            assert_eq!(GreHeader::new_checked(&h[..]).err(), Some(c), "{h:02x?}");
        }
    }

    #[test]
    fn erspan_type2_fields() {
        // Hand-built ERSPAN type II header.
        let h = [
            0x10, 0x64, // version 1, VLAN 100
            0x00, 0x05, // COS 0, En 0, T 0, session 5
            0x00, 0x00, 0x00, 0x09, // reserved, index 9
            0xff, // mirrored frame starts
        ];
        let e = ErspanHeader::new_checked(&h[..], false).unwrap();
        assert_eq!((e.version(), e.vlan(), e.session_id()), (1, 100, 5));
        assert_eq!(e.payload(), &[0xff]);
        assert_eq!(e.payload_kind(), ErspanPayload::Ethernet);
        assert_eq!(e.timestamp(), None);
        assert_eq!(
            ErspanHeader::new_checked(&h[..7], false).err(),
            Some(Counter::ErspanHeaderTooSmall)
        );
        let mut v = h;
        v[0] = 0x20;
        assert_eq!(
            ErspanHeader::new_checked(&v[..], false).err(),
            Some(Counter::ErspanUnsupportedVersion)
        );
    }

    #[test]
    fn erspan_type3_with_and_without_subheader() {
        // Hand-built ERSPAN type III header.
        let mut h = vec![
            0x20, 0x00, // version 2, VLAN 0
            0x00, 0x01, // COS 0, BSO 0, T 0, session 1
            0x00, 0x00, 0x01, 0x00, // timestamp 256
            0x00, 0x00, // SGT 0
            0x00, // P 0, FT 0 (Ethernet), Hw ID high bits 0
            0x00, // Hw ID low bits, D 0, Gra 0, O 0
            0xee, // mirrored frame starts
        ];
        let e = ErspanHeader::new_checked(&h[..], true).unwrap();
        assert_eq!((e.header_len(), e.timestamp()), (12, Some(256)));
        assert_eq!(e.payload(), &[0xee]);
        h[11] = 0x01; // O set: an 8-byte platform subheader follows
        assert_eq!(
            ErspanHeader::new_checked(&h[..], true).err(),
            Some(Counter::ErspanHeaderTooSmall)
        );
        h.splice(12..12, [0x08, 0, 0, 0, 0, 0, 0, 0]); // platform id 2 subheader
        let e = ErspanHeader::new_checked(&h[..], true).unwrap();
        assert_eq!(e.header_len(), 20);
        assert_eq!(e.payload(), &[0xee]);
        h[10] = 0x08; // FT 2: IP payload
        let e = ErspanHeader::new_checked(&h[..], true).unwrap();
        assert_eq!(e.payload_kind(), ErspanPayload::Ip);
        h[10] = 0x04; // FT 1: not supported
        assert_eq!(
            ErspanHeader::new_checked(&h[..], true).err(),
            Some(Counter::ErspanUnsupportedVersion)
        );
    }
}
