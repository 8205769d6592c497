//! Integration tests: they drive the real `voisin` binary, as admins and CI
//! do. One test binary, one module per area.

mod backup;
mod bundle;
mod catalog;
mod check;
mod compose;
mod deploy;
mod dns;
mod doctor;
mod examples;
mod executables;
mod help;
mod images;
mod init;
mod remote;
mod render;
mod schedule;
mod schema;
mod support;
mod swarm;
mod upgrade;
mod watch;
