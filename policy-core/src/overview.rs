//! The cluster at a glance: workloads and the connections between them,
//! their connections with addresses outside the cluster, and how much of
//! each namespace may reach each other namespace.
//!
//! Endpoints are grouped by workload the way [`crate::diff`] groups changes
//! ([`Cluster::workload_name`](crate::Cluster::workload_name)). The work is
//! done per group of endpoints that share a workload and a class, so a
//! Deployment of 500 identical pods costs what one pod does; only pairs with
//! a host-network pod on the same node are looked at one by one.
//!
//! Pairs are ordered pairs of *distinct* endpoints: a pod reaching itself is
//! no connection between workloads or namespaces.

use std::collections::{BTreeMap, HashMap};

use crate::cluster::EndpointId;
use crate::config::HostNetworkMode;
use crate::ipset::IpSet;
use crate::model::{AdminRuleRef, ClassId, Counterpart, Model, RuleRef, SidePermit};
use crate::policy::Direction;
use crate::ports::PortSet;

/// Index of a workload in [`Overview::workloads`].
pub type WorkloadId = usize;

/// Endpoints grouped under one workload name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// `namespace/name`, as [`Cluster::workload_name`](crate::Cluster::workload_name) says.
    pub name: String,
    /// The namespace.
    pub namespace: String,
    /// The endpoints, in endpoint order.
    pub members: Vec<EndpointId>,
}

/// Why one side lets a group of connections through, merged over the
/// endpoint pairs of the group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SideReasons {
    /// For some pair, no policy isolates this side.
    pub not_isolated: bool,
    /// For some pair, this side is a host-network pod treated as node traffic.
    pub host_network: bool,
    /// Some pair is a host-network pod and a pod on the same node, which
    /// may always connect.
    pub local_node: bool,
    /// The rules that allow the connections, each with the ports of the
    /// allowed connections it accounts for.
    pub rules: BTreeMap<RuleRef, PortSet>,
    /// Admin- and Baseline-tier Accept rules that allow connections, each
    /// with the ports it accounts for.
    pub admin_rules: BTreeMap<AdminRuleRef, PortSet>,
}

impl SideReasons {
    fn add(&mut self, permit: SidePermit) {
        match permit {
            SidePermit::NotIsolated => self.not_isolated = true,
            SidePermit::HostNetwork => self.host_network = true,
            SidePermit::Isolated { rules, .. } => {
                for (rule, ports) in rules {
                    self.rules.entry(rule).or_default().union_with(&ports);
                }
            }
            SidePermit::Tiered {
                accepted,
                rules,
                by_default,
            } => {
                for (rule, ports) in accepted {
                    self.admin_rules.entry(rule).or_default().union_with(&ports);
                }
                for (rule, ports) in rules {
                    self.rules.entry(rule).or_default().union_with(&ports);
                }
                self.not_isolated |= !by_default.is_empty();
            }
        }
    }

    fn merge(&mut self, other: &SideReasons) {
        self.not_isolated |= other.not_isolated;
        self.host_network |= other.host_network;
        self.local_node |= other.local_node;
        for (rule, ports) in &other.rules {
            self.rules.entry(*rule).or_default().union_with(ports);
        }
        for (rule, ports) in &other.admin_rules {
            self.admin_rules.entry(*rule).or_default().union_with(ports);
        }
    }
}

/// The connections some member of one workload may open to some member of
/// another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadConnection {
    /// The source workload.
    pub from: WorkloadId,
    /// The destination workload.
    pub to: WorkloadId,
    /// Every port some pair may use (the union over the pairs).
    pub ports: PortSet,
    /// The endpoint pairs that may connect on some port.
    pub allowed_pairs: usize,
    /// Every endpoint pair of the two workloads.
    pub pairs: usize,
    /// Why the sources' egress allows it.
    pub egress: SideReasons,
    /// Why the destinations' ingress allows it.
    pub ingress: SideReasons,
}

/// What a workload may receive from, or send to, addresses outside the
/// cluster. An address has no policies of its own: the workload's side decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutsideConnection {
    /// The workload.
    pub workload: WorkloadId,
    /// `Ingress`: from the addresses; `Egress`: to them.
    pub direction: Direction,
    /// The addresses that are allowed exactly `ports` (merged regions).
    pub addresses: IpSet,
    /// The ports some member may use with every one of the addresses.
    pub ports: PortSet,
    /// Why the workload's side allows it.
    pub reasons: SideReasons,
}

/// Namespace × namespace reachability, counted in endpoint pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceReach {
    /// The namespaces that have endpoints, sorted.
    pub namespaces: Vec<String>,
    /// Endpoints per namespace.
    pub endpoints: Vec<usize>,
    /// `allowed_pairs[from][to]`: ordered pairs of distinct endpoints, the
    /// first in `from` and the second in `to`, that may connect on some port.
    pub allowed_pairs: Vec<Vec<usize>>,
    /// Per namespace, the endpoints some address outside the cluster may reach.
    pub from_outside: Vec<usize>,
    /// Per namespace, the endpoints that may reach some address outside the cluster.
    pub to_outside: Vec<usize>,
}

impl NamespaceReach {
    /// Every ordered pair of distinct endpoints from namespace `from` to `to`.
    pub fn pairs(&self, from: usize, to: usize) -> usize {
        let pairs = self.endpoints[from] * self.endpoints[to];
        if from == to {
            pairs - self.endpoints[from]
        } else {
            pairs
        }
    }
}

/// The whole cluster at a glance. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overview {
    /// The workloads, sorted by name.
    pub workloads: Vec<Workload>,
    /// The connections between distinct workloads that allow some port,
    /// by source then destination.
    pub connections: Vec<WorkloadConnection>,
    /// The connections with outside addresses, by workload, direction
    /// (ingress first) and port set.
    pub outside: Vec<OutsideConnection>,
    /// Namespace × namespace reachability.
    pub namespaces: NamespaceReach,
}

/// Endpoints of one workload that share a class: every pair of members of
/// two groups is allowed the same ports (unless on the same node as a
/// host-network pod).
struct Group {
    workload: WorkloadId,
    namespace: usize,
    class: ClassId,
    size: usize,
}

impl Overview {
    /// Computes the overview of `model`.
    pub fn new(model: &Model) -> Overview {
        let cluster = model.cluster();
        let mut by_name: BTreeMap<String, Vec<EndpointId>> = BTreeMap::new();
        for id in 0..cluster.endpoints.len() {
            by_name
                .entry(cluster.workload_name(id))
                .or_default()
                .push(id);
        }
        let workloads: Vec<Workload> = by_name
            .into_iter()
            .map(|(name, members)| Workload {
                namespace: cluster.endpoints[members[0]].namespace.clone(),
                name,
                members,
            })
            .collect();

        let mut namespaces: Vec<String> = cluster
            .endpoints
            .iter()
            .map(|e| e.namespace.clone())
            .collect();
        namespaces.dedup();
        let namespace_index: HashMap<&str, usize> = namespaces
            .iter()
            .enumerate()
            .map(|(index, name)| (name.as_str(), index))
            .collect();
        let namespace_of =
            |endpoint: EndpointId| namespace_index[cluster.endpoints[endpoint].namespace.as_str()];
        let mut reach = NamespaceReach {
            endpoints: vec![0; namespaces.len()],
            allowed_pairs: vec![vec![0; namespaces.len()]; namespaces.len()],
            from_outside: vec![0; namespaces.len()],
            to_outside: vec![0; namespaces.len()],
            namespaces: namespaces.clone(),
        };
        for endpoint in 0..cluster.endpoints.len() {
            reach.endpoints[namespace_of(endpoint)] += 1;
        }

        let mut group_sizes: BTreeMap<(WorkloadId, ClassId), usize> = BTreeMap::new();
        let mut workload_of = vec![0; cluster.endpoints.len()];
        for (workload_id, workload) in workloads.iter().enumerate() {
            for &member in &workload.members {
                workload_of[member] = workload_id;
                *group_sizes
                    .entry((workload_id, model.class_of(member)))
                    .or_default() += 1;
            }
        }
        let groups: Vec<Group> = group_sizes
            .into_iter()
            .map(|((workload, class), size)| Group {
                workload,
                namespace: namespace_of(workloads[workload].members[0]),
                class,
                size,
            })
            .collect();

        let mut connections: BTreeMap<(WorkloadId, WorkloadId), WorkloadConnection> =
            BTreeMap::new();
        for (a, source) in groups.iter().enumerate() {
            for (b, destination) in groups.iter().enumerate() {
                let pairs = if a == b {
                    source.size * (source.size - 1)
                } else {
                    source.size * destination.size
                };
                if pairs == 0 {
                    continue;
                }
                // The allocation-free check first: most pairs of a policed
                // cluster allow nothing, and need no reasons.
                let ports = model.class_connections(source.class, destination.class);
                if ports.is_empty() {
                    continue;
                }
                let egress = model.side_permit(
                    Direction::Egress,
                    source.class,
                    Counterpart::Class(destination.class),
                );
                let ingress = model.side_permit(
                    Direction::Ingress,
                    destination.class,
                    Counterpart::Class(source.class),
                );
                reach.allowed_pairs[source.namespace][destination.namespace] += pairs;
                if source.workload != destination.workload {
                    let entry = connection(
                        &mut connections,
                        &workloads,
                        source.workload,
                        destination.workload,
                    );
                    entry.ports.union_with(&ports);
                    entry.allowed_pairs += pairs;
                    entry.egress.add(egress.restricted_to(&ports));
                    entry.ingress.add(ingress.restricted_to(&ports));
                }
            }
        }

        // A host-network pod and a pod on its node may always connect,
        // whatever the classes say.
        for (source, destination) in local_node_pairs(model) {
            let class_level =
                model.class_connections(model.class_of(source), model.class_of(destination));
            if class_level.is_empty() {
                reach.allowed_pairs[namespace_of(source)][namespace_of(destination)] += 1;
            }
            let (from, to) = (workload_of[source], workload_of[destination]);
            if from != to {
                let entry = connection(&mut connections, &workloads, from, to);
                if class_level.is_empty() {
                    entry.allowed_pairs += 1;
                }
                // NetworkPolicy allows it all; an Admin-tier rule may not.
                entry
                    .ports
                    .union_with(&model.connections(source, destination));
                entry.egress.local_node = true;
                entry.ingress.local_node = true;
            }
        }

        let outside = OutsidePermits::new(model);
        for endpoint in 0..cluster.endpoints.len() {
            let class = model.class_of(endpoint);
            if outside.reaches(class, Direction::Ingress) {
                reach.from_outside[namespace_of(endpoint)] += 1;
            }
            if outside.reaches(class, Direction::Egress) {
                reach.to_outside[namespace_of(endpoint)] += 1;
            }
        }
        let mut outside_connections = Vec::new();
        for (workload_id, workload) in workloads.iter().enumerate() {
            let mut classes: Vec<ClassId> = workload
                .members
                .iter()
                .map(|&m| model.class_of(m))
                .collect();
            classes.sort_unstable();
            classes.dedup();
            for direction in [Direction::Ingress, Direction::Egress] {
                for (ports, (addresses, reasons)) in outside.grouped(&classes, direction) {
                    outside_connections.push(OutsideConnection {
                        workload: workload_id,
                        direction,
                        addresses,
                        ports,
                        reasons,
                    });
                }
            }
        }

        Overview {
            workloads,
            connections: connections.into_values().collect(),
            outside: outside_connections,
            namespaces: reach,
        }
    }
}

/// The connection from one workload to another, created empty when new.
fn connection<'a>(
    connections: &'a mut BTreeMap<(WorkloadId, WorkloadId), WorkloadConnection>,
    workloads: &[Workload],
    from: WorkloadId,
    to: WorkloadId,
) -> &'a mut WorkloadConnection {
    connections
        .entry((from, to))
        .or_insert_with(|| WorkloadConnection {
            from,
            to,
            ports: PortSet::empty(),
            allowed_pairs: 0,
            pairs: workloads[from].members.len() * workloads[to].members.len(),
            egress: SideReasons::default(),
            ingress: SideReasons::default(),
        })
}

/// Ordered pairs of distinct endpoints where one is a host-network pod
/// treated as node traffic and both run on the same node.
fn local_node_pairs(model: &Model) -> Vec<(EndpointId, EndpointId)> {
    let endpoints = &model.cluster().endpoints;
    if model.config().host_network != HostNetworkMode::Node {
        return Vec::new();
    }
    let mut by_node: BTreeMap<&str, Vec<EndpointId>> = BTreeMap::new();
    for (id, endpoint) in endpoints.iter().enumerate() {
        if let Some(node) = &endpoint.node {
            by_node.entry(node.as_str()).or_default().push(id);
        }
    }
    let mut pairs = Vec::new();
    for members in by_node.values() {
        if !members.iter().any(|&m| endpoints[m].host_network) {
            continue;
        }
        for &source in members {
            for &destination in members {
                if source != destination && model.local_node_traffic(source, destination) {
                    pairs.push((source, destination));
                }
            }
        }
    }
    pairs
}

/// What each class may do with each region of outside addresses, computed
/// once per class and direction.
struct OutsidePermits {
    regions: Vec<IpSet>,
    /// Per direction (ingress, egress) and class: the permit per region.
    permits: [Vec<Vec<SidePermit>>; 2],
}

impl OutsidePermits {
    fn new(model: &Model) -> Self {
        let regions = model.address_partition();
        let permits = [Direction::Ingress, Direction::Egress].map(|direction| {
            (0..model.classes().len())
                .map(|class| {
                    regions
                        .iter()
                        .map(|region| {
                            model.side_permit(direction, class, Counterpart::Addresses(region))
                        })
                        .collect()
                })
                .collect()
        });
        OutsidePermits { regions, permits }
    }

    fn of(&self, class: ClassId, direction: Direction) -> &[SidePermit] {
        let index = match direction {
            Direction::Ingress => 0,
            Direction::Egress => 1,
        };
        &self.permits[index][class]
    }

    /// True if some outside address may connect with pods of `class` in
    /// `direction` on some port.
    fn reaches(&self, class: ClassId, direction: Direction) -> bool {
        self.of(class, direction)
            .iter()
            .any(|permit| !permit.ports().is_empty())
    }

    /// The regions some member class may connect with, merged by port set.
    fn grouped(
        &self,
        classes: &[ClassId],
        direction: Direction,
    ) -> BTreeMap<PortSet, (IpSet, SideReasons)> {
        let mut groups: BTreeMap<PortSet, (IpSet, SideReasons)> = BTreeMap::new();
        for (index, region) in self.regions.iter().enumerate() {
            let mut ports = PortSet::empty();
            let mut reasons = SideReasons::default();
            for &class in classes {
                let permit = &self.of(class, direction)[index];
                ports.union_with(&permit.ports());
                reasons.add(permit.clone());
            }
            if !ports.is_empty() {
                let (addresses, merged) = groups.entry(ports).or_default();
                addresses.union_with(region);
                merged.merge(&reasons);
            }
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Loader};

    fn overview(text: &str, config: Config) -> (Model, Overview) {
        let mut loader = Loader::new();
        loader.load_str("t.yaml", text);
        let loaded = loader.finish();
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let model = Model::new(loaded.cluster, config);
        let overview = Overview::new(&model);
        (model, overview)
    }

    fn pod(namespace: &str, name: &str, labels: &str, extra: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {namespace}, labels: {{{labels}}}{extra}}}\n---\n"
        )
    }

    /// Two web replicas of one Deployment (ReplicaSet web-7c9f), a db, and
    /// a tool pod in another namespace. db accepts web on 5432 only.
    fn shop() -> String {
        let owned = |hash: &str| {
            format!(
                ", ownerReferences: [{{apiVersion: apps/v1, kind: ReplicaSet, name: web-{hash}, uid: u, controller: true}}]"
            )
        };
        [
            pod("shop", "web-7c9f-a", "app: web, pod-template-hash: 7c9f", &owned("7c9f")),
            pod("shop", "web-7c9f-b", "app: web, pod-template-hash: 7c9f", &owned("7c9f")),
            pod("shop", "db", "app: db", ""),
            pod("ops", "tool", "app: tool", ""),
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: db}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {app: web}}}]\n    ports: [{port: 5432}]\n".to_string(),
        ]
        .concat()
    }

    fn names(overview: &Overview, connection: &WorkloadConnection) -> (String, String) {
        (
            overview.workloads[connection.from].name.clone(),
            overview.workloads[connection.to].name.clone(),
        )
    }

    #[test]
    fn pods_are_grouped_under_their_workload_as_diff_groups_them() {
        let (_, overview) = overview(&shop(), Config::default());
        let workloads: Vec<(&str, usize)> = overview
            .workloads
            .iter()
            .map(|w| (w.name.as_str(), w.members.len()))
            .collect();
        assert_eq!(
            workloads,
            [("ops/tool", 1), ("shop/db", 1), ("shop/web", 2)]
        );
    }

    #[test]
    fn connections_carry_ports_pair_counts_and_the_allowing_rules() {
        let (_, overview) = overview(&shop(), Config::default());
        let to_db: Vec<_> = overview
            .connections
            .iter()
            .filter(|c| overview.workloads[c.to].name == "shop/db")
            .collect();
        // Only web reaches db; tool is denied by the db policy.
        assert_eq!(to_db.len(), 1);
        let web_to_db = to_db[0];
        assert_eq!(names(&overview, web_to_db).0, "shop/web");
        assert_eq!(web_to_db.ports.to_string(), "TCP 5432");
        assert_eq!((web_to_db.allowed_pairs, web_to_db.pairs), (2, 2));
        assert!(web_to_db.egress.not_isolated);
        let rules: Vec<String> = web_to_db
            .ingress
            .rules
            .iter()
            .map(|(rule, ports)| {
                format!(
                    "{} {}[{}] {ports}",
                    rule.policy,
                    rule.direction.field(),
                    rule.index
                )
            })
            .collect();
        assert_eq!(rules, ["0 ingress[0] TCP 5432"]);
        // No self edge for the two web replicas.
        assert!(overview.connections.iter().all(|c| c.from != c.to));
    }

    #[test]
    fn namespace_pairs_count_distinct_endpoint_pairs() {
        let (model, overview) = overview(&shop(), Config::default());
        let reach = &overview.namespaces;
        assert_eq!(reach.namespaces, ["ops", "shop"]);
        assert_eq!(reach.endpoints, [1, 3]);
        let (ops, shop) = (0, 1);
        assert_eq!(reach.pairs(shop, shop), 6);
        // Brute force over endpoint pairs.
        let endpoints = model.cluster().endpoints.len();
        let mut expected = vec![vec![0; 2]; 2];
        for s in 0..endpoints {
            for d in (0..endpoints).filter(|&d| d != s) {
                if !model.connections(s, d).is_empty() {
                    let ns =
                        |e: usize| usize::from(model.cluster().endpoints[e].namespace == "shop");
                    expected[ns(s)][ns(d)] += 1;
                }
            }
        }
        assert_eq!(reach.allowed_pairs, expected);
        // ops/tool cannot reach db: 1 pair of 3 denied.
        assert_eq!(reach.allowed_pairs[ops][shop], 2);
        // Nothing isolates egress, and only db's ingress is isolated
        // (from pods only): every endpoint but db is reachable from outside.
        assert_eq!(reach.from_outside, [1, 2]);
        assert_eq!(reach.to_outside, [1, 3]);
    }

    #[test]
    fn outside_connections_merge_regions_with_the_same_ports() {
        let text = format!(
            "{}apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: api, namespace: shop}}\nspec:\n  podSelector: {{}}\n  policyTypes: [Egress]\n  egress:\n  - to: [{{ipBlock: {{cidr: 203.0.113.0/24}}}}, {{ipBlock: {{cidr: 198.51.100.0/24}}}}]\n    ports: [{{port: 443}}]\n",
            pod("shop", "api", "app: api", "")
        );
        let (_, overview) = overview(&text, Config::default());
        let egress: Vec<String> = overview
            .outside
            .iter()
            .filter(|c| c.direction == Direction::Egress)
            .map(|c| format!("{}: {}", c.addresses, c.ports))
            .collect();
        assert_eq!(egress, ["198.51.100.0/24, 203.0.113.0/24: TCP 443"]);
        let ingress: Vec<String> = overview
            .outside
            .iter()
            .filter(|c| c.direction == Direction::Ingress)
            .map(|c| format!("{}: {}", c.addresses, c.ports))
            .collect();
        assert_eq!(ingress, ["0.0.0.0/0, ::/0: all"]);
    }

    #[test]
    fn a_host_network_pod_and_a_pod_on_its_node_always_connect() {
        let text = [
            pod("a", "agent", "app: agent", "").replace(
                "---\n",
                "spec: {nodeName: n1, hostNetwork: true, containers: [{name: c, image: i}]}\n---\n",
            ),
            pod("b", "app", "app: app", "").replace(
                "---\n",
                "spec: {nodeName: n1, containers: [{name: c, image: i}]}\n---\n",
            ),
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: b}\nspec: {podSelector: {}, policyTypes: [Ingress]}\n".to_string(),
        ]
        .concat();
        let (_, overview) = overview(&text, Config::default());
        let agent_to_app = overview
            .connections
            .iter()
            .find(|c| names(&overview, c) == ("a/agent".into(), "b/app".into()))
            .expect("the agent reaches the pod on its node");
        assert!(agent_to_app.ports.is_all());
        assert!(agent_to_app.ingress.local_node);
        assert_eq!(overview.namespaces.allowed_pairs, [[0, 1], [1, 0]]);
    }
}
