//! Shared by the benchmark tools: a classic pcap writer and frame builders
//! with correct IPv4, TCP and UDP checksums. Frames built here are synthetic
//! (hand-built bytes for benchmarks and stress runs), never test evidence.

#![allow(dead_code)]

use std::io::{self, Write};

/// Writes a little-endian microsecond pcap of Ethernet frames.
pub struct PcapWriter<W: Write> {
    out: W,
    pub packets: u64,
    pub bytes: u64,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        // Magic (µs, little endian), v2.4, zone 0, sigfigs 0, snaplen
        // 262144, link type 1 (Ethernet).
        out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&[0; 8])?;
        out.write_all(&262_144u32.to_le_bytes())?;
        out.write_all(&1u32.to_le_bytes())?;
        Ok(PcapWriter {
            out,
            packets: 0,
            bytes: 24,
        })
    }

    /// One record at `usec` microseconds since the epoch.
    pub fn packet(&mut self, usec: u64, frame: &[u8]) -> io::Result<()> {
        self.packet_orig(usec, frame, frame.len() as u32)
    }

    /// One record whose frame was `origlen` bytes on the wire.
    pub fn packet_orig(&mut self, usec: u64, frame: &[u8], origlen: u32) -> io::Result<()> {
        self.out
            .write_all(&((usec / 1_000_000) as u32).to_le_bytes())?;
        self.out
            .write_all(&((usec % 1_000_000) as u32).to_le_bytes())?;
        self.out.write_all(&(frame.len() as u32).to_le_bytes())?;
        self.out.write_all(&origlen.to_le_bytes())?;
        self.out.write_all(frame)?;
        self.packets += 1;
        self.bytes += 16 + frame.len() as u64;
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The Internet checksum of `data`, starting from the partial sum `init`.
pub fn checksum(data: &[u8], init: u32) -> u16 {
    let mut sum = init;
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [x] = chunks.remainder() {
        sum += u32::from(*x) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Partial sum of the IPv4 pseudo-header.
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, len: usize) -> u32 {
    let mut s = 0u32;
    for w in src.chunks(2).chain(dst.chunks(2)) {
        s += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    s + u32::from(proto) + len as u32
}

/// Ethernet + IPv4 header (20 bytes, DF unless fragment fields are given)
/// around `l4`, appended to `out`; returns the offset of the IPv4 header.
/// `frag` is (identification, flags+offset field).
pub fn ipv4_frame(
    out: &mut Vec<u8>,
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    frag: (u16, u16),
    l4: &[u8],
) -> usize {
    out.clear();
    out.extend_from_slice(&[0x00, 0x50, 0x56, 0x05, 0x00, 0x0a]); // dst MAC
    out.extend_from_slice(&[0x00, 0x09, 0xfb, 0x1e, 0x01, 0x0f]); // src MAC
    out.extend_from_slice(&0x0800u16.to_be_bytes());
    let ip = out.len();
    let total = 20 + l4.len();
    out.push(0x45);
    out.push(0);
    out.extend_from_slice(&(total as u16).to_be_bytes());
    out.extend_from_slice(&frag.0.to_be_bytes());
    out.extend_from_slice(&frag.1.to_be_bytes());
    out.push(64); // TTL
    out.push(proto);
    out.extend_from_slice(&[0, 0]); // checksum, below
    out.extend_from_slice(&src);
    out.extend_from_slice(&dst);
    let c = checksum(&out[ip..ip + 20], 0);
    out[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
    out.extend_from_slice(l4);
    ip
}

/// A TCP segment (20-byte header, window 65535) from `src` to `dst` in an
/// Ethernet/IPv4 frame written to `out`, checksums correct.
#[allow(clippy::too_many_arguments)]
pub fn tcp_frame(
    out: &mut Vec<u8>,
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) {
    let mut l4 = Vec::with_capacity(20 + payload.len());
    l4.extend_from_slice(&src.1.to_be_bytes());
    l4.extend_from_slice(&dst.1.to_be_bytes());
    l4.extend_from_slice(&seq.to_be_bytes());
    l4.extend_from_slice(&ack.to_be_bytes());
    l4.push(5 << 4);
    l4.push(flags);
    l4.extend_from_slice(&0xffffu16.to_be_bytes());
    l4.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    l4.extend_from_slice(payload);
    let c = checksum(&l4, pseudo_v4(src.0, dst.0, 6, l4.len()));
    l4[16..18].copy_from_slice(&c.to_be_bytes());
    ipv4_frame(out, src.0, dst.0, 6, (0, 0x4000), &l4);
}

/// TCP flag bits.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}
