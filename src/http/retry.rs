//! Retries for live requests: exponential backoff with jitter (backon), honouring the server's
//! own hints (`x-should-retry`, `retry-after-ms`, `retry-after`, `x-ratelimit-reset-*`), and a
//! pause shared by every request in flight so that a 429 slows the whole run down instead of
//! every task hammering the server at once.

use crate::sync::lock;
use super::limiter::{Concurrency, Limiter, Outcome};
use super::transport::{ApiRequest, ApiResponse, Live, RequestStats, TransportError};
use backon::{ExponentialBuilder, Retryable};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The longest server-requested wait engram honours; longer ones are capped.
const MAX_SERVER_DELAY: Duration = Duration::from_secs(300);

/// The retry and rate budget shared by every live request of a run (thread fetches, file
/// lookups and embedding requests alike: they all go through one `Live`).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    /// The first backoff delay (doubled per attempt, with jitter, up to `max_delay`).
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Until when every request waits (set by 429s and exhausted rate budgets).
    pause_until: Arc<Mutex<Option<Instant>>>,
    /// Requests on the wire at once, over all tasks (`[source] concurrency`: fixed or auto).
    in_flight: Arc<Limiter>,
    /// The declared tokens-per-minute budget, booked by embeddings requests before they start.
    tokens: Arc<Mutex<TokenBudget>>,
    /// Spacing between request starts, to run near the declared rate limit, not into it.
    pace: Arc<Mutex<Pace>>,
    /// Counters for the report.
    pub stats: Arc<RequestStats>,
}

/// Request spacing. Starts are spread `interval` apart; the interval follows the server's
/// `x-ratelimit-*-requests` headers once its budget runs low, and never drops below the
/// configured `[source] requests_per_minute`.
#[derive(Debug, Default)]
struct Pace {
    next_start: Option<Instant>,
    /// From the server's headers (zero while its budget is far from spent).
    declared: Duration,
    /// From `[source] requests_per_minute`.
    configured: Duration,
}

impl RetryPolicy {
    pub fn new(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            pause_until: Arc::new(Mutex::new(None)),
            in_flight: Arc::new(Limiter::new(Concurrency::Auto)),
            tokens: Arc::default(),
            pace: Arc::default(),
            stats: Arc::default(),
        }
    }

    /// At most `per_minute` request starts a minute, evenly spaced.
    pub fn with_requests_per_minute(self, per_minute: Option<u32>) -> Self {
        if let Some(n) = per_minute.filter(|n| *n > 0) {
            lock(&self.pace).configured = Duration::from_secs(60) / n;
            self.in_flight.declare_rate(f64::from(n) / 60.0);
        }
        self
    }

    /// Waits for this request's start slot and books the next one.
    async fn take_slot(&self) {
        let start = {
            let mut pace = lock(&self.pace);
            let interval = pace.declared.max(pace.configured);
            if interval.is_zero() {
                pace.next_start = None;
                return;
            }
            let now = Instant::now();
            let start = pace.next_start.filter(|t| *t > now).unwrap_or(now);
            pace.next_start = Some(start + interval);
            start
        };
        tokio::time::sleep_until(start).await;
    }

    /// Follows the server's declared budgets: a spent one pauses everyone until it resets
    /// (rather than running into a 429, see `budget_pause`); a low request budget spaces the
    /// starts (see `declared_interval`).
    fn observe_budget(&self, resp: &ApiResponse) {
        if let Some(reset) = budget_pause(resp) {
            self.pause_for(reset);
        }
        if let Some(limit) = header_u64(resp, "x-ratelimit-limit-requests") {
            self.stats.declared_limit.store(limit, std::sync::atomic::Ordering::Relaxed);
            self.in_flight.declare_rate(limit as f64 / 60.0);
        }
        if let Some(interval) = declared_interval(resp, self.in_flight.limit()) {
            lock(&self.pace).declared = interval;
        }
        if let (Some(limit), Some(remaining)) = (header_u64(resp, "x-ratelimit-limit-tokens"), header_u64(resp, "x-ratelimit-remaining-tokens")) {
            self.stats.declared_tokens.store(limit, std::sync::atomic::Ordering::Relaxed);
            let reset = resp.header("x-ratelimit-reset-tokens").and_then(parse_go_duration);
            lock(&self.tokens).observe(limit, remaining, reset, Instant::now());
        }
    }

    /// How many requests may be on the wire at once, whoever sends them.
    pub fn with_concurrency(mut self, concurrency: Concurrency) -> Self {
        self.in_flight = Arc::new(Limiter::new(concurrency));
        self
    }

    /// Where the in-flight limit settled, and why (for the report).
    pub fn concurrency_settled(&self) -> super::limiter::Settled {
        self.in_flight.settled()
    }

    /// Books `tokens` of the declared tokens-per-minute budget and waits until the budget
    /// covers them (nothing to wait for while no budget is declared).
    async fn take_tokens(&self, tokens: u64) {
        if tokens == 0 {
            return;
        }
        let wait = lock(&self.tokens).book(tokens, Instant::now());
        if !wait.is_zero() {
            tracing::debug!(tokens, wait = ?wait, "waiting for the tokens-per-minute budget");
            tokio::time::sleep(wait.min(MAX_SERVER_DELAY)).await;
        }
    }

    /// The first backoff delay. Tests shorten it (`ENGRAM_RETRY_BASE_MS`); a server's own
    /// `retry-after` is honoured whatever this is.
    pub fn with_min_delay(mut self, d: Duration) -> Self {
        self.min_delay = d;
        self.max_delay = self.max_delay.max(d);
        self
    }

    fn pause_for(&self, d: Duration) {
        let until = Instant::now() + d.min(MAX_SERVER_DELAY);
        let mut guard = lock(&self.pause_until);
        if guard.is_none_or(|u| u < until) {
            *guard = Some(until);
        }
    }

    /// Waits out the shared pause, including extensions made while waiting.
    async fn wait_for_pause(&self) {
        loop {
            let until = *lock(&self.pause_until);
            match until {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => return,
            }
        }
    }
}

/// The declared tokens-per-minute budget as engram estimates it between answers: it refills at
/// the rate the headers imply (the spent part, `limit - remaining`, is back within
/// `x-ratelimit-reset-tokens`; a minute for the whole limit when nothing is spent), and every
/// answer's `x-ratelimit-remaining-tokens` caps the estimate (the server knows best). Requests
/// book their tokens before they start, so concurrent ones queue behind each other instead of
/// all finding the same budget free.
#[derive(Debug, Default)]
struct TokenBudget {
    limit: u64,
    /// May go negative: booked ahead of the refill.
    available: f64,
    /// Tokens per second coming back.
    refill_per_sec: f64,
    at: Option<Instant>,
}

impl TokenBudget {
    fn refill(&mut self, now: Instant) {
        if let Some(at) = self.at {
            self.available = (self.available + now.duration_since(at).as_secs_f64() * self.refill_per_sec).min(self.limit as f64);
        }
        self.at = Some(now);
    }

    fn observe(&mut self, limit: u64, remaining: u64, reset: Option<Duration>, now: Instant) {
        let first = self.at.is_none() || self.limit != limit;
        self.refill(now);
        self.limit = limit;
        self.refill_per_sec = match reset.filter(|r| !r.is_zero() && remaining < limit) {
            Some(reset) => (limit - remaining) as f64 / reset.as_secs_f64(),
            None => limit as f64 / 60.0,
        }
        .max(limit as f64 / 600.0);
        self.available = if first { remaining as f64 } else { self.available.min(remaining as f64) };
    }

    /// Books `tokens`; returns how long until the budget covers them.
    fn book(&mut self, tokens: u64, now: Instant) -> Duration {
        if self.limit == 0 {
            return Duration::ZERO;
        }
        self.refill(now);
        // A request larger than the whole budget waits for a full budget, then goes.
        let need = tokens.min(self.limit) as f64;
        let short = need - self.available;
        self.available -= tokens as f64;
        if short <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(short / self.refill_per_sec.max(1e-9))
    }
}

/// Why one attempt failed.
#[derive(Debug)]
enum Attempt {
    /// Worth another try, after `after` if the server said so.
    Retry { status: u16, message: String, after: Option<Duration> },
    /// Not worth another try (a request that cannot be built).
    Fatal { message: String },
}

/// Sends `req` with retries; `tokens` is what it takes from a declared tokens-per-minute
/// budget (an embeddings request's input tokens; 0 for everything else).
pub(crate) async fn send_with_retry(
    live: &Live,
    req: &ApiRequest,
    policy: &RetryPolicy,
    tokens: u64,
) -> Result<ApiResponse, TransportError> {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .with_jitter()
        .with_max_times(policy.max_attempts.saturating_sub(1) as usize);
    let attempts = std::sync::atomic::AtomicU32::new(0);
    let result = (|| async {
        policy.wait_for_pause().await;
        policy.take_tokens(tokens).await;
        let permit = policy.in_flight.acquire().await;
        policy.wait_for_pause().await;
        policy.take_slot().await;
        attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        policy.stats.attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sent = live.send_once(req).await;
        permit.done(|latency| match &sent {
            Ok(resp) if resp.status == 429 => Outcome::Throttled,
            Ok(resp) if resp.status >= 500 => Outcome::Failed,
            Ok(_) => Outcome::Answered(latency),
            Err(_) => Outcome::Failed,
        });
        match sent {
            Ok(resp) => {
                policy.observe_budget(&resp);
                if should_retry(&resp) {
                    let after = server_delay(&resp);
                    if resp.status == 429 {
                        policy.pause_for(after.unwrap_or(policy.min_delay));
                    }
                    Err(Attempt::Retry { status: resp.status, message: resp.error_message(), after })
                } else {
                    Ok(resp)
                }
            }
            // Errors while connecting, sending, or reading the body (a dropped connection, a
            // timeout) are all worth another try; only a request that cannot be built is not.
            Err(e) if e.is_builder() => Err(Attempt::Fatal { message: describe_reqwest_error(&e) }),
            Err(e) => Err(Attempt::Retry { status: 0, message: describe_reqwest_error(&e), after: None }),
        }
    })
    .retry(backoff)
    .sleep(tokio::time::sleep)
    .when(|e: &Attempt| matches!(e, Attempt::Retry { .. }))
    // The server's wait replaces the backoff's, but never revives a request whose attempts
    // are used up (`d` is None then).
    .adjust(|e: &Attempt, d| match (e, d) {
        (Attempt::Retry { after: Some(after), .. }, Some(_)) => Some((*after).min(MAX_SERVER_DELAY)),
        _ => d,
    })
    .notify(|e: &Attempt, d| {
        if let Attempt::Retry { status, message, .. } = e {
            tracing::debug!(request = %req.describe(), status, %message, delay = ?d, "retrying");
        }
    })
    .await;
    let attempts = attempts.load(std::sync::atomic::Ordering::Relaxed);
    result.map_err(|e| match e {
        Attempt::Retry { status: 0, message, .. } | Attempt::Fatal { message } => {
            TransportError::Network { request: req.describe(), message, attempts }
        }
        Attempt::Retry { status, message, .. } => {
            TransportError::Exhausted { request: req.describe(), attempts, status, message }
        }
    })
}

fn describe_reqwest_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "connection dropped while reading the answer"
    } else {
        "request failed"
    };
    let mut msg = format!("{kind}: {e}");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

/// OpenAI's own rule (the Python SDK): `x-should-retry` first, then 408/409/429/5xx —
/// except a 429 for an exhausted quota, which no amount of waiting fixes.
fn should_retry(resp: &ApiResponse) -> bool {
    match resp.header("x-should-retry") {
        Some("true") => return true,
        Some("false") => return false,
        _ => {}
    }
    match resp.status {
        429 => resp.error_code().as_deref() != Some("insufficient_quota"),
        408 | 409 | 500 | 502 | 503 | 504 => true,
        s => s >= 500,
    }
}

/// The server's requested wait: `retry-after-ms`, `retry-after` (seconds or HTTP date), or on a
/// 429 the request budget's reset time.
fn server_delay(resp: &ApiResponse) -> Option<Duration> {
    if let Some(ms) = resp.header("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64((ms / 1000.0).max(0.0)));
    }
    if let Some(v) = resp.header("retry-after") {
        if let Ok(secs) = v.trim().parse::<f64>() {
            return Some(Duration::from_secs_f64(secs.max(0.0)));
        }
        if let Ok(when) = httpdate::parse_http_date(v.trim()) {
            return Some(when.duration_since(std::time::SystemTime::now()).unwrap_or_default());
        }
    }
    if resp.status == 429 {
        return resp
            .header("x-ratelimit-reset-requests")
            .or(resp.header("x-ratelimit-reset-tokens"))
            .and_then(parse_go_duration);
    }
    None
}

/// How long to hold every request when the answer says a budget (requests or tokens) is spent.
fn budget_pause(resp: &ApiResponse) -> Option<Duration> {
    ["requests", "tokens"]
        .iter()
        .filter(|kind| {
            header_u64(resp, &format!("x-ratelimit-remaining-{kind}")) == Some(0)
        })
        .filter_map(|kind| resp.header(&format!("x-ratelimit-reset-{kind}")).and_then(parse_go_duration))
        .max()
}

fn header_u64(resp: &ApiResponse, name: &str) -> Option<u64> {
    resp.header(name).and_then(|v| v.trim().parse().ok())
}

/// The spacing that keeps a run at, not over, the server's declared request rate. While the
/// remaining budget is large there is none (`Some(ZERO)`); once it falls to a tenth of the
/// limit (or to a few requests per task in flight), requests are spaced at the rate the budget
/// refills: the used part of it (`limit - remaining`) comes back within `reset`. None when the
/// answer declares no budget.
fn declared_interval(resp: &ApiResponse, tasks: usize) -> Option<Duration> {
    let limit = header_u64(resp, "x-ratelimit-limit-requests")?;
    let remaining = header_u64(resp, "x-ratelimit-remaining-requests")?;
    let reset = resp.header("x-ratelimit-reset-requests").and_then(parse_go_duration)?;
    let low = (limit / 10).max(2 * tasks as u64);
    if remaining > low || limit == 0 {
        return Some(Duration::ZERO);
    }
    let used = limit.saturating_sub(remaining).max(1);
    Some((reset / used as u32).min(MAX_SERVER_DELAY))
}

/// Parses Go `time.ParseDuration` strings as OpenAI sends them: `1s`, `6m0s`, `20ms`, `2m59.56s`.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let (factor, unit_len) = if rest.starts_with("ms") {
            (1e-3, 2)
        } else if rest.starts_with("us") {
            (1e-6, 2)
        } else if rest.starts_with("µs") {
            (1e-6, "µs".len())
        } else if rest.starts_with("ns") {
            (1e-9, 2)
        } else if rest.starts_with('h') {
            (3600.0, 1)
        } else if rest.starts_with('m') {
            (60.0, 1)
        } else if rest.starts_with('s') {
            (1.0, 1)
        } else {
            return None;
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> ApiResponse {
        ApiResponse {
            status,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: bytes::Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_go_duration("1h2m3s"), Some(Duration::from_secs(3723)));
        let d = parse_go_duration("2m59.56s").unwrap();
        assert!((d.as_secs_f64() - 179.56).abs() < 1e-9);
        assert_eq!(parse_go_duration("abc"), None);
        assert_eq!(parse_go_duration("5x"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn retry_rules() {
        assert!(should_retry(&resp(429, &[], "{}")));
        assert!(!should_retry(&resp(429, &[], r#"{"error":{"code":"insufficient_quota","message":"x"}}"#)));
        assert!(should_retry(&resp(500, &[], "")));
        assert!(should_retry(&resp(503, &[], "")));
        assert!(!should_retry(&resp(400, &[], "")));
        assert!(!should_retry(&resp(401, &[], "")));
        assert!(!should_retry(&resp(404, &[], "")));
        assert!(should_retry(&resp(400, &[("x-should-retry", "true")], "")));
        assert!(!should_retry(&resp(500, &[("x-should-retry", "false")], "")));
    }

    #[test]
    fn server_delays() {
        assert_eq!(server_delay(&resp(429, &[("retry-after-ms", "120")], "")), Some(Duration::from_millis(120)));
        assert_eq!(server_delay(&resp(429, &[("retry-after", "2")], "")), Some(Duration::from_secs(2)));
        assert_eq!(
            server_delay(&resp(429, &[("x-ratelimit-reset-requests", "6m0s")], "")),
            Some(Duration::from_secs(360))
        );
        assert_eq!(server_delay(&resp(500, &[("x-ratelimit-reset-requests", "1s")], "")), None);
    }

    #[test]
    fn a_low_budget_spaces_requests_at_the_refill_rate() {
        let budget = |remaining: &str| resp(200, &[("x-ratelimit-limit-requests", "600"), ("x-ratelimit-remaining-requests", remaining), ("x-ratelimit-reset-requests", "59s")], "");
        // Far from the limit: no spacing.
        assert_eq!(declared_interval(&budget("500"), 4), Some(Duration::ZERO));
        // 590 used, refilled within 59 s: one start every 100 ms, i.e. 600 a minute.
        assert_eq!(declared_interval(&budget("10"), 4), Some(Duration::from_millis(100)));
        assert_eq!(declared_interval(&resp(200, &[], ""), 4), None);
    }

    #[tokio::test]
    async fn configured_rate_spaces_request_starts() {
        let policy = RetryPolicy::new(3).with_requests_per_minute(Some(3000));
        let t0 = Instant::now();
        for _ in 0..5 {
            policy.take_slot().await;
        }
        // Five starts at 0, 20, 40, 60, 80 ms.
        assert!(t0.elapsed() >= Duration::from_millis(80), "{:?}", t0.elapsed());
        let free = RetryPolicy::new(3);
        let t0 = Instant::now();
        for _ in 0..5 {
            free.take_slot().await;
        }
        assert!(t0.elapsed() < Duration::from_millis(80), "{:?}", t0.elapsed());
    }

    #[test]
    fn a_spent_budget_pauses_until_its_reset() {
        let spent = resp(200, &[("x-ratelimit-remaining-requests", "0"), ("x-ratelimit-reset-requests", "20ms")], "");
        assert_eq!(budget_pause(&spent), Some(Duration::from_millis(20)));
        let tokens = resp(
            200,
            &[
                ("x-ratelimit-remaining-requests", "5"),
                ("x-ratelimit-reset-requests", "1s"),
                ("x-ratelimit-remaining-tokens", "0"),
                ("x-ratelimit-reset-tokens", "6m0s"),
            ],
            "",
        );
        assert_eq!(budget_pause(&tokens), Some(Duration::from_secs(360)));
        assert_eq!(budget_pause(&resp(200, &[("x-ratelimit-remaining-requests", "3")], "")), None);
    }

    #[tokio::test]
    async fn the_shared_pause_holds_every_request_until_it_ends() {
        let policy = RetryPolicy::new(3).with_min_delay(Duration::from_millis(1));
        let other = policy.clone();
        policy.pause_for(Duration::from_millis(80));
        let start = Instant::now();
        other.wait_for_pause().await;
        assert!(start.elapsed() >= Duration::from_millis(70), "{:?}", start.elapsed());
    }

    #[test]
    fn token_bookings_queue_behind_each_other_at_the_declared_refill() {
        let t0 = Instant::now();
        let mut b = TokenBudget::default();
        assert_eq!(b.book(1_000_000, t0), Duration::ZERO, "no budget declared: nothing to wait for");
        // 60,000 tokens a minute (1,000/s), 6,000 spent, back within 6 s.
        b.observe(60_000, 54_000, Some(Duration::from_secs(6)), t0);
        assert_eq!(b.book(50_000, t0), Duration::ZERO);
        // 4,000 left: 10,000 more must wait for 6,000 to come back.
        assert_eq!(b.book(10_000, t0), Duration::from_secs(6));
        // And the next booking queues behind that one.
        assert_eq!(b.book(1_000, t0), Duration::from_secs(7));
        // The server's word caps the estimate.
        b.observe(60_000, 0, Some(Duration::from_secs(60)), t0 + Duration::from_secs(1));
        assert!(b.available <= 0.0);
        // A request over the whole budget waits for a full budget, not forever.
        let mut b = TokenBudget::default();
        b.observe(1_000, 1_000, None, t0);
        assert_eq!(b.book(5_000, t0), Duration::ZERO);
        assert_eq!(b.book(1_000, t0), Duration::from_secs(300), "5,000 booked over a 1,000/min budget");
    }
}
