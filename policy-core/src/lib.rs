//! # policy-core: what do these Kubernetes NetworkPolicies allow?
//!
//! This crate loads Kubernetes manifests (Namespaces, Pods, workloads,
//! Services and `networking.k8s.io/v1` NetworkPolicies), normalises them into
//! a reachability model, and answers "can A reach B on port P?" exactly, with
//! the policies and rules behind the answer.
//!
//! It is pure: no network, no processes, no async runtime. Reading files is
//! the caller's job; the [`Loader`] takes text.
//!
//! ```
//! use policy_core::{Config, Loader, Model, PortQuery, Protocol};
//!
//! let manifests = r#"
//! apiVersion: v1
//! kind: Pod
//! metadata: {name: web, namespace: shop, labels: {app: web}}
//! ---
//! apiVersion: v1
//! kind: Pod
//! metadata: {name: db, namespace: shop, labels: {app: db}}
//! ---
//! apiVersion: networking.k8s.io/v1
//! kind: NetworkPolicy
//! metadata: {name: db-from-web, namespace: shop}
//! spec:
//!   podSelector: {matchLabels: {app: db}}
//!   ingress:
//!   - from: [{podSelector: {matchLabels: {app: web}}}]
//!     ports: [{port: 5432}]
//! "#;
//! let mut loader = Loader::new();
//! loader.load_str("shop.yaml", manifests);
//! let loaded = loader.finish();
//! assert!(loaded.diagnostics.is_empty());
//!
//! let model = Model::new(loaded.cluster, Config::default());
//! let web = model.resolve_endpoint("shop/web").unwrap();
//! let db = model.resolve_endpoint("shop/db").unwrap();
//! let verdict = model.query(web, db, &PortQuery::Number(5432), Protocol::Tcp).unwrap();
//! assert!(verdict.allowed());
//! let verdict = model.query(db, web, &PortQuery::Number(80), Protocol::Tcp).unwrap();
//! assert!(verdict.allowed()); // web is not isolated
//! let verdict = model.query(web, db, &PortQuery::Number(80), Protocol::Tcp).unwrap();
//! assert!(!verdict.allowed());
//! ```
//!
//! The pieces, in data-flow order:
//! - [`yaml`] parses text into spanned trees; [`decode`] turns them into
//!   k8s-openapi types, reporting unknown fields and type errors by line.
//! - [`load`] builds a [`Cluster`]; [`policy`] normalises and validates
//!   NetworkPolicies; [`admin`] does the same for the cluster-wide admin
//!   tiers (AdminNetworkPolicy, BaselineAdminNetworkPolicy,
//!   ClusterNetworkPolicy), which the model does not use yet.
//! - [`model`] groups endpoints into classes and compiles the rules; it answers
//!   queries ([`Model::query`]), truth tables ([`Model::port_matrix`]) and
//!   connection sets ([`Model::connections`]); [`graph`] exports it to petgraph.
//! - [`overview`] sums the model up by workload and namespace, for reports.
//! - [`config`] holds the choices the spec leaves to implementations.

#![warn(missing_docs)]

pub mod admin;
pub mod bitset;
pub mod cluster;
pub mod config;
pub mod decode;
pub mod diagnostic;
pub mod diff;
pub mod explain;
pub mod exposure;
pub mod graph;
pub mod ipset;
pub mod json;
pub mod labels;
pub mod lint;
pub mod load;
pub mod model;
pub mod overview;
pub mod path;
pub mod policy;
pub mod ports;
pub mod selector;
pub mod validate;
pub mod yaml;

pub use cluster::{Cluster, Endpoint, EndpointId, EndpointKind, Namespace};
pub use config::{
    AddressFamily, Config, HostNetworkMode, IpBlockMode, SelfTraffic, ServiceProfile,
};
pub use diagnostic::{Diagnostic, DiagnosticKind, Severity};
pub use load::{Loaded, LoadedFile, Loader};
pub use model::{Model, PortQuery, QueryEndpoint, SideVerdict, Verdict};
pub use policy::{Direction, Policy};
pub use ports::{PortSet, Protocol};
