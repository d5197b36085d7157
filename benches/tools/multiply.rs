//! Builds a large benchmark capture from a small real one by multiplying its
//! flows: copy `k` of every packet gets its own client address in
//! 10.20.0.0/14 (the server keeps its address), fresh IPv4 and TCP/UDP checksums, and
//! a timestamp shifted by `k` microseconds. Copies are interleaved packet by
//! packet, so all `copies` conversations are open at once — the flow table
//! holds them all, as on a busy mirror port.
//!
//! Usage: `cargo run --release --example multiply -- SRC.pcap COPIES OUT.pcap
//! [--client-net 10.20]`
//!
//! Only classic pcap with Ethernet + IPv4 (optionally one VLAN tag) is
//! rewritten; other packets are copied unchanged. The client of a packet is
//! whichever endpoint is not the first packet's destination.

use std::fs::File;
use std::io::{BufWriter, Read};

#[path = "pcapw.rs"]
mod pcapw;
use pcapw::{checksum, PcapWriter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        return Err("usage: multiply SRC.pcap COPIES OUT.pcap".into());
    }
    let mut src = Vec::new();
    File::open(&args[1])?.read_to_end(&mut src)?;
    let copies: u32 = args[2].parse()?;
    if copies == 0 || copies > 1_000_000 {
        return Err("COPIES must be 1..=1000000".into());
    }
    let pkts = parse_pcap(&src)?;
    let server = pkts
        .iter()
        .find_map(|p| ipv4_offset(p.data).map(|o| addr(p.data, o + 16)));
    let server = server.ok_or("no IPv4 packet in source")?;
    let mut out = PcapWriter::new(BufWriter::with_capacity(1 << 22, File::create(&args[3])?))?;
    let mut buf = Vec::with_capacity(65_536);
    for p in &pkts {
        for k in 0..copies {
            buf.clear();
            buf.extend_from_slice(p.data);
            if let Some(o) = ipv4_offset(&buf) {
                rewrite(&mut buf, o, server, k);
            }
            out.packet_orig(p.usec + u64::from(k), &buf, p.origlen)?;
        }
    }
    eprintln!(
        "wrote {} packets, {} bytes, {} copies of {} packets",
        out.packets,
        out.bytes,
        copies,
        pkts.len()
    );
    out.finish()?;
    Ok(())
}

struct Pkt<'a> {
    usec: u64,
    origlen: u32,
    data: &'a [u8],
}

fn parse_pcap(b: &[u8]) -> Result<Vec<Pkt<'_>>, Box<dyn std::error::Error>> {
    let magic = u32::from_le_bytes(b.get(0..4).ok_or("short")?.try_into()?);
    let nanos = match magic {
        0xa1b2_c3d4 => false,
        0xa1b2_3c4d => true,
        _ => return Err("only little-endian classic pcap is supported".into()),
    };
    let le = |o: usize| -> Result<u32, Box<dyn std::error::Error>> {
        Ok(u32::from_le_bytes(
            b.get(o..o + 4).ok_or("truncated")?.try_into()?,
        ))
    };
    if le(20)? != 1 {
        return Err("only Ethernet captures are supported".into());
    }
    let mut v = Vec::new();
    let mut o = 24;
    while o + 16 <= b.len() {
        let (s, f, cap, orig) = (le(o)?, le(o + 4)?, le(o + 8)? as usize, le(o + 12)?);
        let data = b.get(o + 16..o + 16 + cap).ok_or("truncated record")?;
        let sub = if nanos {
            u64::from(f) / 1000
        } else {
            u64::from(f)
        };
        v.push(Pkt {
            usec: u64::from(s) * 1_000_000 + sub,
            origlen: orig,
            data,
        });
        o += 16 + cap;
    }
    Ok(v)
}

fn ipv4_offset(b: &[u8]) -> Option<usize> {
    let mut o = 12;
    let mut et = u16::from_be_bytes([*b.get(o)?, *b.get(o + 1)?]);
    if et == 0x8100 {
        o += 4;
        et = u16::from_be_bytes([*b.get(o)?, *b.get(o + 1)?]);
    }
    (et == 0x0800 && b.len() >= o + 2 + 20 && b[o + 2] >> 4 == 4).then_some(o + 2)
}

fn addr(b: &[u8], o: usize) -> [u8; 4] {
    [b[o], b[o + 1], b[o + 2], b[o + 3]]
}

/// Gives the non-server endpoint the address 10.(20 + k / 65536).(k / 256).k
/// (within 10.20.0.0/14 for up to a million copies) and recomputes the
/// checksums.
fn rewrite(b: &mut [u8], ip: usize, server: [u8; 4], k: u32) {
    let ihl = usize::from(b[ip] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([b[ip + 2], b[ip + 3]]));
    if ihl < 20 || b.len() < ip + total || total < ihl {
        return;
    }
    let client = [10, 20 + (k >> 16) as u8, (k >> 8) as u8, k as u8];
    let src_is_server = addr(b, ip + 12) == server;
    let field = if src_is_server { ip + 16 } else { ip + 12 };
    b[field..field + 4].copy_from_slice(&client);
    b[ip + 10] = 0;
    b[ip + 11] = 0;
    let c = checksum(&b[ip..ip + ihl], 0);
    b[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
    let proto = b[ip + 9];
    let frag = u16::from_be_bytes([b[ip + 6], b[ip + 7]]) & 0x3fff;
    let l4 = ip + ihl;
    let len = total - ihl;
    let csum_at = match proto {
        6 if len >= 20 => l4 + 16,
        17 if len >= 8 => l4 + 6,
        _ => return,
    };
    if frag != 0 {
        return;
    }
    b[csum_at] = 0;
    b[csum_at + 1] = 0;
    let mut pseudo = 0u32;
    for w in b[ip + 12..ip + 20].chunks(2) {
        pseudo += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    pseudo += u32::from(proto) + len as u32;
    let mut c = checksum(&b[l4..l4 + len], pseudo);
    if proto == 17 && c == 0 {
        c = 0xffff;
    }
    b[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
}
