//! Deterministic synthetic embeddings: the vectors engram's stand-in OpenAI server answers
//! with, and that `engram verify` reproduces offline for a recording made against it.
//!
//! The vector ([`embed_text`]) is feature hashing: lower-cased Unicode alphanumeric words
//! (weight 1.0), word bigrams (0.5) and character trigrams of each word padded with spaces
//! (0.3), each hashed (FNV-1a 64, then a SplitMix64 finaliser) to an index in `0..dims` with a
//! sign from the top hash bit, then L2-normalised. Texts that share words or word stems land
//! near each other ("rotate my API key" / "rotating an API key"), unrelated texts near
//! orthogonal, and a text's vector never depends on its batch. It is not a language model:
//! synonyms with no shared letters are not similar.

/// The stand-in's embedding of `text` with `dims` dimensions: deterministic, L2-normalised
/// (length 1 whenever `dims > 0`), the same whatever else is in the request.
pub fn embed_text(text: &str, dims: usize) -> Vec<f32> {
    if dims == 0 {
        return Vec::new();
    }
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let mut v = vec![0f64; dims];
    for w in &words {
        add(&mut v, b'w', w, 1.0);
    }
    for pair in words.windows(2) {
        add(&mut v, b'b', &format!("{} {}", pair[0], pair[1]), 0.5);
    }
    for w in &words {
        let padded: Vec<char> = format!(" {w} ").chars().collect();
        for tri in padded.windows(3) {
            add(&mut v, b't', &tri.iter().collect::<String>(), 0.3);
        }
    }
    if words.is_empty() {
        // Punctuation or symbols only: still a stable, non-zero vector.
        add(&mut v, b'r', text, 1.0);
    }
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm == 0.0 {
        // Every feature cancelled out (hash collisions with opposite signs).
        v[0] = 1.0;
        return v.iter().map(|&x| x as f32).collect();
    }
    v.iter().map(|&x| (x / norm) as f32).collect()
}

fn add(v: &mut [f64], kind: u8, feature: &str, weight: f64) {
    let h = mix(fnv1a(kind, feature.as_bytes()));
    let index = (h % v.len() as u64) as usize;
    v[index] += if h >> 63 == 1 { -weight } else { weight };
}

fn fnv1a(kind: u8, bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in std::iter::once(&kind).chain(bytes) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// SplitMix64's finaliser: spreads FNV's weak high bits over the whole word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn vectors_are_unit_length_and_deterministic() {
        for text in [
            "How do I rotate my API key?",
            "!!!",
            "Dobrý den 🙏 注文",
            "x",
        ] {
            let v = embed_text(text, 256);
            assert!((cos(&v, &v) - 1.0).abs() < 1e-5, "{text}");
            assert_eq!(v, embed_text(text, 256));
        }
        assert!(embed_text("anything", 0).is_empty());
    }

    #[test]
    fn paraphrases_are_closer_than_unrelated_text() {
        let q = embed_text("How do I rotate my API key?", 1536);
        let near = cos(&q, &embed_text("rotating an API key", 1536));
        let far = cos(&q, &embed_text("weather in Oslo tomorrow", 1536));
        assert!(near > 0.3 && far < 0.1, "near {near}, far {far}");
    }
}
