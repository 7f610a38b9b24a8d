//! The ruleset in nft's own syntax, for `nft -f -` and for people.
//!
//! The file first creates the table (so that deleting it cannot fail), then
//! deletes it, then declares it whole: `nft -f` runs all of it as one
//! transaction, so loading replaces the table atomically and loading twice
//! gives the same state.

use std::fmt::Write as _;

use policy_core::Direction;
use policy_core::ipset::{Family, IpSet};
use policy_core::ports::Protocol;

use crate::ruleset::{ChainElements, FAMILY, Interval, NodeRuleset, SetKind, TABLE};

fn address_interval(first: std::net::IpAddr, last: std::net::IpAddr) -> String {
    Interval::of(first, last).to_string()
}

pub(crate) fn protocol_keyword(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

fn family_parts(family: Family) -> (&'static str, &'static str, &'static str) {
    // (address type, payload protocol, version suffix)
    match family {
        Family::V4 => ("ipv4_addr", "ip", "v4"),
        Family::V6 => ("ipv6_addr", "ip6", "v6"),
    }
}

/// Writes `elements = { ... }` lines, wrapped for readability, or nothing.
fn write_elements(out: &mut String, elements: &[String]) {
    if elements.is_empty() {
        return;
    }
    out.push_str("\t\telements = {");
    for (index, element) in elements.iter().enumerate() {
        out.push_str(if index == 0 { " " } else { ",\n\t\t\t     " });
        out.push_str(element);
    }
    out.push_str(" }\n");
}

fn address_elements(set: &IpSet, family: Family) -> Vec<String> {
    set.ranges(family)
        .map(|(first, last)| address_interval(first, last))
        .collect()
}

pub(crate) fn port_range(low: u16, high: u16) -> String {
    if low == high {
        low.to_string()
    } else {
        format!("{low}-{high}")
    }
}

/// The elements of one of a chain's sets, as nft text.
fn set_elements(elements: &ChainElements, kind: SetKind) -> Vec<String> {
    match kind {
        SetKind::AnyAddress => elements
            .any_addresses
            .iter()
            .map(ToString::to_string)
            .collect(),
        SetKind::PortAddress => elements
            .port_addresses
            .iter()
            .map(|(address, protocol, port)| {
                format!("{address} . {} . {port}", protocol_keyword(*protocol))
            })
            .collect(),
        SetKind::AnyRange => elements
            .any_ranges
            .iter()
            .map(|&(first, last)| address_interval(first, last))
            .collect(),
        SetKind::PortRange => elements
            .port_ranges
            .iter()
            .map(|&((first, last), protocol, (low, high))| {
                format!(
                    "{} . {} . {}",
                    address_interval(first, last),
                    protocol_keyword(protocol),
                    port_range(low, high)
                )
            })
            .collect(),
    }
}

/// The ruleset as an nft script.
pub fn render(ruleset: &NodeRuleset) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# netpol ruleset for node {}. Load with `nft -f`: it replaces table {FAMILY} {TABLE} atomically.",
        ruleset.node
    );
    let _ = writeln!(out, "table {FAMILY} {TABLE}");
    let _ = writeln!(out, "delete table {FAMILY} {TABLE}");
    let _ = writeln!(out, "table {FAMILY} {TABLE} {{");

    // Dispatch: local pod address → its class chain.
    for (direction, dispatch) in [
        (Direction::Ingress, &ruleset.ingress_dispatch),
        (Direction::Egress, &ruleset.egress_dispatch),
    ] {
        for family in [Family::V4, Family::V6] {
            let (address_type, _, suffix) = family_parts(family);
            let _ = writeln!(out, "\tmap {}_{suffix} {{", direction.field());
            let _ = writeln!(out, "\t\ttype {address_type} : verdict");
            let elements: Vec<String> = dispatch
                .iter()
                .filter(|(ip, _)| ip.is_ipv4() == (family == Family::V4))
                .map(|(ip, chain)| format!("{ip} : jump {chain}"))
                .collect();
            write_elements(&mut out, &elements);
            out.push_str("\t}\n\n");
        }
    }
    for family in [Family::V4, Family::V6] {
        let (address_type, _, suffix) = family_parts(family);
        let _ = writeln!(out, "\tset local_node_{suffix} {{");
        let _ = writeln!(out, "\t\ttype {address_type}");
        out.push_str("\t\tflags interval\n");
        write_elements(
            &mut out,
            &address_elements(&ruleset.local_node_addresses, family),
        );
        out.push_str("\t}\n\n");
    }

    for chain in &ruleset.chains {
        let _ = writeln!(
            out,
            "\t# {} of {} over IPv{}; isolated by {}",
            chain.direction.field(),
            chain.members.join(", "),
            if chain.family == Family::V4 { 4 } else { 6 },
            chain.policies.join(", ")
        );
        let (address_type, payload, _) = family_parts(chain.family);
        let elements = chain.elements(&ruleset.pod_addresses);
        let peer = match chain.direction {
            Direction::Ingress => "saddr",
            Direction::Egress => "daddr",
        };
        let mut lookups = Vec::new();
        // All four sets, empty or not: a fixed number of lookups per
        // packet, and a peer that appears or goes is an element update, not
        // a change of structure (see `diff`).
        for kind in SetKind::ALL {
            let name = chain.set_name(kind);
            let _ = writeln!(out, "\tset {name} {{");
            if kind.has_ports() {
                let _ = writeln!(out, "\t\ttype {address_type} . inet_proto . inet_service");
                lookups.push(format!(
                    "{payload} {peer} . meta l4proto . th dport @{name} return"
                ));
            } else {
                let _ = writeln!(out, "\t\ttype {address_type}");
                lookups.push(format!("{payload} {peer} @{name} return"));
            }
            if kind.is_interval() {
                out.push_str("\t\tflags interval\n");
            }
            write_elements(&mut out, &set_elements(&elements, kind));
            out.push_str("\t}\n\n");
        }
        let _ = writeln!(out, "\tchain {} {{", chain.name);
        for lookup in lookups {
            let _ = writeln!(out, "\t\t{lookup}");
        }
        out.push_str("\t\tdrop\n\t}\n\n");
    }

    // Traffic between pods, and between pods and outside addresses, crosses
    // the node in forward (after kube-proxy's DNAT in prerouting). Traffic
    // from a local pod to the node itself arrives in input.
    out.push_str(
        "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n",
    );
    out.push_str("\t\tct state established,related accept\n");
    out.push_str("\t\tip saddr vmap @egress_v4\n\t\tip6 saddr vmap @egress_v6\n");
    out.push_str("\t\tip daddr vmap @ingress_v4\n\t\tip6 daddr vmap @ingress_v6\n\t}\n\n");
    out.push_str("\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n");
    out.push_str("\t\tct state established,related accept\n");
    out.push_str("\t\tip daddr @local_node_v4 accept\n\t\tip6 daddr @local_node_v6 accept\n");
    out.push_str("\t\tip saddr vmap @egress_v4\n\t\tip6 saddr vmap @egress_v6\n\t}\n");
    out.push_str("}\n");
    out
}
