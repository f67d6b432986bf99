//! Map: pure functions from OpenAI objects + mapping settings to `Record`s.
//!
//! No clock, no network, no filesystem: the same input gives the same records on every run,
//! which is what makes reruns, dry runs and replays honest.

pub mod chunk;
pub mod keys;
pub mod pairing;
pub mod scope;
pub mod skills;
pub mod text;

use crate::model::{Assistant, ThreadBundle};
use crate::record::{Record, RecordKind, Scope, Warning};
use scope::{ScopeContext, ScopeTemplate};
use serde_json::json;
use pairing::{Ending, Fate};
use std::collections::{BTreeMap, HashMap};

/// The parts of mapping.toml that Map reads.
#[derive(Debug, Clone)]
pub struct MapSettings {
    pub tenant: String,
    pub project_template: ScopeTemplate,
    pub default_project: Option<String>,
    pub eval_score: f64,
    /// `[patterns] incomplete` and the score of kept incomplete answers.
    pub incomplete: IncompletePolicy,
    pub incomplete_score: f64,
    pub task_max_chars: usize,
    pub code_max_chars: usize,
    pub classification: String,
}

#[cfg(test)]
impl MapSettings {
    /// The settings unit tests start from: tenant `acme`, the given project template, the
    /// reference mapping's defaults for the rest.
    pub(crate) fn for_tests(template: &str) -> MapSettings {
        MapSettings {
            tenant: "acme".into(),
            project_template: scope::ScopeTemplate::parse(template).unwrap(),
            default_project: None,
            eval_score: 5.0,
            incomplete: IncompletePolicy::Skip,
            incomplete_score: 2.0,
            task_max_chars: 2000,
            code_max_chars: 8000,
            classification: "internal".into(),
        }
    }
}

/// What the source knows besides the thread itself.
#[derive(Debug, Clone, Default)]
pub struct MapContext {
    /// Every assistant of the account, by id.
    pub assistants: HashMap<String, Assistant>,
    /// File id -> original filename, for citation markers (may be incomplete).
    pub file_names: HashMap<String, String>,
}

/// Records and warnings from one mapped object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapped {
    pub records: Vec<Record>,
    pub warnings: Vec<Warning>,
    /// Questions that became no pattern (or a lower-scored one), per scope.
    pub questions: BTreeMap<Scope, QuestionCounts>,
    /// Messages of questions the rules store no pattern for, with the fate that says why
    /// (`refused`, `unanswered`, `incomplete`, `image-only`): a rerun retires stored pairs of them.
    pub not_stored: Vec<(String, &'static str)>,
}

/// `[patterns] incomplete`: what becomes of an answer that did not finish.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncompletePolicy {
    /// No pattern: an unfinished answer would be recalled as if it were a good one.
    #[default]
    Skip,
    /// A pattern with `[patterns] incomplete_score` (below `eval_score`).
    Keep,
}

/// Questions of a scope that became no pattern (or, for kept incomplete answers, a
/// lower-scored one), as the report counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QuestionCounts {
    /// No answer with text came: the run ended without one, the answer was empty, or the
    /// thread ends with the question.
    pub unanswered: usize,
    /// The answer was a refusal.
    pub refused: usize,
    /// The answer did not finish (skipped, or kept with the lower score).
    pub incomplete: usize,
}

impl QuestionCounts {
    pub fn add(&mut self, other: &QuestionCounts) {
        self.unanswered += other.unanswered;
        self.refused += other.refused;
        self.incomplete += other.incomplete;
    }

    pub fn is_zero(&self) -> bool {
        *self == QuestionCounts::default()
    }
}

/// Maps one thread's messages to message-pair patterns: each question answered by the
/// assistant becomes one record (see `pairing` for what a question is and how its fate is
/// decided). Pairs whose scope cannot be resolved are skipped with one `scope_unresolved`
/// warning per placeholder; questions without a stored answer are counted per scope.
pub fn map_thread(bundle: &ThreadBundle, ctx: &MapContext, settings: &MapSettings) -> Mapped {
    let mut out = Mapped::default();
    // Placeholder -> (why, how many pairs it cost), in order of first appearance.
    let mut unresolved: Vec<(scope::Unresolved, usize)> = Vec::new();
    let conversation = pairing::conversation(&bundle.messages, &bundle.runs, &ctx.file_names);
    let thread_assistant = thread_assistant(bundle);
    for q in &conversation.questions {
        let answerer_id = match &q.fate {
            Fate::Answered { answer, .. } | Fate::Refused { answer } => answering_assistant(answer, bundle),
            Fate::Unanswered { run, .. } => run.and_then(|r| r.assistant_id.clone()),
        }
        .or_else(|| thread_assistant.clone());
        let answerer = answerer_id.as_ref().and_then(|id| ctx.assistants.get(id));
        let scope_ctx = ScopeContext { assistant: answerer, thread: Some(&bundle.thread) };
        let scope = resolve_scope(settings, &scope_ctx);
        let (answer, ending) = match &q.fate {
            Fate::Answered { answer, ending } => (answer, ending),
            Fate::Refused { .. } | Fate::Unanswered { .. } => {
                let fate = if matches!(q.fate, Fate::Refused { .. }) { "refused" } else { "unanswered" };
                out.not_stored.extend(q.user.ids().map(|id| (id.to_string(), fate)));
                if let Ok(scope) = scope {
                    let c = out.questions.entry(scope).or_default();
                    match q.fate {
                        Fate::Refused { .. } => c.refused += 1,
                        _ => c.unanswered += 1,
                    }
                }
                continue;
            }
        };
        let score = match ending {
            Ending::Completed => settings.eval_score,
            Ending::Incomplete(reason) => {
                if let Ok(scope) = &scope {
                    out.questions.entry(scope.clone()).or_default().incomplete += 1;
                }
                let id = answer.ids().next().unwrap_or_default().to_string();
                let (what, score) = match settings.incomplete {
                    IncompletePolicy::Skip => ("not stored ([patterns] incomplete = \"skip\")".to_string(), None),
                    IncompletePolicy::Keep => (
                        format!("stored with success_score {} ([patterns] incomplete = \"keep\")", settings.incomplete_score),
                        Some(settings.incomplete_score),
                    ),
                };
                out.warnings.push(Warning::new(
                    "incomplete_answer",
                    id.as_str(),
                    format!("thread {}: the answer {id} did not finish ({reason}); {what}", bundle.thread.id),
                ));
                match score {
                    Some(s) => s,
                    None => {
                        out.not_stored.extend(q.user.ids().map(|id| (id.to_string(), "incomplete")));
                        continue;
                    }
                }
            }
        };
        match scope {
            Ok(scope) => {
                out.records.push(pair_record(q, answer, ending, score, answerer_id.as_deref(), scope, bundle, settings))
            }
            Err(mut e) => {
                if let (Some(id), None, true) =
                    (&answerer_id, answerer, e.placeholder.starts_with("{assistant."))
                {
                    e.reason = format!("assistant {id} is not among the account's assistants (deleted?)");
                }
                match unresolved.iter_mut().find(|(u, _)| u.placeholder == e.placeholder) {
                    Some((_, n)) => *n += 1,
                    None => unresolved.push((e, 1)),
                }
            }
        }
    }
    for turn in &conversation.image_only {
        let ids: Vec<&str> = turn.ids().collect();
        out.not_stored.extend(ids.iter().map(|id| (id.to_string(), "image-only")));
        out.warnings.push(Warning::new(
            "image_only_question",
            ids[0],
            format!(
                "thread {}: user message {} holds only images (engram migrates text): it is no question, and the assistant turn after it, if any, is not stored",
                bundle.thread.id,
                ids.join(", ")
            ),
        ));
    }
    out.warnings
        .extend(unresolved.into_iter().map(|(e, n)| scope_warning(&bundle.thread.id, &e, n, settings)));
    out
}

/// The assistant that wrote an answer: the messages' `assistant_id`, else the one of the run
/// that produced them. The id is returned even when the account no longer has that assistant.
fn answering_assistant(turn: &pairing::Turn<'_>, bundle: &ThreadBundle) -> Option<String> {
    turn.assistant_id().map(str::to_string).or_else(|| {
        turn.run_ids().into_iter().find_map(|run_id| {
            bundle.runs.iter().find(|r| r.id == run_id).and_then(|r| r.assistant_id.clone())
        })
    })
}

/// The thread's assistant, for questions nothing answered: its first assistant message's or
/// run's `assistant_id`.
fn thread_assistant(bundle: &ThreadBundle) -> Option<String> {
    bundle
        .messages
        .iter()
        .find_map(|m| m.assistant_id.clone())
        .or_else(|| bundle.runs.iter().find_map(|r| r.assistant_id.clone()))
}

#[allow(clippy::too_many_arguments)]
fn pair_record(
    q: &pairing::Question<'_>,
    answer: &pairing::Turn<'_>,
    ending: &Ending,
    score: f64,
    answerer_id: Option<&str>,
    scope: Scope,
    bundle: &ThreadBundle,
    settings: &MapSettings,
) -> Record {
    let task = text::truncate_chars(&q.user.text, settings.task_max_chars).to_string();
    let code = text::truncate_chars(&answer.text, settings.code_max_chars).to_string();
    let ids = q.message_ids();
    let created_at = q.user.created_at();
    let key = keys::pattern_key(&task, created_at.saturating_mul(1000), &scope, &ids);
    let mut openai = json!({
        "kind": "message_pair",
        "thread_id": bundle.thread.id,
        // The message's assistant, else the run's (`assistant_id: null`, `run_id` set).
        "assistant_id": answerer_id,
        "run_id": answer.run_id(),
        "message_ids": ids,
    });
    if let Ending::Incomplete(reason) = ending {
        openai["incomplete"] = json!(reason);
    }
    let pattern = json!({
        "task": task,
        "design": {
            "code": code,
            "classification": settings.classification,
            "source": "import",
            "openai": openai,
        },
        "success_score": score,
        "reuse_count": 0,
        "timestamp": created_at as f64,
    });
    Record {
        scope,
        key,
        kind: RecordKind::MessagePair,
        pattern,
        skills: skills::functions_called(bundle, &answer.run_ids()),
        classification: settings.classification.clone(),
        origin: format!("openai-thread:{}", bundle.thread.id),
    }
}

/// One warning per thread and placeholder, saying what is missing and how to fix it.
fn scope_warning(thread_id: &str, e: &scope::Unresolved, pairs: usize, settings: &MapSettings) -> Warning {
    let fix = if e.placeholder == "{assistant.name}" {
        "give the assistant a name, or set [scope] default_project".to_string()
    } else if let Some(key) =
        e.placeholder.strip_prefix("{thread.metadata.").and_then(|k| k.strip_suffix('}'))
    {
        format!("set metadata {key:?} on the thread, or set [scope] default_project")
    } else {
        "set [scope] default_project".to_string()
    };
    Warning::new(
        "scope_unresolved",
        thread_id,
        format!(
            "{pairs} message pair(s) of thread {thread_id} not imported: [scope] project {:?} needs {} but {}; {fix}",
            settings.project_template.as_str(),
            e.placeholder,
            e.reason
        ),
    )
}

/// Maps an assistant's function tools to tool patterns registered under their skills.
pub fn map_assistant_tools(assistant: &Assistant, settings: &MapSettings) -> Mapped {
    skills::tool_records(assistant, settings)
}

/// Resolves the scope for an assistant/thread, falling back to `default_project`.
pub fn resolve_scope(
    settings: &MapSettings,
    ctx: &scope::ScopeContext<'_>,
) -> Result<Scope, scope::Unresolved> {
    match settings.project_template.render(ctx) {
        Ok(project) => Ok(Scope::new(settings.tenant.clone(), project)),
        Err(e) => match &settings.default_project {
            Some(p) => Ok(Scope::new(settings.tenant.clone(), p.clone())),
            None => Err(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn settings(template: &str, default_project: Option<&str>) -> MapSettings {
        MapSettings { default_project: default_project.map(str::to_string), ..MapSettings::for_tests(template) }
    }

    fn assistant(id: &str, name: Option<&str>) -> (String, Assistant) {
        let a: Assistant =
            serde_json::from_value(json!({"id": id, "created_at": 1, "name": name, "tools": []})).unwrap();
        (id.to_string(), a)
    }

    fn message(
        id: &str,
        at: i64,
        role: &str,
        text: &str,
        assistant_id: Option<&str>,
        run_id: Option<&str>,
    ) -> Value {
        json!({"id": id, "object": "thread.message", "created_at": at, "thread_id": "thread_1", "role": role,
               "content": [{"type": "text", "text": {"value": text, "annotations": []}}],
               "assistant_id": assistant_id, "run_id": run_id, "attachments": [], "metadata": {}})
    }

    fn bundle(messages: Vec<Value>, runs: Vec<Value>, metadata: Value) -> ThreadBundle {
        serde_json::from_value(json!({
            "thread": {"id": "thread_1", "object": "thread", "created_at": 1, "metadata": metadata},
            "messages": messages, "runs": runs, "steps": []
        }))
        .unwrap()
    }

    fn simple(assistant_id: Option<&str>, run_id: Option<&str>) -> ThreadBundle {
        bundle(
            vec![
                message("msg_u", 100, "user", "Q?", None, None),
                message("msg_a", 101, "assistant", "A.", assistant_id, run_id),
            ],
            vec![
                json!({"id": "run_1", "assistant_id": "asst_run", "thread_id": "thread_1", "status": "completed"}),
            ],
            json!({"team": "ops"}),
        )
    }

    fn ctx(assistants: Vec<(String, Assistant)>) -> MapContext {
        MapContext { assistants: assistants.into_iter().collect(), file_names: HashMap::new() }
    }

    #[test]
    fn project_comes_from_the_answering_assistant() {
        let c = ctx(vec![assistant("asst_1", Some("Support")), assistant("asst_run", Some("Billing"))]);
        let m = map_thread(&simple(Some("asst_1"), Some("run_1")), &c, &settings("{assistant.name}", None));
        assert_eq!(m.records[0].scope, Scope::new("acme", "Support"));
        // No assistant_id on the message: the run's assistant answered.
        let m = map_thread(&simple(None, Some("run_1")), &c, &settings("{assistant.name}", None));
        assert_eq!(m.records[0].scope, Scope::new("acme", "Billing"));
        assert_eq!(m.records[0].pattern["design"]["openai"]["assistant_id"], json!("asst_run"), "provenance from the run");
        let m = map_thread(
            &simple(None, Some("run_1")),
            &c,
            &settings("{thread.metadata.team}-{assistant.id}", None),
        );
        assert_eq!(m.records[0].scope.project, "ops-asst_run");
    }

    #[test]
    fn unresolved_scope_falls_back_to_default_project() {
        let c = ctx(vec![assistant("asst_1", None)]);
        let m =
            map_thread(&simple(Some("asst_1"), None), &c, &settings("{assistant.name}", Some("imported")));
        assert_eq!(m.records[0].scope.project, "imported");
        assert!(m.warnings.is_empty());
    }

    #[test]
    fn unresolved_scope_skips_pairs_with_one_warning_per_placeholder() {
        let c = ctx(vec![assistant("asst_1", None)]);
        let b = bundle(
            vec![
                message("u1", 1, "user", "Q1", None, None),
                message("a1", 2, "assistant", "A1", Some("asst_1"), None),
                message("u2", 3, "user", "Q2", None, None),
                message("a2", 4, "assistant", "A2", Some("asst_1"), None),
            ],
            vec![],
            json!({}),
        );
        let m = map_thread(&b, &c, &settings("{assistant.name}", None));
        assert!(m.records.is_empty());
        assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
        let w = &m.warnings[0];
        assert_eq!((w.kind.as_str(), w.id.as_str()), ("scope_unresolved", "thread_1"));
        for needle in ["{assistant.name}", "default_project", "name", "2 message pair"] {
            assert!(w.message.contains(needle), "{needle} missing in {}", w.message);
        }
        // Metadata placeholder: the hint names the key.
        let m = map_thread(&b, &c, &settings("{thread.metadata.team}", None));
        assert!(m.warnings[0].message.contains("\"team\""), "{}", m.warnings[0].message);
        // An assistant the account no longer has is named in the reason.
        let m = map_thread(&b, &ctx(vec![]), &settings("{assistant.id}", None));
        assert!(m.warnings[0].message.contains("asst_1"), "{}", m.warnings[0].message);
    }

    #[test]
    fn truncation_applies_to_task_and_code_at_char_boundaries() {
        let b = bundle(
            vec![
                message("u", 1, "user", "日本語で説明して🎉🎉", None, None),
                message("a", 2, "assistant", "e\u{301}te\u{301} 👍\u{1F3FD}", None, None),
            ],
            vec![],
            json!({}),
        );
        let mut s = settings("fixed", None);
        s.task_max_chars = 9;
        s.code_max_chars = 4;
        let m = map_thread(&b, &ctx(vec![]), &s);
        let p = &m.records[0].pattern;
        assert_eq!(p["task"], json!("日本語で説明して🎉"));
        assert_eq!(p["design"]["code"], json!("e\u{301}t"));
    }

    #[test]
    fn mapping_is_deterministic_and_scoped() {
        let c = ctx(vec![]);
        let a = map_thread(&simple(None, None), &c, &settings("one", None));
        let b = map_thread(&simple(None, None), &c, &settings("one", None));
        assert_eq!(a, b);
        let other = map_thread(&simple(None, None), &c, &settings("two", None));
        assert_ne!(a.records[0].key, other.records[0].key);
        assert!(a.records[0].key.contains("_100000_"), "{}", a.records[0].key);
    }

    /// A thread as the OpenAI API returns it: a greeting, a question with an image part, an answer
    /// citing two files (one known), a function-calling run, a final unanswered question.
    #[test]
    fn realistic_bundle_end_to_end() {
        let b: ThreadBundle = serde_json::from_value(json!({
            "thread": {"id": "thread_abc", "object": "thread", "created_at": 1700000000, "metadata": {}, "tool_resources": null},
            "messages": [
                {"id": "msg_0", "object": "thread.message", "created_at": 1700000001, "thread_id": "thread_abc", "status": "completed",
                 "role": "assistant", "content": [{"type": "text", "text": {"value": "Hi! How can I help?", "annotations": []}}],
                 "assistant_id": "asst_1", "run_id": "run_0", "attachments": [], "metadata": {}},
                {"id": "msg_1", "object": "thread.message", "created_at": 1700000010, "thread_id": "thread_abc", "status": "completed",
                 "role": "user", "content": [{"type": "text", "text": {"value": "How do I reset the router?", "annotations": []}},
                                             {"type": "image_url", "image_url": {"url": "https://example.com/router.png", "detail": "auto"}}],
                 "assistant_id": null, "run_id": null, "attachments": null, "metadata": {}},
                {"id": "msg_3", "object": "thread.message", "created_at": 1700000020, "thread_id": "thread_abc", "status": "completed",
                 "role": "assistant", "content": [{"type": "text", "text": {
                    "value": "Hold the button for 10 s 【4:0†source】. Then check the log 【4:1†source】 and the status page 【9:9†source】.",
                    "annotations": [
                        {"type": "file_citation", "text": "【4:0†source】", "start_index": 25, "end_index": 37, "file_citation": {"file_id": "file-manual"}},
                        {"type": "file_citation", "text": "【4:1†source】", "start_index": 56, "end_index": 68, "file_citation": {"file_id": "file-gone"}}
                    ]}}],
                 "assistant_id": "asst_1", "run_id": "run_1", "attachments": [], "metadata": {}},
                {"id": "msg_4", "object": "thread.message", "created_at": 1700000030, "thread_id": "thread_abc", "status": "completed",
                 "role": "user", "content": [{"type": "text", "text": {"value": "Thanks, and the Wi-Fi password?", "annotations": []}}],
                 "assistant_id": null, "run_id": null, "attachments": [], "metadata": {}}
            ],
            "runs": [
                {"id": "run_1", "object": "thread.run", "created_at": 1700000012, "assistant_id": "asst_1", "thread_id": "thread_abc",
                 "status": "completed", "required_action": null, "tools": [{"type": "file_search"}], "model": "gpt-4o"}
            ],
            "steps": [
                {"id": "step_1", "object": "thread.run.step", "created_at": 1700000013, "run_id": "run_1", "assistant_id": "asst_1",
                 "thread_id": "thread_abc", "type": "tool_calls", "status": "completed",
                 "step_details": {"type": "tool_calls", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "Lookup_Device", "arguments": "{}", "output": "{}"}},
                    {"id": "call_2", "type": "file_search", "file_search": {"results": []}}]}},
                {"id": "step_2", "object": "thread.run.step", "created_at": 1700000019, "run_id": "run_1", "assistant_id": "asst_1",
                 "thread_id": "thread_abc", "type": "message_creation", "status": "completed",
                 "step_details": {"type": "message_creation", "message_creation": {"message_id": "msg_3"}}}
            ]
        }))
        .unwrap();
        let mut c = ctx(vec![assistant("asst_1", Some("Router Help"))]);
        c.file_names.insert("file-manual".into(), "manual.pdf".into());
        let m = map_thread(&b, &c, &settings("{assistant.name}", None));
        assert!(m.warnings.is_empty());
        assert_eq!(m.records.len(), 1, "greeting and unanswered question make no pattern");
        let r = &m.records[0];
        assert_eq!(r.kind, RecordKind::MessagePair);
        assert_eq!(r.scope, Scope::new("acme", "Router Help"));
        assert_eq!(r.skills, ["lookup_device"]);
        assert_eq!(r.origin, "openai-thread:thread_abc");
        assert_eq!(r.classification, "internal");
        assert_eq!(
            r.pattern,
            json!({
                "task": "How do I reset the router?",
                "design": {
                    "code": "Hold the button for 10 s [manual.pdf]. Then check the log and the status page.",
                    "classification": "internal",
                    "source": "import",
                    "openai": {"kind": "message_pair", "thread_id": "thread_abc", "assistant_id": "asst_1",
                               "run_id": "run_1", "message_ids": ["msg_1", "msg_3"]}
                },
                "success_score": 5.0,
                "reuse_count": 0,
                "timestamp": 1700000010.0
            })
        );
        // Key order as Engramia's guide writes it.
        let keys: Vec<&String> = r.pattern.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["task", "design", "success_score", "reuse_count", "timestamp"]);
        let design: Vec<&String> = r.pattern["design"].as_object().unwrap().keys().collect();
        assert_eq!(design, ["code", "classification", "source", "openai"]);
        assert_eq!(
            r.key,
            keys::pattern_key("How do I reset the router?", 1_700_000_010_000, &r.scope, &["msg_1", "msg_3"])
        );
    }
}
