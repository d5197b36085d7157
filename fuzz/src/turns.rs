//! A conversation as the calls an app-layer parser receives — bytes or a
//! gap, in one direction each — and the re-segmentations that the split
//! properties compare.
//!
//! Layout: `step*`, `step = kind:u8 len:u16 body`.
//! - `kind & 1`: direction (0 to the server, 1 to the client);
//! - `kind & 2`: a gap of `len` bytes (`len << 16` when `kind & 8`), no body;
//! - `kind & 4`: the budget asks the parser to shed state before this call
//!   ([`StreamConsumer::shed`]), where the harness honours it;
//! - `body`: `len` bytes (fewer when the input ends).

use wardwatch::app::{AppRecord, StreamConsumer, StreamContext};
use wardwatch::flow::Direction;
use wardwatch::time::Timestamp;

use super::input::{cut, Cursor};

/// One call to a parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Data(Direction, Vec<u8>),
    Gap(Direction, u32),
}

/// A call, and whether the parser is asked to shed state before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub shed: bool,
    pub call: Call,
}

fn dir(kind: u8) -> Direction {
    if kind & 1 == 0 {
        Direction::ToServer
    } else {
        Direction::ToClient
    }
}

/// Reads steps until the input ends.
pub fn parse(c: &mut Cursor<'_>) -> Vec<Step> {
    let mut steps = Vec::new();
    while !c.is_empty() {
        let kind = c.u8();
        let len = c.u16();
        let call = if kind & 2 != 0 {
            let n = if kind & 8 != 0 {
                u32::from(len) << 16
            } else {
                u32::from(len)
            };
            Call::Gap(dir(kind), n)
        } else {
            Call::Data(dir(kind), c.bytes(usize::from(len)).to_vec())
        };
        steps.push(Step {
            shed: kind & 4 != 0,
            call,
        });
    }
    steps
}

/// The inverse of [`parse`] (data longer than 65535 bytes is cut into
/// several steps), for seeds.
pub fn encode(out: &mut Vec<u8>, steps: &[Step]) {
    for s in steps {
        let shed = if s.shed { 4 } else { 0 };
        match &s.call {
            Call::Data(d, bytes) => {
                let pieces = if bytes.is_empty() {
                    vec![&bytes[..]]
                } else {
                    bytes.chunks(usize::from(u16::MAX)).collect()
                };
                for piece in pieces {
                    out.push(*d as u8 | shed);
                    out.extend_from_slice(&(piece.len() as u16).to_le_bytes());
                    out.extend_from_slice(piece);
                }
            }
            Call::Gap(d, n) => {
                let (big, len) = match u16::try_from(*n) {
                    Ok(len) => (0, len),
                    Err(_) => (8, u16::try_from(n >> 16).unwrap_or(u16::MAX)),
                };
                out.push(*d as u8 | 2 | shed | big);
                out.extend_from_slice(&len.to_le_bytes());
            }
        }
    }
}

/// The same stream with adjacent data of one direction joined: the
/// coarsest segmentation (sheds are dropped).
pub fn merged(steps: &[Step]) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    for s in steps {
        if let (
            Some(Step {
                call: Call::Data(ld, lb),
                ..
            }),
            Call::Data(d, b),
        ) = (out.last_mut(), &s.call)
        {
            if ld == d {
                lb.extend_from_slice(b);
                continue;
            }
        }
        out.push(Step {
            shed: false,
            call: s.call.clone(),
        });
    }
    out
}

/// The same stream with every data call cut into pieces whose sizes cycle
/// through `sizes` (sheds are dropped).
pub fn resplit(steps: &[Step], sizes: &[usize]) -> Vec<Step> {
    let mut out = Vec::new();
    for s in steps {
        match &s.call {
            Call::Data(d, b) => {
                for piece in cut(b, sizes) {
                    out.push(Step {
                        shed: false,
                        call: Call::Data(*d, piece.to_vec()),
                    });
                }
            }
            Call::Gap(..) => out.push(Step {
                shed: false,
                call: s.call.clone(),
            }),
        }
    }
    out
}

/// The records `parser` makes of `steps`, its end included. With `shed`,
/// the steps that ask for it call [`StreamConsumer::shed`] first, which
/// must not raise [`StreamConsumer::memuse`].
pub fn feed(mut parser: Box<dyn StreamConsumer>, steps: &[Step], shed: bool) -> Vec<AppRecord> {
    let mut out = Vec::new();
    for s in steps {
        let mut ctx = StreamContext {
            ts: Timestamp(0),
            records: &mut out,
        };
        if shed && s.shed {
            let before = parser.memuse();
            parser.shed(&mut ctx);
            let after = parser.memuse();
            assert!(
                after <= before,
                "shed raised memuse from {before} to {after}"
            );
        }
        match &s.call {
            Call::Data(d, b) => parser.data(&mut ctx, *d, b),
            Call::Gap(d, n) => parser.gap(&mut ctx, *d, *n),
        }
    }
    parser.end(&mut StreamContext {
        ts: Timestamp(0),
        records: &mut out,
    });
    out
}
