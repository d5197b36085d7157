//! pcapng files: section headers, interfaces and packet blocks.
//!
//! Owns: block framing and validation, the per-section byte order, the
//! interface table (link type, snap length, `if_tsresol`, `if_tsoffset`), and
//! turning Enhanced and Simple Packet Blocks into [`PacketRef`]s.
//! Invariants: every block's total length is a multiple of 4, at least 12, at
//! most [`MAX_BLOCK_LEN`], and equal to its trailing copy, or the block is
//! `Corrupt`; nothing is asked of the source beyond one such block; the
//! interface table never holds more than [`MAX_INTERFACES`] entries; a new
//! Section Header Block empties it and may switch the byte order.
//! Blocks other than SHB, IDB, EPB and SPB (NRB, ISB, DSB, custom, the
//! obsolete Packet Block…) are skipped by their length.
//! Spec: draft-ietf-opsawg-pcapng (PCAP Next Generation Dump File Format),
//! §3 (general block structure), §4.1 SHB, §4.2 IDB, §4.3 EPB, §4.4 SPB.
//!
//! ```text
//! General block                      Section Header Block (type 0x0A0D0D0A)
//!  0 block type          u32          8 byte-order magic 0x1A2B3C4D  u32
//!  4 block total length  u32         12 major u16 | minor u16
//!  8 body …                          16 section length               i64
//!  L-4 block total length u32        24 options …
//!
//! Interface Description (type 1)     Enhanced Packet Block (type 6)
//!  8 link type u16 | reserved u16     8 interface id                 u32
//! 12 snaplen             u32         12 timestamp (upper 32 bits)    u32
//! 16 options …                       16 timestamp (lower 32 bits)    u32
//!                                    20 captured packet length       u32
//! Simple Packet Block (type 3)       24 original packet length       u32
//!  8 original packet length u32      28 packet data, padded to 32 bits
//! 12 packet data …                      options …
//!
//! Option: code u16 | length u16 | value, padded to 32 bits; code 0 ends.
//! ```

use super::{ByteOrder, FrameDigest, LinkType, PacketRef, Stop};
use crate::time::Timestamp;

/// Largest block accepted; anything larger is treated as corruption. Real
/// writers stay far below (a 256 KiB packet plus options).
pub const MAX_BLOCK_LEN: u32 = 16 * 1024 * 1024;

/// Most interfaces one section may describe; more is treated as corruption.
pub const MAX_INTERFACES: usize = 65_536;

/// The on-disk bytes of a Section Header Block type (a palindrome, so the
/// same in both byte orders).
pub(super) const SHB_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

const BLOCK_SHB: u32 = 0x0a0d_0d0a;
const BLOCK_IDB: u32 = 1;
const BLOCK_SPB: u32 = 3;
const BLOCK_EPB: u32 = 6;

/// Smallest legal total length of each block we read.
const MIN_SHB_LEN: usize = 28;
const MIN_IDB_LEN: usize = 20;
const MIN_SPB_LEN: usize = 16;
const MIN_EPB_LEN: usize = 32;

/// IDB option codes.
const OPT_ENDOFOPT: u16 = 0;
const IF_TSRESOL: u16 = 9;
const IF_TSOFFSET: u16 = 14;

/// How an interface's timestamp units convert to nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolution {
    /// Units of 10^-n with n ≤ 9 (or so fine that they round to 0): multiply.
    Mul(u64),
    /// Units of 10^-n with 9 < n ≤ 28: divide by 10^(n-9).
    Div(u64),
    /// Units of 2^-n: multiply by 10^9, shift right by n.
    Pow2(u32),
}

impl Resolution {
    /// Decodes an `if_tsresol` byte: bit 7 clear means 10^-v, set 2^-(v&0x7f).
    fn from_tsresol(v: u8) -> Resolution {
        if v & 0x80 != 0 {
            return Resolution::Pow2(u32::from(v & 0x7f));
        }
        match v {
            0..=9 => Resolution::Mul(10u64.pow(9 - u32::from(v))),
            10..=28 => Resolution::Div(10u64.pow(u32::from(v) - 9)),
            // Finer than 10^-28 s: every representable count is below 1 ns.
            _ => Resolution::Mul(0),
        }
    }

    fn to_nanos(self, units: u64) -> u64 {
        match self {
            Resolution::Mul(m) => units.saturating_mul(m),
            // Div is only built with a divisor of at least 10.
            Resolution::Div(d) => units / d.max(1),
            Resolution::Pow2(n) => {
                let scaled = u128::from(units) * 1_000_000_000;
                // n < 128, so the shift is defined; the result may exceed u64.
                u64::try_from(scaled >> n).unwrap_or(u64::MAX)
            }
        }
    }
}

/// One Interface Description Block, as far as packets need it.
#[derive(Debug, Clone, Copy)]
struct Interface {
    link: LinkType,
    /// 0 means "no limit".
    snaplen: u32,
    resolution: Resolution,
    /// `if_tsoffset`: seconds to add to every timestamp.
    offset_secs: i64,
}

impl Interface {
    fn timestamp(&self, units: u64) -> Timestamp {
        let nanos = self.resolution.to_nanos(units);
        if self.offset_secs == 0 {
            return Timestamp(nanos);
        }
        let shifted =
            i128::from(nanos) + i128::from(self.offset_secs) * i128::from(1_000_000_000u32);
        // Before the epoch clamps to 0, after 2554 to the maximum.
        Timestamp(u64::try_from(shifted.max(0)).unwrap_or(u64::MAX))
    }
}

/// State of a pcapng file: the current section's byte order and interfaces.
#[derive(Debug)]
pub(super) struct Pcapng {
    order: ByteOrder,
    interfaces: Vec<Interface>,
    /// Time of the last timestamped packet; Simple Packet Blocks carry none
    /// and are given this one so that packet time never jumps back to 1970.
    last_ts: Timestamp,
}

/// Outcome of reading one block.
enum Step {
    /// A block was consumed (a packet may have been appended).
    Consumed,
    /// Stop here with this reason; nothing was consumed.
    Stop(Stop),
}

impl Pcapng {
    /// A reader positioned before the first Section Header Block.
    pub(super) fn new() -> Pcapng {
        Pcapng {
            order: ByteOrder::Little,
            interfaces: Vec::new(),
            last_ts: Timestamp(0),
        }
    }

    /// Reads the Section Header Block that must open the file.
    pub(super) fn parse_first_section(&mut self, buf: &[u8], pos: &mut usize) -> Option<Stop> {
        if buf.get(*pos..).and_then(|r| r.first_chunk::<4>()) != Some(&SHB_MAGIC) {
            return Some(Stop::Corrupt("first block is not a section header".into()));
        }
        let mut none = Vec::new();
        match self.step(buf, pos, &mut none) {
            Step::Consumed => None,
            Step::Stop(s) => Some(s),
        }
    }

    /// Appends packets from the blocks starting at `*pos` until `out` holds
    /// `max` packets or the buffer ends; `*pos` is left at the first block
    /// not consumed.
    pub(super) fn parse_blocks(
        &mut self,
        buf: &[u8],
        pos: &mut usize,
        out: &mut Vec<PacketRef>,
        max: usize,
        digest: Option<FrameDigest>,
    ) -> Stop {
        while out.len() < max {
            let before = out.len();
            let step = self.step(buf, pos, out);
            if let Some(f) = digest {
                // At most the one packet of the block just read.
                for p in out.get_mut(before..).unwrap_or(&mut []) {
                    let end = p.offset.saturating_add(p.caplen as usize);
                    p.sum = f(buf.get(p.offset..end).unwrap_or(&[]));
                }
            }
            if let Step::Stop(s) = step {
                return s;
            }
        }
        Stop::Full
    }

    /// Reads exactly one block at `*pos`.
    #[inline]
    fn step(&mut self, buf: &[u8], pos: &mut usize, out: &mut Vec<PacketRef>) -> Step {
        let rest = buf.get(*pos..).unwrap_or(&[]);
        let Some(h) = rest.first_chunk::<8>() else {
            return Step::Stop(Stop::NeedMore(8));
        };
        let type_bytes = [h[0], h[1], h[2], h[3]];
        // A section header announces its own byte order in its magic; every
        // other block uses the order of the section it is in.
        let order = if type_bytes == SHB_MAGIC {
            let Some(h) = rest.first_chunk::<12>() else {
                return Step::Stop(Stop::NeedMore(12));
            };
            match [h[8], h[9], h[10], h[11]] {
                [0x1a, 0x2b, 0x3c, 0x4d] => ByteOrder::Big,
                [0x4d, 0x3c, 0x2b, 0x1a] => ByteOrder::Little,
                _ => return corrupt("section header has no byte-order magic".into()),
            }
        } else {
            self.order
        };
        let block_len = order.u32([h[4], h[5], h[6], h[7]]);
        if block_len % 4 != 0 || !(12..=MAX_BLOCK_LEN).contains(&block_len) {
            return corrupt(format!("block total length {block_len} is invalid"));
        }
        // Bounded by MAX_BLOCK_LEN, so it fits in usize.
        let len = block_len as usize;
        let Some(block) = rest.get(..len) else {
            return Step::Stop(Stop::NeedMore(len));
        };
        let trailer = block
            .get(len - 4..)
            .and_then(|t| t.first_chunk::<4>())
            .map(|t| order.u32(*t));
        if trailer != Some(block_len) {
            return corrupt("block trailing length differs from its header".into());
        }
        match order.u32(type_bytes) {
            BLOCK_EPB => {
                if let Err(e) = self.enhanced_packet(block, *pos, out) {
                    return corrupt(e);
                }
            }
            BLOCK_SPB => {
                if let Err(e) = self.simple_packet(block, *pos, out) {
                    return corrupt(e);
                }
            }
            BLOCK_IDB => {
                if let Err(e) = self.interface(block) {
                    return corrupt(e);
                }
            }
            BLOCK_SHB => {
                if len < MIN_SHB_LEN {
                    return corrupt("section header block too short".into());
                }
                let major = field_u16(block, 12, order);
                if major != Some(1) {
                    return corrupt(format!("unsupported pcapng major version {major:?}"));
                }
                self.order = order;
                self.interfaces.clear();
            }
            // NRB, ISB, DSB, custom and obsolete blocks: not needed for packets.
            _ => {}
        }
        *pos += len;
        Step::Consumed
    }

    fn enhanced_packet(
        &mut self,
        block: &[u8],
        block_pos: usize,
        out: &mut Vec<PacketRef>,
    ) -> Result<(), String> {
        let Some(b) = block.first_chunk::<MIN_EPB_LEN>() else {
            return Err("enhanced packet block too short".into());
        };
        let o = self.order;
        let if_id = o.u32([b[8], b[9], b[10], b[11]]);
        let ts_high = o.u32([b[12], b[13], b[14], b[15]]);
        let ts_low = o.u32([b[16], b[17], b[18], b[19]]);
        let caplen = o.u32([b[20], b[21], b[22], b[23]]);
        let origlen = o.u32([b[24], b[25], b[26], b[27]]);
        let Some(iface) = self.interfaces.get(if_id as usize) else {
            return Err(format!("packet names undeclared interface {if_id}"));
        };
        // Header (28) and trailer (4) around the data.
        if caplen as usize > block.len() - MIN_EPB_LEN {
            return Err(format!("captured length {caplen} overruns its block"));
        }
        let ts = iface.timestamp((u64::from(ts_high) << 32) | u64::from(ts_low));
        self.last_ts = ts;
        out.push(PacketRef {
            ts,
            offset: block_pos + 28,
            caplen,
            origlen,
            link: iface.link,
            sum: None,
        });
        Ok(())
    }

    fn simple_packet(
        &mut self,
        block: &[u8],
        block_pos: usize,
        out: &mut Vec<PacketRef>,
    ) -> Result<(), String> {
        let Some(origlen) = field_u32(block, 8, self.order) else {
            return Err("simple packet block too short".into());
        };
        let Some(iface) = self.interfaces.first() else {
            return Err("simple packet block before any interface".into());
        };
        // The block length is ≥ 12; an SPB needs 16 (header, origlen, trailer).
        let Some(space) = block.len().checked_sub(MIN_SPB_LEN) else {
            return Err("simple packet block too short".into());
        };
        let mut caplen = origlen.min(u32::try_from(space).unwrap_or(u32::MAX));
        if iface.snaplen != 0 {
            caplen = caplen.min(iface.snaplen);
        }
        out.push(PacketRef {
            ts: self.last_ts,
            offset: block_pos + 12,
            caplen,
            origlen,
            link: iface.link,
            sum: None,
        });
        Ok(())
    }

    fn interface(&mut self, block: &[u8]) -> Result<(), String> {
        let o = self.order;
        let (Some(link), Some(snaplen)) = (field_u16(block, 8, o), field_u32(block, 12, o)) else {
            return Err("interface description block too short".into());
        };
        if block.len() < MIN_IDB_LEN {
            return Err("interface description block too short".into());
        }
        if self.interfaces.len() >= MAX_INTERFACES {
            return Err(format!("more than {MAX_INTERFACES} interfaces"));
        }
        let mut iface = Interface {
            link: LinkType(link),
            snaplen,
            resolution: Resolution::Mul(1_000),
            offset_secs: 0,
        };
        // Options lie between the fixed fields and the trailing length. An
        // option that overruns them ends option parsing, keeping the
        // defaults: the packets are still readable, so they are not lost.
        let mut opts = block.get(16..block.len() - 4).unwrap_or(&[]);
        while let Some(oh) = opts.first_chunk::<4>() {
            let code = o.u16([oh[0], oh[1]]);
            let len = usize::from(o.u16([oh[2], oh[3]]));
            let Some(value) = opts.get(4..4 + len) else {
                break;
            };
            match (code, value) {
                (OPT_ENDOFOPT, _) => break,
                (IF_TSRESOL, &[v]) => iface.resolution = Resolution::from_tsresol(v),
                (IF_TSOFFSET, v) => {
                    if let Some(v) = v.first_chunk::<8>().filter(|_| len == 8) {
                        iface.offset_secs = match o {
                            ByteOrder::Little => i64::from_le_bytes(*v),
                            ByteOrder::Big => i64::from_be_bytes(*v),
                        };
                    }
                }
                _ => {}
            }
            let padded = (len + 3) & !3;
            opts = opts.get(4 + padded..).unwrap_or(&[]);
        }
        self.interfaces.push(iface);
        Ok(())
    }
}

fn corrupt(why: String) -> Step {
    Step::Stop(Stop::Corrupt(why))
}

fn field_u16(b: &[u8], at: usize, o: ByteOrder) -> Option<u16> {
    let v = b.get(at..)?.first_chunk::<2>()?;
    Some(o.u16(*v))
}

fn field_u32(b: &[u8], at: usize, o: ByteOrder) -> Option<u32> {
    let v = b.get(at..)?.first_chunk::<4>()?;
    Some(o.u32(*v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsresol_decimal_and_binary_convert_to_nanos() {
        // 10^-6 (the default): 1 unit = 1000 ns.
        assert_eq!(Resolution::from_tsresol(6).to_nanos(3), 3_000);
        // 10^-9: identity.
        assert_eq!(Resolution::from_tsresol(9).to_nanos(7), 7);
        // 10^-12: picoseconds, 2500 ps = 2 ns (truncated).
        assert_eq!(Resolution::from_tsresol(12).to_nanos(2_500), 2);
        // 2^-20: 2^20 units = 1 s.
        assert_eq!(
            Resolution::from_tsresol(0x80 | 20).to_nanos(1 << 20),
            1_000_000_000
        );
        // 2^-0: seconds.
        assert_eq!(Resolution::from_tsresol(0x80).to_nanos(5), 5_000_000_000);
        // 10^-100: nothing representable survives.
        assert_eq!(Resolution::from_tsresol(100).to_nanos(u64::MAX), 0);
        // 2^-127 with the largest count: no overflow, no panic.
        assert_eq!(Resolution::from_tsresol(0xff).to_nanos(u64::MAX), 0);
        // 10^0 with the largest count saturates.
        assert_eq!(Resolution::from_tsresol(0).to_nanos(u64::MAX), u64::MAX);
    }

    #[test]
    fn tsoffset_before_epoch_clamps_to_zero() {
        let iface = Interface {
            link: LinkType::ETHERNET,
            snaplen: 0,
            resolution: Resolution::Mul(1_000),
            offset_secs: -10,
        };
        assert_eq!(iface.timestamp(1_000_000), Timestamp(0));
        let later = Interface {
            offset_secs: 100,
            ..iface
        };
        assert_eq!(later.timestamp(1_000_000), Timestamp(101_000_000_000));
    }
}
