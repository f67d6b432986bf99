//! Reruns under changed pairing rules: which stored message pairs a new record replaces, and
//! which ones the rules now retire.
//!
//! A message pair's key is derived from the messages it holds, so when the rules change which
//! messages form a pair (a refusal no longer glued to the next question, say), the new pattern
//! gets a new key. Without this step the old pattern would stay beside it — the same answer
//! twice, or a glued question recalled with full weight. Stored pairs carry their thread and
//! message ids (`design.openai`), which is what the step matches on:
//!
//! - *replaced*: a new record shares a message with a stored pair under another key: the new
//!   record is written as an update of it and the old key removed;
//! - *retired*: at the end of a run, a stored pair of a thread this run read completely, whose key
//!   this run did not plan, and whose messages the new rules put in another pattern or in none
//!   (refused, unanswered, incomplete and skipped, image-only): it is removed.
//!
//! A stored pair whose messages this run did not see at all (messages deleted since, a thread
//! not read) is left alone: engram removes only what it can explain.

use crate::record::{Record, RecordKind, Scope};
use crate::record::StoredPattern;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// One stored pattern a rerun removes, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Superseded {
    pub tenant: String,
    pub project: String,
    pub key: String,
    /// Where it came from, e.g. `openai-thread:thread_abc`.
    pub origin: String,
    /// The key that replaces it, if one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    pub reason: String,
}

#[derive(Debug)]
struct StoredPair {
    key: String,
    thread_id: String,
    messages: Vec<u128>,
}

/// What a run knows about stored message pairs and about the messages it mapped.
#[derive(Debug, Default)]
pub struct StoredPairs {
    /// Per scope: a stored pair's message (digest) -> its key.
    by_message: HashMap<Scope, HashMap<u128, String>>,
    pairs: HashMap<Scope, Vec<StoredPair>>,
    /// Stored keys this run replaces (by a changed question, a better near-duplicate, or new
    /// pairing rules).
    replaced: HashSet<String>,
    /// Messages held by records this run planned.
    planned_messages: HashSet<u128>,
    /// Messages the rules give no pattern, with the fate that says why.
    not_stored: HashMap<u128, &'static str>,
    threads_read: HashSet<String>,
}

fn digest(id: &str) -> u128 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(id.as_bytes());
    u128::from_be_bytes(d[..16].try_into().expect("a SHA-256 digest has 32 bytes"))
}

/// The message ids a message-pair record holds (`design.openai.message_ids`).
fn record_messages(record: &Record) -> Vec<u128> {
    if record.kind != RecordKind::MessagePair {
        return Vec::new();
    }
    record
        .pattern
        .pointer("/design/openai/message_ids")
        .and_then(|v| v.as_array())
        .map(|ids| ids.iter().filter_map(|v| v.as_str()).map(digest).collect())
        .unwrap_or_default()
}

impl StoredPairs {
    pub fn load(&mut self, scope: &Scope, stored: &[StoredPattern]) {
        let by_message = self.by_message.entry(scope.clone()).or_default();
        let pairs = self.pairs.entry(scope.clone()).or_default();
        for p in stored {
            let Some(origin) = &p.origin else { continue };
            let messages: Vec<u128> = origin.message_ids.iter().map(|m| digest(m)).collect();
            for m in &messages {
                by_message.entry(*m).or_insert_with(|| p.key.clone());
            }
            pairs.push(StoredPair { key: p.key.clone(), thread_id: origin.thread_id.clone(), messages });
        }
    }

    /// A thread this run read and mapped completely, with the messages its rules store nothing
    /// for (and why: `refused`, `unanswered`, `incomplete`, `image-only`).
    pub fn thread_read(&mut self, thread_id: &str, not_stored: &[(String, &'static str)]) {
        self.threads_read.insert(thread_id.to_string());
        for (id, fate) in not_stored {
            self.not_stored.insert(digest(id), fate);
        }
    }

    /// Notes a planned record's messages.
    pub fn planned(&mut self, record: &Record) {
        self.planned_messages.extend(record_messages(record));
    }

    pub fn mark_replaced(&mut self, key: &str) {
        self.replaced.insert(key.to_string());
    }

    /// The stored pair, under another key, that shares a message with this new record: the new
    /// record replaces it. `is_current` says whether a key is planned by this run (then it is
    /// not an old pattern to replace).
    pub fn replaced_by(&mut self, record: &Record, is_current: impl Fn(&str) -> bool) -> Option<String> {
        let by_message = self.by_message.get(&record.scope)?;
        let old = record_messages(record)
            .iter()
            .filter_map(|m| by_message.get(m))
            .find(|k| **k != record.key && !self.replaced.contains(*k) && !is_current(k))?
            .clone();
        self.replaced.insert(old.clone());
        Some(old)
    }

    /// Stored pairs the rules now retire (see the module header), in scope and key order.
    pub fn retirements(&self, is_current: impl Fn(&str) -> bool) -> Vec<Superseded> {
        let mut out: BTreeMap<(&Scope, &str), Superseded> = BTreeMap::new();
        for (scope, pairs) in &self.pairs {
            for p in pairs {
                if !self.threads_read.contains(&p.thread_id) || self.replaced.contains(&p.key) || is_current(&p.key) {
                    continue;
                }
                let reason = if p.messages.iter().any(|m| self.planned_messages.contains(m)) {
                    "its messages are now paired differently (another pattern holds them)".to_string()
                } else if let Some(fate) = p.messages.iter().find_map(|m| self.not_stored.get(m)) {
                    format!("the pairing rules store no answer for its question ({fate})")
                } else {
                    continue;
                };
                out.insert(
                    (scope, &p.key),
                    Superseded {
                        tenant: scope.tenant.clone(),
                        project: scope.project.clone(),
                        key: p.key.clone(),
                        origin: format!("openai-thread:{}", p.thread_id),
                        by: None,
                        reason,
                    },
                );
            }
        }
        out.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::PairOrigin;
    use serde_json::json;

    fn scope() -> Scope {
        Scope::new("acme", "bot")
    }

    fn stored(key: &str, thread: &str, ids: &[&str]) -> StoredPattern {
        StoredPattern {
            key: key.into(),
            task: "t".into(),
            success_score: 5.0,
            origin: Some(PairOrigin { thread_id: thread.into(), message_ids: ids.iter().map(|s| s.to_string()).collect() }),
        }
    }

    fn record(key: &str, ids: &[&str]) -> Record {
        Record {
            scope: scope(),
            key: key.into(),
            kind: RecordKind::MessagePair,
            pattern: json!({"task": "t", "design": {"openai": {"kind": "message_pair", "thread_id": "thread_1", "message_ids": ids}}}),
            skills: vec![],
            classification: "internal".into(),
            origin: "openai-thread:thread_1".into(),
        }
    }

    #[test]
    fn a_new_record_sharing_a_message_replaces_the_old_key_once() {
        let mut s = StoredPairs::default();
        s.load(&scope(), &[stored("patterns/old", "thread_1", &["u1", "u2", "a2"])]);
        let none = |_: &str| false;
        assert_eq!(s.replaced_by(&record("patterns/new", &["u2", "a2"]), none), Some("patterns/old".into()));
        // Replaced once only; the same key is never its own replacement.
        assert_eq!(s.replaced_by(&record("patterns/other", &["u1", "a9"]), none), None);
        let mut s = StoredPairs::default();
        s.load(&scope(), &[stored("patterns/same", "thread_1", &["u1", "a1"])]);
        assert_eq!(s.replaced_by(&record("patterns/same", &["u1", "a1"]), none), None);
        // A stored key this run plans is current, not old.
        assert_eq!(s.replaced_by(&record("patterns/x", &["u1", "a1"]), |k| k == "patterns/same"), None);
    }

    #[test]
    fn retires_only_what_the_new_rules_explain() {
        let mut s = StoredPairs::default();
        s.load(
            &scope(),
            &[
                stored("patterns/glued", "thread_1", &["u1", "u2", "a2"]),
                stored("patterns/refused", "thread_1", &["u3", "a3"]),
                stored("patterns/kept", "thread_1", &["u4", "a4"]),
                stored("patterns/gone", "thread_1", &["u5", "a5"]),
                stored("patterns/unread", "thread_2", &["u6", "a6"]),
            ],
        );
        s.thread_read("thread_1", &[("u3".into(), "refused"), ("u6".into(), "refused")]);
        s.planned(&record("patterns/new", &["u2", "a2"]));
        let current = |k: &str| k == "patterns/kept";
        let r = s.retirements(current);
        let got: Vec<(&str, &str)> = r.iter().map(|x| (x.key.as_str(), x.reason.as_str())).collect();
        assert_eq!(
            got,
            [
                ("patterns/glued", "its messages are now paired differently (another pattern holds them)"),
                ("patterns/refused", "the pairing rules store no answer for its question (refused)"),
            ]
        );
        // Once replaced, it is not retired as well.
        s.mark_replaced("patterns/glued");
        assert_eq!(s.retirements(current).len(), 1);
    }
}
