//! Integration tests: one binary, one module per area.

mod apiserver;
mod cel;
mod crd;
mod fail_closed;
mod manifests;
mod properties;
#[cfg(feature = "runtime")]
mod runtime;
mod tls;
mod validation;
