//! JSON payloads as a flat tape of borrowed tokens, for the PHI detectors
//! ([`super::json`], [`super::location`]): one pass over the bytes, no tree
//! of owned values.
//!
//! A document is accepted exactly when `serde_json::from_slice::<Value>`
//! accepts it (RFC 8259 §2–§8 as serde_json reads it): whitespace is space,
//! tab, CR and LF; numbers follow §6 (no leading zeros, no `+`, a digit
//! on both sides of `.`) and must be finite as `f64`; strings are UTF-8
//! without control characters, escapes are those of §7 and `\u`
//! surrogates come in pairs; nesting stops at [`MAX_NESTING`] (serde_json's
//! recursion limit); nothing but whitespace follows the value.
//!
//! Objects read as a `serde_json::Map` does: members in byte-wise key
//! order, a repeated key standing for its last value
//! ([`sorted_members`]), so the detectors find the same things in the
//! same order as they did on parsed values.
//!
//! Invariants: one [`Node`] per token (at most one per input byte), kept
//! in a tape the caller reuses; every container records where its
//! subtree ends, so a view walks siblings without recursion. Strings stay
//! borrowed; only a string with escapes is decoded (by serde_json) when a
//! detector reads it, and a number's text is serde_json's when a detector
//! needs it, so evidence is written exactly as before.

use crate::output::json::special;
use std::borrow::Cow;
use std::ops::Range;

/// Deepest nesting of objects and arrays accepted (serde_json fails the
/// whole document at its 128th level).
pub const MAX_NESTING: usize = 127;

/// Bytes a document may have: tape positions are 32-bit.
const MAX_LEN: usize = u32::MAX as usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Object,
    Array,
    /// A string without escapes: its bytes are its text.
    Str,
    /// A string with at least one `\` escape.
    EscStr,
    Number,
    /// `true`, `false` or `null`.
    Literal,
}

/// One token: for strings the bytes between the quotes, for numbers the
/// number; `next` is the index of the node after this one's subtree.
#[derive(Debug, Clone, Copy)]
pub struct Node {
    kind: Kind,
    start: u32,
    end: u32,
    next: u32,
}

/// A parsed document: the text and its tape.
#[derive(Debug, Clone, Copy)]
pub struct Doc<'a> {
    text: &'a str,
    nodes: &'a [Node],
}

/// One value of a [`Doc`].
#[derive(Debug, Clone, Copy)]
pub struct Val<'a> {
    doc: Doc<'a>,
    at: usize,
}

/// Parses `data` into `tape` (cleared first); `None` when serde_json
/// would reject the document.
pub fn parse<'a>(data: &'a [u8], tape: &'a mut Vec<Node>) -> Option<Doc<'a>> {
    tape.clear();
    if data.len() > MAX_LEN {
        return None;
    }
    // Outside strings a valid document is ASCII, so the whole of it is
    // UTF-8 exactly when every string is (serde_json checks each string).
    let text = std::str::from_utf8(data).ok()?;
    tokenize(data, tape)?;
    Some(Doc { text, nodes: tape })
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\n' | b'\t' | b'\r')) {
        i += 1;
    }
    i
}

/// Positions fit in `u32`: [`parse`] refuses longer input.
fn pos(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

fn push(tape: &mut Vec<Node>, kind: Kind, start: usize, end: usize) {
    let next = pos(tape.len() + 1);
    tape.push(Node {
        kind,
        start: pos(start),
        end: pos(end),
        next,
    });
}

fn tokenize(b: &[u8], tape: &mut Vec<Node>) -> Option<()> {
    // Open containers: their tape index.
    let mut stack = [0u32; MAX_NESTING];
    let mut depth = 0usize;
    let mut i = skip_ws(b, 0);
    'value: loop {
        // A value starts at `i`.
        match *b.get(i)? {
            c @ (b'{' | b'[') => {
                let slot = stack.get_mut(depth)?;
                *slot = pos(tape.len());
                depth += 1;
                let kind = if c == b'{' { Kind::Object } else { Kind::Array };
                push(tape, kind, i, i);
                i = skip_ws(b, i + 1);
                let close = if c == b'{' { b'}' } else { b']' };
                if b.get(i) != Some(&close) {
                    if c == b'{' {
                        i = member_key(b, i, tape)?;
                    }
                    continue 'value;
                }
            }
            b'"' => i = string(b, i, tape)?,
            b'-' | b'0'..=b'9' => i = number(b, i, tape)?,
            c => {
                let word: &[u8] = match c {
                    b't' => b"true",
                    b'f' => b"false",
                    b'n' => b"null",
                    _ => return None,
                };
                let end = i.checked_add(word.len())?;
                if b.get(i..end)? != word {
                    return None;
                }
                push(tape, Kind::Literal, i, end);
                i = end;
            }
        }
        // After a value (or at the closing byte of an empty container):
        // separators and closing brackets until the next value.
        loop {
            i = skip_ws(b, i);
            let Some(top) = depth.checked_sub(1) else {
                return (i == b.len()).then_some(());
            };
            let open = usize::try_from(*stack.get(top)?).ok()?;
            let in_object = tape.get(open)?.kind == Kind::Object;
            match b.get(i)? {
                b',' => {
                    i = skip_ws(b, i + 1);
                    if in_object {
                        i = member_key(b, i, tape)?;
                    }
                    continue 'value;
                }
                b'}' if in_object => {}
                b']' if !in_object => {}
                _ => return None,
            }
            let next = pos(tape.len());
            let node = tape.get_mut(open)?;
            node.next = next;
            node.end = pos(i + 1);
            depth = top;
            i += 1;
        }
    }
}

/// A member's key and its `:`; returns where the value starts.
fn member_key(b: &[u8], i: usize, tape: &mut Vec<Node>) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let i = skip_ws(b, string(b, i, tape)?);
    (b.get(i) == Some(&b':')).then(|| skip_ws(b, i + 1))
}

fn hex4(b: &[u8], at: usize) -> Option<u16> {
    let digits = b.get(at..at.checked_add(4)?)?;
    digits.iter().try_fold(0u16, |n, &c| {
        let d = char::from(c).to_digit(16)?;
        Some(n << 4 | d as u16)
    })
}

/// The string whose `"` is at `i`; returns the index after its closing
/// quote.
fn string(b: &[u8], i: usize, tape: &mut Vec<Node>) -> Option<usize> {
    let start = i + 1;
    let mut j = start;
    let mut escaped = false;
    loop {
        // Plain bytes eight at a time, up to the first quote, backslash or
        // control character of the word (the lowest flagged byte of
        // `special` is exact).
        if let Some(w) = b.get(j..j + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
            let m = special(u64::from_le_bytes(w));
            if m == 0 {
                j += 8;
                continue;
            }
            j += (m.trailing_zeros() / 8) as usize;
        }
        match *b.get(j)? {
            b'"' => break,
            b'\\' => {
                escaped = true;
                match *b.get(j + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => j += 2,
                    b'u' => {
                        let n = hex4(b, j + 2)?;
                        j += 6;
                        match n {
                            0xDC00..=0xDFFF => return None,
                            0xD800..=0xDBFF => {
                                // A leading surrogate needs its trailing one.
                                if b.get(j..j + 2)? != b"\\u"
                                    || !(0xDC00..=0xDFFF).contains(&hex4(b, j + 2)?)
                                {
                                    return None;
                                }
                                j += 6;
                            }
                            _ => {}
                        }
                    }
                    _ => return None,
                }
            }
            0..=0x1f => return None,
            _ => j += 1,
        }
    }
    let kind = if escaped { Kind::EscStr } else { Kind::Str };
    push(tape, kind, start, j);
    Some(j + 1)
}

/// The number starting at `i`; returns the index after it.
fn number(b: &[u8], i: usize, tape: &mut Vec<Node>) -> Option<usize> {
    let digits = |from: usize| {
        b.get(from..)
            .map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count())
    };
    let mut j = i + usize::from(b.get(i) == Some(&b'-'));
    let int = digits(j);
    if int == 0 || (int > 1 && b.get(j) == Some(&b'0')) {
        return None;
    }
    j += int;
    if b.get(j) == Some(&b'.') {
        let frac = digits(j + 1);
        if frac == 0 {
            return None;
        }
        j += 1 + frac;
    }
    let mut exp = 0i64;
    if matches!(b.get(j), Some(b'e' | b'E')) {
        j += 1;
        let neg = b.get(j) == Some(&b'-');
        j += usize::from(matches!(b.get(j), Some(b'-' | b'+')));
        let n = digits(j);
        if n == 0 {
            return None;
        }
        let e = b.get(j..j + n)?.iter().fold(0i64, |a, &c| {
            a.saturating_mul(10).saturating_add(i64::from(c - b'0'))
        });
        exp = if neg { -e } else { e };
        j += n;
    }
    // Below 10^300 a number is a finite f64; near f64::MAX serde_json's
    // own reading says whether it overflows (and fails the document).
    let magnitude = i64::try_from(int).unwrap_or(i64::MAX).saturating_add(exp);
    if magnitude > 300 && serde_json::from_slice::<serde_json::Number>(b.get(i..j)?).is_err() {
        return None;
    }
    push(tape, Kind::Number, i, j);
    Some(j)
}

impl<'a> Doc<'a> {
    /// The document's top-level value.
    pub fn root(self) -> Val<'a> {
        Val { doc: self, at: 0 }
    }

    fn node(self, at: usize) -> Option<&'a Node> {
        self.nodes.get(at)
    }

    fn raw(self, n: &Node) -> &'a str {
        self.text
            .get(n.start as usize..n.end as usize)
            .unwrap_or_default()
    }

    /// A string node's text, decoded when it has escapes.
    fn string(self, at: usize) -> Option<Cow<'a, str>> {
        let n = self.node(at)?;
        match n.kind {
            Kind::Str => Some(Cow::Borrowed(self.raw(n))),
            Kind::EscStr => {
                // Copied: the decoded text differs from the bytes. The
                // quotes around the raw text are part of the document.
                let quoted = self
                    .text
                    .get((n.start as usize).checked_sub(1)?..n.end as usize + 1)?;
                serde_json::from_str::<String>(quoted).ok().map(Cow::Owned)
            }
            _ => None,
        }
    }

    /// The member whose key node is at `key`: its key and its value.
    pub fn member(self, key: u32) -> Option<(Cow<'a, str>, Val<'a>)> {
        let key = key as usize;
        Some((
            self.string(key)?,
            Val {
                doc: self,
                at: key + 1,
            },
        ))
    }

    fn key_eq(self, at: usize, want: &str) -> bool {
        match self.node(at) {
            Some(n) if n.kind == Kind::Str => self.raw(n) == want,
            Some(_) => self.string(at).is_some_and(|k| k == want),
            None => false,
        }
    }
}

impl<'a> Val<'a> {
    fn node(self) -> Option<&'a Node> {
        self.doc.node(self.at)
    }

    fn kind_is(self, kind: Kind) -> bool {
        self.node().is_some_and(|n| n.kind == kind)
    }

    pub fn is_object(self) -> bool {
        self.kind_is(Kind::Object)
    }

    pub fn is_array(self) -> bool {
        self.kind_is(Kind::Array)
    }

    pub fn is_number(self) -> bool {
        self.kind_is(Kind::Number)
    }

    /// The text of a string value.
    pub fn as_str(self) -> Option<Cow<'a, str>> {
        self.doc.string(self.at)
    }

    /// A number value as serde_json writes it (`48.84512`, `1e-7`, `17`,
    /// `-0.0` for `-0`).
    pub fn number_text(self) -> Option<String> {
        let n = self.node().filter(|n| n.kind == Kind::Number)?;
        let number: serde_json::Number = serde_json::from_str(self.doc.raw(n)).ok()?;
        Some(number.to_string())
    }

    /// The tape indices of a container's children (for an object: its key
    /// nodes, each followed by its value).
    fn children(self) -> impl Iterator<Item = usize> + 'a {
        let doc = self.doc;
        let (first, end, step) = match self.node() {
            Some(n) if n.kind == Kind::Array => (self.at + 1, n.next as usize, 0),
            Some(n) if n.kind == Kind::Object => (self.at + 1, n.next as usize, 1),
            _ => (0, 0, 0),
        };
        std::iter::successors(Some(first), move |&i| {
            doc.node(i + step).map(|n| n.next as usize)
        })
        .take_while(move |&i| i < end)
    }

    /// The elements of an array (nothing for another value).
    pub fn elements(self) -> impl Iterator<Item = Val<'a>> + 'a {
        let doc = self.doc;
        let array = self.is_array();
        self.children()
            .filter(move |_| array)
            .map(move |at| Val { doc, at })
    }

    /// An object's member `key` (the last one when the key repeats).
    pub fn get(self, key: &str) -> Option<Val<'a>> {
        if !self.is_object() {
            return None;
        }
        let doc = self.doc;
        self.children()
            .filter(|&k| doc.key_eq(k, key))
            .last()
            .map(|k| Val { doc, at: k + 1 })
    }

    pub fn doc(self) -> Doc<'a> {
        self.doc
    }
}

/// Members of an object sorted on the stack by [`sorted_members`].
const SMALL_OBJECT: usize = 16;

/// Appends the key nodes of object `obj` to `out` in `serde_json::Map`
/// order (byte-wise by key, the last of a repeated key), returning their
/// range in `out`.
pub fn sorted_members(obj: Val<'_>, out: &mut Vec<u32>) -> Range<usize> {
    let base = out.len();
    if !obj.is_object() {
        return base..base;
    }
    out.extend(obj.children().map(pos));
    let doc = obj.doc;
    let segment = out.get_mut(base..).unwrap_or_default();
    let raw = |k: u32| doc.node(k as usize).map_or("", |n| doc.raw(n));
    let escaped = segment
        .iter()
        .any(|&k| doc.node(k as usize).is_some_and(|n| n.kind == Kind::EscStr));
    // Unstable sorts: ties broken by position, so a repeated key's last
    // occurrence ends its run. Keys without escapes compare as their bytes.
    let kept = if escaped {
        // Copied: each key decoded once (an escape changes its order).
        let mut keyed: Vec<(Cow<'_, str>, u32)> = segment
            .iter()
            .map(|&k| (doc.string(k as usize).unwrap_or_default(), k))
            .collect();
        keyed.sort_unstable();
        let mut kept = 0;
        for (i, (key, k)) in keyed.iter().enumerate() {
            if keyed.get(i + 1).is_none_or(|(next, _)| next != key) {
                if let Some(slot) = segment.get_mut(kept) {
                    *slot = *k;
                }
                kept += 1;
            }
        }
        kept
    } else if segment.len() <= SMALL_OBJECT {
        // Most objects: their keys looked up once, sorted on the stack,
        // each with its first eight bytes as a big-endian integer
        // ([`key_prefix`]: an order-keeping summary), so most comparisons
        // compare two integers and only keys that share eight bytes
        // compare their text.
        let mut keyed = [(0u64, "", 0u32); SMALL_OBJECT];
        for (slot, &k) in keyed.iter_mut().zip(segment.iter()) {
            let key = raw(k);
            *slot = (key_prefix(key), key, k);
        }
        let keyed = keyed.get_mut(..segment.len()).unwrap_or_default();
        keyed.sort_unstable();
        let mut kept = 0;
        for i in 0..keyed.len() {
            let (Some(&(prefix, key, k)), next) = (keyed.get(i), keyed.get(i + 1)) else {
                break;
            };
            if next.is_none_or(|&(p, n, _)| p != prefix || n != key) {
                if let Some(slot) = segment.get_mut(kept) {
                    *slot = k;
                }
                kept += 1;
            }
        }
        kept
    } else {
        segment.sort_unstable_by(|&a, &b| raw(a).cmp(raw(b)).then(a.cmp(&b)));
        let mut kept = 0;
        for i in 0..segment.len() {
            let (Some(&k), next) = (segment.get(i), segment.get(i + 1).copied()) else {
                break;
            };
            if next.is_none_or(|n| raw(n) != raw(k)) {
                if let Some(slot) = segment.get_mut(kept) {
                    *slot = k;
                }
                kept += 1;
            }
        }
        kept
    };
    let kept = base + kept;
    out.truncate(kept);
    base..kept
}

/// The first eight bytes of a key without escapes as a big-endian integer,
/// zero-padded: `a < b` implies `key_prefix(a) <= key_prefix(b)`, as such
/// a key holds no zero byte (control characters are refused), so a
/// shorter key's padding sorts before any byte a longer one has there.
fn key_prefix(key: &str) -> u64 {
    let b = key.as_bytes();
    if let Some(w) = b.first_chunk::<8>() {
        return u64::from_be_bytes(*w);
    }
    // A shorter key (most keys) byte by byte: no copy of a length known
    // only at run time into a padded buffer.
    b.iter()
        .zip((0..8).rev())
        .fold(0, |w, (&c, i)| w | u64::from(c) << (8 * i))
}

/// An object's member as the walks hand it on: its key's text and its value.
pub type Member<'a> = (Cow<'a, str>, Val<'a>);

/// Visits the objects under `v` as the detectors' walks did over parsed
/// values: an object, then its object and array members in key order,
/// arrays' elements in order, at most `max_depth` levels down. `f` gets
/// the object, its members in key order (each key read once, for every
/// detector and the walk itself) and the key it was found under (an array
/// passes its own key on to its elements).
pub fn walk_objects<'a, F>(v: Val<'a>, max_depth: usize, scratch: &mut Vec<u32>, f: &mut F)
where
    F: FnMut(Val<'a>, &[Member<'a>], Option<&str>),
{
    // The members of the objects on the path walked, each object's after
    // its parent's: one list for the document, each object's members
    // pushed as read (no array of members set up and dropped per object).
    // At most one entry per key of the document.
    let mut members = Vec::with_capacity(SMALL_OBJECT);
    walk(v, None, 0, max_depth, scratch, &mut members, f);
}

fn walk<'a, F>(
    v: Val<'a>,
    key: Option<&str>,
    depth: usize,
    max_depth: usize,
    scratch: &mut Vec<u32>,
    members: &mut Vec<Member<'a>>,
    f: &mut F,
) where
    F: FnMut(Val<'a>, &[Member<'a>], Option<&str>),
{
    if depth > max_depth {
        return;
    }
    let container = |c: &Val<'a>| c.is_object() || c.is_array();
    if v.is_object() {
        let base = members.len();
        if !small_sorted(v, members) {
            members.truncate(base);
            let range = sorted_members(v, scratch);
            let keys = scratch.get(range.clone()).unwrap_or_default();
            members.extend(keys.iter().filter_map(|&k| v.doc.member(k)));
            scratch.truncate(range.start);
        }
        let end = members.len();
        f(v, members.get(base..).unwrap_or_default(), key);
        for i in base..end {
            // The children's walks push past `end` and take their members
            // off again: this object's stay where they are. The key is
            // copied out of the list (borrowed text, no allocation unless
            // it had escapes) as the list grows under it.
            let Some((k, child)) = members.get(i).filter(|(_, c)| container(c)).cloned() else {
                continue;
            };
            walk(child, Some(&k), depth + 1, max_depth, scratch, members, f);
        }
        members.truncate(base);
    } else {
        for child in v.elements().filter(container) {
            walk(child, key, depth + 1, max_depth, scratch, members, f);
        }
    }
}

/// Pushes the members of `obj` onto `out` in [`sorted_members`]' order
/// when it has at most [`SMALL_OBJECT`] members and no key with an escape
/// (most objects): their keys read and sorted on the stack in one go, with
/// no list of key positions between the sort and the members; returns
/// whether it did. False for any other object (or a value that is no
/// object), with nothing pushed: the caller takes [`sorted_members`]' way.
fn small_sorted<'a>(obj: Val<'a>, out: &mut Vec<Member<'a>>) -> bool {
    let doc = obj.doc;
    let (first, end) = match obj.node() {
        Some(n) if n.kind == Kind::Object => (obj.at + 1, n.next as usize),
        _ => return false,
    };
    let mut keyed = [(0u64, "", 0u32); SMALL_OBJECT];
    let mut n = 0usize;
    let mut at = first;
    while at < end {
        let Some(key) = doc.node(at) else {
            return false;
        };
        if key.kind != Kind::Str {
            return false;
        }
        let text = doc.raw(key);
        let Some(slot) = keyed.get_mut(n) else {
            return false;
        };
        *slot = (key_prefix(text), text, pos(at));
        n += 1;
        // The member's value follows its key; the next key follows the
        // value's subtree.
        let Some(value) = doc.node(at + 1) else {
            return false;
        };
        at = value.next as usize;
    }
    let keyed = keyed.get_mut(..n).unwrap_or_default();
    // As in `sorted_members`: ties broken by position, so a repeated
    // key's last occurrence ends its run and is the one kept.
    keyed.sort_unstable();
    for i in 0..keyed.len() {
        let (Some(&(prefix, text, k)), next) = (keyed.get(i), keyed.get(i + 1)) else {
            break;
        };
        if next.is_none_or(|&(p, t, _)| p != prefix || t != text) {
            out.push((
                Cow::Borrowed(text),
                Val {
                    doc,
                    at: k as usize + 1,
                },
            ));
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value};

    /// The tape read back as serde_json values, objects through
    /// [`sorted_members`]: equal to serde_json's own parse when the tape
    /// reads documents as it does.
    fn to_value(v: Val<'_>) -> Value {
        let mut keys = Vec::new();
        if v.is_object() {
            let mut map = Map::new();
            let mut last: Option<String> = None;
            for i in sorted_members(v, &mut keys) {
                let (k, child) = v.doc.member(keys[i]).unwrap();
                // In the map's order, each key once: the walks must not
                // see a repeated key twice.
                assert!(last.as_deref().is_none_or(|l| l < &*k), "{last:?} {k}");
                last = Some(k.to_string());
                assert!(map.insert(k.into_owned(), to_value(child)).is_none());
            }
            Value::Object(map)
        } else if v.is_array() {
            Value::Array(v.elements().map(to_value).collect())
        } else if let Some(s) = v.as_str() {
            Value::String(s.into_owned())
        } else if v.is_number() {
            serde_json::from_str(&v.number_text().unwrap()).unwrap()
        } else {
            serde_json::from_str(v.doc.raw(v.node().unwrap())).unwrap()
        }
    }

    /// serde_json (the independent reference) and the tape agree on
    /// whether `doc` is JSON and on what it holds.
    fn agrees(doc: &[u8]) {
        let mut tape = Vec::new();
        let ours = parse(doc, &mut tape).map(|d| to_value(d.root()));
        let reference = serde_json::from_slice::<Value>(doc).ok();
        assert_eq!(ours, reference, "{}", String::from_utf8_lossy(doc));
    }

    #[test]
    fn documents_read_as_serde_json_reads_them() {
        for doc in [
            r#"{"b":1,"a":[true,false,null],"c":{"x":"y"}}"#,
            r#" [ ] "#,
            r#"{}"#,
            r#"{"a":1,"a":2,"b":{"a":3},"a":{"z":[]}}"#,
            r#"{"\u0061":1,"a":2}"#,
            r#"{"a\"b":"\ud83d\ude00 \n \/ \\ \t é","é":"ü"}"#,
            r#"[0,-0,0.5,-1.25e-7,1E+2,18446744073709551616,-9223372036854775809,1e-400]"#,
            r#"[48.845120,2.35601,1.7976931348623157e308]"#,
            "{\"a\" :\t1 ,\r\n\"b\":[ 1 , 2 ]}",
            r#"{"":0}"#,
        ] {
            agrees(doc.as_bytes());
        }
    }

    #[test]
    fn hand_built_hostile_documents_are_refused_as_serde_json_refuses_them() {
        // Hand-built: each differs from valid JSON by one hostile detail.
        for doc in [
            &br#"{"a":1,}"#[..],
            br#"[1,]"#,
            br#"[01]"#,
            br#"[-]"#,
            br#"[1.]"#,
            br#"[.5]"#,
            br#"[1e]"#,
            br#"[+1]"#,
            br#"[1e309]"#,
            br#"[-1e400]"#,
            br#"[1e99999999999999999999]"#,
            br#"[0e99999999999999999999]"#,
            br#"["\ud800"]"#,
            br#"["\udc00"]"#,
            br#"["\ud800\u0041"]"#,
            br#"["\x"]"#,
            br#"["\u12g4"]"#,
            b"[\"\x01\"]",
            b"[\"\xff\"]",
            b"[\"\xe2\x82\"]",
            br#"{"a" 1}"#,
            br#"{1:2}"#,
            br#"[1] x"#,
            br#"[1]]"#,
            br#"[tru]"#,
            br#"[nulll]"#,
            br#"{"a":1"#,
            br#"["abc"#,
            b"[1,\x0b2]",
        ] {
            agrees(doc);
        }
        let mut huge = b"[1".to_vec();
        huge.extend(std::iter::repeat_n(b'0', 400));
        huge.push(b']');
        agrees(&huge);
    }

    #[test]
    fn nesting_is_refused_where_serde_json_refuses_it() {
        for depth in [MAX_NESTING - 1, MAX_NESTING, MAX_NESTING + 1, 1000] {
            let doc = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            agrees(doc.as_bytes());
            let doc = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
            agrees(doc.as_bytes());
        }
    }

    #[test]
    fn walk_visits_objects_in_key_order_with_their_keys() {
        let doc = br#"{"z":{"q":1},"a":[{"n":2},[{"m":3}]],"m":{"deep":{"x":{}}}}"#;
        let mut tape = Vec::new();
        let d = parse(doc, &mut tape).unwrap();
        let mut seen = Vec::new();
        walk_objects(d.root(), 2, &mut Vec::new(), &mut |_, members, key| {
            let keys: Vec<String> = members.iter().map(|(k, _)| k.to_string()).collect();
            seen.push((key.map(str::to_string), keys.join(",")));
        });
        let want = [
            (None, "a,m,z"),
            (Some("a"), "n"),
            (Some("m"), "deep"),
            (Some("deep"), "x"),
            (Some("z"), "q"),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(k, v)| (k.map(str::to_string), v.to_string()))
            .collect();
        assert_eq!(seen, want);
    }

    /// What [`walk_objects`] hands on, from [`sorted_members`] and
    /// [`Doc::member`] alone (the walk before its stack-sorted path).
    #[allow(clippy::type_complexity)]
    fn reference_walk(
        v: Val<'_>,
        key: Option<&str>,
        depth: usize,
        max_depth: usize,
        seen: &mut Vec<(usize, Option<String>, Vec<(String, usize)>)>,
    ) {
        if depth > max_depth {
            return;
        }
        let container = |c: &Val<'_>| c.is_object() || c.is_array();
        if v.is_object() {
            let mut keys = Vec::new();
            let range = sorted_members(v, &mut keys);
            let members: Vec<_> = keys[range]
                .iter()
                .map(|&k| v.doc.member(k).unwrap())
                .collect();
            seen.push((
                v.at,
                key.map(str::to_string),
                members.iter().map(|(k, c)| (k.to_string(), c.at)).collect(),
            ));
            for (k, child) in &members {
                if container(child) {
                    reference_walk(*child, Some(k), depth + 1, max_depth, seen);
                }
            }
        } else {
            for child in v.elements().filter(container) {
                reference_walk(child, key, depth + 1, max_depth, seen);
            }
        }
    }

    /// Token soup: fragments of JSON, valid and hostile, glued at random,
    /// so duplicate keys, deep nesting and every kind of bad token meet.
    const FRAGMENTS: [&str; 26] = [
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        " ",
        "\"a\"",
        "\"b\"",
        "\"A\"",
        "\"\\u0061\"",
        "\"\\ud83d\\ude00\"",
        "\"\\ud800\"",
        "\"\u{e9}\"",
        "\"x",
        "1",
        "-0",
        "0.50",
        "1e400",
        "-1.5E-7",
        "01",
        "true",
        "nul",
        "null",
        "\"lat\":48.84512",
        "\\",
    ];

    /// Valid documents whose objects repeat keys, some spelt with escapes.
    fn document() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let leaf = proptest::sample::select(
            &[
                "1",
                "-0",
                "0.50",
                "1e-7",
                "48.84512",
                "\"a\"",
                "\"\\u0061b\"",
                "true",
                "null",
            ][..],
        )
        .prop_map(str::to_string);
        leaf.prop_recursive(4, 48, 5, |inner| {
            let key = proptest::sample::select(
                &[
                    "a",
                    "b",
                    "A",
                    "",
                    "\u{e9}",
                    "\\u0061",
                    "lat",
                    // Keys sharing their first eight bytes, and one of
                    // exactly eight: the sort's integer prefixes tie.
                    "patientN",
                    "patientName",
                    "patientNamf",
                    "patientN\u{e9}",
                ][..],
            );
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                proptest::collection::vec((key, inner), 0..6).prop_map(|members| {
                    let members: Vec<String> = members
                        .iter()
                        .map(|(k, v)| format!("\"{k}\" : {v}"))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        #[test]
        fn any_document_with_repeated_keys_reads_as_serde_json_reads_it(doc in document()) {
            agrees(doc.as_bytes());
        }

        #[test]
        fn walks_hand_on_the_members_sorted_members_gives(doc in document()) {
            let mut tape = Vec::new();
            let d = parse(doc.as_bytes(), &mut tape).unwrap();
            let mut ours = Vec::new();
            walk_objects(d.root(), 8, &mut Vec::new(), &mut |o, members, key| {
                let m: Vec<(String, usize)> =
                    members.iter().map(|(k, v)| (k.to_string(), v.at)).collect();
                ours.push((o.at, key.map(str::to_string), m));
            });
            let mut theirs = Vec::new();
            reference_walk(d.root(), None, 0, 8, &mut theirs);
            proptest::prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn key_prefixes_keep_the_order_of_keys(
            a in "[ -~\u{e9}\u{1F600}]{0,12}",
            b in "[ -~\u{e9}\u{1F600}]{0,12}",
        ) {
            // Any keys without control characters (as an unescaped key is).
            let (pa, pb) = (key_prefix(&a), key_prefix(&b));
            // The first eight bytes, zero-padded, big-endian.
            for k in [&a, &b] {
                let mut w = [0u8; 8];
                let n = k.len().min(8);
                w[..n].copy_from_slice(&k.as_bytes()[..n]);
                proptest::prop_assert_eq!(key_prefix(k), u64::from_be_bytes(w));
            }
            if a < b {
                proptest::prop_assert!(pa <= pb);
            } else if a > b {
                proptest::prop_assert!(pa >= pb);
            } else {
                proptest::prop_assert_eq!(pa, pb);
            }
        }

        #[test]
        fn any_token_soup_reads_as_serde_json_reads_it(
            parts in proptest::collection::vec(proptest::sample::select(&FRAGMENTS[..]), 0..40),
        ) {
            agrees(parts.concat().as_bytes());
        }
    }
}
