//! EVE record serialisation. See the module doc of [`crate::output`] for
//! every field.

use std::net::IpAddr;

use serde::Serialize;
use serde_json::{Map, Value};

use super::json;
use crate::decode::{ip_proto, tcp_flags};
use crate::time::Timestamp;

/// Plain facts about an ended flow, gathered by the worker.
#[derive(Debug, Clone)]
pub struct FlowFacts<'a> {
    /// The fields the flow shares with its app-layer events.
    pub header: EventHeader<'a>,
    pub pkts: [u64; 2],
    pub bytes: [u64; 2],
    pub start: Timestamp,
    pub end: Timestamp,
    pub state: &'a str,
    pub reason: &'a str,
    pub alerted: bool,
    /// TCP only: flags per direction, connection state, gap per direction.
    pub tcp: Option<TcpFacts<'a>>,
}

#[derive(Debug, Clone, Copy)]
pub struct TcpFacts<'a> {
    pub flags: [u8; 2],
    pub state: &'a str,
    pub gap: [bool; 2],
}

/// Suricata's name of an IP protocol (borrowed for the named ones: no
/// allocation per record).
pub fn proto_name(p: u8) -> std::borrow::Cow<'static, str> {
    match p {
        ip_proto::TCP => "TCP".into(),
        ip_proto::UDP => "UDP".into(),
        ip_proto::ICMP => "ICMP".into(),
        ip_proto::ICMPV6 => "IPv6-ICMP".into(),
        ip_proto::GRE => "GRE".into(),
        132 => "SCTP".into(),
        n => n.to_string().into(),
    }
}

/// An address as EVE writes it: dotted quad, or IPv6 with all eight groups
/// of four hex digits.
pub fn ip_string(ip: IpAddr) -> String {
    let mut v = Vec::with_capacity(39);
    push_ip(&mut v, ip);
    // Digits, dots and colons only.
    String::from_utf8(v).unwrap_or_default()
}

/// Appends [`ip_string`]'s form of `ip` (digits by hand: this runs several
/// times per record, and `core::fmt` costs several times more), built on
/// the stack and copied once (a `push` per character checked the
/// capacity each time).
/// Opens a `flow` object with what a flow record and an alert's `flow`
/// both hold: `{"pkts_toserver":…,"bytes_toclient":…,"start":"…` (the
/// start's closing quote is the caller's).
pub(crate) fn push_flow_counts(
    out: &mut Vec<u8>,
    pkts: [u64; 2],
    bytes: [u64; 2],
    start: Timestamp,
) {
    out.extend_from_slice(b"{\"pkts_toserver\":");
    json::write_u64(out, pkts[0]);
    out.extend_from_slice(b",\"pkts_toclient\":");
    json::write_u64(out, pkts[1]);
    out.extend_from_slice(b",\"bytes_toserver\":");
    json::write_u64(out, bytes[0]);
    out.extend_from_slice(b",\"bytes_toclient\":");
    json::write_u64(out, bytes[1]);
    out.extend_from_slice(b",\"start\":\"");
    start.push_eve(out);
}

pub fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    // An IPv6 address in this form is 39 characters, the longest.
    let mut buf = [0u8; 39];
    let mut n = 0;
    let mut put = |b: u8| {
        if let Some(slot) = buf.get_mut(n) {
            *slot = b;
            n += 1;
        }
    };
    match ip {
        IpAddr::V4(v4) => {
            // Each octet's digits and a dot, four bytes copied at once
            // from a table (the bytes past the dot are overwritten by the
            // next octet's); the last dot is not kept.
            let mut quad = [0u8; 16];
            let mut end = 0;
            for o in v4.octets() {
                let (text, len) = DOTTED[usize::from(o)];
                if let Some(dst) = quad.get_mut(end..end + 4) {
                    dst.copy_from_slice(&text);
                    end += usize::from(len);
                }
            }
            // All 16 bytes copied (a copy of a constant length is a
            // store, not a call to `memcpy`), then the last dot and what
            // follows it cut off.
            let at = out.len();
            out.extend_from_slice(&quad);
            out.truncate(at + end.saturating_sub(1));
            return;
        }
        IpAddr::V6(v6) => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            for (i, seg) in v6.segments().into_iter().enumerate() {
                if i > 0 {
                    put(b':');
                }
                for shift in [12u16, 8, 4, 0] {
                    put(HEX[usize::from((seg >> shift) & 0xf)]);
                }
            }
        }
    }
    out.extend_from_slice(buf.get(..n).unwrap_or_default());
}

/// Every octet as decimal digits and a dot, padded to four bytes, with
/// the number of bytes that count (digits and dot).
const DOTTED: [([u8; 4], u8); 256] = {
    let mut t = [([0u8; 4], 0u8); 256];
    let mut i = 0;
    while i < 256 {
        let o = i as u8;
        t[i] = if o >= 100 {
            (
                [b'0' + o / 100, b'0' + (o / 10) % 10, b'0' + o % 10, b'.'],
                4,
            )
        } else if o >= 10 {
            ([b'0' + o / 10, b'0' + o % 10, b'.', 0], 3)
        } else {
            ([b'0' + o, b'.', 0, 0], 2)
        };
        i += 1;
    }
    t
};

fn ts_string(t: Timestamp) -> String {
    let mut s = String::with_capacity(32);
    t.write_eve(&mut s);
    s
}

/// Two lowercase hex digits.
fn push_hex2(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(HEX[usize::from(b >> 4)]);
    out.push(HEX[usize::from(b & 0xf)]);
}

/// Appends one `flow` record and a newline to `out`, written by hand in
/// the order and form the `Serialize` structs it replaced had (a test
/// keeps a copy of them and compares): `timestamp` (the start),
/// `flow_id`, `event_type`, `vlan` when tagged, addresses, ports for
/// TCP, UDP and SCTP, `proto`, `app_proto` when known, `flow{…}`,
/// `community_id`, and for TCP `tcp{…}` with only the flags seen.
pub fn write_flow(out: &mut Vec<u8>, f: &FlowFacts<'_>) {
    let h = &f.header;
    let has_ports = matches!(h.proto, ip_proto::TCP | ip_proto::UDP | 132);
    out.extend_from_slice(b"{\"timestamp\":\"");
    f.start.push_eve(out);
    out.extend_from_slice(b"\",\"flow_id\":");
    json::write_u64(out, h.flow_id);
    out.extend_from_slice(b",\"event_type\":\"flow\"");
    if !h.vlan.is_empty() {
        out.extend_from_slice(b",\"vlan\":");
        for (i, v) in h.vlan.iter().enumerate() {
            out.push(if i == 0 { b'[' } else { b',' });
            json::write_u64(out, u64::from(*v));
        }
        out.push(b']');
    }
    // Addresses, numbers and protocol names need no escaping.
    out.extend_from_slice(b",\"src_ip\":\"");
    push_ip(out, h.src_ip);
    out.push(b'"');
    if has_ports {
        out.extend_from_slice(b",\"src_port\":");
        json::write_u64(out, u64::from(h.src_port));
    }
    out.extend_from_slice(b",\"dest_ip\":\"");
    push_ip(out, h.dest_ip);
    out.push(b'"');
    if has_ports {
        out.extend_from_slice(b",\"dest_port\":");
        json::write_u64(out, u64::from(h.dest_port));
    }
    out.extend_from_slice(b",\"proto\":\"");
    out.extend_from_slice(proto_name(h.proto).as_bytes());
    out.push(b'"');
    if let Some(a) = h.app_proto {
        out.extend_from_slice(b",\"app_proto\":");
        json::write_str(out, a);
    }
    out.extend_from_slice(b",\"flow\":");
    push_flow_counts(out, f.pkts, f.bytes, f.start);
    out.extend_from_slice(b"\",\"end\":\"");
    f.end.push_eve(out);
    out.extend_from_slice(b"\",\"age\":");
    json::write_u64(out, f.end.since(f.start) / 1_000_000_000);
    out.extend_from_slice(b",\"state\":");
    json::write_str(out, f.state);
    out.extend_from_slice(b",\"reason\":");
    json::write_str(out, f.reason);
    out.extend_from_slice(if f.alerted {
        b",\"alerted\":true}".as_slice()
    } else {
        b",\"alerted\":false}".as_slice()
    });
    out.extend_from_slice(b",\"community_id\":");
    json::write_str(out, h.community_id);
    if let Some(t) = f.tcp {
        let all = t.flags[0] | t.flags[1];
        out.extend_from_slice(b",\"tcp\":{\"tcp_flags\":\"");
        push_hex2(out, all);
        out.extend_from_slice(b"\",\"tcp_flags_ts\":\"");
        push_hex2(out, t.flags[0]);
        out.extend_from_slice(b"\",\"tcp_flags_tc\":\"");
        push_hex2(out, t.flags[1]);
        out.push(b'"');
        for (bit, name) in [
            (tcp_flags::SYN, b",\"syn\":true".as_slice()),
            (tcp_flags::FIN, b",\"fin\":true"),
            (tcp_flags::RST, b",\"rst\":true"),
            (tcp_flags::PSH, b",\"psh\":true"),
            (tcp_flags::ACK, b",\"ack\":true"),
            (tcp_flags::URG, b",\"urg\":true"),
            (tcp_flags::ECE, b",\"ecn\":true"),
            (tcp_flags::CWR, b",\"cwr\":true"),
        ] {
            if all & bit != 0 {
                out.extend_from_slice(name);
            }
        }
        out.extend_from_slice(b",\"state\":");
        json::write_str(out, t.state);
        if t.gap[0] {
            out.extend_from_slice(b",\"ts_gap\":true");
        }
        if t.gap[1] {
            out.extend_from_slice(b",\"tc_gap\":true");
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"}\n");
}

/// The fields every event of a flow shares (its `flow` record and its
/// app-layer events), oriented from client to server.
#[derive(Debug, Clone)]
pub struct EventHeader<'a> {
    pub flow_id: u64,
    pub vlan: &'a [u16],
    pub src_ip: IpAddr,
    pub src_port: u16,
    pub dest_ip: IpAddr,
    pub dest_port: u16,
    pub proto: u8,
    pub app_proto: Option<&'a str>,
    pub community_id: &'a str,
}

/// An [`EventHeader`] as one event is written with it: from the client's
/// side, or from the server's when `to_client` (addresses and ports
/// swapped: a record or an alert the server's side started). Its fields
/// are written straight into the event, with no buffer of their own: an
/// app-layer event costs no allocation for its header (an event was
/// about one per header made once per batch, so serialising a header
/// once saved nothing and cost a `Vec` per event).
#[derive(Debug, Clone, Copy)]
pub struct Oriented<'a> {
    pub header: &'a EventHeader<'a>,
    pub to_client: bool,
}

impl<'a> Oriented<'a> {
    /// `header` as it is (client to server).
    pub fn client(header: &'a EventHeader<'a>) -> Oriented<'a> {
        Oriented {
            header,
            to_client: false,
        }
    }

    /// `header` seen from the side that sent a `to_client` packet or record
    /// when `to_client`, else as it is.
    pub fn new(header: &'a EventHeader<'a>, to_client: bool) -> Oriented<'a> {
        Oriented { header, to_client }
    }

    /// `,"vlan":…,"src_ip":…,…,"app_proto":…`: what follows the event type.
    fn write_middle(&self, b: &mut Vec<u8>) {
        let h = self.header;
        if !h.vlan.is_empty() {
            b.extend_from_slice(b",\"vlan\":");
            for (i, v) in h.vlan.iter().enumerate() {
                b.push(if i == 0 { b'[' } else { b',' });
                json::write_u64(b, u64::from(*v));
            }
            b.push(b']');
        }
        let ((src_ip, src_port), (dest_ip, dest_port)) = if self.to_client {
            ((h.dest_ip, h.dest_port), (h.src_ip, h.src_port))
        } else {
            ((h.src_ip, h.src_port), (h.dest_ip, h.dest_port))
        };
        // Addresses, numbers and protocol names need no JSON escaping.
        b.extend_from_slice(b",\"src_ip\":\"");
        push_ip(b, src_ip);
        b.extend_from_slice(b"\",\"src_port\":");
        json::write_u64(b, u64::from(src_port));
        b.extend_from_slice(b",\"dest_ip\":\"");
        push_ip(b, dest_ip);
        b.extend_from_slice(b"\",\"dest_port\":");
        json::write_u64(b, u64::from(dest_port));
        b.extend_from_slice(b",\"proto\":\"");
        b.extend_from_slice(proto_name(h.proto).as_bytes());
        b.push(b'"');
        if let Some(a) = h.app_proto {
            b.extend_from_slice(b",\"app_proto\":\"");
            b.extend_from_slice(a.as_bytes());
            b.push(b'"');
        }
    }

    /// `,"community_id":…}`: what ends the event.
    fn write_tail(&self, b: &mut Vec<u8>) {
        b.extend_from_slice(b",\"community_id\":");
        json::write_str(b, self.header.community_id);
        b.push(b'}');
    }
}

/// Appends one app-layer event (`mqtt`, `dicom`, `anomaly`…): `timestamp`
/// of the packet that completed it, the flow's header fields, and `body`
/// under the key `event_type` (which needs no escaping: it is one of ours).
pub fn write_event<B: Serialize>(
    out: &mut Vec<u8>,
    p: Oriented<'_>,
    ts: Timestamp,
    event_type: &str,
    body: &B,
) {
    write_event_with(out, p, ts, event_type, body, &[]);
}

/// [`write_event`] with more top-level fields after the event's own object
/// (an alert's `direction`, `flow`, the triggering record, `phi`, `geo`).
pub fn write_event_with(
    out: &mut Vec<u8>,
    p: Oriented<'_>,
    ts: Timestamp,
    event_type: &str,
    body: &dyn erased::Field,
    extra: &[(&str, &dyn erased::Field)],
) {
    let start = out.len();
    out.extend_from_slice(b"{\"timestamp\":\"");
    ts.push_eve(out);
    out.extend_from_slice(b"\",\"flow_id\":");
    json::write_u64(out, p.header.flow_id);
    out.extend_from_slice(b",\"event_type\":\"");
    out.extend_from_slice(event_type.as_bytes());
    out.push(b'"');
    p.write_middle(out);
    out.extend_from_slice(b",\"");
    out.extend_from_slice(event_type.as_bytes());
    out.extend_from_slice(b"\":");
    if body.write_json(out).is_err() {
        out.truncate(start);
        return;
    }
    for (key, value) in extra {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        if value.write_json(out).is_err() {
            out.truncate(start);
            return;
        }
    }
    p.write_tail(out);
    out.push(b'\n');
}

/// Serialisable values of different types in one list.
pub mod erased {
    /// A value that writes itself as JSON.
    pub trait Field {
        /// # Errors
        /// Serialisation failed (the caller drops the record).
        fn write_json(&self, out: &mut Vec<u8>) -> Result<(), super::json::Error>;
    }

    impl<T: serde::Serialize> Field for T {
        fn write_json(&self, out: &mut Vec<u8>) -> Result<(), super::json::Error> {
            super::json::write(out, self)
        }
    }

    /// JSON written by a function: an object assembled by hand, straight
    /// into the record.
    pub struct Written<F: Fn(&mut Vec<u8>)>(pub F);

    impl<F: Fn(&mut Vec<u8>)> Field for Written<F> {
        fn write_json(&self, out: &mut Vec<u8>) -> Result<(), super::json::Error> {
            (self.0)(out);
            Ok(())
        }
    }

    impl Field for super::json::Raw<'_> {
        fn write_json(&self, out: &mut Vec<u8>) -> Result<(), super::json::Error> {
            out.extend_from_slice(self.0);
            Ok(())
        }
    }
}

/// Appends the `stats` record built from dotted counter paths.
pub fn write_stats(out: &mut Vec<u8>, ts: Timestamp, uptime_secs: u64, counters: &[(String, u64)]) {
    let mut stats = Map::new();
    stats.insert("uptime".into(), Value::from(uptime_secs));
    for (path, v) in counters {
        insert_path(&mut stats, path, *v);
    }
    let mut rec = Map::new();
    rec.insert("timestamp".into(), Value::from(ts_string(ts)));
    rec.insert("event_type".into(), Value::from("stats"));
    rec.insert("stats".into(), Value::Object(stats));
    let start = out.len();
    if serde_json::to_writer(&mut *out, &Value::Object(rec)).is_ok() {
        out.push(b'\n');
    } else {
        out.truncate(start);
    }
}

/// Sets `a.b.c = v` in a nested map, adding to a value already there.
fn insert_path(map: &mut Map<String, Value>, path: &str, v: u64) {
    let mut cur = map;
    let mut parts = path.split('.').peekable();
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            let old = cur.get(p).and_then(Value::as_u64).unwrap_or(0);
            cur.insert(p.to_string(), Value::from(old.saturating_add(v)));
            return;
        }
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        match entry.as_object_mut() {
            Some(m) => cur = m,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_is_dotted_decimal_for_every_octet() {
        for o in 0..=255u8 {
            for ip in [
                std::net::Ipv4Addr::new(o, 0, 9, 255),
                std::net::Ipv4Addr::new(10, o, 100, 1),
                std::net::Ipv4Addr::new(255, 99, o, 10),
                std::net::Ipv4Addr::new(1, 200, 0, o),
                std::net::Ipv4Addr::new(o, o, o, o),
            ] {
                assert_eq!(ip_string(IpAddr::V4(ip)), ip.to_string());
            }
        }
    }

    #[test]
    fn ipv6_is_fully_expanded() {
        assert_eq!(
            ip_string("fd00:20::15".parse().unwrap()),
            "fd00:0020:0000:0000:0000:0000:0000:0015"
        );
        assert_eq!(ip_string("10.20.1.15".parse().unwrap()), "10.20.1.15");
    }

    /// What `write_flow` wrote before it was written by hand.
    mod reference {
        use super::super::*;

        fn ts_string(t: Timestamp) -> String {
            let mut s = String::with_capacity(32);
            t.write_eve(&mut s);
            s
        }

        fn is_false(b: &bool) -> bool {
            !*b
        }

        #[derive(Serialize)]
        struct FlowRecord<'a> {
            timestamp: String,
            flow_id: u64,
            event_type: &'static str,
            #[serde(skip_serializing_if = "<[u16]>::is_empty")]
            vlan: &'a [u16],
            src_ip: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            src_port: Option<u16>,
            dest_ip: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            dest_port: Option<u16>,
            proto: std::borrow::Cow<'static, str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            app_proto: Option<&'a str>,
            flow: FlowObject<'a>,
            community_id: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            tcp: Option<TcpObject<'a>>,
        }

        #[derive(Serialize)]
        struct FlowObject<'a> {
            pkts_toserver: u64,
            pkts_toclient: u64,
            bytes_toserver: u64,
            bytes_toclient: u64,
            start: String,
            end: String,
            age: u64,
            state: &'a str,
            reason: &'a str,
            alerted: bool,
        }

        #[derive(Serialize)]
        struct TcpObject<'a> {
            tcp_flags: String,
            tcp_flags_ts: String,
            tcp_flags_tc: String,
            #[serde(skip_serializing_if = "is_false")]
            syn: bool,
            #[serde(skip_serializing_if = "is_false")]
            fin: bool,
            #[serde(skip_serializing_if = "is_false")]
            rst: bool,
            #[serde(skip_serializing_if = "is_false")]
            psh: bool,
            #[serde(skip_serializing_if = "is_false")]
            ack: bool,
            #[serde(skip_serializing_if = "is_false")]
            urg: bool,
            #[serde(skip_serializing_if = "is_false")]
            ecn: bool,
            #[serde(skip_serializing_if = "is_false")]
            cwr: bool,
            state: &'a str,
            #[serde(skip_serializing_if = "is_false")]
            ts_gap: bool,
            #[serde(skip_serializing_if = "is_false")]
            tc_gap: bool,
        }

        /// The `Serialize` structs `write_flow` replaced, as the reference.
        fn serde_flow(out: &mut Vec<u8>, f: &FlowFacts<'_>) {
            let h = &f.header;
            let has_ports = matches!(h.proto, ip_proto::TCP | ip_proto::UDP | 132);
            let tcp = f.tcp.map(|t| {
                let all = t.flags[0] | t.flags[1];
                TcpObject {
                    tcp_flags: format!("{all:02x}"),
                    tcp_flags_ts: format!("{:02x}", t.flags[0]),
                    tcp_flags_tc: format!("{:02x}", t.flags[1]),
                    syn: all & tcp_flags::SYN != 0,
                    fin: all & tcp_flags::FIN != 0,
                    rst: all & tcp_flags::RST != 0,
                    psh: all & tcp_flags::PSH != 0,
                    ack: all & tcp_flags::ACK != 0,
                    urg: all & tcp_flags::URG != 0,
                    ecn: all & tcp_flags::ECE != 0,
                    cwr: all & tcp_flags::CWR != 0,
                    state: t.state,
                    ts_gap: t.gap[0],
                    tc_gap: t.gap[1],
                }
            });
            let rec = FlowRecord {
                timestamp: ts_string(f.start),
                flow_id: h.flow_id,
                event_type: "flow",
                vlan: h.vlan,
                src_ip: ip_string(h.src_ip),
                src_port: has_ports.then_some(h.src_port),
                dest_ip: ip_string(h.dest_ip),
                dest_port: has_ports.then_some(h.dest_port),
                proto: proto_name(h.proto),
                app_proto: h.app_proto,
                flow: FlowObject {
                    pkts_toserver: f.pkts[0],
                    pkts_toclient: f.pkts[1],
                    bytes_toserver: f.bytes[0],
                    bytes_toclient: f.bytes[1],
                    start: ts_string(f.start),
                    end: ts_string(f.end),
                    age: f.end.since(f.start) / 1_000_000_000,
                    state: f.state,
                    reason: f.reason,
                    alerted: f.alerted,
                },
                community_id: h.community_id,
                tcp,
            };
            // Serialising plain structs of strings and integers into a Vec cannot
            // fail; should it ever, the record is dropped rather than half-written.
            let start = out.len();
            if crate::output::json::write(out, &rec).is_ok() {
                out.push(b'\n');
            } else {
                out.truncate(start);
            }
        }

        pub fn flow(out: &mut Vec<u8>, f: &FlowFacts<'_>) {
            serde_flow(out, f);
        }

        /// The header as it was serialised once per batch before events
        /// wrote it straight from its fields: `flow_id`, then what follows
        /// the event type from `.1` on, then the tail from `.2` on.
        fn prefix(h: &EventHeader<'_>) -> (Vec<u8>, usize, usize) {
            let mut b = Vec::with_capacity(192);
            json::write_u64(&mut b, h.flow_id);
            let middle_at = b.len();
            if !h.vlan.is_empty() {
                b.extend_from_slice(b",\"vlan\":");
                for (i, v) in h.vlan.iter().enumerate() {
                    b.push(if i == 0 { b'[' } else { b',' });
                    json::write_u64(&mut b, u64::from(*v));
                }
                b.push(b']');
            }
            b.extend_from_slice(b",\"src_ip\":\"");
            push_ip(&mut b, h.src_ip);
            b.extend_from_slice(b"\",\"src_port\":");
            json::write_u64(&mut b, u64::from(h.src_port));
            b.extend_from_slice(b",\"dest_ip\":\"");
            push_ip(&mut b, h.dest_ip);
            b.extend_from_slice(b"\",\"dest_port\":");
            json::write_u64(&mut b, u64::from(h.dest_port));
            b.extend_from_slice(b",\"proto\":\"");
            b.extend_from_slice(proto_name(h.proto).as_bytes());
            b.push(b'"');
            if let Some(a) = h.app_proto {
                b.extend_from_slice(b",\"app_proto\":\"");
                b.extend_from_slice(a.as_bytes());
                b.push(b'"');
            }
            let tail_at = b.len();
            b.extend_from_slice(b",\"community_id\":");
            json::write_str(&mut b, h.community_id);
            b.push(b'}');
            (b, middle_at, tail_at)
        }

        /// An event as it was written with that prefix (the header
        /// cloned and swapped for the server's side).
        pub fn event(
            out: &mut Vec<u8>,
            h: &EventHeader<'_>,
            to_client: bool,
            ts: Timestamp,
            event_type: &str,
            body: &[u8],
            extra: &[(&str, &[u8])],
        ) {
            let mut r = h.clone();
            if to_client {
                std::mem::swap(&mut r.src_ip, &mut r.dest_ip);
                std::mem::swap(&mut r.src_port, &mut r.dest_port);
            }
            let (p, middle_at, tail_at) = prefix(&r);
            out.extend_from_slice(b"{\"timestamp\":\"");
            ts.push_eve(out);
            out.extend_from_slice(b"\",\"flow_id\":");
            out.extend_from_slice(&p[..middle_at]);
            out.extend_from_slice(b",\"event_type\":\"");
            out.extend_from_slice(event_type.as_bytes());
            out.push(b'"');
            out.extend_from_slice(&p[middle_at..tail_at]);
            out.extend_from_slice(b",\"");
            out.extend_from_slice(event_type.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(body);
            for (key, value) in extra {
                out.extend_from_slice(b",\"");
                out.extend_from_slice(key.as_bytes());
                out.extend_from_slice(b"\":");
                out.extend_from_slice(value);
            }
            out.extend_from_slice(&p[tail_at..]);
            out.push(b'\n');
        }
    }

    proptest::proptest! {
        #[test]
        fn flow_records_by_hand_equal_the_serialised_structs(
            vlan in proptest::collection::vec(proptest::prelude::any::<u16>(), 0..3),
            v6 in proptest::prelude::any::<bool>(),
            addr in proptest::prelude::any::<u128>(),
            ports in proptest::prelude::any::<(u16, u16)>(),
            proto in proptest::sample::select(vec![6u8, 17, 1, 58, 47, 132, 50]),
            app in proptest::option::of("[a-z\"\\\\\u{1}é]{0,6}"),
            counts in proptest::prelude::any::<[u64; 4]>(),
            times in proptest::prelude::any::<(u64, u64)>(),
            state in "[a-z_\"]{0,8}",
            alerted in proptest::prelude::any::<bool>(),
            tcp in proptest::option::of(proptest::prelude::any::<([u8; 2], [bool; 2])>()),
        ) {
            let ip = |x: u128| -> IpAddr {
                if v6 {
                    IpAddr::from(x.to_be_bytes())
                } else {
                    IpAddr::from((x as u32).to_be_bytes())
                }
            };
            let (start, end) = (times.0.min(times.1), times.0.max(times.1));
            let f = FlowFacts {
                header: EventHeader {
                    flow_id: counts[0] >> 13,
                    vlan: &vlan,
                    src_ip: ip(addr),
                    src_port: ports.0,
                    dest_ip: ip(addr.rotate_left(17)),
                    dest_port: ports.1,
                    proto,
                    app_proto: app.as_deref(),
                    community_id: &state,
                },
                pkts: [counts[0], counts[1]],
                bytes: [counts[2], counts[3]],
                start: Timestamp(start),
                end: Timestamp(end),
                state: &state,
                reason: "timeout",
                alerted,
                tcp: tcp.map(|(flags, gap)| TcpFacts {
                    flags,
                    state: "established",
                    gap,
                }),
            };
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            write_flow(&mut ours, &f);
            reference::flow(&mut theirs, &f);
            proptest::prop_assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(theirs).unwrap());
        }
    }

    proptest::proptest! {
        #[test]
        fn app_events_with_the_header_written_in_place_equal_the_serialised_prefix(
            vlan in proptest::collection::vec(proptest::prelude::any::<u16>(), 0..3),
            v6 in proptest::prelude::any::<bool>(),
            addr in proptest::prelude::any::<u128>(),
            ports in proptest::prelude::any::<(u16, u16)>(),
            proto in proptest::sample::select(vec![6u8, 17, 1, 58, 47, 132, 50]),
            app in proptest::option::of("[a-z\"\\\\\u{1}é]{0,6}"),
            community in "[0-9A-Za-z+/=:\"\\\\\u{1}é]{0,32}",
            flow_id in proptest::prelude::any::<u64>(),
            ts in proptest::prelude::any::<u64>(),
            to_client in proptest::prelude::any::<bool>(),
            extras in 0usize..3,
        ) {
            let ip = |x: u128| -> IpAddr {
                if v6 {
                    IpAddr::from(x.to_be_bytes())
                } else {
                    IpAddr::from((x as u32).to_be_bytes())
                }
            };
            let h = EventHeader {
                flow_id,
                vlan: &vlan,
                src_ip: ip(addr),
                src_port: ports.0,
                dest_ip: ip(addr.rotate_left(17)),
                dest_port: ports.1,
                proto,
                app_proto: app.as_deref(),
                community_id: &community,
            };
            let all: [(&str, &[u8]); 2] = [("direction", b"\"to_client\""), ("flow", b"{\"a\":1}")];
            let extra = &all[..extras.min(2)];
            let fields: Vec<(&str, json::Raw<'_>)> = extra.iter().map(|(k, v)| (*k, json::Raw(v))).collect();
            let dyn_fields: Vec<(&str, &dyn erased::Field)> =
                fields.iter().map(|(k, v)| (*k, v as &dyn erased::Field)).collect();
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            let body = br#"{"x":[1,"y"]}"#;
            write_event_with(
                &mut ours,
                Oriented::new(&h, to_client),
                Timestamp(ts),
                "mqtt",
                &json::Raw(body),
                &dyn_fields,
            );
            reference::event(&mut theirs, &h, to_client, Timestamp(ts), "mqtt", body, extra);
            proptest::prop_assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(theirs).unwrap());
        }
    }

    #[test]
    fn flow_record_has_suricata_shape() {
        let mut out = Vec::new();
        write_flow(
            &mut out,
            &FlowFacts {
                header: EventHeader {
                    flow_id: 42,
                    vlan: &[120],
                    src_ip: "10.20.1.15".parse().unwrap(),
                    src_port: 50000,
                    dest_ip: "10.10.5.10".parse().unwrap(),
                    dest_port: 1883,
                    proto: ip_proto::TCP,
                    app_proto: Some("mqtt"),
                    community_id: "1:x",
                },
                pkts: [5, 4],
                bytes: [400, 300],
                start: Timestamp::from_parts(1_585_173_935, 383_888_000),
                end: Timestamp::from_parts(1_585_173_937, 0),
                state: "closed",
                reason: "timeout",
                alerted: false,
                tcp: Some(TcpFacts {
                    flags: [0x1b, 0x1a],
                    state: "closed",
                    gap: [false, true],
                }),
            },
        );
        let line = String::from_utf8(out).unwrap();
        assert!(line.ends_with('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["timestamp"], "2020-03-25T22:05:35.383888+0000");
        assert_eq!(v["vlan"], serde_json::json!([120]));
        assert_eq!(v["proto"], "TCP");
        assert_eq!(v["flow"]["age"], 1);
        assert_eq!(v["tcp"]["tcp_flags"], "1b");
        assert_eq!(v["tcp"]["tcp_flags_tc"], "1a");
        assert_eq!(v["tcp"]["syn"], true);
        assert!(v["tcp"].get("rst").is_none());
        assert_eq!(v["tcp"]["tc_gap"], true);
        assert!(v["tcp"].get("ts_gap").is_none());
    }

    #[test]
    fn app_event_carries_the_flow_header_and_its_body() {
        let mut out = Vec::new();
        let h = EventHeader {
            flow_id: 7,
            vlan: &[],
            src_ip: "10.20.1.15".parse().unwrap(),
            src_port: 40000,
            dest_ip: "10.10.5.10".parse().unwrap(),
            dest_port: 1883,
            proto: ip_proto::TCP,
            app_proto: Some("mqtt"),
            community_id: "1:x",
        };
        let with_vlan = EventHeader {
            vlan: &[120, 7],
            community_id: "1:\"quoted\"",
            ..h.clone()
        };
        let mut o = Vec::new();
        write_event(
            &mut o,
            Oriented::client(&with_vlan),
            Timestamp(0),
            "mqtt",
            &Value::Null,
        );
        let w: Value = serde_json::from_slice(&o).unwrap();
        assert_eq!(w["vlan"], serde_json::json!([120, 7]));
        assert_eq!(w["community_id"], "1:\"quoted\"");
        let body = serde_json::json!({"connect": {"client_id": "bed12"}});
        let p = Oriented::client(&h);
        write_event(&mut out, p, Timestamp(0), "mqtt", &body);
        write_event(
            &mut out,
            p,
            Timestamp(1_000),
            "anomaly",
            &serde_json::json!({"event": "x"}),
        );
        let lines: Vec<Value> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        let v = &lines[0];
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00.000000+0000");
        assert_eq!(v["flow_id"], 7);
        assert_eq!(v["event_type"], "mqtt");
        assert_eq!(v["mqtt"]["connect"]["client_id"], "bed12");
        assert_eq!(v["src_ip"], "10.20.1.15");
        assert_eq!(v["dest_port"], 1883);
        assert_eq!(v["proto"], "TCP");
        assert_eq!(v["app_proto"], "mqtt");
        assert_eq!(v["community_id"], "1:x");
        assert!(v.get("vlan").is_none());
        assert_eq!(lines[1]["event_type"], "anomaly");
        assert_eq!(lines[1]["anomaly"]["event"], "x");
        assert_eq!(lines[1]["timestamp"], "1970-01-01T00:00:00.000001+0000");
        assert!(out.ends_with(b"}\n"));
    }

    #[test]
    fn stats_paths_nest_and_add() {
        let mut out = Vec::new();
        let c = vec![
            ("decoder.pkts".to_string(), 3),
            ("decoder.event.ipv4.trunc_pkt".to_string(), 1),
            ("decoder.pkts".to_string(), 2),
        ];
        write_stats(&mut out, Timestamp(0), 7, &c);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["event_type"], "stats");
        assert_eq!(v["stats"]["decoder"]["pkts"], 5);
        assert_eq!(v["stats"]["decoder"]["event"]["ipv4"]["trunc_pkt"], 1);
        assert_eq!(v["stats"]["uptime"], 7);
    }
}
