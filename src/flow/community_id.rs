//! Community ID v1 (corelight/community-id-spec): a hash of the flow tuple
//! that Zeek, Suricata and Arkime also compute, so one flow can be followed
//! across tools.
//!
//! `"1:" + base64(sha1(seed:u16be, saddr, daddr, proto:u8, 0:u8, sport:u16be,
//! dport:u16be))`, where the endpoints are ordered so that the smaller
//! (address, port) comes first, and ICMP types/codes stand in for ports with
//! the spec's mapping of request/reply types onto one another.

use std::net::IpAddr;

use sha1::digest::generic_array::GenericArray;

use crate::decode::ip_proto;

/// Bytes of a Community ID: `1:` and the 28 characters of the base64 of
/// a SHA-1 digest (20 bytes, one `=` of padding).
pub const LEN: usize = 30;

/// The Community ID v1 of a flow seen from `src` to `dst` (for ICMP and
/// ICMPv6, `sport` is the type and `dport` the code), as its [`LEN`] ASCII
/// bytes, with no allocation: the hashed tuple is at most 40 bytes, so
/// SHA-1 is one padded block given to its compression function, and the
/// digest is base64-encoded by hand
/// (a flow's id is made once per flow, but every flow needs one for its
/// flow record: the `Digest` wrapper, the base64 engine and the `String`
/// cost more than the compression itself).
pub fn community_id_bytes(
    seed: u16,
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    proto: u8,
) -> [u8; LEN] {
    let (mut sport, mut dport) = (sport, dport);
    // ICMP: the type is the "source port"; the "destination port" is the
    // type of the matching reply (or the code when there is none), and a
    // one-way ICMP message is never reordered.
    let mut one_way = false;
    match proto {
        ip_proto::ICMP => {
            let (port, ow) = icmp4_counterpart(sport as u8, dport);
            dport = port;
            one_way = ow;
        }
        ip_proto::ICMPV6 => {
            let (port, ow) = icmp6_counterpart(sport as u8, dport);
            dport = port;
            one_way = ow;
        }
        _ => {}
    }
    let (a, b) = (Octets::of(&src), Octets::of(&dst));
    let (a, b) = (a.as_slice(), b.as_slice());
    let swap = !one_way && (a, sport) > (b, dport);
    let (a, b, pa, pb) = if swap {
        std::mem::swap(&mut sport, &mut dport);
        (b, a, sport, dport)
    } else {
        (a, b, sport, dport)
    };
    // seed, saddr, daddr, proto, 0, sport, dport: 16 or 40 bytes, then
    // SHA-1's padding (FIPS 180-4 §5.1.1): a 1 bit, zeros, and the
    // message's length in bits in the block's last 8 bytes.
    let mut block = [0u8; 64];
    let mut n = 0;
    for part in [
        &seed.to_be_bytes()[..],
        a,
        b,
        &[proto, 0],
        &pa.to_be_bytes(),
        &pb.to_be_bytes(),
    ] {
        if let Some(dst) = block.get_mut(n..n + part.len()) {
            dst.copy_from_slice(part);
        }
        n += part.len();
    }
    if let Some(one) = block.get_mut(n) {
        *one = 0x80;
    }
    if let Some(len) = block.get_mut(56..) {
        len.copy_from_slice(&((n as u64) * 8).to_be_bytes());
    }
    let mut state = SHA1_INIT;
    sha1::compress(&mut state, &[GenericArray::from(block)]);
    let mut digest = [0u8; 21];
    for (d, w) in digest.chunks_exact_mut(4).zip(state) {
        d.copy_from_slice(&w.to_be_bytes());
    }
    // Base64 (RFC 4648 §4): 20 bytes are six groups of three and two
    // bytes more, written as three characters and one `=`. `digest` has
    // a zero byte past the 20th so that the last group reads as three.
    let mut out = [0u8; LEN];
    out[0] = b'1';
    out[1] = b':';
    for (o, g) in out[2..].chunks_exact_mut(4).zip(digest.chunks_exact(3)) {
        let v = u32::from(g[0]) << 16 | u32::from(g[1]) << 8 | u32::from(g[2]);
        for (i, c) in o.iter_mut().enumerate() {
            *c = BASE64[((v >> (18 - 6 * i)) & 0x3f) as usize];
        }
    }
    out[LEN - 1] = b'=';
    out
}

/// SHA-1's initial hash value (FIPS 180-4 §5.3.1).
const SHA1_INIT: [u32; 5] = [
    0x6745_2301,
    0xefcd_ab89,
    0x98ba_dcfe,
    0x1032_5476,
    0xc3d2_e1f0,
];

/// The base64 alphabet (RFC 4648 §4, not the URL-safe one).
const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// An address's octets on the stack (4 or 16 of them).
struct Octets([u8; 16], usize);

impl Octets {
    fn of(ip: &IpAddr) -> Octets {
        let mut o = [0u8; 16];
        match ip {
            IpAddr::V4(v4) => {
                if let Some(d) = o.get_mut(..4) {
                    d.copy_from_slice(&v4.octets());
                }
                Octets(o, 4)
            }
            IpAddr::V6(v6) => Octets(v6.octets(), 16),
        }
    }

    fn as_slice(&self) -> &[u8] {
        self.0.get(..self.1).unwrap_or(&self.0)
    }
}

/// ICMPv4 type pairs from the spec: echo, timestamp, info, router
/// solicitation/advertisement, address mask.
fn icmp4_counterpart(t: u8, code: u16) -> (u16, bool) {
    match t {
        8 => (0, false),
        0 => (8, false),
        13 => (14, false),
        14 => (13, false),
        15 => (16, false),
        16 => (15, false),
        10 => (9, false),
        9 => (10, false),
        17 => (18, false),
        18 => (17, false),
        _ => (code, true),
    }
}

/// ICMPv6 type pairs from the spec: echo, MLD query/report, neighbour and
/// router discovery, who-are-you, home agent, mobile prefix.
fn icmp6_counterpart(t: u8, code: u16) -> (u16, bool) {
    match t {
        128 => (129, false),
        129 => (128, false),
        130 => (131, false),
        131 => (130, false),
        133 => (134, false),
        134 => (133, false),
        135 => (136, false),
        136 => (135, false),
        139 => (140, false),
        140 => (139, false),
        144 => (145, false),
        145 => (144, false),
        _ => (code, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The id as it was computed before [`community_id_bytes`]: the
    /// `Digest` API over the ordered tuple, and the base64 crate.
    fn reference(seed: u16, src: IpAddr, sport: u16, dst: IpAddr, dport: u16, proto: u8) -> String {
        use base64::Engine as _;
        use sha1::{Digest, Sha1};
        let (sport, mut dport) = (sport, dport);
        let mut one_way = false;
        match proto {
            ip_proto::ICMP => (dport, one_way) = icmp4_counterpart(sport as u8, dport),
            ip_proto::ICMPV6 => (dport, one_way) = icmp6_counterpart(sport as u8, dport),
            _ => {}
        }
        let (a, b) = (Octets::of(&src), Octets::of(&dst));
        let (a, b) = (a.as_slice(), b.as_slice());
        let swap = !one_way && (a, sport) > (b, dport);
        let (a, b, pa, pb) = if swap {
            (b, a, dport, sport)
        } else {
            (a, b, sport, dport)
        };
        let mut h = Sha1::new();
        h.update(seed.to_be_bytes());
        h.update(a);
        h.update(b);
        h.update([proto, 0]);
        h.update(pa.to_be_bytes());
        h.update(pb.to_be_bytes());
        let mut out = String::from("1:");
        base64::engine::general_purpose::STANDARD.encode_string(h.finalize(), &mut out);
        out
    }

    proptest::proptest! {
        /// The one-block hash and hand-made base64 give the reference's
        /// id for any tuple of either address family and any protocol.
        #[test]
        fn one_block_id_equals_the_digest_and_base64_reference(
            seed: u16,
            src: IpAddr,
            dst: IpAddr,
            sport: u16,
            dport: u16,
            proto in proptest::prop_oneof![
                proptest::prelude::Just(ip_proto::TCP),
                proptest::prelude::Just(ip_proto::UDP),
                proptest::prelude::Just(ip_proto::ICMP),
                proptest::prelude::Just(ip_proto::ICMPV6),
                proptest::prelude::any::<u8>(),
            ],
        ) {
            let (sport, dport) = if matches!(proto, ip_proto::ICMP | ip_proto::ICMPV6) {
                (sport & 0xff, dport & 0xff)
            } else {
                (sport, dport)
            };
            let want = reference(seed, src, sport, dst, dport, proto);
            let got = community_id_bytes(seed, src, sport, dst, dport, proto);
            proptest::prop_assert_eq!(std::str::from_utf8(&got).unwrap(), want.as_str());
        }
    }

    // Expected values computed with the reference implementation, the
    // `communityid` Python package 1.5:
    //   communityid.CommunityID().calc(communityid.FlowTuple.make_tcp(...))
    #[test]
    fn tcp_ipv4_matches_reference_both_directions() {
        let a: IpAddr = "128.232.110.120".parse().unwrap();
        let b: IpAddr = "66.35.250.204".parse().unwrap();
        let x = community_id_bytes(0, a, 34855, b, 80, ip_proto::TCP);
        let y = community_id_bytes(0, b, 80, a, 34855, ip_proto::TCP);
        assert_eq!(x, *b"1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
        assert_eq!(x, y);
    }

    #[test]
    fn udp_ipv6_icmp_and_seed_match_reference() {
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        assert_eq!(
            community_id_bytes(0, ip("fd00::1"), 5353, ip("fd00::2"), 53, ip_proto::UDP),
            *b"1:4LTNBClj5iLNmmN8WUb82WiSDlQ="
        );
        // Echo request and its reply map onto the same id.
        let req = community_id_bytes(0, ip("10.0.0.1"), 8, ip("10.0.0.2"), 0, ip_proto::ICMP);
        let rep = community_id_bytes(0, ip("10.0.0.2"), 0, ip("10.0.0.1"), 0, ip_proto::ICMP);
        assert_eq!(req, *b"1:YcMyyWJfhc95EW1GfXt6jlZ3DiQ=");
        assert_eq!(req, rep);
        // MLDv2 report (143) has no counterpart: one-way, never reordered.
        assert_eq!(
            community_id_bytes(0, ip("fe80::1"), 143, ip("ff02::1"), 0, ip_proto::ICMPV6),
            *b"1:w1IHeSJ78fCibnmgh3i5T8qjufs="
        );
        assert_eq!(
            community_id_bytes(
                1,
                ip("10.20.1.15"),
                50000,
                ip("10.10.5.10"),
                1883,
                ip_proto::TCP
            ),
            *b"1:yb396pUAq5TIdEO5L2IIxti2sfc="
        );
    }
}
