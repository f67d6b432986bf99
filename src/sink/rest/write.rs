//! Reading what a project holds (the plan's side) and writing records into it (`/v1/import`
//! in bounded bodies, then `/v1/skills/register` one call at a time).

use super::batch::{self, Limits};
use super::client::{ApiError, ApiKey, Client};
use super::{RestSink, Stored};
use crate::record::{Record, Scope, Warning, content_hash};
use crate::sink::{PairOrigin, SinkError};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// The hash a stored pattern gets when engram registered skills for it that the server's
/// registry does not have (a run stopped between import and register): never equal to a
/// planned hash, so the plan sends it again.
const SKILLS_MISSING: &str = "skills-not-registered";

/// Streams `GET /v1/governance/export` of the key's project, then checks with
/// `/v1/skills/search` (read-only) that the skills engram registered are in the registry.
pub(super) async fn read_project(client: &Client, key: &ApiKey, project: &str) -> Result<HashMap<String, Stored>, SinkError> {
    let mut stored = HashMap::new();
    let result = client
        .ndjson("/v1/governance/export", key, |line| {
            let v: Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
            let (Some(k), Some(data)) = (v.get("key").and_then(Value::as_str), v.get("data")) else {
                return Ok(());
            };
            stored.insert(k.to_string(), stored_of(data));
            Ok(())
        })
        .await;
    if let Err(e) = result {
        return Err(match e.status() {
            Some(401 | 403) => match super::preflight::key_refused(client.base(), key, project, &e) {
                super::KeyProblem::Config(m) | super::KeyProblem::Failed(m) => SinkError::Config(m),
            },
            _ => SinkError::Io(format!(
                "{}: reading what project {project} holds (GET /v1/governance/export): {e}. Nothing was written.",
                client.base()
            )),
        });
    }
    let mut claimed: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, s) in &stored {
        for skill in &s.skills {
            claimed.entry(skill.as_str()).or_default().push(k.as_str());
        }
    }
    let mut missing: Vec<String> = Vec::new();
    for (skill, keys) in claimed {
        let body = serde_json::to_vec(&json!({"required": [skill], "match_all": true})).expect("JSON");
        let found: Value = client.json(Method::POST, "/v1/skills/search", Some(key), Some(&body)).await.map_err(|e| {
            SinkError::Io(format!("{}: project {project}: checking skill {skill:?} (POST /v1/skills/search): {e}", client.base()))
        })?;
        let have: std::collections::HashSet<&str> = found["matches"]
            .as_array()
            .map(|m| m.iter().filter_map(|x| x["pattern_key"].as_str()).collect())
            .unwrap_or_default();
        missing.extend(keys.into_iter().filter(|k| !have.contains(k)).map(str::to_string));
    }
    for k in missing {
        if let Some(s) = stored.get_mut(&k) {
            s.hash = SKILLS_MISSING.to_string();
        }
    }
    Ok(stored)
}

/// What the plan needs of one exported pattern. engram's own patterns carry the hash it
/// planned in `_engram.hash`; anything else is hashed as found.
fn stored_of(data: &Value) -> Stored {
    let prov = data.get(batch::PROVENANCE);
    let skills: Vec<String> = prov
        .and_then(|p| p.get("skills"))
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default();
    let hash = match prov.and_then(|p| p.get("hash")).and_then(Value::as_str) {
        Some(h) => h.to_string(),
        None => content_hash(data, &[]),
    };
    Stored {
        hash,
        task: data.get("task").and_then(Value::as_str).unwrap_or_default().to_string(),
        score: data.get("success_score").and_then(Value::as_f64).unwrap_or(0.0),
        origin: PairOrigin::of_pattern(data),
        skills,
    }
}

/// What this run sent to one project.
#[derive(Debug, Default)]
pub(super) struct Sent {
    pub created: u64,
    pub updated: u64,
    pub requests: u64,
    pub skills: u64,
    /// Records the server did not store (quota reached, too large for a request).
    pub not_stored: u64,
    /// New records the server skipped because it already had their key.
    pub already_there: u64,
}

impl Sent {
    pub fn is_empty(&self) -> bool {
        self.requests == 0 && self.not_stored == 0
    }

    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} records imported ({} new, {} updated) in {} request{}, skills registered for {}",
            self.created + self.updated,
            self.created,
            self.updated,
            self.requests,
            if self.requests == 1 { "" } else { "s" },
            self.skills
        );
        if self.already_there > 0 {
            s.push_str(&format!(", {} already there", self.already_there));
        }
        if self.not_stored > 0 {
            s.push_str(&format!(", {} NOT stored (see the warnings)", self.not_stored));
        }
        s
    }
}

#[derive(serde::Deserialize)]
struct Imported {
    imported: u64,
}

impl RestSink {
    /// Imports one scope's part of a batch: new records, then changed ones (`overwrite`), then
    /// their skills.
    pub(super) async fn write_project(&mut self, scope: &Scope, records: &[&Record]) -> Result<(), SinkError> {
        let RestSink { client, projects, max_bytes, warnings, config, url, .. } = self;
        let p = projects.get_mut(scope).expect("write checked the project");
        if p.stopped.is_some() {
            p.sent.not_stored += records.len() as u64;
            return Ok(());
        }
        let (updates, creates): (Vec<&Record>, Vec<&Record>) = records.iter().copied().partition(|r| p.stored.contains_key(&r.key));
        let mut done: Vec<&Record> = Vec::new();
        for (group, overwrite) in [(creates, false), (updates, true)] {
            if group.is_empty() || p.stopped.is_some() {
                p.sent.not_stored += if p.stopped.is_some() { group.len() as u64 } else { 0 };
                continue;
            }
            let wires: Vec<Vec<u8>> = group.iter().map(|r| batch::wire_record(r)).collect();
            let mut queue: VecDeque<std::ops::Range<usize>> = VecDeque::new();
            let limits = |max_bytes: usize| Limits { max_bytes, max_records: config.max_records_per_request };
            let first = batch::pack(&wires, overwrite, limits(*max_bytes));
            queue.extend(first.bodies);
            let mut too_large = first.too_large;
            while let Some(range) = queue.pop_front() {
                let body = batch::body(&wires[range.clone()], overwrite);
                p.sent.requests += 1;
                match client.json::<Imported>(Method::POST, "/v1/import", Some(&p.key), Some(&body)).await {
                    Ok(answer) => {
                        let sent = range.len() as u64;
                        if overwrite {
                            p.sent.updated += sent;
                        } else {
                            p.sent.created += answer.imported.min(sent);
                            p.sent.already_there += sent.saturating_sub(answer.imported);
                        }
                        done.extend(group[range].iter().copied());
                    }
                    Err(e) if e.status() == Some(413) => {
                        let server_max = match &e {
                            ApiError::Status { context, .. } => context.get("max_bytes").and_then(Value::as_u64),
                            _ => None,
                        };
                        *max_bytes = batch::shrink(body.len(), server_max);
                        tracing::warn!(project = %scope, bytes = body.len(), now = *max_bytes, "413: smaller import bodies from now on");
                        let again = batch::pack(&wires[range.clone()], overwrite, limits(*max_bytes));
                        for r in again.bodies.into_iter().rev() {
                            queue.push_front(range.start + r.start..range.start + r.end);
                        }
                        too_large.extend(again.too_large.into_iter().map(|i| range.start + i));
                    }
                    Err(e) if e.code() == "QUOTA_EXCEEDED" => {
                        let left = range.len() as u64 + queue.iter().map(|r| r.len() as u64).sum::<u64>();
                        p.sent.not_stored += left;
                        let msg = format!(
                            "project {scope} on {url}: the server refused more patterns ({e}). This run stored {} records there and {left} of this batch were not stored, nor will the rest of this project's records be; other projects go on. Delete old patterns or raise the project's limit (self-hosted: ENGRAMIA_PROJECT_QUOTA_PCT; Cloud: a larger plan), then rerun: engram sends only what is missing",
                            p.sent.created + p.sent.updated
                        );
                        warnings.push(Warning::new("project_quota_exceeded", scope.to_string(), msg.clone()));
                        p.stopped = Some(msg);
                        queue.clear();
                    }
                    Err(e) if matches!(e.status(), Some(401 | 403)) => {
                        return Err(match super::preflight::key_refused(url, &p.key, &scope.to_string(), &e) {
                            super::KeyProblem::Config(m) | super::KeyProblem::Failed(m) => SinkError::Config(m),
                        });
                    }
                    Err(e) => {
                        return Err(SinkError::Io(format!(
                            "{url}: project {scope}: POST /v1/import of {} records: {e}. Records in earlier requests are stored; a rerun sends only what is missing",
                            range.len()
                        )));
                    }
                }
            }
            for i in too_large {
                p.sent.not_stored += 1;
                warnings.push(Warning::new(
                    "record_too_large",
                    group[i].key.clone(),
                    format!(
                        "{} in project {scope} is {} bytes as an import record, over the server's request limit ({} bytes): not stored; raise ENGRAMIA_MAX_BODY_SIZE on the server and [target.server] max_request_bytes, or lower [patterns] code_max_chars",
                        group[i].key,
                        wires[i].len(),
                        *max_bytes
                    ),
                ));
            }
        }
        for r in &done {
            p.stored.insert(r.key.clone(), stored_of(&batch::wire_data(r)));
        }
        // Skills after their patterns, one call at a time: the project has one registry document.
        for r in done.iter().filter(|r| !r.skills.is_empty()) {
            if r.skills.len() > 50 {
                warnings.push(Warning::new(
                    "skills_truncated",
                    r.key.clone(),
                    format!("{} has {} skills; Engramia registers at most 50 per pattern, the first 50 were registered", r.key, r.skills.len()),
                ));
            }
            let skills: Vec<&String> = r.skills.iter().take(50).collect();
            let body = serde_json::to_vec(&json!({"pattern_key": r.key, "skills": skills})).expect("JSON");
            p.sent.requests += 1;
            client.json::<Value>(Method::POST, "/v1/skills/register", Some(&p.key), Some(&body)).await.map_err(|e| {
                SinkError::Io(format!(
                    "{url}: project {scope}: registering the skills of {} (POST /v1/skills/register): {e}. The pattern is stored; a rerun registers its skills",
                    r.key
                ))
            })?;
            p.sent.skills += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordKind;

    #[test]
    fn stored_hash_is_the_planned_one_whatever_recall_changed() {
        let r = Record {
            scope: Scope::new("default", "default"),
            key: "patterns/a_1_x".into(),
            kind: RecordKind::MessagePair,
            pattern: json!({"task": "t", "design": {"code": "c"}, "success_score": 5.0, "reuse_count": 0, "timestamp": 1.0}),
            skills: vec!["s".into()],
            classification: "internal".into(),
            origin: "o".into(),
        };
        let mut data = batch::wire_data(&r);
        // What a recall hit does to the stored pattern.
        data["reuse_count"] = json!(1);
        data["success_score"] = json!(5.1);
        let s = stored_of(&data);
        assert_eq!(s.hash, r.content_hash());
        assert_eq!(s.skills, vec!["s".to_string()]);
        // A pattern engram did not write is hashed as found.
        let foreign = json!({"task": "t", "design": {"code": "c"}});
        assert_eq!(stored_of(&foreign).hash, content_hash(&foreign, &[]));
    }
}
