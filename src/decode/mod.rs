//! Decode: zero-copy views of link, network and transport headers.
//!
//! Owns: turning a captured frame into addresses, ports and a borrowed
//! payload; IPv4/IPv6 fragment reassembly ([`defrag`]); decapsulation of the
//! tunnels that remote mirror ports produce (GRE, ERSPAN II/III, VXLAN,
//! IP-in-IP).
//! Invariant: never panics and never allocates on the per-packet path; every
//! malformed packet is counted in [`DecodeStats`] under the name Suricata
//! gives the same condition (`decoder.event.<layer>.<name>`), and every name
//! is one that Suricata's EVE schema allows.
//!
//! Specs: IEEE 802.1Q (VLAN, QinQ 0x88a8), RFC 791 (IPv4), RFC 8200 (IPv6),
//! RFC 793/9293 (TCP), RFC 768 (UDP), RFC 2784/2890 (GRE), RFC 7348 (VXLAN),
//! draft-foschiano-erspan (ERSPAN II/III).
//!
//! One file per header (`ethernet`, `sll`, `ipv4`, `ipv6`, `tcp`, `udp`,
//! `gre`, `vxlan`), each a smoltcp-style view whose `new_checked` validates
//! every length its getters touch; this file only chains them.
//!
//! Decisions that later stages rely on:
//! - **Innermost wins.** A returned [`Packet`]/[`Fragment`] describes the
//!   innermost IP header; `tunnel` is the innermost encapsulation kind.
//! - **VLANs belong to the innermost Ethernet header.** `vlan` holds the tags
//!   of the last Ethernet header decoded (outermost tag first). When a tunnel
//!   carries an inner Ethernet frame (gretap, ERSPAN, VXLAN) the outer tags
//!   are dropped, even if the inner frame has none: outer tags describe the
//!   mirror transport network, not the monitored conversation, and the same
//!   conversation mirrored over two paths must key to one flow. A tunnel that
//!   carries IP directly (GRE with IP, IP-in-IP, ERSPAN III frame type IP)
//!   keeps the tags of the outer Ethernet header, the innermost one seen.
//! - **Tunnel depth.** At most `max_tunnel_depth` tunnels are peeled. A
//!   recognised tunnel beyond that is counted in `decoder.too_many_layers`
//!   and the packet is returned as its outer layer (GRE and IP-in-IP as
//!   `L4::Other`, VXLAN as the UDP datagram), not as invalid.
//! - **Truncation.** When the capture cut the frame (captured length below
//!   `wire_len`), IP and UDP lengths beyond the captured bytes are accepted
//!   and payloads are what was captured; headers must still be whole. When
//!   the frame was not cut, such a length is a truncated packet (`trunc_pkt`).
//!   IP total length is trusted over the frame length, which strips Ethernet
//!   padding.
//! - **Not IP.** ARP, LLC/802.3 frames, SLL protocols below 0x0600, NULL
//!   address families other than IPv4/IPv6 and link types we do not decode
//!   return [`Decoded::NotIp`]; unknown ethertypes are counted.
//! - **ERSPAN type I** (GRE 0x88be without a sequence number, no ERSPAN
//!   header) is decapsulated and reported as [`Tunnel::ErspanII`]; the VLAN
//!   field of ERSPAN headers is not used (the inner frame's tags are).
//! - **Fragments** are returned as they are; a tunnel inside a fragmented
//!   outer packet is not peeled after reassembly ([`Decoder::decode_l4`]
//!   decodes the transport header only). IPv6 fragments report the next
//!   header after the fragment header as `ip.proto`; an atomic fragment
//!   (RFC 6946) is decoded as a whole packet.

pub mod defrag;
pub mod ethernet;
pub mod gre;
pub mod ipv4;
pub mod ipv6;
pub mod sll;
mod stats;
pub mod tcp;
pub mod udp;
pub mod vxlan;
mod wire;

use std::net::IpAddr;

use crate::capture::LinkType;

use ethernet::{ethertype, EthernetFrame, VlanTag};
use gre::{ErspanHeader, ErspanPayload, GreHeader};
use ipv4::Ipv4Packet;
use ipv6::{ChainEnd, Ipv6Packet};
use sll::{NullFamily, Sll2Header, SllHeader};
pub use stats::{Counter, DecodeStats};
use tcp::TcpPacket;
use udp::UdpPacket;
use vxlan::VxlanHeader;

/// TCP header flag bits, as in the 14th byte of the header.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// IP protocol numbers used by the flow stage.
pub mod ip_proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const GRE: u8 = 47;
    pub const ICMPV6: u8 = 58;
    pub const IPIP: u8 = 4;
    pub const IPV6: u8 = 41;
    pub const ESP: u8 = 50;
    pub const SCTP: u8 = 132;
}

/// Decoder settings.
#[derive(Debug, Clone)]
pub struct DecodeConfig {
    /// UDP destination ports decapsulated as VXLAN (IANA: 4789).
    pub vxlan_ports: Vec<u16>,
    /// Most VLAN tags accepted on one frame (QinQ is 2).
    pub max_vlan_layers: u8,
    /// Most tunnel layers peeled off one frame.
    pub max_tunnel_depth: u8,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            vxlan_ports: vec![4789],
            max_vlan_layers: 3,
            max_tunnel_depth: 3,
        }
    }
}

/// The transport layer of a decoded packet; payloads borrow the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4<'a> {
    Tcp(TcpSegment<'a>),
    Udp(UdpDatagram<'a>),
    Icmp {
        icmp_type: u8,
        code: u8,
    },
    /// Another IP protocol, or a transport header we do not decode.
    Other,
}

/// A TCP segment: the header fields the flow and stream stages need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    /// See [`tcp_flags`].
    pub flags: u8,
    pub window: u16,
    /// Bytes after the TCP header and options, cut at the IP payload length
    /// (Ethernet padding removed) and at the captured length.
    pub payload: &'a [u8],
}

/// A UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

/// Kind of the innermost encapsulation a packet was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tunnel {
    #[default]
    None,
    Gre,
    ErspanII,
    ErspanIII,
    Vxlan,
    /// IP in IP (4in4, 6in4, 4in6, 6in6).
    IpInIp,
}

/// Network-layer facts of the innermost IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpInfo {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Transport protocol (for IPv6, the last next-header value).
    pub proto: u8,
    pub ttl: u8,
}

/// VLAN ids of a frame, outermost first (tags of the innermost Ethernet
/// header when the frame was decapsulated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Vlans {
    pub ids: [u16; 3],
    pub len: u8,
}

impl Vlans {
    /// The ids present, outermost first.
    pub fn as_slice(&self) -> &[u16] {
        &self.ids[..usize::from(self.len.min(3))]
    }
}

/// A fully decoded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    pub vlan: Vlans,
    pub tunnel: Tunnel,
    pub ip: IpInfo,
    pub l4: L4<'a>,
}

/// One IPv4 or IPv6 fragment, to be given to [`defrag::Defrag`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment<'a> {
    pub vlan: Vlans,
    pub tunnel: Tunnel,
    pub ip: IpInfo,
    /// IPv4 identification (16 bits) or IPv6 fragment identification.
    pub id: u32,
    /// Offset of this fragment's payload in the datagram, in bytes.
    pub offset: u32,
    /// More fragments follow.
    pub more: bool,
    /// The fragment's payload (part of the transport header and data).
    pub payload: &'a [u8],
}

/// What a frame turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    Packet(Packet<'a>),
    Fragment(Fragment<'a>),
    /// A well-formed frame that is not IP (ARP, LLDP…): counted, not tracked.
    NotIp,
    /// Malformed; the reason has been counted.
    Invalid,
}

/// Decodes frames and counts what it saw.
#[derive(Debug, Default)]
pub struct Decoder {
    cfg: DecodeConfig,
    stats: DecodeStats,
}

impl Vlans {
    /// Appends a tag, innermost last; `false` when `max` tags are already
    /// there (capped at the 3 the array holds).
    #[inline]
    fn push(&mut self, vid: u16, max: u8) -> bool {
        let len = usize::from(self.len);
        if self.len >= max.min(3) || len >= self.ids.len() {
            return false;
        }
        self.ids[len] = vid;
        self.len += 1;
        true
    }
}

/// The next header to decode.
#[derive(Clone, Copy)]
enum Step<'a> {
    Ethernet(&'a [u8]),
    /// A payload of the given ethertype (possibly a VLAN TPID).
    EtherType(u16, &'a [u8]),
    /// IPv4 or IPv6 by the version nibble.
    Ip(&'a [u8]),
    Ipv4(&'a [u8]),
    Ipv6(&'a [u8]),
}

/// What one layer decided.
enum Next<'a> {
    Step(Step<'a>),
    Done(Decoded<'a>),
}

/// Facts gathered on the way in.
struct State {
    vlans: Vlans,
    tunnel: Tunnel,
    depth: u8,
    /// The capture cut the frame short.
    snapped: bool,
}

impl State {
    #[inline]
    fn packet<'a>(&self, ip: IpInfo, l4: L4<'a>) -> Next<'a> {
        Next::Done(Decoded::Packet(Packet {
            vlan: self.vlans,
            tunnel: self.tunnel,
            ip,
            l4,
        }))
    }
}

/// Smallest ICMP/ICMPv6 message: type, code, checksum and 4 more bytes.
const ICMP_MIN_LEN: usize = 8;

impl Decoder {
    pub fn new(cfg: DecodeConfig) -> Self {
        Decoder {
            cfg,
            stats: DecodeStats::default(),
        }
    }

    /// Decodes one frame of link type `link`; `wire_len` is its length on the
    /// wire (counted in `decoder.bytes`). A `wire_len` above `data.len()`
    /// means the capture cut the frame (see the module docs on truncation).
    pub fn decode<'a>(&mut self, link: LinkType, data: &'a [u8], wire_len: u32) -> Decoded<'a> {
        self.stats.frame(wire_len);
        let snapped = usize::try_from(wire_len).map_or(true, |w| w > data.len());
        match self.run(link, data, snapped) {
            Ok(d) => d,
            Err(reason) => {
                self.stats.incr(reason);
                self.stats.incr(Counter::Invalid);
                Decoded::Invalid
            }
        }
    }

    /// The layer loop: each step validates one header and names the next;
    /// it ends because every tunnel raises `depth`, which is bounded.
    fn run<'a>(
        &mut self,
        link: LinkType,
        data: &'a [u8],
        snapped: bool,
    ) -> Result<Decoded<'a>, Counter> {
        let mut st = State {
            vlans: Vlans::default(),
            tunnel: Tunnel::None,
            depth: 0,
            snapped,
        };
        let mut step = match self.link(link, data)? {
            Some(s) => s,
            None => return Ok(Decoded::NotIp),
        };
        loop {
            let next = match step {
                Step::Ethernet(b) => {
                    let e = EthernetFrame::new_checked(b).ok_or(Counter::EthernetPktTooSmall)?;
                    self.stats.incr(Counter::Ethernet);
                    st.vlans = Vlans::default();
                    Next::Step(Step::EtherType(e.ethertype(), e.payload()))
                }
                Step::EtherType(t, b) => self.ethertype(t, b, &mut st)?,
                Step::Ip(b) => match b.first().map(|v| v >> 4) {
                    Some(4) => Next::Step(Step::Ipv4(b)),
                    Some(6) => Next::Step(Step::Ipv6(b)),
                    _ => return Err(Counter::RawInvalidIpVersion),
                },
                Step::Ipv4(b) => self.ipv4(b, &mut st)?,
                Step::Ipv6(b) => self.ipv6(b, &mut st)?,
            };
            match next {
                Next::Step(s) => step = s,
                Next::Done(d) => return Ok(d),
            }
        }
    }

    /// The link-layer header: the first step, or `None` for frames that are
    /// not IP (or link types we do not decode).
    fn link<'a>(&mut self, link: LinkType, data: &'a [u8]) -> Result<Option<Step<'a>>, Counter> {
        Ok(Some(match link {
            LinkType::ETHERNET => Step::Ethernet(data),
            LinkType::LINUX_SLL => {
                self.stats.incr(Counter::Sll);
                let h = SllHeader::new_checked(data).ok_or(Counter::SllPktTooSmall)?;
                Step::EtherType(h.protocol(), h.payload())
            }
            LinkType::LINUX_SLL2 => {
                self.stats.incr(Counter::Sll2);
                let h = Sll2Header::new_checked(data).ok_or(Counter::Sll2PktTooSmall)?;
                Step::EtherType(h.protocol(), h.payload())
            }
            // 12 and 14 are raw IP on some BSDs (DLT_RAW's old numbers).
            LinkType::RAW | LinkType(12) | LinkType(14) => {
                self.stats.incr(Counter::Raw);
                Step::Ip(data)
            }
            LinkType::IPV4 => {
                self.stats.incr(Counter::Raw);
                Step::Ipv4(data)
            }
            LinkType::IPV6 => {
                self.stats.incr(Counter::Raw);
                Step::Ipv6(data)
            }
            LinkType::NULL | LinkType::LOOP => {
                self.stats.incr(Counter::Null);
                let fam = sll::null_family(data, link == LinkType::NULL)
                    .ok_or(Counter::NullPktTooSmall)?;
                let rest = data.get(sll::NULL_LEN..).unwrap_or(&[]);
                match fam {
                    NullFamily::Ipv4 => Step::Ipv4(rest),
                    NullFamily::Ipv6 => Step::Ipv6(rest),
                    NullFamily::Other => {
                        self.stats.incr(Counter::NullUnsupportedType);
                        return Ok(None);
                    }
                }
            }
            _ => return Ok(None),
        }))
    }

    /// VLAN tags, then the network layer named by the ethertype.
    #[inline]
    fn ethertype<'a>(
        &mut self,
        mut t: u16,
        mut b: &'a [u8],
        st: &mut State,
    ) -> Result<Next<'a>, Counter> {
        while ethertype::is_vlan(t) {
            let tag = VlanTag::new_checked(b).ok_or(Counter::VlanHeaderTooSmall)?;
            if !st.vlans.push(tag.vid(), self.cfg.max_vlan_layers) {
                return Err(Counter::VlanTooManyLayers);
            }
            self.stats.incr(match st.vlans.len {
                2 => Counter::VlanQinq,
                3 => Counter::VlanQinqinq,
                _ => Counter::Vlan,
            });
            t = tag.inner_type();
            b = tag.payload();
        }
        Ok(match t {
            ethertype::IPV4 => Next::Step(Step::Ipv4(b)),
            ethertype::IPV6 => Next::Step(Step::Ipv6(b)),
            ethertype::ARP => {
                self.stats.incr(Counter::Arp);
                Next::Done(Decoded::NotIp)
            }
            // An 802.3 length (LLC follows), or SLL's ETH_P_802_3/802_2.
            t if t < ethertype::MIN_TYPE => Next::Done(Decoded::NotIp),
            _ => {
                self.stats.incr(Counter::UnknownEthertype);
                if st.tunnel == Tunnel::Vxlan {
                    self.stats.incr(Counter::VxlanUnknownPayloadType);
                }
                Next::Done(Decoded::NotIp)
            }
        })
    }

    #[inline]
    fn ipv4<'a>(&mut self, b: &'a [u8], st: &mut State) -> Result<Next<'a>, Counter> {
        let ip = Ipv4Packet::new_checked(b, st.snapped)?;
        self.stats.incr(Counter::Ipv4);
        let info = IpInfo {
            src: IpAddr::V4(ip.src_addr()),
            dst: IpAddr::V4(ip.dst_addr()),
            proto: ip.protocol(),
            ttl: ip.ttl(),
        };
        if ip.is_fragment() {
            return Ok(Next::Done(Decoded::Fragment(Fragment {
                vlan: st.vlans,
                tunnel: st.tunnel,
                ip: info,
                id: u32::from(ip.ident()),
                offset: ip.frag_offset(),
                more: ip.more_frags(),
                payload: ip.payload(),
            })));
        }
        self.transport(info, ip.payload(), ip.payload_len(), false, st)
    }

    #[inline]
    fn ipv6<'a>(&mut self, b: &'a [u8], st: &mut State) -> Result<Next<'a>, Counter> {
        let ip = Ipv6Packet::new_checked(b, st.snapped)?;
        self.stats.incr(Counter::Ipv6);
        let mut info = IpInfo {
            src: IpAddr::V6(ip.src_addr()),
            dst: IpAddr::V6(ip.dst_addr()),
            proto: ip.next_header(),
            ttl: ip.hop_limit(),
        };
        let end = ipv6::walk_chain(
            ip.next_header(),
            ip.payload(),
            usize::from(ip.payload_len()),
            &mut self.stats,
        )?;
        match end {
            ChainEnd::Transport {
                proto,
                payload,
                declared,
            } => {
                info.proto = proto;
                self.transport(info, payload, declared, true, st)
            }
            ChainEnd::Fragment {
                proto,
                id,
                offset,
                more,
                payload,
            } => {
                info.proto = proto;
                Ok(Next::Done(Decoded::Fragment(Fragment {
                    vlan: st.vlans,
                    tunnel: st.tunnel,
                    ip: info,
                    id,
                    offset,
                    more,
                    payload,
                })))
            }
        }
    }

    /// Enters one more tunnel of `kind`, or counts `too_many_layers` and
    /// returns `false` when the depth limit is reached.
    #[inline]
    fn enter(&mut self, st: &mut State, kind: Tunnel) -> bool {
        if st.depth >= self.cfg.max_tunnel_depth {
            self.stats.incr(Counter::TooManyLayers);
            return false;
        }
        st.depth += 1;
        st.tunnel = kind;
        true
    }

    /// The header after IP: a tunnel to peel, or the transport layer.
    /// `declared` is the payload length the IP header(s) announced.
    #[inline]
    fn transport<'a>(
        &mut self,
        info: IpInfo,
        payload: &'a [u8],
        declared: usize,
        v6: bool,
        st: &mut State,
    ) -> Result<Next<'a>, Counter> {
        match info.proto {
            ip_proto::GRE => return self.gre(info, payload, st),
            ip_proto::IPIP | ip_proto::IPV6 => {
                if !self.enter(st, Tunnel::IpInIp) {
                    return Ok(st.packet(info, L4::Other));
                }
                let inner6 = info.proto == ip_proto::IPV6;
                self.stats.incr(match (v6, inner6) {
                    (false, false) => Counter::Ipv4InIpv4,
                    (false, true) => Counter::Ipv6InIpv4,
                    (true, false) => Counter::Ipv4InIpv6,
                    (true, true) => Counter::Ipv6InIpv6,
                });
                return Ok(Next::Step(if inner6 {
                    Step::Ipv6(payload)
                } else {
                    Step::Ipv4(payload)
                }));
            }
            ip_proto::ICMP if v6 => return Err(Counter::Ipv6Icmpv4),
            ip_proto::ICMPV6 if !v6 => return Err(Counter::Ipv4Icmpv6),
            _ => {}
        }
        let l4 = self.l4(info.proto, payload, declared)?;
        if let L4::Udp(u) = l4 {
            if self.cfg.vxlan_ports.contains(&u.dst_port) {
                if let Some(v) = VxlanHeader::new_checked(u.payload) {
                    if self.enter(st, Tunnel::Vxlan) {
                        self.stats.incr(Counter::Vxlan);
                        return Ok(Next::Step(Step::Ethernet(v.payload())));
                    }
                }
            }
        }
        Ok(st.packet(info, l4))
    }

    /// GRE and what it carries.
    fn gre<'a>(
        &mut self,
        info: IpInfo,
        payload: &'a [u8],
        st: &mut State,
    ) -> Result<Next<'a>, Counter> {
        let g = GreHeader::new_checked(payload)?;
        self.stats.incr(Counter::Gre);
        let inner = g.payload();
        let (kind, step) = match g.protocol() {
            ethertype::IPV4 => (Tunnel::Gre, Step::Ipv4(inner)),
            ethertype::IPV6 => (Tunnel::Gre, Step::Ipv6(inner)),
            ethertype::TEB => (Tunnel::Gre, Step::Ethernet(inner)),
            ethertype::ERSPAN_II => {
                self.stats.incr(Counter::Erspan);
                if g.has_seq() {
                    let e = ErspanHeader::new_checked(inner, false)?;
                    (Tunnel::ErspanII, Step::Ethernet(e.payload()))
                } else {
                    // Type I: the mirrored frame follows GRE directly.
                    (Tunnel::ErspanII, Step::Ethernet(inner))
                }
            }
            ethertype::ERSPAN_III => {
                self.stats.incr(Counter::Erspan);
                let e = ErspanHeader::new_checked(inner, true)?;
                let step = match e.payload_kind() {
                    ErspanPayload::Ethernet => Step::Ethernet(e.payload()),
                    ErspanPayload::Ip => Step::Ip(e.payload()),
                };
                (Tunnel::ErspanIII, step)
            }
            // PPTP's PPP and anything else: the GRE packet itself.
            _ => return Ok(st.packet(info, L4::Other)),
        };
        if !self.enter(st, kind) {
            return Ok(st.packet(info, L4::Other));
        }
        Ok(Next::Step(step))
    }

    /// The transport header `proto` at the start of `payload`; `declared` is
    /// its length according to IP.
    #[inline]
    fn l4<'a>(&mut self, proto: u8, payload: &'a [u8], declared: usize) -> Result<L4<'a>, Counter> {
        Ok(match proto {
            ip_proto::TCP => {
                let t = TcpPacket::new_checked(payload)?;
                self.stats.incr(Counter::Tcp);
                L4::Tcp(TcpSegment {
                    src_port: t.src_port(),
                    dst_port: t.dst_port(),
                    seq: t.seq(),
                    ack: t.ack(),
                    flags: t.flags(),
                    window: t.window(),
                    payload: t.payload(),
                })
            }
            ip_proto::UDP => {
                let u = UdpPacket::new_checked(payload, declared)?;
                self.stats.incr(Counter::Udp);
                L4::Udp(UdpDatagram {
                    src_port: u.src_port(),
                    dst_port: u.dst_port(),
                    payload: u.payload(),
                })
            }
            ip_proto::ICMP | ip_proto::ICMPV6 => {
                let v4 = proto == ip_proto::ICMP;
                if payload.len() < ICMP_MIN_LEN {
                    return Err(if v4 {
                        Counter::Icmpv4PktTooSmall
                    } else {
                        Counter::Icmpv6PktTooSmall
                    });
                }
                self.stats
                    .incr(if v4 { Counter::Icmpv4 } else { Counter::Icmpv6 });
                L4::Icmp {
                    icmp_type: payload[0],
                    code: payload[1],
                }
            }
            ip_proto::ESP => {
                self.stats.incr(Counter::Esp);
                L4::Other
            }
            ip_proto::SCTP => {
                self.stats.incr(Counter::Sctp);
                L4::Other
            }
            _ => L4::Other,
        })
    }

    /// Decodes the transport header of a reassembled datagram. For IPv6,
    /// extension headers that followed the fragment header (destination
    /// options, routing, AH) are walked first. A malformed header is counted
    /// and returned as [`L4::Other`]; tunnels are not peeled here.
    pub fn decode_l4<'a>(&mut self, proto: u8, data: &'a [u8]) -> L4<'a> {
        use ipv6::next_header::{AH, DEST_OPTS, HOP_BY_HOP, ROUTING};
        let (proto, data, declared) = if matches!(proto, HOP_BY_HOP | ROUTING | DEST_OPTS | AH) {
            match ipv6::walk_chain(proto, data, data.len(), &mut self.stats) {
                Ok(ChainEnd::Transport {
                    proto,
                    payload,
                    declared,
                }) => (proto, payload, declared),
                Ok(ChainEnd::Fragment { .. }) => return L4::Other,
                Err(reason) => {
                    self.stats.incr(reason);
                    return L4::Other;
                }
            }
        } else {
            (proto, data, data.len())
        };
        match self.l4(proto, data, declared) {
            Ok(l4) => l4,
            Err(reason) => {
                self.stats.incr(reason);
                L4::Other
            }
        }
    }

    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }
}
