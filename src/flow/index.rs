//! The flow table's index: slot numbers by the hash of their flow's key,
//! laid out so that where a key's entry lies is known from its hash alone.
//!
//! Owns: finding a flow's slot number from its hash (the caller compares
//! keys, which live in the slots), inserting and removing slot numbers, and
//! [`Index::prefetch`] / [`Index::candidates`], which let the table ask for
//! the memory a coming packet's lookup will read before that packet is
//! processed.
//!
//! Why not `hashbrown::HashTable`: on `mqtt_small` (126 000 flows, one
//! worker) 70 % of `FlowTable::update`'s time (8 % of the run) was spent
//! waiting for the index's group and the slot it names to come from
//! memory. Packets are processed one after the other, so a lookup can be
//! started early only with the addresses it will read, and hashbrown keeps
//! them to itself. This is the same scheme (SwissTable: 7-bit tags in
//! control bytes, groups of 16 probed by triangular steps, tombstones,
//! 7/8 maximum load) with the groups at addresses computed from the hash.
//!
//! Invariants:
//! - A group is [`GROUP`] control bytes (tag, `EMPTY` or `DELETED`) and
//!   as many slot numbers; the number of groups is a power of two (or
//!   zero before the first insert).
//! - Probing a hash visits groups `g0, g0+1, g0+3, g0+6, …` (mod the
//!   count: every group once) and stops at the first group holding an
//!   `EMPTY` byte. An entry is never behind a group with an `EMPTY` byte on
//!   its probe path; a removal writes `EMPTY` only into a group that already
//!   has one (no probe passes through it), otherwise `DELETED`.
//! - At least one byte in eight stays `EMPTY` (`growth_left`), so every
//!   probe ends; when none is left, the index is rebuilt at the same size
//!   (many `DELETED`) or at twice the size, as hashbrown does: memory per
//!   entry is the same (5 bytes at load 7/32 to 7/8).

/// Entries per group: one SSE-width compare of control bytes in hashbrown;
/// here a 16-byte word.
const GROUP: usize = 16;
/// A control byte never used since the last rebuild: zero, so that a new
/// index is memory the allocator knows to be zero and does not write (the
/// kernel's zero pages until used).
const EMPTY: u8 = 0x00;
/// A control byte whose entry was removed.
const DELETED: u8 = 0x01;
/// Set in every tag, clear in `EMPTY` and `DELETED`.
const LIVE: u8 = 0x80;

/// A group: 16 control bytes (in the first four words, byte `i` in bits
/// `8 * (i % 4)` of word `i / 4`) and 16 slot numbers, 80 bytes in one
/// allocation as hashbrown keeps them (a probe reads two adjacent cache
/// lines at most). Words, not a struct, so that a new index is a zeroed
/// allocation, which the allocator does not write: its pages stay the
/// kernel's until used (as hashbrown's uninitialised buckets do).
type Group = [u32; 4 + GROUP];

/// Slot numbers by hash (see the module).
pub struct Index {
    groups: Box<[Group]>,
    items: usize,
    /// Inserts into an `EMPTY` byte left before the index must be rebuilt.
    growth_left: usize,
}

/// The low bits choose the first group, the top seven are the tag.
fn tag(hash: u64) -> u8 {
    (hash >> 57) as u8 | LIVE
}

/// Bytes of `word` equal to `byte`: bit 7 of each such byte set, no other.
fn matching(word: u128, byte: u8) -> u128 {
    const LOW7: u128 = u128::from_ne_bytes([0x7F; 16]);
    let x = word ^ u128::from_ne_bytes([byte; 16]);
    // A byte of x is zero exactly when adding 0x7F to its low seven bits
    // does not carry into bit 7 and its own bit 7 is clear.
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// Entry numbers (0..16) of the set high bits of a [`matching`] mask.
fn positions(mut mask: u128) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let at = mask.trailing_zeros() as usize / 8;
        mask &= mask - 1;
        Some(at)
    })
}

/// The groups a hash's probe visits, in order, each once.
fn probe(hash: u64, groups: usize) -> impl Iterator<Item = usize> {
    let mask = groups.wrapping_sub(1);
    let mut pos = hash as usize & mask;
    (0..groups).map(move |step| {
        pos = (pos + step) & mask;
        pos
    })
}

/// The control bytes of a group as one word, byte `i` at bits `8 * i`.
fn ctrl(g: &Group) -> u128 {
    u128::from(g[0]) | u128::from(g[1]) << 32 | u128::from(g[2]) << 64 | u128::from(g[3]) << 96
}

fn set_ctrl(g: &mut Group, at: usize, byte: u8) {
    if let Some(w) = g.get_mut(at / 4) {
        let shift = 8 * (at % 4);
        *w = (*w & !(0xFF << shift)) | u32::from(byte) << shift;
    }
}

fn slot(g: &Group, at: usize) -> Option<u32> {
    g.get(4 + at).copied()
}

impl Index {
    pub fn new() -> Index {
        Index {
            groups: Box::new([]),
            items: 0,
            growth_left: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.items
    }

    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// The first group of `hash`'s probe.
    fn first(&self, hash: u64) -> Option<&Group> {
        self.groups
            .get(hash as usize & self.groups.len().wrapping_sub(1))
    }

    /// The slot number among those stored under `hash` for which `eq` is
    /// true.
    #[inline]
    pub fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let t = tag(hash);
        for g in probe(hash, self.groups.len()) {
            let group = self.groups.get(g)?;
            let word = ctrl(group);
            for at in positions(matching(word, t)) {
                let s = slot(group, at)?;
                if eq(s) {
                    return Some(s);
                }
            }
            if matching(word, EMPTY) != 0 {
                return None;
            }
        }
        None
    }

    /// Asks for the memory [`Index::find`] of `hash` reads first: the
    /// first group's control bytes and slot numbers.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if let Some(group) = self.first(hash) {
            crate::hint::prefetch_value(group);
        }
    }

    /// The slot numbers of the first group whose tags match `hash`'s: the
    /// slots [`Index::find`] will most likely compare (after
    /// [`Index::prefetch`], read from the cache).
    #[inline]
    pub fn candidates(&self, hash: u64) -> impl Iterator<Item = u32> + '_ {
        let group = self.first(hash);
        let mask = group.map_or(0, |g| matching(ctrl(g), tag(hash)));
        positions(mask).filter_map(move |at| group.and_then(|g| slot(g, at)))
    }

    /// Stores `slot` under `hash`; no entry for the same key may be there.
    /// `rehash` gives the hash of a stored slot number, for rebuilding.
    pub fn insert_unique(&mut self, hash: u64, slot: u32, rehash: impl Fn(u32) -> u64) {
        if self.growth_left == 0 {
            self.rebuild(rehash);
        }
        if let Some((g, at)) = self.free_entry(hash) {
            self.place(g, at, hash, slot);
        }
    }

    /// The first `EMPTY` or `DELETED` entry on `hash`'s probe path.
    fn free_entry(&self, hash: u64) -> Option<(usize, usize)> {
        probe(hash, self.groups.len()).find_map(|g| {
            let word = ctrl(self.groups.get(g)?);
            // Both have bit 7 clear; tags have it set.
            let free = !word & u128::from_ne_bytes([LIVE; 16]);
            positions(free).next().map(|at| (g, at))
        })
    }

    fn place(&mut self, g: usize, at: usize, hash: u64, value: u32) {
        let Some(group) = self.groups.get_mut(g) else {
            return;
        };
        if (ctrl(group) >> (8 * at)) as u8 == EMPTY {
            self.growth_left -= 1;
        }
        set_ctrl(group, at, tag(hash));
        if let Some(s) = group.get_mut(4 + at) {
            *s = value;
        }
        self.items += 1;
    }

    /// Removes `value`, stored under `hash`.
    pub fn remove(&mut self, hash: u64, value: u32) -> bool {
        let t = tag(hash);
        for g in probe(hash, self.groups.len()) {
            let Some(group) = self.groups.get_mut(g) else {
                return false;
            };
            let word = ctrl(group);
            let hit = positions(matching(word, t)).find(|&at| slot(group, at) == Some(value));
            let empty = matching(word, EMPTY) != 0;
            if let Some(at) = hit {
                set_ctrl(group, at, if empty { EMPTY } else { DELETED });
                self.growth_left += usize::from(empty);
                self.items -= 1;
                return true;
            }
            if empty {
                return false;
            }
        }
        false
    }

    /// Entries the index may hold before it must be rebuilt: 7/8 of them.
    fn capacity(groups: usize) -> usize {
        groups * GROUP / 8 * 7
    }

    /// Rebuilds the index with room for one more entry: at the same size
    /// when at most half its capacity is live (the rest were `DELETED`),
    /// else at twice the size (hashbrown's rule).
    fn rebuild(&mut self, rehash: impl Fn(u32) -> u64) {
        let groups = self.groups.len();
        let want = if self.items < Self::capacity(groups) / 2 {
            groups.max(1)
        } else {
            (groups * 2).max(1)
        };
        let old = std::mem::replace(&mut self.groups, vec![[0; 4 + GROUP]; want].into());
        self.items = 0;
        self.growth_left = Self::capacity(want);
        for group in old.iter() {
            let word = ctrl(group);
            for at in positions(word & u128::from_ne_bytes([LIVE; 16])) {
                if let Some(s) = slot(group, at) {
                    let hash = rehash(s);
                    if let Some((g, to)) = self.free_entry(hash) {
                        self.place(g, to, hash, s);
                    }
                }
            }
        }
    }
}

impl Default for Index {
    fn default() -> Self {
        Index::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn matching_finds_exactly_the_equal_bytes() {
        let mut bytes = [0u8; 16];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = [0x00, 0x7F, 0x80, 0xFE, 0x01, 0x81][i % 6];
        }
        for probe_byte in [0x00, 0x01, 0x7F, 0x80, 0x81, 0xFE, 0xFF] {
            let got: Vec<usize> =
                positions(matching(u128::from_le_bytes(bytes), probe_byte)).collect();
            let want: Vec<usize> = (0..16).filter(|&i| bytes[i] == probe_byte).collect();
            assert_eq!(got, want, "byte {probe_byte:#x}");
        }
    }

    #[test]
    fn probe_visits_every_group_once() {
        for groups in [1usize, 2, 4, 64, 1024] {
            for hash in [0u64, 1, 7, 0xdead_beef, u64::MAX] {
                let mut seen: Vec<usize> = probe(hash, groups).collect();
                seen.sort_unstable();
                assert_eq!(seen, (0..groups).collect::<Vec<_>>());
            }
        }
    }

    /// Hashes crowded into few groups and few tags, so that probes run
    /// long, tags collide and removals leave `DELETED` behind.
    fn crowded(key: u32) -> u64 {
        let k = u64::from(key);
        ((k % 5) << 57) | (k % 3)
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32),
        Remove(u32),
    }

    proptest! {
        /// Against a `HashMap` of key → slot, with slot numbers reused as
        /// the flow table reuses them: every key is found at its slot
        /// and no removed key is found, whatever the order of inserts and
        /// removals, through rebuilds.
        #[test]
        fn behaves_as_a_map(ops in prop::collection::vec(
            prop_oneof![(0u32..300).prop_map(Op::Insert), (0u32..300).prop_map(Op::Remove)],
            0..2000,
        )) {
            let mut ix = Index::new();
            // slot -> key, as the flow table's slots hold keys.
            let mut slots: Vec<Option<u32>> = Vec::new();
            let mut free: Vec<u32> = Vec::new();
            let mut model: HashMap<u32, u32> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k) if !model.contains_key(&k) => {
                        let s = free.pop().unwrap_or_else(|| {
                            slots.push(None);
                            (slots.len() - 1) as u32
                        });
                        slots[s as usize] = Some(k);
                        let table = slots.clone();
                        ix.insert_unique(crowded(k), s, |s| crowded(table[s as usize].unwrap()));
                        model.insert(k, s);
                    }
                    Op::Remove(k) => {
                        if let Some(s) = model.remove(&k) {
                            prop_assert!(ix.remove(crowded(k), s));
                            slots[s as usize] = None;
                            free.push(s);
                        }
                    }
                    Op::Insert(_) => {}
                }
                prop_assert_eq!(ix.len(), model.len());
            }
            for k in 0u32..300 {
                let found = ix.find(crowded(k), |s| slots[s as usize] == Some(k));
                prop_assert_eq!(found, model.get(&k).copied(), "key {}", k);
            }
        }
    }

    #[test]
    fn candidates_name_the_slot_find_returns_in_the_first_group() {
        let mut ix = Index::new();
        let hash = |k: u32| u64::from(k).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for k in 0..1000u32 {
            ix.insert_unique(hash(k), k, hash);
        }
        let mut first_group = 0;
        for k in 0..1000u32 {
            assert_eq!(ix.find(hash(k), |s| s == k), Some(k));
            if ix.candidates(hash(k)).any(|s| s == k) {
                first_group += 1;
            }
        }
        // At a load of 7/16 to 7/8 nearly every entry sits in its first
        // group.
        assert!(
            first_group > 950,
            "{first_group} of 1000 in their first group"
        );
    }

    #[test]
    fn a_table_of_tombstones_is_rebuilt_at_its_size() {
        let mut ix = Index::new();
        let hash = |k: u32| u64::from(k).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for k in 0..100u32 {
            ix.insert_unique(hash(k), k, hash);
        }
        let groups = ix.groups.len();
        // Churn: one live flow at a time for many generations; the index
        // must not grow.
        for k in 100..100_000u32 {
            ix.insert_unique(hash(k), k, hash);
            assert!(ix.remove(hash(k - 100), k - 100));
        }
        assert_eq!(ix.len(), 100);
        assert_eq!(ix.groups.len(), groups);
    }
}
