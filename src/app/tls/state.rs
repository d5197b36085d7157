//! Per-flow TLS state: the record layer of each direction, handshake
//! reassembly within limits, the end of the clear-text handshake, and the
//! one record of the flow.
//!
//! Record layer (RFC 8446 §5.1): each direction is read as records — a
//! 5-byte header (type, version, length), then `length` body bytes — cut
//! anywhere by TCP. Only the header is buffered (at most 5 bytes); body
//! bytes are handed on as they come. A header with a type outside 20–24
//! (`invalid_record_type`), a major version other than 3
//! (`invalid_record_version`) or a length over 2^14 + 2048
//! (`record_overflow`) ends the parsing of that direction: the bytes are
//! not TLS, or not in step.
//!
//! Handshake (RFC 8446 §4, §5.1: "handshake messages MAY be coalesced into
//! a single record or fragmented across several records"): the bodies of
//! handshake records are one stream of messages, each a 4-byte header
//! (type, 24-bit length) and its body. A message is reassembled (copied)
//! only when it is not whole in one call; a message longer than
//! `max_handshake` is skipped by its declared length, nothing buffered,
//! with `handshake_too_large`. Alert and heartbeat records are skipped.
//! Every decision is taken on bytes, never on where a call ends, so the
//! record of a stream does not depend on how it was cut (the property
//! test below).
//!
//! The end of the clear text, per direction:
//! - client → server: after its ClientHello (later clear-text messages —
//!   a second ClientHello after a HelloRetryRequest, a TLS ≤ 1.2 client's
//!   key exchange — add nothing wardwatch logs);
//! - server → client: after a TLS 1.3 ServerHello (not a
//!   HelloRetryRequest: everything after it is encrypted), or for TLS ≤
//!   1.2 after the Certificate or ServerHelloDone message;
//! - either: a ChangeCipherSpec or application-data record (what follows
//!   is encrypted; an abbreviated handshake has no Certificate), lost
//!   bytes (a gap: the message stream cannot be rejoined), a malformed
//!   record header.
//!
//! When both directions are over the flow's record is written (if a hello
//! was seen) and the parser is [`StreamConsumer::finished`]: the session
//! stops reassembling the flow. At the flow's end a record not yet written
//! is written (a one-way capture, a handshake cut short).
//!
//! Anomaly events (Suricata's TLS event names where it has one):
//! `invalid_record_type`, `invalid_record_version`, `record_overflow`,
//! `invalid_handshake_message` (a hello or certificate list whose lengths
//! do not fit), `invalid_certificate` (a certificate whose DER does not
//! read), `handshake_too_large`, `memcap_reached`
//! ([`StreamConsumer::shed`]: a message being reassembled is dropped and
//! the record is written as it stands, so the hellos' facts are logged
//! rather than lost).
//!
//! Memory: [`StreamConsumer::memuse`] counts the message being reassembled
//! and the record's lists (a ClientHello awaiting its answer in a one-way
//! capture is held until the flow ends).

use super::parser::{self, content_type as ct, handshake_type as ht, RecordHeader};
use super::{Record, TlsConfig};
use crate::app::{Anomaly, AppProto, AppRecord, StreamConsumer, StreamContext};
use crate::flow::Direction;

/// One direction's reading position.
#[derive(Debug, Default)]
struct Side {
    /// The current record header, while incomplete.
    head: [u8; parser::RECORD_HEADER],
    head_len: usize,
    /// Body bytes of the current record still to come, and its type.
    body_left: usize,
    body_type: u8,
    /// A handshake message not yet whole: its header, then its body.
    hs: Vec<u8>,
    /// Bytes of an oversized handshake message still to skip.
    skip: usize,
    /// Nothing more is read in this direction.
    done: bool,
}

/// The TLS parser of one flow.
#[derive(Debug)]
pub struct TlsState {
    max_handshake: usize,
    sides: [Side; 2],
    record: Record,
    /// The record was written (or there is nothing to write).
    written: bool,
}

fn anomaly(ctx: &mut StreamContext<'_>, dir: Direction, event: &'static str) {
    ctx.records.push(AppRecord::Anomaly(Anomaly {
        app_proto: AppProto::Tls,
        event,
        dir,
    }));
}

impl TlsState {
    pub fn new(cfg: &TlsConfig) -> TlsState {
        TlsState {
            max_handshake: usize::try_from(cfg.max_handshake.0).unwrap_or(usize::MAX),
            sides: Default::default(),
            record: Record::default(),
            written: false,
        }
    }

    fn side(&mut self, dir: Direction) -> &mut Side {
        &mut self.sides[dir.index() & 1]
    }

    /// Stops reading `dir`; its buffered message is dropped.
    fn stop(&mut self, dir: Direction) {
        let s = self.side(dir);
        s.done = true;
        s.hs = Vec::new();
        s.skip = 0;
    }

    /// Writes the record once both directions are over.
    fn settle(&mut self, ctx: &mut StreamContext<'_>) {
        if !self.written && self.sides.iter().all(|s| s.done) {
            self.write(ctx);
        }
    }

    /// Writes the record now, if a hello was seen.
    fn write(&mut self, ctx: &mut StreamContext<'_>) {
        if self.written {
            return;
        }
        self.written = true;
        if self.record.client_hello.is_some() || self.record.server_hello.is_some() {
            let r = std::mem::take(&mut self.record);
            ctx.records.push(AppRecord::Tls(Box::new(r)));
        }
    }

    /// Bytes of handshake records of `dir`, in order.
    fn handshake(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, mut data: &[u8]) {
        let max = self.max_handshake;
        while !data.is_empty() && !self.side(dir).done {
            let s = self.side(dir);
            if s.skip > 0 {
                let n = s.skip.min(data.len());
                s.skip -= n;
                data = data.get(n..).unwrap_or_default();
                continue;
            }
            // The message is whole in `data`: read it in place.
            if s.hs.is_empty() {
                if let Some(len) = declared(data) {
                    if len > max {
                        anomaly(ctx, dir, "handshake_too_large");
                        self.side(dir).skip = len;
                        data = data.get(parser::HANDSHAKE_HEADER..).unwrap_or_default();
                        continue;
                    }
                    let end = parser::HANDSHAKE_HEADER + len;
                    if let Some(msg) = data.get(..end) {
                        data = data.get(end..).unwrap_or_default();
                        self.message(ctx, dir, msg);
                        continue;
                    }
                }
            }
            // Otherwise reassemble it (copied: the message is cut by the
            // end of this call; at most `max_handshake` bytes).
            let s = self.side(dir);
            if s.hs.len() < parser::HANDSHAKE_HEADER {
                let n = (parser::HANDSHAKE_HEADER - s.hs.len()).min(data.len());
                s.hs.extend_from_slice(data.get(..n).unwrap_or_default());
                data = data.get(n..).unwrap_or_default();
                match declared(&s.hs) {
                    None => continue,
                    Some(len) if len > max => {
                        s.hs.clear();
                        s.skip = len;
                        anomaly(ctx, dir, "handshake_too_large");
                        continue;
                    }
                    Some(_) => {}
                }
            }
            let len = declared(&s.hs).unwrap_or(0);
            let want = (parser::HANDSHAKE_HEADER + len).saturating_sub(s.hs.len());
            let n = want.min(data.len());
            s.hs.extend_from_slice(data.get(..n).unwrap_or_default());
            data = data.get(n..).unwrap_or_default();
            if n == want {
                let msg = std::mem::take(&mut s.hs);
                self.message(ctx, dir, &msg);
            }
        }
    }

    /// One whole handshake message (header included) of `dir`.
    fn message(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, msg: &[u8]) {
        let (Some(&ty), Some(body)) = (msg.first(), msg.get(parser::HANDSHAKE_HEADER..)) else {
            return;
        };
        match (dir, ty) {
            (Direction::ToServer, ht::CLIENT_HELLO) => {
                match parser::client_hello(body) {
                    Ok(ch) => self.record.client_hello = Some(ch),
                    Err(_) => anomaly(ctx, dir, "invalid_handshake_message"),
                }
                self.stop(dir);
            }
            (Direction::ToClient, ht::SERVER_HELLO) => match parser::server_hello(body) {
                Ok(sh) => {
                    let over = !sh.retry_request && sh.version() >= 0x0304;
                    self.record.server_hello = Some(sh);
                    if over {
                        self.stop(dir);
                    }
                }
                Err(_) => {
                    anomaly(ctx, dir, "invalid_handshake_message");
                    self.stop(dir);
                }
            },
            (Direction::ToClient, ht::CERTIFICATE) => {
                match parser::certificate_list(body) {
                    Ok((Some(der), n)) => match super::x509::certificate(der, n) {
                        Some(c) => self.record.certificate = Some(c),
                        None => anomaly(ctx, dir, "invalid_certificate"),
                    },
                    Ok((None, _)) => {}
                    Err(_) => anomaly(ctx, dir, "invalid_handshake_message"),
                }
                self.stop(dir);
            }
            (Direction::ToClient, ht::SERVER_HELLO_DONE) => self.stop(dir),
            _ => {}
        }
    }
}

/// The body length a handshake message header at the start of `b`
/// declares, once its 4 bytes are there.
fn declared(b: &[u8]) -> Option<usize> {
    let h = b.get(..parser::HANDSHAKE_HEADER)?;
    Some(usize::from(h[1]) << 16 | usize::from(h[2]) << 8 | usize::from(h[3]))
}

impl StreamConsumer for TlsState {
    fn data(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, mut data: &[u8]) {
        while !data.is_empty() && !self.side(dir).done {
            let s = self.side(dir);
            if s.body_left == 0 {
                let n = (parser::RECORD_HEADER - s.head_len).min(data.len());
                if let (Some(dst), Some(src)) =
                    (s.head.get_mut(s.head_len..s.head_len + n), data.get(..n))
                {
                    dst.copy_from_slice(src);
                }
                s.head_len += n;
                data = data.get(n..).unwrap_or_default();
                if s.head_len < parser::RECORD_HEADER {
                    break;
                }
                s.head_len = 0;
                let h = RecordHeader::parse(&s.head);
                let event = if !(ct::CHANGE_CIPHER_SPEC..=ct::HEARTBEAT).contains(&h.content_type) {
                    Some("invalid_record_type")
                } else if h.version >> 8 != 3 {
                    Some("invalid_record_version")
                } else if usize::from(h.length) > parser::MAX_RECORD {
                    Some("record_overflow")
                } else {
                    None
                };
                if let Some(e) = event {
                    anomaly(ctx, dir, e);
                    self.stop(dir);
                    break;
                }
                if matches!(
                    h.content_type,
                    ct::CHANGE_CIPHER_SPEC | ct::APPLICATION_DATA
                ) {
                    // Encrypted from here on.
                    self.stop(dir);
                    break;
                }
                s.body_left = usize::from(h.length);
                s.body_type = h.content_type;
                continue;
            }
            let n = s.body_left.min(data.len());
            s.body_left -= n;
            let body = data.get(..n).unwrap_or_default();
            data = data.get(n..).unwrap_or_default();
            if s.body_type == ct::HANDSHAKE {
                self.handshake(ctx, dir, body);
            }
        }
        self.settle(ctx);
    }

    fn gap(&mut self, ctx: &mut StreamContext<'_>, dir: Direction, _len: u32) {
        self.stop(dir);
        self.settle(ctx);
    }

    fn end(&mut self, ctx: &mut StreamContext<'_>) {
        self.write(ctx);
    }

    fn memuse(&self) -> usize {
        let buffered: usize = self.sides.iter().map(|s| s.hs.capacity()).sum();
        buffered + self.record.heap_bytes()
    }

    /// Drops a message being reassembled (with an anomaly) and writes the
    /// record as it stands: what the hellos said is logged, not lost.
    fn shed(&mut self, ctx: &mut StreamContext<'_>) {
        for dir in [Direction::ToServer, Direction::ToClient] {
            if !self.side(dir).hs.is_empty() {
                anomaly(ctx, dir, "memcap_reached");
            }
            self.stop(dir);
        }
        self.write(ctx);
    }

    fn finished(&self) -> bool {
        self.written
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;
    use Direction::{ToClient, ToServer};

    fn run(s: &mut TlsState, steps: &[(Direction, &[u8])], end: bool) -> Vec<AppRecord> {
        let mut out = Vec::new();
        let mut ctx = StreamContext {
            ts: Timestamp(0),
            records: &mut out,
        };
        for (d, b) in steps {
            s.data(&mut ctx, *d, b);
        }
        if end {
            s.end(&mut ctx);
        }
        out
    }

    /// Hand-built ClientHello message (header included): TLS 1.2 legacy
    /// version, one suite, SNI `name`, padded with `pad` bytes of a
    /// padding extension (21) placed before the SNI.
    pub(crate) fn client_hello(name: &[u8], pad: usize) -> Vec<u8> {
        let mut exts = Vec::new();
        if pad > 0 {
            exts.extend(21u16.to_be_bytes()); // padding
            exts.extend((pad as u16).to_be_bytes());
            exts.extend(std::iter::repeat_n(0u8, pad));
        }
        exts.extend([0x00, 0x00]); // server_name
        exts.extend(((name.len() + 5) as u16).to_be_bytes());
        exts.extend(((name.len() + 3) as u16).to_be_bytes()); // list
        exts.push(0); // host_name
        exts.extend((name.len() as u16).to_be_bytes());
        exts.extend(name);
        let mut body = vec![0x03, 0x03]; // legacy_version
        body.extend([0x22; 32]); // random
        body.push(0); // session id
        body.extend([0x00, 0x02, 0xc0, 0x2f]); // one suite
        body.extend([0x01, 0x00]); // null compression
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let mut m = vec![ht::CLIENT_HELLO];
        m.extend(&(body.len() as u32).to_be_bytes()[1..]);
        m.extend(body);
        m
    }

    /// Handshake bytes in records of at most `frag` bytes each.
    pub(crate) fn records(hs: &[u8], frag: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for c in hs.chunks(frag.max(1)) {
            out.extend([ct::HANDSHAKE, 0x03, 0x01]);
            out.extend((c.len() as u16).to_be_bytes());
            out.extend(c);
        }
        out
    }

    fn tls(out: &[AppRecord]) -> Vec<&Record> {
        out.iter()
            .filter_map(|r| match r {
                AppRecord::Tls(t) => Some(&**t),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn client_hello_alone_is_written_at_the_end() {
        let mut s = TlsState::new(&TlsConfig::default());
        let ch = records(&client_hello(b"pacs.example", 0), 1 << 14);
        let out = run(&mut s, &[(ToServer, &ch)], false);
        assert!(tls(&out).is_empty());
        assert!(!s.finished());
        let out = run(&mut s, &[], true);
        assert_eq!(tls(&out)[0].sni(), Some(&b"pacs.example"[..]));
    }

    #[test]
    fn client_hello_fragmented_one_byte_per_record_gives_the_same_record() {
        let msg = client_hello(b"pacs.example", 0);
        let whole = run(
            &mut TlsState::new(&TlsConfig::default()),
            &[(ToServer, &records(&msg, 1 << 14))],
            true,
        );
        let split = run(
            &mut TlsState::new(&TlsConfig::default()),
            &[(ToServer, &records(&msg, 1))],
            true,
        );
        assert_eq!(tls(&whole), tls(&split));
        assert!(tls(&whole)[0]
            .client_hello
            .as_ref()
            .unwrap()
            .ja4
            .starts_with("t12d0101"));
    }

    #[test]
    fn a_padded_hello_over_the_limit_is_skipped_with_an_anomaly() {
        let cfg = TlsConfig {
            max_handshake: crate::memcap::ByteSize(1024),
        };
        let msg = client_hello(b"pacs.example", 4000);
        let mut s = TlsState::new(&cfg);
        let out = run(&mut s, &[(ToServer, &records(&msg, 1000))], true);
        assert!(tls(&out).is_empty());
        assert_eq!(
            crate::app::testing::anomaly_events(&out),
            ["handshake_too_large"]
        );
        assert_eq!(s.memuse(), 0);
        // The default holds it, padding and all.
        let out = run(
            &mut TlsState::new(&TlsConfig::default()),
            &[(ToServer, &records(&msg, 1000))],
            true,
        );
        assert_eq!(tls(&out)[0].sni(), Some(&b"pacs.example"[..]));
    }

    #[test]
    fn bad_record_headers_stop_the_direction_with_their_anomaly() {
        for (bytes, event) in [
            (
                &[0x17 + 10, 0x03, 0x03, 0x00, 0x01][..],
                "invalid_record_type",
            ),
            (&[0x16, 0x04, 0x03, 0x00, 0x01], "invalid_record_version"),
            (&[0x16, 0x03, 0x03, 0x48, 0x01], "record_overflow"),
        ] {
            let mut s = TlsState::new(&TlsConfig::default());
            let out = run(
                &mut s,
                &[
                    (ToServer, bytes),
                    (ToServer, &records(&client_hello(b"x", 0), 99)),
                ],
                true,
            );
            assert_eq!(crate::app::testing::anomaly_events(&out), [event]);
            assert!(tls(&out).is_empty());
        }
    }

    #[test]
    fn encrypted_records_end_both_directions_and_the_parser_finishes() {
        let mut s = TlsState::new(&TlsConfig::default());
        let ch = records(&client_hello(b"a.example", 0), 1 << 14);
        // Hand-built: ChangeCipherSpec from the server, 1 byte.
        let ccs = [0x14, 0x03, 0x03, 0x00, 0x01, 0x01];
        let out = run(&mut s, &[(ToServer, &ch), (ToClient, &ccs)], false);
        assert_eq!(tls(&out).len(), 1);
        assert!(s.finished());
    }

    #[test]
    fn a_malformed_hello_is_an_anomaly() {
        let mut msg = client_hello(b"a.example", 0);
        msg[4 + 35] = 0x7f; // cipher suites length past the body
        let out = run(
            &mut TlsState::new(&TlsConfig::default()),
            &[(ToServer, &records(&msg, 100))],
            true,
        );
        assert_eq!(
            crate::app::testing::anomaly_events(&out),
            ["invalid_handshake_message"]
        );
    }

    /// What the parser writes when asked to shed.
    fn shed(s: &mut TlsState) -> Vec<AppRecord> {
        let mut out = Vec::new();
        s.shed(&mut StreamContext {
            ts: Timestamp(0),
            records: &mut out,
        });
        out
    }

    #[test]
    fn memuse_counts_a_message_being_reassembled_and_shed_frees_it() {
        let mut s = TlsState::new(&TlsConfig::default());
        let r = records(&client_hello(b"a.example", 3000), 1 << 14);
        let out = run(&mut s, &[(ToServer, &r[..2000])], false);
        assert!(out.is_empty());
        assert!(s.memuse() >= 1990, "{}", s.memuse());
        let out = shed(&mut s);
        assert_eq!(s.memuse(), 0);
        assert_eq!(
            crate::app::testing::anomaly_events(&out),
            ["memcap_reached"]
        );
        assert!(s.finished());
    }

    #[test]
    fn a_hello_awaiting_its_answer_is_counted_and_shed_writes_it() {
        let mut s = TlsState::new(&TlsConfig::default());
        let ch = records(&client_hello(b"a.example", 0), 1 << 14);
        run(&mut s, &[(ToServer, &ch)], false);
        let held = s.memuse();
        assert!(held >= b"a.example".len() + 2, "{held}");
        let out = shed(&mut s);
        assert_eq!(s.memuse(), 0);
        assert_eq!(tls(&out)[0].sni(), Some(&b"a.example"[..]));
        assert!(s.finished());
    }

    proptest::proptest! {
        /// Any cut of a client and a server flight, and any record
        /// fragmentation of the ClientHello, yields the same record.
        #[test]
        fn any_split_yields_the_same_record(
            frag in 1usize..400,
            cuts in proptest::collection::vec(1usize..64, 1..40),
        ) {
            let msg = client_hello(b"modality.chu.example", 300);
            let whole = run(&mut TlsState::new(&TlsConfig::default()), &[(ToServer, &records(&msg, 1 << 14))], true);
            let bytes = records(&msg, frag);
            let mut s = TlsState::new(&TlsConfig::default());
            let mut out = Vec::new();
            let mut ctx = StreamContext { ts: Timestamp(0), records: &mut out };
            let mut at = 0;
            let mut i = 0;
            while at < bytes.len() {
                let n = cuts[i % cuts.len()].min(bytes.len() - at);
                s.data(&mut ctx, ToServer, &bytes[at..at + n]);
                at += n;
                i += 1;
            }
            s.end(&mut ctx);
            proptest::prop_assert_eq!(tls(&whole), tls(&out));
        }
    }
}
