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
use nftables::stmt::{JumpTarget, Match, Operator, Statement, VerdictMap};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use policy_core::Direction;
use policy_core::ipset::{Family, IpSet};
use policy_core::ports::Protocol;
use serde::Serialize;
use serde_json::{Value, json};

use crate::ruleset::{FAMILY, Interval, NodeRuleset, PeerGroup, SetKind, Side, TABLE};

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

/// The elements of one of a group's sets, as JSON expressions.
pub(crate) fn group_elements(group: &PeerGroup, kind: SetKind) -> Vec<Expression<'static>> {
    match kind {
        SetKind::Any => group
            .any
            .iter()
            .map(|&address| address_expression(address, address))
            .collect(),
        SetKind::Port => group
            .ports
            .iter()
            .map(|&(address, protocol, port)| port_element(address, protocol, port, port))
            .collect(),
        SetKind::PortRange => group
            .port_ranges
            .iter()
            .map(|&(address, protocol, low, high)| port_element(address, protocol, low, high))
            .collect(),
    }
}

/// `address . protocol . port` (or port range), as a set element.
pub(crate) fn port_element(
    address: std::net::IpAddr,
    protocol: Protocol,
    low: u16,
    high: u16,
) -> Expression<'static> {
    Expression::Named(NamedExpression::Concat(vec![
        address_expression(address, address),
        protocol_keyword(protocol),
        port_expression(low, high),
    ]))
}

/// A verdict map element: `[key, {"goto": {"target": chain}}]`.
pub(crate) type GotoElement<'a> = (Expression<'static>, Goto<'a>);

/// The verdict `{"goto": {"target": chain}}`.
#[derive(Serialize)]
pub(crate) struct Goto<'a> {
    goto: Target<'a>,
}

#[derive(Serialize)]
struct Target<'a> {
    target: &'a str,
}

/// `key : goto chain`, as a verdict map element.
pub(crate) fn goto_element<'a>(key: Expression<'static>, chain: &'a str) -> GotoElement<'a> {
    (
        key,
        Goto {
            goto: Target { target: chain },
        },
    )
}

/// `{"add": {"element": {...}}}` for verdict map elements: serialised
/// straight to text (the crate's element type has no verdicts, and a JSON
/// tree would cost allocations per element).
#[derive(Serialize)]
pub(crate) struct AddGotoElements<'a> {
    add: GotoElementsObject<'a>,
}

#[derive(Serialize)]
struct GotoElementsObject<'a> {
    element: GotoElements<'a>,
}

#[derive(Serialize)]
struct GotoElements<'a> {
    family: &'static str,
    table: &'static str,
    name: String,
    elem: Vec<GotoElement<'a>>,
}

/// The command that adds `elements` to verdict map `name`.
pub(crate) fn add_goto_elements(name: String, elements: Vec<GotoElement<'_>>) -> Command<'_> {
    Command::Gotos(AddGotoElements {
        add: GotoElementsObject {
            element: GotoElements {
                family: FAMILY,
                table: TABLE,
                name,
                elem: elements,
            },
        },
    })
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
pub(crate) enum Command<'a> {
    Typed(NfObject<'static>),
    Raw(Value),
    Gotos(AddGotoElements<'a>),
}

/// The document, serialised straight to text without an intermediate
/// `Value` tree (which would cost an allocation per JSON object and key).
#[derive(Serialize)]
pub(crate) struct Document<'a> {
    pub(crate) nftables: Vec<Command<'a>>,
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

fn address_set_type(family: Family) -> SetType {
    family_names(family).0
}

/// The key expression `local address . meta l4proto . th dport` of a side,
/// or the local address alone.
fn local_key(side: &Side, with_ports: bool) -> Expression<'static> {
    let address = payload(side.payload(), side.local_field());
    if !with_ports {
        return address;
    }
    Expression::Named(NamedExpression::Concat(vec![
        address,
        Expression::Named(NamedExpression::Meta(Meta {
            key: MetaKey::L4proto,
        })),
        payload("th", "dport"),
    ]))
}

/// The rule of a base chain that sends the packets of the side's isolated
/// local pods to the side's chain.
fn dispatch(side: &Side, chain: &'static str) -> NfObject<'static> {
    rule(
        chain,
        vec![
            matches(
                payload(side.payload(), side.local_field()),
                set_reference(&side.pods_set()),
            ),
            Statement::Jump(JumpTarget {
                target: Cow::Owned(side.chain_name()),
            }),
        ],
    )
}

/// A raw JSON verdict map declaration (the crate's set types have no `verdict`).
fn verdict_map(name: &str, family: Family, interval: bool) -> Value {
    let address_type = serde_json::to_value(address_set_type(family)).expect("set types serialise");
    let mut map = json!({
        "family": FAMILY, "table": TABLE, "name": name, "type": address_type, "map": "verdict",
    });
    if interval {
        map["flags"] = json!(["interval"]);
    }
    json!({"add": {"map": map}})
}

fn document(ruleset: &NodeRuleset) -> Document<'_> {
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
    // Chains are declared before anything that refers to them (rules, and
    // the verdict map elements that go to them); libnftables JSON resolves
    // references in order. Verdict maps are raw JSON (see the module
    // documentation).
    let mut chains: Vec<NfObject<'static>> = Vec::new();
    let mut raw_maps: Vec<Value> = Vec::new();
    let mut objects: Vec<NfObject<'static>> = Vec::new();
    let mut map_elements: Vec<Command<'_>> = Vec::new();
    let chain = |name: String| {
        add(NfListObject::Chain(Chain {
            family: NfFamily::INet,
            table: Cow::Borrowed(TABLE),
            name: Cow::Owned(name),
            ..Chain::default()
        }))
    };
    for family in [Family::V4, Family::V6] {
        objects.push(set(
            format!("local_node_{}", crate::ruleset::family_suffix(family)),
            SetTypeValue::Single(address_set_type(family)),
            true,
            address_elements(&ruleset.local_node_addresses, family),
        ));
    }
    for side in &ruleset.sides {
        let address_type = address_set_type(side.family);
        objects.push(set(
            side.pods_set(),
            SetTypeValue::Single(address_type),
            false,
            side.isolated_addresses()
                .into_iter()
                .map(|address| address_expression(address, address))
                .collect(),
        ));
        raw_maps.push(verdict_map(&side.peers_map(), side.family, false));
        raw_maps.push(verdict_map(&side.peer_ranges_map(), side.family, true));
        if !side.peer_addresses.is_empty() {
            let elements = side
                .peer_addresses
                .iter()
                .map(|&(address, group)| {
                    goto_element(
                        address_expression(address, address),
                        &side.groups[group].name,
                    )
                })
                .collect();
            map_elements.push(add_goto_elements(side.peers_map(), elements));
        }
        if !side.peer_ranges.is_empty() {
            let elements = side
                .peer_ranges
                .iter()
                .map(|&(first, last, group)| {
                    goto_element(address_expression(first, last), &side.groups[group].name)
                })
                .collect();
            map_elements.push(add_goto_elements(side.peer_ranges_map(), elements));
        }
        // Every group chain has all three sets, empty or not: a fixed
        // number of lookups per packet, and a set filling up or emptying is
        // an element update, not a change of structure (see `diff`).
        for group in &side.groups {
            chains.push(chain(group.name.clone()));
            for kind in SetKind::ALL {
                let name = group.set_name(kind);
                let set_type = if kind.has_ports() {
                    SetTypeValue::Concatenated(Cow::Owned(vec![
                        address_type,
                        SetType::InetProto,
                        SetType::InetService,
                    ]))
                } else {
                    SetTypeValue::Single(address_type)
                };
                objects.push(set(
                    name.clone(),
                    set_type,
                    kind.is_interval(),
                    group_elements(group, kind),
                ));
                objects.push(rule(
                    &group.name,
                    vec![
                        matches(local_key(side, kind.has_ports()), set_reference(&name)),
                        Statement::Return(None),
                    ],
                ));
            }
            objects.push(rule(&group.name, vec![Statement::Drop(None)]));
        }
        let name = side.chain_name();
        chains.push(chain(name.clone()));
        for map in [side.peers_map(), side.peer_ranges_map()] {
            objects.push(rule(
                &name,
                vec![vmap(side.payload(), side.peer_field(), &map)],
            ));
        }
        objects.push(rule(
            &name,
            vec![Statement::Goto(JumpTarget {
                target: Cow::Owned(side.groups[0].name.clone()),
            })],
        ));
    }
    // Egress first: a side's chain returns when it allows, and drops otherwise.
    let egress: Vec<&Side> = ruleset
        .sides
        .iter()
        .filter(|side| side.direction == Direction::Egress)
        .collect();
    let ingress = ruleset
        .sides
        .iter()
        .filter(|side| side.direction == Direction::Ingress);
    chains.push(base_chain("forward", NfHook::Forward));
    objects.push(rule(
        "forward",
        vec![established(), Statement::Accept(None)],
    ));
    for side in egress.iter().copied().chain(ingress) {
        objects.push(dispatch(side, "forward"));
    }
    chains.push(base_chain("input", NfHook::Input));
    objects.push(rule("input", vec![established(), Statement::Accept(None)]));
    // As in the text: the egress chains answer the node's own addresses.
    for side in egress {
        objects.push(dispatch(side, "input"));
    }
    for (protocol, set) in [("ip", "local_node_v4"), ("ip6", "local_node_v6")] {
        objects.push(rule(
            "input",
            vec![
                matches(payload(protocol, "daddr"), set_reference(set)),
                Statement::Accept(None),
            ],
        ));
    }

    let mut commands: Vec<Command> = typed.into_iter().map(Command::Typed).collect();
    commands.extend(chains.into_iter().map(Command::Typed));
    commands.extend(raw_maps.into_iter().map(Command::Raw));
    commands.extend(objects.into_iter().map(Command::Typed));
    commands.extend(map_elements);
    Document { nftables: commands }
}
