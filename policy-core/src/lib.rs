//! policy-core
pub mod decode;
pub mod path;
pub mod yaml;
