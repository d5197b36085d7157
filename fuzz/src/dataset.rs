//! Target `dicom_dataset`: the data-set walker alone
//! ([`wardwatch::app::dicom::dataset::DataSetReader`]), on every transfer
//! syntax encoding, fed in pieces as PDV fragments arrive.
//!
//! Input: `syntax:u8 max_value:u8 sizes data` — `syntax % 5` picks implicit
//! VR LE, explicit VR LE, explicit VR BE, deflated explicit VR LE, or none
//! (the reader recognises the encoding from the first bytes); kept values
//! are capped at `max_value` bytes, kept attributes at `1 + syntax / 5`
//! (1–52) and their value bytes at `4 × max_value`; `sizes`
//! ([`Cursor::sizes`]) cut `data` into fragments.
//!
//! Properties:
//! - the data set read (attributes, length, pixel data and incompleteness
//!   flags) and the first anomaly are the same whole and in fragments;
//! - the bytes held for a cut element header or kept value stay within
//!   about twice the larger of `max_value` and a 12-byte header (a `Vec`
//!   may double its capacity once);
//! - at most `max_attributes` attributes are kept, and the reader's heap
//!   ([`DataSetReader::heap`]) stays within what the limits allow: the cut
//!   header or value, twice the attribute slots and value bytes (capacity
//!   rounding), the inflater — whatever the number of elements or repeats
//!   (issue 11's unbounded repeated tags).
//!
//! Found by this target and fixed (regressions under
//! `fuzz/regressions/dicom_dataset/`): a deflate error dropped the bytes
//! inflated by the same call, and kept value bytes were counted by buffer
//! capacity — both made what is kept depend on fragmentation.

use wardwatch::app::dicom::dataset::{
    DataSetReader, Limits, Syntax, ATTRIBUTE_OVERHEAD, INFLATER_BYTES,
};

use super::input::{cut, Cursor};

/// The transfer syntaxes; `None`: not seen, recognised from the bytes.
const SYNTAXES: [Option<&str>; 5] = [
    Some("1.2.840.10008.1.2"),
    Some("1.2.840.10008.1.2.1"),
    Some("1.2.840.10008.1.2.2"),
    Some("1.2.840.10008.1.2.1.99"),
    None,
];

/// Largest inflated size: small, so a deflate bomb costs little here (the
/// parser's own cap is exercised by the `dicom` targets).
const MAX_INFLATED: u64 = 1 << 20;

pub fn dicom_dataset(data: &[u8]) {
    let mut c = Cursor::new(data);
    let sel = c.u8();
    let uid = SYNTAXES[usize::from(sel % 5)];
    let max_value = usize::from(c.u8());
    let sizes = c.sizes();
    let body = c.rest();
    let lim = Limits {
        max_value,
        max_attributes: 1 + usize::from(sel / 5),
        max_attribute_bytes: 4 * max_value,
        max_inflated: MAX_INFLATED,
    };
    let syntax = uid.map(Syntax::from_uid);
    let ts = || uid.map(str::to_string);

    let mut whole = DataSetReader::new(syntax, lim);
    whole.feed(body);
    let whole_err = whole.take_error();
    let want = whole.finish(ts());

    let bound = 2 * max_value.max(12) + 16;
    let raw = std::mem::size_of::<(u32, Vec<u8>, bool)>() + ATTRIBUTE_OVERHEAD;
    let heap_bound =
        bound + 2 * lim.max_attributes * raw + 2 * lim.max_attribute_bytes + INFLATER_BYTES;
    let mut pieces = DataSetReader::new(syntax, lim);
    let mut pieces_err = None;
    for p in cut(body, &sizes) {
        pieces.feed(p);
        assert!(
            pieces.buffered() <= bound,
            "{} bytes buffered for max_value {max_value}",
            pieces.buffered()
        );
        assert!(
            pieces.heap() <= heap_bound,
            "{} heap bytes for {lim:?}, bound {heap_bound}",
            pieces.heap()
        );
        if let Some(e) = pieces.take_error() {
            pieces_err.get_or_insert(e);
        }
    }
    let got = pieces.finish(ts());
    assert!(
        want.attributes.len() <= lim.max_attributes,
        "{} attributes kept for {lim:?}",
        want.attributes.len()
    );
    assert_eq!(
        pieces_err, whole_err,
        "first anomaly differs when fragmented"
    );
    assert_eq!(
        got, want,
        "data set differs when fed in fragments of {sizes:?}"
    );
}
