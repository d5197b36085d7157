//! Capture: packets out of pcap and pcapng files (and later AF_PACKET rings).
//!
//! Owns: reading capture formats, link types, per-packet timestamps.
//! Invariant: packets are *borrowed* from a shared [`Buffer`] — a memory map
//! of the whole file, or for a pipe (`-r -`) a chunk read from it — and
//! described by [`PacketRef`] offsets into that buffer, so the reader can hand
//! workers offsets instead of copies.
//!
//! Formats: classic pcap (both byte orders, micro- and nanosecond magic) and
//! pcapng (SHB of either byte order, IDB with `if_tsresol`, EPB, SPB, and
//! several interfaces with different link types; other blocks skipped).

use std::fmt;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use crate::time::Timestamp;

/// A link-layer header type, as numbered by tcpdump.org's LINKTYPE_ registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkType(pub u16);

impl LinkType {
    /// BSD loopback: 4-byte address family in host byte order (DLT_NULL).
    pub const NULL: LinkType = LinkType(0);
    /// Ethernet II / 802.3.
    pub const ETHERNET: LinkType = LinkType(1);
    /// Raw IPv4 or IPv6, version from the first nibble.
    pub const RAW: LinkType = LinkType(101);
    /// OpenBSD loopback: 4-byte address family in network byte order.
    pub const LOOP: LinkType = LinkType(108);
    /// Linux cooked capture v1 (`tcpdump -i any` before libpcap 1.10).
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// Raw IPv4 only.
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6 only.
    pub const IPV6: LinkType = LinkType(229);
    /// Linux cooked capture v2 (`tcpdump -i any` with libpcap ≥ 1.10).
    pub const LINUX_SLL2: LinkType = LinkType(276);
}

/// One packet inside a [`Buffer`]: where it is and what the capture said of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketRef {
    /// Packet time.
    pub ts: Timestamp,
    /// Byte offset of the packet data in the buffer.
    pub offset: usize,
    /// Captured length (bytes present in the buffer).
    pub caplen: u32,
    /// Length on the wire (may exceed `caplen` when a snap length cut it).
    pub origlen: u32,
    /// Link type of the interface the packet came from.
    pub link: LinkType,
}

/// Bytes that packets are borrowed from.
pub enum Buffer {
    /// A memory-mapped capture file.
    Mmap(memmap2::Mmap),
    /// A chunk read from a pipe or other unmappable source.
    Owned(Vec<u8>),
}

impl Deref for Buffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Buffer::Mmap(m) => m,
            Buffer::Owned(v) => v,
        }
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Buffer::Mmap(m) => write!(f, "Buffer::Mmap({} bytes)", m.len()),
            Buffer::Owned(v) => write!(f, "Buffer::Owned({} bytes)", v.len()),
        }
    }
}

/// A run of packets that all borrow from one buffer.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// The shared bytes.
    pub buf: Arc<Buffer>,
    /// Packets in capture order; every `offset..offset+caplen` lies in `buf`.
    pub pkts: Vec<PacketRef>,
}

impl Chunk {
    /// The bytes of packet `p`, which must come from this chunk's buffer.
    /// Returns an empty slice rather than panicking if it does not.
    pub fn data(&self, p: &PacketRef) -> &[u8] {
        let end = p.offset.saturating_add(p.caplen as usize);
        self.buf.get(p.offset..end).unwrap_or(&[])
    }
}

/// What went wrong reading a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CaptureErrorKind {
    /// The file could not be opened, mapped or read.
    Io(String),
    /// The first bytes are not a pcap or pcapng header.
    UnknownFormat,
    /// The capture ended inside a record or block header.
    Truncated,
    /// A record or block is malformed (bad length, unknown interface…).
    Corrupt(String),
}

/// A capture error, with where in the source it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureError {
    /// What went wrong.
    pub kind: CaptureErrorKind,
    /// Byte offset in the source of the record or block at fault.
    pub offset: u64,
    /// How many packets were read successfully before it.
    pub packets_before: u64,
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            CaptureErrorKind::Io(e) => write!(f, "{e}"),
            CaptureErrorKind::UnknownFormat => {
                write!(
                    f,
                    "not a pcap or pcapng capture (unrecognised magic number)"
                )
            }
            CaptureErrorKind::Truncated => write!(
                f,
                "capture truncated at byte offset {} after {} packets",
                self.offset, self.packets_before
            ),
            CaptureErrorKind::Corrupt(what) => write!(
                f,
                "capture corrupt at byte offset {} after {} packets: {what}",
                self.offset, self.packets_before
            ),
        }
    }
}

impl std::error::Error for CaptureError {}

/// Reads one capture (file or stdin) chunk by chunk.
pub struct Reader {
    _private: (),
}

impl Reader {
    /// Opens `path`, or standard input when `path` is `-`.
    ///
    /// # Errors
    /// `Io` when the file cannot be opened or mapped, `UnknownFormat` when it
    /// is neither pcap nor pcapng, `Truncated` when even the file header is
    /// incomplete.
    pub fn open(path: &Path) -> Result<Reader, CaptureError> {
        let _ = path;
        Err(CaptureError {
            kind: CaptureErrorKind::Io("capture reader not implemented yet".into()),
            offset: 0,
            packets_before: 0,
        })
    }

    /// The next run of at most `max_pkts` packets, `Ok(None)` at a clean end.
    /// When damage is found, the packets before it are returned first and the
    /// error on the following call.
    ///
    /// # Errors
    /// `Truncated`, `Corrupt` or `Io` with the offset of the damage.
    pub fn next_chunk(&mut self, max_pkts: usize) -> Result<Option<Chunk>, CaptureError> {
        let _ = max_pkts;
        Ok(None)
    }

    /// Bytes of the source consumed so far (for progress reports).
    pub fn position(&self) -> u64 {
        0
    }

    /// Total size of the source when known (a file), `None` for a pipe.
    pub fn total_len(&self) -> Option<u64> {
        None
    }
}
