//! Request handling: one axum fallback handler that routes by hand, so that every request,
//! matched or not, goes through the same steps in the same order:
//!
//! 1. `GET /_standin/stats` answers at once (no auth, not counted); other paths outside `/v1`
//!    are 404 `Invalid URL` (not counted).
//! 2. The request is counted (its arrival number drives the faults) under its route template.
//! 3. `delay_ms` and the simulated latency (`Timing`), then an injected fault if one is due
//!    (drop / 429 / 500).
//! 4. Auth (`Authorization: Bearer`), then the requests-per-minute limit.
//! 5. The route: shutdown and `OpenAI-Beta` checks for Assistants routes, id prefixes, lookups;
//!    an embeddings request is also held to the tokens-per-minute limit and waits its
//!    per-input time.
//!
//! Every answer carries `x-request-id`, `openai-processing-ms`, `openai-version`, and the
//! `x-ratelimit-*-requests` / `x-ratelimit-*-tokens` headers when those limits are configured.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;

use super::App;
use super::account::{Data, ThreadData};
use super::embeddings;
use super::error::{ApiError, mask_key};
use super::faults::{self, Connection, Fault, RateState};
use super::pagination::{self, Collection, Item, ListQuery, param};

/// Largest request body read (an embeddings request at its limits is a few MB).
const MAX_BODY: usize = 64 << 20;

pub(crate) async fn handle(
    State(app): State<Arc<App>>,
    ConnectInfo(conn): ConnectInfo<Connection>,
    req: Request,
) -> Response {
    let started = Instant::now();
    let (mut response, rate) = respond(&app, &conn, req).await;
    let tokens = app.token_limiter.as_ref().map(|l| l.peek(Instant::now()));
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set("x-request-id", app.counters.next_request_id());
    set("openai-version", "2020-10-01".into());
    set(
        "openai-processing-ms",
        started.elapsed().as_millis().to_string(),
    );
    if let Some(r) = rate {
        set("x-ratelimit-limit-requests", r.limit.to_string());
        set("x-ratelimit-remaining-requests", r.remaining.to_string());
        set("x-ratelimit-reset-requests", faults::go_duration(r.reset));
    }
    if let Some(t) = tokens {
        set("x-ratelimit-limit-tokens", t.limit.to_string());
        set("x-ratelimit-remaining-tokens", t.remaining.to_string());
        set("x-ratelimit-reset-tokens", faults::go_duration(t.reset));
    }
    response
}

/// The answer and, for `/v1` requests under a rate limit, the budget to report.
async fn respond(app: &App, conn: &Connection, req: Request) -> (Response, Option<RateState>) {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if path == "/_standin/stats" && method == Method::GET {
        return (
            json(
                StatusCode::OK,
                serde_json::to_string(&app.counters.snapshot()).unwrap_or_default(),
            ),
            None,
        );
    }
    let Some(rest) = path
        .strip_prefix("/v1")
        .filter(|r| r.is_empty() || r.starts_with('/'))
    else {
        return (error(&ApiError::invalid_url(method.as_str(), &path)), None);
    };
    let segments: Vec<String> = rest.split('/').skip(1).map(percent_decode).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let route = Route::parse(&method, &segments);
    let n = app
        .counters
        .count_request(format!("{} {}", method, route.template()));

    let rate = match admit(app, conn, n, req.headers()).await {
        Ok(rate) => rate,
        Err(answer) => return answer,
    };
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let result = match route {
        Route::Embeddings => embed(app, req).await,
        _ if route.is_assistants() && app.options.assistants_shut_down => {
            Err(ApiError::invalid_url(method.as_str(), &path))
        }
        Route::Unknown => Err(ApiError::invalid_url(method.as_str(), &path)),
        _ => get(&app.account.data, &route, &query, req.headers()),
    };
    (result.unwrap_or_else(|e| error(&e)), rate)
}

/// Steps 3 and 4 for the `n`th request: delay, a due fault, auth, the rate limit. `Ok` carries
/// the budget to report; `Err` is the answer to send instead of serving the route.
async fn admit(
    app: &App,
    conn: &Connection,
    n: u64,
    headers: &HeaderMap,
) -> Result<Option<RateState>, (Response, Option<RateState>)> {
    let options = &app.options;
    let wait = Duration::from_millis(options.faults.delay_ms) + faults::latency_for(n, &options.timing);
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    let peek = || app.limiter.as_ref().map(|l| l.peek(Instant::now()));
    if let Some(fault) = faults::fault_for(n, &options.faults) {
        app.counters.count_fault();
        let e = match fault {
            Fault::Drop => {
                conn.drop_without_response();
                return Err((Response::new(Body::empty()), None));
            }
            Fault::TooManyRequests => {
                let limit = options.rate_limit_per_minute.unwrap_or(60);
                ApiError::rate_limited(limit, options.faults.retry_after_secs.max(1) as f64)
            }
            Fault::ServerError => ApiError::server_error(),
        };
        return Err((error(&e), peek()));
    }
    if let Err(e) = authorize(headers, options.api_key.as_deref()) {
        return Err((error(&e), peek()));
    }
    match app.limiter.as_ref().map(|l| l.acquire(Instant::now())) {
        None => Ok(None),
        Some(Ok(state)) => Ok(Some(state)),
        Some(Err((state, wait))) => {
            app.counters.count_rate_limited();
            let e = ApiError::rate_limited(state.limit, wait.as_secs_f64());
            Err((error(&e), Some(state)))
        }
    }
}

/// A matched route, borrowing its path ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Assistants,
    Assistant(&'a str),
    /// `GET /threads`: exists only for browser session keys.
    Threads,
    Thread(&'a str),
    Messages(&'a str),
    Message(&'a str, &'a str),
    Runs(&'a str),
    Run(&'a str, &'a str),
    Steps(&'a str, &'a str),
    Step(&'a str, &'a str, &'a str),
    Files,
    File(&'a str),
    FileContent(&'a str),
    VectorStores,
    VectorStore(&'a str),
    StoreFiles(&'a str),
    StoreFile(&'a str, &'a str),
    StoreFileContent(&'a str, &'a str),
    Conversation(&'a str),
    ConversationItems(&'a str),
    ConversationItem(&'a str, &'a str),
    Embeddings,
    Unknown,
}

impl<'a> Route<'a> {
    fn parse(method: &Method, s: &[&'a str]) -> Route<'a> {
        use Route::*;
        if method == Method::POST {
            return if s == ["embeddings"] {
                Embeddings
            } else {
                Unknown
            };
        }
        if method != Method::GET {
            return Unknown;
        }
        let route = match *s {
            ["assistants"] => Assistants,
            ["assistants", a] => Assistant(a),
            ["threads"] => Threads,
            ["threads", t] => Thread(t),
            ["threads", t, "messages"] => Messages(t),
            ["threads", t, "messages", m] => Message(t, m),
            ["threads", t, "runs"] => Runs(t),
            ["threads", t, "runs", r] => Run(t, r),
            ["threads", t, "runs", r, "steps"] => Steps(t, r),
            ["threads", t, "runs", r, "steps", st] => Step(t, r, st),
            ["files"] => Files,
            ["files", f] => File(f),
            ["files", f, "content"] => FileContent(f),
            ["vector_stores"] => VectorStores,
            ["vector_stores", v] => VectorStore(v),
            ["vector_stores", v, "files"] => StoreFiles(v),
            ["vector_stores", v, "files", f] => StoreFile(v, f),
            ["vector_stores", v, "files", f, "content"] => StoreFileContent(v, f),
            ["conversations", c] => Conversation(c),
            ["conversations", c, "items"] => ConversationItems(c),
            ["conversations", c, "items", i] => ConversationItem(c, i),
            _ => Unknown,
        };
        route.nonempty_ids()
    }

    /// Empty path ids (`/threads//messages`) match no route.
    fn nonempty_ids(self) -> Self {
        use Route::*;
        let ids: &[&str] = match &self {
            Assistant(a) | Thread(a) | Messages(a) | Runs(a) | File(a) | FileContent(a)
            | VectorStore(a) | StoreFiles(a) | Conversation(a) | ConversationItems(a) => &[a],
            Message(a, b) | Run(a, b) | Steps(a, b) | StoreFile(a, b) | StoreFileContent(a, b) | ConversationItem(a, b) => {
                &[a, b]
            }
            Step(a, b, c) => &[a, b, c],
            _ => &[],
        };
        if ids.iter().any(|id| id.is_empty()) {
            Unknown
        } else {
            self
        }
    }

    /// The route template counted in [`super::Stats::by_route`].
    fn template(&self) -> &'static str {
        use Route::*;
        match self {
            Assistants => "/assistants",
            Assistant(_) => "/assistants/{id}",
            Threads => "/threads",
            Thread(_) => "/threads/{id}",
            Messages(_) => "/threads/{id}/messages",
            Message(..) => "/threads/{id}/messages/{mid}",
            Runs(_) => "/threads/{id}/runs",
            Run(..) => "/threads/{id}/runs/{rid}",
            Steps(..) => "/threads/{id}/runs/{rid}/steps",
            Step(..) => "/threads/{id}/runs/{rid}/steps/{sid}",
            Files => "/files",
            File(_) => "/files/{id}",
            FileContent(_) => "/files/{id}/content",
            VectorStores => "/vector_stores",
            VectorStore(_) => "/vector_stores/{vs}",
            StoreFiles(_) => "/vector_stores/{vs}/files",
            StoreFile(..) => "/vector_stores/{vs}/files/{fid}",
            StoreFileContent(..) => "/vector_stores/{vs}/files/{fid}/content",
            Conversation(_) => "/conversations/{id}",
            ConversationItems(_) => "/conversations/{id}/items",
            ConversationItem(..) => "/conversations/{id}/items/{iid}",
            Embeddings => "/embeddings",
            Unknown => "(unknown)",
        }
    }

    /// Routes of the Assistants API proper (shut down 2026-08-26, need `OpenAI-Beta`).
    fn is_assistants(&self) -> bool {
        use Route::*;
        matches!(
            self,
            Assistants
                | Assistant(_)
                | Threads
                | Thread(_)
                | Messages(_)
                | Message(..)
                | Runs(_)
                | Run(..)
                | Steps(..)
                | Step(..)
        )
    }
}

fn authorize(headers: &HeaderMap, expected: Option<&str>) -> Result<(), ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let unauthorized =
        |msg: String| ApiError::new(StatusCode::UNAUTHORIZED, "invalid_request_error", msg);
    match (given, expected) {
        (None, _) => Err(unauthorized(
            "You didn't provide an API key. You need to provide your API key in an Authorization header using \
             Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) \
             if you're accessing the API from your browser and are prompted for a username. You can obtain an \
             API key from https://platform.openai.com/account/api-keys."
                .into(),
        )),
        (Some(key), Some(expected)) if key != expected => Err(unauthorized(format!(
            "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
            mask_key(key)
        ))
        .code("invalid_api_key")),
        _ => Ok(()),
    }
}

/// Assistants routes need `OpenAI-Beta: assistants=v2` (among comma-separated values).
fn check_beta(headers: &HeaderMap) -> Result<(), ApiError> {
    let values: Vec<&str> = headers
        .get_all("openai-beta")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    if values.contains(&"assistants=v2") {
        return Ok(());
    }
    let message = if values.contains(&"assistants=v1") {
        "The v1 Assistants API has been deprecated. Please try again by setting the header 'OpenAI-Beta: \
         assistants=v2'. See the migration guide for more information: https://platform.openai.com/docs/assistants/migration."
    } else {
        "You must provide the 'OpenAI-Beta' header to access the Assistants API. Please try again by setting the \
         header 'OpenAI-Beta: assistants=v2'."
    };
    Err(ApiError::invalid(message).code("invalid_beta"))
}

fn get(
    data: &Data,
    route: &Route<'_>,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    use Route::*;
    if route.is_assistants() {
        check_beta(headers)?;
    }
    let list = |coll: &Collection, keep: &dyn Fn(&Item) -> bool| -> Result<Response, ApiError> {
        let q = ListQuery::parse(query, pagination::STANDARD)?;
        Ok(json(StatusCode::OK, pagination::page(coll, &q, keep)?))
    };
    let one = |item: &Item| json(StatusCode::OK, item.json.clone());
    match *route {
        Assistants => list(&data.assistants, &|_| true),
        Assistant(a) => Ok(one(find(&data.assistants, a, ASSISTANT)?)),
        Threads => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Your request to GET /v1/threads must be made with a session key (that is, it can only be made from the \
             browser). You made it with the following key type: secret.",
        )
        .code("missing_scope")),
        Thread(t) => Ok(one(&thread(data, t)?.thread)),
        Messages(t) => {
            let t = thread(data, t)?;
            match param(query, "run_id").filter(|r| !r.is_empty()) {
                Some(run) => list(&t.messages, &|m| m.tag.as_deref() == Some(run)),
                None => list(&t.messages, &|_| true),
            }
        }
        Message(t, m) => Ok(one(find(&thread(data, t)?.messages, m, MESSAGE)?)),
        Runs(t) => list(&thread(data, t)?.runs, &|_| true),
        Run(t, r) => Ok(one(find(&thread(data, t)?.runs, r, RUN)?)),
        Steps(t, r) => list(steps(thread(data, t)?, r)?, &|_| true),
        Step(t, r, s) => Ok(one(find(steps(thread(data, t)?, r)?, s, STEP)?)),
        Files => {
            let q = ListQuery::parse(query, pagination::FILES)?;
            let purpose = param(query, "purpose").filter(|p| !p.is_empty());
            let body = pagination::page(&data.files, &q, |f| purpose.is_none() || f.tag.as_deref() == purpose)?;
            Ok(json(StatusCode::OK, body))
        }
        File(f) => Ok(one(find(&data.files, f, FILE)?)),
        FileContent(f) => download(data, f),
        VectorStores => list(&data.vector_stores, &|_| true),
        VectorStore(v) => Ok(one(find(&data.vector_stores, v, VECTOR_STORE)?)),
        StoreFiles(v) => {
            let files = &store(data, v)?.files;
            match param(query, "filter").filter(|s| !s.is_empty()) {
                Some(status @ ("in_progress" | "completed" | "failed" | "cancelled")) => {
                    list(files, &|f| f.tag.as_deref() == Some(status))
                }
                Some(other) => Err(ApiError::invalid(format!(
                    "Invalid value: '{other}'. Supported values are: 'in_progress', 'completed', 'failed', and 'cancelled'."
                ))
                .param("filter")
                .code("invalid_value")),
                None => list(files, &|_| true),
            }
        }
        StoreFile(v, f) => Ok(one(store_file(data, v, f)?)),
        StoreFileContent(v, f) => {
            store_file(data, v, f)?;
            let text = data.stores[v].parsed_text.get(f).map(String::as_str);
            let data = match text {
                Some(t) => serde_json::json!([{"type": "text", "text": t}]),
                None => serde_json::json!([]),
            };
            let body = serde_json::json!({"object": "vector_store.file_content.page", "data": data, "has_more": false, "next_page": null});
            Ok(json(StatusCode::OK, body.to_string()))
        }
        Conversation(c) => Ok(json(StatusCode::OK, data.conversations.get(c)?)),
        ConversationItems(c) => Ok(json(StatusCode::OK, data.conversations.items(c, query)?)),
        ConversationItem(c, i) => Ok(json(StatusCode::OK, data.conversations.item(c, i)?)),
        // Answered by `respond` before it calls here.
        Embeddings | Unknown => Err(ApiError::server_error()),
    }
}

/// How one kind of path id is checked and reported.
struct Kind {
    param: &'static str,
    prefix: &'static str,
    separator: char,
    not_found: fn(&str) -> String,
}

const ASSISTANT: Kind = Kind {
    param: "assistant_id",
    prefix: "asst",
    separator: '_',
    not_found: |id| format!("No assistant found with id '{id}'."),
};
const THREAD: Kind = Kind {
    param: "thread_id",
    prefix: "thread",
    separator: '_',
    not_found: |id| format!("No thread found with id '{id}'."),
};
const MESSAGE: Kind = Kind {
    param: "message_id",
    prefix: "msg",
    separator: '_',
    not_found: |id| format!("No message found with id '{id}'."),
};
const RUN: Kind = Kind {
    param: "run_id",
    prefix: "run",
    separator: '_',
    not_found: |id| format!("No run found with id '{id}'."),
};
const STEP: Kind = Kind {
    param: "step_id",
    prefix: "step",
    separator: '_',
    not_found: |id| format!("No run step found with id '{id}'."),
};
const FILE: Kind = Kind {
    param: "file_id",
    prefix: "file",
    separator: '-',
    not_found: |id| format!("No such File object: {id}"),
};
const VECTOR_STORE: Kind = Kind {
    param: "vector_store_id",
    prefix: "vs",
    separator: '_',
    not_found: |id| format!("No vector store found with id '{id}'."),
};

/// Looks `id` up; an id the account holds is served whatever its prefix (fixtures may carry
/// Azure-style ids), an unknown one is 400 for a wrong prefix and 404 otherwise.
fn find<'c>(coll: &'c Collection, id: &str, kind: Kind) -> Result<&'c Item, ApiError> {
    if let Some(item) = coll.get(id) {
        return Ok(item);
    }
    check_prefix(id, &kind)?;
    let e = ApiError::not_found((kind.not_found)(id));
    // OpenAI names the parameter for files (`param: "id"`), not for the other objects.
    Err(if kind.prefix == "file" {
        e.param("id")
    } else {
        e
    })
}

fn check_prefix(id: &str, kind: &Kind) -> Result<(), ApiError> {
    match id.strip_prefix(kind.prefix) {
        Some(rest) if rest.starts_with(kind.separator) => Ok(()),
        _ => Err(ApiError::bad_prefix(kind.param, id, kind.prefix)),
    }
}

fn thread<'d>(data: &'d Data, id: &str) -> Result<&'d ThreadData, ApiError> {
    match data.threads.get(id) {
        Some(t) => Ok(t),
        None => {
            check_prefix(id, &THREAD)?;
            Err(ApiError::not_found((THREAD.not_found)(id)))
        }
    }
}

fn steps<'d>(t: &'d ThreadData, run: &str) -> Result<&'d Collection, ApiError> {
    find(&t.runs, run, RUN)?;
    Ok(&t.steps[run])
}

fn store<'d>(data: &'d Data, id: &str) -> Result<&'d super::account::StoreData, ApiError> {
    find(&data.vector_stores, id, VECTOR_STORE)?;
    Ok(&data.stores[id])
}

fn store_file<'d>(data: &'d Data, vs: &str, file: &str) -> Result<&'d Item, ApiError> {
    let files = &store(data, vs)?.files;
    if let Some(item) = files.get(file) {
        return Ok(item);
    }
    check_prefix(file, &FILE)?;
    Err(ApiError::not_found(format!(
        "No file found with id '{file}' in vector store '{vs}'."
    )))
}

/// `GET /files/{id}/content`: the raw bytes, except for purposes OpenAI never lets you
/// download (`assistants`, `user_data`). A file listed without content has an empty body.
fn download(data: &Data, id: &str) -> Result<Response, ApiError> {
    let file = find(&data.files, id, FILE)?;
    if let Some(purpose @ ("assistants" | "user_data")) = file.tag.as_deref() {
        return Err(ApiError::invalid(format!(
            "Not allowed to download files of purpose: {purpose}"
        )));
    }
    let bytes = data.file_bytes.get(id).cloned().unwrap_or_default();
    let mut response = Response::new(Body::from(bytes));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(response)
}

async fn embed(app: &App, req: Request) -> Result<Response, ApiError> {
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "Request body too large.",
            )
        })?;
    let embedded = tokio::task::spawn_blocking(move || embeddings::create(&body))
        .await
        .map_err(|_| ApiError::server_error())??;
    if let Some(Err((state, wait))) = app.token_limiter.as_ref().map(|l| l.acquire_weight(Instant::now(), embedded.tokens)) {
        app.counters.count_rate_limited();
        return Err(ApiError::tokens_rate_limited(state.limit, state.limit - state.remaining, embedded.tokens, wait.as_secs_f64()));
    }
    let per_input = app.options.timing.embed_us_per_input;
    if per_input > 0 {
        tokio::time::sleep(Duration::from_micros(per_input * embedded.inputs)).await;
    }
    app.counters.count_embeddings(embedded.inputs, embedded.tokens);
    Ok(json(StatusCode::OK, embedded.body))
}

fn json(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn error(e: &ApiError) -> Response {
    let mut response = json(e.status, e.body());
    if let Some(secs) = e.retry_after {
        let headers = response.headers_mut();
        let whole = secs.ceil().max(1.0) as u64;
        headers.insert(header::RETRY_AFTER, HeaderValue::from(whole));
        headers.insert(
            "retry-after-ms",
            HeaderValue::from((secs * 1000.0).ceil().max(1.0) as u64),
        );
    }
    response
}

/// Decodes `%XX` escapes in a path segment (ids never need them, but error messages should
/// show what the client meant).
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
