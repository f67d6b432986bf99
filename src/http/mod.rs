//! HTTP: the transport every remote source and the embedder read through — live (with retries,
//! pacing and the rate-limit headers it reads), recording, or replaying recorded fixtures.
//!
//! Nothing here knows records, embeddings stores or sinks; it speaks requests and answers.
//! The one piece of wire format it decodes is base64 float32 arrays, because the replay store
//! answers an embeddings request from recorded vectors when a rerun batches its inputs
//! differently (`replay::FixtureStore::answer`).

pub mod limiter;
pub mod replay;
pub mod retry;
pub mod transport;

/// Little-endian f32s, base64-encoded (the embeddings API's `encoding_format: "base64"`).
pub fn decode_base64_f32(s: &str) -> Option<Vec<f32>> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    if bytes.len() % 4 != 0 {
        return None;
    }
    Some(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}
