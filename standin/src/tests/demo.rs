//! The demo account in fixtures/demo loads and is served as documented in fixtures/README.md.

use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::Value;

use super::{get, message, start_with};
use crate::{Account, Options, Standin};

fn demo_dir() -> PathBuf {
    // The demo account lives with engram's fixtures, one level up.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/demo")
}

/// (id, expected to exist) for each id line; an id right after a comment saying the thread
/// "no longer exists" is expected to be missing.
fn listed_threads() -> Vec<(String, bool)> {
    let text = std::fs::read_to_string(demo_dir().join("thread_ids.txt")).unwrap();
    let mut next_missing = false;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix('#') {
            next_missing |= comment.contains("no longer exists");
        } else {
            out.push((line.to_string(), !next_missing));
            next_missing = false;
        }
    }
    out
}

async fn demo() -> (Standin, Account) {
    let account = Account::load(&demo_dir().join("account.json")).expect("demo account loads");
    (
        start_with(account.clone(), Options::default()).await,
        account,
    )
}

async fn all_messages(s: &Standin, thread: &str) -> Vec<Value> {
    let (mut out, mut after) = (Vec::new(), String::new());
    loop {
        let (status, _, body) = get(
            s,
            &format!("/threads/{thread}/messages?order=asc&limit=100&after={after}"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        out.extend(body["data"].as_array().unwrap().iter().cloned());
        if body["has_more"] == false {
            return out;
        }
        after = out.last().unwrap()["id"].as_str().unwrap().to_string();
    }
}

#[tokio::test]
async fn every_listed_thread_is_served_except_the_documented_missing_one() {
    let (s, account) = demo().await;
    let listed = listed_threads();
    assert_eq!(
        listed.iter().filter(|(_, exists)| !exists).count(),
        1,
        "exactly one documented missing thread"
    );
    assert_eq!(
        listed
            .iter()
            .filter(|(_, exists)| *exists)
            .map(|(id, _)| id.clone())
            .collect::<Vec<_>>(),
        account.thread_ids()
    );
    for (id, exists) in &listed {
        let (status, _, body) = get(&s, &format!("/threads/{id}")).await;
        if *exists {
            assert_eq!(status, StatusCode::OK, "{id}: {body}");
            assert_eq!(body["metadata"]["tenant"], "acme");
            let messages = all_messages(&s, id).await;
            assert!(!messages.is_empty(), "{id}");
        } else {
            assert_eq!(status, StatusCode::NOT_FOUND);
            assert_eq!(message(&body), format!("No thread found with id '{id}'."));
        }
    }
}

#[tokio::test]
async fn demo_content_covers_the_documented_cases() {
    let (s, account) = demo().await;
    let (_, _, assistants) = get(&s, "/assistants?order=asc").await;
    let names: Vec<&str> = assistants["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Support Bot", "Weather Helper", "Docs Assistant"]);

    let mut long_threads = 0;
    let (mut citations, mut file_paths, mut images, mut function_calls) = (0, 0, 0, Vec::new());
    for id in account.thread_ids() {
        let messages = all_messages(&s, &id).await;
        long_threads += usize::from(messages.len() > 100);
        for m in &messages {
            for part in m["content"].as_array().unwrap() {
                images += usize::from(part["type"] == "image_file");
                for a in part["text"]["annotations"].as_array().into_iter().flatten() {
                    citations += usize::from(a["type"] == "file_citation");
                    file_paths += usize::from(a["type"] == "file_path");
                    let marker = a["text"].as_str().unwrap();
                    let value: Vec<char> =
                        part["text"]["value"].as_str().unwrap().chars().collect();
                    let (start, end) = (
                        a["start_index"].as_u64().unwrap() as usize,
                        a["end_index"].as_u64().unwrap() as usize,
                    );
                    assert_eq!(
                        value[start..end].iter().collect::<String>(),
                        marker,
                        "annotation indices count characters"
                    );
                }
            }
        }
        let (_, _, runs) = get(&s, &format!("/threads/{id}/runs?limit=100")).await;
        for run in runs["data"].as_array().unwrap() {
            assert_eq!(run["status"], "completed");
            let (_, _, steps) = get(
                &s,
                &format!("/threads/{id}/runs/{}/steps", run["id"].as_str().unwrap()),
            )
            .await;
            for call in steps["data"].as_array().unwrap().iter().flat_map(|st| {
                st["step_details"]["tool_calls"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            }) {
                if call["type"] == "function" {
                    assert!(call["function"]["output"].is_string());
                    function_calls.push(call["function"]["name"].as_str().unwrap().to_string());
                }
            }
        }
    }
    assert_eq!(long_threads, 1);
    assert!(
        citations >= 3 && file_paths == 1 && images == 1,
        "{citations} {file_paths} {images}"
    );
    for name in ["get_order_status", "issue_refund", "get_weather"] {
        assert!(
            function_calls.iter().any(|n| n == name),
            "{name} in {function_calls:?}"
        );
    }

    // Cited documents are not downloadable but their parsed text is served; the CSV downloads.
    let (_, _, files) = get(&s, "/files?purpose=assistants_output").await;
    let csv = files["data"][0]["id"].as_str().unwrap();
    let (status, _, _) = get(&s, &format!("/files/{csv}/content")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, stores) = get(&s, "/vector_stores").await;
    let vs = stores["data"][0]["id"].as_str().unwrap();
    let (_, _, vs_files) = get(&s, &format!("/vector_stores/{vs}/files?filter=completed")).await;
    for f in vs_files["data"].as_array().unwrap() {
        let fid = f["id"].as_str().unwrap();
        let (status, _, body) = get(&s, &format!("/files/{fid}/content")).await;
        assert_eq!(
            (status, message(&body)),
            (
                StatusCode::BAD_REQUEST,
                "Not allowed to download files of purpose: assistants"
            )
        );
        let (_, _, content) = get(&s, &format!("/vector_stores/{vs}/files/{fid}/content")).await;
        assert!(content["data"][0]["text"].as_str().unwrap().len() > 500);
    }
}
