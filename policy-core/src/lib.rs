//! policy-core
pub mod cluster;
pub mod decode;
pub mod diagnostic;
pub mod ipset;
pub mod load;
pub mod path;
pub mod policy;
pub mod ports;
pub mod selector;
pub mod validate;
pub mod yaml;
