//! Ctrl-C (SIGINT). The first stops new work: the run finishes the batch in flight, writes its
//! report (marked interrupted) and exits 130. A second exits 130 at once. Either way every file
//! already written is whole (the sinks write atomically), so the next run resumes: records
//! already written are planned as unchanged and not written again.
//!
//! Stages never look at signals; they get an [`Interrupt`] and check it between units of work.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

/// A cancellation flag shared by the signal listener and the pipeline. The default is never
/// set (tests, library callers).
#[derive(Clone, Default, Debug)]
pub struct Interrupt {
    inner: Arc<Inner>,
}

#[derive(Default, Debug)]
struct Inner {
    set: AtomicBool,
    notify: Notify,
}

impl Interrupt {
    /// True once the run has been asked to stop.
    pub fn is_set(&self) -> bool {
        self.inner.set.load(Ordering::SeqCst)
    }

    /// Asks the run to stop after the work in flight.
    pub fn set(&self) {
        self.inner.set.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// Resolves once the flag is set (at once if it already is).
    pub async fn wait(&self) {
        loop {
            // Registered before the check, so a `set` between the two is not missed.
            let notified = self.inner.notify.notified();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }

    /// `next`'s output, or None once Ctrl-C has come (checked first, so a loop over a stream
    /// stops taking items at the first chance): the one Ctrl-C loop of `migrate` and `export`.
    pub async fn unless_set<F: std::future::Future>(&self, next: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            _ = self.wait() => None,
            out = next => Some(out),
        }
    }

    /// Listens for Ctrl-C on the current tokio runtime: the first sets the flag, the second
    /// ends the process with 130. The handler is registered before this returns, so a Ctrl-C
    /// that comes right after start-up is not lost to the default handler.
    pub fn listen(&self) -> std::io::Result<()> {
        let me = self.clone();
        #[cfg(unix)]
        {
            let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
            tokio::spawn(async move {
                if sigint.recv().await.is_none() {
                    return;
                }
                me.first_interrupt();
                if sigint.recv().await.is_some() {
                    abort_now();
                }
            });
        }
        #[cfg(not(unix))]
        {
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_err() {
                    return;
                }
                me.first_interrupt();
                if tokio::signal::ctrl_c().await.is_ok() {
                    abort_now();
                }
            });
        }
        Ok(())
    }

    fn first_interrupt(&self) {
        eprintln!(
            "engram: interrupted: finishing the batch in flight, then writing the report (Ctrl-C again to stop at once; a rerun resumes either way)"
        );
        self.set();
    }
}

fn abort_now() -> ! {
    eprintln!("engram: interrupted again: stopping now; files already written are whole, rerun to resume");
    std::process::exit(130)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unless_set_gives_the_output_until_ctrl_c_then_none() {
        let i = Interrupt::default();
        assert_eq!(i.unless_set(async { 7 }).await, Some(7));
        i.set();
        // Ready futures lose to a set flag: the loop stops at once.
        assert_eq!(i.unless_set(async { 7 }).await, None);
    }

    #[tokio::test]
    async fn wait_returns_once_set_and_at_once_when_already_set() {
        let i = Interrupt::default();
        assert!(!i.is_set());
        let waiter = tokio::spawn({
            let i = i.clone();
            async move { i.wait().await }
        });
        tokio::task::yield_now().await;
        i.set();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap();
        assert!(i.is_set());
        tokio::time::timeout(std::time::Duration::from_secs(5), i.wait()).await.unwrap();
    }
}
