//! Probes: do these bytes look like a protocol, and who sent them?
//!
//! Start-of-stream probes read the first bytes of a direction and answer
//! [`Verdict::NeedMore`] when they are a consistent prefix too short to
//! decide:
//! - MQTT (v3.1 §3.1, v3.1.1 §3.1, v5.0 §3.1): the client's CONNECT — type 1
//!   with flags 0, a 1–4 byte remaining length, protocol name `MQTT`
//!   (levels 4, 5) or `MQIsdp` (level 3).
//! - DICOM (PS3.8 §9.3.2): A-ASSOCIATE-RQ — PDU type 0x01, reserved 0x00,
//!   32-bit length, protocol version bit 0, called and calling AE titles of
//!   printable ASCII. Sent by the association requestor (the client).
//! - TLS (RFC 8446 §5.1): a handshake record (type 22, major version 3)
//!   starting with ClientHello (client) or ServerHello (server).
//!
//! Mid-stream probes look for a *run* of messages that starts somewhere in
//! the bytes and tiles them to their end (the last message may be cut by
//! the end): the bytes of a stream picked up without its handshake, or
//! after lost bytes, start anywhere inside a message. Each candidate start
//! is checked with a handful of O(1) tests on the message's header (and the
//! first bytes of its body), and the chains are computed right to left in
//! one pass, so a probe costs O(n) for n bytes whatever they hold.
//! - MQTT: at least two whole messages ending exactly at the end, or three
//!   whole ones and a cut one; valid type and flags, a remaining length the
//!   type allows, a PUBLISH topic that fits and reads as text, packet
//!   identifiers not 0, a CONNACK return code that exists; the first few
//!   candidates are then fully parsed by the MQTT parser (v3.1.1, else v5).
//!   Client-only types (CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ) and
//!   server-only types (CONNACK, SUBACK, UNSUBACK, PINGRESP) say who sent
//!   the run; a run with both is not MQTT.
//! - DICOM (PS3.8 §9.3): PDUs of type 1–7 with reserved byte 0 and a length
//!   the type allows; A-ASSOCIATE-RQ/AC with version bit and printable AE
//!   titles; P-DATA-TF whose PDV items (length ≥ 2, odd presentation
//!   context id, control header ≤ 3) tile the PDU. One whole PDU, or a cut
//!   one whose decisive fields were visible. An A-ASSOCIATE-RQ comes from
//!   the requestor, an A-ASSOCIATE-AC or -RJ from the acceptor.
//! - TLS (RFC 8446 §5.1): records of content type 20–24, version 3.0–3.4
//!   (major 3, minor ≤ 4), length at most 2^14 + 2048; at least one whole
//!   record, ending at the end or followed by a cut one.
//!
//! Precision matters more than recall: text (HTTP, HL7) never starts an
//! MQTT or DICOM header (their type bytes are control characters, or a
//! PUBLISH topic length of two printable bytes exceeds any one-byte
//! remaining length), and the chain requirement makes random binary
//! vanishingly unlikely to match (tests run the probes over the TLS, HL7
//! and DICOM bulk captures).

use crate::app::mqtt::parser::{self as mqtt, level, packet_type as pt};
use crate::app::{Midstream, Role, Verdict};

/// Compares `data` with `want` as far as `data` goes.
fn prefix(data: &[u8], want: &[u8]) -> Verdict {
    let n = data.len().min(want.len());
    if data.get(..n) != want.get(..n) {
        Verdict::NoMatch
    } else if n < want.len() {
        Verdict::NeedMore
    } else {
        Verdict::Match(Role::Either)
    }
}

/// The start of an MQTT stream: the client's CONNECT.
pub fn mqtt_start(data: &[u8]) -> Verdict {
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
                    Some(l) if levels.contains(l) => Verdict::Match(Role::Client),
                    Some(_) => Verdict::NoMatch,
                }
            }
            Verdict::NoMatch => {}
        }
    }
    Verdict::NoMatch
}

/// Smallest A-ASSOCIATE-RQ/AC: 68 bytes of fixed fields after the 6-byte
/// header.
const DICOM_MIN_LEN: u32 = 68;
/// Largest association PDU a probe accepts (a request with dozens of
/// presentation contexts stays well below 64 KiB).
const DICOM_MAX_ASSOC: u32 = 1 << 20;

/// The start of a DICOM stream: the requestor's A-ASSOCIATE-RQ.
pub fn dicom_start(data: &[u8]) -> Verdict {
    if let v @ (Verdict::NoMatch | Verdict::NeedMore) = prefix(data, &[0x01, 0x00]) {
        return v;
    }
    let Some(len) = data.get(2..6) else {
        return Verdict::NeedMore;
    };
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    if !(DICOM_MIN_LEN..=DICOM_MAX_ASSOC).contains(&len) {
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
        Verdict::Match(Role::Client)
    }
}

/// The start of a TLS stream: a handshake record opening with a
/// ClientHello (client) or a ServerHello (server).
pub fn tls_start(data: &[u8]) -> Verdict {
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
        Some(0x01) => Verdict::Match(Role::Client),
        Some(0x02) => Verdict::Match(Role::Server),
        Some(_) => Verdict::NoMatch,
    }
}

/// Bits of a chain link's roles.
const CLIENT: u8 = 1;
const SERVER: u8 = 2;

/// One candidate message at some offset: its total length (`usize::MAX`
/// when its header is cut by the end), who may send it, and whether the
/// decisive fields were all visible (for a message cut by the end).
#[derive(Debug, Clone, Copy)]
struct Msg {
    len: usize,
    roles: u8,
    strong: bool,
}

/// A chain of messages from one offset to the end, packed in a `u32`:
/// whole messages (saturating), roles, ends exactly at the end, the last
/// message is cut and strong, valid.
#[derive(Debug, Clone, Copy, Default)]
struct Link(u32);

impl Link {
    const OK: u32 = 1 << 31;
    const EXACT: u32 = 1 << 30;
    const STRONG_TAIL: u32 = 1 << 29;
    const ROLE_SHIFT: u32 = 24;
    const COUNT: u32 = 0xffff;

    fn ok(self) -> bool {
        self.0 & Self::OK != 0
    }
    fn exact(self) -> bool {
        self.0 & Self::EXACT != 0
    }
    fn strong_tail(self) -> bool {
        self.0 & Self::STRONG_TAIL != 0
    }
    fn roles(self) -> u8 {
        ((self.0 >> Self::ROLE_SHIFT) & 3) as u8
    }
    fn whole(self) -> u32 {
        self.0 & Self::COUNT
    }
}

thread_local! {
    /// The chain table, reused by every probe of the thread (a fresh zeroed
    /// table per probe cost more than the probe).
    static LINKS: std::cell::RefCell<Vec<Link>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Entries of the chain table kept between probes at most (4 MiB).
const LINKS_KEPT: usize = 1 << 20;

/// Most run starts a probe gets back from [`starts`].
const STARTS: usize = 8;

/// The smallest offsets (at most [`STARTS`], ascending) where a chain of
/// `msg` runs to the end of `data` and `accept` takes it, with who sends
/// it. One right-to-left pass over a reused table: a chain from offset `i`
/// is its message plus the chain from where that message ends. `len` is a
/// cheap first look (the declared total length, `usize::MAX` when cut by
/// the end, `None` when impossible); `msg` runs only where that length
/// continues a chain.
fn starts(
    data: &[u8],
    len: impl Fn(&[u8]) -> Option<usize>,
    msg: impl Fn(&[u8]) -> Option<Msg>,
    accept: impl Fn(Link) -> bool,
) -> Vec<(usize, Role)> {
    let mut found: std::collections::VecDeque<(usize, Role)> =
        std::collections::VecDeque::with_capacity(STARTS);
    let mut scan = |links: &mut Vec<Link>| {
        let n = data.len();
        links.clear();
        links.resize(n, Link::default());
        for i in (0..n).rev() {
            let rest = data.get(i..).unwrap_or(&[]);
            let Some(l) = len(rest) else {
                continue;
            };
            let end = i.saturating_add(l);
            if end < n && !links.get(end).is_some_and(|x| x.ok()) {
                continue;
            }
            let Some(m) = msg(rest) else {
                continue;
            };
            let roles = u32::from(m.roles) << Link::ROLE_SHIFT;
            let end = i.saturating_add(m.len);
            let link = Link(if end == n {
                Link::OK | Link::EXACT | roles | 1
            } else if end > n {
                Link::OK | roles | if m.strong { Link::STRONG_TAIL } else { 0 }
            } else {
                match links.get(end) {
                    Some(next) if next.ok() => {
                        let count = (next.whole() + 1).min(Link::COUNT);
                        (next.0 & !Link::COUNT) | roles | count
                    }
                    _ => continue,
                }
            });
            if let Some(l) = links.get_mut(i) {
                *l = link;
            }
            if accept(link) {
                if let Some(r) = role(link.roles()) {
                    // Right to left: each start found is the smallest yet.
                    if found.len() == STARTS {
                        found.pop_back();
                    }
                    found.push_front((i, r));
                }
            }
        }
    };
    LINKS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut links) => {
            scan(&mut links);
            if links.capacity() > LINKS_KEPT {
                *links = Vec::new();
            }
        }
        // Not reentered today; a fresh table if it ever is.
        Err(_) => scan(&mut Vec::new()),
    });
    found.into()
}

fn role(bits: u8) -> Option<Role> {
    match bits {
        0 => Some(Role::Either),
        CLIENT => Some(Role::Client),
        SERVER => Some(Role::Server),
        // Both sides' message types in one direction: not this protocol.
        _ => None,
    }
}

/// Largest MQTT message the mid-stream probe believes in (16 MiB: larger
/// declared lengths in the middle of a stream are more likely noise).
const MQTT_PROBE_MAX: usize = 1 << 24;

/// Who may send an MQTT control packet of type `t`.
fn mqtt_roles(t: u8) -> u8 {
    match t {
        pt::CONNECT | pt::SUBSCRIBE | pt::UNSUBSCRIBE | pt::PINGREQ => CLIENT,
        pt::CONNACK | pt::SUBACK | pt::UNSUBACK | pt::PINGRESP => SERVER,
        _ => 0,
    }
}

/// The first bytes of a topic read as text: UTF-8 without control
/// characters (MQTT 5.0 §1.5.4 forbids U+0000 and discourages the rest).
fn topic_text(t: &[u8]) -> bool {
    if t.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return false;
    }
    match std::str::from_utf8(t) {
        Ok(_) => true,
        // Cut in the middle of a character by the end of what is visible.
        Err(e) => e.error_len().is_none(),
    }
}

/// First bytes of an MQTT fixed header valid in some protocol level
/// (MQTT 5.0 §2.1.3, the same as 3.1.1 plus AUTH): flags 0, except
/// PUBLISH (any QoS but 3) and PUBREL, SUBSCRIBE, UNSUBSCRIBE (0b0010).
/// Most bytes of anything else fail here, at one load.
const MQTT_FIRST: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0usize;
    while b < 256 {
        let (ty, flags) = (b >> 4, b & 0x0f);
        t[b] = match ty {
            0 => false,
            3 => (flags >> 1) & 3 != 3,
            6 | 8 | 10 => flags == 0x02,
            _ => flags == 0,
        };
        b += 1;
    }
    t
};

/// The total length an MQTT fixed header at `b[0]` declares.
fn mqtt_len(b: &[u8]) -> Option<usize> {
    let first = *b.first()?;
    if !MQTT_FIRST[usize::from(first)] {
        return None;
    }
    match mqtt::parse_fixed_header(b) {
        Ok(Some(h)) => Some(h.total_len()),
        Ok(None) => Some(usize::MAX),
        Err(_) => None,
    }
}

/// An MQTT message that could start at `b[0]`, with O(1) checks.
fn mqtt_msg(b: &[u8]) -> Option<Msg> {
    let first = *b.first()?;
    if !MQTT_FIRST[usize::from(first)] {
        return None;
    }
    // Plausible for 3.1.1 implies plausible for 5.0, which only relaxes
    // lengths (reason codes, properties) and adds AUTH.
    let mqtt::Plausible::Yes(h) = mqtt::plausible_header(b, level::V5, MQTT_PROBE_MAX) else {
        // A header cut by the end: only its first byte can be judged.
        let cut = b.len() < 5 && matches!(mqtt::parse_fixed_header(b), Ok(None));
        return cut.then_some(Msg {
            len: usize::MAX,
            roles: mqtt_roles(first >> 4),
            strong: false,
        });
    };
    let body = b.get(usize::from(h.header_len)..).unwrap_or(&[]);
    let rl = h.remaining_length as usize;
    let id_nonzero = |body: &[u8]| body.get(..2).is_none_or(|id| id != [0, 0]);
    let ok = match h.packet_type {
        pt::CONNECT => !matches!(mqtt_start(b), Verdict::NoMatch),
        pt::PUBLISH => match body.get(..2) {
            None => true,
            Some(l) => {
                let topic_len = usize::from(u16::from_be_bytes([l[0], l[1]]));
                let id = if h.qos() > 0 { 2 } else { 0 };
                let visible = body.get(2..).unwrap_or(&[]);
                let topic = visible.get(..topic_len.min(32)).unwrap_or(visible);
                topic_len + 2 + id <= rl && topic_text(topic)
            }
        },
        pt::CONNACK => body.get(..2).is_none_or(|c| {
            // Acknowledge flags (session present) and a return code of
            // 3.1.1 (0–5) or a v5 reason code (0x80–0x9f).
            c[0] <= 1 && (c[1] <= 5 || (0x80..=0x9f).contains(&c[1]))
        }),
        pt::PUBACK
        | pt::PUBREC
        | pt::PUBREL
        | pt::PUBCOMP
        | pt::SUBSCRIBE
        | pt::SUBACK
        | pt::UNSUBSCRIBE
        | pt::UNSUBACK => id_nonzero(body),
        _ => true,
    };
    let len = h.total_len();
    ok.then_some(Msg {
        len,
        roles: mqtt_roles(h.packet_type),
        strong: false,
    })
}

/// Whether every whole message of the chain at `at` parses (as 3.1.1 or
/// as 5.0).
fn mqtt_parses(data: &[u8], mut at: usize) -> bool {
    let limits = mqtt::Limits {
        max_msg_len: MQTT_PROBE_MAX,
    };
    while let Some(rest) = data.get(at..).filter(|r| !r.is_empty()) {
        let whole = [level::V311, level::V5].iter().find_map(|&v| {
            match mqtt::parse(rest, v, &limits) {
                Ok(mqtt::Progress::Done { consumed, .. }) => Some(Some(consumed)),
                // The message cut by the end.
                Ok(mqtt::Progress::NeedMore { .. }) => Some(None),
                _ => None,
            }
        });
        match whole {
            Some(Some(n)) => at += n,
            Some(None) => return true,
            None => return false,
        }
    }
    true
}

/// MQTT in the middle of a stream.
pub fn mqtt_midstream(data: &[u8]) -> Option<Midstream> {
    starts(data, mqtt_len, mqtt_msg, |l| {
        l.whole() >= 3 || (l.exact() && l.whole() >= 2)
    })
    .into_iter()
    .find(|&(at, _)| mqtt_parses(data, at))
    .map(|(at, role)| Midstream { at, role })
}

/// Largest P-DATA-TF PDU a probe believes in (64 MiB; negotiated maximum
/// PDU lengths are far below).
const DICOM_MAX_PDATA: u32 = 1 << 26;
/// PDV items of one PDU checked by the probe.
const DICOM_PDV_CHECKS: usize = 4;

/// The total length a DICOM PDU header at `b[0]` declares.
fn dicom_len(b: &[u8]) -> Option<usize> {
    let t = *b.first()?;
    if !(1..=7).contains(&t) || b.get(1).is_some_and(|&r| r != 0) {
        return None;
    }
    Some(b.get(2..6).map_or(usize::MAX, |l| {
        6 + u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize
    }))
}

/// A DICOM PDU that could start at `b[0]`, with O(1) checks.
fn dicom_pdu(b: &[u8]) -> Option<Msg> {
    let t = *b.first()?;
    if !(1..=7).contains(&t) || b.get(1).is_some_and(|&r| r != 0) {
        return None;
    }
    let Some(l) = b.get(2..6) else {
        // A header cut by the end.
        return Some(Msg {
            len: usize::MAX,
            roles: 0,
            strong: false,
        });
    };
    let len = u32::from_be_bytes([l[0], l[1], l[2], l[3]]);
    let body = b.get(6..).unwrap_or(&[]);
    let total = 6 + len as usize;
    let cut = b.len() < total;
    let (ok, roles, strong) = match t {
        // A-ASSOCIATE-RQ / -AC: version bit, printable AE titles, and the
        // application context item first.
        1 | 2 => {
            let ok = (DICOM_MIN_LEN..=DICOM_MAX_ASSOC).contains(&len)
                && body.get(1).is_none_or(|v| v & 1 != 0)
                && body
                    .get(4..36.min(body.len()))
                    .unwrap_or(&[])
                    .iter()
                    .all(|&c| (0x20..=0x7e).contains(&c))
                && body.get(68).is_none_or(|&i| i == 0x10);
            (ok, if t == 1 { CLIENT } else { SERVER }, body.len() > 68)
        }
        // A-ASSOCIATE-RJ: result 1–2, source 1–3.
        3 => {
            let ok = len == 4
                && body.get(1).is_none_or(|r| (1..=2).contains(r))
                && body.get(2).is_none_or(|s| (1..=3).contains(s));
            (ok, SERVER, false)
        }
        4 => {
            let ok = (6..=DICOM_MAX_PDATA).contains(&len) && pdv_items(body, len);
            (ok, 0, body.len() >= 6)
        }
        // A-RELEASE-RQ / -RP: four reserved zero bytes.
        5 | 6 => (len == 4 && body.iter().take(4).all(|&z| z == 0), 0, false),
        // A-ABORT: source 0 or 2, reason 0–6.
        _ => {
            let ok = len == 4
                && body.get(2).is_none_or(|s| *s == 0 || *s == 2)
                && body.get(3).is_none_or(|r| *r <= 6);
            (ok, 0, false)
        }
    };
    ok.then_some(Msg {
        len: if cut { total.max(b.len() + 1) } else { total },
        roles,
        strong,
    })
}

/// Whether the PDV items at the start of a P-DATA-TF body of `len` bytes
/// are consistent, as far as they are visible.
fn pdv_items(body: &[u8], len: u32) -> bool {
    let end = len as usize;
    let mut pos = 0usize;
    for _ in 0..DICOM_PDV_CHECKS {
        if pos == end {
            return true;
        }
        let Some(h) = body.get(pos..pos + 6) else {
            return true;
        };
        let item = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if item < 2 || pos + 4 + item > end || h[4] & 1 == 0 || h[5] > 3 {
            return false;
        }
        pos += 4 + item;
    }
    true
}

/// DICOM in the middle of a stream.
pub fn dicom_midstream(data: &[u8]) -> Option<Midstream> {
    starts(data, dicom_len, dicom_pdu, |l| {
        l.whole() >= 1 || l.strong_tail()
    })
    .first()
    .map(|&(at, role)| Midstream { at, role })
}

/// Largest TLS record (TLSCiphertext, RFC 8446 §5.2: 2^14 + 256; TLS 1.2
/// allowed 2^14 + 2048).
const TLS_MAX_RECORD: usize = (1 << 14) + 2048;

/// The total length a TLS record header at `b[0]` declares.
fn tls_len(b: &[u8]) -> Option<usize> {
    let t = *b.first()?;
    if !(20..=24).contains(&t) || b.get(1).is_some_and(|&v| v != 3) {
        return None;
    }
    Some(b.get(3..5).map_or(usize::MAX, |l| {
        5 + usize::from(u16::from_be_bytes([l[0], l[1]]))
    }))
}

fn tls_record(b: &[u8]) -> Option<Msg> {
    let t = *b.first()?;
    if !(20..=24).contains(&t)
        || b.get(1).is_some_and(|&v| v != 3)
        || b.get(2).is_some_and(|&v| v > 4)
    {
        return None;
    }
    let Some(l) = b.get(3..5) else {
        return Some(Msg {
            len: usize::MAX,
            roles: 0,
            strong: false,
        });
    };
    let len = usize::from(u16::from_be_bytes([l[0], l[1]]));
    (1..=TLS_MAX_RECORD).contains(&len).then_some(Msg {
        len: 5 + len,
        roles: 0,
        strong: false,
    })
}

/// TLS records in the middle of a stream.
pub fn tls_midstream(data: &[u8]) -> Option<Midstream> {
    starts(data, tls_len, tls_record, |l| l.whole() >= 1)
        .first()
        .map(|&(at, _)| Midstream {
            at,
            role: Role::Either,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::StreamConsumer;

    // Hand-built: MQTT 3.1 CONNECT prefix — type 1, remaining length 38,
    // protocol name length 6, "MQIsdp", level 3.
    const CONNECT_31: &[u8] = b"\x10\x26\x00\x06MQIsdp\x03";

    #[test]
    fn mqtt_31_connect_matches_at_full_prefix_only() {
        assert_eq!(mqtt_start(CONNECT_31), Verdict::Match(Role::Client));
        for n in 0..CONNECT_31.len() {
            assert_eq!(
                mqtt_start(&CONNECT_31[..n]),
                Verdict::NeedMore,
                "prefix {n}"
            );
        }
    }

    #[test]
    fn mqtt_wrong_level_or_name_does_not_match() {
        assert_eq!(mqtt_start(b"\x10\x26\x00\x04MQTT\x09"), Verdict::NoMatch);
        assert_eq!(mqtt_start(b"\x10\x26\x00\x04MQTX\x04"), Verdict::NoMatch);
        // Remaining length with five continuation bytes is invalid.
        assert_eq!(mqtt_start(b"\x10\xff\xff\xff\xff\x01"), Verdict::NoMatch);
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
        assert_eq!(dicom_start(&rq), Verdict::Match(Role::Client));
        for n in 0..rq.len() {
            assert_eq!(dicom_start(&rq[..n]), Verdict::NeedMore, "prefix {n}");
        }
    }

    #[test]
    fn dicom_with_binary_ae_title_or_tiny_length_does_not_match() {
        let mut rq = associate_rq();
        rq[12] = 0x00;
        assert_eq!(dicom_start(&rq), Verdict::NoMatch);
        let mut rq = associate_rq();
        rq[5] = 0x10;
        assert_eq!(dicom_start(&rq), Verdict::NoMatch);
    }

    #[test]
    fn tls_hellos_say_who_sent_them() {
        // Hand-built: TLS record header (handshake, TLS 1.0 record version,
        // length 0x00c8) and handshake type 1 (ClientHello) or 2
        // (ServerHello).
        let hello = [0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00];
        assert_eq!(tls_start(&hello), Verdict::Match(Role::Client));
        let server = [0x16, 0x03, 0x03, 0x00, 0x5a, 0x02, 0x00];
        assert_eq!(tls_start(&server), Verdict::Match(Role::Server));
    }

    #[test]
    fn garbage_never_matches_a_start_probe() {
        for data in [&b"SSH-2.0-OpenSSH_9.2\r\n"[..], &[0u8; 64][..]] {
            assert_eq!(mqtt_start(data), Verdict::NoMatch);
            assert_eq!(dicom_start(data), Verdict::NoMatch);
            assert_eq!(tls_start(data), Verdict::NoMatch);
        }
    }

    // Hand-built MQTT 3.1.1 messages, as a broker and a client send them.
    const CONNACK: &[u8] = &[0x20, 0x02, 0x00, 0x00]; // CONNACK, accepted
    const PUBACK_7: &[u8] = &[0x40, 0x02, 0x00, 0x07]; // PUBACK, packet id 7
    const PINGRESP: &[u8] = &[0xd0, 0x00];
    const PINGREQ: &[u8] = &[0xc0, 0x00];

    /// Hand-built PUBLISH QoS 1: topic "ward/3", packet id 7, payload.
    fn publish(payload: &[u8]) -> Vec<u8> {
        let mut body = vec![0x00, 0x06];
        body.extend_from_slice(b"ward/3");
        body.extend_from_slice(&[0x00, 0x07]);
        body.extend_from_slice(payload);
        let mut v = vec![0x32, body.len() as u8];
        v.extend_from_slice(&body);
        v
    }

    #[test]
    fn mqtt_run_after_a_cut_message_is_found_with_its_sender() {
        // The tail of an earlier message, then CONNACK and PUBACK: the
        // broker's side of a session picked up after its start.
        let mut data = b"tail of a payload".to_vec();
        data.extend_from_slice(CONNACK);
        data.extend_from_slice(PUBACK_7);
        assert_eq!(
            mqtt_midstream(&data),
            Some(Midstream {
                at: 17,
                role: Role::Server
            })
        );
        // The client's side: two PUBLISHes and a PINGREQ.
        let mut data = publish(br#"{"hr":72}"#);
        data.extend_from_slice(&publish(br#"{"hr":73}"#));
        data.extend_from_slice(PINGREQ);
        assert_eq!(
            mqtt_midstream(&data),
            Some(Midstream {
                at: 0,
                role: Role::Client
            })
        );
    }

    #[test]
    fn mqtt_one_message_or_both_sides_in_one_direction_is_not_enough() {
        assert_eq!(mqtt_midstream(CONNACK), None);
        assert_eq!(mqtt_midstream(&publish(b"x")), None);
        let mut both = PINGREQ.to_vec();
        both.extend_from_slice(PINGRESP);
        assert_eq!(mqtt_midstream(&both), None);
    }

    #[test]
    fn mqtt_run_cut_by_the_end_needs_three_whole_messages() {
        let mut data = publish(b"a");
        data.extend_from_slice(&publish(b"b"));
        let third = publish(b"c");
        data.extend_from_slice(&third[..5]);
        assert_eq!(mqtt_midstream(&data), None);
        let mut data = publish(b"a");
        data.extend_from_slice(&publish(b"b"));
        data.extend_from_slice(&publish(b"c"));
        data.extend_from_slice(&third[..5]);
        assert_eq!(mqtt_midstream(&data).map(|m| m.at), Some(0));
    }

    #[test]
    fn text_is_never_mqtt_or_dicom_midstream() {
        let texts: [&[u8]; 3] = [
            b"GET /index.html HTTP/1.1\r\nHost: pacs.example\r\nAccept: */*\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{\"a\": 12345}",
            b"\x0bMSH|^~\\&|CMS8000|WARD3|CENTRAL|HOSP|20240101120000||ORU^R01|1|P|2.3\rPID|1||MRN-TEST-0001||TEST^JANE\r\x1c\x0d",
        ];
        for t in texts {
            for cut in 0..t.len() {
                assert_eq!(mqtt_midstream(&t[cut..]), None, "{cut}");
                assert_eq!(dicom_midstream(&t[cut..]), None, "{cut}");
                assert_eq!(tls_midstream(&t[cut..]), None, "{cut}");
            }
        }
    }

    /// Hand-built P-DATA-TF: one PDV of context 1, control `ctl`, `frag`.
    fn pdata(ctl: u8, frag: &[u8]) -> Vec<u8> {
        let mut v = vec![0x04, 0x00];
        v.extend_from_slice(&(frag.len() as u32 + 6).to_be_bytes()); // PDU length
        v.extend_from_slice(&(frag.len() as u32 + 2).to_be_bytes()); // PDV length
        v.push(1); // presentation context id
        v.push(ctl); // message control header
        v.extend_from_slice(frag);
        v
    }

    #[test]
    fn dicom_pdata_after_pixel_bytes_is_found() {
        let mut data = vec![0x5a; 300]; // the end of an earlier fragment
        data.extend_from_slice(&pdata(0x00, &[0x11; 1000]));
        assert_eq!(
            dicom_midstream(&data),
            Some(Midstream {
                at: 300,
                role: Role::Either
            })
        );
        // Cut inside its fragment: the headers alone are decisive.
        assert_eq!(dicom_midstream(&data[..400]).map(|m| m.at), Some(300));
        // A PDV with an even context id is not DICOM.
        let mut bad = pdata(0x00, &[0x11; 10]);
        bad[10] = 2;
        assert_eq!(dicom_midstream(&bad), None);
    }

    #[test]
    fn dicom_associate_ac_says_the_acceptor_sent_it() {
        let mut ac = associate_rq();
        ac[0] = 0x02;
        ac.resize(6 + 0xcd, 0);
        ac[6 + 68] = 0x10; // application context item
        assert_eq!(
            dicom_midstream(&ac),
            Some(Midstream {
                at: 0,
                role: Role::Server
            })
        );
    }

    #[test]
    fn tls_records_midstream_are_found() {
        // Hand-built: two application data records (type 23, TLS 1.2).
        let mut data = vec![0xab; 7];
        for len in [40u16, 33] {
            data.extend_from_slice(&[23, 3, 3]);
            data.extend_from_slice(&len.to_be_bytes());
            data.extend(std::iter::repeat_n(0xcd, usize::from(len)));
        }
        assert_eq!(tls_midstream(&data).map(|m| m.at), Some(7));
        assert_eq!(mqtt_midstream(&data), None);
    }

    #[test]
    fn mqtt_first_byte_table_agrees_with_the_parser() {
        for b in 0..=255u8 {
            // A PUBACK-sized message after each first byte.
            let msg = [b, 0x02, 0x00, 0x01];
            let yes = |m: &[u8]| {
                matches!(
                    mqtt::plausible_header(m, level::V5, 16),
                    mqtt::Plausible::Yes(_)
                )
            };
            let parser =
                yes(&msg) || yes(&[b, 0x00]) || yes(&[b, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            assert_eq!(MQTT_FIRST[usize::from(b)], parser, "{b:#04x}");
        }
    }

    #[test]
    fn probe_cost_is_linear_on_adversarial_bytes() {
        // Every offset a plausible PUBLISH header (no timing: the chain
        // computation visits each offset once by construction; this checks
        // the probe terminates and finds nothing spurious).
        let data = vec![0x30u8; 1 << 16];
        assert_eq!(mqtt_midstream(&data), None);
        let data = vec![0x04u8; 1 << 16];
        assert_eq!(dicom_midstream(&data), None);
    }

    /// One direction of a flow as the worker delivers it: its bytes and
    /// where each delivery started.
    #[derive(Default, Clone)]
    struct Side {
        bytes: Vec<u8>,
        starts: Vec<usize>,
    }

    struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<[Side; 2]>>>, usize);

    impl StreamConsumer for Recorder {
        fn data(
            &mut self,
            _: &mut crate::app::StreamContext<'_>,
            dir: crate::flow::Direction,
            d: &[u8],
        ) {
            let mut all = self.0.lock().unwrap();
            let side = &mut all[self.1][dir.index()];
            side.starts.push(side.bytes.len());
            side.bytes.extend_from_slice(d);
        }
        fn gap(
            &mut self,
            _: &mut crate::app::StreamContext<'_>,
            _: crate::flow::Direction,
            _: u32,
        ) {
        }
        fn end(&mut self, _: &mut crate::app::StreamContext<'_>) {}
    }

    /// Both directions of every TCP flow of a real capture, whatever its
    /// protocol (the recorder stands in for every parser).
    fn sides(capture: &str) -> Vec<[Side; 2]> {
        use std::sync::{Arc, Mutex};
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("pcaps")
            .join(capture);
        let all: Arc<Mutex<Vec<[Side; 2]>>> = Arc::default();
        let shared = Arc::clone(&all);
        let mut w = crate::pipeline::worker::Worker::new(&crate::config::Config::default());
        w.set_consumer_factory(Arc::new(move |_, _| {
            let mut v = shared.lock().unwrap();
            v.push(Default::default());
            Some(Box::new(Recorder(Arc::clone(&shared), v.len() - 1)) as Box<dyn StreamConsumer>)
        }));
        let mut reader = crate::capture::Reader::open(&path).unwrap();
        while let Some(chunk) = reader.next_chunk(256).unwrap() {
            for p in &chunk.pkts {
                w.packet(p.ts, p.link, chunk.data(p), p.origlen);
            }
        }
        w.finish(crate::time::Timestamp(0), &mut |_| {});
        let v = all.lock().unwrap().clone();
        v
    }

    /// The bytes a session holds for the mid-stream probes at most.
    fn depth() -> usize {
        crate::app::AppConfig::default().midstream_depth.0 as usize
    }

    /// Views of a direction as a pickup or a gap would start it, as long as
    /// the session would hold: at every delivery, and at every byte of its
    /// first 128 bytes.
    fn cuts(side: &Side) -> Vec<&[u8]> {
        let n = side.bytes.len();
        let mut at: Vec<usize> = side.starts.clone();
        at.extend(0..n.min(128));
        at.sort_unstable();
        at.dedup();
        at.into_iter()
            .map(|k| &side.bytes[k..(k + depth()).min(n)])
            .collect()
    }

    #[test]
    fn midstream_probes_stay_quiet_on_tls_hl7_and_dicom_bulk_captures() {
        type Probe = fn(&[u8]) -> Option<Midstream>;
        let hl7 = crate::app::hl7::probe_midstream;
        let cases: [(&str, &[(&str, Probe)]); 7] = [
            (
                "mqtt_tls.pcap",
                &[
                    ("mqtt", mqtt_midstream),
                    ("dicom", dicom_midstream),
                    ("hl7", hl7),
                ],
            ),
            (
                "dicom_tls.pcap",
                &[
                    ("mqtt", mqtt_midstream),
                    ("dicom", dicom_midstream),
                    ("hl7", hl7),
                ],
            ),
            // Patient JSON and text payloads.
            ("mqtt_v311_anon_phi.pcap", &[("hl7", hl7)]),
            ("mqtt_large_split.pcap", &[("hl7", hl7)]),
            (
                "cms8000_exfil.pcap",
                &[
                    ("mqtt", mqtt_midstream),
                    ("dicom", dicom_midstream),
                    ("tls", tls_midstream),
                ],
            ),
            (
                "dicom_store_large.pcap",
                &[
                    ("mqtt", mqtt_midstream),
                    ("tls", tls_midstream),
                    ("hl7", hl7),
                ],
            ),
            (
                "dicom_store_phi.pcap",
                &[
                    ("mqtt", mqtt_midstream),
                    ("tls", tls_midstream),
                    ("hl7", hl7),
                ],
            ),
        ];
        for (capture, probes) in cases {
            let flows = sides(capture);
            assert!(!flows.is_empty(), "{capture}");
            let mut views = 0;
            for side in flows.iter().flatten() {
                // Bulk transfers: every 4th cut is plenty (and keeps the
                // test short without optimisations).
                let step = if side.starts.len() > 200 { 4 } else { 1 };
                for view in cuts(side).into_iter().step_by(step) {
                    views += 1;
                    for (name, probe) in probes {
                        assert_eq!(
                            probe(view),
                            None,
                            "{capture}: {name} in {:02x?}",
                            &view[..view.len().min(32)]
                        );
                    }
                }
            }
            assert!(views > 100, "{capture}: {views} views");
        }
    }

    #[test]
    fn midstream_probes_find_their_protocol_at_a_message_boundary() {
        // Recall on real captures cut at every delivery (measured: DICOM
        // bulk 100 %; mqtt_large_split 43 %, as half of its cuts fall
        // inside a 198 KB PUBLISH whose payload holds no message boundary
        // within the depth; TLS 100 %; HL7 73 %). The floors guard against
        // regressions.
        for (capture, probe, floor) in [
            (
                "dicom_store_large.pcap",
                dicom_midstream as fn(&[u8]) -> Option<Midstream>,
                0.95,
            ),
            ("mqtt_large_split.pcap", mqtt_midstream, 0.4),
            ("mqtt_tls.pcap", tls_midstream, 0.95),
            // 16 of 22: the cuts that miss fall inside the 9.4 kB ORU's one
            // base64 OBX segment, with no segment start after them.
            ("hl7_mllp.pcap", crate::app::hl7::probe_midstream, 0.7),
        ] {
            let (mut found, mut total) = (0usize, 0usize);
            for side in sides(capture).iter().flatten() {
                for &k in &side.starts {
                    let view = &side.bytes[k..(k + depth()).min(side.bytes.len())];
                    if view.len() < 64 {
                        continue;
                    }
                    total += 1;
                    found += usize::from(probe(view).is_some());
                }
            }
            assert!(total > 0, "{capture}");
            let rate = found as f64 / total as f64;
            eprintln!("{capture}: found at {found} of {total} cuts");
            assert!(rate >= floor, "{capture}: {found}/{total}");
        }
    }
}
