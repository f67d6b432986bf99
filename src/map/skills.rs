//! Skills: the functions a run called tag the pattern it answered, and every function tool an
//! assistant declares becomes a pattern of its own under its name.
//!
//! Skill names are lower-cased and trimmed (Engramia matches tags exactly), deduplicated and
//! sorted so that a record's content hash does not depend on call order.

use super::keys::pattern_key;
use super::scope::ScopeContext;
use super::text::truncate_chars;
use super::{MapSettings, Mapped, resolve_scope};
use crate::model::{Assistant, FunctionDef, ThreadBundle};
use crate::record::{Record, RecordKind, Warning};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashSet};

/// A skill tag from a function name; `None` for a blank name.
pub fn skill_name(function_name: &str) -> Option<String> {
    let s = function_name.trim().to_lowercase();
    (!s.is_empty()).then_some(s)
}

/// Skill tags for the functions the given runs called: every `function` tool call in their run
/// steps, plus the calls a run asked for in `required_action` (a run stopped at
/// `requires_action`, or one whose steps were not fetched, still names what it called there).
pub fn functions_called(bundle: &ThreadBundle, run_ids: &[&str]) -> Vec<String> {
    let mut out = BTreeSet::new();
    for step in bundle.steps.iter().filter(|s| run_ids.contains(&s.run_id.as_str())) {
        for call in &step.step_details.tool_calls {
            if call.kind != "function" {
                continue;
            }
            if let Some(name) = call.function.as_ref().and_then(|f| skill_name(&f.name)) {
                out.insert(name);
            }
        }
    }
    for run in bundle.runs.iter().filter(|r| run_ids.contains(&r.id.as_str())) {
        if let Some(action) = &run.required_action {
            out.extend(required_action_functions(action));
        }
    }
    out.into_iter().collect()
}

/// Function names in `required_action.submit_tool_outputs.tool_calls[]` (kept as raw JSON on
/// `Run` because its shape is the API's to change).
fn required_action_functions(action: &Value) -> Vec<String> {
    let calls = action
        .pointer("/submit_tool_outputs/tool_calls")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    calls
        .iter()
        // A missing `type` is read as a function call: no other kind carries `function.name`.
        .filter(|c| c.get("type").and_then(Value::as_str).is_none_or(|t| t == "function"))
        .filter_map(|c| c.pointer("/function/name").and_then(Value::as_str))
        .filter_map(skill_name)
        .collect()
}

/// One tool pattern per distinct function name the assistant declares (see `map_assistant_tools`).
pub fn tool_records(assistant: &Assistant, settings: &MapSettings) -> Mapped {
    let mut seen = HashSet::new();
    let functions: Vec<&FunctionDef> = assistant
        .tools
        .iter()
        .filter(|t| t.kind == "function")
        .filter_map(|t| t.function.as_ref())
        .filter(|f| !f.name.trim().is_empty() && seen.insert(f.name.as_str()))
        .collect();
    if functions.is_empty() {
        return Mapped::default();
    }
    // Tools belong to the assistant, not to a thread: a template naming the thread falls back
    // to default_project inside resolve_scope, and only then is it unresolved.
    let ctx = ScopeContext { assistant: Some(assistant), thread: None };
    let scope = match resolve_scope(settings, &ctx) {
        Ok(scope) => scope,
        Err(e) => {
            let message = format!(
                "{} function tool(s) of assistant {} not imported: [scope] project {:?} needs {} ({}); \
                 set [scope] default_project, give the assistant a name, or use a template that \
                 only names the assistant",
                functions.len(),
                assistant.id,
                settings.project_template.as_str(),
                e.placeholder,
                e.reason
            );
            return Mapped {
                warnings: vec![Warning::new("scope_unresolved", assistant.id.clone(), message)],
                ..Mapped::default()
            };
        }
    };
    let records = functions
        .into_iter()
        .map(|f| {
            let task = tool_task(f, settings.task_max_chars);
            let schema = f.parameters.clone().filter(|p| !p.is_null()).unwrap_or_else(|| json!({}));
            // Pretty-printing a Value cannot fail (its keys are strings); the fallback is for form.
            let code = serde_json::to_string_pretty(&schema).unwrap_or_else(|_| schema.to_string());
            let key = pattern_key(
                &task,
                assistant.created_at.saturating_mul(1000),
                &scope,
                &[assistant.id.as_str(), f.name.as_str()],
            );
            let pattern = json!({
                "task": task,
                "design": {
                    "code": code,
                    "classification": settings.classification,
                    "source": "import",
                    "openai": {"kind": "tool", "assistant_id": assistant.id, "tool_name": f.name},
                },
                "success_score": settings.eval_score,
                "reuse_count": 0,
                "timestamp": assistant.created_at as f64,
            });
            Record {
                scope: scope.clone(),
                key,
                kind: RecordKind::Tool,
                pattern,
                skills: skill_name(&f.name).into_iter().collect(),
                classification: settings.classification.clone(),
                origin: format!("openai-assistant:{}", assistant.id),
            }
        })
        .collect();
    Mapped { records, ..Mapped::default() }
}

/// `"<name>: <description>"`, or just the name when there is no description.
fn tool_task(f: &FunctionDef, max_chars: usize) -> String {
    let task = match f.description.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        Some(d) => format!("{}: {d}", f.name),
        None => f.name.clone(),
    };
    truncate_chars(&task, max_chars).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FunctionCall, Run, RunStep, StepDetails, Tool, ToolCall};

    fn settings(template: &str, default_project: Option<&str>) -> MapSettings {
        MapSettings {
            default_project: default_project.map(str::to_string),
            task_max_chars: 30,
            code_max_chars: 100,
            ..MapSettings::for_tests(template)
        }
    }

    fn step(run: &str, kind: &str, name: &str) -> RunStep {
        RunStep {
            id: format!("step_{name}"),
            run_id: run.into(),
            kind: "tool_calls".into(),
            step_details: StepDetails {
                kind: "tool_calls".into(),
                tool_calls: vec![ToolCall {
                    id: "call_1".into(),
                    kind: kind.into(),
                    function: Some(FunctionCall { name: name.into(), ..Default::default() }),
                }],
                message_creation: None,
            },
            ..Default::default()
        }
    }

    #[test]
    fn skills_from_run_steps_are_normalised() {
        let bundle = ThreadBundle {
            steps: vec![
                step("run_1", "function", " Get_Weather "),
                step("run_1", "function", "get_weather"),
                step("run_1", "function", "book_flight"),
                step("run_1", "function", "  "),
                step("run_1", "code_interpreter", "not_a_function"),
                step("run_2", "function", "other_run"),
            ],
            ..Default::default()
        };
        assert_eq!(functions_called(&bundle, &["run_1"]), ["book_flight", "get_weather"]);
        assert!(functions_called(&bundle, &[]).is_empty());
    }

    #[test]
    fn skills_from_required_action() {
        let run = Run {
            id: "run_9".into(),
            status: "requires_action".into(),
            required_action: Some(
                json!({"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "Lookup_Order", "arguments": "{}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "", "arguments": "{}"}}
                ]}}),
            ),
            ..Default::default()
        };
        let bundle = ThreadBundle { runs: vec![run], ..Default::default() };
        assert_eq!(functions_called(&bundle, &["run_9"]), ["lookup_order"]);
        assert!(functions_called(&bundle, &["run_other"]).is_empty());
    }

    fn function_tool(name: &str, description: Option<&str>, parameters: Option<Value>) -> Tool {
        Tool {
            kind: "function".into(),
            function: Some(FunctionDef {
                name: name.into(),
                description: description.map(str::to_string),
                parameters,
                strict: None,
            }),
        }
    }

    fn assistant(name: Option<&str>) -> Assistant {
        Assistant {
            id: "asst_1".into(),
            created_at: 1_700_000_000,
            name: name.map(str::to_string),
            tools: vec![
                Tool { kind: "file_search".into(), function: None },
                function_tool(
                    "Get_Weather",
                    Some("Current weather for a city, in degrees Celsius"),
                    Some(json!({"type": "object", "properties": {"city": {"type": "string"}}})),
                ),
                function_tool("ping", None, None),
                function_tool("ping", Some("duplicate"), None),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn function_tools_become_tool_patterns() {
        let m = tool_records(&assistant(Some("Support")), &settings("{assistant.name}", None));
        assert!(m.warnings.is_empty());
        assert_eq!(m.records.len(), 2, "file_search skipped, duplicate ping merged");
        let w = &m.records[0];
        assert_eq!(w.kind, RecordKind::Tool);
        assert_eq!(w.scope.to_string(), "acme/Support");
        assert_eq!(w.skills, ["get_weather"]);
        assert_eq!(w.origin, "openai-assistant:asst_1");
        // "Get_Weather: Current weather..." cut to 30 chars.
        assert_eq!(w.task(), "Get_Weather: Current weather f");
        assert_eq!(
            w.pattern["design"]["openai"],
            json!({"kind": "tool", "assistant_id": "asst_1", "tool_name": "Get_Weather"})
        );
        assert!(w.pattern["design"]["code"].as_str().unwrap().contains("\n  \"properties\""));
        assert_eq!(w.pattern["timestamp"], json!(1_700_000_000.0));
        assert_eq!(w.pattern["reuse_count"], json!(0));
        assert!(w.key.contains("_1700000000000_"), "{}", w.key);
        let p = &m.records[1];
        assert_eq!(p.task(), "ping");
        assert_eq!(p.pattern["design"]["code"], json!("{}"));
        assert_ne!(w.key, p.key);
        let keys: Vec<&str> = ["design", "openai"]
            .iter()
            .fold(&p.pattern, |v, k| &v[k])
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["kind", "assistant_id", "tool_name"]);
    }

    #[test]
    fn tool_scope_falls_back_and_else_warns() {
        // A template that needs a thread falls back to default_project for tools.
        let m = tool_records(&assistant(Some("Support")), &settings("{thread.id}", Some("shared")));
        assert_eq!(m.records[0].scope.project, "shared");
        // No default and no name: nothing imported, one warning naming assistant and placeholder.
        let m = tool_records(&assistant(None), &settings("{assistant.name}", None));
        assert!(m.records.is_empty());
        assert_eq!(m.warnings.len(), 1);
        let w = &m.warnings[0];
        assert_eq!((w.kind.as_str(), w.id.as_str()), ("scope_unresolved", "asst_1"));
        assert!(
            w.message.contains("{assistant.name}") && w.message.contains("default_project"),
            "{}",
            w.message
        );
        // No function tools: no warning either.
        let bare = Assistant { id: "asst_2".into(), ..Default::default() };
        assert_eq!(tool_records(&bare, &settings("{assistant.name}", None)), Mapped::default());
    }
}
