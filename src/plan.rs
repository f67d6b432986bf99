//! Plan: compares mapped records with what the sink already holds and decides, per record,
//! create / update / unchanged / skip. Pure: the sink's answers come in as a value.
//!
//! The dry run stops after this stage; the real run executes exactly these decisions, which
//! is why the two report the same numbers.

use crate::record::{Record, Scope};
use crate::sink::Existing;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

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
}

impl Planned {
    /// Creates and updates are embedded and written; the rest are not touched.
    pub fn writes(&self) -> bool {
        matches!(self.action, Action::Create | Action::Update)
    }
}

/// Plans one batch. `seen` holds the keys planned earlier in this run, so a record that
/// appears twice (a thread id listed twice, say) is written once.
pub fn plan_batch(records: Vec<Record>, existing: &HashMap<String, Existing>, seen: &mut HashSet<String>) -> Vec<Planned> {
    records
        .into_iter()
        .map(|record| {
            let (action, reason) = if !seen.insert(record.key.clone()) {
                (Action::Skip, Some("the same record was planned earlier in this run".to_string()))
            } else if record.task().trim().is_empty() {
                (Action::Skip, Some("empty task: nothing to embed or recall".to_string()))
            } else {
                match existing.get(&record.key) {
                    None => (Action::Create, None),
                    Some(e) if e.hash != record.content_hash() => {
                        (Action::Update, Some("content changed in the source".to_string()))
                    }
                    Some(e) if !e.has_embedding => {
                        (Action::Update, Some("stored without its embedding".to_string()))
                    }
                    Some(_) => (Action::Unchanged, None),
                }
            };
            Planned { record, action, reason }
        })
        .collect()
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
}

impl Tally {
    pub fn add(&mut self, planned: &Planned) {
        let scope = &planned.record.scope;
        self.by_scope.entry(scope.clone()).or_default().add(&planned.action);
        if planned.writes() {
            *self.embedded.entry(scope.clone()).or_default() += 1;
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
        Record {
            scope: Scope::new("t", "p"),
            key: key.into(),
            kind: RecordKind::MessagePair,
            pattern: json!({"task": task, "design": {"code": "c"}}),
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
        let mut seen = HashSet::new();
        let planned = plan_batch(
            vec![same.clone(), changed, no_vec, rec("patterns/d", "fresh"), rec("patterns/e", "  "), same],
            &existing,
            &mut seen,
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
}
