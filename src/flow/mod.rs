//! Flow: the table of conversations.
//!
//! Owns: the direction-independent [`FlowKey`] (VLAN ids, both endpoints,
//! IP protocol), per-flow counters per direction, TCP connection state,
//! timeouts driven by packet time, the memory cap with counted eviction, and
//! the flow's identities (`flow_id`, Community ID v1).
//!
//! The table is generic over `T`, the per-flow state of later stages
//! (reassembly, app-layer parser), so this stage knows nothing of them.
//!
//! Invariants:
//! - Both directions of a conversation map to the same key; the endpoint
//!   that sent the SYN is the *client* (the receiver of a SYN-ACK seen
//!   first); without either, the endpoint on a configured service port
//!   ([`FlowTable::set_service_ports`]) is the server, else one on a
//!   well-known port (< 1024) talking to a higher one, else the sender of
//!   the first packet is the client. `to_server` counters count the
//!   client's packets. A later stage may find the sides the other way round
//!   from the bytes ([`Flow::swap_sides`]): counters, flags and TCP state
//!   are then swapped; `flow_id` and the Community ID do not depend on the
//!   sides and stay as they were.
//! - A TCP RST changes the connection state only when its sequence number
//!   is within `rst_window` of the next byte expected from its sender (known
//!   from that side's segments and the other side's acknowledgements, RFC
//!   9293 §3.10.7.4, RFC 5961 §3): an attacker's blind RST does not close
//!   the flow (counted in `tcp.rst_out_of_window`).
//! - Memory is budgeted in bytes (`flow.memcap`, [`crate::memcap`]): each
//!   flow is charged [`flow_bytes`] — its slot, its index entry at the
//!   index's lowest load and its free-list entry, by `size_of` — to the
//!   worker's lease, which holds at most the worker's equal share of the
//!   budget. The slot and free-list vectors are reserved at that share up
//!   front (address space only: pages become resident as flows fill them),
//!   so they never grow by doubling and the charge bounds the table's real
//!   size from above. A new flow that does not fit evicts the least
//!   recently seen of a small sample (counted once in `flow.memcap`; the
//!   evicted flow ends with reason `forced`), so eviction is O(1), takes an
//!   idle flow and never the newest, and cannot be steered by an attacker
//!   towards a chosen flow.
//! - Timeouts compare packet timestamps only, so replaying a capture gives
//!   the same flows as watching it live.
//! - A flow idle past its timeout at the capture's time before a packet
//!   has ended by timeout, even when that packet is a SYN reusing its
//!   closed tuple: a sweep at that time would have ended it so, and
//!   whether one ran depends on which worker saw that time.

pub mod community_id;
mod index;
pub mod tcp;

use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::decode::{ip_proto, tcp_flags, Vlans};
use crate::memcap::{Lease, MemCap};
use crate::time::Timestamp;

pub use tcp::TcpState;

/// Which way a packet travels within its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client (the endpoint that opened the flow).
    ToServer = 0,
    /// From the server.
    ToClient = 1,
}

impl Direction {
    /// 0 for to-server, 1 for to-client: the index into per-direction arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn reverse(self) -> Direction {
        match self {
            Direction::ToServer => Direction::ToClient,
            Direction::ToClient => Direction::ToServer,
        }
    }
}

/// A direction-independent flow key: the two endpoints in a canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Endpoint with the smaller (address, port).
    lo_addr: [u8; 16],
    hi_addr: [u8; 16],
    lo_port: u16,
    hi_port: u16,
    proto: u8,
    v6: bool,
    vlan: Vlans,
}

/// An address as the bytes the key orders by: the reference the key's
/// integer order is tested against (`dispatch_hash`, its other user, now
/// folds integers too).
#[cfg(test)]
fn addr_to_bytes(a: IpAddr) -> ([u8; 16], bool) {
    match a {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v4.octets());
            (b, false)
        }
        IpAddr::V6(v6) => (v6.octets(), true),
    }
}

/// [`addr_to_bytes`] as a big-endian integer: the same order as the bytes.
fn addr_to_int(a: IpAddr) -> (u128, bool) {
    match a {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, false),
        IpAddr::V6(v6) => (u128::from(v6), true),
    }
}

fn bytes_to_addr(b: &[u8; 16], v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(*b))
    } else {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    }
}

/// One endpoint of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: IpAddr,
    pub port: u16,
}

impl FlowKey {
    /// The key of a packet from `src` to `dst`, and whether `src` is the
    /// key's low endpoint. Ports are zero for protocols without them.
    ///
    /// The endpoints are ordered as their address bytes and then ports
    /// compare, computed on the addresses as 128-bit integers (the same
    /// order: the bytes are big-endian): comparing the byte arrays read
    /// them back just after they were written in pieces, a store the CPU
    /// cannot forward to the load, on every packet.
    pub fn new(vlan: Vlans, proto: u8, src: Endpoint, dst: Endpoint) -> (FlowKey, bool) {
        let (s, v6) = addr_to_int(src.addr);
        let (d, _) = addr_to_int(dst.addr);
        let src_is_lo = (s, src.port) <= (d, dst.port);
        let (lo, lo_port, hi, hi_port) = if src_is_lo {
            (s, src.port, d, dst.port)
        } else {
            (d, dst.port, s, src.port)
        };
        (
            FlowKey {
                lo_addr: lo.to_be_bytes(),
                hi_addr: hi.to_be_bytes(),
                lo_port,
                hi_port,
                proto,
                v6,
                vlan,
            },
            src_is_lo,
        )
    }

    pub fn proto(&self) -> u8 {
        self.proto
    }

    pub fn vlan(&self) -> Vlans {
        self.vlan
    }

    fn lo(&self) -> Endpoint {
        Endpoint {
            addr: bytes_to_addr(&self.lo_addr, self.v6),
            port: self.lo_port,
        }
    }

    fn hi(&self) -> Endpoint {
        Endpoint {
            addr: bytes_to_addr(&self.hi_addr, self.v6),
            port: self.hi_port,
        }
    }

    /// The key's hash in a worker's table: its fields packed into four
    /// integers, four rounds of the hasher where the derived `Hash` (kept
    /// for [`FlowKey::stable_hash`], whose values `flow_id` shows) takes a
    /// dozen. Equal keys hash equal: every field is in.
    #[inline]
    fn table_hash(&self, hasher: &ahash::RandomState) -> u64 {
        let rest = u64::from(self.lo_port)
            | u64::from(self.hi_port) << 16
            | u64::from(self.proto) << 32
            | u64::from(self.v6) << 40
            | u64::from(self.vlan.len) << 48;
        let [a, b, c] = self.vlan.ids;
        let vlan = u64::from(a) | u64::from(b) << 16 | u64::from(c) << 32;
        hasher.hash_one((
            u128::from_ne_bytes(self.lo_addr),
            u128::from_ne_bytes(self.hi_addr),
            rest,
            vlan,
        ))
    }

    /// A hash of the key that is the same in every process and every worker
    /// (fixed seeds), used for `flow_id`.
    fn stable_hash(&self) -> u64 {
        ahash::RandomState::with_seeds(0x7761_7264, 0x7761_7463, 0x6866_6c6f, 0x7769_6420)
            .hash_one(self)
    }
}

/// Why a flow ended (EVE `flow.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Idle longer than the timeout of its state.
    Timeout,
    /// Evicted because the table was full.
    Forced,
    /// Still open when the capture ended.
    Shutdown,
    /// A new TCP connection reused the tuple of a closed one.
    TcpReuse,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Timeout => "timeout",
            EndReason::Forced => "forced",
            EndReason::Shutdown => "shutdown",
            EndReason::TcpReuse => "tcp_reuse",
        }
    }
}

/// One conversation and the later stages' state `T` for it.
#[derive(Debug)]
pub struct Flow<T> {
    pub key: FlowKey,
    /// The client is the key's low endpoint.
    client_is_lo: bool,
    pub start: Timestamp,
    pub last: Timestamp,
    /// Packets and bytes (frame lengths on the wire) per [`Direction`].
    pub pkts: [u64; 2],
    pub bytes: [u64; 2],
    /// TCP flags seen per direction (OR of all segments).
    pub tcp_flags: [u8; 2],
    pub tcp_state: TcpState,
    /// The flow was picked up after its TCP handshake.
    pub midstream: bool,
    pub alerted: bool,
    /// ICMP type and code of the first packet (for the Community ID).
    pub icmp: [u8; 2],
    /// TCP: the next sequence number expected from each side, as far as its
    /// segments and the other side's acks tell (bit `1 << d` of
    /// `seq_known`).
    next_seq: [u32; 2],
    seq_known: u8,
    pub state: T,
}

/// A flow's identity, copied apart from its state: enough to name its
/// endpoints and ids while later stages hold its state borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowIdent {
    pub key: FlowKey,
    client_is_lo: bool,
    pub start: Timestamp,
    icmp: [u8; 2],
}

impl FlowIdent {
    pub fn client(&self) -> Endpoint {
        if self.client_is_lo {
            self.key.lo()
        } else {
            self.key.hi()
        }
    }

    pub fn server(&self) -> Endpoint {
        if self.client_is_lo {
            self.key.hi()
        } else {
            self.key.lo()
        }
    }

    /// A 51-bit id (so it survives JSON readers that use doubles), the same
    /// for every worker count and either orientation: a stable hash of the
    /// key and start time.
    pub fn flow_id(&self) -> u64 {
        let h = self.key.stable_hash() ^ self.start.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h ^ (h >> 29)) & ((1 << 51) - 1)
    }

    /// Community ID v1 with `seed` (the same whichever side is the
    /// client: the specification orders the endpoints).
    pub fn community_id(&self, seed: u16) -> String {
        self.community_id_bytes(seed)
            .iter()
            .map(|&b| char::from(b))
            .collect()
    }

    /// [`FlowIdent::community_id`] as its ASCII bytes, with no allocation.
    pub fn community_id_bytes(&self, seed: u16) -> [u8; community_id::LEN] {
        let (c, s) = (self.client(), self.server());
        match self.key.proto {
            ip_proto::ICMP | ip_proto::ICMPV6 => community_id::community_id_bytes(
                seed,
                c.addr,
                u16::from(self.icmp[0]),
                s.addr,
                u16::from(self.icmp[1]),
                self.key.proto,
            ),
            p => community_id::community_id_bytes(seed, c.addr, c.port, s.addr, s.port, p),
        }
    }

    /// A flow's identity made by hand, for the tests of later stages.
    #[cfg(test)]
    pub fn for_test(
        key: FlowKey,
        client_is_lo: bool,
        start: Timestamp,
        icmp: [u8; 2],
    ) -> FlowIdent {
        FlowIdent {
            key,
            client_is_lo,
            start,
            icmp,
        }
    }

    /// The same flow seen from the other side.
    pub fn swapped(self) -> FlowIdent {
        FlowIdent {
            client_is_lo: !self.client_is_lo,
            ..self
        }
    }
}

impl<T> Flow<T> {
    /// The flow's identity, copied.
    pub fn ident(&self) -> FlowIdent {
        FlowIdent {
            key: self.key,
            client_is_lo: self.client_is_lo,
            start: self.start,
            icmp: self.icmp,
        }
    }

    pub fn client(&self) -> Endpoint {
        self.ident().client()
    }

    pub fn server(&self) -> Endpoint {
        self.ident().server()
    }

    /// See [`FlowIdent::flow_id`].
    pub fn flow_id(&self) -> u64 {
        self.ident().flow_id()
    }

    /// Community ID v1 with `seed`, computed from client to server.
    pub fn community_id(&self, seed: u16) -> String {
        self.ident().community_id(seed)
    }

    /// Makes the client the server and the other way round: per-direction
    /// counters, flags, sequence tracking and the TCP state follow. Ids do
    /// not change.
    pub fn swap_sides(&mut self) {
        self.client_is_lo = !self.client_is_lo;
        self.pkts.swap(0, 1);
        self.bytes.swap(0, 1);
        self.tcp_flags.swap(0, 1);
        self.next_seq.swap(0, 1);
        self.seq_known = ((self.seq_known & 1) << 1) | ((self.seq_known >> 1) & 1);
        self.tcp_state = self.tcp_state.mirrored();
    }

    /// Records what a TCP segment of `dir` says about the next sequence
    /// numbers: its own end (SYN and FIN count one each), and the peer's
    /// next byte from its ack. Values more than 1 GiB ahead of what is known
    /// are nonsense and ignored, like reassembly does.
    fn note_seq(&mut self, dir: Direction, t: &TcpMeta) {
        let d = dir.index();
        let len = t
            .payload_len
            .wrapping_add(u32::from(t.flags & tcp_flags::SYN != 0))
            .wrapping_add(u32::from(t.flags & tcp_flags::FIN != 0));
        self.advance_seq(d, t.seq.wrapping_add(len));
        if t.flags & tcp_flags::ACK != 0 {
            self.advance_seq(1 - d, t.ack);
        }
    }

    fn advance_seq(&mut self, d: usize, v: u32) {
        let bit = 1u8 << d;
        let Some(cur) = self.next_seq.get_mut(d) else {
            return;
        };
        if self.seq_known & bit == 0 {
            *cur = v;
            self.seq_known |= bit;
        } else if v.wrapping_sub(*cur).wrapping_sub(1) < 1 << 30 {
            *cur = v;
        }
    }

    /// Whether an RST with sequence number `seq` sent in `dir` lies within
    /// `window` of the next byte expected from that side (true when nothing
    /// is known of it yet).
    fn rst_in_window(&self, dir: Direction, seq: u32, window: u32) -> bool {
        let d = dir.index();
        if self.seq_known & (1 << d) == 0 {
            return true;
        }
        let next = self.next_seq.get(d).copied().unwrap_or(seq);
        let off = seq.wrapping_sub(next);
        off <= window || off.wrapping_neg() <= window
    }

    /// Whether packets went both ways.
    pub fn bidirectional(&self) -> bool {
        self.pkts[0] > 0 && self.pkts[1] > 0
    }

    /// EVE `flow.state`: `new`, `established` or `closed`.
    pub fn state_name(&self) -> &'static str {
        if self.key.proto == ip_proto::TCP {
            self.tcp_state.flow_state()
        } else if self.bidirectional() {
            "established"
        } else {
            "new"
        }
    }
}

/// Idle timeouts in seconds of packet time, per protocol and state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Before the flow is established (TCP: handshake not complete; others:
    /// one direction seen).
    pub new: u64,
    /// Established.
    pub established: u64,
    /// TCP after both FINs or a RST.
    #[serde(default = "default_closed")]
    pub closed: u64,
}

fn default_closed() -> u64 {
    10
}

/// Flow table settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowConfig {
    /// Bytes of flow table all workers together may hold (`flow.memcap`),
    /// an equal share per worker; a new flow past its worker's share evicts
    /// an idle one. Reassembly and parser state are budgeted apart
    /// (`stream.memcap`, `app_layer.memcap`).
    pub memcap: crate::memcap::ByteSize,
    /// TCP timeouts (Suricata's defaults: 60 / 600 / closed sooner).
    pub tcp: Timeouts,
    /// UDP timeouts.
    pub udp: Timeouts,
    /// ICMP and other protocols.
    pub other: Timeouts,
    /// How often, in seconds of packet time, idle flows are looked for.
    pub sweep_interval: u64,
    /// Bytes an RST's sequence number may lie from the next byte expected
    /// from its sender and still close the flow (a host accepts only the
    /// exact one, RFC 5961 §3.2; the slack covers bytes the capture lost).
    pub rst_window: u32,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            memcap: crate::memcap::ByteSize::mib(32),
            tcp: Timeouts {
                new: 60,
                established: 600,
                closed: 10,
            },
            udp: Timeouts {
                new: 30,
                established: 300,
                closed: 10,
            },
            other: Timeouts {
                new: 30,
                established: 300,
                closed: 10,
            },
            sweep_interval: 1,
            rst_window: 65535,
        }
    }
}

impl FlowConfig {
    /// Idle seconds after which `f` ends, for its protocol and state.
    pub fn timeout<T>(&self, f: &Flow<T>) -> u64 {
        match f.key.proto {
            ip_proto::TCP => match f.tcp_state.flow_state() {
                "new" => self.tcp.new,
                "closed" => self.tcp.closed,
                _ => self.tcp.established,
            },
            p => {
                let t = if p == ip_proto::UDP {
                    &self.udp
                } else {
                    &self.other
                };
                if f.bidirectional() {
                    t.established
                } else {
                    t.new
                }
            }
        }
    }
}

/// Flow counters, in Suricata's `stats.flow` / `stats.tcp` names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub total: u64,
    pub tcp: u64,
    pub udp: u64,
    pub icmpv4: u64,
    pub icmpv6: u64,
    /// New flows that found the worker's share of `flow.memcap` used up
    /// (each evicted an idle flow, ended as `forced`).
    pub memcap: u64,
    pub timeouts: u64,
    pub tcp_reuse: u64,
    pub midstream_pickups: u64,
    pub syn: u64,
    pub synack: u64,
    pub rst: u64,
    /// RSTs too far from the expected sequence number to close their flow.
    pub rst_out_of_window: u64,
    /// Flows still open at the end, per EVE flow state.
    pub end_new: u64,
    pub end_established: u64,
    pub end_closed: u64,
}

impl FlowStats {
    pub fn merge(&mut self, o: &FlowStats) {
        self.total += o.total;
        self.tcp += o.tcp;
        self.udp += o.udp;
        self.icmpv4 += o.icmpv4;
        self.icmpv6 += o.icmpv6;
        self.memcap += o.memcap;
        self.timeouts += o.timeouts;
        self.tcp_reuse += o.tcp_reuse;
        self.midstream_pickups += o.midstream_pickups;
        self.syn += o.syn;
        self.synack += o.synack;
        self.rst += o.rst;
        self.rst_out_of_window += o.rst_out_of_window;
        self.end_new += o.end_new;
        self.end_established += o.end_established;
        self.end_closed += o.end_closed;
    }

    /// Every counter as a dotted path below `stats`.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("flow.total", self.total),
            ("flow.tcp", self.tcp),
            ("flow.udp", self.udp),
            ("flow.icmpv4", self.icmpv4),
            ("flow.icmpv6", self.icmpv6),
            ("flow.memcap", self.memcap),
            ("flow.mgr.flows_timeout", self.timeouts),
            ("flow.tcp_reuse", self.tcp_reuse),
            ("flow.end.state.new", self.end_new),
            ("flow.end.state.established", self.end_established),
            ("flow.end.state.closed", self.end_closed),
            ("tcp.sessions", self.tcp),
            ("tcp.midstream_pickups", self.midstream_pickups),
            ("tcp.syn", self.syn),
            ("tcp.synack", self.synack),
            ("tcp.rst", self.rst),
            ("tcp.rst_out_of_window", self.rst_out_of_window),
        ]
    }
}

/// What a packet looked like to the flow table.
#[derive(Debug, Clone, Copy)]
pub struct PacketMeta {
    pub ts: Timestamp,
    /// The capture's packet time before this packet, over every worker's
    /// packets (later than `ts` when time ran backwards): a flow idle past
    /// its timeout by then has ended, whatever this packet's own time, as
    /// a sweep at that time would have ended it — so whether the packet
    /// continues the flow or starts a new one does not depend on the
    /// worker count.
    pub clock: Timestamp,
    pub vlan: Vlans,
    pub proto: u8,
    pub src: Endpoint,
    pub dst: Endpoint,
    /// TCP flags, 0 for other protocols.
    pub tcp_flags: u8,
    /// Frame length on the wire (summed over fragments of a reassembled
    /// datagram).
    pub wire_bytes: u64,
    /// Frames this packet stands for (more than one for a reassembled
    /// datagram).
    pub frames: u32,
    /// ICMP type and code; zero for other protocols.
    pub icmp: [u8; 2],
    /// TCP sequence numbers (zero for other protocols).
    pub tcp: TcpMeta,
}

/// What the flow table reads of a TCP header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpMeta {
    pub seq: u32,
    pub ack: u32,
    /// Same as [`PacketMeta::tcp_flags`].
    pub flags: u8,
    pub payload_len: u32,
}

/// How many [`FlowTable::expect`] calls after its index group a key's
/// slot is asked for: the group has come from memory by then.
const AHEAD: usize = 2;

/// Flows from which [`FlowTable::expect`] asks for memory ahead: 32 768
/// slots are 7.6 MB, far past a core's L2 cache. On `dicom_bulk` (7 200
/// flows, their slots mostly in the cache) the hints cost 2 % of the CPU
/// time and saved nothing; on `mqtt_small` (126 000 flows) they took the
/// wait for the index and the slot out of `FlowTable::update`.
const EXPECT_FLOWS: usize = 32_768;

/// Sampled slots examined when the table is full.
const EVICTION_SAMPLE: usize = 8;

/// Bytes one flow is charged to `flow.memcap`: its slot, its index entry
/// (slot number and one control byte) at the hash table's lowest load, and
/// its free-list entry. The index (hashbrown's scheme, module `index`)
/// doubles when it must grow while more than 7/16 of its buckets are live
/// (deleted entries take room until it is rebuilt), so at worst 7/32 are:
/// 32/7 of an entry per flow. For the worker's flows on x86-64:
/// 232 + 23 + 4 = 259 bytes. While the index is rebuilt, its old buckets
/// (at most as many as the new ones) live a moment more.
/// The flow's reassembly and parser state are charged to their own
/// budgets.
pub fn flow_bytes<T>() -> u64 {
    let entry = std::mem::size_of::<u32>() + 1;
    let size = std::mem::size_of::<Option<Flow<T>>>()
        + (entry * 32).div_ceil(7)
        + std::mem::size_of::<u32>();
    size as u64
}

/// The flow table of one worker.
pub struct FlowTable<T> {
    cfg: FlowConfig,
    /// This worker's share of `flow.memcap`: [`flow_bytes`] per flow.
    lease: Lease,
    flow_bytes: u64,
    /// Slot numbers by the hash of their flow's key: the key lives in the
    /// slot only (5 bytes a bucket, where a copy of the key would take 53).
    index: index::Index,
    /// Hashes of the keys [`FlowTable::expect`]ed, newest last, whose
    /// slots are asked for [`AHEAD`] calls later.
    ahead: [u64; AHEAD],
    ahead_at: usize,
    hasher: ahash::RandomState,
    slots: Vec<Option<Flow<T>>>,
    free: Vec<u32>,
    stats: FlowStats,
    next_sweep: Timestamp,
    /// Rotates the eviction sample over the slots.
    evict_cursor: usize,
    /// Ports of configured services, one bit each (see
    /// [`FlowTable::set_service_ports`]).
    service: Option<Box<[u64; 1024]>>,
}

impl<T: Default> FlowTable<T> {
    /// A table alone in its budget: all of `cfg.memcap`.
    pub fn new(cfg: FlowConfig) -> Self {
        let lease = MemCap::new("flow.memuse", cfg.memcap.0).lease();
        FlowTable::with_lease(cfg, lease)
    }

    /// A table drawing on `lease` (one worker's share of the run's
    /// `flow.memcap`).
    pub fn with_lease(cfg: FlowConfig, lease: Lease) -> Self {
        let flow_bytes = flow_bytes::<T>();
        // Room for as many flows as the share can pay for, reserved once:
        // untouched pages cost no memory, and the vectors never copy
        // themselves into twice the size mid-flood. If the address space
        // is not there (a huge memcap), they grow as usual.
        let most = usize::try_from(lease.capacity() / flow_bytes).unwrap_or(usize::MAX);
        let mut slots = Vec::new();
        let mut free = Vec::new();
        if slots.try_reserve_exact(most).is_err() || free.try_reserve_exact(most).is_err() {
            slots = Vec::new();
            free = Vec::new();
        }
        FlowTable {
            cfg,
            lease,
            flow_bytes,
            index: index::Index::new(),
            ahead: [0; AHEAD],
            ahead_at: 0,
            hasher: ahash::RandomState::new(),
            slots,
            free,
            stats: FlowStats::default(),
            next_sweep: Timestamp(0),
            evict_cursor: 0,
            service: None,
        }
    }

    /// Ports that configured services listen on: without a SYN, the side
    /// using one (and not the other) is taken for the server.
    pub fn set_service_ports(&mut self, ports: impl IntoIterator<Item = u16>) {
        let mut bits = Box::new([0u64; 1024]);
        for p in ports {
            if let Some(w) = bits.get_mut(usize::from(p) / 64) {
                *w |= 1 << (p % 64);
            }
        }
        self.service = Some(bits);
    }

    fn is_service(&self, port: u16) -> bool {
        self.service.as_ref().is_some_and(|b| {
            b.get(usize::from(port) / 64)
                .is_some_and(|w| w & (1 << (port % 64)) != 0)
        })
    }

    pub fn stats(&self) -> &FlowStats {
        &self.stats
    }

    /// Bytes of `flow.memcap` this table holds ([`flow_bytes`] per flow).
    pub fn memuse(&self) -> u64 {
        self.lease.held()
    }

    /// Flows currently tracked.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Whether [`FlowTable::expect`] does anything: only for a table of
    /// at least [`EXPECT_FLOWS`] flows, whose slots the cache does not hold.
    #[inline]
    pub fn worth_expecting(&self) -> bool {
        self.index.len() >= EXPECT_FLOWS
    }

    /// Says that a packet of the flow `key` comes soon (a few packets
    /// on): the index group its lookup reads is asked for now, and the
    /// slots named in the groups of the keys expected [`AHEAD`] calls ago
    /// (read by now) are asked for too, so that [`FlowTable::update`]
    /// finds both in the cache. Only a hint: what any call returns does not
    /// depend on it.
    #[inline]
    pub fn expect(&mut self, key: &FlowKey) {
        if !self.worth_expecting() {
            return;
        }
        let hash = key.table_hash(&self.hasher);
        self.index.prefetch(hash);
        let at = self.ahead_at % AHEAD;
        self.ahead_at = self.ahead_at.wrapping_add(1);
        let Some(old) = self.ahead.get_mut(at) else {
            return;
        };
        let earlier = std::mem::replace(old, hash);
        for slot in self.index.candidates(earlier) {
            if let Some(f) = self.slots.get(slot as usize) {
                crate::hint::prefetch_value(f);
            }
        }
    }

    /// Finds or creates the flow of `pkt`, updates its counters and TCP
    /// state, and returns its slot and the packet's direction. Flows that
    /// ended on the way (timed out, reused, evicted) are pushed to `ended`.
    pub fn update(
        &mut self,
        pkt: &PacketMeta,
        ended: &mut Vec<(Flow<T>, EndReason)>,
    ) -> (u32, Direction) {
        let (key, src_is_lo) = FlowKey::new(pkt.vlan, pkt.proto, pkt.src, pkt.dst);
        let hash = key.table_hash(&self.hasher);
        let slots = &self.slots;
        let mut slot = self.index.find(hash, |i| {
            slots
                .get(i as usize)
                .and_then(Option::as_ref)
                .is_some_and(|f| f.key == key)
        });
        if let Some(idx) = slot {
            if let Some(f) = self.slots.get(idx as usize).and_then(Option::as_ref) {
                let idle = pkt.ts.max(pkt.clock).since(f.last) / 1_000_000_000;
                let reuse = f.key.proto == ip_proto::TCP
                    && pkt.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN
                    && f.tcp_state.flow_state() == "closed";
                let expired = idle > self.cfg.timeout(f);
                if reuse || expired {
                    // Timed out first: a sweep at the capture's time before
                    // this packet ended it so, and whether a sweep ran there
                    // depends on which worker saw that time.
                    let reason = if expired {
                        EndReason::Timeout
                    } else {
                        EndReason::TcpReuse
                    };
                    if let Some(old) = self.remove(idx) {
                        self.count_end(&old, reason);
                        ended.push((old, reason));
                    }
                    slot = None;
                }
            }
        }
        let idx = match slot {
            Some(idx) => idx,
            None => self.create(key, hash, src_is_lo, pkt, ended),
        };
        let dir = match self.slots.get_mut(idx as usize).and_then(Option::as_mut) {
            Some(f) => {
                let dir = if src_is_lo == f.client_is_lo {
                    Direction::ToServer
                } else {
                    Direction::ToClient
                };
                let d = dir.index();
                f.pkts[d] += u64::from(pkt.frames);
                f.bytes[d] += pkt.wire_bytes;
                if pkt.ts > f.last {
                    f.last = pkt.ts;
                }
                if f.key.proto == ip_proto::TCP {
                    f.tcp_flags[d] |= pkt.tcp_flags;
                    let mut flags = pkt.tcp_flags;
                    if flags & tcp_flags::RST != 0 {
                        if f.rst_in_window(dir, pkt.tcp.seq, self.cfg.rst_window) {
                            f.note_seq(dir, &pkt.tcp);
                        } else {
                            flags &= !tcp_flags::RST;
                            self.stats.rst_out_of_window += 1;
                        }
                    } else {
                        f.note_seq(dir, &pkt.tcp);
                    }
                    f.tcp_state = f.tcp_state.next(dir, flags);
                    self.stats.syn += u64::from(
                        pkt.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN,
                    );
                    self.stats.synack += u64::from(
                        pkt.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK)
                            == tcp_flags::SYN | tcp_flags::ACK,
                    );
                    self.stats.rst += u64::from(pkt.tcp_flags & tcp_flags::RST != 0);
                }
                dir
            }
            None => Direction::ToServer,
        };
        self.maybe_sweep(pkt.ts, ended);
        (idx, dir)
    }

    pub fn get_mut(&mut self, idx: u32) -> Option<&mut Flow<T>> {
        self.slots.get_mut(idx as usize).and_then(Option::as_mut)
    }

    fn create(
        &mut self,
        key: FlowKey,
        hash: u64,
        src_is_lo: bool,
        pkt: &PacketMeta,
        ended: &mut Vec<(Flow<T>, EndReason)>,
    ) -> u32 {
        self.make_room(ended);
        // The client is the sender of the first packet, except that a
        // SYN-ACK seen first (handshake start missed) comes from the server,
        // and that without a SYN a packet from a configured service port (to
        // a port that is not one), or else from a port of a lower class to
        // one of a higher class (well-known < 1024, registered < 32768,
        // then the ephemeral ranges Linux and Windows pick client ports
        // from), is taken to come from the server.
        let syn = pkt.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK);
        let tcp = pkt.proto == ip_proto::TCP;
        let (src_svc, dst_svc) = if tcp {
            (self.is_service(pkt.src.port), self.is_service(pkt.dst.port))
        } else {
            (false, false)
        };
        let from_server = if tcp && syn == tcp_flags::SYN | tcp_flags::ACK {
            true
        } else if tcp && syn == tcp_flags::SYN {
            false
        } else if src_svc != dst_svc {
            src_svc
        } else {
            port_class(pkt.src.port) < port_class(pkt.dst.port)
        };
        let client_is_lo = src_is_lo != from_server;
        let midstream = pkt.proto == ip_proto::TCP && pkt.tcp_flags & tcp_flags::SYN == 0;
        let flow = Flow {
            key,
            client_is_lo,
            start: pkt.ts,
            last: pkt.ts,
            pkts: [0; 2],
            bytes: [0; 2],
            tcp_flags: [0; 2],
            tcp_state: TcpState::None,
            midstream,
            alerted: false,
            icmp: pkt.icmp,
            next_seq: [0; 2],
            seq_known: 0,
            state: T::default(),
        };
        self.stats.total += 1;
        match pkt.proto {
            ip_proto::TCP => self.stats.tcp += 1,
            ip_proto::UDP => self.stats.udp += 1,
            ip_proto::ICMP => self.stats.icmpv4 += 1,
            ip_proto::ICMPV6 => self.stats.icmpv6 += 1,
            _ => {}
        }
        self.stats.midstream_pickups += u64::from(midstream);
        let idx = match self.free.pop() {
            Some(i) => {
                if let Some(s) = self.slots.get_mut(i as usize) {
                    *s = Some(flow);
                }
                i
            }
            None => {
                self.slots.push(Some(flow));
                // The budget holds far fewer than u32::MAX flows of 259
                // bytes.
                (self.slots.len() - 1) as u32
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash, idx, |i| {
            slots
                .get(i as usize)
                .and_then(Option::as_ref)
                .map_or(0, |f| f.key.table_hash(hasher))
        });
        idx
    }

    /// Takes slot `idx`, whose flow has `key`, out of the index.
    fn unindex(&mut self, key: &FlowKey, idx: u32) {
        let hash = key.table_hash(&self.hasher);
        self.index.remove(hash, idx);
    }

    fn remove(&mut self, idx: u32) -> Option<Flow<T>> {
        let f = self.slots.get_mut(idx as usize)?.take()?;
        self.unindex(&f.key, idx);
        self.free.push(idx);
        self.lease.release(self.flow_bytes);
        Some(f)
    }

    /// Reserves one flow's bytes, evicting idle flows while this worker's
    /// share is used up (counted once in `flow.memcap`). Every flow costs
    /// the same, so one eviction makes room. A worker left with no flow
    /// to evict (a budget smaller than a few granules per worker) tracks
    /// the new flow unreserved: at most one flow per worker is.
    fn make_room(&mut self, ended: &mut Vec<(Flow<T>, EndReason)>) {
        if self.lease.try_reserve(self.flow_bytes) {
            return;
        }
        self.stats.memcap += 1;
        while !self.index.is_empty() {
            self.evict_one(ended);
            if self.lease.try_reserve(self.flow_bytes) {
                return;
            }
        }
    }

    fn count_end(&mut self, f: &Flow<T>, reason: EndReason) {
        match reason {
            EndReason::Timeout => self.stats.timeouts += 1,
            EndReason::Forced => {}
            EndReason::TcpReuse => self.stats.tcp_reuse += 1,
            EndReason::Shutdown => {}
        }
        match f.state_name() {
            "new" => self.stats.end_new += 1,
            "closed" => self.stats.end_closed += 1,
            _ => self.stats.end_established += 1,
        }
    }

    /// Evicts the least recently seen flow among a few slots sampled from
    /// a rotating cursor.
    fn evict_one(&mut self, ended: &mut Vec<(Flow<T>, EndReason)>) {
        let n = self.slots.len();
        if n == 0 {
            return;
        }
        let mut victim: Option<(u32, Timestamp)> = None;
        let mut looked = 0;
        let mut steps = 0;
        while looked < EVICTION_SAMPLE && steps < n {
            let i = self.evict_cursor % n;
            self.evict_cursor = self.evict_cursor.wrapping_add(1);
            steps += 1;
            if let Some(Some(f)) = self.slots.get(i) {
                looked += 1;
                if victim.is_none_or(|(_, t)| f.last < t) {
                    victim = Some((i as u32, f.last));
                }
            }
        }
        if let Some((i, _)) = victim {
            if let Some(f) = self.remove(i) {
                self.count_end(&f, EndReason::Forced);
                ended.push((f, EndReason::Forced));
            }
        }
    }

    /// Lets packet time advance without a packet (a worker that received
    /// none for a while): sweeps idle flows when a sweep is due.
    pub fn tick(&mut self, now: Timestamp, ended: &mut Vec<(Flow<T>, EndReason)>) {
        self.maybe_sweep(now, ended);
    }

    fn maybe_sweep(&mut self, now: Timestamp, ended: &mut Vec<(Flow<T>, EndReason)>) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now.plus_secs(self.cfg.sweep_interval.max(1));
        self.expire(now, ended);
    }

    /// Ends every flow idle for longer than its timeout at `now`.
    pub fn expire(&mut self, now: Timestamp, ended: &mut Vec<(Flow<T>, EndReason)>) {
        for i in 0..self.slots.len() {
            let expired = match self.slots.get(i) {
                Some(Some(f)) => now.since(f.last) / 1_000_000_000 > self.cfg.timeout(f),
                _ => false,
            };
            if expired {
                if let Some(f) = self.remove(i as u32) {
                    self.count_end(&f, EndReason::Timeout);
                    ended.push((f, EndReason::Timeout));
                }
            }
        }
    }

    /// Ends up to `max` flows (capture over), newest slots first; returns
    /// whether flows remain. Called in a loop so that the records of a
    /// million open flows are written a block at a time.
    pub fn drain(&mut self, max: usize, ended: &mut Vec<(Flow<T>, EndReason)>) -> bool {
        let mut n = 0;
        while n < max {
            let Some(slot) = self.slots.pop() else {
                break;
            };
            if let Some(f) = slot {
                // The popped slot's number is the new length.
                self.unindex(&f.key, self.slots.len() as u32);
                self.lease.release(self.flow_bytes);
                self.count_end(&f, EndReason::Shutdown);
                ended.push((f, EndReason::Shutdown));
                n += 1;
            }
        }
        if self.slots.is_empty() {
            self.slots = Vec::new();
            self.free = Vec::new();
            return false;
        }
        true
    }
}

/// A hash of a packet's VLANs and address pair that is the same for both
/// directions and for every fragment of a datagram: the reader uses it to
/// pick the worker, so one conversation always lands on one worker.
///
/// Each address is folded to 64 bits and the two are added (addition is
/// what makes it the same both ways), the VLAN ids mixed in, and the sum
/// finished with MurmurHash3's 64-bit finaliser (`fmix64`), so every bit
/// of the result depends on every bit of the input and [`worker_of`]
/// spreads even addresses that differ in one bit. About 25 instructions
/// where ahash over the 38 bytes took about 90; every worker of a
/// multi-worker run computes it for every packet. Not keyed: who chooses
/// the addresses can choose the worker, as with any fixed hash.
pub fn dispatch_hash(vlan: Vlans, a: IpAddr, b: IpAddr) -> u64 {
    #[inline(always)]
    fn fold(a: IpAddr) -> u64 {
        match a {
            IpAddr::V4(v4) => u64::from(u32::from(v4)),
            IpAddr::V6(v6) => {
                let w = u128::from(v6);
                // The halves of the address, folded: truncation meant.
                (w as u64) ^ ((w >> 64) as u64)
            }
        }
    }
    let [v0, v1, v2] = vlan.ids;
    let tags =
        u64::from(v0) | (u64::from(v1) << 16) | (u64::from(v2) << 32) | (u64::from(vlan.len) << 48);
    let mut h = fold(a)
        .wrapping_add(fold(b))
        .wrapping_add(tags.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The worker (below `workers`, at least 1) of a packet whose
/// [`dispatch_hash`] is `hash`: the hash scaled into the range (its high
/// bits choose), which takes a multiplication where the remainder took a
/// 64-bit division on every packet of a multi-worker run (a tenth of the
/// shared walk's own time on dicom_bulk).
#[inline]
pub fn worker_of(hash: u64, workers: usize) -> usize {
    // The product's high word is below `workers`: it fits in usize.
    ((u128::from(hash) * workers.max(1) as u128) >> 64) as usize
}

/// 0 for well-known ports, 1 for registered ones, 2 for the ranges
/// client ports are picked from (Linux 32768–60999, Windows and IANA
/// 49152–65535).
fn port_class(port: u16) -> u8 {
    match port {
        0..1024 => 0,
        1024..32768 => 1,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ep(a: &str, port: u16) -> Endpoint {
        Endpoint {
            addr: a.parse().unwrap(),
            port,
        }
    }

    fn tcp(ts_s: u64, src: Endpoint, dst: Endpoint, flags: u8) -> PacketMeta {
        PacketMeta {
            ts: Timestamp::from_parts(ts_s, 0),
            clock: Timestamp(0),
            vlan: Vlans::default(),
            proto: ip_proto::TCP,
            src,
            dst,
            tcp_flags: flags,
            wire_bytes: 100,
            frames: 1,
            icmp: [0, 0],
            tcp: TcpMeta {
                flags,
                ..TcpMeta::default()
            },
        }
    }

    const C: (&str, u16) = ("10.20.1.15", 50000);
    const S: (&str, u16) = ("10.10.5.10", 1883);

    #[test]
    fn both_directions_share_a_flow_and_count_apart() {
        let mut t: FlowTable<()> = FlowTable::new(FlowConfig::default());
        let mut ended = Vec::new();
        let (c, s) = (ep(C.0, C.1), ep(S.0, S.1));
        let (i, d) = t.update(&tcp(1, c, s, tcp_flags::SYN), &mut ended);
        assert_eq!(d, Direction::ToServer);
        let (j, d) = t.update(&tcp(1, s, c, tcp_flags::SYN | tcp_flags::ACK), &mut ended);
        assert_eq!((i, d), (j, Direction::ToClient));
        t.update(&tcp(1, c, s, tcp_flags::ACK), &mut ended);
        let f = t.get_mut(i).unwrap();
        assert_eq!(f.pkts, [2, 1]);
        assert_eq!(f.bytes, [200, 100]);
        assert_eq!(f.client(), c);
        assert_eq!(f.tcp_state, TcpState::Established);
        assert!(ended.is_empty());
    }

    #[test]
    fn packet_behind_the_capture_clock_ends_a_flow_idle_by_then() {
        // Found by fuzzing (pipeline_workers): with time running backwards,
        // a packet continued a flow idle past its timeout at the capture's
        // time when its worker had not swept (several workers) and started
        // a new one when it had (one worker). Hand-built: a SYN at 1 s,
        // then, after the capture reached 1000 s, the flow's ACK stamped
        // 2 s: a new flow, the old one ended by timeout.
        let mut t: FlowTable<()> = FlowTable::new(FlowConfig::default());
        let mut ended = Vec::new();
        let (c, s) = (ep(C.0, C.1), ep(S.0, S.1));
        let (i, _) = t.update(&tcp(1, c, s, tcp_flags::SYN), &mut ended);
        let mut late = tcp(2, c, s, tcp_flags::ACK);
        late.clock = Timestamp::from_parts(1000, 0);
        let (j, _) = t.update(&late, &mut ended);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].1, EndReason::Timeout);
        assert_eq!(t.get_mut(j).unwrap().pkts, [1, 0], "{i} {j}");
        // Within the timeout by the capture's time: the same flow.
        let mut near = tcp(3, c, s, tcp_flags::ACK);
        near.clock = Timestamp::from_parts(4, 0);
        let (k, _) = t.update(&near, &mut ended);
        assert_eq!((k, ended.len()), (j, 1));
    }

    #[test]
    fn synack_first_makes_its_receiver_the_client() {
        let mut t: FlowTable<()> = FlowTable::new(FlowConfig::default());
        let mut ended = Vec::new();
        let (c, s) = (ep(C.0, C.1), ep(S.0, S.1));
        let (i, d) = t.update(&tcp(1, s, c, tcp_flags::SYN | tcp_flags::ACK), &mut ended);
        assert_eq!(d, Direction::ToClient);
        assert_eq!(t.get_mut(i).unwrap().client(), c);
    }

    #[test]
    fn midstream_packet_from_well_known_port_makes_its_receiver_the_client() {
        let mut t: FlowTable<()> = FlowTable::new(FlowConfig::default());
        let mut ended = Vec::new();
        let (c, s) = (ep("10.20.3.7", 40000), ep("10.10.7.20", 104));
        let (i, d) = t.update(&tcp(1, s, c, tcp_flags::ACK | tcp_flags::PSH), &mut ended);
        assert_eq!(d, Direction::ToClient);
        assert_eq!(t.get_mut(i).unwrap().client(), c);
        assert!(t.get_mut(i).unwrap().midstream);
    }

    #[test]
    fn midstream_packet_from_registered_to_ephemeral_port_makes_its_receiver_the_client() {
        let mut t: FlowTable<()> = FlowTable::new(FlowConfig::default());
        let mut ended = Vec::new();
        // An HL7 interface engine on 6661 answering a client's port 52446.
        let (c, s) = (ep("10.20.4.21", 52446), ep("10.10.5.11", 6661));
        let (i, d) = t.update(&tcp(1, s, c, tcp_flags::ACK | tcp_flags::PSH), &mut ended);
        assert_eq!(d, Direction::ToClient);
        assert_eq!(t.get_mut(i).unwrap().client(), c);
        // Two registered ports: the first packet's sender stays the client.
        let (c, s) = (ep("10.20.4.21", 5000), ep("10.10.5.11", 6661));
        let (i, d) = t.update(&tcp(2, c, s, tcp_flags::ACK | tcp_flags::PSH), &mut ended);
        assert_eq!(d, Direction::ToServer);
        assert_eq!(t.get_mut(i).unwrap().client(), c);
    }

    #[test]
    fn vlans_separate_flows() {
        let mut t: FlowTable<()> = FlowTable::new(FlowConfig::default());
        let mut ended = Vec::new();
        let mut p = tcp(1, ep(C.0, C.1), ep(S.0, S.1), tcp_flags::SYN);
        t.update(&p, &mut ended);
        p.vlan = Vlans {
            ids: [120, 0, 0],
            len: 1,
        };
        t.update(&p, &mut ended);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn idle_flow_times_out_by_packet_time_and_a_new_one_starts() {
        let mut t: FlowTable<()> = FlowTable::new(FlowConfig::default());
        let mut ended = Vec::new();
        let (c, s) = (ep(C.0, C.1), ep(S.0, S.1));
        t.update(&tcp(1, c, s, tcp_flags::SYN), &mut ended);
        // New TCP flows time out after 60 s of packet time; 61 s later the
        // same tuple is a new flow.
        t.update(&tcp(62, c, s, tcp_flags::ACK), &mut ended);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].1, EndReason::Timeout);
        assert_eq!(t.stats().total, 2);
        // A flow on another tuple is swept once its timeout passes.
        ended.clear();
        let other = ep("10.20.1.16", 50001);
        t.update(&tcp(100, other, s, tcp_flags::ACK), &mut ended);
        assert_eq!(ended.len(), 0, "established flow idle 38 s is kept");
        t.update(&tcp(700, other, s, tcp_flags::ACK), &mut ended);
        assert!(ended
            .iter()
            .any(|(f, r)| f.client() == c && *r == EndReason::Timeout));
    }

    #[test]
    fn syn_on_closed_flow_is_tcp_reuse() {
        let mut t: FlowTable<()> = FlowTable::new(FlowConfig::default());
        let mut ended = Vec::new();
        let (c, s) = (ep(C.0, C.1), ep(S.0, S.1));
        t.update(&tcp(1, c, s, tcp_flags::SYN), &mut ended);
        t.update(&tcp(1, s, c, tcp_flags::RST | tcp_flags::ACK), &mut ended);
        t.update(&tcp(2, c, s, tcp_flags::SYN), &mut ended);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].1, EndReason::TcpReuse);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn syn_on_closed_flow_idle_past_its_timeout_is_a_timeout_not_a_reuse() {
        // Found by fuzzing (pipeline_workers): a closed flow idle past its
        // timeout when a SYN reused its tuple ended `timeout` with one
        // worker (a non-IP frame at the later time swept it first) and
        // `tcp_reuse` with two (that frame went to the other worker).
        // Hand-built: SYN and RST at 1 s, the capture's time at 40 s
        // (closed flows time out after 10 s by default), then a SYN.
        let mut t: FlowTable<()> = FlowTable::new(FlowConfig::default());
        let mut ended = Vec::new();
        let (c, s) = (ep(C.0, C.1), ep(S.0, S.1));
        t.update(&tcp(1, c, s, tcp_flags::SYN), &mut ended);
        t.update(&tcp(1, s, c, tcp_flags::RST | tcp_flags::ACK), &mut ended);
        let mut syn = tcp(1, c, s, tcp_flags::SYN);
        syn.clock = Timestamp::from_parts(40, 0);
        t.update(&syn, &mut ended);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].1, EndReason::Timeout);
        assert_eq!((t.stats().timeouts, t.stats().tcp_reuse), (1, 0));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn table_at_its_byte_cap_evicts_the_least_recently_seen_and_counts_it() {
        // Room for exactly four flows.
        let cfg = FlowConfig {
            memcap: crate::memcap::ByteSize(4 * flow_bytes::<()>()),
            ..FlowConfig::default()
        };
        let mut t: FlowTable<()> = FlowTable::new(cfg);
        let mut ended = Vec::new();
        let s = ep(S.0, S.1);
        // Four flows opened at seconds 1..=4; the first is seen again at 5.
        for port in 0..4u16 {
            t.update(
                &tcp(
                    1 + u64::from(port),
                    ep(C.0, 40000 + port),
                    s,
                    tcp_flags::SYN,
                ),
                &mut ended,
            );
        }
        t.update(&tcp(5, ep(C.0, 40000), s, tcp_flags::SYN), &mut ended);
        assert_eq!(t.memuse(), 4 * flow_bytes::<()>());
        assert!(ended.is_empty());
        // A fifth flow evicts the one seen least recently (port 40001, last
        // seen at 2 s), not the newest and not the one just seen again.
        t.update(&tcp(6, ep(C.0, 40100), s, tcp_flags::SYN), &mut ended);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].0.client(), ep(C.0, 40001));
        assert_eq!(ended[0].1, EndReason::Forced);
        assert_eq!((t.len(), t.stats().memcap), (4, 1));
        assert_eq!(t.memuse(), 4 * flow_bytes::<()>());
        // Six more new flows: six more evictions, each counted once.
        for port in 0..6u16 {
            t.update(
                &tcp(7, ep(C.0, 41000 + port), s, tcp_flags::SYN),
                &mut ended,
            );
            assert!(t.len() <= 4);
        }
        assert_eq!(ended.len(), 7);
        assert!(ended.iter().all(|(_, r)| *r == EndReason::Forced));
        assert_eq!(t.stats().memcap, 7);
        // Draining at shutdown ends the rest.
        ended.clear();
        assert!(t.drain(3, &mut ended));
        assert_eq!(ended.len(), 3);
        assert!(!t.drain(3, &mut ended));
        assert_eq!(ended.len(), 4);
        assert!(t.is_empty());
    }

    #[test]
    fn memuse_returns_to_zero_once_every_flow_ended() {
        let cap = MemCap::new("flow.memuse", 1 << 20);
        let mut t: FlowTable<()> = FlowTable::with_lease(FlowConfig::default(), cap.lease());
        let mut ended = Vec::new();
        let s = ep(S.0, S.1);
        for port in 0..100u16 {
            t.update(
                &tcp(1, ep(C.0, 40000 + port), s, tcp_flags::SYN),
                &mut ended,
            );
        }
        // One reused after a RST, then half of them time out, the rest end
        // at shutdown.
        t.update(
            &tcp(1, s, ep(C.0, 40000), tcp_flags::RST | tcp_flags::ACK),
            &mut ended,
        );
        t.update(&tcp(2, ep(C.0, 40000), s, tcp_flags::SYN), &mut ended);
        assert_eq!(ended.len(), 1);
        for port in 0..50u16 {
            t.update(
                &tcp(30, ep(C.0, 40000 + port), s, tcp_flags::ACK),
                &mut ended,
            );
        }
        assert_eq!(t.memuse(), 100 * flow_bytes::<()>());
        assert!(cap.used() >= t.memuse());
        t.expire(Timestamp::from_parts(62, 0), &mut ended);
        assert_eq!(t.len(), 50);
        assert_eq!(t.memuse(), 50 * flow_bytes::<()>());
        while t.drain(7, &mut ended) {}
        assert_eq!(ended.len(), 101);
        assert_eq!(t.memuse(), 0);
        drop(t);
        assert_eq!(cap.used(), 0);
    }

    #[test]
    fn a_worker_at_its_share_evicts_its_own_flows_and_not_the_other_workers() {
        // Two workers share a budget of eight flows: four each.
        let fb = flow_bytes::<()>();
        let cap = MemCap::new("flow.memuse", 8 * fb);
        let mut a: FlowTable<()> = FlowTable::with_lease(FlowConfig::default(), cap.lease_share(2));
        let mut b: FlowTable<()> = FlowTable::with_lease(FlowConfig::default(), cap.lease_share(2));
        let mut ended = Vec::new();
        let s = ep(S.0, S.1);
        for port in 0..3u16 {
            b.update(
                &tcp(1, ep(C.0, 30000 + port), s, tcp_flags::SYN),
                &mut ended,
            );
        }
        // A flood on worker a.
        for port in 0..1000u16 {
            a.update(
                &tcp(2, ep("10.99.0.1", 1024 + port), s, tcp_flags::SYN),
                &mut ended,
            );
        }
        assert_eq!((a.len(), a.stats().memcap), (4, 996));
        // b still opens its fourth flow without evicting anything.
        ended.clear();
        b.update(&tcp(3, ep(C.0, 30003), s, tcp_flags::SYN), &mut ended);
        assert!(ended.is_empty());
        assert_eq!((b.len(), b.stats().memcap), (4, 0));
    }

    #[test]
    fn flow_id_is_stable_and_51_bits() {
        let mut t: FlowTable<()> = FlowTable::new(FlowConfig::default());
        let mut ended = Vec::new();
        let (i, _) = t.update(
            &tcp(1, ep(C.0, C.1), ep(S.0, S.1), tcp_flags::SYN),
            &mut ended,
        );
        let id = t.get_mut(i).unwrap().flow_id();
        let mut u: FlowTable<()> = FlowTable::new(FlowConfig::default());
        let (j, _) = u.update(
            &tcp(1, ep(C.0, C.1), ep(S.0, S.1), tcp_flags::SYN),
            &mut ended,
        );
        assert_eq!(u.get_mut(j).unwrap().flow_id(), id);
        assert!(id < 1 << 51);
    }

    fn seg(
        ts_s: u64,
        src: Endpoint,
        dst: Endpoint,
        flags: u8,
        seq: u32,
        ack: u32,
        len: u32,
    ) -> PacketMeta {
        let mut p = tcp(ts_s, src, dst, flags);
        p.tcp = TcpMeta {
            seq,
            ack,
            flags,
            payload_len: len,
        };
        p
    }

    #[test]
    fn pickup_from_a_service_port_makes_its_receiver_the_client() {
        let mut t: FlowTable<()> = FlowTable::new(FlowConfig::default());
        t.set_service_ports([1883, 11112]);
        let mut ended = Vec::new();
        // The broker's packet first, on 1883 (>= 1024), no SYN.
        let (c, s) = (ep(C.0, C.1), ep(S.0, S.1));
        let (i, d) = t.update(&tcp(1, s, c, tcp_flags::ACK | tcp_flags::PSH), &mut ended);
        assert_eq!(d, Direction::ToClient);
        assert_eq!(t.get_mut(i).unwrap().client(), c);
        // Without the service port, between two registered ports, the first
        // sender is the client.
        let mut u: FlowTable<()> = FlowTable::new(FlowConfig::default());
        let c = ep(C.0, 20000);
        let (j, _) = u.update(&tcp(1, s, c, tcp_flags::ACK | tcp_flags::PSH), &mut ended);
        assert_eq!(u.get_mut(j).unwrap().client(), s);
    }

    #[test]
    fn rst_far_from_the_expected_sequence_does_not_close() {
        let mut t: FlowTable<()> = FlowTable::new(FlowConfig::default());
        let mut ended = Vec::new();
        let (c, s) = (ep(C.0, C.1), ep(S.0, S.1));
        use tcp_flags::{ACK, RST, SYN};
        t.update(&seg(1, c, s, SYN, 100, 0, 0), &mut ended);
        t.update(&seg(1, s, c, SYN | ACK, 5000, 101, 0), &mut ended);
        let (i, _) = t.update(&seg(1, c, s, ACK, 101, 5001, 10), &mut ended);
        // The server's next byte is 5001: an RST two million away is blind.
        t.update(
            &seg(2, s, c, RST | ACK, 5001 + 2_000_000, 111, 0),
            &mut ended,
        );
        assert_eq!(t.get_mut(i).unwrap().tcp_state, TcpState::Established);
        assert_eq!(t.stats().rst_out_of_window, 1);
        // The client's next byte is 111; an RST from it a little ahead (bytes
        // the capture lost) is in the window.
        t.update(&seg(3, c, s, RST, 111 + 1000, 0, 0), &mut ended);
        assert_eq!(t.get_mut(i).unwrap().tcp_state, TcpState::Closed);
        assert_eq!(t.stats().rst, 2);
    }

    #[test]
    fn rst_before_anything_is_known_of_its_sender_closes() {
        let mut t: FlowTable<()> = FlowTable::new(FlowConfig::default());
        let mut ended = Vec::new();
        let (c, s) = (ep(C.0, C.1), ep(S.0, S.1));
        use tcp_flags::{ACK, RST, SYN};
        let (i, _) = t.update(&seg(1, c, s, SYN, 100, 0, 0), &mut ended);
        // A refused connection: the server answers with RST+ACK.
        t.update(&seg(1, s, c, RST | ACK, 0, 101, 0), &mut ended);
        assert_eq!(t.get_mut(i).unwrap().tcp_state, TcpState::Closed);
    }

    #[test]
    fn swapping_sides_keeps_ids_and_swaps_counters() {
        let mut t: FlowTable<()> = FlowTable::new(FlowConfig::default());
        let mut ended = Vec::new();
        // Two registered ports: the first sender is taken as the client.
        let (c, s) = (ep(C.0, 20000), ep(S.0, S.1));
        let (i, _) = t.update(&tcp(1, s, c, tcp_flags::ACK | tcp_flags::PSH), &mut ended);
        t.update(&tcp(1, c, s, tcp_flags::ACK), &mut ended);
        t.update(&tcp(1, c, s, tcp_flags::ACK), &mut ended);
        let f = t.get_mut(i).unwrap();
        let (id, cid) = (f.flow_id(), f.community_id(0));
        assert_eq!(f.client(), s);
        assert_eq!(f.pkts, [1, 2]);
        f.swap_sides();
        assert_eq!(f.client(), c);
        assert_eq!(f.pkts, [2, 1]);
        assert_eq!((f.flow_id(), f.community_id(0)), (id, cid));
        // The table sends the client's next packet to-server.
        let (_, d) = t.update(&tcp(2, c, s, tcp_flags::ACK), &mut ended);
        assert_eq!(d, Direction::ToServer);
    }

    #[test]
    fn worker_of_stays_below_the_workers_and_cuts_the_hashes_into_equal_ranges() {
        for n in 1..=64usize {
            assert_eq!(worker_of(0, n), 0);
            assert_eq!(worker_of(u64::MAX, n), n - 1);
            // The first hash of each range, and the one before it.
            for i in 1..n as u64 {
                let start = ((u128::from(i) << 64).div_ceil(n as u128)) as u64;
                assert_eq!(worker_of(start, n), i as usize, "n {n} i {i}");
                assert_eq!(worker_of(start - 1, n), i as usize - 1, "n {n} i {i}");
            }
        }
        // No workers counts as one.
        assert_eq!(worker_of(u64::MAX, 0), 0);
    }

    #[test]
    fn dispatch_hash_spreads_clients_of_one_server_and_sees_vlans_and_v6() {
        // 4 096 clients of one server, neighbours differing in the low
        // bits only: each of 2, 3 and 4 workers gets its share within 10 %.
        let server = IpAddr::from([10, 0, 0, 1]);
        for n in [2u64, 3, 4] {
            let mut count = vec![0u32; n as usize];
            for k in 0u32..4096 {
                let client = IpAddr::from((0x0a14_0000 + k).to_be_bytes());
                count[worker_of(dispatch_hash(Vlans::default(), client, server), n as usize)] += 1;
            }
            let share = 4096 / n as u32;
            for c in &count {
                assert!(c.abs_diff(share) < share / 10, "{n} workers: {count:?}");
            }
        }
        // The VLAN and every half of an IPv6 address count.
        let (a, b) = (IpAddr::from([10, 0, 0, 2]), server);
        let tagged = Vlans {
            ids: [7, 0, 0],
            len: 1,
        };
        assert_ne!(
            dispatch_hash(Vlans::default(), a, b),
            dispatch_hash(tagged, a, b)
        );
        let v6 = |hi: u8, lo: u8| {
            let mut o = [0u8; 16];
            (o[0], o[15]) = (hi, lo);
            IpAddr::from(o)
        };
        let h = |x| dispatch_hash(Vlans::default(), x, v6(0, 0));
        assert_ne!(h(v6(1, 0)), h(v6(2, 0)));
        assert_ne!(h(v6(0, 1)), h(v6(0, 2)));
    }

    proptest! {
        #[test]
        fn key_and_dispatch_hash_are_symmetric(
            a in any::<[u8; 4]>(), b in any::<[u8; 4]>(),
            pa in any::<u16>(), pb in any::<u16>(), v in 0u16..4096,
        ) {
            let vlan = Vlans { ids: [v, 0, 0], len: 1 };
            let x = Endpoint { addr: IpAddr::from(a), port: pa };
            let y = Endpoint { addr: IpAddr::from(b), port: pb };
            let (k1, lo1) = FlowKey::new(vlan, ip_proto::TCP, x, y);
            let (k2, lo2) = FlowKey::new(vlan, ip_proto::TCP, y, x);
            prop_assert_eq!(k1, k2);
            prop_assert!(lo1 != lo2 || (a == b && pa == pb));
            prop_assert_eq!(dispatch_hash(vlan, x.addr, y.addr), dispatch_hash(vlan, y.addr, x.addr));
        }

        #[test]
        fn dispatch_hash_is_symmetric_for_ipv6(
            a in any::<[u8; 16]>(), b in any::<[u8; 16]>(), v in 0u16..4096,
        ) {
            let vlan = Vlans { ids: [v, v, 0], len: 2 };
            let (x, y) = (IpAddr::from(a), IpAddr::from(b));
            prop_assert_eq!(dispatch_hash(vlan, x, y), dispatch_hash(vlan, y, x));
        }

        /// The key orders its endpoints as their address bytes, then
        /// ports, compare: the order computed on integers equals the
        /// byte arrays' (which `flow_id` and the sides depend on). Shared
        /// prefixes and equal addresses are drawn often.
        #[test]
        fn key_order_is_the_address_bytes_order(
            a in any::<[u8; 16]>(), b in any::<[u8; 16]>(), same in 0usize..=16,
            pa in any::<u16>(), pb in 0u16..4, v6 in any::<bool>(),
        ) {
            let mut b = b;
            b[..same].copy_from_slice(&a[..same]);
            let ip = |x: [u8; 16]| if v6 {
                IpAddr::from(x)
            } else {
                IpAddr::from([x[0], x[1], x[2], x[3]])
            };
            let x = Endpoint { addr: ip(a), port: pa };
            let y = Endpoint { addr: ip(b), port: pa.wrapping_add(pb) };
            let (k, src_is_lo) = FlowKey::new(Vlans::default(), ip_proto::TCP, x, y);
            let (ax, _) = addr_to_bytes(x.addr);
            let (ay, _) = addr_to_bytes(y.addr);
            let want = (ax, x.port) <= (ay, y.port);
            prop_assert_eq!(src_is_lo, want);
            let (lo, hi) = if want { (x, y) } else { (y, x) };
            prop_assert_eq!((k.lo(), k.hi()), (lo, hi));
            prop_assert_eq!(k.lo_addr, addr_to_bytes(lo.addr).0);
            prop_assert_eq!(k.hi_addr, addr_to_bytes(hi.addr).0);
        }
    }
}
