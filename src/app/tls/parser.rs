//! Stateless TLS parsing: the record header (RFC 8446 §5.1, RFC 5246
//! §6.2.1), the handshake message header (RFC 8446 §4), and the bodies of
//! ClientHello (§4.1.2), ServerHello (§4.1.3) and the TLS ≤ 1.2
//! Certificate message (RFC 5246 §7.4.2) with the extensions wardwatch
//! reads: server_name (RFC 6066 §3), application_layer_protocol_negotiation
//! (RFC 7301 §3.1), supported_versions (RFC 8446 §4.2.1) and
//! signature_algorithms (RFC 8446 §4.2.3).
//!
//! Every function reads a whole message body that the caller reassembled
//! (bounded by `app_layer.tls.max_handshake`), through [`Reader`], whose
//! reads return `None` past the end: a length field can never make a read
//! leave its slice, and nothing is allocated by a length field — lists
//! grow with the bytes actually present.

use super::{ClientHello, ServerHello, MAX_LIST};

/// Content types of the record layer (RFC 8446 §5.1, RFC 6520 heartbeat).
pub mod content_type {
    pub const CHANGE_CIPHER_SPEC: u8 = 20;
    pub const ALERT: u8 = 21;
    pub const HANDSHAKE: u8 = 22;
    pub const APPLICATION_DATA: u8 = 23;
    pub const HEARTBEAT: u8 = 24;
}

/// Handshake message types (RFC 8446 §4, RFC 5246 §7.4).
pub mod handshake_type {
    pub const CLIENT_HELLO: u8 = 1;
    pub const SERVER_HELLO: u8 = 2;
    pub const CERTIFICATE: u8 = 11;
    pub const SERVER_HELLO_DONE: u8 = 14;
}

/// Extension types (IANA TLS ExtensionType registry).
pub mod extension {
    pub const SERVER_NAME: u16 = 0;
    pub const SIGNATURE_ALGORITHMS: u16 = 13;
    pub const ALPN: u16 = 16;
    pub const SUPPORTED_VERSIONS: u16 = 43;
}

/// Bytes of a record header: type, version, length.
pub const RECORD_HEADER: usize = 5;

/// Longest record body: TLSCiphertext of TLS 1.2 (RFC 5246 §6.2.3,
/// 2^14 + 2048; TLS 1.3 allows 2^14 + 256).
pub const MAX_RECORD: usize = (1 << 14) + 2048;

/// Bytes of a handshake message header: type, 24-bit length.
pub const HANDSHAKE_HEADER: usize = 4;

/// The ServerHello random of a HelloRetryRequest (RFC 8446 §4.1.3:
/// SHA-256 of "HelloRetryRequest").
const HELLO_RETRY_REQUEST: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// A record header.
///
/// ```text
/// struct { ContentType type; ProtocolVersion legacy_record_version;
///          uint16 length; opaque fragment[length]; } TLSPlaintext;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub content_type: u8,
    pub version: u16,
    pub length: u16,
}

impl RecordHeader {
    pub fn parse(b: &[u8; RECORD_HEADER]) -> RecordHeader {
        RecordHeader {
            content_type: b[0],
            version: u16::from_be_bytes([b[1], b[2]]),
            length: u16::from_be_bytes([b[3], b[4]]),
        }
    }
}

/// A GREASE value (RFC 8701 §2: 0x0A0A, 0x1A1A, … 0xFAFA), which
/// fingerprints and version choices ignore.
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// Reads big-endian fields off a slice; every read is `None` past the end.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Reader<'a> {
        Reader { b }
    }
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (h, t) = self.b.split_at_checked(n)?;
        self.b = t;
        Some(h)
    }
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    pub fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
    /// `opaque x<0..2^8-1>`.
    pub fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    /// `opaque x<0..2^16-1>`.
    pub fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
    /// `opaque x<0..2^24-1>`.
    pub fn vec24(&mut self) -> Option<&'a [u8]> {
        let n = self.u24()?;
        self.take(n)
    }
    pub fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
}

/// The 16-bit values of a list, in order (a trailing odd byte ignored).
fn u16s(b: &[u8]) -> impl Iterator<Item = u16> + '_ {
    b.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]))
}

/// Why a handshake message body is malformed (Suricata's
/// `invalid_handshake_message` covers them all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// The extensions block of a hello: `(type, body)` pairs, then whether
/// the block was cut (a length running past its end).
fn extensions<'a>(r: &mut Reader<'a>) -> Result<Vec<(u16, &'a [u8])>, Malformed> {
    // TLS ≤ 1.2 hellos may end before the extensions (RFC 5246 §7.4.1.2).
    if r.is_empty() {
        return Ok(Vec::new());
    }
    let mut block = Reader::new(r.vec16().ok_or(Malformed)?);
    let mut out = Vec::new();
    while !block.is_empty() {
        let ty = block.u16().ok_or(Malformed)?;
        let body = block.vec16().ok_or(Malformed)?;
        out.push((ty, body));
    }
    Ok(out)
}

/// `server_name` (RFC 6066 §3): the first `host_name` entry.
fn server_name(b: &[u8]) -> Option<&[u8]> {
    let mut list = Reader::new(Reader::new(b).vec16()?);
    while !list.is_empty() {
        let name_type = list.u8()?;
        let name = list.vec16()?;
        if name_type == 0 {
            return Some(name);
        }
    }
    None
}

/// `application_layer_protocol_negotiation` (RFC 7301 §3.1): the protocol
/// names, at most [`MAX_LIST`].
fn alpn(b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let Some(list) = Reader::new(b).vec16() else {
        return out;
    };
    let mut list = Reader::new(list);
    while out.len() < MAX_LIST {
        match list.vec8() {
            Some(name) => out.push(name.to_vec()),
            None => break,
        }
    }
    out
}

/// ClientHello body (RFC 8446 §4.1.2):
///
/// ```text
/// ProtocolVersion legacy_version; Random random[32];
/// opaque legacy_session_id<0..32>; CipherSuite cipher_suites<2..2^16-2>;
/// opaque legacy_compression_methods<1..2^8-1>;
/// Extension extensions<8..2^16-1>;
/// ```
///
/// # Errors
/// A length runs past the body.
pub fn client_hello(body: &[u8]) -> Result<ClientHello, Malformed> {
    let mut r = Reader::new(body);
    let legacy_version = r.u16().ok_or(Malformed)?;
    r.take(32).ok_or(Malformed)?;
    let session_id = r.vec8().ok_or(Malformed)?;
    let suites = r.vec16().ok_or(Malformed)?;
    r.vec8().ok_or(Malformed)?;
    let exts = extensions(&mut r)?;
    let mut ch = ClientHello {
        legacy_version,
        session_id: session_id.to_vec(),
        cipher_suites: u16s(suites).collect(),
        extensions: exts.iter().map(|&(t, _)| t).collect(),
        ..ClientHello::default()
    };
    for &(ty, b) in &exts {
        match ty {
            extension::SERVER_NAME if ch.sni.is_none() => {
                ch.sni = server_name(b).map(<[u8]>::to_vec);
            }
            extension::ALPN if ch.alpns.is_empty() => ch.alpns = alpn(b),
            extension::SUPPORTED_VERSIONS if ch.supported_versions.is_empty() => {
                ch.supported_versions = Reader::new(b)
                    .vec8()
                    .map_or(Vec::new(), |v| u16s(v).collect());
            }
            extension::SIGNATURE_ALGORITHMS if ch.signature_algorithms.is_empty() => {
                ch.signature_algorithms = Reader::new(b)
                    .vec16()
                    .map_or(Vec::new(), |v| u16s(v).collect());
            }
            _ => {}
        }
    }
    ch.ja4 = super::ja4::ja4(&ch);
    Ok(ch)
}

/// ServerHello body (RFC 8446 §4.1.3):
///
/// ```text
/// ProtocolVersion legacy_version; Random random[32];
/// opaque legacy_session_id_echo<0..32>; CipherSuite cipher_suite;
/// uint8 legacy_compression_method; Extension extensions<6..2^16-1>;
/// ```
///
/// # Errors
/// A length runs past the body.
pub fn server_hello(body: &[u8]) -> Result<ServerHello, Malformed> {
    let mut r = Reader::new(body);
    let legacy_version = r.u16().ok_or(Malformed)?;
    let random = r.take(32).ok_or(Malformed)?;
    let session_id = r.vec8().ok_or(Malformed)?;
    let cipher_suite = r.u16().ok_or(Malformed)?;
    r.u8().ok_or(Malformed)?;
    let exts = extensions(&mut r)?;
    let mut sh = ServerHello {
        legacy_version,
        selected_version: None,
        cipher_suite,
        session_id: session_id.to_vec(),
        extensions: exts.iter().map(|&(t, _)| t).collect(),
        alpn: None,
        retry_request: random == HELLO_RETRY_REQUEST,
    };
    for &(ty, b) in &exts {
        match ty {
            extension::SUPPORTED_VERSIONS => {
                sh.selected_version = Reader::new(b).u16().or(sh.selected_version);
            }
            extension::ALPN => sh.alpn = alpn(b).into_iter().next().or(sh.alpn.take()),
            _ => {}
        }
    }
    Ok(sh)
}

/// Certificate body of TLS ≤ 1.2 (RFC 5246 §7.4.2):
/// `ASN.1Cert certificate_list<0..2^24-1>`, each `opaque ASN.1Cert<1..2^24-1>`.
/// Returns the first (the server's own) certificate and how many the
/// chain holds.
///
/// # Errors
/// A length runs past the body.
pub fn certificate_list(body: &[u8]) -> Result<(Option<&[u8]>, usize), Malformed> {
    let mut list = Reader::new(Reader::new(body).vec24().ok_or(Malformed)?);
    let mut first = None;
    let mut n = 0usize;
    while !list.is_empty() {
        let der = list.vec24().ok_or(Malformed)?;
        first = first.or(Some(der));
        n = n.saturating_add(1);
    }
    Ok((first, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grease_values_are_the_sixteen_of_rfc_8701() {
        let all: Vec<u16> = (0..=u16::MAX).filter(|&v| is_grease(v)).collect();
        assert_eq!(all.len(), 16);
        assert_eq!(all[0], 0x0a0a);
        assert_eq!(all[15], 0xfafa);
        assert!(!is_grease(0x0a1a) && !is_grease(0x1301));
    }

    #[test]
    fn reader_reads_nothing_past_the_end() {
        let mut r = Reader::new(&[0x00, 0x05, 1, 2]);
        assert_eq!(r.vec16(), None);
        let mut r = Reader::new(&[0x00, 0x00, 0x02, 7, 8]);
        assert_eq!(r.vec24(), Some(&[7u8, 8][..]));
        assert!(r.is_empty());
        assert_eq!(r.u8(), None);
    }

    /// Hand-built ClientHello body with the given extensions block.
    fn hello_body(exts: &[u8]) -> Vec<u8> {
        let mut b = vec![0x03, 0x03]; // legacy_version TLS 1.2
        b.extend([0x11; 32]); // random
        b.extend([0x00]); // no session id
        b.extend([0x00, 0x04, 0x13, 0x01, 0x0a, 0x0a]); // 2 suites, one GREASE
        b.extend([0x01, 0x00]); // compression: null
        b.extend((exts.len() as u16).to_be_bytes());
        b.extend(exts);
        b
    }

    #[test]
    fn client_hello_yields_sni_alpn_and_versions() {
        let exts = [
            // server_name: list of 9 bytes, host_name "pacs.x"
            &[0x00, 0x00, 0x00, 0x0b, 0x00, 0x09, 0x00, 0x00, 0x06][..],
            b"pacs.x",
            // ALPN: list of 8 bytes: "h2", "mqtt"
            &[0x00, 0x10, 0x00, 0x0a, 0x00, 0x08, 0x02],
            b"h2",
            &[0x04],
            b"mqtt",
            // supported_versions: GREASE, TLS 1.3, TLS 1.2
            &[
                0x00, 0x2b, 0x00, 0x07, 0x06, 0x1a, 0x1a, 0x03, 0x04, 0x03, 0x03,
            ],
        ]
        .concat();
        let ch = client_hello(&hello_body(&exts)).unwrap();
        assert_eq!(ch.sni.as_deref(), Some(&b"pacs.x"[..]));
        assert_eq!(ch.alpns, vec![b"h2".to_vec(), b"mqtt".to_vec()]);
        assert_eq!(ch.supported_versions, vec![0x1a1a, 0x0304, 0x0303]);
        assert_eq!(ch.cipher_suites, vec![0x1301, 0x0a0a]);
        assert_eq!(ch.extensions, vec![0, 16, 43]);
        assert_eq!(ch.version(), 0x0304);
    }

    #[test]
    fn client_hello_cut_anywhere_is_malformed_not_a_panic() {
        let exts = [0x00, 0x00, 0x00, 0x05, 0x00, 0x03, 0x00, 0x00, 0x00];
        let body = hello_body(&exts);
        assert!(client_hello(&body).is_ok());
        for n in 0..body.len() {
            // A hello that ends before its extensions is a TLS 1.2 hello
            // without extensions; anything else cut is malformed.
            let r = client_hello(&body[..n]);
            assert!(r.is_err() || n == 43, "{n}");
        }
    }

    #[test]
    fn oversized_declared_lengths_are_malformed() {
        let mut body = hello_body(&[]);
        body[35] = 0xff; // cipher_suites length 0xff04 > what follows
        assert_eq!(client_hello(&body), Err(Malformed));
        assert_eq!(certificate_list(&[0xff, 0xff, 0xff, 0x00]), Err(Malformed));
        assert_eq!(server_hello(&[0x03, 0x03]), Err(Malformed));
    }

    #[test]
    fn server_hello_reads_the_selected_version_alpn_and_retry() {
        let mut b = vec![0x03, 0x03]; // legacy_version
        b.extend(HELLO_RETRY_REQUEST); // random of a HelloRetryRequest
        b.extend([0x00]); // no session id
        b.extend([0x13, 0x02, 0x00]); // suite, compression
                                      // extensions: supported_versions 0x0304, ALPN "h2"
        b.extend([0x00, 0x0f, 0x00, 0x2b, 0x00, 0x02, 0x03, 0x04]);
        b.extend([0x00, 0x10, 0x00, 0x05, 0x00, 0x03, 0x02, b'h', b'2']);
        let sh = server_hello(&b).unwrap();
        assert_eq!(sh.selected_version, Some(0x0304));
        assert_eq!(sh.cipher_suite, 0x1302);
        assert_eq!(sh.alpn.as_deref(), Some(&b"h2"[..]));
        assert!(sh.retry_request);
        assert_eq!(sh.version(), 0x0304);
    }
}
