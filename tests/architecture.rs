//! The module layering of ARCHITECTURE.md, checked against the code: every top-level module
//! of `src/` is in its table, imports only the modules its row allows (outside `#[cfg(test)]`
//! code), and the allowed imports form no cycle — so neither do the real ones.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use syn::visit::Visit;

type Graph = BTreeMap<String, BTreeSet<String>>;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `| \`module\` | what it holds | \`a\`, \`b\` |` rows of the table under "## Modules".
fn allowed() -> Graph {
    let text = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md is readable");
    let section = text.split("## Modules").nth(1).expect("ARCHITECTURE.md has a '## Modules' section");
    let mut graph = Graph::new();
    for line in section.lines().take_while(|l| !l.starts_with("## ")) {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() != 3 || !cells[0].starts_with('`') {
            continue;
        }
        let name = cells[0].trim_matches('`').to_string();
        let imports = cells[2].split(',').map(|s| s.trim().trim_matches('`').to_string()).filter(|s| !s.is_empty() && s != "—").collect();
        assert!(graph.insert(name.clone(), imports).is_none(), "ARCHITECTURE.md lists `{name}` twice");
    }
    assert!(!graph.is_empty(), "ARCHITECTURE.md's module table has no rows");
    graph
}

/// The top-level module a file of `src/` belongs to, and its depth below `src/`
/// (`src/plan/dedup.rs` is `plan`, module path plan::dedup; `src/plan/mod.rs` is plan).
fn module_of(rel: &Path) -> (String, Vec<String>) {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs").to_string();
    if stem != "mod" {
        parts.push(stem);
    }
    (parts[0].clone(), parts)
}

/// Every `crate::x` (and `super::…` reaching the crate root) outside `#[cfg(test)]` items.
struct Imports<'a> {
    path: &'a [String],
    found: BTreeSet<String>,
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        (a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test")) || a.path().is_ident("test")
    })
}

impl Imports<'_> {
    /// The top-level module a path starting with these segments names, if it leaves the file's.
    fn resolve(&mut self, first: &[String]) {
        let mut depth = self.path.len();
        let mut rest = first;
        if rest.first().is_some_and(|s| s == "crate") {
            depth = 0;
            rest = &rest[1..];
        } else {
            while rest.first().is_some_and(|s| s == "super") {
                depth = depth.saturating_sub(1);
                rest = &rest[1..];
            }
            if rest.len() == first.len() {
                return; // a plain or `self::` path: inside the module
            }
        }
        if depth == 0 && let Some(m) = rest.first() {
            self.found.insert(m.clone());
        }
    }
}

fn use_paths(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_paths(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => out.push(prefix.iter().cloned().chain([n.ident.to_string()]).collect()),
        syn::UseTree::Rename(r) => out.push(prefix.iter().cloned().chain([r.ident.to_string()]).collect()),
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(g) => g.items.iter().for_each(|t| use_paths(t, prefix, out)),
    }
}

impl<'ast> Visit<'ast> for Imports<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(u) => &u.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if !is_test_only(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut paths = Vec::new();
        use_paths(&u.tree, &mut Vec::new(), &mut paths);
        for p in paths {
            // `use super::x` in a file of a submodule that is declared inline would need the
            // inline module's depth; engram declares none outside tests.
            self.resolve(&p);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        self.resolve(&segs);
        syn::visit::visit_path(self, p);
    }
}

fn actual() -> Graph {
    let src = repo().join("src");
    let mut graph = Graph::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap().to_path_buf();
            if path.extension().is_none_or(|e| e != "rs") || rel == Path::new("lib.rs") || rel == Path::new("main.rs") {
                continue;
            }
            let (top, module_path) = module_of(&rel);
            let text = std::fs::read_to_string(&path).unwrap();
            let file = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let mut v = Imports { path: &module_path, found: BTreeSet::new() };
            v.visit_file(&file);
            v.found.remove(&top);
            graph.entry(top).or_default().extend(v.found);
        }
    }
    graph
}

/// A cycle in `graph`, if any, as the modules on it.
fn cycle(graph: &Graph) -> Option<Vec<String>> {
    fn walk(n: &str, g: &Graph, on_path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(i) = on_path.iter().position(|m| m == n) {
            let mut c = on_path[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        on_path.push(n.to_string());
        for next in g.get(n).into_iter().flatten() {
            if let Some(c) = walk(next, g, on_path, done) {
                return Some(c);
            }
        }
        on_path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| walk(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn every_module_imports_only_what_architecture_md_allows() {
    let allowed = allowed();
    let actual = actual();
    let in_code: BTreeSet<&String> = actual.keys().collect();
    let in_doc: BTreeSet<&String> = allowed.keys().collect();
    assert_eq!(in_code, in_doc, "the modules of src/ and the rows of ARCHITECTURE.md's table differ");
    let mut wrong = Vec::new();
    for (module, imports) in &actual {
        for i in imports.difference(&allowed[module]) {
            wrong.push(format!("{module} -> {i}"));
        }
    }
    assert!(wrong.is_empty(), "imports ARCHITECTURE.md does not allow: {wrong:?}");
    for (module, imports) in &allowed {
        for i in imports {
            assert!(allowed.contains_key(i), "ARCHITECTURE.md: `{module}` may import `{i}`, which is not a module");
        }
    }
}

#[test]
fn the_allowed_imports_and_the_real_ones_have_no_cycle() {
    assert_eq!(cycle(&allowed()), None, "ARCHITECTURE.md's layering has a cycle");
    assert_eq!(cycle(&actual()), None, "src/ has an import cycle");
}

#[test]
fn the_checker_sees_imports_and_cycles() {
    // The checker itself: a path through `crate::`, one through `super::` from a submodule,
    // and a cycle, so that the tests above cannot pass by seeing nothing.
    let file: syn::File = syn::parse_str("use crate::a::X; fn f() { super::super::b::g(); crate::c::h(); } #[cfg(test)] mod tests { use crate::d; }").unwrap();
    let path = vec!["m".to_string(), "sub".to_string()];
    let mut v = Imports { path: &path, found: BTreeSet::new() };
    v.visit_file(&file);
    assert_eq!(v.found, ["a", "b", "c"].into_iter().map(String::from).collect());
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("a".into());
    assert!(cycle(&g).is_some());
    assert!(!actual().values().all(BTreeSet::is_empty), "no imports found in src/ at all");
}
