//! How long work tells what it is doing. The core reports through
//! [`Reporter`]; only the command line draws (bars on a terminal, plain
//! lines elsewhere), so the core never prints.

/// Receives what a running command does.
pub trait Reporter: Send + Sync {
    /// An engine call is about to be made (shown with `-v`).
    fn engine_call(&self, _what: &str) {}
    /// A piece of work starts; `key` names it until it ends.
    fn begin(&self, _key: &str, _what: &str) {}
    /// A piece of work ended well.
    fn done(&self, _key: &str, _what: &str) {}
    /// A piece of work failed.
    fn failed(&self, _key: &str, _what: &str) {}
    /// A line worth saying.
    fn note(&self, _what: &str) {}
    /// Bytes moved for `key` (a pulled layer), out of `total` when known.
    fn bytes(&self, _key: &str, _current: u64, _total: Option<u64>) {}
}

/// A reporter that says nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Reporter for Silent {}
