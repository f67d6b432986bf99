//! How many requests are on the wire at once (`[source] concurrency`): a fixed number, or
//! `"auto"` — found while the run goes, in the spirit of TCP's congestion control.
//!
//! With `auto` the limit starts at 4 and doubles each round trip while throughput keeps
//! rising or answers come about as fast as the fastest seen (nothing queues at the server, as
//! TCP Vegas reads it; slow start); once a doubling no longer pays, it goes back to where it did
//! and grows by one per round trip under the same test (additive increase). A 429 halves it and a 5xx
//! takes a quarter off, at most once a round trip (multiplicative decrease). It never passes
//! what the server's declared budget can carry: a rate of R requests/s answered in L s each
//! needs about R×L in flight, so the limit is held at that (plus a margin for jitter) once the
//! run has seen `x-ratelimit-limit-requests` or has `[source] requests_per_minute`. The report
//! says where it settled and why.

use crate::sync::lock;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The most requests `auto` puts on the wire (and the most a fixed `concurrency` may be).
pub const MAX_CONCURRENCY: usize = 64;
/// Where `auto` starts (the old default).
pub const AUTO_START: usize = 4;

/// `[source] concurrency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Concurrency {
    #[default]
    Auto,
    Fixed(usize),
}

impl Concurrency {
    /// How many units of work (threads, file lookups) a stage keeps started, so that the wire
    /// can be as busy as the limit allows; they wait for a slot, holding nothing.
    pub fn width(self) -> usize {
        match self {
            Concurrency::Auto => MAX_CONCURRENCY,
            Concurrency::Fixed(n) => n.max(1),
        }
    }
}

/// How a request ended, for the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered (whatever the status, except the two below): latency counts.
    Answered(Duration),
    /// 429: the server says slow down.
    Throttled,
    /// 5xx or a dropped connection: the server may be overloaded.
    Failed,
}

/// Where the limit is and why, for the report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Settled {
    /// "auto" or "fixed".
    pub mode: &'static str,
    /// The limit at the end of the run.
    pub limit: usize,
    /// The highest it reached.
    pub peak: usize,
    /// Times a 429 or a server error made it back off.
    pub backoffs: u64,
    pub reason: String,
}

/// Requests on the wire, at most `limit` at once.
#[derive(Debug)]
pub struct Limiter {
    state: Mutex<State>,
    freed: Notify,
}

#[derive(Debug)]
struct State {
    adaptive: bool,
    /// Fractional, so that additive steps and decreases compose.
    limit: f64,
    in_flight: usize,
    peak: usize,
    backoffs: u64,
    slow_start: bool,
    /// Completions and start of the current measuring window (about one round trip).
    window_done: usize,
    window_start: Option<Instant>,
    /// Throughput (completions/s) of the last window, and the limit it was measured at.
    last_rate: f64,
    /// Mean latency of answered requests (exponentially weighted).
    latency: Option<Duration>,
    /// The fastest answer seen: the latency without queueing, as TCP Vegas' base RTT.
    base_latency: Option<Duration>,
    last_decrease: Option<Instant>,
    /// Requests per second the server declares (or the mapping configures).
    declared_rate: Option<f64>,
    reason: String,
}

impl Limiter {
    pub fn new(concurrency: Concurrency) -> Limiter {
        let (adaptive, limit, reason) = match concurrency {
            Concurrency::Auto => (true, AUTO_START, "starting point; no round trip measured yet".to_string()),
            Concurrency::Fixed(n) => (false, n.clamp(1, MAX_CONCURRENCY), "[source] concurrency".to_string()),
        };
        Limiter {
            state: Mutex::new(State {
                adaptive,
                limit: limit as f64,
                in_flight: 0,
                peak: limit,
                backoffs: 0,
                slow_start: true,
                window_done: 0,
                window_start: None,
                last_rate: 0.0,
                latency: None,
                base_latency: None,
                last_decrease: None,
                declared_rate: None,
                reason,
            }),
            freed: Notify::new(),
        }
    }

    /// Waits for a slot; the slot is given back when the permit drops.
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            // Registered before the check, so a release in between is not missed.
            let freed = self.freed.notified();
            {
                let mut s = lock(&self.state);
                if s.in_flight < s.current() {
                    s.in_flight += 1;
                    if s.window_start.is_none() {
                        s.window_start = Some(Instant::now());
                    }
                    return Permit { limiter: self, started: Instant::now() };
                }
            }
            freed.await;
        }
    }

    /// What the server declares it allows per second (from `x-ratelimit-limit-requests`, or
    /// `[source] requests_per_minute`): the limit is held where that rate is reached.
    pub fn declare_rate(&self, per_second: f64) {
        if per_second > 0.0 {
            let mut s = lock(&self.state);
            s.declared_rate = Some(s.declared_rate.map_or(per_second, |r| r.min(per_second)));
        }
    }

    /// The limit now.
    pub fn limit(&self) -> usize {
        lock(&self.state).current()
    }

    pub fn settled(&self) -> Settled {
        let s = lock(&self.state);
        Settled {
            mode: if s.adaptive { "auto" } else { "fixed" },
            limit: s.current(),
            peak: s.peak,
            backoffs: s.backoffs,
            reason: s.reason.clone(),
        }
    }

    /// Gives a slot back; `outcome` None: the request was abandoned mid-flight (its task was
    /// cancelled), which tells nothing about the server.
    fn release(&self, outcome: Option<Outcome>) {
        {
            let mut s = lock(&self.state);
            s.in_flight = s.in_flight.saturating_sub(1);
            if let (true, Some(outcome)) = (s.adaptive, outcome) {
                s.observe(outcome, Instant::now());
            }
        }
        // A grown limit frees several slots: wake every waiter, they re-check.
        self.freed.notify_waiters();
    }
}

impl State {
    fn current(&self) -> usize {
        (self.limit.floor() as usize).clamp(1, MAX_CONCURRENCY)
    }

    /// The most in flight the declared rate can carry at the latency seen (a quarter more, and
    /// two, for jitter): more would only queue at the server or run into its limit.
    fn declared_cap(&self) -> Option<usize> {
        let (rate, latency) = (self.declared_rate?, self.latency?);
        Some(((rate * latency.as_secs_f64() * 1.25).ceil() as usize + 2).clamp(1, MAX_CONCURRENCY))
    }

    fn observe(&mut self, outcome: Outcome, now: Instant) {
        let rtt = self.latency.unwrap_or(Duration::from_millis(100));
        let may_decrease = self.last_decrease.is_none_or(|t| now.duration_since(t) >= rtt);
        match outcome {
            Outcome::Throttled | Outcome::Failed if may_decrease => {
                let (factor, what) = if outcome == Outcome::Throttled { (0.5, "a 429") } else { (0.75, "a server error") };
                self.limit = (self.limit * factor).max(1.0);
                self.slow_start = false;
                self.backoffs += 1;
                self.last_decrease = Some(now);
                self.reset_window(now);
                self.reason = format!("backed off to {} after {what} (backed off {} times)", self.current(), self.backoffs);
                return;
            }
            Outcome::Throttled | Outcome::Failed => return,
            Outcome::Answered(latency) => {
                self.base_latency = Some(self.base_latency.map_or(latency, |b| b.min(latency)));
                self.latency = Some(match self.latency {
                    None => latency,
                    Some(l) => l.mul_f64(0.8) + latency.mul_f64(0.2),
                });
            }
        }
        self.window_done += 1;
        let Some(start) = self.window_start else {
            self.window_start = Some(now);
            return;
        };
        let elapsed = now.duration_since(start);
        // A window is a limit's worth of completions, and at least one round trip.
        if self.window_done < self.current() || elapsed < rtt {
            return;
        }
        let rate = self.window_done as f64 / elapsed.as_secs_f64().max(1e-6);
        let rising = rate > self.last_rate * 1.1;
        // Answers still come about as fast as the fastest seen: nothing queues at the server, so
        // more in flight costs it nothing, even where this window's throughput did not show a
        // gain (engram's own stages, or noise). Once they slow down, only a rising throughput
        // justifies more (as TCP Vegas reads queueing from the round trip).
        let unqueued = self.base_latency.zip(self.latency).is_some_and(|(b, l)| l.as_secs_f64() < b.as_secs_f64() * 1.5);
        if self.slow_start {
            if rising || unqueued {
                self.limit = (self.limit * 2.0).min(MAX_CONCURRENCY as f64);
                self.reason = match rising {
                    true => format!("growing: {rate:.0} requests/s at {} in flight and rising", self.current()),
                    false => format!("growing: answers as fast as at {} in flight ({rate:.0} requests/s)", self.current()),
                };
            } else {
                // The last doubling bought nothing: go back to where it paid, then probe gently.
                self.limit = (self.limit / 2.0).max(AUTO_START as f64).max(1.0);
                self.slow_start = false;
                self.reason = format!("throughput stopped rising at {rate:.0} requests/s; more in flight only queues");
            }
        } else if (rising || unqueued) && self.current() < MAX_CONCURRENCY {
            // Nothing queues: a quarter more at once is as safe as one more, and gets back to
            // the top within a few round trips after a spike (a 2,048-input embeddings answer).
            self.limit += if unqueued { (self.limit / 4.0).max(1.0) } else { 1.0 };
            self.reason = format!("probing: {rate:.0} requests/s at {} in flight", self.current());
        }
        if self.current() >= MAX_CONCURRENCY {
            self.reason = format!("at the most engram puts in flight ({MAX_CONCURRENCY}), {rate:.0} requests/s");
        }
        if let Some(cap) = self.declared_cap().filter(|cap| self.limit > *cap as f64) {
            self.limit = cap as f64;
            self.slow_start = false;
            self.reason = format!(
                "held at {cap}: the declared {:.0} requests/min at {:.0} ms per request",
                self.declared_rate.unwrap_or_default() * 60.0,
                self.latency.unwrap_or_default().as_secs_f64() * 1000.0
            );
        }
        self.peak = self.peak.max(self.current());
        self.last_rate = rate;
        self.reset_window(now);
    }

    fn reset_window(&mut self, now: Instant) {
        self.window_done = 0;
        self.window_start = Some(now);
    }
}

/// A slot on the wire; dropping it without `done` counts as answered (latency measured).
pub struct Permit<'a> {
    limiter: &'a Limiter,
    started: Instant,
}

impl Permit<'_> {
    /// Gives the slot back, telling the controller how the request went.
    pub fn done(self, outcome: impl FnOnce(Duration) -> Outcome) {
        let outcome = outcome(self.started.elapsed());
        let limiter = self.limiter;
        std::mem::forget(self);
        limiter.release(Some(outcome));
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.limiter.release(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `n` requests through `limiter` against a server that answers in `latency` and
    /// holds at most `capacity` at once (more queue behind it); returns the peak in flight.
    async fn drive(limiter: &Limiter, n: usize, latency: Duration, capacity: usize) -> usize {
        let server = tokio::sync::Semaphore::new(capacity);
        let in_flight = std::sync::atomic::AtomicUsize::new(0);
        let peak = std::sync::atomic::AtomicUsize::new(0);
        let one = || async {
            let permit = limiter.acquire().await;
            let now = in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
            let _slot = server.acquire().await.unwrap();
            tokio::time::sleep(latency).await;
            in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            permit.done(Outcome::Answered);
        };
        futures::future::join_all((0..n).map(|_| one())).await;
        peak.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test(start_paused = true)]
    async fn a_fixed_limit_is_never_passed() {
        let l = Limiter::new(Concurrency::Fixed(3));
        assert_eq!(drive(&l, 50, Duration::from_millis(30), 64).await, 3);
        assert_eq!(l.settled().mode, "fixed");
        assert_eq!(l.limit(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn auto_grows_while_the_server_has_room_and_stops_where_it_has_none() {
        // A server that takes 64 at once: auto climbs to the most engram puts in flight.
        let l = Limiter::new(Concurrency::Auto);
        drive(&l, 3000, Duration::from_millis(30), 64).await;
        assert!(l.settled().peak >= 32, "{:?}", l.settled());
        // ... and stays there while answers come as fast as ever, though at the top the
        // throughput cannot rise any more.
        assert_eq!(l.settled().limit, MAX_CONCURRENCY, "{:?}", l.settled());
        // One that serves 8 at once: past 8 the throughput stops rising; auto stays near it.
        let l = Limiter::new(Concurrency::Auto);
        drive(&l, 3000, Duration::from_millis(30), 8).await;
        let s = l.settled();
        assert!(s.limit <= 16 && s.limit >= 4, "{s:?}");
        assert!(s.reason.contains("stopped rising") || s.reason.contains("probing"), "{s:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn auto_holds_where_the_declared_rate_is_reached() {
        let l = Limiter::new(Concurrency::Auto);
        // 50 requests/s at 150 ms needs about 7.5 in flight.
        l.declare_rate(50.0);
        drive(&l, 600, Duration::from_millis(150), 64).await;
        let s = l.settled();
        assert!(s.limit <= 12 && s.limit >= 8, "{s:?}");
        assert!(s.reason.starts_with("held at"), "{s:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_halves_the_limit_once_per_round_trip() {
        let l = Limiter::new(Concurrency::Auto);
        drive(&l, 2000, Duration::from_millis(20), 64).await;
        let before = l.limit();
        for _ in 0..5 {
            l.acquire().await.done(|_| Outcome::Throttled);
        }
        let s = l.settled();
        assert_eq!(s.limit, (before / 2).max(1), "{s:?}");
        assert_eq!(s.backoffs, 1, "five 429s in one round trip are one back-off");
        assert!(s.reason.contains("after a 429"), "{s:?}");
    }
}
