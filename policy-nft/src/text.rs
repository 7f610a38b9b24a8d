//! The ruleset in nft's own syntax, for `nft -f -` and for people.
//!
//! The file first creates the table (so that deleting it cannot fail), then
//! deletes it, then declares it whole: `nft -f` runs all of it as one
//! transaction, so loading replaces the table atomically and loading twice
//! gives the same state.

use std::fmt::Write as _;
use std::net::IpAddr;

use policy_core::ipset::{Family, IpSet};
use policy_core::ports::Protocol;

use crate::ruleset::{FAMILY, Interval, NodeRuleset, PeerGroup, SetKind, Side, TABLE};

fn address_interval(first: IpAddr, last: IpAddr) -> String {
    Interval::of(first, last).to_string()
}

pub(crate) fn protocol_keyword(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

pub(crate) fn address_type(family: Family) -> &'static str {
    match family {
        Family::V4 => "ipv4_addr",
        Family::V6 => "ipv6_addr",
    }
}

/// Writes `elements = { ... }` lines, wrapped for readability, or nothing.
fn write_elements(out: &mut String, elements: impl IntoIterator<Item = String>) {
    let mut first = true;
    for element in elements {
        out.push_str(if first {
            "\t\telements = { "
        } else {
            ",\n\t\t\t     "
        });
        first = false;
        out.push_str(&element);
    }
    if !first {
        out.push_str(" }\n");
    }
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

/// The elements of one of a group's sets, as nft text.
pub(crate) fn group_elements(group: &PeerGroup, kind: SetKind) -> Vec<String> {
    match kind {
        SetKind::Any => group.any.iter().map(ToString::to_string).collect(),
        SetKind::Port => group
            .ports
            .iter()
            .map(|(address, protocol, port)| {
                format!("{address} . {} . {port}", protocol_keyword(*protocol))
            })
            .collect(),
        SetKind::PortRange => group
            .port_ranges
            .iter()
            .map(|&(address, protocol, low, high)| {
                format!(
                    "{address} . {} . {}",
                    protocol_keyword(protocol),
                    port_range(low, high)
                )
            })
            .collect(),
    }
}

/// The rule of a group chain that looks up its set of `kind`.
pub(crate) fn group_lookup(side: &Side, group: &PeerGroup, kind: SetKind) -> String {
    let local = format!("{} {}", side.payload(), side.local_field());
    let name = group.set_name(kind);
    if kind.has_ports() {
        format!("{local} . meta l4proto . th dport @{name} return")
    } else {
        format!("{local} @{name} return")
    }
}

fn write_side(out: &mut String, side: &Side) {
    let address_type = address_type(side.family);
    let count =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let _ = writeln!(
        out,
        "\t# {} over IPv{}: {}, {}, {}, {}",
        side.direction.field(),
        if side.family == Family::V4 { 4 } else { 6 },
        count(
            side.isolated.iter().map(|c| c.addresses.len()).sum(),
            "isolated local address",
            "isolated local addresses"
        ),
        count(side.peer_addresses.len(), "peer address", "peer addresses"),
        count(side.peer_ranges.len(), "peer range", "peer ranges"),
        count(side.groups.len(), "peer group", "peer groups")
    );
    for class in &side.isolated {
        let _ = writeln!(
            out,
            "\t#   {}: isolated by {}",
            class.members.join(", "),
            class.policies.join(", ")
        );
    }
    let _ = writeln!(out, "\tset {} {{", side.pods_set());
    let _ = writeln!(out, "\t\ttype {address_type}");
    write_elements(
        out,
        side.isolated_addresses().iter().map(ToString::to_string),
    );
    out.push_str("\t}\n\n");
    let _ = writeln!(out, "\tmap {} {{", side.peers_map());
    let _ = writeln!(out, "\t\ttype {address_type} : verdict");
    write_elements(
        out,
        side.peer_addresses
            .iter()
            .map(|(address, group)| format!("{address} : goto {}", side.groups[*group].name)),
    );
    out.push_str("\t}\n\n");
    let _ = writeln!(out, "\tmap {} {{", side.peer_ranges_map());
    let _ = writeln!(out, "\t\ttype {address_type} : verdict");
    out.push_str("\t\tflags interval\n");
    write_elements(
        out,
        side.peer_ranges.iter().map(|(first, last, group)| {
            format!(
                "{} : goto {}",
                address_interval(*first, *last),
                side.groups[*group].name
            )
        }),
    );
    out.push_str("\t}\n\n");
    // Every group chain has all three sets, empty or not: a fixed number of
    // lookups per packet, and a set filling up or emptying is an element
    // update, not a change of structure (see `diff`).
    for group in &side.groups {
        for kind in SetKind::ALL {
            let _ = writeln!(out, "\tset {} {{", group.set_name(kind));
            if kind.has_ports() {
                let _ = writeln!(out, "\t\ttype {address_type} . inet_proto . inet_service");
            } else {
                let _ = writeln!(out, "\t\ttype {address_type}");
            }
            if kind.is_interval() {
                out.push_str("\t\tflags interval\n");
            }
            write_elements(out, group_elements(group, kind));
            out.push_str("\t}\n\n");
        }
        let _ = writeln!(out, "\tchain {} {{", group.name);
        for kind in SetKind::ALL {
            let _ = writeln!(out, "\t\t{}", group_lookup(side, group, kind));
        }
        out.push_str("\t\tdrop\n\t}\n\n");
    }
    let peer = format!("{} {}", side.payload(), side.peer_field());
    let _ = writeln!(out, "\tchain {} {{", side.chain_name());
    let _ = writeln!(out, "\t\t{peer} vmap @{}", side.peers_map());
    let _ = writeln!(out, "\t\t{peer} vmap @{}", side.peer_ranges_map());
    let _ = writeln!(out, "\t\tgoto {}", side.groups[0].name);
    out.push_str("\t}\n\n");
}

/// The base chain rule that sends the packets of the side's isolated local
/// pods to the side's chain.
pub(crate) fn dispatch_rule(side: &Side) -> String {
    format!(
        "{} {} @{} jump {}",
        side.payload(),
        side.local_field(),
        side.pods_set(),
        side.chain_name()
    )
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
    for family in [Family::V4, Family::V6] {
        let suffix = crate::ruleset::family_suffix(family);
        let _ = writeln!(out, "\tset local_node_{suffix} {{");
        let _ = writeln!(out, "\t\ttype {}", address_type(family));
        out.push_str("\t\tflags interval\n");
        write_elements(
            &mut out,
            address_elements(&ruleset.local_node_addresses, family),
        );
        out.push_str("\t}\n\n");
    }
    for side in &ruleset.sides {
        write_side(&mut out, side);
    }
    // Traffic between pods, and between pods and outside addresses, crosses
    // the node in forward (after kube-proxy's DNAT in prerouting). Traffic
    // from a local pod to the node itself arrives in input. Egress first:
    // a side's chain returns when it allows, and drops otherwise.
    let egress = ruleset
        .sides
        .iter()
        .filter(|side| side.direction == policy_core::Direction::Egress);
    let ingress = ruleset
        .sides
        .iter()
        .filter(|side| side.direction == policy_core::Direction::Ingress);
    out.push_str(
        "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n",
    );
    out.push_str("\t\tct state established,related accept\n");
    for side in egress.clone().chain(ingress) {
        let _ = writeln!(out, "\t\t{}", dispatch_rule(side));
    }
    out.push_str("\t}\n\n");
    out.push_str("\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n");
    out.push_str("\t\tct state established,related accept\n");
    // The egress chains answer the node's own addresses too: NetworkPolicy
    // always allows them, an admin tier may not (docs/SEMANTICS.md §18.9).
    for side in egress {
        let _ = writeln!(out, "\t\t{}", dispatch_rule(side));
    }
    out.push_str("\t\tip daddr @local_node_v4 accept\n\t\tip6 daddr @local_node_v6 accept\n");
    out.push_str("\t}\n");
    out.push_str("}\n");
    out
}
