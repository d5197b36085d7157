//! Reads the TCP payload of a capture's DICOM conversations in capture
//! order, direction by direction, for tests and benches that feed the DICOM
//! parser directly (no pipeline in between). Ethernet/IPv4/TCP pcap files
//! only (what `pcaps/dicom_*.pcap` are); retransmitted bytes are dropped.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use wardwatch::flow::Direction;

/// One segment's payload: the client port (one conversation per port), the
/// direction, the bytes.
pub type Segment = (u16, Direction, Vec<u8>);

/// Payload segments to and from `server_port`, in capture order.
pub fn segments(pcap: &[u8], server_port: u16) -> Vec<Segment> {
    assert_eq!(
        &pcap[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian µs pcap"
    );
    let mut out = Vec::new();
    // Next expected sequence number per (client port, direction).
    let mut next: HashMap<(u16, usize), u32> = HashMap::new();
    let mut pos = 24;
    while pos + 16 <= pcap.len() {
        let incl = u32::from_le_bytes(pcap[pos + 8..pos + 12].try_into().unwrap()) as usize;
        let frame = &pcap[pos + 16..pos + 16 + incl];
        pos += 16 + incl;
        let Ok(p) = etherparse::SlicedPacket::from_ethernet(frame) else {
            continue;
        };
        let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport else {
            continue;
        };
        let (client, dir) = if tcp.destination_port() == server_port {
            (tcp.source_port(), Direction::ToServer)
        } else if tcp.source_port() == server_port {
            (tcp.destination_port(), Direction::ToClient)
        } else {
            continue;
        };
        let seq = tcp.sequence_number();
        let key = (client, dir.index());
        if tcp.syn() {
            next.insert(key, seq.wrapping_add(1));
            continue;
        }
        let payload = tcp.payload();
        if payload.is_empty() {
            continue;
        }
        let want = *next.get(&key).unwrap_or(&seq);
        let skip = want.wrapping_sub(seq) as usize;
        if skip >= payload.len() || (want.wrapping_sub(seq) as i32) < 0 {
            // A retransmission (or a hole, which these captures do not have).
            continue;
        }
        next.insert(key, seq.wrapping_add(payload.len() as u32));
        out.push((client, dir, payload[skip..].to_vec()));
    }
    out
}

/// The whole byte stream of one direction of the first conversation.
pub fn stream(pcap: &[u8], server_port: u16, dir: Direction) -> Vec<u8> {
    let segs = segments(pcap, server_port);
    let first = segs.first().map(|s| s.0).unwrap();
    segs.into_iter()
        .filter(|s| s.0 == first && s.1 == dir)
        .flat_map(|s| s.2)
        .collect()
}
