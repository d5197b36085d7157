//! TCP reassembly end to end on real captures (`pcaps/gen_link.sh`): a
//! Python client and server exchanged known byte streams — the
//! `pcaps/lib_link/pattern.py` sequence, SHA-256 blocks of "c2s:0", "c2s:1"…
//! and "s2c:…" — through netem (reordering, duplication, loss), or were cut
//! by editcap (mid-stream start, holes). The worker's reassembled streams
//! must be exactly those bytes, with gaps exactly where the capture lost
//! data.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use wardwatch::app::{StreamConsumer, StreamContext};
use wardwatch::capture::Reader;
use wardwatch::config::Config;
use wardwatch::flow::Direction;
use wardwatch::pipeline::worker::Worker;

/// The known stream `label` of `n` bytes, as `pattern.py` makes it.
fn pattern(label: &str, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 32);
    let mut k = 0u64;
    while out.len() < n {
        out.extend_from_slice(&Sha256::digest(format!("{label}:{k}").as_bytes()));
        k += 1;
    }
    out.truncate(n);
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Data(Vec<u8>),
    Gap(u32),
}

/// Per stream: the endpoint that is not `port`, and the pieces sent to and
/// from `port` (index 0: towards it).
type Stream = ((IpAddr, u16), [Vec<Piece>; 2]);
type Streams = Arc<Mutex<Vec<Stream>>>;

struct Collect {
    streams: Streams,
    index: usize,
    /// The flow's "client" is the `port` side (a mid-stream pickup whose
    /// first packet came from the server cannot know better).
    swapped: bool,
}

impl Collect {
    fn slot(&self, dir: Direction) -> usize {
        dir.index() ^ usize::from(self.swapped)
    }
}

impl StreamConsumer for Collect {
    fn data(&mut self, _: &mut StreamContext<'_>, dir: Direction, data: &[u8]) {
        let mut s = self.streams.lock().unwrap();
        let slot = self.slot(dir);
        let v = &mut s[self.index].1[slot];
        match v.last_mut() {
            Some(Piece::Data(d)) => d.extend_from_slice(data),
            _ => v.push(Piece::Data(data.to_vec())),
        }
    }
    fn gap(&mut self, _: &mut StreamContext<'_>, dir: Direction, len: u32) {
        let slot = self.slot(dir);
        let v = &mut self.streams.lock().unwrap()[self.index].1[slot];
        // Adjacent gap reports (the peer acknowledging a hole piece by
        // piece) describe one hole.
        match v.last_mut() {
            Some(Piece::Gap(n)) => *n += len,
            _ => v.push(Piece::Gap(len)),
        }
    }
    fn end(&mut self, _: &mut StreamContext<'_>) {}
}

/// Runs one worker over a capture, collecting every TCP stream with `port`
/// at one end.
fn streams(capture: &str, port: u16) -> Vec<Stream> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pcaps")
        .join(capture);
    let mut reader = Reader::open(&path).unwrap();
    let mut w = Worker::new(&Config::default());
    let streams: Streams = Arc::default();
    let s2 = Arc::clone(&streams);
    w.set_consumer_factory(Arc::new(move |_, ends| {
        let swapped = ends.server.port != port;
        if swapped && ends.client.port != port {
            return None;
        }
        let other = if swapped { ends.server } else { ends.client };
        let mut s = s2.lock().unwrap();
        s.push(((other.addr, other.port), [Vec::new(), Vec::new()]));
        Some(Box::new(Collect {
            streams: Arc::clone(&s2),
            index: s.len() - 1,
            swapped,
        }) as Box<dyn StreamConsumer>)
    }));
    while let Some(chunk) = reader.next_chunk(256).unwrap() {
        for p in &chunk.pkts {
            w.packet(p.ts, p.link, chunk.data(p), p.origlen);
        }
    }
    w.finish(wardwatch::time::Timestamp(0), &mut |_| {});
    let v = streams.lock().unwrap().clone();
    v
}

fn joined(pieces: &[Piece]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pieces {
        match p {
            Piece::Data(d) => out.extend_from_slice(d),
            Piece::Gap(n) => panic!("unexpected gap of {n} bytes"),
        }
    }
    out
}

#[test]
fn reordered_duplicated_lossy_transfer_reassembles_exactly() {
    let s = streams("tcp_netem_reorder.pcap", 40404);
    assert_eq!(s.len(), 1, "one transfer");
    let [c2s, s2c] = &s[0].1;
    let c2s = joined(c2s);
    let s2c = joined(s2c);
    assert_eq!(c2s.len(), 120_000);
    assert!(c2s == pattern("c2s", 120_000), "client stream differs");
    assert!(s2c == pattern("s2c", 16_384), "server stream differs");
}

#[test]
fn midstream_capture_yields_the_tail_of_each_stream() {
    let s = streams("tcp_midstream.pcap", 40404);
    assert_eq!(s.len(), 1);
    // editcap removed frames 1-8: the handshake and the client's first
    // 2896 bytes (pcaps/README-link.md).
    assert!(
        joined(&s[0].1[0]) == pattern("c2s", 60_000)[2896..],
        "client stream tail differs"
    );
    assert!(
        joined(&s[0].1[1]) == pattern("s2c", 8192),
        "server stream differs"
    );
}

#[test]
fn capture_holes_become_gaps_and_the_rest_is_exact() {
    let s = streams("tcp_capture_gap.pcap", 40404);
    assert_eq!(s.len(), 1);
    let want = pattern("c2s", 60_000);
    let mut at = 0usize;
    let mut gaps = Vec::new();
    for p in &s[0].1[0] {
        match p {
            Piece::Data(d) => {
                assert_eq!(&want[at..at + d.len()], &d[..], "data at offset {at}");
                at += d.len();
            }
            Piece::Gap(n) => {
                gaps.push((at, at + *n as usize));
                at += *n as usize;
            }
        }
    }
    // The holes editcap made (pcaps/README-link.md, tcp_capture_gap.pcap).
    assert_eq!(gaps, vec![(15_184, 17_832), (32_768, 34_216)]);
    assert_eq!(at, want.len(), "data and gaps cover the whole stream");
    assert_eq!(joined(&s[0].1[1]), pattern("s2c", 8192));
}
