//! MQTT control packets from borrowed bytes: stateless, incremental.
//!
//! Owns: the fixed header (MQTT 3.1.1 §2.2, 5.0 §2.1), the variable header
//! and payload of every control packet of MQTT 3.1 (`MQIsdp`, level 3),
//! 3.1.1 (level 4) and 5.0 (level 5, with properties §2.2.2), in both
//! directions.
//!
//! Invariants: [`parse`] never reads past its input, never allocates for a
//! declared length, and never consumes half a message. A message longer
//! than the configured maximum is answered with [`Progress::Skip`] as soon
//! as its fixed header is readable. Everything a [`Message`] holds borrows
//! the input; lists (properties, subscription topics, reason codes) are kept
//! as validated slices and walked by iterators, so parsing allocates nothing.

use std::fmt;

/// Control packet types (5.0 §2.1.2).
pub mod packet_type {
    pub const CONNECT: u8 = 1;
    pub const CONNACK: u8 = 2;
    pub const PUBLISH: u8 = 3;
    pub const PUBACK: u8 = 4;
    pub const PUBREC: u8 = 5;
    pub const PUBREL: u8 = 6;
    pub const PUBCOMP: u8 = 7;
    pub const SUBSCRIBE: u8 = 8;
    pub const SUBACK: u8 = 9;
    pub const UNSUBSCRIBE: u8 = 10;
    pub const UNSUBACK: u8 = 11;
    pub const PINGREQ: u8 = 12;
    pub const PINGRESP: u8 = 13;
    pub const DISCONNECT: u8 = 14;
    pub const AUTH: u8 = 15;

    /// Lower-case name as Suricata's EVE uses it (`connect`, `puback`…).
    pub fn name(t: u8) -> &'static str {
        match t {
            CONNECT => "connect",
            CONNACK => "connack",
            PUBLISH => "publish",
            PUBACK => "puback",
            PUBREC => "pubrec",
            PUBREL => "pubrel",
            PUBCOMP => "pubcomp",
            SUBSCRIBE => "subscribe",
            SUBACK => "suback",
            UNSUBSCRIBE => "unsubscribe",
            UNSUBACK => "unsuback",
            PINGREQ => "pingreq",
            PINGRESP => "pingresp",
            DISCONNECT => "disconnect",
            AUTH => "auth",
            _ => "unassigned",
        }
    }
}

/// Protocol level as the CONNECT states it.
pub mod level {
    /// MQTT 3.1, protocol name `MQIsdp`.
    pub const V31: u8 = 3;
    /// MQTT 3.1.1.
    pub const V311: u8 = 4;
    /// MQTT 5.0.
    pub const V5: u8 = 5;
}

/// Parser limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message (fixed header included) that is parsed; longer
    /// ones are skipped by their declared length.
    pub max_msg_len: usize,
}

/// The fixed header (5.0 §2.1.1).
///
/// ```text
///  bit    7   6   5   4   3   2   1   0
///  byte 1 [ packet type ] [   flags    ]
///  byte 2… remaining length, 1–4 bytes, 7 bits each, least significant first
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// Packet type, 0–15.
    pub packet_type: u8,
    /// The low four bits of byte 1.
    pub flags: u8,
    /// Bytes after the fixed header.
    pub remaining_length: u32,
    /// Length of the fixed header itself, 2–5.
    pub header_len: u8,
}

/// The fixed header's flag bits (MQTT 3.1.1 §2.2.2), shared by
/// [`FixedHeader`] and the logged `Message`.
pub mod flag {
    /// PUBLISH DUP flag (bit 3).
    pub fn dup(flags: u8) -> bool {
        flags & 0x08 != 0
    }
    /// QoS (bits 2–1).
    pub fn qos(flags: u8) -> u8 {
        (flags >> 1) & 0x03
    }
    /// PUBLISH RETAIN flag (bit 0).
    pub fn retain(flags: u8) -> bool {
        flags & 0x01 != 0
    }
}

impl FixedHeader {
    pub fn dup(&self) -> bool {
        flag::dup(self.flags)
    }
    pub fn qos(&self) -> u8 {
        flag::qos(self.flags)
    }
    pub fn retain(&self) -> bool {
        flag::retain(self.flags)
    }
    /// Fixed header plus remaining length.
    pub fn total_len(&self) -> usize {
        usize::from(self.header_len).saturating_add(self.remaining_length as usize)
    }
}

/// The incremental parser contract (STYLE.md).
#[derive(Debug, Clone, PartialEq)]
pub enum Progress<T> {
    /// A whole message was parsed from the first `consumed` bytes.
    Done { msg: T, consumed: usize },
    /// The input is a consistent prefix: at least `needed` more bytes are
    /// required.
    NeedMore { needed: usize },
    /// The message is over the size limit: skip `len` bytes (the whole
    /// message, fixed header included) without buffering them.
    Skip { len: usize, header: FixedHeader },
}

/// What is wrong with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Remaining length uses more than four bytes (5.0 §1.5.5).
    BadRemainingLength,
    /// Packet type 0 (reserved), or 15 before MQTT 5.0.
    UnassignedType,
    /// Reserved fixed-header flags not as the spec fixes them (§2.1.3).
    InvalidFlags,
    /// PUBLISH with QoS 3.
    InvalidQos,
    /// A string is not UTF-8 (§1.5.4).
    InvalidUtf8,
    /// The body does not match its packet type's layout.
    Malformed,
}

impl ErrorKind {
    /// Anomaly event name: Suricata's MQTT event name where one exists
    /// (`unassigned_msg_type`, `invalid_qos_level`, `malformed_traffic`).
    pub fn event(self) -> &'static str {
        match self {
            ErrorKind::BadRemainingLength => "invalid_length",
            ErrorKind::UnassignedType => "unassigned_msg_type",
            ErrorKind::InvalidFlags => "invalid_flags",
            ErrorKind::InvalidQos => "invalid_qos_level",
            ErrorKind::InvalidUtf8 => "invalid_utf8",
            ErrorKind::Malformed => "malformed_traffic",
        }
    }
}

/// A message that cannot be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    pub kind: ErrorKind,
    /// Length of the whole message when the fixed header was sound, so the
    /// caller can step over it; `None` when framing itself is lost.
    pub skip: Option<usize>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MQTT {}", self.kind.event())
    }
}

impl std::error::Error for ParseError {}

/// One parsed control packet, borrowing the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Message<'a> {
    pub header: FixedHeader,
    pub body: Body<'a>,
}

/// The variable header and payload, per packet type.
#[derive(Debug, Clone, PartialEq)]
pub enum Body<'a> {
    Connect(Connect<'a>),
    Connack(Connack<'a>),
    Publish(Publish<'a>),
    /// PUBACK, PUBREC, PUBREL, PUBCOMP (the type is in the header).
    Ack(Ack<'a>),
    Subscribe(Subscribe<'a>),
    Suback(Suback<'a>),
    Unsubscribe(Unsubscribe<'a>),
    Unsuback(Unsuback<'a>),
    Pingreq,
    Pingresp,
    Disconnect(Disconnect<'a>),
    Auth(Auth<'a>),
}

/// CONNECT (5.0 §3.1, 3.1.1 §3.1, 3.1 §3.1).
#[derive(Debug, Clone, PartialEq)]
pub struct Connect<'a> {
    /// `MQTT` or `MQIsdp`.
    pub protocol_string: &'a str,
    pub protocol_version: u8,
    /// The connect flags byte.
    pub flags: u8,
    pub keep_alive: u16,
    pub properties: Option<Properties<'a>>,
    pub client_id: &'a str,
    pub will_properties: Option<Properties<'a>>,
    pub will_topic: Option<&'a str>,
    pub will_message: Option<&'a [u8]>,
    pub username: Option<&'a str>,
    /// Binary data in 3.1.1 and 5.0 (a string in 3.1): never assumed text.
    pub password: Option<&'a [u8]>,
}

/// CONNECT flag bits (MQTT 3.1.1 §3.1.2.3), shared by [`Connect`] and the
/// logged record.
pub mod connect_flag {
    pub fn username(flags: u8) -> bool {
        flags & 0x80 != 0
    }
    pub fn password(flags: u8) -> bool {
        flags & 0x40 != 0
    }
    pub fn will_retain(flags: u8) -> bool {
        flags & 0x20 != 0
    }
    pub fn will_qos(flags: u8) -> u8 {
        (flags >> 3) & 0x03
    }
    pub fn will(flags: u8) -> bool {
        flags & 0x04 != 0
    }
    /// Clean session (3.1.1) / clean start (5.0).
    pub fn clean_session(flags: u8) -> bool {
        flags & 0x02 != 0
    }
}

impl Connect<'_> {
    pub fn username_flag(&self) -> bool {
        connect_flag::username(self.flags)
    }
    pub fn password_flag(&self) -> bool {
        connect_flag::password(self.flags)
    }
    pub fn will_retain(&self) -> bool {
        connect_flag::will_retain(self.flags)
    }
    pub fn will_qos(&self) -> u8 {
        connect_flag::will_qos(self.flags)
    }
    pub fn will_flag(&self) -> bool {
        connect_flag::will(self.flags)
    }
    pub fn clean_session(&self) -> bool {
        connect_flag::clean_session(self.flags)
    }
}

/// CONNACK (5.0 §3.2).
#[derive(Debug, Clone, PartialEq)]
pub struct Connack<'a> {
    pub session_present: bool,
    /// Return code (3.x) or reason code (5.0).
    pub return_code: u8,
    pub properties: Option<Properties<'a>>,
}

/// PUBLISH (5.0 §3.3).
#[derive(Debug, Clone, PartialEq)]
pub struct Publish<'a> {
    /// As on the wire: empty in 5.0 when a topic alias stands for it.
    pub topic: &'a str,
    /// Present for QoS 1 and 2.
    pub message_id: Option<u16>,
    pub properties: Option<Properties<'a>>,
    pub payload: &'a [u8],
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP (5.0 §3.4–3.7).
#[derive(Debug, Clone, PartialEq)]
pub struct Ack<'a> {
    pub message_id: u16,
    /// 5.0 only; absent when the remaining length is 2 (meaning 0x00).
    pub reason_code: Option<u8>,
    pub properties: Option<Properties<'a>>,
}

/// SUBSCRIBE (5.0 §3.8).
#[derive(Debug, Clone, PartialEq)]
pub struct Subscribe<'a> {
    pub message_id: u16,
    pub properties: Option<Properties<'a>>,
    pub topics: TopicFilters<'a>,
}

/// SUBACK (5.0 §3.9).
#[derive(Debug, Clone, PartialEq)]
pub struct Suback<'a> {
    pub message_id: u16,
    pub properties: Option<Properties<'a>>,
    /// Granted QoS (3.x) or reason codes (5.0), one per topic filter.
    pub return_codes: &'a [u8],
}

/// UNSUBSCRIBE (5.0 §3.10).
#[derive(Debug, Clone, PartialEq)]
pub struct Unsubscribe<'a> {
    pub message_id: u16,
    pub properties: Option<Properties<'a>>,
    pub topics: TopicFilters<'a>,
}

/// UNSUBACK (5.0 §3.11).
#[derive(Debug, Clone, PartialEq)]
pub struct Unsuback<'a> {
    pub message_id: u16,
    pub properties: Option<Properties<'a>>,
    /// 5.0 only: one reason code per topic filter.
    pub reason_codes: &'a [u8],
}

/// DISCONNECT (5.0 §3.14).
#[derive(Debug, Clone, PartialEq)]
pub struct Disconnect<'a> {
    /// 5.0 only; absent when the remaining length is 0.
    pub reason_code: Option<u8>,
    pub properties: Option<Properties<'a>>,
}

/// AUTH (5.0 §3.15).
#[derive(Debug, Clone, PartialEq)]
pub struct Auth<'a> {
    /// 0x00 when the remaining length is 0.
    pub reason_code: u8,
    pub properties: Option<Properties<'a>>,
}

/// A validated property list (5.0 §2.2.2): the bytes after the property
/// length, every property known to be well formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Properties<'a>(&'a [u8]);

/// One property (5.0 §2.2.2.2, table 2-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Property<'a> {
    PayloadFormatIndicator(u8),
    MessageExpiryInterval(u32),
    ContentType(&'a str),
    ResponseTopic(&'a str),
    CorrelationData(&'a [u8]),
    SubscriptionIdentifier(u32),
    SessionExpiryInterval(u32),
    AssignedClientIdentifier(&'a str),
    ServerKeepAlive(u16),
    AuthenticationMethod(&'a str),
    AuthenticationData(&'a [u8]),
    RequestProblemInformation(u8),
    WillDelayInterval(u32),
    RequestResponseInformation(u8),
    ResponseInformation(&'a str),
    ServerReference(&'a str),
    ReasonString(&'a str),
    ReceiveMaximum(u16),
    TopicAliasMaximum(u16),
    TopicAlias(u16),
    MaximumQos(u8),
    RetainAvailable(u8),
    UserProperty(&'a str, &'a str),
    MaximumPacketSize(u32),
    WildcardSubscriptionAvailable(u8),
    SubscriptionIdentifierAvailable(u8),
    SharedSubscriptionAvailable(u8),
}

impl<'a> Properties<'a> {
    /// Validates a property list; every item must decode.
    fn new(bytes: &'a [u8]) -> Result<Self, ErrorKind> {
        let mut r = Reader::new(bytes);
        while !r.is_empty() {
            read_property(&mut r)?;
        }
        Ok(Properties(bytes))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> PropertyIter<'a> {
        PropertyIter(Reader::new(self.0))
    }
}

/// Walks a validated property list.
#[derive(Debug, Clone)]
pub struct PropertyIter<'a>(Reader<'a>);

impl<'a> Iterator for PropertyIter<'a> {
    type Item = Property<'a>;
    fn next(&mut self) -> Option<Property<'a>> {
        if self.0.is_empty() {
            return None;
        }
        read_property(&mut self.0).ok()
    }
}

fn read_property<'a>(r: &mut Reader<'a>) -> Result<Property<'a>, ErrorKind> {
    use Property::*;
    let id = r.varint()?;
    Ok(match id {
        0x01 => PayloadFormatIndicator(r.u8()?),
        0x02 => MessageExpiryInterval(r.u32()?),
        0x03 => ContentType(r.string()?),
        0x08 => ResponseTopic(r.string()?),
        0x09 => CorrelationData(r.binary()?),
        0x0b => SubscriptionIdentifier(r.varint()?),
        0x11 => SessionExpiryInterval(r.u32()?),
        0x12 => AssignedClientIdentifier(r.string()?),
        0x13 => ServerKeepAlive(r.u16()?),
        0x15 => AuthenticationMethod(r.string()?),
        0x16 => AuthenticationData(r.binary()?),
        0x17 => RequestProblemInformation(r.u8()?),
        0x18 => WillDelayInterval(r.u32()?),
        0x19 => RequestResponseInformation(r.u8()?),
        0x1a => ResponseInformation(r.string()?),
        0x1c => ServerReference(r.string()?),
        0x1f => ReasonString(r.string()?),
        0x21 => ReceiveMaximum(r.u16()?),
        0x22 => TopicAliasMaximum(r.u16()?),
        0x23 => TopicAlias(r.u16()?),
        0x24 => MaximumQos(r.u8()?),
        0x25 => RetainAvailable(r.u8()?),
        0x26 => {
            let k = r.string()?;
            UserProperty(k, r.string()?)
        }
        0x27 => MaximumPacketSize(r.u32()?),
        0x28 => WildcardSubscriptionAvailable(r.u8()?),
        0x29 => SubscriptionIdentifierAvailable(r.u8()?),
        0x2a => SharedSubscriptionAvailable(r.u8()?),
        // An unknown identifier has no known length: the rest cannot be read.
        _ => return Err(ErrorKind::Malformed),
    })
}

/// Validated topic filters of a SUBSCRIBE (with an options byte each) or
/// UNSUBSCRIBE (without).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicFilters<'a> {
    bytes: &'a [u8],
    with_options: bool,
}

impl<'a> TopicFilters<'a> {
    fn new(bytes: &'a [u8], with_options: bool) -> Result<Self, ErrorKind> {
        let mut r = Reader::new(bytes);
        // Both packets must carry at least one filter (5.0 §3.8.3, §3.10.3).
        if r.is_empty() {
            return Err(ErrorKind::Malformed);
        }
        while !r.is_empty() {
            r.string()?;
            if with_options {
                r.u8()?;
            }
        }
        Ok(TopicFilters {
            bytes,
            with_options,
        })
    }

    /// `(filter, options)`; options is 0 for UNSUBSCRIBE. The low two bits
    /// of the options are the requested QoS.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, u8)> + 'a {
        let mut r = Reader::new(self.bytes);
        let with_options = self.with_options;
        std::iter::from_fn(move || {
            if r.is_empty() {
                return None;
            }
            let t = r.string().ok()?;
            let o = if with_options { r.u8().ok()? } else { 0 };
            Some((t, o))
        })
    }
}

/// A bounds-checked cursor; every read fails with `Malformed` past the end.
///
/// A reader over a *prefix* of a message ([`Reader::prefix`]) also says
/// why it stopped short ([`Short`]), so a message too large to buffer can
/// be read field by field as its bytes arrive ([`connect_prefix`]).
#[derive(Debug, Clone)]
struct Reader<'a> {
    buf: &'a [u8],
    /// Length of the whole input, to tell offsets.
    len: usize,
    /// Reading a prefix: running out of bytes is not malformation.
    prefix: bool,
    short: Option<Short>,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            len: buf.len(),
            prefix: false,
            short: None,
        }
    }
    fn prefix(buf: &'a [u8]) -> Self {
        Reader {
            prefix: true,
            ..Reader::new(buf)
        }
    }
    /// Bytes read so far.
    fn offset(&self) -> usize {
        self.len - self.buf.len()
    }
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    /// Fails for lack of bytes: `n` are wanted from here.
    fn short_of(&mut self, n: usize) -> ErrorKind {
        if self.prefix {
            self.short = Some(Short::Bytes(n.saturating_sub(self.buf.len()).max(1)));
        }
        ErrorKind::Malformed
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], ErrorKind> {
        if n > self.buf.len() {
            return Err(self.short_of(n));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
    fn u8(&mut self) -> Result<u8, ErrorKind> {
        let b = self.take(1)?;
        Ok(b.first().copied().unwrap_or(0))
    }
    fn u16(&mut self) -> Result<u16, ErrorKind> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([
            b.first().copied().unwrap_or(0),
            b.get(1).copied().unwrap_or(0),
        ]))
    }
    fn u32(&mut self) -> Result<u32, ErrorKind> {
        let hi = self.u16()?;
        let lo = self.u16()?;
        Ok((u32::from(hi) << 16) | u32::from(lo))
    }
    /// Variable byte integer (5.0 §1.5.5).
    fn varint(&mut self) -> Result<u32, ErrorKind> {
        match decode_varint(self.buf) {
            Varint::Value(v, n) => {
                self.take(n)?;
                Ok(v)
            }
            Varint::Short => Err(self.short_of(self.buf.len() + 1)),
            Varint::Invalid => Err(ErrorKind::Malformed),
        }
    }
    /// Two-byte length prefixed bytes (5.0 §1.5.6).
    fn binary(&mut self) -> Result<&'a [u8], ErrorKind> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
    /// UTF-8 encoded string (5.0 §1.5.4).
    fn string(&mut self) -> Result<&'a str, ErrorKind> {
        let b = self.binary()?;
        std::str::from_utf8(b).map_err(|_| ErrorKind::InvalidUtf8)
    }
}

/// Why a reader over a message prefix stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Short {
    /// The next field needs at least this many more bytes.
    Bytes(usize),
    /// A v5 property list is not all there: its length field starts at
    /// offset `at`, its `len` bytes at `data_at`.
    Properties {
        at: usize,
        data_at: usize,
        len: usize,
    },
}

enum Varint {
    /// Value and number of bytes.
    Value(u32, usize),
    /// Every byte present says "more follows".
    Short,
    /// A fifth byte would be needed.
    Invalid,
}

fn decode_varint(b: &[u8]) -> Varint {
    let mut v: u32 = 0;
    for i in 0..4 {
        let Some(&byte) = b.get(i) else {
            return Varint::Short;
        };
        v |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Varint::Value(v, i + 1);
        }
    }
    Varint::Invalid
}

/// Reads a fixed header from the start of `input`.
///
/// # Errors
///
/// A remaining length of more than four bytes.
pub fn parse_fixed_header(input: &[u8]) -> Result<Option<FixedHeader>, ParseError> {
    let Some((&b0, rest)) = input.split_first() else {
        return Ok(None);
    };
    match decode_varint(rest) {
        Varint::Value(remaining_length, n) => Ok(Some(FixedHeader {
            packet_type: b0 >> 4,
            flags: b0 & 0x0f,
            remaining_length,
            // n is at most 4.
            header_len: u8::try_from(n + 1).unwrap_or(5),
        })),
        Varint::Short => Ok(None),
        Varint::Invalid => Err(ParseError {
            kind: ErrorKind::BadRemainingLength,
            skip: None,
        }),
    }
}

/// Checks type and flags of a fixed header for protocol level `version`
/// (0 when unknown).
fn check_header(h: &FixedHeader, version: u8) -> Result<(), ErrorKind> {
    use packet_type::*;
    let ok = match h.packet_type {
        0 => return Err(ErrorKind::UnassignedType),
        AUTH if version != 0 && version < level::V5 => return Err(ErrorKind::UnassignedType),
        PUBLISH => {
            if h.qos() == 3 {
                return Err(ErrorKind::InvalidQos);
            }
            true
        }
        // MQTT 3.1 sent these with QoS 1 and allowed DUP on resends.
        PUBREL | SUBSCRIBE | UNSUBSCRIBE => {
            h.flags == 0x02 || (version == level::V31 && h.flags == 0x0a)
        }
        _ => h.flags == 0,
    };
    if ok {
        Ok(())
    } else {
        Err(ErrorKind::InvalidFlags)
    }
}

/// A three-way answer about bytes that may not all be there yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plausible<T> {
    Yes(T),
    No,
    /// The bytes end too early to tell, and what is there agrees.
    NeedMore,
}

/// Could a message start here? Type and flags valid (QoS 3 is not),
/// remaining length decodable, within `max_msg_len`, and fitting the
/// type's fixed sizes at protocol level `version` (0: not known yet). Used to find a message boundary where framing is
/// unknown; a bad first byte is refused without looking further.
pub fn plausible_header(input: &[u8], version: u8, max_msg_len: usize) -> Plausible<FixedHeader> {
    use packet_type::*;
    let Some(&b0) = input.first() else {
        return Plausible::NeedMore;
    };
    let first = FixedHeader {
        packet_type: b0 >> 4,
        flags: b0 & 0x0f,
        remaining_length: 0,
        header_len: 2,
    };
    if check_header(&first, version).is_err() {
        return Plausible::No;
    }
    let h = match parse_fixed_header(input) {
        Ok(Some(h)) => h,
        Ok(None) => return Plausible::NeedMore,
        Err(_) => return Plausible::No,
    };
    if h.total_len() > max_msg_len {
        return Plausible::No;
    }
    let rl = h.remaining_length;
    // An unknown level (0) allows what either 3.1.1 or 5.0 allows: 5.0
    // only relaxes the fixed sizes (a v5 CONNACK has 3 bytes or more).
    let v5 = version == level::V5 || version == 0;
    let fits = match h.packet_type {
        PINGREQ | PINGRESP => rl == 0,
        CONNACK => rl == 2 || (v5 && rl >= 3),
        PUBACK | PUBREC | PUBREL | PUBCOMP => rl == 2 || (v5 && rl >= 3),
        UNSUBACK => rl == 2 || (v5 && rl >= 3),
        DISCONNECT => rl == 0 || v5,
        CONNECT => rl >= 10,
        PUBLISH => rl >= 2,
        SUBSCRIBE | UNSUBSCRIBE | SUBACK => rl >= 3,
        _ => true,
    };
    if fits {
        Plausible::Yes(h)
    } else {
        Plausible::No
    }
}

/// Does a CONNECT body start with a protocol name and level wardwatch
/// knows (`MQIsdp` 3, `MQTT` 4 or 5)? `Yes(level)`, `No`, or `NeedMore`
/// while the bytes present agree with one of them. Nothing else makes a
/// stream's first bytes so surely a message start.
pub fn connect_level(body: &[u8]) -> Plausible<u8> {
    const KNOWN: [&[u8]; 3] = [
        b"\x00\x06MQIsdp\x03",
        b"\x00\x04MQTT\x04",
        b"\x00\x04MQTT\x05",
    ];
    let mut need = false;
    for k in KNOWN {
        let n = body.len().min(k.len());
        if body.get(..n) == k.get(..n) {
            if n == k.len() {
                return Plausible::Yes(k.last().copied().unwrap_or(0));
            }
            need = true;
        }
    }
    if need {
        Plausible::NeedMore
    } else {
        Plausible::No
    }
}

/// How far a CONNECT body prefix goes ([`connect_prefix`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectPrefix {
    /// Every field is there; they end at this offset.
    Complete(usize),
    /// Stopped short; see [`Short`].
    Short(Short),
}

/// Reads the prefix of a CONNECT body (5.0 §3.1) that has arrived so far,
/// with the one CONNECT reader [`parse_body`] uses, to say what comes next:
/// how many bytes the next field needs, or where a property list that is
/// not all there starts — so that a CONNECT over the size limit can be
/// read field by field and its property lists skipped rather than
/// buffered (`state.rs`).
///
/// # Errors
///
/// The bytes present are not the start of a valid CONNECT.
pub fn connect_prefix(body: &[u8]) -> Result<ConnectPrefix, ErrorKind> {
    let mut r = Reader::prefix(body);
    match parse_connect(&mut r) {
        Ok(_) => Ok(ConnectPrefix::Complete(r.offset())),
        Err(kind) => match r.short {
            Some(s) => Ok(ConnectPrefix::Short(s)),
            None => Err(kind),
        },
    }
}

/// Parses one message from the start of `input`. `version` is the
/// connection's protocol level (`level::*`), 0 while unknown (parsed as
/// 3.1.1; a CONNECT carries its own level).
///
/// # Errors
///
/// See [`ErrorKind`]; [`ParseError::skip`] says whether the message can be
/// stepped over.
pub fn parse<'a>(
    input: &'a [u8],
    version: u8,
    limits: &Limits,
) -> Result<Progress<Message<'a>>, ParseError> {
    let Some(header) = parse_fixed_header(input)? else {
        return Ok(Progress::NeedMore { needed: 1 });
    };
    let total = header.total_len();
    // A bad first byte with a length within the limit is stepped over; a
    // larger one more likely means framing is lost.
    match check_header(&header, version) {
        // Decoded all the same, as Suricata does, so that its payload is
        // inspected: clear text on the wire is a finding whatever the
        // broker does with it. The state raises `invalid_qos_level`.
        Ok(()) | Err(ErrorKind::InvalidQos) => {}
        Err(kind) => {
            return Err(ParseError {
                kind,
                skip: (total <= limits.max_msg_len).then_some(total),
            })
        }
    }
    if total > limits.max_msg_len {
        return Ok(Progress::Skip { len: total, header });
    }
    let Some(body) = input.get(usize::from(header.header_len)..total) else {
        return Ok(Progress::NeedMore {
            needed: total.saturating_sub(input.len()),
        });
    };
    let body = parse_body(&header, body, version).map_err(|kind| ParseError {
        kind,
        skip: Some(total),
    })?;
    Ok(Progress::Done {
        msg: Message { header, body },
        consumed: total,
    })
}

/// Reads a property length and the list it announces.
fn read_properties<'a>(r: &mut Reader<'a>) -> Result<Properties<'a>, ErrorKind> {
    let at = r.offset();
    let n = r.varint()? as usize;
    if r.prefix && n > r.buf.len() {
        r.short = Some(Short::Properties {
            at,
            data_at: r.offset(),
            len: n,
        });
        return Err(ErrorKind::Malformed);
    }
    let bytes = r.take(n)?;
    Properties::new(bytes)
}

/// Parses the body of a message whose fixed header is valid; `body` is
/// exactly the remaining length.
pub fn parse_body<'a>(h: &FixedHeader, body: &'a [u8], version: u8) -> Result<Body<'a>, ErrorKind> {
    use packet_type::*;
    let v5 = version == level::V5;
    let mut r = Reader::new(body);
    let b = match h.packet_type {
        CONNECT => Body::Connect(parse_connect(&mut r)?),
        CONNACK => {
            let flags = r.u8()?;
            let return_code = r.u8()?;
            let properties = if v5 && !r.is_empty() {
                Some(read_properties(&mut r)?)
            } else {
                None
            };
            Body::Connack(Connack {
                session_present: flags & 0x01 != 0,
                return_code,
                properties,
            })
        }
        PUBLISH => {
            let topic = r.string()?;
            let message_id = if h.qos() > 0 { Some(r.u16()?) } else { None };
            let properties = if v5 {
                Some(read_properties(&mut r)?)
            } else {
                None
            };
            Body::Publish(Publish {
                topic,
                message_id,
                properties,
                payload: r.rest(),
            })
        }
        PUBACK | PUBREC | PUBREL | PUBCOMP => {
            let message_id = r.u16()?;
            let (reason_code, properties) = reason_and_properties(&mut r, v5)?;
            Body::Ack(Ack {
                message_id,
                reason_code,
                properties,
            })
        }
        SUBSCRIBE | UNSUBSCRIBE => {
            let message_id = r.u16()?;
            let properties = if v5 {
                Some(read_properties(&mut r)?)
            } else {
                None
            };
            let topics = TopicFilters::new(r.rest(), h.packet_type == SUBSCRIBE)?;
            if h.packet_type == SUBSCRIBE {
                Body::Subscribe(Subscribe {
                    message_id,
                    properties,
                    topics,
                })
            } else {
                Body::Unsubscribe(Unsubscribe {
                    message_id,
                    properties,
                    topics,
                })
            }
        }
        SUBACK => {
            let message_id = r.u16()?;
            let properties = if v5 {
                Some(read_properties(&mut r)?)
            } else {
                None
            };
            let return_codes = r.rest();
            if return_codes.is_empty() {
                return Err(ErrorKind::Malformed);
            }
            Body::Suback(Suback {
                message_id,
                properties,
                return_codes,
            })
        }
        UNSUBACK => {
            let message_id = r.u16()?;
            let properties = if v5 {
                Some(read_properties(&mut r)?)
            } else {
                None
            };
            Body::Unsuback(Unsuback {
                message_id,
                properties,
                reason_codes: r.rest(),
            })
        }
        PINGREQ => Body::Pingreq,
        PINGRESP => Body::Pingresp,
        DISCONNECT => {
            let (reason_code, properties) = reason_and_properties(&mut r, v5)?;
            Body::Disconnect(Disconnect {
                reason_code,
                properties,
            })
        }
        AUTH => {
            let (reason_code, properties) = reason_and_properties(&mut r, true)?;
            Body::Auth(Auth {
                reason_code: reason_code.unwrap_or(0),
                properties,
            })
        }
        _ => return Err(ErrorKind::UnassignedType),
    };
    if r.is_empty() {
        Ok(b)
    } else {
        Err(ErrorKind::Malformed)
    }
}

/// Optional reason code then optional properties (5.0 §3.4.2.1 and
/// alike): both may be left out, from the end.
fn reason_and_properties<'a>(
    r: &mut Reader<'a>,
    v5: bool,
) -> Result<(Option<u8>, Option<Properties<'a>>), ErrorKind> {
    if !v5 || r.is_empty() {
        return Ok((None, None));
    }
    let code = r.u8()?;
    let props = if r.is_empty() {
        None
    } else {
        Some(read_properties(r)?)
    };
    Ok((Some(code), props))
}

/// CONNECT variable header and payload.
///
/// ```text
/// protocol name (string) | level (u8) | connect flags (u8) | keep alive (u16)
/// [5.0: properties] | client id | [will props (5.0), will topic, will message]
/// | [username] | [password]
/// ```
fn parse_connect<'a>(r: &mut Reader<'a>) -> Result<Connect<'a>, ErrorKind> {
    let protocol_string = r.string()?;
    let protocol_version = r.u8()?;
    let known = matches!(
        (protocol_string, protocol_version),
        ("MQTT", level::V311 | level::V5) | ("MQIsdp", level::V31)
    );
    if !known {
        return Err(ErrorKind::Malformed);
    }
    let v5 = protocol_version == level::V5;
    let flags = r.u8()?;
    // Bit 0 is reserved and must be 0 (3.1.1 §3.1.2.3).
    if flags & 0x01 != 0 {
        return Err(ErrorKind::Malformed);
    }
    let keep_alive = r.u16()?;
    let properties = if v5 { Some(read_properties(r)?) } else { None };
    let client_id = r.string()?;
    let (will_properties, will_topic, will_message) = if flags & 0x04 != 0 {
        let p = if v5 { Some(read_properties(r)?) } else { None };
        let t = r.string()?;
        (p, Some(t), Some(r.binary()?))
    } else {
        (None, None, None)
    };
    let username = if flags & 0x80 != 0 {
        Some(r.string()?)
    } else {
        None
    };
    let password = if flags & 0x40 != 0 {
        Some(r.binary()?)
    } else {
        None
    };
    Ok(Connect {
        protocol_string,
        protocol_version,
        flags,
        keep_alive,
        properties,
        client_id,
        will_properties,
        will_topic,
        will_message,
        username,
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_msg_len: 1 << 20,
    };

    fn done(input: &[u8], version: u8) -> Message<'_> {
        match parse(input, version, &LIMITS) {
            Ok(Progress::Done { msg, consumed }) => {
                assert_eq!(consumed, input.len());
                msg
            }
            other => panic!("not a whole message: {other:?}"),
        }
    }

    /// Every strict prefix needs more; none panics or errors.
    fn every_prefix_needs_more(input: &[u8], version: u8) {
        for n in 0..input.len() {
            match parse(&input[..n], version, &LIMITS) {
                Ok(Progress::NeedMore { needed }) => assert!(needed >= 1),
                other => panic!("prefix {n} of {input:02x?}: {other:?}"),
            }
        }
    }

    // Hand-built: MQTT 3.1 CONNECT with username and password.
    const CONNECT_31: &[u8] = &[
        0x10, 0x26, // CONNECT, remaining length 38
        0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', // protocol name "MQIsdp"
        0x03, // level 3
        0xc2, // flags: username, password, clean session
        0x00, 0x3c, // keep alive 60
        0x00, 0x0a, b'P', b'U', b'M', b'P', b'-', b'G', b'W', b'-', b'0', b'2', // client id
        0x00, 0x05, b'g', b'u', b'e', b's', b't', // username "guest"
        0x00, 0x05, b'g', b'u', b'e', b's', b't', // password "guest"
    ];

    #[test]
    fn connect_v31_with_credentials() {
        let m = done(CONNECT_31, 0);
        let Body::Connect(c) = m.body else { panic!() };
        assert_eq!(c.protocol_string, "MQIsdp");
        assert_eq!(c.protocol_version, level::V31);
        assert_eq!(c.keep_alive, 60);
        assert_eq!(c.client_id, "PUMP-GW-02");
        assert_eq!(c.username, Some("guest"));
        assert_eq!(c.password, Some(&b"guest"[..]));
        assert!(c.clean_session() && c.username_flag() && c.password_flag());
        every_prefix_needs_more(CONNECT_31, 0);
    }

    // Hand-built: MQTT 3.1.1 CONNECT, anonymous, with a will.
    const CONNECT_311_WILL: &[u8] = &[
        0x10, 0x1b, // CONNECT, remaining length 27
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name
        0x04, // level 4
        0x2e, // flags: will retain, will QoS 1, will, clean session
        0x00, 0x02, // keep alive 2
        0x00, 0x03, b'm', b'o', b'n', // client id "mon"
        0x00, 0x05, b'w', b'/', b'm', b'o', b'n', // will topic "w/mon"
        0x00, 0x03, b'o', b'f', b'f', // will message "off"
    ];

    #[test]
    fn connect_v311_anonymous_with_will() {
        let m = done(CONNECT_311_WILL, 0);
        let Body::Connect(c) = m.body else { panic!() };
        assert_eq!(c.protocol_version, level::V311);
        assert_eq!(c.will_topic, Some("w/mon"));
        assert_eq!(c.will_message, Some(&b"off"[..]));
        assert_eq!(c.will_qos(), 1);
        assert!(c.will_retain() && c.username.is_none() && c.password.is_none());
        every_prefix_needs_more(CONNECT_311_WILL, 0);
    }

    // Hand-built: MQTT 5.0 CONNECT with properties, a will with properties,
    // and a binary password.
    const CONNECT_5: &[u8] = &[
        0x10, 0x35, // CONNECT, remaining length 53
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name
        0x05, // level 5
        0xc6, // flags: username, password, will, clean start
        0x00, 0x1e, // keep alive 30
        0x0d, // property length 13
        0x11, 0x00, 0x00, 0x02, 0x58, // session expiry interval 600
        0x26, 0x00, 0x01, b's', 0x00, 0x02, b'C', b'H', // user property s=CH
        0x00, 0x02, b'g', b'w', // client id "gw"
        0x05, // will property length 5
        0x18, 0x00, 0x00, 0x00, 0x0a, // will delay interval 10
        0x00, 0x02, b'w', b't', // will topic "wt"
        0x00, 0x02, 0x00, 0xff, // will message, binary
        0x00, 0x04, b'u', b's', b'e', b'r', // username "user"
        0x00, 0x03, 0xde, 0xad, 0x00, // password, not UTF-8
    ];

    #[test]
    fn connect_v5_properties_will_properties_binary_password() {
        let m = done(CONNECT_5, 0);
        let Body::Connect(c) = m.body else { panic!() };
        assert_eq!(c.protocol_version, level::V5);
        let props: Vec<_> = c.properties.unwrap().iter().collect();
        assert_eq!(
            props,
            [
                Property::SessionExpiryInterval(600),
                Property::UserProperty("s", "CH")
            ]
        );
        let will: Vec<_> = c.will_properties.unwrap().iter().collect();
        assert_eq!(will, [Property::WillDelayInterval(10)]);
        assert_eq!(c.will_message, Some(&[0x00, 0xff][..]));
        assert_eq!(c.password, Some(&[0xde, 0xad, 0x00][..]));
        every_prefix_needs_more(CONNECT_5, 0);
    }

    #[test]
    fn connack_v311_and_v5() {
        // Hand-built: CONNACK, length 2, session present, return code 5.
        let v3 = [0x20, 0x02, 0x01, 0x05];
        let Body::Connack(c) = done(&v3, level::V311).body else {
            panic!()
        };
        assert!(c.session_present);
        assert_eq!((c.return_code, c.properties), (5, None));
        // Hand-built: CONNACK 5.0, length 8: flags 0, reason 0x87, property
        // length 5, reason string "no".
        let v5 = [0x20, 0x08, 0x00, 0x87, 0x05, 0x1f, 0x00, 0x02, b'n', b'o'];
        let Body::Connack(c) = done(&v5, level::V5).body else {
            panic!()
        };
        assert_eq!(c.return_code, 0x87);
        let p: Vec<_> = c.properties.unwrap().iter().collect();
        assert_eq!(p, [Property::ReasonString("no")]);
        every_prefix_needs_more(&v5, level::V5);
        // The same 5.0 bytes are malformed at 3.1.1 (trailing bytes).
        assert_eq!(
            parse(&v5, level::V311, &LIMITS).unwrap_err().kind,
            ErrorKind::Malformed
        );
    }

    #[test]
    fn publish_qos0_v311_and_qos1_v5_with_properties() {
        // Hand-built: PUBLISH QoS 0 retain (0x31), remaining length 7: topic
        // "a/b" (00 03 a / b), payload "hi".
        let p0 = [0x31, 0x07, 0x00, 0x03, b'a', b'/', b'b', b'h', b'i'];
        let m = done(&p0, level::V311);
        assert!(m.header.retain());
        let Body::Publish(p) = m.body else { panic!() };
        assert_eq!(
            (p.topic, p.message_id, p.payload),
            ("a/b", None, &b"hi"[..])
        );
        every_prefix_needs_more(&p0, level::V311);
        // Hand-built: PUBLISH 5.0, DUP QoS 1 (0x3a), remaining length 11:
        // empty topic (00 00), packet id 7 (00 07), property length 3, topic
        // alias 1 (23 00 01), payload "\0xy".
        let p1 = [
            0x3a, 0x0b, 0x00, 0x00, 0x00, 0x07, 0x03, 0x23, 0x00, 0x01, 0x00, b'x', b'y',
        ];
        let m = done(&p1, level::V5);
        assert!(m.header.dup());
        assert_eq!(m.header.qos(), 1);
        let Body::Publish(p) = m.body else { panic!() };
        assert_eq!((p.topic, p.message_id), ("", Some(7)));
        assert_eq!(p.payload, b"\0xy");
        let props: Vec<_> = p.properties.unwrap().iter().collect();
        assert_eq!(props, [Property::TopicAlias(1)]);
        every_prefix_needs_more(&p1, level::V5);
    }

    #[test]
    fn acks_v311_and_v5() {
        for t in [PUBACK_T, 0x50, 0x62, 0x70] {
            // Hand-built: PUBACK/PUBREC/PUBREL(flags 2)/PUBCOMP, length 2, id 258.
            let b = [t, 0x02, 0x01, 0x02];
            let Body::Ack(a) = done(&b, level::V311).body else {
                panic!()
            };
            assert_eq!((a.message_id, a.reason_code), (258, None));
        }
        // Hand-built: PUBACK 5.0, length 3: id 4, reason 0x87 (no properties).
        let b = [0x40, 0x03, 0x00, 0x04, 0x87];
        let Body::Ack(a) = done(&b, level::V5).body else {
            panic!()
        };
        assert_eq!((a.message_id, a.reason_code), (4, Some(0x87)));
        // PUBREL with flags 0 is invalid (3.1.1 §3.6.1).
        let bad = [0x60, 0x02, 0x00, 0x01];
        let e = parse(&bad, level::V311, &LIMITS).unwrap_err();
        assert_eq!((e.kind, e.skip), (ErrorKind::InvalidFlags, Some(4)));
    }
    const PUBACK_T: u8 = 0x40;

    #[test]
    fn subscribe_suback_unsubscribe_unsuback() {
        // Hand-built: SUBSCRIBE 3.1.1 (0x82), length 14: id 1, "a/#" QoS 1,
        // "b" QoS 2.
        let s = [
            0x82, 0x0c, 0x00, 0x01, 0x00, 0x03, b'a', b'/', b'#', 0x01, 0x00, 0x01, b'b', 0x02,
        ];
        let Body::Subscribe(x) = done(&s, level::V311).body else {
            panic!()
        };
        let t: Vec<_> = x.topics.iter().collect();
        assert_eq!(t, [("a/#", 1), ("b", 2)]);
        every_prefix_needs_more(&s, level::V311);
        // Hand-built: SUBSCRIBE 5.0, length 10: id 2, properties (2 bytes:
        // subscription identifier 7), "t" with options 0x05 (no local, QoS 1).
        let s5 = [
            0x82, 0x09, 0x00, 0x02, 0x02, 0x0b, 0x07, 0x00, 0x01, b't', 0x05,
        ];
        let Body::Subscribe(x) = done(&s5, level::V5).body else {
            panic!()
        };
        assert_eq!(x.topics.iter().collect::<Vec<_>>(), [("t", 5)]);
        let p: Vec<_> = x.properties.unwrap().iter().collect();
        assert_eq!(p, [Property::SubscriptionIdentifier(7)]);
        // Hand-built: SUBACK 3.1.1, id 1, granted 1 and 0x80 (failure).
        let sa = [0x90, 0x04, 0x00, 0x01, 0x01, 0x80];
        let Body::Suback(x) = done(&sa, level::V311).body else {
            panic!()
        };
        assert_eq!(x.return_codes, [1, 0x80]);
        // Hand-built: UNSUBSCRIBE (0xa2), id 3, "a/#".
        let u = [0xa2, 0x07, 0x00, 0x03, 0x00, 0x03, b'a', b'/', b'#'];
        let Body::Unsubscribe(x) = done(&u, level::V311).body else {
            panic!()
        };
        assert_eq!(x.topics.iter().map(|t| t.0).collect::<Vec<_>>(), ["a/#"]);
        // Hand-built: UNSUBACK 5.0, id 3, no properties, reason codes 0, 0x11.
        let ua = [0xb0, 0x05, 0x00, 0x03, 0x00, 0x00, 0x11];
        let Body::Unsuback(x) = done(&ua, level::V5).body else {
            panic!()
        };
        assert_eq!(x.reason_codes, [0, 0x11]);
        // An empty SUBSCRIBE is malformed.
        let empty = [0x82, 0x02, 0x00, 0x01];
        assert_eq!(
            parse(&empty, level::V311, &LIMITS).unwrap_err().kind,
            ErrorKind::Malformed
        );
    }

    #[test]
    fn ping_disconnect_auth() {
        assert_eq!(done(&[0xc0, 0x00], level::V311).body, Body::Pingreq);
        assert_eq!(done(&[0xd0, 0x00], level::V311).body, Body::Pingresp);
        let Body::Disconnect(d) = done(&[0xe0, 0x00], level::V311).body else {
            panic!()
        };
        assert_eq!(d.reason_code, None);
        // Hand-built: DISCONNECT 5.0, reason 4, properties (reason string "x").
        let d5 = [0xe0, 0x06, 0x04, 0x04, 0x1f, 0x00, 0x01, b'x'];
        let Body::Disconnect(d) = done(&d5, level::V5).body else {
            panic!()
        };
        assert_eq!(d.reason_code, Some(4));
        // Hand-built: AUTH 5.0, reason 0x18 (continue), properties:
        // authentication method "K", authentication data 0x01.
        let a = [
            0xf0, 0x0a, 0x18, 0x08, 0x15, 0x00, 0x01, b'K', 0x16, 0x00, 0x01, 0x01,
        ];
        let Body::Auth(x) = done(&a, level::V5).body else {
            panic!()
        };
        assert_eq!(x.reason_code, 0x18);
        let p: Vec<_> = x.properties.unwrap().iter().collect();
        assert_eq!(
            p,
            [
                Property::AuthenticationMethod("K"),
                Property::AuthenticationData(&[1])
            ]
        );
        every_prefix_needs_more(&a, level::V5);
        // AUTH does not exist before 5.0.
        assert_eq!(
            parse(&a, level::V311, &LIMITS).unwrap_err().kind,
            ErrorKind::UnassignedType
        );
    }

    #[test]
    fn declared_256_mib_is_skipped_from_the_header_alone() {
        // Hand-built: PUBLISH with remaining length 0x0fffffff (4 bytes, the
        // largest the encoding allows, 256 MiB - 1).
        let h = [0x30, 0xff, 0xff, 0xff, 0x7f];
        match parse(&h, level::V311, &LIMITS) {
            Ok(Progress::Skip { len, header }) => {
                assert_eq!(len, 5 + 0x0fff_ffff);
                assert_eq!(header.packet_type, packet_type::PUBLISH);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        // Five-byte remaining length: framing is lost.
        let e = parse(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01], 0, &LIMITS).unwrap_err();
        assert_eq!((e.kind, e.skip), (ErrorKind::BadRemainingLength, None));
        // Type 0 is reserved.
        let e = parse(&[0x00, 0x00], 0, &LIMITS).unwrap_err();
        assert_eq!(e.kind, ErrorKind::UnassignedType);
        // QoS 3 is decoded (with a packet identifier) for the state to
        // flag: hand-built PUBLISH 0x36, length 5, topic "a", id 7.
        let m = done(&[0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x07], 0);
        assert_eq!(m.header.qos(), 3);
        let Body::Publish(p) = m.body else { panic!() };
        assert_eq!(p.message_id, Some(7));
        assert_eq!(
            plausible_header(&[0x36, 0x05], 0, 100),
            Plausible::No,
            "never a resync candidate"
        );
        // Topic not UTF-8.
        let e = parse(&[0x30, 0x03, 0x00, 0x01, 0xff], 0, &LIMITS).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidUtf8);
        // Unknown property identifier 0x7f.
        let e = parse(
            &[0x40, 0x05, 0x00, 0x01, 0x00, 0x01, 0x7f],
            level::V5,
            &LIMITS,
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Malformed);
        // Unknown protocol name.
        let mut c = CONNECT_31.to_vec();
        c[4] = b'X';
        assert_eq!(
            parse(&c, 0, &LIMITS).unwrap_err().kind,
            ErrorKind::Malformed
        );
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300), v in 0u8..6) {
            if let Ok(Progress::Done { msg, consumed }) = parse(&data, v, &LIMITS) {
                proptest::prop_assert!(consumed <= data.len());
                if let Body::Connect(c) = msg.body {
                    let _ = c.properties.map(|p| p.iter().count());
                }
            }
            let _ = plausible_header(&data, v, 1000);
        }
    }
}
