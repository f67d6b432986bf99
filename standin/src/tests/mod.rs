//! The stand-in exercised over a real socket with reqwest, as engram and scripts will use it.

mod demo;
mod embeddings;
mod errors;
mod faults;
mod lists;

use std::net::SocketAddr;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::{Account, Options, Standin, serve};

pub(super) const KEY: &str = "sk-test-abcdefghijklmnopqrstuvwxyz";
/// Messages in the long test thread (more than one page of 100).
pub(super) const LONG: usize = 150;

/// One assistant, a thread `thread_long` with [`LONG`] alternating messages (ids `msg_000`..;
/// every 10th message created by run `run_a`), files of three purposes and a vector store.
pub(super) fn test_account() -> Account {
    let messages: Vec<Value> = (0..LONG)
        .map(|k| {
            let mut m = json!({
                "id": format!("msg_{k:03}"),
                // Pairs share a second: ties must keep file order.
                "created_at": 1_700_000_000 + (k / 2) as i64,
                "role": if k % 2 == 0 { "user" } else { "assistant" },
                "content": format!("message number {k}"),
            });
            if k % 10 == 1 {
                m["run_id"] = json!("run_a");
            }
            m
        })
        .collect();
    Account::from_json(json!({
        "assistants": [{"id": "asst_1", "created_at": 1_690_000_000, "name": "Helper", "model": "gpt-4o-mini"}],
        "threads": [{
            "thread": {"id": "thread_long", "created_at": 1_700_000_000},
            "messages": messages,
            "runs": [{"run": {"id": "run_a", "created_at": 1_700_000_000, "assistant_id": "asst_1"},
                      "steps": [{"id": "step_1", "created_at": 1_700_000_001,
                                 "step_details": {"type": "message_creation", "message_creation": {"message_id": "msg_001"}}}]}]
        }],
        "files": [
            {"file": {"id": "file-doc", "created_at": 1, "filename": "doc.md", "purpose": "assistants"}, "content_text": "# secret"},
            {"file": {"id": "file-out", "created_at": 2, "filename": "out.csv", "purpose": "assistants_output"}, "content_text": "a,b\n1,2\n"},
            {"file": {"id": "file-img", "created_at": 3, "filename": "i.png", "purpose": "vision"}, "content_base64": "iVBORw0KGgo="},
            {"file": {"id": "file-ud", "created_at": 4, "filename": "u.txt", "purpose": "user_data"}, "content_text": "u"}
        ],
        "vector_stores": [{
            "vector_store": {"id": "vs_1", "created_at": 5, "name": "Docs"},
            "files": [
                {"vector_store_file": {"id": "file-doc", "created_at": 6}, "parsed_text": "Parsed document text."},
                {"vector_store_file": {"id": "file-bad", "created_at": 7, "status": "failed"}}
            ]
        }]
    }))
    .expect("test account")
}

pub(super) async fn start(options: Options) -> Standin {
    start_with(test_account(), options).await
}

pub(super) async fn start_with(account: Account, options: Options) -> Standin {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    serve(account, options, addr)
        .await
        .expect("stand-in starts")
}

pub(super) fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A GET with the key and the beta header, as engram sends it.
pub(super) async fn get(s: &Standin, path: &str) -> (StatusCode, HeaderMap, Value) {
    send(
        client()
            .get(format!("{}{path}", s.base_url))
            .bearer_auth(KEY)
            .header("OpenAI-Beta", "assistants=v2"),
    )
    .await
}

pub(super) async fn send(req: reqwest::RequestBuilder) -> (StatusCode, HeaderMap, Value) {
    let resp = req.send().await.expect("response");
    let (status, headers) = (resp.status(), resp.headers().clone());
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, body)
}

/// The error envelope's message, asserting the envelope has its four keys.
pub(super) fn message(body: &Value) -> &str {
    let e = &body["error"];
    for key in ["message", "type", "param", "code"] {
        assert!(e.get(key).is_some(), "error envelope without {key}: {body}");
    }
    e["message"].as_str().unwrap()
}

#[tokio::test]
async fn every_answer_carries_openai_headers() {
    let s = start(Options::default()).await;
    let (status, h1, _) = get(&s, "/assistants").await;
    assert_eq!(status, StatusCode::OK);
    let (status, h2, body) = get(&s, "/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(message(&body), "Invalid URL (GET /v1/nope)");
    for h in [&h1, &h2] {
        let id = h["x-request-id"].to_str().unwrap();
        assert!(
            id.len() == 36
                && id.starts_with("req_")
                && id[4..].chars().all(|c| c.is_ascii_hexdigit()),
            "{id}"
        );
        assert_eq!(h["openai-version"], "2020-10-01");
        assert!(
            h["openai-processing-ms"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .is_ok()
        );
        assert!(h.get("x-ratelimit-limit-requests").is_none());
    }
    assert_ne!(h1["x-request-id"], h2["x-request-id"]);
}

#[tokio::test]
async fn stats_count_requests_by_route_and_are_served_without_auth() {
    let s = start(Options::default()).await;
    get(&s, "/threads/thread_long/messages").await;
    get(&s, "/threads/thread_long/messages?after=msg_019").await;
    get(&s, "/threads/thread_long").await;
    get(&s, "/nope").await;
    // Requests outside /v1 are not counted.
    send(client().get(format!("http://{}/health", s.addr))).await;
    let (status, _, body) = send(client().get(format!("http://{}/_standin/stats", s.addr))).await;
    assert_eq!(status, StatusCode::OK);
    let over_http: super::Stats = serde_json::from_value(body).unwrap();
    let stats = s.stats();
    assert_eq!(stats.requests, 4);
    assert_eq!(stats.by_route["GET /threads/{id}/messages"], 2);
    assert_eq!(stats.by_route["GET /threads/{id}"], 1);
    assert_eq!(stats.by_route["GET (unknown)"], 1);
    assert_eq!(over_http.by_route, stats.by_route);
    assert_eq!(over_http.requests, stats.requests);
    s.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_listening() {
    let s = start(Options::default()).await;
    let url = s.base_url.clone();
    get(&s, "/assistants").await;
    s.shutdown().await;
    assert!(
        client()
            .get(format!("{url}/assistants"))
            .send()
            .await
            .is_err()
    );
}
