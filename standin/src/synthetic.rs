//! Synthetic accounts for benchmarks: N threads of M messages (alternating user and assistant),
//! spread over a few assistants with function tools, a run per answer and run steps with
//! function calls on every fifth answer, plus vector-store files with parsed text.
//!
//! Deterministic for a given seed; the texts are varied enough that Engramia's near-duplicate
//! rule does not fold them together.

use serde_json::{Value, json};

const VERBS: &[&str] = &[
    "rotate", "export", "import", "configure", "delete", "restore", "migrate", "audit", "renew", "upgrade", "share",
    "archive", "schedule", "monitor", "debug", "encrypt", "invite", "limit", "tag", "merge",
];
const NOUNS: &[&str] = &[
    "api key", "invoice", "webhook", "dashboard", "backup", "team", "project", "report", "alert", "billing plan",
    "sso login", "audit log", "dataset", "pipeline", "quota", "region", "token", "workspace", "role", "integration",
];
const PLACES: &[&str] = &[
    "staging", "production", "the eu region", "a sandbox", "our mobile app", "the cli", "terraform", "the admin console",
    "a cron job", "the python sdk",
];
const ASSISTANTS: &[(&str, &str, &str)] = &[
    ("asst_bench0000000000000000001", "Support Bot", "lookup_account"),
    ("asst_bench0000000000000000002", "Billing Helper", "create_invoice"),
    ("asst_bench0000000000000000003", "Ops Assistant", "page_oncall"),
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() as usize) % items.len()]
    }
}

/// An account JSON (the stand-in's account format) with `threads` threads of `messages`
/// messages each and `files` vector-store files of about `file_words` words.
pub fn synthetic_account(threads: usize, messages: usize, files: usize, seed: u64) -> Value {
    let mut rng = Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
    let base = 1_714_000_000i64;
    let assistants: Vec<Value> = ASSISTANTS
        .iter()
        .enumerate()
        .map(|(i, (id, name, tool))| {
            let mut a = json!({
                "id": id, "created_at": base + i as i64, "name": name,
                "description": format!("{name} for the benchmark account"), "model": "gpt-4o",
                "instructions": "Answer briefly.",
                "tools": [{"type": "function", "function": {"name": tool, "description": format!("Calls {tool}."),
                    "parameters": {"type": "object", "properties": {"id": {"type": "string"}}}}}],
            });
            if i == 0 && files > 0 {
                a["tools"].as_array_mut().unwrap().push(json!({"type": "file_search"}));
                a["tool_resources"] = json!({"file_search": {"vector_store_ids": ["vs_bench0000000000000000001"]}});
            }
            a
        })
        .collect();

    let mut thread_values = Vec::with_capacity(threads);
    for t in 0..threads {
        let (asst_id, _, tool) = ASSISTANTS[t % ASSISTANTS.len()];
        let thread_id = format!("thread_bench{t:020}");
        let created = base + 1000 + (t as i64) * 600;
        let mut msgs = Vec::with_capacity(messages);
        let mut runs = Vec::new();
        for m in 0..messages {
            let id = format!("msg_bench{t:012}{m:08}");
            let at = created + m as i64;
            if m % 2 == 0 {
                let text = format!(
                    "How do I {} the {} in {} for ticket {t}-{m}? We tried {} first.",
                    rng.pick(VERBS),
                    rng.pick(NOUNS),
                    rng.pick(PLACES),
                    rng.pick(VERBS)
                );
                msgs.push(json!({"id": id, "created_at": at, "role": "user", "content": text}));
            } else {
                let run_id = format!("run_bench{t:012}{m:08}");
                let text = format!(
                    "To {} the {} open Settings, choose {}, and confirm. It applies to {} within a minute; case {t}-{m}.",
                    rng.pick(VERBS),
                    rng.pick(NOUNS),
                    rng.pick(NOUNS),
                    rng.pick(PLACES)
                );
                msgs.push(json!({"id": id, "created_at": at, "role": "assistant", "assistant_id": asst_id,
                    "run_id": run_id, "content": text}));
                let mut steps = vec![json!({"id": format!("step_bench{t:012}{m:08}a"), "created_at": at,
                    "step_details": {"type": "message_creation", "message_creation": {"message_id": id}}})];
                if m % 10 == 1 {
                    steps.push(json!({"id": format!("step_bench{t:012}{m:08}b"), "created_at": at,
                        "step_details": {"type": "tool_calls", "tool_calls": [{"id": format!("call_bench{t}{m}"),
                            "type": "function", "function": {"name": tool, "arguments": "{\"id\":\"x\"}", "output": "{}"}}]}}));
                }
                runs.push(json!({"run": {"id": run_id, "created_at": at, "assistant_id": asst_id, "status": "completed"},
                    "steps": steps}));
            }
        }
        thread_values.push(json!({"thread": {"id": thread_id, "created_at": created}, "messages": msgs, "runs": runs}));
    }

    let mut store_files = Vec::new();
    let mut file_objects = Vec::new();
    for f in 0..files {
        let id = format!("file-bench{f:016}");
        let mut text = String::new();
        for p in 0..12 {
            text.push_str(&format!(
                "Section {p} of guide {f}. To {} the {} in {}, an administrator opens the console and picks {}. ",
                rng.pick(VERBS),
                rng.pick(NOUNS),
                rng.pick(PLACES),
                rng.pick(NOUNS)
            ));
            text.push_str("Changes take effect after the next sync, usually within five minutes.\n\n");
        }
        file_objects.push(json!({"file": {"id": id, "created_at": base + f as i64, "filename": format!("guide-{f}.md"),
            "purpose": "assistants"}}));
        store_files.push(json!({"vector_store_file": {"id": id, "created_at": base + f as i64, "status": "completed"},
            "parsed_text": text}));
    }
    let vector_stores = if files > 0 {
        json!([{"vector_store": {"id": "vs_bench0000000000000000001", "created_at": base, "name": "bench guides"},
            "files": store_files}])
    } else {
        json!([])
    };
    json!({
        "comment": format!("synthetic benchmark account: {threads} threads x {messages} messages, {files} files, seed {seed}"),
        "assistants": assistants,
        "threads": thread_values,
        "files": file_objects,
        "vector_stores": vector_stores,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Account;

    #[test]
    fn loads_and_is_deterministic() {
        let a = synthetic_account(4, 6, 2, 7);
        assert_eq!(a, synthetic_account(4, 6, 2, 7));
        assert_ne!(a, synthetic_account(4, 6, 2, 8));
        let account = Account::from_json(a).unwrap();
        assert_eq!(account.thread_ids().len(), 4);
    }
}
