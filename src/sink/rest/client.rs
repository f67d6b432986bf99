//! The HTTP side of the Engramia server target: requests paced to the server's limits, its
//! error envelope read into one error type, NDJSON streamed line by line.
//!
//! Engramia limits requests in fixed one-minute windows, 60 per (client IP, path) and 120 per
//! key, counting every request (also failed and refused ones). engram keeps a sliding window per
//! path and per key at or below those numbers, so no fixed window can see more; a 429
//! `RATE_LIMITED` that still comes (another client on the same IP or key) is waited out after
//! its `Retry-After`. API keys live only in [`ApiKey`], whose `Debug` hides them; messages name
//! the environment variable a key came from, never the key.

use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An API key and the environment variable it was read from.
#[derive(Clone)]
pub struct ApiKey {
    secret: String,
    /// `ENGRAMIA_API_KEY`, or the variable `[target.keys]` names.
    pub var: String,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKey(${}, <redacted>)", self.var)
    }
}

impl ApiKey {
    pub fn new(var: impl Into<String>, secret: impl Into<String>) -> ApiKey {
        ApiKey { var: var.into(), secret: secret.into().trim().to_string() }
    }

    /// A stable, non-reversible id of the key (for pacing and caching, never printed).
    pub fn id(&self) -> String {
        hex::encode(&Sha256::digest(self.secret.as_bytes())[..12])
    }

    /// The `key_prefix` Engramia stores for a key it generated (`engramia_sk_` + 8 chars + `...`),
    /// to find this key's row in `GET /v1/keys`.
    pub fn display_prefix(&self) -> Option<String> {
        let rest = self.secret.strip_prefix("engramia_sk_")?;
        let head: String = rest.chars().take(8).collect();
        Some(format!("engramia_sk_{head}..."))
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.secret)
    }
}

/// What went wrong with one request.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// No answer: connection refused, DNS, TLS, timeout.
    Unreachable(String),
    /// An answer that is not Engramia's JSON (an HTML page, a proxy's error).
    NotJson { status: u16, what: String },
    /// Engramia's error envelope `{"error_code","detail","error_context"?}`.
    Status { status: u16, code: String, detail: String, context: serde_json::Value },
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } | ApiError::NotJson { status, .. } => Some(*status),
            ApiError::Unreachable(_) => None,
        }
    }

    pub fn code(&self) -> &str {
        match self {
            ApiError::Status { code, .. } => code,
            _ => "",
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Unreachable(e) => write!(f, "no answer ({e})"),
            ApiError::NotJson { status, what } => write!(f, "HTTP {status} with {what}, not Engramia's JSON API"),
            ApiError::Status { status, code, detail, .. } => write!(f, "HTTP {status} {code}: {detail}"),
        }
    }
}

/// Sliding one-minute windows per path and per key.
struct Pacer {
    per_path: usize,
    per_key: usize,
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
}

const WINDOW: Duration = Duration::from_secs(60);

impl Pacer {
    /// How long a request on `path` (with `key`) must wait at `now` to fit both windows; when
    /// zero, the request is counted in them.
    fn admit(&self, now: Instant, path: &str, key: Option<&str>) -> Duration {
        let mut w = self.windows.lock().expect("pacer lock");
        let mut names = vec![(format!("path {path}"), self.per_path)];
        if let Some(k) = key {
            names.push((format!("key {k}"), self.per_key));
        }
        let mut wait = Duration::ZERO;
        for (name, limit) in &names {
            let q = w.entry(name.clone()).or_default();
            while q.front().is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW) {
                q.pop_front();
            }
            if q.len() >= *limit {
                let oldest = *q.front().expect("non-empty at the limit");
                wait = wait.max(WINDOW - now.saturating_duration_since(oldest));
            }
        }
        if wait.is_zero() {
            for (name, _) in &names {
                w.get_mut(name).expect("entry made above").push_back(now);
            }
        }
        wait
    }

    /// Waits until one more request fits, and counts it.
    async fn take(&self, path: &str, key: Option<&str>) {
        loop {
            let wait = self.admit(Instant::now(), path, key);
            if wait.is_zero() {
                return;
            }
            tracing::info!(path, wait_ms = wait.as_millis() as u64, "pacing to the server's rate limits");
            tokio::time::sleep(wait + Duration::from_millis(5)).await;
        }
    }
}

/// The client of one Engramia server.
pub struct Client {
    http: reqwest::Client,
    base: String,
    pacer: Pacer,
    max_attempts: u32,
    /// Retries made (429 RATE_LIMITED, 502/504, no answer), for the report.
    pub retries: std::sync::atomic::AtomicU64,
    /// Requests sent, by path template (for the report).
    pub requests: std::sync::atomic::AtomicU64,
}

/// Longest wait engram accepts from a `Retry-After` before it gives up on the request.
const MAX_RETRY_AFTER: u64 = 300;

impl Client {
    pub fn new(base: &str, timeout: Duration, per_path: u32, per_key: u32, max_attempts: u32) -> Result<Client, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("engram/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            pacer: Pacer { per_path: per_path.max(1) as usize, per_key: per_key.max(1) as usize, windows: Mutex::new(HashMap::new()) },
            max_attempts: max_attempts.max(1),
            retries: Default::default(),
            requests: Default::default(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends one request (paced, retried on RATE_LIMITED, 502/504 and no answer) and returns
    /// the response of a 2xx status; anything else becomes an `ApiError`. Bodies always go
    /// with `Content-Length` (never chunked: the server cuts off a chunked body over its limit).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&ApiKey>,
        body: Option<&[u8]>,
    ) -> Result<reqwest::Response, ApiError> {
        use std::sync::atomic::Ordering::Relaxed;
        let url = format!("{}{path}", self.base);
        let route = path.split('?').next().unwrap_or(path);
        let key_id = key.map(ApiKey::id);
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.pacer.take(route, key_id.as_deref()).await;
            let mut req = self.http.request(method.clone(), &url).header("accept", "application/json");
            if let Some(k) = key {
                req = req.header("authorization", k.bearer());
            }
            if let Some(b) = body {
                req = req.header("content-type", "application/json").body(b.to_vec());
            }
            self.requests.fetch_add(1, Relaxed);
            let (err, retry_after) = match req.send().await {
                Err(e) => (ApiError::Unreachable(describe_reqwest(&e)), None),
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) => {
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    (read_error(resp).await, retry_after)
                }
            };
            let wait = match (&err, err.status()) {
                (_, Some(429)) if err.code() == "RATE_LIMITED" || err.code().is_empty() => {
                    Some(Duration::from_secs(retry_after.unwrap_or(60).min(MAX_RETRY_AFTER)))
                }
                (ApiError::Unreachable(_), _) | (_, Some(502 | 504)) => Some(Duration::from_millis(500 << attempt.min(6))),
                _ => None,
            };
            match wait {
                Some(w) if attempt < self.max_attempts => {
                    self.retries.fetch_add(1, Relaxed);
                    tracing::warn!(path = route, attempt, wait_s = w.as_secs_f64(), error = %err, "retrying");
                    tokio::time::sleep(w).await;
                }
                _ => return Err(err),
            }
        }
    }

    /// GET/POST and parse a JSON answer.
    pub async fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&ApiKey>,
        body: Option<&[u8]>,
    ) -> Result<T, ApiError> {
        let resp = self.send(method, path, key, body).await?;
        let status = resp.status().as_u16();
        let ctype = content_type(&resp);
        let bytes = resp.bytes().await.map_err(|e| ApiError::Unreachable(describe_reqwest(&e)))?;
        serde_json::from_slice(&bytes).map_err(|_| ApiError::NotJson { status, what: what_it_was(&ctype, &bytes) })
    }

    /// GETs an NDJSON stream and hands each non-empty line to `line`, without holding the
    /// whole answer.
    pub async fn ndjson(
        &self,
        path: &str,
        key: &ApiKey,
        mut line: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), ApiError> {
        use futures::StreamExt;
        let resp = self.send(reqwest::Method::GET, path, Some(key), None).await?;
        let status = resp.status().as_u16();
        let ctype = content_type(&resp);
        if ctype.contains("html") {
            return Err(ApiError::NotJson { status, what: "an HTML page".into() });
        }
        let mut stream = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        let bad = |e: String| ApiError::NotJson { status, what: format!("a line that is not an export record ({e})") };
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ApiError::Unreachable(format!("the export stream broke off: {}", describe_reqwest(&e))))?;
            buf.extend_from_slice(&chunk);
            while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                let rest = buf.split_off(nl + 1);
                let l = std::mem::replace(&mut buf, rest);
                let l = l.trim_ascii();
                if !l.is_empty() {
                    line(l).map_err(bad)?;
                }
            }
        }
        let l = buf.trim_ascii();
        if !l.is_empty() {
            line(l).map_err(bad)?;
        }
        Ok(())
    }
}

fn content_type(resp: &reqwest::Response) -> String {
    resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase()
}

fn what_it_was(ctype: &str, body: &[u8]) -> String {
    let head = String::from_utf8_lossy(&body[..body.len().min(200)]).trim_start().to_ascii_lowercase();
    if ctype.contains("html") || head.starts_with("<!doctype") || head.starts_with("<html") || head.starts_with('<') {
        "an HTML page".into()
    } else if body.is_empty() {
        "an empty body".into()
    } else {
        format!("a body of type {:?}", if ctype.is_empty() { "unknown" } else { ctype })
    }
}

async fn read_error(resp: reqwest::Response) -> ApiError {
    let status = resp.status().as_u16();
    let ctype = content_type(&resp);
    let bytes = resp.bytes().await.unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(default)]
        error_code: Option<String>,
        #[serde(default)]
        detail: serde_json::Value,
        #[serde(default)]
        error_context: serde_json::Value,
    }
    match serde_json::from_slice::<Envelope>(&bytes) {
        Ok(e) => ApiError::Status {
            status,
            code: e.error_code.unwrap_or_default(),
            detail: match e.detail {
                serde_json::Value::String(s) => s,
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            },
            context: e.error_context,
        },
        Err(_) => ApiError::NotJson { status, what: what_it_was(&ctype, &bytes) },
    }
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut s = if e.is_timeout() { "timed out".to_string() } else if e.is_connect() { "connection failed".to_string() } else { e.to_string() };
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(&format!(": {inner}"));
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_never_shown() {
        let k = ApiKey::new("ENGRAMIA_API_KEY", "engramia_sk_abcdefghSECRETSECRET");
        let shown = format!("{k:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("ENGRAMIA_API_KEY"));
        assert_eq!(k.display_prefix().as_deref(), Some("engramia_sk_abcdefgh..."));
        assert_eq!(ApiKey::new("V", "test-key-1").display_prefix(), None);
        assert_ne!(k.id(), ApiKey::new("V", "other").id());
        assert!(!k.id().contains("SECRET"));
    }

    #[test]
    fn pacer_holds_paths_and_keys_to_their_limits_per_minute() {
        let p = Pacer { per_path: 3, per_key: 4, windows: Mutex::new(HashMap::new()) };
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        for _ in 0..3 {
            assert_eq!(p.admit(at(0), "/v1/import", Some("k")), Duration::ZERO);
        }
        // The fourth on the path waits for the first to leave the window; it is not counted.
        assert_eq!(p.admit(at(10), "/v1/import", Some("k")), Duration::from_secs(50));
        // Another path is not held back by this one, but the key's budget is shared.
        assert_eq!(p.admit(at(10), "/v1/skills/register", Some("k")), Duration::ZERO);
        assert_eq!(p.admit(at(10), "/v1/skills/register", Some("k")), Duration::from_secs(50));
        assert_eq!(p.admit(at(10), "/v1/skills/register", Some("other")), Duration::ZERO);
        // A minute later the window has room again.
        assert_eq!(p.admit(at(60), "/v1/import", Some("k")), Duration::ZERO);
    }
}
