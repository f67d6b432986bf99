//! What one `POST /v1/import` carries: the wire form of a record, and packing records into
//! request bodies bounded by bytes and by count (the server refuses a body over its
//! `ENGRAMIA_MAX_BODY_SIZE`, 1 MiB by default, with 413, and more than 10,000 records with 422).
//!
//! Pure: values in, values out.

use crate::record::Record;
use serde_json::{Value, json};
use std::ops::Range;

/// The `_`-prefixed key under which engram's provenance travels in each pattern. Engramia's
/// recall keeps `_` keys when it rewrites a pattern (other unknown keys are dropped).
pub const PROVENANCE: &str = "_engram";

/// The server's hard cap on records per import.
pub const SERVER_MAX_RECORDS: usize = 10_000;

/// `data` of an import record: the pattern as planned plus engram's provenance (the content
/// hash the plan compares on the next run, the skills it registers, where it came from).
pub fn wire_data(record: &Record) -> Value {
    let mut data = record.pattern.clone();
    if let Value::Object(m) = &mut data {
        m.insert(
            PROVENANCE.to_string(),
            json!({
                "hash": record.content_hash(),
                "skills": record.skills,
                "kind": record.kind,
                "origin": record.origin,
                "tenant": record.scope.tenant,
                "project": record.scope.project,
            }),
        );
    }
    data
}

/// One serialized `{"version":1,"key":…,"data":…}` element of `records`.
pub fn wire_record(record: &Record) -> Vec<u8> {
    serde_json::to_vec(&json!({"version": 1, "key": record.key, "data": wire_data(record)}))
        .expect("a JSON value always serializes")
}

fn prefix(overwrite: bool) -> String {
    format!("{{\"overwrite\":{overwrite},\"records\":[")
}

const SUFFIX: &[u8] = b"]}";

/// The exact size of the body holding `records`.
pub fn body_len(records: &[Vec<u8>], overwrite: bool) -> usize {
    prefix(overwrite).len() + records.iter().map(Vec::len).sum::<usize>() + records.len().saturating_sub(1) + SUFFIX.len()
}

/// The request body for `records`.
pub fn body(records: &[Vec<u8>], overwrite: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(body_len(records, overwrite));
    out.extend_from_slice(prefix(overwrite).as_bytes());
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(r);
    }
    out.extend_from_slice(SUFFIX);
    out
}

/// How requests are bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_records: usize,
}

/// Packing of records into bodies, in order.
#[derive(Debug, PartialEq, Eq)]
pub struct Packed {
    /// Consecutive ranges of records, each one body within the limits.
    pub bodies: Vec<Range<usize>>,
    /// Records that alone make a body over `max_bytes` (never sent).
    pub too_large: Vec<usize>,
}

/// Greedy packing in order: each body takes records while it stays within both limits.
pub fn pack(records: &[Vec<u8>], overwrite: bool, limits: Limits) -> Packed {
    let fixed = prefix(overwrite).len() + SUFFIX.len();
    let max_records = limits.max_records.clamp(1, SERVER_MAX_RECORDS);
    let mut out = Packed { bodies: Vec::new(), too_large: Vec::new() };
    let mut start = None::<usize>;
    let mut size = fixed;
    let close = |out: &mut Packed, start: &mut Option<usize>, end: usize| {
        if let Some(s) = start.take() {
            out.bodies.push(s..end);
        }
    };
    for (i, r) in records.iter().enumerate() {
        if fixed + r.len() > limits.max_bytes {
            close(&mut out, &mut start, i);
            size = fixed;
            out.too_large.push(i);
            continue;
        }
        let count = start.map_or(0, |s| i - s);
        let added = r.len() + usize::from(count > 0);
        if start.is_some() && (size + added > limits.max_bytes || count >= max_records) {
            close(&mut out, &mut start, i);
            size = fixed;
        }
        if start.is_none() {
            start = Some(i);
            size = fixed + r.len();
        } else {
            size += r.len() + 1;
        }
    }
    close(&mut out, &mut start, records.len());
    out
}

/// The limit to use after a 413: the server's own (from `error_context.max_bytes`, with a
/// margin), else half of what was tried; never below one small record's worth.
pub fn shrink(tried: usize, server_max: Option<u64>) -> usize {
    let next = match server_max {
        Some(m) if (m as usize) < tried => (m as usize).saturating_sub((m as usize) / 50).max(1024),
        _ => tried / 2,
    };
    next.max(1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{RecordKind, Scope};

    fn rec(key: &str, task: &str) -> Record {
        Record {
            scope: Scope::new("acme", "bot"),
            key: key.into(),
            kind: RecordKind::MessagePair,
            pattern: json!({"task": task, "design": {"code": "c", "classification": "internal", "source": "import"}, "success_score": 5.0, "reuse_count": 0, "timestamp": 1.0}),
            skills: vec!["get_weather".into()],
            classification: "internal".into(),
            origin: "openai-thread:thread_1".into(),
        }
    }

    #[test]
    fn wire_record_carries_pattern_and_provenance() {
        let r = rec("patterns/a_1_x", "t");
        let v: Value = serde_json::from_slice(&wire_record(&r)).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["key"], "patterns/a_1_x");
        assert_eq!(v["data"]["task"], "t");
        assert_eq!(v["data"]["design"]["source"], "import");
        assert_eq!(v["data"]["_engram"]["hash"], r.content_hash());
        assert_eq!(v["data"]["_engram"]["skills"], json!(["get_weather"]));
        assert_eq!(v["data"]["_engram"]["origin"], "openai-thread:thread_1");
    }

    #[test]
    fn body_is_valid_json_of_exact_length() {
        let recs: Vec<Vec<u8>> = (0..3).map(|i| wire_record(&rec(&format!("patterns/k_{i}"), "task"))).collect();
        for overwrite in [false, true] {
            let b = body(&recs, overwrite);
            assert_eq!(b.len(), body_len(&recs, overwrite));
            let v: Value = serde_json::from_slice(&b).unwrap();
            assert_eq!(v["overwrite"], overwrite);
            assert_eq!(v["records"].as_array().unwrap().len(), 3);
        }
        assert_eq!(body_len(&[], false), body(&[], false).len());
    }

    #[test]
    fn packs_by_bytes_and_count_in_order() {
        let recs: Vec<Vec<u8>> = (0..10).map(|i| vec![b'x'; 100 + i]).collect();
        let one = body_len(&recs[..1], false);
        // Room for about three records per body.
        let limits = Limits { max_bytes: one + 2 * 110, max_records: 100 };
        let p = pack(&recs, false, limits);
        assert!(p.too_large.is_empty());
        let flat: Vec<usize> = p.bodies.iter().flat_map(|r| r.clone()).collect();
        assert_eq!(flat, (0..10).collect::<Vec<_>>());
        for r in &p.bodies {
            assert!(body_len(&recs[r.clone()], false) <= limits.max_bytes, "{r:?}");
            // Greedy: the next record would not have fitted.
            if r.end < recs.len() {
                assert!(body_len(&recs[r.start..r.end + 1], false) > limits.max_bytes, "{r:?}");
            }
        }
        let by_count = pack(&recs, false, Limits { max_bytes: 1 << 20, max_records: 4 });
        assert_eq!(by_count.bodies, vec![0..4, 4..8, 8..10]);
    }

    #[test]
    fn a_record_too_large_alone_is_set_apart() {
        let recs = vec![vec![b'a'; 10], vec![b'b'; 5000], vec![b'c'; 10]];
        let p = pack(&recs, true, Limits { max_bytes: 1000, max_records: 10 });
        assert_eq!(p.too_large, vec![1]);
        assert_eq!(p.bodies, vec![0..1, 2..3]);
    }

    #[test]
    fn shrinks_to_the_server_limit_or_by_half() {
        assert_eq!(shrink(1_000_000, Some(500_000)), 490_000);
        assert_eq!(shrink(1_000_000, None), 500_000);
        assert_eq!(shrink(1_000_000, Some(2_000_000)), 500_000);
        assert_eq!(shrink(1500, None), 1024);
    }
}
