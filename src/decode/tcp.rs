//! TCP header view.
//!
//! Owns: validation of the TCP header and the slice of segment data.
//! Invariant: a view built by `new_checked` holds the whole header, options
//! included; options are skipped, not parsed.
//! Spec: RFC 9293 §3.1.
//!
//! ```text
//!  0                   1                   2                   3
//! +-------------------------------+-------------------------------+
//! |          Source Port          |       Destination Port        |
//! +-------------------------------+-------------------------------+
//! |                        Sequence Number                        |
//! +---------------------------------------------------------------+
//! |                    Acknowledgment Number                      |
//! +-------+-------+---------------+-------------------------------+
//! |  Data | Rsrvd |C|E|U|A|P|R|S|F|            Window             |
//! | Offset|       |               |                               |
//! +-------+-------+---------------+-------------------------------+
//! |           Checksum            |         Urgent Pointer        |
//! +-------------------------------+-------------------------------+
//! |                     Options, then data                        |
//! ```

use super::stats::Counter;
use super::wire::{be16, be32};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// Offset of the checksum field.
pub const CHECKSUM: usize = 16;

/// A view of a TCP segment.
#[derive(Debug, Clone, Copy)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Validates the header; `buffer` is the IP payload already cut at the
    /// IP-declared length.
    ///
    /// # Errors
    /// `tcp.pkt_too_small` below 20 bytes or when the options run past the
    /// data, `tcp.hlen_too_small` for a data offset below 5.
    pub fn new_checked(buffer: T) -> Result<Self, Counter> {
        let len = buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Counter::TcpPktTooSmall);
        }
        let p = TcpPacket { buffer };
        let hlen = p.header_len();
        if hlen < MIN_HEADER_LEN {
            return Err(Counter::TcpHlenTooSmall);
        }
        if hlen > len {
            return Err(Counter::TcpPktTooSmall);
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

    #[inline]
    pub fn seq(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ)
    }

    #[inline]
    pub fn ack(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK)
    }

    /// Header length in bytes (data offset × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    #[inline]
    pub fn window(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WINDOW)
    }
}

impl<'a> TcpPacket<&'a [u8]> {
    /// The data after the header and options.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        self.buffer.get(self.header_len()..).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-built TCP header with a 4-byte option and 3 data bytes.
    const SEG: [u8; 27] = [
        0x04, 0xd2, // source port 1234
        0x07, 0x5b, // destination port 1883
        0x00, 0x00, 0x00, 0x64, // sequence 100
        0x00, 0x00, 0x00, 0xc8, // acknowledgment 200
        0x60, // data offset 6 (24 bytes), reserved 0
        0x18, // flags PSH|ACK
        0x01, 0x00, // window 256
        0x00, 0x00, // checksum (not checked by the view)
        0x00, 0x00, // urgent pointer
        0x02, 0x04, 0x05, 0xb4, // option MSS 1460
        b'a', b'b', b'c', // data
    ];

    #[test]
    fn fields_and_payload_after_options() {
        let t = TcpPacket::new_checked(&SEG[..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (1234, 1883));
        assert_eq!((t.seq(), t.ack(), t.window()), (100, 200, 256));
        assert_eq!(t.flags(), 0x18);
        assert_eq!(t.payload(), b"abc");
    }

    #[test]
    fn short_header_and_small_offset_rejected() {
        assert_eq!(
            TcpPacket::new_checked(&SEG[..19]).err(),
            Some(Counter::TcpPktTooSmall)
        );
        assert_eq!(
            TcpPacket::new_checked(&SEG[..23]).err(),
            Some(Counter::TcpPktTooSmall)
        );
        let mut s = SEG;
        s[12] = 0x40; // data offset 4
        assert_eq!(
            TcpPacket::new_checked(&s[..]).err(),
            Some(Counter::TcpHlenTooSmall)
        );
    }
}
