//! Address and port sets of rule headers, compiled from Suricata's syntax
//! (userguide "Rules Format", source/destination and ports): `any`, single
//! addresses, CIDR blocks (IPv4 and IPv6), `a-b` address ranges, port
//! ranges `1000:2000` `1024:` `:1023`, lists `[..]` that nest, `!` negation
//! of an element or a list, and `$NAME` variables from [`Vars`] (which may
//! reference other variables; a cycle is an error).
//!
//! A list means "the union of its plain elements minus the union of its
//! negated ones" (only negated elements: everything minus them). Sets are
//! compiled into sorted, merged intervals, so a lookup is a binary search
//! and no string work happens per packet.

use std::net::IpAddr;

use super::Vars;

/// Nesting of lists and variables followed before giving up.
const MAX_DEPTH: usize = 32;

/// Sorted, disjoint, non-adjacent closed intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Ranges(Vec<(u128, u128)>);

impl Ranges {
    fn full(max: u128) -> Ranges {
        Ranges(vec![(0, max)])
    }

    fn normalize(mut v: Vec<(u128, u128)>) -> Ranges {
        v.sort_unstable();
        let mut out: Vec<(u128, u128)> = Vec::with_capacity(v.len());
        for (a, b) in v {
            match out.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        Ranges(out)
    }

    fn union(&self, o: &Ranges) -> Ranges {
        Ranges::normalize(self.0.iter().chain(o.0.iter()).copied().collect())
    }

    fn complement(&self, max: u128) -> Ranges {
        let mut out = Vec::with_capacity(self.0.len() + 1);
        let mut next = Some(0u128);
        for &(a, b) in &self.0 {
            if let Some(n) = next {
                if a > n {
                    out.push((n, a - 1));
                }
            }
            next = b.checked_add(1).filter(|&x| x <= max);
        }
        if let Some(n) = next {
            out.push((n, max));
        }
        Ranges(out)
    }

    fn minus(&self, o: &Ranges, max: u128) -> Ranges {
        // a − b = ¬(¬a ∪ b)
        self.complement(max).union(o).complement(max)
    }
}

const V4_MAX: u128 = u32::MAX as u128;
const V6_MAX: u128 = u128::MAX;

/// A set of IPv4 and IPv6 addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AddrSet {
    any: bool,
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl AddrSet {
    #[inline]
    pub(crate) fn is_any(&self) -> bool {
        self.any
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        if self.any {
            return true;
        }
        match ip {
            IpAddr::V4(a) => {
                let x = u32::from(a);
                let i = self.v4.partition_point(|&(_, b)| b < x);
                self.v4.get(i).is_some_and(|&(a, _)| a <= x)
            }
            IpAddr::V6(a) => {
                let x = u128::from(a);
                let i = self.v6.partition_point(|&(_, b)| b < x);
                self.v6.get(i).is_some_and(|&(a, _)| a <= x)
            }
        }
    }

    /// Parses a header field or variable value.
    ///
    /// # Errors
    /// Bad syntax, an unknown or cyclic variable, or a set that holds no
    /// address at all.
    pub(crate) fn parse(text: &str, vars: &Vars) -> Result<AddrSet, String> {
        let mut p = AddrParser {
            vars,
            stack: Vec::new(),
        };
        let (v4, v6) = p.expr(text.trim(), 0)?;
        if v4.0.is_empty() && v6.0.is_empty() {
            return Err(format!("address {text:?} matches no address"));
        }
        let any = v4 == Ranges::full(V4_MAX) && v6 == Ranges::full(V6_MAX);
        Ok(AddrSet {
            any,
            // v4 ranges never exceed V4_MAX, so they fit u32.
            v4: v4.0.iter().map(|&(a, b)| (a as u32, b as u32)).collect(),
            v6: v6.0,
        })
    }
}

type Pair = (Ranges, Ranges);

struct AddrParser<'a> {
    vars: &'a Vars,
    stack: Vec<String>,
}

impl AddrParser<'_> {
    fn expr(&mut self, s: &str, depth: usize) -> Result<Pair, String> {
        if depth > MAX_DEPTH {
            return Err("address nesting too deep".to_string());
        }
        let s = s.trim();
        if let Some(rest) = s.strip_prefix('!') {
            let (a, b) = self.expr(rest, depth + 1)?;
            return Ok((a.complement(V4_MAX), b.complement(V6_MAX)));
        }
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| format!("unclosed list {s:?}"))?;
            return self.list(inner, depth + 1);
        }
        if let Some(name) = s.strip_prefix('$') {
            return self.var(name, depth + 1);
        }
        if s.eq_ignore_ascii_case("any") {
            return Ok((Ranges::full(V4_MAX), Ranges::full(V6_MAX)));
        }
        single(s)
    }

    fn list(&mut self, inner: &str, depth: usize) -> Result<Pair, String> {
        let mut pos: Option<Pair> = None;
        let mut neg: Pair = (Ranges::default(), Ranges::default());
        for item in split_top(inner)? {
            let item = item.trim();
            if item.is_empty() {
                return Err("empty element in address list".to_string());
            }
            if let Some(rest) = item.strip_prefix('!') {
                let (a, b) = self.expr(rest, depth)?;
                neg = (neg.0.union(&a), neg.1.union(&b));
            } else {
                let (a, b) = self.expr(item, depth)?;
                pos = Some(match pos {
                    Some((x, y)) => (x.union(&a), y.union(&b)),
                    None => (a, b),
                });
            }
        }
        let (p4, p6) = pos.unwrap_or_else(|| (Ranges::full(V4_MAX), Ranges::full(V6_MAX)));
        Ok((p4.minus(&neg.0, V4_MAX), p6.minus(&neg.1, V6_MAX)))
    }

    fn var(&mut self, name: &str, depth: usize) -> Result<Pair, String> {
        let value = self
            .vars
            .address_groups
            .get(name)
            .ok_or_else(|| format!("unknown address variable ${name}"))?;
        if self.stack.iter().any(|n| n == name) {
            return Err(format!("address variable ${name} refers to itself"));
        }
        self.stack.push(name.to_string());
        let r = self.expr(value, depth);
        self.stack.pop();
        r
    }
}

/// Splits a list body on commas that are not inside a nested list.
fn split_top(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("unbalanced ']' in {s:?}"))?
            }
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced '[' in {s:?}"));
    }
    out.push(&s[start..]);
    Ok(out)
}

/// An address, a CIDR block or an `a-b` range.
fn single(s: &str) -> Result<Pair, String> {
    let empty = Ranges::default;
    if let Some((a, b)) = s.split_once('-') {
        let (a, b) = (ip(a.trim())?, ip(b.trim())?);
        return match (a, b) {
            (IpAddr::V4(a), IpAddr::V4(b)) if a <= b => Ok((
                Ranges(vec![(u128::from(u32::from(a)), u128::from(u32::from(b)))]),
                empty(),
            )),
            (IpAddr::V6(a), IpAddr::V6(b)) if a <= b => {
                Ok((empty(), Ranges(vec![(u128::from(a), u128::from(b))])))
            }
            _ => Err(format!("bad address range {s:?}")),
        };
    }
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (
            ip(a)?,
            Some(
                p.parse::<u32>()
                    .map_err(|_| format!("bad prefix length in {s:?}"))?,
            ),
        ),
        None => (ip(s)?, None),
    };
    match addr {
        IpAddr::V4(a) => {
            let bits = prefix.unwrap_or(32);
            if bits > 32 {
                return Err(format!("prefix longer than 32 in {s:?}"));
            }
            let (lo, hi) = block(u128::from(u32::from(a)), bits, 32);
            Ok((Ranges(vec![(lo, hi)]), empty()))
        }
        IpAddr::V6(a) => {
            let bits = prefix.unwrap_or(128);
            if bits > 128 {
                return Err(format!("prefix longer than 128 in {s:?}"));
            }
            let (lo, hi) = block(u128::from(a), bits, 128);
            Ok((empty(), Ranges(vec![(lo, hi)])))
        }
    }
}

/// First and last address of the block of `bits` prefix bits around `x`
/// in a `width`-bit space (host bits set in the text are ignored, as
/// Suricata does).
fn block(x: u128, bits: u32, width: u32) -> (u128, u128) {
    let host = width - bits;
    let span = if host >= 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    };
    let lo = x & !span;
    (lo, lo | span)
}

fn ip(s: &str) -> Result<IpAddr, String> {
    s.parse::<IpAddr>()
        .map_err(|_| format!("{s:?} is not an address"))
}

/// A set of ports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PortSet {
    any: bool,
    ranges: Vec<(u16, u16)>,
}

const PORT_MAX: u128 = u16::MAX as u128;

impl PortSet {
    #[inline]
    pub(crate) fn is_any(&self) -> bool {
        self.any
    }

    pub(crate) fn contains(&self, p: u16) -> bool {
        if self.any {
            return true;
        }
        let i = self.ranges.partition_point(|&(_, b)| b < p);
        self.ranges.get(i).is_some_and(|&(a, _)| a <= p)
    }

    /// Parses a header field or variable value.
    ///
    /// # Errors
    /// Bad syntax, an unknown or cyclic variable, or no port at all.
    pub(crate) fn parse(text: &str, vars: &Vars) -> Result<PortSet, String> {
        let mut stack = Vec::new();
        let r = port_expr(text.trim(), vars, &mut stack, 0)?;
        if r.0.is_empty() {
            return Err(format!("port {text:?} matches no port"));
        }
        Ok(PortSet {
            any: r == Ranges::full(PORT_MAX),
            // Port ranges never exceed PORT_MAX.
            ranges: r.0.iter().map(|&(a, b)| (a as u16, b as u16)).collect(),
        })
    }
}

fn port_expr(
    s: &str,
    vars: &Vars,
    stack: &mut Vec<String>,
    depth: usize,
) -> Result<Ranges, String> {
    if depth > MAX_DEPTH {
        return Err("port nesting too deep".to_string());
    }
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('!') {
        return Ok(port_expr(rest, vars, stack, depth + 1)?.complement(PORT_MAX));
    }
    if let Some(inner) = s.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| format!("unclosed list {s:?}"))?;
        let mut pos: Option<Ranges> = None;
        let mut neg = Ranges::default();
        for item in split_top(inner)? {
            let item = item.trim();
            if item.is_empty() {
                return Err("empty element in port list".to_string());
            }
            if let Some(rest) = item.strip_prefix('!') {
                neg = neg.union(&port_expr(rest, vars, stack, depth + 1)?);
            } else {
                let r = port_expr(item, vars, stack, depth + 1)?;
                pos = Some(match pos {
                    Some(p) => p.union(&r),
                    None => r,
                });
            }
        }
        return Ok(pos
            .unwrap_or_else(|| Ranges::full(PORT_MAX))
            .minus(&neg, PORT_MAX));
    }
    if let Some(name) = s.strip_prefix('$') {
        let value = vars
            .port_groups
            .get(name)
            .ok_or_else(|| format!("unknown port variable ${name}"))?;
        if stack.iter().any(|n| n == name) {
            return Err(format!("port variable ${name} refers to itself"));
        }
        stack.push(name.to_string());
        let r = port_expr(value, vars, stack, depth + 1);
        stack.pop();
        return r;
    }
    if s.eq_ignore_ascii_case("any") {
        return Ok(Ranges::full(PORT_MAX));
    }
    let num = |t: &str| -> Result<u128, String> {
        t.trim()
            .parse::<u16>()
            .map(u128::from)
            .map_err(|_| format!("{t:?} is not a port"))
    };
    match s.split_once(':') {
        Some((a, b)) => {
            let lo = if a.trim().is_empty() { 0 } else { num(a)? };
            let hi = if b.trim().is_empty() {
                PORT_MAX
            } else {
                num(b)?
            };
            if lo > hi {
                return Err(format!("empty port range {s:?}"));
            }
            Ok(Ranges(vec![(lo, hi)]))
        }
        None => {
            let p = num(s)?;
            Ok(Ranges(vec![(p, p)]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_vars_home_and_external_net_are_complements() {
        let v = Vars::default();
        let home = AddrSet::parse("$HOME_NET", &v).unwrap();
        let ext = AddrSet::parse("$EXTERNAL_NET", &v).unwrap();
        for ip in ["10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.7.7"] {
            assert!(home.contains(a(ip)) && !ext.contains(a(ip)), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "172.32.0.0",
            "11.0.0.0",
            "2001:db8::1",
            "9.255.255.255",
        ] {
            assert!(!home.contains(a(ip)) && ext.contains(a(ip)), "{ip}");
        }
        // A variable through a variable.
        let dev = AddrSet::parse("$MEDICAL_DEVICES", &v).unwrap();
        assert!(dev.contains(a("10.0.0.1")) && !dev.contains(a("1.1.1.1")));
    }

    #[test]
    fn list_with_negated_block_excludes_it() {
        let s = AddrSet::parse("[10.0.0.0/8, !10.1.0.0/16]", &Vars::default()).unwrap();
        assert!(s.contains(a("10.0.0.1")));
        assert!(!s.contains(a("10.1.200.3")));
        assert!(s.contains(a("10.2.0.0")));
        assert!(!s.contains(a("11.0.0.0")));
    }

    #[test]
    fn only_negated_elements_mean_everything_else() {
        let s = AddrSet::parse("[!1.2.3.4,!fe80::/10]", &Vars::default()).unwrap();
        assert!(!s.contains(a("1.2.3.4")));
        assert!(s.contains(a("1.2.3.5")));
        assert!(!s.contains(a("fe80::1")));
        assert!(s.contains(a("2001:db8::1")));
        assert!(!s.is_any());
    }

    #[test]
    fn nested_negated_list_and_ranges() {
        let s = AddrSet::parse("![1.0.0.0/8,[2.0.0.1-2.0.0.3]]", &Vars::default()).unwrap();
        assert!(!s.contains(a("1.9.9.9")));
        assert!(!s.contains(a("2.0.0.2")));
        assert!(s.contains(a("2.0.0.4")));
        assert!(s.contains(a("2.0.0.0")));
    }

    #[test]
    fn cidr_ignores_host_bits_and_v6_blocks_work() {
        let s = AddrSet::parse("192.168.1.77/24", &Vars::default()).unwrap();
        assert!(s.contains(a("192.168.1.0")) && s.contains(a("192.168.1.255")));
        assert!(!s.contains(a("192.168.2.0")));
        let s = AddrSet::parse("2001:db8::/32", &Vars::default()).unwrap();
        assert!(s.contains(a("2001:db8:ffff::1")) && !s.contains(a("2001:db9::")));
        assert!(!s.contains(a("10.0.0.1")));
        let s = AddrSet::parse("::/0", &Vars::default()).unwrap();
        assert!(s.contains(a("::1")) && !s.contains(a("1.1.1.1")));
    }

    #[test]
    fn any_is_any() {
        assert!(AddrSet::parse("any", &Vars::default()).unwrap().is_any());
        assert!(AddrSet::parse("[0.0.0.0/0,::/0]", &Vars::default())
            .unwrap()
            .is_any());
    }

    #[test]
    fn bad_addresses_cycles_and_empty_sets_are_errors() {
        let mut v = Vars::default();
        v.address_groups.insert("A".into(), "[$B,1.1.1.1]".into());
        v.address_groups.insert("B".into(), "$A".into());
        for bad in [
            "$A",
            "$NOPE",
            "1.2.3",
            "1.2.3.4/33",
            "[1.1.1.1",
            "[1.1.1.1,]",
            "!any",
            "[1.1.1.1,!1.1.1.1]",
            "2.0.0.3-2.0.0.1",
            "1.1.1.1-::1",
        ] {
            assert!(AddrSet::parse(bad, &v).is_err(), "{bad}");
        }
    }

    #[test]
    fn ports_ranges_lists_negation_and_vars() {
        let v = Vars::default();
        let p = PortSet::parse("1024:", &v).unwrap();
        assert!(!p.contains(1023) && p.contains(1024) && p.contains(65535));
        let p = PortSet::parse(":1023", &v).unwrap();
        assert!(p.contains(0) && p.contains(1023) && !p.contains(1024));
        let p = PortSet::parse("1000:2000", &v).unwrap();
        assert!(!p.contains(999) && p.contains(1000) && p.contains(2000) && !p.contains(2001));
        let p = PortSet::parse("[$DICOM_PORTS,$MQTT_PORTS]", &v).unwrap();
        assert!(p.contains(104) && p.contains(11112) && p.contains(1883) && !p.contains(80));
        let p = PortSet::parse("[1:100,!80]", &v).unwrap();
        assert!(p.contains(79) && !p.contains(80) && p.contains(81) && !p.contains(101));
        let p = PortSet::parse("!$MQTT_PORTS", &v).unwrap();
        assert!(!p.contains(1883) && p.contains(1884));
        assert!(PortSet::parse("any", &v).unwrap().is_any());
        assert!(PortSet::parse("[0:]", &v).unwrap().is_any());
    }

    #[test]
    fn bad_ports_are_errors() {
        let mut v = Vars::default();
        v.port_groups.insert("P".into(), "[$P]".into());
        for bad in [
            "65536",
            "2000:1000",
            "$P",
            "$NOPE",
            "x",
            "[80",
            "!any",
            "[80,!80]",
            "-1",
        ] {
            assert!(PortSet::parse(bad, &v).is_err(), "{bad}");
        }
    }
}
