//! Decoder counters: a fixed array of `u64` indexed by [`Counter`].
//!
//! Owns: the list of everything the decoder counts and the dotted path under
//! which each count is reported in EVE `stats` records. Invariant: every path
//! is a name that Suricata's EVE schema (`stats.decoder.*`) allows, so that
//! dashboards built for Suricata read ours unchanged, except the checksum
//! counters Suricata lacks, which are declared as our additions in
//! `tests/tools/validate_eve.py`; a unit test checks both against the
//! files. Counting is one array increment, no hashing.

/// Declares [`Counter`] and the path of each variant in one place, so the two
/// cannot drift apart.
macro_rules! counters {
    ($($variant:ident => $path:literal,)*) => {
        /// One thing the decoder counts: a decoded layer or a malformed-packet
        /// reason. `as usize` indexes [`DecodeStats`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        pub enum Counter {
            $($variant,)*
        }

        impl Counter {
            /// Every counter, in declaration order.
            pub const ALL: &'static [Counter] = &[$(Counter::$variant,)*];

            /// The dotted path below `stats` (Suricata's name).
            pub const fn path(self) -> &'static str {
                match self {
                    $(Counter::$variant => $path,)*
                }
            }
        }
    };
}

counters! {
    Pkts => "decoder.pkts",
    Bytes => "decoder.bytes",
    Invalid => "decoder.invalid",
    Ethernet => "decoder.ethernet",
    Sll => "decoder.sll",
    Sll2 => "decoder.sll2",
    Null => "decoder.null",
    Raw => "decoder.raw",
    Vlan => "decoder.vlan",
    VlanQinq => "decoder.vlan_qinq",
    VlanQinqinq => "decoder.vlan_qinqinq",
    Arp => "decoder.arp",
    Ipv4 => "decoder.ipv4",
    Ipv6 => "decoder.ipv6",
    Tcp => "decoder.tcp",
    Udp => "decoder.udp",
    Icmpv4 => "decoder.icmpv4",
    Icmpv6 => "decoder.icmpv6",
    Esp => "decoder.esp",
    Sctp => "decoder.sctp",
    Gre => "decoder.gre",
    Erspan => "decoder.erspan",
    Vxlan => "decoder.vxlan",
    Ipv4InIpv4 => "decoder.ipv4_in_ipv4",
    Ipv6InIpv4 => "decoder.ipv6_in_ipv4",
    Ipv4InIpv6 => "decoder.ipv4_in_ipv6",
    Ipv6InIpv6 => "decoder.ipv6_in_ipv6",
    UnknownEthertype => "decoder.unknown_ethertype",
    TooManyLayers => "decoder.too_many_layers",
    EthernetPktTooSmall => "decoder.event.ethernet.pkt_too_small",
    VlanHeaderTooSmall => "decoder.event.vlan.header_too_small",
    VlanTooManyLayers => "decoder.event.vlan.too_many_layers",
    SllPktTooSmall => "decoder.event.sll.pkt_too_small",
    Sll2PktTooSmall => "decoder.event.sll2.pkt_too_small",
    NullPktTooSmall => "decoder.event.ltnull.pkt_too_small",
    NullUnsupportedType => "decoder.event.ltnull.unsupported_type",
    RawInvalidIpVersion => "decoder.event.ipraw.invalid_ip_version",
    Ipv4PktTooSmall => "decoder.event.ipv4.pkt_too_small",
    Ipv4WrongIpVersion => "decoder.event.ipv4.wrong_ip_version",
    Ipv4HlenTooSmall => "decoder.event.ipv4.hlen_too_small",
    Ipv4IplenSmallerThanHlen => "decoder.event.ipv4.iplen_smaller_than_hlen",
    Ipv4TruncPkt => "decoder.event.ipv4.trunc_pkt",
    Ipv4Icmpv6 => "decoder.event.ipv4.icmpv6",
    Ipv6PktTooSmall => "decoder.event.ipv6.pkt_too_small",
    Ipv6WrongIpVersion => "decoder.event.ipv6.wrong_ip_version",
    Ipv6TruncPkt => "decoder.event.ipv6.trunc_pkt",
    Ipv6TruncExthdr => "decoder.event.ipv6.trunc_exthdr",
    Ipv6ExthdrDuplHh => "decoder.event.ipv6.exthdr_dupl_hh",
    Ipv6ExthdrDuplRh => "decoder.event.ipv6.exthdr_dupl_rh",
    Ipv6ExthdrDuplFh => "decoder.event.ipv6.exthdr_dupl_fh",
    Ipv6ExthdrDuplDh => "decoder.event.ipv6.exthdr_dupl_dh",
    Ipv6ExthdrDuplAh => "decoder.event.ipv6.exthdr_dupl_ah",
    Ipv6ExthdrUselessFh => "decoder.event.ipv6.exthdr_useless_fh",
    Ipv6DataAfterNoneHeader => "decoder.event.ipv6.data_after_none_header",
    Ipv6Icmpv4 => "decoder.event.ipv6.icmpv4",
    TcpPktTooSmall => "decoder.event.tcp.pkt_too_small",
    TcpHlenTooSmall => "decoder.event.tcp.hlen_too_small",
    UdpHlenTooSmall => "decoder.event.udp.hlen_too_small",
    UdpPktTooSmall => "decoder.event.udp.pkt_too_small",
    UdpLenInvalid => "decoder.event.udp.len_invalid",
    UdpHlenInvalid => "decoder.event.udp.hlen_invalid",
    Icmpv4PktTooSmall => "decoder.event.icmpv4.pkt_too_small",
    Icmpv6PktTooSmall => "decoder.event.icmpv6.pkt_too_small",
    GrePktTooSmall => "decoder.event.gre.pkt_too_small",
    GreWrongVersion => "decoder.event.gre.wrong_version",
    GreVersion0Recur => "decoder.event.gre.version0_recur",
    GreVersion0Flags => "decoder.event.gre.version0_flags",
    GreVersion0HdrTooBig => "decoder.event.gre.version0_hdr_too_big",
    GreVersion1Chksum => "decoder.event.gre.version1_chksum",
    GreVersion1Route => "decoder.event.gre.version1_route",
    GreVersion1Ssr => "decoder.event.gre.version1_ssr",
    GreVersion1Recur => "decoder.event.gre.version1_recur",
    GreVersion1Flags => "decoder.event.gre.version1_flags",
    GreVersion1NoKey => "decoder.event.gre.version1_no_key",
    GreVersion1WrongProtocol => "decoder.event.gre.version1_wrong_protocol",
    GreVersion1HdrTooBig => "decoder.event.gre.version1_hdr_too_big",
    ErspanHeaderTooSmall => "decoder.event.erspan.header_too_small",
    ErspanUnsupportedVersion => "decoder.event.erspan.unsupported_version",
    VxlanUnknownPayloadType => "decoder.event.vxlan.unknown_payload_type",
    // Checksums (`decode::checksum`): the packet is dropped as its
    // receiver would drop it, and not counted in `decoder.invalid`.
    // Suricata counts only TCP's, under this name; the others are ours
    // (declared in tests/tools/validate_eve.py).
    TcpInvalidChecksum => "tcp.invalid_checksum",
    Ipv4InvalidChecksum => "decoder.event.ipv4.invalid_checksum",
    UdpInvalidChecksum => "decoder.event.udp.invalid_checksum",
    Icmpv4InvalidChecksum => "decoder.event.icmpv4.invalid_checksum",
    Icmpv6InvalidChecksum => "decoder.event.icmpv6.invalid_checksum",
}

impl Counter {
    /// A checksum failure rather than a malformed packet.
    #[inline]
    pub const fn is_checksum(self) -> bool {
        matches!(
            self,
            Counter::TcpInvalidChecksum
                | Counter::Ipv4InvalidChecksum
                | Counter::UdpInvalidChecksum
                | Counter::Icmpv4InvalidChecksum
                | Counter::Icmpv6InvalidChecksum
        )
    }
}

/// Number of counters.
const N: usize = Counter::ALL.len();

/// Counters of decoded layers and of malformed packets by reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeStats {
    counts: [u64; N],
    /// Largest wire length seen (`decoder.max_pkt_size`); merged by maximum.
    max_pkt_size: u64,
    /// `checksum_checks: auto` found checksum offload and stopped
    /// validating (`decoder.checksum_offload_detected`); merged by "or",
    /// so the count does not depend on the number of workers.
    checksum_offload: bool,
    /// Frames of a link type the decoder does not read (802.11, radiotap…),
    /// `decoder.unsupported_link` (ours: Suricata refuses such captures),
    /// and the highest such link type, for the warning that names it.
    pub unsupported_link: u64,
    pub unsupported_link_type: u16,
}

impl Default for DecodeStats {
    fn default() -> Self {
        DecodeStats {
            counts: [0; N],
            max_pkt_size: 0,
            checksum_offload: false,
            unsupported_link: 0,
            unsupported_link_type: 0,
        }
    }
}

impl DecodeStats {
    /// Adds one to `c`.
    #[inline]
    pub fn incr(&mut self, c: Counter) {
        self.add(c, 1);
    }

    /// Adds `n` to `c`.
    #[inline]
    pub fn add(&mut self, c: Counter, n: u64) {
        // `Counter` is a fieldless enum with N variants, so the index is in
        // bounds; `get_mut` keeps that fact out of the panic path anyway.
        if let Some(v) = self.counts.get_mut(c as usize) {
            *v = v.wrapping_add(n);
        }
    }

    /// The current value of `c`.
    pub fn get(&self, c: Counter) -> u64 {
        self.counts.get(c as usize).copied().unwrap_or(0)
    }

    /// Records one frame of `wire_len` bytes on the wire.
    #[inline]
    pub(crate) fn frame(&mut self, wire_len: u32) {
        let len = u64::from(wire_len);
        self.incr(Counter::Pkts);
        self.add(Counter::Bytes, len);
        self.max_pkt_size = self.max_pkt_size.max(len);
    }

    /// Largest wire length seen.
    pub fn max_pkt_size(&self) -> u64 {
        self.max_pkt_size
    }

    /// Records that checksum validation was turned off for offload.
    pub(crate) fn set_checksum_offload(&mut self) {
        self.checksum_offload = true;
    }

    /// True when `checksum_checks: auto` turned validation off.
    pub fn checksum_offload(&self) -> bool {
        self.checksum_offload
    }

    /// Adds `other` into `self` (workers' stats are summed at the end).
    pub fn merge(&mut self, other: &DecodeStats) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.wrapping_add(*b);
        }
        self.max_pkt_size = self.max_pkt_size.max(other.max_pkt_size);
        self.checksum_offload |= other.checksum_offload;
        self.unsupported_link = self.unsupported_link.wrapping_add(other.unsupported_link);
        self.unsupported_link_type = self.unsupported_link_type.max(other.unsupported_link_type);
    }

    /// Every non-zero counter as a dotted path below `stats`, in Suricata's
    /// names: `decoder.pkts`, `decoder.ipv4`, `decoder.event.ipv4.trunc_pkt`…
    /// plus `decoder.max_pkt_size` and `decoder.avg_pkt_size` (whole bytes)
    /// once a packet has been seen, and `decoder.checksum_offload_detected`
    /// (1) when `checksum_checks: auto` stopped validating.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let mut out = Vec::with_capacity(32);
        for (c, v) in Counter::ALL.iter().zip(self.counts.iter()) {
            if *v != 0 {
                out.push((c.path(), *v));
            }
        }
        if let Some(avg) = self
            .get(Counter::Bytes)
            .checked_div(self.get(Counter::Pkts))
        {
            out.push(("decoder.max_pkt_size", self.max_pkt_size));
            out.push(("decoder.avg_pkt_size", avg));
        }
        if self.checksum_offload {
            out.push(("decoder.checksum_offload_detected", 1));
        }
        if self.unsupported_link != 0 {
            out.push(("decoder.unsupported_link", self.unsupported_link));
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Loads `/work/shared/eve-schema.json` and returns the `stats` object's
    /// schema, or `None` (with a message) when the file is not there.
    pub(crate) fn stats_schema() -> Option<serde_json::Value> {
        let path = std::path::Path::new("/work/shared/eve-schema.json");
        let Ok(text) = std::fs::read_to_string(path) else {
            eprintln!("skipping: {} not found", path.display());
            return None;
        };
        let schema: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(schema["properties"]["stats"].clone())
    }

    /// True when the dotted `path` names an integer leaf of the schema.
    pub(crate) fn schema_has(stats: &serde_json::Value, path: &str) -> bool {
        let mut node = stats;
        for part in path.split('.') {
            node = &node["properties"][part];
            if node.is_null() {
                return false;
            }
        }
        node["type"] == "integer"
    }

    /// True when `tests/tools/validate_eve.py` declares the dotted `path`
    /// below `stats` as one of our additions: a line
    /// `(["stats", "a", "b"], "key", {"type": "integer"})`.
    pub(crate) fn declared_addition(path: &str) -> bool {
        let file =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/validate_eve.py");
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let Some((parents, key)) = path.rsplit_once('.') else {
            return false;
        };
        let mut list = String::from("[\"stats\"");
        for p in parents.split('.') {
            list.push_str(&format!(", \"{p}\""));
        }
        let want = format!("({list}], \"{key}\", {{\"type\": \"integer\"}})");
        text.contains(&want)
    }

    #[test]
    fn every_counter_path_exists_in_eve_schema_or_is_declared() {
        let Some(stats) = stats_schema() else { return };
        let mut s = DecodeStats::default();
        for c in Counter::ALL {
            s.incr(*c);
        }
        s.frame(100);
        s.set_checksum_offload();
        let paths = s.counters();
        // Every counter, plus max and average size and the offload flag.
        assert_eq!(paths.len(), N + 3);
        for (p, _) in paths {
            if schema_has(&stats, p) {
                continue;
            }
            assert!(
                declared_addition(p),
                "{p} is neither in the EVE schema nor declared in validate_eve.py"
            );
        }
        assert!(schema_has(&stats, "tcp.invalid_checksum"));
        assert!(!declared_addition("decoder.event.ipv4.no_such_thing"));
    }

    #[test]
    fn schema_check_rejects_unknown_path() {
        let Some(stats) = stats_schema() else { return };
        assert!(!schema_has(&stats, "decoder.event.ipv4.no_such_thing"));
        assert!(schema_has(&stats, "decoder.pkts"));
    }

    #[test]
    fn merge_sums_counts_and_takes_max_size() {
        let mut a = DecodeStats::default();
        a.frame(60);
        a.incr(Counter::Tcp);
        let mut b = DecodeStats::default();
        b.frame(1514);
        b.incr(Counter::Tcp);
        a.merge(&b);
        assert_eq!(a.get(Counter::Pkts), 2);
        assert_eq!(a.get(Counter::Tcp), 2);
        assert_eq!(a.get(Counter::Bytes), 1574);
        assert_eq!(a.max_pkt_size(), 1514);
        let c = a.counters();
        assert!(c.contains(&("decoder.avg_pkt_size", 787)));
        assert!(c.contains(&("decoder.max_pkt_size", 1514)));
        assert!(!c.iter().any(|(p, _)| *p == "decoder.udp"));
    }
}
