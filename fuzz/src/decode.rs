//! Target `decode`: the frame decoder on every link type (VLANs, GRE,
//! ERSPAN, VXLAN, IP-in-IP) and IPv4/IPv6 defragmentation.
//!
//! Input: `sel:u8 [link:u16] frame*`, `frame = dt:u8 cut:u8 len:u16 bytes`.
//! `sel % 16` picks the link type from [`LINKS`] (past its end, `link` is
//! read as any LINKTYPE number); `sel & 0x80` gives defrag small limits so
//! eviction and the per-datagram caps are reached with small inputs. Each
//! frame advances packet time by `dt` seconds (defrag timeouts) and was
//! `cut` bytes longer on the wire than captured (0: not cut).
//!
//! Every fragment goes to the reassembler and every datagram it completes
//! through `decode_l4`, as the worker does.
//!
//! Properties:
//! - `Decoded::Invalid` exactly when `decoder.invalid` went up, by one;
//! - at most `max_vlan_layers` tags; a payload never longer than the frame;
//! - a reassembled datagram is within `max_datagram` bytes and
//!   `max_fragments` fragments; the tracker table within `max_trackers`.

use wardwatch::capture::LinkType;
use wardwatch::decode::defrag::{Defrag, DefragConfig};
use wardwatch::decode::{Counter, DecodeConfig, Decoded, Decoder, L4};
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

pub fn decode(data: &[u8]) {
    let mut c = Cursor::new(data);
    let sel = c.u8();
    let link = match LINKS.get(usize::from(sel % 16)) {
        Some(&l) => l,
        None => LinkType(c.u16()),
    };
    let cfg = DecodeConfig::default();
    let dcfg = if sel & 0x80 != 0 {
        DefragConfig {
            max_trackers: 4,
            max_fragments: 4,
            max_datagram: 2048,
            timeout_secs: 5,
            ..DefragConfig::default()
        }
    } else {
        DefragConfig::default()
    };
    let mut dec = Decoder::new(cfg.clone());
    let mut defrag = Defrag::new(dcfg.clone());
    let mut now = Timestamp(0);
    while !c.is_empty() {
        now = now.plus_secs(u64::from(c.u8()));
        let cut = u32::from(c.u8());
        let len = usize::from(c.u16());
        let frame = c.bytes(len);
        let wire_len = (frame.len() as u32).saturating_add(cut);
        let invalid = dec.stats().get(Counter::Invalid);
        let d = dec.decode(link, frame, wire_len);
        let counted = dec.stats().get(Counter::Invalid) - invalid;
        assert_eq!(
            counted,
            u64::from(matches!(d, Decoded::Invalid)),
            "decoder.invalid and the verdict disagree: {d:?}"
        );
        match d {
            Decoded::Packet(p) => {
                assert!(p.vlan.len <= cfg.max_vlan_layers.min(3), "{:?}", p.vlan);
                check_l4(&p.l4, frame.len());
            }
            Decoded::Fragment(f) => {
                assert!(f.payload.len() <= frame.len());
                if let Some(r) = defrag.insert(now, &f, wire_len) {
                    assert!(r.data.len() <= dcfg.max_datagram, "{} bytes", r.data.len());
                    assert!(
                        r.frames as usize <= dcfg.max_fragments,
                        "{} frames",
                        r.frames
                    );
                    let l4 = dec.decode_l4(f.ip.proto, &r.data);
                    check_l4(&l4, r.data.len());
                }
                assert!(
                    defrag.len() <= dcfg.max_trackers,
                    "{} trackers",
                    defrag.len()
                );
            }
            Decoded::NotIp | Decoded::Invalid => {}
        }
    }
    defrag.expire(now.plus_secs(u64::from(u32::MAX)));
    assert!(defrag.is_empty(), "trackers left after expiring everything");
}

/// One frame in the input layout, for seeds.
pub fn encode_frame(out: &mut Vec<u8>, dt: u8, cut: u8, frame: &[u8]) {
    let frame = &frame[..frame.len().min(usize::from(u16::MAX))];
    out.push(dt);
    out.push(cut);
    out.extend_from_slice(&(frame.len() as u16).to_le_bytes());
    out.extend_from_slice(frame);
}
