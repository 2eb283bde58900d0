//! Gateway API `BackendTLSPolicy` for Rust.
//!
//! (crate docs are written in full further below)

pub mod api;
pub mod crd;
