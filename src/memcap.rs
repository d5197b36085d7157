//! Memory budgets in bytes, shared by every worker of a run (Suricata's
//! `flow.memcap`, `stream.memcap`, `defrag.memcap`, `app-layer` memcap).
//!
//! Owns: one [`MemCap`] per stage — a limit, the bytes in use and the times
//! a reservation was refused — and the [`Lease`] through which one worker
//! draws on it. The budget is global: two workers share one limit, so peak
//! memory does not grow with the worker count.
//!
//! Contract for a stage that holds memory on behalf of the wire:
//! - reserve *before* allocating (`Lease::try_reserve(n)`); on `false`, do
//!   not allocate: evict or truncate the oldest/largest of what the stage
//!   holds (never the newest evidence first), or hand on what it holds
//!   (reassembly: declare the hole a gap and deliver), and count it;
//! - release exactly what was reserved when the memory is freed
//!   (`Lease::release(n)`), including when a flow ends or is evicted;
//! - the amounts are the stage's own estimate of heap bytes (payload bytes
//!   plus a fixed overhead per piece/entry), not allocator truth; what
//!   matters is that they bound the real use from above within a constant
//!   factor.
//!
//! A [`Lease`] takes bytes from its [`MemCap`] in granules of
//! [`GRANULE`] so the hot path touches no shared cache line; the global
//! limit is therefore exact to within one granule per worker and stage.
//!
//! A lease may also have a ceiling ([`MemCap::lease_share`]): the flow
//! table's lease holds at most its worker's share of `flow.memcap`, so a
//! flood steered at one worker (the dispatch hash is not secret) evicts
//! that worker's flows and never starves the others.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes a [`Lease`] takes from or returns to its [`MemCap`] at a time.
pub const GRANULE: u64 = 64 * 1024;

/// One stage's budget, shared by all workers.
#[derive(Debug)]
pub struct MemCap {
    name: &'static str,
    limit: u64,
    /// Bytes handed to leases (each lease may hold up to two granules it
    /// has not used yet).
    used: AtomicU64,
    /// Reservations refused because the limit was reached.
    refused: AtomicU64,
}

impl MemCap {
    /// A budget of `limit` bytes; `name` is the stats key of its current
    /// use (`flow.memuse`, `tcp.reassembly_memuse`, … as Suricata names
    /// them).
    pub fn new(name: &'static str, limit: u64) -> Arc<MemCap> {
        Arc::new(MemCap {
            name,
            limit,
            used: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes currently taken by leases (an upper bound of what is in use).
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Times a reservation was refused.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Takes `n` bytes if they fit under the limit.
    fn take(&self, n: u64) -> bool {
        let mut cur = self.used.load(Ordering::Relaxed);
        loop {
            let Some(new) = cur.checked_add(n).filter(|&v| v <= self.limit) else {
                return false;
            };
            match self
                .used
                .compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    fn give(&self, n: u64) {
        // Never below zero, even if a stage releases more than it took.
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }

    /// A worker's handle on this budget.
    pub fn lease(self: &Arc<MemCap>) -> Lease {
        Lease {
            cap: Arc::clone(self),
            credit: 0,
            held: 0,
            ceiling: u64::MAX,
            refused: 0,
        }
    }

    /// A handle that holds at most `1/parts` of the limit: one of `parts`
    /// workers' equal shares.
    pub fn lease_share(self: &Arc<MemCap>, parts: usize) -> Lease {
        let parts = u64::try_from(parts.max(1)).unwrap_or(u64::MAX);
        let mut lease = self.lease();
        lease.ceiling = self.limit / parts;
        lease
    }
}

/// One worker's draw on a [`MemCap`]: reservations are served from a local
/// credit refilled a granule at a time. Dropping a lease returns everything
/// it took.
pub struct Lease {
    cap: Arc<MemCap>,
    /// Bytes taken from the cap and not yet reserved by the stage.
    credit: u64,
    /// Bytes the stage has reserved and not released.
    held: u64,
    /// Most bytes this lease may hold (its share of the limit).
    ceiling: u64,
    /// Refusals seen by this lease (also counted on the cap).
    refused: u64,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("cap", &self.cap.name)
            .field("held", &self.held)
            .field("credit", &self.credit)
            .field("ceiling", &self.ceiling)
            .finish()
    }
}

impl Lease {
    /// Reserves `n` bytes. `false` (nothing reserved, refusal counted) when
    /// the shared limit or this lease's ceiling would be exceeded.
    pub fn try_reserve(&mut self, n: u64) -> bool {
        if self.held.saturating_add(n) > self.ceiling {
            self.refused = self.refused.saturating_add(1);
            self.cap.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if n <= self.credit {
            self.credit -= n;
            self.held = self.held.saturating_add(n);
            return true;
        }
        let want = n - self.credit;
        // Round up to whole granules, but accept an exact fit when a
        // granule more does not fit, and never take credit past the
        // ceiling (a share's unused credit would starve the other shares).
        let room = self
            .ceiling
            .saturating_sub(self.held.saturating_add(self.credit));
        let rounded = want
            .div_ceil(GRANULE)
            .saturating_mul(GRANULE)
            .min(room.max(want));
        if self.cap.take(rounded) {
            self.credit = self.credit.saturating_add(rounded) - n;
        } else if self.cap.take(want) {
            self.credit = 0;
        } else {
            self.refused = self.refused.saturating_add(1);
            self.cap.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.held = self.held.saturating_add(n);
        true
    }

    /// Gives back `n` bytes reserved earlier.
    pub fn release(&mut self, n: u64) {
        let n = n.min(self.held);
        self.held -= n;
        self.credit = self.credit.saturating_add(n);
        if self.credit > 2 * GRANULE {
            let back = self.credit - GRANULE;
            self.credit = GRANULE;
            self.cap.give(back);
        }
    }

    /// Bytes this lease's stage holds now.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Most bytes this lease can ever hold: its ceiling, or the shared
    /// limit.
    pub fn capacity(&self) -> u64 {
        self.ceiling.min(self.cap.limit)
    }

    /// Refusals seen through this lease.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    pub fn cap(&self) -> &Arc<MemCap> {
        &self.cap
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.cap.give(self.held.saturating_add(self.credit));
    }
}

/// The budgets of one run, made once from the configuration and shared by
/// every worker (clone the `Arc`s, take a [`Lease`] per worker).
#[derive(Debug, Clone)]
pub struct Memcaps {
    /// Flow table entries (`flow.memcap`).
    pub flow: Arc<MemCap>,
    /// Out-of-order bytes held by TCP reassembly (`stream.memcap`).
    pub stream: Arc<MemCap>,
    /// Fragments held by IP defragmentation (`defrag.memcap`).
    pub defrag: Arc<MemCap>,
    /// App-layer parser state: buffered message tails, open transactions,
    /// kept attributes (`app_layer.memcap`).
    pub app: Arc<MemCap>,
    /// Workers of the run, each with an equal share of `flow`.
    workers: usize,
}

impl Memcaps {
    /// Budgets from the configuration's `*.memcap` values, for a run of
    /// `workers` workers.
    pub fn new(cfg: &crate::config::Config, workers: usize) -> Memcaps {
        Memcaps {
            workers: workers.max(1),
            flow: MemCap::new("flow.memuse", cfg.flow.memcap.0),
            stream: MemCap::new("tcp.reassembly_memuse", cfg.stream.memcap.0),
            defrag: MemCap::new("defrag.memuse", cfg.defrag.memcap.0),
            app: MemCap::new("app_layer.memuse", cfg.app_layer.memcap.0),
        }
    }

    /// A worker's lease on `flow.memcap`: its equal share.
    pub fn flow_lease(&self) -> Lease {
        self.flow.lease_share(self.workers)
    }

    /// Current use of each budget for the stats record, under Suricata's
    /// names; refusals are counted by the stage that handles them, under
    /// its own name.
    pub fn counters(&self) -> Vec<(String, u64)> {
        [&self.flow, &self.stream, &self.defrag, &self.app]
            .iter()
            .map(|c| (c.name().to_string(), c.used()))
            .collect()
    }
}

/// Asks the kernel not to back this process's memory with transparent huge
/// pages, except where we advise them (the mapped capture:
/// [`crate::capture::Reader::open`]). The allocator is built not to advise
/// them (mimalloc's `no_thp`): one touched byte would make 2 MiB
/// resident: 1 024 MQTT connections' worth of state measured 45 MB
/// resident with them and 16 MB without, for no gain in speed (user time
/// on the 126 000-flow pipeline benchmark the same or lower). Measured
/// again on an AMD EPYC (Linux 6.18, THP `madvise`, one worker, 7 pairs):
/// with heap huge pages `mqtt_small` took CPU ×1.12 and 18 MB more peak
/// RSS, though its page faults fell from 65 000 to 10 000; `dicom_bulk`
/// ×1.00 (its 9 000 faults are the heap's). `PR_THP_DISABLE_EXCEPT_ADVISED`
/// is Linux 6.18; an older kernel refuses it and every huge page is
/// turned off, the capture's too. Called first thing in `main`; mappings
/// made before are covered too (the kernel checks at each fault).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn no_transparent_huge_pages() {
    /// `PR_THP_DISABLE_EXCEPT_ADVISED` (linux/prctl.h, 6.18), not in the
    /// libc crate yet.
    const EXCEPT_ADVISED: libc::c_ulong = 1 << 1;
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no
    // memory of ours; on failure (an old kernel) nothing changes.
    unsafe {
        if libc::prctl(
            libc::PR_SET_THP_DISABLE,
            1 as libc::c_ulong,
            EXCEPT_ADVISED,
            0,
            0,
        ) != 0
        {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1 as libc::c_ulong, 0, 0, 0);
        }
    }
}

/// Nothing to do where transparent huge pages are not Linux's.
#[cfg(not(target_os = "linux"))]
pub fn no_transparent_huge_pages() {}

/// A size in bytes, written in configuration files as a number of bytes or
/// with a unit as Suricata does: `64mb`, `512kb`, `1gb` (powers of 1024,
/// case-insensitive, optional `b`/`ib`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn mib(n: u64) -> ByteSize {
        ByteSize(n * 1024 * 1024)
    }

    /// Parses `64mb`, `512 KiB`, `1g`, `4096`.
    ///
    /// # Errors
    /// Not a number with an optional k/m/g unit, or too large.
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let t = s.trim().to_ascii_lowercase();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{s:?}: expected a size such as 64mb"))?;
        let mult: u64 = match unit.trim() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            other => return Err(format!("{s:?}: unknown unit {other:?} (use kb, mb or gb)")),
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("{s:?}: too large"))
    }
}

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => ByteSize::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    #[allow(unsafe_code)]
    fn huge_pages_are_off_except_where_advised() {
        no_transparent_huge_pages();
        // SAFETY: PR_GET_THP_DISABLE takes no pointers.
        let got = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        // 1: off everywhere (a kernel before 6.18); 3: off except where
        // advised.
        assert!(got == 1 || got == 3, "{got}");
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut v = release
            .trim()
            .split(['.', '-'])
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (v.next().unwrap_or(0), v.next().unwrap_or(0));
        if (major, minor) >= (6, 18) {
            assert_eq!(got, 3, "Linux {release}");
        }
    }

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(ByteSize::parse("4096"), Ok(ByteSize(4096)));
        assert_eq!(ByteSize::parse("64mb"), Ok(ByteSize(64 << 20)));
        assert_eq!(ByteSize::parse("512 KiB"), Ok(ByteSize(512 << 10)));
        assert_eq!(ByteSize::parse("1G"), Ok(ByteSize(1 << 30)));
        assert!(ByteSize::parse("12 parsecs").is_err());
        assert!(ByteSize::parse("mb").is_err());
        assert!(ByteSize::parse("99999999999999gb").is_err());
    }

    #[test]
    fn two_leases_share_one_limit() {
        let cap = MemCap::new("test", 3 * GRANULE);
        let mut a = cap.lease();
        let mut b = cap.lease();
        assert!(a.try_reserve(GRANULE + 1));
        assert!(b.try_reserve(GRANULE - 1));
        // a took two granules, b one: nothing left for either.
        assert!(!b.try_reserve(GRANULE + 10));
        assert_eq!(cap.refused(), 1);
        // a still has credit from its second granule.
        assert!(a.try_reserve(100));
        a.release(GRANULE + 101);
        assert_eq!(a.held(), 0);
        drop(a);
        assert_eq!(cap.used(), GRANULE);
        assert!(b.try_reserve(GRANULE + 10));
        drop(b);
        assert_eq!(cap.used(), 0);
    }

    #[test]
    fn a_reservation_larger_than_a_granule_fits_exactly_at_the_limit() {
        let cap = MemCap::new("test", 100_000);
        let mut a = cap.lease();
        assert!(a.try_reserve(100_000));
        assert!(!a.try_reserve(1));
        a.release(100_000);
        assert!(a.try_reserve(1));
    }

    #[test]
    fn a_share_refuses_past_its_part_while_the_limit_has_room() {
        let cap = MemCap::new("test", 4 * GRANULE);
        let mut a = cap.lease_share(2);
        let mut b = cap.lease_share(2);
        assert_eq!(a.capacity(), 2 * GRANULE);
        assert!(a.try_reserve(2 * GRANULE));
        assert!(!a.try_reserve(1));
        assert_eq!((a.refused(), cap.refused()), (1, 1));
        // The other share is untouched by a's refusals.
        assert!(b.try_reserve(2 * GRANULE));
        a.release(10);
        assert!(a.try_reserve(10));
    }

    #[test]
    fn a_share_smaller_than_a_granule_takes_no_credit_past_it() {
        // Two shares of 32 KiB: the first reservation must not take a
        // whole 64 KiB granule and leave the other share nothing.
        let cap = MemCap::new("test", GRANULE);
        let mut a = cap.lease_share(2);
        let mut b = cap.lease_share(2);
        assert!(a.try_reserve(251));
        assert!(b.try_reserve(251));
        assert!(cap.used() <= GRANULE);
        while a.try_reserve(251) {}
        while b.try_reserve(251) {}
        assert_eq!(a.held(), GRANULE / 2 / 251 * 251);
        assert_eq!(b.held(), a.held());
    }

    #[test]
    fn releasing_more_than_held_never_underflows() {
        let cap = MemCap::new("test", GRANULE);
        let mut a = cap.lease();
        assert!(a.try_reserve(10));
        a.release(1_000_000);
        assert_eq!(a.held(), 0);
        drop(a);
        assert_eq!(cap.used(), 0);
    }
}
