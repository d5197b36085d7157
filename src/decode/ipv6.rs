//! IPv6 header and extension-header chain.
//!
//! Owns: validation of the fixed IPv6 header and the walk along the
//! extension headers to the transport header or a fragment header.
//! Invariants: a view built by `new_checked` holds the whole 40-byte header;
//! the walk reads only bytes it has checked are there, and ends after at
//! most one header of each kind (two destination-options headers), so a
//! chain is at most six headers long — a repeated header is malformed.
//! Spec: RFC 8200 §3 (header), §4 (extension headers), §4.5 (fragment
//! header); RFC 4302 §2 (AH length in 32-bit words).
//!
//! ```text
//! +-------+---------------+---------------------------------------+
//! |Version| Traffic Class |              Flow Label               |
//! +-------+---------------+-------+---------------+---------------+
//! |         Payload Length        |  Next Header  |   Hop Limit   |
//! +-------------------------------+---------------+---------------+
//! |                 Source Address (16 bytes)                     |
//! |              Destination Address (16 bytes)                   |
//! +---------------------------------------------------------------+
//! Fragment header (8 bytes):
//! | Next Header | Reserved | Fragment Offset (13) |Res|M| Identification (32) |
//! ```

use std::net::Ipv6Addr;

use super::stats::{Counter, DecodeStats};
use super::wire::{be16, be32};

mod field {
    use core::ops::Range;
    pub const VER_TC_FL: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
    pub const HEADER_LEN: usize = 40;

    pub const FRAG_NEXT: usize = 0;
    pub const FRAG_OFF_M: usize = 2;
    pub const FRAG_ID: usize = 4;
    pub const FRAG_LEN: usize = 8;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::HEADER_LEN;

/// Next-header values of the extension headers the walk understands.
pub mod next_header {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const NO_NEXT: u8 = 59;
    pub const DEST_OPTS: u8 = 60;
}

/// A view of an IPv6 packet.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Validates the fixed header; `snapped` as for IPv4: a payload length
    /// beyond the captured bytes is accepted only when the capture cut the
    /// frame.
    ///
    /// # Errors
    /// `ipv6.pkt_too_small` below 40 bytes, `ipv6.wrong_ip_version`,
    /// `ipv6.trunc_pkt` when the payload length overruns the frame.
    pub fn new_checked(buffer: T, snapped: bool) -> Result<Self, Counter> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Counter::Ipv6PktTooSmall);
        }
        let p = Ipv6Packet { buffer };
        if p.version() != 6 {
            return Err(Counter::Ipv6WrongIpVersion);
        }
        let want = HEADER_LEN + usize::from(p.payload_len());
        if p.buffer.as_ref().len() < want && !snapped {
            return Err(Counter::Ipv6TruncPkt);
        }
        Ok(p)
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FL] >> 4
    }

    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::SRC])
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::DST])
    }
}

impl<'a> Ipv6Packet<&'a [u8]> {
    /// The bytes after the fixed header, cut at the payload length and at
    /// the captured bytes.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let end = (HEADER_LEN + usize::from(self.payload_len())).min(self.buffer.len());
        self.buffer.get(HEADER_LEN..end).unwrap_or(&[])
    }
}

#[inline]
fn addr(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(b);
    Ipv6Addr::from(a)
}

/// A view of the IPv6 fragment header.
#[derive(Debug, Clone, Copy)]
pub struct FragHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FragHeader<T> {
    pub fn new_checked(buffer: T) -> Option<Self> {
        (buffer.as_ref().len() >= field::FRAG_LEN).then_some(FragHeader { buffer })
    }

    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::FRAG_NEXT]
    }

    /// Fragment offset in bytes.
    pub fn offset(&self) -> u32 {
        u32::from(be16(self.buffer.as_ref(), field::FRAG_OFF_M) & 0xfff8)
    }

    pub fn more(&self) -> bool {
        be16(self.buffer.as_ref(), field::FRAG_OFF_M) & 1 != 0
    }

    pub fn ident(&self) -> u32 {
        be32(self.buffer.as_ref(), field::FRAG_ID)
    }
}

/// Where the extension-header chain ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainEnd<'a> {
    /// A transport (or unknown) header `proto` starts `payload`; `declared`
    /// is its length according to the IPv6 payload length.
    Transport {
        proto: u8,
        payload: &'a [u8],
        declared: usize,
    },
    /// A fragment header (not an atomic one): `payload` is the fragmentable
    /// part after it and `proto` its next header.
    Fragment {
        proto: u8,
        id: u32,
        offset: u32,
        more: bool,
        payload: &'a [u8],
    },
}

/// Walks the extension headers starting with next header `nh` at the start
/// of `data` (the IPv6 payload; `declared` is its declared length). ESP ends
/// the walk as a transport (its content is encrypted); "no next header"
/// ends it with protocol 59. An atomic fragment (offset 0, no more
/// fragments, RFC 6946) is counted and skipped.
///
/// # Errors
/// `ipv6.trunc_exthdr` when a header runs past the data, `exthdr_dupl_*`
/// when a header kind repeats.
pub fn walk_chain<'a>(
    mut nh: u8,
    mut data: &'a [u8],
    mut declared: usize,
    stats: &mut DecodeStats,
) -> Result<ChainEnd<'a>, Counter> {
    use next_header::*;
    // Bit per header kind seen; destination options may appear twice.
    let mut seen: u8 = 0;
    let mut dest_opts = 0u8;
    loop {
        let (len, bit, dupl) = match nh {
            HOP_BY_HOP | ROUTING | DEST_OPTS => {
                let l = data.get(1).ok_or(Counter::Ipv6TruncExthdr)?;
                let (bit, dupl) = match nh {
                    HOP_BY_HOP => (1, Counter::Ipv6ExthdrDuplHh),
                    ROUTING => (2, Counter::Ipv6ExthdrDuplRh),
                    _ => {
                        dest_opts += 1;
                        (0, Counter::Ipv6ExthdrDuplDh)
                    }
                };
                ((usize::from(*l) + 1) * 8, bit, dupl)
            }
            AH => {
                let l = data.get(1).ok_or(Counter::Ipv6TruncExthdr)?;
                ((usize::from(*l) + 2) * 4, 8, Counter::Ipv6ExthdrDuplAh)
            }
            FRAGMENT => {
                if seen & 16 != 0 {
                    return Err(Counter::Ipv6ExthdrDuplFh);
                }
                seen |= 16;
                let f = FragHeader::new_checked(data).ok_or(Counter::Ipv6TruncExthdr)?;
                let rest = data.get(field::FRAG_LEN..).unwrap_or(&[]);
                if f.offset() == 0 && !f.more() {
                    stats.incr(Counter::Ipv6ExthdrUselessFh);
                    nh = f.next_header();
                    data = rest;
                    declared = declared.saturating_sub(field::FRAG_LEN);
                    continue;
                }
                return Ok(ChainEnd::Fragment {
                    proto: f.next_header(),
                    id: f.ident(),
                    offset: f.offset(),
                    more: f.more(),
                    payload: rest,
                });
            }
            NO_NEXT => {
                if declared != 0 {
                    stats.incr(Counter::Ipv6DataAfterNoneHeader);
                }
                return Ok(ChainEnd::Transport {
                    proto: nh,
                    payload: &[],
                    declared: 0,
                });
            }
            _ => {
                return Ok(ChainEnd::Transport {
                    proto: nh,
                    payload: data,
                    declared,
                })
            }
        };
        if bit != 0 {
            if seen & bit != 0 {
                return Err(dupl);
            }
            seen |= bit;
        } else if nh == DEST_OPTS && dest_opts > 2 {
            return Err(dupl);
        }
        if data.len() < len {
            return Err(Counter::Ipv6TruncExthdr);
        }
        nh = data[0];
        data = &data[len..];
        declared = declared.saturating_sub(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-built IPv6 header, payload length `plen`, next header `nh`.
    fn header(plen: u16, nh: u8) -> Vec<u8> {
        let mut v = vec![
            0x60, 0x00, 0x00, 0x00, // version 6, traffic class 0, flow label 0
        ];
        v.extend_from_slice(&plen.to_be_bytes()); // payload length
        v.push(nh); // next header
        v.push(64); // hop limit
        v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]); // source 2001:db8::1
        v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]); // destination 2001:db8::2
        v
    }

    #[test]
    fn fixed_header_fields_and_errors() {
        let mut b = header(4, 17);
        b.extend_from_slice(&[1, 2, 3, 4, 0xff]); // 4 payload bytes + 1 trailing
        let p = Ipv6Packet::new_checked(&b[..], false).unwrap();
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!((p.next_header(), p.hop_limit()), (17, 64));
        assert_eq!(
            Ipv6Packet::new_checked(&b[..39], false).err(),
            Some(Counter::Ipv6PktTooSmall)
        );
        assert_eq!(
            Ipv6Packet::new_checked(&b[..43], false).err(),
            Some(Counter::Ipv6TruncPkt)
        );
        assert!(Ipv6Packet::new_checked(&b[..43], true).is_ok());
        b[0] = 0x40;
        assert_eq!(
            Ipv6Packet::new_checked(&b[..], false).err(),
            Some(Counter::Ipv6WrongIpVersion)
        );
    }

    #[test]
    fn chain_hop_by_hop_dest_opts_to_tcp() {
        // Hand-built chain.
        let chain = [
            60, 0, 1, 4, 0, 0, 0, 0, // hop-by-hop: next dest-opts, len 0 (8 bytes), PadN
            6, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, // dest-opts: next TCP, len 1 (16 bytes), PadN
            0xaa, 0xbb, // transport bytes
        ];
        let mut s = DecodeStats::default();
        let end = walk_chain(0, &chain, chain.len(), &mut s).unwrap();
        assert_eq!(
            end,
            ChainEnd::Transport {
                proto: 6,
                payload: &[0xaa, 0xbb],
                declared: 2
            }
        );
    }

    #[test]
    fn chain_fragment_header_yields_fragment() {
        // Hand-built fragment header.
        let chain = [
            17, // next header UDP
            0,  // reserved
            0x00, 0xb1, // offset 22 (×8 = 176), M = 1
            0xde, 0xad, 0xbe, 0xef, // identification
            9, 9, // fragment data
        ];
        let mut s = DecodeStats::default();
        let end = walk_chain(44, &chain, chain.len(), &mut s).unwrap();
        assert_eq!(
            end,
            ChainEnd::Fragment {
                proto: 17,
                id: 0xdead_beef,
                offset: 176,
                more: true,
                payload: &[9, 9]
            }
        );
    }

    #[test]
    fn chain_atomic_fragment_skipped_and_counted() {
        // Hand-built atomic fragment header (offset 0, M 0).
        let chain = [
            6, 0, // next TCP, reserved
            0, 0, // offset 0, M 0
            0, 0, 0, 1, // identification
            7, // transport byte
        ];
        let mut s = DecodeStats::default();
        let end = walk_chain(44, &chain, chain.len(), &mut s).unwrap();
        assert!(matches!(end, ChainEnd::Transport { proto: 6, .. }));
        assert_eq!(s.get(Counter::Ipv6ExthdrUselessFh), 1);
    }

    #[test]
    fn chain_errors_truncated_duplicate_and_none_header() {
        let mut s = DecodeStats::default();
        // Hop-by-hop claiming 16 bytes with 8 present.
        let short = [6, 1, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            walk_chain(0, &short, 8, &mut s),
            Err(Counter::Ipv6TruncExthdr)
        );
        assert_eq!(walk_chain(0, &[], 0, &mut s), Err(Counter::Ipv6TruncExthdr));
        // Two hop-by-hop headers.
        let dup = [0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            walk_chain(0, &dup, 16, &mut s),
            Err(Counter::Ipv6ExthdrDuplHh)
        );
        // Three destination-options headers.
        let mut three = Vec::new();
        for _ in 0..3 {
            three.extend_from_slice(&[60, 0, 0, 0, 0, 0, 0, 0]);
        }
        assert_eq!(
            walk_chain(60, &three, 24, &mut s),
            Err(Counter::Ipv6ExthdrDuplDh)
        );
        // Two routing headers.
        let rh = [43, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            walk_chain(43, &rh, 16, &mut s),
            Err(Counter::Ipv6ExthdrDuplRh)
        );
        // AH length is in 4-byte words plus 2: len 1 → 12 bytes.
        let ah = [6, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x55];
        let end = walk_chain(51, &ah, 13, &mut s).unwrap();
        assert!(matches!(
            end,
            ChainEnd::Transport {
                proto: 6,
                payload: [0x55],
                ..
            }
        ));
        // No next header with bytes after it: counted, not an error.
        let end = walk_chain(59, &[1, 2], 2, &mut s).unwrap();
        assert!(matches!(end, ChainEnd::Transport { proto: 59, .. }));
        assert_eq!(s.get(Counter::Ipv6DataAfterNoneHeader), 1);
    }
}
