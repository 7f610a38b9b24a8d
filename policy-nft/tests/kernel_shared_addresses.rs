//! Two pods with one address (an address reused before the old pod is
//! gone): the kernel sees one peer, so the ruleset must give that address
//! one verdict, and must not open traffic either pod is denied. The
//! compiler gives it what every one of the pods is allowed, and reports
//! the address. Before, it put the address in the peer map twice, and nft
//! refused the whole table ("File exists") — seen at 100,000 pods with
//! real nft, where a churn of pods reused addresses.
//!
//! Needs root and `nft` for the load; with NETPOL_REQUIRE_E2E=1 (as .ci/run
//! sets), a missing capability fails the test instead of skipping it.

mod testbed;

use std::net::{IpAddr, Ipv4Addr};

use policy_core::{Config, Loader, Model, Protocol};
use policy_nft::Compiler;
use policy_nft::diff::{Element, flatten};
use policy_nft::runner::Nft;
use testbed::{Testbed, TestbedSpec, e2e_available};

const CLUSTER: &str = "
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {nodeName: node-2, containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.5}
---
apiVersion: v1
kind: Pod
metadata: {name: batch, namespace: shop, labels: {app: batch}}
spec: {nodeName: node-2, containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.5}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {nodeName: node-1, containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.9}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 5432}]
  - from: [{podSelector: {matchLabels: {app: batch}}}]
    ports: [{port: 5432}, {port: 80}]
";

#[test]
fn a_shared_peer_address_gets_what_every_pod_sharing_it_is_allowed() {
    let mut loader = Loader::new();
    loader.load_str("cluster.yaml", CLUSTER);
    let loaded = loader.finish();
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let model = Model::new(loaded.cluster, Config::default());
    let (ruleset, unenforceable) = Compiler::new(&model).unwrap().compile("node-1");
    let shared: IpAddr = Ipv4Addr::new(10, 0, 0, 5).into();
    let db: IpAddr = Ipv4Addr::new(10, 0, 0, 9).into();
    assert_eq!(unenforceable.shared_addresses, [shared]);

    // One map entry for the address, to a group allowing 5432 only.
    let flat = flatten(&ruleset);
    let entries: Vec<&str> = (flat.elements.values().flatten())
        .filter_map(|element| match element {
            Element::Goto { address, chain } if *address == shared => Some(&**chain),
            _ => None,
        })
        .collect();
    assert_eq!(entries.len(), 1, "one verdict per address: {entries:?}");
    let group = entries[0];
    let ports: Vec<(Protocol, u16)> = (flat.elements.iter())
        .filter(|(name, _)| name.starts_with(group) && name.ends_with("_ports"))
        .flat_map(|(_, elements)| elements)
        .filter_map(|element| match element {
            Element::AddressPort {
                address,
                protocol,
                port,
            } if *address == db => Some((*protocol, *port)),
            _ => None,
        })
        .collect();
    assert_eq!(ports, [(Protocol::Tcp, 5432)]);

    // And nft takes the table.
    if !e2e_available() {
        return;
    }
    let testbed = Testbed::new(&TestbedSpec {
        nodes: vec!["shared".into()],
        ..TestbedSpec::default()
    })
    .unwrap_or_else(|e| panic!("cannot build the testbed: {e}"));
    let nft = Nft::in_namespace(testbed.netns("shared").expect("netns"));
    nft.apply_text(&policy_nft::text::render(&ruleset))
        .unwrap_or_else(|e| panic!("nft refused the table: {e}"));
}
