//! Cursor pagination over HTTP (spec §2.4) and list filters.

use reqwest::StatusCode;
use serde_json::Value;

use super::{LONG, get, message, start};
use crate::Options;

fn ids(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

/// Pages a list forward with `after = <last id of data>` as the SDK does; returns all ids.
async fn page_all(s: &crate::Standin, path: &str) -> (Vec<String>, usize) {
    let (mut all, mut pages, mut after) = (Vec::new(), 0, None::<String>);
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &after {
            Some(a) => format!("{path}{sep}after={a}"),
            None => path.to_string(),
        };
        let (status, _, body) = get(s, &url).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page = ids(&body);
        pages += 1;
        assert_eq!(body["first_id"].as_str(), page.first().map(String::as_str));
        assert_eq!(body["last_id"].as_str(), page.last().map(String::as_str));
        all.extend(page);
        if !body["has_more"].as_bool().unwrap() {
            return (all, pages);
        }
        after = all.last().cloned();
    }
}

#[tokio::test]
async fn pages_forward_over_more_than_100_messages_in_both_orders() {
    let s = start(Options::default()).await;
    let expected: Vec<String> = (0..LONG).map(|k| format!("msg_{k:03}")).collect();

    let (asc, pages) = page_all(&s, "/threads/thread_long/messages?order=asc&limit=100").await;
    assert_eq!((asc.clone(), pages), (expected.clone(), 2));

    let (desc, pages) = page_all(&s, "/threads/thread_long/messages?order=desc&limit=100").await;
    let mut reversed = expected.clone();
    reversed.reverse();
    assert_eq!((desc, pages), (reversed, 2));

    // Default: desc, 20 per page.
    let (status, _, body) = get(&s, "/threads/thread_long/messages").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&body).len(), 20);
    assert_eq!(body["first_id"], "msg_149");
    assert_eq!(body["has_more"], true);
    assert_eq!(body["object"], "list");

    // Past the end: an empty page with null ids.
    let (_, _, body) = get(&s, "/threads/thread_long/messages?order=asc&after=msg_149").await;
    assert_eq!(
        body,
        serde_json::json!({"object": "list", "data": [], "first_id": null, "last_id": null, "has_more": false})
    );
}

#[tokio::test]
async fn before_returns_the_items_just_before_the_cursor() {
    let s = start(Options::default()).await;
    let (_, _, body) = get(
        &s,
        "/threads/thread_long/messages?order=asc&limit=3&before=msg_010",
    )
    .await;
    assert_eq!(ids(&body), ["msg_007", "msg_008", "msg_009"]);
    assert_eq!(body["has_more"], true);
    let (_, _, body) = get(
        &s,
        "/threads/thread_long/messages?order=asc&limit=5&before=msg_002",
    )
    .await;
    assert_eq!(ids(&body), ["msg_000", "msg_001"]);
    assert_eq!(body["has_more"], false);
    let (_, _, body) = get(
        &s,
        "/threads/thread_long/messages?order=desc&limit=2&before=msg_146",
    )
    .await;
    assert_eq!(ids(&body), ["msg_148", "msg_147"]);
    assert_eq!(body["has_more"], true);
}

#[tokio::test]
async fn bad_list_parameters_are_400() {
    let s = start(Options::default()).await;
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("order=newest", "order"),
        ("after=msg_nope", "after"),
        ("before=msg_nope", "before"),
    ] {
        let (status, _, body) = get(&s, &format!("/threads/thread_long/messages?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["param"], param, "{query}");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
    let (_, _, body) = get(&s, "/threads/thread_long/messages?limit=101").await;
    assert_eq!(
        message(&body),
        "Invalid 'limit': integer above maximum value. Expected a value <= 100, but got 101 instead."
    );
    // /files takes up to 10,000 but no `before`.
    let (status, _, _) = get(&s, "/files?limit=10000").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = get(&s, "/files?limit=10001").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("integer_above_max_value"))
    );
    let (status, _, body) = get(&s, "/files?before=file-doc").await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (StatusCode::BAD_REQUEST, Some("before"))
    );
}

#[tokio::test]
async fn filters_run_id_purpose_and_status() {
    let s = start(Options::default()).await;
    let (_, _, body) = get(
        &s,
        "/threads/thread_long/messages?run_id=run_a&order=asc&limit=100",
    )
    .await;
    let by_run = ids(&body);
    assert_eq!(by_run.len(), LONG / 10);
    assert_eq!(by_run[..2], ["msg_001", "msg_011"]);
    assert_eq!(body["data"][0]["run_id"], "run_a");

    let (_, _, body) = get(&s, "/files").await;
    assert_eq!(ids(&body), ["file-ud", "file-img", "file-out", "file-doc"]);
    let (_, _, body) = get(&s, "/files?purpose=assistants_output").await;
    assert_eq!(ids(&body), ["file-out"]);
    let (_, _, body) = get(&s, "/files?order=asc&limit=2&after=file-doc").await;
    assert_eq!(
        (ids(&body), body["has_more"].as_bool()),
        (
            vec!["file-out".to_string(), "file-img".to_string()],
            Some(true)
        )
    );

    let (_, _, body) = get(&s, "/vector_stores/vs_1/files?filter=failed").await;
    assert_eq!(ids(&body), ["file-bad"]);
    let (_, _, body) = get(&s, "/vector_stores/vs_1/files?filter=completed").await;
    assert_eq!(ids(&body), ["file-doc"]);
    let (status, _, _) = get(&s, "/vector_stores/vs_1/files?filter=done").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn objects_are_completed_on_load() {
    let s = start(Options::default()).await;
    let (_, _, m) = get(&s, "/threads/thread_long/messages/msg_001").await;
    assert_eq!(m["object"], "thread.message");
    assert_eq!(m["thread_id"], "thread_long");
    assert_eq!(m["status"], "completed");
    assert_eq!(
        m["content"][0],
        serde_json::json!({"type": "text", "text": {"value": "message number 1", "annotations": []}})
    );
    assert_eq!(m["attachments"], serde_json::json!([]));

    // Given fields keep their order; `object` follows `id`; filled fields come last.
    let (_, _, a) = get(&s, "/assistants/asst_1").await;
    let keys: Vec<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys[..6],
        ["id", "object", "created_at", "name", "model", "description"]
    );

    let (_, _, run) = get(&s, "/threads/thread_long/runs/run_a").await;
    assert_eq!(
        (run["object"].as_str(), run["model"].as_str()),
        (Some("thread.run"), Some("gpt-4o-mini"))
    );
    let (_, _, steps) = get(&s, "/threads/thread_long/runs/run_a/steps?include[]=step_details.tool_calls[*].file_search.results[*].content").await;
    assert_eq!(steps["data"][0]["type"], "message_creation");
    assert_eq!(steps["data"][0]["assistant_id"], "asst_1");
    let (status, _, step) = get(&s, "/threads/thread_long/runs/run_a/steps/step_1").await;
    assert_eq!(
        (status, step["object"].as_str()),
        (StatusCode::OK, Some("thread.run.step"))
    );

    let (_, _, vs) = get(&s, "/vector_stores/vs_1").await;
    assert_eq!(
        vs["file_counts"],
        serde_json::json!({"in_progress": 0, "completed": 1, "failed": 1, "cancelled": 0, "total": 2})
    );
    let (_, _, f) = get(&s, "/files/file-out").await;
    assert_eq!(
        (f["object"].as_str(), f["bytes"].as_u64()),
        (Some("file"), Some(8))
    );
}
