//! Conversations end to end: one conversation holding every ConversationItem type and message
//! content part of OpenAI's official OpenAPI description (openai/openai-openapi), every fate a
//! question can have, and enough filler turns to page (265 items, pages of 100), served by the
//! stand-in over HTTP and migrated into a JSON directory. Nothing may fail the conversation,
//! and each case names the pattern expected or its absence.

mod common;

use common::*;
use engram_standin::{Account, Options};
use serde_json::{Value, json};
use std::path::Path;

const CONV: &str = "conv_everything0001";
const SCOPE_DIR: &str = "acme/ops";

fn user(id: &str, text: &str) -> Value {
    json!({"type": "message", "id": id, "role": "user", "status": "completed", "content": [{"type": "input_text", "text": text}]})
}

fn answer(id: &str, text: &str) -> Value {
    json!({"type": "message", "id": id, "role": "assistant", "status": "completed",
           "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
}

fn items() -> Vec<Value> {
    let mut v = vec![
        json!({"type": "message", "id": "msg_dev", "role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]}),
        json!({"type": "message", "id": "msg_sys", "role": "system", "content": [{"type": "input_text", "text": "You are helpful."}]}),
        // Refused: no pattern, and not glued to the next question.
        user("msg_lock", "How do I pick a lock?"),
        json!({"type": "message", "id": "msg_lock_a", "role": "assistant", "status": "completed", "content": [{"type": "refusal", "refusal": "I can't help with that."}]}),
        // An interrupted function call: no answer.
        user("msg_eur", "Convert 10 EUR to USD."),
        json!({"type": "function_call", "id": "fc_eur", "call_id": "call_eur", "name": "convert", "arguments": "{\"amount\":10}", "status": "incomplete"}),
        user("msg_capital", "What is the capital of Australia?"),
        answer("msg_capital_a", "Canberra."),
        // An image-only turn between two answers merges nothing.
        user("msg_sum", "What is 2 + 2?"),
        answer("msg_sum_a", "4."),
        json!({"type": "message", "id": "msg_cat", "role": "user", "content": [{"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "auto"}]}),
        answer("msg_cat_a", "A cat on a keyboard."),
        // Unfinished answers follow [patterns] incomplete (skip).
        user("msg_poem", "Write a long poem about the sea."),
        json!({"type": "message", "id": "msg_poem_a", "role": "assistant", "status": "incomplete", "content": [{"type": "output_text", "text": "The sea is", "annotations": []}]}),
        user("msg_wait", "Are you still writing?"),
        json!({"type": "message", "id": "msg_wait_a", "role": "assistant", "status": "in_progress", "content": [{"type": "output_text", "text": "Yes", "annotations": []}]}),
        // Commentary is not the answer; the web search is a skill.
        user("msg_rate", "What is the USD rate today?"),
        json!({"type": "message", "id": "msg_rate_c", "role": "assistant", "phase": "commentary", "status": "completed", "content": [{"type": "output_text", "text": "Let me check the rate.", "annotations": []}]}),
        json!({"type": "web_search_call", "id": "ws_rate", "status": "completed", "action": {"type": "search", "query": "usd eur rate"}}),
        json!({"type": "message", "id": "msg_rate_a", "role": "assistant", "phase": "final_answer", "status": "completed", "content": [{"type": "output_text", "text": "1 EUR is 1.08 USD 【4:0†source】.", "annotations": [
            {"type": "url_citation", "url": "https://rates.example.com", "title": "Rates", "start_index": 0, "end_index": 18}
        ]}]}),
        // Every tool-call type before one answer.
        json!({"type": "message", "id": "msg_all", "role": "user", "content": [
            {"type": "input_text", "text": "Use every tool you have."},
            {"type": "input_file", "file_id": "file-abc", "filename": "brief.pdf"},
            {"type": "input_image", "image_url": "https://example.com/x.png", "detail": "low"}
        ]}),
        json!({"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "plan"}], "content": [{"type": "reasoning_text", "text": "think"}], "encrypted_content": null}),
        json!({"type": "file_search_call", "id": "fs_1", "status": "completed", "queries": ["q"], "results": [{"file_id": "file-1", "filename": "a.pdf", "score": 0.9, "text": "x", "attributes": {}}]}),
        json!({"type": "image_generation_call", "id": "ig_1", "status": "completed", "result": "aGk="}),
        json!({"type": "computer_call", "id": "cc_1", "call_id": "ccall_1", "action": {"type": "screenshot"}, "pending_safety_checks": [], "status": "completed"}),
        json!({"type": "computer_call_output", "id": "cco_1", "call_id": "ccall_1", "output": {"type": "computer_screenshot", "image_url": "data:image/png;base64,AA=="}, "acknowledged_safety_checks": [], "status": "completed"}),
        json!({"type": "code_interpreter_call", "id": "ci_1", "status": "completed", "container_id": "cntr_1", "code": "print(1)", "outputs": [{"type": "logs", "logs": "1"}]}),
        json!({"type": "local_shell_call", "id": "ls_1", "call_id": "lsc_1", "action": {"type": "exec", "command": ["ls"], "env": {}}, "status": "completed"}),
        json!({"type": "local_shell_call_output", "id": "lso_1", "output": "a b", "status": "completed"}),
        json!({"type": "shell_call", "id": "sh_1", "call_id": "shc_1", "action": {"commands": ["ls"], "timeout_ms": 1000, "max_output_length": 100}, "status": "completed", "created_by": "model"}),
        json!({"type": "shell_call_output", "id": "sho_1", "call_id": "shc_1", "output": [{"stdout": "a", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}}], "max_output_length": 100}),
        json!({"type": "apply_patch_call", "id": "ap_1", "call_id": "apc_1", "operation": {"type": "create_file", "path": "a.txt", "diff": "+a"}, "status": "completed"}),
        json!({"type": "apply_patch_call_output", "id": "apo_1", "call_id": "apc_1", "status": "completed", "output": "ok"}),
        json!({"type": "mcp_list_tools", "id": "ml_1", "server_label": "github", "tools": [{"name": "search_issues", "input_schema": {"type": "object"}}]}),
        json!({"type": "mcp_approval_request", "id": "mar_1", "server_label": "github", "name": "search_issues", "arguments": "{}"}),
        json!({"type": "mcp_approval_response", "id": "mas_1", "approval_request_id": "mar_1", "approve": true, "reason": null}),
        json!({"type": "mcp_call", "id": "mc_1", "server_label": "github", "name": "search_issues", "arguments": "{}", "output": "[]", "error": null}),
        json!({"type": "custom_tool_call", "id": "ct_1", "call_id": "ctc_1", "name": "run_sql", "input": "select 1"}),
        json!({"type": "custom_tool_call_output", "id": "cto_1", "call_id": "ctc_1", "output": "1"}),
        json!({"type": "function_call", "id": "fc_1", "call_id": "fcc_1", "name": "lookup_order", "arguments": "{}", "status": "completed"}),
        json!({"type": "function_call_output", "id": "fco_1", "call_id": "fcc_1", "output": "{\"status\":\"shipped\"}", "status": "completed"}),
        // In the spec `tool_search_call.arguments` is an object: it must not fail the conversation.
        json!({"type": "tool_search_call", "id": "ts_1", "arguments": {"query": "tools"}, "status": "completed"}),
        json!({"type": "a_type_from_the_future", "id": "fut_1", "payload": {"x": 1}}),
        answer("msg_all_a", "Done: order shipped."),
    ];
    // Filler questions until the conversation pages three times (limit 100).
    let mut n = 0;
    while v.len() < 265 {
        v.push(user(&format!("msg_fill_q{n}"), &format!("Filler question number {n} about topic {}?", n * 7)));
        v.push(answer(&format!("msg_fill_a{n}"), &format!("Filler answer {n}.")));
        n += 1;
    }
    v.push(user("msg_last", "One more thing?"));
    v
}

fn migrate() -> (Server, Workspace, Value) {
    let account = Account::from_json(json!({
        "assistants": [], "threads": [], "files": [], "vector_stores": [],
        "conversations": [{"conversation": {"id": CONV, "created_at": 1_741_900_000, "metadata": {"team": "ops"}}, "items": items()}]
    }))
    .expect("the conversations account loads");
    let server = Server::start(account, Options { api_key: Some(TEST_KEY.into()), ..Options::default() });
    let dir = tempfile::tempdir().unwrap();
    let mapping = format!(
        "[source]\nkind = \"conversations\"\nbase_url = \"{}\"\nconversations_file = \"ids.txt\"\n[embedding]\nmodel = \"text-embedding-3-small\"\n[scope]\ntenant = \"acme\"\nproject = \"{{thread.metadata.team}}\"\n",
        server.base_url
    );
    std::fs::write(dir.path().join("mapping.toml"), mapping).unwrap();
    std::fs::write(dir.path().join("ids.txt"), format!("{CONV}\n")).unwrap();
    let ws = Workspace { dir };
    let report = migrate_ok(&ws, &ws.path("data"), &[]);
    (server, ws, report)
}

/// Every pattern of the scope with its key.
fn stored(target: &Path) -> Vec<(String, Value)> {
    snapshot(&target.join(SCOPE_DIR))
        .into_iter()
        .filter(|(p, _)| p.starts_with("patterns"))
        .map(|(p, b)| (format!("patterns/{}", p.file_stem().unwrap().to_string_lossy()), serde_json::from_slice(&b).unwrap()))
        .collect()
}

#[test]
fn a_conversation_with_every_item_type_migrates_with_the_pairing_rules() {
    let (server, ws, report) = migrate();
    assert_eq!(report["threads"]["read"], 1, "{report:#}");
    assert_eq!(report["threads"]["failed"], 0, "{report:#}");
    // Read completely: 266 items over three pages.
    assert_eq!(server.stats().by_route.get("GET /conversations/{id}/items"), Some(&3));

    let patterns = stored(&ws.path("data"));
    let key_of = |task: &str| patterns.iter().find(|(_, p)| p["task"] == task).map(|(k, _)| k.clone());
    let code_of = |task: &str| -> Option<String> {
        patterns.iter().find(|(_, p)| p["task"] == task).map(|(_, p)| p["design"]["code"].as_str().unwrap().to_string())
    };
    assert_eq!(code_of("What is the capital of Australia?").as_deref(), Some("Canberra."));
    assert_eq!(code_of("What is 2 + 2?").as_deref(), Some("4."));
    // Kept as written (the literal marker stays); the URL citation is added after its span.
    assert_eq!(code_of("What is the USD rate today?").as_deref(), Some("1 EUR is 1.08 USD (https://rates.example.com) 【4:0†source】."));
    assert_eq!(code_of("Use every tool you have.").as_deref(), Some("Done: order shipped."));
    for absent in ["How do I pick a lock?", "Convert 10 EUR to USD.", "Write a long poem about the sea.", "Are you still writing?", "One more thing?"] {
        assert!(code_of(absent).is_none(), "{absent} has no pattern");
    }
    // No task joins two questions.
    for (_, p) in &patterns {
        assert!(!p["task"].as_str().unwrap().contains("\n\n"), "{p:#}");
    }
    let fillers = items().iter().filter(|i| i["id"].as_str().unwrap().starts_with("msg_fill_q")).count();
    assert_eq!(patterns.len(), 4 + fillers, "four cases and {fillers} filler pairs");

    let scope = report["scopes"].as_array().unwrap().iter().find(|s| s["project"] == "ops").unwrap();
    assert_eq!((scope["unanswered"].clone(), scope["refused"].clone(), scope["incomplete"].clone()), (json!(2), json!(1), json!(2)), "{scope:#}");
    let kinds: Vec<(&str, &str)> =
        report["warnings"].as_array().unwrap().iter().map(|w| (w["kind"].as_str().unwrap(), w["id"].as_str().unwrap())).collect();
    assert!(kinds.contains(&("image_only_question", "msg_cat")), "{kinds:?}");
    assert!(kinds.contains(&("conversation_item_skipped", CONV)), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|(k, _)| *k == "incomplete_answer").count(), 2, "{kinds:?}");

    // Skills: every tool the answer used, functions, custom and MCP tools by name, built-ins by type.
    let registry: Value = serde_json::from_slice(&std::fs::read(ws.path("data").join(SCOPE_DIR).join("skills/_registry.json")).unwrap()).unwrap();
    let skills_of = |task: &str| registry[key_of(task).unwrap().as_str()].clone();
    assert_eq!(
        skills_of("Use every tool you have."),
        json!([
            "apply_patch", "code_interpreter", "computer_use", "file_search", "github.search_issues", "image_generation",
            "local_shell", "lookup_order", "run_sql", "shell", "tool_search"
        ])
    );
    assert_eq!(skills_of("What is the USD rate today?"), json!(["web_search"]));
    assert_eq!(skills_of("What is 2 + 2?"), Value::Null, "no tool, no registry entry");
}
