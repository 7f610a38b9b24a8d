//! The endpoint graph, for export and multi-hop questions.
//!
//! Nodes are endpoints; an edge A → B carries the ports A may use to reach B.
//! Multi-hop questions ("what could an attacker in A reach, one hop at a
//! time?") are graph searches.

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Bfs, Reversed};

use crate::cluster::EndpointId;
use crate::model::{Model, PortMatrix};
use crate::ports::PortSet;

/// A directed graph of endpoints and their allowed connections.
pub struct ConnectivityGraph {
    /// Node weights are endpoint ids; node `i` is endpoint `i`.
    pub graph: DiGraph<EndpointId, PortSet>,
}

impl ConnectivityGraph {
    /// Every allowed connection between distinct endpoints, with its port set.
    pub fn from_connections(model: &Model) -> Self {
        let endpoints = model.cluster().endpoints.len();
        let mut graph = DiGraph::with_capacity(endpoints, 0);
        for id in 0..endpoints {
            graph.add_node(id);
        }
        let mut matrix = model.connection_matrix();
        for source in 0..endpoints {
            for destination in 0..endpoints {
                if source == destination {
                    continue;
                }
                let ports = matrix.get(source, destination);
                if !ports.is_empty() {
                    graph.add_edge(NodeIndex::new(source), NodeIndex::new(destination), ports);
                }
            }
        }
        ConnectivityGraph { graph }
    }

    /// The allowed connections on one port.
    pub fn from_port_matrix(model: &Model, matrix: &PortMatrix<'_>) -> Self {
        let endpoints = model.cluster().endpoints.len();
        let mut graph = DiGraph::with_capacity(endpoints, 0);
        for id in 0..endpoints {
            graph.add_node(id);
        }
        for source in 0..endpoints {
            for destination in matrix.destinations(source) {
                if source != destination {
                    let ports = match matrix.port() {
                        crate::model::PortQuery::Number(number) => {
                            PortSet::single(matrix.protocol(), *number)
                        }
                        crate::model::PortQuery::Name(_) => PortSet::empty(),
                    };
                    graph.add_edge(NodeIndex::new(source), NodeIndex::new(destination), ports);
                }
            }
        }
        ConnectivityGraph { graph }
    }

    /// Endpoints reachable from `start` in one or more hops, sorted.
    pub fn reachable_from(&self, start: EndpointId) -> Vec<EndpointId> {
        let mut search = Bfs::new(&self.graph, NodeIndex::new(start));
        let mut found = Vec::new();
        while let Some(node) = search.next(&self.graph) {
            if node.index() != start {
                found.push(node.index());
            }
        }
        found.sort_unstable();
        found
    }

    /// Endpoints that can reach `target` in one or more hops, sorted.
    pub fn reaching(&self, target: EndpointId) -> Vec<EndpointId> {
        let reversed = Reversed(&self.graph);
        let mut search = Bfs::new(reversed, NodeIndex::new(target));
        let mut found = Vec::new();
        while let Some(node) = search.next(reversed) {
            if node.index() != target {
                found.push(node.index());
            }
        }
        found.sort_unstable();
        found
    }
}
