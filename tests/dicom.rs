//! DICOM decoding against an independent decoder, end to end.
//!
//! - Facts: every association item, DIMSE command (with ids, SOP class,
//!   status) and kept data set attribute that wardwatch logs (run with
//!   `unmask_sensitive`) equals what tshark decodes of the same capture,
//!   frozen in `tests/expected/dicom/<capture>.tshark.txt` by
//!   `tests/tools/dicom_tshark.py`; when tshark is installed the frozen file
//!   is checked against a live run.
//! - Golden EVE: the `dicom` and `anomaly` records of each capture as
//!   logged by default (PHI masked, with the test key
//!   `tests/data/mask.key` so that masks are the same in every run),
//!   timestamps and flow ids masked, in
//!   `tests/expected/dicom/<capture>.eve.jsonl`. Regenerate with
//!   `WW_REGEN_DICOM=1 cargo test --test dicom` and review the diff by hand.
//!   Every patient attribute tshark decodes is in its golden file as the
//!   mask of tshark's value.
//! - Memory: the 2 MiB C-STORE of `dicom_store_large.pcap` decodes with the
//!   parser holding a bounded number of bytes, whatever the split.
//! - Lossy and one-way captures: every capture is cut as a sensor would
//!   miss it — client→server only, server→client only, the first
//!   to-server segment lost, picked up at the first P-DATA-TF — and what
//!   the stream stage hands the parser is emulated from the packets (ACKs
//!   past unseen bytes are gaps, as the shared decision has it). The facts
//!   logged equal tshark's decode of the same packets (frozen in
//!   `tests/expected/dicom/variants/`, checked live when tshark is there;
//!   `WW_REGEN_DICOM=1` rewrites them), except data set attributes tshark
//!   cannot decode without the A-ASSOCIATE-AC, which must be those of the
//!   whole capture; one-way copies keep every fact of the direction seen.
//!   In CI, tshark is required.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/parser_input.rs"]
mod parser_input;

use std::process::Command;

use common::*;
use serde_json::Value;
use wardwatch::app::dicom::{dataset, DicomConfig, Parser};
use wardwatch::app::{AppRecord, StreamConsumer, StreamContext};
use wardwatch::flow::Direction;
use wardwatch::output::mask::{key_from_file, LogOptions};

const PORTS: [&str; 3] = ["104", "11112", "4242"];

/// Captures with DICOM (or DICOM's TLS, which must yield nothing).
fn dicom_captures() -> Vec<std::path::PathBuf> {
    captures()
        .into_iter()
        .filter(|c| {
            let n = c.file_name().unwrap().to_str().unwrap();
            n.starts_with("dicom_") || n == "demo.pcap"
        })
        .collect()
}

fn name(c: &std::path::Path) -> String {
    c.file_name().unwrap().to_str().unwrap().to_string()
}

/// The test mask key's options (`tests/data/mask.key`, the key of
/// [`run_eve`]).
fn test_masking() -> LogOptions {
    LogOptions::masked(key_from_file(&repo().join("tests/data/mask.key")).unwrap())
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

fn uid(v: &Value) -> String {
    s(&v["uid"])
}

fn user_info(side: &str, u: &Value, f: &mut Vec<String>) {
    if let Some(n) = u["max_pdu_length"].as_u64() {
        f.push(format!("{side}_max_pdu {n}"));
    }
    if u["implementation_class_uid"].is_string() {
        f.push(format!(
            "{side}_impl_uid {}",
            s(&u["implementation_class_uid"])
        ));
    }
    if u["implementation_version_name"].is_string() {
        f.push(format!(
            "{side}_impl_version {}",
            s(&u["implementation_version_name"])
        ));
    }
    let id = &u["user_identity"];
    if id.is_object() {
        let mut line = format!(
            "{side}_user_identity {} {} {}",
            id["type"],
            u8::from(id["positive_response_requested"] == true),
            s(&id["primary_field"])
        );
        if id["secondary_field"].is_string() {
            line += &format!(" {}", s(&id["secondary_field"]));
        }
        f.push(line);
    }
    if u["user_identity_server_response"].is_string() {
        f.push(format!(
            "{side}_user_identity_response {}",
            s(&u["user_identity_server_response"])
        ));
    }
}

fn command(m: &Value, f: &mut Vec<String>) {
    let mut line = format!("cmd {}", s(&m["command_field"]));
    if let Some(n) = m["message_id"].as_u64() {
        line += &format!(" id={n}");
    }
    if let Some(n) = m["message_id_responded_to"].as_u64() {
        line += &format!(" responded_to={n}");
    }
    let sop = if m["affected_sop_class"].is_object() {
        uid(&m["affected_sop_class"])
    } else {
        uid(&m["requested_sop_class"])
    };
    if !sop.is_empty() {
        line += &format!(" sop={sop}");
    }
    if let Some(n) = m["status"].as_u64() {
        line += &format!(" status=0x{n:04x}");
    }
    f.push(line);
    let attrs = &m["data_set"]["attributes"];
    if let Some(o) = attrs.as_object() {
        for (k, v) in o {
            let (tag, _, _) = dataset::KEPT.iter().find(|e| e.1 == k).unwrap();
            f.push(format!(
                "attr {:04X},{:04X} {}",
                tag >> 16,
                tag & 0xffff,
                s(v)
            ));
        }
    }
}

/// The facts of `tests/tools/dicom_tshark.py`, from EVE records.
fn facts_from_eve(records: &[Value]) -> Vec<String> {
    let mut f = Vec::new();
    for r in records.iter().filter(|r| r["event_type"] == "dicom") {
        let d = &r["dicom"];
        if d["type"] == "association" {
            let a = &d["association"];
            let aes = format!("{} {}", s(&a["calling_ae_title"]), s(&a["called_ae_title"]));
            let pcs = a["presentation_contexts"].as_array().unwrap();
            if a["request"].is_object() {
                f.push(format!("rq {aes}"));
                f.push(format!("rq_app_context {}", uid(&a["application_context"])));
                for p in pcs.iter().filter(|p| p["abstract_syntax"].is_object()) {
                    let ts: Vec<String> = p["transfer_syntaxes"]
                        .as_array()
                        .map(|v| v.iter().map(uid).collect())
                        .unwrap_or_default();
                    f.push(format!(
                        "rq_pctx {} {} {}",
                        p["id"],
                        uid(&p["abstract_syntax"]),
                        ts.join(",")
                    ));
                }
                user_info("rq", &a["request"], &mut f);
            }
            if a["response"].is_object() {
                f.push(format!("ac {aes}"));
                for p in pcs.iter().filter(|p| p["result"].is_u64()) {
                    f.push(format!(
                        "ac_pctx {} {} {}",
                        p["id"],
                        p["result"],
                        uid(&p["accepted_transfer_syntax"])
                    ));
                }
                user_info("ac", &a["response"], &mut f);
            }
            if a["reject"].is_object() {
                let rj = &a["reject"];
                f.push(format!(
                    "rj {} {} {}",
                    rj["result"], rj["source"], rj["reason"]
                ));
            }
            if a["abort"].is_object() {
                f.push(format!(
                    "abort {} {}",
                    a["abort"]["source"], a["abort"]["reason"]
                ));
            }
            if a["release_requested"] == true {
                f.push("release_rq".into());
            }
            if a["outcome"] == "released" {
                f.push("release_rp".into());
            }
        } else {
            let x = &d["dimse"];
            for m in [&x["request"], &x["response"]] {
                if m.is_object() {
                    command(m, &mut f);
                }
            }
            for m in x["pending"].as_array().into_iter().flatten() {
                command(m, &mut f);
            }
        }
    }
    f.sort();
    f
}

/// Keeps tshark's facts that wardwatch is meant to log: attributes of the
/// kept list only.
fn comparable(tshark: &str) -> Vec<String> {
    let mut v: Vec<String> = tshark
        .lines()
        .filter(|l| {
            let Some(rest) = l.strip_prefix("attr ") else {
                return true;
            };
            let g = u32::from_str_radix(&rest[0..4], 16).unwrap();
            let e = u32::from_str_radix(&rest[5..9], 16).unwrap();
            dataset::kept((g << 16) | e).is_some()
        })
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn frozen_facts(c: &std::path::Path) -> String {
    let p = repo()
        .join("tests/expected/dicom")
        .join(format!("{}.tshark.txt", name(c)));
    std::fs::read_to_string(&p).unwrap_or_else(|_| panic!("{} missing", p.display()))
}

#[test]
fn logged_facts_equal_tshark_on_every_dicom_capture() {
    let caps = dicom_captures();
    assert!(caps.len() >= 9, "{caps:?}");
    for c in caps {
        let ours = facts_from_eve(&run_eve(&c, true));
        let theirs = comparable(&frozen_facts(&c));
        if ours != theirs {
            let only_ours: Vec<_> = ours.iter().filter(|l| !theirs.contains(l)).collect();
            let only_theirs: Vec<_> = theirs.iter().filter(|l| !ours.contains(l)).collect();
            panic!(
                "{}: wardwatch and tshark differ\nonly wardwatch: {only_ours:#?}\nonly tshark: {only_theirs:#?}",
                name(&c)
            );
        }
        if name(&c) != "dicom_tls.pcap" {
            assert!(!ours.is_empty(), "{}: no DICOM decoded", name(&c));
        }
    }
}

#[test]
fn frozen_facts_equal_live_tshark() {
    let tool = repo().join("tests/tools/dicom_tshark.py");
    if !common::have("tshark") {
        common::skip("tshark is not installed; the frozen facts are used as they are");
        return;
    }
    for c in dicom_captures() {
        let out = Command::new("python3")
            .arg(&tool)
            .arg(&c)
            .args(PORTS)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            frozen_facts(&c),
            "{}: tshark now decodes differently: rerun tests/tools/dicom_tshark.py",
            name(&c)
        );
    }
}

#[test]
fn golden_eve_records_per_capture() {
    let regen = std::env::var_os("WW_REGEN_DICOM").is_some();
    for c in dicom_captures() {
        let got = golden_lines(&run_eve(&c, false), "dicom");
        let p = repo()
            .join("tests/expected/dicom")
            .join(format!("{}.eve.jsonl", name(&c)));
        if regen {
            std::fs::write(&p, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&p)
            .unwrap_or_else(|_| panic!("{} missing: WW_REGEN_DICOM=1", p.display()));
        assert_eq!(
            got,
            want,
            "{}: EVE changed (WW_REGEN_DICOM=1 to accept)",
            name(&c)
        );
        // Each patient attribute tshark decodes is logged as its value's
        // mask under the test key (and never in clear).
        let o = test_masking();
        for fact in frozen_facts(&c).lines() {
            let Some((tag, value)) = fact.strip_prefix("attr ").and_then(|f| f.split_once(' '))
            else {
                continue;
            };
            let (g, e) = tag.split_once(',').unwrap();
            let tag = u32::from_str_radix(&format!("{g}{e}"), 16).unwrap();
            let Some((_, field, true)) = dataset::kept(tag) else {
                continue;
            };
            let masked = format!("\"{field}\":\"{}\"", o.mask(value.as_bytes()));
            assert!(
                value.is_empty() || want.contains(&masked),
                "{}: {field} {value:?} not logged as {masked}",
                name(&c)
            );
            assert!(value.len() < 4 || !want.contains(value), "{value} in clear");
        }
    }
}

#[test]
fn default_output_masks_phi_and_passcodes() {
    let all: String = [
        "dicom_store_phi.pcap",
        "dicom_find.pcap",
        "dicom_userid.pcap",
    ]
    .iter()
    .flat_map(|n| run_eve(&repo().join("pcaps").join(n), false))
    .map(|r| r.to_string())
    .collect();
    for secret in [
        "TEST^JANE",
        "DOE^JOHN",
        "MRN-TEST-0001",
        "19000101",
        "200017511299931",
        "Radiology123!",
        "eyJhbGciOiJub25l",
    ] {
        assert!(!all.contains(secret), "{secret} logged in clear by default");
    }
    let o = test_masking();
    for (field, value) in [
        ("patient_name", "TEST^JANE"),
        ("patient_id", "MRN-TEST-0001"),
        ("secondary_field", "Radiology123!"),
    ] {
        let want = format!("\"{field}\":\"{}\"", o.mask(value.as_bytes()));
        assert!(all.contains(&want), "{want} not logged");
    }
    // Usernames are logged, as for MQTT.
    assert!(all.contains("\"primary_field\":\"radiology\""));
}

/// Feeds what the worker hands the DICOM parser for each flow of a capture
/// (one call per in-order segment) to a fresh parser per flow, each call cut
/// in pieces of `chunk` bytes; returns the records and the most bytes any
/// parser held after a call: over the whole run, and once the association
/// is set up (after the first `assoc_bytes` bytes sent to the server).
fn feed(capture: &std::path::Path, port: u16, chunk: usize) -> (Vec<AppRecord>, [usize; 2]) {
    let cfg = DicomConfig::default();
    let mut records = Vec::new();
    let mut max = [0, 0];
    let flows = parser_input::parser_input(capture, move |p, e| {
        p == wardwatch::app::AppProto::Dicom && e.server.port == port
    });
    for flow in &flows {
        let to_server = flow.stream(Direction::ToServer);
        // The A-ASSOCIATE-RQ: 6-byte header and its declared length.
        let assoc_bytes = 6 + u32::from_be_bytes(to_server[2..6].try_into().unwrap()) as usize;
        let mut sent = 0usize;
        let mut p = Parser::new(&cfg);
        for (dir, bytes) in flow.data() {
            for piece in bytes.chunks(chunk) {
                let mut ctx = StreamContext {
                    ts: Default::default(),
                    records: &mut records,
                };
                p.data(&mut ctx, dir, piece);
                if dir == Direction::ToServer {
                    sent += piece.len();
                }
                max[0] = max[0].max(p.buffered_bytes());
                if sent > assoc_bytes {
                    max[1] = max[1].max(p.buffered_bytes());
                }
            }
        }
        let mut ctx = StreamContext {
            ts: Default::default(),
            records: &mut records,
        };
        p.end(&mut ctx);
    }
    (records, max)
}

#[test]
fn large_c_store_decodes_with_bounded_memory_for_any_split() {
    let cap = repo().join("pcaps/dicom_store_large.pcap");
    let flows = parser_input::parser_input(&cap, |_, e| e.server.port == 104);
    let to_server = flows[0].stream(Direction::ToServer);
    assert!(to_server.len() > 2 << 20, "the capture holds a 2 MiB image");
    let (whole, _) = feed(&cap, 104, usize::MAX);
    let store = whole
        .iter()
        .find_map(|r| match r {
            AppRecord::Dicom(_) => {
                let v = r.log(&LogOptions::unmasked());
                (v["type"] == "dimse").then_some(v)
            }
            _ => None,
        })
        .unwrap();
    let rq = &store["dimse"]["request"]["data_set"];
    assert_eq!(rq["attributes"]["patient_name"], "TEST^JANE");
    assert_eq!(rq["pixel_data_skipped"], true);
    assert_eq!(store["dimse"]["response"]["status"], 0);
    for chunk in [1, 7, 1448, 16384] {
        let (recs, max) = feed(&cap, 104, chunk);
        assert_eq!(recs, whole, "chunk {chunk}");
        // The A-ASSOCIATE-RQ (128 presentation contexts, about 11 KiB,
        // gathered in a growing Vec) is the largest thing held;
        // the 2 MiB image never is: once associated, the parser holds at
        // most a cut header, a command set and one attribute value.
        assert!(max[0] < 32 * 1024, "chunk {chunk}: held {} bytes", max[0]);
        assert!(
            max[1] <= 2048,
            "chunk {chunk}: held {} bytes after association",
            max[1]
        );
        eprintln!(
            "chunk {chunk}: held at most {} bytes, {} after association",
            max[0], max[1]
        );
    }
}

#[test]
fn records_do_not_depend_on_the_split_on_any_capture() {
    for c in dicom_captures() {
        let n = name(&c);
        let port = match n.as_str() {
            "dicom_echo.pcap" | "dicom_internet_echo.pcap" => 11112,
            "dicom_nonstd_port.pcap" => 4242,
            "dicom_tls.pcap" | "demo.pcap" => continue,
            _ => 104,
        };
        let (whole, _) = feed(&c, port, usize::MAX);
        assert!(!whole.is_empty(), "{n}");
        for chunk in [1, 3, 100] {
            assert_eq!(feed(&c, port, chunk).0, whole, "{n} chunk {chunk}");
        }
    }
}

// ---------------------------------------------------------------------
// Captures as a sensor sees them when it misses packets: one direction
// only, the first to-server segment lost, picked up mid-association.
// ---------------------------------------------------------------------

/// Server ports of the DICOM captures.
const SERVER_PORTS: [u16; 3] = [104, 11112, 4242];

/// A packet of a capture, with its TCP facts when it is a TCP segment of a
/// DICOM flow.
#[derive(Clone)]
struct Packet {
    ts: wardwatch::time::Timestamp,
    frame: Vec<u8>,
    tcp: Option<Segment>,
}

/// Client address and port, server address and port.
type FlowEnds = (std::net::IpAddr, u16, std::net::IpAddr, u16);

#[derive(Clone)]
struct Segment {
    flow: FlowEnds,
    dir: Direction,
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    fin: bool,
    payload: Vec<u8>,
}

fn packets(capture: &std::path::Path) -> Vec<Packet> {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    let mut reader = wardwatch::capture::Reader::open(capture).unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = reader.next_chunk(256).unwrap() {
        for p in &chunk.pkts {
            assert_eq!(p.link.0, 1, "Ethernet captures only");
            let frame = chunk.data(p).to_vec();
            let tcp = SlicedPacket::from_ethernet(&frame).ok().and_then(|s| {
                let (src, dst) = match s.net? {
                    NetSlice::Ipv4(ip) => (
                        ip.header().source_addr().into(),
                        ip.header().destination_addr().into(),
                    ),
                    NetSlice::Ipv6(ip) => (
                        ip.header().source_addr().into(),
                        ip.header().destination_addr().into(),
                    ),
                    _ => return None,
                };
                let Some(TransportSlice::Tcp(t)) = s.transport else {
                    return None;
                };
                let (sp, dp) = (t.source_port(), t.destination_port());
                let (flow, dir) = if SERVER_PORTS.contains(&dp) {
                    ((src, sp, dst, dp), Direction::ToServer)
                } else if SERVER_PORTS.contains(&sp) {
                    ((dst, dp, src, sp), Direction::ToClient)
                } else {
                    return None;
                };
                Some(Segment {
                    flow,
                    dir,
                    seq: t.sequence_number(),
                    ack: t.ack().then(|| t.acknowledgment_number()),
                    syn: t.syn(),
                    fin: t.fin(),
                    payload: t.payload().to_vec(),
                })
            });
            out.push(Packet {
                ts: p.ts,
                frame,
                tcp,
            });
        }
    }
    out
}

/// Writes `pkts` as a classic pcap file (Ethernet, microseconds).
fn write_pcap(path: &std::path::Path, pkts: &[Packet]) {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes()); // magic
    b.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&[0; 8]); // thiszone, sigfigs
    b.extend_from_slice(&262_144u32.to_le_bytes()); // snaplen
    b.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for p in pkts {
        b.extend_from_slice(&(p.ts.secs() as u32).to_le_bytes());
        b.extend_from_slice(&p.ts.subsec_micros().to_le_bytes());
        b.extend_from_slice(&(p.frame.len() as u32).to_le_bytes()); // caplen
        b.extend_from_slice(&(p.frame.len() as u32).to_le_bytes()); // origlen
        b.extend_from_slice(&p.frame);
    }
    std::fs::write(path, b).unwrap();
}

/// One call the parser of a flow receives.
#[derive(Debug, Clone)]
enum Call {
    Data(Direction, Vec<u8>),
    Gap(Direction, u32),
}

/// What the stream stage hands the parser of each DICOM flow of `pkts`,
/// emulated as the shared decision for one-way captures has it: a
/// segment's ACK is processed before its payload, and an ACK that moves
/// past bytes of the other direction never seen is a gap of that
/// direction; a segment after a hole is delivered after a gap of the
/// hole's size; retransmitted bytes are delivered once. Flows in order of
/// their first packet.
fn stream_calls(pkts: &[Packet]) -> Vec<Vec<Call>> {
    // Per flow: endpoints, next sequence number per direction, calls.
    let mut flows: Vec<(FlowEnds, [Option<u32>; 2], Vec<Call>)> = Vec::new();
    for s in pkts.iter().filter_map(|p| p.tcp.as_ref()) {
        let i = match flows.iter().position(|f| f.0 == s.flow) {
            Some(i) => i,
            None => {
                flows.push((s.flow, [None, None], Vec::new()));
                flows.len() - 1
            }
        };
        let (_, next, calls) = &mut flows[i];
        let (d, p) = (s.dir.index(), s.dir.reverse().index());
        if let Some(a) = s.ack {
            match next[p] {
                None => next[p] = Some(a),
                Some(n) if (a.wrapping_sub(n) as i32) > 0 => {
                    calls.push(Call::Gap(s.dir.reverse(), a.wrapping_sub(n)));
                    next[p] = Some(a);
                }
                Some(_) => {}
            }
        }
        if s.syn {
            next[d] = Some(s.seq.wrapping_add(1));
            continue;
        }
        let n = *next[d].get_or_insert(s.seq);
        let off = s.seq.wrapping_sub(n) as i32;
        let mut payload = &s.payload[..];
        if off > 0 {
            calls.push(Call::Gap(s.dir, off as u32));
        } else {
            payload = payload.get(off.unsigned_abs() as usize..).unwrap_or(&[]);
        }
        let start = if off > 0 { s.seq } else { n };
        let mut end = start.wrapping_add(payload.len() as u32);
        if !payload.is_empty() {
            calls.push(Call::Data(s.dir, payload.to_vec()));
        }
        if s.fin {
            end = end.wrapping_add(1);
        }
        if off > 0 || !payload.is_empty() || s.fin {
            next[d] = Some(end);
        }
    }
    flows.into_iter().map(|f| f.2).collect()
}

/// The records a fresh parser per flow makes of `calls`, as EVE-shaped
/// values (`event_type` and the `dicom`/`anomaly` object, unmasked; the
/// flow's index in `flow`, an anomaly's direction in `direction`).
fn parse_calls(flows: &[Vec<Call>]) -> Vec<Value> {
    let mut out = Vec::new();
    for (flow, calls) in flows.iter().enumerate() {
        let mut p = Parser::new(&DicomConfig::default());
        let mut records = Vec::new();
        for c in calls {
            let mut ctx = StreamContext {
                ts: Default::default(),
                records: &mut records,
            };
            match c {
                Call::Data(d, b) => p.data(&mut ctx, *d, b),
                Call::Gap(d, n) => p.gap(&mut ctx, *d, *n),
            }
        }
        p.end(&mut StreamContext {
            ts: Default::default(),
            records: &mut records,
        });
        let opts = LogOptions::unmasked();
        for r in &records {
            let mut v = serde_json::json!({"event_type": r.event_type()});
            v[r.event_type()] = r.log(&opts);
            if let AppRecord::Anomaly(a) = r {
                v["direction"] = Value::from(format!("{:?}", a.dir));
            }
            v["flow"] = Value::from(flow);
            out.push(v);
        }
    }
    out
}

/// How a variant is made from a capture's packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// Client to server only.
    ToServerOnly,
    /// Server to client only.
    ToClientOnly,
    /// The first to-server segment with data of each flow removed.
    FirstToServerLost,
    /// Each flow starts at its first to-server P-DATA-TF PDU.
    PickedUp,
}

impl Variant {
    const ALL: [Variant; 4] = [
        Variant::ToServerOnly,
        Variant::ToClientOnly,
        Variant::FirstToServerLost,
        Variant::PickedUp,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::ToServerOnly => "toserver_only",
            Variant::ToClientOnly => "toclient_only",
            Variant::FirstToServerLost => "first_toserver_lost",
            Variant::PickedUp => "picked_up",
        }
    }

    fn apply(self, pkts: &[Packet]) -> Vec<Packet> {
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for p in pkts {
            let Some(s) = &p.tcp else {
                out.push(p.clone());
                continue;
            };
            let keep = match self {
                Variant::ToServerOnly => s.dir == Direction::ToServer,
                Variant::ToClientOnly => s.dir == Direction::ToClient,
                Variant::FirstToServerLost => {
                    let first = s.dir == Direction::ToServer
                        && !s.payload.is_empty()
                        && !seen.contains(&s.flow);
                    if first {
                        seen.push(s.flow);
                    }
                    !first
                }
                Variant::PickedUp => {
                    if !seen.contains(&s.flow)
                        && s.dir == Direction::ToServer
                        && s.payload.first() == Some(&4)
                    {
                        seen.push(s.flow);
                    }
                    seen.contains(&s.flow)
                }
            };
            if keep {
                out.push(p.clone());
            }
        }
        out
    }
}

/// Which direction a fact was sent in (the requester is the client in
/// every capture: it sends the A-ASSOCIATE-RQ and the A-RELEASE-RQ).
fn fact_dir(fact: &str, msg_dir: Option<&str>) -> &'static str {
    let to_server = match fact.split(' ').next().unwrap_or("") {
        f if f.starts_with("rq") || f == "release_rq" => true,
        f if f.starts_with("ac") || f == "rj" || f == "release_rp" => false,
        _ => msg_dir == Some("toserver"),
    };
    if to_server {
        "toserver"
    } else {
        "toclient"
    }
}

/// The facts of `records` sent in direction `dir` ("toserver",
/// "toclient"), sorted.
fn facts_in(records: &[Value], dir: &str) -> Vec<String> {
    let mut f = Vec::new();
    for r in records.iter().filter(|r| r["event_type"] == "dicom") {
        let d = &r["dicom"];
        if d["type"] == "association" {
            let a = &d["association"];
            let abort_dir = a["abort"]["direction"].as_str();
            for fact in facts_from_eve(std::slice::from_ref(r)) {
                if fact_dir(&fact, abort_dir) == dir {
                    f.push(fact);
                }
            }
            continue;
        }
        let x = &d["dimse"];
        let rq = x["request_direction"].as_str().unwrap_or("toserver");
        let rsp = if rq == "toserver" {
            "toclient"
        } else {
            "toserver"
        };
        let mut msgs = vec![(&x["request"], rq), (&x["response"], rsp)];
        msgs.extend(
            x["pending"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| (m, rsp)),
        );
        for (m, md) in msgs {
            if m.is_object() && md == dir {
                command(m, &mut f);
            }
        }
    }
    f.sort();
    f
}

fn is_attr(f: &str) -> bool {
    f.starts_with("attr ")
}

/// `a` ⊆ `b` as multisets (both sorted).
fn sub_multiset(a: &[String], b: &[String]) -> bool {
    let mut b = b.to_vec();
    a.iter().all(|x| match b.iter().position(|y| y == x) {
        Some(i) => {
            b.remove(i);
            true
        }
        None => false,
    })
}

/// tshark's facts of `pcap`, through `tests/tools/dicom_tshark.py`.
fn live_tshark_facts(pcap: &std::path::Path) -> String {
    let args = std::iter::once(pcap.as_os_str()).chain(PORTS.iter().map(std::ffi::OsStr::new));
    String::from_utf8(common::python_tool("dicom_tshark.py", args)).unwrap()
}

/// Captures the variants are made of: every DICOM capture but TLS.
fn variant_captures() -> Vec<std::path::PathBuf> {
    dicom_captures()
        .into_iter()
        .filter(|c| name(c) != "dicom_tls.pcap")
        .collect()
}

#[test]
fn emulated_stream_of_every_capture_gives_tshark_s_facts() {
    // The emulation of the stream stage used below, checked on the whole
    // captures: it must hand the parser what gives tshark's facts.
    for c in variant_captures() {
        let ours = facts_from_eve(&parse_calls(&stream_calls(&packets(&c))));
        assert_eq!(ours, comparable(&frozen_facts(&c)), "{}", name(&c));
    }
}

#[test]
fn variants_decode_what_tshark_decodes_of_the_same_bytes() {
    let regen = std::env::var_os("WW_REGEN_DICOM").is_some();
    let live = common::have("tshark");
    assert!(
        live || std::env::var_os("CI").is_none(),
        "tshark is required in CI"
    );
    let dir = tempfile::tempdir().unwrap();
    let frozen_dir = repo().join("tests/expected/dicom/variants");
    for c in variant_captures() {
        let all = packets(&c);
        let whole = parse_calls(&stream_calls(&all));
        let full_tshark = comparable(&frozen_facts(&c));
        let full_attrs: Vec<String> = full_tshark.iter().filter(|f| is_attr(f)).cloned().collect();
        for v in Variant::ALL {
            let label = format!("{} {}", name(&c), v.name());
            let pkts = v.apply(&all);
            let records = parse_calls(&stream_calls(&pkts));
            let ours = facts_from_eve(&records);
            // tshark's decode of the same bytes: frozen, and checked live
            // when tshark is there.
            let frozen = frozen_dir.join(format!("{}.{}.tshark.txt", name(&c), v.name()));
            if live {
                let pcap = dir.path().join(format!("{}.{}.pcap", name(&c), v.name()));
                write_pcap(&pcap, &pkts);
                let facts = live_tshark_facts(&pcap);
                if regen {
                    std::fs::create_dir_all(&frozen_dir).unwrap();
                    std::fs::write(&frozen, &facts).unwrap();
                }
                let want = std::fs::read_to_string(&frozen).unwrap_or_default();
                assert_eq!(
                    facts, want,
                    "{label}: tshark now decodes differently (WW_REGEN_DICOM=1)"
                );
            }
            let theirs = comparable(
                &std::fs::read_to_string(&frozen)
                    .unwrap_or_else(|_| panic!("{} missing", frozen.display())),
            );
            // Everything but data set attributes is what tshark decodes.
            let split = |f: &[String]| -> (Vec<String>, Vec<String>) {
                f.iter().cloned().partition(|x| !is_attr(x))
            };
            let (ours_rest, ours_attrs) = split(&ours);
            let (theirs_rest, theirs_attrs) = split(&theirs);
            assert_eq!(ours_rest, theirs_rest, "{label}");
            // Attributes: at least tshark's (which decodes a data set only
            // with the A-ASSOCIATE-AC), at most those of the whole capture.
            assert!(
                sub_multiset(&theirs_attrs, &ours_attrs),
                "{label}: {theirs_attrs:#?} {ours_attrs:#?}"
            );
            assert!(
                sub_multiset(&ours_attrs, &full_attrs),
                "{label}: {ours_attrs:#?}"
            );
            let anomalies: Vec<(String, String, u64)> = records
                .iter()
                .filter(|r| r["event_type"] == "anomaly")
                .map(|r| {
                    let f = r["flow"].as_u64().unwrap();
                    (s(&r["anomaly"]["event"]), s(&r["direction"]), f)
                })
                .collect();
            let dimse: Vec<&Value> = records
                .iter()
                .filter(|r| r["dicom"]["type"] == "dimse")
                .collect();
            match v {
                Variant::ToServerOnly => {
                    // Every request, with every attribute of its data set
                    // (the second association of dicom_store_phi included),
                    // and each exchange closed as its answer was lost.
                    assert_eq!(
                        facts_in(&records, "toserver"),
                        facts_in(&whole, "toserver"),
                        "{label}"
                    );
                    assert!(facts_in(&records, "toclient").is_empty(), "{label}");
                    assert!(
                        dimse.iter().all(|r| r["dicom"]["answer_lost"] == true),
                        "{label}"
                    );
                }
                Variant::ToClientOnly => {
                    // Every answer, C-FIND matches with their data sets.
                    assert_eq!(
                        facts_in(&records, "toclient"),
                        facts_in(&whole, "toclient"),
                        "{label}"
                    );
                    assert!(facts_in(&records, "toserver").is_empty(), "{label}");
                    assert!(dimse
                        .iter()
                        .all(|r| r["dicom"]["dimse"]["request"].is_null()));
                }
                Variant::FirstToServerLost => {
                    // The AC says every transfer syntax: all is decoded.
                    assert_eq!(ours, theirs, "{label}");
                }
                Variant::PickedUp => {
                    // Every data set decoded in an inferred syntax.
                    assert_eq!(
                        facts_in(&records, "toserver"),
                        {
                            let mut w = facts_in(&whole, "toserver");
                            w.retain(|f| !f.starts_with("rq"));
                            w
                        },
                        "{label}"
                    );
                }
            }
            // One gap anomaly per direction at most, for what a one-way or
            // lossy capture lost.
            for a in &anomalies {
                let same = anomalies
                    .iter()
                    .filter(|b| b.0 == "gap" && b.1 == a.1 && b.2 == a.2);
                assert!(same.count() <= 1, "{label}: {anomalies:?}");
            }
            if v != Variant::PickedUp {
                assert!(
                    anomalies.iter().all(|a| a.0 == "gap"),
                    "{label}: {anomalies:?}"
                );
            }
            eprintln!(
                "{label}: {} facts, {} attributes, anomalies {anomalies:?}",
                ours.len(),
                ours_attrs.len()
            );
        }
    }
}

#[test]
fn segments_lost_in_pixel_data_leave_the_c_store_whole() {
    // The 2 MiB C-STORE with one to-server segment in 64 lost (gaps of
    // their exact length): the losses fall in pixel data, which framing
    // counts, so the exchange is logged whole, as without losses.
    let cap = repo().join("pcaps/dicom_store_large.pcap");
    let flows = parser_input::parser_input(&cap, |_, e| e.server.port == 104);
    let mut calls = Vec::new();
    let mut n = 0;
    for (dir, data) in flows[0].data() {
        n += usize::from(dir == Direction::ToServer);
        if dir == Direction::ToServer && n > 16 && n % 64 == 0 {
            calls.push(Call::Gap(dir, data.len() as u32));
        } else {
            calls.push(Call::Data(dir, data.to_vec()));
        }
    }
    assert!(calls.iter().filter(|c| matches!(c, Call::Gap(..))).count() > 20);
    let lossy = parse_calls(&[calls]);
    let whole = parse_calls(&stream_calls(&packets(&cap)));
    let strip = |v: &[Value]| -> Vec<Value> {
        v.iter()
            .filter(|r| r["event_type"] == "dicom")
            .cloned()
            .collect()
    };
    assert_eq!(strip(&lossy), strip(&whole));
    let anomalies: Vec<&Value> = lossy
        .iter()
        .filter(|r| r["event_type"] == "anomaly")
        .collect();
    assert_eq!(anomalies.len(), 1, "{anomalies:?}");
    assert_eq!(anomalies[0]["anomaly"]["event"], "gap");
}
