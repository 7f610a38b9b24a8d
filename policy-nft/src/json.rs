//! The ruleset as a libnftables JSON document, for `nft -j -f -`.
//!
//! Built from the typed objects of the `nftables` crate, except the verdict
//! maps: the crate's set types have no `verdict`, so those two commands (the
//! map declaration and its elements) are raw JSON. The commands run as one
//! transaction: add the table, delete it, add it whole.

use std::borrow::Cow;
use std::collections::HashSet;

use nftables::expr::{
    CT, Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, Range,
};
use nftables::schema::{
    Chain, NfCmd, NfListObject, NfObject, Rule, Set, SetFlag, SetType, SetTypeValue, Table,
};
use nftables::stmt::{Match, Operator, Statement, VerdictMap};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use policy_core::Direction;
use policy_core::ipset::{Family, IpSet};
use policy_core::ports::Protocol;
use serde::Serialize;
use serde_json::{Value, json};

use crate::ruleset::{ChainElements, FAMILY, Interval, NodeRuleset, SetKind, TABLE};

fn family_names(family: Family) -> (SetType, &'static str, &'static str) {
    match family {
        Family::V4 => (SetType::Ipv4Addr, "ip", "v4"),
        Family::V6 => (SetType::Ipv6Addr, "ip6", "v6"),
    }
}

pub(crate) fn address_expression(
    first: std::net::IpAddr,
    last: std::net::IpAddr,
) -> Expression<'static> {
    let address = |ip: std::net::IpAddr| Expression::String(Cow::Owned(ip.to_string()));
    match Interval::of(first, last) {
        Interval::Single(ip) => address(ip),
        Interval::Prefix(cidr) => Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(address(cidr.address())),
            len: u32::from(cidr.prefix()),
        })),
        Interval::Range(first, last) => Expression::Range(Box::new(Range {
            range: [address(first), address(last)],
        })),
    }
}

fn address_elements(set: &IpSet, family: Family) -> Vec<Expression<'static>> {
    set.ranges(family)
        .map(|(first, last)| address_expression(first, last))
        .collect()
}

pub(crate) fn protocol_keyword(protocol: Protocol) -> Expression<'static> {
    Expression::String(Cow::Borrowed(crate::text::protocol_keyword(protocol)))
}

pub(crate) fn port_expression(low: u16, high: u16) -> Expression<'static> {
    if low == high {
        Expression::Number(u32::from(low))
    } else {
        Expression::Range(Box::new(Range {
            range: [
                Expression::Number(u32::from(low)),
                Expression::Number(u32::from(high)),
            ],
        }))
    }
}

/// The elements of one of a chain's sets, as JSON expressions.
fn set_elements(elements: &ChainElements, kind: SetKind) -> Vec<Expression<'static>> {
    let concat =
        |parts: Vec<Expression<'static>>| Expression::Named(NamedExpression::Concat(parts));
    match kind {
        SetKind::AnyAddress => elements
            .any_addresses
            .iter()
            .map(|&address| address_expression(address, address))
            .collect(),
        SetKind::PortAddress => elements
            .port_addresses
            .iter()
            .map(|&(address, protocol, port)| {
                concat(vec![
                    address_expression(address, address),
                    protocol_keyword(protocol),
                    port_expression(port, port),
                ])
            })
            .collect(),
        SetKind::AnyRange => elements
            .any_ranges
            .iter()
            .map(|&(first, last)| address_expression(first, last))
            .collect(),
        SetKind::PortRange => elements
            .port_ranges
            .iter()
            .map(|&((first, last), protocol, (low, high))| {
                concat(vec![
                    address_expression(first, last),
                    protocol_keyword(protocol),
                    port_expression(low, high),
                ])
            })
            .collect(),
    }
}

fn add(object: NfListObject<'static>) -> NfObject<'static> {
    NfObject::CmdObject(NfCmd::Add(object))
}

fn set(
    name: String,
    set_type: SetTypeValue<'static>,
    interval: bool,
    elements: Vec<Expression<'static>>,
) -> NfObject<'static> {
    add(NfListObject::Set(Box::new(Set {
        family: NfFamily::INet,
        table: Cow::Borrowed(TABLE),
        name: Cow::Owned(name),
        set_type,
        flags: interval.then(|| HashSet::from([SetFlag::Interval])),
        elem: (!elements.is_empty()).then(|| Cow::Owned(elements)),
        ..Set::default()
    })))
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed(field),
        },
    )))
}

fn set_reference(name: &str) -> Expression<'static> {
    Expression::String(Cow::Owned(format!("@{name}")))
}

fn rule(chain: &str, statements: Vec<Statement<'static>>) -> NfObject<'static> {
    add(NfListObject::Rule(Rule {
        family: NfFamily::INet,
        table: Cow::Borrowed(TABLE),
        chain: Cow::Owned(chain.to_string()),
        expr: Cow::Owned(statements),
        ..Rule::default()
    }))
}

fn matches(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::EQ,
    })
}

fn vmap(protocol: &'static str, field: &'static str, map: &str) -> Statement<'static> {
    Statement::VerdictMap(VerdictMap {
        key: payload(protocol, field),
        data: set_reference(map),
    })
}

fn base_chain(name: &'static str, hook: NfHook) -> NfObject<'static> {
    add(NfListObject::Chain(Chain {
        family: NfFamily::INet,
        table: Cow::Borrowed(TABLE),
        name: Cow::Borrowed(name),
        _type: Some(NfChainType::Filter),
        hook: Some(hook),
        prio: Some(0),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    }))
}

fn established() -> Statement<'static> {
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::CT(CT {
            key: Cow::Borrowed("state"),
            family: None,
            dir: None,
        })),
        right: Expression::List(vec![
            Expression::String(Cow::Borrowed("established")),
            Expression::String(Cow::Borrowed("related")),
        ]),
        op: Operator::IN,
    })
}

/// One command of the document: a typed object, or raw JSON where the
/// crate has no type.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum Command {
    Typed(NfObject<'static>),
    Raw(Value),
}

/// The document, serialised straight to text without an intermediate
/// `Value` tree (which would cost an allocation per JSON object and key).
#[derive(Serialize)]
pub(crate) struct Document {
    pub(crate) nftables: Vec<Command>,
}

/// The ruleset as a libnftables JSON document.
pub fn render(ruleset: &NodeRuleset) -> Value {
    serde_json::to_value(document(ruleset)).expect("nftables objects serialise")
}

/// The ruleset as libnftables JSON text, ready for `nft -j -f -`. Same
/// document as [`render`], several times faster for large rulesets.
pub fn render_string(ruleset: &NodeRuleset) -> String {
    serde_json::to_string(&document(ruleset)).expect("nftables objects serialise")
}

fn document(ruleset: &NodeRuleset) -> Document {
    let table = Table {
        family: NfFamily::INet,
        name: Cow::Borrowed(TABLE),
        handle: None,
    };
    let typed: Vec<NfObject<'static>> = vec![
        add(NfListObject::Table(table.clone())),
        NfObject::CmdObject(NfCmd::Delete(NfListObject::Table(table.clone()))),
        add(NfListObject::Table(table)),
    ];
    // Verdict maps: raw JSON (see the module documentation).
    let mut raw_maps: Vec<Value> = Vec::new();
    let mut raw_map_elements: Vec<Value> = Vec::new();
    for (direction, dispatch) in [
        (Direction::Ingress, &ruleset.ingress_dispatch),
        (Direction::Egress, &ruleset.egress_dispatch),
    ] {
        for family in [Family::V4, Family::V6] {
            let (set_type, _, suffix) = family_names(family);
            let name = format!("{}_{suffix}", direction.field());
            let address_type = serde_json::to_value(set_type).expect("set types serialise");
            raw_maps.push(json!({"add": {"map": {
                "family": FAMILY, "table": TABLE, "name": name, "type": address_type, "map": "verdict",
            }}}));
            let elements: Vec<Value> = dispatch
                .iter()
                .filter(|(ip, _)| ip.is_ipv4() == (family == Family::V4))
                .map(|(ip, chain)| json!([ip.to_string(), {"jump": {"target": chain}}]))
                .collect();
            if !elements.is_empty() {
                raw_map_elements.push(json!({"add": {"element": {
                    "family": FAMILY, "table": TABLE, "name": name, "elem": elements,
                }}}));
            }
        }
    }
    // Chains are declared before anything that refers to them (rules, and
    // the verdict map elements that jump to them); libnftables JSON resolves
    // references in order.
    let mut chains: Vec<NfObject<'static>> = Vec::new();
    let mut objects: Vec<NfObject<'static>> = Vec::new();
    for family in [Family::V4, Family::V6] {
        let (set_type, _, suffix) = family_names(family);
        objects.push(set(
            format!("local_node_{suffix}"),
            SetTypeValue::Single(set_type),
            true,
            address_elements(&ruleset.local_node_addresses, family),
        ));
    }
    for chain in &ruleset.chains {
        let peer_field = match chain.direction {
            Direction::Ingress => "saddr",
            Direction::Egress => "daddr",
        };
        let mut statements_by_rule: Vec<Vec<Statement<'static>>> = Vec::new();
        let (set_type, protocol, _) = family_names(chain.family);
        let elements = chain.elements(&ruleset.pod_addresses);
        // All four sets, empty or not: a fixed number of lookups per
        // packet, and a peer that appears or goes is an element update, not
        // a change of structure (see `diff`).
        for kind in SetKind::ALL {
            let name = chain.set_name(kind);
            let (set_type, key) = if kind.has_ports() {
                (
                    SetTypeValue::Concatenated(Cow::Owned(vec![
                        set_type,
                        SetType::InetProto,
                        SetType::InetService,
                    ])),
                    Expression::Named(NamedExpression::Concat(vec![
                        payload(protocol, peer_field),
                        Expression::Named(NamedExpression::Meta(Meta {
                            key: MetaKey::L4proto,
                        })),
                        payload("th", "dport"),
                    ])),
                )
            } else {
                (
                    SetTypeValue::Single(set_type),
                    payload(protocol, peer_field),
                )
            };
            objects.push(set(
                name.clone(),
                set_type,
                kind.is_interval(),
                set_elements(&elements, kind),
            ));
            statements_by_rule.push(vec![
                matches(key, set_reference(&name)),
                Statement::Return(None),
            ]);
        }
        statements_by_rule.push(vec![Statement::Drop(None)]);
        chains.push(add(NfListObject::Chain(Chain {
            family: NfFamily::INet,
            table: Cow::Borrowed(TABLE),
            name: Cow::Owned(chain.name.clone()),
            ..Chain::default()
        })));
        for statements in statements_by_rule {
            objects.push(rule(&chain.name, statements));
        }
    }
    chains.push(base_chain("forward", NfHook::Forward));
    objects.push(rule(
        "forward",
        vec![established(), Statement::Accept(None)],
    ));
    for (protocol, field, map) in [
        ("ip", "saddr", "egress_v4"),
        ("ip6", "saddr", "egress_v6"),
        ("ip", "daddr", "ingress_v4"),
        ("ip6", "daddr", "ingress_v6"),
    ] {
        objects.push(rule("forward", vec![vmap(protocol, field, map)]));
    }
    chains.push(base_chain("input", NfHook::Input));
    objects.push(rule("input", vec![established(), Statement::Accept(None)]));
    for (protocol, set) in [("ip", "local_node_v4"), ("ip6", "local_node_v6")] {
        objects.push(rule(
            "input",
            vec![
                matches(payload(protocol, "daddr"), set_reference(set)),
                Statement::Accept(None),
            ],
        ));
    }
    for (protocol, map) in [("ip", "egress_v4"), ("ip6", "egress_v6")] {
        objects.push(rule("input", vec![vmap(protocol, "saddr", map)]));
    }

    let mut commands: Vec<Command> = typed.into_iter().map(Command::Typed).collect();
    commands.extend(chains.into_iter().map(Command::Typed));
    commands.extend(raw_maps.into_iter().map(Command::Raw));
    commands.extend(objects.into_iter().map(Command::Typed));
    commands.extend(raw_map_elements.into_iter().map(Command::Raw));
    Document { nftables: commands }
}
