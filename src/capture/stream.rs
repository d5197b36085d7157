//! Streaming sources: a pipe, stdin, or anything else that cannot be mapped.
//!
//! Owns: reading a [`Read`] into owned chunks of about [`STREAM_CHUNK`] bytes
//! and carrying the unparsed tail of one chunk (a record that straddles the
//! boundary) into the next, so that every record lies whole in one buffer.
//! Invariants: a chunk never grows beyond `max(STREAM_CHUNK, needed)`, and
//! `needed` is bounded by the largest record the parsers accept (16 MiB), so
//! a hostile stream cannot make us allocate more; a chunk still shared with
//! consumers is never modified — a fresh one is started instead.
//! Latency: a refill stops early once the record the parser waits for is
//! complete and a read came back short (the writer had nothing more ready),
//! so `tcpdump -U -w - | wardwatch -r -` sees packets without waiting for
//! 4 MiB of traffic.

use std::io::{self, BufRead, BufReader, ErrorKind, Read};
use std::sync::Arc;

use super::Buffer;

/// Target size of a chunk read from a stream.
pub const STREAM_CHUNK: usize = 4 * 1024 * 1024;

/// Most bytes asked of the source in one `read` call.
const READ_STEP: usize = 256 * 1024;

/// A source read chunk by chunk.
pub(super) struct Stream {
    rd: BufReader<Box<dyn Read + Send>>,
    eof: bool,
}

impl Stream {
    pub(super) fn new(rd: Box<dyn Read + Send>) -> Stream {
        Stream {
            rd: BufReader::with_capacity(READ_STEP, rd),
            eof: false,
        }
    }

    /// True once the source has reported its end.
    pub(super) fn at_eof(&self) -> bool {
        self.eof
    }

    /// Moves the unparsed bytes `buf[*pos..]` to the start of a buffer and
    /// reads after them until that buffer holds at least `needed` bytes (or
    /// the source ends, or the chunk is full). `*base` — the source offset of
    /// `buf[0]` — advances by the bytes dropped.
    ///
    /// # Errors
    /// The source's own read errors (`Interrupted` is retried).
    pub(super) fn refill(
        &mut self,
        buf: &mut Arc<Buffer>,
        pos: &mut usize,
        base: &mut u64,
        needed: usize,
    ) -> io::Result<()> {
        let target = needed.max(STREAM_CHUNK);
        let start = (*pos).min(buf.len());
        let mut v = match Arc::get_mut(buf) {
            // No consumer holds this chunk any more: reuse its allocation.
            Some(Buffer::Owned(v)) => {
                let mut v = std::mem::take(v);
                // Copy: the partial record at the end must move to the start
                // so that it can be completed in one contiguous buffer.
                v.copy_within(start.., 0);
                v.truncate(v.len() - start);
                v
            }
            _ => {
                // Start small and let a fast source grow the chunk: a slow
                // pipe then yields many small chunks, not many 4 MiB ones.
                let tail = buf.len() - start;
                let mut v =
                    Vec::with_capacity(needed.max(tail.saturating_add(READ_STEP)).min(target));
                // Copy: the record straddling the chunk boundary must lie
                // whole in the new chunk; the old one is still being read by
                // consumers, so it cannot simply be extended.
                v.extend_from_slice(buf.get(start..).unwrap_or(&[]));
                v
            }
        };
        *base = base.saturating_add(start as u64);
        *pos = 0;
        let result = self.fill(&mut v, needed, target);
        *buf = Arc::new(Buffer::Owned(v));
        result
    }

    fn fill(&mut self, v: &mut Vec<u8>, needed: usize, target: usize) -> io::Result<()> {
        while v.len() < target {
            let avail = match self.rd.fill_buf() {
                Ok(avail) => avail,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                self.eof = true;
                break;
            }
            // A read that did not fill the read buffer means the writer had
            // nothing more ready.
            let short = avail.len() < READ_STEP;
            let n = avail.len().min(target - v.len());
            // Copy: from the read buffer into the chunk. Reading straight into
            // the chunk would need its spare space zero-filled first, which
            // costs as much as this copy, and far more for small reads.
            v.extend_from_slice(avail.get(..n).unwrap_or(&[]));
            self.rd.consume(n);
            if short && v.len() >= needed {
                break;
            }
        }
        Ok(())
    }
}
