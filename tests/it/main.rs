//! Integration tests: one binary, one module per area.

mod apiserver;
mod cel;
mod crd;
mod manifests;
mod tls;
mod validation;
