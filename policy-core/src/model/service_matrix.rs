//! The Service matrix: for each client workload and each Service port, what
//! a connection through the Service amounts to (docs/SEMANTICS.md §17.1),
//! and the backends of each Service with their target ports (for graphs).
//!
//! Rows are workloads: endpoints grouped by
//! [`Cluster::workload_name`](crate::Cluster::workload_name), as the
//! overview and diff group them. Every pod of a workload is a client of its
//! own; their answers are merged into one cell ([`ServiceCell`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{
    Backend, BackendTarget, ClassId, Model, PortQuery, QueryEndpoint, ServiceId, ServiceOutcome,
};
use crate::cluster::{EndpointId, ServiceType, TrafficPolicy};
use crate::ports::{PortSet, Protocol};

/// A row of the Service matrix: the pods of one workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceMatrixRow {
    /// `namespace/name`, as [`Cluster::workload_name`](crate::Cluster::workload_name) says.
    pub name: String,
    /// The endpoints, in endpoint order.
    pub members: Vec<EndpointId>,
}

/// A column of the Service matrix: one port of a Service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceMatrixColumn {
    /// The Service.
    pub service: ServiceId,
    /// The index of the port in the Service's ports. `None` only for an
    /// ExternalName Service that lists no ports: it still gets a column,
    /// whose answer is unknown.
    pub port: Option<usize>,
}

/// What a workload's connections to a Service port amount to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceCellOutcome {
    /// Every pod of the workload is allowed by every backend it may be sent to.
    Allowed,
    /// Every pod is [`ServiceOutcome::Intermittent`]: each gets through to
    /// some backends and not to others.
    Intermittent,
    /// No pod gets through to any backend (each is denied, or has no
    /// backend, and at least one is denied).
    Denied,
    /// No pod has a backend: kube-proxy rejects the connection.
    NoBackends,
    /// An ExternalName Service: a DNS alias (the Service's `external_name`);
    /// where it leads is outside the model.
    ExternalName,
    /// The pods of the workload get different answers and at least one of
    /// them gets through (always or sometimes): see
    /// [`ServiceCell::pod_outcomes`].
    Partial,
}

/// How many pods of a workload got each per-pod [`ServiceOutcome`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PodOutcomes {
    /// [`ServiceOutcome::Allowed`].
    pub allowed: u32,
    /// [`ServiceOutcome::Intermittent`].
    pub intermittent: u32,
    /// [`ServiceOutcome::Denied`].
    pub denied: u32,
    /// [`ServiceOutcome::NoBackends`].
    pub no_backends: u32,
    /// [`ServiceOutcome::ExternalName`].
    pub external_name: u32,
}

impl PodOutcomes {
    fn add(&mut self, outcome: &ServiceOutcome) {
        match outcome {
            ServiceOutcome::Allowed => self.allowed += 1,
            ServiceOutcome::Intermittent => self.intermittent += 1,
            ServiceOutcome::Denied => self.denied += 1,
            ServiceOutcome::NoBackends => self.no_backends += 1,
            ServiceOutcome::ExternalName(_) => self.external_name += 1,
        }
    }

    /// The number of pods counted.
    pub fn total(&self) -> u32 {
        self.allowed + self.intermittent + self.denied + self.no_backends + self.external_name
    }
}

/// One backend of a cell, merged over the pods of the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellBackend {
    /// The backend: an index into [`ServiceMatrix::backends`] of the column.
    pub backend: usize,
    /// The pods of the workload kube-proxy may send to it
    /// (`internalTrafficPolicy: Local` may leave some out).
    pub pods: u32,
    /// Of those, the pods it allows (both sides).
    pub allowed_pods: u32,
}

impl CellBackend {
    /// True when it allows every pod of the workload that may be sent to it.
    pub fn allowed(&self) -> bool {
        self.allowed_pods == self.pods
    }
}

/// A workload's connections to one Service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceCell {
    /// The merged outcome.
    pub outcome: ServiceCellOutcome,
    /// The backends some pod of the workload may be sent to, in the order
    /// [`Model::service_backends`] lists them ([`ServiceMatrix::backends`]).
    pub backends: Vec<CellBackend>,
    /// The per-pod outcomes the merge started from.
    pub pod_outcomes: PodOutcomes,
}

impl ServiceCell {
    /// How many backends allow every pod of the workload that may be sent to
    /// them (for a one-pod workload: the backends that allow it).
    pub fn allowed_backends(&self) -> usize {
        self.backends.iter().filter(|b| b.allowed()).count()
    }

    fn merge(outcomes: PodOutcomes, external_name: bool) -> ServiceCellOutcome {
        let n = outcomes.total();
        if external_name {
            ServiceCellOutcome::ExternalName
        } else if outcomes.allowed == n {
            ServiceCellOutcome::Allowed
        } else if outcomes.intermittent == n {
            ServiceCellOutcome::Intermittent
        } else if outcomes.no_backends == n {
            ServiceCellOutcome::NoBackends
        } else if outcomes.denied + outcomes.no_backends == n {
            ServiceCellOutcome::Denied
        } else {
            ServiceCellOutcome::Partial
        }
    }
}

/// Client workloads × Service ports. See [`Model::service_matrix`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceMatrix {
    /// The rows, by workload name.
    pub rows: Vec<ServiceMatrixRow>,
    /// The columns, by Service (namespace, name), then port order.
    pub columns: Vec<ServiceMatrixColumn>,
    /// Per column, the backends of the port ([`Model::service_backends`]).
    backends: Vec<Vec<Backend>>,
    /// Row-major.
    cells: Vec<ServiceCell>,
}

impl ServiceMatrix {
    /// The cell of `row` and `column`.
    pub fn cell(&self, row: usize, column: usize) -> &ServiceCell {
        &self.cells[row * self.columns.len() + column]
    }

    /// The backends of `column`'s port, which [`CellBackend::backend`]
    /// indexes.
    pub fn backends(&self, column: usize) -> &[Backend] {
        &self.backends[column]
    }
}

/// One pod's answer for one Service port: its outcome and, per backend (an
/// index into the port's backends), whether it allows the pod.
struct PodAnswer {
    outcome: ServiceOutcome,
    backends: Vec<(usize, bool)>,
}

/// A count of pods, which an endpoint index bounds.
fn count(pods: usize) -> u32 {
    u32::try_from(pods).expect("fewer than 2^32 pods")
}

/// What a client pod's answer for a Service port depends on, besides the
/// Service, when the pod is not itself a backend of the port (see
/// [`Model::service_matrix`]).
type ClientKey<'a> = (ClassId, Option<&'a str>, bool);

impl Model {
    /// Every client workload's connections to every Service port: rows are
    /// workloads, columns Service ports (with `port`, only those whose
    /// number or name it is; with `protocol`, only those of that protocol;
    /// an ExternalName Service without ports is a column only without
    /// `port`).
    ///
    /// Each pod of a workload is asked as [`Model::query_service`] asks
    /// it, and the cell merges their outcomes: the common outcome when they
    /// agree, [`ServiceCellOutcome::Denied`] when none gets through, and
    /// [`ServiceCellOutcome::Partial`] otherwise.
    ///
    /// Cost: O(workloads × Service ports × backends) backend queries, plus
    /// O(pods × Service ports) to merge. Pods are not asked one by one: a
    /// pod's answer depends only on its class (every rule sees it through
    /// its class), whether it is host-network, and its node, which matters
    /// only under `internalTrafficPolicy: Local` or when the pod or a
    /// backend is on the node's own addresses (a host-network pod, or a
    /// node address: a pod always reaches its own node). So it is asked
    /// once per (class, host-network, node when it matters) group and port.
    /// A pod that is itself a backend of the port, which reaches itself
    /// through its node (§17.3), is asked on its own. The unit tests check
    /// that sharing answers changes nothing. Fine for clusters of a few
    /// thousand pods.
    pub fn service_matrix(
        &self,
        port: Option<&PortQuery>,
        protocol: Option<Protocol>,
    ) -> ServiceMatrix {
        self.service_matrix_with(port, protocol, true)
    }

    fn service_matrix_with(
        &self,
        port: Option<&PortQuery>,
        protocol: Option<Protocol>,
        share_answers: bool,
    ) -> ServiceMatrix {
        let cluster = &self.cluster;
        let mut by_name: BTreeMap<String, Vec<EndpointId>> = BTreeMap::new();
        for id in 0..cluster.endpoints.len() {
            by_name
                .entry(cluster.workload_name(id))
                .or_default()
                .push(id);
        }
        let rows: Vec<ServiceMatrixRow> = by_name
            .into_iter()
            .map(|(name, members)| ServiceMatrixRow { name, members })
            .collect();

        let mut columns = Vec::new();
        for (id, service) in cluster.services.iter().enumerate() {
            if service.ports.is_empty() {
                if service.service_type == ServiceType::ExternalName && port.is_none() {
                    columns.push(ServiceMatrixColumn {
                        service: id,
                        port: None,
                    });
                }
                continue;
            }
            for (index, service_port) in service.ports.iter().enumerate() {
                let wanted = protocol.is_none_or(|p| p == service_port.protocol)
                    && port.is_none_or(|port| match port {
                        PortQuery::Number(number) => service_port.port == *number,
                        PortQuery::Name(name) => service_port.name.as_deref() == Some(name),
                    });
                if wanted {
                    columns.push(ServiceMatrixColumn {
                        service: id,
                        port: Some(index),
                    });
                }
            }
        }

        let mut backends = Vec::with_capacity(columns.len());
        let mut by_column: Vec<Vec<ServiceCell>> = Vec::with_capacity(columns.len());
        for column in &columns {
            let (column_backends, cells) = self.service_column(&rows, *column, share_answers);
            backends.push(column_backends);
            by_column.push(cells);
        }
        let mut cells = Vec::with_capacity(rows.len() * columns.len());
        let mut by_column: Vec<std::vec::IntoIter<ServiceCell>> =
            by_column.into_iter().map(Vec::into_iter).collect();
        for _ in &rows {
            for column in &mut by_column {
                cells.push(column.next().expect("one cell per row"));
            }
        }
        ServiceMatrix {
            rows,
            columns,
            backends,
            cells,
        }
    }

    /// One column's backends, and its cells in row order.
    fn service_column(
        &self,
        rows: &[ServiceMatrixRow],
        column: ServiceMatrixColumn,
        share_answers: bool,
    ) -> (Vec<Backend>, Vec<ServiceCell>) {
        let service = &self.cluster.services[column.service];
        let external_name = service.service_type == ServiceType::ExternalName;
        let Some(port) = column.port else {
            // An ExternalName Service without ports: nothing to ask.
            let cells = rows
                .iter()
                .map(|row| {
                    let outcomes = PodOutcomes {
                        external_name: count(row.members.len()),
                        ..PodOutcomes::default()
                    };
                    ServiceCell {
                        outcome: ServiceCell::merge(outcomes, external_name),
                        backends: Vec::new(),
                        pod_outcomes: outcomes,
                    }
                })
                .collect();
            return (Vec::new(), cells);
        };
        let all = self.service_backends(column.service, port).backends;
        let index: HashMap<BackendTarget, usize> = all
            .iter()
            .enumerate()
            .map(|(i, backend)| (backend.target, i))
            .collect();
        let backend_pods: HashSet<EndpointId> = all
            .iter()
            .filter_map(|backend| match backend.target {
                BackendTarget::Endpoint(id) => Some(id),
                BackendTarget::Address(_) => None,
            })
            .collect();
        // Whether a client's node can change its answer for this port
        // (besides a host-network client, whose own node always matters):
        // `internalTrafficPolicy: Local` (§17.2), or a backend that shares
        // addresses with its node (a host-network pod, §11) or is an
        // address of a node (§17.7), since a pod always reaches its own
        // node.
        let service_nodes_matter = service.internal_traffic_policy == TrafficPolicy::Local
            || all.iter().any(|backend| match backend.target {
                BackendTarget::Endpoint(id) => self.cluster.endpoints[id].host_network,
                BackendTarget::Address(address) => self.node_of_address(address).is_some(),
            });
        let ask = |client: EndpointId| {
            let verdict = self
                .query_service(QueryEndpoint::Endpoint(client), column.service, port)
                .expect("backends are asked on numeric ports, which always resolve");
            PodAnswer {
                outcome: verdict.outcome,
                backends: verdict
                    .backends
                    .iter()
                    .map(|b| (index[&b.backend.target], b.verdict.allowed()))
                    .collect(),
            }
        };
        let mut shared: HashMap<ClientKey<'_>, PodAnswer> = HashMap::new();
        let mut cells = Vec::with_capacity(rows.len());
        // Per backend index: (pods sent there, pods allowed), and the
        // backends some pod of the row is sent to.
        let mut counts: Vec<(u32, u32)> = vec![(0, 0); all.len()];
        let mut touched: Vec<usize> = Vec::new();
        for row in rows {
            let mut outcomes = PodOutcomes::default();
            let mut add = |answer: &PodAnswer| {
                outcomes.add(&answer.outcome);
                for &(backend, allowed) in &answer.backends {
                    let count = &mut counts[backend];
                    if count.0 == 0 {
                        touched.push(backend);
                    }
                    count.0 += 1;
                    count.1 += u32::from(allowed);
                }
            };
            for &client in &row.members {
                if share_answers && !backend_pods.contains(&client) {
                    let endpoint = &self.cluster.endpoints[client];
                    let node = (service_nodes_matter || endpoint.host_network)
                        .then_some(endpoint.node.as_deref())
                        .flatten();
                    let key = (self.endpoint_class[client], node, endpoint.host_network);
                    add(shared.entry(key).or_insert_with(|| ask(client)));
                } else {
                    add(&ask(client));
                }
            }
            touched.sort_unstable();
            let backends = touched
                .drain(..)
                .map(|backend| {
                    let (pods, allowed_pods) = std::mem::take(&mut counts[backend]);
                    CellBackend {
                        backend,
                        pods,
                        allowed_pods,
                    }
                })
                .collect();
            cells.push(ServiceCell {
                outcome: ServiceCell::merge(outcomes, external_name),
                backends,
                pod_outcomes: outcomes,
            });
        }
        (all, cells)
    }

    /// Every backend of every port of `service`, with the target ports it
    /// gets (the ports of [`Model::service_backends`], as a set), in the
    /// order they first appear. An ExternalName Service has none.
    pub fn service_backend_ports(&self, service: ServiceId) -> Vec<(BackendTarget, PortSet)> {
        let mut result: Vec<(BackendTarget, PortSet)> = Vec::new();
        let mut index: HashMap<BackendTarget, usize> = HashMap::new();
        for port in 0..self.cluster.services[service].ports.len() {
            for backend in self.service_backends(service, port).backends {
                let i = *index.entry(backend.target).or_insert_with(|| {
                    result.push((backend.target, PortSet::empty()));
                    result.len() - 1
                });
                result[i]
                    .1
                    .insert(backend.protocol, backend.port, backend.port);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Loader};

    const CLUSTER: &str = include_str!("../../../testdata/services/cluster.yaml");

    fn model(extra: &str) -> Model {
        let mut loader = Loader::new();
        loader.load_str("cluster.yaml", CLUSTER);
        loader.load_str("extra.yaml", extra);
        let loaded = loader.finish();
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        Model::new(loaded.cluster, Config::default())
    }

    /// Sharing answers changes nothing, on a cluster where each reason for
    /// a node to matter occurs, each time with two pods of one class on
    /// two nodes as clients (shop/c, shop/d) that the node sets apart:
    /// `internalTrafficPolicy: Local` (Service c, for d), host-network
    /// backends (Service h) and clients (h-1, h-2, h-3), EndpointSlice
    /// addresses that are nodes' (Service nodes); and clients that are
    /// backends (c-1, c-2, c-3 of Service c).
    #[test]
    fn shared_answers_equal_asking_every_pod() {
        let extra = r#"
apiVersion: v1
kind: Pod
metadata: {name: c-1, namespace: shop, labels: {app: c, pod-template-hash: 5d4f}, ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: c-5d4f, uid: u1, controller: true}]}
spec: {nodeName: node-1, containers: [{name: c, image: c, ports: [{name: http, containerPort: 80}]}]}
status: {podIP: 10.0.1.100}
---
apiVersion: v1
kind: Pod
metadata: {name: c-2, namespace: shop, labels: {app: c, pod-template-hash: 5d4f}, ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: c-5d4f, uid: u1, controller: true}]}
spec: {nodeName: node-2, containers: [{name: c, image: c, ports: [{name: http, containerPort: 80}]}]}
status: {podIP: 10.0.2.100}
---
apiVersion: v1
kind: Pod
metadata: {name: c-3, namespace: shop, labels: {app: c, pod-template-hash: 5d4f}, ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: c-5d4f, uid: u1, controller: true}]}
spec: {nodeName: node-1, containers: [{name: c, image: c, ports: [{name: http, containerPort: 80}]}]}
status: {podIP: 10.0.1.101}
---
apiVersion: v1
kind: Pod
metadata: {name: d-1, namespace: shop, labels: {app: d}}
spec: {nodeName: node-1, containers: [{name: d, image: d}]}
status: {podIP: 10.0.1.110}
---
apiVersion: v1
kind: Pod
metadata: {name: d-2, namespace: shop, labels: {app: d}}
spec: {nodeName: node-2, containers: [{name: d, image: d}]}
status: {podIP: 10.0.2.110}
---
apiVersion: v1
kind: Pod
metadata: {name: h-1, namespace: shop, labels: {app: h}}
spec: {nodeName: node-1, hostNetwork: true, containers: [{name: h, image: h}]}
---
apiVersion: v1
kind: Pod
metadata: {name: h-2, namespace: shop, labels: {app: h}}
spec: {nodeName: node-2, hostNetwork: true, containers: [{name: h, image: h}]}
---
apiVersion: v1
kind: Pod
metadata: {name: h-3, namespace: shop, labels: {app: h}}
spec: {nodeName: node-2, hostNetwork: true, containers: [{name: h, image: h}]}
---
apiVersion: v1
kind: Service
metadata: {name: c, namespace: shop}
spec:
  clusterIP: 10.96.0.30
  internalTrafficPolicy: Local
  selector: {app: c}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: h, namespace: shop}
spec:
  clusterIP: 10.96.0.32
  selector: {app: h}
  ports: [{name: metrics, port: 9100}]
---
apiVersion: v1
kind: Service
metadata: {name: nodes, namespace: shop}
spec:
  clusterIP: 10.96.0.31
  ports: [{name: kubelet, port: 10250}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: nodes-1, namespace: shop, labels: {kubernetes.io/service-name: nodes}}
addressType: IPv4
ports: [{name: kubelet, port: 10250, protocol: TCP}]
endpoints:
- addresses: [192.168.77.1]
- addresses: [192.168.77.2]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: c, namespace: shop}
spec:
  podSelector: {matchLabels: {app: c}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: http}]
  egress:
  - to: [{podSelector: {matchLabels: {app: web}}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: d, namespace: shop}
spec:
  podSelector: {matchLabels: {app: d}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: web}}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: c}}}]
    ports: [{port: 80}]
"#;
        let model = model(extra);
        let shared = model.service_matrix(None, None);
        let every_pod = model.service_matrix_with(None, None, false);
        assert_eq!(shared, every_pod);
        let row = shared.rows.iter().position(|r| r.name == "shop/c").unwrap();
        assert_eq!(shared.rows[row].members.len(), 3);
        // Seen from the c pods, shop/web's http port: web-1 (80) admits
        // them, web-2 (8080) does not.
        let web = shared
            .columns
            .iter()
            .position(|c| model.cluster().services[c.service].name == "web")
            .unwrap();
        let cell = shared.cell(row, web);
        assert_eq!(cell.outcome, ServiceCellOutcome::Intermittent);
        assert_eq!(cell.allowed_backends(), 1);
        assert_eq!(cell.backends.len(), 2);
    }

    #[test]
    fn pods_that_disagree_make_a_partial_cell() {
        let outcomes = |allowed, intermittent, denied, no_backends| PodOutcomes {
            allowed,
            intermittent,
            denied,
            no_backends,
            external_name: 0,
        };
        let merge = |o| ServiceCell::merge(o, false);
        assert_eq!(merge(outcomes(2, 0, 0, 0)), ServiceCellOutcome::Allowed);
        assert_eq!(
            merge(outcomes(0, 2, 0, 0)),
            ServiceCellOutcome::Intermittent
        );
        assert_eq!(merge(outcomes(0, 0, 2, 0)), ServiceCellOutcome::Denied);
        assert_eq!(merge(outcomes(0, 0, 1, 1)), ServiceCellOutcome::Denied);
        assert_eq!(merge(outcomes(0, 0, 0, 2)), ServiceCellOutcome::NoBackends);
        assert_eq!(merge(outcomes(1, 0, 1, 0)), ServiceCellOutcome::Partial);
        assert_eq!(merge(outcomes(1, 1, 0, 0)), ServiceCellOutcome::Partial);
        assert_eq!(merge(outcomes(0, 1, 0, 1)), ServiceCellOutcome::Partial);
    }

    #[test]
    fn backend_ports_list_every_port_of_every_backend() {
        let model = model("");
        let dns = model.find_service("kube-system", "kube-dns").unwrap();
        let ports = model.service_backend_ports(dns);
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[0].1.to_string(), "TCP 53; UDP 53");
        let web = model.find_service("shop", "web").unwrap();
        let ports: Vec<String> = model
            .service_backend_ports(web)
            .iter()
            .map(|(_, p)| p.to_string())
            .collect();
        assert_eq!(ports, ["TCP 80", "TCP 8080"]);
        let cloud = model.find_service("db", "cloud-db").unwrap();
        assert!(model.service_backend_ports(cloud).is_empty());
    }
}
