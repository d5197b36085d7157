//! TCP reassembly end to end on real captures (`pcaps/gen_link.sh`): a
//! Python client and server exchanged known byte streams — the
//! `pcaps/lib_link/pattern.py` sequence, SHA-256 blocks of "c2s:0", "c2s:1"…
//! and "s2c:…" — through netem (reordering, duplication, loss), or were cut
//! by editcap (mid-stream start, holes). The worker's reassembled streams
//! must be exactly those bytes, with gaps exactly where the capture lost
//! data.
#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "common/parser_input.rs"]
mod parser_input;

use parser_input::{parser_input, Call};
use sha2::{Digest, Sha256};

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

/// Every TCP stream with `port` at one end: the pieces sent towards `port`
/// (index 0) and from it, adjacent data joined and adjacent gap reports (the
/// peer acknowledging a hole piece by piece) merged into one hole. A
/// mid-stream pickup whose first packet came from the server cannot know
/// which end is the client, so the sides are put right by the port.
fn streams(capture: &str, port: u16) -> Vec<[Vec<Piece>; 2]> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pcaps")
        .join(capture);
    parser_input(&path, move |_, e| {
        e.server.port == port || e.client.port == port
    })
    .into_iter()
    .map(|f| {
        let swapped = f.ends.server.port != port;
        let mut sides: [Vec<Piece>; 2] = [Vec::new(), Vec::new()];
        for c in f.calls {
            let (dir, piece) = match c {
                Call::Data(d, b) => (d, Piece::Data(b)),
                Call::Gap(d, n) => (d, Piece::Gap(n)),
            };
            let v = &mut sides[dir.index() ^ usize::from(swapped)];
            match (v.last_mut(), piece) {
                (Some(Piece::Data(a)), Piece::Data(b)) => a.extend_from_slice(&b),
                (Some(Piece::Gap(a)), Piece::Gap(b)) => *a += b,
                (_, p) => v.push(p),
            }
        }
        sides
    })
    .collect()
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
    let [c2s, s2c] = &s[0];
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
        joined(&s[0][0]) == pattern("c2s", 60_000)[2896..],
        "client stream tail differs"
    );
    assert!(
        joined(&s[0][1]) == pattern("s2c", 8192),
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
    for p in &s[0][0] {
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
    assert_eq!(joined(&s[0][1]), pattern("s2c", 8192));
}
