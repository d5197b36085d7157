//! VXLAN header view.
//!
//! Owns: recognising the 8-byte VXLAN header on the configured UDP ports.
//! Invariant: a view built by `new_checked` holds the whole header and has
//! the I flag (valid VNI) set; anything else is left as plain UDP.
//! Spec: RFC 7348 §5.
//!
//! ```text
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! ```

use super::wire::be32;

mod field {
    pub const FLAGS: usize = 0;
    pub const VNI: usize = 4;
    pub const LEN: usize = 8;
}

const FLAG_I: u8 = 0x08;

/// Length of the header.
pub const HEADER_LEN: usize = field::LEN;

/// A view of a VXLAN header.
#[derive(Debug, Clone, Copy)]
pub struct VxlanHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanHeader<T> {
    /// Wraps `buffer` if it holds a header with the I flag set.
    pub fn new_checked(buffer: T) -> Option<Self> {
        let d = buffer.as_ref();
        (d.len() >= HEADER_LEN && d[field::FLAGS] & FLAG_I != 0).then_some(VxlanHeader { buffer })
    }

    /// The 24-bit network identifier.
    pub fn vni(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VNI) >> 8
    }
}

impl<'a> VxlanHeader<&'a [u8]> {
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_with_i_flag_accepted_vni_read() {
        // Hand-built VXLAN header.
        let h = [
            0x08, 0x00, 0x00, 0x00, // flags: I; reserved
            0x00, 0x10, 0x01, 0x00, // VNI 0x001001, reserved
            0xaa, // inner frame starts
        ];
        let v = VxlanHeader::new_checked(&h[..]).unwrap();
        assert_eq!(v.vni(), 0x1001);
        assert_eq!(v.payload(), &[0xaa]);
        assert!(VxlanHeader::new_checked(&h[..7]).is_none());
        let mut n = h;
        n[0] = 0;
        assert!(VxlanHeader::new_checked(&n[..]).is_none());
    }
}
