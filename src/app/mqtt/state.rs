//! Per-flow MQTT state: message framing across calls, transactions, limits
//! and anomaly events.
//!
//! Owns, per direction, only the tail of a message that is not complete
//! yet (at most `max_msg_len` bytes, copied because the caller's bytes are
//! gone after the call), a count of bytes still to skip, and a mode
//! (normal, resynchronising after lost bytes, stopped). Per flow: the
//! protocol level (from the CONNECT, else guessed from the bytes), the open
//! transactions (at most `max_transactions`) and the v5 topic aliases of
//! each direction (at most [`MAX_ALIASES`] per direction).
//!
//! Pairing (MQTT 5.0 §4.3, §4.8, 3.1.1 §4.3): CONNECT↔CONNACK;
//! SUBSCRIBE↔SUBACK and UNSUBSCRIBE↔UNSUBACK by packet identifier;
//! PUBLISH QoS 1↔PUBACK and QoS 2→PUBREC→PUBREL→PUBCOMP by packet
//! identifier in the publisher's identifier space (each direction has its
//! own); PINGREQ↔PINGRESP. QoS 0 PUBLISH, DISCONNECT and AUTH stand alone.
//!
//! Anomaly events use Suricata's MQTT event names where one exists:
//! `missing_connect`, `missing_publish`, `missing_subscribe`,
//! `missing_unsubscribe`, `double_connect`, `unintroduced_message`,
//! `invalid_qos_level`, `unassigned_msg_type`, `too_many_transactions`,
//! `malformed_traffic`; ours: `invalid_flags`, `invalid_length`,
//! `invalid_utf8`, `message_too_large`, `gap` (bytes lost, resynchronising)
//! and `resync_failed` (no message boundary found; the direction is no
//! longer parsed).

use std::collections::HashMap;

use super::parser::{self, level, packet_type as pt, Limits, ParseError, Progress};
use super::{
    Ack, Body, Connack, Connect, Message, MqttConfig, Properties, Property, PropertyValue, Publish,
    ReasonOnly, Record, Suback, Subscribe, TopicFilter, Unsuback, Unsubscribe, Will,
};
use crate::app::{Anomaly, AppProto, AppRecord, StreamConsumer, StreamContext};
use crate::flow::Direction;

/// Topic aliases remembered per direction (5.0 allows 65535; brokers
/// default to 10).
pub const MAX_ALIASES: usize = 1024;

/// Bytes scanned for a message boundary after a gap before giving up.
const MAX_RESYNC_SCAN: usize = 1 << 20;

/// A message buffer that grew past this is freed once empty.
const KEEP_BUFFER: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing seen yet: the first bytes may be mid-message (mid-stream
    /// pickup).
    Start,
    Normal,
    /// Looking for a message boundary; bytes scanned so far.
    Resync(usize),
    Stopped,
}

#[derive(Debug)]
struct DirState {
    /// Incomplete message tail.
    buf: Vec<u8>,
    /// Bytes of an oversized message still to drop.
    skip: usize,
    mode: Mode,
    /// v5 topic aliases set by this direction's PUBLISHes; boxed and
    /// created on first use, as most connections never set one and a flow
    /// table holds hundreds of thousands of these.
    // Boxed on purpose: the point is an 8-byte field instead of a 48-byte
    // map in every connection's state, not where the entries live.
    #[allow(clippy::box_collection)]
    aliases: Option<Box<HashMap<u16, String>>>,
}

impl DirState {
    fn new() -> Self {
        DirState {
            buf: Vec::new(),
            skip: 0,
            mode: Mode::Start,
            aliases: None,
        }
    }
}

/// What an open transaction waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Connect,
    Ping,
    /// Publisher's direction and packet identifier.
    Publish(Direction, u16),
    Subscribe(u16),
    Unsubscribe(u16),
}

/// The state of one MQTT flow.
#[derive(Debug)]
pub struct MqttState {
    limits: Limits,
    max_transactions: usize,
    max_payload: usize,
    /// Protocol level; 0 while unknown.
    version: u8,
    /// `version` came from a CONNECT.
    version_known: bool,
    /// A CONNACK was seen.
    connected: bool,
    dirs: [DirState; 2],
    /// Open transactions with the wire size of the message that opened
    /// each (an upper bound of what its record keeps).
    open: Vec<(Key, Record, usize)>,
    /// Sum of those sizes, held to `max_open_bytes`.
    open_bytes: usize,
    max_open_bytes: usize,
    /// Wire size of the message being handled.
    msg_len: usize,
    /// Events raised once per flow at most.
    said_unintroduced: bool,
    said_too_many: bool,
}

impl MqttState {
    pub fn new(cfg: &MqttConfig) -> Self {
        MqttState {
            limits: Limits {
                // A fixed header alone is 2 bytes; anything smaller makes no sense.
                max_msg_len: cfg.max_msg_len.max(2),
            },
            max_transactions: cfg.max_transactions.max(1),
            max_payload: cfg.max_payload_bytes,
            version: 0,
            version_known: false,
            connected: false,
            dirs: [DirState::new(), DirState::new()],
            open: Vec::new(),
            open_bytes: 0,
            max_open_bytes: cfg.max_open_bytes.max(1),
            msg_len: 0,
            said_unintroduced: false,
            said_too_many: false,
        }
    }

    fn anomaly(ctx: &mut StreamContext<'_>, dir: Direction, event: &'static str) {
        ctx.records.push(AppRecord::Anomaly(Anomaly {
            app_proto: AppProto::Mqtt,
            event,
            dir,
        }));
    }

    fn dir_mut(&mut self, dir: Direction) -> &mut DirState {
        let [a, b] = &mut self.dirs;
        match dir {
            Direction::ToServer => a,
            Direction::ToClient => b,
        }
    }

    /// The level to parse the message at the start of `input` with. Without
    /// a CONNECT, tries 3.1.1 and 5.0 on a complete message and settles the
    /// level when exactly one of them fits.
    fn version_for(&mut self, input: &[u8]) -> u8 {
        if self.version_known || (self.version != 0) {
            return self.version;
        }
        let Ok(Some(h)) = parser::parse_fixed_header(input) else {
            return 0;
        };
        if h.packet_type == pt::CONNECT {
            return 0;
        }
        if h.packet_type == pt::AUTH {
            self.version = level::V5;
            return self.version;
        }
        let Some(body) = input.get(usize::from(h.header_len)..h.total_len()) else {
            return 0;
        };
        let v4 = parser::parse_body(&h, body, level::V311).is_ok();
        let v5 = parser::parse_body(&h, body, level::V5).is_ok();
        match (v4, v5) {
            (true, false) => self.version = level::V311,
            (false, true) => self.version = level::V5,
            _ => {}
        }
        self.version
    }

    /// Parses as many whole messages from `input` as there are; returns how
    /// many bytes were used (the rest is an incomplete message), or
    /// `Err(offset)` when framing was lost at `offset` (mode set to
    /// resynchronise).
    fn parse_run(
        &mut self,
        ctx: &mut StreamContext<'_>,
        dir: Direction,
        input: &[u8],
    ) -> Result<usize, usize> {
        let mut off = 0;
        while let Some(rest) = input.get(off..) {
            if rest.is_empty() {
                break;
            }
            let version = self.version_for(rest);
            match parser::parse(rest, version, &self.limits) {
                Ok(Progress::Done { msg, consumed }) => {
                    self.handle(ctx, dir, msg);
                    off += consumed;
                }
                Ok(Progress::NeedMore { .. }) => break,
                Ok(Progress::Skip { len, header }) => {
                    Self::anomaly(ctx, dir, "message_too_large");
                    let rec = self.record(vec![Message {
                        packet_type: header.packet_type,
                        flags: header.flags,
                        dir,
                        body: Body::Truncated {
                            skipped_length: len,
                        },
                    }]);
                    ctx.records.push(AppRecord::Mqtt(rec));
                    let avail = rest.len();
                    if len > avail {
                        self.dir_mut(dir).skip = len - avail;
                        return Ok(input.len());
                    }
                    off += len;
                }
                Err(e) => {
                    Self::anomaly(ctx, dir, e.kind.event());
                    match e {
                        ParseError {
                            skip: Some(len), ..
                        } => {
                            // Framing is intact: step over the message.
                            let avail = rest.len();
                            if len > avail {
                                self.dir_mut(dir).skip = len - avail;
                                return Ok(input.len());
                            }
                            off += len;
                        }
                        ParseError { skip: None, .. } => {
                            self.dir_mut(dir).mode = Mode::Resync(0);
                            return Err(off);
                        }
                    }
                }
            }
        }
        Ok(off)
    }

    /// Looks for a message boundary in `input`: a plausible fixed header
    /// whose message ends exactly at the end of `input` or right before
    /// another plausible fixed header. Each offset costs O(1).
    fn find_boundary(&self, input: &[u8]) -> Option<usize> {
        let max = self.limits.max_msg_len;
        (0..input.len()).find(|&i| {
            let Some(rest) = input.get(i..) else {
                return false;
            };
            let Some(h) = parser::plausible_header(rest, self.version, max) else {
                return false;
            };
            let end = h.total_len();
            end == rest.len()
                || rest
                    .get(end..)
                    .is_some_and(|next| parser::plausible_header(next, self.version, max).is_some())
        })
    }

    fn record(&self, messages: Vec<Message>) -> Record {
        Record {
            messages,
            protocol_version: self.version,
            mid_stream_guess: !self.version_known,
        }
    }

    /// Emits an open transaction's record.
    fn close(&mut self, ctx: &mut StreamContext<'_>, idx: usize) {
        if idx < self.open.len() {
            let (_, rec, size) = self.open.remove(idx);
            self.open_bytes = self.open_bytes.saturating_sub(size);
            ctx.records.push(AppRecord::Mqtt(rec));
        }
    }

    fn find_open(&self, key: Key) -> Option<usize> {
        self.open.iter().position(|(k, _, _)| *k == key)
    }

    fn open_tx(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, key: Key, msg: Message) {
        if let Some(i) = self.find_open(key) {
            // Same key again (a resent request, or a reused identifier):
            // the earlier one will not be answered separately.
            self.close(ctx, i);
        }
        // The message's size on the wire bounds what its record keeps (the
        // payload is cut at `max_payload_bytes`, strings are copies).
        let size = self.msg_len;
        while !self.open.is_empty()
            && (self.open.len() >= self.max_transactions
                || self.open_bytes.saturating_add(size) > self.max_open_bytes)
        {
            if !self.said_too_many {
                self.said_too_many = true;
                Self::anomaly(ctx, dir, "too_many_transactions");
            }
            self.close(ctx, 0);
        }
        let rec = self.record(vec![msg]);
        self.open_bytes = self.open_bytes.saturating_add(size);
        self.open.push((key, rec, size));
    }

    /// Adds an answer to its transaction; `done` closes it. Without one, the
    /// answer stands alone with the `missing` event.
    fn answer(
        &mut self,
        ctx: &mut StreamContext<'_>,
        dir: Direction,
        key: Key,
        msg: Message,
        done: bool,
        missing: &'static str,
    ) {
        match self.find_open(key) {
            Some(i) => {
                if let Some((_, rec, _)) = self.open.get_mut(i) {
                    rec.messages.push(msg);
                }
                if done {
                    self.close(ctx, i);
                }
            }
            None => {
                Self::anomaly(ctx, dir, missing);
                let rec = self.record(vec![msg]);
                ctx.records.push(AppRecord::Mqtt(rec));
            }
        }
    }

    fn handle(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, msg: parser::Message<'_>) {
        let h = msg.header;
        self.msg_len = h.total_len();
        let max_payload = self.max_payload;
        if !matches!(h.packet_type, pt::CONNECT | pt::CONNACK)
            && !self.connected
            && !self.said_unintroduced
        {
            self.said_unintroduced = true;
            Self::anomaly(ctx, dir, "unintroduced_message");
        }
        let body = match msg.body {
            parser::Body::Connect(c) => {
                if self.connected || self.find_open(Key::Connect).is_some() {
                    Self::anomaly(ctx, dir, "double_connect");
                }
                self.version = c.protocol_version;
                self.version_known = true;
                let b = Body::Connect(owned_connect(&c, max_payload));
                let m = message(&h, dir, b);
                self.open_tx(ctx, dir, Key::Connect, m);
                return;
            }
            parser::Body::Connack(c) => {
                self.connected = true;
                let b = Body::Connack(Connack {
                    session_present: c.session_present,
                    return_code: c.return_code,
                    properties: owned_props(c.properties),
                });
                let m = message(&h, dir, b);
                self.answer(ctx, dir, Key::Connect, m, true, "missing_connect");
                return;
            }
            parser::Body::Publish(p) => {
                let properties = owned_props(p.properties);
                let alias =
                    super::property_int(&properties, 0x23).and_then(|a| u16::try_from(a).ok());
                let aliases = &mut self.dir_mut(dir).aliases;
                let resolved_topic = match alias {
                    Some(a) if p.topic.is_empty() => {
                        aliases.as_ref().and_then(|m| m.get(&a)).cloned()
                    }
                    Some(a) => {
                        let aliases = aliases.get_or_insert_with(Default::default);
                        if aliases.len() < MAX_ALIASES || aliases.contains_key(&a) {
                            aliases.insert(a, p.topic.to_string());
                        }
                        None
                    }
                    None => None,
                };
                let payload = p.payload.get(..max_payload).unwrap_or(p.payload);
                let b = Body::Publish(Publish {
                    topic: p.topic.to_string(),
                    resolved_topic,
                    message_id: p.message_id,
                    properties,
                    payload: payload.to_vec(),
                    payload_length: p.payload.len(),
                });
                let m = message(&h, dir, b);
                match p.message_id {
                    Some(id) if h.qos() > 0 => {
                        self.open_tx(ctx, dir, Key::Publish(dir, id), m);
                    }
                    _ => {
                        let rec = self.record(vec![m]);
                        ctx.records.push(AppRecord::Mqtt(rec));
                    }
                }
                return;
            }
            parser::Body::Ack(a) => {
                let t = h.packet_type;
                let id = a.message_id;
                let b = Body::Ack(Ack {
                    message_id: id,
                    reason_code: a.reason_code,
                    properties: owned_props(a.properties),
                });
                let m = message(&h, dir, b);
                // PUBREL comes from the publisher, the others from the receiver.
                let publisher = if t == pt::PUBREL { dir } else { dir.reverse() };
                let done = t == pt::PUBACK || t == pt::PUBCOMP;
                self.answer(
                    ctx,
                    dir,
                    Key::Publish(publisher, id),
                    m,
                    done,
                    "missing_publish",
                );
                return;
            }
            parser::Body::Subscribe(s) => {
                let topics = s
                    .topics
                    .iter()
                    .map(|(t, o)| TopicFilter {
                        topic: t.to_string(),
                        qos: o & 0x03,
                        options: o,
                    })
                    .collect();
                let b = Body::Subscribe(Subscribe {
                    message_id: s.message_id,
                    topics,
                    properties: owned_props(s.properties),
                });
                let m = message(&h, dir, b);
                self.open_tx(ctx, dir, Key::Subscribe(s.message_id), m);
                return;
            }
            parser::Body::Suback(s) => {
                let b = Body::Suback(Suback {
                    message_id: s.message_id,
                    qos_granted: s.return_codes.to_vec(),
                    properties: owned_props(s.properties),
                });
                let m = message(&h, dir, b);
                let key = Key::Subscribe(s.message_id);
                self.answer(ctx, dir, key, m, true, "missing_subscribe");
                return;
            }
            parser::Body::Unsubscribe(u) => {
                let b = Body::Unsubscribe(Unsubscribe {
                    message_id: u.message_id,
                    topics: u.topics.iter().map(|(t, _)| t.to_string()).collect(),
                    properties: owned_props(u.properties),
                });
                let m = message(&h, dir, b);
                self.open_tx(ctx, dir, Key::Unsubscribe(u.message_id), m);
                return;
            }
            parser::Body::Unsuback(u) => {
                let b = Body::Unsuback(Unsuback {
                    message_id: u.message_id,
                    reason_codes: u.reason_codes.to_vec(),
                    properties: owned_props(u.properties),
                });
                let m = message(&h, dir, b);
                let key = Key::Unsubscribe(u.message_id);
                self.answer(ctx, dir, key, m, true, "missing_unsubscribe");
                return;
            }
            parser::Body::Pingreq => {
                let m = message(&h, dir, Body::Pingreq);
                self.open_tx(ctx, dir, Key::Ping, m);
                return;
            }
            parser::Body::Pingresp => {
                let m = message(&h, dir, Body::Pingresp);
                match self.find_open(Key::Ping) {
                    Some(i) => {
                        if let Some((_, rec, _)) = self.open.get_mut(i) {
                            rec.messages.push(m);
                        }
                        self.close(ctx, i);
                    }
                    None => {
                        let rec = self.record(vec![m]);
                        ctx.records.push(AppRecord::Mqtt(rec));
                    }
                }
                return;
            }
            parser::Body::Disconnect(d) => Body::Disconnect(ReasonOnly {
                reason_code: d.reason_code,
                properties: owned_props(d.properties),
            }),
            parser::Body::Auth(a) => Body::Auth(ReasonOnly {
                reason_code: Some(a.reason_code),
                properties: owned_props(a.properties),
            }),
        };
        let rec = self.record(vec![message(&h, dir, body)]);
        ctx.records.push(AppRecord::Mqtt(rec));
    }

    /// Completes the buffered message of `dir` from `data`; returns the
    /// bytes of `data` used (a lost framing sets the mode).
    fn fill_buffer(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, data: &[u8]) -> usize {
        let mut used = 0;
        loop {
            let mut buf = std::mem::take(&mut self.dir_mut(dir).buf);
            let version = self.version_for(&buf);
            let step = parser::parse(&buf, version, &self.limits);
            match step {
                Ok(Progress::NeedMore { needed }) => {
                    let rest = data.get(used..).unwrap_or(&[]);
                    if rest.is_empty() {
                        self.dir_mut(dir).buf = buf;
                        return used;
                    }
                    // Take what the parser asked for, or the header's worth
                    // (5 bytes at most) when it could not say yet.
                    let n = needed.max(1).min(rest.len());
                    // Copied: the message continues in later calls.
                    buf.extend_from_slice(rest.get(..n).unwrap_or(&[]));
                    used += n;
                    self.dir_mut(dir).buf = buf;
                    continue;
                }
                _ => {
                    // Whole message (or its header when it is too large, or
                    // an error): the run parser handles all three alike.
                    // Framing lost inside the buffer: the mode says so, and
                    // the scan goes on in `data` after what was used.
                    let _ = self.parse_run(ctx, dir, &buf);
                    buf.clear();
                    if buf.capacity() > KEEP_BUFFER {
                        buf = Vec::new();
                    }
                    self.dir_mut(dir).buf = buf;
                    return used;
                }
            }
        }
    }
}

fn message(h: &parser::FixedHeader, dir: Direction, body: Body) -> Message {
    Message {
        packet_type: h.packet_type,
        flags: h.flags,
        dir,
        body,
    }
}

fn owned_props(p: Option<parser::Properties<'_>>) -> Properties {
    use parser::Property as P;
    let p = p?;
    Some(
        p.iter()
            .map(|prop| {
                let (id, value) = match prop {
                    P::PayloadFormatIndicator(v) => (0x01, PropertyValue::Int(v.into())),
                    P::MessageExpiryInterval(v) => (0x02, PropertyValue::Int(v)),
                    P::ContentType(s) => (0x03, PropertyValue::Str(s.into())),
                    P::ResponseTopic(s) => (0x08, PropertyValue::Str(s.into())),
                    P::CorrelationData(b) => (0x09, PropertyValue::Bin(b.to_vec())),
                    P::SubscriptionIdentifier(v) => (0x0b, PropertyValue::Int(v)),
                    P::SessionExpiryInterval(v) => (0x11, PropertyValue::Int(v)),
                    P::AssignedClientIdentifier(s) => (0x12, PropertyValue::Str(s.into())),
                    P::ServerKeepAlive(v) => (0x13, PropertyValue::Int(v.into())),
                    P::AuthenticationMethod(s) => (0x15, PropertyValue::Str(s.into())),
                    P::AuthenticationData(b) => (0x16, PropertyValue::Bin(b.to_vec())),
                    P::RequestProblemInformation(v) => (0x17, PropertyValue::Int(v.into())),
                    P::WillDelayInterval(v) => (0x18, PropertyValue::Int(v)),
                    P::RequestResponseInformation(v) => (0x19, PropertyValue::Int(v.into())),
                    P::ResponseInformation(s) => (0x1a, PropertyValue::Str(s.into())),
                    P::ServerReference(s) => (0x1c, PropertyValue::Str(s.into())),
                    P::ReasonString(s) => (0x1f, PropertyValue::Str(s.into())),
                    P::ReceiveMaximum(v) => (0x21, PropertyValue::Int(v.into())),
                    P::TopicAliasMaximum(v) => (0x22, PropertyValue::Int(v.into())),
                    P::TopicAlias(v) => (0x23, PropertyValue::Int(v.into())),
                    P::MaximumQos(v) => (0x24, PropertyValue::Int(v.into())),
                    P::RetainAvailable(v) => (0x25, PropertyValue::Int(v.into())),
                    P::UserProperty(k, v) => (0x26, PropertyValue::Pair(k.into(), v.into())),
                    P::MaximumPacketSize(v) => (0x27, PropertyValue::Int(v)),
                    P::WildcardSubscriptionAvailable(v) => (0x28, PropertyValue::Int(v.into())),
                    P::SubscriptionIdentifierAvailable(v) => (0x29, PropertyValue::Int(v.into())),
                    P::SharedSubscriptionAvailable(v) => (0x2a, PropertyValue::Int(v.into())),
                };
                Property { id, value }
            })
            .collect(),
    )
}

fn owned_connect(c: &parser::Connect<'_>, max_payload: usize) -> Connect {
    let will = match (c.will_topic, c.will_message) {
        (Some(topic), Some(msg)) => Some(Will {
            topic: topic.to_string(),
            message: msg.get(..max_payload).unwrap_or(msg).to_vec(),
            message_length: msg.len(),
            properties: owned_props(c.will_properties),
        }),
        _ => None,
    };
    Connect {
        protocol_string: c.protocol_string.to_string(),
        protocol_version: c.protocol_version,
        flags: c.flags,
        keep_alive: c.keep_alive,
        client_id: c.client_id.to_string(),
        username: c.username.map(str::to_string),
        password: c.password.map(<[u8]>::to_vec),
        will,
        properties: owned_props(c.properties),
    }
}

impl StreamConsumer for MqttState {
    fn data(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, data: &[u8]) {
        let mut input = data;
        while !input.is_empty() {
            let d = self.dir_mut(dir);
            if d.skip > 0 {
                let n = d.skip.min(input.len());
                d.skip -= n;
                input = input.get(n..).unwrap_or(&[]);
                continue;
            }
            match d.mode {
                Mode::Stopped => return,
                Mode::Start => {
                    // A stream picked up mid-message starts with bytes that
                    // are no fixed header; a prefix too short to tell is
                    // buffered as usual.
                    let ok = match parser::parse_fixed_header(input) {
                        Ok(None) => true,
                        Ok(Some(_)) => {
                            parser::plausible_header(input, self.version, self.limits.max_msg_len)
                                .is_some()
                        }
                        Err(_) => false,
                    };
                    self.dir_mut(dir).mode = if ok { Mode::Normal } else { Mode::Resync(0) };
                }
                Mode::Resync(scanned) => match self.find_boundary(input) {
                    Some(i) => {
                        self.dir_mut(dir).mode = Mode::Normal;
                        input = input.get(i..).unwrap_or(&[]);
                    }
                    None => {
                        let scanned = scanned.saturating_add(input.len());
                        if scanned > MAX_RESYNC_SCAN {
                            Self::anomaly(ctx, dir, "resync_failed");
                            self.dir_mut(dir).mode = Mode::Stopped;
                        } else {
                            self.dir_mut(dir).mode = Mode::Resync(scanned);
                        }
                        return;
                    }
                },
                Mode::Normal => {
                    if !d.buf.is_empty() {
                        let n = self.fill_buffer(ctx, dir, input);
                        input = input.get(n..).unwrap_or(&[]);
                        continue;
                    }
                    match self.parse_run(ctx, dir, input) {
                        Ok(n) => {
                            let rest = input.get(n..).unwrap_or(&[]);
                            let d = self.dir_mut(dir);
                            if d.skip == 0 && !rest.is_empty() {
                                // Copied: an incomplete message (at most
                                // `max_msg_len` bytes, checked by the parser)
                                // whose rest comes in a later call.
                                d.buf.extend_from_slice(rest);
                            }
                            return;
                        }
                        Err(at) => {
                            // Resynchronise in what follows the bad byte.
                            input = input.get(at.saturating_add(1)..).unwrap_or(&[]);
                        }
                    }
                }
            }
        }
    }

    fn gap(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, len: u32) {
        let len = len as usize;
        let limits = self.limits;
        let d = self.dir_mut(dir);
        if d.mode == Mode::Stopped {
            return;
        }
        if d.skip >= len {
            // The hole is inside a message being skipped anyway.
            d.skip -= len;
            return;
        }
        Self::anomaly(ctx, dir, "gap");
        let d = self.dir_mut(dir);
        // A message whose header is buffered and whose end lies beyond the
        // hole can be stepped over: framing survives.
        let tail = match parser::parse_fixed_header(&d.buf) {
            Ok(Some(h)) if h.total_len() <= limits.max_msg_len => {
                h.total_len().checked_sub(d.buf.len())
            }
            _ => None,
        };
        d.buf.clear();
        match tail {
            Some(t) if t > len => {
                d.skip = t - len;
                d.mode = Mode::Normal;
            }
            _ => {
                d.skip = 0;
                d.mode = Mode::Resync(0);
            }
        }
    }

    fn end(&mut self, ctx: &mut StreamContext<'_>) {
        self.open_bytes = 0;
        for (_, rec, _) in self.open.drain(..) {
            ctx.records.push(AppRecord::Mqtt(rec));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;
    use Direction::{ToClient, ToServer};

    fn feed(s: &mut MqttState, calls: &[(Direction, &[u8])]) -> Vec<AppRecord> {
        let mut out = Vec::new();
        for (d, b) in calls {
            let mut ctx = StreamContext {
                ts: Timestamp(0),
                records: &mut out,
            };
            s.data(&mut ctx, *d, b);
        }
        out
    }

    fn events(r: &[AppRecord]) -> Vec<&'static str> {
        r.iter()
            .filter_map(|r| match r {
                AppRecord::Anomaly(a) => Some(a.event),
                _ => None,
            })
            .collect()
    }

    fn mqtt(r: &[AppRecord]) -> Vec<&Record> {
        r.iter()
            .filter_map(|r| match r {
                AppRecord::Mqtt(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    // Hand-built: 3.1.1 CONNECT, client id "c", anonymous, clean session.
    const CONNECT: &[u8] = &[
        0x10, 0x0d, // CONNECT, remaining length 13
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name
        0x04, 0x02, 0x00, 0x3c, // level 4, clean session, keep alive 60
        0x00, 0x01, b'c', // client id "c"
    ];
    // Hand-built: CONNACK, accepted.
    const CONNACK: &[u8] = &[0x20, 0x02, 0x00, 0x00];
    // Hand-built: PUBLISH QoS 1, topic "t", id 1, payload "p".
    const PUB1: &[u8] = &[0x32, 0x06, 0x00, 0x01, b't', 0x00, 0x01, b'p'];
    // Hand-built: PUBACK id 1.
    const PUBACK: &[u8] = &[0x40, 0x02, 0x00, 0x01];
    // Hand-built: PUBLISH QoS 0, topic "t", payload "q".
    const PUB0: &[u8] = &[0x30, 0x04, 0x00, 0x01, b't', b'q'];

    #[test]
    fn connect_connack_is_one_accepted_transaction() {
        let mut s = MqttState::new(&MqttConfig::default());
        let r = feed(&mut s, &[(ToServer, CONNECT), (ToClient, CONNACK)]);
        let m = mqtt(&r);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].accepted(), Some(true));
        assert_eq!(m[0].connect().unwrap().client_id, "c");
        assert!(!m[0].mid_stream_guess);
        assert!(events(&r).is_empty());
    }

    #[test]
    fn publish_split_byte_by_byte_pairs_with_puback() {
        let mut s = MqttState::new(&MqttConfig::default());
        let mut calls: Vec<(Direction, &[u8])> = vec![(ToServer, CONNECT), (ToClient, CONNACK)];
        for i in 0..PUB1.len() {
            calls.push((ToServer, &PUB1[i..i + 1]));
        }
        calls.push((ToClient, PUBACK));
        let r = feed(&mut s, &calls);
        let m = mqtt(&r);
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].messages.len(), 2);
        assert_eq!(m[1].publish().unwrap().payload, b"p");
    }

    #[test]
    fn puback_without_publish_is_missing_publish() {
        let mut s = MqttState::new(&MqttConfig::default());
        let r = feed(
            &mut s,
            &[(ToServer, CONNECT), (ToClient, CONNACK), (ToClient, PUBACK)],
        );
        assert_eq!(events(&r), ["missing_publish"]);
    }

    #[test]
    fn declared_256_mib_costs_no_memory_and_parsing_resumes() {
        let mut s = MqttState::new(&MqttConfig::default());
        // Hand-built: PUBLISH header declaring 0x0fffffff bytes.
        let big = [0x30, 0xff, 0xff, 0xff, 0x7f];
        let r = feed(
            &mut s,
            &[(ToServer, CONNECT), (ToClient, CONNACK), (ToServer, &big)],
        );
        assert_eq!(events(&r), ["message_too_large"]);
        assert!(s.dirs[0].buf.capacity() < 64);
        assert_eq!(s.dirs[0].skip, 0x0fff_ffff);
        // 1 MiB of the body arrives: dropped, nothing kept.
        let chunk = vec![0u8; 1 << 20];
        feed(&mut s, &[(ToServer, &chunk)]);
        assert!(s.dirs[0].buf.capacity() < 64);
        // The rest arrives as a gap; the next message parses.
        let mut out = Vec::new();
        let mut ctx = StreamContext {
            ts: Timestamp(0),
            records: &mut out,
        };
        let rest = 0x0fff_ffff - (1u32 << 20);
        s.gap(&mut ctx, ToServer, rest);
        let r = feed(&mut s, &[(ToServer, PUB0)]);
        assert_eq!(mqtt(&r)[0].publish().unwrap().payload, b"q");
        assert!(events(&out).is_empty());
    }

    #[test]
    fn gap_resynchronises_on_the_next_message_boundary() {
        let mut s = MqttState::new(&MqttConfig::default());
        feed(&mut s, &[(ToServer, CONNECT), (ToClient, CONNACK)]);
        // Half a publish, then a gap, then bytes starting mid-message and
        // followed by two whole messages.
        feed(&mut s, &[(ToServer, &PUB0[..3])]);
        let mut out = Vec::new();
        let mut ctx = StreamContext {
            ts: Timestamp(0),
            records: &mut out,
        };
        s.gap(&mut ctx, ToServer, 100);
        assert_eq!(events(&out), ["gap"]);
        let mut after = vec![b'z', b'z', 0x01];
        after.extend_from_slice(PUB0);
        after.extend_from_slice(PUB0);
        let r = feed(&mut s, &[(ToServer, &after)]);
        assert_eq!(mqtt(&r).len(), 2);
    }

    #[test]
    fn gap_inside_a_buffered_message_skips_its_rest() {
        let mut s = MqttState::new(&MqttConfig::default());
        feed(&mut s, &[(ToServer, CONNECT), (ToClient, CONNACK)]);
        feed(&mut s, &[(ToServer, &PUB1[..4])]);
        let mut out = Vec::new();
        let mut ctx = StreamContext {
            ts: Timestamp(0),
            records: &mut out,
        };
        // Two of the remaining four bytes are lost.
        s.gap(&mut ctx, ToServer, 2);
        let mut rest = PUB1[6..].to_vec();
        rest.extend_from_slice(PUB0);
        let r = feed(&mut s, &[(ToServer, &rest)]);
        assert_eq!(mqtt(&r).len(), 1);
        assert_eq!(mqtt(&r)[0].publish().unwrap().payload, b"q");
    }

    #[test]
    fn garbage_stops_the_direction_after_the_scan_limit() {
        let mut s = MqttState::new(&MqttConfig::default());
        // 0xff bytes: type 15 with flags 15, remaining length never ends.
        let junk = vec![0xffu8; 1 << 16];
        let mut all = Vec::new();
        for _ in 0..20 {
            all.extend(feed(&mut s, &[(ToServer, &junk)]));
        }
        assert!(events(&all).contains(&"resync_failed"));
        assert_eq!(s.dirs[0].mode, Mode::Stopped);
        assert!(mqtt(&all).is_empty());
    }

    #[test]
    fn mid_stream_pickup_guesses_the_version_and_says_so() {
        let mut s = MqttState::new(&MqttConfig::default());
        // Starts inside a message; then a PUBLISH whose payload begins with
        // '{' (a property length 0x7b would overrun: so not 5.0).
        let mut b = vec![0x7d, 0x0a];
        // Hand-built: PUBLISH QoS 0, topic "t", payload "{}".
        let p = [0x30, 0x05, 0x00, 0x01, b't', b'{', b'}'];
        b.extend_from_slice(&p);
        b.extend_from_slice(&p);
        let r = feed(&mut s, &[(ToServer, &b)]);
        let m = mqtt(&r);
        assert_eq!(m.len(), 2);
        assert!(m[0].mid_stream_guess);
        assert_eq!(m[0].protocol_version, level::V311);
        assert!(events(&r).contains(&"unintroduced_message"));
    }

    #[test]
    fn too_many_open_transactions_are_flushed_oldest_first() {
        let cfg = MqttConfig {
            max_transactions: 2,
            ..MqttConfig::default()
        };
        let mut s = MqttState::new(&cfg);
        feed(&mut s, &[(ToServer, CONNECT), (ToClient, CONNACK)]);
        let mut all = Vec::new();
        for id in 1u8..=4 {
            // Hand-built: PUBLISH QoS 1, topic "t", id `id`, payload "p".
            let p = [0x32, 0x06, 0x00, 0x01, b't', 0x00, id, b'p'];
            all.extend(feed(&mut s, &[(ToServer, &p)]));
        }
        assert_eq!(events(&all), ["too_many_transactions"]);
        assert_eq!(mqtt(&all).len(), 2);
        assert_eq!(s.open.len(), 2);
    }

    #[test]
    fn unanswered_big_publishes_are_held_to_max_open_bytes() {
        // 100 unacknowledged QoS 1 PUBLISHes of 20 KiB each would hold 2 MB
        // under the transaction count limit alone.
        let cfg = MqttConfig {
            max_open_bytes: 64 * 1024,
            ..MqttConfig::default()
        };
        let mut s = MqttState::new(&cfg);
        feed(&mut s, &[(ToServer, CONNECT), (ToClient, CONNACK)]);
        let mut all = Vec::new();
        for id in 1u16..=100 {
            // Hand-built: PUBLISH QoS 1 (0x32), remaining length 20 485 as
            // the varint 0x85 0xa0 0x01, topic "t", packet id, 20 480 bytes.
            let mut p = vec![0x32, 0x85, 0xa0, 0x01, 0x00, 0x01, b't'];
            p.extend_from_slice(&id.to_be_bytes());
            p.resize(p.len() + 20 * 1024, b'x');
            all.extend(feed(&mut s, &[(ToServer, &p)]));
            assert!(s.open_bytes <= 64 * 1024, "held {} bytes", s.open_bytes);
        }
        assert_eq!(events(&all), ["too_many_transactions"]);
        // Each evicted PUBLISH is logged unanswered, and nothing is lost.
        assert_eq!(mqtt(&all).len() + s.open.len(), 100);
        assert_eq!(s.open.len(), 3);
    }
}
