//! File text -> file-chunk patterns. Pure: the same text and settings give the same chunks,
//! records and keys on every run.
//!
//! Chunks are sized in cl100k_base tokens (the embedding models' tokenizer) by text-splitter,
//! which cuts at the largest boundary that fits: paragraphs, then sentences, then words (and,
//! for Markdown, headings and list items first). Consecutive chunks overlap by up to
//! `overlap` tokens so a sentence cut at a boundary is still found whole in one of them.
//!
//! A chunk's pattern `task` is `"<filename>: <chunk text>"`: Engramia embeds the task (also
//! when `engramia reindex` recomputes embeddings), so a question about the document's content
//! finds the chunk that holds the answer.

use super::MapSettings;
use super::keys::pattern_key;
use super::text::truncate_chars;
use crate::record::{Record, RecordKind, Scope};
use serde_json::json;
use text_splitter::{ChunkConfig, MarkdownSplitter, TextSplitter};

/// `[files] chunk_tokens` and `chunk_overlap`, checked by config validation
/// (`overlap < tokens`, `tokens >= 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSettings {
    pub tokens: usize,
    pub overlap: usize,
}

impl Default for ChunkSettings {
    fn default() -> Self {
        ChunkSettings { tokens: 500, overlap: 50 }
    }
}

/// Splits `text` into chunks of at most `settings.tokens` cl100k tokens, overlapping by up to
/// `settings.overlap`. Markdown is split along its structure. Empty text gives no chunks.
pub fn chunk_text(text: &str, markdown: bool, settings: ChunkSettings) -> Vec<String> {
    let tokens = settings.tokens.max(1);
    // Validation keeps overlap below the size; the clamp keeps this function total.
    let overlap = settings.overlap.min(tokens - 1);
    let config = ChunkConfig::new(tokens)
        .with_sizer(tiktoken_rs::cl100k_base_singleton())
        .with_overlap(overlap)
        .expect("overlap < capacity: clamped above");
    let chunks: Vec<&str> = if markdown {
        MarkdownSplitter::new(config).chunks(text).collect()
    } else {
        TextSplitter::new(config).chunks(text).collect()
    };
    chunks.into_iter().map(str::trim).filter(|c| !c.is_empty()).map(str::to_string).collect()
}

/// One extracted document, as the chunk records describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileDoc {
    pub file_id: String,
    pub filename: String,
    /// The file's `created_at` (Unix seconds): the patterns' timestamp.
    pub created_at: i64,
    /// The vector store the file belongs to, if any.
    pub vector_store_id: Option<String>,
}

/// One record per chunk and scope. Keys are derived from scope, file id and chunk index (not
/// from the text), so a document whose content changes updates its chunks in place.
pub fn file_chunk_records(doc: &FileDoc, chunks: &[String], scopes: &[Scope], settings: &MapSettings) -> Vec<Record> {
    let count = chunks.len();
    let mut out = Vec::with_capacity(count * scopes.len());
    for scope in scopes {
        for (index, chunk) in chunks.iter().enumerate() {
            out.push(chunk_record(doc, chunk, index, count, scope, settings));
        }
    }
    out
}

fn chunk_record(doc: &FileDoc, chunk: &str, index: usize, count: usize, scope: &Scope, settings: &MapSettings) -> Record {
    let task = truncate_chars(&format!("{}: {chunk}", doc.filename), settings.task_max_chars).to_string();
    let code = truncate_chars(chunk, settings.code_max_chars).to_string();
    let index_text = index.to_string();
    // The first part of the key hashes the chunk's identity rather than its task, so that it
    // stays put when the document is edited.
    let identity = format!("openai-file:{}#{index}", doc.file_id);
    let key = pattern_key(&identity, doc.created_at.saturating_mul(1000), scope, &[&doc.file_id, &index_text]);
    let pattern = json!({
        "task": task,
        "design": {
            "code": code,
            "classification": settings.classification,
            "source": "import",
            "openai": {
                "kind": "file_chunk",
                "file_id": doc.file_id,
                "filename": doc.filename,
                "chunk_index": index,
                "chunk_count": count,
                "vector_store_id": doc.vector_store_id,
            },
        },
        "success_score": settings.eval_score,
        "reuse_count": 0,
        "timestamp": doc.created_at as f64,
    });
    Record {
        scope: scope.clone(),
        key,
        kind: RecordKind::FileChunk,
        pattern,
        skills: Vec::new(),
        classification: settings.classification.clone(),
        origin: format!("openai-file:{}", doc.file_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(s: &str) -> usize {
        tiktoken_rs::cl100k_base_singleton().encode_ordinary(s).len()
    }

    fn settings() -> MapSettings {
        MapSettings::for_tests("{assistant.name}")
    }

    /// ~40 distinct sentences in paragraphs of four.
    fn long_text() -> String {
        (0..40)
            .map(|i| format!("Sentence number {i} talks about harbour {i} and its {} cranes.", i * 3))
            .collect::<Vec<_>>()
            .chunks(4)
            .map(|p| p.join(" "))
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    #[test]
    fn chunks_stay_within_the_token_budget() {
        let text = long_text();
        for size in [20, 50, 120] {
            let chunks = chunk_text(&text, false, ChunkSettings { tokens: size, overlap: 5 });
            assert!(chunks.len() > 1, "{size}");
            for c in &chunks {
                assert!(tokens(c) <= size, "{size}: {} tokens in {c:?}", tokens(c));
            }
        }
        // Everything fits in one chunk when the budget allows it.
        assert_eq!(chunk_text("Short note.", false, ChunkSettings::default()), vec!["Short note."]);
        assert!(chunk_text("   \n\n ", false, ChunkSettings::default()).is_empty());
    }

    #[test]
    fn chunks_cover_the_text_and_split_at_sentences() {
        let text = long_text();
        let chunks = chunk_text(&text, false, ChunkSettings { tokens: 60, overlap: 0 });
        for i in 0..40 {
            let sentence = format!("Sentence number {i} talks about harbour {i} and its {} cranes.", i * 3);
            assert!(chunks.iter().any(|c| c.contains(&sentence)), "sentence {i} was cut or lost: {chunks:#?}");
        }
    }

    #[test]
    fn consecutive_chunks_overlap() {
        // One long paragraph: the overlap is made of whole sentences.
        let text: Vec<String> =
            (0..40).map(|i| format!("Sentence number {i} talks about harbour {i} and its {} cranes.", i * 3)).collect();
        let text = text.join(" ");
        let sentences = |c: &str| c.split_inclusive('.').map(|s| s.trim().to_string()).collect::<Vec<_>>();
        let without = chunk_text(&text, false, ChunkSettings { tokens: 60, overlap: 0 });
        for w in without.windows(2) {
            assert!(!sentences(&w[1]).contains(sentences(&w[0]).last().unwrap()), "{without:#?}");
        }
        let with = chunk_text(&text, false, ChunkSettings { tokens: 60, overlap: 30 });
        assert!(with.len() > without.len(), "{} vs {}", with.len(), without.len());
        for w in with.windows(2) {
            let (a, b) = (sentences(&w[0]), sentences(&w[1]));
            assert_eq!(a.last(), b.first(), "no overlap between {:?} and {:?}", w[0], w[1]);
            assert!(tokens(a.last().unwrap()) <= 30);
        }
    }

    #[test]
    fn chunking_is_deterministic() {
        let text = long_text();
        let s = ChunkSettings { tokens: 40, overlap: 10 };
        assert_eq!(chunk_text(&text, false, s), chunk_text(&text, false, s));
        assert_eq!(chunk_text(&text, true, s), chunk_text(&text, true, s));
    }

    #[test]
    fn multibyte_text_is_never_cut_inside_a_character() {
        let text = "日本語の文章です。絵文字も入ります🎉👍🏽。Ünïcödé ñ façade — ".repeat(80);
        let chunks = chunk_text(&text, false, ChunkSettings { tokens: 25, overlap: 5 });
        assert!(chunks.len() > 5);
        for c in &chunks {
            assert!(tokens(c) <= 25);
            // Valid &str by construction; make sure no replacement characters crept in.
            assert!(!c.contains('\u{FFFD}'), "{c}");
        }
        let joined: String = chunks.concat();
        assert!(joined.contains("🎉"));
    }

    #[test]
    fn markdown_is_split_at_headings() {
        let md = "# Orchids\n\nWater them weekly with rain water, never tap water.\n\n# Cacti\n\nWater them monthly in summer and not at all in winter.";
        let chunks = chunk_text(md, true, ChunkSettings { tokens: 20, overlap: 0 });
        assert_eq!(chunks.len(), 2, "{chunks:#?}");
        assert!(chunks[0].starts_with("# Orchids") && chunks[1].starts_with("# Cacti"), "{chunks:#?}");
    }

    #[test]
    fn records_carry_the_chunk_and_its_provenance() {
        let doc = FileDoc {
            file_id: "file-abc".into(),
            filename: "manual.pdf".into(),
            created_at: 1_700_000_000,
            vector_store_id: Some("vs_1".into()),
        };
        let chunks = vec!["Reset the router by holding the button.".to_string(), "Then wait.".to_string()];
        let scopes = vec![Scope::new("acme", "Support"), Scope::new("acme", "Docs")];
        let records = file_chunk_records(&doc, &chunks, &scopes, &settings());
        assert_eq!(records.len(), 4);
        let r = &records[0];
        assert_eq!(r.kind, RecordKind::FileChunk);
        assert_eq!(r.scope, scopes[0]);
        assert_eq!(r.origin, "openai-file:file-abc");
        assert!(r.skills.is_empty());
        assert_eq!(
            r.pattern,
            json!({
                "task": "manual.pdf: Reset the router by holding the button.",
                "design": {
                    "code": "Reset the router by holding the button.",
                    "classification": "internal",
                    "source": "import",
                    "openai": {"kind": "file_chunk", "file_id": "file-abc", "filename": "manual.pdf",
                               "chunk_index": 0, "chunk_count": 2, "vector_store_id": "vs_1"}
                },
                "success_score": 5.0,
                "reuse_count": 0,
                "timestamp": 1_700_000_000.0
            })
        );
        // Keys: deterministic, distinct per chunk and per scope, stable when the text changes.
        let keys: std::collections::HashSet<&str> = records.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys.len(), 4);
        assert!(r.key.starts_with("patterns/") && r.key.contains("_1700000000000_"), "{}", r.key);
        assert_eq!(records, file_chunk_records(&doc, &chunks, &scopes, &settings()));
        let edited = file_chunk_records(&doc, &["Changed text.".to_string()], &scopes[..1], &settings());
        assert_eq!(edited[0].key, r.key);
        assert_ne!(edited[0].content_hash(), r.content_hash());
        // Not from a vector store: null.
        let loose = FileDoc { vector_store_id: None, ..doc };
        let r = &file_chunk_records(&loose, &chunks[..1], &scopes[..1], &settings())[0];
        assert_eq!(r.pattern["design"]["openai"]["vector_store_id"], serde_json::Value::Null);
    }

    #[test]
    fn task_and_code_are_cut_at_character_boundaries() {
        let doc = FileDoc { file_id: "f".into(), filename: "日本.txt".into(), created_at: 0, vector_store_id: None };
        let mut s = settings();
        s.task_max_chars = 10;
        s.code_max_chars = 3;
        let r = &file_chunk_records(&doc, &["語語語語語語語語語語".to_string()], &[Scope::new("t", "p")], &s)[0];
        assert_eq!(r.pattern["task"], "日本.txt: 語語");
        assert_eq!(r.pattern["design"]["code"], "語語語");
    }
}
