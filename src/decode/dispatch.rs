//! Addresses only: the VLANs and IP address pair that [`Decoder::decode`]
//! would report for a frame, read without decoding the rest.
//!
//! Owns: the reader's choice of worker ([`crate::flow::dispatch_hash`] of
//! these fields). It follows every link type, VLAN tag, IPv6 extension
//! header and tunnel (GRE, ERSPAN I/II/III, VXLAN, IP-in-IP) the decoder
//! follows, with the same validation of the headers that decide whether
//! to go deeper, and stops where the decoder stops.
//!
//! Invariant: for every frame that [`Decoder::decode`] returns as a
//! [`Decoded::Packet`] or [`Decoded::Fragment`] (under any checksum
//! [`Validation`]: checksums only ever turn a frame into `Invalid`),
//! [`AddressReader::read`] returns that packet's or fragment's `vlan`,
//! `ip.src` and `ip.dst`. For frames the decoder calls `NotIp` or
//! `Invalid` it returns whatever it found, or `None`; those packets belong
//! to no flow. It allocates nothing, keeps no state between frames, and
//! computes no checksum. What it saves is the transport header's fields,
//! the checksums, the counters and the MAC addresses: about a third of the
//! decoder's instructions on a plain Ethernet/IPv4/TCP frame.
//!
//! Fragments report the addresses of the IP header that carries the
//! fragment header, as the decoder does; where the reassembled datagram's
//! flow is keyed is not known before reassembly (see
//! [`Addresses::may_tunnel`]).
//!
//! [`Decoded::Packet`]: super::Decoded::Packet
//! [`Decoded::Fragment`]: super::Decoded::Fragment
//! [`Validation`]: super::Validation

use std::net::IpAddr;

use super::ethernet::{ethertype, EthernetFrame, VlanTag};
use super::gre::{ErspanHeader, ErspanPayload, GreHeader};
use super::ip_proto;
use super::ipv4::Ipv4Packet;
use super::ipv6::{self, ChainEnd, Ipv6Packet};
use super::sll::{self, NullFamily, Sll2Header, SllHeader};
use super::udp::UdpPacket;
use super::vxlan::VxlanHeader;
use super::{DecodeConfig, DecodeStats, Step, Vlans};
use crate::capture::LinkType;

/// What [`AddressReader::read`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    pub vlan: Vlans,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// A fragment whose reassembled datagram may carry a tunnel (GRE or
    /// IP in IP, or for IPv6 an extension header that may lead to one),
    /// the tunnel depth allowing one more layer: the flow it ends up in is
    /// keyed by addresses no fragment shows. False for whole packets and
    /// for fragments of TCP, UDP, ICMP and the like. UDP is left out on
    /// purpose: VXLAN's port is in the first fragment only, and counting
    /// every UDP fragment (the usual fragmented traffic, and the usual
    /// flood) as a possible tunnel would copy it to every worker; a VXLAN
    /// datagram fragmented on the mirror path stays with the worker of its
    /// outer addresses.
    pub may_tunnel: bool,
}

/// Reads the fields the dispatcher needs; one per reader thread.
#[derive(Debug)]
pub struct AddressReader {
    vxlan_ports: Vec<u16>,
    max_vlan_layers: u8,
    max_tunnel_depth: u8,
    /// [`ipv6::walk_chain`] counts what it meets; those counts are the
    /// worker's to keep, so they land here and are ignored.
    scratch: DecodeStats,
}

impl AddressReader {
    /// A reader for frames the decoder configured by `cfg` decodes.
    pub fn new(cfg: &DecodeConfig) -> AddressReader {
        AddressReader {
            vxlan_ports: cfg.vxlan_ports.clone(),
            max_vlan_layers: cfg.max_vlan_layers,
            max_tunnel_depth: cfg.max_tunnel_depth,
            scratch: DecodeStats::default(),
        }
    }

    /// The innermost VLANs and address pair of a frame of link type
    /// `link`, as [`super::Decoder::decode`] reports them; `wire_len` as
    /// there (a frame the capture cut accepts IP lengths beyond it).
    /// `None` when no IP header was reached.
    pub fn read(&mut self, link: LinkType, data: &[u8], wire_len: u32) -> Option<Addresses> {
        if link == LinkType::ETHERNET {
            if let Some(a) = ethernet_tcp(data) {
                return Some(a);
            }
        }
        self.read_slow(link, data, wire_len)
    }

    /// [`AddressReader::read`] without the fast path: every link type,
    /// tag and tunnel.
    fn read_slow(&mut self, link: LinkType, data: &[u8], wire_len: u32) -> Option<Addresses> {
        let snapped = usize::try_from(wire_len).map_or(true, |w| w > data.len());
        let mut step = match link {
            LinkType::ETHERNET => Step::Ethernet(data),
            LinkType::LINUX_SLL => {
                let h = SllHeader::new_checked(data)?;
                Step::EtherType(h.protocol(), h.payload())
            }
            LinkType::LINUX_SLL2 => {
                let h = Sll2Header::new_checked(data)?;
                Step::EtherType(h.protocol(), h.payload())
            }
            LinkType::RAW | LinkType(12) | LinkType(14) => Step::Ip(data),
            LinkType::IPV4 => Step::Ipv4(data),
            LinkType::IPV6 => Step::Ipv6(data),
            LinkType::NULL | LinkType::LOOP => {
                let rest = data.get(sll::NULL_LEN..).unwrap_or(&[]);
                match sll::null_family(data, link == LinkType::NULL)? {
                    NullFamily::Ipv4 => Step::Ipv4(rest),
                    NullFamily::Ipv6 => Step::Ipv6(rest),
                    NullFamily::Other => return None,
                }
            }
            _ => return None,
        };
        let mut vlan = Vlans::default();
        // Tunnels entered so far; bounded by `max_tunnel_depth`, so the
        // loop ends.
        let mut depth = 0u8;
        loop {
            step = match step {
                Step::Ethernet(b) => {
                    let e = EthernetFrame::new_checked(b)?;
                    vlan = Vlans::default();
                    Step::EtherType(e.ethertype(), e.payload())
                }
                Step::EtherType(mut t, mut b) => {
                    while ethertype::is_vlan(t) {
                        let tag = VlanTag::new_checked(b)?;
                        if !vlan.push(tag.vid(), self.max_vlan_layers) {
                            return None;
                        }
                        t = tag.inner_type();
                        b = tag.payload();
                    }
                    match t {
                        ethertype::IPV4 => Step::Ipv4(b),
                        ethertype::IPV6 => Step::Ipv6(b),
                        _ => return None,
                    }
                }
                Step::Ip(b) => match b.first().map(|v| v >> 4) {
                    Some(4) => Step::Ipv4(b),
                    Some(6) => Step::Ipv6(b),
                    _ => return None,
                },
                Step::Ipv4(b) => {
                    let ip = Ipv4Packet::new_checked(b, snapped).ok()?;
                    let (src, dst) = (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()));
                    let found = Addresses {
                        vlan,
                        src,
                        dst,
                        may_tunnel: false,
                    };
                    if ip.is_fragment() {
                        let may_tunnel = self.may_tunnel(ip.protocol(), false, depth);
                        return Some(Addresses {
                            may_tunnel,
                            ..found
                        });
                    }
                    let next = self.tunnel(ip.protocol(), ip.payload(), ip.payload_len());
                    match next.filter(|_| depth < self.max_tunnel_depth) {
                        Some(s) => {
                            depth += 1;
                            s
                        }
                        None => return Some(found),
                    }
                }
                Step::Ipv6(b) => {
                    let ip = Ipv6Packet::new_checked(b, snapped).ok()?;
                    let found = Addresses {
                        vlan,
                        src: IpAddr::V6(ip.src_addr()),
                        dst: IpAddr::V6(ip.dst_addr()),
                        may_tunnel: false,
                    };
                    let declared = usize::from(ip.payload_len());
                    let chain = ipv6::walk_chain(
                        ip.next_header(),
                        ip.payload(),
                        declared,
                        &mut self.scratch,
                    );
                    match chain.ok()? {
                        ChainEnd::Transport {
                            proto,
                            payload,
                            declared,
                        } => match self
                            .tunnel(proto, payload, declared)
                            .filter(|_| depth < self.max_tunnel_depth)
                        {
                            Some(s) => {
                                depth += 1;
                                s
                            }
                            None => return Some(found),
                        },
                        ChainEnd::Fragment { proto, .. } => {
                            let may_tunnel = self.may_tunnel(proto, true, depth);
                            return Some(Addresses {
                                may_tunnel,
                                ..found
                            });
                        }
                    }
                }
            };
        }
    }

    /// The tunnel that the transport header `proto` at the start of
    /// `payload` opens, as the decoder's `transport` and `gre` decide it
    /// (before its depth check, which the caller makes); `None` when the
    /// packet ends at this IP header. A header the decoder finds malformed
    /// makes the frame invalid there, so what is returned for it does not
    /// matter.
    #[inline]
    fn tunnel<'a>(&self, proto: u8, payload: &'a [u8], declared: usize) -> Option<Step<'a>> {
        match proto {
            ip_proto::GRE => {
                let g = GreHeader::new_checked(payload).ok()?;
                let inner = g.payload();
                match g.protocol() {
                    ethertype::IPV4 => Some(Step::Ipv4(inner)),
                    ethertype::IPV6 => Some(Step::Ipv6(inner)),
                    ethertype::TEB => Some(Step::Ethernet(inner)),
                    ethertype::ERSPAN_II if g.has_seq() => {
                        let e = ErspanHeader::new_checked(inner, false).ok()?;
                        Some(Step::Ethernet(e.payload()))
                    }
                    // Type I: the mirrored frame follows GRE directly.
                    ethertype::ERSPAN_II => Some(Step::Ethernet(inner)),
                    ethertype::ERSPAN_III => {
                        let e = ErspanHeader::new_checked(inner, true).ok()?;
                        Some(match e.payload_kind() {
                            ErspanPayload::Ethernet => Step::Ethernet(e.payload()),
                            ErspanPayload::Ip => Step::Ip(e.payload()),
                        })
                    }
                    _ => None,
                }
            }
            ip_proto::IPIP => Some(Step::Ipv4(payload)),
            ip_proto::IPV6 => Some(Step::Ipv6(payload)),
            ip_proto::UDP if !self.vxlan_ports.is_empty() => {
                let u = UdpPacket::new_checked(payload, declared).ok()?;
                if !self.vxlan_ports.contains(&u.dst_port()) {
                    return None;
                }
                VxlanHeader::new_checked(u.payload()).map(|v| Step::Ethernet(v.payload()))
            }
            _ => None,
        }
    }

    /// Whether a fragment of `proto` (after an IPv6 fragment header when
    /// `v6`) found `depth` tunnels deep may reassemble into a tunnel the
    /// decoder peels: the decoder's `decode_reassembled` walks the IPv6
    /// extension headers that follow the fragment header first.
    #[inline]
    fn may_tunnel(&self, proto: u8, v6: bool, depth: u8) -> bool {
        use ipv6::next_header::{AH, DEST_OPTS, HOP_BY_HOP, ROUTING};
        let tunnel = match proto {
            ip_proto::GRE | ip_proto::IPIP | ip_proto::IPV6 => true,
            HOP_BY_HOP | ROUTING | DEST_OPTS | AH => v6,
            // UDP (VXLAN): see [`Addresses::may_tunnel`].
            _ => false,
        };
        tunnel && depth < self.max_tunnel_depth
    }
}

/// The addresses of the usual frame (an untagged Ethernet frame carrying
/// IPv4 or IPv6 straight to TCP or ICMP), read at their fixed offsets:
/// the dispatcher's fast path, about 20 instructions where the general
/// walk takes about 175. `None` for anything else (tags, UDP that may be
/// VXLAN, tunnels, IPv6 extension headers, short frames), which the
/// general walk reads. TCP and ICMP never open a tunnel and their
/// fragments never may carry one, so whatever the rest of the header
/// says, the decoder reports these addresses whenever it reports a packet
/// or fragment; when it finds the header invalid, no flow sees the frame
/// and its worker only counts it.
///
/// ```text
/// Ethernet  0 dst MAC | 6 src MAC | 12 EtherType (0x0800, 0x86DD)
/// IPv4     14 version/IHL … | 23 protocol | 26 source | 30 destination
/// IPv6     14 version … | 20 next header | 22 source | 38 destination
/// ```
#[inline]
fn ethernet_tcp(data: &[u8]) -> Option<Addresses> {
    const TCP: u8 = ip_proto::TCP;
    let found = |src: IpAddr, dst: IpAddr| Addresses {
        vlan: Vlans::default(),
        src,
        dst,
        may_tunnel: false,
    };
    match (data.get(12..14)?, data.get(14).map(|v| v >> 4)?) {
        ([0x08, 0x00], 4) => {
            let h: &[u8; 20] = data.get(14..34)?.try_into().ok()?;
            if h[9] != TCP && h[9] != ip_proto::ICMP {
                return None;
            }
            let src = std::net::Ipv4Addr::new(h[12], h[13], h[14], h[15]);
            let dst = std::net::Ipv4Addr::new(h[16], h[17], h[18], h[19]);
            Some(found(IpAddr::V4(src), IpAddr::V4(dst)))
        }
        ([0x86, 0xdd], 6) => {
            let h: &[u8; 40] = data.get(14..54)?.try_into().ok()?;
            if h[6] != TCP && h[6] != ip_proto::ICMPV6 {
                return None;
            }
            let src: [u8; 16] = h[8..24].try_into().ok()?;
            let dst: [u8; 16] = h[24..40].try_into().ok()?;
            Some(found(IpAddr::from(src), IpAddr::from(dst)))
        }
        _ => None,
    }
}

/// A TCP or UDP packet's VLANs, protocol and endpoints, as
/// [`super::Decoder::decode`] would report them, read from an Ethernet
/// frame with at most three VLAN tags and an unfragmented IPv4 or an IPv6
/// header followed directly by the transport header; `None` for anything
/// else (other links, tunnels, extension headers, fragments, ICMP). For
/// the flow table's look-ahead ([`crate::flow::FlowTable::expect`]): a
/// hint, so it validates nothing the decoder would reject (lengths,
/// checksums) and needs to be right only for frames the decoder accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuple {
    pub vlan: Vlans,
    pub proto: u8,
    pub src: (IpAddr, u16),
    pub dst: (IpAddr, u16),
}

/// See [`Tuple`].
#[inline]
pub fn ethernet_tuple(data: &[u8]) -> Option<Tuple> {
    let mut vlan = Vlans::default();
    let mut at = 12;
    let mut ty = u16::from_be_bytes(data.get(at..at + 2)?.try_into().ok()?);
    while ethertype::is_vlan(ty) {
        let tci = u16::from_be_bytes(data.get(at + 2..at + 4)?.try_into().ok()?);
        if !vlan.push(tci & 0x0FFF, 3) {
            return None;
        }
        at += 4;
        ty = u16::from_be_bytes(data.get(at..at + 2)?.try_into().ok()?);
    }
    let ip = data.get(at + 2..)?;
    let (proto, src, dst, l4) = match ty {
        ethertype::IPV4 => {
            let h: &[u8; 20] = ip.get(..20)?.try_into().ok()?;
            let ihl = usize::from(h[0] & 0x0F) * 4;
            // More fragments, or an offset: the decoder reassembles first.
            if h[0] >> 4 != 4 || ihl < 20 || u16::from_be_bytes([h[6], h[7]]) & 0x3FFF != 0 {
                return None;
            }
            let src = std::net::Ipv4Addr::new(h[12], h[13], h[14], h[15]);
            let dst = std::net::Ipv4Addr::new(h[16], h[17], h[18], h[19]);
            (h[9], IpAddr::V4(src), IpAddr::V4(dst), ip.get(ihl..)?)
        }
        ethertype::IPV6 => {
            let h: &[u8; 40] = ip.get(..40)?.try_into().ok()?;
            let src: [u8; 16] = h[8..24].try_into().ok()?;
            let dst: [u8; 16] = h[24..40].try_into().ok()?;
            (h[6], IpAddr::from(src), IpAddr::from(dst), ip.get(40..)?)
        }
        _ => return None,
    };
    if proto != ip_proto::TCP && proto != ip_proto::UDP {
        return None;
    }
    let ports: &[u8; 4] = l4.get(..4)?.try_into().ok()?;
    Some(Tuple {
        vlan,
        proto,
        src: (src, u16::from_be_bytes([ports[0], ports[1]])),
        dst: (dst, u16::from_be_bytes([ports[2], ports[3]])),
    })
}

#[cfg(test)]
mod tests {
    //! The decoder is the reference: every frame here is decoded by
    //! [`Decoder::decode`] with checksums off (the most frames it accepts;
    //! checksum checks only ever turn a frame `Invalid`) and the reader
    //! must find the fields it reported. Frames are hand-built by the
    //! helpers below, each field labelled; the captures of `pcaps/` are
    //! real traffic (`pcaps/README.md`).
    use super::*;
    use crate::decode::tests::{cat, eth, vlan};
    use crate::decode::{Decoded, Decoder, Validation};
    use proptest::prelude::*;

    /// What the decoder made of a frame; panics when the reader disagrees.
    fn agree(link: LinkType, frame: &[u8], wire_len: u32) -> Decoded<'_> {
        let cfg = DecodeConfig::default();
        let mut dec = Decoder::new(cfg.clone());
        dec.set_validation(Validation::Off, false);
        let d = dec.decode(link, frame, wire_len);
        let found = AddressReader::new(&cfg).read(link, frame, wire_len);
        let want = match d {
            Decoded::Packet(p) => (p.vlan, p.ip.src, p.ip.dst),
            Decoded::Fragment(f) => (f.vlan, f.ip.src, f.ip.dst),
            Decoded::NotIp | Decoded::Invalid => return d,
        };
        assert_eq!(
            found.map(|a| (a.vlan, a.src, a.dst)),
            Some(want),
            "link {link:?}, {} of {wire_len} bytes: {d:?}",
            frame.len()
        );
        tuple_agrees(link, frame, &d);
        d
    }

    /// Whether [`ethernet_tuple`] read the frame's tuple; panics when it
    /// read one the decoder does not report. A tunnelled packet's tuple
    /// is the inner one, which the hint does not reach: it may read the
    /// outer one (a wasted hint, never a wrong result).
    fn tuple_agrees(link: LinkType, frame: &[u8], d: &Decoded<'_>) -> bool {
        let found = if link == LinkType::ETHERNET {
            ethernet_tuple(frame)
        } else {
            None
        };
        let want = match d {
            Decoded::Packet(p) if p.tunnel == crate::decode::Tunnel::None => match p.l4 {
                crate::decode::L4::Tcp(t) => Some((p.ip.proto, t.src_port, t.dst_port)),
                crate::decode::L4::Udp(u) => Some((p.ip.proto, u.src_port, u.dst_port)),
                _ => None,
            }
            .map(|(proto, sp, dp)| Tuple {
                vlan: p.vlan,
                proto,
                src: (p.ip.src, sp),
                dst: (p.ip.dst, dp),
            }),
            _ => None,
        };
        match (found, want) {
            (Some(f), Some(w)) => {
                assert_eq!(f, w, "{} bytes: {d:?}", frame.len());
                true
            }
            (Some(f), None) => {
                // Only a tunnel's outer packet, or a frame the decoder
                // rejects, may give a tuple the decoder does not report.
                assert!(
                    !matches!(d, Decoded::Packet(p) if p.tunnel == crate::decode::Tunnel::None),
                    "hint {f:?} for {d:?}"
                );
                false
            }
            _ => false,
        }
    }

    /// `agree` on the frame, on every prefix of it (cut by the capture,
    /// and as a whole frame that short), and returns the whole frame's
    /// reading.
    fn agree_cut(link: LinkType, frame: &[u8]) -> Option<Addresses> {
        for n in 0..=frame.len() {
            agree(link, &frame[..n], frame.len() as u32);
            agree(link, &frame[..n], n as u32);
        }
        AddressReader::new(&DecodeConfig::default()).read(link, frame, frame.len() as u32)
    }

    /// IPv4 header without options (checksum left 0: checks are off).
    fn ipv4(src: u8, dst: u8, proto: u8, flg_off: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x45, 0]; // version 4, IHL 5; TOS
        v.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes()); // total length
        v.extend_from_slice(&[0x12, 0x34]); // identification
        v.extend_from_slice(&flg_off.to_be_bytes()); // flags, fragment offset
        v.extend_from_slice(&[64, proto, 0, 0]); // TTL, protocol, checksum
        v.extend_from_slice(&[10, 0, 0, src]); // source 10.0.0.src
        v.extend_from_slice(&[10, 0, 0, dst]); // destination 10.0.0.dst
        v.extend_from_slice(payload);
        v
    }

    /// IPv6 header; `payload` holds any extension headers.
    fn ipv6(src: u8, dst: u8, nh: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x60, 0, 0, 0]; // version 6, traffic class, flow label
        v.extend_from_slice(&(payload.len() as u16).to_be_bytes()); // payload length
        v.extend_from_slice(&[nh, 64]); // next header, hop limit
        v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]); // source 2001:db8::src
        v.extend_from_slice(&[0; 11]);
        v.push(src);
        v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]); // destination 2001:db8::dst
        v.extend_from_slice(&[0; 11]);
        v.push(dst);
        v.extend_from_slice(payload);
        v
    }

    /// TCP header without options, then `payload`.
    fn tcp(payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x04, 0xd2, 0x07, 0x5b]; // ports 1234 → 1883
        v.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]); // sequence, acknowledgment
        v.extend_from_slice(&[0x50, 0x18, 2, 0]); // data offset 5, PSH|ACK, window
        v.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
        v.extend_from_slice(payload);
        v
    }

    /// UDP header to `dport`, then `payload`.
    fn udp(dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0xc0, 0x00]; // source port 49152
        v.extend_from_slice(&dport.to_be_bytes()); // destination port
        v.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes()); // length
        v.extend_from_slice(&[0, 0]); // checksum: none
        v.extend_from_slice(payload);
        v
    }

    /// GRE version 0 header carrying `proto`; `seq` adds the S bit and a
    /// sequence number (ERSPAN II).
    fn gre(proto: u16, seq: bool) -> Vec<u8> {
        let mut v = vec![if seq { 0x10 } else { 0 }, 0]; // flags (S), version 0
        v.extend_from_slice(&proto.to_be_bytes()); // protocol type
        if seq {
            v.extend_from_slice(&[0, 0, 0, 7]); // sequence number
        }
        v
    }

    /// ERSPAN type II header (8 bytes).
    fn erspan2() -> Vec<u8> {
        vec![
            0x10, 0x00, // version 1, VLAN 0
            0x00, 0x01, // COS, encapsulation, truncated, session id 1
            0, 0, 0, 0, // reserved, index
        ]
    }

    /// ERSPAN type III header (12 bytes), frame type IP (2).
    fn erspan3_ip() -> Vec<u8> {
        vec![
            0x20, 0x00, // version 2, VLAN 0
            0x00, 0x01, // COS, BSO, T, session id 1
            0, 0, 0, 0, // timestamp
            0, 0,    // security group tag
            0x08, // P 0, frame type 2 (bits 6..2), hardware id high bits 0
            0x00, // hardware id, D, gra, O 0 (no subheader)
        ]
    }

    /// VXLAN header with the I flag and VNI 42.
    fn vxlan() -> Vec<u8> {
        vec![0x08, 0, 0, 0, 0, 0, 42, 0] // flags I; reserved; VNI 42; reserved
    }

    fn inner_v4_tcp() -> Vec<u8> {
        cat(&[&eth(0x0800), &ipv4(21, 22, 6, 0, &tcp(b"hi"))])
    }

    #[test]
    fn fast_path_takes_untagged_tcp_and_icmp_and_leaves_the_rest() {
        let cases: [(Vec<u8>, bool); 7] = [
            (cat(&[&eth(0x0800), &ipv4(1, 2, 6, 0, &tcp(b"x"))]), true),
            (cat(&[&eth(0x86dd), &ipv6(1, 2, 6, &tcp(b"x"))]), true),
            (cat(&[&eth(0x0800), &ipv4(1, 2, 1, 0, &[8; 8])]), true),
            // UDP may be VXLAN; tags, GRE and IPv6 extension headers need
            // the general walk.
            (
                cat(&[&eth(0x0800), &ipv4(1, 2, 17, 0, &udp(4789, &vxlan()))]),
                false,
            ),
            (
                cat(&[
                    &eth(0x8100),
                    &vlan(5, 0x0800),
                    &ipv4(1, 2, 6, 0, &tcp(b"x")),
                ]),
                false,
            ),
            (
                cat(&[&eth(0x0800), &ipv4(1, 2, 47, 0, &gre(0x0800, false))]),
                false,
            ),
            (
                cat(&[&eth(0x86dd), &ipv6(1, 2, 0, &[6, 0, 1, 4, 0, 0, 0, 0])]),
                false,
            ),
        ];
        for (f, fast) in &cases {
            assert_eq!(ethernet_tcp(f).is_some(), *fast, "{f:02x?}");
            // Read either way, the decoder agrees.
            agree(LinkType::ETHERNET, f, f.len() as u32);
        }
        let a = ethernet_tcp(&cases[0].0).expect("fast path");
        assert_eq!(v4(&a), (addr4(1), addr4(2)));
        assert_eq!(a.vlan, Vlans::default());
        assert!(!a.may_tunnel);
    }

    fn v4(a: &Addresses) -> (IpAddr, IpAddr) {
        (a.src, a.dst)
    }

    fn addr4(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn ethernet_ipv4_tcp_reads_its_addresses_at_every_cut() {
        let f = cat(&[&eth(0x0800), &ipv4(1, 2, 6, 0, &tcp(b"hello"))]);
        let a = agree_cut(LinkType::ETHERNET, &f).unwrap();
        assert_eq!(v4(&a), (addr4(1), addr4(2)));
        assert!(!a.may_tunnel);
    }

    #[test]
    fn qinq_ipv6_udp_keeps_both_tags_four_tags_are_refused() {
        let f = cat(&[
            &eth(0x88a8),
            &vlan(100, 0x8100),
            &vlan(200, 0x86dd),
            &ipv6(1, 2, 17, &udp(53, b"q")),
        ]);
        let a = agree_cut(LinkType::ETHERNET, &f).unwrap();
        assert_eq!(a.vlan.as_slice(), &[100, 200]);
        let four = cat(&[
            &eth(0x8100),
            &vlan(1, 0x8100),
            &vlan(2, 0x8100),
            &vlan(3, 0x8100),
            &vlan(4, 0x0800),
            &ipv4(1, 2, 6, 0, &tcp(b"")),
        ]);
        assert!(matches!(
            agree(LinkType::ETHERNET, &four, four.len() as u32),
            Decoded::Invalid
        ));
        assert_eq!(agree_cut(LinkType::ETHERNET, &four), None);
    }

    #[test]
    fn gre_ip_keeps_outer_tags_gretap_drops_them() {
        let ip_in_gre = cat(&[
            &eth(0x8100),
            &vlan(7, 0x0800),
            &ipv4(
                1,
                2,
                47,
                0,
                &cat(&[&gre(0x0800, false), &ipv4(21, 22, 6, 0, &tcp(b"x"))]),
            ),
        ]);
        let a = agree_cut(LinkType::ETHERNET, &ip_in_gre).unwrap();
        assert_eq!(
            (v4(&a), a.vlan.as_slice()),
            ((addr4(21), addr4(22)), &[7][..])
        );
        let gretap = cat(&[
            &eth(0x8100),
            &vlan(7, 0x0800),
            &ipv4(1, 2, 47, 0, &cat(&[&gre(0x6558, false), &inner_v4_tcp()])),
        ]);
        let a = agree_cut(LinkType::ETHERNET, &gretap).unwrap();
        assert_eq!(
            (v4(&a), a.vlan.as_slice()),
            ((addr4(21), addr4(22)), &[][..])
        );
    }

    #[test]
    fn erspan_one_two_and_three_read_the_mirrored_frame() {
        for (g, e) in [(gre(0x88be, false), vec![]), (gre(0x88be, true), erspan2())] {
            let f = cat(&[
                &eth(0x0800),
                &ipv4(1, 2, 47, 0, &cat(&[&g, &e, &inner_v4_tcp()])),
            ]);
            let a = agree_cut(LinkType::ETHERNET, &f).unwrap();
            assert_eq!(v4(&a), (addr4(21), addr4(22)));
        }
        let inner_ip = ipv4(31, 32, 17, 0, &udp(53, b"q"));
        let f = cat(&[
            &eth(0x0800),
            &ipv4(
                1,
                2,
                47,
                0,
                &cat(&[&gre(0x22eb, true), &erspan3_ip(), &inner_ip]),
            ),
        ]);
        let a = agree_cut(LinkType::ETHERNET, &f).unwrap();
        assert_eq!(v4(&a), (addr4(31), addr4(32)));
    }

    #[test]
    fn vxlan_on_its_port_is_peeled_elsewhere_or_short_it_is_not() {
        let inner = cat(&[
            &eth(0x8100),
            &vlan(5, 0x0800),
            &ipv4(21, 22, 6, 0, &tcp(b"")),
        ]);
        let f = cat(&[
            &eth(0x0800),
            &ipv4(1, 2, 17, 0, &udp(4789, &cat(&[&vxlan(), &inner]))),
        ]);
        let a = agree_cut(LinkType::ETHERNET, &f).unwrap();
        assert_eq!(
            (v4(&a), a.vlan.as_slice()),
            ((addr4(21), addr4(22)), &[5][..])
        );
        let other_port = cat(&[
            &eth(0x0800),
            &ipv4(1, 2, 17, 0, &udp(4790, &cat(&[&vxlan(), &inner]))),
        ]);
        assert_eq!(
            v4(&agree_cut(LinkType::ETHERNET, &other_port).unwrap()),
            (addr4(1), addr4(2))
        );
        let short = cat(&[&eth(0x0800), &ipv4(1, 2, 17, 0, &udp(4789, &[8, 0, 0]))]);
        assert_eq!(
            v4(&agree_cut(LinkType::ETHERNET, &short).unwrap()),
            (addr4(1), addr4(2))
        );
    }

    #[test]
    fn ip_in_ip_stops_at_the_tunnel_depth_as_the_decoder_does() {
        // 4in6in4in4in4: the decoder peels three tunnels (the default
        // depth) and returns the fourth IP header's packet.
        let mut f = ipv4(41, 42, 6, 0, &tcp(b""));
        f = ipv6(31, 32, 4, &f);
        f = ipv4(21, 22, 41, 0, &f);
        f = ipv4(11, 12, 4, 0, &f);
        f = ipv4(1, 2, 4, 0, &f);
        let a = agree_cut(LinkType::RAW, &f).unwrap();
        assert!(a.src.is_ipv6(), "{a:?}");
        let mut st = Decoder::new(DecodeConfig::default());
        st.set_validation(Validation::Off, false);
        assert!(matches!(
            st.decode(LinkType::RAW, &f, f.len() as u32),
            Decoded::Packet(p) if p.ip.src == a.src
        ));
    }

    #[test]
    fn ipv6_extension_headers_fragment_and_atomic_fragment() {
        let hbh = [6u8, 0, 0, 0, 0, 0, 0, 0]; // next TCP, length 0, padding
        let f = cat(&[&eth(0x86dd), &ipv6(1, 2, 0, &cat(&[&hbh, &tcp(b"x")]))]);
        agree_cut(LinkType::ETHERNET, &f).unwrap();
        for (off_m, fragment) in [(0x0001u16, true), (0x0000, false)] {
            let mut fh = vec![47, 0]; // next GRE, reserved
            fh.extend_from_slice(&off_m.to_be_bytes()); // offset, M
            fh.extend_from_slice(&[0, 0, 0, 9]); // identification
            let inner = cat(&[&gre(0x0800, false), &ipv4(21, 22, 6, 0, &tcp(b""))]);
            let f = cat(&[&eth(0x86dd), &ipv6(1, 2, 44, &cat(&[&fh, &inner]))]);
            let a = agree_cut(LinkType::ETHERNET, &f).unwrap();
            // A fragment shows the outer pair; the atomic one is a whole
            // packet, decapsulated.
            assert_eq!(a.may_tunnel, fragment);
            assert_eq!(a.src.is_ipv6(), fragment);
        }
    }

    #[test]
    fn ipv4_fragments_may_tunnel_only_for_tunnel_protocols() {
        for (proto, tunnel) in [
            (47u8, true),
            (4, true),
            (41, true),
            (17, false),
            (6, false),
            (1, false),
        ] {
            for flg_off in [0x2000u16, 0x0010] {
                let f = cat(&[&eth(0x0800), &ipv4(1, 2, proto, flg_off, &[0; 16])]);
                let a = agree_cut(LinkType::ETHERNET, &f).unwrap();
                assert!(matches!(
                    agree(LinkType::ETHERNET, &f, f.len() as u32),
                    Decoded::Fragment(_)
                ));
                assert_eq!(a.may_tunnel, tunnel, "proto {proto}");
            }
        }
    }

    #[test]
    fn cooked_null_and_raw_links() {
        let ip = ipv4(1, 2, 6, 0, &tcp(b""));
        let mut sll = vec![0, 0, 0, 1, 0, 6]; // packet type, ARPHRD_ETHER, address length
        sll.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0, 0]); // address, padded
        sll.extend_from_slice(&[0x08, 0x00]); // protocol IPv4
        let mut sll2 = vec![0x08, 0x00, 0, 0]; // protocol IPv4, reserved
        sll2.extend_from_slice(&[0, 0, 0, 2, 0, 1, 0, 6]); // ifindex, ARPHRD, packet type, address length
        sll2.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0, 0]); // address, padded
        let null = 2u32.to_le_bytes().to_vec(); // AF_INET, host order
        for (link, head) in [
            (LinkType::LINUX_SLL, sll),
            (LinkType::LINUX_SLL2, sll2),
            (LinkType::NULL, null),
            (LinkType::RAW, vec![]),
            (LinkType::IPV4, vec![]),
        ] {
            let f = cat(&[&head, &ip]);
            assert_eq!(
                v4(&agree_cut(link, &f).unwrap()),
                (addr4(1), addr4(2)),
                "{link:?}"
            );
        }
    }

    /// Every packet of every capture in `pcaps/` and `pcaps/evasion/`.
    #[test]
    fn every_capture_packet_reads_as_the_decoder_decodes_it() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps");
        let mut files: Vec<_> = ["", "evasion"]
            .iter()
            .flat_map(|d| std::fs::read_dir(root.join(d)).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
            .collect();
        files.sort();
        let (mut packets, mut fragments) = (0u64, 0u64);
        // Plain Ethernet TCP/UDP packets, and those whose tuple the hint read.
        let (mut plain, mut hinted) = (0u64, 0u64);
        for path in &files {
            let Ok(mut r) = crate::capture::Reader::open(path) else {
                continue;
            };
            while let Ok(Some(chunk)) = r.next_chunk(1024) {
                for p in &chunk.pkts {
                    let data = chunk.data(p);
                    let d = agree(p.link, data, p.origlen);
                    match d {
                        Decoded::Packet(q) => {
                            packets += 1;
                            let tcp_udp = matches!(
                                q.l4,
                                crate::decode::L4::Tcp(_) | crate::decode::L4::Udp(_)
                            );
                            if p.link == LinkType::ETHERNET
                                && q.tunnel == crate::decode::Tunnel::None
                                && tcp_udp
                            {
                                plain += 1;
                                hinted += u64::from(tuple_agrees(p.link, data, &d));
                            }
                        }
                        Decoded::Fragment(_) => fragments += 1,
                        _ => {}
                    }
                }
            }
        }
        assert!(files.len() > 40, "{} captures", files.len());
        // IPv6 extension headers are the only plain packets the hint skips.
        assert!(
            hinted * 100 > plain * 99,
            "hint read {hinted} of {plain} plain TCP/UDP packets"
        );
        assert!(
            packets > 5_000 && fragments > 0,
            "{packets} packets, {fragments} fragments"
        );
    }

    /// Frames the tests above build, for mutation.
    fn corpus() -> Vec<(LinkType, Vec<u8>)> {
        let inner = inner_v4_tcp();
        let e = LinkType::ETHERNET;
        vec![
            (
                e,
                cat(&[
                    &eth(0x88a8),
                    &vlan(1, 0x8100),
                    &vlan(2, 0x0800),
                    &ipv4(1, 2, 6, 0, &tcp(b"a")),
                ]),
            ),
            (
                e,
                cat(&[
                    &eth(0x0800),
                    &ipv4(1, 2, 47, 0, &cat(&[&gre(0x88be, true), &erspan2(), &inner])),
                ]),
            ),
            (
                e,
                cat(&[
                    &eth(0x0800),
                    &ipv4(1, 2, 17, 0, &udp(4789, &cat(&[&vxlan(), &inner]))),
                ]),
            ),
            (
                e,
                cat(&[
                    &eth(0x86dd),
                    &ipv6(
                        1,
                        2,
                        4,
                        &ipv4(21, 22, 47, 0, &cat(&[&gre(0x6558, false), &inner])),
                    ),
                ]),
            ),
            (
                LinkType::RAW,
                ipv4(
                    1,
                    2,
                    47,
                    0,
                    &cat(&[
                        &gre(0x22eb, true),
                        &erspan3_ip(),
                        &ipv6(3, 4, 60, &[6, 0, 1, 4, 0, 0, 0, 0]),
                    ]),
                ),
            ),
        ]
    }

    proptest! {
        /// Any bytes changed anywhere in a tunnelled frame, and any cut.
        #[test]
        fn mutated_frames_read_as_the_decoder_decodes_them(
            which in 0usize..5,
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
            cut in any::<usize>(),
            snapped in any::<bool>(),
        ) {
            let (link, mut f) = corpus().swap_remove(which);
            for (at, b) in edits {
                let n = f.len();
                f[at % n] = b;
            }
            let n = cut % (f.len() + 1);
            let wire = if snapped { f.len() } else { n };
            agree(link, &f[..n], wire as u32);
        }

        /// The fast path on plain TCP and ICMP frames, changed anywhere and
        /// cut anywhere: it reads what the decoder reports, and what the
        /// general walk reads whenever that finds addresses.
        #[test]
        fn fast_path_reads_as_the_decoder_and_the_general_walk(
            which in 0usize..4,
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
            cut in any::<usize>(),
        ) {
            let mut f = match which {
                0 => cat(&[&eth(0x0800), &ipv4(1, 2, 6, 0, &tcp(b"abc"))]),
                1 => cat(&[&eth(0x86dd), &ipv6(1, 2, 6, &tcp(b"abc"))]),
                2 => cat(&[&eth(0x0800), &ipv4(1, 2, 1, 0x2000, &[8, 0, 0, 0, 0, 1, 0, 1])]),
                _ => cat(&[&eth(0x86dd), &ipv6(1, 2, 58, &[128, 0, 0, 0, 0, 1, 0, 1])]),
            };
            for (at, b) in edits {
                let n = f.len();
                f[at % n] = b;
            }
            let f = &f[..cut % (f.len() + 1)];
            agree(LinkType::ETHERNET, f, f.len() as u32);
            let mut r = AddressReader::new(&DecodeConfig::default());
            if let (Some(fast), Some(slow)) =
                (ethernet_tcp(f), r.read_slow(LinkType::ETHERNET, f, f.len() as u32))
            {
                prop_assert_eq!(fast, slow);
            }
        }

        /// Arbitrary bytes on every link type.
        #[test]
        fn arbitrary_bytes_read_as_the_decoder_decodes_them(
            link in prop::sample::select(vec![
                LinkType::ETHERNET, LinkType::RAW, LinkType::NULL, LinkType::LOOP,
                LinkType::LINUX_SLL, LinkType::LINUX_SLL2, LinkType::IPV4, LinkType::IPV6,
            ]),
            f in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            agree(link, &f, f.len() as u32);
        }
    }
}
