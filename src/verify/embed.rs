//! The embeddings `engram verify` makes for its queries: with the model and endpoint of the
//! mapping (the target's model), live, or from a recording (`--replay DIR`) with no network.
//!
//! A recording holds the embeddings of what `engram migrate` embedded (the patterns' tasks),
//! so a message pair's or a tool's query (its task) is in it; a file chunk's query (a sentence
//! from its middle) is not. When every recorded vector is exactly what engram's stand-in
//! server computes for its input (the demo and test recordings are made against it), a query
//! the recording lacks is embedded with that same deterministic function, and the report says
//! so; otherwise such a query is not checked, and the report counts it.

use crate::config::Config;
use crate::embed::{EmbedTotals, Embedder, count_tokens};
use crate::app::{Env, RunError};
use crate::http::replay::FixtureStore;
use crate::http::transport::Transport;
use crate::embed::synthetic::embed_text;
use std::path::Path;
use std::sync::Arc;

/// Embeds verify's queries the way the migration embedded its tasks.
pub enum QueryEmbedder {
    Api(Embedder),
    Recording(ReplayEmbeddings),
}

impl QueryEmbedder {
    /// The embedder, and a note for the report when it is not the live API.
    pub fn new(config: &Config, env: &Env, replay: Option<&Path>) -> Result<(QueryEmbedder, Option<String>), RunError> {
        let m = &config.mapping.embedding;
        if let Some(dir) = replay {
            let store = FixtureStore::load(dir).map_err(RunError::Config)?;
            let synthetic = reproduced_by_standin(&store);
            let note = format!(
                "query embeddings answered from the recording {}{}",
                dir.display(),
                if synthetic {
                    "; queries it lacks were embedded with the stand-in server's deterministic embedder, which reproduces every vector of the recording"
                } else {
                    "; queries it lacks (file chunks' sentences) are not checked"
                }
            );
            let r = ReplayEmbeddings { store, synthetic, model: m.model.clone(), dims: m.dimensions.map(u64::from) };
            return Ok((QueryEmbedder::Recording(r), Some(note)));
        }
        let live = crate::app::live_client(
            config,
            env,
            "OPENAI_API_KEY is not set: engram verify embeds its queries with [embedding] model, as the migration did.\n  Set it, use --dry-run to see what verify would embed, or --replay DIR to answer from a recording.",
        )?;
        let embedder = Embedder::new(Arc::new(Transport::live(live)), m.model.clone(), m.dimensions, m.batch_inputs);
        Ok((QueryEmbedder::Api(embedder), None))
    }

    /// One vector per text (texts already cut with `embedding_input`); None for a text a
    /// recording cannot answer. Requests made are added to `totals` (a recording makes none).
    pub async fn embed(&self, texts: &[String], totals: &mut EmbedTotals) -> Result<Vec<Option<Vec<f32>>>, RunError> {
        match self {
            QueryEmbedder::Api(e) => Ok(e.embed(texts, totals).await?.into_iter().map(Some).collect()),
            QueryEmbedder::Recording(r) => {
                let out: Vec<Option<Vec<f32>>> = texts.iter().map(|t| r.vector(t)).collect();
                totals.inputs += texts.len();
                totals.tokens += texts.iter().map(|t| count_tokens(t)).sum::<usize>();
                Ok(out)
            }
        }
    }

    pub fn batch_inputs(&self) -> usize {
        match self {
            QueryEmbedder::Api(e) => e.batch_inputs,
            QueryEmbedder::Recording(_) => crate::embed::MAX_INPUTS_PER_REQUEST,
        }
    }
}

/// What a dry run predicts: the requests the real verify makes for these texts (planned by
/// the same function the embedder sends them with).
pub fn estimate(texts: &[String], batch_inputs: usize, totals: &mut EmbedTotals) {
    crate::embed::plan_requests(texts, batch_inputs).iter().for_each(|r| totals.add(r));
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

pub struct ReplayEmbeddings {
    store: FixtureStore,
    synthetic: bool,
    model: String,
    dims: Option<u64>,
}

impl ReplayEmbeddings {
    fn vector(&self, input: &str) -> Option<Vec<f32>> {
        if let Some(v) = self.store.recorded_embedding(&self.model, self.dims, input) {
            return Some(v.to_vec());
        }
        if !self.synthetic {
            return None;
        }
        let size = self.dims.map(|d| d as usize).or_else(|| self.store.recorded_embeddings().next().map(|(_, _, _, v)| v.len()))?;
        Some(embed_text(input, size))
    }
}
