//! Injected faults, the per-minute request and token limiters, the simulated latency, and the listener that lets a handler drop
//! its connection.
//!
//! Dropping works like this: every accepted socket is wrapped in a [`DroppableStream`] whose
//! kill switch is also handed to the handler (as axum connect-info, [`Connection`]). A handler
//! that must drop its request flips the switch and returns; when hyper then tries to write the
//! response, the stream sets `SO_LINGER` to zero and fails the write, hyper abandons the
//! connection, and the socket closes with a reset. The client sees the connection die with no
//! response bytes at all, which is what a crashed proxy or a network cut looks like.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::Faults;
use super::lock;

/// What an injected fault does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    Drop,
    TooManyRequests,
    ServerError,
}

/// How long the `n`th request takes before it is answered: `latency_ms` plus a jitter in
/// `0..=jitter_ms` that depends only on `n` (so a run is reproducible).
pub(crate) fn latency_for(n: u64, timing: &super::Timing) -> Duration {
    let jitter = match timing.jitter_ms {
        0 => 0,
        j => {
            // SplitMix64 of the arrival number: evenly spread, no state.
            let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) % (j + 1)
        }
    };
    Duration::from_millis(timing.latency_ms + jitter)
}

/// The fault due for the `n`th `/v1` request (counting from 1), if any.
pub(crate) fn fault_for(n: u64, faults: &Faults) -> Option<Fault> {
    let due = |every: Option<u64>| every.is_some_and(|k| k > 0 && n.is_multiple_of(k));
    if due(faults.drop_every) {
        Some(Fault::Drop)
    } else if due(faults.every_429) {
        Some(Fault::TooManyRequests)
    } else if due(faults.every_500) {
        Some(Fault::ServerError)
    } else {
        None
    }
}

/// The state of the request budget, as reported in the `x-ratelimit-*-requests` headers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RateState {
    pub limit: u64,
    pub remaining: u64,
    /// Time until the budget is fully restored.
    pub reset: Duration,
}

/// A per-minute limit as OpenAI applies it: a budget of `limit` that is spent by each request
/// (or its tokens) and replenishes continuously, the whole of it over `window` (a minute).
/// `remaining` is what is left now and `reset` the time until the budget is whole again — what
/// the `x-ratelimit-remaining-*` and `x-ratelimit-reset-*` headers say. Refused requests
/// spend nothing.
pub(crate) struct RateLimiter {
    limit: u64,
    window: Duration,
    /// The budget left (fractional: it refills continuously) and when it was last brought up
    /// to date.
    level: Mutex<(f64, Option<Instant>)>,
}

/// OpenAI's limits are per minute.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

impl RateLimiter {
    /// A limit replenished over `window` (tests shorten it; the headers follow it).
    pub fn with_window(limit: u64, window: Duration) -> Self {
        RateLimiter {
            limit,
            window: if window.is_zero() { WINDOW } else { window },
            level: Mutex::new((limit as f64, None)),
        }
    }

    /// Takes one request from the budget, or says how long until one is free again.
    pub fn acquire(&self, now: Instant) -> Result<RateState, (RateState, Duration)> {
        self.acquire_weight(now, 1)
    }

    /// Takes `weight` (a request's tokens) from the budget, or says how long until that much is
    /// back. A weight above the whole limit is admitted once the budget is whole, so a client
    /// that sends one always finishes.
    pub fn acquire_weight(&self, now: Instant, weight: u64) -> Result<RateState, (RateState, Duration)> {
        let mut level = lock(&self.level);
        let available = self.refill(&mut level, now);
        let need = weight.min(self.limit) as f64;
        if available + 1e-9 >= need {
            level.0 = available - weight as f64;
            Ok(self.state(level.0))
        } else {
            Err((self.state(available), self.time_for(need - available)))
        }
    }

    /// The budget without taking from it (for answers that never reached the limiter).
    pub fn peek(&self, now: Instant) -> RateState {
        let mut level = lock(&self.level);
        let available = self.refill(&mut level, now);
        self.state(available)
    }

    fn refill(&self, level: &mut (f64, Option<Instant>), now: Instant) -> f64 {
        if let Some(at) = level.1 {
            let back = now.saturating_duration_since(at).as_secs_f64() * self.limit as f64 / self.window.as_secs_f64();
            level.0 = (level.0 + back).min(self.limit as f64);
        }
        level.1 = Some(now);
        level.0
    }

    fn time_for(&self, amount: f64) -> Duration {
        Duration::from_secs_f64((amount.max(0.0) * self.window.as_secs_f64() / self.limit.max(1) as f64).min(3600.0))
    }

    fn state(&self, available: f64) -> RateState {
        RateState {
            limit: self.limit,
            remaining: available.max(0.0).floor() as u64,
            reset: self.time_for(self.limit as f64 - available),
        }
    }
}

/// Formats a duration like Go's `time.Duration.String`, rounded to milliseconds, which is how
/// OpenAI writes `x-ratelimit-reset-*`: `0s`, `20ms`, `1s`, `1.5s`, `6m0s`, `1h2m3s`.
pub(crate) fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m) = (ms / 3_600_000, ms / 60_000 % 60);
    let (s, frac) = (ms / 1000 % 60, ms % 1000);
    let mut secs = s.to_string();
    if frac > 0 {
        secs.push_str(format!(".{frac:03}").trim_end_matches('0'));
    }
    match (h, m) {
        (0, 0) => format!("{secs}s"),
        (0, m) => format!("{m}m{secs}s"),
        (h, m) => format!("{h}h{m}m{secs}s"),
    }
}

/// A TCP listener whose connections can be dropped by their handler.
pub(crate) struct DroppableListener(pub TcpListener);

impl Listener for DroppableListener {
    type Io = DroppableStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.0).await;
        let _ = stream.set_nodelay(true);
        (
            DroppableStream {
                inner: stream,
                killed: Arc::new(AtomicBool::new(false)),
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A connected socket with a kill switch shared with the handlers serving it.
pub(crate) struct DroppableStream {
    inner: TcpStream,
    killed: Arc<AtomicBool>,
}

impl DroppableStream {
    fn check(&self) -> io::Result<()> {
        if self.killed.load(Ordering::SeqCst) {
            // Zero linger: closing the socket resets it instead of a graceful FIN.
            let _ = self.inner.set_zero_linger();
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "stand-in dropped the connection",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for DroppableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for DroppableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check()?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The handler's side of a connection: the switch that drops it.
#[derive(Clone)]
pub(crate) struct Connection {
    killed: Arc<AtomicBool>,
}

impl Connection {
    /// Marks the connection to be reset instead of answered.
    pub fn drop_without_response(&self) {
        self.killed.store(true, Ordering::SeqCst);
    }
}

impl Connected<IncomingStream<'_, DroppableListener>> for Connection {
    fn connect_info(stream: IncomingStream<'_, DroppableListener>) -> Self {
        Connection {
            killed: stream.io().killed.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let ms = Duration::from_millis;
        assert_eq!(go_duration(ms(0)), "0s");
        assert_eq!(go_duration(ms(20)), "20ms");
        assert_eq!(go_duration(ms(1000)), "1s");
        assert_eq!(go_duration(ms(1500)), "1.5s");
        assert_eq!(go_duration(ms(59_120)), "59.12s");
        assert_eq!(go_duration(ms(360_000)), "6m0s");
        assert_eq!(go_duration(ms(3_723_000)), "1h2m3s");
    }

    #[test]
    fn faults_by_arrival_number() {
        let f = Faults {
            every_429: Some(3),
            every_500: Some(5),
            drop_every: Some(15),
            ..Faults::default()
        };
        let got: Vec<_> = (1..=15).map(|n| fault_for(n, &f)).collect();
        assert_eq!(got[2], Some(Fault::TooManyRequests));
        assert_eq!(got[4], Some(Fault::ServerError));
        assert_eq!(got[14], Some(Fault::Drop));
        assert_eq!(got.iter().filter(|f| f.is_some()).count(), 7);
        assert_eq!(
            fault_for(
                7,
                &Faults {
                    every_429: Some(0),
                    ..Faults::default()
                }
            ),
            None
        );
    }

    #[test]
    fn the_budget_is_spent_and_replenishes_continuously() {
        let rl = RateLimiter::with_window(2, WINDOW);
        let t0 = Instant::now();
        let s = rl.acquire(t0).unwrap();
        assert_eq!((s.remaining, s.reset), (1, Duration::from_secs(30)));
        let s = rl.acquire(t0).unwrap();
        assert_eq!((s.remaining, s.reset), (0, Duration::from_secs(60)));
        // 10 s later a third of a request is back: the next one waits 20 s more.
        let (s, wait) = rl.acquire(t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!((s.remaining, wait), (0, Duration::from_secs(20)));
        assert_eq!(rl.acquire(t0 + Duration::from_secs(30)).unwrap().remaining, 0);
        assert_eq!(rl.peek(t0 + Duration::from_secs(200)).remaining, 2);
    }

    #[test]
    fn token_weights_spend_the_budget_and_the_wait_covers_the_shortfall() {
        let rl = RateLimiter::with_window(100, Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(rl.acquire_weight(t0, 60).unwrap().remaining, 40);
        // 50 more do not fit: 10 short, back in 1 s (10 a second).
        let (state, wait) = rl.acquire_weight(t0, 50).unwrap_err();
        assert_eq!(state.remaining, 40);
        assert_eq!(wait, Duration::from_secs(1));
        assert_eq!(rl.acquire_weight(t0 + Duration::from_secs(1), 50).unwrap().remaining, 0);
        // A request larger than the whole limit goes through once the budget is whole.
        assert!(rl.acquire_weight(t0 + Duration::from_secs(2), 500).is_err());
        assert!(rl.acquire_weight(t0 + Duration::from_secs(30), 500).is_ok());
    }

    #[test]
    fn latency_is_fixed_plus_a_reproducible_bounded_jitter() {
        let timing = crate::Timing { latency_ms: 150, jitter_ms: 20, embed_us_per_input: 0 };
        let all: Vec<Duration> = (1..=200).map(|n| latency_for(n, &timing)).collect();
        assert!(all.iter().all(|d| (150..=170).contains(&(d.as_millis() as u64))));
        assert!(all.iter().any(|d| *d != all[0]), "the jitter varies");
        assert_eq!(latency_for(7, &timing), latency_for(7, &timing));
        assert_eq!(latency_for(7, &crate::Timing::default()), Duration::ZERO);
    }
}
