//! The floor of the whole-pipeline bench: walks a capture with wardwatch's
//! own reader (the file mapped, records parsed chunk by chunk, exactly as a
//! run does) and hashes every packet's 5-tuple, nothing more. The ratio of
//! a wardwatch run to this walk, timed in the same session, says how far
//! the pipeline is from the cost of merely reading the bytes.
//!
//! Usage: `cargo run --release --example walk -- FILE.pcap`
//!
//! Ethernet with at most two VLAN tags, IPv4 or IPv6 (no extension
//! headers), TCP or UDP ports; anything else hashes its link bytes only.

use std::hash::{BuildHasher, Hasher};
use std::path::Path;

use wardwatch::capture::Reader;

/// The 5-tuple bytes of an Ethernet frame: (offset of the addresses, their
/// length, the protocol, offset of the ports), or `None`.
fn five_tuple(f: &[u8]) -> Option<(usize, usize, u8, usize)> {
    let mut off = 12;
    let mut ethertype = u16::from_be_bytes([*f.get(off)?, *f.get(off + 1)?]);
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        off += 4;
        ethertype = u16::from_be_bytes([*f.get(off)?, *f.get(off + 1)?]);
    }
    let ip = off + 2;
    match ethertype {
        0x0800 => {
            let ihl = usize::from(*f.get(ip)? & 0x0f) * 4;
            Some((ip + 12, 8, *f.get(ip + 9)?, ip + ihl))
        }
        0x86dd => Some((ip + 8, 32, *f.get(ip + 6)?, ip + 40)),
        _ => None,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: walk FILE.pcap")?;
    let mut reader = Reader::open(Path::new(&path)).map_err(|e| e.to_string())?;
    let state = ahash::RandomState::with_seeds(1, 2, 3, 4);
    let (mut pkts, mut bytes, mut acc) = (0u64, 0u64, 0u64);
    while let Some(chunk) = reader.next_chunk(1024).map_err(|e| e.to_string())? {
        for p in &chunk.pkts {
            let f = chunk.data(p);
            let mut h = state.build_hasher();
            match five_tuple(f) {
                Some((a, n, proto, ports)) => {
                    h.write(f.get(a..a + n).unwrap_or(&[]));
                    h.write_u8(proto);
                    if proto == 6 || proto == 17 {
                        h.write(f.get(ports..ports + 4).unwrap_or(&[]));
                    }
                }
                None => h.write(f.get(..14).unwrap_or(f)),
            }
            acc = acc.wrapping_add(h.finish());
            pkts += 1;
            bytes += u64::from(p.caplen);
        }
    }
    println!("{pkts} packets, {bytes} bytes, hash sum {acc:016x}");
    Ok(())
}
