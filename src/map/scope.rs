//! `[scope] project` templates: `{assistant.name}`, `{assistant.id}`, `{thread.id}`,
//! `{thread.metadata.KEY}` and literal text. Parsed once at start-up (unknown placeholders are
//! configuration errors), rendered per thread.

use crate::model::{Assistant, Thread};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    AssistantName,
    AssistantId,
    ThreadId,
    ThreadMetadata(String),
}

/// A parsed scope template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeTemplate {
    source: String,
    parts: Vec<Part>,
}

/// What a template is rendered against: the thread and the assistant that answered in it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScopeContext<'a> {
    pub assistant: Option<&'a Assistant>,
    pub thread: Option<&'a Thread>,
}

/// A placeholder that had no value for this thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub placeholder: String,
    pub reason: String,
}

pub const PLACEHOLDERS: &str =
    "{assistant.name}, {assistant.id}, {thread.id}, {thread.metadata.KEY}";

impl ScopeTemplate {
    pub fn parse(template: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in template {template:?}"))?;
            let name = after[..close].trim();
            parts.push(match name {
                "assistant.name" => Part::AssistantName,
                "assistant.id" => Part::AssistantId,
                "thread.id" => Part::ThreadId,
                n if n.starts_with("thread.metadata.") && n.len() > "thread.metadata.".len() => {
                    Part::ThreadMetadata(n["thread.metadata.".len()..].to_string())
                }
                n => {
                    return Err(format!(
                        "unknown placeholder {{{n}}} in template {template:?}; valid placeholders: {PLACEHOLDERS}"
                    ));
                }
            });
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("unmatched '}}' in template {template:?}"));
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        if parts.is_empty() {
            return Err("the template is empty".to_string());
        }
        Ok(ScopeTemplate { source: template.to_string(), parts })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when rendering reads the assistant (so an assistant must be known).
    pub fn uses_assistant(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::AssistantName | Part::AssistantId))
    }

    /// The `{thread.metadata.KEY}` keys the template reads.
    pub fn metadata_keys(&self) -> Vec<&str> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::ThreadMetadata(k) => Some(k.as_str()),
                _ => None,
            })
            .collect()
    }

    /// True when rendering only needs the assistant: such templates can be checked for every
    /// assistant at start-up.
    pub fn needs_only_assistant(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_) | Part::AssistantName | Part::AssistantId))
    }

    pub fn render(&self, ctx: &ScopeContext<'_>) -> Result<String, Unresolved> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::AssistantName => {
                    let a = ctx.assistant.ok_or_else(|| no_assistant("{assistant.name}"))?;
                    match a.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
                        Some(n) => out.push_str(n),
                        None => {
                            return Err(Unresolved {
                                placeholder: "{assistant.name}".into(),
                                reason: format!("assistant {} has no name", a.id),
                            });
                        }
                    }
                }
                Part::AssistantId => {
                    out.push_str(&ctx.assistant.ok_or_else(|| no_assistant("{assistant.id}"))?.id)
                }
                Part::ThreadId => {
                    let t = ctx.thread.ok_or_else(|| Unresolved {
                        placeholder: "{thread.id}".into(),
                        reason: "no thread".into(),
                    })?;
                    out.push_str(&t.id)
                }
                Part::ThreadMetadata(key) => {
                    let placeholder = format!("{{thread.metadata.{key}}}");
                    let value = ctx.thread.and_then(|t| t.metadata.get(key));
                    match value {
                        Some(Value::String(s)) if !s.trim().is_empty() => out.push_str(s.trim()),
                        Some(Value::Number(n)) => out.push_str(&n.to_string()),
                        Some(Value::Bool(b)) => out.push_str(&b.to_string()),
                        _ => {
                            return Err(Unresolved {
                                placeholder,
                                reason: format!(
                                    "thread {} has no metadata key {key:?}",
                                    ctx.thread.map(|t| t.id.as_str()).unwrap_or("?")
                                ),
                            });
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

fn no_assistant(placeholder: &str) -> Unresolved {
    Unresolved {
        placeholder: placeholder.to_string(),
        reason: "no assistant answered in this thread and it names none".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn asst(name: Option<&str>) -> Assistant {
        Assistant { id: "asst_1".into(), name: name.map(str::to_string), ..Default::default() }
    }

    #[test]
    fn renders_every_placeholder() {
        let t = ScopeTemplate::parse("{assistant.name}-{assistant.id}/{thread.id}:{thread.metadata.team}")
            .unwrap();
        let mut thread = Thread { id: "thread_9".into(), ..Default::default() };
        thread.metadata.insert("team".into(), json!("ops"));
        let a = asst(Some("Support Bot"));
        let out = t.render(&ScopeContext { assistant: Some(&a), thread: Some(&thread) }).unwrap();
        assert_eq!(out, "Support Bot-asst_1/thread_9:ops");
    }

    #[test]
    fn unknown_placeholder_is_an_error_naming_it() {
        let e = ScopeTemplate::parse("{assistant.title}").unwrap_err();
        assert!(e.contains("{assistant.title}"), "{e}");
        assert!(ScopeTemplate::parse("{thread.metadata.}").is_err());
        assert!(ScopeTemplate::parse("{assistant.name").is_err());
        assert!(ScopeTemplate::parse("").is_err());
    }

    #[test]
    fn missing_values_are_unresolved() {
        let t = ScopeTemplate::parse("{assistant.name}").unwrap();
        let a = asst(None);
        let e = t.render(&ScopeContext { assistant: Some(&a), thread: None }).unwrap_err();
        assert_eq!(e.placeholder, "{assistant.name}");
        let t = ScopeTemplate::parse("{thread.metadata.team}").unwrap();
        let thread = Thread { id: "thread_9".into(), ..Default::default() };
        assert!(t.render(&ScopeContext { assistant: None, thread: Some(&thread) }).is_err());
    }

    #[test]
    fn literal_template_needs_nothing() {
        let t = ScopeTemplate::parse("support").unwrap();
        assert!(!t.uses_assistant());
        assert_eq!(t.render(&ScopeContext::default()).unwrap(), "support");
    }
}
