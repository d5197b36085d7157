//! Target `dicom_dataset`: the data-set walker alone
//! ([`wardwatch::app::dicom::dataset::DataSetReader`]), on every transfer
//! syntax encoding, fed in pieces as PDV fragments arrive.
//!
//! Input: `syntax:u8 max_value:u8 sizes data` — `syntax % 4` picks implicit
//! VR LE, explicit VR LE, explicit VR BE or deflated explicit VR LE; kept
//! values are capped at `max_value` bytes; `sizes` ([`Cursor::sizes`]) cut
//! `data` into fragments.
//!
//! Properties:
//! - the data set read (attributes, length, pixel data and incompleteness
//!   flags) and the first anomaly are the same whole and in fragments;
//! - the bytes held for a cut element header or kept value stay within
//!   about twice the larger of `max_value` and a 12-byte header (a `Vec`
//!   may double its capacity once).
//!
//! Not checked: the number of kept attributes, which is unbounded today (a
//! known finding of issue 11, assigned to wt-dicom).
//!
//! Exempt while open (found by this target, in wt-dicom's code): when
//! inflating fails, the bytes inflated by that same call are dropped
//! unwalked, so a deflated data set with a corrupt tail keeps different
//! attributes whole and in fragments. The target skips the comparison when
//! either reader met `deflate_error` (so CI keeps fuzzing the rest);
//! [`dicom_dataset_strict`] does not, and the finding's regression tests
//! use it. Set [`EXEMPT_DEFLATE_ERROR`] to false once the fix merges.

use wardwatch::app::dicom::dataset::{DataSetReader, Syntax};

use super::input::{cut, Cursor};

const SYNTAXES: [&str; 4] = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",
];

/// Largest inflated size: small, so a deflate bomb costs little here (the
/// parser's own cap is exercised by the `dicom` targets).
const MAX_INFLATED: u64 = 1 << 20;

/// Whether the target skips inputs that meet the open deflate finding.
pub const EXEMPT_DEFLATE_ERROR: bool = true;

pub fn dicom_dataset(data: &[u8]) {
    check(data, EXEMPT_DEFLATE_ERROR);
}

/// The target without exemptions.
pub fn dicom_dataset_strict(data: &[u8]) {
    check(data, false);
}

fn check(data: &[u8], exempt_deflate_error: bool) {
    let mut c = Cursor::new(data);
    let uid = SYNTAXES[usize::from(c.u8() % 4)];
    let max_value = usize::from(c.u8());
    let sizes = c.sizes();
    let body = c.rest();

    let syntax = Syntax::from_uid(uid);
    let mut whole = DataSetReader::new(syntax, max_value, MAX_INFLATED);
    whole.feed(body);
    let whole_err = whole.take_error();
    let want = whole.finish(Some(uid.to_string()));

    let bound = 2 * max_value.max(12) + 16;
    let mut pieces = DataSetReader::new(syntax, max_value, MAX_INFLATED);
    let mut pieces_err = None;
    for p in cut(body, &sizes) {
        pieces.feed(p);
        assert!(
            pieces.buffered() <= bound,
            "{} bytes buffered for max_value {max_value}",
            pieces.buffered()
        );
        if let Some(e) = pieces.take_error() {
            pieces_err.get_or_insert(e);
        }
    }
    let got = pieces.finish(Some(uid.to_string()));
    if exempt_deflate_error && [whole_err, pieces_err].contains(&Some("deflate_error")) {
        return;
    }
    assert_eq!(
        pieces_err, whole_err,
        "first anomaly differs when fragmented"
    );
    assert_eq!(
        got, want,
        "data set differs when fed in fragments of {sizes:?}"
    );
}
