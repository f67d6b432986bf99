//! Auth, beta header, id checks, the 2026-08-26 shutdown, downloads and vector-store content.

use reqwest::StatusCode;
use serde_json::json;

use super::{KEY, client, get, message, send, start};
use crate::Options;

#[tokio::test]
async fn auth_missing_or_wrong_is_401_with_a_masked_key() {
    let s = start(Options {
        api_key: Some(KEY.into()),
        ..Options::default()
    })
    .await;
    let url = format!("{}/files", s.base_url);

    let (status, _, body) = send(client().get(&url)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(message(&body).starts_with("You didn't provide an API key."));

    let wrong = "sk-live-0123456789abcdefghijWXYZ";
    let (status, _, body) = send(client().get(&url).bearer_auth(wrong)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "invalid_api_key");
    let msg = message(&body);
    assert!(
        msg.starts_with("Incorrect API key provided: sk-live-****"),
        "{msg}"
    );
    assert!(msg.contains("WXYZ.") && !msg.contains(wrong), "{msg}");

    let (status, _, _) = send(client().get(&url).bearer_auth(KEY)).await;
    assert_eq!(status, StatusCode::OK);

    // Without a configured key any bearer token passes, but one is still required.
    let open = start(Options::default()).await;
    let (status, _, _) = send(
        client()
            .get(format!("{}/files", open.base_url))
            .bearer_auth("anything"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(client().get(format!("{}/files", open.base_url))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn assistants_routes_need_the_v2_beta_header() {
    let s = start(Options::default()).await;
    let req = |beta: Option<&str>, path: &str| {
        let r = client()
            .get(format!("{}{path}", s.base_url))
            .bearer_auth(KEY);
        match beta {
            Some(b) => r.header("OpenAI-Beta", b),
            None => r,
        }
    };
    let (status, _, body) = send(req(None, "/threads/thread_long")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_beta");
    assert_eq!(
        message(&body),
        "You must provide the 'OpenAI-Beta' header to access the Assistants API. Please try again by setting the header 'OpenAI-Beta: assistants=v2'."
    );
    let (status, _, body) = send(req(Some("assistants=v1"), "/assistants")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message(&body).starts_with("The v1 Assistants API has been deprecated."));
    let (status, _, _) = send(req(Some("realtime=v1, assistants=v2"), "/assistants")).await;
    assert_eq!(status, StatusCode::OK);
    // Not needed on files and vector stores.
    for path in ["/files", "/vector_stores", "/vector_stores/vs_1/files"] {
        let (status, _, _) = send(req(None, path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn unknown_ids_are_404_and_wrong_prefixes_400() {
    let s = start(Options::default()).await;
    for (path, status, msg) in [
        (
            "/threads/thread_x",
            404,
            "No thread found with id 'thread_x'.",
        ),
        (
            "/threads/abc",
            400,
            "Invalid 'thread_id': 'abc'. Expected an ID that begins with 'thread'.",
        ),
        (
            "/threads/thread_x/messages",
            404,
            "No thread found with id 'thread_x'.",
        ),
        (
            "/threads/thread_long/messages/msg_x",
            404,
            "No message found with id 'msg_x'.",
        ),
        (
            "/threads/thread_long/messages/m1",
            400,
            "Invalid 'message_id': 'm1'. Expected an ID that begins with 'msg'.",
        ),
        (
            "/threads/thread_long/runs/run_x",
            404,
            "No run found with id 'run_x'.",
        ),
        (
            "/threads/thread_long/runs/run_x/steps",
            404,
            "No run found with id 'run_x'.",
        ),
        (
            "/assistants/asst_x",
            404,
            "No assistant found with id 'asst_x'.",
        ),
        (
            "/assistants/assistant-1",
            400,
            "Invalid 'assistant_id': 'assistant-1'. Expected an ID that begins with 'asst'.",
        ),
        ("/files/file-x", 404, "No such File object: file-x"),
        (
            "/files/file_x",
            400,
            "Invalid 'file_id': 'file_x'. Expected an ID that begins with 'file'.",
        ),
        (
            "/vector_stores/vs_x",
            404,
            "No vector store found with id 'vs_x'.",
        ),
        (
            "/vector_stores/vs_1/files/file-x",
            404,
            "No file found with id 'file-x' in vector store 'vs_1'.",
        ),
    ] {
        let (got, _, body) = get(&s, path).await;
        assert_eq!(got.as_u16(), status, "{path}: {body}");
        assert_eq!(message(&body), msg, "{path}");
    }
    let (_, _, body) = get(&s, "/files/file-x").await;
    assert_eq!(body["error"]["param"], "id");
    // There is no list-threads route for secret keys.
    let (status, _, body) = get(&s, "/threads").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing_scope"))
    );
}

#[tokio::test]
async fn after_the_shutdown_assistants_routes_are_404_but_files_work() {
    let s = start(Options {
        assistants_shut_down: true,
        ..Options::default()
    })
    .await;
    let (status, _, body) = get(&s, "/assistants").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"error": {"message": "Invalid URL (GET /v1/assistants)", "type": "invalid_request_error", "param": null, "code": null}})
    );
    for path in [
        "/threads/thread_long",
        "/threads/thread_long/messages",
        "/threads/thread_long/runs/run_a/steps",
    ] {
        let (status, _, body) = get(&s, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(message(&body), format!("Invalid URL (GET /v1{path})"));
    }
    for path in [
        "/files",
        "/files/file-out/content",
        "/vector_stores/vs_1/files",
    ] {
        let (status, _, _) = get(&s, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let body = json!({"model": "text-embedding-3-small", "input": "still up"});
    let (status, _, _) = send(
        client()
            .post(format!("{}/embeddings", s.base_url))
            .bearer_auth(KEY)
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn downloads_follow_the_purpose_rules() {
    let s = start(Options::default()).await;
    for (id, purpose) in [("file-doc", "assistants"), ("file-ud", "user_data")] {
        let (status, _, body) = get(&s, &format!("/files/{id}/content")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            message(&body),
            format!("Not allowed to download files of purpose: {purpose}")
        );
    }
    let resp = client()
        .get(format!("{}/files/file-out/content", s.base_url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    assert_eq!(resp.text().await.unwrap(), "a,b\n1,2\n");
    let resp = client()
        .get(format!("{}/files/file-img/content", s.base_url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"\x89PNG\r\n\x1a\n");
}

#[tokio::test]
async fn vector_store_file_content_has_the_schema_shape() {
    let s = start(Options::default()).await;
    let (status, _, body) = get(&s, "/vector_stores/vs_1/files/file-doc/content").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"object": "vector_store.file_content.page", "data": [{"type": "text", "text": "Parsed document text."}], "has_more": false, "next_page": null})
    );
    let (_, _, body) = get(&s, "/vector_stores/vs_1/files/file-bad/content").await;
    assert_eq!(body["data"], json!([]));
}
