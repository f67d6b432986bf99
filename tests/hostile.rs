//! Hostile content. Message text, names, metadata, tool schemas and file bytes come from users;
//! these property tests drive the pure stages with arbitrary unicode, empty and huge strings,
//! deep JSON and path-like names (`../../etc/passwd`, absolute paths, NUL, `..`) and check:
//! nothing panics, keys always match `patterns/[0-9a-z_]+`, scope directories stay below the
//! root, and cut text stays within its limits. One end-to-end test then migrates a hostile
//! account through the CLI.

mod common;

use engram::map::scope::ScopeTemplate;
use engram::map::{MapContext, MapSettings, map_assistant_tools, map_thread, text};
use engram::model::{
    Annotation, Assistant, ContentPart, FileRef, FunctionDef, Message, Role, Run, RunStep, StepDetails, TextContent, Thread,
    ThreadBundle, Tool, ToolCall,
};
use engram::record::{Record, Scope};
use engram::sink::json_dir::{sanitize_segment, scope_dir};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Component, Path};

// ---------------------------------------------------------------------------------------------
// Generators.

/// Strings users type, and strings attackers type.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        2 => "\\PC{0,40}",
        1 => Just(String::new()),
        1 => prop::sample::select(vec![
            "../../etc/passwd", "/etc/passwd", "..", ".", "a/../../b", "C:\\Windows\\system32", "\\\\server\\share",
            "nul\0byte", "\0", "  ", "\n\n", "【4:0†source】", "【】", "【4:0†", "e\u{301}\u{301}\u{301}", "👍\u{1F3FD}\u{200D}",
            "\u{202E}evil", "\u{FEFF}", "{assistant.name}", "%2e%2e%2f", "patterns/../../x", "CON", "a\u{0}/b",
        ])
        .prop_map(str::to_string),
        1 => (any::<char>(), 1000usize..20_000).prop_map(|(c, n)| std::iter::repeat_n(c, n).collect()),
    ]
}

/// JSON up to `depth` levels deep (objects, arrays, hostile strings, extreme numbers).
fn hostile_json(depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        hostile_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(depth, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(hostile_string(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A chain of `n` nested objects/arrays, the deepest shape a server can send (serde_json refuses
/// more than 128 levels when parsing).
fn deep_chain(n: usize, leaf: Value) -> Value {
    (0..n).fold(leaf, |v, i| if i % 2 == 0 { json!({ "k": v }) } else { json!([v]) })
}

fn annotation() -> impl Strategy<Value = Annotation> {
    (hostile_string(), prop::sample::select(vec!["file_citation", "file_path", "other", ""]), hostile_string(), any::<bool>())
        .prop_map(|(text, kind, file_id, cite)| {
            let file = Some(FileRef { file_id });
            Annotation {
                kind: kind.to_string(),
                text,
                start_index: None,
                end_index: None,
                file_citation: if cite { file.clone() } else { None },
                file_path: if cite { None } else { file },
            }
        })
}

fn message() -> impl Strategy<Value = Message> {
    (
        hostile_string(),
        any::<i64>(),
        prop::sample::select(vec![Role::User, Role::Assistant, Role::Other]),
        prop::collection::vec((hostile_string(), prop::collection::vec(annotation(), 0..3), any::<bool>()), 0..3),
        prop::option::of(prop::sample::select(vec!["asst_1", "asst_2", "asst_gone", "../asst"])),
        prop::option::of(prop::sample::select(vec!["run_1", "run_2", "run_x"])),
        hostile_json(3),
    )
        .prop_map(|(id, created_at, role, parts, assistant_id, run_id, metadata)| Message {
            id,
            created_at,
            thread_id: "thread_1".into(),
            role,
            content: parts
                .into_iter()
                .map(|(value, annotations, is_text)| ContentPart {
                    kind: if is_text { "text".into() } else { "image_file".into() },
                    text: Some(TextContent { value, annotations }),
                    image_file: None,
                })
                .collect(),
            assistant_id: assistant_id.map(str::to_string),
            run_id: run_id.map(str::to_string),
            attachments: vec![],
            metadata: metadata_of(metadata),
            status: None,
            incomplete_details: None,
        })
}

fn metadata_of(v: Value) -> engram::model::Metadata {
    match v {
        Value::Object(m) => m.into_iter().collect(),
        other => [("team".to_string(), other)].into_iter().collect(),
    }
}

fn function_tool() -> impl Strategy<Value = Tool> {
    (hostile_string(), prop::option::of(hostile_string()), prop::option::of(hostile_json(4)), 0usize..100).prop_map(
        |(name, description, parameters, depth)| Tool {
            kind: "function".into(),
            function: Some(FunctionDef {
                name,
                description,
                parameters: parameters.map(|p| if depth > 90 { deep_chain(depth, p) } else { p }),
                strict: None,
            }),
        },
    )
}

fn assistant(id: &'static str) -> impl Strategy<Value = Assistant> {
    (prop::option::of(hostile_string()), any::<i64>(), prop::collection::vec(function_tool(), 0..4)).prop_map(
        move |(name, created_at, tools)| Assistant { id: id.into(), created_at, name, tools, ..Assistant::default() },
    )
}

fn bundle() -> impl Strategy<Value = ThreadBundle> {
    (
        prop::collection::vec(message(), 0..12),
        hostile_json(4),
        any::<i64>(),
        prop::collection::vec(hostile_string(), 0..3),
        prop::option::of(hostile_json(2)),
    )
        .prop_map(|(messages, metadata, created_at, called, required_action)| ThreadBundle {
            thread: Thread { id: "thread_1".into(), created_at, metadata: metadata_of(metadata), tool_resources: None },
            messages,
            runs: vec![Run {
                id: "run_1".into(),
                assistant_id: Some("asst_2".into()),
                required_action,
                ..Run::default()
            }],
            steps: vec![RunStep {
                id: "step_1".into(),
                run_id: "run_1".into(),
                step_details: StepDetails {
                    kind: "tool_calls".into(),
                    tool_calls: called
                        .into_iter()
                        .map(|name| ToolCall {
                            id: "call_1".into(),
                            kind: "function".into(),
                            function: Some(engram::model::FunctionCall { name, arguments: None, output: None }),
                        })
                        .collect(),
                    message_creation: None,
                },
                ..RunStep::default()
            }],
        })
}

fn settings() -> impl Strategy<Value = MapSettings> {
    (
        hostile_string(),
        prop::sample::select(vec![
            "{assistant.name}",
            "{assistant.id}",
            "{thread.id}",
            "{thread.metadata.team}",
            "{thread.metadata.team}/{assistant.name}",
            "../{assistant.name}",
            "fixed",
        ]),
        prop::option::of(hostile_string()),
        1usize..300,
        1usize..300,
    )
        .prop_map(|(tenant, template, default_project, task_max, code_max)| MapSettings {
            tenant,
            project_template: ScopeTemplate::parse(template).expect("valid template"),
            default_project,
            eval_score: 5.0,
            incomplete: engram::map::IncompletePolicy::Skip,
            incomplete_score: 2.5,
            task_max_chars: task_max,
            code_max_chars: code_max,
            classification: "internal".into(),
        })
}

// ---------------------------------------------------------------------------------------------
// Invariants.

/// `patterns/` followed by one or more of `[0-9a-z_]`.
fn key_is_well_formed(key: &str) -> bool {
    key.strip_prefix("patterns/")
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'_'))
}

/// The scope's directory is the root or exactly `<root>/<tenant>/<project>`, with two plain
/// segments that hold no separator, no NUL and are not `.` or `..`.
fn assert_below_root(root: &Path, scope: &Scope) {
    let dir = scope_dir(root, scope);
    let rest = dir.strip_prefix(root).unwrap_or_else(|_| panic!("{} escapes {}", dir.display(), root.display()));
    let parts: Vec<Component> = rest.components().collect();
    assert!(parts.is_empty() || parts.len() == 2, "{scope:?} -> {}", dir.display());
    for part in parts {
        let Component::Normal(seg) = part else { panic!("{scope:?} -> {}: {part:?}", dir.display()) };
        let seg = seg.to_str().expect("segments are UTF-8");
        assert!(!seg.is_empty() && seg != "." && seg != "..", "{scope:?} -> {seg:?}");
        assert!(!seg.contains(['/', '\\', '\0']), "{scope:?} -> {seg:?}");
    }
}

fn assert_record_ok(r: &Record, s: &MapSettings) {
    assert!(key_is_well_formed(&r.key), "bad key {:?}", r.key);
    let task = r.pattern["task"].as_str().expect("task is a string");
    assert!(task.chars().count() <= s.task_max_chars.max(1), "task over {}: {}", s.task_max_chars, task.chars().count());
    if let Some(code) = r.pattern["design"]["code"].as_str()
        && r.pattern["design"]["openai"]["kind"] == "message_pair"
    {
        assert!(code.chars().count() <= s.code_max_chars, "code over {}", s.code_max_chars);
    }
    assert_below_root(Path::new("/data/engramia"), &r.scope);
    // The pattern is storable: it serialises, and hashing it (done by every plan) works.
    serde_json::to_vec_pretty(&r.pattern).expect("pattern serialises");
    let _ = r.content_hash();
    for skill in &r.skills {
        assert_eq!(skill, &skill.trim().to_lowercase());
        assert!(!skill.is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mapping_a_hostile_thread_never_panics_and_keeps_its_invariants(
        b in bundle(),
        s in settings(),
        a1 in assistant("asst_1"),
        a2 in assistant("asst_2"),
        names in prop::collection::hash_map(hostile_string(), hostile_string(), 0..4),
    ) {
        let mut file_names: HashMap<String, String> = names;
        for m in &b.messages {
            for p in &m.content {
                for a in p.text.iter().flat_map(|t| t.annotations.iter()) {
                    if let Some(id) = a.file_id() {
                        file_names.entry(id.to_string()).or_insert_with(|| "../../etc/passwd".into());
                    }
                }
            }
        }
        let ctx = MapContext { assistants: [a1, a2].into_iter().map(|a| (a.id.clone(), a)).collect(), file_names };
        let mapped = map_thread(&b, &ctx, &s);
        for r in &mapped.records {
            assert_record_ok(r, &s);
        }
        let again = map_thread(&b, &ctx, &s);
        prop_assert_eq!(&mapped, &again, "mapping is not deterministic");
    }

    #[test]
    fn mapping_hostile_tools_never_panics_and_keeps_its_invariants(a in assistant("asst_1"), s in settings()) {
        let mapped = map_assistant_tools(&a, &s);
        for r in &mapped.records {
            assert_record_ok(r, &s);
        }
    }

    #[test]
    fn scope_directories_never_leave_the_root(tenant in hostile_string(), project in hostile_string()) {
        let scope = Scope::new(tenant, project);
        assert_below_root(Path::new("/srv/engramia_data"), &scope);
        assert_below_root(Path::new("relative/dir"), &scope);
        for seg in [&scope.tenant, &scope.project] {
            let s = sanitize_segment(seg);
            prop_assert!(!s.is_empty() && s != "." && s != "..");
            prop_assert!(s.chars().all(|c| c != '/' && c != '\\' && c != '\0' && c != '.'), "{:?} -> {:?}", seg, s);
        }
    }

    #[test]
    fn truncation_keeps_a_prefix_within_the_limit(s in hostile_string(), max in 0usize..64) {
        let cut = text::truncate_chars(&s, max);
        prop_assert!(s.starts_with(cut), "not a prefix");
        prop_assert!(cut.chars().count() <= max);
        if s.chars().count() <= max {
            prop_assert_eq!(cut, s.trim_end());
        }
        // A plain char cut is the longest possible; modifiers may only make it shorter.
        prop_assert!(cut.len() <= s.char_indices().nth(max).map_or(s.len(), |(i, _)| i));
    }

    #[test]
    fn text_helpers_never_panic(
        value in hostile_string(),
        annotations in prop::collection::vec(annotation(), 0..4),
        names in prop::collection::hash_map(hostile_string(), hostile_string(), 0..3),
    ) {
        let cleaned = text::clean_citations(&value, &annotations, &names);
        let trimmed = text::trim_blank_edges(&cleaned);
        prop_assert!(cleaned.contains(trimmed));
        let _ = text::is_citation_marker(&value);
        // Without annotations every marker OpenAI writes is removed.
        let bare = text::clean_citations(&value, &[], &HashMap::new());
        prop_assert!(!bare.contains("【4:0†source】"), "{:?} -> {:?}", value, bare);
    }

    #[test]
    fn keys_are_well_formed_for_any_input(task in hostile_string(), ms in any::<i64>(), tenant in hostile_string(), project in hostile_string(), ids in prop::collection::vec(hostile_string(), 0..4)) {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let key = engram::map::keys::pattern_key(&task, ms, &Scope::new(tenant, project), &ids);
        prop_assert!(key_is_well_formed(&key), "{}", key);
    }

    #[test]
    fn hostile_thread_lists_and_templates_never_panic(text in hostile_string(), template in hostile_string(), mapping in hostile_string()) {
        let (ids, _warnings) = engram::source::parse_thread_ids(&text, "ids.txt");
        let unique: std::collections::HashSet<&String> = ids.iter().collect();
        prop_assert_eq!(unique.len(), ids.len());
        for id in &ids {
            prop_assert!(id.starts_with("thread_") && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'), "{}", id);
        }
        if let Ok(t) = ScopeTemplate::parse(&template) {
            let thread = Thread { id: "thread_1".into(), ..Thread::default() };
            let _ = t.render(&engram::map::scope::ScopeContext { assistant: None, thread: Some(&thread) });
        }
        // A mapping file of arbitrary text is an error with a position, never a panic.
        let _ = engram::config::parse_mapping(&mapping, Path::new("mapping.toml"));
    }

    #[test]
    fn extraction_of_arbitrary_bytes_never_panics_outside_pdf(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..4096),
            hostile_string().prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..512).prop_map(|b| [b"PK\x03\x04".as_slice(), &b].concat()),
            prop::collection::vec(any::<u8>(), 0..512).prop_map(|b| [b"\xFF\xFE".as_slice(), &b].concat()),
        ],
        name in prop_oneof![
            hostile_string(),
            prop::sample::select(vec!["a.docx", "a.json", "a.jsonl", "a.csv", "a.tsv", "a.html", "a.md", "a.txt", "../../x.pdf"]).prop_map(str::to_string),
        ],
    ) {
        let limits = engram::extract::Limits::default();
        match engram::extract::catch_quietly(|| engram::extract::extract(&bytes, &name, &limits)) {
            Ok(Ok(e)) => {
                prop_assert!(!e.text.is_empty());
                prop_assert_eq!(e.text.trim(), e.text.as_str());
            }
            Ok(Err(_)) => {}
            // PDF parsing may panic; engram runs it isolated (a child process) for that reason.
            Err(panic) => prop_assert_eq!(engram::extract::detect(&bytes, &name), engram::extract::Format::Pdf, "{}", panic),
        }
    }
}

/// The deepest JSON a server can send parses into engram's wire types and maps; deeper JSON is
/// refused by the parser (an error, not a stack overflow).
#[test]
fn deep_json_from_the_wire_is_mapped_or_refused_cleanly() {
    let ok = json!({"id": "asst_1", "created_at": 1, "name": "x", "tools": [{"type": "function", "function": {"name": "f", "parameters": deep_chain(120, json!("leaf"))}}]});
    let a: Assistant = serde_json::from_str(&ok.to_string()).expect("120 levels parse");
    let s = MapSettings {
        tenant: "t".into(),
        project_template: ScopeTemplate::parse("{assistant.name}").unwrap(),
        default_project: None,
        eval_score: 5.0,
        incomplete: engram::map::IncompletePolicy::Skip,
        incomplete_score: 2.5,
        task_max_chars: 100,
        code_max_chars: 100_000,
        classification: "internal".into(),
    };
    assert_eq!(map_assistant_tools(&a, &s).records.len(), 1);
    let too_deep = format!("{{\"id\":\"asst_1\",\"metadata\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(serde_json::from_str::<Assistant>(&too_deep).is_err());
}

// ---------------------------------------------------------------------------------------------
// End to end: a hostile account through the CLI.

/// Assistants named like paths, a function named `../../etc/passwd`, NUL and huge messages,
/// deep metadata: the run succeeds, every file lands below the target, and the counts add up.
#[test]
fn a_hostile_account_is_migrated_inside_the_target() {
    use common::*;
    let huge = "ж".repeat(50_000);
    let account = json!({
        "assistants": [
            {"id": "asst_evil1", "created_at": 1714003200, "name": "../../etc/passwd",
             "tools": [{"type": "function", "function": {"name": "../../etc/passwd", "description": "\u{0}\u{202E}",
                        "parameters": deep_chain(100, json!({"type": "object"}))}}]},
            {"id": "asst_evil2", "created_at": 1714003201, "name": "/abs/\u{0}/..", "tools": []}
        ],
        "threads": [
            {"thread": {"id": "thread_hostile1", "created_at": 1716300000, "metadata": {"team": deep_chain(60, json!("x"))}},
             "messages": [
                {"id": "msg_1", "created_at": 1716300001, "role": "user", "content": "..\\..\\windows \u{0} 【4:0†source】 e\u{301}"},
                {"id": "msg_2", "created_at": 1716300002, "role": "assistant", "assistant_id": "asst_evil1", "content": huge},
                {"id": "msg_3", "created_at": 1716300003, "role": "user", "content": ""},
                {"id": "msg_4", "created_at": 1716300004, "role": "user", "content": "🙂\u{200D}🙂"},
                {"id": "msg_5", "created_at": 1716300005, "role": "assistant", "assistant_id": "asst_evil2", "content": "{assistant.name} %2e%2e%2f"}
             ],
             "runs": []}
        ]
    });
    let server = Server::start(
        engram_standin::Account::from_json(account).expect("the hostile account loads"),
        engram_standin::Options { api_key: Some(TEST_KEY.into()), ..Default::default() },
    );
    let ws = Workspace::new(&server.base_url, "", "[scope]\ntenant = \"../..\"\nproject = \"{assistant.name}\"\n");
    std::fs::write(ws.path("thread_ids.txt"), "thread_hostile1\n../../etc/passwd\n").unwrap();
    let target = ws.path("data");
    let report = migrate_ok(&ws, &target, &[]);
    assert_eq!(report["threads"]["read"], 1, "{report:#}");
    let t = &report["threads"];
    assert_eq!(t["listed"].as_u64(), Some(t["read"].as_u64().unwrap() + t["skipped"].as_u64().unwrap() + t["failed"].as_u64().unwrap()));
    let created: u64 = report["scopes"].as_array().unwrap().iter().map(|s| s["create"].as_u64().unwrap()).sum();
    assert_eq!(created, 3, "two message pairs and one tool: {report:#}");

    // Everything engram wrote is below the target, in two plain levels of scope directories.
    let mut patterns = 0;
    for (path, _) in snapshot(ws.dir.path()) {
        if path.starts_with("data") {
            assert!(path.components().all(|c| matches!(c, Component::Normal(_))), "{}", path.display());
            patterns += usize::from(path.parent().is_some_and(|p| p.ends_with("patterns")));
        } else {
            let name = path.to_string_lossy();
            assert!(name == "mapping.toml" || name == "thread_ids.txt" || name.starts_with("report-"), "unexpected file {name}");
        }
    }
    assert_eq!(patterns, 3);
    assert!(target.join("_____/______etc_passwd/patterns").is_dir(), "{:?}", snapshot(&target).keys().collect::<Vec<_>>());
}
