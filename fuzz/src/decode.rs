//! Target `decode`: the frame decoder on every link type (VLANs, GRE,
//! ERSPAN, VXLAN, IP-in-IP) and IPv4/IPv6 defragmentation.
//!
//! Input: `sel:u8 [link:u16] frame*`, `frame = dt:u8 cut:u8 len:u16 bytes`.
//! `sel % 16` picks the link type from [`LINKS`] (past its end, `link` is
//! read as any LINKTYPE number); `sel & 0x80` gives defrag small limits
//! (trackers, fragments, datagram size, an 8 KiB `defrag.memcap`) so
//! eviction and the caps are reached with small inputs; `sel & 0x40` turns
//! checksum validation off (`checksum_checks: no`), so that the fuzzer's
//! frames reach the layers behind a checksum; else it is `yes`. Each
//! frame advances packet time by `dt` seconds (defrag timeouts) and was
//! `cut` bytes longer on the wire than captured (0: not cut).
//!
//! Every fragment goes to the reassembler and every datagram it completes
//! through `decode_reassembled`, as the worker does.
//!
//! Properties:
//! - `Decoded::Invalid` exactly when `decoder.invalid` or one checksum
//!   counter went up, by one, and no checksum counter moves with checks
//!   off;
//! - at most `max_vlan_layers` tags; a payload never longer than the frame;
//! - a reassembled datagram is within `max_datagram` bytes and
//!   `max_fragments` fragments; the tracker table within `max_trackers`;
//! - the bytes defrag holds stay within `defrag.memcap` and are all given
//!   back once every datagram has expired;
//! - the reader's address-only dispatcher (`decode::dispatch`) finds the
//!   VLANs and address pair the decoder reports for every packet and
//!   fragment, so a flow's packets all reach one worker, and marks only
//!   fragments for copies to every worker.

use wardwatch::capture::LinkType;
use wardwatch::decode::defrag::{Defrag, DefragConfig};
use wardwatch::decode::dispatch::AddressReader;
use wardwatch::decode::{ChecksumChecks, Counter, DecodeConfig, DecodeStats, Decoded, Decoder, L4};
use wardwatch::memcap::ByteSize;
use wardwatch::time::Timestamp;

use super::input::Cursor;

/// The link types wardwatch decodes.
pub const LINKS: &[LinkType] = &[
    LinkType::ETHERNET,
    LinkType::RAW,
    LinkType::NULL,
    LinkType::LOOP,
    LinkType::LINUX_SLL,
    LinkType::LINUX_SLL2,
    LinkType::IPV4,
    LinkType::IPV6,
];

fn check_l4(l4: &L4<'_>, frame_len: usize) {
    let payload = match l4 {
        L4::Tcp(t) => t.payload.len(),
        L4::Udp(u) => u.payload.len(),
        _ => 0,
    };
    assert!(
        payload <= frame_len,
        "payload of {payload} bytes in {frame_len}"
    );
}

/// Frames counted as invalid: malformed, or failing a checksum.
fn invalid(s: &DecodeStats) -> (u64, u64) {
    let sums = Counter::ALL
        .iter()
        .filter(|c| c.is_checksum())
        .map(|&c| s.get(c))
        .sum();
    (s.get(Counter::Invalid), sums)
}

/// The dispatcher reads the fields the decoder reported, and gives every
/// worker a copy only of a fragment: a whole packet copied would reach a
/// flow on a worker that does not own it.
fn check_dispatch(
    d: &Decoded<'_>,
    found: Option<(
        wardwatch::decode::Vlans,
        std::net::IpAddr,
        std::net::IpAddr,
        bool,
    )>,
) {
    if let (Some((.., true)), Decoded::Packet(p)) = (found, d) {
        panic!("a whole packet marked for copies: {p:?}");
    }
    let found = found.map(|(v, s, d, _)| (v, s, d));
    let want = match d {
        Decoded::Packet(p) => (p.vlan, p.ip.src, p.ip.dst),
        Decoded::Fragment(f) => (f.vlan, f.ip.src, f.ip.dst),
        Decoded::NotIp | Decoded::Invalid => return,
    };
    assert_eq!(
        found,
        Some(want),
        "dispatcher and decoder disagree on {d:?}"
    );
}

fn check_decoded(d: &Decoded<'_>, cfg: &DecodeConfig, len: usize) {
    if let Decoded::Packet(p) = d {
        assert!(p.vlan.len <= cfg.max_vlan_layers.min(3), "{:?}", p.vlan);
        check_l4(&p.l4, len);
    }
}

/// Runs `decode` and checks that its verdict and the counters agree.
fn counted<'a>(
    dec: &mut Decoder,
    checks: bool,
    run: impl FnOnce(&mut Decoder) -> Decoded<'a>,
) -> Decoded<'a> {
    let (bad0, sums0) = invalid(dec.stats());
    let d = run(dec);
    let (bad, sums) = invalid(dec.stats());
    assert_eq!(
        (bad - bad0) + (sums - sums0),
        u64::from(matches!(d, Decoded::Invalid)),
        "invalid counters and the verdict disagree: {d:?}"
    );
    assert!(
        checks || sums == sums0,
        "a checksum counted with checks off"
    );
    d
}

pub fn decode(data: &[u8]) {
    let mut c = Cursor::new(data);
    let sel = c.u8();
    let link = match LINKS.get(usize::from(sel % 16)) {
        Some(&l) => l,
        None => LinkType(c.u16()),
    };
    let checks = sel & 0x40 == 0;
    let cfg = DecodeConfig {
        checksum_checks: if checks {
            ChecksumChecks::Yes
        } else {
            ChecksumChecks::No
        },
        ..DecodeConfig::default()
    };
    let dcfg = if sel & 0x80 != 0 {
        DefragConfig {
            max_trackers: 4,
            max_fragments: 4,
            max_datagram: 2048,
            timeout_secs: 5,
            memcap: ByteSize(8 << 10),
        }
    } else {
        DefragConfig::default()
    };
    let mut dec = Decoder::new(cfg.clone());
    let mut addrs = AddressReader::new(&cfg);
    let mut defrag = Defrag::new(dcfg.clone());
    let mut now = Timestamp(0);
    while !c.is_empty() {
        now = now.plus_secs(u64::from(c.u8()));
        let cut = u32::from(c.u8());
        let len = usize::from(c.u16());
        let frame = c.bytes(len);
        let wire_len = (frame.len() as u32).saturating_add(cut);
        let d = counted(&mut dec, checks, |dec| dec.decode(link, frame, wire_len));
        check_dispatch(
            &d,
            addrs
                .read(link, frame, wire_len)
                .map(|a| (a.vlan, a.src, a.dst, a.may_tunnel)),
        );
        match d {
            Decoded::Packet(_) => check_decoded(&d, &cfg, frame.len()),
            Decoded::Fragment(f) => {
                assert!(f.payload.len() <= frame.len());
                if let Some(r) = defrag.insert(now, &f, wire_len) {
                    assert!(r.data.len() <= dcfg.max_datagram, "{} bytes", r.data.len());
                    assert!(
                        r.frames as usize <= dcfg.max_fragments,
                        "{} frames",
                        r.frames
                    );
                    let inner =
                        counted(&mut dec, checks, |dec| dec.decode_reassembled(&f, &r.data));
                    check_decoded(&inner, &cfg, r.data.len());
                }
                assert!(
                    defrag.len() <= dcfg.max_trackers,
                    "{} trackers",
                    defrag.len()
                );
                assert!(
                    defrag.memuse() <= dcfg.memcap.0,
                    "defrag holds {} bytes over its {}-byte memcap",
                    defrag.memuse(),
                    dcfg.memcap.0
                );
            }
            Decoded::NotIp | Decoded::Invalid => {}
        }
    }
    defrag.expire(now.plus_secs(u64::from(u32::MAX)));
    assert!(defrag.is_empty(), "trackers left after expiring everything");
    assert_eq!(defrag.memuse(), 0, "bytes held after expiring everything");
}

/// One frame in the input layout, for seeds.
pub fn encode_frame(out: &mut Vec<u8>, dt: u8, cut: u8, frame: &[u8]) {
    let frame = &frame[..frame.len().min(usize::from(u16::MAX))];
    out.push(dt);
    out.push(cut);
    out.extend_from_slice(&(frame.len() as u16).to_le_bytes());
    out.extend_from_slice(frame);
}
