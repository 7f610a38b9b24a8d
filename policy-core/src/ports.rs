//! Protocols and port sets.
//!
//! NetworkPolicy filters TCP, UDP and SCTP by destination port. A [`PortSet`]
//! holds, per protocol, a sorted list of disjoint inclusive port ranges, so
//! `port: 1, endPort: 65535` and "no ports" compare equal when they allow the
//! same traffic.

use std::fmt;
use std::str::FromStr;

/// A transport protocol a NetworkPolicy can name.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Protocol {
    /// TCP, the default when a port omits `protocol` (networking/v1
    /// `NetworkPolicyPort.protocol`).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP. Never treated as TCP, even where a plugin lacks SCTP support
    /// (upstream e2e "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP'").
    Sctp,
}

impl Protocol {
    /// All three, in display order.
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

    /// The Kubernetes spelling: `TCP`, `UDP`, `SCTP`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Parses the Kubernetes spelling exactly (the API is case-sensitive).
    pub fn from_kubernetes(text: &str) -> Option<Protocol> {
        match text {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = String;

    /// Case-insensitive, for command lines.
    fn from_str(text: &str) -> Result<Self, String> {
        Protocol::from_kubernetes(&text.to_ascii_uppercase())
            .ok_or_else(|| format!("unknown protocol {text:?}: use TCP, UDP or SCTP"))
    }
}

/// An inclusive range of ports.
pub type PortRange = (u16, u16);

const FULL: PortRange = (1, 65535);

/// A set of (protocol, port) pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortSet {
    ranges: [Vec<PortRange>; 3],
}

impl PortSet {
    /// No traffic.
    pub fn empty() -> Self {
        PortSet::default()
    }

    /// Every port of every protocol.
    pub fn all() -> Self {
        PortSet {
            ranges: [vec![FULL], vec![FULL], vec![FULL]],
        }
    }

    /// Every port of one protocol.
    pub fn protocol(protocol: Protocol) -> Self {
        PortSet::range(protocol, 1, 65535)
    }

    /// One port.
    pub fn single(protocol: Protocol, port: u16) -> Self {
        PortSet::range(protocol, port, port)
    }

    /// The ports `first..=last` of one protocol (empty if `first > last`).
    pub fn range(protocol: Protocol, first: u16, last: u16) -> Self {
        let mut set = PortSet::empty();
        set.insert(protocol, first, last);
        set
    }

    /// Adds `first..=last` of `protocol`. Port 0 is not a port and is ignored.
    pub fn insert(&mut self, protocol: Protocol, first: u16, last: u16) {
        let first = first.max(1);
        if first > last {
            return;
        }
        let ranges = &mut self.ranges[protocol.index()];
        ranges.push((first, last));
        normalize(ranges);
    }

    /// True if no traffic is in the set.
    pub fn is_empty(&self) -> bool {
        self.ranges.iter().all(Vec::is_empty)
    }

    /// True if every port of every protocol is in the set.
    pub fn is_all(&self) -> bool {
        self.ranges.iter().all(|ranges| ranges.as_slice() == [FULL])
    }

    /// True if `port` of `protocol` is in the set.
    pub fn contains(&self, protocol: Protocol, port: u16) -> bool {
        let ranges = &self.ranges[protocol.index()];
        // The last range starting at or before `port` is the only candidate.
        let position = ranges.partition_point(|&(first, _)| first <= port);
        position > 0 && ranges[position - 1].1 >= port
    }

    /// The ranges of one protocol, sorted and disjoint.
    pub fn ranges(&self, protocol: Protocol) -> &[PortRange] {
        &self.ranges[protocol.index()]
    }

    /// Adds every element of `other`.
    pub fn union_with(&mut self, other: &PortSet) {
        for protocol in Protocol::ALL {
            let other_ranges = &other.ranges[protocol.index()];
            if other_ranges.is_empty() {
                continue;
            }
            let ranges = &mut self.ranges[protocol.index()];
            ranges.extend_from_slice(other_ranges);
            normalize(ranges);
        }
    }

    /// The elements in both sets.
    pub fn intersection(&self, other: &PortSet) -> PortSet {
        let mut result = PortSet::empty();
        for protocol in Protocol::ALL {
            let (left, right) = (
                &self.ranges[protocol.index()],
                &other.ranges[protocol.index()],
            );
            let (mut i, mut j) = (0, 0);
            let out = &mut result.ranges[protocol.index()];
            while i < left.len() && j < right.len() {
                let first = left[i].0.max(right[j].0);
                let last = left[i].1.min(right[j].1);
                if first <= last {
                    out.push((first, last));
                }
                if left[i].1 < right[j].1 {
                    i += 1;
                } else {
                    j += 1;
                }
            }
        }
        result
    }

    /// The elements of `self` not in `other`.
    pub fn difference(&self, other: &PortSet) -> PortSet {
        let mut result = PortSet::empty();
        for protocol in Protocol::ALL {
            let out = &mut result.ranges[protocol.index()];
            let removed = &other.ranges[protocol.index()];
            for &(first, last) in &self.ranges[protocol.index()] {
                let mut start = u32::from(first);
                let end = u32::from(last);
                for &(cut_first, cut_last) in removed {
                    let (cut_first, cut_last) = (u32::from(cut_first), u32::from(cut_last));
                    if cut_last < start || cut_first > end {
                        continue;
                    }
                    if cut_first > start {
                        out.push((start as u16, (cut_first - 1) as u16));
                    }
                    start = cut_last + 1;
                    if start > end {
                        break;
                    }
                }
                if start <= end {
                    out.push((start as u16, end as u16));
                }
            }
        }
        result
    }

    /// True if every element of `self` is in `other`.
    pub fn is_subset(&self, other: &PortSet) -> bool {
        self.difference(other).is_empty()
    }
}

fn normalize(ranges: &mut Vec<PortRange>) {
    ranges.sort_unstable();
    let mut merged: Vec<PortRange> = Vec::with_capacity(ranges.len());
    for &(first, last) in ranges.iter() {
        match merged.last_mut() {
            Some(previous) if u32::from(first) <= u32::from(previous.1) + 1 => {
                previous.1 = previous.1.max(last);
            }
            _ => merged.push((first, last)),
        }
    }
    *ranges = merged;
}

impl fmt::Display for PortSet {
    /// `all`, `none`, or `TCP 80,443,8000-8080; UDP 53` (`TCP all` for a whole protocol).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("all");
        }
        if self.is_empty() {
            return f.write_str("none");
        }
        let mut first_protocol = true;
        for protocol in Protocol::ALL {
            let ranges = &self.ranges[protocol.index()];
            if ranges.is_empty() {
                continue;
            }
            if !first_protocol {
                f.write_str("; ")?;
            }
            first_protocol = false;
            write!(f, "{protocol} ")?;
            if ranges.as_slice() == [FULL] {
                f.write_str("all")?;
                continue;
            }
            for (index, &(first, last)) in ranges.iter().enumerate() {
                if index > 0 {
                    f.write_str(",")?;
                }
                if first == last {
                    write!(f, "{first}")?;
                } else {
                    write!(f, "{first}-{last}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_and_overlapping_ranges_merge() {
        let mut set = PortSet::range(Protocol::Tcp, 80, 80);
        set.insert(Protocol::Tcp, 81, 90);
        set.insert(Protocol::Tcp, 85, 100);
        set.insert(Protocol::Tcp, 443, 443);
        assert_eq!(set.ranges(Protocol::Tcp), &[(80, 100), (443, 443)]);
        assert_eq!(set.to_string(), "TCP 80-100,443");
    }

    #[test]
    fn contains_checks_protocol_and_port() {
        let set = PortSet::range(Protocol::Udp, 53, 53);
        assert!(set.contains(Protocol::Udp, 53));
        assert!(!set.contains(Protocol::Tcp, 53));
        assert!(!set.contains(Protocol::Udp, 54));
        assert!(!set.contains(Protocol::Udp, 52));
    }

    #[test]
    fn full_ranges_of_every_protocol_are_all() {
        let mut set = PortSet::empty();
        for protocol in Protocol::ALL {
            set.insert(protocol, 1, 65535);
        }
        assert!(set.is_all());
        assert_eq!(set.to_string(), "all");
        assert_eq!(PortSet::protocol(Protocol::Tcp).to_string(), "TCP all");
    }

    #[test]
    fn intersection_and_difference() {
        let mut a = PortSet::range(Protocol::Tcp, 1, 100);
        a.insert(Protocol::Udp, 53, 53);
        let b = PortSet::range(Protocol::Tcp, 50, 200);
        assert_eq!(a.intersection(&b).to_string(), "TCP 50-100");
        assert_eq!(a.difference(&b).to_string(), "TCP 1-49; UDP 53");
        assert_eq!(
            PortSet::all()
                .difference(&PortSet::single(Protocol::Tcp, 80))
                .to_string(),
            "TCP 1-79,81-65535; UDP all; SCTP all"
        );
        assert!(b.intersection(&a).is_subset(&a));
    }

    #[test]
    fn protocols_parse_case_insensitively_on_the_command_line() {
        assert_eq!("udp".parse::<Protocol>(), Ok(Protocol::Udp));
        assert!("icmp".parse::<Protocol>().is_err());
        assert_eq!(Protocol::from_kubernetes("tcp"), None);
    }
}
