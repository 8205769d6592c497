//! Integration tests: they drive the real `voisin` binary, as admins and CI
//! do. One test binary, one module per area.

mod catalog;
mod check;
mod compose;
mod dns;
mod examples;
mod render;
mod schema;
mod support;
