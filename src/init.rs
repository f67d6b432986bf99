//! `engram init`: writes a mapping.toml to start from — the repository's commented reference
//! mapping with the source, path and target filled in, headed by what engram could see there
//! (assistants, their threads and messages, the scope each would get) — and prints the next
//! command. It never overwrites a file and writes nothing else.

pub use crate::cli::InitArgs;
use crate::config::{Config, SourceKind, parse_mapping};
use crate::map::scope::ScopeContext;
use crate::map::resolve_scope;
use crate::model::{Assistant, Role, ThreadBundle};
use crate::app::{Env, RunError};
use crate::source::openai::OpenAiSource;
use crate::http::transport::Transport;
use crate::source::{Source, ThreadFetch};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

/// The reference mapping: every key, commented.
const TEMPLATE: &str = include_str!("../mapping.toml");


/// One assistant as the source shows it.
#[derive(Default)]
struct Seen {
    name: Option<String>,
    threads: usize,
    messages: usize,
    scopes: std::collections::BTreeSet<String>,
}

pub fn init(args: &InitArgs, env: &Env) -> Result<(), RunError> {
    if args.out.exists() {
        return Err(RunError::Config(format!(
            "{} already exists; engram init never overwrites a mapping. Pass --out NEW.toml, or edit the one you have.",
            args.out.display()
        )));
    }
    let kind = match (&args.source_kind, &args.path) {
        (Some(k), _) => SourceKind::parse(k).ok_or_else(|| {
            RunError::Config(format!("--source-kind {k:?}: use openai, ndjson, export-dir or conversations"))
        })?,
        (None, Some(p)) if p.is_dir() => SourceKind::ExportDir,
        (None, Some(p)) => guess_file_kind(p),
        (None, None) => SourceKind::OpenAi,
    };
    let path = match &args.path {
        Some(p) => Some(std::path::absolute(p).map_err(|e| RunError::Config(format!("--path {}: {e}", p.display())))?),
        None => None,
    };
    if matches!(kind, SourceKind::Ndjson | SourceKind::ExportDir) && path.as_ref().is_none_or(|p| !p.exists()) {
        return Err(RunError::Config(format!(
            "--source-kind {} reads a {}: pass --path to an existing one",
            kind.as_str(),
            if kind == SourceKind::ExportDir { "directory" } else { "file" }
        )));
    }
    let out_abs = std::path::absolute(&args.out).map_err(|e| RunError::Config(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| RunError::Failed(e.to_string()))?;
    let fill_with = |names: &[String]| {
        let mut f = Fill { kind, path: path.as_deref(), target: args.target.as_deref(), base_url: args.base_url.as_deref(), project: None, names };
        // Conversations have no assistant to name a project after.
        if kind == SourceKind::Conversations {
            f.project = Some("conversations");
        }
        f.text()
    };
    let configure = |text: &str| -> Result<Config, RunError> {
        let mapping = parse_mapping(text, &out_abs).map_err(|e| RunError::Config(e.0))?;
        Config::from_mapping(mapping, &out_abs, env.base_url.clone()).map_err(|e| RunError::Config(e.0))
    };
    // An NDJSON export knows assistants by id only: [scope.assistants] names each (after
    // itself, for the user to rename), so that {assistant.name} resolves.
    let names: Vec<String> = if kind == SourceKind::Ndjson {
        let probe = Fill { kind, path: path.as_deref(), target: None, base_url: None, project: Some("{assistant.id}"), names: &[] }.text();
        let config = configure(&probe)?;
        let api = Arc::new(OpenAiSource::new(Arc::new(Transport::offline(Box::new(NoNetwork))), String::new(), false));
        let opened = Source::open(&config, api).map_err(|e| RunError::Config(format!("{e}\n  Nothing was written; check --path.")))?;
        let (assistants, _) = runtime.block_on(opened.source.list_assistants(&BTreeMap::new())).map_err(|e| RunError::Config(e.to_string()))?;
        assistants.into_iter().map(|a| a.id).collect()
    } else {
        Vec::new()
    };
    let text = fill_with(&names);
    let config = configure(&text)?;
    let seen = runtime.block_on(look(&config, kind, env));
    let header = match seen {
        Ok(lines) => lines,
        // An export engram cannot read is bad input: say so and write nothing.
        Err(why) if matches!(kind, SourceKind::Ndjson | SourceKind::ExportDir) => {
            return Err(RunError::Config(format!("{why}\n  Nothing was written; check --path and --source-kind.")));
        }
        // A server may be out of reach from here; the mapping is still worth writing.
        Err(why) => vec![format!("engram init could not ask {}: {why}", config.base_url)],
    };
    let mut body = String::new();
    let _ = writeln!(body, "# Written by `engram init` ({}{}).", kind.as_str(), path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default());
    for l in &header {
        let _ = writeln!(body, "#   {l}");
    }
    body.push_str("#\n");
    body.push_str(&text);

    // create_new: another process that wrote the file meanwhile wins; nothing is overwritten.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&args.out)
        .map_err(|e| RunError::Config(format!("writing {}: {e}", args.out.display())))?;
    std::io::Write::write_all(&mut file, body.as_bytes()).map_err(|e| RunError::Failed(format!("writing {}: {e}", args.out.display())))?;
    println!("wrote {}", args.out.display());
    for l in &header {
        println!("  {l}");
    }
    if kind == SourceKind::OpenAi && args.path.is_none() {
        println!("  [source] threads_file = \"thread_ids.txt\": list your thread ids there, one per line (the API cannot list threads)");
    }
    println!("next: engram migrate --config {} --dry-run", args.out.display());
    Ok(())
}

/// A file --path without --source-kind: JSON lines are an NDJSON export; a list of ids is a
/// thread list (`thread_...`) or a conversation list (`conv_...`).
fn guess_file_kind(path: &Path) -> SourceKind {
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b[..b.len().min(64 * 1024)]).into_owned()).unwrap_or_default();
    let first = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).unwrap_or("");
    if first.starts_with('{') {
        SourceKind::Ndjson
    } else if first.starts_with("conv_") {
        SourceKind::Conversations
    } else {
        SourceKind::OpenAi
    }
}

/// What `engram init` sets in the template.
struct Fill<'a> {
    kind: SourceKind,
    path: Option<&'a Path>,
    target: Option<&'a str>,
    base_url: Option<&'a str>,
    project: Option<&'a str>,
    /// Assistant ids for `[scope.assistants]`, each named after itself.
    names: &'a [String],
}

impl Fill<'_> {
/// The template with `[source] kind`, its path, base_url, `[target] url` and scope set.
fn text(&self) -> String {
    let Fill { kind, path, target, base_url, project, names } = *self;
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    let path_str = path.map(|p| quote(&p.display().to_string()));
    let mut out = String::with_capacity(TEMPLATE.len() + 200);
    let mut section = String::new();
    let mut base_done = false;
    for line in TEMPLATE.lines() {
        if line == "# [scope.assistants]" && !names.is_empty() {
            out.push_str("# engram init named each assistant after its id: rename them to the projects you want.\n[scope.assistants]\n");
            for id in names {
                out.push_str(&format!("{} = {}\n", quote(id), quote(id)));
            }
            continue;
        }
        if line == "# \"asst_abc123\" = \"coder\"" && !names.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            section = line.to_string();
        }
        let replaced = match (section.as_str(), line) {
            ("[source]", "kind = \"openai\"") => Some(format!("kind = {}", quote(kind.as_str()))),
            ("[source]", l) if l.starts_with("# path = ") && matches!(kind, SourceKind::Ndjson | SourceKind::ExportDir) => {
                path_str.as_ref().map(|p| format!("path = {p}"))
            }
            ("[source]", l) if l.starts_with("threads_file = ") => match kind {
                SourceKind::OpenAi => path_str.as_ref().map(|p| format!("threads_file = {p}")),
                _ => Some(format!("# {l}")),
            },
            ("[source]", l) if l.starts_with("# conversations_file = ") && kind == SourceKind::Conversations => {
                path_str.as_ref().map(|p| format!("conversations_file = {p}"))
            }
            ("[source]", l) if l.starts_with("# base_url = ") && !base_done => {
                base_done = true;
                base_url.map(|u| format!("base_url = {}", quote(u)))
            }
            ("[target]", l) if l.starts_with("url = ") => target.map(|t| format!("url = {}", quote(t))),
            ("[scope]", l) if l.starts_with("project = ") => project.map(|p| format!("project = {}", quote(p))),
            // The cutover code is on in a mapping init writes, but for an Engramia server
            // target, which gets none (its scope is the key's, not a local store to bind).
            ("[agents]", "# out_dir = \"agents\"") if !target.is_some_and(|t| t.starts_with("http://") || t.starts_with("https://")) => {
                Some("out_dir = \"agents\"".to_string())
            }
            _ => None,
        };
        out.push_str(replaced.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}
}

/// What the source shows: per assistant, its threads, messages and the scope it would get.
async fn look(config: &Config, kind: SourceKind, env: &Env) -> Result<Vec<String>, String> {
    let transport = match &env.api_key {
        Some(_) if matches!(kind, SourceKind::OpenAi | SourceKind::Conversations) => {
            let live = crate::app::live_client(config, env, "OPENAI_API_KEY is not set").map_err(|e| e.to_string())?;
            Transport::live(live)
        }
        None if matches!(kind, SourceKind::OpenAi | SourceKind::Conversations) => {
            return Ok(vec![format!("OPENAI_API_KEY is not set, so {} was not asked anything; set it and rerun init to see the assistants", config.base_url)]);
        }
        _ => Transport::offline(Box::new(NoNetwork)),
    };
    let api = Arc::new(OpenAiSource::new(Arc::new(transport), String::new(), false));
    let m = &config.mapping;
    let settings = config.map_settings();
    let mut lines = Vec::new();
    let (source, thread_ids) = if kind == SourceKind::OpenAi && config.threads_file.as_ref().is_none_or(|p| !p.exists()) {
        (Source::OpenAi(api), Vec::new())
    } else {
        let opened = Source::open(config, api)?;
        (opened.source, opened.thread_ids)
    };
    let (assistants, _) = source.list_assistants(&m.scope.assistants).await.map_err(|e| e.to_string())?;
    let by_id: BTreeMap<&str, &Assistant> = assistants.iter().map(|a| (a.id.as_str(), a)).collect();
    let mut seen: BTreeMap<String, Seen> = assistants.iter().map(|a| (a.id.clone(), Seen { name: a.name.clone(), ..Seen::default() })).collect();
    let (mut threads, mut messages, mut skipped) = (0usize, 0usize, 0usize);
    for id in &thread_ids {
        let bundle: ThreadBundle = match source.fetch_thread(id).await.map_err(|e| e.to_string())? {
            ThreadFetch::Found { bundle, .. } => bundle,
            _ => {
                skipped += 1;
                continue;
            }
        };
        threads += 1;
        messages += bundle.messages.len();
        let answered_by = bundle
            .messages
            .iter()
            .filter(|m| m.role == Role::Assistant)
            .find_map(|m| m.assistant_id.clone())
            .or_else(|| bundle.runs.iter().find_map(|r| r.assistant_id.clone()))
            .unwrap_or_default();
        let assistant = by_id.get(answered_by.as_str()).copied();
        let scope = resolve_scope(&settings, &ScopeContext { assistant, thread: Some(&bundle.thread) })
            .map(|s| s.to_string())
            .unwrap_or_else(|e| format!("unresolved ({}: {}; set [scope] default_project)", e.placeholder, e.reason));
        let s = seen.entry(answered_by).or_default();
        s.threads += 1;
        s.messages += bundle.messages.len();
        s.scopes.insert(scope);
    }
    lines.push(format!(
        "{} assistant(s){}",
        assistants.len(),
        if thread_ids.is_empty() { String::new() } else { format!(", {threads} thread(s), {messages} message(s){}", if skipped > 0 { format!(", {skipped} thread(s) not readable") } else { String::new() }) }
    ));
    for (id, s) in &seen {
        let scopes = if s.scopes.is_empty() {
            let a = by_id.get(id.as_str()).copied();
            match resolve_scope(&settings, &ScopeContext { assistant: a, thread: None }) {
                Ok(scope) => scope.to_string(),
                Err(_) => "decided per thread".to_string(),
            }
        } else {
            s.scopes.iter().cloned().collect::<Vec<_>>().join(", ")
        };
        let who = if id.is_empty() { "(no assistant)".to_string() } else { format!("{id} {:?}", s.name.as_deref().unwrap_or("")) };
        lines.push(format!("{who}: {} thread(s), {} message(s) -> scope {scopes}", s.threads, s.messages));
    }
    Ok(lines)
}

/// The offline sources read no HTTP; a request would be a bug, answered as an error.
struct NoNetwork;

impl crate::http::transport::Offline for NoNetwork {
    fn answer(&self, req: &crate::http::transport::ApiRequest) -> crate::http::transport::ApiResponse {
        crate::http::transport::ApiResponse {
            status: 599,
            headers: Vec::new(),
            body: bytes::Bytes::from(format!("{{\"error\": {{\"message\": \"engram init reads this source offline, not {}\"}}}}", req.describe())),
        }
    }
}
