//! Seeds: each target's starting inputs, derived from the real captures in
//! `pcaps/` (and the rule files) in the target's input layout. The
//! committed `fuzz/seeds/<target>/` folders are this module's output
//! (`fuzz/seed.sh` rewrites them); `tests/fuzz_regressions.rs` replays them
//! through the harnesses, so the properties hold on real traffic too. A
//! target without its own folder uses the folder of the name before its
//! first `_` (`pipeline_workers` reads `seeds/pipeline/`).
//!
//! What the app-layer seeds hold is what the worker hands a parser — the
//! capture read, decoded and reassembled by wardwatch itself, recorded
//! through the worker's parser factory — as `tests/common/parser_input.rs`
//! does for the parser tests.

use std::path::Path;
use std::sync::{Arc, Mutex};

use wardwatch::app::{AppProto, AppRecord, StreamConsumer, StreamContext};
use wardwatch::capture::{Buffer, LinkType, Reader};
use wardwatch::config::Config;
use wardwatch::decode::{tcp_flags, Decoded, Decoder, L4};
use wardwatch::flow::Direction;
use wardwatch::pipeline::worker::Worker;
use wardwatch::time::Timestamp;

use super::decode::{encode_frame, LINKS};
use super::input::encode_sizes;
use super::reassembly::{encode_ack, encode_segment};
use super::turns::{self, Call, Step};

/// Largest seed written, in bytes: small seeds keep executions fast and
/// the committed corpus small (libFuzzer's default `-max_len` follows the
/// largest seed; CI sets its own).
pub const MAX_SEED: usize = 4 * 1024;

/// App-layer flows taken per capture, and PHI payloads per flow: the
/// captures repeat the same conversations, and a few of each kind cover
/// the parsers' paths.
const FLOWS_PER_CAPTURE: usize = 3;
const PAYLOADS_PER_FLOW: usize = 2;

/// Captures whose conversations are copies of others' under another link
/// type or encapsulation: seeds for the capture, decode and pipeline
/// targets only.
fn link_variant(stem: &str) -> bool {
    ["link_", "encap_", "damaged_"]
        .iter()
        .any(|p| stem.starts_with(p))
}

/// One app-layer flow of a capture: its protocol and the calls its parser
/// received.
#[derive(Debug, Clone)]
pub struct Flow {
    pub proto: AppProto,
    pub steps: Vec<Step>,
}

type Shared = Arc<Mutex<Vec<Flow>>>;

struct Recorder {
    all: Shared,
    index: usize,
}

impl Recorder {
    fn push(&self, call: Call) {
        if let Some(f) = self.all.lock().expect("not poisoned").get_mut(self.index) {
            f.steps.push(Step { shed: false, call });
        }
    }
}

impl StreamConsumer for Recorder {
    fn data(&mut self, _: &mut StreamContext<'_>, dir: Direction, data: &[u8]) {
        self.push(Call::Data(dir, data.to_vec()));
    }
    fn gap(&mut self, _: &mut StreamContext<'_>, dir: Direction, len: u32) {
        self.push(Call::Gap(dir, len));
    }
    fn end(&mut self, _: &mut StreamContext<'_>) {}
}

/// Every app-layer flow of `capture` whose protocol was decided, with the
/// calls its parser received, in the order the flows were decided.
pub fn flows(capture: &[u8]) -> Vec<Flow> {
    let Ok(mut reader) = Reader::from_buffer(Buffer::Owned(capture.to_vec())) else {
        return Vec::new();
    };
    let mut w = Worker::new(&Config::default());
    let all: Shared = Arc::default();
    let shared = Arc::clone(&all);
    w.set_consumer_factory(Arc::new(move |proto, _| {
        let mut v = shared.lock().expect("not poisoned");
        v.push(Flow {
            proto,
            steps: Vec::new(),
        });
        Some(Box::new(Recorder {
            all: Arc::clone(&shared),
            index: v.len() - 1,
        }) as Box<dyn StreamConsumer>)
    }));
    while let Ok(Some(chunk)) = reader.next_chunk(256) {
        for p in &chunk.pkts {
            w.packet(p.ts, p.link, chunk.data(p), p.origlen);
        }
    }
    w.finish(Timestamp(0), &mut |_| {});
    let v = all.lock().expect("not poisoned").clone();
    v
}

/// A captured packet.
pub struct Packet {
    pub ts: Timestamp,
    pub link: LinkType,
    pub origlen: u32,
    pub data: Vec<u8>,
}

/// The packets of `capture` up to the first damage.
pub fn packets(capture: &[u8]) -> Vec<Packet> {
    let mut v = Vec::new();
    let Ok(mut reader) = Reader::from_buffer(Buffer::Owned(capture.to_vec())) else {
        return v;
    };
    while let Ok(Some(chunk)) = reader.next_chunk(256) {
        for p in &chunk.pkts {
            v.push(Packet {
                ts: p.ts,
                link: p.link,
                origlen: p.origlen,
                data: chunk.data(p).to_vec(),
            });
        }
    }
    v
}

/// `capture` cut after the last whole packet that ends within `max`
/// bytes (the file header alone when none does).
fn cut_capture(capture: &[u8], max: usize) -> Vec<u8> {
    let Ok(mut reader) = Reader::from_buffer(Buffer::Owned(capture.to_vec())) else {
        return capture[..capture.len().min(max)].to_vec();
    };
    let mut end = reader.position() as usize;
    while let Ok(Some(_)) = reader.next_chunk(1) {
        let pos = reader.position() as usize;
        if pos > max {
            break;
        }
        end = pos;
    }
    capture[..end].to_vec()
}

/// The decode-layout frames of `pkts` of one link type, up to `max` bytes.
fn frames(pkts: &[Packet], max: usize) -> Option<(u8, Vec<u8>)> {
    let link = pkts.first()?.link;
    let sel = LINKS.iter().position(|l| *l == link)?;
    let mut out = Vec::new();
    let mut last = pkts.first()?.ts;
    for p in pkts.iter().filter(|p| p.link == link) {
        let dt = p.ts.since(last) / 1_000_000_000;
        last = p.ts;
        let cut = p.origlen.saturating_sub(p.data.len() as u32);
        let mut f = Vec::new();
        encode_frame(&mut f, dt.min(255) as u8, cut.min(255) as u8, &p.data);
        if out.len() + f.len() > max {
            break;
        }
        out.extend_from_slice(&f);
    }
    Some((sel as u8, out))
}

/// Steps of a flow up to about `max` encoded bytes.
fn capped(steps: &[Step], max: usize) -> Vec<Step> {
    let mut out = Vec::new();
    let mut size = 0;
    for s in steps {
        let n = match &s.call {
            Call::Data(_, b) => b.len() + 3,
            Call::Gap(..) => 3,
        };
        if size + n > max {
            if let Call::Data(d, b) = &s.call {
                let room = max.saturating_sub(size + 3);
                if room > 0 {
                    out.push(Step {
                        shed: false,
                        call: Call::Data(*d, b[..room.min(b.len())].to_vec()),
                    });
                }
            }
            break;
        }
        size += n;
        out.push(s.clone());
    }
    out
}

/// Reassembly ops for the client side of the first TCP connection of
/// `pkts` whose SYN was captured: its segments (payloads cut to 255-byte
/// ops) and the server's acks, in capture order, within the 16-bit offsets
/// of the model mode.
fn tcp_ops(pkts: &[Packet], max: usize) -> Option<Vec<u8>> {
    let mut dec = Decoder::new(Default::default());
    let mut conn = None;
    let mut out = Vec::new();
    for p in pkts {
        let Decoded::Packet(pkt) = dec.decode(p.link, &p.data, p.origlen) else {
            continue;
        };
        let L4::Tcp(t) = pkt.l4 else { continue };
        let client = (pkt.ip.src, t.src_port, pkt.ip.dst, t.dst_port);
        let server = (pkt.ip.dst, t.dst_port, pkt.ip.src, t.src_port);
        let isn = match conn {
            None if t.flags & tcp_flags::SYN != 0 && t.flags & tcp_flags::ACK == 0 => {
                conn = Some((client, t.seq));
                out.extend_from_slice(&t.seq.to_le_bytes());
                continue;
            }
            None => continue,
            Some((c, isn)) if c == client || c == server => isn,
            Some(_) => continue,
        };
        let base = isn.wrapping_add(1);
        let mut op = Vec::new();
        if Some(client) == conn.map(|c| c.0) {
            let fin = t.flags & tcp_flags::FIN != 0;
            let off = t.seq.wrapping_sub(base);
            if t.payload.is_empty() && !fin {
                continue;
            }
            let chunks: Vec<&[u8]> = if t.payload.is_empty() {
                vec![&[][..]]
            } else {
                t.payload.chunks(255).collect()
            };
            let n = chunks.len();
            for (i, c) in chunks.into_iter().enumerate() {
                let o = off.wrapping_add((i * 255) as u32);
                if let Ok(o) = u16::try_from(o) {
                    encode_segment(&mut op, o, fin && i + 1 == n, c);
                }
            }
        } else if t.flags & tcp_flags::ACK != 0 {
            if let Ok(o) = u16::try_from(t.ack.wrapping_sub(base)) {
                encode_ack(&mut op, o);
            }
        }
        if out.len() + op.len() > max {
            break;
        }
        out.extend_from_slice(&op);
    }
    conn.map(|_| out)
}

/// The data sets carried by the P-DATA-TF PDUs of one direction of a
/// DICOM stream (PS3.8 §9.3.5: PDU type 4, length; items of length, context
/// id, control header whose bit 0 marks a command and bit 1 the last
/// fragment).
fn data_sets(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut sets = Vec::new();
    let mut cur = Vec::new();
    let mut at = 0;
    while let Some(h) = stream.get(at..at + 6) {
        let len = u32::from_be_bytes([h[2], h[3], h[4], h[5]]) as usize;
        let Some(body) = stream.get(at + 6..at + 6 + len) else {
            break;
        };
        if h[0] == 4 {
            let mut i = 0;
            while let Some(ih) = body.get(i..i + 6) {
                let ilen = u32::from_be_bytes([ih[0], ih[1], ih[2], ih[3]]) as usize;
                let Some(frag) = body.get(i + 6..(i + 4 + ilen).max(i + 6)) else {
                    break;
                };
                if ih[5] & 1 == 0 {
                    cur.extend_from_slice(frag);
                    if ih[5] & 2 != 0 {
                        sets.push(std::mem::take(&mut cur));
                    }
                }
                i += 4 + ilen.max(2);
            }
        }
        at += 6 + len;
    }
    sets
}

/// The bytes of one direction of a flow, gaps left out.
fn stream(steps: &[Step], dir: Direction) -> Vec<u8> {
    let mut v = Vec::new();
    for s in steps {
        if let Call::Data(d, b) = &s.call {
            if *d == dir {
                v.extend_from_slice(b);
            }
        }
    }
    v
}

/// A seed: target, file name, bytes.
pub type Seed = (&'static str, String, Vec<u8>);

fn turn_seed(prefix: &[u8], steps: &[Step]) -> Vec<u8> {
    let mut v = prefix.to_vec();
    turns::encode(
        &mut v,
        &capped(steps, MAX_SEED.saturating_sub(prefix.len())),
    );
    v
}

/// Every seed, from the captures (name, bytes) and rule files (name, text).
pub fn derive(captures: &[(String, Vec<u8>)], rule_files: &[(String, String)]) -> Vec<Seed> {
    let mut out: Vec<Seed> = Vec::new();
    for (name, cap) in captures {
        let stem = name.split('.').next().unwrap_or(name).to_string();
        // capture: the file cut at a packet boundary, read 7 and 3 packets
        // per chunk, streamed in reads of 5 and 61 bytes.
        let mut v = vec![7, 3];
        encode_sizes(&mut v, &[5, 61]);
        v.extend_from_slice(&cut_capture(cap, MAX_SEED / 2 - v.len()));
        out.push(("capture", stem.clone(), v));

        let pkts = packets(cap);
        if let Some((sel, body)) = frames(&pkts, MAX_SEED - 1) {
            let mut v = vec![sel];
            v.extend_from_slice(&body);
            out.push(("decode", stem.clone(), v.clone()));
            if stem.starts_with("frag") {
                v[0] |= 0x80;
                out.push(("decode", format!("{stem}-small"), v));
            }
            let mut p = vec![0, sel];
            p.extend_from_slice(&body);
            out.push(("pipeline", format!("{stem}-frames"), p));
        }
        if stem.starts_with("damaged_") {
            // The reader's damage paths, whole.
            let mut p = vec![1];
            p.extend_from_slice(&cap[..cap.len().min(2 * MAX_SEED)]);
            out.push(("pipeline", stem.clone(), p));
        }
        if link_variant(&stem) {
            continue;
        }
        if let Some(ops) = tcp_ops(&pkts, MAX_SEED - 1) {
            if ops.len() > 4 {
                let small = stem.starts_with("tcp_");
                for (cfg, suffix) in [(0u8, ""), (0x80 | 0x08, "-small")] {
                    if cfg != 0 && !small {
                        continue;
                    }
                    let mut v = vec![cfg];
                    v.extend_from_slice(&ops);
                    out.push(("reassembly", format!("{stem}{suffix}"), v));
                }
            }
        }

        for (i, f) in flows(cap).iter().take(FLOWS_PER_CAPTURE).enumerate() {
            let id = format!("{stem}-{i}");
            let (plain, split, sel_proto, ends) = match f.proto {
                AppProto::Mqtt => ("mqtt", "mqtt_split", 0u8, 0u8),
                AppProto::Dicom => ("dicom", "dicom_split", 1, 2),
                // Evaluated between a device and the CMS8000's address.
                AppProto::Hl7 => ("hl7", "hl7_split", 4, 1),
                // No rule keyword of the detect target reads TLS: the
                // parser's own targets only.
                AppProto::Tls => {
                    out.push(("tls", id.clone(), turn_seed(&[0], &f.steps)));
                    let mut prefix = vec![0];
                    encode_sizes(&mut prefix, &[3, 1, 7]);
                    out.push(("tls_split", id.clone(), turn_seed(&prefix, &f.steps)));
                    if i == 0 {
                        out.push((
                            "tls",
                            format!("{id}-small"),
                            turn_seed(&[0x80 | 0x03], &f.steps),
                        ));
                    }
                    continue;
                }
                AppProto::Failed => {
                    out.push(("detect", id.clone(), turn_seed(&[0, 1, 2, 0], &f.steps)));
                    let mut p = vec![8];
                    let s = stream(&f.steps, Direction::ToServer);
                    p.extend_from_slice(&s[..s.len().min(MAX_SEED)]);
                    out.push(("phi", id, p));
                    continue;
                }
                _ => continue,
            };
            out.push((plain, id.clone(), turn_seed(&[0], &f.steps)));
            let mut prefix = vec![0];
            encode_sizes(&mut prefix, &[3, 1, 7]);
            out.push((split, id.clone(), turn_seed(&prefix, &f.steps)));
            if i == 0 {
                out.push((
                    plain,
                    format!("{id}-small"),
                    turn_seed(&[0x80 | 0x23], &f.steps),
                ));
            }
            out.push((
                "detect",
                id.clone(),
                turn_seed(&[0, ends, sel_proto, 0], &f.steps),
            ));
            match f.proto {
                AppProto::Mqtt => {
                    let recs = super::turns::feed(
                        wardwatch::app::mqtt::new_parser(&Default::default())
                            .expect("an MQTT parser"),
                        &f.steps,
                        false,
                    );
                    let publishes = recs.iter().filter_map(|r| match r {
                        AppRecord::Mqtt(m) => Some(m),
                        _ => None,
                    });
                    let mut taken = 0;
                    for (j, m) in publishes.enumerate() {
                        if taken >= PAYLOADS_PER_FLOW {
                            break;
                        }
                        for msg in &m.messages {
                            if let wardwatch::app::mqtt::Body::Publish(p) = &msg.body {
                                if p.payload.len() > 8 && taken < PAYLOADS_PER_FLOW {
                                    taken += 1;
                                    let mut v = vec![8];
                                    v.extend_from_slice(
                                        &p.payload[..p.payload.len().min(MAX_SEED)],
                                    );
                                    out.push(("phi", format!("{id}-{j}"), v));
                                }
                            }
                        }
                    }
                }
                AppProto::Dicom => {
                    for dir in [Direction::ToServer, Direction::ToClient] {
                        for (j, set) in data_sets(&stream(&f.steps, dir)).iter().enumerate() {
                            for syntax in [0u8, 1] {
                                // 32 attributes kept (`1 + sel / 5`).
                                let mut v = vec![155 + syntax, 64];
                                encode_sizes(&mut v, &[7, 100]);
                                v.extend_from_slice(&set[..set.len().min(MAX_SEED - v.len())]);
                                let name = format!("{id}-{}{j}-{syntax}", dir.index());
                                out.push(("dicom_dataset", name, v));
                            }
                        }
                    }
                }
                AppProto::Hl7 => {
                    // The PHI detectors get the messages as sent.
                    let mut p = vec![8];
                    let s = stream(&f.steps, Direction::ToServer);
                    p.extend_from_slice(&s[..s.len().min(MAX_SEED)]);
                    out.push(("phi", id, p));
                }
                _ => {}
            }
        }
    }
    for (name, text) in rule_files {
        let stem = name.split('.').next().unwrap_or(name);
        out.push(("rules", stem.to_string(), text.as_bytes().to_vec()));
        let lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        for (i, l) in lines.enumerate() {
            out.push(("rules", format!("{stem}-{i}"), l.as_bytes().to_vec()));
        }
    }
    // Identical seeds (the same conversation in two captures) once.
    let mut seen = std::collections::HashSet::new();
    out.retain(|(t, _, b)| seen.insert((*t, b.clone())));
    out
}

/// Reads `pcaps/`, `rules/medical.rules` and `fuzz/detect.rules` under
/// `repo` and writes every seed to `fuzz/seeds/<target>/<name>`, replacing
/// what was there. Returns the number of seeds written.
///
/// # Errors
/// A file cannot be read or written.
pub fn write_all(repo: &Path) -> std::io::Result<usize> {
    let mut captures = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(repo.join("pcaps"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        if name.ends_with(".pcap") || name.ends_with(".pcapng") {
            captures.push((name, std::fs::read(&p)?));
        }
    }
    let rule_files = vec![
        (
            "medical.rules".to_string(),
            std::fs::read_to_string(repo.join("rules/medical.rules"))?,
        ),
        (
            "detect.rules".to_string(),
            std::fs::read_to_string(repo.join("fuzz/detect.rules"))?,
        ),
    ];
    let seeds = derive(&captures, &rule_files);
    let root = repo.join("fuzz/seeds");
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    for (target, name, bytes) in &seeds {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(seeds.len())
}
