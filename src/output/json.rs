//! Compact JSON, written straight into the worker's EVE buffer: a
//! `serde::Serializer` whose output is byte for byte what
//! `serde_json::to_writer` writes (RFC 8259; serde_json's escapes: `\"`,
//! `\\`, `\b \t \n \f \r`, other control characters as `\u00XX` in lowercase
//! hex, everything else, DEL and non-ASCII included, as is; integers in
//! decimal; finite floats by zmij, the others as `null`; map keys as strings,
//! integers and booleans quoted), so the records do not change, only what
//! they cost.
//!
//! Why not serde_json itself: on the small-packet MQTT bench its string
//! escaping looked at one byte at a time and every key, quote and comma was
//! a separate `io::Write` call ending in `memcpy` — a quarter of the
//! instructions of a run went to JSON framing. Here a string is checked
//! eight bytes at a time (a word without a quote, backslash or control
//! character is copied as it is), integers go through `itoa`, and the
//! writer is the `Vec` itself.
//!
//! Invariant: valid UTF-8 in, valid UTF-8 out (escapes are ASCII; runs are
//! copied whole between ASCII bytes, so no character is ever split).

use std::fmt::{self, Display};

use serde::ser::{self, Impossible, Serialize};

/// Why a value could not be written (a map key that is not a string, a
/// number, a boolean or a character; a non-finite float key; a custom
/// error of a `Serialize` impl). The caller drops the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// Appends `value` as compact JSON. On error, `out` may hold part of it:
/// the caller truncates.
///
/// # Errors
/// See [`Error`].
pub fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), Error> {
    value.serialize(&mut Ser { out })
}

/// JSON already written (a record serialised once for itself and for the
/// alerts that carry it), copied as it is.
#[derive(Debug, Clone, Copy)]
pub struct Raw<'a>(pub &'a [u8]);

/// Appends `s` as a JSON string, quoted and escaped.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escape(out, s.as_bytes());
    out.push(b'"');
}

/// Appends `n` in decimal.
pub fn write_u64(out: &mut Vec<u8>, n: u64) {
    // One digit (QoS, flags, codes, versions): no formatting.
    if let Ok(d) = u8::try_from(n) {
        if d < 10 {
            out.push(b'0' + d);
            return;
        }
    }
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` that is a `"`, a `\` or below 0x20,
/// exact up to the lowest one (a borrow can flag bytes above it, never
/// below): zero exactly when no byte is (the classic has-zero and
/// has-less tests). Also the PHI tape's string scan.
pub(crate) fn special(w: u64) -> u64 {
    let control = w.wrapping_sub(LO * 0x20) & !w;
    let q = w ^ (LO * u64::from(b'"'));
    let quote = q.wrapping_sub(LO) & !q;
    let b = w ^ (LO * u64::from(b'\\'));
    let backslash = b.wrapping_sub(LO) & !b;
    (control | quote | backslash) & HI
}

/// A word has a byte below 0x20, a `"` or a `\`.
fn needs_escape(w: u64) -> bool {
    special(w) != 0
}

/// The escape of one byte, if it needs one (serde_json's table); empty for
/// the control characters written as `\u00XX`.
fn escape_of(b: u8) -> Option<&'static [u8]> {
    match b {
        b'"' => Some(b"\\\""),
        b'\\' => Some(b"\\\\"),
        0x08 => Some(b"\\b"),
        b'\t' => Some(b"\\t"),
        b'\n' => Some(b"\\n"),
        0x0c => Some(b"\\f"),
        b'\r' => Some(b"\\r"),
        0..=0x1f => Some(b""),
        _ => None,
    }
}

/// Sixteen bytes none of which is below 0x20, a `"` or a `\`: every byte
/// tested and the results combined without a branch, so that it compiles
/// to vector compares (the word test of [`special`] costs about a dozen
/// instructions per eight bytes).
fn clean16(a: [u8; 16]) -> bool {
    a.iter()
        .fold(true, |ok, &b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'))
}

/// Appends the escaped contents of a string (without quotes): eight bytes
/// are checked at once (the last, shorter word padded with spaces), and
/// only a word that holds a byte to escape is looked at byte by byte.
fn escape(out: &mut Vec<u8>, s: &[u8]) {
    // Nearly every string (keys, ids, topics, Community IDs) has nothing to
    // escape: checked whole first, and copied at once. Below eight bytes
    // byte by byte, from eight on a word at a time (the last word
    // overlapping the one before it).
    let clean = match s.len() {
        0..8 => !s.iter().any(|&b| escape_of(b).is_some()),
        // Community IDs (30 bytes), most client ids and topics: two halves
        // of 16 bytes (overlapping below 32), each a few vector compares.
        n @ 16..=32 => {
            let half = |h: Option<&[u8]>| {
                h.and_then(|h| <[u8; 16]>::try_from(h).ok())
                    .is_some_and(clean16)
            };
            half(s.get(..16)) && half(s.get(n - 16..))
        }
        n => {
            let mut words = s.chunks_exact(8);
            let word = |c: &[u8]| <[u8; 8]>::try_from(c).map_or(0, u64::from_le_bytes);
            words.all(|c| !needs_escape(word(c)))
                && (words.remainder().is_empty()
                    || !needs_escape(word(s.get(n - 8..).unwrap_or_default())))
        }
    };
    if clean {
        out.extend_from_slice(s);
        return;
    }
    // `s[start..i]` is checked and not yet copied.
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        let word = s.get(i..).unwrap_or_default();
        let word = word.get(..8).unwrap_or(word);
        let w = match <[u8; 8]>::try_from(word) {
            Ok(a) => u64::from_le_bytes(a),
            // The last word of a string: its eight last bytes when it has
            // as many (the ones before `i` were handled already), else its
            // first and last four (overlapping), else its bytes padded
            // with spaces; no copy call either way.
            Err(_) => {
                let n = s.len();
                let at = |k: usize| -> u64 {
                    let mut a = [0u8; 4];
                    if let Some(b) = s.get(k..k + 4) {
                        a.copy_from_slice(b);
                    }
                    u64::from(u32::from_le_bytes(a))
                };
                if n >= 8 {
                    at(n - 8) | (at(n - 4) << 32)
                } else if n >= 4 {
                    at(0) | (at(n - 4) << 32)
                } else {
                    word.iter()
                        .enumerate()
                        .fold(LO * u64::from(b' '), |w, (k, &b)| {
                            (w & !(0xff << (8 * k))) | (u64::from(b) << (8 * k))
                        })
                }
            }
        };
        if needs_escape(w) {
            for (k, &b) in word.iter().enumerate() {
                let Some(e) = escape_of(b) else {
                    continue;
                };
                out.extend_from_slice(s.get(start..i + k).unwrap_or_default());
                if e.is_empty() {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xf)]);
                } else {
                    out.extend_from_slice(e);
                }
                start = i + k + 1;
            }
        }
        i += word.len();
    }
    out.extend_from_slice(s.get(start..).unwrap_or_default());
}

/// `fmt::Write` that escapes what it is given (for `collect_str`).
struct Escaping<'a>(&'a mut Vec<u8>);

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape(self.0, s.as_bytes());
        Ok(())
    }
}

fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

fn write_f32(out: &mut Vec<u8>, v: f32) {
    if v.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

struct Ser<'a> {
    out: &'a mut Vec<u8>,
}

/// A sequence, map or struct being written; `close` ends it (`]`, `}`, or
/// `]}` / `}}` for the variant forms).
pub struct Compound<'s, 'a> {
    ser: &'s mut Ser<'a>,
    first: bool,
    close: &'static [u8],
}

impl Compound<'_, '_> {
    fn comma(&mut self) {
        if !self.first {
            self.ser.out.push(b',');
        }
        self.first = false;
    }

    /// A struct field's name: a `&'static str` of the program (a Rust
    /// field name or a `rename`), never one from the wire, and none of
    /// them holds a byte to escape — so it is copied as it is, in one
    /// reserve, instead of going through [`escape`] (on the small-packet
    /// MQTT bench, 460 000 names per 135 000 packets).
    fn key(&mut self, key: &'static str) {
        debug_assert!(
            key.bytes().all(|b| escape_of(b).is_none()),
            "struct field name {key:?} needs escaping"
        );
        let out = &mut *self.ser.out;
        out.reserve(key.len() + 4);
        if !self.first {
            out.push(b',');
        }
        self.first = false;
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
    }
}

macro_rules! int {
    ($($f:ident: $t:ty),*) => {$(
        fn $f(self, v: $t) -> Result<(), Error> {
            self.out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
            Ok(())
        }
    )*};
}

impl<'s, 'a> ser::Serializer for &'s mut Ser<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'s, 'a>;
    type SerializeTuple = Compound<'s, 'a>;
    type SerializeTupleStruct = Compound<'s, 'a>;
    type SerializeTupleVariant = Compound<'s, 'a>;
    type SerializeMap = Compound<'s, 'a>;
    type SerializeStruct = Compound<'s, 'a>;
    type SerializeStructVariant = Compound<'s, 'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out
            .extend_from_slice(if v { b"true" as &[u8] } else { b"false" });
        Ok(())
    }

    int!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
         serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
         serialize_u64: u64, serialize_u128: u128);

    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        write_f32(self.out, v);
        Ok(())
    }

    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        write_f64(self.out, v);
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), Error> {
        write_str(self.out, v.encode_utf8(&mut [0u8; 4]));
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(self.out, v);
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        use ser::SerializeSeq as _;
        let mut seq = self.serialize_seq(Some(v.len()))?;
        for b in v {
            seq.serialize_element(b)?;
        }
        seq.end()
    }

    fn serialize_none(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Error> {
        v.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        self.serialize_none()
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        self.serialize_none()
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        v.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.push(b':');
        v.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'s, 'a>, Error> {
        self.out.push(b'[');
        Ok(Compound {
            ser: self,
            first: true,
            close: b"]",
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<Compound<'s, 'a>, Error> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<Compound<'s, 'a>, Error> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'s, 'a>, Error> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.extend_from_slice(b":[");
        Ok(Compound {
            ser: self,
            first: true,
            close: b"]}",
        })
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'s, 'a>, Error> {
        self.out.push(b'{');
        Ok(Compound {
            ser: self,
            first: true,
            close: b"}",
        })
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Compound<'s, 'a>, Error> {
        self.serialize_map(None)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'s, 'a>, Error> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.extend_from_slice(b":{");
        Ok(Compound {
            ser: self,
            first: true,
            close: b"}}",
        })
    }

    fn collect_str<T: Display + ?Sized>(self, v: &T) -> Result<(), Error> {
        use fmt::Write as _;
        self.out.push(b'"');
        write!(Escaping(self.out), "{v}").map_err(|_| Error("a Display impl failed".into()))?;
        self.out.push(b'"');
        Ok(())
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        self.comma();
        v.serialize(&mut *self.ser)
    }
    fn end(self) -> Result<(), Error> {
        self.ser.out.extend_from_slice(self.close);
        Ok(())
    }
}

impl ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<(), Error> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<(), Error> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<(), Error> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), Error> {
        self.comma();
        k.serialize(KeySer {
            out: &mut *self.ser.out,
        })?;
        self.ser.out.push(b':');
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        v.serialize(&mut *self.ser)
    }
    fn end(self) -> Result<(), Error> {
        self.ser.out.extend_from_slice(self.close);
        Ok(())
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        self.key(key);
        v.serialize(&mut *self.ser)
    }
    fn end(self) -> Result<(), Error> {
        ser::SerializeMap::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        ser::SerializeStruct::serialize_field(self, key, v)
    }
    fn end(self) -> Result<(), Error> {
        ser::SerializeMap::end(self)
    }
}

/// A map key: a string, or a number, boolean or character written as one
/// (serde_json's rules).
struct KeySer<'a> {
    out: &'a mut Vec<u8>,
}

fn key_error() -> Error {
    Error("key must be a string".into())
}

macro_rules! int_key {
    ($($f:ident: $t:ty),*) => {$(
        fn $f(self, v: $t) -> Result<(), Error> {
            self.out.push(b'"');
            self.out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
            self.out.push(b'"');
            Ok(())
        }
    )*};
}

impl ser::Serializer for KeySer<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(self.out, v);
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        v.serialize(self)
    }

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.extend_from_slice(if v {
            b"\"true\"" as &[u8]
        } else {
            b"\"false\""
        });
        Ok(())
    }

    int_key!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
             serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
             serialize_u64: u64, serialize_u128: u128);

    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        if !v.is_finite() {
            return Err(Error("float key must be finite".into()));
        }
        self.out.push(b'"');
        write_f32(self.out, v);
        self.out.push(b'"');
        Ok(())
    }

    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        if !v.is_finite() {
            return Err(Error("float key must be finite".into()));
        }
        self.out.push(b'"');
        write_f64(self.out, v);
        self.out.push(b'"');
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.serialize_str(v.encode_utf8(&mut [0u8; 4]))
    }

    fn serialize_bytes(self, _: &[u8]) -> Result<(), Error> {
        Err(key_error())
    }

    fn serialize_none(self) -> Result<(), Error> {
        Err(key_error())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Error> {
        v.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        Err(key_error())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        Err(key_error())
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Error> {
        Err(key_error())
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(key_error())
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        Err(key_error())
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(key_error())
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(key_error())
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(key_error())
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        Err(key_error())
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(key_error())
    }

    fn collect_str<T: Display + ?Sized>(self, v: &T) -> Result<(), Error> {
        use fmt::Write as _;
        self.out.push(b'"');
        write!(Escaping(self.out), "{v}").map_err(|_| Error("a Display impl failed".into()))?;
        self.out.push(b'"');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Serialize;
    use std::collections::BTreeMap;

    /// serde_json is the reference: the same value must give the same bytes.
    fn same<T: Serialize + ?Sized>(v: &T) {
        let mut ours = Vec::new();
        let theirs = serde_json::to_vec(v);
        match (write(&mut ours, v), theirs) {
            (Ok(()), Ok(t)) => {
                assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&t))
            }
            (Err(_), Err(_)) => {}
            (a, b) => panic!("ours {a:?}, serde_json {b:?}"),
        }
    }

    #[derive(Serialize)]
    enum Shape {
        Unit,
        Newtype(u8),
        Tuple(u8, &'static str),
        Struct { a: i64, b: Option<f64> },
    }

    #[derive(Serialize)]
    struct Record<'a> {
        s: &'a str,
        n: u64,
        i: i32,
        f: f64,
        g: f32,
        o: Option<u16>,
        v: Vec<Shape>,
        #[serde(with = "serde_bytes_as_seq")]
        raw: &'a [u8],
        m: BTreeMap<u32, bool>,
        k: BTreeMap<bool, ()>,
        c: char,
        t: (u8, String),
        u: (),
    }

    mod serde_bytes_as_seq {
        pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(b)
        }
    }

    #[test]
    fn every_shape_matches_serde_json() {
        same(&Record {
            s: "a\"b\\c\u{8}\t\n\u{c}\r\u{1}\u{1f}\u{7f}é€😀 long enough to take words",
            n: u64::MAX,
            i: i32::MIN,
            f: -1.5e300,
            g: 0.1,
            o: None,
            v: vec![
                Shape::Unit,
                Shape::Newtype(7),
                Shape::Tuple(1, "x"),
                Shape::Struct {
                    a: -3,
                    b: Some(f64::NAN),
                },
            ],
            raw: &[0, 1, 255],
            m: [(1, true), (20, false)].into_iter().collect(),
            k: [(true, ())].into_iter().collect(),
            c: '"',
            t: (9, "\u{0}".into()),
            u: (),
        });
        same(&serde_json::json!({"a": [1, -2, 3.25, null, true, {"b": "c"}], "": {}}));
        same(&Vec::<u8>::new());
        same(&f64::INFINITY);
        same(&[(f64::NAN, 1)].into_iter().collect::<Vec<_>>());
        // Keys that are not strings: numbers and booleans are quoted, a
        // list is refused, by both.
        same(&[(-5i64, 1)].into_iter().collect::<BTreeMap<_, _>>());
        same(&[(vec![1u8], 1)].into_iter().collect::<BTreeMap<_, _>>());
    }

    #[test]
    fn display_values_are_escaped_as_strings() {
        struct D;
        impl Serialize for D {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&format_args!("a{}b\"{}", '\n', 12))
            }
        }
        struct AsKey;
        impl Serialize for AsKey {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap as _;
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(&D, &1)?;
                m.end()
            }
        }
        same(&D);
        same(&AsKey);
    }

    #[test]
    fn one_byte_to_escape_anywhere_in_16_to_32_bytes_is_escaped() {
        // The lengths checked as two halves of 16 bytes: a byte to escape
        // at every position of every length, the rest clean.
        for n in 15..=33 {
            for at in 0..n {
                for special in ['"', '\\', '\n', '\u{1}', '\u{1f}'] {
                    let s: String = (0..n)
                        .map(|i| if i == at { special } else { 'a' })
                        .collect();
                    same(&s);
                }
            }
            same(&"b".repeat(n));
        }
    }

    proptest! {
        #[test]
        fn any_string_matches_serde_json(s in any::<String>()) {
            same(&s);
            same(&[(s.clone(), 0u8)].into_iter().collect::<BTreeMap<_, _>>());
        }

        #[test]
        fn any_control_heavy_string_matches_serde_json(
            s in proptest::collection::vec(
                prop_oneof![
                    Just('"'),
                    Just('\\'),
                    Just('a'),
                    Just('é'),
                    (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap_or('x')),
                ],
                0..40,
            )
        ) {
            same(&s.into_iter().collect::<String>());
        }

        #[test]
        fn write_u64_writes_what_to_string_writes(
            n in any::<u64>(),
            digits in 0u32..20,
            delta in 0u64..3,
        ) {
            // Any number, and the numbers around every power of ten.
            let p = 10u64.pow(digits);
            for v in [n, p.saturating_sub(delta), p.saturating_add(delta), u64::MAX - delta] {
                let mut out = b"x".to_vec();
                write_u64(&mut out, v);
                prop_assert_eq!(String::from_utf8(out).unwrap(), format!("x{v}"));
            }
        }

        #[test]
        fn any_number_matches_serde_json(a in any::<i64>(), b in any::<u64>(), f in any::<f64>(), g in any::<f32>()) {
            same(&(a, b, f, g));
        }
    }
}
