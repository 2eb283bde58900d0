//! Integration tests: one binary, one module per area.

mod apiserver;
mod cel;
mod crd;
mod manifests;
#[cfg(feature = "runtime")]
mod runtime;
mod tls;
mod validation;
