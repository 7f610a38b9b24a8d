//! Incremental updates in the kernel: for pairs of compiled rulesets (A, B),
//! loading A and then the update `policy_nft::diff` computes (an element
//! delta as nft text or as JSON, or B whole) leaves the same table as loading
//! B into a fresh namespace.
//!
//! Needs root and `nft` (the testbed's namespaces; no pods, no probes). With
//! NETPOL_REQUIRE_E2E=1 (as .ci/run sets), a missing capability fails the
//! tests instead of skipping them.
//!
//! Listings are compared after sorting the declarations of the table and the
//! elements of each set: neither order means anything, and they do differ.
//! nft lists hash and rbtree (interval) sets sorted, but concatenated
//! interval sets (pipapo) in insertion order, so an element added by a delta
//! comes last; and the kernel keeps declarations in creation order, which a
//! delta does not change but the next full ruleset may.

mod testbed;

#[path = "../../policy-core/tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use policy_core::{Config, HostNetworkMode, Loader, Model, SelfTraffic};
use policy_nft::diff::{
    SetShape, Update, diff, flatten, render_json, render_text, stabilize_names,
};
use policy_nft::ruleset::SetKind;
use policy_nft::{Compiler, NodeRuleset};
use proptest::sample::Index;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use testbed::{Testbed, TestbedSpec, e2e_available};

/// The namespace that holds the committed table and takes the updates.
const COMMITTED: &str = "committed";
/// The namespace B is loaded into whole.
const FRESH: &str = "fresh";

fn namespaces() -> Testbed {
    Testbed::new(&TestbedSpec {
        nodes: vec![COMMITTED.into(), FRESH.into()],
        ..TestbedSpec::default()
    })
    .unwrap_or_else(|e| panic!("cannot build the testbed: {e}"))
}

/// One top-level declaration of a listing: its header line, its other lines,
/// and its elements (sorted).
type Declaration = (String, Vec<String>, BTreeSet<String>);

/// `nft list table inet netpol`, with declarations and elements sorted.
fn canonical(listing: &str) -> Vec<Declaration> {
    let mut declarations: Vec<Declaration> = Vec::new();
    let mut elements: Option<String> = None;
    for line in listing.lines() {
        let trimmed = line.trim();
        if line.starts_with('\t') && !line.starts_with("\t\t") && trimmed.ends_with('{') {
            declarations.push((trimmed.to_string(), Vec::new(), BTreeSet::new()));
            continue;
        }
        let Some(current) = declarations.last_mut() else {
            continue;
        };
        if let Some(rest) = trimmed.strip_prefix("elements = {") {
            elements = Some(rest.to_string());
        } else if let Some(buffer) = &mut elements {
            buffer.push(' ');
            buffer.push_str(trimmed);
        } else if !trimmed.is_empty() && line.starts_with("\t\t") {
            current.1.push(trimmed.to_string());
        }
        if let Some(buffer) = elements.take_if(|buffer| buffer.ends_with('}')) {
            current.2.extend(
                buffer
                    .trim_end_matches('}')
                    .split(',')
                    .map(|element| element.trim().to_string()),
            );
        }
    }
    declarations.sort();
    declarations
}

fn listing(testbed: &Testbed, node: &str) -> Result<String, String> {
    testbed.nft(node, &["list", "table", "inet", "netpol"], "")
}

/// What was checked, for the summary.
#[derive(Debug, Default)]
struct Tally {
    unchanged: usize,
    elements: usize,
    replace: usize,
    /// Element updates whose raw listing differed from B's only in order.
    reordered: usize,
    /// Elements touched by all the deltas.
    touched: usize,
}

/// Loads A, updates it to B as `diff` says (an element delta as text and,
/// again from A, as JSON; or B whole, as text and as JSON), and compares the
/// table with B loaded fresh. Returns the update.
fn check_pair(
    testbed: &Testbed,
    committed: &NodeRuleset,
    compiled: &NodeRuleset,
    tally: &mut Tally,
) -> Result<Update, String> {
    let mut next = compiled.clone();
    stabilize_names(committed, &mut next);
    let update = diff(committed, &next);
    let full_a = policy_nft::text::render(committed);
    testbed
        .load(FRESH, &policy_nft::text::render(&next))
        .map_err(|e| format!("loading B: {e}"))?;
    let expected_raw = listing(testbed, FRESH)?;
    let expected = canonical(&expected_raw);
    let compare = |how: &str| -> Result<bool, String> {
        let got_raw = listing(testbed, COMMITTED)?;
        if canonical(&got_raw) != expected {
            return Err(format!(
                "A updated by {how} differs from B loaded fresh.\n--- A updated:\n{got_raw}\n--- B:\n{expected_raw}"
            ));
        }
        Ok(got_raw == expected_raw)
    };
    match &update {
        Update::Unchanged => {
            testbed.load(COMMITTED, &full_a)?;
            compare("nothing")?;
            tally.unchanged += 1;
        }
        Update::Elements(delta) => {
            let (text, json) = (render_text(delta), render_json(delta));
            testbed.load(COMMITTED, &full_a)?;
            testbed
                .nft(COMMITTED, &["-f", "-"], &text)
                .map_err(|e| format!("applying the text delta: {e}\n{text}"))?;
            if !compare("the text delta")? {
                tally.reordered += 1;
            }
            testbed.load(COMMITTED, &full_a)?;
            testbed
                .nft(COMMITTED, &["-j", "-f", "-"], &json)
                .map_err(|e| format!("applying the JSON delta: {e}\n{json}"))?;
            compare("the JSON delta")?;
            // Applied to a table that is not A any more, a delta that
            // deletes from a hash set, a map or an address interval set
            // fails as a whole and leaves the table alone. (Not so for
            // concatenated interval sets: there the kernel deletes the
            // element that holds the start of the one named, see the
            // documentation of policy_nft::diff.)
            let shapes = flatten(committed).skeleton.sets;
            let strict = |name: &String| {
                !matches!(
                    shapes[name],
                    SetShape::Group {
                        kind: SetKind::PortRange,
                        ..
                    }
                )
            };
            if delta
                .sets
                .iter()
                .any(|(name, set)| !set.delete.is_empty() && strict(name))
            {
                if testbed.nft(COMMITTED, &["-f", "-"], &text).is_ok() {
                    return Err(format!("the text delta applied twice:\n{text}"));
                }
                compare("the text delta, then a failed second time")?;
            }
            tally.elements += 1;
            tally.touched += delta.len();
        }
        Update::Replace => {
            testbed.load(COMMITTED, &full_a)?;
            testbed.load(COMMITTED, &policy_nft::text::render(&next))?;
            compare("B's full text")?;
            testbed.load(COMMITTED, &full_a)?;
            testbed
                .nft(
                    COMMITTED,
                    &["-j", "-f", "-"],
                    &policy_nft::json::render_string(&next),
                )
                .map_err(|e| format!("loading B's JSON over A: {e}"))?;
            compare("B's full JSON")?;
            tally.replace += 1;
        }
    }
    Ok(update)
}

fn model(text: &str) -> Model {
    let mut loader = Loader::new();
    loader.load_str("input.yaml", text);
    let loaded = loader.finish();
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    Model::new(loaded.cluster, Config::default())
}

fn compile(text: &str, node: &str) -> NodeRuleset {
    Compiler::new(&model(text)).unwrap().compile(node).0
}

// ---------------------------------------------------------------------------
// Hand-made changes: one per element kind, and structural ones.

const NAMESPACES: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: shop}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ops, labels: {team: ops}}
";

fn pod(namespace: &str, name: &str, app: &str, node: &str, v4: &str, port: &str) -> String {
    format!(
        "---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {namespace}, labels: {{app: {app}}}}}
spec:
  nodeName: {node}
  containers:
  - name: main
    ports: [{port}]
status:
  podIPs: [{{ip: {v4}}}, {{ip: \"fd00::{v4}\"}}]
"
    )
}

fn host_network_pod(name: &str, node: &str, address: &str) -> String {
    format!(
        "---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: ops}}
spec:
  nodeName: {node}
  hostNetwork: true
  containers: [{{name: main}}]
status:
  podIPs: [{{ip: {address}}}]
"
    )
}

/// The policies of the shop, with the ipBlock `except` and the `endPort`.
fn policies(except: &str, end_port: u16, ops_label: &str) -> String {
    format!(
        "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: default-deny, namespace: shop}}
spec:
  podSelector: {{}}
  policyTypes: [Ingress, Egress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: web, namespace: shop}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  ingress:
  - ports: [{{port: http}}]
  egress:
  - to: [{{podSelector: {{matchLabels: {{app: db}}}}}}]
    ports: [{{port: postgres}}]
  - to:
    - ipBlock: {{cidr: 192.0.2.0/24, except: [{except}]}}
    - ipBlock: {{cidr: \"2001:db8::/32\"}}
    ports: [{{port: 30000, endPort: {end_port}}}, {{protocol: UDP}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: db, namespace: shop}}
spec:
  podSelector: {{matchLabels: {{app: db}}}}
  ingress:
  - from: [{{podSelector: {{matchLabels: {{app: web}}}}}}]
    ports: [{{port: postgres}}]
  - from: [{{namespaceSelector: {{matchLabels: {{team: {ops_label}}}}}}}]
  egress:
  - to: [{{ipBlock: {{cidr: 198.51.100.0/24}}}}]
"
    )
}

/// The cluster, with what the scenarios change as parameters.
#[derive(Clone)]
struct Shop {
    web2_address: &'static str,
    web2_app: &'static str,
    web3: bool,
    host_network: Vec<&'static str>,
    except: &'static str,
    end_port: u16,
    ops_label: &'static str,
    ops_policy: bool,
    /// ipBlocks web accepts on TCP 9090, one policy each.
    partners: Vec<&'static str>,
}

const HTTP: &str = "{name: http, containerPort: 8080}";
const POSTGRES: &str = "{name: postgres, containerPort: 5432}";

impl Shop {
    fn base() -> Shop {
        Shop {
            web2_address: "10.1.0.11",
            web2_app: "web",
            web3: false,
            host_network: vec!["192.168.77.1"],
            except: "192.0.2.128/25",
            end_port: 30100,
            ops_label: "ops",
            ops_policy: false,
            partners: vec![],
        }
    }

    fn yaml(&self) -> String {
        let mut text = NAMESPACES.to_string();
        text += &pod("shop", "web-1", "web", "node-1", "10.1.0.10", HTTP);
        // A pod relabelled db has db's ports, so it joins db's class.
        let web2_port = if self.web2_app == "db" {
            POSTGRES
        } else {
            HTTP
        };
        text += &pod(
            "shop",
            "web-2",
            self.web2_app,
            "node-1",
            self.web2_address,
            web2_port,
        );
        if self.web3 {
            text += &pod("shop", "web-3", "web", "node-1", "10.1.0.13", HTTP);
        }
        text += &pod("shop", "db-1", "db", "node-1", "10.1.0.20", POSTGRES);
        text += &pod("shop", "db-2", "db", "node-2", "10.2.0.20", POSTGRES);
        text += &pod("ops", "probe", "probe", "node-2", "10.2.0.30", HTTP);
        for (index, address) in self.host_network.iter().enumerate() {
            text += &host_network_pod(&format!("agent-{index}"), "node-1", address);
        }
        text += &policies(self.except, self.end_port, self.ops_label);
        for (index, cidr) in self.partners.iter().enumerate() {
            text += &format!(
                "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: web-from-partner-{index}, namespace: shop}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  ingress:
  - from: [{{ipBlock: {{cidr: {cidr}}}}}]
    ports: [{{port: {}}}]
",
                9090 + index
            );
        }
        if self.ops_policy {
            text += "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-ingress, namespace: ops}
spec:
  podSelector: {}
";
        }
        text
    }
}

#[test]
fn element_updates_and_replacements_leave_the_table_a_fresh_load_gives() {
    if !e2e_available() {
        return;
    }
    let testbed = namespaces();
    let base = Shop::base();
    // (what changes, the changed cluster, on node-1: Some(true) for an
    // element update, Some(false) for a replacement, None when either).
    let scenarios: Vec<(&str, Shop, Option<bool>)> = vec![
        (
            "a pod's address",
            Shop {
                web2_address: "10.1.0.12",
                ..base.clone()
            },
            Some(true),
        ),
        (
            "a pod of an existing class starts",
            Shop {
                web3: true,
                ..base.clone()
            },
            Some(true),
        ),
        (
            "a pod moves to another existing class (dispatch entries retarget)",
            Shop {
                web2_app: "db",
                ..base.clone()
            },
            Some(true),
        ),
        (
            "an ipBlock except (interval concatenations)",
            Shop {
                except: "192.0.2.192/26",
                ..base.clone()
            },
            Some(true),
        ),
        (
            "an endPort (port ranges)",
            Shop {
                end_port: 30200,
                ..base.clone()
            },
            Some(true),
        ),
        (
            "a host-network pod next to another (an interval grows)",
            Shop {
                host_network: vec!["192.168.77.1", "192.168.77.2"],
                ..base.clone()
            },
            Some(true),
        ),
        (
            "a host-network pod's address",
            Shop {
                host_network: vec!["192.168.77.9"],
                ..base.clone()
            },
            Some(true),
        ),
        (
            "a peer namespace's label (a set empties, and stays declared)",
            Shop {
                ops_label: "dev",
                ..base.clone()
            },
            Some(true),
        ),
        (
            "peers no rule named before (a new peer group: the structure grows)",
            Shop {
                partners: vec!["203.0.113.0/24"],
                ..base.clone()
            },
            Some(false),
        ),
        (
            "a policy isolates another namespace",
            Shop {
                ops_policy: true,
                ..base.clone()
            },
            None,
        ),
        (
            "several at once",
            Shop {
                web2_address: "10.1.0.14",
                web3: true,
                end_port: 30050,
                host_network: vec![],
                ..base.clone()
            },
            None,
        ),
    ];
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    let base_yaml = base.yaml();
    for (what, changed, expected) in &scenarios {
        let changed_yaml = changed.yaml();
        for node in ["node-1", "node-2"] {
            let (a, b) = (compile(&base_yaml, node), compile(&changed_yaml, node));
            match check_pair(&testbed, &a, &b, &mut tally) {
                Ok(update) => {
                    let elements = matches!(update, Update::Elements(_));
                    if node == "node-1"
                        && let Some(expected) = expected
                        && elements != *expected
                    {
                        failures.push(format!("{what} on {node}: {update:?}"));
                    }
                }
                Err(error) => failures.push(format!("{what} on {node}: {error}")),
            }
        }
    }
    // A side that grew got spare groups; a group that appears next fills
    // one, as an element update.
    let grown = Shop {
        partners: vec!["203.0.113.0/24"],
        ..base.clone()
    };
    let grown_more = Shop {
        partners: vec!["203.0.113.0/24", "198.51.100.0/24"],
        ..base.clone()
    };
    let (a, b, c) = (
        compile(&base_yaml, "node-1"),
        compile(&grown.yaml(), "node-1"),
        compile(&grown_more.yaml(), "node-1"),
    );
    let mut committed = b.clone();
    stabilize_names(&a, &mut committed);
    assert!(committed.group_count() > b.group_count(), "no spares");
    match check_pair(&testbed, &committed, &c, &mut tally) {
        Ok(Update::Elements(_)) => {}
        Ok(other) => failures.push(format!("a group filling a spare: {other:?}")),
        Err(error) => failures.push(format!("a group filling a spare: {error}")),
    }
    testbed.clear(COMMITTED).unwrap();
    testbed.clear(FRESH).unwrap();
    eprintln!("{tally:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(tally.elements >= 8 && tally.replace >= 1, "{tally:?}");
}

// ---------------------------------------------------------------------------
// Random clusters, and a mid-size synthetic one.

/// One change to a random world.
#[derive(Clone, Debug)]
enum Change {
    Address(Index, u8),
    Relabel(Index, common::Labels),
    Remove(Index),
    Policy(Index, Box<k8s_openapi::api::networking::v1::NetworkPolicy>),
}

fn change() -> impl Strategy<Value = Change> {
    let labels = proptest::collection::btree_map(
        proptest::sample::select(&["app", "tier", "role"][..]).prop_map(String::from),
        proptest::sample::select(&["web", "db", "api"][..]).prop_map(String::from),
        0..3,
    );
    proptest::prop_oneof![
        3 => (proptest::arbitrary::any::<Index>(), 0..17u8)
            .prop_map(|(i, salt)| Change::Address(i, salt)),
        2 => (proptest::arbitrary::any::<Index>(), labels).prop_map(|(i, l)| Change::Relabel(i, l)),
        1 => proptest::arbitrary::any::<Index>().prop_map(Change::Remove),
        2 => (proptest::arbitrary::any::<Index>(), common::policy(0))
            .prop_map(|(i, p)| Change::Policy(i, Box::new(p))),
    ]
}

/// Compilable, every pod with an address on a node, dual stack, and a
/// default deny in every namespace (so that pods have chains).
fn finish(mut world: common::World) -> common::World {
    world.config.host_network = HostNetworkMode::Node;
    world.config.self_traffic = SelfTraffic::Allow;
    for (index, endpoint) in world.endpoints.iter_mut().enumerate() {
        if let Some(ip) = endpoint.ip
            && endpoint.node.is_none()
        {
            let node = if endpoint.host_network {
                usize::from(ip.octets()[3] == 2)
            } else {
                index % 2
            };
            endpoint.node = Some(["node-1", "node-2"][node].into());
        }
        endpoint.ipv6 = endpoint
            .ip
            .filter(|_| !endpoint.host_network)
            .map(|v4| Ipv6Addr::from(0xfd00_u128 << 112 | u128::from(u32::from(v4))));
    }
    world
}

fn changed(world: &common::World, change: &Change) -> common::World {
    let mut world = world.clone();
    let count = world.endpoints.len();
    match change.clone() {
        Change::Address(i, salt) => {
            let index = i.index(count);
            let endpoint = &mut world.endpoints[index];
            if endpoint.ip.is_some() && !endpoint.host_network {
                endpoint.ip = Some(Ipv4Addr::new(10, 0, 1, 10 + 17 * index as u8 + salt));
            }
        }
        Change::Relabel(i, labels) => world.endpoints[i.index(count)].labels = labels,
        Change::Remove(i) => {
            world.endpoints.remove(i.index(count));
        }
        Change::Policy(i, mut policy) if !world.policies.is_empty() => {
            let index = i.index(world.policies.len());
            policy.metadata.name = world.policies[index].metadata.name.clone();
            world.policies[index] = *policy;
        }
        Change::Policy(..) => {}
    }
    finish(world)
}

fn default_deny(namespace: &str) -> k8s_openapi::api::networking::v1::NetworkPolicy {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("deny-{namespace}"), "namespace": namespace},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }))
    .unwrap()
}

#[test]
fn random_cluster_changes_and_a_synthetic_one_update_the_table_exactly() {
    if !e2e_available() {
        return;
    }
    let testbed = namespaces();
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    // Random worlds and one change each, until 16 element updates and 4
    // replacements were checked (deterministic: the same pairs every run).
    let strategy = (common::world(), change());
    let mut runner = TestRunner::deterministic();
    for _ in 0..400 {
        if tally.elements >= 16 && tally.replace >= 4 {
            break;
        }
        let (mut world, change) = strategy.new_tree(&mut runner).unwrap().current();
        world
            .policies
            .extend(common::NAMESPACES.iter().map(|n| default_deny(n)));
        let before = finish(world);
        let after = changed(&before, &change);
        let (model_a, model_b) = (common::build_model(&before), common::build_model(&after));
        let (compiler_a, compiler_b) = (
            Compiler::new(&model_a).unwrap(),
            Compiler::new(&model_b).unwrap(),
        );
        for node in ["node-1", "node-2"] {
            let (a, b) = (compiler_a.compile(node).0, compiler_b.compile(node).0);
            let mut next = b.clone();
            stabilize_names(&a, &mut next);
            let wanted = match diff(&a, &next) {
                Update::Elements(_) => tally.elements < 16,
                Update::Replace => tally.replace < 4,
                Update::Unchanged => false,
            };
            if wanted && let Err(error) = check_pair(&testbed, &a, &b, &mut tally) {
                failures.push(format!("{change:?} on {node}: {error}"));
            }
        }
    }
    let random = format!("{tally:?}");
    assert!(
        tally.elements >= 16 && tally.replace >= 4,
        "too few pairs: {random}"
    );

    // A pod of a mid-size synthetic cluster (400 pods, 300 policies) gets a
    // new address: a dozen elements of about 1,350.
    let params = netpol_synth::Params {
        nodes: 4,
        ..netpol_synth::Params::scale(400, 300)
    };
    let before = netpol_synth::generate(&params);
    let pod = before
        .split("\n---\n")
        .find(|document| {
            document.contains("\nkind: Pod\n")
                && document.contains("nodeName: node-0000\n")
                && document.contains("app.kubernetes.io/component: api\n")
        })
        .unwrap();
    let at = pod.find("  podIP: ").unwrap() + "  podIP: ".len();
    let old: IpAddr = pod[at..at + pod[at..].find('\n').unwrap()].parse().unwrap();
    let after = before.replace(&format!(": {old}\n"), ": 10.254.254.254\n");
    let (model_a, model_b) = (model(&before), model(&after));
    let (compiler_a, compiler_b) = (
        Compiler::new(&model_a).unwrap(),
        Compiler::new(&model_b).unwrap(),
    );
    let elements_before = tally.elements;
    for node in ["node-0000", "node-0001"] {
        let (a, b) = (compiler_a.compile(node).0, compiler_b.compile(node).0);
        if let Err(error) = check_pair(&testbed, &a, &b, &mut tally) {
            failures.push(format!("synthetic, {node}: {error}"));
        }
    }
    testbed.clear(COMMITTED).unwrap();
    testbed.clear(FRESH).unwrap();
    eprintln!("random: {random}; with the synthetic cluster: {tally:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(tally.elements, elements_before + 2, "{tally:?}");
}
