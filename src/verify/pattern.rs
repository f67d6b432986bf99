//! Pure parts of `engram verify`: Engramia's rules for a stored pattern, the query an agent
//! would send for a record, and the seeded choice of which records to query.

use crate::record::RecordKind;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Why Engramia would skip a stored pattern, or None when it reads it.
///
/// Engramia 0.6.6 loads a pattern with `Pattern.model_validate` (engramia/types.py): `task: str`,
/// `design: dict`, `success_score: float` in 0..=10 (default 1.0), `reuse_count: int` >= 0
/// (default 0), `timestamp: float` (default now). Pydantic's lax mode also takes numbers
/// written as strings, booleans, and integral floats for the int (checked against Engramia
/// itself in tests/verify.rs). `recall` (eval-weighted, the default) skips a pattern that fails
/// this as corrupted, and one whose file `json.load` cannot parse.
pub fn invalid_reason(pattern: &Value) -> Option<String> {
    let Value::Object(p) = pattern else {
        return Some(format!("the pattern is a JSON {}, not an object", type_name(pattern)));
    };
    match p.get("task") {
        Some(Value::String(_)) => {}
        None => return Some("`task` is missing".into()),
        Some(v) => return Some(format!("`task` is a {}, not a string", type_name(v))),
    }
    match p.get("design") {
        Some(Value::Object(_)) => {}
        None => return Some("`design` is missing".into()),
        Some(v) => return Some(format!("`design` is a {}, not an object", type_name(v))),
    }
    if let Some(v) = p.get("success_score") {
        match number(v) {
            Some(x) if (0.0..=10.0).contains(&x) => {}
            Some(x) => return Some(format!("`success_score` is {x}, outside 0-10")),
            None => return Some(format!("`success_score` is a {}, not a number", type_name(v))),
        }
    }
    if let Some(v) = p.get("reuse_count") {
        match number(v) {
            Some(x) if x.is_finite() && x.fract() == 0.0 && x >= 0.0 => {}
            Some(x) => return Some(format!("`reuse_count` is {x}, not a whole number >= 0")),
            None => return Some(format!("`reuse_count` is a {}, not an integer", type_name(v))),
        }
    }
    if let Some(v) = p.get("timestamp")
        && number(v).is_none()
    {
        return Some(format!("`timestamp` is a {}, not a number", type_name(v)));
    }
    None
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        // Python's float(): also "inf" and "nan" (a NaN score then fails the 0-10 range).
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The query an agent would send to find this record: the user's question for a message pair
/// (its `task`), the tool's description for a tool, and a sentence from the middle of the
/// chunk (`design.code`) for a file chunk, chosen with `seed`.
pub fn query_for(kind: RecordKind, pattern: &Value, key: &str, seed: u64) -> String {
    let task = pattern.get("task").and_then(Value::as_str).unwrap_or_default();
    match kind {
        RecordKind::MessagePair | RecordKind::Tool => task.to_string(),
        RecordKind::FileChunk => {
            let code = pattern.pointer("/design/code").and_then(Value::as_str).unwrap_or_default();
            middle_sentence(code, pick(seed, key)).unwrap_or_else(|| task.to_string())
        }
    }
}

/// Longest query taken from a chunk, in characters: a sentence, not a paragraph.
const MAX_SENTENCE_CHARS: usize = 300;

/// One of the sentences that start in the middle half of `text` (or the one around its
/// midpoint), chosen by `pick`; None when `text` has no words.
pub fn middle_sentence(text: &str, pick: u64) -> Option<String> {
    let sentences = sentences(text);
    if sentences.is_empty() {
        return None;
    }
    let len = text.len().max(1);
    let middle: Vec<&(usize, String)> =
        sentences.iter().filter(|(start, _)| *start * 4 >= len && *start * 4 <= len * 3).collect();
    let chosen = if middle.is_empty() {
        // Few, long sentences: the last one starting before the midpoint.
        sentences.iter().rfind(|(start, _)| start * 2 <= len).unwrap_or(&sentences[0])
    } else {
        middle[(pick % middle.len() as u64) as usize]
    };
    let s = &chosen.1;
    if s.chars().count() <= MAX_SENTENCE_CHARS {
        return Some(s.clone());
    }
    // A run-on "sentence" (a table, a list without full stops): its middle words.
    let words: Vec<&str> = s.split_whitespace().collect();
    let mut out = String::new();
    let start = words.len() / 3;
    for w in &words[start..] {
        if out.len() + w.len() + 1 > MAX_SENTENCE_CHARS {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    Some(out)
}

/// Sentences (ending at `.`, `!`, `?` before whitespace, or at a line break) with at least
/// three words, each with its byte offset.
fn sentences(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (i, &(at, c)) in chars.iter().enumerate() {
        let next_is_space = chars.get(i + 1).is_none_or(|(_, n)| n.is_whitespace());
        let end = c == '\n' || (matches!(c, '.' | '!' | '?') && next_is_space);
        if end || i + 1 == chars.len() {
            let stop = at + c.len_utf8();
            push_sentence(&mut out, start, &text[start..stop]);
            start = stop;
        }
    }
    out
}

fn push_sentence(out: &mut Vec<(usize, String)>, start: usize, raw: &str) {
    let trimmed = raw.trim();
    let words = trimmed.split_whitespace().filter(|w| w.chars().any(char::is_alphanumeric)).count();
    if words >= 3 {
        let offset = start + (raw.len() - raw.trim_start().len());
        out.push((offset, trimmed.split_whitespace().collect::<Vec<_>>().join(" ")));
    }
}

/// A number derived from the seed and a key: the same for the same pair, on every machine.
pub fn pick(seed: u64, key: &str) -> u64 {
    let digest = Sha256::new().chain_update(seed.to_be_bytes()).chain_update(key.as_bytes()).finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Which records of a scope are queried: the `n` whose `pick(seed ^ SAMPLE, key)` is smallest.
/// Streaming: offer every key once; memory holds `n` items.
pub struct Sampler<T> {
    n: Option<usize>,
    seed: u64,
    heap: std::collections::BinaryHeap<Ranked<T>>,
}

/// Keeps the sample independent of the sentence choice.
const SAMPLE: u64 = 0x5a4d_504c_4500_0000;

struct Ranked<T>(u64, String, T);

impl<T> PartialEq for Ranked<T> {
    fn eq(&self, o: &Self) -> bool {
        (self.0, &self.1) == (o.0, &o.1)
    }
}
impl<T> Eq for Ranked<T> {}
impl<T> PartialOrd for Ranked<T> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Ranked<T> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.0, &self.1).cmp(&(o.0, &o.1))
    }
}

impl<T> Sampler<T> {
    /// `n = None`: every record (`--all`).
    pub fn new(n: Option<usize>, seed: u64) -> Self {
        Sampler { n, seed, heap: std::collections::BinaryHeap::new() }
    }

    pub fn offer(&mut self, key: &str, item: T) {
        let rank = pick(self.seed ^ SAMPLE, key);
        if let Some(n) = self.n {
            if n == 0 {
                return;
            }
            if self.heap.len() >= n {
                if self.heap.peek().is_some_and(|top| (top.0, top.1.as_str()) <= (rank, key)) {
                    return;
                }
                self.heap.pop();
            }
        }
        self.heap.push(Ranked(rank, key.to_string(), item));
    }

    /// The sample, in key order.
    pub fn into_sorted(self) -> Vec<(String, T)> {
        let mut v: Vec<(String, T)> = self.heap.into_iter().map(|Ranked(_, k, t)| (k, t)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn engramia_rules() {
        let ok = json!({"task": "t", "design": {}, "success_score": 5.0, "reuse_count": 0, "timestamp": 1.0});
        assert_eq!(invalid_reason(&ok), None);
        assert_eq!(invalid_reason(&json!({"task": "t", "design": {}})), None, "defaults fill the rest");
        assert_eq!(invalid_reason(&json!({"task": "t", "design": {}, "success_score": "7"})), None, "lax numbers");
        assert!(invalid_reason(&json!({"task": "t", "design": {}, "success_score": 11})).unwrap().contains("outside 0-10"));
        assert!(invalid_reason(&json!({"task": "t", "design": {}, "reuse_count": -1})).unwrap().contains("reuse_count"));
        assert!(invalid_reason(&json!({"task": "t", "design": {}, "reuse_count": 1.5})).unwrap().contains("reuse_count"));
        assert!(invalid_reason(&json!({"task": 3, "design": {}})).unwrap().contains("`task` is a number"));
        assert!(invalid_reason(&json!({"design": {}})).unwrap().contains("`task` is missing"));
        assert!(invalid_reason(&json!({"task": "t", "design": "x"})).unwrap().contains("`design` is a string"));
        assert_eq!(invalid_reason(&json!({"task": "t", "design": {}, "timestamp": true})), None, "pydantic takes booleans");
        assert!(invalid_reason(&json!({"task": "t", "design": {}, "timestamp": null})).unwrap().contains("timestamp"));
        assert!(invalid_reason(&json!({"task": "t", "design": {}, "success_score": "nan"})).unwrap().contains("outside"));
        assert!(invalid_reason(&json!([1])).unwrap().contains("array"));
    }

    #[test]
    fn a_chunk_query_is_a_sentence_from_its_middle() {
        let text = "First sentence is here. Second one talks about keys. Third is about rotation of secrets. \
                    Fourth mentions the dashboard. Fifth and last one ends it.";
        let q = middle_sentence(text, 0).unwrap();
        assert!(["Second one talks about keys.", "Third is about rotation of secrets.", "Fourth mentions the dashboard."]
            .contains(&q.as_str()), "{q}");
        // Deterministic for a seed and a key; the seed can change the choice.
        let chosen: std::collections::BTreeSet<String> = (0..20).map(|s| middle_sentence(text, pick(s, "k")).unwrap()).collect();
        assert!(chosen.len() > 1, "{chosen:?}");
        assert_eq!(middle_sentence(text, pick(7, "k")), middle_sentence(text, pick(7, "k")));
        assert_eq!(middle_sentence("", 0), None);
        assert_eq!(middle_sentence("a single long sentence without any stop", 3).unwrap(), "a single long sentence without any stop");
        let pattern = json!({"task": "f.md: x", "design": {"code": text}});
        assert_eq!(query_for(RecordKind::MessagePair, &pattern, "k", 1), "f.md: x");
        assert!(text.contains(&query_for(RecordKind::FileChunk, &pattern, "k", 1)));
    }

    #[test]
    fn the_sample_depends_only_on_the_seed_and_the_keys() {
        let keys: Vec<String> = (0..100).map(|i| format!("patterns/k{i}")).collect();
        let sample = |seed: u64, order: &mut dyn Iterator<Item = &String>| {
            let mut s = Sampler::new(Some(10), seed);
            order.for_each(|k| s.offer(k, ()));
            s.into_sorted().into_iter().map(|(k, _)| k).collect::<Vec<_>>()
        };
        let a = sample(1, &mut keys.iter());
        assert_eq!(a.len(), 10);
        assert_eq!(a, sample(1, &mut keys.iter().rev()), "the order keys arrive in does not matter");
        assert_ne!(a, sample(2, &mut keys.iter()));
        let mut all = Sampler::new(None, 1);
        keys.iter().for_each(|k| all.offer(k, ()));
        assert_eq!(all.into_sorted().len(), 100);
    }
}
