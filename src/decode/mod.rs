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
//! - **Fragments** are returned as they are, for [`defrag::Defrag`];
//!   [`Decoder::decode_reassembled`] then decodes the datagram from its
//!   transport header on, tunnels included. A fragment inside a reassembled
//!   datagram's tunnel is not reassembled again. IPv6 fragments report the
//!   next header after the fragment header as `ip.proto`; an atomic
//!   fragment (RFC 6946) is decoded as a whole packet.
//! - **Checksums** ([`checksum`], RFC 1071): the IPv4 header checksum of
//!   every IPv4 header (tunnel layers and fragments included), and the TCP,
//!   UDP, ICMP and ICMPv6 checksums (pseudo-headers for all but ICMP) of
//!   every transport header decoded, the outer UDP of VXLAN too. A failure
//!   makes the frame [`Decoded::Invalid`], counted under its own
//!   `invalid_checksum` counter and not in `decoder.invalid`. Not verified:
//!   a transport segment the capture cut short (its bytes are missing), a
//!   reassembled datagram's pieces one by one (the datagram is verified
//!   whole), GRE checksums, headers quoted inside ICMP errors. The IPv6
//!   pseudo-header uses the IPv6 header's destination: a packet still on
//!   its source route (routing header, segments left > 0) fails, as it is
//!   not yet addressed to its final receiver. UDP checksum 0 is "none" over
//!   IPv4 and over IPv6 on the VXLAN ports (RFC 6935), invalid otherwise.
//!   [`Validation`] says whether to verify; `checksum_checks: auto` is
//!   decided per run by [`offload::Detector`].

pub mod checksum;
pub mod defrag;
pub mod dispatch;
pub mod ethernet;
pub mod gre;
pub mod ipv4;
pub mod ipv6;
pub mod offload;
pub mod sll;
mod stats;
pub mod tcp;
pub mod udp;
pub mod vxlan;
mod wire;

use std::net::IpAddr;

use crate::capture::LinkType;

use checksum::Verdict;
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

/// Decoder settings (the `decoder:` section of the configuration file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeConfig {
    /// UDP destination ports decapsulated as VXLAN (IANA: 4789).
    pub vxlan_ports: Vec<u16>,
    /// Most VLAN tags accepted on one frame (QinQ is 2).
    pub max_vlan_layers: u8,
    /// Most tunnel layers peeled off one frame.
    pub max_tunnel_depth: u8,
    /// Validate IPv4 header, TCP, UDP, ICMP and ICMPv6 checksums and drop
    /// packets that fail (Suricata's `checksum-checks`).
    pub checksum_checks: ChecksumChecks,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            vxlan_ports: vec![4789],
            max_vlan_layers: 3,
            max_tunnel_depth: 3,
            checksum_checks: ChecksumChecks::Auto,
        }
    }
}

/// `decoder.checksum_checks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumChecks {
    /// Validate, unless the first packets of the capture show checksum
    /// offload (see [`offload`]).
    #[default]
    Auto,
    Yes,
    No,
}

/// How the decoder treats checksums right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Validation {
    /// A packet with a wrong checksum is dropped and counted.
    #[default]
    Strict,
    /// As strict, but a checksum in the offload pattern
    /// ([`checksum::Verdict::Offload`]) passes: used while `auto` has not
    /// decided yet (live capture).
    Lenient,
    /// Checksums are not computed.
    Off,
}

/// Checksums seen in the last decoded frame (for [`offload::Detector`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checked {
    /// At least one checksum was verified.
    pub any: bool,
    /// At least one was in the offload pattern.
    pub offload: bool,
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
    /// Tunnels peeled to reach it (they count against `max_tunnel_depth`
    /// when the reassembled datagram is decoded further).
    pub depth: u8,
}

/// What a frame turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    Packet(Packet<'a>),
    Fragment(Fragment<'a>),
    /// A well-formed frame that is not IP (ARP, LLDP…): counted, not tracked.
    NotIp,
    /// Malformed (counted by reason and in `decoder.invalid`), or failing
    /// a checksum (counted in its `invalid_checksum` counter only): dropped,
    /// as the receiving host drops it.
    Invalid,
}

/// Decodes frames and counts what it saw.
#[derive(Debug, Default)]
pub struct Decoder {
    cfg: DecodeConfig,
    stats: DecodeStats,
    validation: Validation,
    checked: Checked,
    /// Source and destination MAC of the innermost Ethernet header of the
    /// last frame decoded (`None`: it had none).
    macs: Option<[[u8; 6]; 2]>,
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
struct State<'f> {
    vlans: Vlans,
    tunnel: Tunnel,
    depth: u8,
    /// The capture cut the frame short.
    snapped: bool,
    /// The frame with its sum, when the capture computed it
    /// ([`Decoder::decode_summed`]).
    frame: Option<checksum::SummedFrame<'f>>,
}

impl State<'_> {
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
/// Offset of the ICMP/ICMPv6 checksum field.
const ICMP_CHECKSUM: usize = 2;

/// The pseudo-header sum of a transport segment of `len` bytes between
/// `ip`'s addresses (RFC 9293 §3.1, RFC 8200 §8.1).
#[inline]
fn pseudo_sum(ip: &IpInfo, len: usize) -> checksum::Sum {
    match (ip.src, ip.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => checksum::pseudo_v4(s.into(), d.into(), ip.proto, len),
        (IpAddr::V6(s), IpAddr::V6(d)) => checksum::pseudo_v6(s.into(), d.into(), ip.proto, len),
        // One IP header has addresses of one family.
        _ => 0,
    }
}

impl Decoder {
    /// A decoder; with `checksum_checks: auto` it validates strictly until
    /// told otherwise ([`Decoder::set_validation`]).
    pub fn new(cfg: DecodeConfig) -> Self {
        let validation = match cfg.checksum_checks {
            ChecksumChecks::Auto | ChecksumChecks::Yes => Validation::Strict,
            ChecksumChecks::No => Validation::Off,
        };
        Decoder {
            cfg,
            stats: DecodeStats::default(),
            validation,
            checked: Checked::default(),
            macs: None,
        }
    }

    /// Changes how checksums are treated from the next frame on; `Off`
    /// because offload was detected is recorded in the stats
    /// (`decoder.checksum_offload_detected`).
    pub fn set_validation(&mut self, v: Validation, offload_detected: bool) {
        self.validation = v;
        if offload_detected {
            self.stats.set_checksum_offload();
        }
    }

    pub fn validation(&self) -> Validation {
        self.validation
    }

    /// Source and destination MAC addresses of the innermost Ethernet
    /// header of the last frame decoded (the asset inventory reads the
    /// source's); `None` for link types without one.
    pub fn macs(&self) -> Option<[[u8; 6]; 2]> {
        self.macs
    }

    /// What the checksums of the last frame decoded looked like (all
    /// false when validation is off).
    pub fn checked(&self) -> Checked {
        self.checked
    }

    /// Decodes one frame of link type `link`; `wire_len` is its length on the
    /// wire (counted in `decoder.bytes`). A `wire_len` above `data.len()`
    /// means the capture cut the frame (see the module docs on truncation).
    #[inline]
    pub fn decode<'a>(&mut self, link: LinkType, data: &'a [u8], wire_len: u32) -> Decoded<'a> {
        self.decode_summed(link, data, wire_len, None)
    }

    /// [`Decoder::decode`] with `sum`, the frame's
    /// [`checksum::frame_sum`] when the capture computed it: the transport
    /// checksum then sums only the bytes around its segment
    /// ([`checksum::SummedFrame::part`]), not the payload again. `sum`
    /// must be the sum of exactly `data`: a wrong one gives a wrong
    /// verdict, as wrong bytes would.
    pub fn decode_summed<'a>(
        &mut self,
        link: LinkType,
        data: &'a [u8],
        wire_len: u32,
        sum: Option<u16>,
    ) -> Decoded<'a> {
        self.stats.frame(wire_len);
        self.checked = Checked::default();
        self.macs = None;
        let snapped = usize::try_from(wire_len).map_or(true, |w| w > data.len());
        let frame = sum.map(|sum| checksum::SummedFrame { bytes: data, sum });
        let r = self.run(link, data, snapped, frame);
        self.outcome(r)
    }

    /// Counts a failure: a checksum under its own counter, a malformed
    /// packet under its reason and `decoder.invalid`.
    fn outcome<'a>(&mut self, r: Result<Decoded<'a>, Counter>) -> Decoded<'a> {
        match r {
            Ok(d) => d,
            Err(reason) => {
                self.stats.incr(reason);
                if !reason.is_checksum() {
                    self.stats.incr(Counter::Invalid);
                }
                Decoded::Invalid
            }
        }
    }

    /// The layers of one frame, from its link-layer header.
    fn run<'a>(
        &mut self,
        link: LinkType,
        data: &'a [u8],
        snapped: bool,
        frame: Option<checksum::SummedFrame<'a>>,
    ) -> Result<Decoded<'a>, Counter> {
        let mut st = State {
            vlans: Vlans::default(),
            tunnel: Tunnel::None,
            depth: 0,
            snapped,
            frame,
        };
        match self.link(link, data)? {
            Some(step) => self.layers(step, &mut st),
            None => Ok(Decoded::NotIp),
        }
    }

    /// The layer loop: each step validates one header and names the next;
    /// it ends because every tunnel raises `depth`, which is bounded.
    /// Inlined into both callers: the per-packet path keeps its values in
    /// registers instead of passing them through memory.
    #[inline(always)]
    fn layers<'a>(
        &mut self,
        mut step: Step<'a>,
        st: &mut State<'_>,
    ) -> Result<Decoded<'a>, Counter> {
        loop {
            let next = match step {
                Step::Ethernet(b) => {
                    let e = EthernetFrame::new_checked(b).ok_or(Counter::EthernetPktTooSmall)?;
                    self.stats.incr(Counter::Ethernet);
                    st.vlans = Vlans::default();
                    self.macs = Some([e.src_addr(), e.dst_addr()]);
                    Next::Step(Step::EtherType(e.ethertype(), e.payload()))
                }
                Step::EtherType(t, b) => self.ethertype(t, b, st)?,
                Step::Ip(b) => match b.first().map(|v| v >> 4) {
                    Some(4) => Next::Step(Step::Ipv4(b)),
                    Some(6) => Next::Step(Step::Ipv6(b)),
                    _ => return Err(Counter::RawInvalidIpVersion),
                },
                Step::Ipv4(b) => self.ipv4(b, st)?,
                Step::Ipv6(b) => self.ipv6(b, st)?,
            };
            match next {
                Next::Step(s) => step = s,
                Next::Done(d) => return Ok(d),
            }
        }
    }

    /// Applies a checksum verdict: `Ok` when the packet may go on, else the
    /// counter `fail` of the layer.
    #[inline]
    fn judge(&mut self, v: Verdict, fail: Counter) -> Result<(), Counter> {
        self.checked.any = true;
        match v {
            Verdict::Good => Ok(()),
            Verdict::Offload => {
                self.checked.offload = true;
                if self.validation == Validation::Lenient {
                    Ok(())
                } else {
                    Err(fail)
                }
            }
            Verdict::Bad => Err(fail),
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
            other => {
                self.stats.unsupported_link += 1;
                self.stats.unsupported_link_type = self.stats.unsupported_link_type.max(other.0);
                return Ok(None);
            }
        }))
    }

    /// VLAN tags, then the network layer named by the ethertype.
    #[inline]
    fn ethertype<'a>(
        &mut self,
        mut t: u16,
        mut b: &'a [u8],
        st: &mut State<'_>,
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
    fn ipv4<'a>(&mut self, b: &'a [u8], st: &mut State<'_>) -> Result<Next<'a>, Counter> {
        let ip = Ipv4Packet::new_checked(b, st.snapped)?;
        self.stats.incr(Counter::Ipv4);
        if self.validation != Validation::Off {
            // The header is whole even in a snapped frame.
            let v = checksum::verify_header(ip.header(), ip.checksum());
            self.judge(v, Counter::Ipv4InvalidChecksum)?;
        }
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
                depth: st.depth,
            })));
        }
        self.transport(info, ip.payload(), ip.payload_len(), false, st)
    }

    #[inline]
    fn ipv6<'a>(&mut self, b: &'a [u8], st: &mut State<'_>) -> Result<Next<'a>, Counter> {
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
                    depth: st.depth,
                })))
            }
        }
    }

    /// Enters one more tunnel of `kind`, or counts `too_many_layers` and
    /// returns `false` when the depth limit is reached.
    #[inline]
    fn enter(&mut self, st: &mut State<'_>, kind: Tunnel) -> bool {
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
        st: &mut State<'_>,
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
        // A snapped frame lacks bytes the checksum covers: not verifiable.
        if self.validation != Validation::Off && payload.len() >= declared {
            let segment = payload.get(..declared).unwrap_or(payload);
            self.verify_l4(&info, &l4, segment, st.frame)?;
        }
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

    /// Verifies the checksum of the transport header `l4` decoded from
    /// `segment` (its header and data, exactly as long as IP declared).
    #[inline]
    fn verify_l4(
        &mut self,
        ip: &IpInfo,
        l4: &L4<'_>,
        segment: &[u8],
        frame: Option<checksum::SummedFrame<'_>>,
    ) -> Result<(), Counter> {
        let (offset, fail) = match l4 {
            L4::Tcp(_) => (tcp::CHECKSUM, Counter::TcpInvalidChecksum),
            L4::Udp(u) => {
                let field = wire::be16_at(segment, udp::CHECKSUM).unwrap_or(0);
                // RFC 768: zero is "no checksum" over IPv4. Over IPv6 it
                // is invalid (RFC 8200 §8.1), except for tunnels (RFC 6935
                // and 6936 allow it on VXLAN endpoints).
                if field == 0 && (ip.src.is_ipv4() || self.cfg.vxlan_ports.contains(&u.dst_port)) {
                    return Ok(());
                }
                (udp::CHECKSUM, Counter::UdpInvalidChecksum)
            }
            L4::Icmp { .. } if ip.proto == ip_proto::ICMP => {
                let field = wire::be16_at(segment, ICMP_CHECKSUM).unwrap_or(0);
                let v = match checksum::verify_plain(segment, field) {
                    // ICMP is always summed by the sender's kernel: a zero
                    // field is simply wrong.
                    Verdict::Offload => Verdict::Bad,
                    v => v,
                };
                return self.judge(v, Counter::Icmpv4InvalidChecksum);
            }
            L4::Icmp { .. } => (ICMP_CHECKSUM, Counter::Icmpv6InvalidChecksum),
            L4::Other => return Ok(()),
        };
        let field = wire::be16_at(segment, offset).unwrap_or(0);
        // The frame's sum less the headers around the segment, when the
        // capture summed the frame: the payload is not read again.
        let sum = frame
            .and_then(|f| f.part(segment))
            .unwrap_or_else(|| checksum::add(0, segment));
        let v = checksum::verify_l4_sum(pseudo_sum(ip, segment.len()), sum, field);
        let v = match (v, l4) {
            // ICMPv6 is summed in software too.
            (Verdict::Offload, L4::Icmp { .. }) => Verdict::Bad,
            (v, _) => v,
        };
        self.judge(v, fail)
    }

    /// GRE and what it carries.
    fn gre<'a>(
        &mut self,
        info: IpInfo,
        payload: &'a [u8],
        st: &mut State<'_>,
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

    /// Decodes a datagram that `frag`'s fragments reassembled into `data`,
    /// from its transport header on: for IPv6, the extension headers that
    /// followed the fragment header first; the transport checksum over the
    /// whole datagram; then any tunnel it carries, as [`Decoder::decode`]
    /// does. Counted as `decode` counts a frame, except `decoder.pkts` and
    /// `decoder.bytes` (every fragment was counted already).
    pub fn decode_reassembled<'a>(&mut self, frag: &Fragment<'_>, data: &'a [u8]) -> Decoded<'a> {
        self.checked = Checked::default();
        let r = self.reassembled(frag, data);
        self.outcome(r)
    }

    fn reassembled<'a>(
        &mut self,
        frag: &Fragment<'_>,
        data: &'a [u8],
    ) -> Result<Decoded<'a>, Counter> {
        use ipv6::next_header::{AH, DEST_OPTS, FRAGMENT, HOP_BY_HOP, ROUTING};
        let v6 = frag.ip.src.is_ipv6();
        let mut info = frag.ip;
        let (payload, declared) =
            if v6 && matches!(info.proto, HOP_BY_HOP | ROUTING | DEST_OPTS | AH | FRAGMENT) {
                match ipv6::walk_chain(info.proto, data, data.len(), &mut self.stats)? {
                    ChainEnd::Transport {
                        proto,
                        payload,
                        declared,
                    } => {
                        info.proto = proto;
                        (payload, declared)
                    }
                    // A second fragment header inside a reassembled datagram.
                    ChainEnd::Fragment { .. } => return Err(Counter::Ipv6ExthdrDuplFh),
                }
            } else {
                (data, data.len())
            };
        let mut st = State {
            vlans: frag.vlan,
            tunnel: frag.tunnel,
            depth: frag.depth,
            snapped: false,
            frame: None,
        };
        match self.transport(info, payload, declared, v6, &mut st)? {
            Next::Step(s) => self.layers(s, &mut st),
            Next::Done(d) => Ok(d),
        }
    }

    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    //! Frames here are hand-built from the helpers below; each helper labels
    //! every header field it writes.
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A4: [u8; 4] = [10, 0, 0, 1];
    const B4: [u8; 4] = [10, 0, 0, 2];
    const C4: [u8; 4] = [192, 168, 1, 10];
    const D4: [u8; 4] = [192, 168, 1, 20];

    fn a6() -> [u8; 16] {
        "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets()
    }
    fn b6() -> [u8; 16] {
        "2001:db8::2".parse::<Ipv6Addr>().unwrap().octets()
    }

    pub(super) fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// Ethernet header.
    pub(super) fn eth(ethertype: u16) -> Vec<u8> {
        let mut v = vec![0x02, 0, 0, 0, 0, 0x01]; // destination MAC
        v.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]); // source MAC
        v.extend_from_slice(&ethertype.to_be_bytes()); // ethertype
        v
    }

    /// One VLAN tag (after its TPID).
    pub(super) fn vlan(vid: u16, inner: u16) -> Vec<u8> {
        let mut v = vid.to_be_bytes().to_vec(); // PCP 0, DEI 0, VID
        v.extend_from_slice(&inner.to_be_bytes()); // inner type
        v
    }

    /// IPv4 header without options, then `payload`.
    fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
        ipv4_frag(src, dst, proto, 0, payload)
    }

    /// IPv4 header with flags/offset word `flg_off`, then `payload`. The
    /// header checksum is filled in, and so is the transport checksum of an
    /// unfragmented TCP/UDP/ICMP payload ([`seal`]).
    fn ipv4_frag(src: [u8; 4], dst: [u8; 4], proto: u8, flg_off: u16, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut v = vec![0x45, 0x00]; // version 4, IHL 5; TOS 0
        v.extend_from_slice(&total.to_be_bytes()); // total length
        v.extend_from_slice(&[0xbe, 0xef]); // identification
        v.extend_from_slice(&flg_off.to_be_bytes()); // flags, fragment offset
        v.extend_from_slice(&[64, proto]); // TTL 64, protocol
        v.extend_from_slice(&[0, 0]); // header checksum, filled in below
        v.extend_from_slice(&src); // source
        v.extend_from_slice(&dst); // destination
        let c = !ones_sum(&[&v]);
        v[10..12].copy_from_slice(&c.to_be_bytes());
        let mut p = payload.to_vec();
        if flg_off & 0x3fff == 0 {
            seal(&cat(&[&src, &dst]), proto, &mut p);
        }
        v.extend_from_slice(&p);
        v
    }

    /// The one's complement sum of `parts` concatenated, big-endian 16-bit
    /// words, an odd last byte padded with zero: RFC 1071 written the plain
    /// way, as a reference independent of `checksum.rs`.
    fn ones_sum(parts: &[&[u8]]) -> u16 {
        let all = parts.concat();
        let mut s: u32 = 0;
        for c in all.chunks(2) {
            s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    /// Fills in the checksum of the TCP (6), UDP (17), ICMP (1) or ICMPv6
    /// (58) message `seg` sent between `addrs` (source then destination
    /// bytes); leaves messages too short for their header as they are, so
    /// malformed fixtures stay malformed.
    fn seal(addrs: &[u8], proto: u8, seg: &mut [u8]) {
        let (at, min) = match proto {
            6 => (16, 20),
            17 => (6, 8),
            1 | 58 => (2, 8),
            _ => return,
        };
        if seg.len() < min {
            return;
        }
        seg[at..at + 2].copy_from_slice(&[0, 0]);
        let len = (seg.len() as u32).to_be_bytes();
        // Pseudo-header: addresses, zero, protocol, length (32 bits, which
        // sums the same as IPv4's 16 for lengths below 65536).
        let pseudo = cat(&[addrs, &[0, proto], &len]);
        let sum = if proto == 1 {
            ones_sum(&[seg])
        } else {
            ones_sum(&[&pseudo, seg])
        };
        let mut c = !sum;
        if proto == 17 && c == 0 {
            c = 0xffff; // RFC 768: a computed zero is sent as all ones
        }
        seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }

    /// IPv6 header, then `payload` (extension headers included); the
    /// transport checksum after a chain of hop-by-hop, routing,
    /// destination-options and AH headers is filled in ([`seal`]).
    fn ipv6(src: [u8; 16], dst: [u8; 16], nh: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x60, 0, 0, 0]; // version 6, traffic class, flow label
        v.extend_from_slice(&(payload.len() as u16).to_be_bytes()); // payload length
        v.extend_from_slice(&[nh, 55]); // next header, hop limit 55
        v.extend_from_slice(&src); // source
        v.extend_from_slice(&dst); // destination
        let mut p = payload.to_vec();
        let (mut nh, mut at) = (nh, 0usize);
        while at + 2 <= p.len() {
            let len = match nh {
                0 | 43 | 60 => (usize::from(p[at + 1]) + 1) * 8,
                51 => (usize::from(p[at + 1]) + 2) * 4,
                _ => break,
            };
            nh = p[at];
            at += len;
        }
        if at <= p.len() {
            seal(&cat(&[&src, &dst]), nh, &mut p[at..]);
        }
        v.extend_from_slice(&p);
        v
    }

    /// TCP header without options (flags PSH|ACK), then `payload`.
    fn tcp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = sport.to_be_bytes().to_vec(); // source port
        v.extend_from_slice(&dport.to_be_bytes()); // destination port
        v.extend_from_slice(&1000u32.to_be_bytes()); // sequence
        v.extend_from_slice(&2000u32.to_be_bytes()); // acknowledgment
        v.extend_from_slice(&[0x50, 0x18]); // data offset 5; flags PSH|ACK
        v.extend_from_slice(&512u16.to_be_bytes()); // window
        v.extend_from_slice(&[0, 0, 0, 0]); // checksum (sealed by the IP helper), urgent pointer
        v.extend_from_slice(payload);
        v
    }

    /// UDP header, then `payload`.
    fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = sport.to_be_bytes().to_vec(); // source port
        v.extend_from_slice(&dport.to_be_bytes()); // destination port
        v.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes()); // length
        v.extend_from_slice(&[0, 0]); // checksum: none, unless the IP helper seals it
        v.extend_from_slice(payload);
        v
    }

    /// ICMP echo request header (type 8 / 128 for v6), code 0.
    fn icmp(ty: u8) -> Vec<u8> {
        vec![
            ty, 0, // type, code
            0, 0, // checksum (sealed by the IP helper)
            0, 1, 0, 1, // identifier, sequence
        ]
    }

    /// Ethernet / IPv4 / TCP 10.0.0.1:1234 → 10.0.0.2:1883, payload "hi".
    fn eth_v4_tcp() -> Vec<u8> {
        cat(&[&eth(0x0800), &ipv4(A4, B4, 6, &tcp(1234, 1883, b"hi"))])
    }

    fn dec() -> Decoder {
        Decoder::new(DecodeConfig::default())
    }

    /// Decodes a whole (not snapped) frame.
    fn decode_all<'a>(d: &mut Decoder, link: LinkType, f: &'a [u8]) -> Decoded<'a> {
        d.decode(link, f, f.len() as u32)
    }

    fn packet(d: Decoded<'_>) -> Packet<'_> {
        match d {
            Decoded::Packet(p) => p,
            other => panic!("expected a packet, got {other:?}"),
        }
    }

    fn tcp_of(p: Packet<'_>) -> TcpSegment<'_> {
        match p.l4 {
            L4::Tcp(t) => t,
            other => panic!("expected TCP, got {other:?}"),
        }
    }

    fn udp_of(p: Packet<'_>) -> UdpDatagram<'_> {
        match p.l4 {
            L4::Udp(u) => u,
            other => panic!("expected UDP, got {other:?}"),
        }
    }

    #[test]
    fn ethernet_ipv4_tcp_fields_and_padding_stripped() {
        let mut f = eth_v4_tcp();
        f.extend_from_slice(&[0; 6]); // Ethernet padding
        let mut d = dec();
        let p = packet(decode_all(&mut d, LinkType::ETHERNET, &f));
        assert_eq!(p.ip.src, IpAddr::V4(Ipv4Addr::from(A4)));
        assert_eq!(p.ip.dst, IpAddr::V4(Ipv4Addr::from(B4)));
        assert_eq!((p.ip.proto, p.ip.ttl), (6, 64));
        assert_eq!((p.tunnel, p.vlan.as_slice()), (Tunnel::None, &[][..]));
        let t = tcp_of(p);
        assert_eq!(
            (t.src_port, t.dst_port, t.seq, t.ack, t.window),
            (1234, 1883, 1000, 2000, 512)
        );
        assert_eq!(t.flags, tcp_flags::PSH | tcp_flags::ACK);
        assert_eq!(t.payload, b"hi");
        let s = d.stats();
        for c in [
            Counter::Pkts,
            Counter::Ethernet,
            Counter::Ipv4,
            Counter::Tcp,
        ] {
            assert_eq!(s.get(c), 1, "{c:?}");
        }
        assert_eq!(s.get(Counter::Bytes), f.len() as u64);
        assert_eq!(s.get(Counter::Invalid), 0);
    }

    #[test]
    fn qinq_ipv6_udp_vlans_outermost_first() {
        let f = cat(&[
            &eth(0x88a8),
            &vlan(100, 0x8100),
            &vlan(200, 0x86dd),
            &ipv6(a6(), b6(), 17, &udp(5353, 53, b"q")),
        ]);
        let mut d = dec();
        let p = packet(decode_all(&mut d, LinkType::ETHERNET, &f));
        assert_eq!(p.vlan.as_slice(), &[100, 200]);
        assert_eq!(p.ip.ttl, 55);
        let u = udp_of(p);
        assert_eq!((u.src_port, u.dst_port, u.payload), (5353, 53, &b"q"[..]));
        assert_eq!(d.stats().get(Counter::Vlan), 1);
        assert_eq!(d.stats().get(Counter::VlanQinq), 1);
        assert_eq!(d.stats().get(Counter::Ipv6), 1);
    }

    #[test]
    fn vlan_0x9100_and_three_tags_accepted_four_rejected() {
        let three = cat(&[
            &eth(0x9100),
            &vlan(1, 0x8100),
            &vlan(2, 0x8100),
            &vlan(3, 0x0800),
            &ipv4(A4, B4, 6, &tcp(1, 2, b"")),
        ]);
        let mut d = dec();
        assert_eq!(
            packet(decode_all(&mut d, LinkType::ETHERNET, &three))
                .vlan
                .as_slice(),
            &[1, 2, 3]
        );
        assert_eq!(d.stats().get(Counter::VlanQinqinq), 1);
        let four = cat(&[
            &eth(0x8100),
            &vlan(1, 0x8100),
            &vlan(2, 0x8100),
            &vlan(3, 0x8100),
            &vlan(4, 0x0800),
            &ipv4(A4, B4, 6, &tcp(1, 2, b"")),
        ]);
        assert_eq!(
            decode_all(&mut d, LinkType::ETHERNET, &four),
            Decoded::Invalid
        );
        assert_eq!(d.stats().get(Counter::VlanTooManyLayers), 1);
        // A lower configured limit applies.
        let mut one = Decoder::new(DecodeConfig {
            max_vlan_layers: 1,
            ..DecodeConfig::default()
        });
        assert_eq!(
            decode_all(&mut one, LinkType::ETHERNET, &three),
            Decoded::Invalid
        );
    }

    #[test]
    fn ipv6_extension_headers_to_tcp() {
        let chain = cat(&[
            &[60, 0, 1, 4, 0, 0, 0, 0], // hop-by-hop: next dest-opts, 8 bytes, PadN
            &[43, 0, 1, 4, 0, 0, 0, 0], // dest-opts: next routing, 8 bytes, PadN
            &[6, 0, 4, 0, 0, 0, 0, 0],  // routing: next TCP, 8 bytes, type 4, segments left 0
            &tcp(443, 50000, b"tls"),
        ]);
        let f = cat(&[&eth(0x86dd), &ipv6(a6(), b6(), 0, &chain)]);
        let mut d = dec();
        let p = packet(decode_all(&mut d, LinkType::ETHERNET, &f));
        assert_eq!(p.ip.proto, 6);
        assert_eq!(tcp_of(p).payload, b"tls");
        // No next header ends the chain as Other.
        let f = cat(&[&eth(0x86dd), &ipv6(a6(), b6(), 59, &[])]);
        assert_eq!(
            packet(decode_all(&mut d, LinkType::ETHERNET, &f)).l4,
            L4::Other
        );
    }

    #[test]
    fn ipv4_and_ipv6_fragments_returned_as_fragments() {
        let mut d = dec();
        // MF set, offset 0.
        let f = cat(&[&eth(0x0800), &ipv4_frag(A4, B4, 17, 0x2000, &[1; 16])]);
        match decode_all(&mut d, LinkType::ETHERNET, &f) {
            Decoded::Fragment(fr) => {
                assert_eq!(
                    (fr.id, fr.offset, fr.more, fr.payload.len()),
                    (0xbeef, 0, true, 16)
                );
                assert_eq!(fr.ip.proto, 17);
            }
            other => panic!("{other:?}"),
        }
        // Last fragment at offset 2 × 8, MF clear.
        let f = cat(&[&eth(0x0800), &ipv4_frag(A4, B4, 17, 2, &[1; 4])]);
        assert!(matches!(
            decode_all(&mut d, LinkType::ETHERNET, &f),
            Decoded::Fragment(Fragment {
                offset: 16,
                more: false,
                ..
            })
        ));
        let fh = cat(&[
            &[17, 0],                  // fragment header: next UDP, reserved
            &[0x00, 0x09],             // offset 1 (× 8), M set
            &[0x80, 0x00, 0x00, 0x01], // identification (32 bits)
            &[7; 8],                   // fragment data
        ]);
        let f = cat(&[&eth(0x86dd), &ipv6(a6(), b6(), 44, &fh)]);
        match decode_all(&mut d, LinkType::ETHERNET, &f) {
            Decoded::Fragment(fr) => {
                assert_eq!((fr.id, fr.offset, fr.more), (0x8000_0001, 8, true));
                assert_eq!((fr.ip.proto, fr.payload), (17, &[7u8; 8][..]));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fragments_reassemble_and_decode_with_checksum_over_the_datagram() {
        // The UDP checksum covers the whole datagram: sealed here, checked
        // only after reassembly (each fragment alone would fail it).
        let mut dgram = udp(1000, 2000, b"0123456789abcdef");
        seal(&cat(&[&A4, &B4]), 17, &mut dgram);
        let mut d = dec();
        let mut r = defrag::Defrag::new(defrag::DefragConfig::default());
        let frags = |dgram: &[u8]| {
            [
                cat(&[&eth(0x0800), &ipv4_frag(A4, B4, 17, 0x2000, &dgram[..16])]),
                cat(&[&eth(0x0800), &ipv4_frag(A4, B4, 17, 2, &dgram[16..])]),
            ]
        };
        let reassemble = |d: &mut Decoder, r: &mut defrag::Defrag, fs: &[Vec<u8>]| {
            let mut out = None;
            for f in fs {
                if let Decoded::Fragment(fr) = decode_all(d, LinkType::ETHERNET, f) {
                    out = r
                        .insert(crate::time::Timestamp(1), &fr, f.len() as u32)
                        .map(|x| (fr.ip, x));
                }
            }
            out.unwrap()
        };
        let (ip, re) = reassemble(&mut d, &mut r, &frags(&dgram));
        assert_eq!(re.frames, 2);
        let frag = Fragment {
            vlan: Vlans::default(),
            tunnel: Tunnel::None,
            ip,
            id: 0xbeef,
            offset: 0,
            more: false,
            payload: &[],
            depth: 0,
        };
        let u = udp_of(packet(d.decode_reassembled(&frag, &re.data)));
        assert_eq!(
            (u.src_port, u.dst_port, u.payload),
            (1000, 2000, &b"0123456789abcdef"[..])
        );
        // One data byte changed in the second fragment: the datagram fails.
        let mut bad = dgram.clone();
        bad[20] ^= 0x40;
        let (_, re) = reassemble(&mut d, &mut r, &frags(&bad));
        assert_eq!(d.decode_reassembled(&frag, &re.data), Decoded::Invalid);
        assert_eq!(d.stats().get(Counter::UdpInvalidChecksum), 1);
        assert_eq!(d.stats().get(Counter::Invalid), 0);
        // IPv6: a destination-options header after the fragment header; the
        // pseudo-header length is the TCP segment's.
        let mut seg = tcp(1, 2, b"x");
        seal(&cat(&[&a6(), &b6()]), 6, &mut seg);
        let data = cat(&[&[6, 0, 1, 4, 0, 0, 0, 0], &seg]);
        let frag6 = Fragment {
            ip: IpInfo {
                src: IpAddr::V6(Ipv6Addr::from(a6())),
                dst: IpAddr::V6(Ipv6Addr::from(b6())),
                proto: 60,
                ttl: 1,
            },
            ..frag
        };
        assert!(matches!(
            packet(d.decode_reassembled(&frag6, &data)).l4,
            L4::Tcp(TcpSegment { payload: b"x", .. })
        ));
        // A malformed reassembled header is counted and dropped.
        let tcp4 = Fragment {
            ip: IpInfo { proto: 6, ..ip },
            ..frag
        };
        assert_eq!(d.decode_reassembled(&tcp4, &[0; 10]), Decoded::Invalid);
        assert_eq!(d.stats().get(Counter::TcpPktTooSmall), 1);
    }

    #[test]
    fn tunnel_inside_a_fragmented_outer_packet_is_peeled_after_reassembly() {
        let vx = [0x08, 0, 0, 0, 0, 0, 0x2a, 0]; // VXLAN: I flag, VNI 42
                                                 // The outer datagrams, checksums sealed over the whole of each.
        let mut vxlan = udp(9, 4789, &cat(&[&vx, &inner_eth_tcp(Some(5))]));
        seal(&cat(&[&C4, &D4]), 17, &mut vxlan);
        let gre = cat(&[&gre(0x6558), &inner_eth_tcp(None)]);
        for (proto, dgram, tunnel, vlans) in [
            (17u8, vxlan, Tunnel::Vxlan, &[5u16][..]),
            (47, gre, Tunnel::Gre, &[][..]),
        ] {
            let mut d = dec();
            let mut r = defrag::Defrag::new(defrag::DefragConfig::default());
            // Two fragments: bytes 0..48 (MF), then 48.. at offset 6 × 8.
            let f1 = cat(&[
                &eth(0x0800),
                &ipv4_frag(C4, D4, proto, 0x2000, &dgram[..48]),
            ]);
            let f2 = cat(&[&eth(0x0800), &ipv4_frag(C4, D4, proto, 6, &dgram[48..])]);
            let mut done = None;
            for f in [&f1, &f2] {
                let Decoded::Fragment(fr) = decode_all(&mut d, LinkType::ETHERNET, f) else {
                    panic!("proto {proto}: not a fragment");
                };
                if let Some(re) = r.insert(crate::time::Timestamp(1), &fr, f.len() as u32) {
                    done = Some((fr, re));
                }
            }
            let (fr, re) = done.unwrap();
            let p = packet(d.decode_reassembled(&fr, &re.data));
            assert_inner(p, tunnel, vlans);
        }
    }

    /// Every hand-built checksummed frame of one kind, with the byte to
    /// flip to corrupt it (a payload byte, or a header byte for IPv4) and
    /// the counter that must count it.
    fn checksummed() -> Vec<(&'static str, Vec<u8>, usize, Counter)> {
        let e = 14; // Ethernet header
        vec![
            // TCP over IPv4, odd payload length.
            (
                "tcp4",
                cat(&[&eth(0x0800), &ipv4(A4, B4, 6, &tcp(1234, 1883, b"abc"))]),
                e + 20 + 20 + 2,
                Counter::TcpInvalidChecksum,
            ),
            // TCP over IPv6: the pseudo-header holds 32 address bytes.
            (
                "tcp6",
                cat(&[
                    &eth(0x86dd),
                    &ipv6(a6(), b6(), 6, &tcp(1234, 104, b"dicom")),
                ]),
                e + 40 + 20 + 4,
                Counter::TcpInvalidChecksum,
            ),
            (
                "udp4",
                cat(&[&eth(0x0800), &ipv4(A4, B4, 17, &udp(5000, 53, b"odd"))]),
                e + 20 + 8 + 1,
                Counter::UdpInvalidChecksum,
            ),
            (
                "udp6",
                cat(&[&eth(0x86dd), &ipv6(a6(), b6(), 17, &udp(5000, 53, b"even"))]),
                e + 40 + 8,
                Counter::UdpInvalidChecksum,
            ),
            (
                "icmp4",
                cat(&[&eth(0x0800), &ipv4(A4, B4, 1, &cat(&[&icmp(8), b"ping!"]))]),
                e + 20 + 8 + 4,
                Counter::Icmpv4InvalidChecksum,
            ),
            (
                "icmp6",
                cat(&[
                    &eth(0x86dd),
                    &ipv6(a6(), b6(), 58, &cat(&[&icmp(128), b"ping"])),
                ]),
                e + 40 + 8,
                Counter::Icmpv6InvalidChecksum,
            ),
            // IPv4 header: the TTL byte.
            (
                "ipv4 header",
                cat(&[&eth(0x0800), &ipv4(A4, B4, 6, &tcp(1, 2, b""))]),
                e + 8,
                Counter::Ipv4InvalidChecksum,
            ),
        ]
    }

    #[test]
    fn valid_checksums_pass_corrupted_ones_are_dropped_and_counted() {
        for (name, f, at, counter) in checksummed() {
            let mut d = dec();
            assert!(
                matches!(
                    decode_all(&mut d, LinkType::ETHERNET, &f),
                    Decoded::Packet(_)
                ),
                "{name}: valid frame"
            );
            assert!(d.checked().any && !d.checked().offload, "{name}");
            let mut bad = f.clone();
            bad[at] ^= 0x01;
            assert_eq!(
                decode_all(&mut d, LinkType::ETHERNET, &bad),
                Decoded::Invalid,
                "{name}: corrupted"
            );
            let s = d.stats();
            assert_eq!(s.get(counter), 1, "{name}");
            // A checksum failure is not a malformed packet.
            assert_eq!(s.get(Counter::Invalid), 0, "{name}");
            // Validation off: the same bytes go through.
            let mut off = dec();
            off.set_validation(Validation::Off, false);
            assert!(
                matches!(
                    decode_all(&mut off, LinkType::ETHERNET, &bad),
                    Decoded::Packet(_)
                ),
                "{name}: not validated"
            );
            assert_eq!(off.checked(), Checked::default());
        }
    }

    /// The frame's sum given by the capture ([`Decoder::decode_summed`])
    /// gives the verdicts of summing the segment: every checksummed kind,
    /// whole and corrupted, with Ethernet padding after the IP packet, and
    /// a tunnelled segment (VXLAN in UDP, behind a VLAN tag).
    #[test]
    fn frame_sum_gives_the_same_verdicts_as_summing_the_segment() {
        let vx = [0x08, 0, 0, 0, 0, 0, 0x2a, 0]; // VXLAN: I flag, VNI 42
        let mut frames: Vec<(String, Vec<u8>, usize)> = checksummed()
            .into_iter()
            .map(|(name, f, at, _)| (name.to_string(), f, at))
            .collect();
        for (name, f, at) in frames.clone() {
            // Padding after the IP packet, as a short frame carries it.
            frames.push((format!("{name} padded"), cat(&[&f, &[0xa5; 7]]), at));
        }
        let tunnel = outer(17, &udp(9, 4789, &cat(&[&vx, &inner_eth_tcp(None)])));
        let at = tunnel.len() - 1;
        frames.push(("vxlan".into(), tunnel, at));
        for (name, f, at) in frames {
            let mut bad = f.clone();
            bad[at] ^= 0x01;
            for bytes in [&f, &bad] {
                let (mut plain, mut summed) = (dec(), dec());
                let want = plain.decode(LinkType::ETHERNET, bytes, bytes.len() as u32);
                let sum = Some(checksum::fold(checksum::add(0, bytes)));
                let got = summed.decode_summed(LinkType::ETHERNET, bytes, bytes.len() as u32, sum);
                assert_eq!(got, want, "{name}");
                assert_eq!(summed.stats(), plain.stats(), "{name}");
            }
        }
    }

    #[test]
    fn tunnelled_segment_checked_under_a_valid_outer_checksum() {
        let vx = [0x08, 0, 0, 0, 0, 0, 0x2a, 0]; // VXLAN: I flag, VNI 42
        let mut inner = inner_eth_tcp(None);
        inner[14 + 20 + 20] ^= 1; // a payload byte of the inner segment
                                  // The outer UDP checksum is sealed over the corrupted inner frame.
        let f = outer(17, &udp(9, 4789, &cat(&[&vx, &inner])));
        let mut d = dec();
        assert_eq!(decode_all(&mut d, LinkType::ETHERNET, &f), Decoded::Invalid);
        assert_eq!(d.stats().get(Counter::TcpInvalidChecksum), 1);
        assert_eq!(d.stats().get(Counter::UdpInvalidChecksum), 0);
        assert_eq!(d.stats().get(Counter::Vxlan), 1);
    }

    #[test]
    fn udp_zero_checksum_is_none_over_ipv4_only() {
        // `udp` writes a zero checksum; the IP helpers seal it, so clear it
        // again after.
        let mut v4 = cat(&[&eth(0x0800), &ipv4(A4, B4, 17, &udp(5000, 53, b"q"))]);
        v4[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&[0, 0]);
        let mut v6 = cat(&[&eth(0x86dd), &ipv6(a6(), b6(), 17, &udp(5000, 53, b"q"))]);
        v6[14 + 40 + 6..14 + 40 + 8].copy_from_slice(&[0, 0]);
        let mut d = dec();
        assert!(matches!(
            decode_all(&mut d, LinkType::ETHERNET, &v4),
            Decoded::Packet(_)
        ));
        assert_eq!(
            decode_all(&mut d, LinkType::ETHERNET, &v6),
            Decoded::Invalid
        );
        assert_eq!(d.stats().get(Counter::UdpInvalidChecksum), 1);
        // A VXLAN endpoint over IPv6 may send zero (RFC 6935).
        let mut vx = cat(&[&eth(0x86dd), &ipv6(a6(), b6(), 17, &udp(9, 4789, &[0; 8]))]);
        vx[14 + 40 + 6..14 + 40 + 8].copy_from_slice(&[0, 0]);
        assert_ne!(
            decode_all(&mut d, LinkType::ETHERNET, &vx),
            Decoded::Invalid
        );
        assert_eq!(d.stats().get(Counter::UdpInvalidChecksum), 1);
    }

    #[test]
    fn offload_pattern_dropped_when_strict_passed_when_lenient() {
        // Hand-built sending-host TCP segment: the checksum field holds the
        // pseudo-header sum only, as Linux leaves it for the NIC.
        let mut f = cat(&[&eth(0x0800), &ipv4(A4, B4, 6, &tcp(1234, 1883, b"abc"))]);
        let pseudo = ones_sum(&[&A4, &B4, &[0, 6], &23u16.to_be_bytes()]);
        f[14 + 20 + 16..14 + 20 + 18].copy_from_slice(&pseudo.to_be_bytes());
        let mut strict = dec();
        assert_eq!(
            decode_all(&mut strict, LinkType::ETHERNET, &f),
            Decoded::Invalid
        );
        assert_eq!(
            strict.checked(),
            Checked {
                any: true,
                offload: true
            }
        );
        assert_eq!(strict.stats().get(Counter::TcpInvalidChecksum), 1);
        let mut lenient = dec();
        lenient.set_validation(Validation::Lenient, false);
        assert!(matches!(
            decode_all(&mut lenient, LinkType::ETHERNET, &f),
            Decoded::Packet(_)
        ));
        assert!(lenient.checked().offload);
        // Any other wrong value is still dropped when lenient.
        f[14 + 20 + 16] ^= 0x10;
        assert_eq!(
            decode_all(&mut lenient, LinkType::ETHERNET, &f),
            Decoded::Invalid
        );
        assert!(!lenient.checked().offload);
        // A zero IPv4 header checksum (Windows offload) is the pattern too.
        let mut z = cat(&[&eth(0x0800), &ipv4(A4, B4, 6, &tcp(1, 2, b""))]);
        z[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
        assert!(matches!(
            decode_all(&mut lenient, LinkType::ETHERNET, &z),
            Decoded::Packet(_)
        ));
        assert_eq!(
            decode_all(&mut strict, LinkType::ETHERNET, &z),
            Decoded::Invalid
        );
        assert_eq!(strict.stats().get(Counter::Ipv4InvalidChecksum), 1);
    }

    #[test]
    fn snapped_transport_is_not_verified_but_the_ip_header_is() {
        let f = cat(&[&eth(0x0800), &ipv4(A4, B4, 6, &tcp(1234, 1883, b"abcdef"))]);
        let mut cut = f[..f.len() - 3].to_vec();
        // The missing bytes would have made the checksum wrong anyway.
        let mut d = dec();
        assert!(matches!(
            d.decode(LinkType::ETHERNET, &cut, f.len() as u32),
            Decoded::Packet(_)
        ));
        cut[14 + 8] ^= 1; // TTL: the header checksum no longer matches
        assert_eq!(
            d.decode(LinkType::ETHERNET, &cut, f.len() as u32),
            Decoded::Invalid
        );
        assert_eq!(d.stats().get(Counter::Ipv4InvalidChecksum), 1);
    }

    #[test]
    fn icmp_types_and_codes() {
        let mut d = dec();
        let f = cat(&[&eth(0x0800), &ipv4(A4, B4, 1, &icmp(8))]);
        assert_eq!(
            packet(decode_all(&mut d, LinkType::ETHERNET, &f)).l4,
            L4::Icmp {
                icmp_type: 8,
                code: 0
            }
        );
        let f = cat(&[&eth(0x86dd), &ipv6(a6(), b6(), 58, &icmp(128))]);
        assert_eq!(
            packet(decode_all(&mut d, LinkType::ETHERNET, &f)).l4,
            L4::Icmp {
                icmp_type: 128,
                code: 0
            }
        );
        assert_eq!(d.stats().get(Counter::Icmpv4), 1);
        assert_eq!(d.stats().get(Counter::Icmpv6), 1);
    }

    #[test]
    fn link_types_sll_sll2_null_loop_raw() {
        let ip = ipv4(A4, B4, 6, &tcp(1, 2, b"z"));
        let ip6 = ipv6(a6(), b6(), 6, &tcp(1, 2, b"z"));
        let sll = cat(&[
            &[0, 0],                   // packet type
            &[0, 1],                   // ARPHRD_ETHER
            &[0, 6],                   // address length
            &[2, 0, 0, 0, 0, 1, 0, 0], // address
            &[0x08, 0x00],             // protocol IPv4
        ]);
        let sll2 = cat(&[
            &[0x86, 0xdd],             // protocol IPv6
            &[0, 0],                   // reserved
            &[0, 0, 0, 1],             // interface index
            &[0, 1],                   // ARPHRD_ETHER
            &[0, 6],                   // packet type, address length
            &[2, 0, 0, 0, 0, 1, 0, 0], // address
        ]);
        let cases: Vec<(LinkType, Vec<u8>, Counter)> = vec![
            (LinkType::LINUX_SLL, cat(&[&sll, &ip]), Counter::Sll),
            (LinkType::LINUX_SLL2, cat(&[&sll2, &ip6]), Counter::Sll2),
            (LinkType::NULL, cat(&[&[2, 0, 0, 0], &ip]), Counter::Null), // AF_INET, little endian
            (LinkType::NULL, cat(&[&[0, 0, 0, 2], &ip]), Counter::Null), // AF_INET, big endian
            (LinkType::NULL, cat(&[&[30, 0, 0, 0], &ip6]), Counter::Null), // AF_INET6 (macOS)
            (LinkType::LOOP, cat(&[&[0, 0, 0, 24], &ip6]), Counter::Null), // AF_INET6 (OpenBSD)
            (LinkType::RAW, ip.clone(), Counter::Raw),
            (LinkType::RAW, ip6.clone(), Counter::Raw),
            (LinkType(12), ip.clone(), Counter::Raw),
            (LinkType(14), ip6.clone(), Counter::Raw),
            (LinkType::IPV4, ip.clone(), Counter::Raw),
            (LinkType::IPV6, ip6.clone(), Counter::Raw),
        ];
        for (link, f, c) in cases {
            let mut d = dec();
            let p = packet(decode_all(&mut d, link, &f));
            assert_eq!(tcp_of(p).payload, b"z", "{link:?}");
            assert_eq!(d.stats().get(c), 1, "{link:?}");
        }
    }

    #[test]
    fn not_ip_frames_counted_not_invalid() {
        let mut d = dec();
        let arp = cat(&[&eth(0x0806), &[0; 28]]);
        assert_eq!(decode_all(&mut d, LinkType::ETHERNET, &arp), Decoded::NotIp);
        let lldp = cat(&[&eth(0x88cc), &[0; 10]]);
        assert_eq!(
            decode_all(&mut d, LinkType::ETHERNET, &lldp),
            Decoded::NotIp
        );
        let llc = cat(&[&eth(0x0026), &[0x42, 0x42, 0x03]]); // 802.3 length, STP LLC
        assert_eq!(decode_all(&mut d, LinkType::ETHERNET, &llc), Decoded::NotIp);
        let mut sll = vec![0u8; 16];
        sll[15] = 0x04; // protocol ETH_P_802_2
        assert_eq!(
            decode_all(&mut d, LinkType::LINUX_SLL, &sll),
            Decoded::NotIp
        );
        assert_eq!(
            decode_all(&mut d, LinkType::NULL, &[7, 0, 0, 0]),
            Decoded::NotIp
        );
        assert_eq!(
            decode_all(&mut d, LinkType(147), &[1, 2, 3]),
            Decoded::NotIp
        );
        let s = d.stats();
        assert_eq!(s.get(Counter::Arp), 1);
        assert_eq!(s.get(Counter::UnknownEthertype), 1);
        assert_eq!(s.get(Counter::NullUnsupportedType), 1);
        assert_eq!(s.get(Counter::Invalid), 0);
    }

    /// GRE v0 header without options.
    fn gre(proto: u16) -> Vec<u8> {
        let mut v = vec![0x00, 0x00]; // no C/K/S, version 0
        v.extend_from_slice(&proto.to_be_bytes()); // protocol type
        v
    }

    /// GRE v0 header with a sequence number (as ERSPAN II/III use).
    fn gre_seq(proto: u16) -> Vec<u8> {
        let mut v = vec![0x10, 0x00]; // S set, version 0
        v.extend_from_slice(&proto.to_be_bytes()); // protocol type
        v.extend_from_slice(&[0, 0, 0, 9]); // sequence number
        v
    }

    /// Outer Ethernet (VLAN 7) / IPv4 C→D carrying `proto` `payload`.
    fn outer(proto: u8, payload: &[u8]) -> Vec<u8> {
        cat(&[
            &eth(0x8100),
            &vlan(7, 0x0800),
            &ipv4(C4, D4, proto, payload),
        ])
    }

    fn inner_eth_tcp(vid: Option<u16>) -> Vec<u8> {
        let ip = ipv4(A4, B4, 6, &tcp(1234, 104, b"dicom"));
        match vid {
            Some(v) => cat(&[&eth(0x8100), &vlan(v, 0x0800), &ip]),
            None => cat(&[&eth(0x0800), &ip]),
        }
    }

    fn assert_inner(p: Packet<'_>, tunnel: Tunnel, vlans: &[u16]) {
        assert_eq!(p.tunnel, tunnel);
        assert_eq!(p.vlan.as_slice(), vlans);
        assert_eq!(p.ip.src, IpAddr::V4(Ipv4Addr::from(A4)));
        assert_eq!(p.ip.dst, IpAddr::V4(Ipv4Addr::from(B4)));
        let t = tcp_of(p);
        assert_eq!(
            (t.src_port, t.dst_port, t.payload),
            (1234, 104, &b"dicom"[..])
        );
    }

    #[test]
    fn gre_ip_keeps_outer_vlans_gretap_uses_inner_vlans() {
        let mut d = dec();
        let ip = ipv4(A4, B4, 6, &tcp(1234, 104, b"dicom"));
        let f = outer(47, &cat(&[&gre(0x0800), &ip]));
        assert_inner(
            packet(decode_all(&mut d, LinkType::ETHERNET, &f)),
            Tunnel::Gre,
            &[7],
        );
        let f = outer(47, &cat(&[&gre(0x6558), &inner_eth_tcp(Some(300))]));
        assert_inner(
            packet(decode_all(&mut d, LinkType::ETHERNET, &f)),
            Tunnel::Gre,
            &[300],
        );
        let f = outer(47, &cat(&[&gre(0x6558), &inner_eth_tcp(None)]));
        assert_inner(
            packet(decode_all(&mut d, LinkType::ETHERNET, &f)),
            Tunnel::Gre,
            &[],
        );
        // GRE with checksum and key over IPv6, carrying IPv6.
        let gck = cat(&[
            &[0xa0, 0x00], // C, K set, version 0
            &[0x86, 0xdd], // protocol IPv6
            &[0, 0, 0, 0], // checksum, reserved1
            &[0, 0, 0, 5], // key
        ]);
        let inner6 = ipv6(a6(), b6(), 17, &udp(1, 2, b"six"));
        let f = cat(&[&eth(0x86dd), &ipv6(b6(), a6(), 47, &cat(&[&gck, &inner6]))]);
        let p = packet(decode_all(&mut d, LinkType::ETHERNET, &f));
        assert_eq!(
            (p.tunnel, p.ip.src),
            (Tunnel::Gre, IpAddr::V6(Ipv6Addr::from(a6())))
        );
        assert_eq!(udp_of(p).payload, b"six");
        assert_eq!(d.stats().get(Counter::Gre), 4);
    }

    #[test]
    fn gre_unknown_protocol_and_pptp_are_outer_packets() {
        let mut d = dec();
        let f = outer(47, &gre(0x1234));
        let p = packet(decode_all(&mut d, LinkType::ETHERNET, &f));
        assert_eq!((p.tunnel, p.l4, p.ip.proto), (Tunnel::None, L4::Other, 47));
        let pptp = cat(&[
            &[0x20, 0x01],             // K set, version 1
            &[0x88, 0x0b],             // protocol PPP
            &[0, 4, 0, 1],             // payload length 4, call id 1
            &[0xff, 0x03, 0x00, 0x21], // PPP
        ]);
        let f = outer(47, &pptp);
        let p = packet(decode_all(&mut d, LinkType::ETHERNET, &f));
        assert_eq!(p.l4, L4::Other);
    }

    #[test]
    fn erspan_types_one_two_three() {
        let mut d = dec();
        let er2 = [
            0x10, 0x07, // version 1, VLAN 7
            0x00, 0x01, // COS, En, T, session 1
            0x00, 0x00, 0x00, 0x00, // reserved, index
        ];
        let f = outer(
            47,
            &cat(&[&gre_seq(0x88be), &er2, &inner_eth_tcp(Some(42))]),
        );
        assert_inner(
            packet(decode_all(&mut d, LinkType::ETHERNET, &f)),
            Tunnel::ErspanII,
            &[42],
        );
        // Type I: no sequence number, no ERSPAN header.
        let f = outer(47, &cat(&[&gre(0x88be), &inner_eth_tcp(None)]));
        assert_inner(
            packet(decode_all(&mut d, LinkType::ETHERNET, &f)),
            Tunnel::ErspanII,
            &[],
        );
        let er3 = [
            0x20, 0x00, // version 2, VLAN 0
            0x00, 0x02, // COS, BSO, T, session 2
            0x00, 0x00, 0x10, 0x00, // timestamp
            0x00, 0x00, // SGT
            0x00, // P 0, FT 0 (Ethernet), Hw ID high
            0x01, // Hw ID low, D 0, Gra 0, O 1
            0x08, 0, 0, 0, 0, 0, 0, 0, // platform-specific subheader
        ];
        let f = outer(47, &cat(&[&gre_seq(0x22eb), &er3, &inner_eth_tcp(None)]));
        assert_inner(
            packet(decode_all(&mut d, LinkType::ETHERNET, &f)),
            Tunnel::ErspanIII,
            &[],
        );
        // Type III with frame type IP: the outer VLAN is the innermost seen.
        let mut er3ip = er3;
        er3ip[10] = 0x08; // FT 2
        let f = outer(
            47,
            &cat(&[
                &gre_seq(0x22eb),
                &er3ip,
                &ipv4(A4, B4, 6, &tcp(1234, 104, b"dicom")),
            ]),
        );
        assert_inner(
            packet(decode_all(&mut d, LinkType::ETHERNET, &f)),
            Tunnel::ErspanIII,
            &[7],
        );
        assert_eq!(d.stats().get(Counter::Erspan), 4);
    }

    #[test]
    fn vxlan_on_configured_port_only() {
        let vx = [
            0x08, 0, 0, 0, // flags: I; reserved
            0, 0, 0x2a, 0, // VNI 42, reserved
        ];
        let mut d = dec();
        let f = outer(17, &udp(40000, 4789, &cat(&[&vx, &inner_eth_tcp(Some(9))])));
        assert_inner(
            packet(decode_all(&mut d, LinkType::ETHERNET, &f)),
            Tunnel::Vxlan,
            &[9],
        );
        assert_eq!(d.stats().get(Counter::Vxlan), 1);
        let f = outer(17, &udp(40000, 8472, &cat(&[&vx, &inner_eth_tcp(None)])));
        let p = packet(decode_all(&mut d, LinkType::ETHERNET, &f));
        assert_eq!((p.tunnel, udp_of(p).dst_port), (Tunnel::None, 8472));
        // Without the I flag it stays UDP.
        let mut nox = vx;
        nox[0] = 0;
        let f = outer(17, &udp(40000, 4789, &cat(&[&nox, &inner_eth_tcp(None)])));
        assert_eq!(
            packet(decode_all(&mut d, LinkType::ETHERNET, &f)).tunnel,
            Tunnel::None
        );
        // An inner frame of unknown type is counted.
        let f = outer(17, &udp(40000, 4789, &cat(&[&vx, &eth(0x88cc), &[0; 8]])));
        assert_eq!(decode_all(&mut d, LinkType::ETHERNET, &f), Decoded::NotIp);
        assert_eq!(d.stats().get(Counter::VxlanUnknownPayloadType), 1);
    }

    #[test]
    fn ip_in_ip_all_four_combinations() {
        let mut d = dec();
        let in4 = ipv4(A4, B4, 6, &tcp(1234, 104, b"dicom"));
        let in6 = ipv6(a6(), b6(), 6, &tcp(1234, 104, b"dicom"));
        let frames = [
            cat(&[&eth(0x0800), &ipv4(C4, D4, 4, &in4)]),
            cat(&[&eth(0x0800), &ipv4(C4, D4, 41, &in6)]),
            cat(&[&eth(0x86dd), &ipv6(b6(), a6(), 4, &in4)]),
            cat(&[&eth(0x86dd), &ipv6(b6(), a6(), 41, &in6)]),
        ];
        for f in &frames {
            let p = packet(decode_all(&mut d, LinkType::ETHERNET, f));
            assert_eq!(p.tunnel, Tunnel::IpInIp);
            assert_eq!(tcp_of(p).payload, b"dicom");
        }
        for c in [
            Counter::Ipv4InIpv4,
            Counter::Ipv6InIpv4,
            Counter::Ipv4InIpv6,
            Counter::Ipv6InIpv6,
        ] {
            assert_eq!(d.stats().get(c), 1, "{c:?}");
        }
    }

    #[test]
    fn tunnel_depth_limit_returns_outer_packet() {
        let mut d = Decoder::new(DecodeConfig {
            max_tunnel_depth: 1,
            ..DecodeConfig::default()
        });
        let inner = ipv4(A4, B4, 6, &tcp(1234, 104, b"dicom"));
        let twice = ipv4(C4, D4, 47, &cat(&[&gre(0x0800), &inner]));
        let f = outer(47, &cat(&[&gre(0x0800), &twice]));
        let p = packet(decode_all(&mut d, LinkType::ETHERNET, &f));
        assert_eq!((p.tunnel, p.l4, p.ip.proto), (Tunnel::Gre, L4::Other, 47));
        assert_eq!(d.stats().get(Counter::TooManyLayers), 1);
        // The default depth peels both.
        assert_inner(
            packet(decode_all(&mut dec(), LinkType::ETHERNET, &f)),
            Tunnel::Gre,
            &[7],
        );
    }

    #[test]
    fn snapped_capture_decodes_what_is_there() {
        let f = cat(&[&eth(0x0800), &ipv4(A4, B4, 6, &tcp(1, 2, b"long payload"))]);
        let mut d = dec();
        let cut = &f[..f.len() - 5];
        let p = packet(d.decode(LinkType::ETHERNET, cut, f.len() as u32));
        assert_eq!(tcp_of(p).payload, b"long pa");
        // Not snapped: the same bytes are a truncated packet.
        assert_eq!(
            d.decode(LinkType::ETHERNET, cut, cut.len() as u32),
            Decoded::Invalid
        );
        assert_eq!(d.stats().get(Counter::Ipv4TruncPkt), 1);
    }

    /// Each malformed frame and the one reason it must be counted under.
    fn malformed() -> Vec<(LinkType, Vec<u8>, Counter)> {
        let e = LinkType::ETHERNET;
        let t = tcp(1, 2, b"");
        let mut v4_ver = ipv4(A4, B4, 6, &t);
        v4_ver[0] = 0x55; // version 5
        let mut v4_ihl = ipv4(A4, B4, 6, &t);
        v4_ihl[0] = 0x44; // IHL 4
        let mut v4_tot = ipv4(A4, B4, 6, &t);
        v4_tot[3] = 16; // total length 16 < 20
        let mut v4_trunc = ipv4(A4, B4, 6, &t);
        v4_trunc[3] = 200; // total length beyond the frame
        let mut v6_ver = ipv6(a6(), b6(), 6, &t);
        v6_ver[0] = 0x40;
        let mut v6_trunc = ipv6(a6(), b6(), 6, &t);
        v6_trunc[5] = 100;
        let mut tcp_off = t.clone();
        tcp_off[12] = 0x40; // data offset 4
        let mut tcp_opts = t.clone();
        tcp_opts[12] = 0x60; // data offset 6, options missing
        let mut udp_bad = udp(1, 2, b"abcd");
        udp_bad[5] = 4; // length 4 < 8
        let mut udp_long = udp(1, 2, b"abcd");
        udp_long[5] = 20; // length beyond the IP payload
        let mut udp_short = udp(1, 2, b"abcd");
        udp_short[5] = 10; // length below the IP payload
        vec![
            (e, vec![0; 13], Counter::EthernetPktTooSmall),
            (
                e,
                cat(&[&eth(0x8100), &[0, 1]]),
                Counter::VlanHeaderTooSmall,
            ),
            (LinkType::LINUX_SLL, vec![0; 15], Counter::SllPktTooSmall),
            (LinkType::LINUX_SLL2, vec![0; 19], Counter::Sll2PktTooSmall),
            (LinkType::NULL, vec![2, 0, 0], Counter::NullPktTooSmall),
            (LinkType::RAW, vec![0x50; 30], Counter::RawInvalidIpVersion),
            (LinkType::RAW, vec![], Counter::RawInvalidIpVersion),
            (
                e,
                cat(&[&eth(0x0800), &[0x45; 19]]),
                Counter::Ipv4PktTooSmall,
            ),
            (
                e,
                cat(&[&eth(0x0800), &v4_ver]),
                Counter::Ipv4WrongIpVersion,
            ),
            (e, cat(&[&eth(0x0800), &v4_ihl]), Counter::Ipv4HlenTooSmall),
            (
                e,
                cat(&[&eth(0x0800), &v4_tot]),
                Counter::Ipv4IplenSmallerThanHlen,
            ),
            (e, cat(&[&eth(0x0800), &v4_trunc]), Counter::Ipv4TruncPkt),
            (
                e,
                cat(&[&eth(0x0800), &ipv4(A4, B4, 58, &icmp(128))]),
                Counter::Ipv4Icmpv6,
            ),
            (
                e,
                cat(&[&eth(0x86dd), &[0x60; 39]]),
                Counter::Ipv6PktTooSmall,
            ),
            (
                e,
                cat(&[&eth(0x86dd), &v6_ver]),
                Counter::Ipv6WrongIpVersion,
            ),
            (e, cat(&[&eth(0x86dd), &v6_trunc]), Counter::Ipv6TruncPkt),
            (
                e,
                cat(&[&eth(0x86dd), &ipv6(a6(), b6(), 0, &[6, 3, 0, 0])]),
                Counter::Ipv6TruncExthdr,
            ),
            (
                e,
                cat(&[&eth(0x86dd), &ipv6(a6(), b6(), 1, &icmp(8))]),
                Counter::Ipv6Icmpv4,
            ),
            (
                e,
                cat(&[
                    &eth(0x86dd),
                    &ipv6(
                        a6(),
                        b6(),
                        0,
                        &[0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0],
                    ),
                ]),
                Counter::Ipv6ExthdrDuplHh,
            ),
            (
                e,
                cat(&[&eth(0x0800), &ipv4(A4, B4, 6, &t[..19])]),
                Counter::TcpPktTooSmall,
            ),
            (
                e,
                cat(&[&eth(0x0800), &ipv4(A4, B4, 6, &tcp_off)]),
                Counter::TcpHlenTooSmall,
            ),
            (
                e,
                cat(&[&eth(0x0800), &ipv4(A4, B4, 6, &tcp_opts)]),
                Counter::TcpPktTooSmall,
            ),
            (
                e,
                cat(&[&eth(0x0800), &ipv4(A4, B4, 17, &[0; 7])]),
                Counter::UdpHlenTooSmall,
            ),
            (
                e,
                cat(&[&eth(0x0800), &ipv4(A4, B4, 17, &udp_bad)]),
                Counter::UdpLenInvalid,
            ),
            (
                e,
                cat(&[&eth(0x0800), &ipv4(A4, B4, 17, &udp_long)]),
                Counter::UdpPktTooSmall,
            ),
            (
                e,
                cat(&[&eth(0x0800), &ipv4(A4, B4, 17, &udp_short)]),
                Counter::UdpHlenInvalid,
            ),
            (
                e,
                cat(&[&eth(0x0800), &ipv4(A4, B4, 1, &[8, 0, 0])]),
                Counter::Icmpv4PktTooSmall,
            ),
            (
                e,
                cat(&[&eth(0x86dd), &ipv6(a6(), b6(), 58, &[128, 0])]),
                Counter::Icmpv6PktTooSmall,
            ),
            (e, outer(47, &[0, 0, 8]), Counter::GrePktTooSmall),
            (e, outer(47, &[0, 2, 8, 0]), Counter::GreWrongVersion),
            (e, outer(47, &[1, 0, 8, 0]), Counter::GreVersion0Recur),
            (e, outer(47, &[0x40, 0, 8, 0]), Counter::GreVersion0Flags),
            (
                e,
                outer(47, &[0x80, 0, 8, 0, 0, 0]),
                Counter::GreVersion0HdrTooBig,
            ),
            (
                e,
                outer(47, &[0xa0, 1, 0x88, 0x0b]),
                Counter::GreVersion1Chksum,
            ),
            (
                e,
                outer(47, &[0x60, 1, 0x88, 0x0b]),
                Counter::GreVersion1Route,
            ),
            (
                e,
                outer(47, &[0x28, 1, 0x88, 0x0b]),
                Counter::GreVersion1Ssr,
            ),
            (
                e,
                outer(47, &[0x21, 1, 0x88, 0x0b]),
                Counter::GreVersion1Recur,
            ),
            (
                e,
                outer(47, &[0x20, 9, 0x88, 0x0b]),
                Counter::GreVersion1Flags,
            ),
            (
                e,
                outer(47, &[0x00, 1, 0x88, 0x0b]),
                Counter::GreVersion1NoKey,
            ),
            (
                e,
                outer(47, &[0x20, 1, 0x08, 0x00]),
                Counter::GreVersion1WrongProtocol,
            ),
            (
                e,
                outer(47, &[0x20, 1, 0x88, 0x0b, 0, 0]),
                Counter::GreVersion1HdrTooBig,
            ),
            (
                e,
                outer(47, &cat(&[&gre_seq(0x88be), &[0x10, 0, 0]])),
                Counter::ErspanHeaderTooSmall,
            ),
            (
                e,
                outer(47, &cat(&[&gre_seq(0x88be), &[0x30, 0, 0, 0, 0, 0, 0, 0]])),
                Counter::ErspanUnsupportedVersion,
            ),
        ]
    }

    #[test]
    fn each_malformed_reason_counted_once_and_invalid() {
        for (link, f, reason) in malformed() {
            let mut d = dec();
            assert_eq!(decode_all(&mut d, link, &f), Decoded::Invalid, "{reason:?}");
            let s = d.stats();
            assert_eq!(s.get(reason), 1, "{reason:?}");
            assert_eq!(s.get(Counter::Invalid), 1, "{reason:?}");
            // Exactly one malformed-reason counter moved.
            let events = s
                .counters()
                .into_iter()
                .filter(|(p, _)| p.starts_with("decoder.event."))
                .count();
            assert_eq!(events, 1, "{reason:?}: {:?}", s.counters());
        }
    }

    /// Every valid frame the tests above use, for the truncation sweep.
    fn valid_frames() -> Vec<(LinkType, Vec<u8>)> {
        let vx = [0x08, 0, 0, 0, 0, 0, 0x2a, 0];
        let er2 = [0x10, 0x07, 0x00, 0x01, 0, 0, 0, 0];
        let in6 = ipv6(a6(), b6(), 6, &tcp(1234, 104, b"dicom"));
        vec![
            (LinkType::ETHERNET, eth_v4_tcp()),
            (
                LinkType::ETHERNET,
                cat(&[
                    &eth(0x88a8),
                    &vlan(1, 0x8100),
                    &vlan(2, 0x86dd),
                    &ipv6(a6(), b6(), 17, &udp(1, 2, b"u")),
                ]),
            ),
            (
                LinkType::ETHERNET,
                outer(47, &cat(&[&gre(0x6558), &inner_eth_tcp(Some(3))])),
            ),
            (
                LinkType::ETHERNET,
                outer(47, &cat(&[&gre_seq(0x88be), &er2, &inner_eth_tcp(None)])),
            ),
            (
                LinkType::ETHERNET,
                outer(17, &udp(9, 4789, &cat(&[&vx, &inner_eth_tcp(None)]))),
            ),
            (
                LinkType::ETHERNET,
                cat(&[&eth(0x0800), &ipv4(C4, D4, 41, &in6)]),
            ),
            (
                LinkType::RAW,
                ipv6(
                    a6(),
                    b6(),
                    0,
                    &cat(&[&[6, 0, 1, 4, 0, 0, 0, 0], &tcp(1, 2, b"x")]),
                ),
            ),
            (
                LinkType::ETHERNET,
                cat(&[&eth(0x0800), &ipv4(A4, B4, 1, &icmp(8))]),
            ),
        ]
    }

    #[test]
    fn every_truncation_of_valid_frames_is_invalid_or_shorter() {
        for (link, f) in valid_frames() {
            let mut d = dec();
            assert!(
                matches!(decode_all(&mut d, link, &f), Decoded::Packet(_)),
                "{link:?} {f:02x?}"
            );
            for cut in 0..f.len() {
                let b = &f[..cut];
                // Not snapped: a cut frame is malformed.
                assert_eq!(
                    d.decode(link, b, cut as u32),
                    Decoded::Invalid,
                    "{link:?} cut at {cut}"
                );
                // Snapped: whatever decodes carries no more payload.
                if let Decoded::Packet(p) = d.decode(link, b, f.len() as u32) {
                    let n = match p.l4 {
                        L4::Tcp(t) => t.payload.len(),
                        L4::Udp(u) => u.payload.len(),
                        _ => 0,
                    };
                    assert!(n <= f.len() - 14);
                }
            }
        }
    }

    mod props {
        use super::*;
        use etherparse::PacketBuilder;
        use proptest::prelude::*;

        const LINKS: [LinkType; 11] = [
            LinkType::NULL,
            LinkType::ETHERNET,
            LinkType::RAW,
            LinkType::LOOP,
            LinkType::LINUX_SLL,
            LinkType::IPV4,
            LinkType::IPV6,
            LinkType::LINUX_SLL2,
            LinkType(12),
            LinkType(14),
            LinkType(999),
        ];

        /// Bytes that reach deep layers more often than uniform noise does:
        /// a valid prefix from the hand-built frames, then random bytes.
        fn seeded() -> impl Strategy<Value = (LinkType, Vec<u8>)> {
            let frames = valid_frames();
            (
                0..frames.len(),
                any::<usize>(),
                proptest::collection::vec(any::<u8>(), 0..64),
            )
                .prop_map(move |(i, cut, tail)| {
                    let (link, f) = &frames[i];
                    let mut v = f[..cut % (f.len() + 1)].to_vec();
                    v.extend_from_slice(&tail);
                    (*link, v)
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn random_bytes_never_panic_any_link(
                link in 0..LINKS.len(),
                data in proptest::collection::vec(any::<u8>(), 0..200),
                extra in 0u32..100,
            ) {
                let mut d = dec();
                let link = LINKS[link];
                let _ = d.decode(link, &data, data.len() as u32);
                let _ = d.decode(link, &data, data.len() as u32 + extra);
                for proto in [0u8, 1, 4, 6, 17, 41, 43, 44, 47, 51, 58, 60] {
                    for v6 in [false, true] {
                        let (src, dst): (IpAddr, IpAddr) = if v6 {
                            (Ipv6Addr::from(a6()).into(), Ipv6Addr::from(b6()).into())
                        } else {
                            (Ipv4Addr::from(A4).into(), Ipv4Addr::from(B4).into())
                        };
                        let f = Fragment {
                            vlan: Vlans::default(),
                            tunnel: Tunnel::None,
                            ip: IpInfo { src, dst, proto, ttl: 1 },
                            id: 1,
                            offset: 0,
                            more: false,
                            payload: &[],
                            depth: 0,
                        };
                        let _ = d.decode_reassembled(&f, &data);
                    }
                }
            }

            #[test]
            fn mutated_valid_frames_never_panic((link, data) in seeded(), flip in any::<(usize, u8)>()) {
                let mut d = dec();
                let mut data = data;
                if !data.is_empty() {
                    let i = flip.0 % data.len();
                    data[i] ^= flip.1;
                }
                let _ = d.decode(link, &data, data.len() as u32);
                let _ = d.decode(link, &data, u32::MAX);
            }

            #[test]
            fn etherparse_built_packets_decode_to_same_fields(
                v6 in any::<bool>(),
                is_tcp in any::<bool>(),
                vlans in 0usize..3,
                vids in (0u16..4096, 0u16..4096),
                s4 in any::<[u8; 4]>(), d4 in any::<[u8; 4]>(),
                s6 in any::<[u8; 16]>(), d6 in any::<[u8; 16]>(),
                ttl in any::<u8>(),
                ports in any::<(u16, u16)>(),
                seq in any::<u32>(), win in any::<u16>(), syn in any::<bool>(),
                payload in proptest::collection::vec(any::<u8>(), 0..300),
            ) {
                let (sp, dp) = ports;
                // Keep away from the VXLAN port: that is decapsulated.
                prop_assume!(is_tcp || dp != 4789);
                let mut out = Vec::new();
                macro_rules! finish {
                    ($b:expr) => {{
                        let ip = if v6 { $b.ipv6(s6, d6, ttl) } else { $b.ipv4(s4, d4, ttl) };
                        if is_tcp {
                            let t = ip.tcp(sp, dp, seq, win);
                            let t = if syn { t.syn() } else { t };
                            t.write(&mut out, &payload).unwrap();
                        } else {
                            ip.udp(sp, dp).write(&mut out, &payload).unwrap();
                        }
                    }};
                }
                let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
                let v0 = etherparse::VlanId::try_new(vids.0).unwrap();
                let v1 = etherparse::VlanId::try_new(vids.1).unwrap();
                match vlans {
                    0 => finish!(eth),
                    1 => finish!(eth.single_vlan(v0)),
                    _ => finish!(eth.double_vlan(v0, v1)),
                }
                let mut d = dec();
                let p = match d.decode(LinkType::ETHERNET, &out, out.len() as u32) {
                    Decoded::Packet(p) => p,
                    other => return Err(TestCaseError::fail(format!("{other:?}"))),
                };
                let want_vlans: &[u16] = match vlans { 0 => &[], 1 => &[vids.0], _ => &[vids.0, vids.1] };
                prop_assert_eq!(p.vlan.as_slice(), want_vlans);
                prop_assert_eq!(p.ip.ttl, ttl);
                if v6 {
                    prop_assert_eq!(p.ip.src, IpAddr::V6(Ipv6Addr::from(s6)));
                    prop_assert_eq!(p.ip.dst, IpAddr::V6(Ipv6Addr::from(d6)));
                } else {
                    prop_assert_eq!(p.ip.src, IpAddr::V4(Ipv4Addr::from(s4)));
                    prop_assert_eq!(p.ip.dst, IpAddr::V4(Ipv4Addr::from(d4)));
                }
                // Cross-check against etherparse's own slicing too.
                let sliced = etherparse::SlicedPacket::from_ethernet(&out).unwrap();
                match (p.l4, sliced.transport) {
                    (L4::Tcp(t), Some(etherparse::TransportSlice::Tcp(e))) => {
                        prop_assert!(is_tcp);
                        prop_assert_eq!((t.src_port, t.dst_port), (sp, dp));
                        prop_assert_eq!((t.seq, t.window), (seq, win));
                        prop_assert_eq!((t.seq, t.ack, t.window), (e.sequence_number(), e.acknowledgment_number(), e.window_size()));
                        prop_assert_eq!(t.flags & tcp_flags::SYN != 0, syn);
                        prop_assert_eq!(t.payload, &payload[..]);
                        prop_assert_eq!(t.payload, e.payload());
                    }
                    (L4::Udp(u), Some(etherparse::TransportSlice::Udp(e))) => {
                        prop_assert!(!is_tcp);
                        prop_assert_eq!((u.src_port, u.dst_port), (sp, dp));
                        prop_assert_eq!(u.payload, &payload[..]);
                        prop_assert_eq!(u.payload, e.payload());
                    }
                    (ours, theirs) => {
                        return Err(TestCaseError::fail(format!("{ours:?} vs {theirs:?}")));
                    }
                }
            }
        }
    }
}
