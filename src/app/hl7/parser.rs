//! Stateless HL7 v2 byte parsing: header segments and the delimiters they
//! declare, segments, fields, components, repetitions and escape sequences
//! (HL7 v2.5.1 ch. 2, §2.5 message construction rules, §2.7 escape
//! sequences; MLLP: HL7 v2.5.1 Appendix C.4.3).
//!
//! ```text
//! MLLP frame:   <SB=0x0B> message <EB=0x1C><CR=0x0D>
//! message:      MSH|^~\&|SendApp|SendFac|RcvApp|RcvFac|Time||ADT^A01^ADT_A01|Ctrl|P|2.5<CR>
//!                  │ └─┬┘
//!                  │   MSH-2: component ^, repetition ~, escape \, subcomponent &,
//!                  │          truncation # (v2.7+) — any other punctuation allowed
//!                  MSH-1: the field separator itself
//!               PID|1||MRN^^^AUTH^MR~NIR^^^INS-NIR^NH||TEST^JANE||19000101|F<CR>
//! ```
//!
//! Numbering: in MSH (and the batch headers FHS, BHS) the field separator
//! is field 1 and the encoding characters field 2, so the text after the
//! second separator is field 3; in every other segment the text after the
//! first separator is field 1.
//!
//! Invariants: every function reads only the slice it is given, returns
//! sub-slices of it, and is linear in its length; nothing here allocates
//! except [`decode`], whose output is at most as long as its input (a hex
//! escape shrinks, every other replacement is one byte for at least three).

/// MLLP start block.
pub const SB: u8 = 0x0b;
/// MLLP end block (followed by CR).
pub const EB: u8 = 0x1c;
/// Segment terminator.
pub const CR: u8 = b'\r';
/// Accepted as a segment terminator too (alone or after CR): some senders
/// write lines.
pub const LF: u8 = b'\n';

/// Longest header prefix [`header`] needs to decide: a 3-letter name, the
/// field separator, up to five encoding characters and the separator.
pub const HEADER_PREFIX: usize = 10;

/// The delimiters a message declares in MSH-1 and MSH-2. An encoding
/// character MSH-2 leaves out is not used by the message (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiters {
    pub field: u8,
    pub component: Option<u8>,
    pub repetition: Option<u8>,
    pub escape: Option<u8>,
    pub subcomponent: Option<u8>,
    /// v2.7 and later.
    pub truncation: Option<u8>,
}

impl Default for Delimiters {
    /// The recommended `|^~\&`.
    fn default() -> Self {
        Delimiters {
            field: b'|',
            component: Some(b'^'),
            repetition: Some(b'~'),
            escape: Some(b'\\'),
            subcomponent: Some(b'&'),
            truncation: None,
        }
    }
}

/// A segment that starts a message or a batch envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderKind {
    /// MSH: a message.
    Msh,
    /// BHS: batch header.
    Bhs,
    /// FHS: file header.
    Fhs,
}

/// Answer of a check that may need more bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<T> {
    Yes(T),
    No,
    /// The bytes are a consistent prefix too short to decide.
    NeedMore,
}

/// Characters allowed as delimiters: printable ASCII punctuation (the
/// standard's recommended set is `|^~\&#`; letters, digits, space and
/// control bytes would make segments unreadable).
fn is_delimiter(b: u8) -> bool {
    b.is_ascii_punctuation()
}

/// Is `seg` the start of a header segment — `MSH`, `BHS` or `FHS`, a
/// delimiter as field separator, two to five distinct encoding characters
/// (all delimiters, none equal to the field separator) ended by the field
/// separator or by the segment's end? `complete`: `seg` is the whole
/// segment (its terminator was seen), so a short one is `No`, not
/// `NeedMore`.
pub fn header(seg: &[u8], complete: bool) -> Verdict<(HeaderKind, Delimiters)> {
    let need = if complete {
        Verdict::No
    } else {
        Verdict::NeedMore
    };
    // Most segments are no header: their first byte says so.
    let kind = match seg {
        [b'M', b'S', b'H', ..] => HeaderKind::Msh,
        [b'B', b'H', b'S', ..] => HeaderKind::Bhs,
        [b'F', b'H', b'S', ..] => HeaderKind::Fhs,
        [] | [b'M'] | [b'M', b'S'] | [b'B' | b'F'] | [b'B' | b'F', b'H'] => return need,
        _ => return Verdict::No,
    };
    // The recommended delimiters, as nearly every sender writes them.
    if let [_, _, _, b'|', b'^', b'~', b'\\', b'&', b'|', ..] = seg {
        return Verdict::Yes((kind, Delimiters::default()));
    }
    let Some(&field) = seg.get(3) else {
        return need;
    };
    if !is_delimiter(field) {
        return Verdict::No;
    }
    // The encoding characters met so far; 0 (no delimiter) where none.
    let mut enc = [0u8; 5];
    for i in 0..=5 {
        match seg.get(4 + i) {
            None if complete && i >= 2 => return Verdict::Yes((kind, delimiters(field, enc))),
            None => return need,
            Some(&b) if b == field => {
                return if i >= 2 {
                    Verdict::Yes((kind, delimiters(field, enc)))
                } else {
                    Verdict::No
                };
            }
            Some(&b) if i < 5 && is_delimiter(b) && !enc.contains(&b) => {
                if let Some(slot) = enc.get_mut(i) {
                    *slot = b;
                }
            }
            Some(_) => return Verdict::No,
        }
    }
    Verdict::No
}

fn delimiters(field: u8, enc: [u8; 5]) -> Delimiters {
    let d = |b: u8| (b != 0).then_some(b);
    Delimiters {
        field,
        component: d(enc[0]),
        repetition: d(enc[1]),
        escape: d(enc[2]),
        subcomponent: d(enc[3]),
        truncation: d(enc[4]),
    }
}

/// The bytes of `block` equal to `byte`: bit `i` set when `block[i]` is.
/// Sixteen bytes in three vector instructions (SSE2, part of every x86_64
/// CPU; an eight-byte SWAR word took about a dozen): HL7 fields are a few
/// bytes long, so a search that sets up for long haystacks (`memchr`)
/// would pay its set-up once per field.
#[inline]
#[allow(unsafe_code)]
pub fn mask16(block: &[u8; 16], byte: u8) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
        };
        // SAFETY: SSE2 is in the x86_64 baseline (every such CPU has it and
        // the target enables it); the unaligned load reads exactly the 16
        // bytes `block` borrows.
        let bits = unsafe {
            let v = _mm_loadu_si128(block.as_ptr().cast());
            _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(i8::from_ne_bytes([byte]))))
        };
        // The mask of 16 lanes fills the low 16 bits only.
        u32::from_ne_bytes(bits.to_ne_bytes())
    }
    #[cfg(not(target_arch = "x86_64"))]
    mask16_scalar(block, byte)
}

/// [`mask16`] byte by byte: the other targets' version, and the
/// reference the vector version is tested against.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn mask16_scalar(block: &[u8; 16], byte: u8) -> u32 {
    block
        .iter()
        .enumerate()
        .fold(0, |m, (i, &b)| m | (u32::from(b == byte) << i))
}

/// Searches for segment and line ends, with the vectorised `memchr`
/// implementation chosen and set up once per process ([`Search::get`])
/// rather than once per search: segments and lines are a few dozen bytes,
/// so the set-up would cost about as much as the search.
#[derive(Debug, Clone, Copy)]
pub struct Search {
    #[cfg(target_arch = "x86_64")]
    cr: Option<memchr::arch::x86_64::avx2::memchr::One>,
    #[cfg(target_arch = "x86_64")]
    line_end: Option<memchr::arch::x86_64::avx2::memchr::Three>,
    #[cfg(target_arch = "x86_64")]
    special: Option<memchr::arch::x86_64::avx2::memchr::Three>,
}

impl Search {
    /// The searcher, set up on first use.
    pub fn get() -> &'static Search {
        static SEARCH: std::sync::OnceLock<Search> = std::sync::OnceLock::new();
        SEARCH.get_or_init(Search::new)
    }

    fn new() -> Search {
        Search {
            #[cfg(target_arch = "x86_64")]
            cr: memchr::arch::x86_64::avx2::memchr::One::new(CR),
            #[cfg(target_arch = "x86_64")]
            line_end: memchr::arch::x86_64::avx2::memchr::Three::new(CR, LF, EB),
            #[cfg(target_arch = "x86_64")]
            special: memchr::arch::x86_64::avx2::memchr::Three::new(LF, EB, SB),
        }
    }

    /// The first CR in `hay`.
    pub fn cr(&self, hay: &[u8]) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        if let Some(one) = &self.cr {
            return one.find(hay);
        }
        memchr::memchr(CR, hay)
    }

    /// The first line end (CR, LF or an end block) in `hay`.
    pub fn line_end(&self, hay: &[u8]) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        if let Some(three) = &self.line_end {
            return three.find(hay);
        }
        memchr::memchr3(CR, LF, EB, hay)
    }

    /// The first byte that is rare inside a message (LF, an end or a start
    /// block) in `hay`.
    pub fn special(&self, hay: &[u8]) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        if let Some(three) = &self.special {
            return three.find(hay);
        }
        memchr::memchr3(LF, EB, SB, hay)
    }
}

/// Is `b` a segment id: an upper-case letter then two upper-case letters
/// or digits (`PID`, `PV1`, `ZX9`)?
pub fn is_segment_id(b: &[u8]) -> bool {
    matches!(b, [a, x, y] if a.is_ascii_uppercase()
        && (x.is_ascii_uppercase() || x.is_ascii_digit())
        && (y.is_ascii_uppercase() || y.is_ascii_digit()))
}

/// The segments of a message's canonical text (each ended by one CR).
pub fn segments(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|&b| b == CR).filter(|s| !s.is_empty())
}

/// The segment's name: its first three bytes.
pub fn segment_name(seg: &[u8]) -> &[u8] {
    seg.get(..3).unwrap_or(seg)
}

/// Whether the segment counts its fields as MSH does (MSH-1 is the field
/// separator).
fn header_numbering(seg: &[u8]) -> bool {
    matches!(segment_name(seg), b"MSH" | b"BHS" | b"FHS")
}

/// Field `n` (1-based, in the segment's own numbering) of `seg`, without
/// its separators; `None` when the segment has fewer fields. The segment
/// ends at its first CR: `seg` may run on into the segments after it.
pub fn field<'a>(seg: &'a [u8], n: usize, d: &Delimiters) -> Option<&'a [u8]> {
    if n == 0 {
        return None;
    }
    // Cut from the segment's first byte, the name is piece 0: in MSH
    // (MSH-1 being the separator itself) MSH-2 is piece 1, elsewhere
    // field 1 is. Reading from the name gives [`piece_in_blocks`] a
    // whole block in short segments (`MSA|AA|C1`).
    let index = if header_numbering(seg) {
        if n == 1 {
            return seg.get(3..4);
        }
        n - 1
    } else {
        if seg.get(3) != Some(&d.field) {
            return None;
        }
        n
    };
    piece_in_blocks(seg, d.field, index)
}

/// [`piece`] of a segment cut at `sep` up to its CR, sixteen bytes at a
/// time ([`mask16`]), the last block overlapping the one before it
/// (segments run to dozens of bytes, where a field's value or a
/// component is a few).
fn piece_in_blocks(value: &[u8], sep: u8, index: usize) -> Option<&[u8]> {
    let len = value.len();
    if len < 16 {
        return piece(value, Some(sep), Some(CR), index);
    }
    let mut start = 0;
    let mut k = 0;
    let mut base = 0;
    while base < len {
        // The next block, or the last 16 bytes with those already read
        // masked out.
        let (at, skip) = if base + 16 <= len {
            (base, 0)
        } else {
            (len - 16, base - (len - 16))
        };
        let Some(block) = value
            .get(at..at + 16)
            .and_then(|b| <&[u8; 16]>::try_from(b).ok())
        else {
            break;
        };
        let (s, t) = (mask16(block, sep), mask16(block, CR));
        let mut cuts = (s | t) >> skip << skip;
        while cuts != 0 {
            let bit = cuts & cuts.wrapping_neg();
            let i = at + bit.trailing_zeros() as usize;
            if t & bit != 0 || k == index {
                return (k == index).then(|| value.get(start..i)).flatten();
            }
            k += 1;
            start = i + 1;
            cuts &= cuts - 1;
        }
        base = at + 16;
    }
    (k == index).then(|| value.get(start..)).flatten()
}

/// Piece `index` (0-based) of `value` cut at `sep`, looking no further
/// than the first `stop`; `None` when there are fewer pieces. An absent
/// delimiter cuts nothing. One pass, no iterator state: fields and
/// components are read on every message.
fn piece(value: &[u8], sep: Option<u8>, stop: Option<u8>, index: usize) -> Option<&[u8]> {
    let mut start = 0;
    let mut k = 0;
    for (i, &b) in value.iter().enumerate() {
        if Some(b) == stop {
            return (k == index).then(|| value.get(start..i)).flatten();
        }
        if Some(b) == sep {
            if k == index {
                return value.get(start..i);
            }
            k += 1;
            start = i + 1;
        }
    }
    (k == index).then(|| value.get(start..)).flatten()
}

/// Pieces of `value` cut at `sep` (the whole value when the message has no
/// such delimiter).
pub fn split(value: &[u8], sep: Option<u8>) -> impl Iterator<Item = &[u8]> {
    let sep = sep.unwrap_or(0);
    // NUL never separates: it is no delimiter.
    value.split(move |&b| b == sep && sep != 0)
}

/// Component `n` (1-based) of the first repetition of `value`; empty when
/// absent.
pub fn component<'a>(value: &'a [u8], n: usize, d: &Delimiters) -> &'a [u8] {
    let Some(index) = n.checked_sub(1) else {
        return &[];
    };
    piece(value, d.component, d.repetition, index).unwrap_or(&[])
}

/// Appends `value` to `out` as a reader of the message sees it: escape
/// sequences decoded (§2.7: `\F\ \S\ \T\ \R\ \E\ \P\` the delimiters,
/// `\Xhh…\` bytes; highlighting `\H\ \N\`, character-set switches
/// `\Cxxyy\ \Mxxyyzz\`, locally defined `\Z…\` and formatting commands
/// other than `\.br\` removed; `\.br\` a line feed), and the message's own
/// delimiters written as the recommended `^ ~ &` so that a value reads the
/// same whatever MSH-2 declared. A malformed sequence (unterminated, odd or
/// non-hex `\X`) is kept as written.
pub fn decode(value: &[u8], d: &Delimiters, out: &mut Vec<u8>) {
    let canonical = |b: u8| -> u8 {
        if Some(b) == d.component {
            b'^'
        } else if Some(b) == d.repetition {
            b'~'
        } else if Some(b) == d.subcomponent {
            b'&'
        } else {
            b
        }
    };
    let mut i = 0;
    while let Some(&b) = value.get(i) {
        if Some(b) != d.escape {
            out.push(canonical(b));
            i += 1;
            continue;
        }
        let rest = value.get(i + 1..).unwrap_or(&[]);
        let Some(end) = rest.iter().position(|&c| Some(c) == d.escape) else {
            out.extend(value.get(i..).unwrap_or(&[]).iter().map(|&c| canonical(c)));
            return;
        };
        let seq = rest.get(..end).unwrap_or(&[]);
        if !escape(seq, d, out) {
            out.extend(
                value
                    .get(i..i + end + 2)
                    .unwrap_or(&[])
                    .iter()
                    .map(|&c| canonical(c)),
            );
        }
        i += end + 2;
    }
}

/// Decodes one escape sequence (the bytes between the escape characters);
/// false when it is not one.
fn escape(seq: &[u8], d: &Delimiters, out: &mut Vec<u8>) -> bool {
    let lit = |c: Option<u8>, out: &mut Vec<u8>| match c {
        Some(c) => {
            out.push(c);
            true
        }
        None => false,
    };
    match seq {
        b"F" => lit(Some(d.field), out),
        b"S" => lit(d.component, out),
        b"T" => lit(d.subcomponent, out),
        b"R" => lit(d.repetition, out),
        b"E" => lit(d.escape, out),
        b"P" => lit(d.truncation, out),
        b"H" | b"N" => true,
        b".br" => {
            out.push(b'\n');
            true
        }
        [b'X', hex @ ..] => {
            if hex.is_empty() || hex.len() % 2 != 0 {
                return false;
            }
            let start = out.len();
            for pair in hex.chunks(2) {
                let v = std::str::from_utf8(pair)
                    .ok()
                    .and_then(|s| u8::from_str_radix(s, 16).ok());
                match v {
                    Some(v) => out.push(v),
                    None => {
                        out.truncate(start);
                        return false;
                    }
                }
            }
            true
        }
        [b'C' | b'M' | b'Z', ..] => true,
        [b'.', ..] => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yes(seg: &[u8], complete: bool) -> (HeaderKind, Delimiters) {
        match header(seg, complete) {
            Verdict::Yes(v) => v,
            v => panic!("{:?}: {v:?}", String::from_utf8_lossy(seg)),
        }
    }

    #[test]
    fn standard_msh_declares_the_recommended_delimiters() {
        let (k, d) = yes(b"MSH|^~\\&|APP", false);
        assert_eq!(k, HeaderKind::Msh);
        assert_eq!(d, Delimiters::default());
    }

    #[test]
    fn every_prefix_of_a_header_needs_more_and_garbage_is_no() {
        let full = b"MSH|^~\\&#|";
        for n in 0..full.len() {
            assert_eq!(header(&full[..n], false), Verdict::NeedMore, "prefix {n}");
        }
        let (_, d) = yes(full, false);
        assert_eq!(d.truncation, Some(b'#'));
        for bad in [
            &b"MSX|"[..],
            b"msh|^~\\&|",
            b"MSHA^~\\&|",
            b"MSH| ~\\&|",
            b"MSH|^^\\&|",
            b"MSH|^|",
            b"MSH||",
            b"MSH|^~\\&#!|",
            b"PID|1",
        ] {
            assert_eq!(header(bad, false), Verdict::No, "{:?}", bad);
        }
    }

    #[test]
    fn custom_delimiters_are_read_from_msh() {
        // Hand-built: field separator '!', component '*', repetition '#',
        // escape '%', subcomponent '@'.
        let (_, d) = yes(b"MSH!*#%@!APP", false);
        assert_eq!(d.field, b'!');
        assert_eq!(d.component, Some(b'*'));
        assert_eq!(d.repetition, Some(b'#'));
        assert_eq!(d.escape, Some(b'%'));
        assert_eq!(d.subcomponent, Some(b'@'));
        let seg = b"PID!1!!ID1*AUTH#ID2!!DOE*JOHN";
        assert_eq!(field(seg, 3, &d), Some(&b"ID1*AUTH#ID2"[..]));
        assert_eq!(component(field(seg, 5, &d).unwrap(), 2, &d), b"JOHN");
        let mut out = Vec::new();
        decode(b"ID1*AUTH#ID2", &d, &mut out);
        assert_eq!(out, b"ID1^AUTH~ID2");
    }

    #[test]
    fn complete_short_batch_header_is_a_header() {
        assert_eq!(header(b"BHS|^~\\&", false), Verdict::NeedMore);
        assert_eq!(yes(b"BHS|^~\\&", true).0, HeaderKind::Bhs);
        assert_eq!(header(b"FHS|^", true), Verdict::No);
    }

    #[test]
    fn msh_fields_count_the_separator_as_field_one() {
        let d = Delimiters::default();
        let msh = b"MSH|^~\\&|SND|FAC|RCV|RFAC|2024||ADT^A01^ADT_A01|C1|P|2.5";
        assert_eq!(field(msh, 1, &d), Some(&b"|"[..]));
        assert_eq!(field(msh, 2, &d), Some(&b"^~\\&"[..]));
        assert_eq!(field(msh, 3, &d), Some(&b"SND"[..]));
        assert_eq!(field(msh, 9, &d), Some(&b"ADT^A01^ADT_A01"[..]));
        assert_eq!(field(msh, 12, &d), Some(&b"2.5"[..]));
        assert_eq!(field(msh, 13, &d), None);
        let m9 = field(msh, 9, &d).unwrap();
        assert_eq!(component(m9, 1, &d), b"ADT");
        assert_eq!(component(m9, 3, &d), b"ADT_A01");
        assert_eq!(component(m9, 4, &d), b"");
        let pid = b"PID|1||MRN";
        assert_eq!(field(pid, 1, &d), Some(&b"1"[..]));
        assert_eq!(field(pid, 3, &d), Some(&b"MRN"[..]));
        assert_eq!(field(b"PID", 1, &d), None);
        assert_eq!(field(b"PID^1", 1, &d), None);
    }

    #[test]
    fn escapes_decode_to_the_delimiters_and_bytes() {
        let d = Delimiters::default();
        let mut out = Vec::new();
        decode(
            b"A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\F\\X4142\\G\\H\\bold\\N\\\\.br\\x",
            &d,
            &mut out,
        );
        assert_eq!(out, b"A|B^C&D~E\\FABGbold\nx");
    }

    #[test]
    fn malformed_escapes_are_kept_as_written() {
        let d = Delimiters::default();
        for v in [
            &b"A\\X4\\B"[..],
            b"A\\XZZ\\B",
            b"A\\Q\\B",
            b"A\\unterminated",
        ] {
            let mut out = Vec::new();
            decode(v, &d, &mut out);
            assert_eq!(out, v, "{:?}", String::from_utf8_lossy(v));
        }
        // A delimiter the message does not declare cannot be escaped.
        let mut no_trunc = Vec::new();
        decode(b"\\P\\", &d, &mut no_trunc);
        assert_eq!(no_trunc, b"\\P\\");
    }

    #[test]
    fn mask16_marks_exactly_the_bytes_the_scalar_version_marks() {
        // Hand-built blocks: every byte value in every lane among
        // neighbours one bit away from it, and runs of it at the block's
        // edges.
        for b in 0..=255u8 {
            for lane in 0..16 {
                for other in [b ^ 1, b ^ 0x80, b.wrapping_sub(1), !b] {
                    let mut block = [other; 16];
                    block[lane] = b;
                    assert_eq!(mask16(&block, b), 1 << lane, "{b} {lane} {other}");
                    assert_eq!(mask16_scalar(&block, b), 1 << lane);
                }
            }
            let mut edges = [!b; 16];
            edges[..2].fill(b);
            edges[14..].fill(b);
            assert_eq!(mask16(&edges, b), 0xc003);
            assert_eq!(mask16(&edges, b), mask16_scalar(&edges, b));
        }
        assert_eq!(mask16(&[7; 16], 7), 0xffff);
    }

    proptest::proptest! {
        /// The block scan cuts as the bytewise one does, on values of 0
        /// to 70 bytes (blocks, overlapped last blocks and short values)
        /// whose separators and CRs fall at every offset.
        #[test]
        fn piece_in_blocks_is_piece_bytewise(
            value in proptest::collection::vec(proptest::sample::select(&b"|^\rab"[..]), 0..70),
            index in 0usize..12,
        ) {
            proptest::prop_assert_eq!(
                piece_in_blocks(&value, b'|', index),
                piece(&value, Some(b'|'), Some(CR), index)
            );
        }
    }

    proptest::proptest! {
        /// `field` and `component` cut as the slice splits of their
        /// definition do (HL7 v2.5.1 §2.5.3), on text made of delimiters.
        #[test]
        fn field_and_component_are_the_pieces_of_splitting(
            seg in proptest::collection::vec(proptest::sample::select(&b"|^~&ab"[..]), 0..24),
            msh in proptest::bool::ANY,
            n in 0usize..8,
            c in 0usize..5,
            no_rep in proptest::bool::ANY,
        ) {
            let d = Delimiters {
                repetition: (!no_rep).then_some(b'~'),
                ..Delimiters::default()
            };
            let mut seg = seg;
            if msh {
                seg.splice(0..0, b"MSH|^~\\&|".iter().copied());
            } else {
                seg.splice(0..0, b"PID".iter().copied());
            }
            let want = if n == 0 {
                None
            } else if msh && n == 1 {
                Some(&seg[3..4])
            } else if msh {
                seg[4..].split(|&b| b == b'|').nth(n - 2)
            } else if seg.get(3) == Some(&b'|') {
                seg[4..].split(|&b| b == b'|').nth(n - 1)
            } else {
                None
            };
            proptest::prop_assert_eq!(field(&seg, n, &d), want);
            let value = &seg[3..];
            let first = if no_rep { value } else { value.split(|&b| b == b'~').next().unwrap() };
            let want = if c == 0 { &[][..] } else { first.split(|&b| b == b'^').nth(c - 1).unwrap_or(&[]) };
            proptest::prop_assert_eq!(component(value, c, &d), want);
        }
    }

    #[test]
    fn segment_ids_are_a_letter_and_two_letters_or_digits() {
        for ok in [&b"PID"[..], b"PV1", b"ZX9", b"OBX"] {
            assert!(is_segment_id(ok));
        }
        for bad in [&b"pid"[..], b"1PV", b"PI", b"PIDX", b"P-D"] {
            assert!(!is_segment_id(bad));
        }
    }
}
