//! Capture: packets out of pcap and pcapng files, and live from AF_PACKET
//! rings (`afpacket.rs`, Linux); capture filters (`bpf.rs`).
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
//! The format code lives in `pcap.rs` and `pcapng.rs`, the pipe reader in
//! `stream.rs`; this file holds the shared types and the [`Reader`].
//!
//! Damage: [`Reader::next_chunk`] first returns the good packets before a
//! damaged record, then the error (with the byte offset of the record or
//! block at fault and the count of packets before it), then `Ok(None)`
//! forever. A source that ends exactly at a record boundary ends cleanly.
//!
//! A regular file is memory-mapped and packets are never copied out of the
//! map; anything unmappable (pipe, FIFO, `/dev/stdin`) is read in chunks of
//! about [`STREAM_CHUNK`] bytes.

pub mod afpacket;
pub mod bpf;
#[cfg(all(feature = "libpcap", unix))]
pub mod libpcap;
mod pcap;
mod pcapng;
#[cfg(unix)]
pub mod privs;
mod stream;

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use crate::time::Timestamp;

pub use pcap::MAX_PCAP_CAPLEN;
pub use pcapng::{MAX_BLOCK_LEN, MAX_INTERFACES};
pub use stream::STREAM_CHUNK;

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
    /// A digest of the packet's bytes, computed while the record walk had
    /// them in the cache: the function given to [`Reader::sum_frames`]
    /// (the frame's checksum sum); `None` when none was given or it gave
    /// none.
    pub sum: Option<u16>,
}

/// What [`Reader::sum_frames`] computes of every frame (`None`: nothing
/// for this one).
pub type FrameDigest = fn(&[u8]) -> Option<u16>;

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
    /// The input holds no byte at all (an empty file, `/dev/null`, a pipe
    /// closed at once): not a capture, rather than a truncated one.
    Empty,
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
            CaptureErrorKind::Empty => {
                write!(f, "empty (0 bytes): not a pcap or pcapng capture")
            }
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

/// Why a parser stopped before filling its quota.
#[derive(Debug)]
enum Stop {
    /// `max` packets were appended.
    Full,
    /// The record at the current position needs this many bytes from its
    /// start, and fewer are in the buffer.
    NeedMore(usize),
    /// The record at the current position is malformed.
    Corrupt(String),
}

/// Byte order of the multi-byte fields in a file or pcapng section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteOrder {
    Little,
    Big,
}

impl ByteOrder {
    #[inline(always)]
    fn u16(self, b: [u8; 2]) -> u16 {
        match self {
            ByteOrder::Little => u16::from_le_bytes(b),
            ByteOrder::Big => u16::from_be_bytes(b),
        }
    }

    #[inline(always)]
    fn u32(self, b: [u8; 4]) -> u32 {
        match self {
            ByteOrder::Little => u32::from_le_bytes(b),
            ByteOrder::Big => u32::from_be_bytes(b),
        }
    }
}

/// The capture format, with the state its records need.
#[derive(Debug)]
enum Format {
    Pcap(pcap::Pcap),
    Pcapng(pcapng::Pcapng),
}

impl Format {
    #[inline]
    fn parse(
        &mut self,
        buf: &[u8],
        pos: &mut usize,
        out: &mut Vec<PacketRef>,
        max: usize,
        digest: Option<FrameDigest>,
    ) -> Stop {
        match self {
            Format::Pcap(p) => p.parse_records(buf, pos, out, max, digest),
            Format::Pcapng(p) => p.parse_blocks(buf, pos, out, max, digest),
        }
    }
}

/// Where more bytes come from once the buffer is used up.
enum Source {
    /// The buffer already holds the whole source.
    Whole,
    /// More may be read from a stream.
    Stream(stream::Stream),
}

/// Reads one capture (file or stdin) chunk by chunk.
pub struct Reader {
    /// The bytes packets are being taken from.
    buf: Arc<Buffer>,
    /// Offset in `buf` of the next unread record.
    pos: usize,
    /// Offset in the source of `buf[0]`.
    base: u64,
    source: Source,
    format: Format,
    /// Packets handed out so far.
    packets: u64,
    /// An error found after the packets of the last chunk, for the next call.
    pending: Option<CaptureError>,
    /// Set once an error or the clean end has been reported.
    done: bool,
    total_len: Option<u64>,
    /// Computed of every frame handed out ([`Reader::sum_frames`]).
    digest: Option<FrameDigest>,
    /// The thread that maps pages ahead of the walk ([`Reader::page_ahead`]),
    /// started by the first [`Reader::next_chunk`] after it was asked for.
    pager: Option<Pager>,
    page: bool,
}

impl Reader {
    /// Opens `path`, or standard input when `path` is `-`.
    ///
    /// A regular file is memory-mapped; a file that cannot be mapped (a FIFO,
    /// `/dev/stdin`, an empty-looking `/proc` file…) is streamed instead.
    ///
    /// # Errors
    /// `Io` when the file cannot be opened or mapped, `UnknownFormat` when it
    /// is neither pcap nor pcapng, `Truncated` when even the file header is
    /// incomplete.
    pub fn open(path: &Path) -> Result<Reader, CaptureError> {
        if path.as_os_str() == "-" {
            return Reader::from_read(Box::new(io::stdin()));
        }
        // The caller names the file; the message says only what happened.
        let io_err = |e: io::Error| CaptureError {
            kind: CaptureErrorKind::Io(e.to_string()),
            offset: 0,
            packets_before: 0,
        };
        let file = File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        // A zero length may be a file whose size the kernel does not report
        // (procfs); streaming reads it correctly either way.
        if meta.is_file() && meta.len() > 0 {
            if let Ok(map) = map_file(&file) {
                // Read-ahead helps the one sequential pass; it is only advice.
                let _ = map.advise(memmap2::Advice::Sequential);
                // Huge pages where the page cache holds the file in 2 MiB
                // folios (the kernel reads it so when it is not cached yet,
                // for a mapping advised so): one page-table entry per 2 MiB
                // instead of 512, so mapping and unmapping the capture
                // cost little (perf, `dicom_bulk` with two workers and the
                // file cached in 4 KiB folios: 17.8 % of samples in page
                // faults and 6.7 % in the unmapping at exit; with huge
                // pages 10 % and 1 %) and the walk misses the TLB less. The
                // process keeps other memory off huge pages
                // ([`crate::memcap::no_transparent_huge_pages`]).
                let _ = map.advise(memmap2::Advice::HugePage);
                return Reader::from_buffer(Buffer::Mmap(map));
            }
        }
        Reader::from_read(Box::new(file))
    }

    /// Reads a capture held entirely in `buf` (a mapping or bytes in memory).
    ///
    /// # Errors
    /// As [`Reader::open`], for the header at the start of `buf`.
    pub fn from_buffer(buf: Buffer) -> Result<Reader, CaptureError> {
        let total_len = Some(buf.len() as u64);
        Reader::start(Arc::new(buf), Source::Whole, total_len)
    }

    /// Reads a capture from a stream, chunk by chunk.
    ///
    /// # Errors
    /// As [`Reader::open`]; this blocks until the file header has been read.
    pub fn from_read(rd: Box<dyn Read + Send>) -> Result<Reader, CaptureError> {
        let source = Source::Stream(stream::Stream::new(rd));
        Reader::start(Arc::new(Buffer::Owned(Vec::new())), source, None)
    }

    /// A second reader of the same bytes, from the start, when the source is
    /// held whole in memory (a mapped file, bytes given to
    /// [`Reader::from_buffer`]); `None` for a stream, whose bytes are read
    /// once. The bytes are shared, not copied (a multi-worker run samples
    /// the capture's first packets with one before its workers start).
    pub fn fork(&self) -> Option<Reader> {
        match self.source {
            Source::Whole => {
                Reader::start(Arc::clone(&self.buf), Source::Whole, self.total_len).ok()
            }
            Source::Stream(_) => None,
        }
    }

    /// Has the walk compute `digest` of every frame it hands out from now
    /// on ([`PacketRef::sum`]), or stop with `None`. The walk reads each
    /// record as it reaches it, with the record's bytes just fetched
    /// ([`prefetch`]): a digest of the whole frame costs little there,
    /// where a later pass over the payload (the transport checksum) would
    /// fetch it from farther away again.
    pub fn sum_frames(&mut self, digest: Option<FrameDigest>) {
        self.digest = digest;
    }

    /// Starts a thread that maps the pages of a memory-mapped capture
    /// ahead of the walk ([`Pager`]): the page faults of the walk's first
    /// touch are then taken on another core. The thread starts with the
    /// first [`Reader::next_chunk`]
    /// and ends with the reader. Nothing for a streamed source, or when no
    /// thread can be started. For a run with a core to spare (one worker).
    pub fn page_ahead(&mut self) {
        self.page = matches!(&*self.buf, Buffer::Mmap(_));
    }

    /// Whether [`Reader::fork`] gives a reader: the source is held whole.
    pub fn can_fork(&self) -> bool {
        matches!(self.source, Source::Whole)
    }

    /// Recognises the format and reads the file header.
    fn start(
        buf: Arc<Buffer>,
        source: Source,
        total_len: Option<u64>,
    ) -> Result<Reader, CaptureError> {
        let mut r = Reader {
            buf,
            pos: 0,
            base: 0,
            source,
            // Replaced below once the magic number is known.
            format: Format::Pcapng(pcapng::Pcapng::new()),
            packets: 0,
            pending: None,
            done: false,
            total_len,
            digest: None,
            pager: None,
            page: false,
        };
        loop {
            let head = r.buf.get(r.pos..).unwrap_or(&[]);
            let need = match pcap::Pcap::parse_header(head) {
                pcap::Header::Found(p) => {
                    r.format = Format::Pcap(p);
                    r.pos += pcap::FILE_HEADER_LEN;
                    return Ok(r);
                }
                pcap::Header::NeedMore => pcap::FILE_HEADER_LEN,
                pcap::Header::NotPcap if head.starts_with(&pcapng::SHB_MAGIC) => {
                    let mut ng = pcapng::Pcapng::new();
                    match ng.parse_first_section(&r.buf, &mut r.pos) {
                        None => {
                            r.format = Format::Pcapng(ng);
                            return Ok(r);
                        }
                        Some(Stop::NeedMore(n)) => n,
                        Some(Stop::Corrupt(why)) => {
                            return Err(r.fail(CaptureErrorKind::Corrupt(why)))
                        }
                        Some(Stop::Full) => {
                            return Err(
                                r.fail(CaptureErrorKind::Corrupt("no section header".into()))
                            )
                        }
                    }
                }
                pcap::Header::NotPcap => {
                    // Fewer than 4 bytes that begin a known magic: cut short.
                    let known = pcap::MAGICS.iter().chain([&pcapng::SHB_MAGIC]);
                    let is_prefix =
                        head.len() < 4 && known.into_iter().any(|m| m.starts_with(head));
                    if !is_prefix {
                        return Err(r.fail(CaptureErrorKind::UnknownFormat));
                    }
                    4
                }
            };
            if !r.more(need)? {
                let empty = r.buf.get(r.pos..).is_none_or(<[u8]>::is_empty);
                return Err(r.fail(if empty {
                    CaptureErrorKind::Empty
                } else {
                    CaptureErrorKind::Truncated
                }));
            }
        }
    }

    /// The next run of at most `max_pkts` packets (at least one is asked for
    /// even when `max_pkts` is 0), `Ok(None)` at a clean end. When damage is
    /// found, the packets before it are returned first and the error on the
    /// following call.
    ///
    /// # Errors
    /// `Truncated`, `Corrupt` or `Io` with the offset of the damage.
    pub fn next_chunk(&mut self, max_pkts: usize) -> Result<Option<Chunk>, CaptureError> {
        if let Some(e) = self.pending.take() {
            self.done = true;
            return Err(e);
        }
        if self.done {
            return Ok(None);
        }
        if std::mem::take(&mut self.page) {
            self.pager = Pager::start(Arc::clone(&self.buf));
        }
        let max = max_pkts.max(1);
        // One allocation per chunk, sized for what the buffer can hold (a
        // packet needs at least 16 bytes) so a small source stays small.
        let room = self.buf.len().saturating_sub(self.pos) / 16 + 1;
        let mut pkts = Vec::with_capacity(max.min(room));
        loop {
            match self
                .format
                .parse(&self.buf, &mut self.pos, &mut pkts, max, self.digest)
            {
                Stop::Full => break,
                Stop::NeedMore(need) => {
                    if !pkts.is_empty() {
                        // Hand these out before the buffer is replaced.
                        break;
                    }
                    if self.more(need)? {
                        continue;
                    }
                    self.done = true;
                    if self.pos >= self.buf.len() {
                        return Ok(None);
                    }
                    return Err(self.fail(CaptureErrorKind::Truncated));
                }
                Stop::Corrupt(why) => {
                    self.packets += pkts.len() as u64;
                    let err = self.fail(CaptureErrorKind::Corrupt(why));
                    if pkts.is_empty() {
                        self.done = true;
                        return Err(err);
                    }
                    self.pending = Some(err);
                    return Ok(Some(Chunk {
                        buf: Arc::clone(&self.buf),
                        pkts,
                    }));
                }
            }
        }
        self.packets += pkts.len() as u64;
        if let Some(p) = &mut self.pager {
            p.walked(self.pos);
        }
        Ok(Some(Chunk {
            buf: Arc::clone(&self.buf),
            pkts,
        }))
    }

    /// Tries to make `need` bytes available from the current position;
    /// returns whether the source could give more bytes at all.
    fn more(&mut self, need: usize) -> Result<bool, CaptureError> {
        let Source::Stream(s) = &mut self.source else {
            return Ok(false);
        };
        if s.at_eof() {
            return Ok(false);
        }
        if let Err(e) = s.refill(&mut self.buf, &mut self.pos, &mut self.base, need) {
            self.done = true;
            return Err(self.fail(CaptureErrorKind::Io(e.to_string())));
        }
        Ok(true)
    }

    /// An error at the current position.
    fn fail(&self, kind: CaptureErrorKind) -> CaptureError {
        CaptureError {
            kind,
            offset: self.position(),
            packets_before: self.packets,
        }
    }

    /// Bytes of the source consumed so far (for progress reports).
    pub fn position(&self) -> u64 {
        self.base.saturating_add(self.pos as u64)
    }

    /// Total size of the source when known (a file), `None` for a pipe.
    pub fn total_len(&self) -> Option<u64> {
        self.total_len
    }
}

/// How far ahead of the record being parsed [`crate::hint::prefetch`] asks for bytes:
/// about ten full-size frames, enough to cover a miss to memory. On
/// `dicom_bulk` (1 GB mapped, mostly 1 514-byte frames) the bare walk
/// took 15 % less CPU with it (task-clock 222 → 189 ms) and a run with
/// one worker 6.5 % less (608 → 568 ms), medians of 5 interleaved runs.
pub(crate) const PREFETCH_AHEAD: usize = 16 * 1024;

/// Bytes of a mapped capture [`Pager`] maps ahead of the walk: a window,
/// not the whole file, so that a capture larger than memory is not read
/// in far ahead of its use.
pub const PAGER_AHEAD: usize = 32 << 20;
/// Bytes [`Pager`] maps or unmaps at a time, and how far the walk moves
/// before it wakes the pager.
const PAGER_STEP: usize = 8 << 20;

/// What the walk and its pager share.
#[derive(Default)]
struct PagerShared {
    /// How far the walk has read.
    pos: std::sync::atomic::AtomicUsize,
    /// The reader is gone.
    stop: std::sync::atomic::AtomicBool,
}

/// A thread that fills the page tables of a mapped capture a window
/// ahead of the walk (`MADV_POPULATE_READ`, Linux 5.14; on older kernels
/// the walk's own faults do it, as without a pager). The work is the
/// kernel's either way, but done here it runs beside the worker instead
/// of in its page faults (perf, one worker on `dicom_bulk`: 13–15 % of
/// its samples), in one call per [`PAGER_STEP`] instead of one fault per
/// 64 KiB, and the worker's caches keep its own data.
///
/// Tried and dropped: dropping the pages again behind the walk
/// (`MADV_DONTNEED` 64 MiB behind it), which kept the run's resident size
/// at 160 MB instead of the whole file but cost CPU ×1.05 and wall ×1.07
/// against not dropping them (9 pairs): unmapping range by range while
/// the worker runs costs more than the one unmapping at exit.
struct Pager {
    shared: Arc<PagerShared>,
    thread: std::thread::Thread,
    /// Where the walk wakes the pager next.
    next_wake: usize,
}

impl Pager {
    fn start(buf: Arc<Buffer>) -> Option<Pager> {
        let shared = Arc::new(PagerShared::default());
        let theirs = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("pager".into())
            .spawn(move || Pager::run(&buf, &theirs))
            .ok()?;
        Some(Pager {
            shared,
            thread: handle.thread().clone(),
            next_wake: PAGER_STEP,
        })
    }

    /// The walk has read up to `pos`.
    #[inline]
    fn walked(&mut self, pos: usize) {
        if pos >= self.next_wake {
            self.shared
                .pos
                .store(pos, std::sync::atomic::Ordering::Release);
            self.next_wake = pos.saturating_add(PAGER_STEP);
            self.thread.unpark();
        }
    }

    /// The pager's loop: map up to [`PAGER_AHEAD`] past the walk, wait
    /// for the walk to move; ends at the end of the file or of the reader.
    fn run(buf: &Buffer, shared: &PagerShared) {
        use std::sync::atomic::Ordering;
        let Buffer::Mmap(map) = buf else {
            return;
        };
        let len = map.len();
        let mut mapped = 0usize;
        while !shared.stop.load(Ordering::Acquire) {
            let pos = shared.pos.load(Ordering::Acquire).min(len);
            let ahead = pos.saturating_add(PAGER_AHEAD).min(len);
            while mapped < ahead && !shared.stop.load(Ordering::Acquire) {
                let n = PAGER_STEP.min(len - mapped);
                // Only advice: on a kernel without it the walk faults.
                let _ = map.advise_range(memmap2::Advice::PopulateRead, mapped, n);
                mapped += n;
            }
            if mapped >= len {
                return;
            }
            std::thread::park();
        }
    }
}

impl Drop for Pager {
    fn drop(&mut self) {
        self.shared
            .stop
            .store(true, std::sync::atomic::Ordering::Release);
        self.thread.unpark();
    }
}

/// Maps `file` read-only.
#[allow(unsafe_code)]
fn map_file(file: &File) -> io::Result<memmap2::Mmap> {
    // SAFETY: `Mmap::map` is unsafe because the mapped bytes can change, or
    // vanish, if another process writes to or truncates the file while we
    // read it. Changed bytes are harmless here: every length is validated as
    // it is read and packets are only ever parsed as hostile bytes, so the
    // worst outcome is a garbled packet. A truncation makes later reads of
    // the vanished pages raise SIGBUS and end the process; we accept that
    // for capture files, which are finished before they are analysed
    // (a capture still being written should be read through a pipe, `-r -`).
    unsafe { memmap2::Mmap::map(file) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEC: u64 = 1_000_000_000;

    /// Writes integers in the byte order chosen for a hand-built fixture.
    #[derive(Clone, Copy)]
    struct W {
        big: bool,
    }

    impl W {
        fn u16(self, out: &mut Vec<u8>, v: u16) {
            out.extend_from_slice(&if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            });
        }
        fn u32(self, out: &mut Vec<u8>, v: u32) {
            out.extend_from_slice(&if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            });
        }
        fn u64(self, out: &mut Vec<u8>, v: u64) {
            out.extend_from_slice(&if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            });
        }
    }

    /// One packet of a hand-built fixture.
    struct Pkt {
        ts_sec: u32,
        ts_sub: u32,
        data: Vec<u8>,
        origlen: u32,
    }

    /// Three packets of distinct sizes and contents.
    fn three_packets() -> Vec<Pkt> {
        vec![
            Pkt {
                ts_sec: 1_700_000_000,
                ts_sub: 123_456,
                data: vec![0x11; 60],
                origlen: 60,
            },
            Pkt {
                ts_sec: 1_700_000_001,
                ts_sub: 0,
                data: vec![0x22; 5],
                origlen: 1514,
            },
            Pkt {
                ts_sec: 1_700_000_002,
                ts_sub: 999_999,
                data: vec![0x33; 42],
                origlen: 42,
            },
        ]
    }

    /// Hand-built classic pcap file. Returns the bytes and the end offset of
    /// the header and of each record.
    fn pcap_file(big: bool, nano: bool, linktype: u32, pkts: &[Pkt]) -> (Vec<u8>, Vec<usize>) {
        let w = W { big };
        let mut b = Vec::new();
        let magic: u32 = if nano { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        w.u32(&mut b, magic); // magic_number, in the file's byte order
        w.u16(&mut b, 2); // version_major
        w.u16(&mut b, 4); // version_minor
        w.u32(&mut b, 0); // thiszone
        w.u32(&mut b, 0); // sigfigs
        w.u32(&mut b, 65_535); // snaplen
        w.u32(&mut b, linktype); // FCS bits + link type
        let mut ends = vec![b.len()];
        for p in pkts {
            w.u32(&mut b, p.ts_sec); // ts_sec
            w.u32(&mut b, p.ts_sub); // ts_usec or ts_nsec
            w.u32(&mut b, p.data.len() as u32); // incl_len
            w.u32(&mut b, p.origlen); // orig_len
            b.extend_from_slice(&p.data); // packet data
            ends.push(b.len());
        }
        (b, ends)
    }

    /// Hand-built pcapng writer. `ends` records (end offset, packets so far)
    /// after each block.
    struct Ng {
        w: W,
        b: Vec<u8>,
        ends: Vec<(usize, u64)>,
        pkts: u64,
    }

    impl Ng {
        fn new(big: bool) -> Ng {
            let mut ng = Ng {
                w: W { big },
                b: Vec::new(),
                ends: Vec::new(),
                pkts: 0,
            };
            ng.shb();
            ng
        }

        /// Generic block: type, total length, body padded to 32 bits, length.
        fn block(&mut self, btype: u32, body: &[u8]) {
            let padded = (body.len() + 3) & !3;
            let total = (12 + padded) as u32;
            self.w.u32(&mut self.b, btype); // block type
            self.w.u32(&mut self.b, total); // block total length
            self.b.extend_from_slice(body); // block body
            self.b.resize(self.b.len() + padded - body.len(), 0); // padding
            self.w.u32(&mut self.b, total); // block total length again
            self.ends.push((self.b.len(), self.pkts));
        }

        /// Section Header Block in this writer's byte order.
        fn shb(&mut self) {
            let mut body = Vec::new();
            self.w.u32(&mut body, 0x1a2b_3c4d); // byte-order magic
            self.w.u16(&mut body, 1); // major version
            self.w.u16(&mut body, 0); // minor version
            self.w.u64(&mut body, u64::MAX); // section length: -1, unknown
            self.block(0x0a0d_0d0a, &body);
        }

        /// Interface Description Block with the given options (code, value).
        fn idb(&mut self, link: u16, snaplen: u32, opts: &[(u16, &[u8])]) {
            let mut body = Vec::new();
            self.w.u16(&mut body, link); // link type
            self.w.u16(&mut body, 0); // reserved
            self.w.u32(&mut body, snaplen); // snaplen
            for (code, value) in opts {
                self.w.u16(&mut body, *code); // option code
                self.w.u16(&mut body, value.len() as u16); // option length
                body.extend_from_slice(value); // option value
                body.resize((body.len() + 3) & !3, 0); // option padding
            }
            self.w.u16(&mut body, 0); // opt_endofopt code
            self.w.u16(&mut body, 0); // opt_endofopt length
            self.block(1, &body);
        }

        /// Enhanced Packet Block.
        fn epb(&mut self, iface: u32, ts_units: u64, data: &[u8], origlen: u32) {
            let mut body = Vec::new();
            self.w.u32(&mut body, iface); // interface id
            self.w.u32(&mut body, (ts_units >> 32) as u32); // timestamp, upper
            self.w.u32(&mut body, ts_units as u32); // timestamp, lower
            self.w.u32(&mut body, data.len() as u32); // captured length
            self.w.u32(&mut body, origlen); // original length
            body.extend_from_slice(data); // packet data
            self.pkts += 1;
            self.block(6, &body);
        }

        /// Simple Packet Block.
        fn spb(&mut self, origlen: u32, data: &[u8]) {
            let mut body = Vec::new();
            self.w.u32(&mut body, origlen); // original length
            body.extend_from_slice(data); // packet data
            self.pkts += 1;
            self.block(3, &body);
        }
    }

    /// What a test compares: everything about a packet, including its bytes.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Seen {
        ts: Timestamp,
        caplen: u32,
        origlen: u32,
        link: LinkType,
        data: Vec<u8>,
    }

    /// Reads everything; returns the packets and the final error, if any.
    fn drain(r: &mut Reader, max: usize) -> (Vec<Seen>, Option<CaptureError>) {
        let mut seen = Vec::new();
        loop {
            match r.next_chunk(max) {
                Ok(Some(c)) => {
                    assert!(!c.pkts.is_empty() && c.pkts.len() <= max.max(1));
                    for p in &c.pkts {
                        let data = c.data(p).to_vec();
                        assert_eq!(data.len(), p.caplen as usize, "packet outside its buffer");
                        seen.push(Seen {
                            ts: p.ts,
                            caplen: p.caplen,
                            origlen: p.origlen,
                            link: p.link,
                            data,
                        });
                    }
                }
                Ok(None) => return (seen, None),
                Err(e) => {
                    assert!(matches!(r.next_chunk(max), Ok(None)), "error not final");
                    return (seen, Some(e));
                }
            }
        }
    }

    /// A stream that hands out between `min` and `max` bytes per `read`,
    /// sizes drawn from a fixed-seed generator so failures reproduce.
    struct Dribble {
        data: Vec<u8>,
        at: usize,
        seed: u64,
        min: usize,
        max: usize,
    }

    impl Dribble {
        fn new(data: &[u8], seed: u64, min: usize, max: usize) -> Dribble {
            Dribble {
                data: data.to_vec(),
                at: 0,
                seed,
                min,
                max,
            }
        }
    }

    impl Read for Dribble {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.seed = self
                .seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let span = (self.max - self.min + 1) as u64;
            let want = self.min + ((self.seed >> 33) % span) as usize;
            let n = want.min(out.len()).min(self.data.len() - self.at);
            out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn mapped(bytes: &[u8]) -> Result<Reader, CaptureError> {
        Reader::from_buffer(Buffer::Owned(bytes.to_vec()))
    }

    fn dribbled(bytes: &[u8], seed: u64) -> Result<Reader, CaptureError> {
        Reader::from_read(Box::new(Dribble::new(bytes, seed, 1, 7)))
    }

    fn check_pcap_flavour(big: bool, nano: bool) {
        let pkts = three_packets();
        let (file, ends) = pcap_file(big, nano, 1, &pkts);
        let scale = if nano { 1 } else { 1_000 };
        let mut r = mapped(&file).expect("header");
        assert_eq!(r.position(), 24);
        assert_eq!(r.total_len(), Some(file.len() as u64));
        let (seen, err) = drain(&mut r, 100);
        assert_eq!(err, None);
        assert_eq!(r.position(), *ends.last().expect("ends") as u64);
        assert_eq!(seen.len(), 3);
        for (s, p) in seen.iter().zip(&pkts) {
            assert_eq!(
                s.ts,
                Timestamp(u64::from(p.ts_sec) * SEC + u64::from(p.ts_sub) * scale)
            );
            assert_eq!(s.caplen as usize, p.data.len());
            assert_eq!(s.origlen, p.origlen);
            assert_eq!(s.link, LinkType::ETHERNET);
            assert_eq!(s.data, p.data);
        }
        // The stream path gives the same packets.
        let (streamed, err) = drain(&mut dribbled(&file, 7).expect("header"), 100);
        assert_eq!(err, None);
        assert_eq!(streamed, seen);
    }

    #[test]
    fn pcap_little_endian_micro_reads_three_packets() {
        check_pcap_flavour(false, false);
    }

    #[test]
    fn pcap_big_endian_micro_reads_three_packets() {
        check_pcap_flavour(true, false);
    }

    #[test]
    fn pcap_little_endian_nano_reads_three_packets() {
        check_pcap_flavour(false, true);
    }

    #[test]
    fn pcap_big_endian_nano_reads_three_packets() {
        check_pcap_flavour(true, true);
    }

    #[test]
    fn pcap_linktype_fcs_bits_are_masked() {
        // Link type 101 (raw IP) with FCS length 4 and the F bit set.
        let (file, _) = pcap_file(false, false, 0x4400_0065, &three_packets());
        let (seen, _) = drain(&mut mapped(&file).expect("header"), 10);
        assert!(seen.iter().all(|s| s.link == LinkType::RAW));
    }

    #[test]
    fn pcap_small_max_pkts_splits_chunks_and_advances_position() {
        let (file, ends) = pcap_file(false, false, 1, &three_packets());
        let mut r = mapped(&file).expect("header");
        let c = r.next_chunk(2).expect("ok").expect("chunk");
        assert_eq!(c.pkts.len(), 2);
        assert_eq!(r.position(), ends[2] as u64);
        // Zero copy: the packet data is where the file has it.
        assert_eq!(c.pkts[0].offset, 24 + 16);
        let c = r.next_chunk(0).expect("ok").expect("chunk");
        assert_eq!(c.pkts.len(), 1);
        assert!(matches!(r.next_chunk(2), Ok(None)));
        assert!(matches!(r.next_chunk(2), Ok(None)));
    }

    /// A pcapng file of two interfaces with different link types and
    /// resolutions, unknown blocks in between, EPBs and SPBs.
    fn two_interface_pcapng(big: bool) -> Ng {
        let mut ng = Ng::new(big);
        // Interface 0: Ethernet, snaplen 32, if_tsresol = 9 (nanoseconds).
        ng.idb(1, 32, &[(9, &[9])]);
        // A custom block (type 0x00000BAD) that must be skipped.
        ng.block(0x0000_0bad, &[0xde, 0xad, 0xbe, 0xef, 0x01]);
        // Interface 1: raw IP, no snaplen, if_tsresol = 2^-20, if_tsoffset = 10 s.
        let offset = if big {
            10i64.to_be_bytes()
        } else {
            10i64.to_le_bytes()
        };
        ng.idb(101, 0, &[(9, &[0x80 | 20]), (14, &offset)]);
        ng.epb(0, 1_700_000_000 * SEC + 123_456_789, &[0xaa; 20], 20);
        // A name resolution block (type 4) to skip: one empty record end.
        ng.block(4, &[0, 0, 0, 0]);
        ng.epb(1, (1_700_000_000u64 << 20) | (1 << 19), &[0x45; 28], 28);
        // SPB: 100 bytes on the wire, cut to interface 0's snaplen of 32.
        ng.spb(100, &[0xbb; 32]);
        // SPB: 18 bytes on the wire and in the block, plus 2 bytes of padding
        // that must not count.
        ng.spb(18, &[0xcc; 18]);
        // An interface statistics block (type 5) with a bare interface id and timestamp.
        ng.block(5, &[0; 12]);
        ng
    }

    fn check_two_interfaces(big: bool) {
        let ng = two_interface_pcapng(big);
        let mut r = mapped(&ng.b).expect("header");
        let (seen, err) = drain(&mut r, 100);
        assert_eq!(err, None);
        assert_eq!(r.position(), ng.b.len() as u64);
        let t0 = Timestamp(1_700_000_000 * SEC + 123_456_789);
        let t1 = Timestamp((1_700_000_010) * SEC + SEC / 2);
        let expected = vec![
            Seen {
                ts: t0,
                caplen: 20,
                origlen: 20,
                link: LinkType::ETHERNET,
                data: vec![0xaa; 20],
            },
            Seen {
                ts: t1,
                caplen: 28,
                origlen: 28,
                link: LinkType::RAW,
                data: vec![0x45; 28],
            },
            Seen {
                ts: t1,
                caplen: 32,
                origlen: 100,
                link: LinkType::ETHERNET,
                data: vec![0xbb; 32],
            },
            Seen {
                ts: t1,
                caplen: 18,
                origlen: 18,
                link: LinkType::ETHERNET,
                data: vec![0xcc; 18],
            },
        ];
        assert_eq!(seen, expected);
        let (streamed, err) = drain(&mut dribbled(&ng.b, 3).expect("header"), 100);
        assert_eq!(err, None);
        assert_eq!(streamed, expected);
    }

    #[test]
    fn pcapng_little_endian_two_interfaces_epb_spb_and_skipped_blocks() {
        check_two_interfaces(false);
    }

    #[test]
    fn pcapng_big_endian_two_interfaces_epb_spb_and_skipped_blocks() {
        check_two_interfaces(true);
    }

    #[test]
    fn pcapng_default_resolution_is_microseconds() {
        let mut ng = Ng::new(false);
        ng.idb(1, 0, &[]);
        ng.epb(0, 1_700_000_000_000_001, &[1, 2, 3], 3);
        let (seen, err) = drain(&mut mapped(&ng.b).expect("header"), 10);
        assert_eq!(err, None);
        assert_eq!(seen[0].ts, Timestamp(1_700_000_000 * SEC + 1_000));
    }

    #[test]
    fn pcapng_new_section_switches_byte_order_and_resets_interfaces() {
        let mut ng = Ng::new(false);
        ng.idb(1, 0, &[]);
        ng.idb(101, 0, &[]);
        ng.epb(1, 1, &[1], 1);
        // A second section, big-endian, with a single interface.
        let mut second = Ng::new(true);
        second.idb(113, 0, &[]);
        second.epb(0, 2, &[2], 1);
        let good_end = ng.b.len() + second.b.len();
        // Interface 1 existed in the first section only.
        second.epb(1, 3, &[3], 1);
        ng.b.extend_from_slice(&second.b);
        let mut r = mapped(&ng.b).expect("header");
        let (seen, err) = drain(&mut r, 100);
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].link, LinkType::RAW);
        assert_eq!(seen[1].link, LinkType::LINUX_SLL);
        assert_eq!(seen[1].ts, Timestamp(2_000));
        let err = err.expect("undeclared interface is an error");
        assert!(matches!(err.kind, CaptureErrorKind::Corrupt(_)));
        assert_eq!(err.offset, good_end as u64);
        assert_eq!(err.packets_before, 2);
    }

    /// Cuts `file` at every length; `ends` are the record boundaries with the
    /// packet count at each, the first being the end of the file header.
    fn truncation_sweep(file: &[u8], ends: &[(usize, u64)]) {
        let header_end = ends[0].0;
        for cut in 0..=file.len() {
            let part = &file[..cut];
            for (how, opened) in [
                ("mapped", mapped(part)),
                ("streamed", dribbled(part, cut as u64)),
            ] {
                if cut < header_end {
                    let err = opened
                        .err()
                        .unwrap_or_else(|| panic!("{how} cut {cut}: opened"));
                    let want = if cut == 0 {
                        CaptureErrorKind::Empty
                    } else {
                        CaptureErrorKind::Truncated
                    };
                    assert_eq!(err.kind, want, "{how} cut {cut}");
                    continue;
                }
                let mut r = opened.unwrap_or_else(|e| panic!("{how} cut {cut}: {e}"));
                let (seen, err) = drain(&mut r, 2);
                let &(last_end, count) = ends
                    .iter()
                    .rev()
                    .find(|(end, _)| *end <= cut)
                    .expect("header end");
                assert_eq!(seen.len() as u64, count, "{how} cut {cut}");
                if last_end == cut {
                    assert_eq!(err, None, "{how} cut {cut}");
                } else {
                    let err = err.unwrap_or_else(|| panic!("{how} cut {cut}: clean end"));
                    assert_eq!(err.kind, CaptureErrorKind::Truncated, "{how} cut {cut}");
                    assert_eq!(err.offset, last_end as u64, "{how} cut {cut}");
                    assert_eq!(err.packets_before, count, "{how} cut {cut}");
                }
            }
        }
    }

    #[test]
    fn pcap_every_truncation_point_gives_whole_packets_then_truncated() {
        for (big, nano) in [(false, false), (true, true)] {
            let (file, ends) = pcap_file(big, nano, 1, &three_packets());
            let ends: Vec<(usize, u64)> = ends
                .iter()
                .enumerate()
                .map(|(i, e)| (*e, i as u64))
                .collect();
            truncation_sweep(&file, &ends);
        }
    }

    #[test]
    fn pcapng_every_truncation_point_gives_whole_packets_then_truncated() {
        for big in [false, true] {
            let ng = two_interface_pcapng(big);
            truncation_sweep(&ng.b, &ng.ends);
        }
    }

    #[test]
    fn pcap_oversized_record_mid_file_is_corrupt_after_good_packets() {
        let (mut file, ends) = pcap_file(false, false, 1, &three_packets());
        // Overwrite incl_len of the second record with 300 000 (> 256 KiB).
        file[ends[1] + 8..ends[1] + 12].copy_from_slice(&300_000u32.to_le_bytes());
        for mut r in [
            mapped(&file).expect("header"),
            dribbled(&file, 1).expect("header"),
        ] {
            let mut n = 0;
            let err = loop {
                match r.next_chunk(100) {
                    Ok(Some(c)) => n += c.pkts.len(),
                    Ok(None) => unreachable!("corruption not reported"),
                    Err(e) => break e,
                }
            };
            assert_eq!(n, 1);
            assert!(matches!(err.kind, CaptureErrorKind::Corrupt(_)));
            assert_eq!(err.offset, ends[1] as u64);
            assert_eq!(err.packets_before, 1);
            assert!(matches!(r.next_chunk(100), Ok(None)));
        }
    }

    #[test]
    fn pcap_record_longer_than_file_is_truncated_at_its_start() {
        let (mut file, ends) = pcap_file(true, false, 1, &three_packets());
        // The last record claims 200 bytes; 42 follow.
        file[ends[2] + 8..ends[2] + 12].copy_from_slice(&200u32.to_be_bytes());
        let (seen, err) = drain(&mut mapped(&file).expect("header"), 100);
        assert_eq!(seen.len(), 2);
        let err = err.expect("truncated");
        assert_eq!(err.kind, CaptureErrorKind::Truncated);
        assert_eq!(err.offset, ends[2] as u64);
    }

    /// Builds the two-interface file, lets `damage` change the bytes of the
    /// first EPB (whose start and end are given), and returns the error.
    fn damaged_pcapng(damage: impl Fn(&mut Vec<u8>, usize, usize)) -> CaptureError {
        let ng = two_interface_pcapng(false);
        // Blocks: SHB, IDB, custom, IDB, EPB…: the first EPB is block 4.
        let (start, end) = (ng.ends[3].0, ng.ends[4].0);
        let mut file = ng.b.clone();
        damage(&mut file, start, end);
        let (seen, err) = drain(&mut mapped(&file).expect("header"), 100);
        assert!(seen.is_empty());
        let err = err.expect("damage found");
        assert_eq!(err.offset, start as u64);
        assert!(matches!(err.kind, CaptureErrorKind::Corrupt(_)), "{err}");
        err
    }

    #[test]
    fn pcapng_block_length_not_multiple_of_four_is_corrupt() {
        damaged_pcapng(|f, s, _| f[s + 4..s + 8].copy_from_slice(&50u32.to_le_bytes()));
    }

    #[test]
    fn pcapng_block_length_below_twelve_is_corrupt() {
        damaged_pcapng(|f, s, _| f[s + 4..s + 8].copy_from_slice(&8u32.to_le_bytes()));
    }

    #[test]
    fn pcapng_block_length_above_limit_is_corrupt() {
        damaged_pcapng(|f, s, _| f[s + 4..s + 8].copy_from_slice(&0x7fff_fff0u32.to_le_bytes()));
    }

    #[test]
    fn pcapng_trailing_length_mismatch_is_corrupt() {
        damaged_pcapng(|f, _, e| f[e - 4..e].copy_from_slice(&12u32.to_le_bytes()));
    }

    #[test]
    fn pcapng_epb_caplen_beyond_block_is_corrupt() {
        damaged_pcapng(|f, s, _| f[s + 20..s + 24].copy_from_slice(&21u32.to_le_bytes()));
    }

    #[test]
    fn pcapng_epb_unknown_interface_is_corrupt() {
        damaged_pcapng(|f, s, _| f[s + 8..s + 12].copy_from_slice(&2u32.to_le_bytes()));
    }

    #[test]
    fn pcapng_spb_with_fewer_bytes_than_declared_stops_at_its_block() {
        // Not what a conforming writer produces (it would write
        // min(snaplen, origlen) bytes), but the data must still come from
        // inside the block: 200 bytes on the wire, 4 in the block.
        let mut ng = Ng::new(false);
        ng.idb(1, 0, &[]);
        ng.spb(200, &[0xcc; 4]);
        ng.epb(0, 5, &[0xdd; 3], 3);
        let (seen, err) = drain(&mut mapped(&ng.b).expect("header"), 10);
        assert_eq!(err, None);
        assert_eq!((seen[0].caplen, seen[0].origlen), (4, 200));
        assert_eq!(seen[0].data, vec![0xcc; 4]);
        assert_eq!(seen[1].data, vec![0xdd; 3]);
    }

    #[test]
    fn pcapng_spb_before_any_interface_is_corrupt() {
        let mut ng = Ng::new(true);
        let start = ng.b.len();
        ng.spb(4, &[1, 2, 3, 4]);
        let (seen, err) = drain(&mut mapped(&ng.b).expect("header"), 10);
        assert!(seen.is_empty());
        let err = err.expect("error");
        assert!(matches!(err.kind, CaptureErrorKind::Corrupt(_)));
        assert_eq!(err.offset, start as u64);
    }

    #[test]
    fn pcapng_section_header_without_byte_order_magic_fails_open() {
        let mut ng = Ng::new(false);
        ng.b[8..12].copy_from_slice(b"nope");
        let err = mapped(&ng.b).err().expect("error");
        assert!(matches!(err.kind, CaptureErrorKind::Corrupt(_)));
    }

    #[test]
    fn reader_and_chunk_can_move_to_other_threads() {
        // Fails to compile if a field stops being Send (the reader runs on
        // its own thread and chunks travel to workers).
        fn send<T: Send>(_: &T) {}
        let (file, _) = pcap_file(false, false, 1, &three_packets());
        let mut r = mapped(&file).expect("header");
        send(&r);
        let c = r.next_chunk(1).expect("ok").expect("chunk");
        send(&c);
        assert_eq!(c.pkts.len(), 1);
    }

    #[test]
    fn garbage_empty_and_short_inputs_fail_open() {
        let kind = |b: &[u8]| mapped(b).err().map(|e| e.kind);
        assert_eq!(
            kind(b"this is not a capture file at all"),
            Some(CaptureErrorKind::UnknownFormat)
        );
        assert_eq!(kind(&[0x00]), Some(CaptureErrorKind::UnknownFormat));
        assert_eq!(kind(b""), Some(CaptureErrorKind::Empty));
        // The first two bytes of a little-endian pcap magic.
        assert_eq!(kind(&[0xd4, 0xc3]), Some(CaptureErrorKind::Truncated));
        // The first three bytes of a pcapng section header.
        assert_eq!(kind(&[0x0a, 0x0d, 0x0d]), Some(CaptureErrorKind::Truncated));
        let streamed = |b: &[u8]| dribbled(b, 5).err().map(|e| e.kind);
        assert_eq!(
            streamed(b"garbage garbage garbage"),
            Some(CaptureErrorKind::UnknownFormat)
        );
        assert_eq!(streamed(b""), Some(CaptureErrorKind::Empty));
    }

    /// Builds a pcap of `n` packets with sizes from 14 to 1513 bytes.
    fn big_pcap(n: usize) -> Vec<u8> {
        let pkts: Vec<Pkt> = (0..n)
            .map(|i| Pkt {
                ts_sec: i as u32,
                ts_sub: (i % 1_000_000) as u32,
                data: vec![i as u8; 14 + (i * 7919) % 1500],
                origlen: (14 + (i * 7919) % 1500) as u32,
            })
            .collect();
        pcap_file(false, false, 1, &pkts).0
    }

    /// A digest standing in for the checksum's: the bytes' plain sum.
    fn byte_sum(b: &[u8]) -> Option<u16> {
        Some(b.iter().fold(0u16, |a, &x| a.wrapping_add(u16::from(x))))
    }

    #[test]
    fn sum_frames_digests_each_packets_own_bytes_pcap_pcapng_and_stream() {
        let ng = two_interface_pcapng(false).b;
        for file in [big_pcap(300), ng] {
            let readers = [
                mapped(&file).expect("header"),
                dribbled(&file, 5).expect("header"),
            ];
            for mut r in readers {
                let (plain, _) = drain(&mut mapped(&file).expect("header"), 64);
                r.sum_frames(Some(byte_sum));
                let mut n = 0;
                while let Ok(Some(c)) = r.next_chunk(64) {
                    for p in &c.pkts {
                        assert_eq!(p.sum, byte_sum(c.data(p)));
                        n += 1;
                    }
                }
                assert_eq!(n, plain.len());
                assert!(n > 0);
            }
        }
        // Without a digest: none.
        let mut r = mapped(&big_pcap(3)).expect("header");
        let c = r.next_chunk(8).expect("chunk").expect("packets");
        assert!(c.pkts.iter().all(|p| p.sum.is_none()));
    }

    #[test]
    fn stream_larger_than_a_chunk_matches_mapped_whether_chunks_are_kept_or_not() {
        // About 9 MiB: more than two stream chunks.
        let file = big_pcap(12_000);
        assert!(file.len() > 2 * STREAM_CHUNK);
        let (want, err) = drain(&mut mapped(&file).expect("header"), 512);
        assert_eq!(err, None);
        assert_eq!(want.len(), 12_000);
        for keep in [false, true] {
            let rd = Dribble::new(&file, 11, 1, 300_000);
            let mut r = Reader::from_read(Box::new(rd)).expect("header");
            let mut kept = Vec::new();
            let mut got = Vec::new();
            while let Some(c) = r.next_chunk(512).expect("no error") {
                assert!(c.buf.len() <= STREAM_CHUNK.max(16 + 1513));
                got.extend(c.pkts.iter().map(|p| (p.ts, c.data(p).to_vec())));
                if keep {
                    // A consumer still holds it: the reader must not reuse it.
                    kept.push(c);
                }
            }
            assert_eq!(r.position(), file.len() as u64);
            let want: Vec<_> = want.iter().map(|s| (s.ts, s.data.clone())).collect();
            assert_eq!(got, want, "keep = {keep}");
            // Kept chunks still show their own packets.
            for c in &kept {
                assert!(c
                    .pkts
                    .iter()
                    .all(|p| c.data(p).iter().all(|&b| b == c.data(p)[0])));
            }
        }
    }

    #[test]
    fn paged_ahead_mapped_file_reads_the_same_packets_and_the_pager_ends() {
        // About 9 MiB: more than one pager step, so the walk wakes it.
        let file = big_pcap(12_000);
        assert!(file.len() > PAGER_STEP);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big.pcap");
        std::fs::write(&path, &file).expect("write");
        let (want, err) = drain(&mut Reader::open(&path).expect("open"), 512);
        assert_eq!(err, None);
        let mut r = Reader::open(&path).expect("open");
        r.page_ahead();
        let (got, err) = drain(&mut r, 512);
        assert_eq!(err, None);
        assert_eq!(got, want);
        let buf = Arc::clone(&r.buf);
        assert!(r.pager.is_some());
        drop(r);
        // The pager lets go of the mapping once the reader is gone.
        let t = std::time::Instant::now();
        while Arc::strong_count(&buf) > 1 {
            assert!(t.elapsed().as_secs() < 10, "pager still running");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // A stream has no pager.
        let mut s = dribbled(&file, 3).expect("header");
        s.page_ahead();
        assert!(s.next_chunk(8).expect("ok").is_some());
        assert!(s.pager.is_none());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn mapped_capture_is_advised_huge_pages() {
        // A kernel built without transparent huge pages refuses the advice.
        if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
            assert!(std::env::var_os("CI").is_none(), "CI's kernel has THP");
            return;
        }
        let file = big_pcap(4_000);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big.pcap");
        std::fs::write(&path, &file).expect("write");
        let r = Reader::open(&path).expect("open");
        let Buffer::Mmap(map) = &*r.buf else {
            panic!("a regular file is mapped");
        };
        let start = map.as_ptr() as usize;
        // The mapping's entry in smaps: its range, then its VmFlags line.
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let mut ours = false;
        let mut flags = None;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((a, _)) = range.split_once('-') {
                    if let Ok(a) = usize::from_str_radix(a, 16) {
                        ours = a == start;
                        continue;
                    }
                }
            }
            if ours {
                if let Some(f) = line.strip_prefix("VmFlags:") {
                    flags = Some(f.split_whitespace().map(str::to_string).collect::<Vec<_>>());
                }
            }
        }
        let flags = flags.expect("the mapping is in smaps");
        assert!(flags.iter().any(|f| f == "hg"), "{flags:?}");
        assert!(flags.iter().any(|f| f == "sr"), "sequential too: {flags:?}");
    }

    #[test]
    fn open_regular_file_is_mapped_and_empty_file_is_empty() {
        let (file, _) = pcap_file(false, true, 1, &three_packets());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("three.pcap");
        std::fs::write(&path, &file).expect("write");
        let mut r = Reader::open(&path).expect("open");
        assert_eq!(r.total_len(), Some(file.len() as u64));
        let c = r.next_chunk(10).expect("ok").expect("chunk");
        assert!(matches!(*c.buf, Buffer::Mmap(_)));
        assert_eq!(c.pkts.len(), 3);

        let empty = dir.path().join("empty.pcap");
        std::fs::write(&empty, b"").expect("write");
        let err = Reader::open(&empty).err().expect("error");
        assert_eq!(err.kind, CaptureErrorKind::Empty);

        let err = Reader::open(&dir.path().join("missing.pcap"))
            .err()
            .expect("error");
        assert!(matches!(err.kind, CaptureErrorKind::Io(_)));
    }

    #[test]
    fn fork_reads_the_same_packets_from_the_start_and_a_stream_cannot_fork() {
        let (pcap, _) = pcap_file(false, true, 1, &three_packets());
        // Cut inside the last record: a fork reports the same damage.
        let cut = &pcap[..pcap.len() - 3];
        let ng = two_interface_pcapng(true).b;
        for file in [&pcap[..], cut, &ng[..]] {
            let mut r = mapped(file).expect("header");
            assert!(r.can_fork());
            // Forked after the first reader moved on: still from the start.
            let first = r.next_chunk(1).expect("ok").expect("chunk");
            let mut f = r.fork().expect("a buffer held whole forks");
            let mut want = drain(&mut mapped(file).expect("header"), 100);
            assert_eq!(drain(&mut f, 100), want);
            // The bytes are shared, not copied.
            let again = r.fork().expect("fork").next_chunk(1).expect("ok");
            assert!(Arc::ptr_eq(&again.expect("chunk").buf, &first.buf));
            want.0.remove(0);
            assert_eq!(drain(&mut r, 100), want);
        }
        let s = Reader::from_read(Box::new(io::Cursor::new(pcap))).expect("header");
        assert!(!s.can_fork());
        assert!(s.fork().is_none());
    }

    #[test]
    fn open_fifo_falls_back_to_streaming() {
        let (file, _) = pcap_file(true, false, 1, &three_packets());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let writer_path = path.clone();
        let writer = std::thread::spawn(move || std::fs::write(writer_path, file));
        let mut r = Reader::open(&path).expect("open");
        assert_eq!(r.total_len(), None);
        let (seen, err) = drain(&mut r, 10);
        assert_eq!(err, None);
        assert_eq!(seen.len(), 3);
        writer.join().expect("join").expect("write");
    }

    /// Headers that get random bytes past the format detection.
    fn prefix(kind: u8) -> Vec<u8> {
        match kind % 4 {
            0 => Vec::new(),
            1 => pcap_file(kind & 4 != 0, false, 1, &[]).0,
            2 => Ng::new(kind & 4 != 0).b,
            _ => {
                let mut ng = Ng::new(kind & 4 != 0);
                ng.idb(1, 0, &[]);
                ng.b
            }
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_or_overallocate(
            kind in any::<u8>(),
            tail in proptest::collection::vec(any::<u8>(), 0..600),
            max in 1usize..8,
            seed in any::<u64>(),
        ) {
            let mut input = prefix(kind);
            input.extend_from_slice(&tail);
            for opened in [mapped(&input), dribbled(&input, seed)] {
                let Ok(mut r) = opened else { continue };
                let mut total = 0usize;
                // Stops at the clean end or at the first error.
                while let Ok(Some(c)) = r.next_chunk(max) {
                    prop_assert!(c.pkts.len() <= max);
                    prop_assert!(c.pkts.capacity() <= max);
                    // Never a buffer larger than the input itself.
                    prop_assert!(c.buf.len() <= input.len());
                    for p in &c.pkts {
                        prop_assert_eq!(c.data(p).len(), p.caplen as usize);
                    }
                    total += c.pkts.len();
                    prop_assert!(total <= input.len() / 12);
                }
                prop_assert!(r.position() <= input.len() as u64);
                prop_assert!(matches!(r.next_chunk(max), Ok(None)));
            }
        }

        #[test]
        fn any_split_of_a_stream_gives_the_mapped_packets(
            seed in any::<u64>(),
            big in any::<bool>(),
        ) {
            let ng = two_interface_pcapng(big);
            let want = drain(&mut mapped(&ng.b).expect("header"), 3);
            let got = drain(&mut dribbled(&ng.b, seed).expect("header"), 3);
            prop_assert_eq!(got, want);
        }
    }
}
