//! Target `reassembly`: one direction of TCP reassembly
//! ([`wardwatch::stream::Reassembler`]) driven by arbitrary segments,
//! orders, overlaps, FINs, RSTs and peer acks, checked against a model.
//!
//! Input: `cfg:u8 isn:u32 op*`.
//! - `cfg & 0x80`: small limits (`max_ooo_bytes` 1–1009, `max_ooo_segments`
//!   0–7, from the low bits), so the caps are reached with small inputs;
//!   `cfg & 0x40`: chaos mode (below).
//! - `op = kind:u8 …`; `kind % 4` is 0 or 1: a segment `off:u16 len:u8
//!   payload` carrying `len` bytes at stream offset `off` (sequence number
//!   ISN + 1 + `off`), FIN when `kind & 4`, RST when `kind & 8`; 2: the peer
//!   acknowledges up to offset `off:u16`; 3: in chaos mode a flush (the
//!   flow ended) mid-way, otherwise nothing.
//! - Chaos mode starts without a SYN (mid-stream pickup), reads `off` as any
//!   32-bit sequence number and lets `kind & 16` set SYN.
//!
//! The model (the default mode: a SYN at the ISN first, then ops, then a
//! flush) is the list of the first byte sent at each offset (first copy
//! wins; RST segments carry nothing) and the first FIN that lies at or
//! after what was already handed on. Properties:
//! - every delivered byte is the first one sent at its offset;
//! - a gap never covers a byte sent before the gap was reported: the
//!   reassembler holds or delivers every byte it was given, and gives up a
//!   hole only when the peer acknowledged past it (the gap ends at or before
//!   the ack), when a cap forced it (`ooo_limit_reached` went up in that
//!   call), or at the flush;
//! - nothing is handed on at or after the FIN, and after the flush every
//!   byte sent before the FIN has been handed on or gapped, and the stream
//!   ends no later than the last byte sent or acknowledged;
//! - held bytes stay within `max_ooo_bytes` and are 0 after a flush; the
//!   `gaps`/`gap_bytes` counters match the gap events; no empty event.
//!
//! Chaos mode keeps the properties that need no model: the caps, the
//! counters, no empty event, and never more bytes delivered than sent.

use wardwatch::decode::tcp_flags::{ACK, FIN, RST, SYN};
use wardwatch::stream::{Event, Reassembler, StreamConfig, StreamStats};

use super::input::Cursor;

/// One event, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Data(Vec<u8>),
    Gap(u32),
}

/// A reassembler, its counters and what it emitted during the last call.
struct Rig {
    r: Reassembler,
    cfg: StreamConfig,
    stats: StreamStats,
    evs: Vec<Ev>,
    /// Gap events and bytes ever emitted, for the counter check.
    gaps: (u64, u64),
}

impl Rig {
    fn call(
        &mut self,
        f: impl FnOnce(&mut Reassembler, &StreamConfig, &mut StreamStats, &mut dyn FnMut(Event<'_>)),
    ) {
        self.evs.clear();
        let evs = &mut self.evs;
        let mut sink = |e: Event<'_>| match e {
            Event::Data(d) => evs.push(Ev::Data(d.to_vec())),
            Event::Gap(n) => evs.push(Ev::Gap(n)),
        };
        f(&mut self.r, &self.cfg, &mut self.stats, &mut sink);
        for e in &self.evs {
            match e {
                Ev::Data(d) => assert!(!d.is_empty(), "empty data event"),
                Ev::Gap(n) => {
                    assert!(*n > 0, "empty gap event");
                    self.gaps.0 += 1;
                    self.gaps.1 += u64::from(*n);
                }
            }
        }
        assert!(
            self.r.held_bytes() <= self.cfg.max_ooo_bytes,
            "{} bytes held, cap {}",
            self.r.held_bytes(),
            self.cfg.max_ooo_bytes
        );
        assert_eq!(
            (self.stats.gaps, self.stats.gap_bytes),
            self.gaps,
            "gap counters disagree with the gap events"
        );
    }

    fn segment(&mut self, seq: u32, flags: u8, payload: &[u8]) {
        self.call(|r, cfg, stats, out| r.segment(cfg, stats, seq, flags, payload, out));
    }

    fn ack(&mut self, ack: u32) {
        self.call(|r, _, stats, out| r.peer_ack(stats, ack, out));
    }

    fn flush(&mut self) {
        self.call(|r, _, stats, out| r.flush(stats, out));
        assert_eq!(self.r.held_bytes(), 0, "bytes held after a flush");
    }

    fn data_len(&self) -> usize {
        self.evs
            .iter()
            .map(|e| match e {
                Ev::Data(d) => d.len(),
                Ev::Gap(_) => 0,
            })
            .sum()
    }
}

/// The first-copy-wins model of the stream, by offset from ISN + 1. Kept
/// as byte slices so that checks are slice operations (`contains`, `==`),
/// which run uninstrumented and keep the target fast.
struct Model {
    /// First byte sent at each offset, where `sent` is 1.
    first: Vec<u8>,
    sent: Vec<u8>,
    /// Bytes handed on (data or gap) so far: the next offset.
    out: usize,
    fin: Option<usize>,
    /// Largest offset acknowledged.
    acked: usize,
}

/// Why the events of one call may contain gaps.
enum Why {
    Segment { limit_hit: bool },
    Ack(usize),
    Flush,
}

impl Model {
    fn send(&mut self, off: usize, payload: &[u8], fin: bool) {
        let end = off + payload.len();
        if self.first.len() < end {
            self.first.resize(end, 0);
            self.sent.resize(end, 0);
        }
        for (i, &b) in payload.iter().enumerate() {
            if self.sent[off + i] == 0 {
                self.sent[off + i] = 1;
                self.first[off + i] = b;
            }
        }
        if fin && self.fin.is_none() && end >= self.out {
            self.fin = Some(end);
        }
    }

    /// Whether any byte in `a..b` was sent.
    fn any_sent(&self, a: usize, b: usize) -> bool {
        let b = b.min(self.sent.len());
        a < b && self.sent[a..b].contains(&1)
    }

    /// Checks the events of one call and moves `out` past them.
    fn absorb(&mut self, evs: &[Ev], why: Why) {
        for e in evs {
            let start = self.out;
            match e {
                Ev::Data(d) => {
                    let end = start + d.len();
                    let whole = end <= self.sent.len() && !self.sent[start..end].contains(&0);
                    assert!(whole, "{start}..{end}: delivered bytes nobody sent");
                    assert!(
                        self.first[start..end] == d[..],
                        "{start}..{end}: delivered bytes that are not the first sent there"
                    );
                    self.out = end;
                }
                Ev::Gap(n) => {
                    let end = start + *n as usize;
                    match why {
                        Why::Segment { limit_hit } => assert!(
                            limit_hit,
                            "gap {start}..{end} on a segment without a cap reached"
                        ),
                        Why::Ack(a) => {
                            assert!(end <= a, "gap {start}..{end} past the ack at {a}")
                        }
                        Why::Flush => {}
                    }
                    assert!(
                        !self.any_sent(start, end),
                        "gap {start}..{end} over a byte that was sent"
                    );
                    self.out = end;
                }
            }
            if let Some(f) = self.fin {
                assert!(self.out <= f, "handed on past the FIN at {f}");
            }
        }
    }
}

fn config(cfg: u8) -> StreamConfig {
    if cfg & 0x80 == 0 {
        return StreamConfig::default();
    }
    StreamConfig {
        max_ooo_bytes: 1 + u32::from(cfg & 0x3f) * 16,
        max_ooo_segments: u16::from(cfg & 0x07),
        ..StreamConfig::default()
    }
}

pub fn reassembly(data: &[u8]) {
    let mut c = Cursor::new(data);
    let cfg_byte = c.u8();
    let isn = c.u32();
    let mut g = Rig {
        r: Reassembler::default(),
        cfg: config(cfg_byte),
        stats: StreamStats::default(),
        evs: Vec::new(),
        gaps: (0, 0),
    };
    if cfg_byte & 0x40 != 0 {
        chaos(&mut g, isn, &mut c);
    } else {
        modelled(&mut g, isn, &mut c);
    }
}

fn modelled(g: &mut Rig, isn: u32, c: &mut Cursor<'_>) {
    let base = isn.wrapping_add(1);
    let mut m = Model {
        first: Vec::new(),
        sent: Vec::new(),
        out: 0,
        fin: None,
        acked: 0,
    };
    g.segment(isn, SYN, b"");
    m.absorb(&g.evs, Why::Flush);
    assert!(g.evs.is_empty(), "events on a bare SYN");
    while !c.is_empty() {
        let kind = c.u8();
        match kind % 4 {
            0 | 1 => {
                let off = usize::from(c.u16());
                let len = usize::from(c.u8());
                let payload = c.bytes(len);
                let mut flags = ACK;
                if kind & 4 != 0 {
                    flags |= FIN;
                }
                if kind & 8 != 0 {
                    flags |= RST;
                } else {
                    m.send(off, payload, flags & FIN != 0);
                }
                let limits = g.stats.ooo_limit_reached;
                g.segment(base.wrapping_add(off as u32), flags, payload);
                let limit_hit = g.stats.ooo_limit_reached > limits;
                m.absorb(&g.evs, Why::Segment { limit_hit });
            }
            2 => {
                let off = usize::from(c.u16());
                m.acked = m.acked.max(off);
                g.ack(base.wrapping_add(off as u32));
                m.absorb(&g.evs, Why::Ack(off));
            }
            _ => {}
        }
    }
    g.flush();
    m.absorb(&g.evs, Why::Flush);
    // Bytes at or after the FIN are dropped; every byte sent before it
    // must have been handed on or gapped.
    let fin = m.fin.unwrap_or(usize::MAX).min(m.sent.len());
    if let Some(last) = m.sent[..fin].iter().rposition(|&b| b == 1) {
        assert!(
            m.out > last,
            "stream ends at {} but a byte was sent at {last}",
            m.out
        );
    }
    let sent_end = m.sent.iter().rposition(|&b| b == 1).map_or(0, |p| p + 1);
    assert!(
        m.out <= sent_end.max(m.acked),
        "stream of {} bytes, longer than anything sent ({sent_end}) or acked ({})",
        m.out,
        m.acked
    );
}

fn chaos(g: &mut Rig, isn: u32, c: &mut Cursor<'_>) {
    let mut sent = 0usize;
    let mut delivered = 0usize;
    while !c.is_empty() {
        let kind = c.u8();
        match kind % 4 {
            0 | 1 => {
                let seq = isn.wrapping_add(c.u32());
                let len = usize::from(c.u8());
                let payload = c.bytes(len);
                let mut flags = ACK;
                for (bit, flag) in [(4, FIN), (8, RST), (16, SYN)] {
                    if kind & bit != 0 {
                        flags |= flag;
                    }
                }
                if flags & RST == 0 {
                    sent += payload.len();
                }
                g.segment(seq, flags, payload);
            }
            2 => g.ack(isn.wrapping_add(c.u32())),
            _ => g.flush(),
        }
        delivered += g.data_len();
        assert!(
            delivered <= sent,
            "{delivered} bytes delivered of {sent} sent"
        );
    }
    g.flush();
    delivered += g.data_len();
    assert!(
        delivered <= sent,
        "{delivered} bytes delivered of {sent} sent"
    );
}

/// A segment op in the model-mode layout, for seeds.
pub fn encode_segment(out: &mut Vec<u8>, off: u16, fin: bool, payload: &[u8]) {
    out.push(if fin { 4 } else { 0 });
    out.extend_from_slice(&off.to_le_bytes());
    out.push(payload.len().min(255) as u8);
    out.extend_from_slice(&payload[..payload.len().min(255)]);
}

/// An ack op, for seeds.
pub fn encode_ack(out: &mut Vec<u8>, off: u16) {
    out.push(2);
    out.extend_from_slice(&off.to_le_bytes());
}
