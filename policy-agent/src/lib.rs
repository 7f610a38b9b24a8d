//! # policy-agent: one node's enforcer
//!
//! `netpol agent` keeps the kernel's `inet netpol` table equal to what the
//! model allows for the pods of one node, as the cluster changes.
//!
//! Data flow: a [`source`] (directory or Kubernetes API) sends snapshots →
//! [`plan::Planner`] loads them, repairs unreadable objects from the last
//! good state and compiles the node's ruleset (pure, no I/O) →
//! [`enforce::Enforcer`] turns the change into one nft transaction (element
//! updates, or a full table replace) and applies it through a
//! [`kernel::Kernel`], then checks for drift every few seconds. [`agent`]
//! wires these to a tokio runtime, signals and the [`http`] endpoints that
//! serve [`metrics`].

#![warn(missing_docs)]

pub mod agent;
pub mod enforce;
pub mod http;
pub mod kernel;
pub mod libnft;
pub mod metrics;
pub mod nftgen;
pub mod plan;
pub mod source;

pub use agent::{AgentError, AgentOptions, SourceChoice, run};
pub use plan::{OnUnreadable, Planner};
