//! Plan: compares mapped records with what the sink already holds and decides, per record,
//! create / update / unchanged / skip. Pure: the sink's answers come in as a value.
//!
//! The dry run stops after this stage; the real run executes exactly these decisions, which
//! is why the two report the same numbers.

pub mod dedup;
pub mod supersede;

use crate::record::{Record, Scope};
use crate::record::{Existing, StoredPattern};
use dedup::NearDupIndex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// `[patterns] on_duplicate`: what to do with a new record whose task is a near-duplicate
/// (Engramia's rule) of a pattern already in the scope or planned earlier in the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDuplicate {
    /// Never overwrite what exists: the new record is skipped.
    #[default]
    Skip,
    /// The higher eval score wins: a better new record replaces the stored one.
    ReplaceWithBetter,
    /// Write both.
    KeepBoth,
}

/// What the plan remembers across batches: keys planned so far and, per scope, the
/// near-duplicate index of what the scope holds plus what this run creates.
#[derive(Debug, Default)]
pub struct PlanState {
    pub policy: OnDuplicate,
    /// Keys planned so far, as 128-bit digests (a large run plans hundreds of thousands).
    seen: HashSet<u128>,
    indexes: HashMap<Scope, NearDupIndex>,
    stored: HashMap<Scope, usize>,
    /// engram-written keys by their identity part (see `identity_of`), per scope.
    identities: HashMap<Scope, HashMap<String, String>>,
    /// Stored message pairs and the messages this run mapped: what a rerun replaces or retires.
    pub pairs: supersede::StoredPairs,
}

impl PlanState {
    pub fn new(policy: OnDuplicate) -> Self {
        PlanState { policy, ..Default::default() }
    }

    /// Whether the scope's stored patterns must be loaded before planning records for it.
    pub fn needs_scope(&self, scope: &Scope) -> bool {
        !self.indexes.contains_key(scope)
    }

    pub fn load_scope(&mut self, scope: &Scope, stored: Vec<StoredPattern>) {
        *self.stored.entry(scope.clone()).or_default() += stored.len();
        self.pairs.load(scope, &stored);
        let ids = self.identities.entry(scope.clone()).or_default();
        for p in &stored {
            if let Some(identity) = identity_of(&p.key) {
                ids.insert(identity.to_string(), p.key.clone());
            }
        }
        let idx = self.indexes.entry(scope.clone()).or_default();
        for p in stored {
            idx.insert(&p.key, &p.task, p.success_score);
        }
    }

    pub fn planned_keys(&self) -> usize {
        self.seen.len()
    }

    /// Stored message pairs the rules now retire: call once every thread is read and planned.
    pub fn retirements(&self) -> Vec<supersede::Superseded> {
        self.pairs.retirements(|k| self.seen.contains(&key_digest(k)))
    }

    /// Patterns a scope held before this run (as loaded by `load_scope`).
    pub fn stored_in(&self, scope: &Scope) -> usize {
        self.stored.get(scope).copied().unwrap_or(0)
    }
}

/// Engramia refuses to learn into a scope holding this many patterns (`_MAX_PATTERN_COUNT`).
pub const ENGRAMIA_MAX_PATTERNS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Unchanged,
    Skip,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub record: Record,
    pub action: Action,
    /// Why: for skips, and for updates (content changed, embedding missing).
    pub reason: Option<String>,
    /// A stored near-duplicate this record replaces (`on_duplicate = "replace_with_better"`).
    pub replaces: Option<String>,
}

impl Planned {
    /// Creates and updates are embedded and written; the rest are not touched.
    pub fn writes(&self) -> bool {
        matches!(self.action, Action::Create | Action::Update)
    }
}

/// Plans one batch. `state` carries the keys planned earlier in this run (a record that
/// appears twice is written once) and the scopes' near-duplicate indexes.
pub fn plan_batch(records: Vec<Record>, existing: &HashMap<String, Existing>, state: &mut PlanState) -> Vec<Planned> {
    records
        .into_iter()
        .map(|record| {
            state.pairs.planned(&record);
            let mut replaces = None;
            let (action, reason) = if !state.seen.insert(key_digest(&record.key)) {
                (Action::Skip, Some("the same record was planned earlier in this run".to_string()))
            } else if record.task().trim().is_empty() {
                (Action::Skip, Some("empty task: nothing to embed or recall".to_string()))
            } else {
                match existing.get(&record.key) {
                    None => {
                        let (action, reason, replaced) = plan_new(&record, state);
                        replaces = replaced;
                        (action, reason)
                    }
                    Some(e) if e.hash != record.content_hash() => {
                        (Action::Update, Some("content changed in the source".to_string()))
                    }
                    Some(e) if !e.has_embedding => {
                        (Action::Update, Some("stored without its embedding".to_string()))
                    }
                    Some(_) => (Action::Unchanged, None),
                }
            };
            Planned { record, action, reason, replaces }
        })
        .collect()
}

/// The first 128 bits of the key's SHA-256: collisions are out of reach, and the set of keys a
/// run has planned takes 16 bytes a key instead of the key.
fn key_digest(key: &str) -> u128 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(key.as_bytes());
    u128::from_be_bytes(d[..16].try_into().expect("a SHA-256 digest has 32 bytes"))
}

/// The part of an engram key that names where the record came from: `<ms>_<6 chars>` of
/// `patterns/<8 hex of sha256(task)>_<ms>_<6 chars>`. The leading task hash is part of
/// Engramia's key format, so an edited question gets a new key; its identity stays the same.
pub fn identity_of(key: &str) -> Option<&str> {
    let id = key.strip_prefix("patterns/")?;
    let (hash, rest) = id.split_once('_')?;
    let (ms, suffix) = rest.split_once('_')?;
    let ours = hash.len() == 8
        && hash.chars().all(|c| c.is_ascii_hexdigit())
        && !ms.is_empty()
        && ms.chars().all(|c| c.is_ascii_digit())
        && suffix.len() == 6
        && suffix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    ours.then_some(rest)
}

/// A record the sink does not hold under its key: an edit of a stored record (same identity,
/// new task hash) is an update that replaces the old key; otherwise create it, unless the
/// scope already has (or this run creates) a near-duplicate and the policy says otherwise.
fn plan_new(record: &Record, state: &mut PlanState) -> (Action, Option<String>, Option<String>) {
    let score = record.pattern.get("success_score").and_then(serde_json::Value::as_f64).unwrap_or(0.0);
    if let Some(old) = identity_of(&record.key)
        .and_then(|id| state.identities.get(&record.scope).and_then(|ids| ids.get(id)))
        .filter(|old| **old != record.key)
    {
        let old = old.clone();
        state.pairs.mark_replaced(&old);
        state.indexes.entry(record.scope.clone()).or_default().insert(&record.key, record.task(), score);
        return (
            Action::Update,
            Some(format!("the question changed in the source; replaces {old} (the task's hash is part of the key)")),
            Some(old),
        );
    }
    let seen = &state.seen;
    if let Some(old) = state.pairs.replaced_by(record, |k| seen.contains(&key_digest(k))) {
        state.indexes.entry(record.scope.clone()).or_default().insert(&record.key, record.task(), score);
        return (
            Action::Update,
            Some(format!("the pairing rules changed which messages form this pair; replaces {old}")),
            Some(old),
        );
    }
    if state.policy == OnDuplicate::KeepBoth {
        return (Action::Create, None, None);
    }
    let idx = state.indexes.entry(record.scope.clone()).or_default();
    let decision = match idx.find(record.task(), &record.key) {
        None => (Action::Create, None, None),
        Some((known, j)) => match state.policy {
            OnDuplicate::ReplaceWithBetter if score > known.success_score => (
                Action::Create,
                Some(format!("replaces near-duplicate {} (Jaccard {j:.2}, score {} < {score})", known.key, known.success_score)),
                Some(known.key.clone()),
            ),
            _ => (
                Action::Skip,
                Some(format!("near-duplicate of {} (word Jaccard {j:.2} >= 0.92)", known.key)),
                None,
            ),
        },
    };
    if decision.0 == Action::Create {
        idx.insert(&record.key, record.task(), score);
    }
    if let Some(old) = &decision.2 {
        state.pairs.mark_replaced(old);
    }
    decision
}

/// Per-scope tallies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub create: usize,
    pub update: usize,
    pub unchanged: usize,
    pub skip: usize,
}

impl Counts {
    pub fn add(&mut self, action: &Action) {
        match action {
            Action::Create => self.create += 1,
            Action::Update => self.update += 1,
            Action::Unchanged => self.unchanged += 1,
            Action::Skip => self.skip += 1,
        }
    }

    pub fn total(&self) -> usize {
        self.create + self.update + self.unchanged + self.skip
    }
}

/// Tallies for a whole run, by scope, plus the distinct skills each scope has.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub by_scope: BTreeMap<Scope, Counts>,
    pub skills: BTreeMap<Scope, std::collections::BTreeSet<String>>,
    /// Records whose pattern ends up in the target (everything but skips), by scope.
    pub embeddings: BTreeMap<Scope, usize>,
    /// Records embedded and written by this run (creates and updates), by scope.
    pub embedded: BTreeMap<Scope, usize>,
    /// Stored near-duplicates that better records replace, by scope.
    pub replaced: BTreeMap<Scope, usize>,
    /// A few tasks per scope that the run writes, for reviewers.
    pub samples: BTreeMap<Scope, Vec<String>>,
    /// Every record's decision, when asked for (`--report-detail`).
    pub details: Option<Vec<RecordDetail>>,
    /// Questions that became no pattern (or a lower-scored one), by scope. Counted when the
    /// thread is mapped, so the dry run counts exactly what the real run does.
    pub questions: BTreeMap<Scope, crate::map::QuestionCounts>,
    /// Stored patterns this run replaces under new pairing rules or retires, by scope.
    pub retired: BTreeMap<Scope, usize>,
    /// Every stored pattern a rerun replaces (with the key replacing it) or retires.
    pub superseded: Vec<supersede::Superseded>,
}

/// One record's line in a detailed report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordDetail {
    pub tenant: String,
    pub project: String,
    pub key: String,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub kind: crate::record::RecordKind,
    /// Where it came from, e.g. `openai-thread:thread_abc`.
    pub origin: String,
    /// The first 120 characters of the task.
    pub task: String,
}

const SAMPLES_PER_SCOPE: usize = 3;

/// The first `n` characters of `s`, with an ellipsis when cut.
pub fn excerpt(s: &str, n: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= n { flat } else { format!("{}…", flat.chars().take(n).collect::<String>()) }
}

impl Tally {
    pub fn add_questions(&mut self, counts: &BTreeMap<Scope, crate::map::QuestionCounts>) {
        for (scope, c) in counts {
            self.questions.entry(scope.clone()).or_default().add(c);
        }
    }

    pub fn add_retired(&mut self, retired: Vec<supersede::Superseded>) {
        for r in retired {
            *self.retired.entry(Scope::new(r.tenant.clone(), r.project.clone())).or_default() += 1;
            self.superseded.push(r);
        }
    }

    pub fn add(&mut self, planned: &Planned) {
        let scope = &planned.record.scope;
        self.by_scope.entry(scope.clone()).or_default().add(&planned.action);
        if planned.writes() {
            *self.embedded.entry(scope.clone()).or_default() += 1;
            let samples = self.samples.entry(scope.clone()).or_default();
            if samples.len() < SAMPLES_PER_SCOPE {
                samples.push(excerpt(planned.record.task(), 120));
            }
        }
        if planned.replaces.is_some() && planned.action == Action::Create {
            *self.replaced.entry(scope.clone()).or_default() += 1;
        }
        if let Some(old) = &planned.replaces {
            self.superseded.push(supersede::Superseded {
                tenant: scope.tenant.clone(),
                project: scope.project.clone(),
                key: old.clone(),
                origin: planned.record.origin.clone(),
                by: Some(planned.record.key.clone()),
                reason: planned.reason.clone().unwrap_or_default(),
            });
        }
        if let Some(details) = &mut self.details {
            details.push(RecordDetail {
                tenant: scope.tenant.clone(),
                project: scope.project.clone(),
                key: planned.record.key.clone(),
                action: planned.action.clone(),
                reason: planned.reason.clone(),
                kind: planned.record.kind,
                origin: planned.record.origin.clone(),
                task: excerpt(planned.record.task(), 120),
            });
        }
        if planned.action != Action::Skip {
            *self.embeddings.entry(scope.clone()).or_default() += 1;
            self.skills.entry(scope.clone()).or_default().extend(planned.record.skills.iter().cloned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordKind;
    use serde_json::json;

    fn rec(key: &str, task: &str) -> Record {
        scored(key, task, 5.0)
    }

    fn scored(key: &str, task: &str, score: f64) -> Record {
        Record {
            scope: Scope::new("t", "p"),
            key: key.into(),
            kind: RecordKind::MessagePair,
            pattern: json!({"task": task, "design": {"code": "c"}, "success_score": score}),
            skills: vec![],
            classification: "internal".into(),
            origin: "o".into(),
        }
    }

    #[test]
    fn every_action() {
        let same = rec("patterns/a", "same");
        let changed = rec("patterns/b", "new text");
        let no_vec = rec("patterns/c", "c");
        let mut existing = HashMap::new();
        existing.insert("patterns/a".into(), Existing { hash: same.content_hash(), has_embedding: true });
        existing.insert("patterns/b".into(), Existing { hash: rec("patterns/b", "old text").content_hash(), has_embedding: true });
        existing.insert("patterns/c".into(), Existing { hash: no_vec.content_hash(), has_embedding: false });
        let mut state = PlanState::new(OnDuplicate::KeepBoth);
        let planned = plan_batch(
            vec![same.clone(), changed, no_vec, rec("patterns/d", "fresh"), rec("patterns/e", "  "), same],
            &existing,
            &mut state,
        );
        let actions: Vec<_> = planned.iter().map(|p| p.action.clone()).collect();
        assert_eq!(
            actions,
            vec![Action::Unchanged, Action::Update, Action::Update, Action::Create, Action::Skip, Action::Skip]
        );
        let writes = planned.iter().filter(|p| p.writes()).count();
        assert_eq!(writes, 3);
        let mut tally = Tally::default();
        planned.iter().for_each(|p| tally.add(p));
        let c = &tally.by_scope[&Scope::new("t", "p")];
        assert_eq!((c.create, c.update, c.unchanged, c.skip, c.total()), (1, 2, 1, 2, 6));
    }

    const LONG: &str = "how do I rotate the production api key of our team without any downtime for the services that use it today";

    fn stored(key: &str, task: &str, score: f64) -> StoredPattern {
        StoredPattern { key: key.into(), task: task.into(), success_score: score, origin: None }
    }

    #[test]
    fn near_duplicates_follow_the_policy() {
        let near = format!("{LONG} please"); // 21 of 22 words shared: Jaccard 0.95
        let run = |policy, new_score| {
            let mut state = PlanState::new(policy);
            state.load_scope(&Scope::new("t", "p"), vec![stored("patterns/theirs", LONG, 5.0)]);
            plan_batch(vec![scored("patterns/new", &near, new_score)], &HashMap::new(), &mut state)
        };
        let p = &run(OnDuplicate::Skip, 9.0)[0];
        assert_eq!(p.action, Action::Skip);
        assert!(p.reason.as_deref().unwrap().contains("patterns/theirs"));
        let p = &run(OnDuplicate::KeepBoth, 5.0)[0];
        assert_eq!((p.action.clone(), p.replaces.clone()), (Action::Create, None));
        let p = &run(OnDuplicate::ReplaceWithBetter, 9.0)[0];
        assert_eq!((p.action.clone(), p.replaces.as_deref()), (Action::Create, Some("patterns/theirs")));
        let p = &run(OnDuplicate::ReplaceWithBetter, 5.0)[0];
        assert_eq!(p.action, Action::Skip, "a tie keeps what exists");
    }

    #[test]
    fn near_duplicates_within_one_run_and_unrelated_tasks() {
        let mut state = PlanState::new(OnDuplicate::Skip);
        let planned = plan_batch(
            vec![rec("patterns/1", LONG), rec("patterns/2", &LONG.to_uppercase()), rec("patterns/3", "weather in Oslo")],
            &HashMap::new(),
            &mut state,
        );
        let actions: Vec<_> = planned.iter().map(|p| p.action.clone()).collect();
        assert_eq!(actions, vec![Action::Create, Action::Skip, Action::Create]);
    }

    #[test]
    fn an_edited_question_updates_its_record_under_the_new_key() {
        let old_key = "patterns/0000aaaa_1714000000000_abc123";
        let new_key = "patterns/1111bbbb_1714000000000_abc123";
        assert_eq!(identity_of(new_key), Some("1714000000000_abc123"));
        assert_eq!(identity_of("patterns/0000aaaa_1714000000000"), None, "Engramia's own keys have no identity");
        let mut state = PlanState::new(OnDuplicate::Skip);
        state.load_scope(&Scope::new("t", "p"), vec![stored(old_key, "old question", 5.0)]);
        let planned = plan_batch(vec![rec(new_key, "the edited question")], &HashMap::new(), &mut state);
        assert_eq!(planned[0].action, Action::Update);
        assert_eq!(planned[0].replaces.as_deref(), Some(old_key));
    }
}
