//! Injected faults and the requests-per-minute limit.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use super::{KEY, client, get, message, start};
use crate::{Faults, Options, Standin};

fn with(faults: Faults) -> Options {
    Options {
        faults,
        ..Options::default()
    }
}

#[tokio::test]
async fn every_third_request_is_429_and_the_retry_gets_the_normal_answer() {
    let s = start(with(Faults {
        every_429: Some(3),
        retry_after_secs: 2,
        ..Faults::default()
    }))
    .await;
    let path = "/threads/thread_long/messages?order=asc&limit=5";
    let (_, _, first) = get(&s, path).await;
    get(&s, "/assistants").await;
    let (status, headers, body) = get(&s, path).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "2");
    assert_eq!(headers["retry-after-ms"], "2000");
    assert_eq!(
        (
            body["error"]["type"].as_str(),
            body["error"]["code"].as_str()
        ),
        (Some("requests"), Some("rate_limit_exceeded"))
    );
    assert!(message(&body).starts_with("Rate limit reached for requests"));
    let (status, _, retried) = get(&s, path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(retried, first);
    let stats = s.stats();
    assert_eq!((stats.requests, stats.faults_injected), (4, 1));
}

#[tokio::test]
async fn every_other_request_is_500() {
    let s = start(with(Faults {
        every_500: Some(2),
        ..Faults::default()
    }))
    .await;
    let statuses: Vec<u16> = futures::future::join_all((0..4).map(|_| get(&s, "/files")))
        .await
        .into_iter()
        .map(|(status, _, _)| status.as_u16())
        .collect();
    assert_eq!(statuses.iter().filter(|&&c| c == 500).count(), 2);
    let (status, _, body) = get(&s, "/files").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = get(&s, "/files").await;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("server_error"))
    );
}

#[tokio::test]
async fn dropped_requests_get_no_response_and_the_next_one_works() {
    let s = start(with(Faults {
        drop_every: Some(2),
        ..Faults::default()
    }))
    .await;
    let http = client();
    let url = format!("{}/files", s.base_url);
    assert_eq!(
        http.get(&url)
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let err = http
        .get(&url)
        .bearer_auth(KEY)
        .send()
        .await
        .expect_err("connection dropped");
    assert!(
        err.is_request() || err.is_connect() || err.to_string().contains("error sending request"),
        "{err:?}"
    );
    let resp = http.get(&url).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["object"],
        "list"
    );
    assert_eq!(s.stats().faults_injected, 1);
}

#[tokio::test]
async fn delay_applies_to_every_request() {
    let s = start(with(Faults {
        delay_ms: 150,
        ..Faults::default()
    }))
    .await;
    let t = Instant::now();
    let (status, _, _) = get(&s, "/files").await;
    assert_eq!(status, StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn rate_limit_headers_and_429_when_exceeded() {
    let s = start(Options {
        rate_limit_per_minute: Some(3),
        ..Options::default()
    })
    .await;
    for remaining in ["2", "1", "0"] {
        let (status, h, _) = get(&s, "/files").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h["x-ratelimit-limit-requests"], "3");
        assert_eq!(h["x-ratelimit-remaining-requests"], remaining);
        let reset = h["x-ratelimit-reset-requests"].to_str().unwrap();
        assert!(
            reset.ends_with('s') && reset.chars().next().unwrap().is_ascii_digit(),
            "{reset}"
        );
    }
    let (status, h, body) = get(&s, "/files").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    // 3 a minute come back one every 20 s.
    let retry: f64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((19.0..=20.0).contains(&retry), "{retry}");
    assert_eq!(h["x-ratelimit-remaining-requests"], "0");
    // Rate-limit answers are not injected faults.
    assert_eq!(s.stats().faults_injected, 0);
}

async fn embed(s: &Standin, input: Vec<&str>) -> (StatusCode, reqwest::header::HeaderMap, serde_json::Value) {
    let resp = client()
        .post(format!("{}/embeddings", s.base_url))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"model": "text-embedding-3-small", "input": input, "dimensions": 8}))
        .send()
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.json().await.unwrap())
}

#[tokio::test]
async fn a_tokens_limit_is_declared_on_every_answer_and_enforced_on_embeddings() {
    let s = start(Options {
        tokens_per_minute: Some(10),
        rate_window: Some(Duration::from_secs(2)),
        ..Options::default()
    })
    .await;
    // "one two three four" is 4 tokens (cl100k_base).
    let (status, h, body) = embed(&s, vec!["one two three four"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(h["x-ratelimit-limit-tokens"], "10");
    assert_eq!(h["x-ratelimit-remaining-tokens"], "6");
    let (status, _, _) = embed(&s, vec!["one two three four"]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, h, body) = embed(&s, vec!["one two three four"]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"]["type"], "tokens");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    let retry: f64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry <= 2.0, "the wait follows the shortened window: {retry}");
    // Other routes carry the tokens headers too, and are not held to the tokens limit.
    let (status, h, _) = get(&s, "/files").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h["x-ratelimit-remaining-tokens"], "2");
    assert_eq!(s.stats().rate_limited, 1);
    assert_eq!(s.stats().embedding_tokens, 8);
    tokio::time::sleep(Duration::from_secs_f64(retry + 0.05)).await;
    let (status, _, _) = embed(&s, vec!["one two three four"]).await;
    assert_eq!(status, StatusCode::OK, "the budget came back after the window");
}

#[tokio::test]
async fn latency_applies_to_every_request_and_embeddings_take_longer_per_input() {
    let s = start(Options {
        timing: crate::Timing { latency_ms: 100, jitter_ms: 0, embed_us_per_input: 1_000 },
        ..Options::default()
    })
    .await;
    let t = Instant::now();
    let (status, _, _) = get(&s, "/files").await;
    assert_eq!(status, StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(100));
    let t = Instant::now();
    let inputs = vec!["x"; 300];
    let (status, _, _) = embed(&s, inputs).await;
    assert_eq!(status, StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(100 + 300), "{:?}", t.elapsed());
}
