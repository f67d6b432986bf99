//! The embeddings `engram verify` makes for its queries: with the model and endpoint of the
//! mapping (the target's model), live, or from a recording (`--replay DIR`) with no network.
//!
//! A recording holds the embeddings of what `engram migrate` embedded (the patterns' tasks),
//! not of verify's own queries (a sentence from the middle of a chunk). When every recorded
//! vector is exactly what engram's stand-in server computes for its input (the demo and test
//! recordings are made against it), a query the recording lacks is embedded with that same
//! deterministic function, and the report says so; otherwise such a query is an error naming
//! the input.

use crate::config::Config;
use crate::run::{Env, RunError};
use crate::source::fixtures::FixtureStore;
use crate::source::transport::{ApiRequest, ApiResponse, Credentials, Live, Offline, Transport};
use crate::standin::embeddings::embed_text;
use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// The transport for query embeddings, and a note for the report when it is not the live API.
pub fn transport(config: &Config, env: &Env, replay: Option<&Path>) -> Result<(Transport, Option<String>), RunError> {
    if let Some(dir) = replay {
        let store = FixtureStore::load(dir).map_err(RunError::Config)?;
        let synthetic = reproduced_by_standin(&store);
        let note = format!(
            "query embeddings answered from the recording {}{}",
            dir.display(),
            if synthetic {
                "; queries it lacks were embedded with the stand-in server's deterministic embedder, which reproduces every vector of the recording"
            } else {
                ""
            }
        );
        return Ok((Transport::offline(Box::new(ReplayEmbeddings { store, synthetic })), Some(note)));
    }
    let api_key = env.api_key.clone().ok_or_else(|| {
        RunError::Config(
            "OPENAI_API_KEY is not set: engram verify embeds its queries with [embedding] model, as the migration did.\n  Set it, use --dry-run to see what verify would embed, or --replay DIR to answer from a recording."
                .to_string(),
        )
    })?;
    let credentials = Credentials { api_key, organization: env.organization.clone(), project: env.project.clone() };
    let live = Live::new(
        &config.base_url,
        &config.embedding_base_url,
        credentials,
        Duration::from_secs(config.mapping.source.timeout_secs),
        crate::run::retry_policy(config, env),
    )
    .map_err(|e| RunError::Failed(format!("building the HTTP client: {e}")))?;
    Ok((Transport::live(live), None))
}

/// True when the recording has embeddings and each is the stand-in's vector for its input.
fn reproduced_by_standin(store: &FixtureStore) -> bool {
    let mut any = false;
    for (_, _, input, vector) in store.recorded_embeddings() {
        any = true;
        let ours = embed_text(input, vector.len());
        if ours.len() != vector.len() || ours.iter().zip(vector).any(|(a, b)| (a - b).abs() > 1e-6) {
            return false;
        }
    }
    any
}

struct ReplayEmbeddings {
    store: FixtureStore,
    synthetic: bool,
}

impl ReplayEmbeddings {
    fn vector(&self, model: &str, dims: Option<u64>, input: &str) -> Option<Vec<f32>> {
        if let Some(v) = self.store.recorded_embedding(model, dims, input) {
            return Some(v.to_vec());
        }
        if !self.synthetic {
            return None;
        }
        let size = dims.map(|d| d as usize).or_else(|| self.store.recorded_embeddings().next().map(|(_, _, _, v)| v.len()))?;
        Some(embed_text(input, size))
    }
}

impl Offline for ReplayEmbeddings {
    fn answer(&self, req: &ApiRequest) -> ApiResponse {
        let error = |status: u16, message: String| ApiResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from(json!({"error": {"message": message}}).to_string()),
        };
        let Some(body) = req.body.as_ref().filter(|_| req.path == "/embeddings") else {
            return error(404, format!("engram verify reads only embeddings from a recording, not {}", req.describe()));
        };
        let model = body["model"].as_str().unwrap_or_default();
        let dims = body["dimensions"].as_u64();
        let inputs: Vec<&str> = body["input"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        let mut data = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            let Some(vector) = self.vector(model, dims, input) else {
                return error(
                    404,
                    format!(
                        "no recorded embedding of the query {input:?} ({model}) in {}; verify without --replay (OPENAI_API_KEY set) to embed it",
                        self.store.dir().display()
                    ),
                );
            };
            let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
            data.push(json!({"object": "embedding", "index": i, "embedding": base64::engine::general_purpose::STANDARD.encode(bytes)}));
        }
        ApiResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from(json!({"object": "list", "data": data, "model": model}).to_string()),
        }
    }
}
