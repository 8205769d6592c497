//! The command line's [`Reporter`]: a spinner per piece of work while
//! standard error is a terminal, plain lines otherwise (CI, logs, pipes,
//! `--progress never`); engine calls with `-v`; nothing but errors with `-q`.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{GlobalArgs, Progress};
use crate::progress::Reporter;

/// Draws progress on standard error.
pub struct Cli {
    bars: Option<MultiProgress>,
    active: Mutex<BTreeMap<String, ProgressBar>>,
    verbose: bool,
    quiet: bool,
}

impl Cli {
    /// A reporter for the command line's options.
    pub fn new(global: &GlobalArgs) -> Self {
        let bars = match global.progress {
            Progress::Never => false,
            Progress::Always => true,
            Progress::Auto => std::io::stderr().is_terminal() && std::env::var_os("CI").is_none(),
        } && !global.quiet;
        Self {
            bars: bars.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            active: Mutex::new(BTreeMap::new()),
            verbose: global.verbose > 0,
            quiet: global.quiet,
        }
    }

    fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.bars {
            Some(m) => {
                let _ = m.println(text);
            }
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            }
        }
    }

    fn end(&self, key: &str) {
        if let Ok(mut active) = self.active.lock()
            && let Some(bar) = active.remove(key)
        {
            bar.finish_and_clear();
        }
    }
}

impl Reporter for Cli {
    fn engine_call(&self, what: &str) {
        if self.verbose {
            self.line(&format!("  engine: {what}"));
        }
    }

    fn begin(&self, key: &str, what: &str) {
        let Some(m) = &self.bars else { return };
        let bar = m.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut active) = self.active.lock() {
            active.insert(key.to_string(), bar);
        }
    }

    fn done(&self, key: &str, what: &str) {
        self.end(key);
        self.line(&format!("  ✓ {what}"));
    }

    fn failed(&self, key: &str, what: &str) {
        self.end(key);
        self.line(&format!("  ✗ {what}"));
    }

    fn note(&self, what: &str) {
        self.line(&format!("  {what}"));
    }

    fn bytes(&self, key: &str, current: u64, total: Option<u64>) {
        let Some(m) = &self.bars else { return };
        let Ok(mut active) = self.active.lock() else {
            return;
        };
        let bar = active.entry(key.to_string()).or_insert_with(|| {
            let bar = m.add(ProgressBar::new(total.unwrap_or(0)));
            bar.set_style(
                ProgressStyle::with_template(
                    "  {msg} {bytes}/{total_bytes} {bar:20} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message(key.to_string());
            bar
        });
        if let Some(t) = total {
            bar.set_length(t);
        }
        bar.set_position(current);
    }
}
