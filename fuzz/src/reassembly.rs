//! Target `reassembly`: one direction of TCP reassembly
//! ([`wardwatch::stream::Reassembler`] on a standalone
//! [`wardwatch::stream::Stage`]) driven by arbitrary segments, orders,
//! overlaps, FINs, RSTs, peer acks and packet times, checked against a
//! model.
//!
//! Input: `cfg:u8 isn:u32 op*`.
//! - `cfg & 0x80`: small limits so the bounds are reached with small
//!   inputs: `max_ooo_bytes` 64–2080 (from `cfg & 0x3f`), a 4 KiB
//!   `stream.memcap` when `cfg & 0x01`, an overlap window of 0, 64 bytes or
//!   the default by `cfg >> 1 & 3`; `cfg & 0x08` turns `hole_timeout` off
//!   (in both modes); `cfg & 0x40`: chaos mode (below).
//! - `op = kind:u8 …`; `kind % 4` is 0 or 1: a segment `off:u16 len:u8
//!   payload` carrying `len` bytes at stream offset `off` (sequence number
//!   ISN + 1 + `off`), FIN when `kind & 4`, RST when `kind & 8`; 2: the peer
//!   acknowledges up to offset `off:u16`; 3: packet time moves on by
//!   `dt:u8` seconds (in chaos mode, with `kind & 4`, a flush instead: the
//!   flow ended mid-way).
//! - Chaos mode starts without a SYN (mid-stream pickup), reads `off` as any
//!   32-bit sequence number and lets `kind & 16` set SYN.
//!
//! The model (the default mode: a SYN at the ISN first, then ops, then a
//! flush) is the list of the first byte sent at each offset (first copy
//! wins; RST segments carry nothing), the first FIN that lies at or after
//! what was already handed on, and the highest ack. Properties:
//! - every delivered byte is the first one sent at its offset;
//! - a gap never covers a byte sent before the gap was reported: the
//!   reassembler holds or delivers every byte it was given, and gives up a
//!   hole only when the peer acknowledged past it (the gap ends at or
//!   before the highest ack), when a bound forced it (`ooo_limit_reached`
//!   or `segment_memcap_drop` went up in that call), when held data waited
//!   `hole_timeout` (`ooo_timeout` went up), or at the flush. The hole
//!   timeout is checked when a segment arrives, before its payload and its
//!   FIN: such a gap may cover that segment's new bytes, which came too
//!   late, and its FIN counts only if the stream did not move past it;
//! - nothing is handed on at or after the FIN, and after the flush every
//!   byte sent before the FIN has been handed on or gapped, and the stream
//!   ends no later than the last byte sent or acknowledged;
//! - the overlap anomaly is raised at most once, and only in a call whose
//!   segment carried a byte that differs from the first one sent at its
//!   offset;
//! - held bytes stay within `max_ooo_bytes`, what the stage charges within
//!   `stream.memcap`, and both are 0 after a flush (spares released); the
//!   `gaps`/`gap_bytes` counters match the gap events; no empty event;
//! - the bookkeeping work ([`Stage::work`]) stays within
//!   8·(bytes + ops + 1)·(1 + log2 bytes): no order of segments makes
//!   reassembly quadratic.
//!
//! Chaos mode keeps the properties that need no model: the bounds, the
//! counters, the work, no empty event, at most one anomaly, and never more
//! bytes delivered than sent.

use wardwatch::decode::tcp_flags::{ACK, FIN, RST, SYN};
use wardwatch::memcap::ByteSize;
use wardwatch::stream::{Event, Reassembler, Stage, StreamConfig};
use wardwatch::time::Timestamp;

use super::input::Cursor;

/// One event, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Data(Vec<u8>),
    Gap(u32),
    Anomaly,
}

/// A reassembler, its stage and what it emitted during the last call.
struct Rig {
    r: Reassembler,
    st: Stage,
    now: Timestamp,
    evs: Vec<Ev>,
    /// Gap events and bytes ever emitted, for the counter check.
    gaps: (u64, u64),
    anomalies: u32,
    /// Payload bytes and calls so far, for the work bound.
    bytes: u64,
    calls: u64,
}

impl Rig {
    fn new(cfg: StreamConfig) -> Rig {
        Rig {
            r: Reassembler::new(),
            st: Stage::standalone(cfg),
            now: Timestamp(0),
            evs: Vec::new(),
            gaps: (0, 0),
            anomalies: 0,
            bytes: 0,
            calls: 0,
        }
    }

    fn call(&mut self, f: impl FnOnce(&mut Reassembler, &mut Stage, &mut dyn FnMut(Event<'_>))) {
        self.evs.clear();
        self.calls += 1;
        let evs = &mut self.evs;
        let mut sink = |e: Event<'_>| match e {
            Event::Data(d) => evs.push(Ev::Data(d.to_vec())),
            Event::Gap(n) => evs.push(Ev::Gap(n)),
            Event::Anomaly(_) => evs.push(Ev::Anomaly),
        };
        f(&mut self.r, &mut self.st, &mut sink);
        for e in &self.evs {
            match e {
                Ev::Data(d) => assert!(!d.is_empty(), "empty data event"),
                Ev::Gap(n) => {
                    assert!(*n > 0, "empty gap event");
                    self.gaps.0 += 1;
                    self.gaps.1 += u64::from(*n);
                }
                Ev::Anomaly => self.anomalies += 1,
            }
        }
        assert!(self.anomalies <= 1, "the overlap anomaly raised twice");
        let cfg = &self.st.cfg;
        assert!(
            self.r.held_bytes() <= cfg.max_ooo_bytes.0,
            "{} bytes held, cap {}",
            self.r.held_bytes(),
            cfg.max_ooo_bytes.0
        );
        assert!(
            self.st.memuse() <= cfg.memcap.0,
            "{} bytes charged, memcap {}",
            self.st.memuse(),
            cfg.memcap.0
        );
        assert_eq!(
            (self.st.stats.gaps, self.st.stats.gap_bytes),
            self.gaps,
            "gap counters disagree with the gap events"
        );
        let log = 1 + u64::from((self.bytes + 1).ilog2());
        let bound = 8 * (self.bytes + self.calls + 1) * log;
        assert!(
            self.st.work <= bound,
            "work {} for {} bytes in {} calls",
            self.st.work,
            self.bytes,
            self.calls
        );
    }

    fn segment(&mut self, seq: u32, flags: u8, payload: &[u8]) {
        self.bytes += payload.len() as u64;
        let now = self.now;
        self.call(|r, st, out| r.segment(st, now, seq, flags, payload, out));
    }

    fn ack(&mut self, ack: u32) {
        let now = self.now;
        self.call(|r, st, out| r.peer_ack(st, now, ack, out));
    }

    fn flush(&mut self) {
        self.call(|r, st, out| r.flush(st, out));
        assert_eq!(self.r.held_bytes(), 0, "bytes held after a flush");
        assert_eq!(self.r.memuse(), 0, "bytes charged after a flush");
        self.st.release_spares();
        assert_eq!(self.st.memuse(), 0, "stage bytes charged after a flush");
    }

    fn data_len(&self) -> usize {
        self.evs
            .iter()
            .map(|e| match e {
                Ev::Data(d) => d.len(),
                _ => 0,
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
    /// The current segment's offsets and, per byte, whether it was sent
    /// before it (for a gap the hole timeout declared before its payload).
    late: Option<(usize, Vec<u8>)>,
}

/// Why the events of one call may contain gaps.
enum Why {
    /// A segment or an ack call: gaps allowed up to the highest ack, or
    /// anywhere when a bound or the hole timeout forced one.
    Call {
        forced: bool,
    },
    Flush,
}

impl Model {
    /// Whether `payload` at `off` differs from a byte sent there before.
    fn differs(&self, off: usize, payload: &[u8]) -> bool {
        payload.iter().enumerate().any(|(i, &b)| {
            self.sent.get(off + i) == Some(&1) && self.first.get(off + i) != Some(&b)
        })
    }

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

    /// Whether any byte in `a..b` was sent (before the current segment,
    /// when `late` is set).
    fn any_sent(&self, a: usize, b: usize) -> bool {
        let b = b.min(self.sent.len());
        if a >= b {
            return false;
        }
        let Some((off, before)) = &self.late else {
            return self.sent[a..b].contains(&1);
        };
        let (s, e) = (*off, off + before.len());
        let outside = |x: usize, y: usize| x < y && self.sent[x..y].contains(&1);
        let inside = {
            let (x, y) = (a.max(s), b.min(e));
            x < y && before[x - s..y - s].contains(&1)
        };
        outside(a, b.min(s)) || outside(a.max(e), b) || inside
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
                    if let Why::Call { forced: false } = why {
                        assert!(
                            end <= self.acked,
                            "gap {start}..{end} past the highest ack {} with no bound or timeout reached",
                            self.acked
                        );
                    }
                    assert!(
                        !self.any_sent(start, end),
                        "gap {start}..{end} over a byte that was sent"
                    );
                    self.out = end;
                }
                Ev::Anomaly => {}
            }
            if let Some(f) = self.fin {
                let what = match e {
                    Ev::Data(_) => "data",
                    Ev::Gap(_) => "a gap",
                    Ev::Anomaly => "an anomaly",
                };
                assert!(
                    self.out <= f,
                    "handed on past the FIN at {f}: {what} {start}..{}",
                    self.out
                );
            }
        }
    }
}

fn config(cfg: u8) -> StreamConfig {
    let mut c = StreamConfig::default();
    if cfg & 0x08 != 0 {
        c.hole_timeout = 0;
    }
    if cfg & 0x80 != 0 {
        c.max_ooo_bytes = ByteSize(64 + u64::from(cfg & 0x3f) * 32);
        if cfg & 0x01 != 0 {
            c.memcap = ByteSize(4 << 10);
        }
        match cfg >> 1 & 3 {
            0 => c.overlap_window = ByteSize(0),
            1 => c.overlap_window = ByteSize(64),
            _ => {}
        }
    }
    c
}

pub fn reassembly(data: &[u8]) {
    let mut c = Cursor::new(data);
    let cfg_byte = c.u8();
    let isn = c.u32();
    let mut g = Rig::new(config(cfg_byte));
    if cfg_byte & 0x40 != 0 {
        chaos(&mut g, isn, &mut c);
    } else {
        modelled(&mut g, isn, &mut c);
    }
}

/// Counters whose rise in a call allows a gap the model cannot predict.
fn forcing(g: &Rig) -> u64 {
    let s = &g.st.stats;
    s.ooo_limit_reached + s.segment_memcap_drop + s.ooo_timeout
}

fn modelled(g: &mut Rig, isn: u32, c: &mut Cursor<'_>) {
    let base = isn.wrapping_add(1);
    let mut m = Model {
        first: Vec::new(),
        sent: Vec::new(),
        out: 0,
        fin: None,
        acked: 0,
        late: None,
    };
    g.segment(isn, SYN, b"");
    assert!(g.evs.is_empty(), "events on a bare SYN");
    while !c.is_empty() {
        let kind = c.u8();
        let before = forcing(g);
        match kind % 4 {
            0 | 1 => {
                let off = usize::from(c.u16());
                let len = usize::from(c.u8());
                let payload = c.bytes(len);
                let mut flags = ACK;
                if kind & 4 != 0 {
                    flags |= FIN;
                }
                let mut differs = false;
                let fin_before = m.fin;
                if kind & 8 != 0 {
                    flags |= RST;
                } else {
                    differs = m.differs(off, payload);
                    let end = (off + payload.len()).min(m.sent.len());
                    let mut seen = m.sent.get(off..end).unwrap_or(&[]).to_vec();
                    seen.resize(payload.len(), 0);
                    m.send(off, payload, flags & FIN != 0);
                    m.late = Some((off, seen));
                }
                let timeouts = g.st.stats.ooo_timeout;
                g.segment(base.wrapping_add(off as u32), flags, payload);
                assert!(
                    differs || !g.evs.contains(&Ev::Anomaly),
                    "overlap anomaly on a segment that agrees with every byte sent before"
                );
                let forced = forcing(g) > before;
                if g.st.stats.ooo_timeout == timeouts {
                    m.late = None;
                    m.absorb(&g.evs, Why::Call { forced });
                } else {
                    // The hole timed out before this segment's payload and
                    // FIN were looked at: its FIN counts only if the stream
                    // did not move past it meanwhile.
                    let fin = m.fin;
                    m.fin = fin_before;
                    m.absorb(&g.evs, Why::Call { forced });
                    if fin != fin_before {
                        m.fin = fin.filter(|&f| m.out <= f);
                    }
                    m.late = None;
                }
                continue;
            }
            2 => {
                let off = usize::from(c.u16());
                m.acked = m.acked.max(off);
                g.ack(base.wrapping_add(off as u32));
                assert!(!g.evs.contains(&Ev::Anomaly), "overlap anomaly on an ack");
            }
            _ => {
                g.now = g.now.plus_secs(u64::from(c.u8()));
                continue;
            }
        }
        let forced = forcing(g) > before;
        m.absorb(&g.evs, Why::Call { forced });
        m.late = None;
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
            _ if kind & 4 != 0 => {
                g.flush();
                // A new stream starts after the flush: its anomaly is its
                // own.
                g.anomalies = 0;
            }
            _ => {
                g.now = g.now.plus_secs(u64::from(c.u8()));
                g.evs.clear();
            }
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
