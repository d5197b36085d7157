//! The Internet checksum (RFC 1071) of IPv4 headers, TCP, UDP, ICMP and
//! ICMPv6, with the IPv4 and IPv6 pseudo-headers.
//!
//! Owns: the arithmetic, and the one question the decoder asks of a
//! checksum field: good, bad, or bad in the way checksum offload leaves it.
//! Invariants: no allocation, no panic, linear in the bytes summed.
//!
//! Sums are computed on native-endian 32-bit words accumulated in `u64`s
//! and folded at the end (RFC 1071 §2: the one's complement sum does not
//! depend on byte order, and deferred carries may be added later), so the
//! loop is plain additions that the compiler vectorises — with AVX2 where
//! the CPU has it (chosen at run time). A value that stays
//! in this "native" domain is a [`Sum`]; [`word`] brings a big-endian field
//! value into it.
//!
//! Specs: RFC 1071 (computation), RFC 791 §3.1 (IPv4 header checksum),
//! RFC 9293 §3.1 (TCP, IPv4 pseudo-header), RFC 768 (UDP; 0 means "no
//! checksum" over IPv4), RFC 8200 §8.1 (IPv6 pseudo-header; a zero UDP
//! checksum is invalid, RFC 6936 allows it for tunnels), RFC 792 (ICMP,
//! no pseudo-header), RFC 4443 §2.3 (ICMPv6, with the pseudo-header).

/// A partial one's complement sum in the native-endian domain.
pub type Sum = u64;

/// Adds the bytes of `data` to `acc`. An odd trailing byte counts as the
/// high byte of a last 16-bit word, as RFC 1071 pads it.
#[inline]
#[allow(unsafe_code)]
pub fn add(acc: Sum, data: &[u8]) -> Sum {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: `words_avx2` needs AVX2, which the CPU was just found to
        // have (the answer is cached: one load per call).
        return acc.wrapping_add(unsafe { words_avx2(data) });
    }
    acc.wrapping_add(words(data))
}

/// [`words`] compiled for AVX2: four 32-bit words widened and added per
/// instruction instead of two (measured with callgrind on 45 MB of
/// 1500-byte frames: 10.6 M instructions against 23.9 M for the SSE2 loop;
/// the whole pipeline over 20 copies of `dicom_store_large.pcap` went from
/// 208.3 M to 195.5 M instructions, against 176.7 M without validation).
/// Against a plain wide sum (64-bit words added with their carries
/// counted, no vectors; callgrind, instructions per call): 150 / 342 /
/// 1 640 for 512 / 1 460 / 9 000 bytes against 264 / 660 / 3 716. Below
/// 128 bytes that scalar sum is about 12 instructions per call cheaper,
/// but taking it for short inputs saved 0.09 % of a small-packet MQTT run
/// (1 560.3 M to 1 558.8 M), not worth a second path.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn words_avx2(data: &[u8]) -> Sum {
    words(data)
}

/// The sum of `data` as native-endian 32-bit words: a plain reduction the
/// compiler vectorises. Every word is below 2^32, so no sum overflows for
/// slices shorter than 2^32 bytes; wire data is at most 64 KiB (256 KiB for
/// a snap length).
#[inline(always)]
fn words(data: &[u8]) -> Sum {
    let body = data.len() & !3;
    let (body, tail) = data.split_at(body);
    let s: u64 = body
        .chunks_exact(4)
        .map(|w| u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
        .sum();
    // The last 1 to 3 bytes, zero-padded at the end: the RFC's padding of
    // an odd last byte (built by hand: a variable-length copy would cost a
    // `memcpy` call per packet).
    let last = match *tail {
        [a] => [a, 0, 0, 0],
        [a, b] => [a, b, 0, 0],
        [a, b, c] => [a, b, c, 0],
        _ => [0; 4],
    };
    s + u64::from(u32::from_ne_bytes(last))
}

/// [`words`] for a few bytes (an IPv4 header: 20 to 60), one word at a
/// time: the vector loop's call, set-up and reduction cost more than
/// summing five to fifteen words (callgrind: about 95 instructions per
/// 20-byte header through [`add`], see [`verify_header`]).
#[inline(always)]
fn short_words(data: &[u8]) -> Sum {
    let mut words = data.chunks_exact(4);
    let mut s: u64 = 0;
    for w in &mut words {
        s += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
    }
    let last = match *words.remainder() {
        [a] => [a, 0, 0, 0],
        [a, b] => [a, b, 0, 0],
        [a, b, c] => [a, b, c, 0],
        _ => [0; 4],
    };
    s + u64::from(u32::from_ne_bytes(last))
}

/// A big-endian 16-bit field value, as the native domain holds it.
#[inline]
pub fn word(v: u16) -> Sum {
    Sum::from(u16::from_ne_bytes(v.to_be_bytes()))
}

/// Folds a sum to 16 bits with end-around carries (still native domain).
#[inline]
pub fn fold(mut s: Sum) -> u16 {
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    // Two folds of a value below 2^33 leave at most 16 bits.
    (s & 0xffff) as u16
}

/// The pseudo-header's sum for IPv4 addresses `src` and `dst` (as
/// big-endian integers, `u32::from(Ipv4Addr)`), the protocol and the
/// transport length. Summed in registers in the big-endian domain, then
/// brought into the native one ([`word`]): one's complement sums commute
/// with byte swapping (RFC 1071 §2(B)).
#[inline]
pub fn pseudo_v4(src: u32, dst: u32, proto: u8, len: usize) -> Sum {
    let s = u64::from(src >> 16)
        + u64::from(src & 0xffff)
        + u64::from(dst >> 16)
        + u64::from(dst & 0xffff);
    word(fold(s + rest(proto, len)))
}

/// [`pseudo_v4`] for IPv6 addresses (`u128::from(Ipv6Addr)`); IPv6 carries
/// the length in 32 bits, which sums the same for any length below 2^32.
#[inline]
pub fn pseudo_v6(src: u128, dst: u128, proto: u8, len: usize) -> Sum {
    let mut s = 0u64;
    for a in [src, dst] {
        for i in 0..8 {
            s += ((a >> (16 * i)) & 0xffff) as u64;
        }
    }
    word(fold(s + rest(proto, len)))
}

/// The protocol and the length's two 16-bit halves, big-endian domain.
#[inline]
fn rest(proto: u8, len: usize) -> u64 {
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    u64::from(proto) + u64::from(len >> 16) + u64::from(len & 0xffff)
}

/// The sum of a whole captured frame, folded ([`fold`]): what the
/// capture's record walk computes for each frame while its bytes pass
/// through the cache anyway (`capture::Reader::sum_frames`), so that a
/// transport checksum later reads only the frame's headers again, not its
/// payload ([`SummedFrame::part`]). `None` for a frame shorter than
/// [`FRAME_SUM_MIN`].
pub fn frame_sum(frame: &[u8]) -> Option<u16> {
    (frame.len() >= FRAME_SUM_MIN).then(|| fold(add(0, frame)))
}

/// Frames shorter than this are not summed by [`frame_sum`]: their bytes
/// are few cache lines, the headers the decoder reads anyway among them,
/// and summing the bytes around the segment as well costs more than it
/// saves (callgrind, 1/20 of `mqtt_small`, frames of 108 bytes on
/// average: 1 084.6 M instructions at main, 1 113.0 M with every frame
/// summed, 1 092.2 M with this bound).
pub const FRAME_SUM_MIN: usize = 512;

/// A frame's bytes with their [`frame_sum`].
#[derive(Debug, Clone, Copy)]
pub struct SummedFrame<'a> {
    pub bytes: &'a [u8],
    pub sum: u16,
}

impl SummedFrame<'_> {
    /// The sum of `part`, a slice of the frame's bytes, congruent to
    /// `add(0, part)` modulo 0xffff (which is all [`fold`] and the
    /// verdicts keep of a sum): the frame's sum less the bytes before and
    /// after `part`. `None` when `part` does not lie in the frame (a
    /// reassembled datagram), or when more bytes lie outside it than in it
    /// (summing `part` itself is then cheaper).
    ///
    /// Arithmetic modulo 0xffff: in the native domain a byte at an even
    /// offset from where a sum starts counts once, at an odd offset 256
    /// times (2^16 is 1). A sum that starts at an odd offset of the frame
    /// is therefore 256 times the frame's view of the same bytes, and
    /// multiplying a folded value by 256 is swapping its bytes (256 is its
    /// own inverse: 256 * 256 = 65536 = 1).
    #[inline]
    pub fn part(&self, part: &[u8]) -> Option<Sum> {
        let start = part
            .as_ptr()
            .addr()
            .checked_sub(self.bytes.as_ptr().addr())?;
        let end = start.checked_add(part.len())?;
        let head = self.bytes.get(..start)?;
        let tail = self.bytes.get(end..)?;
        if head.len().saturating_add(tail.len()) > part.len() {
            return None;
        }
        let outer = |b: &[u8]| {
            if b.len() <= 64 {
                fold(short_words(b))
            } else {
                fold(add(0, b))
            }
        };
        let h = outer(head);
        let mut t = outer(tail);
        if end % 2 == 1 {
            t = t.swap_bytes();
        }
        // Both subtrahends are at most 0xffff.
        let mut s = fold(u64::from(self.sum) + 2 * 0xffff - u64::from(h) - u64::from(t));
        if start % 2 == 1 {
            s = s.swap_bytes();
        }
        Some(Sum::from(s))
    }
}

/// What a checksum field says about its packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Good,
    /// Wrong, and not the offload pattern.
    Bad,
    /// Wrong in the way a sending host's capture shows checksum offload:
    /// the field holds the pseudo-header's sum only (Linux, BSD:
    /// `CHECKSUM_PARTIAL`, the NIC completes it after the capture point)
    /// or zero (drivers that leave the field empty).
    Offload,
}

/// Verifies the TCP, UDP or ICMPv6 checksum of `segment` (header and
/// data) under the pseudo-header sum `pseudo`; `field` is the checksum
/// field's big-endian value.
#[inline]
pub fn verify_l4(pseudo: Sum, segment: &[u8], field: u16) -> Verdict {
    verify_l4_sum(pseudo, add(0, segment), field)
}

/// [`verify_l4`] with the segment's sum given: `add(0, segment)`, or a
/// value congruent to it modulo 0xffff ([`SummedFrame::part`]). The
/// verdict is the same for either: `pseudo` is never zero (it holds the
/// protocol number), so the folded total is never zero and is 0xffff
/// exactly when the total is a multiple of 0xffff.
#[inline]
pub fn verify_l4_sum(pseudo: Sum, segment_sum: Sum, field: u16) -> Verdict {
    if fold(pseudo.wrapping_add(segment_sum)) == 0xffff {
        return Verdict::Good;
    }
    // Partial checksum: the field holds the folded pseudo-header sum, not
    // complemented.
    let f = u16::from_ne_bytes(field.to_be_bytes());
    if field == 0 || f == fold(pseudo) {
        Verdict::Offload
    } else {
        Verdict::Bad
    }
}

/// Verifies an IPv4 header (options included) or an ICMPv4 message: their
/// checksums cover the bytes themselves, no pseudo-header. A zero field in
/// a wrong IPv4 header is the pattern of a header checksum offloaded
/// (Windows offers it); the caller decides whether that applies.
#[inline]
pub fn verify_plain(bytes: &[u8], field: u16) -> Verdict {
    if fold(add(0, bytes)) == 0xffff {
        Verdict::Good
    } else if field == 0 {
        Verdict::Offload
    } else {
        Verdict::Bad
    }
}

/// [`verify_plain`] for an IPv4 header, summed by [`short_words`]: the
/// same verdict for any bytes (a longer slice is only slower).
#[inline]
pub fn verify_header(bytes: &[u8], field: u16) -> Verdict {
    if fold(short_words(bytes)) == 0xffff {
        Verdict::Good
    } else if field == 0 {
        Verdict::Offload
    } else {
        Verdict::Bad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain big-endian RFC 1071 implementation, word by word, as the
    /// reference the fast one must agree with.
    fn reference(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for c in data.chunks(2) {
            let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
            s += u32::from(w);
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    fn native_to_be(v: u16) -> u16 {
        u16::from_be_bytes(v.to_ne_bytes())
    }

    #[test]
    fn rfc1071_example_sum() {
        // RFC 1071 §3's worked example: bytes 00 01 f2 03 f4 f5 f6 f7 sum
        // to ddf2 (big-endian), complement 220d.
        let b = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(native_to_be(fold(add(0, &b))), 0xddf2);
    }

    #[test]
    fn fast_sum_equals_reference_at_every_length_and_offset() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 151 + 7) as u8).collect();
        for start in 0..5 {
            for end in start..data.len() {
                let s = &data[start..end];
                assert_eq!(
                    native_to_be(fold(add(0, s))),
                    reference(s),
                    "{start}..{end}"
                );
            }
        }
        // All-ones bytes exercise the carries.
        let ff = vec![0xffu8; 4099];
        assert_eq!(native_to_be(fold(add(0, &ff))), reference(&ff));
        // A snap-length's worth.
        let ff = vec![0xffu8; 256 * 1024 + 3];
        assert_eq!(native_to_be(fold(add(0, &ff))), reference(&ff));
        // The portable loop too, where `add` took the AVX2 one.
        for end in 0..data.len() {
            assert_eq!(
                native_to_be(fold(words(&data[..end]))),
                reference(&data[..end])
            );
        }
        assert_eq!(native_to_be(fold(words(&ff))), reference(&ff));
    }

    #[test]
    fn word_and_pseudo_agree_with_bytes() {
        // Hand-built IPv4 pseudo-header: 10.0.0.1, 10.0.0.2, zero, TCP (6),
        // length 0x01f4 — as bytes, and through `pseudo_v4`.
        let bytes = [10, 0, 0, 1, 10, 0, 0, 2, 0, 6, 0x01, 0xf4];
        assert_eq!(
            fold(pseudo_v4(0x0a00_0001, 0x0a00_0002, 6, 500)),
            fold(add(0, &bytes)),
            "v4 pseudo-header"
        );
        // IPv6: 2001:db8::1 → fe80::ffff:2, next header 58, length
        // 0x0001_0203 (32 bits), as bytes.
        let (a, b) = (
            0x2001_0db8_0000_0000_0000_0000_0000_0001u128,
            0xfe80_0000_0000_0000_0000_0000_ffff_0002u128,
        );
        let mut v6 = a.to_be_bytes().to_vec();
        v6.extend_from_slice(&b.to_be_bytes());
        v6.extend_from_slice(&[0, 1, 2, 3, 0, 0, 0, 58]);
        assert_eq!(fold(pseudo_v6(a, b, 58, 0x0001_0203)), fold(add(0, &v6)));
        assert_eq!(fold(word(0x1234)), fold(add(0, &[0x12, 0x34])));
    }

    #[test]
    fn verify_l4_good_bad_and_partial() {
        // Hand-built UDP datagram 10.0.0.1:1000 → 10.0.0.2:2000, 3 data
        // bytes (odd length), checksum filled in below.
        let mut u = vec![
            0x03, 0xe8, // source port 1000
            0x07, 0xd0, // destination port 2000
            0x00, 0x0b, // length 11
            0x00, 0x00, // checksum, computed below
            b'a', b'b', b'c', // data
        ];
        let ps = pseudo_v4(0x0a00_0001, 0x0a00_0002, 17, u.len());
        let c = !native_to_be(fold(add(ps, &u)));
        u[6..8].copy_from_slice(&c.to_be_bytes());
        assert_eq!(verify_l4(ps, &u, c), Verdict::Good);
        // One flipped data bit.
        let mut bad = u.clone();
        bad[10] ^= 1;
        assert_eq!(verify_l4(ps, &bad, c), Verdict::Bad);
        // The offload pattern: the pseudo-header sum in the field.
        let partial = native_to_be(fold(ps));
        let mut off = u.clone();
        off[6..8].copy_from_slice(&partial.to_be_bytes());
        assert_eq!(verify_l4(ps, &off, partial), Verdict::Offload);
        let mut zero = u.clone();
        zero[6..8].copy_from_slice(&[0, 0]);
        assert_eq!(verify_l4(ps, &zero, 0), Verdict::Offload);
    }

    #[test]
    fn short_sum_equals_reference_at_every_length_and_offset() {
        let data: Vec<u8> = (0..100u32).map(|i| (i * 151 + 7) as u8).collect();
        for start in 0..5 {
            for end in start..data.len() {
                let s = &data[start..end];
                assert_eq!(native_to_be(fold(short_words(s))), reference(s));
            }
        }
        let ff = [0xffu8; 60];
        assert_eq!(native_to_be(fold(short_words(&ff))), reference(&ff));
    }

    #[test]
    fn frame_sum_only_from_the_bound_on() {
        let b = vec![0x5au8; FRAME_SUM_MIN];
        assert_eq!(frame_sum(&b[1..]), None);
        assert_eq!(frame_sum(&b), Some(fold(add(0, &b))));
    }

    #[test]
    fn summed_frame_part_outside_the_frame_or_mostly_headers_is_none() {
        let frame: Vec<u8> = (0..100u8).collect();
        let f = SummedFrame {
            bytes: &frame,
            sum: fold(add(0, &frame)),
        };
        let other = frame.clone();
        assert_eq!(f.part(&other[10..90]), None, "another buffer");
        assert_eq!(f.part(&frame[10..40]), None, "70 bytes around 30");
        assert!(f.part(&frame[10..90]).is_some());
        assert!(f.part(&frame[..]).is_some());
        assert!(
            f.part(&frame[10..60]).is_some(),
            "as many inside as outside"
        );
    }

    proptest::proptest! {
        /// A part's sum from the frame's equals summing the part itself
        /// (modulo 0xffff, all a verdict keeps), for any bytes, offsets
        /// (odd ones too) and lengths; and the verdict is the same.
        #[test]
        fn summed_frame_part_equals_sum_of_part(
            frame in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..=3000),
            a in 0usize..=3000,
            b in 0usize..=3000,
            pseudo in 1u64..=0x1_ffff,
            field in proptest::prelude::any::<u16>(),
        ) {
            let (a, b) = (a.min(frame.len()), b.min(frame.len()));
            let part = &frame[a.min(b)..a.max(b)];
            let f = SummedFrame { bytes: &frame, sum: fold(add(0, &frame)) };
            if let Some(s) = f.part(part) {
                proptest::prop_assert_eq!(s % 0xffff, add(0, part) % 0xffff);
                proptest::prop_assert_eq!(
                    verify_l4_sum(pseudo, s, field),
                    verify_l4(pseudo, part, field)
                );
            } else {
                proptest::prop_assert!(part.len() * 2 < frame.len());
            }
        }

        /// The header path gives the general path's verdict on any bytes.
        #[test]
        fn verify_header_equals_verify_plain(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..=64),
            field in proptest::prelude::any::<u16>(),
        ) {
            proptest::prop_assert_eq!(verify_header(&bytes, field), verify_plain(&bytes, field));
        }
    }

    #[test]
    fn verify_plain_ipv4_header() {
        // RFC 791 header, hand-built: 45 00 0073 0000 4000 40 11 b861
        // c0a8 0001 c0a8 00c7 (the widely quoted example, checksum b861).
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(verify_plain(&h, 0xb861), Verdict::Good);
        assert_eq!(verify_header(&h, 0xb861), Verdict::Good);
        let mut b = h;
        b[11] = 0x62;
        assert_eq!(verify_plain(&b, 0xb862), Verdict::Bad);
        assert_eq!(verify_header(&b, 0xb862), Verdict::Bad);
        b[10] = 0;
        b[11] = 0;
        assert_eq!(verify_plain(&b, 0), Verdict::Offload);
        assert_eq!(verify_header(&b, 0), Verdict::Offload);
    }
}
