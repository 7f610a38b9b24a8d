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
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

    /// Adds every address of `other`.
    pub fn union_with(&mut self, other: &IpSet) {
        for family in [Family::V4, Family::V6] {
            let intervals = &mut self.intervals[family.index()];
            intervals.extend_from_slice(&other.intervals[family.index()]);
            intervals.sort_unstable();
            let mut merged: Vec<(u128, u128)> = Vec::with_capacity(intervals.len());
            for &(first, last) in intervals.iter() {
                match merged.last_mut() {
                    Some(previous) if previous.1 == u128::MAX || first <= previous.1 + 1 => {
                        previous.1 = previous.1.max(last);
                    }
                    _ => merged.push((first, last)),
                }
            }
            *intervals = merged;
        }
    }

    /// The addresses of `self` not in `other`.
    pub fn difference(&self, other: &IpSet) -> IpSet {
        let mut result = IpSet::empty();
        for family in [Family::V4, Family::V6] {
            let removed = &other.intervals[family.index()];
            let out = &mut result.intervals[family.index()];
            for &(first, last) in &self.intervals[family.index()] {
                let mut start = Some(first);
                for &(cut_first, cut_last) in removed {
                    let Some(current) = start else { break };
                    if cut_last < current || cut_first > last {
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

    /// The addresses in both sets.
    pub fn intersection(&self, other: &IpSet) -> IpSet {
        self.difference(&self.difference(other))
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
}
