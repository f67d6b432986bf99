//! One assistant's Python module: its `Agent` (OpenAI Agents SDK) wired to Engramia memory in
//! the scope engram migrated it into, its function tools as typed `@function_tool` stubs, and
//! a note of everything a human must fill in.

use super::python::{self, Namer};
use super::schema::{Class, Converter, Field};
use crate::model::{Assistant, Tool};
use crate::record::Scope;
use serde_json::Value;

/// Names the module defines or imports; generated names never take them.
const MODULE_NAMES: &[&str] = &[
    "Annotated", "Any", "Literal", "Agent", "AgentOutputSchema", "CodeInterpreterTool", "ModelSettings", "Runner",
    "function_tool", "EngramiaRunHooks", "engramia_instructions", "BaseModel", "ConfigDict", "Field", "Reasoning",
    "scoped_memory", "TENANT", "PROJECT", "ASSISTANT_ID", "INSTRUCTIONS", "MIGRATED_FILES", "memory", "agent", "hooks",
    "run", "str", "int", "float", "bool", "list", "dict", "None",
];

/// `reasoning_effort` values the SDK's `Reasoning` accepts.
const REASONING_EFFORTS: &[&str] = &["none", "minimal", "low", "medium", "high", "xhigh", "max"];

/// A file migrated into the agent's scope, which its memory now recalls.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileNote {
    pub scope: Scope,
    pub file_id: String,
    pub filename: String,
}

/// What one module is made from.
pub struct AgentSpec<'a> {
    pub assistant: &'a Assistant,
    /// The module's name (an identifier unique in the package).
    pub module: String,
    /// The scope its memory is bound to.
    pub scope: Scope,
    /// Why the scope needs a human look, if it does (several scopes, or none known).
    pub scope_note: Option<String>,
    pub files: Vec<FileNote>,
}

/// The module's text and what needs a human in it.
pub struct Rendered {
    pub source: String,
    pub tools: Vec<String>,
    pub needs_human: Vec<String>,
}

#[derive(Default)]
struct Parts {
    imports_typing: Vec<&'static str>,
    imports_agents: Vec<&'static str>,
    imports_pydantic: Vec<&'static str>,
    reasoning: bool,
    classes: Vec<Class>,
    functions: Vec<String>,
    tool_exprs: Vec<String>,
    tool_names: Vec<String>,
    comments: Vec<String>,
    settings: Vec<String>,
    output_type: Option<String>,
    needs_human: Vec<String>,
}

impl Parts {
    fn use_agents(&mut self, name: &'static str) {
        if !self.imports_agents.contains(&name) {
            self.imports_agents.push(name);
        }
    }
}

pub fn render(spec: &AgentSpec<'_>) -> Rendered {
    let a = spec.assistant;
    let mut names = Namer::with_reserved(MODULE_NAMES);
    let mut p = Parts::default();
    for name in ["Agent", "Runner"] {
        p.use_agents(name);
    }
    for (i, tool) in a.tools.iter().enumerate() {
        tool_part(tool, i, spec, &mut names, &mut p);
    }
    settings_part(a, &mut p);
    output_part(a, &mut names, &mut p);
    if let Some(note) = &spec.scope_note {
        p.needs_human.push(note.clone());
    }
    let source = assemble(spec, &mut p);
    Rendered { source, tools: p.tool_names, needs_human: p.needs_human }
}

fn tool_part(tool: &Tool, index: usize, spec: &AgentSpec<'_>, names: &mut Namer, p: &mut Parts) {
    match (tool.kind.as_str(), &tool.function) {
        ("function", Some(f)) => function_part(f, names, p),
        ("code_interpreter", _) => {
            p.use_agents("CodeInterpreterTool");
            let files: Vec<String> = spec
                .assistant
                .tool_resources
                .as_ref()
                .and_then(|r| r.code_interpreter.as_ref())
                .map(|c| c.file_ids.clone())
                .unwrap_or_default();
            if !files.is_empty() {
                let list = files.iter().map(|f| python::string(f)).collect::<Vec<_>>().join(", ");
                p.comments.push(format!(
                    "# code_interpreter: the assistant gave it the files {list}; upload them again and name them in\n# the container's \"file_ids\" if the agent still needs them."
                ));
                p.needs_human.push(format!("code_interpreter: re-upload its files ({}) and list them in the container's file_ids", python::comment_text(&files.join(", "))));
            }
            p.tool_exprs.push("CodeInterpreterTool(tool_config={\"type\": \"code_interpreter\", \"container\": {\"type\": \"auto\"}})".into());
            p.tool_names.push("code_interpreter".into());
        }
        ("file_search", _) => {
            let stores: Vec<String> = spec
                .assistant
                .tool_resources
                .as_ref()
                .and_then(|r| r.file_search.as_ref())
                .map(|f| f.vector_store_ids.clone())
                .unwrap_or_default();
            let mut c = String::from(
                "# file_search has no tool here: engram migrated the files this assistant searched into its\n# Engramia scope, and engramia_instructions() recalls their chunks for each question",
            );
            if !stores.is_empty() {
                c.push_str(&format!(" (vector stores: {})", python::comment_text(&stores.join(", "))));
            }
            c.push_str(". See MIGRATED_FILES.");
            if spec.files.is_empty() {
                c.push_str("\n# No file of this assistant was migrated: check the report's file_* warnings.");
                p.needs_human.push("file_search: no file of this assistant was migrated (see the report's file_* warnings)".into());
            }
            p.comments.push(c);
        }
        ("function", None) => {
            p.comments.push(format!("# tools[{index}]: a function tool without a definition: skipped."));
            p.needs_human.push(format!("tools[{index}]: a function tool without a definition"));
        }
        (kind, _) => {
            p.comments.push(format!("# tools[{index}]: tool type {} has no Agents SDK equivalent engram knows: add it by hand.", python::string(kind)));
            p.needs_human.push(format!("tools[{index}]: tool type {} has no equivalent", python::string(kind)));
        }
    }
}

fn function_part(f: &crate::model::FunctionDef, names: &mut Namer, p: &mut Parts) {
    p.use_agents("function_tool");
    let fn_name = names.claim(&python::identifier(&f.name, "tool", true));
    let root = f.parameters.clone().unwrap_or(Value::Null);
    let (params, classes, notes, strict_ok) = {
        let mut c = Converter::new(&root, names);
        let params = c.parameters(Some(&root), &python::comment_text(&f.name));
        (params, std::mem::take(&mut c.classes), std::mem::take(&mut c.notes), c.strict_ok)
    };
    p.classes.extend(classes);
    let wanted_strict = f.strict == Some(true);
    let strict = wanted_strict && strict_ok;
    let mut body = String::new();
    for n in &notes {
        body.push_str(&format!("# schema: {}\n", python::comment_text(n)));
    }
    if wanted_strict && !strict {
        body.push_str("# The original was strict, but its schema has parts the SDK's strict mode refuses (open\n# objects, Any): strict_mode is off. Tighten the types and set strict_mode=True.\n");
        p.needs_human.push(format!("tool {}: was strict; strict_mode is off (its schema has open parts)", python::string(&f.name)));
    }
    for n in &notes {
        p.needs_human.push(format!("tool {}: {}", python::string(&f.name), python::comment_text(n)));
    }
    let mut args = vec![format!("name_override={}", python::string(&f.name))];
    if let Some(d) = &f.description {
        args.push(format!("description_override={}", python::string(d)));
    }
    args.push("use_docstring_info=False".into());
    args.push(format!("strict_mode={}", if strict { "True" } else { "False" }));
    let one_line = format!("@function_tool({})\n", args.join(", "));
    if one_line.len() <= 100 {
        body.push_str(&one_line);
    } else {
        body.push_str("@function_tool(\n");
        for a in &args {
            body.push_str(&format!("    {a},\n"));
        }
        body.push_str(")\n");
    }
    let signature = if params.is_empty() {
        format!("def {fn_name}() -> str:\n")
    } else {
        let mut s = format!("def {fn_name}(\n    *,\n");
        for param in &params {
            s.push_str(&format!("    {},\n", param.render()));
        }
        s.push_str(") -> str:\n");
        s
    };
    body.push_str(&signature);
    if let Some(d) = f.description.as_deref().filter(|d| !d.is_empty()) {
        body.push_str(&format!("    {}\n", python::text_block(d, 4)));
    }
    body.push_str(&format!(
        "    # TODO(engram): port your implementation of the OpenAI function {}: the code that\n    # answered this assistant's runs in requires_action with submit_tool_outputs. Return its\n    # output as a string.\n",
        python::string(&f.name)
    ));
    body.push_str(&format!(
        "    raise NotImplementedError({})\n",
        python::string(&format!("tool {}: port the implementation of the OpenAI function (submit_tool_outputs) here", f.name))
    ));
    note_imports(&params, p);
    p.functions.push(body);
    p.tool_exprs.push(fn_name);
    p.tool_names.push(f.name.clone());
    p.needs_human.push(format!("tool {}: write its body (it raises NotImplementedError)", python::string(&f.name)));
}

fn note_imports(fields: &[Field], p: &mut Parts) {
    for f in fields {
        let rendered = f.render();
        for (needle, name) in [("Annotated[", "Annotated"), ("Any", "Any"), ("Literal[", "Literal")] {
            if rendered.contains(needle) && !p.imports_typing.contains(&name) {
                p.imports_typing.push(name);
            }
        }
        if rendered.contains("Field(") && !p.imports_pydantic.contains(&"Field") {
            p.imports_pydantic.push("Field");
        }
    }
}

fn settings_part(a: &Assistant, p: &mut Parts) {
    for (name, v) in [("temperature", a.temperature), ("top_p", a.top_p)] {
        match v {
            Some(x) if x.is_finite() && x != 1.0 => p.settings.push(format!("{name}={}", python::value(&serde_json::json!(x)))),
            _ => {}
        }
    }
    if let Some(effort) = &a.reasoning_effort {
        if REASONING_EFFORTS.contains(&effort.as_str()) {
            p.reasoning = true;
            p.settings.push(format!("reasoning=Reasoning(effort={})", python::string(effort)));
        } else {
            p.comments.push(format!("# reasoning_effort {} is not one the SDK knows: left out.", python::string(effort)));
            p.needs_human.push(format!("reasoning_effort {}: no equivalent", python::comment_text(effort)));
        }
    }
    if !p.settings.is_empty() {
        p.use_agents("ModelSettings");
    }
}

fn output_part(a: &Assistant, names: &mut Namer, p: &mut Parts) {
    let Some(rf) = &a.response_format else { return };
    let kind = match rf {
        Value::String(s) => s.as_str(),
        Value::Object(o) => o.get("type").and_then(Value::as_str).unwrap_or(""),
        _ => "",
    };
    match kind {
        "auto" | "text" => {}
        "json_schema" => {
            let js = rf.get("json_schema").cloned().unwrap_or(Value::Null);
            let schema = js.get("schema").cloned().unwrap_or(Value::Null);
            let hint = js.get("name").and_then(Value::as_str).unwrap_or("Output").to_string();
            let wanted_strict = js.get("strict").and_then(Value::as_bool) == Some(true);
            let mut c = Converter::new(&schema, names);
            let model = c.model(&schema, &format!("{hint} output"), "response_format");
            let (classes, notes, strict_ok) = (std::mem::take(&mut c.classes), std::mem::take(&mut c.notes), c.strict_ok);
            match model {
                Some(model) => {
                    p.use_agents("AgentOutputSchema");
                    let strict = wanted_strict && strict_ok;
                    for n in &notes {
                        p.comments.push(format!("# response_format schema: {}", python::comment_text(n)));
                        p.needs_human.push(format!("response_format: {}", python::comment_text(n)));
                    }
                    if wanted_strict && !strict {
                        p.needs_human.push("response_format: was strict; strict_json_schema is off (its schema has open parts)".into());
                    }
                    p.classes.extend(classes);
                    p.output_type = Some(format!("AgentOutputSchema({model}, strict_json_schema={})", if strict { "True" } else { "False" }));
                }
                None => {
                    p.comments.push("# response_format json_schema: its schema is not an object with properties, which output_type\n# needs: the agent answers in text. Give it an output_type by hand.".into());
                    p.needs_human.push("response_format json_schema: not an object schema; no output_type".into());
                }
            }
        }
        "json_object" => {
            p.comments.push("# response_format json_object (any JSON) has no Agents SDK equivalent: output_type needs a\n# schema. Write a Pydantic model for the answers and set output_type, or ask for JSON in the\n# instructions.".into());
            p.needs_human.push("response_format json_object: no equivalent (output_type needs a schema)".into());
        }
        other => {
            p.comments.push(format!("# response_format {}: no Agents SDK equivalent engram knows.", python::string(other)));
            p.needs_human.push(format!("response_format {}: no equivalent", python::comment_text(other)));
        }
    }
}

fn assemble(spec: &AgentSpec<'_>, p: &mut Parts) -> String {
    let a = spec.assistant;
    let display = a.name.clone().unwrap_or_else(|| a.id.clone());
    let class_fields: Vec<Field> = p.classes.iter().flat_map(|c| c.fields.iter().cloned()).collect();
    note_imports(&class_fields, p);
    if !p.classes.is_empty() {
        for name in ["BaseModel", "ConfigDict"] {
            let used = name == "BaseModel" || p.classes.iter().any(|c| c.extra.is_some());
            if used && !p.imports_pydantic.contains(&name) {
                p.imports_pydantic.push(name);
            }
        }
    }
    let mut out = String::new();
    let doc = format!(
        "{display}: the OpenAI assistant {} as an OpenAI Agents SDK agent with Engramia memory.\n\nGenerated by engram; see README.md beside the package for what to fill in.",
        a.id
    );
    out.push_str(&python::text_block(&doc, 0));
    out.push_str("\n\n");
    let sorted = |v: &[&'static str]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v.join(", ")
    };
    if !p.imports_typing.is_empty() {
        out.push_str(&format!("from typing import {}\n\n", sorted(&p.imports_typing)));
    }
    out.push_str(&format!("from agents import {}\n", sorted(&p.imports_agents)));
    out.push_str("from engramia.sdk.openai_agents import EngramiaRunHooks, engramia_instructions\n");
    if p.reasoning {
        out.push_str("from openai.types.shared import Reasoning\n");
    }
    if !p.imports_pydantic.is_empty() {
        out.push_str(&format!("from pydantic import {}\n", sorted(&p.imports_pydantic)));
    }
    out.push_str("\nfrom ._engramia import scoped_memory\n\n");
    out.push_str(&format!("ASSISTANT_ID = {}\n", python::string(&a.id)));
    out.push_str(&format!("# The Engramia scope engram migrated this assistant into ({}).\n", python::comment_text(&spec.scope.to_string())));
    if let Some(note) = &spec.scope_note {
        out.push_str(&format!("# NOTE: {}\n", python::comment_text(note)));
    }
    out.push_str(&format!("TENANT = {}\nPROJECT = {}\n", python::string(&spec.scope.tenant), python::string(&spec.scope.project)));
    out.push_str("memory = scoped_memory(TENANT, PROJECT)\n\n");
    out.push_str("# The assistant's instructions, verbatim.\n");
    out.push_str(&format!("INSTRUCTIONS = {}\n", python::text_block(a.instructions.as_deref().unwrap_or(""), 0)));
    if !spec.files.is_empty() {
        out.push_str("\n# The files engram migrated into this agent's scope, which its memory recalls.\nMIGRATED_FILES = [\n");
        for f in &spec.files {
            out.push_str(&format!(
                "    {{\"file_id\": {}, \"filename\": {}, \"scope\": {}}},\n",
                python::string(&f.file_id),
                python::string(&f.filename),
                python::string(&f.scope.to_string())
            ));
        }
        out.push_str("]\n");
    } else {
        out.push_str("\nMIGRATED_FILES: list[dict[str, str]] = []\n");
    }
    for c in &p.classes {
        out.push_str("\n\n");
        out.push_str(&c.render());
    }
    for f in &p.functions {
        out.push_str("\n\n");
        out.push_str(f);
    }
    out.push_str("\n\n");
    for c in &p.comments {
        out.push_str(c);
        out.push('\n');
    }
    out.push_str("agent = Agent(\n");
    out.push_str(&format!("    name={},\n", python::string(&display)));
    match &a.model {
        Some(m) => out.push_str(&format!("    model={},\n", python::string(m))),
        None => {
            out.push_str("    # The assistant named no model: the SDK's default is used.\n");
            p.needs_human.push("model: the assistant named none; the SDK's default is used".into());
        }
    }
    if let Some(d) = a.description.as_deref().filter(|d| !d.is_empty()) {
        out.push_str(&format!("    handoff_description={},\n", python::string(d)));
    }
    out.push_str("    instructions=engramia_instructions(memory, base=INSTRUCTIONS),\n");
    if !p.tool_exprs.is_empty() {
        out.push_str(&format!("    tools=[{}],\n", p.tool_exprs.join(", ")));
    }
    if !p.settings.is_empty() {
        out.push_str(&format!("    model_settings=ModelSettings({}),\n", p.settings.join(", ")));
    }
    if let Some(o) = &p.output_type {
        out.push_str(&format!("    output_type={o},\n"));
    }
    out.push_str(")\n");
    out.push_str("hooks = EngramiaRunHooks(memory)\n\n\n");
    out.push_str("async def run(message: str):\n");
    out.push_str("    \"\"\"One turn: Engramia recalls before the answer and learns from it after.\"\"\"\n");
    out.push_str("    return await Runner.run(agent, message, hooks=hooks)\n");
    out
}
