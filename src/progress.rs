//! Progress on a terminal: a bar while threads are read, nothing when stderr is not a TTY
//! (CI logs stay clean). Stages report through this type and never print themselves.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar over `total` threads, drawn only when `enabled` and stderr is a terminal.
    pub fn threads(total: usize, enabled: bool) -> Progress {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} threads {pos}/{len} [{bar:30}] {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Progress { bar: Some(bar) }
    }

    pub fn thread_done(&self, patterns_so_far: usize) {
        if let Some(b) = &self.bar {
            b.inc(1);
            b.set_message(format!("{patterns_so_far} patterns"));
        }
    }

    pub fn status(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_message(msg.to_string());
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
