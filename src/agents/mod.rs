//! Cutover code: for every migrated assistant, one Python module defining its OpenAI Agents
//! SDK `Agent` with Engramia memory bound to the scope engram migrated it into (`[agents]
//! out_dir`, or `engram migrate --agents DIR`).
//!
//! The run observes its records (which scopes each assistant's answers went to, which files
//! went to each scope); at the end `generate` renders a package from the assistants'
//! definitions and those observations. Output is a pure function of them: the same account
//! gives the same bytes. A file a human edited since engram wrote it is never overwritten:
//! the new version goes beside it as `<file>.new`.

pub mod module;
pub mod python;
pub mod schema;

use crate::map::MapSettings;
use crate::map::scope::ScopeContext;
use crate::model::Assistant;
use crate::record::{Record, RecordKind, Scope};
use module::{AgentSpec, FileNote};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The Python package inside `out_dir`. Not `agents`: that is the Agents SDK's own package,
/// which a local `agents/__init__.py` would shadow.
pub const PACKAGE: &str = "migrated_agents";

/// What the run's records say about where each assistant's data went.
#[derive(Debug, Default)]
pub struct Seen {
    scopes_by_assistant: BTreeMap<String, BTreeSet<Scope>>,
    files_by_scope: BTreeMap<Scope, BTreeMap<String, String>>,
}

impl Seen {
    pub fn observe(&mut self, records: &[Record]) {
        for r in records {
            let openai = &r.pattern["design"]["openai"];
            match r.kind {
                RecordKind::MessagePair | RecordKind::Tool => {
                    if let Some(id) = openai["assistant_id"].as_str() {
                        self.scopes_by_assistant.entry(id.to_string()).or_default().insert(r.scope.clone());
                    }
                }
                RecordKind::FileChunk => {
                    if let Some(id) = openai["file_id"].as_str() {
                        let name = openai["filename"].as_str().unwrap_or_default().to_string();
                        self.files_by_scope.entry(r.scope.clone()).or_default().insert(id.to_string(), name);
                    }
                }
            }
        }
    }
}

/// Where the migration wrote: what the generated `_engramia.py` points Engramia at.
pub enum Storage {
    JsonDir(PathBuf),
    /// The URL with its password hidden (the password is never written).
    Postgres(String),
}

pub struct Inputs<'a> {
    pub assistants: &'a [Assistant],
    pub settings: &'a MapSettings,
    pub seen: &'a Seen,
    pub storage: Storage,
    pub embedding_model: &'a str,
}

/// One generated module, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct AgentModule {
    pub assistant_id: String,
    pub name: Option<String>,
    pub module: String,
    pub file: String,
    pub scope: String,
    pub tools: Vec<String>,
    pub needs_human: Vec<String>,
}

/// `agents` in the migrate report.
#[derive(Debug, Clone, Serialize)]
pub struct AgentsReport {
    pub out_dir: String,
    pub package: String,
    pub modules: Vec<AgentModule>,
    /// Files written (or, in a dry run, that would be).
    pub written: Vec<String>,
    /// Files left as they were because someone edited them: the new version is `<file>.new`.
    pub kept_edited: Vec<String>,
}

impl AgentsReport {
    pub fn needs_human(&self) -> usize {
        self.modules.iter().map(|m| m.needs_human.len()).sum()
    }

    pub fn summary(&self, dry_run: bool) -> String {
        let verb = if dry_run { "would write" } else { "wrote" };
        let mut s = format!(
            "{verb} {} agent module{} to {}/{}; {} item{} to fill in (listed in {}/README.md)",
            self.modules.len(),
            if self.modules.len() == 1 { "" } else { "s" },
            self.out_dir,
            self.package,
            self.needs_human(),
            if self.needs_human() == 1 { "" } else { "s" },
            self.out_dir
        );
        if !self.kept_edited.is_empty() {
            s.push_str(&format!("; {} edited file(s) kept, the new version beside each as .new", self.kept_edited.len()));
        }
        s
    }
}

/// Checked before the migration writes anything: `out_dir` must be a directory or creatable.
pub fn preflight(out_dir: &Path) -> Result<(), String> {
    for p in [out_dir.to_path_buf(), out_dir.join(PACKAGE)] {
        if p.exists() && !p.is_dir() {
            return Err(format!(
                "[agents] out_dir: {} exists and is not a directory; point out_dir (or --agents) at a directory for the generated agents",
                p.display()
            ));
        }
    }
    Ok(())
}

/// The files of the package, by path relative to `out_dir`, and the report's modules.
pub fn render(inputs: &Inputs<'_>) -> (BTreeMap<String, String>, Vec<AgentModule>) {
    let mut names = python::Namer::with_reserved(&["_engramia", "README"]);
    let mut files = BTreeMap::new();
    let mut modules = Vec::new();
    for a in inputs.assistants {
        let base = python::identifier(a.name.as_deref().unwrap_or(&a.id), "assistant", true);
        let module = names.claim(&base);
        let (scope, scope_note) = scope_of(a, inputs);
        let agent_scopes: BTreeSet<&Scope> = inputs.seen.scopes_by_assistant.get(&a.id).map(|s| s.iter().collect()).unwrap_or_default();
        let mut notes: Vec<FileNote> = Vec::new();
        for s in agent_scopes.iter().copied().chain(std::iter::once(&scope)).collect::<BTreeSet<_>>() {
            for (file_id, filename) in inputs.seen.files_by_scope.get(s).into_iter().flatten() {
                notes.push(FileNote { scope: s.clone(), file_id: file_id.clone(), filename: filename.clone() });
            }
        }
        let spec = AgentSpec { assistant: a, module: module.clone(), scope: scope.clone(), scope_note, files: notes };
        let rendered = module::render(&spec);
        let file = format!("{PACKAGE}/{module}.py");
        files.insert(file.clone(), rendered.source);
        modules.push(AgentModule {
            assistant_id: a.id.clone(),
            name: a.name.clone(),
            module,
            file,
            scope: scope.to_string(),
            tools: rendered.tools,
            needs_human: rendered.needs_human,
        });
    }
    files.insert(format!("{PACKAGE}/__init__.py"), init_py(&modules));
    files.insert(format!("{PACKAGE}/_engramia.py"), engramia_py(inputs));
    files.insert("README.md".into(), readme(&modules));
    (files, modules)
}

/// The scope an assistant's memory is bound to: the one its records went to; resolved from the
/// assistant alone when the template allows; else the first seen, with a note.
fn scope_of(a: &Assistant, inputs: &Inputs<'_>) -> (Scope, Option<String>) {
    let seen: Vec<&Scope> = inputs.seen.scopes_by_assistant.get(&a.id).map(|s| s.iter().collect()).unwrap_or_default();
    if inputs.settings.project_template.needs_only_assistant()
        && let Ok(s) = crate::map::resolve_scope(inputs.settings, &ScopeContext { assistant: Some(a), thread: None })
    {
        return (s, None);
    }
    match seen.as_slice() {
        [one] => ((*one).clone(), None),
        [first, rest @ ..] => (
            (*first).clone(),
            Some(format!(
                "scope: this assistant's data went to {} scopes ({}); the memory is bound to the first: bind one agent per scope if you need the others",
                seen.len(),
                std::iter::once(*first).chain(rest.iter().copied()).map(Scope::to_string).collect::<Vec<_>>().join(", ")
            )),
        ),
        [] => {
            let project = inputs.settings.default_project.clone().unwrap_or_else(|| "default".into());
            let s = Scope::new(inputs.settings.tenant.clone(), project);
            let note = format!("scope: no record of this assistant was migrated and [scope] project needs a thread to resolve; the memory is bound to {s}: set the scope you want");
            (s, Some(note))
        }
    }
}

fn init_py(modules: &[AgentModule]) -> String {
    let mut out = String::from(
        "\"\"\"The agents engram generated from the OpenAI assistants it migrated (see README.md beside this package).\"\"\"\n\n",
    );
    if !modules.is_empty() {
        out.push_str(&format!("from . import {}\n\n", modules.iter().map(|m| m.module.as_str()).collect::<Vec<_>>().join(", ")));
    }
    out.push_str("# Module name -> Agent.\nAGENTS = {\n");
    for m in modules {
        out.push_str(&format!("    {}: {}.agent,\n", python::string(&m.module), m.module));
    }
    out.push_str("}\n# OpenAI assistant id -> Agent.\nBY_ASSISTANT_ID = {\n");
    for m in modules {
        out.push_str(&format!("    {}: {}.agent,\n", python::string(&m.assistant_id), m.module));
    }
    out.push_str("}\n\n__all__ = [\"AGENTS\", \"BY_ASSISTANT_ID\"");
    for m in modules {
        out.push_str(&format!(", {}", python::string(&m.module)));
    }
    out.push_str("]\n");
    out
}

fn engramia_py(inputs: &Inputs<'_>) -> String {
    let mut out = String::from(
        r#""""Engramia memory for the generated agents, each bound to the scope engram migrated it into.

Engramia reads its storage from the environment, as it always does: ENGRAMIA_STORAGE (json or
postgres), ENGRAMIA_DATA_PATH or ENGRAMIA_DATABASE_URL, ENGRAMIA_EMBEDDING_MODEL, and
OPENAI_API_KEY (and OPENAI_BASE_URL) for the embeddings. The defaults below are where engram
wrote; variables already set win. The scope is per agent: Engramia's storage reads the scope
of the current context, so every call of a ScopedMemory runs inside its own.
"""

import os
from typing import Any

from engramia import Memory
from engramia._context import reset_scope, set_scope
from engramia._factory import make_embeddings, make_storage
from engramia.types import Scope

"#,
    );
    match &inputs.storage {
        Storage::JsonDir(dir) => {
            out.push_str("os.environ.setdefault(\"ENGRAMIA_STORAGE\", \"json\")\n");
            out.push_str(&format!("os.environ.setdefault(\"ENGRAMIA_DATA_PATH\", {})\n", python::string(&dir.to_string_lossy())));
        }
        Storage::Postgres(url) => {
            out.push_str("os.environ.setdefault(\"ENGRAMIA_STORAGE\", \"postgres\")\n");
            out.push_str(&format!(
                "# engram wrote to {}: set ENGRAMIA_DATABASE_URL to it (with its password).\n",
                python::comment_text(url)
            ));
        }
    }
    out.push_str(&format!("os.environ.setdefault(\"ENGRAMIA_EMBEDDING_MODEL\", {})\n", python::string(inputs.embedding_model)));
    out.push_str(
        r#"
_shared: Memory | None = None


def shared_memory() -> Memory:
    """The process's one Memory (storage and embeddings), made on first use."""
    global _shared
    if _shared is None:
        _shared = Memory(embeddings=make_embeddings(), storage=make_storage())
    return _shared


class ScopedMemory:
    """A Memory whose every call (recall, learn, ...) runs in one Engramia scope."""

    def __init__(self, tenant: str, project: str) -> None:
        self.scope = Scope(tenant_id=tenant, project_id=project)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(shared_memory(), name)
        if not callable(attr):
            return attr

        def in_scope(*args: Any, **kwargs: Any) -> Any:
            token = set_scope(self.scope)
            try:
                return attr(*args, **kwargs)
            finally:
                reset_scope(token)

        return in_scope


def scoped_memory(tenant: str, project: str) -> ScopedMemory:
    return ScopedMemory(tenant, project)
"#,
    );
    out
}

fn readme(modules: &[AgentModule]) -> String {
    let mut out = String::from(
        "# Agents generated by engram\n\nOne module per migrated OpenAI assistant in `migrated_agents/`, each defining `agent` (OpenAI Agents\nSDK) with Engramia memory bound to the scope engram migrated the assistant into, `hooks`\n(`EngramiaRunHooks`: learns from each run) and `run(message)`:\n\n```python\nfrom migrated_agents import support_bot   # with this directory on sys.path\nresult = await support_bot.run(\"Where is my order A-10293?\")\n```\n\nNeeds `pip install \"engramia[openai-agents]\"`, `OPENAI_API_KEY`, and Engramia's storage\n(`migrated_agents/_engramia.py` defaults it to where engram wrote). engram regenerates these files\non every run until you edit one; an edited file is left alone and the new version is written\nbeside it as `<file>.new`.\n\n## To fill in\n",
    );
    for m in modules {
        let name = m.name.as_deref().unwrap_or(&m.assistant_id);
        out.push_str(&format!("\n### `{}` — {} ({}), scope `{}`\n\n", m.file, md(name), md(&m.assistant_id), md(&m.scope)));
        if m.needs_human.is_empty() {
            out.push_str("- nothing: it runs as generated.\n");
        }
        for n in &m.needs_human {
            out.push_str(&format!("- {}\n", md(n)));
        }
    }
    out
}

/// Text for a Markdown line: one line, no markup.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
            out.extend(c.escape_unicode());
            continue;
        }
        if "\\`*_[]<>#|".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// First line of every generated file: a checksum of the rest, so that a rerun can tell an
/// untouched file (rewritten) from an edited one (kept).
fn stamp(path: &str, body: &str) -> String {
    let sum = hex::encode(&Sha256::digest(body.as_bytes())[..8]);
    if path.ends_with(".md") {
        format!("<!-- generated by engram, checksum {sum}: edit freely, engram then leaves this file alone -->\n{body}")
    } else {
        format!("# Generated by engram, checksum {sum}: edit freely, engram then leaves this file alone.\n{body}")
    }
}

/// True when `existing` is a file engram wrote and nobody changed since.
fn untouched(existing: &str) -> bool {
    let Some((first, body)) = existing.split_once('\n') else { return false };
    let sum = hex::encode(&Sha256::digest(body.as_bytes())[..8]);
    first.contains(&format!("checksum {sum}:"))
}

/// Renders the package and, unless `dry_run`, writes it (each file replaced atomically).
pub fn generate(inputs: &Inputs<'_>, out_dir: &Path, dry_run: bool) -> Result<AgentsReport, String> {
    let (files, modules) = render(inputs);
    let mut written = Vec::new();
    let mut kept_edited = Vec::new();
    for (rel, body) in &files {
        let path = out_dir.join(rel);
        let text = stamp(rel, body);
        let existing = std::fs::read_to_string(&path).ok();
        let target = match &existing {
            Some(e) if e == &text => continue,
            Some(e) if !untouched(e) => {
                kept_edited.push(rel.clone());
                path.with_file_name(format!("{}.new", path.file_name().unwrap_or_default().to_string_lossy()))
            }
            _ => {
                written.push(rel.clone());
                path.clone()
            }
        };
        if !dry_run {
            write_atomic(&target, &text).map_err(|e| format!("writing the generated agent {}: {e}", target.display()))?;
        }
    }
    Ok(AgentsReport { out_dir: out_dir.display().to_string(), package: PACKAGE.into(), modules, written, kept_edited })
}

fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_tell_untouched_files_from_edited_ones() {
        let s = stamp("m.py", "x = 1\n");
        assert!(untouched(&s));
        assert!(!untouched(&s.replace("x = 1", "x = 2")));
        assert!(!untouched("x = 1\n"));
        assert!(untouched(&stamp("README.md", "# t\n")));
    }

    #[test]
    fn markdown_lines_stay_one_line_without_markup() {
        assert_eq!(md("a\n# b `c` \"d\""), "a\\u{a}\\# b \\`c\\` \"d\"");
    }
}
