//! Probes: does the start of a direction look like a protocol's opening
//! message? Each probe reads only the bytes it is given and answers
//! [`Verdict::NeedMore`] when they are a consistent prefix too short to
//! decide.
//!
//! - MQTT (v3.1 §3.1, v3.1.1 §3.1, v5.0 §3.1): client's CONNECT — type 1 with
//!   flags 0, a 1–4 byte remaining length, protocol name `MQTT` (levels 4, 5)
//!   or `MQIsdp` (level 3).
//! - DICOM (PS3.8 §9.3.2): A-ASSOCIATE-RQ — PDU type 0x01, reserved 0x00,
//!   32-bit length, protocol version bit 0, called and calling AE titles of
//!   printable ASCII.
//! - TLS (RFC 8446 §5.1): a handshake record (type 22, major version 3)
//!   starting with ClientHello to the server or ServerHello to the client.
//! - HL7 v2, either direction: an MLLP start block then `MSH`, `FHS` or
//!   `BHS` with plausible delimiters, or such a segment bare
//!   ([`crate::app::hl7::probe_start`]).

use crate::app::AppProto;
use crate::flow::Direction;

/// A probe's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Match(AppProto),
    NeedMore,
    NoMatch,
}

/// Runs every probe on the first bytes of `dir`.
pub fn probe(dir: Direction, data: &[u8]) -> Verdict {
    let verdicts = [
        mqtt(dir, data),
        dicom(dir, data),
        tls(dir, data),
        crate::app::hl7::probe_start(data),
    ];
    if let Some(v) = verdicts.iter().find(|v| matches!(v, Verdict::Match(_))) {
        return *v;
    }
    if verdicts.contains(&Verdict::NeedMore) {
        Verdict::NeedMore
    } else {
        Verdict::NoMatch
    }
}

/// Compares `data` with `want` as far as `data` goes.
fn prefix(data: &[u8], want: &[u8]) -> Verdict {
    let n = data.len().min(want.len());
    if data.get(..n) != want.get(..n) {
        Verdict::NoMatch
    } else if n < want.len() {
        Verdict::NeedMore
    } else {
        Verdict::Match(AppProto::Unknown)
    }
}

fn mqtt(dir: Direction, data: &[u8]) -> Verdict {
    if dir != Direction::ToServer {
        return Verdict::NoMatch;
    }
    match data.first() {
        None => return Verdict::NeedMore,
        Some(0x10) => {}
        Some(_) => return Verdict::NoMatch,
    }
    // Remaining length: up to four bytes, the high bit meaning "more".
    let mut i = 1;
    loop {
        match data.get(i) {
            None => return Verdict::NeedMore,
            Some(b) if b & 0x80 != 0 && i < 4 => i += 1,
            Some(b) if b & 0x80 != 0 => return Verdict::NoMatch,
            Some(_) => break,
        }
    }
    let rest = data.get(i + 1..).unwrap_or(&[]);
    for (name, levels) in [
        (&b"\x00\x04MQTT"[..], &[4u8, 5][..]),
        (&b"\x00\x06MQIsdp"[..], &[3u8][..]),
    ] {
        match prefix(rest, name) {
            Verdict::NeedMore => return Verdict::NeedMore,
            Verdict::Match(_) => {
                return match rest.get(name.len()) {
                    None => Verdict::NeedMore,
                    Some(l) if levels.contains(l) => Verdict::Match(AppProto::Mqtt),
                    Some(_) => Verdict::NoMatch,
                }
            }
            Verdict::NoMatch => {}
        }
    }
    Verdict::NoMatch
}

/// Smallest A-ASSOCIATE-RQ: 68 bytes of fixed fields after the 6-byte header.
const DICOM_MIN_LEN: u32 = 68;

fn dicom(dir: Direction, data: &[u8]) -> Verdict {
    if dir != Direction::ToServer {
        return Verdict::NoMatch;
    }
    if let v @ (Verdict::NoMatch | Verdict::NeedMore) = prefix(data, &[0x01, 0x00]) {
        return v;
    }
    let Some(len) = data.get(2..6) else {
        return Verdict::NeedMore;
    };
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    // A request with dozens of presentation contexts stays well below 64 KiB.
    if !(DICOM_MIN_LEN..=1 << 20).contains(&len) {
        return Verdict::NoMatch;
    }
    match data.get(6..8) {
        None => return Verdict::NeedMore,
        Some(v) if v[1] & 0x01 == 0 => return Verdict::NoMatch,
        Some(_) => {}
    }
    // Called AE title (10..26) and calling AE title (26..42).
    let aes = data.get(10..42.min(data.len())).unwrap_or(&[]);
    if aes.iter().any(|&b| !(0x20..=0x7e).contains(&b)) {
        return Verdict::NoMatch;
    }
    if data.len() < 42 {
        Verdict::NeedMore
    } else {
        Verdict::Match(AppProto::Dicom)
    }
}

fn tls(dir: Direction, data: &[u8]) -> Verdict {
    let hello = match dir {
        Direction::ToServer => 0x01,
        Direction::ToClient => 0x02,
    };
    if let v @ (Verdict::NoMatch | Verdict::NeedMore) = prefix(data, &[0x16, 0x03]) {
        return v;
    }
    match data.get(2) {
        None => return Verdict::NeedMore,
        Some(minor) if *minor > 0x04 => return Verdict::NoMatch,
        Some(_) => {}
    }
    match data.get(5) {
        None => Verdict::NeedMore,
        Some(t) if *t == hello => Verdict::Match(AppProto::Tls),
        Some(_) => Verdict::NoMatch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::ToServer;

    // Hand-built: MQTT 3.1 CONNECT prefix — type 1, remaining length 38,
    // protocol name length 6, "MQIsdp", level 3.
    const CONNECT_31: &[u8] = b"\x10\x26\x00\x06MQIsdp\x03";

    #[test]
    fn mqtt_31_connect_matches_at_full_prefix_only() {
        assert_eq!(probe(ToServer, CONNECT_31), Verdict::Match(AppProto::Mqtt));
        for n in 0..CONNECT_31.len() {
            assert_eq!(
                probe(ToServer, &CONNECT_31[..n]),
                Verdict::NeedMore,
                "prefix {n}"
            );
        }
    }

    #[test]
    fn mqtt_wrong_level_or_name_does_not_match() {
        assert_eq!(
            probe(ToServer, b"\x10\x26\x00\x04MQTT\x09"),
            Verdict::NoMatch
        );
        assert_eq!(
            probe(ToServer, b"\x10\x26\x00\x04MQTX\x04"),
            Verdict::NoMatch
        );
        // Remaining length with five continuation bytes is invalid.
        assert_eq!(
            probe(ToServer, b"\x10\xff\xff\xff\xff\x01"),
            Verdict::NoMatch
        );
    }

    #[test]
    fn mqtt_connect_never_matches_towards_the_client() {
        assert_eq!(probe(Direction::ToClient, CONNECT_31), Verdict::NoMatch);
    }

    // Hand-built A-ASSOCIATE-RQ start: type 1, reserved, length 205,
    // version 1, reserved, called AE "ANY-SCP" and calling AE "ECHOSCU"
    // padded with spaces to 16 bytes.
    fn associate_rq() -> Vec<u8> {
        let mut v = vec![0x01, 0x00, 0x00, 0x00, 0x00, 0xcd, 0x00, 0x01, 0x00, 0x00];
        v.extend_from_slice(b"ANY-SCP         ECHOSCU         ");
        v
    }

    #[test]
    fn dicom_associate_rq_matches_and_prefixes_need_more() {
        let rq = associate_rq();
        assert_eq!(probe(ToServer, &rq), Verdict::Match(AppProto::Dicom));
        for n in 0..rq.len() {
            assert_eq!(probe(ToServer, &rq[..n]), Verdict::NeedMore, "prefix {n}");
        }
    }

    #[test]
    fn dicom_with_binary_ae_title_or_tiny_length_does_not_match() {
        let mut rq = associate_rq();
        rq[12] = 0x00;
        assert_eq!(probe(ToServer, &rq), Verdict::NoMatch);
        let mut rq = associate_rq();
        rq[5] = 0x10;
        assert_eq!(probe(ToServer, &rq), Verdict::NoMatch);
    }

    #[test]
    fn garbage_never_matches() {
        assert_eq!(
            probe(ToServer, b"SSH-2.0-OpenSSH_9.2\r\n"),
            Verdict::NoMatch
        );
        assert_eq!(probe(ToServer, &[0u8; 64]), Verdict::NoMatch);
    }
}
