//! `decoder.checksum_checks: auto`: recognising a capture taken on a host
//! that offloads checksums to its NIC.
//!
//! Such a capture shows the host's own outgoing TCP and UDP packets before
//! the NIC filled in their checksums: the field holds the pseudo-header sum
//! only (Linux and the BSDs, `CHECKSUM_PARTIAL`) or zero (some drivers, and
//! Windows for the IPv4 header). Validating there would drop one side of
//! every conversation the host had. Checksums that are merely wrong — a
//! decoy, a damaged frame — do not have that shape, so they never count
//! towards the decision and cannot switch validation off.
//!
//! The decision is taken once per run, on the first [`SAMPLE_PACKETS`]
//! packets of the capture in capture order (fewer if they hold more than
//! [`SAMPLE_BYTES`]), by one [`Detector`] that every
//! worker shares: offload when at least one in [`OFFLOAD_RATIO`] of the
//! sampled packets that carried a verifiable checksum shows the pattern
//! (Suricata uses the same window and ratio, on all bad checksums). Reading
//! files, the reader feeds the detector and holds the first chunks until it
//! has decided, so no packet is decoded before the decision and the outcome
//! depends neither on the number of workers nor on how the input is read.
//! Live, the workers feed it with their first packets and, until it has
//! decided, accept the offload pattern but drop other bad checksums
//! ([`Validation::Lenient`]). Once decided, validation is strict or off for
//! the rest of the run.
//!
//! An attacker present in the first packets could forge offload-shaped
//! checksums to turn validation off; the decision is printed on stderr and
//! reported in the stats (`decoder.checksum_offload_detected`), and
//! `checksum_checks: yes` closes that door on a mirror port, where offload
//! cannot occur.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

use super::{ChecksumChecks, DecodeConfig, Decoder, Validation};
use crate::capture::LinkType;

/// Packets sampled before deciding.
pub const SAMPLE_PACKETS: u32 = 1000;
/// Captured bytes sampled before deciding, if fewer packets hold them: the
/// reader holds the sampled packets back, and jumbo frames must not make
/// that hundreds of megabytes.
pub const SAMPLE_BYTES: u64 = 8 << 20;
/// Offload when at least one verifiable packet in this many shows it.
pub const OFFLOAD_RATIO: u32 = 10;

const UNDECIDED: u8 = 0;
const STRICT: u8 = 1;
const OFF: u8 = 2;
const OFFLOAD: u8 = 3;

/// What `auto` decided, with the numbers it decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub offload: bool,
    /// Packets sampled.
    pub packets: u32,
    /// Of them, packets with at least one verifiable checksum.
    pub checked: u32,
    /// Of those, packets with a checksum in the offload pattern.
    pub offloaded: u32,
}

impl Decision {
    /// The line for stderr when validation was turned off; nothing to say
    /// otherwise.
    pub fn warning(&self) -> Option<String> {
        self.offload.then(|| {
            format!(
                "{} of the first {} packets with checksums carry the partial checksums of \
                 checksum offload (a capture taken on the sending host): checksums are not \
                 validated in this run (decoder.checksum_checks: auto; `yes` validates anyway)",
                self.offloaded, self.checked
            )
        })
    }
}

/// Counts of the sample so far.
#[derive(Debug)]
struct Probe {
    decoder: Decoder,
    packets: u32,
    bytes: u64,
    checked: u32,
    offloaded: u32,
}

/// The run's checksum decision, shared by the reader and every worker.
#[derive(Debug)]
pub struct Detector {
    state: AtomicU8,
    probe: Mutex<Probe>,
}

impl Detector {
    /// Decided at once for `yes` and `no`; `auto` waits for the sample.
    pub fn new(cfg: &DecodeConfig) -> Detector {
        let state = match cfg.checksum_checks {
            ChecksumChecks::Auto => UNDECIDED,
            ChecksumChecks::Yes => STRICT,
            ChecksumChecks::No => OFF,
        };
        let mut decoder = Decoder::new(cfg.clone());
        // Lenient, so a zero IPv4 header checksum does not hide the
        // transport checksum behind it.
        decoder.set_validation(Validation::Lenient, false);
        Detector {
            state: AtomicU8::new(state),
            probe: Mutex::new(Probe {
                decoder,
                packets: 0,
                bytes: 0,
                checked: 0,
                offloaded: 0,
            }),
        }
    }

    /// The validation to use, once decided.
    pub fn decided(&self) -> Option<Validation> {
        match self.state.load(Ordering::Acquire) {
            STRICT => Some(Validation::Strict),
            OFF | OFFLOAD => Some(Validation::Off),
            _ => None,
        }
    }

    /// True when `auto` turned validation off for offload.
    pub fn offload_detected(&self) -> bool {
        self.state.load(Ordering::Acquire) == OFFLOAD
    }

    /// Adds one packet to the sample; returns the decision when this packet
    /// completed it (exactly once per run), `None` otherwise and after.
    pub fn observe(&self, link: LinkType, data: &[u8], wire_len: u32) -> Option<Decision> {
        let mut p = self.probe.lock().unwrap_or_else(|e| e.into_inner());
        if self.state.load(Ordering::Acquire) != UNDECIDED {
            return None;
        }
        let _ = p.decoder.decode(link, data, wire_len);
        let c = p.decoder.checked();
        p.packets += 1;
        p.bytes = p.bytes.saturating_add(data.len() as u64);
        p.checked += u32::from(c.any);
        p.offloaded += u32::from(c.offload);
        if p.packets < SAMPLE_PACKETS && p.bytes < SAMPLE_BYTES {
            return None;
        }
        Some(self.decide(&p))
    }

    /// Decides on what was sampled (the input ended first); `None` when
    /// already decided.
    pub fn finish(&self) -> Option<Decision> {
        let p = self.probe.lock().unwrap_or_else(|e| e.into_inner());
        if self.state.load(Ordering::Acquire) != UNDECIDED {
            return None;
        }
        Some(self.decide(&p))
    }

    fn decide(&self, p: &Probe) -> Decision {
        let offload = p.offloaded > 0
            && u64::from(p.offloaded) * u64::from(OFFLOAD_RATIO) >= u64::from(p.checked);
        self.state
            .store(if offload { OFFLOAD } else { STRICT }, Ordering::Release);
        Decision {
            offload,
            packets: p.packets,
            checked: p.checked,
            offloaded: p.offloaded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    /// Ethernet/IPv4/TCP 10.0.0.1:40000 → 10.0.0.2:1883 built by etherparse
    /// (correct checksums), then its TCP checksum field rewritten by `how`:
    /// 0 keeps it, 1 writes the pseudo-header sum (the offload pattern,
    /// computed here the plain RFC 1071 way), 2 writes a wrong value.
    fn frame(seq: u32, how: u8) -> Vec<u8> {
        let mut f = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 1883, seq, 512)
            .write(&mut f, b"hello")
            .unwrap();
        let at = 14 + 20 + 16; // TCP checksum field
        let len = (f.len() - 14 - 20) as u32;
        let words = [0x0a00u32, 0x0001, 0x0a00, 0x0002, 6, len];
        let mut s: u32 = words.iter().sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        match how {
            1 => f[at..at + 2].copy_from_slice(&(s as u16).to_be_bytes()),
            2 => f[at] ^= 0x5a,
            _ => {}
        }
        f
    }

    fn auto() -> Detector {
        Detector::new(&DecodeConfig::default())
    }

    /// Feeds `n` frames, the `i`-th made by `how(i)`; returns the decisions
    /// `observe` returned.
    fn feed(d: &Detector, n: u32, how: impl Fn(u32) -> u8) -> Vec<Decision> {
        (0..n)
            .filter_map(|i| {
                let f = frame(i, how(i));
                d.observe(LinkType::ETHERNET, &f, f.len() as u32)
            })
            .collect()
    }

    #[test]
    fn offload_in_a_tenth_of_the_sample_turns_validation_off_once() {
        let d = auto();
        let got = feed(&d, SAMPLE_PACKETS + 50, |i| u8::from(i % 10 == 0));
        assert_eq!(
            got,
            vec![Decision {
                offload: true,
                packets: SAMPLE_PACKETS,
                checked: SAMPLE_PACKETS,
                offloaded: SAMPLE_PACKETS / 10,
            }]
        );
        assert_eq!(d.decided(), Some(Validation::Off));
        assert!(d.offload_detected());
        assert_eq!(d.finish(), None);
    }

    #[test]
    fn just_under_a_tenth_keeps_validating() {
        let d = auto();
        // 99 of 1000.
        let got = feed(&d, SAMPLE_PACKETS, |i| u8::from(i % 10 == 0 && i > 0));
        assert_eq!(got.len(), 1);
        assert!(!got[0].offload);
        assert_eq!(got[0].offloaded, 99);
        assert_eq!(d.decided(), Some(Validation::Strict));
        assert!(!d.offload_detected());
    }

    #[test]
    fn wrong_checksums_of_other_shapes_never_turn_validation_off() {
        // Half the sample is decoys with garbage checksums.
        let d = auto();
        let got = feed(&d, SAMPLE_PACKETS, |i| if i % 2 == 0 { 2 } else { 0 });
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].offload, got[0].offloaded), (false, 0));
        assert_eq!(d.decided(), Some(Validation::Strict));
    }

    #[test]
    fn a_short_capture_is_decided_when_it_ends() {
        let d = auto();
        assert!(feed(&d, 3, |i| u8::from(i == 1)).is_empty());
        assert_eq!(d.decided(), None);
        let got = d.finish();
        assert_eq!(
            got,
            Some(Decision {
                offload: true,
                packets: 3,
                checked: 3,
                offloaded: 1
            })
        );
        assert_eq!(d.finish(), None);
        // Packets after the decision change nothing.
        assert!(feed(&d, 5, |_| 0).is_empty());
        assert!(d.offload_detected());
        // Nothing at all: validate.
        let e = auto();
        assert!(!e.finish().map(|x| x.offload).unwrap_or(true));
        assert_eq!(e.decided(), Some(Validation::Strict));
    }

    #[test]
    fn jumbo_frames_end_the_sample_early() {
        let d = auto();
        let mut big = frame(0, 1);
        big.resize(64 * 1024, 0); // trailing bytes beyond the IP length
        let n = SAMPLE_BYTES.div_ceil(big.len() as u64) as u32;
        for i in 1..=n {
            let got = d.observe(LinkType::ETHERNET, &big, big.len() as u32);
            assert_eq!(got.is_some(), i == n, "packet {i}");
        }
        assert!(d.offload_detected());
    }

    #[test]
    fn yes_and_no_are_decided_from_the_start() {
        for (c, v) in [
            (ChecksumChecks::Yes, Validation::Strict),
            (ChecksumChecks::No, Validation::Off),
        ] {
            let d = Detector::new(&DecodeConfig {
                checksum_checks: c,
                ..DecodeConfig::default()
            });
            assert_eq!(d.decided(), Some(v));
            assert!(feed(&d, 5, |_| 1).is_empty());
            assert_eq!(d.finish(), None);
            assert!(!d.offload_detected());
        }
    }
}
