//! Evasion variants of a real capture: what an attacker on the monitored
//! network, a lossy SPAN port or a one-way mirror makes of the same
//! conversations (issue 10, "How it is checked").
//!
//! Input and output are classic pcap files with Ethernet frames (the format
//! of every capture `pcaps/gen_app.sh` writes). IPv4/TCP segments are taken
//! apart and rebuilt; every other frame is copied unchanged. Each
//! [`Variant`] is a pure function of the capture (and a seed), so a failing
//! test can be replayed by `cargo run --example evasion -- IN.pcap OUTDIR`
//! and inspected with tshark.
//!
//! Invariants of every variant, checked by the unit tests at the end:
//! - Byte positions never move: a segment split into pieces keeps its
//!   sequence space, so every ACK number of the original stays consistent.
//! - IPv4 header and TCP checksums are recomputed on every rebuilt frame,
//!   except on the deliberate decoys ([`Variant::DecoyBadChecksum`],
//!   [`Variant::RstBadChecksum`]), whose TCP checksum is wrong on purpose
//!   (their IPv4 header checksum is right, so only TCP validation rejects
//!   them, as the receiving host does).
//! - Timestamps never go backwards: a moved segment takes the timestamp of
//!   the slot it lands in, an injected one the timestamp of its neighbour.
//! - Sizes stay sane: 1-byte splitting covers only the first
//!   [`Options::split_cap`] bytes of each direction of each flow; the rest
//!   keeps its original segmentation.
//!
//! A flow's client is the sender of its first SYN (without ACK); a flow
//! picked up without one is oriented by its first packet. A *flight* is a
//! run of data segments of one direction of one flow that no packet of the
//! other direction (which would acknowledge them) and no SYN/FIN/RST
//! interrupts: reordering inside a flight is what a network can do without
//! the peer's ACK numbers telling a different story.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};

/// One variant class of issue 10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    /// Every payload byte (up to the cap) in its own segment.
    Split1,
    /// Data segments shuffled within each flight.
    Reorder,
    /// [`Variant::Split1`], then [`Variant::Reorder`]: a whole flight of
    /// 1-byte segments in random order.
    Split1Reorder,
    /// Each data segment retransmitted right after itself, same bytes.
    RetransSame,
    /// Before each data segment (but a direction's first), a retransmission
    /// of the second half of the previous segment and the first half of
    /// this one: same bytes, overlapping old data and data to come.
    RetransPartial,
    /// Each data segment followed by a copy with different bytes (every
    /// byte inverted), valid checksums: the host already has the original.
    RetransDiffAfter,
    /// Each data segment preceded by a copy with different bytes, valid
    /// checksums: the host keeps this first copy.
    RetransDiffBefore,
    /// Each data segment preceded by a decoy: same sequence number and
    /// length, different bytes, wrong TCP checksum.
    DecoyBadChecksum,
    /// After the first data segment of each direction, an RST (with ACK)
    /// from the same sender whose sequence number is 2^30 past the next
    /// byte: outside any window, so the peer ignores it.
    RstOutOfWindow,
    /// The same RST with the exact next sequence number but a wrong TCP
    /// checksum.
    RstBadChecksum,
    /// Only packets from client to server (asymmetric SPAN).
    ToServerOnly,
    /// Only packets from server to client.
    ToClientOnly,
    /// Each flow's first client-to-server data segment removed.
    FirstToServerLost,
    /// Each flow starts at the server's first data segment: everything of
    /// the flow before it is removed (a flow where the server never sends
    /// data disappears).
    PickupAtServerData,
}

impl Variant {
    pub const ALL: [Variant; 14] = [
        Variant::Split1,
        Variant::Reorder,
        Variant::Split1Reorder,
        Variant::RetransSame,
        Variant::RetransPartial,
        Variant::RetransDiffAfter,
        Variant::RetransDiffBefore,
        Variant::DecoyBadChecksum,
        Variant::RstOutOfWindow,
        Variant::RstBadChecksum,
        Variant::ToServerOnly,
        Variant::ToClientOnly,
        Variant::FirstToServerLost,
        Variant::PickupAtServerData,
    ];

    /// The variant's file-name tag (`<capture>.<name>.pcap`).
    pub fn name(self) -> &'static str {
        match self {
            Variant::Split1 => "split1",
            Variant::Reorder => "reorder",
            Variant::Split1Reorder => "split1_reorder",
            Variant::RetransSame => "retrans_same",
            Variant::RetransPartial => "retrans_partial",
            Variant::RetransDiffAfter => "retrans_diff_after",
            Variant::RetransDiffBefore => "retrans_diff_before",
            Variant::DecoyBadChecksum => "decoy_badsum",
            Variant::RstOutOfWindow => "rst_out_of_window",
            Variant::RstBadChecksum => "rst_badsum",
            Variant::ToServerOnly => "to_server_only",
            Variant::ToClientOnly => "to_client_only",
            Variant::FirstToServerLost => "first_to_server_lost",
            Variant::PickupAtServerData => "pickup_at_server_data",
        }
    }

    pub fn from_name(s: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| v.name() == s)
    }

    /// Derives this variant of `cap`.
    pub fn apply(self, cap: &Pcap, opts: &Options) -> Pcap {
        let flows = Flows::of(&cap.packets);
        let items: Vec<Item> = cap
            .packets
            .iter()
            .map(|p| Item::new(p.ts, p.data.clone(), &flows))
            .collect();
        let out = match self {
            Variant::Split1 => split1(items, opts.split_cap, &flows),
            Variant::Reorder => reorder(items, opts.seed),
            Variant::Split1Reorder => reorder(split1(items, opts.split_cap, &flows), opts.seed),
            Variant::RetransSame => inject(items, &flows, |it, _| (vec![], vec![it.clone()])),
            Variant::RetransPartial => retrans_partial(items, &flows),
            Variant::RetransDiffAfter => inject(items, &flows, |it, fl| {
                (vec![], vec![inverted(it, Checksum::Good, fl)])
            }),
            Variant::RetransDiffBefore => inject(items, &flows, |it, fl| {
                (vec![inverted(it, Checksum::Good, fl)], vec![])
            }),
            Variant::DecoyBadChecksum => inject(items, &flows, |it, fl| {
                (vec![inverted(it, Checksum::Bad, fl)], vec![])
            }),
            Variant::RstOutOfWindow => rst_after_first_data(items, &flows, false),
            Variant::RstBadChecksum => rst_after_first_data(items, &flows, true),
            Variant::ToServerOnly => one_way(items, true),
            Variant::ToClientOnly => one_way(items, false),
            Variant::FirstToServerLost => first_to_server_lost(items),
            Variant::PickupAtServerData => pickup_at_server_data(items),
        };
        Pcap {
            nanos: cap.nanos,
            snaplen: cap.snaplen,
            linktype: cap.linktype,
            packets: out
                .into_iter()
                .map(|i| Packet {
                    ts: i.ts,
                    data: i.frame,
                })
                .collect(),
        }
    }
}

/// Knobs of the generator.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Bytes of each direction of each flow (from the first payload byte)
    /// that [`Variant::Split1`] cuts into 1-byte segments; later bytes keep
    /// their segments. 1-byte variants of `dicom_store_large` would
    /// otherwise be millions of packets.
    pub split_cap: u32,
    /// Seed of the shuffles of [`Variant::Reorder`].
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            split_cap: 4096,
            seed: 0x5eed_0010,
        }
    }
}

// ------------------------------------------------------------------ pcap

/// A classic pcap file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcap {
    /// Nanosecond timestamps (magic 0xa1b23c4d) rather than microseconds.
    pub nanos: bool,
    pub snaplen: u32,
    pub linktype: u32,
    pub packets: Vec<Packet>,
}

/// One record: (seconds, fraction in µs or ns) and the captured bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub ts: (u32, u32),
    pub data: Vec<u8>,
}

impl Pcap {
    /// Reads a classic pcap file of either byte order. Records cut short
    /// by the snap length are rejected: they cannot be rebuilt.
    ///
    /// # Errors
    /// Not a classic pcap file, not Ethernet, or truncated.
    pub fn parse(b: &[u8]) -> Result<Pcap, String> {
        let magic = b.get(0..4).ok_or("not a pcap file: too short")?;
        let (le, nanos) = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
            [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
            [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
            [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
            _ => return Err("not a classic pcap file (pcapng is not supported)".into()),
        };
        let u32_at = |o: usize| -> Result<u32, String> {
            let s: [u8; 4] = b
                .get(o..o + 4)
                .and_then(|s| s.try_into().ok())
                .ok_or("truncated pcap file")?;
            Ok(if le {
                u32::from_le_bytes(s)
            } else {
                u32::from_be_bytes(s)
            })
        };
        let snaplen = u32_at(16)?;
        let linktype = u32_at(20)?;
        if linktype != 1 {
            return Err(format!(
                "link type {linktype}: only Ethernet (1) is supported"
            ));
        }
        let mut packets = Vec::new();
        let mut o = 24;
        while o < b.len() {
            let (s, f, incl, orig) = (u32_at(o)?, u32_at(o + 4)?, u32_at(o + 8)?, u32_at(o + 12)?);
            let end = (o + 16)
                .checked_add(incl as usize)
                .filter(|&e| e <= b.len())
                .ok_or("truncated pcap record")?;
            if incl < orig {
                return Err(format!(
                    "record {} is cut by the snap length",
                    packets.len() + 1
                ));
            }
            packets.push(Packet {
                ts: (s, f),
                data: b[o + 16..end].to_vec(),
            });
            o = end;
        }
        Ok(Pcap {
            nanos,
            snaplen,
            linktype,
            packets,
        })
    }

    /// The file's bytes (little endian).
    pub fn write(&self) -> Vec<u8> {
        let size: usize = self.packets.iter().map(|p| 16 + p.data.len()).sum();
        let mut out = Vec::with_capacity(24 + size);
        let magic: u32 = if self.nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        out.extend_from_slice(&magic.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&[0; 8]); // thiszone, sigfigs
        let longest = self.packets.iter().map(|p| p.data.len()).max().unwrap_or(0);
        let snaplen = self.snaplen.max(u32::try_from(longest).unwrap_or(u32::MAX));
        out.extend_from_slice(&snaplen.to_le_bytes());
        out.extend_from_slice(&self.linktype.to_le_bytes());
        for p in &self.packets {
            let len = u32::try_from(p.data.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&p.ts.0.to_le_bytes());
            out.extend_from_slice(&p.ts.1.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&p.data);
        }
        out
    }
}

// ------------------------------------------------------------- segments

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// Where the headers of an Ethernet/IPv4/TCP frame are, and its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tcp {
    /// Offset of the IPv4 header.
    ip: usize,
    /// Offset of the TCP header.
    tcp: usize,
    /// Offset of the payload; it ends at `end` (Ethernet padding after).
    payload: usize,
    end: usize,
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    seq: u32,
    ack: u32,
    flags: u8,
}

impl Tcp {
    /// The TCP segment of an Ethernet frame (no VLAN tag, IPv4, not a
    /// fragment), or `None`.
    fn parse(f: &[u8]) -> Option<Tcp> {
        if f.get(12..14)? != [0x08, 0x00] {
            return None;
        }
        let ip = 14;
        let ihl = usize::from(f.get(ip)? & 0x0f) * 4;
        if f[ip] >> 4 != 4 || ihl < 20 || *f.get(ip + 9)? != 6 {
            return None;
        }
        let total = usize::from(u16::from_be_bytes([f[ip + 2], f[ip + 3]]));
        let frag = u16::from_be_bytes([f[ip + 6], f[ip + 7]]);
        if frag & 0x3fff != 0 || total < ihl || ip + total > f.len() {
            return None;
        }
        let tcp = ip + ihl;
        let doff = usize::from(f.get(tcp + 12)? >> 4) * 4;
        if doff < 20 || tcp + doff > ip + total {
            return None;
        }
        let be32 = |o: usize| u32::from_be_bytes([f[o], f[o + 1], f[o + 2], f[o + 3]]);
        let port = |o: usize| u16::from_be_bytes([f[o], f[o + 1]]);
        let addr = |o: usize| [f[o], f[o + 1], f[o + 2], f[o + 3]];
        Some(Tcp {
            ip,
            tcp,
            payload: tcp + doff,
            end: ip + total,
            src: (addr(ip + 12), port(tcp)),
            dst: (addr(ip + 16), port(tcp + 2)),
            seq: be32(tcp + 4),
            ack: be32(tcp + 8),
            flags: f[tcp + 13],
        })
    }

    fn len(&self) -> u32 {
        (self.end - self.payload) as u32
    }
}

/// An endpoint: IPv4 address and port.
pub type Endpoint = ([u8; 4], u16);

/// The TCP flows of a capture that carry payload, each as its (lower,
/// higher) endpoint.
pub fn data_flows(cap: &Pcap) -> std::collections::BTreeSet<(Endpoint, Endpoint)> {
    cap.packets
        .iter()
        .filter_map(|p| Tcp::parse(&p.data))
        .filter(|t| t.len() > 0)
        .map(|t| Flows::key(t.src, t.dst))
        .collect()
}

/// The TCP flows of a capture: index and client of each.
struct Flows {
    /// Canonical (lower, higher endpoint) → (flow index, client).
    by_key: HashMap<(Endpoint, Endpoint), (usize, Endpoint)>,
}

impl Flows {
    fn key(a: Endpoint, b: Endpoint) -> (Endpoint, Endpoint) {
        if a <= b {
            (a, b)
        } else {
            (b, a)
        }
    }

    /// Orients each flow: the sender of the first SYN without ACK is the
    /// client; without one, the sender of the flow's first packet.
    fn of(packets: &[Packet]) -> Flows {
        let mut by_key = HashMap::new();
        let mut syn_seen = HashSet::new();
        for p in packets {
            let Some(t) = Tcp::parse(&p.data) else {
                continue;
            };
            let k = Flows::key(t.src, t.dst);
            let n = by_key.len();
            let e = by_key.entry(k).or_insert((n, t.src));
            let syn = t.flags & (SYN | ACK) == SYN;
            if syn && syn_seen.insert(k) {
                e.1 = t.src;
            }
        }
        Flows { by_key }
    }

    /// (flow index, client to server) of a segment.
    fn of_segment(&self, t: &Tcp) -> Option<(usize, bool)> {
        let (i, client) = self.by_key.get(&Flows::key(t.src, t.dst))?;
        Some((*i, t.src == *client))
    }
}

/// A packet on its way through the variants, with its TCP facts.
#[derive(Debug, Clone)]
struct Item {
    ts: (u32, u32),
    frame: Vec<u8>,
    seg: Option<Seg>,
}

/// A TCP segment's place in the capture.
#[derive(Debug, Clone, Copy)]
struct Seg {
    tcp: Tcp,
    flow: usize,
    to_server: bool,
}

impl Seg {
    fn is_data(&self) -> bool {
        self.tcp.len() > 0 && self.tcp.flags & (SYN | RST) == 0
    }

    /// A data segment that may move within its flight.
    fn movable(&self) -> bool {
        self.is_data() && self.tcp.flags & FIN == 0
    }

    /// (flow, direction) as an index.
    fn side(&self) -> (usize, bool) {
        (self.flow, self.to_server)
    }
}

impl Item {
    fn new(ts: (u32, u32), frame: Vec<u8>, flows: &Flows) -> Item {
        let seg = Tcp::parse(&frame).and_then(|tcp| {
            let (flow, to_server) = flows.of_segment(&tcp)?;
            Some(Seg {
                tcp,
                flow,
                to_server,
            })
        });
        Item { ts, frame, seg }
    }

    fn data(&self) -> Option<Seg> {
        self.seg.filter(Seg::is_data)
    }

    fn payload(&self) -> &[u8] {
        match self.seg {
            Some(s) => &self.frame[s.tcp.payload..s.tcp.end],
            None => &[],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checksum {
    Good,
    /// A TCP checksum that no receiver accepts.
    Bad,
}

/// The frame of `it` (a TCP segment) with another sequence number, flags
/// and payload; IPv4 total length and both checksums recomputed (the TCP
/// one spoilt for [`Checksum::Bad`]). Ethernet padding is dropped.
fn rebuild(it: &Item, seq: u32, flags: u8, payload: &[u8], sum: Checksum, flows: &Flows) -> Item {
    let Some(s) = it.seg else {
        return it.clone();
    };
    let t = s.tcp;
    let mut f = Vec::with_capacity(t.payload + payload.len());
    f.extend_from_slice(&it.frame[..t.payload]);
    f.extend_from_slice(payload);
    let total = u16::try_from(f.len() - t.ip).unwrap_or(u16::MAX);
    f[t.ip + 2..t.ip + 4].copy_from_slice(&total.to_be_bytes());
    f[t.tcp + 4..t.tcp + 8].copy_from_slice(&seq.to_be_bytes());
    f[t.tcp + 13] = flags;
    fix_checksums(&mut f, t.ip, t.tcp, sum);
    Item::new(it.ts, f, flows)
}

/// Recomputes the IPv4 header checksum and the TCP checksum of a frame
/// whose IPv4 header starts at `ip` and TCP header at `tcp`.
fn fix_checksums(f: &mut [u8], ip: usize, tcp: usize, sum: Checksum) {
    f[ip + 10..ip + 12].copy_from_slice(&[0, 0]);
    let c = internet_checksum(&[&f[ip..tcp]]);
    f[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
    f[tcp + 16..tcp + 18].copy_from_slice(&[0, 0]);
    let tcp_len = u16::try_from(f.len() - tcp).unwrap_or(u16::MAX);
    let mut pseudo = [0u8; 12];
    pseudo[..8].copy_from_slice(&f[ip + 12..ip + 20]);
    pseudo[9] = 6;
    pseudo[10..].copy_from_slice(&tcp_len.to_be_bytes());
    let mut c = internet_checksum(&[&pseudo, &f[tcp..]]);
    if sum == Checksum::Bad {
        // Flipping the low byte gives a value that is not the right one in
        // ones' complement either (only 0x0000 and 0xffff are the same
        // number, and they differ in both bytes).
        c ^= 0x00ff;
    }
    f[tcp + 16..tcp + 18].copy_from_slice(&c.to_be_bytes());
}

/// RFC 1071 checksum of the concatenated parts (each part but the last of
/// even length).
fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    for p in parts {
        let mut ch = p.chunks_exact(2);
        for w in &mut ch {
            sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let [last] = ch.remainder() {
            sum += u64::from(u16::from_be_bytes([*last, 0]));
        }
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// `it` with every payload byte inverted (so every byte differs).
fn inverted(it: &Item, sum: Checksum, flows: &Flows) -> Item {
    let Some(s) = it.seg else {
        return it.clone();
    };
    let garbage: Vec<u8> = it.payload().iter().map(|b| !b).collect();
    rebuild(it, s.tcp.seq, s.tcp.flags, &garbage, sum, flows)
}

// -------------------------------------------------------------- variants

/// First sequence number of each (flow, direction)'s data: the SYN's + 1,
/// else the first segment's.
fn stream_starts(items: &[Item]) -> HashMap<(usize, bool), u32> {
    let mut m = HashMap::new();
    for s in items.iter().filter_map(|i| i.seg) {
        let start = if s.tcp.flags & SYN != 0 {
            s.tcp.seq.wrapping_add(1)
        } else {
            s.tcp.seq
        };
        m.entry(s.side()).or_insert(start);
    }
    m
}

fn split1(items: Vec<Item>, cap: u32, flows: &Flows) -> Vec<Item> {
    let starts = stream_starts(&items);
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        let Some(s) = it.data() else {
            out.push(it);
            continue;
        };
        let start = starts.get(&s.side()).copied().unwrap_or(s.tcp.seq);
        let off = s.tcp.seq.wrapping_sub(start);
        // Bytes of this segment below the cap, each in its own segment.
        let ones = cap.saturating_sub(off).min(s.tcp.len()) as usize;
        if ones == 0 || s.tcp.len() == 1 {
            out.push(it);
            continue;
        }
        let payload = it.payload().to_vec();
        let last = payload.len();
        let mut cuts: Vec<usize> = (0..=ones).collect();
        if ones < last {
            cuts.push(last);
        }
        for w in cuts.windows(2) {
            let piece = &payload[w[0]..w[1]];
            // PSH and FIN belong to the segment's end only.
            let flags = if w[1] == last {
                s.tcp.flags
            } else {
                s.tcp.flags & !(PSH | FIN)
            };
            let seq = s.tcp.seq.wrapping_add(w[0] as u32);
            out.push(rebuild(&it, seq, flags, piece, Checksum::Good, flows));
        }
    }
    out
}

/// splitmix64: a small deterministic generator for the shuffles.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn reorder(mut items: Vec<Item>, seed: u64) -> Vec<Item> {
    // Positions (in `items`) of the open flight of each flow.
    let mut open: HashMap<usize, (bool, Vec<usize>)> = HashMap::new();
    let mut flights: Vec<Vec<usize>> = Vec::new();
    for (pos, it) in items.iter().enumerate() {
        let Some(s) = it.seg else { continue };
        let same_side = open.get(&s.flow).is_some_and(|(d, _)| *d == s.to_server);
        let control = s.tcp.flags & (SYN | FIN | RST) != 0;
        if !same_side || control {
            if let Some((_, f)) = open.remove(&s.flow) {
                flights.push(f);
            }
        }
        // A pure ACK of the flight's own direction neither moves nor ends it.
        if s.movable() {
            open.entry(s.flow)
                .or_insert((s.to_server, Vec::new()))
                .1
                .push(pos);
        }
    }
    flights.extend(open.into_values().map(|(_, f)| f));
    flights.sort();
    let mut rng = Rng(seed);
    for slots in flights.into_iter().filter(|f| f.len() > 1) {
        let mut order: Vec<usize> = slots.clone();
        for i in (1..order.len()).rev() {
            let j = rng.below(i + 1);
            order.swap(i, j);
        }
        if order == slots {
            order.reverse();
        }
        // Frames move, timestamps stay with the slots.
        let frames: Vec<(Vec<u8>, Option<Seg>)> = order
            .iter()
            .map(|&p| (items[p].frame.clone(), items[p].seg))
            .collect();
        for (&slot, (frame, seg)) in slots.iter().zip(frames) {
            items[slot].frame = frame;
            items[slot].seg = seg;
        }
    }
    items
}

/// Puts `f(item)`'s (before, after) lists around every data segment.
fn inject(
    items: Vec<Item>,
    flows: &Flows,
    f: impl Fn(&Item, &Flows) -> (Vec<Item>, Vec<Item>),
) -> Vec<Item> {
    let mut out = Vec::with_capacity(items.len() * 2);
    for it in items {
        if it.data().is_none() {
            out.push(it);
            continue;
        }
        let (before, after) = f(&it, flows);
        out.extend(before);
        out.push(it);
        out.extend(after);
    }
    out
}

fn retrans_partial(items: Vec<Item>, flows: &Flows) -> Vec<Item> {
    // The previous data segment of each (flow, direction): seq, payload.
    let mut prev: HashMap<(usize, bool), (u32, Vec<u8>)> = HashMap::new();
    let mut out = Vec::with_capacity(items.len() * 2);
    for it in items {
        let Some(s) = it.data() else {
            out.push(it);
            continue;
        };
        let payload = it.payload().to_vec();
        if let Some((pseq, p)) = prev.get(&s.side()) {
            let contiguous = pseq.wrapping_add(p.len() as u32) == s.tcp.seq;
            if contiguous && p.len() >= 2 && payload.len() >= 2 {
                let (a, b) = (p.len() / 2, payload.len() / 2);
                let mut bytes = p[a..].to_vec();
                bytes.extend_from_slice(&payload[..b]);
                let flags = s.tcp.flags & !FIN;
                let seq = pseq.wrapping_add(a as u32);
                out.push(rebuild(&it, seq, flags, &bytes, Checksum::Good, flows));
            }
        }
        prev.insert(s.side(), (s.tcp.seq, payload));
        out.push(it);
    }
    out
}

fn rst_after_first_data(items: Vec<Item>, flows: &Flows, bad_sum: bool) -> Vec<Item> {
    let mut done: HashSet<(usize, bool)> = HashSet::new();
    let mut out = Vec::with_capacity(items.len() + 8);
    for it in items {
        let first = it.data().filter(|s| done.insert(s.side()));
        let rst = first.map(|s| {
            let next = s.tcp.seq.wrapping_add(s.tcp.len());
            let (seq, sum) = if bad_sum {
                (next, Checksum::Bad)
            } else {
                (next.wrapping_add(1 << 30), Checksum::Good)
            };
            rebuild(&it, seq, RST | ACK, &[], sum, flows)
        });
        out.push(it);
        out.extend(rst);
    }
    out
}

fn one_way(items: Vec<Item>, to_server: bool) -> Vec<Item> {
    items
        .into_iter()
        .filter(|i| i.seg.is_none_or(|s| s.to_server == to_server))
        .collect()
}

fn first_to_server_lost(items: Vec<Item>) -> Vec<Item> {
    let mut lost: HashSet<usize> = HashSet::new();
    items
        .into_iter()
        .filter(|i| match i.data() {
            Some(s) if s.to_server => !lost.insert(s.flow),
            _ => true,
        })
        .collect()
}

fn pickup_at_server_data(items: Vec<Item>) -> Vec<Item> {
    let mut started: HashSet<usize> = HashSet::new();
    items
        .into_iter()
        .filter(|i| {
            let Some(s) = i.seg else { return true };
            if s.is_data() && !s.to_server {
                started.insert(s.flow);
            }
            started.contains(&s.flow)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-built frames (not traffic): a client 10.0.0.1:40000 and a
    /// server 10.0.0.2:1883, handshake, then `data` as client segments
    /// (each answered by a server ACK when `acked`).
    fn frame(
        src: Endpoint,
        dst: Endpoint,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12] = 0x08; // ethertype IPv4
        f[14] = 0x45; // version 4, IHL 5
        f[14 + 8] = 64; // TTL
        f[14 + 9] = 6; // TCP
        f[14 + 12..14 + 16].copy_from_slice(&src.0);
        f[14 + 16..14 + 20].copy_from_slice(&dst.0);
        f[34..36].copy_from_slice(&src.1.to_be_bytes());
        f[36..38].copy_from_slice(&dst.1.to_be_bytes());
        f[38..42].copy_from_slice(&seq.to_be_bytes());
        f[42..46].copy_from_slice(&ack.to_be_bytes());
        f[46] = 5 << 4; // data offset 5 words
        f[47] = flags;
        f[48..50].copy_from_slice(&1000u16.to_be_bytes()); // window
        f.extend_from_slice(payload);
        let total = (f.len() - 14) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        fix_checksums(&mut f, 14, 34, Checksum::Good);
        f
    }

    const C: Endpoint = ([10, 0, 0, 1], 40000);
    const S: Endpoint = ([10, 0, 0, 2], 1883);

    /// Handshake, client sends "hello" then "world" (one flight), server
    /// ACKs and answers "ok", client ACKs.
    fn sample() -> Pcap {
        let frames = vec![
            frame(C, S, 100, 0, SYN, b""),
            frame(S, C, 500, 101, SYN | ACK, b""),
            frame(C, S, 101, 501, ACK, b""),
            frame(C, S, 101, 501, ACK | PSH, b"hello"),
            frame(C, S, 106, 501, ACK | PSH, b"world"),
            frame(S, C, 501, 111, ACK | PSH, b"ok"),
            frame(C, S, 111, 503, ACK, b""),
        ];
        Pcap {
            nanos: false,
            snaplen: 65535,
            linktype: 1,
            packets: frames
                .into_iter()
                .enumerate()
                .map(|(i, data)| Packet {
                    ts: (1, i as u32 * 10),
                    data,
                })
                .collect(),
        }
    }

    fn segs(p: &Pcap) -> Vec<(bool, u32, u8, Vec<u8>)> {
        let flows = Flows::of(&sample().packets);
        p.packets
            .iter()
            .map(|p| {
                let it = Item::new(p.ts, p.data.clone(), &flows);
                let s = it.seg.unwrap();
                (s.to_server, s.tcp.seq, s.tcp.flags, it.payload().to_vec())
            })
            .collect()
    }

    fn checksums_ok(f: &[u8]) -> bool {
        let t = Tcp::parse(f).unwrap();
        let mut g = f[..t.end].to_vec();
        fix_checksums(&mut g, t.ip, t.tcp, Checksum::Good);
        g == f[..t.end]
    }

    /// The client's stream, by sequence number, first copy of each byte.
    fn client_stream(p: &Pcap) -> Vec<u8> {
        let mut bytes = std::collections::BTreeMap::new();
        for (ts, seq, _, pl) in segs(p) {
            if ts {
                for (i, b) in pl.iter().enumerate() {
                    bytes.entry(seq + i as u32).or_insert(*b);
                }
            }
        }
        bytes.into_values().collect()
    }

    #[test]
    fn pcap_write_then_parse_is_identity() {
        let p = sample();
        assert_eq!(Pcap::parse(&p.write()).unwrap(), p);
    }

    #[test]
    fn every_variant_keeps_checksums_timestamps_and_stream_bytes() {
        let orig = sample();
        for v in Variant::ALL {
            let out = v.apply(&orig, &Options::default());
            let ts: Vec<_> = out.packets.iter().map(|p| p.ts).collect();
            assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{v:?}: time goes back");
            let bad: Vec<_> = out
                .packets
                .iter()
                .filter(|p| !checksums_ok(&p.data))
                .collect();
            match v {
                Variant::DecoyBadChecksum => assert_eq!(bad.len(), 3, "{v:?}"),
                Variant::RstBadChecksum => assert_eq!(bad.len(), 2, "{v:?}"),
                _ => assert!(bad.is_empty(), "{v:?}"),
            }
            // Without the decoys and inverted copies, the client's bytes
            // are the original ones at the original positions.
            let good = Pcap {
                packets: out
                    .packets
                    .iter()
                    .filter(|p| checksums_ok(&p.data))
                    .cloned()
                    .collect(),
                ..orig.clone()
            };
            let want: &[u8] = match v {
                Variant::ToClientOnly
                | Variant::FirstToServerLost
                | Variant::PickupAtServerData => continue,
                Variant::RetransDiffBefore => b"\x97\x9a\x93\x93\x90\x88\x90\x8d\x93\x9b",
                _ => b"helloworld",
            };
            assert_eq!(client_stream(&good), want, "{v:?}");
        }
    }

    #[test]
    fn split1_cuts_each_byte_and_keeps_flags_on_the_last_piece() {
        let out = Variant::Split1.apply(&sample(), &Options::default());
        let s = segs(&out);
        let data: Vec<_> = s.iter().filter(|x| x.0 && !x.3.is_empty()).collect();
        assert_eq!(data.len(), 10);
        assert_eq!(data[0].1, 101);
        assert_eq!(data[9].1, 110);
        assert_eq!(data[3].2, ACK);
        assert_eq!(data[4].2, ACK | PSH);
        // The server's 2-byte answer is split too.
        assert_eq!(s.iter().filter(|x| !x.0 && !x.3.is_empty()).count(), 2);
    }

    #[test]
    fn split1_stops_at_the_cap() {
        let opts = Options {
            split_cap: 7,
            ..Options::default()
        };
        let out = Variant::Split1.apply(&sample(), &opts);
        let lens: Vec<usize> = segs(&out)
            .iter()
            .filter(|x| x.0 && !x.3.is_empty())
            .map(|x| x.3.len())
            .collect();
        // "hello" in 5 pieces, "wo" in 2, "rld" whole.
        assert_eq!(lens, [1, 1, 1, 1, 1, 1, 1, 3]);
    }

    #[test]
    fn reorder_moves_data_within_its_flight_only() {
        let out = Variant::Reorder.apply(&sample(), &Options::default());
        let s = segs(&out);
        // The two client segments swap (a flight of two is always changed);
        // the server's answer stays after both.
        assert_eq!(s[3].3, b"world");
        assert_eq!(s[4].3, b"hello");
        assert_eq!(s[5].3, b"ok");
        assert_eq!(out.packets[3].ts, sample().packets[3].ts);
    }

    #[test]
    fn split1_reorder_keeps_pieces_before_the_peers_ack() {
        let out = Variant::Split1Reorder.apply(&sample(), &Options::default());
        let s = segs(&out);
        let server_at = s.iter().position(|x| !x.0 && !x.3.is_empty()).unwrap();
        let before: Vec<u32> = s[..server_at]
            .iter()
            .filter(|x| x.0 && !x.3.is_empty())
            .map(|x| x.1)
            .collect();
        let mut sorted = before.clone();
        sorted.sort();
        assert_eq!(sorted, (101..111).collect::<Vec<_>>());
        assert_ne!(before, sorted, "not reordered");
    }

    #[test]
    fn retrans_partial_overlaps_the_previous_and_the_next_segment() {
        let out = Variant::RetransPartial.apply(&sample(), &Options::default());
        let s = segs(&out);
        // Before "world" (106): "llo" of "hello" (from 103) and "wo" of "world".
        assert_eq!((s[4].1, &s[4].3[..]), (103, &b"llowo"[..]));
        assert_eq!(s[5].3, b"world");
    }

    #[test]
    fn rsts_follow_the_first_data_of_each_direction() {
        let oow = segs(&Variant::RstOutOfWindow.apply(&sample(), &Options::default()));
        let rsts: Vec<_> = oow.iter().filter(|x| x.2 & RST != 0).collect();
        assert_eq!(rsts.len(), 2);
        assert_eq!(rsts[0].1, 106 + (1 << 30));
        assert_eq!(rsts[1].1, 503 + (1 << 30));
        let bad = segs(&Variant::RstBadChecksum.apply(&sample(), &Options::default()));
        let rsts: Vec<_> = bad.iter().filter(|x| x.2 & RST != 0).collect();
        assert_eq!((rsts[0].1, rsts[1].1), (106, 503));
    }

    #[test]
    fn one_way_loss_and_pickup_drop_what_they_say() {
        let o = Options::default();
        let c2s = segs(&Variant::ToServerOnly.apply(&sample(), &o));
        assert!(c2s.len() == 5 && c2s.iter().all(|x| x.0));
        let s2c = segs(&Variant::ToClientOnly.apply(&sample(), &o));
        assert!(s2c.len() == 2 && s2c.iter().all(|x| !x.0));
        let lost = segs(&Variant::FirstToServerLost.apply(&sample(), &o));
        assert_eq!(lost.len(), 6);
        assert!(lost.iter().all(|x| x.3 != b"hello"));
        let pick = segs(&Variant::PickupAtServerData.apply(&sample(), &o));
        assert_eq!(pick.len(), 2);
        assert_eq!(pick[0].3, b"ok");
    }
}
