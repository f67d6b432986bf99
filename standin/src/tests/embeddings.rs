//! `POST /v1/embeddings` over HTTP.

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{KEY, client, message, send, start};
use crate::{Options, Standin, embed_text};

async fn embed(s: &Standin, body: Value) -> (StatusCode, Value) {
    let (status, _, body) = send(
        client()
            .post(format!("{}/embeddings", s.base_url))
            .bearer_auth(KEY)
            .json(&body),
    )
    .await;
    (status, body)
}

fn floats(v: &Value) -> Vec<f32> {
    match v {
        Value::Array(a) => a.iter().map(|x| x.as_f64().unwrap() as f32).collect(),
        Value::String(b64) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        }
        other => panic!("not an embedding: {other}"),
    }
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test]
async fn float_and_base64_encode_the_same_unit_vector() {
    let s = start(Options::default()).await;
    let text = "How do I rotate my API key?";
    let (status, f) = embed(
        &s,
        json!({"model": "text-embedding-3-small", "input": text}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{f}");
    assert_eq!(f["object"], "list");
    assert_eq!(f["model"], "text-embedding-3-small");
    assert_eq!(f["data"][0]["object"], "embedding");
    assert_eq!(f["data"][0]["index"], 0);
    let tokens = tiktoken_rs::cl100k_base_singleton()
        .encode_ordinary(text)
        .len();
    assert_eq!(
        f["usage"],
        json!({"prompt_tokens": tokens, "total_tokens": tokens})
    );
    let (_, b) = embed(
        &s,
        json!({"model": "text-embedding-3-small", "input": text, "encoding_format": "base64"}),
    )
    .await;
    let b64 = b["data"][0]["embedding"].as_str().unwrap();
    assert!(b64.len() % 4 == 0, "padded base64");
    let (vf, vb) = (
        floats(&f["data"][0]["embedding"]),
        floats(&b["data"][0]["embedding"]),
    );
    assert_eq!(vf.len(), 1536);
    assert_eq!(vf, vb, "float and base64 must decode to the same f32s");
    assert_eq!(vf, embed_text(text, 1536));
    assert!((cos(&vf, &vf) - 1.0).abs() < 1e-5);
}

#[tokio::test]
async fn vectors_do_not_depend_on_the_batch() {
    let s = start(Options::default()).await;
    let (_, alone) = embed(
        &s,
        json!({"model": "m", "input": ["weather in Oslo tomorrow"]}),
    )
    .await;
    let (_, batch) = embed(
        &s,
        json!({"model": "m", "input": ["refund my order", "weather in Oslo tomorrow", "x"]}),
    )
    .await;
    assert_eq!(batch["data"].as_array().unwrap().len(), 3);
    assert_eq!(batch["data"][1]["index"], 1);
    assert_eq!(
        floats(&alone["data"][0]["embedding"]),
        floats(&batch["data"][1]["embedding"])
    );
}

#[tokio::test]
async fn paraphrases_are_similar_and_unrelated_texts_are_not() {
    let s = start(Options::default()).await;
    let input = [
        "How do I rotate my API key?",
        "rotating an API key",
        "weather in Oslo tomorrow",
    ];
    let (_, body) = embed(
        &s,
        json!({"model": "text-embedding-3-large", "input": input}),
    )
    .await;
    let v: Vec<Vec<f32>> = (0..3)
        .map(|i| floats(&body["data"][i]["embedding"]))
        .collect();
    assert_eq!(v[0].len(), 3072);
    let (near, far) = (cos(&v[0], &v[1]), cos(&v[0], &v[2]));
    assert!(near > far + 0.3, "near {near} far {far}");
}

#[tokio::test]
async fn dimensions_and_models() {
    let s = start(Options::default()).await;
    let (status, body) = embed(
        &s,
        json!({"model": "text-embedding-3-small", "input": "a b c", "dimensions": 256}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let v = floats(&body["data"][0]["embedding"]);
    assert_eq!(v.len(), 256);
    assert!((cos(&v, &v) - 1.0).abs() < 1e-5);
    let (_, body) = embed(&s, json!({"model": "some-local-model", "input": "a"})).await;
    assert_eq!(floats(&body["data"][0]["embedding"]).len(), 1536);
    let (status, body) = embed(
        &s,
        json!({"model": "text-embedding-ada-002", "input": "a", "dimensions": 256}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        message(&body),
        "This model does not support specifying dimensions."
    );
}

#[tokio::test]
async fn input_limits() {
    let s = start(Options::default()).await;
    let invalid = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.";
    let too_many: Vec<String> = (0..2049).map(|k| format!("item {k}")).collect();
    for input in [
        json!(""),
        json!([]),
        json!(too_many),
        json!([""]),
        json!({"text": "a"}),
    ] {
        let (status, body) = embed(&s, json!({"model": "m", "input": input})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(message(&body), invalid);
    }
    let exactly: Vec<String> = (0..2048).map(|k| format!("item {k}")).collect();
    let (status, body) = embed(&s, json!({"model": "m", "input": exactly, "dimensions": 4})).await;
    assert_eq!(
        (status, body["data"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(2048))
    );
    let (status, body) = embed(&s, json!({"model": "m", "input": "a", "temperature": 0})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        message(&body),
        "Unrecognized request argument supplied: temperature"
    );
    let (status, body) = embed(&s, json!({"model": "m", "input": "word ".repeat(9000)})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        message(&body),
        "Invalid 'input': maximum context length is 8192 tokens."
    );
    // Token-id inputs are decoded with cl100k and embedded like the text.
    let ids = tiktoken_rs::cl100k_base_singleton().encode_ordinary("hello world");
    let (status, body) = embed(&s, json!({"model": "m", "input": [ids], "dimensions": 16})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        floats(&body["data"][0]["embedding"]),
        embed_text("hello world", 16)
    );
}

#[tokio::test]
async fn embedding_counters() {
    let s = start(Options::default()).await;
    embed(
        &s,
        json!({"model": "m", "input": ["a", "b", "c"], "dimensions": 8}),
    )
    .await;
    embed(&s, json!({"model": "m", "input": "d", "dimensions": 8})).await;
    embed(&s, json!({"model": "m", "input": ""})).await; // rejected: not counted as embedded
    let stats = s.stats();
    assert_eq!((stats.embedding_requests, stats.embedding_inputs), (2, 4));
    assert_eq!(stats.by_route["POST /embeddings"], 3);
}
