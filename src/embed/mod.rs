//! Embed: batched calls to an OpenAI-compatible `POST /embeddings` for the records the plan
//! will write, and nothing else.
//!
//! Batches respect the API's limits: at most `batch_inputs` (≤ 2048) inputs and 300,000
//! tokens per request, 8,192 tokens per input (longer inputs are cut to that many tokens), and
//! never an empty string. Tokens are counted with cl100k_base, the embedding models' tokenizer.

pub mod synthetic;

use crate::http::decode_base64_f32;
use crate::http::transport::{ApiRequest, SharedTransport, TransportError};
use serde_json::json;

pub const MAX_INPUTS_PER_REQUEST: usize = 2048;
pub const MAX_TOKENS_PER_REQUEST: usize = 300_000;
pub const MAX_TOKENS_PER_INPUT: usize = 8192;
/// Embeddings requests of one batch sent at once, at most (the transport's in-flight limit and
/// the declared request and token budgets pace them further).
const REQUESTS_AT_ONCE: usize = 4;

/// Price in USD per million input tokens, from OpenAI's model pages.
pub fn price_per_million(model: &str) -> Option<f64> {
    match model {
        "text-embedding-3-small" => Some(0.02),
        "text-embedding-3-large" => Some(0.13),
        "text-embedding-ada-002" => Some(0.10),
        _ => None,
    }
}

/// The vector size a known model returns, given an optional `dimensions` request.
pub fn expected_dimensions(model: &str, dimensions: Option<u32>) -> Option<usize> {
    if let Some(d) = dimensions {
        return Some(d as usize);
    }
    match model {
        "text-embedding-3-small" | "text-embedding-ada-002" => Some(1536),
        "text-embedding-3-large" => Some(3072),
        _ => None,
    }
}

pub fn count_tokens(text: &str) -> usize {
    tiktoken_rs::cl100k_base_singleton().encode_ordinary(text).len()
}

/// The text actually sent for `text`: cut to the per-input token limit.
pub fn embedding_input(text: &str) -> String {
    let bpe = tiktoken_rs::cl100k_base_singleton();
    let tokens = bpe.encode_ordinary(text);
    if tokens.len() <= MAX_TOKENS_PER_INPUT {
        return text.to_string();
    }
    bpe.decode(&tokens[..MAX_TOKENS_PER_INPUT]).unwrap_or_else(|_| text.chars().take(8000).collect())
}

/// Splits inputs (given by their token counts) into request batches within the limits.
/// Pure, so the dry run predicts exactly the requests the real run makes.
pub fn batch_ranges(token_counts: &[usize], max_inputs: usize) -> Vec<std::ops::Range<usize>> {
    let max_inputs = max_inputs.clamp(1, MAX_INPUTS_PER_REQUEST);
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut tokens = 0;
    for (i, &t) in token_counts.iter().enumerate() {
        let t = t.min(MAX_TOKENS_PER_INPUT);
        if i > start && (i - start >= max_inputs || tokens + t > MAX_TOKENS_PER_REQUEST) {
            ranges.push(start..i);
            start = i;
            tokens = 0;
        }
        tokens += t;
    }
    if start < token_counts.len() {
        ranges.push(start..token_counts.len());
    }
    ranges
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("the embeddings endpoint rejected the key (HTTP 401: {0}); the key came from OPENAI_API_KEY")]
    Unauthorized(String),
    #[error("POST /embeddings answered HTTP {status}: {message}")]
    Http { status: u16, message: String },
    #[error("POST /embeddings: {0}")]
    Malformed(String),
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// Running totals, for the report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmbedTotals {
    pub inputs: usize,
    pub tokens: usize,
    pub requests: usize,
}

impl EmbedTotals {
    /// Adds another tally (a batch embedded in its own task) to this one.
    pub fn absorb(&mut self, other: &EmbedTotals) {
        self.inputs += other.inputs;
        self.tokens += other.tokens;
        self.requests += other.requests;
    }

    pub fn add(&mut self, request: &PlannedRequest) {
        self.requests += 1;
        self.inputs += request.inputs.len();
        self.tokens += request.tokens;
    }
}

/// One embeddings request: which of the texts it carries, and their tokens (cl100k_base).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRequest {
    pub inputs: std::ops::Range<usize>,
    pub tokens: usize,
}

/// The requests that embed `texts`, in order, under the API's limits (`batch_ranges`).
pub fn plan_requests(texts: &[String], max_inputs: usize) -> Vec<PlannedRequest> {
    let counts: Vec<usize> = texts.iter().map(|t| count_tokens(t)).collect();
    batch_ranges(&counts, max_inputs)
        .into_iter()
        .map(|inputs| PlannedRequest { tokens: counts[inputs.clone()].iter().sum(), inputs })
        .collect()
}

pub struct Embedder {
    transport: SharedTransport,
    pub model: String,
    pub dimensions: Option<u32>,
    pub batch_inputs: usize,
}

impl Embedder {
    pub fn new(transport: SharedTransport, model: String, dimensions: Option<u32>, batch_inputs: usize) -> Self {
        Embedder { transport, model, dimensions, batch_inputs }
    }

    /// Embeds `texts` (already cut with `embedding_input`, none empty) in the requests
    /// `plan_requests` names; returns one vector per text, in order.
    /// Several requests go out at once (the transport paces them); the answers keep the order.
    pub async fn embed(&self, texts: &[String], totals: &mut EmbedTotals) -> Result<Vec<Vec<f32>>, EmbedError> {
        use futures::StreamExt;
        let planned = plan_requests(texts, self.batch_inputs);
        let mut answers = futures::stream::iter(planned)
            .map(|p: PlannedRequest| {
                let answer = self.request(&texts[p.inputs.clone()], p.tokens as u64);
                async move { (p, answer.await) }
            })
            .buffered(REQUESTS_AT_ONCE);
        let mut out = Vec::with_capacity(texts.len());
        while let Some((p, vectors)) = answers.next().await {
            out.extend(vectors?);
            totals.add(&p);
        }
        Ok(out)
    }

    /// What `embed` would send for `texts`, added to `totals` without sending it (a dry run,
    /// `verify --dry-run`): the same function plans both, so the estimate is the real count.
    pub fn estimate(&self, texts: &[String], totals: &mut EmbedTotals) {
        plan_requests(texts, self.batch_inputs).iter().for_each(|r| totals.add(r));
    }

    async fn request(&self, batch: &[String], tokens: u64) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut body = json!({"model": self.model, "input": batch, "encoding_format": "base64"});
        if let Some(d) = self.dimensions {
            body["dimensions"] = json!(d);
        }
        let resp = self.transport.send_weighted(&ApiRequest::post_embeddings(body), tokens).await?;
        if resp.status == 401 {
            return Err(EmbedError::Unauthorized(resp.error_message()));
        }
        if !resp.is_success() {
            return Err(EmbedError::Http { status: resp.status, message: resp.error_message() });
        }
        // Typed, borrowing the base64 text from the body: a full batch is 2048 vectors, and a
        // `Value` tree of it would hold the answer a second time (many times, for floats).
        let answer: Answer<'_> = serde_json::from_slice(&resp.body).map_err(|e| EmbedError::Malformed(format!("not an embeddings answer: {e}")))?;
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; batch.len()];
        for item in answer.data {
            let i = item.index;
            let vec = match item.embedding {
                Encoded::Floats(v) => Some(v),
                Encoded::Base64(s) => decode_base64_f32(&s),
            }
            .ok_or_else(|| EmbedError::Malformed(format!("item {i}: `embedding` is neither floats nor base64 f32")))?;
            if vec.is_empty() || vec.iter().any(|f| !f.is_finite()) {
                return Err(EmbedError::Malformed(format!("item {i}: empty or non-finite vector")));
            }
            *vectors.get_mut(i).ok_or_else(|| EmbedError::Malformed(format!("index {i} out of range")))? = Some(vec);
        }
        let vectors: Vec<Vec<f32>> = vectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| v.ok_or_else(|| EmbedError::Malformed(format!("no vector for input {i}"))))
            .collect::<Result<_, _>>()?;
        let dims = vectors[0].len();
        if vectors.iter().any(|v| v.len() != dims) {
            return Err(EmbedError::Malformed("vectors of different sizes in one answer".into()));
        }
        Ok(vectors)
    }
}

/// `POST /embeddings` as engram reads it.
#[derive(serde::Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    data: Vec<Item<'a>>,
}

#[derive(serde::Deserialize)]
struct Item<'a> {
    index: usize,
    #[serde(borrow)]
    embedding: Encoded<'a>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Encoded<'a> {
    Floats(Vec<f32>),
    Base64(#[serde(borrow)] std::borrow::Cow<'a, str>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_input_and_token_limits() {
        assert_eq!(batch_ranges(&[], 10), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(batch_ranges(&[1, 1, 1, 1, 1], 2), vec![0..2, 2..4, 4..5]);
        // 8192-token inputs: 36 fit in 300k (36 * 8192 = 294,912), the 37th starts a new batch.
        let big = vec![8192; 40];
        assert_eq!(batch_ranges(&big, 2048), vec![0..36, 36..40]);
        // Over-long inputs count as the cut they will be sent as.
        assert_eq!(batch_ranges(&[100_000, 100_000], 2048), vec![0..2]);
    }

    #[test]
    fn long_inputs_are_cut_to_the_token_limit() {
        let text = "word ".repeat(9000);
        assert!(count_tokens(&text) > MAX_TOKENS_PER_INPUT);
        assert_eq!(count_tokens(&embedding_input(&text)), MAX_TOKENS_PER_INPUT);
        assert_eq!(embedding_input("short"), "short");
    }

    #[test]
    fn answers_in_floats_and_base64_decode_alike() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode([0.5f32, -2.0].iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>());
        let body = format!(r#"{{"object": "list", "data": [{{"index": 1, "embedding": "{b64}"}}, {{"index": 0, "embedding": [0.25, 1.0]}}], "usage": {{}}}}"#);
        let a: Answer<'_> = serde_json::from_str(&body).unwrap();
        let decoded: Vec<(usize, Vec<f32>)> = a
            .data
            .into_iter()
            .map(|i| (i.index, match i.embedding { Encoded::Floats(v) => v, Encoded::Base64(s) => decode_base64_f32(&s).unwrap() }))
            .collect();
        assert_eq!(decoded, vec![(1, vec![0.5, -2.0]), (0, vec![0.25, 1.0])]);
        assert_eq!(decode_base64_f32("AAA="), None, "two bytes are not an f32");
    }

    #[test]
    fn known_models() {
        assert_eq!(expected_dimensions("text-embedding-3-large", None), Some(3072));
        assert_eq!(expected_dimensions("text-embedding-3-large", Some(1024)), Some(1024));
        assert_eq!(expected_dimensions("my-model", None), None);
        assert_eq!(price_per_million("text-embedding-3-small"), Some(0.02));
    }
}
