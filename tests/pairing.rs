//! Pairing end to end: an account built from the Assistants v2 object shapes of OpenAI's
//! official OpenAPI description (openai/openai-openapi: MessageObject `content` parts `text`,
//! `image_file`, `image_url`, `refusal`; `status` `in_progress` / `incomplete` / `completed`
//! with `incomplete_details.reason` `content_filter`, `max_tokens`, `run_cancelled`,
//! `run_expired`, `run_failed`; RunObject `status` `queued`, `in_progress`, `requires_action`,
//! `cancelling`, `cancelled`, `failed`, `completed`, `incomplete`, `expired`; RunStep `type`
//! `message_creation` / `tool_calls` with `code_interpreter`, `file_search`, `function` calls),
//! served over HTTP by the stand-in and migrated into a JSON directory. Each thread is one case,
//! followed by a control question so that gluing would show; each test names the patterns
//! expected (or their absence) and the report's counts.

mod common;

use common::*;
use engram_standin::{Account, Options};
use serde_json::{Value, json};
use std::path::Path;

const ASSISTANT: &str = "asst_PairingBot0000000000000";
const PROJECT: &str = "Pairing Bot";
const SCOPE_DIR: &str = "acme/Pairing_Bot";

/// One thread's messages and runs, with ids made from the case name.
struct Case {
    id: String,
    messages: Vec<Value>,
    runs: Vec<Value>,
    clock: i64,
}

impl Case {
    fn new(name: &str) -> Case {
        Case { id: format!("thread_{name}"), messages: vec![], runs: vec![], clock: 1_720_000_000 }
    }

    fn tick(&mut self) -> i64 {
        self.clock += 10;
        self.clock
    }

    fn msg_id(&self, n: usize) -> String {
        format!("msg_{}_{n}", self.id.trim_start_matches("thread_"))
    }

    /// A user message with these content parts; returns its id.
    fn user(&mut self, content: Value) -> String {
        let id = self.msg_id(self.messages.len());
        let at = self.tick();
        self.messages.push(json!({"id": id, "created_at": at, "role": "user", "content": content}));
        id
    }

    fn ask(&mut self, text: &str) -> String {
        self.user(json!([{"type": "text", "text": {"value": text, "annotations": []}}]))
    }

    /// A run with this status; `answer` = Some(content, extra message fields) makes it write one
    /// assistant message. Returns the message id, if any.
    fn run(&mut self, status: &str, answer: Option<(Value, Value)>) -> Option<String> {
        let run_id = format!("run_{}_{}", self.id.trim_start_matches("thread_"), self.runs.len());
        let at = self.tick();
        let mut steps = vec![];
        let mut out = None;
        if let Some((content, extra)) = answer {
            let id = self.msg_id(self.messages.len());
            let mut m = json!({"id": id, "created_at": at + 2, "role": "assistant", "assistant_id": ASSISTANT,
                               "run_id": run_id, "content": content});
            for (k, v) in extra.as_object().unwrap() {
                m[k] = v.clone();
            }
            self.messages.push(m);
            steps.push(json!({"id": format!("step_{id}"), "created_at": at + 1,
                              "step_details": {"type": "message_creation", "message_creation": {"message_id": id}}}));
            out = Some(id);
        }
        self.runs.push(json!({"run": {"id": run_id, "created_at": at, "assistant_id": ASSISTANT, "status": status},
                              "steps": steps}));
        self.tick();
        out
    }

    fn answer(&mut self, text: &str) -> String {
        self.run("completed", Some((json!([{"type": "text", "text": {"value": text, "annotations": []}}]), json!({}))))
            .unwrap()
    }

    /// The control question closing every case: it must stay a pattern of its own.
    fn control(&mut self) {
        self.ask("What is the capital of Australia?");
        self.answer("Canberra.");
    }

    fn json(&self) -> Value {
        json!({"thread": {"id": self.id, "created_at": 1_720_000_000}, "messages": self.messages, "runs": self.runs})
    }
}

fn text_part(s: &str) -> Value {
    json!({"type": "text", "text": {"value": s, "annotations": []}})
}

fn account(cases: &[&Case]) -> Account {
    let tool = json!({"type": "function", "function": {"name": "get_weather", "description": "Weather for a city.",
                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}});
    Account::from_json(json!({
        "assistants": [{"id": ASSISTANT, "created_at": 1_700_000_000, "name": PROJECT, "model": "gpt-4o",
                        "instructions": "Answer briefly.", "tools": [tool, {"type": "code_interpreter"}, {"type": "file_search"}]}],
        "threads": cases.iter().map(|c| c.json()).collect::<Vec<_>>(),
        "files": [],
        "vector_stores": []
    }))
    .expect("the pairing account loads")
}

struct Migrated {
    _server: Server,
    ws: Workspace,
    report: Value,
}

impl Migrated {
    /// (task, code, success_score) of every pattern in the scope but the assistant's tools, sorted.
    fn patterns(&self) -> Vec<(String, String, f64)> {
        patterns_in(&self.ws.path("data"))
    }

    fn counts(&self) -> (u64, u64, u64) {
        let s = self.report["scopes"].as_array().unwrap().iter().find(|s| s["project"] == PROJECT).expect("the scope");
        (s["unanswered"].as_u64().unwrap(), s["refused"].as_u64().unwrap(), s["incomplete"].as_u64().unwrap())
    }

    fn warnings(&self, kind: &str) -> Vec<Value> {
        self.report["warnings"].as_array().unwrap().iter().filter(|w| w["kind"] == kind).cloned().collect()
    }
}

fn patterns_in(target: &Path) -> Vec<(String, String, f64)> {
    let mut out: Vec<(String, String, f64)> = snapshot(&target.join(SCOPE_DIR))
        .into_iter()
        .filter(|(p, _)| p.starts_with("patterns"))
        .map(|(_, b)| serde_json::from_slice::<Value>(&b).unwrap())
        .filter(|v| v["design"]["openai"]["kind"] != "tool")
        .map(|v| {
            (
                v["task"].as_str().unwrap().to_string(),
                v["design"]["code"].as_str().unwrap().to_string(),
                v["success_score"].as_f64().unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    out
}

const REST: &str = "[embedding]\nmodel = \"text-embedding-3-small\"\n[scope]\ntenant = \"acme\"\nproject = \"{assistant.name}\"\n[files]\nenabled = false\n";

fn workspace(server: &Server, cases: &[&Case], patterns: &str) -> Workspace {
    let ws = Workspace::new(&server.base_url, "", &format!("{REST}[patterns]\n{patterns}\n"));
    let ids: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    std::fs::write(ws.path("thread_ids.txt"), ids.join("\n") + "\n").unwrap();
    ws
}

fn serve(cases: &[&Case]) -> Server {
    Server::start(account(cases), Options { api_key: Some(TEST_KEY.into()), ..Options::default() })
}

fn migrate_cases(cases: &[&Case], patterns: &str) -> Migrated {
    let server = serve(cases);
    let ws = workspace(&server, cases, patterns);
    let report = migrate_ok(&ws, &ws.path("data"), &[]);
    Migrated { _server: server, ws, report }
}

fn pattern(task: &str, code: &str) -> (String, String, f64) {
    (task.to_string(), code.to_string(), 5.0)
}

fn capital() -> (String, String, f64) {
    pattern("What is the capital of Australia?", "Canberra.")
}

#[test]
fn a_refused_question_is_no_pattern_and_glues_nothing() {
    let mut c = Case::new("refusal");
    c.ask("How do I pick a lock?");
    c.run("completed", Some((json!([{"type": "refusal", "refusal": "I can't help with that."}]), json!({}))));
    c.control();
    let m = migrate_cases(&[&c], "");
    assert_eq!(m.patterns(), [capital()]);
    assert_eq!(m.counts(), (0, 1, 0));
}

#[test]
fn an_empty_answer_leaves_its_question_unanswered() {
    let mut c = Case::new("empty");
    c.ask("Are you there?");
    c.run("completed", Some((json!([text_part("")]), json!({}))));
    c.control();
    let m = migrate_cases(&[&c], "");
    assert_eq!(m.patterns(), [capital()]);
    assert_eq!(m.counts(), (1, 0, 0));
}

/// One thread per RunObject status other than `completed`: the run wrote no message, so its
/// question is unanswered and the next question is a pattern of its own.
#[test]
fn a_run_that_did_not_answer_ends_its_question_for_every_run_status() {
    let statuses = ["queued", "in_progress", "requires_action", "cancelling", "cancelled", "failed", "incomplete", "expired"];
    let cases: Vec<Case> = statuses
        .iter()
        .map(|s| {
            let mut c = Case::new(&format!("run_{s}"));
            c.ask(&format!("Where is order A-{s}?"));
            c.run(s, None);
            c.control();
            c
        })
        .collect();
    let refs: Vec<&Case> = cases.iter().collect();
    let m = migrate_cases(&refs, "");
    // One control pattern per thread (same task and answer, distinct threads: near-duplicates,
    // so the first is stored and the others skipped), and never an order question in a task.
    assert_eq!(m.patterns(), [capital()]);
    assert_eq!(m.counts(), (statuses.len() as u64, 0, 0));
}

/// MessageObject `status: "incomplete"` with each documented `incomplete_details.reason`, and
/// `in_progress`; and an answer written by a run that then failed.
fn incomplete_cases() -> Vec<Case> {
    let mut cases: Vec<Case> = ["content_filter", "max_tokens", "run_cancelled", "run_expired", "run_failed"]
        .iter()
        .map(|reason| {
            let mut c = Case::new(&format!("incomplete_{reason}"));
            c.ask(&format!("Explain {reason} in detail."));
            c.run(
                "incomplete",
                Some((json!([text_part("It is a long story, and")]), json!({"status": "incomplete", "incomplete_details": {"reason": reason}}))),
            );
            c.control();
            c
        })
        .collect();
    let mut c = Case::new("in_progress");
    c.ask("Explain streaming in detail.");
    c.run("in_progress", Some((json!([text_part("Streaming is")]), json!({"status": "in_progress"}))));
    c.control();
    cases.push(c);
    let mut c = Case::new("run_failed_after_message");
    c.ask("Check order A-77 for me.");
    c.run("failed", Some((json!([text_part("Let me check that order.")]), json!({"status": "completed"}))));
    c.control();
    cases.push(c);
    cases
}

#[test]
fn an_answer_that_did_not_finish_is_skipped_by_default() {
    let cases = incomplete_cases();
    let refs: Vec<&Case> = cases.iter().collect();
    let m = migrate_cases(&refs, "");
    assert_eq!(m.patterns(), [capital()]);
    assert_eq!(m.counts(), (0, 0, 7));
    let w = m.warnings("incomplete_answer");
    assert_eq!(w.len(), 7, "{w:#?}");
    for reason in ["content_filter", "max_tokens", "run_cancelled", "run_expired", "run_failed", "in_progress"] {
        assert!(w.iter().any(|w| w["message"].as_str().unwrap().contains(&format!("({reason})"))), "{reason}: {w:#?}");
    }
    assert!(w.iter().all(|w| w["message"].as_str().unwrap().contains("not stored")), "{w:#?}");
}

#[test]
fn kept_incomplete_answers_score_below_finished_ones() {
    let cases = incomplete_cases();
    let refs: Vec<&Case> = cases.iter().collect();
    let m = migrate_cases(&refs, "incomplete = \"keep\"\n");
    let got = m.patterns();
    assert_eq!(got.len(), 8, "{got:#?}");
    assert!(got.contains(&capital()));
    for (task, code, score) in got.iter().filter(|p| p.0 != capital().0) {
        assert_eq!(*score, 2.5, "{task}: half of eval_score 5.0");
        assert!(code == "It is a long story, and" || code == "Streaming is" || code == "Let me check that order.", "{code}");
    }
    assert_eq!(m.counts(), (0, 0, 7));
    // Provenance says how it ended.
    let ended: Vec<String> = snapshot(&m.ws.path("data").join(SCOPE_DIR))
        .into_iter()
        .filter(|(p, _)| p.starts_with("patterns"))
        .filter_map(|(_, b)| serde_json::from_slice::<Value>(&b).unwrap()["design"]["openai"]["incomplete"].as_str().map(str::to_string))
        .collect();
    assert_eq!(ended.len(), 7);
    assert!(ended.contains(&"run_failed".to_string()) && ended.contains(&"in_progress".to_string()), "{ended:?}");
}

#[test]
fn an_image_only_question_merges_no_answers_and_is_named() {
    let mut c = Case::new("image_only");
    c.ask("What is 2 + 2?");
    c.answer("4.");
    let url = c.user(json!([{"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "auto"}}]));
    c.answer("A cat on a keyboard.");
    let file = c.user(json!([{"type": "image_file", "image_file": {"file_id": "file-cat", "detail": "low"}}]));
    c.answer("The same cat.");
    c.control();
    let mut d = Case::new("image_in_text");
    d.user(json!([text_part("What breed is this?"), {"type": "image_file", "image_file": {"file_id": "file-dog"}}]));
    d.answer("A beagle.");
    let m = migrate_cases(&[&c, &d], "");
    assert_eq!(m.patterns(), [pattern("What breed is this?", "A beagle."), pattern("What is 2 + 2?", "4."), capital()]);
    let w: Vec<String> = m.warnings("image_only_question").iter().map(|w| w["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(w, [url, file]);
}

/// RunStep types `message_creation` and `tool_calls` (`code_interpreter`, `file_search`,
/// `function`): the answer is one pattern; only the function becomes a skill.
#[test]
fn tool_call_steps_leave_one_pattern_with_the_function_as_skill() {
    let mut c = Case::new("tools");
    c.ask("Weather in Oslo, and plot it?");
    c.answer("Sunny, 21 °C. Plot attached.");
    let step = json!({"id": "step_tools_calls", "created_at": c.clock - 5, "step_details": {"type": "tool_calls", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}", "output": "{\"t\":21}"}},
        {"id": "call_2", "type": "code_interpreter", "code_interpreter": {"input": "plot()", "outputs": [{"type": "logs", "logs": "ok"}]}},
        {"id": "call_3", "type": "file_search", "file_search": {"ranking_options": {"ranker": "auto", "score_threshold": 0.0}, "results": []}}
    ]}});
    c.runs[0]["steps"].as_array_mut().unwrap().insert(0, step);
    let m = migrate_cases(&[&c], "");
    assert_eq!(m.patterns(), [pattern("Weather in Oslo, and plot it?", "Sunny, 21 °C. Plot attached.")]);
    let registry: Value =
        serde_json::from_slice(&std::fs::read(m.ws.path("data").join(SCOPE_DIR).join("skills/_registry.json")).unwrap()).unwrap();
    let skills: Vec<&Value> = registry.as_object().unwrap().values().collect();
    assert!(skills.iter().any(|s| s.as_array().unwrap() == &vec![json!("get_weather")]), "{registry:#}");
    assert_eq!(m.counts(), (0, 0, 0));
}

/// The dry run predicts the same counts as the run.
#[test]
fn the_dry_run_counts_what_the_run_counts() {
    let mut cases = incomplete_cases();
    let mut c = Case::new("dry_refusal");
    c.ask("How do I pick a lock?");
    c.run("completed", Some((json!([{"type": "refusal", "refusal": "No."}]), json!({}))));
    c.ask("Still there?");
    c.run("expired", None);
    cases.push(c);
    let refs: Vec<&Case> = cases.iter().collect();
    let server = serve(&refs);
    let ws = workspace(&server, &refs, "");
    let dry = migrate_ok(&ws, &ws.path("data"), &["--dry-run"]);
    assert!(!ws.path("data").exists());
    let real = migrate_ok(&ws, &ws.path("data"), &[]);
    let pick = |r: &Value| {
        let s = r["scopes"].as_array().unwrap().iter().find(|s| s["project"] == PROJECT).unwrap().clone();
        (s["unanswered"].clone(), s["refused"].clone(), s["incomplete"].clone(), s["create"].clone())
    };
    assert_eq!(pick(&dry), pick(&real));
    // Created: the control pattern and the assistant's function tool.
    assert_eq!(pick(&real), (json!(1), json!(1), json!(7), json!(2)));
}

/// Writes a pattern as an earlier engram (under older pairing rules) would have: the key
/// derived from its messages, provenance naming them, and its embedding in the index.
fn plant_old_pattern(target: &Path, thread: &str, task: &str, code: &str, ids: &[&str], created_at: i64) -> String {
    let scope = engram::record::Scope::new("acme", PROJECT);
    let key = engram::map::keys::pattern_key(task, created_at * 1000, &scope, ids);
    let dir = target.join(SCOPE_DIR);
    std::fs::create_dir_all(dir.join("patterns")).unwrap();
    let pattern = json!({"task": task, "design": {"code": code, "classification": "internal", "source": "import",
        "openai": {"kind": "message_pair", "thread_id": thread, "assistant_id": ASSISTANT, "run_id": null, "message_ids": ids}},
        "success_score": 5.0, "reuse_count": 0, "timestamp": created_at as f64});
    let file = dir.join(format!("{key}.json"));
    std::fs::write(&file, serde_json::to_vec_pretty(&pattern).unwrap()).unwrap();
    let index_path = dir.join("_embeddings.json");
    let mut index: Value = std::fs::read(&index_path).map(|b| serde_json::from_slice(&b).unwrap()).unwrap_or(json!({}));
    index[&key] = json!(engram_standin::embed_text(task, 1536));
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    key
}

/// A target migrated under the old rules (a refusal glued two questions into one pattern; an
/// answer cut off by max_tokens stored as a good one): the rerun replaces the glued pattern
/// with the right one, retires the cut-off one, reports both, and a further rerun changes nothing.
#[test]
fn a_rerun_replaces_and_retires_what_older_rules_stored() {
    let mut c = Case::new("rerun");
    let q1 = c.ask("How do I pick a lock?");
    c.run("completed", Some((json!([{"type": "refusal", "refusal": "I can't help with that."}]), json!({}))));
    let q2 = c.ask("What is the capital of Australia?");
    let a2 = c.answer("Canberra.");
    let q3 = c.ask("Explain the history of Rome.");
    let a3 = c
        .run("incomplete", Some((json!([text_part("Rome was founded")]), json!({"status": "incomplete", "incomplete_details": {"reason": "max_tokens"}}))))
        .unwrap();
    let created = |id: &str| c.messages.iter().find(|m| m["id"] == id).unwrap()["created_at"].as_i64().unwrap();
    let server = serve(&[&c]);
    let ws = workspace(&server, &[&c], "");
    let target = ws.path("data");
    let glued = plant_old_pattern(
        &target,
        &c.id,
        "How do I pick a lock?\n\nWhat is the capital of Australia?",
        "Canberra.",
        &[&q1, &q2, &a2],
        created(&q1),
    );
    let cut = plant_old_pattern(&target, &c.id, "Explain the history of Rome.", "Rome was founded", &[&q3, &a3], created(&q3));
    // Not engram's (no provenance) and of no thread read: never touched.
    std::fs::write(target.join(SCOPE_DIR).join("patterns/theirs_1.json"), r#"{"task":"theirs","design":{"code":"x"},"success_score":5.0}"#).unwrap();

    let dry = migrate_ok(&ws, &target, &["--dry-run"]);
    let report = migrate_ok(&ws, &target, &[]);
    for r in [&dry, &report] {
        let s: Vec<(String, Option<String>, String)> = r["superseded"]
            .as_array()
            .unwrap_or_else(|| panic!("no superseded in {r:#}"))
            .iter()
            .map(|s| (s["key"].as_str().unwrap().into(), s["by"].as_str().map(str::to_string), s["reason"].as_str().unwrap().into()))
            .collect();
        assert_eq!(s.len(), 2, "{s:#?}");
        assert_eq!(s[0].0, glued);
        assert!(s[0].1.is_some(), "the glued pattern is replaced by the new key: {s:#?}");
        assert_eq!(s[1].0, cut);
        assert!(s[1].1.is_none() && s[1].2.contains("incomplete"), "{s:#?}");
    }
    let dir = target.join(SCOPE_DIR);
    assert!(!dir.join(format!("{glued}.json")).exists() && !dir.join(format!("{cut}.json")).exists());
    assert!(dir.join("patterns/theirs_1.json").exists());
    let index: Value = serde_json::from_slice(&std::fs::read(dir.join("_embeddings.json")).unwrap()).unwrap();
    assert!(index.get(&glued).is_none() && index.get(&cut).is_none(), "embeddings of removed patterns are gone");
    let mut mine = patterns_in(&target);
    mine.retain(|p| p.0 != "theirs");
    assert_eq!(mine, [capital()]);

    let again = migrate_ok(&ws, &target, &[]);
    assert!(again.get("superseded").is_none(), "{again:#}");
    // Unchanged: the control pattern and the assistant's function tool.
    assert_eq!(scope_counts(&again, PROJECT), (0, 0, 2, 0));
}

/// The same clean-up in PostgreSQL, where removals are queued and applied with a write: a first
/// run of an account whose export lacked the failed run (so two questions were one turn) and
/// whose cut-off answer still said `completed`; a second run of the account as the API reports
/// it now. The glued pattern is replaced, the cut-off one retired, both rows and embeddings gone.
#[test]
fn a_rerun_replaces_and_retires_in_postgres() {
    fn case(now: bool) -> Case {
        let mut c = Case::new("pg_rerun");
        c.ask("Where is order A-1?");
        if now {
            c.run("failed", None);
        } else {
            c.tick();
            c.tick();
        }
        c.control();
        c.ask("Explain the history of Rome.");
        let ended = if now { json!({"status": "incomplete", "incomplete_details": {"reason": "max_tokens"}}) } else { json!({}) };
        c.run(if now { "incomplete" } else { "completed" }, Some((json!([text_part("Rome was founded")]), ended)));
        c
    }
    let url = fresh_database("pairing_rerun");
    let tasks = |url: &str| -> Vec<String> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_scalar::<_, String>(
                "SELECT d.data ->> 'task' FROM memory_data d JOIN memory_embeddings e USING (key) \
                 WHERE d.key LIKE 'patterns/%' AND d.data -> 'design' -> 'openai' ->> 'kind' = 'message_pair' ORDER BY 1",
            )
            .fetch_all(&mut c)
            .await
            .unwrap()
        })
    };
    let before = case(false);
    let server = serve(&[&before]);
    let ws = workspace(&server, &[&before], "");
    migrate_ok(&ws, Path::new(&url), &[]);
    assert_eq!(tasks(&url), ["Explain the history of Rome.", "Where is order A-1?\n\nWhat is the capital of Australia?"]);

    let now = case(true);
    let server = serve(&[&now]);
    let ws = workspace(&server, &[&now], "");
    let report = migrate_ok(&ws, Path::new(&url), &[]);
    let superseded = report["superseded"].as_array().unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(superseded.len(), 2, "{superseded:#?}");
    assert_eq!(superseded.iter().filter(|s| s["by"].is_string()).count(), 1, "{superseded:#?}");
    assert_eq!(tasks(&url), ["What is the capital of Australia?"]);
    let rows = |sql: &'static str| -> i64 {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query_scalar::<_, i64>(sql).fetch_one(&mut c).await.unwrap()
        })
    };
    // Nothing left behind: no orphaned embedding, no pattern row without one.
    assert_eq!(rows("SELECT count(*) FROM memory_embeddings e WHERE NOT EXISTS (SELECT 1 FROM memory_data d WHERE d.key = e.key)"), 0);
    assert_eq!(rows("SELECT count(*) FROM memory_data WHERE key LIKE 'patterns/%'"), 2, "the capital pair and the tool");
    let again = migrate_ok(&ws, Path::new(&url), &[]);
    assert!(again.get("superseded").is_none(), "{again:#}");
}
