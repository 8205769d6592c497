//! Integration tests: they drive the real `voisin` binary, as admins and CI
//! do. One test binary, one module per area.

mod catalog;
mod check;
mod dns;
mod examples;
mod help;
mod init;
mod render;
mod schema;
mod support;
