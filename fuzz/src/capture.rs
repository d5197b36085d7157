//! Target `capture`: the pcap and pcapng readers, from memory (as a mapped
//! file is read) and from a stream (a pipe, `-r -`).
//!
//! Input: `max_mapped:u8 max_streamed:u8 sizes file` — the packets asked
//! per chunk of each reader (0 counts as 1), the sizes of the reads the
//! stream returns ([`Cursor::sizes`]: a stream that hands out a few bytes at
//! a time crosses every chunk boundary the reader must handle), then the
//! capture file itself.
//!
//! Properties:
//! - both readers give the same packets (time, lengths, link type, bytes)
//!   and the same final error (kind, byte offset, packets before it),
//!   whatever the read sizes and the packets asked per chunk;
//! - a chunk holds 1 to `max` packets, each lying whole in its buffer, in a
//!   buffer no larger than the file; at most one packet per 12 bytes of
//!   file; the position never passes the end of the file;
//! - after the error or the end, `next_chunk` only says `Ok(None)`.

use std::io::{self, Read};

use wardwatch::capture::{Buffer, CaptureError, LinkType, Reader};
use wardwatch::time::Timestamp;

use super::input::Cursor;

/// What is compared of a packet: everything, its bytes included.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    ts: Timestamp,
    caplen: u32,
    origlen: u32,
    link: LinkType,
    data: Vec<u8>,
}

/// A stream returning `data` in reads whose sizes cycle through `sizes`.
struct Dribble {
    data: Vec<u8>,
    at: usize,
    sizes: Vec<usize>,
    turn: usize,
}

impl Read for Dribble {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let want = self.sizes[self.turn % self.sizes.len()];
        self.turn += 1;
        let n = want.min(out.len()).min(self.data.len() - self.at);
        out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Reads everything, checking the per-chunk properties on the way.
fn drain(r: &mut Reader, max: usize, file_len: usize) -> (Vec<Seen>, Option<CaptureError>) {
    let mut seen = Vec::new();
    loop {
        match r.next_chunk(max) {
            Ok(Some(c)) => {
                assert!(
                    !c.pkts.is_empty() && c.pkts.len() <= max.max(1),
                    "chunk of {} packets for max {max}",
                    c.pkts.len()
                );
                assert!(c.buf.len() <= file_len, "buffer larger than the file");
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
                assert!(
                    seen.len() <= file_len / 12,
                    "more packets than the file holds"
                );
                assert!(r.position() <= file_len as u64, "position past the end");
            }
            Ok(None) => {
                assert!(matches!(r.next_chunk(max), Ok(None)), "data after the end");
                return (seen, None);
            }
            Err(e) => {
                assert!(matches!(r.next_chunk(max), Ok(None)), "error not final");
                return (seen, Some(e));
            }
        }
    }
}

pub fn capture(data: &[u8]) {
    let mut c = Cursor::new(data);
    let max_mapped = usize::from(c.u8()).max(1);
    let max_streamed = usize::from(c.u8()).max(1);
    let sizes = c.sizes();
    let file = c.rest();

    let mapped = Reader::from_buffer(Buffer::Owned(file.to_vec()));
    let streamed = Reader::from_read(Box::new(Dribble {
        data: file.to_vec(),
        at: 0,
        sizes,
        turn: 0,
    }));
    match (mapped, streamed) {
        (Ok(mut m), Ok(mut s)) => {
            let want = drain(&mut m, max_mapped, file.len());
            let got = drain(&mut s, max_streamed, file.len());
            assert_eq!(
                got, want,
                "streamed reading differs from whole-buffer reading"
            );
        }
        (Err(m), Err(s)) => assert_eq!(s, m, "the readers fail to open differently"),
        (m, s) => panic!(
            "one reader opens, the other does not: mapped {:?}, streamed {:?}",
            m.err(),
            s.err()
        ),
    }
}
