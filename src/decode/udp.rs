//! UDP header view.
//!
//! Owns: validation of the UDP header against the length the IP layer
//! declared. Invariant: a view built by `new_checked` holds the 8-byte
//! header and a length field equal to the IP-declared payload length.
//! Spec: RFC 768.
//!
//! ```text
//! +----------------+----------------+----------------+----------------+
//! |  Source Port   |   Dest Port    |     Length     |    Checksum    |
//! +----------------+----------------+----------------+----------------+
//! ```

use super::stats::Counter;
use super::wire::be16;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
}

/// Length of the header.
pub const HEADER_LEN: usize = 8;

/// Offset of the checksum field.
pub const CHECKSUM: usize = 6;

/// A view of a UDP datagram.
#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Validates the header; `buffer` holds the IP payload as captured and
    /// `declared` is its length according to the IP header.
    ///
    /// # Errors
    /// `udp.hlen_too_small` below 8 bytes, `udp.len_invalid` for a length
    /// field below 8, `udp.pkt_too_small` when the length field exceeds what
    /// IP declared, `udp.hlen_invalid` when it is shorter.
    pub fn new_checked(buffer: T, declared: usize) -> Result<Self, Counter> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Counter::UdpHlenTooSmall);
        }
        let p = UdpPacket { buffer };
        let len = usize::from(p.length());
        if len < HEADER_LEN {
            return Err(Counter::UdpLenInvalid);
        }
        if len > declared {
            return Err(Counter::UdpPktTooSmall);
        }
        if len < declared {
            return Err(Counter::UdpHlenInvalid);
        }
        Ok(p)
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Header plus data length, from the header.
    #[inline]
    pub fn length(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
}

impl<'a> UdpPacket<&'a [u8]> {
    /// The data, cut at the length field and at the captured bytes.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let end = usize::from(self.length()).min(self.buffer.len());
        self.buffer.get(HEADER_LEN..end).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-built UDP datagram with 2 data bytes.
    const DGRAM: [u8; 10] = [
        0x30, 0x39, // source port 12345
        0x12, 0xb5, // destination port 4789
        0x00, 0x0a, // length 10
        0x00, 0x00, // checksum (none)
        0xab, 0xcd, // data
    ];

    #[test]
    fn fields_and_payload() {
        let u = UdpPacket::new_checked(&DGRAM[..], 10).unwrap();
        assert_eq!((u.src_port(), u.dst_port(), u.length()), (12345, 4789, 10));
        assert_eq!(u.payload(), &[0xab, 0xcd]);
        // Snapped capture: fewer bytes than declared, payload is what is there.
        let u = UdpPacket::new_checked(&DGRAM[..9], 10).unwrap();
        assert_eq!(u.payload(), &[0xab]);
    }

    #[test]
    fn each_length_problem_named() {
        assert_eq!(
            UdpPacket::new_checked(&DGRAM[..7], 10).err(),
            Some(Counter::UdpHlenTooSmall)
        );
        let mut d = DGRAM;
        d[5] = 7;
        assert_eq!(
            UdpPacket::new_checked(&d[..], 10).err(),
            Some(Counter::UdpLenInvalid)
        );
        assert_eq!(
            UdpPacket::new_checked(&DGRAM[..], 9).err(),
            Some(Counter::UdpPktTooSmall)
        );
        assert_eq!(
            UdpPacket::new_checked(&DGRAM[..], 11).err(),
            Some(Counter::UdpHlenInvalid)
        );
    }
}
