//! Map: pure functions from OpenAI objects + mapping settings to `Record`s.
//!
//! No clock, no network, no filesystem: the same input gives the same records on every run,
//! which is what makes reruns, dry runs and replays honest.

pub mod scope;

use crate::model::{Assistant, ThreadBundle};
use crate::record::{Record, Scope, Warning};
use scope::ScopeTemplate;
use std::collections::HashMap;

/// The parts of mapping.toml that Map reads.
#[derive(Debug, Clone)]
pub struct MapSettings {
    pub tenant: String,
    pub project_template: ScopeTemplate,
    pub default_project: Option<String>,
    pub eval_score: f64,
    pub task_max_chars: usize,
    pub code_max_chars: usize,
    pub classification: String,
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
}

/// Maps one thread's messages to message-pair patterns.
pub fn map_thread(_bundle: &ThreadBundle, _ctx: &MapContext, _settings: &MapSettings) -> Mapped {
    Mapped::default()
}

/// Maps an assistant's function tools to tool patterns registered under their skills.
pub fn map_assistant_tools(_assistant: &Assistant, _settings: &MapSettings) -> Mapped {
    Mapped::default()
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
