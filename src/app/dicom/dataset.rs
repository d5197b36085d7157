//! An incremental element walker over a data set (PS3.5 §7.1, §7.5, Annex
//! A), fed fragment by fragment as PDVs arrive.
//!
//! It keeps only the top-level attributes of [`KEPT`] — what a SOC needs to
//! know whose data crossed the wire, and the device attributes (General
//! Equipment module, PS3.3 C.7.5.1) the asset inventory reads — and counts
//! every other value down
//! without storing it. Reading stops at Pixel Data (7FE0,0010): the rest of
//! the data set is ignored, not scanned. Sequences of defined length are
//! skipped whole; sequences and items of undefined length are walked with a
//! depth counter (capped at [`MAX_DEPTH`]) so the top level is found again
//! after them.
//!
//! Kept attributes are bounded per data set, whatever the input: at most
//! [`Limits::max_attributes`] of them and [`Limits::max_attribute_bytes`]
//! of their values. A tag normally occurs once; when it repeats, its first
//! and its latest occurrence are kept (a receiver uses one of them) and the
//! occurrences in between are counted as dropped, so a million copies of an
//! element cost two slots. What could not be kept is said in the data set:
//! `attributes_dropped`, and `truncated` for values not read.
//!
//! Transfer syntax: given by the caller (the one the A-ASSOCIATE-AC
//! accepted), or, when the answer was not seen, recognised from the first
//! element header ([`sniff`]) and marked as guessed.
//!
//! Memory: an element header (≤ 12 bytes), the value of one kept attribute
//! (≤ `max_value` bytes), the kept attributes, and for the deflated
//! transfer syntax a streaming inflater (a fixed 32 KiB window and its
//! tables, [`INFLATER_BYTES`]) plus a 32 KiB output block on the stack:
//! inflating never buffers the inflated data set, whatever its size.
//!
//! Text (PS3.5 §6.1): values are decoded with the Specific Character Set
//! (0008,0005): the default repertoire and `ISO_IR 100` as Latin-1 (every
//! byte one code point); `ISO_IR 192` and any other character set as
//! UTF-8, a value that is not UTF-8 written by the output's one rule
//! (bytes from 0x80 as `\xNN`, [`crate::output::mask`]).

use flate2::{Decompress, FlushDecompress, Status};

use super::{Attribute, DataSet};

/// The attributes kept: tag, EVE field name, and whether the value is
/// patient data masked unless `unmask` is set. Sorted by tag.
pub const KEPT: &[(u32, &str, bool)] = &[
    (0x0008_0005, "specific_character_set", false),
    (0x0008_0016, "sop_class_uid", false),
    (0x0008_0018, "sop_instance_uid", false),
    (0x0008_0020, "study_date", false),
    (0x0008_0030, "study_time", false),
    (0x0008_0050, "accession_number", true),
    (0x0008_0052, "query_retrieve_level", false),
    (0x0008_0060, "modality", false),
    (0x0008_0070, "manufacturer", false),
    (0x0008_0080, "institution_name", false),
    (0x0008_0081, "institution_address", false),
    (0x0008_0090, "referring_physician_name", true),
    (0x0008_1010, "station_name", false),
    (0x0008_1030, "study_description", false),
    (0x0008_103E, "series_description", false),
    (0x0008_1050, "performing_physician_name", true),
    (0x0008_1090, "manufacturer_model_name", false),
    (0x0010_0010, "patient_name", true),
    (0x0010_0020, "patient_id", true),
    (0x0010_0021, "issuer_of_patient_id", false),
    (0x0010_0030, "patient_birth_date", true),
    (0x0010_0032, "patient_birth_time", true),
    (0x0010_0040, "patient_sex", true),
    (0x0010_1000, "other_patient_ids", true),
    (0x0010_1001, "other_patient_names", true),
    (0x0010_1005, "patient_birth_name", true),
    (0x0010_1010, "patient_age", true),
    (0x0010_1040, "patient_address", true),
    (0x0010_1060, "patient_mother_birth_name", true),
    (0x0010_1090, "medical_record_locator", true),
    (0x0010_2154, "patient_telephone_numbers", true),
    (0x0010_4000, "patient_comments", true),
    (0x0018_1000, "device_serial_number", false),
    (0x0018_1020, "software_versions", false),
    (0x0020_000D, "study_instance_uid", false),
    (0x0020_000E, "series_instance_uid", false),
    (0x0020_0010, "study_id", false),
];

/// The [`KEPT`] entry of `tag`.
pub fn kept(tag: u32) -> Option<&'static (u32, &'static str, bool)> {
    kept_index(tag).and_then(|i| KEPT.get(i))
}

fn kept_index(tag: u32) -> Option<usize> {
    KEPT.binary_search_by_key(&tag, |k| k.0).ok()
}

/// Nesting of undefined-length sequences and items walked before giving up.
pub const MAX_DEPTH: u8 = 16;

/// The inflater's window (RFC 1951 §2: distances reach 32 KiB back), and
/// the stack buffer inflated bytes are walked from.
const WINDOW: usize = 32 * 1024;

/// Estimated heap bytes of a streaming inflater (miniz_oxide's
/// decompressor: a 32 KiB window and its Huffman tables), charged to the
/// memory budget while a deflated data set is read.
pub const INFLATER_BYTES: usize = 48 * 1024;

/// Heap bytes charged per kept attribute besides its value (the entry and
/// the decoded string's header).
pub const ATTRIBUTE_OVERHEAD: usize = 64;

const PIXEL_DATA: u32 = 0x7FE0_0010;
const ITEM: u32 = 0xFFFE_E000;
const ITEM_END: u32 = 0xFFFE_E00D;
const SEQUENCE_END: u32 = 0xFFFE_E0DD;
const UNDEFINED: u32 = u32::MAX;
/// Bytes [`sniff`] looks at: a tag, and a VR or a 32-bit length.
pub const SNIFF_LEN: usize = 8;

/// How a data set is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syntax {
    pub explicit_vr: bool,
    pub big_endian: bool,
    pub deflated: bool,
}

impl Syntax {
    pub const IMPLICIT_LE: Syntax = Syntax {
        explicit_vr: false,
        big_endian: false,
        deflated: false,
    };
    pub const EXPLICIT_LE: Syntax = Syntax {
        explicit_vr: true,
        big_endian: false,
        deflated: false,
    };
    pub const EXPLICIT_BE: Syntax = Syntax {
        explicit_vr: true,
        big_endian: true,
        deflated: false,
    };
    pub const DEFLATED: Syntax = Syntax {
        explicit_vr: true,
        big_endian: false,
        deflated: true,
    };

    /// The encoding of transfer syntax `uid`: every transfer syntax but
    /// Implicit VR LE (1.2.840.10008.1.2), Explicit VR BE (…1.2.2) and the
    /// deflated ones (…1.2.1.99, …1.2.8.1) encodes its data set as Explicit
    /// VR LE (the compressed ones only change Pixel Data).
    pub fn from_uid(uid: &str) -> Syntax {
        match uid {
            "1.2.840.10008.1.2" => Syntax::IMPLICIT_LE,
            "1.2.840.10008.1.2.2" => Syntax::EXPLICIT_BE,
            "1.2.840.10008.1.2.1.99" | "1.2.840.10008.1.2.8.1" => Syntax::DEFLATED,
            _ => Syntax::EXPLICIT_LE,
        }
    }

    /// The transfer syntax UID that stands for this encoding when nothing
    /// better is known (PS3.5 §10, Annex A).
    pub fn uid(self) -> &'static str {
        match self {
            s if s.deflated => "1.2.840.10008.1.2.1.99",
            s if !s.explicit_vr => "1.2.840.10008.1.2",
            s if s.big_endian => "1.2.840.10008.1.2.2",
            _ => "1.2.840.10008.1.2.1",
        }
    }
}

/// Whether `vr` is a value representation of PS3.5 Table 6.2-1.
fn is_vr(vr: [u8; 2]) -> bool {
    matches!(
        &vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FD"
            | b"FL"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"OB"
            | b"OD"
            | b"OF"
            | b"OL"
            | b"OV"
            | b"OW"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SQ"
            | b"SS"
            | b"ST"
            | b"SV"
            | b"TM"
            | b"UC"
            | b"UI"
            | b"UL"
            | b"UN"
            | b"UR"
            | b"US"
            | b"UT"
            | b"UV"
    )
}

/// Recognises a data set's encoding from its first [`SNIFF_LEN`] bytes,
/// for when the transfer syntax was negotiated out of sight:
/// - a VR after the tag: explicit VR, little or big endian by which
///   reading of the group number is smaller (a data set starts with a low
///   group, (0008,xxxx) in practice);
/// - else a group a data set can start with (0008..=7FE0) and a length
///   that an element at its start can have (under 16 MiB, or undefined),
///   read little endian: implicit VR LE;
/// - else neither: the bytes are taken for a raw deflate stream (Deflated
///   Explicit VR LE), whose first bytes are a block header and Huffman
///   codes, not an element header.
pub fn sniff(b: &[u8]) -> Syntax {
    let byte = |i: usize| b.get(i).copied().unwrap_or(0);
    let le = u16::from_le_bytes([byte(0), byte(1)]);
    let be = u16::from_be_bytes([byte(0), byte(1)]);
    let len = u32::from_le_bytes([byte(4), byte(5), byte(6), byte(7)]);
    if is_vr([byte(4), byte(5)]) {
        if le <= be {
            Syntax::EXPLICIT_LE
        } else {
            Syntax::EXPLICIT_BE
        }
    } else if (0x0008..=0x7FE0).contains(&le) && (len < 1 << 24 || len == UNDEFINED) {
        Syntax::IMPLICIT_LE
    } else {
        Syntax::DEFLATED
    }
}

/// The per-data-set bounds of a [`DataSetReader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest value kept; a longer one is listed as truncated.
    pub max_value: usize,
    /// Attributes kept.
    pub max_attributes: usize,
    /// Value bytes kept over all attributes; past it values are listed as
    /// truncated.
    pub max_attribute_bytes: usize,
    /// Bytes of a deflated data set inflated before giving up on it.
    pub max_inflated: u64,
}

impl Limits {
    /// Generous bounds for tests.
    #[cfg(test)]
    pub fn test(max_value: usize, max_inflated: u64) -> Limits {
        Limits {
            max_value,
            max_attributes: 64,
            max_attribute_bytes: 1 << 20,
            max_inflated,
        }
    }
}

/// Where a kept attribute goes: a new entry, or in place of the latest
/// occurrence of the same tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    New,
    Replace(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The transfer syntax is not known: gathering the first bytes.
    Sniff,
    /// Reading an element header (partially held in `buf`).
    Header,
    /// Collecting the value of a kept attribute into `buf`.
    Value { tag: u32, len: usize, slot: Slot },
    /// Counting down a value that is not kept.
    Skip(u64),
    /// Pixel Data reached, or the data set is unreadable: ignore the rest.
    Done,
}

/// A kept attribute before decoding: tag, raw value, value not read.
type Raw = (u32, Vec<u8>, bool);

/// Walks one data set.
pub struct DataSetReader {
    /// `None` until [`sniff`] decided.
    syntax: Option<Syntax>,
    guessed: bool,
    state: State,
    /// Bytes of an element header, of a kept value, or of the sniffed
    /// start, cut by a fragment end.
    buf: Vec<u8>,
    depth: u8,
    lim: Limits,
    /// Kept attributes in stream order.
    raw: Vec<Raw>,
    /// Per [`KEPT`] entry: index in `raw` of its first and of its latest
    /// occurrence.
    slots: [[Option<u16>; 2]; KEPT.len()],
    /// Value bytes in `raw`.
    kept_bytes: usize,
    /// [`KEPT`] entries with a first occurrence in `raw`.
    distinct: usize,
    /// Occurrences not kept (repeats, over the count limit, shed).
    dropped: u32,
    inflater: Option<Box<Decompress>>,
    inflated: u64,
    /// Wire bytes fed.
    length: u64,
    pixel_data: bool,
    incomplete: bool,
    /// The first problem met, as an anomaly event name.
    error: Option<&'static str>,
}

impl std::fmt::Debug for DataSetReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataSetReader")
            .field("syntax", &self.syntax)
            .field("state", &self.state)
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

/// Whether explicit VR `vr` has a 2-byte reserved field and a 32-bit length
/// (PS3.5 Table 7.1-1).
fn long_vr(vr: [u8; 2]) -> bool {
    matches!(
        &vr,
        b"OB"
            | b"OD"
            | b"OF"
            | b"OL"
            | b"OV"
            | b"OW"
            | b"SQ"
            | b"SV"
            | b"UC"
            | b"UN"
            | b"UR"
            | b"UT"
            | b"UV"
    )
}

impl DataSetReader {
    /// A reader for a data set in `syntax`, or, with `None`, in a syntax
    /// recognised from its first bytes ([`sniff`]).
    pub fn new(syntax: Option<Syntax>, lim: Limits) -> Self {
        let mut r = DataSetReader {
            syntax: None,
            guessed: false,
            state: State::Sniff,
            buf: Vec::new(),
            depth: 0,
            lim,
            raw: Vec::new(),
            slots: [[None; 2]; KEPT.len()],
            kept_bytes: 0,
            distinct: 0,
            dropped: 0,
            inflater: None,
            inflated: 0,
            length: 0,
            pixel_data: false,
            incomplete: false,
            error: None,
        };
        if let Some(s) = syntax {
            r.decide(s);
        }
        r
    }

    fn decide(&mut self, s: Syntax) {
        self.syntax = Some(s);
        self.state = State::Header;
        self.inflater = s.deflated.then(|| Box::new(Decompress::new(false)));
    }

    /// The encoding used, once known.
    pub fn syntax(&self) -> Option<Syntax> {
        self.syntax
    }

    /// The encoding was recognised from the bytes, not given.
    pub fn guessed(&self) -> bool {
        self.guessed
    }

    /// Bytes held for a cut header or value (what the memory bound is
    /// about; kept attributes are bounded separately).
    pub fn buffered(&self) -> usize {
        self.buf.capacity()
    }

    /// Heap bytes held: cut header or value, kept attributes, inflater.
    /// O(1).
    pub fn heap(&self) -> usize {
        self.buf.capacity()
            + self.raw.capacity() * std::mem::size_of::<Raw>()
            + self.raw.len() * ATTRIBUTE_OVERHEAD
            + self.kept_bytes
            + self.inflater.as_ref().map_or(0, |_| INFLATER_BYTES)
    }

    /// Memory pressure: drops the attributes kept so far (counted in
    /// `attributes_dropped`); later ones are still kept.
    pub fn shed(&mut self) {
        self.dropped = self
            .dropped
            .saturating_add(u32::try_from(self.raw.len()).unwrap_or(u32::MAX));
        self.raw = Vec::new();
        self.slots = [[None; 2]; KEPT.len()];
        self.kept_bytes = 0;
        self.distinct = 0;
        if let State::Value { len, .. } = self.state {
            // The value being collected is dropped too; its rest is skipped.
            self.dropped = self.dropped.saturating_add(1);
            let left = len.saturating_sub(self.buf.len());
            self.state = State::Skip(left as u64);
            self.buf = Vec::new();
        }
    }

    /// Reading stops before the data set's end (a gap, the end of the
    /// association or of the flow): incomplete unless Pixel Data, after
    /// which nothing is read anyway, was reached.
    pub fn cut(&mut self) {
        if !self.pixel_data {
            self.incomplete = true;
        }
    }

    /// `n` bytes of the data set were lost (a gap). Reading goes on when
    /// they fell inside a value being skipped anyway (or after Pixel
    /// Data); otherwise the element structure is lost and the data set is
    /// cut here.
    pub fn lose(&mut self, n: u64) {
        self.length = self.length.saturating_add(n);
        match self.state {
            State::Done => {}
            State::Skip(m) if m >= n && self.inflater.is_none() => {
                self.state = if m == n {
                    State::Header
                } else {
                    State::Skip(m - n)
                };
            }
            _ => {
                self.cut();
                self.buf = Vec::new();
                self.state = State::Done;
            }
        }
    }

    /// The first problem met, once: an anomaly event name.
    pub fn take_error(&mut self) -> Option<&'static str> {
        self.error.take()
    }

    fn fail(&mut self, event: &'static str) {
        self.incomplete = true;
        self.state = State::Done;
        self.error.get_or_insert(event);
    }

    /// The next bytes of the data set as they travel.
    pub fn feed(&mut self, mut data: &[u8]) {
        self.length = self.length.saturating_add(data.len() as u64);
        if self.state == State::Sniff {
            let k = SNIFF_LEN.saturating_sub(self.buf.len()).min(data.len());
            // Copied: the first bytes of a data set cut by a fragment end
            // (≤ 8 bytes), needed whole to recognise the encoding.
            self.buf.extend_from_slice(data.get(..k).unwrap_or(&[]));
            data = data.get(k..).unwrap_or(&[]);
            if self.buf.len() < SNIFF_LEN {
                return;
            }
            self.guessed = true;
            self.decide(sniff(&self.buf));
            let start = std::mem::take(&mut self.buf);
            self.decoded(&start);
        }
        self.decoded(data);
    }

    /// Bytes in the known syntax: inflated first when deflated.
    fn decoded(&mut self, data: &[u8]) {
        if self.state == State::Done || data.is_empty() {
            return;
        }
        match self.inflater.take() {
            None => self.walk(data),
            Some(mut z) => {
                self.inflate(&mut z, data);
                self.inflater = Some(z);
            }
        }
    }

    /// Deflated Explicit VR LE (PS3.5 §A.5): raw deflate, inflated a block
    /// at a time and walked.
    ///
    /// What is read must not depend on how the deflated bytes were cut:
    /// - every byte a call inflated is walked before its error is looked
    ///   at, so a corrupt tail cannot hide the attributes before it; one
    ///   call never inflates more than `out` holds (the room left up to the
    ///   end of the inflater's window, [`WINDOW`]), so none of them is held
    ///   back inside the inflater when the error comes;
    /// - only the first `max_inflated` inflated bytes are walked, however
    ///   many one call made;
    /// - once Pixel Data is reached nothing more is looked at, an error in
    ///   the rest included.
    fn inflate(&mut self, z: &mut Decompress, mut input: &[u8]) {
        let mut out = [0u8; WINDOW];
        while self.state != State::Done {
            let (in0, out0) = (z.total_in(), z.total_out());
            // The inflater writes into its window from `total_out` on, up to
            // the window's end at most per call.
            let room = WINDOW - usize::try_from(out0 % WINDOW as u64).unwrap_or(0);
            let status = z.decompress(
                input,
                out.get_mut(..room).unwrap_or(&mut []),
                FlushDecompress::None,
            );
            let used = usize::try_from(z.total_in().saturating_sub(in0)).unwrap_or(usize::MAX);
            let made = usize::try_from(z.total_out().saturating_sub(out0)).unwrap_or(0);
            input = input.get(used..).unwrap_or(&[]);
            let allowed = self.lim.max_inflated.saturating_sub(self.inflated);
            let walked = made.min(usize::try_from(allowed).unwrap_or(usize::MAX));
            self.walk(out.get(..walked).unwrap_or(&[]));
            self.inflated = self.inflated.saturating_add(made as u64);
            if self.state == State::Done {
                return;
            }
            if walked < made {
                return self.fail("inflated_too_long");
            }
            let Ok(status) = status else {
                return self.fail("deflate_error");
            };
            if status == Status::StreamEnd || (used == 0 && made == 0) {
                return;
            }
            if input.is_empty() && made < room {
                return;
            }
        }
    }

    /// Walks plain (inflated) data set bytes.
    fn walk(&mut self, mut d: &[u8]) {
        while !d.is_empty() {
            match self.state {
                State::Done | State::Sniff => return,
                State::Skip(n) => {
                    let k = usize::try_from(n).unwrap_or(usize::MAX).min(d.len());
                    d = d.get(k..).unwrap_or(&[]);
                    let left = n.saturating_sub(k as u64);
                    self.state = if left == 0 {
                        State::Header
                    } else {
                        State::Skip(left)
                    };
                }
                State::Value { tag, len, slot } => {
                    let k = len.saturating_sub(self.buf.len()).min(d.len());
                    // Copied: a kept value cut by a fragment end; at most
                    // `max_value` bytes.
                    self.buf.extend_from_slice(d.get(..k).unwrap_or(&[]));
                    d = d.get(k..).unwrap_or(&[]);
                    if self.buf.len() >= len {
                        let v = std::mem::take(&mut self.buf);
                        self.state = State::Header;
                        self.keep(tag, v, false, slot);
                    }
                }
                State::Header => {
                    if self.buf.is_empty() {
                        if let Some(hl) = self.header_len(d) {
                            if let Some(h) = d.get(..hl) {
                                let h = self.parse_header(h);
                                d = d.get(hl..).unwrap_or(&[]);
                                self.on_header(h);
                                continue;
                            }
                        }
                    }
                    // A header cut by a fragment end: gather it (≤ 12 bytes).
                    let want = self.header_len(&self.buf).unwrap_or(6);
                    let k = want.saturating_sub(self.buf.len()).min(d.len());
                    self.buf.extend_from_slice(d.get(..k).unwrap_or(&[]));
                    d = d.get(k..).unwrap_or(&[]);
                    if let Some(hl) = self.header_len(&self.buf) {
                        if self.buf.len() >= hl {
                            let h = self.parse_header(self.buf.get(..hl).unwrap_or(&[]));
                            self.buf.clear();
                            self.on_header(h);
                        }
                    }
                }
            }
        }
    }

    fn big_endian(&self) -> bool {
        self.syntax.is_some_and(|s| s.big_endian)
    }

    fn explicit_vr(&self) -> bool {
        self.syntax.is_some_and(|s| s.explicit_vr)
    }

    fn u16(&self, b: &[u8], at: usize) -> u16 {
        let x = [
            b.get(at).copied().unwrap_or(0),
            b.get(at + 1).copied().unwrap_or(0),
        ];
        if self.big_endian() {
            u16::from_be_bytes(x)
        } else {
            u16::from_le_bytes(x)
        }
    }

    fn u32(&self, b: &[u8], at: usize) -> u32 {
        let x = [
            b.get(at).copied().unwrap_or(0),
            b.get(at + 1).copied().unwrap_or(0),
            b.get(at + 2).copied().unwrap_or(0),
            b.get(at + 3).copied().unwrap_or(0),
        ];
        if self.big_endian() {
            u32::from_be_bytes(x)
        } else {
            u32::from_le_bytes(x)
        }
    }

    /// Length of the element header starting `b`, once its first 6 bytes
    /// are there (tag and, in explicit VR, the VR).
    ///
    /// ```text
    /// implicit / item:  tag(4) length(4)
    /// explicit short:   tag(4) VR(2) length(2)
    /// explicit long:    tag(4) VR(2) reserved(2) length(4)
    /// ```
    fn header_len(&self, b: &[u8]) -> Option<usize> {
        let h = b.get(..6)?;
        let group = self.u16(h, 0);
        if !self.explicit_vr() || group == 0xFFFE {
            return Some(8);
        }
        Some(if long_vr([h[4], h[5]]) { 12 } else { 8 })
    }

    /// (tag, length) of a whole header.
    fn parse_header(&self, h: &[u8]) -> (u32, u32) {
        let tag = (u32::from(self.u16(h, 0)) << 16) | u32::from(self.u16(h, 2));
        let len = match h.len() {
            12 => self.u32(h, 8),
            _ if !self.explicit_vr() || tag >> 16 == 0xFFFE => self.u32(h, 4),
            _ => u32::from(self.u16(h, 6)),
        };
        (tag, len)
    }

    fn on_header(&mut self, (tag, len): (u32, u32)) {
        match tag {
            PIXEL_DATA if self.depth == 0 => {
                self.pixel_data = true;
                self.state = State::Done;
                return;
            }
            // An item of undefined length is walked; one of defined length
            // (inside an undefined-length sequence) is skipped below.
            ITEM if len == UNDEFINED => return,
            ITEM_END => return,
            SEQUENCE_END => {
                self.depth = self.depth.saturating_sub(1);
                return;
            }
            _ => {}
        }
        if len == UNDEFINED {
            if self.depth >= MAX_DEPTH {
                return self.fail("sequence_too_deep");
            }
            self.depth += 1;
            return;
        }
        let n = len as usize;
        let skip = if len == 0 {
            State::Header
        } else {
            State::Skip(u64::from(len))
        };
        let slot = match kept_index(tag) {
            Some(k) if self.depth == 0 => self.slot(k),
            _ => None,
        };
        let Some(slot) = slot else {
            self.state = skip;
            return;
        };
        let fits = n <= self.lim.max_value
            && self.kept_bytes.saturating_add(n) <= self.lim.max_attribute_bytes;
        if !fits {
            self.state = skip;
            self.keep(tag, Vec::new(), true, slot);
        } else if n == 0 {
            self.keep(tag, Vec::new(), false, slot);
        } else {
            // Exactly the value's size, whatever the fragments it comes in
            // (what is held is then what `kept_bytes` counts).
            self.buf = Vec::with_capacity(n);
            self.state = State::Value { tag, len: n, slot };
        }
    }

    /// Where the next occurrence of [`KEPT`] entry `k` goes: its first
    /// occurrence and its latest one are kept, while the count allows;
    /// `None` (counted as dropped) otherwise.
    fn slot(&mut self, k: usize) -> Option<Slot> {
        let [first, last] = self.slots.get(k).copied().unwrap_or([None, None]);
        // Room is kept for the first occurrence of every kept tag not seen
        // yet: repeats cannot crowd out a tag that comes later.
        let unseen = KEPT.len().saturating_sub(self.distinct);
        let room_first = self.raw.len() < self.lim.max_attributes;
        let room_last = self.raw.len() < self.lim.max_attributes.saturating_sub(unseen);
        match (first, last) {
            (None, _) if room_first => Some(Slot::New),
            (Some(_), None) if room_last => Some(Slot::New),
            (Some(_), Some(j)) => {
                // The latest occurrence replaces the previous latest.
                self.dropped = self.dropped.saturating_add(1);
                Some(Slot::Replace(usize::from(j)))
            }
            _ => {
                self.dropped = self.dropped.saturating_add(1);
                None
            }
        }
    }

    fn keep(&mut self, tag: u32, value: Vec<u8>, truncated: bool, slot: Slot) {
        let Some(k) = kept_index(tag) else {
            return;
        };
        // Counted by length: `max_attribute_bytes` decides what is kept, so
        // the count must not depend on how a value's buffer grew.
        self.kept_bytes = self.kept_bytes.saturating_add(value.len());
        match slot {
            Slot::Replace(j) => {
                if let Some(e) = self.raw.get_mut(j) {
                    let old = std::mem::replace(e, (tag, value, truncated));
                    self.kept_bytes = self.kept_bytes.saturating_sub(old.1.len());
                }
            }
            Slot::New => {
                let Ok(j) = u16::try_from(self.raw.len()) else {
                    self.kept_bytes = self.kept_bytes.saturating_sub(value.len());
                    self.dropped = self.dropped.saturating_add(1);
                    return;
                };
                self.raw.push((tag, value, truncated));
                if let Some(s) = self.slots.get_mut(k) {
                    if s[0].is_none() {
                        s[0] = Some(j);
                        self.distinct += 1;
                    } else {
                        s[1] = Some(j);
                    }
                }
            }
        }
    }

    /// The data set as read, its values decoded; `transfer_syntax` is
    /// recorded with it, marked guessed when it was recognised from the
    /// bytes.
    pub fn finish(mut self, transfer_syntax: Option<String>) -> DataSet {
        let cut = match self.state {
            State::Sniff | State::Done | State::Header => !self.buf.is_empty(),
            State::Value { .. } | State::Skip(_) => true,
        };
        if cut {
            // Ended inside an element.
            self.incomplete = true;
        }
        if !self.pixel_data && self.depth != 0 {
            self.incomplete = true;
        }
        let charset = self
            .raw
            .iter()
            .find(|(t, _, _)| *t == 0x0008_0005)
            .map(|(_, v, _)| String::from_utf8_lossy(v).to_string())
            .unwrap_or_default();
        let attributes = self
            .raw
            .into_iter()
            .map(|(tag, v, truncated)| Attribute {
                tag,
                value: decode_text(&v, &charset),
                truncated,
            })
            .collect();
        DataSet {
            transfer_syntax_guessed: self.guessed && transfer_syntax.is_some(),
            transfer_syntax,
            attributes,
            attributes_dropped: self.dropped,
            length: self.length,
            pixel_data_skipped: self.pixel_data,
            incomplete: self.incomplete,
        }
    }
}

/// Decodes a string value with the specific character set `charset`
/// (the module doc gives the rule), removing padding: trailing spaces and
/// NULs, leading spaces.
pub fn decode_text(v: &[u8], charset: &str) -> String {
    // Not Latin-1: UTF-8, or bytes that are not (a character set not
    // decoded here) by the output's one rule.
    let s: String = if !charset.contains("ISO_IR 192")
        && (charset.trim().is_empty() || charset.contains("ISO_IR 100"))
    {
        v.iter().map(|&b| char::from(b)).collect()
    } else {
        crate::output::mask::display_bytes(v).into_owned()
    };
    s.trim_end_matches(['\0', ' '])
        .trim_start_matches(' ')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn implicit(group: u16, elem: u16, v: &[u8]) -> Vec<u8> {
        let mut o = group.to_le_bytes().to_vec();
        o.extend_from_slice(&elem.to_le_bytes());
        o.extend_from_slice(&(v.len() as u32).to_le_bytes());
        o.extend_from_slice(v);
        o
    }

    /// Hand-built Implicit VR LE data set: charset, a sequence of undefined
    /// length holding a PatientName (must not surface), PatientName,
    /// PatientID, and Pixel Data that claims 2 MiB but is cut short.
    fn sample() -> Vec<u8> {
        let mut d = implicit(0x0008, 0x0005, b"ISO_IR 100"); // charset Latin-1
        d.extend_from_slice(&[0x08, 0x00, 0x15, 0x11, 0xff, 0xff, 0xff, 0xff]); // (0008,1115) SQ undefined
        d.extend_from_slice(&[0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff]); // item undefined
        d.extend(implicit(0x0010, 0x0010, b"NESTED^NAME ")); // nested PatientName
        d.extend_from_slice(&[0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0]); // item delimiter
        d.extend_from_slice(&[0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]); // sequence delimiter
        d.extend(implicit(0x0010, 0x0010, b"M\xfcller^J ")); // PatientName, Latin-1 ü
        d.extend(implicit(0x0010, 0x0020, b"ID42")); // PatientID
        d.extend(implicit(0x0018, 0x0050, b"5 ")); // slice thickness, not kept
        d.extend_from_slice(&[0xe0, 0x7f, 0x10, 0x00, 0, 0, 0x20, 0]); // Pixel Data, 2 MiB
        d.extend_from_slice(&[0xAA; 100]); // start of the pixels
        d
    }

    fn read(d: &[u8], syntax: Syntax, chunk: usize) -> DataSet {
        let mut r = DataSetReader::new(Some(syntax), Limits::test(64, 1 << 20));
        for c in d.chunks(chunk.max(1)) {
            r.feed(c);
            assert!(r.buffered() <= 64, "buffered {}", r.buffered());
        }
        r.finish(None)
    }

    #[test]
    fn implicit_le_keeps_top_level_and_stops_at_pixel_data_for_any_split() {
        let d = sample();
        for chunk in 1..=d.len() {
            let ds = read(&d, Syntax::IMPLICIT_LE, chunk);
            assert_eq!(ds.get(0x0010_0010), Some("Müller^J"), "chunk {chunk}");
            assert_eq!(ds.get(0x0010_0020), Some("ID42"));
            assert_eq!(ds.attributes.len(), 3);
            assert!(ds.pixel_data_skipped && !ds.incomplete);
        }
    }

    #[test]
    fn explicit_be_and_le_decode() {
        // Hand-built explicit VR: (0010,0010) PN len 8 "DOE^JOHN", then
        // (0010,1000) LO, and an OB element with a 4-byte length.
        for big in [false, true] {
            let g = |v: u16| {
                if big {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
            };
            let mut d = Vec::new();
            d.extend(g(0x0010)); // group
            d.extend(g(0x0010)); // element
            d.extend_from_slice(b"PN"); // VR
            d.extend(g(8)); // length
            d.extend_from_slice(b"DOE^JOHN"); // value
            d.extend(g(0x0011)); // private group
            d.extend(g(0x0010));
            d.extend_from_slice(b"OB"); // long VR
            d.extend_from_slice(&[0, 0]); // reserved
            d.extend(if big {
                3u32.to_be_bytes()
            } else {
                3u32.to_le_bytes()
            }); // length 3
            d.extend_from_slice(&[1, 2, 3]); // value
            d.extend(g(0x0010));
            d.extend(g(0x1000));
            d.extend_from_slice(b"LO");
            d.extend(g(4));
            d.extend_from_slice(b"NIR1");
            let syntax = Syntax {
                explicit_vr: true,
                big_endian: big,
                deflated: false,
            };
            for chunk in [1, 5, 100] {
                let ds = read(&d, syntax, chunk);
                assert_eq!(ds.get(0x0010_0010), Some("DOE^JOHN"));
                assert_eq!(ds.get(0x0010_1000), Some("NIR1"));
                assert!(!ds.incomplete);
            }
        }
    }

    #[test]
    fn deflated_data_set_inflates() {
        use std::io::Write;
        let mut d = Vec::new();
        d.extend_from_slice(&[0x10, 0, 0x10, 0, b'P', b'N', 8, 0]); // (0010,0010) PN len 8
        d.extend_from_slice(b"DOE^JOHN");
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&d).unwrap();
        let z = e.finish().unwrap();
        let ds = read(&z, Syntax::from_uid("1.2.840.10008.1.2.1.99"), 3);
        assert_eq!(ds.get(0x0010_0010), Some("DOE^JOHN"));
        let mut r = DataSetReader::new(Some(Syntax::DEFLATED), Limits::test(64, 1000));
        r.feed(b"\xff\xff\xff\xff garbage");
        assert_eq!(r.take_error(), Some("deflate_error"));
    }

    #[test]
    fn oversized_value_is_skipped_and_marked() {
        let mut d = implicit(0x0010, 0x0010, &[b'A'; 100]); // longer than max 64
        d.extend(implicit(0x0010, 0x0020, b"X"));
        let ds = read(&d, Syntax::IMPLICIT_LE, 7);
        assert!(ds.attributes[0].truncated);
        assert_eq!(ds.get(0x0010_0020), Some("X"));
    }

    #[test]
    fn every_truncation_and_garbage_is_safe() {
        let d = sample();
        for n in 0..d.len() {
            let _ = read(&d[..n], Syntax::IMPLICIT_LE, 3);
        }
        let mut deep = Vec::new();
        for _ in 0..40 {
            deep.extend_from_slice(&[0x08, 0x00, 0x15, 0x11, 0xff, 0xff, 0xff, 0xff]);
            // SQ undefined
        }
        let mut r = DataSetReader::new(Some(Syntax::IMPLICIT_LE), Limits::test(64, 1 << 20));
        r.feed(&deep);
        assert_eq!(r.take_error(), Some("sequence_too_deep"));
        let mut x = 7u32;
        let g: Vec<u8> = (0..5000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        for s in [Syntax::IMPLICIT_LE, Syntax::from_uid("1.2.840.10008.1.2.2")] {
            let _ = read(&g, s, 13);
        }
    }

    fn explicit_le(group: u16, elem: u16, vr: &[u8; 2], v: &[u8]) -> Vec<u8> {
        let mut o = group.to_le_bytes().to_vec();
        o.extend_from_slice(&elem.to_le_bytes());
        o.extend_from_slice(vr);
        o.extend_from_slice(&(v.len() as u16).to_le_bytes());
        o.extend_from_slice(v);
        o
    }

    fn deflate(d: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(d).unwrap();
        e.finish().unwrap()
    }

    fn sniffed(d: &[u8], chunk: usize) -> (DataSet, Option<Syntax>) {
        let mut r = DataSetReader::new(None, Limits::test(64, 1 << 20));
        for c in d.chunks(chunk.max(1)) {
            r.feed(c);
        }
        let s = r.syntax();
        let uid = s.map(|s| s.uid().to_string());
        (r.finish(uid), s)
    }

    #[test]
    fn unknown_syntax_is_recognised_from_the_first_element_for_any_split() {
        // Hand-built: the same two attributes in each encoding.
        let mut ile = implicit(0x0008, 0x0005, b"ISO_IR 100"); // charset
        ile.extend(implicit(0x0010, 0x0010, b"DOE^JOHN")); // PatientName
        let mut ele = explicit_le(0x0008, 0x0005, b"CS", b"ISO_IR 100");
        ele.extend(explicit_le(0x0010, 0x0010, b"PN", b"DOE^JOHN"));
        let mut ebe = Vec::new();
        for (g, e, vr, v) in [
            (0x0008u16, 0x0005u16, b"CS", &b"ISO_IR 100"[..]),
            (0x0010, 0x0010, b"PN", &b"DOE^JOHN"[..]),
        ] {
            ebe.extend_from_slice(&g.to_be_bytes()); // group, big endian
            ebe.extend_from_slice(&e.to_be_bytes()); // element
            ebe.extend_from_slice(vr); // VR
            ebe.extend_from_slice(&(v.len() as u16).to_be_bytes()); // length
            ebe.extend_from_slice(v);
        }
        let z = deflate(&ele);
        for (d, want) in [
            (&ile, Syntax::IMPLICIT_LE),
            (&ele, Syntax::EXPLICIT_LE),
            (&ebe, Syntax::EXPLICIT_BE),
            (&z, Syntax::DEFLATED),
        ] {
            assert_eq!(sniff(d), want);
            for chunk in [1, 2, 5, 6, 7, 1000] {
                let (ds, s) = sniffed(d, chunk);
                assert_eq!(s, Some(want), "chunk {chunk}");
                assert_eq!(
                    ds.get(0x0010_0010),
                    Some("DOE^JOHN"),
                    "{want:?} chunk {chunk}"
                );
                assert!(ds.transfer_syntax_guessed && !ds.incomplete);
            }
        }
        // Fewer bytes than a sniff needs: no syntax, incomplete.
        let (ds, s) = sniffed(&ile[..4], 1);
        assert_eq!(
            (s, ds.transfer_syntax_guessed, ds.incomplete),
            (None, false, true)
        );
        // Nothing at all: an empty data set, complete.
        let (ds, _) = sniffed(&[], 1);
        assert!(!ds.incomplete && ds.attributes.is_empty());
    }

    #[test]
    fn million_empty_patient_names_keep_two_attributes() {
        // Found by fuzzing (issue 11): 1 M empty PatientName elements (8 MB
        // of data set) kept 1 M attributes (41 MB). Hand-built: a name,
        // then 1 M empty ones, then the real one.
        let mut d = implicit(0x0010, 0x0010, b"FIRST^NAME");
        d.extend(implicit(0x0010, 0x0010, b"").repeat(1_000_000));
        d.extend(implicit(0x0010, 0x0010, b"LAST^NAME"));
        let mut r = DataSetReader::new(Some(Syntax::IMPLICIT_LE), Limits::test(64, 1 << 20));
        let mut most = 0;
        for c in d.chunks(65536) {
            r.feed(c);
            most = most.max(r.heap());
        }
        assert!(most < 4096, "held {most} bytes");
        let ds = r.finish(None);
        let names: Vec<&str> = ds.attributes.iter().map(|a| a.value.as_str()).collect();
        assert_eq!(names, ["FIRST^NAME", "LAST^NAME"]);
        assert_eq!(ds.attributes_dropped, 1_000_000);
    }

    #[test]
    fn deflated_flood_of_four_million_attributes_is_bounded() {
        // Found by fuzzing (issue 11): a deflated data set in a 47 kB flow
        // kept 4 M attributes (127 MB). Hand-built: 4 M empty elements of
        // every kept tag in turn (32 MB inflated), deflated.
        let cycle: Vec<u8> = KEPT
            .iter()
            .flat_map(|(tag, _, _)| explicit_le((tag >> 16) as u16, *tag as u16, b"LO", b""))
            .collect();
        let mut d = cycle.repeat(4_000_000 / KEPT.len());
        d.extend_from_slice(&cycle[..(4_000_000 % KEPT.len()) * 8]);
        let z = deflate(&d);
        assert!(z.len() < 1 << 20, "{} bytes deflated", z.len());
        let mut r = DataSetReader::new(Some(Syntax::DEFLATED), Limits::test(64, 64 << 20));
        let mut most = 0;
        for c in z.chunks(1448) {
            r.feed(c);
            most = most.max(r.heap());
        }
        assert!(most < INFLATER_BYTES + 16384, "held {most} bytes");
        let ds = r.finish(None);
        // Every tag's first occurrence, and latest occurrences in the room
        // left.
        assert_eq!(ds.attributes.len(), 64);
        assert!(KEPT.iter().all(|k| ds.get(k.0).is_some()));
        assert_eq!(ds.attributes_dropped as usize, 4_000_000 - 64);
        assert!(!ds.incomplete);
    }

    #[test]
    fn inflation_streams_a_large_data_set_in_fixed_memory() {
        // Hand-built: a 16 MiB private OB value (zeros, which deflate to
        // almost nothing), then a PatientName.
        let mut d = vec![0x09, 0x00, 0x10, 0x10, b'O', b'B', 0, 0]; // (0009,1010) OB, reserved
        d.extend_from_slice(&(16u32 << 20).to_le_bytes()); // 16 MiB
        d.resize(d.len() + (16 << 20), 0);
        d.extend(explicit_le(0x0010, 0x0010, b"PN", b"DOE^JOHN"));
        let z = deflate(&d);
        let mut r = DataSetReader::new(Some(Syntax::DEFLATED), Limits::test(64, 64 << 20));
        for c in z.chunks(1448) {
            r.feed(c);
            // The inflater's window and the walker's cut header, never the
            // inflated bytes.
            assert!(r.heap() <= INFLATER_BYTES + 1024, "{}", r.heap());
        }
        assert_eq!(r.finish(None).get(0x0010_0010), Some("DOE^JOHN"));
        // The same with an inflate cap below 16 MiB: given up, said.
        let mut r = DataSetReader::new(Some(Syntax::DEFLATED), Limits::test(64, 1 << 20));
        r.feed(&z);
        assert_eq!(r.take_error(), Some("inflated_too_long"));
        assert!(r.finish(None).incomplete);
    }

    #[test]
    fn value_bytes_past_the_budget_are_listed_truncated() {
        let mut d = implicit(0x0010, 0x0010, &[b'A'; 40]); // PatientName, 40 bytes
        d.extend(implicit(0x0010, 0x0020, &[b'B'; 40])); // PatientID, over a 64-byte budget
        d.extend(implicit(0x0010, 0x0040, b"F")); // PatientSex, fits
        let lim = Limits {
            max_attribute_bytes: 64,
            ..Limits::test(64, 1 << 20)
        };
        let mut r = DataSetReader::new(Some(Syntax::IMPLICIT_LE), lim);
        r.feed(&d);
        let ds = r.finish(None);
        assert_eq!(ds.attributes.len(), 3);
        assert!(!ds.attributes[0].truncated && ds.attributes[1].truncated);
        assert_eq!(ds.get(0x0010_0040), Some("F"));
        // And a count limit: the third attribute is dropped, counted.
        let lim = Limits {
            max_attributes: 2,
            ..Limits::test(64, 1 << 20)
        };
        let mut r = DataSetReader::new(Some(Syntax::IMPLICIT_LE), lim);
        r.feed(&d);
        let ds = r.finish(None);
        assert_eq!((ds.attributes.len(), ds.attributes_dropped), (2, 1));
    }

    /// Reads `d` whole and in `chunk`-byte pieces: the data sets and first
    /// anomalies, which must agree.
    fn whole_and_pieces(
        d: &[u8],
        syntax: Syntax,
        lim: Limits,
        chunk: usize,
    ) -> (DataSet, Option<&'static str>) {
        let mut got = Vec::new();
        for c in [d.len().max(1), chunk] {
            let mut r = DataSetReader::new(Some(syntax), lim);
            let mut err = None;
            for piece in d.chunks(c) {
                r.feed(piece);
                if let Some(e) = r.take_error() {
                    err.get_or_insert(e);
                }
            }
            got.push((r.finish(None), err));
        }
        let pieces = got.pop().unwrap();
        let whole = got.pop().unwrap();
        assert_eq!(whole, pieces, "whole and in {chunk}-byte pieces");
        whole
    }

    #[test]
    fn deflate_error_keeps_what_was_inflated_before_it_whatever_the_pieces() {
        // Found by fuzzing (dicom_dataset): the bytes inflated by the call
        // that met a corrupt block were dropped unwalked, so one trailing
        // byte hid the PatientName of a data set sent in one PDV.
        // Hand-built: a 30 000-byte private OB value (more than one
        // inflater call makes), PatientName, a sync flush, then 0x07 (a
        // final block of the reserved type 11, RFC 1951 §3.2.3).
        use std::io::Write;
        let mut d = vec![0x09, 0x00, 0x10, 0x10, b'O', b'B', 0, 0]; // (0009,1010) OB, reserved
        d.extend_from_slice(&30_000u32.to_le_bytes()); // length
        d.resize(d.len() + 30_000, 0x55);
        d.extend(explicit_le(0x0010, 0x0010, b"PN", b"DOE^JOHN"));
        for skip in [0, 30_012] {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&d[skip..]).unwrap();
            e.flush().unwrap();
            let mut z = e.get_ref().clone();
            z.push(0x07);
            for chunk in [1, 3, 100] {
                let (ds, err) =
                    whole_and_pieces(&z, Syntax::DEFLATED, Limits::test(64, 1 << 20), chunk);
                assert_eq!(err, Some("deflate_error"));
                assert_eq!(ds.get(0x0010_0010), Some("DOE^JOHN"), "skip {skip}");
                assert!(ds.incomplete);
            }
        }
    }

    #[test]
    fn inflate_cap_walks_the_same_bytes_whatever_the_pieces() {
        // Hand-built: PatientName after 3000 bytes of a private value, with
        // an inflate cap of 2000 bytes: given up before the name, whether
        // one call inflates it all or many calls do.
        let mut d = vec![0x09, 0x00, 0x10, 0x10, b'O', b'B', 0, 0]; // (0009,1010) OB, reserved
        d.extend_from_slice(&3000u32.to_le_bytes()); // length
        d.resize(d.len() + 3000, 0);
        d.extend(explicit_le(0x0010, 0x0010, b"PN", b"DOE^JOHN"));
        let z = deflate(&d);
        for chunk in [1, 5] {
            let (ds, err) = whole_and_pieces(&z, Syntax::DEFLATED, Limits::test(64, 2000), chunk);
            assert_eq!(err, Some("inflated_too_long"));
            assert_eq!(ds.get(0x0010_0010), None);
        }
    }

    #[test]
    fn attribute_bytes_are_counted_by_length_whatever_the_fragments() {
        // Found by fuzzing (dicom_dataset seeds): kept value bytes were
        // counted by buffer capacity, which grows by doubling when a value
        // arrives in pieces, so near `max_attribute_bytes` the last value
        // was listed truncated only when fragmented. Hand-built: five kept
        // attributes of 50 bytes each under a 256-byte budget.
        let mut d = Vec::new();
        for (elem, vr) in [
            (0x0080u16, b"LO"), // InstitutionName
            (0x0081, b"ST"),    // InstitutionAddress
            (0x1010, b"SH"),    // StationName
            (0x1030, b"LO"),    // StudyDescription
        ] {
            d.extend(explicit_le(0x0008, elem, vr, &[b'X'; 50]));
        }
        d.extend(explicit_le(
            0x0010,
            0x0010,
            b"PN",
            b"DOE^JOHN"
                .iter()
                .chain(&[b' '; 42])
                .copied()
                .collect::<Vec<u8>>()
                .as_slice(),
        )); // PatientName, 50 bytes
        let lim = Limits {
            max_attribute_bytes: 256,
            ..Limits::test(64, 1 << 20)
        };
        for chunk in [1, 7, 64] {
            let (ds, _) = whole_and_pieces(&d, Syntax::EXPLICIT_LE, lim, chunk);
            assert_eq!(ds.attributes.len(), 5);
            assert!(ds.attributes.iter().all(|a| !a.truncated), "chunk {chunk}");
            assert_eq!(ds.get(0x0010_0010), Some("DOE^JOHN"));
        }
    }

    #[test]
    fn repeated_tag_keeps_its_first_and_latest_occurrence() {
        let mut d = Vec::new();
        for v in [&b"ONE"[..], b"TWO", b"THREE", b"FOUR"] {
            d.extend(implicit(0x0010, 0x0010, v)); // PatientName, four times
        }
        d.extend(implicit(0x0010, 0x0020, b"ID")); // PatientID once
        for chunk in [1, 3, 1000] {
            let ds = read(&d, Syntax::IMPLICIT_LE, chunk);
            let v: Vec<&str> = ds.attributes.iter().map(|a| a.value.as_str()).collect();
            assert_eq!(v, ["ONE", "FOUR", "ID"], "chunk {chunk}");
            assert_eq!(ds.attributes_dropped, 2);
        }
        // Memory pressure drops what was kept; reading goes on.
        let mut r = DataSetReader::new(Some(Syntax::IMPLICIT_LE), Limits::test(64, 1 << 20));
        r.feed(&d[..30]);
        r.shed();
        r.feed(&d[30..]);
        let ds = r.finish(None);
        assert!(ds.attributes_dropped >= 2);
        assert_eq!(ds.get(0x0010_0020), Some("ID"));
    }
}
