//! CIDRs and IP address sets.
//!
//! An `ipBlock` matches the addresses in `cidr` and in none of its `except`
//! blocks (networking/v1 `IPBlock`). The compiler subtracts the excepts once,
//! giving an [`IpSet`]: sorted disjoint address intervals per family.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IP address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    fn of(address: IpAddr) -> Family {
        match address {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

fn to_number(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_number(family: Family, number: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(number as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(number)),
    }
}

/// A network in CIDR notation, with host bits cleared.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Cidr {
    address: IpAddr,
    prefix: u8,
}

/// A CIDR as parsed from a manifest, with what the API server would warn about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedCidr {
    /// The network, host bits cleared.
    pub cidr: Cidr,
    /// Ambiguities that API servers with `StrictIPCIDRValidation` reject and
    /// older ones accept (apimachinery `validation/ip.go`, `GetWarningsForCIDR`).
    pub warnings: Vec<String>,
}

impl Cidr {
    /// A network from an address and prefix length; host bits are cleared.
    pub fn new(address: IpAddr, prefix: u8) -> Option<Cidr> {
        let family = Family::of(address);
        if prefix > family.bits() {
            return None;
        }
        let mask = prefix_mask(family, prefix);
        Some(Cidr {
            address: from_number(family, to_number(address) & mask),
            prefix,
        })
    }

    /// Parses `a.b.c.d/n` or `x::y/n`. Host bits set, leading zeros in IPv4
    /// octets and IPv4-mapped IPv6 are accepted with a warning, as legacy
    /// API servers do; anything else malformed is an error.
    pub fn parse(text: &str) -> Result<ParsedCidr, String> {
        let (address_text, prefix_text) = text.split_once('/').ok_or_else(|| {
            format!("{text:?} is not a valid CIDR: it needs a prefix length, e.g. 10.0.0.0/8")
        })?;
        let mut warnings = Vec::new();
        let address = match address_text.parse::<IpAddr>() {
            Ok(address) => address,
            Err(_) => match parse_ipv4_with_leading_zeros(address_text) {
                Some(address) => {
                    warnings.push(format!(
                        "{text:?} has leading zeros in an IPv4 octet; they are read as decimal, and API servers with strict IP validation reject them"
                    ));
                    IpAddr::V4(address)
                }
                None => {
                    return Err(format!(
                        "{text:?} is not a valid CIDR: {address_text:?} is not an IP address"
                    ));
                }
            },
        };
        let family = Family::of(address);
        let prefix: u8 = prefix_text
            .parse()
            .ok()
            .filter(|prefix| *prefix <= family.bits() && !prefix_text.starts_with('+'))
            .ok_or_else(|| {
                format!(
                    "{text:?} is not a valid CIDR: the prefix length must be a number from 0 to {}",
                    family.bits()
                )
            })?;
        if prefix_text.len() > 1 && prefix_text.starts_with('0') {
            warnings.push(format!("{text:?} has a leading zero in its prefix length"));
        }
        if let IpAddr::V6(v6) = address
            && v6.to_ipv4_mapped().is_some()
        {
            warnings.push(format!(
                "{text:?} is an IPv4-mapped IPv6 address; it never matches IPv4 traffic, and strict API servers reject it"
            ));
        }
        let cidr = Cidr::new(address, prefix).expect("prefix checked above");
        if cidr.address != address {
            warnings.push(format!(
                "{text:?} has bits set beyond its prefix length; it means {cidr}, and API servers with strict IP validation reject it"
            ));
        }
        Ok(ParsedCidr { cidr, warnings })
    }

    /// The network address.
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The address family.
    pub fn family(&self) -> Family {
        Family::of(self.address)
    }

    /// True if `address` is inside this network.
    pub fn contains(&self, address: IpAddr) -> bool {
        Family::of(address) == self.family()
            && to_number(address) & prefix_mask(self.family(), self.prefix)
                == to_number(self.address)
    }

    fn interval(&self) -> (u128, u128) {
        let first = to_number(self.address);
        let host_bits = self.family().bits() - self.prefix;
        let last = if host_bits >= 128 {
            u128::MAX
        } else {
            first | ((1u128 << host_bits) - 1)
        };
        (first, last)
    }
}

fn prefix_mask(family: Family, prefix: u8) -> u128 {
    let bits = family.bits();
    let full = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    if prefix == 0 {
        0
    } else {
        (full >> (bits - prefix)) << (bits - prefix) & full
    }
}

fn parse_ipv4_with_leading_zeros(text: &str) -> Option<Ipv4Addr> {
    let octets: Vec<u8> = text
        .split('.')
        .map(|octet| {
            if octet.is_empty() || octet.len() > 3 || !octet.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                octet.parse().ok()
            }
        })
        .collect::<Option<_>>()?;
    let octets: [u8; 4] = octets.try_into().ok()?;
    Some(Ipv4Addr::from(octets))
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// A set of IP addresses: sorted, disjoint, inclusive intervals per family.
// The serde forms round-trip sets this crate built; deserializing does not
// check that intervals are sorted and disjoint.
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct IpSet {
    intervals: [Vec<(u128, u128)>; 2],
}

impl IpSet {
    /// No addresses.
    pub fn empty() -> Self {
        IpSet::default()
    }

    /// Every IPv4 and IPv6 address.
    pub fn everything() -> Self {
        IpSet {
            intervals: [vec![(0, u128::from(u32::MAX))], vec![(0, u128::MAX)]],
        }
    }

    /// The addresses of one network.
    pub fn from_cidr(cidr: Cidr) -> Self {
        let mut set = IpSet::empty();
        set.intervals[cidr.family().index()].push(cidr.interval());
        set
    }

    /// The addresses `first..=last` (same family; empty if reversed or mixed).
    pub fn from_range(first: IpAddr, last: IpAddr) -> Self {
        let mut set = IpSet::empty();
        if Family::of(first) == Family::of(last) && first <= last {
            set.intervals[Family::of(first).index()].push((to_number(first), to_number(last)));
        }
        set
    }

    /// `cidr` minus every `except` block: what an `ipBlock` matches.
    pub fn from_block(cidr: Cidr, except: &[Cidr]) -> Self {
        let mut set = IpSet::from_cidr(cidr);
        for block in except {
            set = set.difference(&IpSet::from_cidr(*block));
        }
        set
    }

    /// True if there are no addresses.
    pub fn is_empty(&self) -> bool {
        self.intervals.iter().all(Vec::is_empty)
    }

    /// True if `address` is in the set.
    pub fn contains(&self, address: IpAddr) -> bool {
        let intervals = &self.intervals[Family::of(address).index()];
        let number = to_number(address);
        let position = intervals.partition_point(|&(first, _)| first <= number);
        position > 0 && intervals[position - 1].1 >= number
    }

    /// True if every address of `first..=last` is in the set (false for an
    /// empty or mixed-family range).
    pub fn contains_range(&self, first: IpAddr, last: IpAddr) -> bool {
        if Family::of(first) != Family::of(last) || first > last {
            return false;
        }
        let intervals = &self.intervals[Family::of(first).index()];
        let (first, last) = (to_number(first), to_number(last));
        let position = intervals.partition_point(|&(start, _)| start <= first);
        position > 0 && intervals[position - 1].1 >= last
    }

    /// Adds every address of `other`. Linear in the sizes of both sets.
    pub fn union_with(&mut self, other: &IpSet) {
        for family in [Family::V4, Family::V6] {
            let theirs = &other.intervals[family.index()];
            if theirs.is_empty() {
                continue;
            }
            let ours = std::mem::take(&mut self.intervals[family.index()]);
            let mut merged = Vec::with_capacity(ours.len() + theirs.len());
            let (mut a, mut b) = (ours.iter().peekable(), theirs.iter().peekable());
            loop {
                let next = match (a.peek(), b.peek()) {
                    (Some(x), Some(y)) if x <= y => a.next(),
                    (Some(_), Some(_)) => b.next(),
                    (Some(_), None) => a.next(),
                    (None, Some(_)) => b.next(),
                    (None, None) => break,
                };
                push_merging(&mut merged, *next.expect("peeked"));
            }
            self.intervals[family.index()] = merged;
        }
    }

    /// The union of many sets at once: one sort instead of a merge per set.
    pub fn union_all<'a>(sets: impl IntoIterator<Item = &'a IpSet>) -> IpSet {
        let mut builder = IpSetBuilder::default();
        for set in sets {
            builder.add_set(set);
        }
        builder.build()
    }

    /// The addresses of `self` not in `other`. Linear in the sizes of both sets.
    pub fn difference(&self, other: &IpSet) -> IpSet {
        let mut result = IpSet::empty();
        for family in [Family::V4, Family::V6] {
            let removed = &other.intervals[family.index()];
            let out = &mut result.intervals[family.index()];
            // Cuts wholly before the current interval are behind every later
            // interval too, so `skip` only moves forward.
            let mut skip = 0;
            for &(first, last) in &self.intervals[family.index()] {
                while skip < removed.len() && removed[skip].1 < first {
                    skip += 1;
                }
                let mut start = Some(first);
                for &(cut_first, cut_last) in &removed[skip..] {
                    let Some(current) = start else { break };
                    if cut_first > last {
                        break;
                    }
                    if cut_last < current {
                        continue;
                    }
                    if cut_first > current {
                        out.push((current, cut_first - 1));
                    }
                    start = cut_last.checked_add(1).filter(|next| *next <= last);
                }
                if let Some(current) = start {
                    out.push((current, last));
                }
            }
        }
        result
    }

    /// The addresses in both sets. Linear in the sizes of both sets.
    pub fn intersection(&self, other: &IpSet) -> IpSet {
        let mut result = IpSet::empty();
        for family in [Family::V4, Family::V6] {
            let (ours, theirs) = (
                &self.intervals[family.index()],
                &other.intervals[family.index()],
            );
            let out = &mut result.intervals[family.index()];
            let (mut i, mut j) = (0, 0);
            while i < ours.len() && j < theirs.len() {
                let first = ours[i].0.max(theirs[j].0);
                let last = ours[i].1.min(theirs[j].1);
                if first <= last {
                    out.push((first, last));
                }
                if ours[i].1 < theirs[j].1 {
                    i += 1;
                } else {
                    j += 1;
                }
            }
        }
        result
    }

    /// True if the sets share an address.
    pub fn intersects(&self, other: &IpSet) -> bool {
        [Family::V4, Family::V6].into_iter().any(|family| {
            let (ours, theirs) = (
                &self.intervals[family.index()],
                &other.intervals[family.index()],
            );
            let (mut i, mut j) = (0, 0);
            while i < ours.len() && j < theirs.len() {
                if ours[i].0.max(theirs[j].0) <= ours[i].1.min(theirs[j].1) {
                    return true;
                }
                if ours[i].1 < theirs[j].1 {
                    i += 1;
                } else {
                    j += 1;
                }
            }
            false
        })
    }

    /// The intervals of one family as `(first, last)` addresses.
    pub fn ranges(&self, family: Family) -> impl Iterator<Item = (IpAddr, IpAddr)> + '_ {
        self.intervals[family.index()]
            .iter()
            .map(move |&(first, last)| (from_number(family, first), from_number(family, last)))
    }

    /// The set as a minimal list of CIDRs, IPv4 first.
    pub fn to_cidrs(&self) -> Vec<Cidr> {
        let mut cidrs = Vec::new();
        for family in [Family::V4, Family::V6] {
            let bits = family.bits();
            for &(first, last) in &self.intervals[family.index()] {
                let mut start = first;
                loop {
                    // The largest aligned block starting at `start` that ends by `last`.
                    let alignment = if start == 0 {
                        u32::from(bits)
                    } else {
                        start.trailing_zeros().min(u32::from(bits))
                    };
                    let mut size_bits = alignment;
                    while size_bits > 0 {
                        let block_last = if size_bits >= 128 {
                            u128::MAX
                        } else {
                            start + ((1u128 << size_bits) - 1)
                        };
                        if block_last <= last {
                            break;
                        }
                        size_bits -= 1;
                    }
                    let prefix = bits - size_bits as u8;
                    cidrs
                        .push(Cidr::new(from_number(family, start), prefix).expect("valid prefix"));
                    let block_last = if size_bits >= 128 {
                        u128::MAX
                    } else {
                        start + ((1u128 << size_bits) - 1)
                    };
                    if block_last >= last {
                        break;
                    }
                    start = block_last + 1;
                }
            }
        }
        cidrs
    }
}

impl fmt::Display for IpSet {
    /// Comma-separated CIDRs; `none` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cidrs = self.to_cidrs();
        if cidrs.is_empty() {
            return f.write_str("none");
        }
        for (index, cidr) in cidrs.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{cidr}")?;
        }
        Ok(())
    }
}

/// Appends an interval to a sorted list, merging it into the last one when
/// they overlap or touch.
fn push_merging(intervals: &mut Vec<(u128, u128)>, (first, last): (u128, u128)) {
    match intervals.last_mut() {
        Some(previous) if previous.1 == u128::MAX || first <= previous.1 + 1 => {
            previous.1 = previous.1.max(last);
        }
        _ => intervals.push((first, last)),
    }
}

/// Collects addresses and sets, then builds one [`IpSet`] with a single sort:
/// O(n log n) where adding them one by one with [`IpSet::union_with`] costs
/// O(n²).
#[derive(Clone, Debug, Default)]
pub struct IpSetBuilder {
    intervals: [Vec<(u128, u128)>; 2],
}

impl IpSetBuilder {
    /// Adds one address.
    pub fn add_address(&mut self, address: IpAddr) {
        let number = to_number(address);
        self.intervals[Family::of(address).index()].push((number, number));
    }

    /// Adds every address of `set`.
    pub fn add_set(&mut self, set: &IpSet) {
        for family in [Family::V4, Family::V6] {
            self.intervals[family.index()].extend_from_slice(&set.intervals[family.index()]);
        }
    }

    /// True if nothing was added.
    pub fn is_empty(&self) -> bool {
        self.intervals.iter().all(Vec::is_empty)
    }

    /// The set of everything added.
    pub fn build(self) -> IpSet {
        let mut set = IpSet::empty();
        for (index, mut intervals) in self.intervals.into_iter().enumerate() {
            intervals.sort_unstable();
            let out = &mut set.intervals[index];
            out.reserve(intervals.len());
            for interval in intervals {
                push_merging(out, interval);
            }
        }
        set
    }
}

impl FromIterator<IpAddr> for IpSet {
    fn from_iter<I: IntoIterator<Item = IpAddr>>(addresses: I) -> Self {
        let mut builder = IpSetBuilder::default();
        for address in addresses {
            builder.add_address(address);
        }
        builder.build()
    }
}

/// Splits the addresses covered by `sets` into parts by membership: each
/// part is the set of addresses that lie in exactly the sets listed with it
/// (indices into `sets`, ascending). Parts are disjoint, each membership
/// appears once, and addresses in no set are left out. One sweep over the
/// sorted interval ends: O(n log n + parts × sets).
pub fn overlay(sets: &[&IpSet]) -> Vec<(Vec<usize>, IpSet)> {
    let mut parts: std::collections::BTreeMap<Vec<usize>, IpSetBuilder> = Default::default();
    for family in [Family::V4, Family::V6] {
        // (address, +1 opens / -1 closes after it, set). Closes are keyed on
        // `last` and sorted after opens at the same address via the flag.
        let mut events: Vec<(u128, bool, usize)> = Vec::new();
        for (index, set) in sets.iter().enumerate() {
            for &(first, last) in &set.intervals[family.index()] {
                events.push((first, false, index));
                events.push((last, true, index));
            }
        }
        // At one address: opens (false) before closes (true), so an interval
        // of one address is open while its part is emitted.
        events.sort_unstable();
        let mut active = vec![0u32; sets.len()];
        let mut open = 0usize;
        let mut segment_start: Option<u128> = None;
        let mut index = 0;
        while index < events.len() {
            let (address, closing, _) = events[index];
            // Apply every event of this kind at this address together.
            let mut end = index;
            while end < events.len() && events[end].0 == address && events[end].1 == closing {
                end += 1;
            }
            let membership = |active: &[u32]| -> Vec<usize> {
                active
                    .iter()
                    .enumerate()
                    .filter(|(_, count)| **count > 0)
                    .map(|(set, _)| set)
                    .collect()
            };
            if !closing {
                // The segment before `address` ends at address - 1.
                if let Some(start) = segment_start
                    && open > 0
                    && start < address
                {
                    parts.entry(membership(&active)).or_default().intervals[family.index()]
                        .push((start, address - 1));
                }
                for &(_, _, set) in &events[index..end] {
                    active[set] += 1;
                    open += 1;
                }
                segment_start = Some(address);
            } else {
                // The segment through `address` ends here.
                if let Some(start) = segment_start
                    && open > 0
                    && start <= address
                {
                    parts.entry(membership(&active)).or_default().intervals[family.index()]
                        .push((start, address));
                }
                for &(_, _, set) in &events[index..end] {
                    active[set] -= 1;
                    open -= 1;
                }
                segment_start = address.checked_add(1);
            }
            index = end;
        }
    }
    parts
        .into_iter()
        .map(|(membership, builder)| (membership, builder.build()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        Cidr::parse(text).unwrap().cidr
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn except_blocks_are_subtracted() {
        let set = IpSet::from_block(cidr("10.0.0.0/8"), &[cidr("10.10.0.0/16")]);
        assert!(set.contains(ip("10.9.255.255")));
        assert!(!set.contains(ip("10.10.0.1")));
        assert!(set.contains(ip("10.11.0.0")));
        assert!(!set.contains(ip("11.0.0.0")));
        assert!(!set.contains(ip("::1")));
        assert_eq!(
            set.to_string(),
            "10.0.0.0/13, 10.8.0.0/15, 10.11.0.0/16, 10.12.0.0/14, 10.16.0.0/12, 10.32.0.0/11, 10.64.0.0/10, 10.128.0.0/9"
        );
    }

    #[test]
    fn whole_address_spaces_work_without_overflow() {
        let v4 = IpSet::from_cidr(cidr("0.0.0.0/0"));
        assert!(v4.contains(ip("255.255.255.255")));
        assert_eq!(v4.to_string(), "0.0.0.0/0");
        let v6 = IpSet::from_block(cidr("::/0"), &[cidr("ffff::/16")]);
        assert!(v6.contains(ip("fe80::1")));
        assert!(!v6.contains(ip("ffff::1")));
        assert_eq!(
            v6.to_string(),
            "::/1, 8000::/2, c000::/3, e000::/4, f000::/5, f800::/6, fc00::/7, fe00::/8, ff00::/9, ff80::/10, ffc0::/11, ffe0::/12, fff0::/13, fff8::/14, fffc::/15, fffe::/16"
        );
        let mut all = IpSet::everything();
        all.union_with(&v6);
        assert_eq!(all, IpSet::everything());
    }

    #[test]
    fn legacy_spellings_are_accepted_with_warnings() {
        let parsed = Cidr::parse("10.0.1.1/4").unwrap();
        assert_eq!(parsed.cidr.to_string(), "0.0.0.0/4");
        assert_eq!(parsed.warnings.len(), 1);
        let parsed = Cidr::parse("010.0.0.0/8").unwrap();
        assert_eq!(parsed.cidr.to_string(), "10.0.0.0/8");
        assert_eq!(parsed.warnings.len(), 1);
        assert!(Cidr::parse("10.0.0.0/8").unwrap().warnings.is_empty());
    }

    #[test]
    fn malformed_cidrs_are_errors() {
        for bad in [
            "A",
            "10.0.0.0",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/-1",
            "300.0.0.0/8",
            "10.0.0.0/x",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidr_containment() {
        assert!(cidr("10.0.0.0/8").contains(ip("10.1.2.3")));
        assert!(!cidr("10.0.0.0/8").contains(ip("::a00:1")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
        assert!(cidr("0.0.0.0/0").contains(ip("1.2.3.4")));
    }

    #[test]
    fn adjacent_excepts_leave_nothing() {
        let set = IpSet::from_block(
            cidr("10.0.0.0/8"),
            &[cidr("10.0.0.0/9"), cidr("10.128.0.0/9")],
        );
        assert!(set.is_empty());
    }

    mod against_brute_force {
        //! The interval algorithms against a membership table over a small
        //! address range, including both ends of each family's space.
        use super::super::*;
        use proptest::prelude::*;

        /// Addresses 0..48 of each family and the top 16 of each: enough
        /// room for overlaps, adjacency and the overflow edges.
        fn universe() -> Vec<IpAddr> {
            let mut addresses = Vec::new();
            for family in [Family::V4, Family::V6] {
                let top = match family {
                    Family::V4 => u128::from(u32::MAX),
                    Family::V6 => u128::MAX,
                };
                addresses.extend((0..48).map(|n| from_number(family, n)));
                addresses.extend((0..16).map(|n| from_number(family, top - 15 + n)));
            }
            addresses
        }

        fn interval() -> impl Strategy<Value = (IpAddr, IpAddr)> {
            let universe = universe();
            (0..universe.len(), 0..6usize).prop_map(move |(start, length)| {
                let first = universe[start];
                let end = (start + length).min(universe.len() - 1);
                // Stay within the family and the contiguous run.
                let last = universe[start..=end]
                    .iter()
                    .copied()
                    .take_while(|a| {
                        Family::of(*a) == Family::of(first)
                            && to_number(*a) - to_number(first)
                                == (universe.iter().position(|u| u == a).unwrap() - start) as u128
                    })
                    .last()
                    .unwrap_or(first);
                (first, last)
            })
        }

        fn set() -> impl Strategy<Value = IpSet> {
            proptest::collection::vec(interval(), 0..5).prop_map(|ranges| {
                let mut set = IpSet::empty();
                for (first, last) in ranges {
                    // The slow path: each range on its own, normalised by union.
                    let single = IpSet::from_range(first, last);
                    set = IpSet::union_all([&set, &single]);
                }
                set
            })
        }

        fn members(set: &IpSet) -> Vec<bool> {
            universe().into_iter().map(|a| set.contains(a)).collect()
        }

        fn normalised(set: &IpSet) -> bool {
            set.intervals.iter().all(|intervals| {
                intervals.iter().all(|(first, last)| first <= last)
                    && intervals
                        .windows(2)
                        .all(|w| w[0].1 < w[1].0 && w[0].1 + 1 < w[1].0)
            })
        }

        proptest! {
            #[test]
            fn set_operations(a in set(), b in set()) {
                let (ma, mb) = (members(&a), members(&b));
                let mut union = a.clone();
                union.union_with(&b);
                let difference = a.difference(&b);
                let intersection = a.intersection(&b);
                for set in [&union, &difference, &intersection] {
                    prop_assert!(normalised(set), "{:?}", set);
                }
                let (mu, md, mi) = (members(&union), members(&difference), members(&intersection));
                for k in 0..ma.len() {
                    prop_assert_eq!(mu[k], ma[k] || mb[k]);
                    prop_assert_eq!(md[k], ma[k] && !mb[k]);
                    prop_assert_eq!(mi[k], ma[k] && mb[k]);
                }
                prop_assert_eq!(a.intersects(&b), mi.iter().any(|m| *m));
                for (first, last) in b.ranges(Family::V4).chain(b.ranges(Family::V6)) {
                    let inside = universe()
                        .into_iter()
                        .enumerate()
                        .filter(|(_, x)| Family::of(*x) == Family::of(first) && *x >= first && *x <= last)
                        .all(|(k, _)| ma[k]);
                    // Ranges of `b` lie in the sampled universe, so the table decides.
                    prop_assert_eq!(a.contains_range(first, last), inside);
                }
                prop_assert_eq!(IpSet::union_all([&a, &b]), union);
            }

            #[test]
            fn overlay_parts_are_the_membership_classes(sets in proptest::collection::vec(set(), 0..5)) {
                let references: Vec<&IpSet> = sets.iter().collect();
                let parts = overlay(&references);
                let tables: Vec<Vec<bool>> = sets.iter().map(members).collect();
                let mut seen = std::collections::BTreeSet::new();
                for (membership, part) in &parts {
                    prop_assert!(!membership.is_empty() && !part.is_empty());
                    prop_assert!(seen.insert(membership.clone()), "membership listed twice");
                    prop_assert!(normalised(part));
                }
                for (k, address) in universe().into_iter().enumerate() {
                    let expected: Vec<usize> =
                        (0..sets.len()).filter(|&s| tables[s][k]).collect();
                    let found: Vec<&Vec<usize>> = parts
                        .iter()
                        .filter(|(_, part)| part.contains(address))
                        .map(|(membership, _)| membership)
                        .collect();
                    if expected.is_empty() {
                        prop_assert!(found.is_empty(), "{} in {:?}", address, found);
                    } else {
                        prop_assert_eq!(found, vec![&expected], "{}", address);
                    }
                }
            }
        }
    }
}
