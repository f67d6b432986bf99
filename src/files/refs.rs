//! Which files the account used, and in which scopes: collected from assistants and, while the
//! threads stream by, from each thread. Only ids and scopes are kept, never a bundle.
//!
//! A file belongs to the scope of the assistant that used it:
//! - an assistant's `tool_resources` (file_search vector stores, code_interpreter files): that
//!   assistant, rendered without a thread (as its function tools are);
//! - a thread's `tool_resources`, a user message's attachments and images: the thread's
//!   assistants (those of its runs and answers), rendered with the thread;
//! - an assistant message's attachments, images and `file_citation`/`file_path` annotations:
//!   the assistant that wrote it.
//!
//! A file used in several scopes is one entry with several scopes: fetched once, written to each.

use crate::map::scope::{ScopeContext, Unresolved};
use crate::map::{MapContext, MapSettings, resolve_scope};
use crate::model::{Assistant, Message, Role, ThreadBundle, ToolResources};
use crate::record::{Scope, Warning};
use indexmap::{IndexMap, IndexSet};
use serde_json::Value;

/// File and vector-store references with their scopes, in order of first use.
#[derive(Debug, Default)]
pub struct FileRefs {
    /// File id -> scopes that used it directly.
    pub files: IndexMap<String, IndexSet<Scope>>,
    /// Vector store id -> scopes that searched it.
    pub stores: IndexMap<String, IndexSet<Scope>>,
    pub warnings: Vec<Warning>,
}

/// What an owner (assistant or thread) refers to.
#[derive(Default)]
struct Uses {
    files: Vec<String>,
    stores: Vec<String>,
}

impl Uses {
    fn add_resources(&mut self, r: Option<&ToolResources>) {
        let Some(r) = r else { return };
        if let Some(ci) = &r.code_interpreter {
            self.files.extend(ci.file_ids.iter().cloned());
        }
        if let Some(fs) = &r.file_search {
            self.stores.extend(fs.vector_store_ids.iter().cloned());
        }
    }

    fn add_message(&mut self, m: &Message) {
        self.files.extend(m.attachments.iter().filter_map(|a| a.file_id.clone()));
        for part in &m.content {
            if let Some(img) = &part.image_file {
                self.files.push(img.file_id.clone());
            }
            if let Some(text) = &part.text {
                self.files.extend(text.annotations.iter().filter_map(|a| a.file_id().map(str::to_string)));
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.files.iter().all(|f| f.is_empty()) && self.stores.iter().all(|s| s.is_empty())
    }
}

impl FileRefs {
    /// The files an assistant's tools hold.
    pub fn add_assistant(&mut self, assistant: &Assistant, settings: &MapSettings) {
        let mut uses = Uses::default();
        uses.add_resources(assistant.tool_resources.as_ref());
        if uses.is_empty() {
            return;
        }
        let ctx = ScopeContext { assistant: Some(assistant), thread: None };
        match resolve_scope(settings, &ctx) {
            Ok(scope) => self.add(&uses, &[scope]),
            Err(e) => self.unresolved(&assistant.id, "assistant", &uses, &e, settings),
        }
    }

    /// The files a thread's resources and messages refer to.
    pub fn add_thread(&mut self, bundle: &ThreadBundle, ctx: &MapContext, settings: &MapSettings) {
        let thread = &bundle.thread;
        let thread_assistants = thread_assistants(bundle);
        let mut shared = Uses::default();
        shared.add_resources(thread.tool_resources.as_ref());
        // Assistant messages: the writer's scope. Everything else: the thread's assistants'.
        let mut by_writer: IndexMap<String, Uses> = IndexMap::new();
        for m in &bundle.messages {
            match (m.role, m.assistant_id.as_deref().filter(|id| !id.is_empty())) {
                (Role::Assistant, Some(id)) => by_writer.entry(id.to_string()).or_default().add_message(m),
                _ => shared.add_message(m),
            }
        }
        let mut problems: Vec<(Unresolved, usize)> = Vec::new();
        let mut place = |uses: &Uses, assistant_ids: &[Option<&str>], refs: &mut FileRefs| {
            if uses.is_empty() {
                return;
            }
            let mut scopes = Vec::new();
            for id in assistant_ids {
                let assistant = id.and_then(|id| ctx.assistants.get(id));
                match resolve_scope(settings, &ScopeContext { assistant, thread: Some(thread) }) {
                    Ok(s) => scopes.push(s),
                    Err(mut e) => {
                        if let (Some(id), None) = (id, assistant) {
                            e.reason = format!("assistant {id} is not among the account's assistants (deleted?)");
                        }
                        let n = uses.files.len() + uses.stores.len();
                        match problems.iter_mut().find(|(p, _)| p.placeholder == e.placeholder) {
                            Some((_, count)) => *count += n,
                            None => problems.push((e, n)),
                        }
                    }
                }
            }
            refs.add(uses, &scopes);
        };
        place(&shared, &thread_assistants, self);
        for (id, uses) in &by_writer {
            place(uses, &[Some(id.as_str())], self);
        }
        for (e, n) in problems {
            self.warnings.push(unresolved_warning(&thread.id, "thread", n, &e, settings));
        }
    }

    fn add(&mut self, uses: &Uses, scopes: &[Scope]) {
        if scopes.is_empty() {
            return;
        }
        for id in uses.files.iter().filter(|f| !f.is_empty()) {
            self.files.entry(id.clone()).or_default().extend(scopes.iter().cloned());
        }
        for id in uses.stores.iter().filter(|s| !s.is_empty()) {
            self.stores.entry(id.clone()).or_default().extend(scopes.iter().cloned());
        }
    }

    fn unresolved(&mut self, owner: &str, what: &str, uses: &Uses, e: &Unresolved, settings: &MapSettings) {
        let n = uses.files.len() + uses.stores.len();
        self.warnings.push(unresolved_warning(owner, what, n, e, settings));
    }
}

/// The assistants that ran in a thread (runs first, then answers), or one `None` when no
/// assistant is known: then only a template without `{assistant.*}` (or default_project) places
/// the thread's files.
fn thread_assistants(bundle: &ThreadBundle) -> Vec<Option<&str>> {
    let mut ids: IndexSet<&str> = IndexSet::new();
    ids.extend(bundle.runs.iter().filter_map(|r| r.assistant_id.as_deref()).filter(|id| !id.is_empty()));
    ids.extend(
        bundle
            .messages
            .iter()
            .filter(|m| m.role == Role::Assistant)
            .filter_map(|m| m.assistant_id.as_deref())
            .filter(|id| !id.is_empty()),
    );
    if ids.is_empty() { vec![None] } else { ids.into_iter().map(Some).collect() }
}

fn unresolved_warning(owner: &str, what: &str, refs: usize, e: &Unresolved, settings: &MapSettings) -> Warning {
    Warning::new(
        "scope_unresolved",
        owner,
        format!(
            "{refs} file or vector-store reference(s) of {what} {owner} not imported: [scope] project {:?} needs {} but {}; set [scope] default_project",
            settings.project_template.as_str(),
            e.placeholder,
            e.reason
        ),
    )
}

/// Every file a thread refers to, read from its raw JSON as `engram export` writes it verbatim: attachments, `image_file` parts, citation and path
/// annotations, code-interpreter image outputs in run steps. Sorted.
pub fn referenced_files(messages: &[Value], runs: &[Value]) -> Vec<String> {
    let mut ids = std::collections::BTreeSet::new();
    let mut add = |v: Option<&Value>| {
        if let Some(id) = v.and_then(Value::as_str).filter(|s| !s.is_empty()) {
            ids.insert(id.to_string());
        }
    };
    let list = |v: Option<&Value>| v.and_then(Value::as_array).cloned().unwrap_or_default();
    for m in messages {
        for a in list(m.get("attachments")) {
            add(a.get("file_id"));
        }
        for part in list(m.get("content")) {
            add(part.pointer("/image_file/file_id"));
            for ann in list(part.pointer("/text/annotations")) {
                add(ann.pointer("/file_citation/file_id"));
                add(ann.pointer("/file_path/file_id"));
            }
        }
    }
    for run in runs {
        for step in list(run.get("steps")) {
            for call in list(step.pointer("/step_details/tool_calls")) {
                for output in list(call.pointer("/code_interpreter/outputs")) {
                    add(output.pointer("/image/file_id"));
                }
            }
        }
    }
    ids.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(template: &str) -> MapSettings {
        MapSettings::for_tests(template)
    }

    fn assistant(id: &str, name: &str, resources: serde_json::Value) -> Assistant {
        serde_json::from_value(json!({"id": id, "name": name, "tool_resources": resources})).unwrap()
    }

    fn ctx(assistants: &[&Assistant]) -> MapContext {
        MapContext { assistants: assistants.iter().map(|a| (a.id.clone(), (*a).clone())).collect(), ..Default::default() }
    }

    fn scopes(refs: &FileRefs, file: &str) -> Vec<String> {
        refs.files.get(file).map(|s| s.iter().map(|s| s.project.clone()).collect()).unwrap_or_default()
    }

    #[test]
    fn assistant_resources_go_to_the_assistant() {
        let a = assistant("asst_1", "Docs", json!({"file_search": {"vector_store_ids": ["vs_1"]}, "code_interpreter": {"file_ids": ["file-a"]}}));
        let mut refs = FileRefs::default();
        refs.add_assistant(&a, &settings("{assistant.name}"));
        assert_eq!(scopes(&refs, "file-a"), ["Docs"]);
        assert_eq!(refs.stores["vs_1"].iter().map(|s| s.project.as_str()).collect::<Vec<_>>(), ["Docs"]);
        // A template that needs a thread cannot place assistant files: a warning.
        let mut refs = FileRefs::default();
        refs.add_assistant(&a, &settings("{thread.id}"));
        assert!(refs.files.is_empty());
        assert_eq!(refs.warnings[0].kind, "scope_unresolved");
        assert_eq!(refs.warnings[0].id, "asst_1");
    }

    #[test]
    fn thread_references_go_to_the_thread_assistant_or_the_writer() {
        let support = assistant("asst_s", "Support", json!({}));
        let docs = assistant("asst_d", "Docs", json!({}));
        let bundle: ThreadBundle = serde_json::from_value(json!({
            "thread": {"id": "thread_1", "tool_resources": {"code_interpreter": {"file_ids": ["file-thread"]}, "file_search": {"vector_store_ids": ["vs_t"]}}},
            "messages": [
                {"id": "m1", "role": "user", "attachments": [{"file_id": "file-attached", "tools": []}],
                 "content": [{"type": "image_file", "image_file": {"file_id": "file-img"}}]},
                {"id": "m2", "role": "assistant", "assistant_id": "asst_d",
                 "content": [{"type": "text", "text": {"value": "see", "annotations": [
                    {"type": "file_path", "text": "x", "file_path": {"file_id": "file-out"}},
                    {"type": "file_citation", "text": "y", "file_citation": {"file_id": "file-attached"}}]}}]}
            ],
            "runs": [{"id": "run_1", "assistant_id": "asst_s"}],
            "steps": []
        }))
        .unwrap();
        let mut refs = FileRefs::default();
        refs.add_thread(&bundle, &ctx(&[&support, &docs]), &settings("{assistant.name}"));
        assert!(refs.warnings.is_empty(), "{:?}", refs.warnings);
        // The thread's assistants: its run's (Support) and its answer's (Docs).
        assert_eq!(scopes(&refs, "file-thread"), ["Support", "Docs"]);
        assert_eq!(scopes(&refs, "file-img"), ["Support", "Docs"]);
        // Written by Docs: Docs only. Cited by Docs and attached by the user: both, once each.
        assert_eq!(scopes(&refs, "file-out"), ["Docs"]);
        assert_eq!(scopes(&refs, "file-attached"), ["Support", "Docs"]);
        assert_eq!(refs.stores["vs_t"].len(), 2);
        // In order of first use.
        assert_eq!(refs.files.keys().collect::<Vec<_>>(), ["file-thread", "file-attached", "file-img", "file-out"]);
    }

    #[test]
    fn a_deleted_assistant_is_named_in_the_warning() {
        let bundle: ThreadBundle = serde_json::from_value(json!({
            "thread": {"id": "thread_1"},
            "messages": [{"id": "m1", "role": "user", "attachments": [{"file_id": "file-a"}], "content": []}],
            "runs": [{"id": "run_1", "assistant_id": "asst_gone"}], "steps": []
        }))
        .unwrap();
        let mut refs = FileRefs::default();
        refs.add_thread(&bundle, &ctx(&[]), &settings("{assistant.name}"));
        assert!(refs.files.get("file-a").is_none_or(|s| s.is_empty()));
        assert_eq!(refs.warnings.len(), 1);
        assert!(refs.warnings[0].message.contains("asst_gone"), "{}", refs.warnings[0].message);
        // default_project catches it.
        let mut s = settings("{assistant.name}");
        s.default_project = Some("imported".into());
        let mut refs = FileRefs::default();
        refs.add_thread(&bundle, &ctx(&[]), &s);
        assert_eq!(scopes(&refs, "file-a"), ["imported"]);
    }

    #[test]
    fn every_file_reference_is_harvested() {
        let messages = vec![json!({
            "attachments": [{"file_id": "file-att", "tools": []}],
            "content": [
                {"type": "image_file", "image_file": {"file_id": "file-img"}},
                {"type": "text", "text": {"value": "x", "annotations": [
                    {"type": "file_citation", "file_citation": {"file_id": "file-cite"}},
                    {"type": "file_path", "file_path": {"file_id": "file-path"}}]}}
            ]
        })];
        let runs = vec![json!({"steps": [{"step_details": {"tool_calls": [
            {"type": "code_interpreter", "code_interpreter": {"outputs": [{"type": "image", "image": {"file_id": "file-plot"}}, {"type": "logs"}]}}]}}]})];
        assert_eq!(referenced_files(&messages, &runs), ["file-att", "file-cite", "file-img", "file-path", "file-plot"]);
    }
}
