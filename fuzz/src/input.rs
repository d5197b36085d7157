//! Reading a plan out of the fuzzer's bytes.
//!
//! Fixed-width reads are little endian and give zeros once the input is
//! used up, so any input, even empty, decodes to some plan and the fuzzer
//! never wastes executions on inputs a harness rejects.

/// A read position in the fuzzer's input.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// The next `n` bytes, or all that are left when fewer are.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// Piece sizes for re-splitting a stream: a count (0–15) then one byte
    /// per size (0 counts as 1). No sizes means one-byte pieces.
    pub fn sizes(&mut self) -> Vec<usize> {
        let n = usize::from(self.u8() % 16);
        let v: Vec<usize> = (0..n).map(|_| usize::from(self.u8()).max(1)).collect();
        if v.is_empty() {
            vec![1]
        } else {
            v
        }
    }
}

/// Cuts `data` into pieces whose lengths cycle through `sizes` (each ≥ 1).
pub fn cut<'a>(data: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(1)
            .max(1);
        let (head, tail) = rest.split_at(n.min(rest.len()));
        out.push(head);
        rest = tail;
        i += 1;
    }
    out
}

/// The inverse of [`Cursor::sizes`], for seeds.
pub fn encode_sizes(out: &mut Vec<u8>, sizes: &[u8]) {
    out.push(u8::try_from(sizes.len().min(15)).unwrap_or(15));
    out.extend(sizes.iter().take(15));
}
