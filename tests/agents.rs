//! The cutover code (`[agents] out_dir`, `engram migrate --agents DIR`): the demo migration and
//! a hostile account generate modules that import with the OpenAI Agents SDK and Engramia 0.7
//! (the venv of scripts/requirements-agents.txt), whose agents carry the assistants'
//! instructions, tools and settings, and whose tool schemas, as the SDK derives them from the
//! generated signatures, match the originals (tests/support/agents_check.py).

mod common;

use common::*;
use engram::agents::{Inputs, Seen, Storage};
use engram::model::{Assistant, FunctionDef, Tool};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

fn python_agents() -> PathBuf {
    match std::env::var_os("ENGRAM_TEST_PYTHON_AGENTS") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "ENGRAM_TEST_PYTHON_AGENTS is not set: run the tests with scripts/test, which installs the OpenAI Agents SDK and Engramia 0.7.0.dev0 into .cache/venv-agents (scripts/requirements-agents.txt)"
        ),
    }
}

/// Runs tests/support/agents_check.py over `out_dir` against `expected`; returns its verdict.
fn check(out_dir: &Path, expected: &Value, env: &[(&str, &str)]) -> Value {
    let file = out_dir.with_extension("expected.json");
    std::fs::write(&file, serde_json::to_vec(expected).unwrap()).unwrap();
    let out = Command::new(python_agents())
        .arg(repo_root().join("tests/support/agents_check.py"))
        .arg(out_dir)
        .arg(&file)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "agents_check.py failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let verdict: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(verdict["errors"], json!([]), "{verdict:#}");
    eprintln!("agents_check: {verdict}");
    verdict
}

fn migrate(ws: &Workspace, mapping: &Path, target: &Path, extra: &[&str]) -> (Value, String) {
    let report = ws.path(&format!("report-{}.json", extra.len()));
    let out = run(engram().arg("migrate").arg("--config").arg(mapping).arg("--target").arg(target).arg("--report").arg(&report).args(extra));
    assert!(out.status.success(), "{}", text(&out));
    (serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn the_demo_migration_writes_agents_that_import_and_keep_every_tool_schema() {
    let server = Server::demo();
    let ws = Workspace::demo(&server.base_url);
    let (target, agents) = (ws.path("data"), ws.path("agents"));
    let demo = repo_root().join("fixtures/demo");
    let replay = demo.join("recording");
    let agents_arg = agents.to_str().unwrap();
    let common_args = ["--replay", replay.to_str().unwrap(), "--agents", agents_arg];

    // The dry run says what it would write, and writes nothing.
    let (report, stdout) = migrate(&ws, &demo.join("mapping.toml"), &target, &[&common_args[..], &["--dry-run"]].concat());
    assert!(!agents.exists(), "a dry run wrote the agents");
    assert!(stdout.contains("agents   would write 3 agent modules to"), "{stdout}");
    assert_eq!(report["agents"]["written"].as_array().unwrap().len(), 6, "{:#}", report["agents"]);

    let (report, stdout) = migrate(&ws, &demo.join("mapping.toml"), &target, &common_args);
    assert!(stdout.contains("agents   wrote 3 agent modules to"), "{stdout}");
    let modules = report["agents"]["modules"].as_array().unwrap();
    let by_name = |n: &str| modules.iter().find(|m| m["name"] == n).unwrap_or_else(|| panic!("no module for {n}"));
    assert_eq!(by_name("Support Bot")["module"], "support_bot");
    assert_eq!(by_name("Support Bot")["tools"], json!(["get_order_status", "issue_refund"]));
    assert_eq!(by_name("Docs Assistant")["tools"], json!(["code_interpreter"]));
    assert_eq!(by_name("Weather Helper")["needs_human"], json!(["tool \"get_weather\": write its body (it raises NotImplementedError)"]));
    let readme = std::fs::read_to_string(agents.join("README.md")).unwrap();
    assert!(readme.contains("get\\_order\\_status") && readme.contains("NotImplementedError"), "{readme}");
    let docs = std::fs::read_to_string(agents.join("migrated_agents/docs_assistant.py")).unwrap();
    for file in ["manual.md", "api-keys-guide.pdf", "usage_2024-06.csv"] {
        assert!(docs.contains(&format!("\"filename\": \"{file}\", \"scope\": \"acme/Docs Assistant\"")), "{file} not noted:\n{docs}");
    }

    let account = demo_account_json();
    let assistants = account["assistants"].as_array().unwrap();
    let scopes: serde_json::Map<String, Value> =
        assistants.iter().map(|a| (a["id"].as_str().unwrap().to_string(), json!(format!("acme/{}", a["name"].as_str().unwrap())))).collect();
    let id_of = |name: &str| assistants.iter().find(|a| a["name"] == name).unwrap()["id"].clone();
    let expected = json!({
        "assistants": assistants,
        "scopes": scopes,
        // Each agent's memory recalls its own migrated answers, and only those of its scope.
        "recall": [
            {"assistant_id": id_of("Weather Helper"), "task": "what will the weather be in Oslo tomorrow", "expect": "Oslo", "not": ["blender"]},
            {"assistant_id": id_of("Support Bot"), "task": "my blender arrived with a cracked jug", "expect": "blender", "not": ["Oslo"]},
            {"assistant_id": id_of("Docs Assistant"), "task": "which TLS versions do you support", "expect": "TLS", "not": ["Oslo", "blender"]}
        ]
    });
    let base = server.base_url.clone();
    // No ENGRAMIA_* variable: the generated _engramia.py points Engramia at the target itself.
    let verdict = check(&agents, &expected, &[("OPENAI_BASE_URL", &base), ("OPENAI_API_KEY", TEST_KEY)]);
    assert_eq!((verdict["modules"].as_u64(), verdict["tools"].as_u64(), verdict["schemas"].as_u64()), (Some(3), Some(4), Some(3)), "{verdict:#}");

    // A rerun writes the same bytes (nothing to write); an edited module is left alone and the
    // new version goes beside it.
    let before = snapshot(&agents);
    let (report, _) = migrate(&ws, &demo.join("mapping.toml"), &target, &common_args);
    assert_eq!(report["agents"]["written"], json!([]), "{:#}", report["agents"]);
    assert_eq!(snapshot(&agents), before);
    let edited = agents.join("migrated_agents/weather_helper.py");
    let mine = std::fs::read_to_string(&edited).unwrap().replace("raise NotImplementedError(", "return 'sunny'  # (");
    std::fs::write(&edited, &mine).unwrap();
    let (report, stdout) = migrate(&ws, &demo.join("mapping.toml"), &target, &common_args);
    assert_eq!(report["agents"]["kept_edited"], json!(["migrated_agents/weather_helper.py"]), "{stdout}");
    assert_eq!(std::fs::read_to_string(&edited).unwrap(), mine);
    assert_eq!(std::fs::read(agents.join("migrated_agents/weather_helper.py.new")).unwrap(), before[Path::new("migrated_agents/weather_helper.py")]);
}

/// Names, instructions and schemas that break naive code generation.
fn hostile_account() -> Value {
    let evil = "\"\"\" ''' \\ \\n {name} {{x}} f\"{x}\" \r\n\t\u{0} \u{202e}rtl # not a comment\nimport os; os.system(\"echo pwned\")\n\"\"\"";
    let wild = json!({
        "type": "object",
        "properties": {
            "from": {"type": "string", "description": evil},
            "first-name": {"type": "integer", "minimum": 0, "x-unit": "years"},
            "_private": {"type": "boolean", "default": false},
            "json": {"type": "string", "enum": ["a\"b", "c\\d", "{x}", "line\nbreak", "'''", "\"\"\""]},
            "model_config": {"type": "number", "default": 1.5},
            "ünï": {"type": ["integer", "null"]},
            "str": {"type": "string", "default": "x\"y"},
            "nested": {"type": "object", "description": evil, "properties": {
                "class": {"type": "string", "enum": ["A", "B"]},
                "deeper": {"type": "object", "properties": {"n": {"type": "array", "items": {"type": "integer"}}}, "required": ["n"]}
            }, "required": ["class"]},
            "rows": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}, "v": {"anyOf": [{"type": "string"}, {"type": "number"}]}}}},
            "point": {"$ref": "#/$defs/Point"},
            "points": {"type": "array", "items": {"$ref": "#/$defs/Point"}},
            "tree": {"$ref": "#/$defs/Node"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "blob": {"type": "object"},
            "both": {"allOf": [{"type": "string"}, {"minLength": 2}]},
            "odd": {"type": "widget"},
            "when": {"type": "string", "format": "date-time"}
        },
        "required": ["from", "json", "nested"],
        "$defs": {
            "Point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}, "required": ["x", "y"], "additionalProperties": false},
            "Node": {"type": "object", "properties": {"label": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}
        }
    });
    let strict = json!({
        "type": "object",
        "properties": {
            "mode": {"type": "integer", "enum": [1, 2, 3]},
            "note": {"type": ["string", "null"], "description": "may be null"},
            "filter": {"type": "object", "properties": {"field": {"type": "string"}, "op": {"type": "string", "enum": ["eq", "ne"]}}, "required": ["field", "op"], "additionalProperties": false}
        },
        "required": ["mode", "note", "filter"],
        "additionalProperties": false
    });
    let function = |name: &str, description: Value, parameters: Value, strict: bool| {
        json!({"type": "function", "function": {"name": name, "description": description, "parameters": parameters, "strict": strict}})
    };
    json!({
        "assistants": [
            {"id": "asst_h1", "created_at": 1714003200, "name": "class", "model": "gpt-4.1", "instructions": evil,
             "description": evil, "temperature": 0.0, "top_p": 0.5,
             "tools": [
                function("def", json!(evil), wild, false),
                function("DEF", json!("Args:\n  x: not a parameter\nReturns:\n  nothing"), strict, true),
                function("agent", Value::Null, json!({"type": "object", "properties": {}}), false),
                function("no-params", json!(""), Value::Null, false),
                {"type": "code_interpreter"},
                {"type": "file_search"},
                {"type": "browser"}
             ],
             "response_format": {"type": "json_schema", "json_schema": {"name": "Reply", "strict": true, "schema": {
                "type": "object", "properties": {"answer": {"type": "string"}, "confidence": {"type": "number"},
                "sources": {"type": "array", "items": {"type": "string"}}}, "required": ["answer", "confidence", "sources"], "additionalProperties": false}}}},
            {"id": "asst_h2", "created_at": 1714003201, "name": "Support Bot", "instructions": "", "response_format": {"type": "json_object"},
             "tools": [function("get", json!("x"), json!("not a schema"), false), function("list", json!("y"), json!({"anyOf": [{"type": "object"}]}), false)]},
            {"id": "asst_h3", "created_at": 1714003202, "name": "support-bot", "instructions": "line one\nline two\n\n", "reasoning_effort": "high",
             "tools": [function("__init__", json!("z"), json!({"type": "object", "properties": {"a": {"type": "string"}}}), false)]},
            {"id": "asst_h4", "created_at": 1714003203, "name": "天気ボット", "instructions": "日本語の指示 🙂", "reasoning_effort": "turbo", "tools": []},
            {"id": "asst_h5", "created_at": 1714003204, "instructions": null, "tools": []}
        ],
        "threads": [
            {"thread": {"id": "thread_h1", "created_at": 1716300000},
             "messages": [
                {"id": "msg_1", "created_at": 1716300001, "role": "user", "content": "hello \"\"\" there"},
                {"id": "msg_2", "created_at": 1716300002, "role": "assistant", "assistant_id": "asst_h1", "content": "hi {x}"}
             ],
             "runs": []}
        ]
    })
}

#[test]
fn a_hostile_account_generates_modules_that_compile_import_and_keep_their_schemas() {
    let account = hostile_account();
    let server = Server::start(
        engram_standin::Account::from_json(account.clone()).expect("the hostile account loads"),
        engram_standin::Options { api_key: Some(TEST_KEY.into()), ..Default::default() },
    );
    let ws = Workspace::new(
        &server.base_url,
        "",
        "[scope]\ntenant = \"t'\\\"x\"\nproject = \"{assistant.name}\"\ndefault_project = \"unnamed\"\n[agents]\nout_dir = \"generated\"\n",
    );
    std::fs::write(ws.path("thread_ids.txt"), "thread_h1\n").unwrap();
    let (report, _) = migrate(&ws, &ws.mapping(), &ws.path("data"), &[]);
    let agents = ws.path("generated");
    let modules = report["agents"]["modules"].as_array().unwrap();
    let names: Vec<&str> = modules.iter().map(|m| m["module"].as_str().unwrap()).collect();
    assert_eq!(names, ["class_", "support_bot", "support_bot_2", "assistant", "asst_h5"], "{:#}", report["agents"]);

    // Every file compiles.
    let out = Command::new(python_agents()).args(["-m", "compileall", "-q", "-f"]).arg(&agents).env("PYTHONDONTWRITEBYTECODE", "1").output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    // What could not be mapped exactly is named, for a human.
    let needs = |module: &str| -> String {
        modules.iter().find(|m| m["module"] == module).unwrap()["needs_human"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect::<Vec<_>>().join("\n")
    };
    let h1 = needs("class_");
    for needle in ["recursive $ref", "allOf", "unknown type \"widget\"", "tool type \"browser\"", "tool \"DEF\": write its body", "file_search: no file"] {
        assert!(h1.contains(needle), "{needle} not in:\n{h1}");
    }
    assert!(!h1.contains("\"DEF\": was strict"), "the strict tool maps exactly and stays strict:\n{h1}");
    assert!(needs("support_bot").contains("json_object") && needs("support_bot").contains("not a JSON schema object"), "{}", needs("support_bot"));
    assert!(needs("assistant").contains("reasoning_effort"), "{}", needs("assistant"));

    let scopes: serde_json::Map<String, Value> = [("asst_h1", "class"), ("asst_h2", "Support Bot"), ("asst_h3", "support-bot"), ("asst_h4", "天気ボット"), ("asst_h5", "unnamed")]
        .iter()
        .map(|(id, p)| (id.to_string(), json!(format!("t'\"x/{p}"))))
        .collect();
    let verdict = check(&agents, &json!({"assistants": account["assistants"], "scopes": scopes}), &[]);
    assert_eq!(verdict["modules"], 5, "{verdict:#}");
    assert!(verdict["schemas"].as_u64().unwrap() >= 4, "{verdict:#}");

    // The source is what it should be where it matters: the instructions are data, not code.
    let source = std::fs::read_to_string(agents.join("migrated_agents/class_.py")).unwrap();
    assert!(!source.lines().any(|l| l.starts_with("import os")), "{source}");
    assert!(source.contains("model_settings=ModelSettings(temperature=0.0, top_p=0.5)"), "{source}");
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("class".to_string()),
        Just("__init__".to_string()),
        Just("model_dump".to_string()),
        Just("a-b".to_string()),
        Just("a_b".to_string()),
        Just("9".to_string()),
        Just("".to_string()),
        "[a-z_]{1,6}",
        "\\PC{0,8}",
    ]
}

fn text_value() -> impl Strategy<Value = String> {
    prop_oneof!["\\PC{0,20}", Just("\"\"\"'''\\{}\n\r\0".to_string()), ".{0,12}"]
}

fn schema() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(json!({"type": "string"})),
        Just(json!({"type": "integer"})),
        Just(json!({"type": "number", "minimum": 0})),
        Just(json!({"type": "boolean"})),
        Just(json!({"type": ["string", "null"]})),
        Just(json!({})),
        Just(json!({"type": "nonsense"})),
        Just(json!({"$ref": "#/nowhere"})),
        Just(json!(42)),
        prop::collection::vec(text_value(), 1..4).prop_map(|v| json!({"type": "string", "enum": v})),
        (text_value(), text_value()).prop_map(|(d, x)| json!({"type": "string", "description": d, "default": x})),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|i| json!({"type": "array", "items": i})),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({"anyOf": v})),
            inner.clone().prop_map(|i| json!({"type": "object", "additionalProperties": i})),
            (prop::collection::vec((name(), inner), 0..4), any::<bool>(), any::<bool>()).prop_map(|(props, closed, all)| {
                let names: Vec<String> = props.iter().map(|(n, _)| n.clone()).collect();
                let mut o = json!({"type": "object", "properties": props.into_iter().collect::<serde_json::Map<String, Value>>()});
                if closed {
                    o["additionalProperties"] = json!(false);
                }
                if all {
                    o["required"] = json!(names);
                }
                o
            }),
        ]
    })
}

fn assistant() -> impl Strategy<Value = Assistant> {
    let tool = (name(), prop::option::of(text_value()), schema(), prop::option::of(any::<bool>())).prop_map(|(name, description, parameters, strict)| Tool {
        kind: "function".into(),
        function: Some(FunctionDef { name, description, parameters: Some(json!({"type": "object", "properties": {"p": parameters, "q": {"type": "string"}}, "required": ["q"]})), strict }),
    });
    (prop::option::of(name()), prop::option::of(text_value()), prop::collection::vec(tool, 0..4), schema()).prop_map(|(name, instructions, tools, output)| Assistant {
        id: "asst_p".into(),
        name,
        instructions,
        tools,
        response_format: Some(json!({"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object", "properties": {"o": output}}}})),
        ..Assistant::default()
    })
}

/// Arbitrary names, texts and schemas: every generated package compiles and imports with the
/// SDK (the schemas are mapped or typed loosely, never broken). One Python process checks all.
#[test]
fn arbitrary_assistants_generate_packages_that_import() {
    let dir = tempfile::tempdir().unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config { cases: 48, ..Default::default() });
    let strategy = prop::collection::vec(assistant(), 1..4);
    let settings = engram::map::MapSettings {
        tenant: "t".into(),
        project_template: engram::map::scope::ScopeTemplate::parse("{assistant.id}").unwrap(),
        default_project: None,
        eval_score: 5.0,
        incomplete: Default::default(),
        incomplete_score: 2.5,
        task_max_chars: 100,
        code_max_chars: 100,
        classification: "internal".into(),
    };
    let mut cases = Vec::new();
    for case in 0..48 {
        let mut assistants = strategy.new_tree(&mut runner).unwrap().current();
        for (i, a) in assistants.iter_mut().enumerate() {
            a.id = format!("asst_{case}_{i}");
        }
        let inputs = Inputs { assistants: &assistants, settings: &settings, seen: &Seen::default(), storage: Storage::JsonDir("/nonexistent".into()), embedding_model: "m" };
        let (files, _) = engram::agents::render(&inputs);
        assert_eq!(engram::agents::render(&inputs).0, files, "deterministic");
        let root = dir.path().join(format!("case{case}"));
        for (rel, body) in &files {
            std::fs::create_dir_all(root.join(rel).parent().unwrap()).unwrap();
            std::fs::write(root.join(rel), body).unwrap();
        }
        cases.push((root, serde_json::to_string_pretty(&assistants).unwrap()));
    }
    let script = r#"
import importlib, json, sys
failures, imported, tools = [], 0, 0
for root in sys.argv[1:]:
    sys.path.insert(0, root)
    try:
        pkg = importlib.import_module("migrated_agents")
        assert len(pkg.AGENTS) == len(pkg.BY_ASSISTANT_ID) > 0
        for agent in pkg.AGENTS.values():
            for tool in agent.tools:
                json.dumps(tool.params_json_schema)
                tools += 1
        imported += 1
    except Exception as e:
        failures.append(f"{root}: {type(e).__name__}: {e}")
    finally:
        sys.path.remove(root)
        for name in [m for m in sys.modules if m == "migrated_agents" or m.startswith("migrated_agents.")]:
            del sys.modules[name]
print(json.dumps({"imported": imported, "tools": tools, "failures": failures}))
"#;
    let out = Command::new(python_agents()).arg("-c").arg(script).args(cases.iter().map(|(r, _)| r)).env("PYTHONDONTWRITEBYTECODE", "1").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let verdict: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let failures: Vec<String> = serde_json::from_value(verdict["failures"].clone()).unwrap();
    if let Some(first) = failures.first() {
        let case = cases.iter().find(|(r, _)| first.starts_with(&r.display().to_string())).unwrap();
        panic!("{} of {} packages failed; first: {first}\nits assistants: {}", failures.len(), cases.len(), case.1);
    }
    assert_eq!(verdict["imported"], cases.len(), "{verdict}");
    assert!(verdict["tools"].as_u64().unwrap() > 20, "too few tools were generated to mean much: {verdict}");
}
