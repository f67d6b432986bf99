//! Python source text from untrusted values: string literals, comments, literals of JSON
//! values and identifiers.
//!
//! Invariant: whatever the input (quotes, triple quotes, backslashes, `{}`, newlines, NUL,
//! bidi controls, keywords, non-ASCII), the text produced here is one Python token (or one
//! comment line) that evaluates to exactly the input and never executes any of it.

use serde_json::Value;
use std::collections::HashSet;

/// Python 3.12's hard keywords: never usable as a name. (Soft keywords such as `match`,
/// `case` and `type` are valid names.)
const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif",
    "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal", "not", "or",
    "pass", "raise", "return", "try", "while", "with", "yield",
];

pub fn is_keyword(name: &str) -> bool {
    KEYWORDS.contains(&name)
}

/// A name Python accepts as written and reads back unchanged: ASCII (Python NFKC-normalises
/// other identifiers, so `ﬁle` would be read as `file`), not starting with a digit, no keyword.
pub fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !is_keyword(name)
}

/// `raw` as an ASCII identifier: other characters become `_` (runs collapsed, none at either
/// end), a leading digit
/// gets `fallback` before it, a keyword gets a trailing `_`; empty results are `fallback`.
/// `lower` lower-cases it (module and function names).
pub fn identifier(raw: &str, fallback: &str, lower: bool) -> String {
    if is_plain_identifier(raw) && !raw.starts_with('_') && (!lower || !raw.chars().any(|c| c.is_ascii_uppercase())) {
        return raw.to_string();
    }
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() { if lower { c.to_ascii_lowercase() } else { c } } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    // No leading underscore: a module would look private, and pydantic refuses such fields.
    let mut out = out.trim_matches('_').to_string();
    if out.is_empty() {
        return fallback.to_string();
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out = format!("{fallback}_{out}");
    }
    if is_keyword(&out) {
        out.push('_');
    }
    out
}

/// `raw` as a CamelCase ASCII class name (`order details` -> `OrderDetails`).
pub fn class_name(raw: &str, fallback: &str) -> String {
    let mut out = String::new();
    for word in raw.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
        let mut cs = word.chars();
        if let Some(first) = cs.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(cs);
        }
    }
    if out.is_empty() {
        return fallback.to_string();
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out = format!("{fallback}{out}");
    }
    if is_keyword(&out) {
        out.push('_');
    }
    out
}

/// Hands out names unique within one Python namespace, in the order asked: the second `x`
/// is `x_2`, then `x_3`. Deterministic for the same sequence of requests.
#[derive(Debug, Default, Clone)]
pub struct Namer {
    used: HashSet<String>,
}

impl Namer {
    /// A namer for which `reserved` are already taken (imports, builtins the code uses).
    pub fn with_reserved(reserved: &[&str]) -> Namer {
        Namer { used: reserved.iter().map(|s| s.to_string()).collect() }
    }

    pub fn is_taken(&self, name: &str) -> bool {
        self.used.contains(name)
    }

    pub fn claim(&mut self, base: &str) -> String {
        if self.used.insert(base.to_string()) {
            return base.to_string();
        }
        (2..)
            // `def_` (a keyword made a name) goes on as `def_2`, not `def__2`.
            .map(|n| format!("{}_{n}", base.strip_suffix('_').filter(|b| !b.is_empty()).unwrap_or(base)))
            .find(|candidate| !self.used.contains(candidate))
            .map(|name| {
                self.used.insert(name.clone());
                name
            })
            .expect("an unbounded range has a free name")
    }
}

/// A double-quoted Python string literal that evaluates to exactly `s`.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    escape_into(s, &mut out, true);
    out.push('"');
    out
}

/// Escapes what Python would read otherwise; `quotes`: also backslashes and double quotes
/// (inside a literal; a comment needs only the rest).
fn escape_into(s: &str, out: &mut String, quotes: bool) {
    for c in s.chars() {
        match c {
            '\\' if quotes => out.push_str("\\\\"),
            '"' if quotes => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || (0x7f..=0x9f).contains(&(c as u32)) => out.push_str(&format!("\\x{:02x}", c as u32)),
            // Line and paragraph separators, the byte-order mark, and bidirectional controls
            // (which can make source read differently from what it does): escaped, visible.
            '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
}

/// `s` as a Python expression: one literal, or for text with several lines a parenthesised
/// run of one literal per line (adjacent literals concatenate), indented by `indent` spaces.
pub fn text_block(s: &str, indent: usize) -> String {
    let lines: Vec<&str> = s.split_inclusive('\n').collect();
    if lines.len() <= 1 {
        return string(s);
    }
    let pad = " ".repeat(indent + 4);
    let mut out = String::from("(\n");
    for line in lines {
        out.push_str(&pad);
        out.push_str(&string(line));
        out.push('\n');
    }
    out.push_str(&" ".repeat(indent));
    out.push(')');
    out
}

/// Text for inside a `#` comment: one line, control characters escaped.
pub fn comment_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(s, &mut out, false);
    out
}

/// A JSON value as the Python literal that `json.loads` would return for it.
pub fn value(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            // `{:?}` keeps a `.0` or an exponent, so Python reads a float back.
            (_, _, Some(f)) if f.is_finite() => format!("{f:?}"),
            _ => "None".into(),
        },
        Value::String(s) => string(s),
        Value::Array(items) => format!("[{}]", items.iter().map(value).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => {
            format!("{{{}}}", map.iter().map(|(k, v)| format!("{}: {}", string(k), value(v))).collect::<Vec<_>>().join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_ascii_unique_and_never_keywords() {
        assert_eq!(identifier("get_weather", "tool", true), "get_weather");
        assert_eq!(identifier("Support Bot", "agent", true), "support_bot");
        assert_eq!(identifier("class", "tool", true), "class_");
        assert_eq!(identifier("None", "x", false), "None_");
        assert_eq!(identifier("9lives", "tool", true), "tool_9lives");
        assert_eq!(identifier("../../etc/passwd", "tool", true), "etc_passwd");
        assert_eq!(identifier("_private", "f", false), "private");
        assert_eq!(identifier("天気", "tool", true), "tool");
        assert_eq!(identifier("café au lait", "agent", true), "caf_au_lait");
        assert_eq!(identifier("", "agent", true), "agent");
        assert_eq!(identifier("__init__", "m", true), "init");
        assert_eq!(identifier("first-name", "f", false), "first_name");
        assert_eq!(identifier("ﬁle", "f", false), "le", "NFKC would read it as `file`: not kept");
        assert_eq!(class_name("order details", "Model"), "OrderDetails");
        assert_eq!(class_name("1st", "Model"), "Model1st");
        assert_eq!(class_name("   ", "Model"), "Model");
        let mut n = Namer::with_reserved(&["agent"]);
        assert_eq!(n.claim("agent"), "agent_2");
        assert_eq!(n.claim("x"), "x");
        assert_eq!(n.claim("x"), "x_2");
        assert_eq!(n.claim("x_2"), "x_2_2");
        assert_eq!((n.claim("def_"), n.claim("def_")), ("def_".to_string(), "def_2".to_string()));
        for raw in ["a b", "def", "0", "ü", "x-y", "yield", "_", "__"] {
            let id = identifier(raw, "f", true);
            assert!(is_plain_identifier(&id), "{raw:?} -> {id:?}");
        }
    }

    #[test]
    fn strings_escape_everything_python_would_read_otherwise() {
        assert_eq!(string(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(string("a\\b"), r#""a\\b""#);
        assert_eq!(string("\"\"\"x\"\"\""), r#""\"\"\"x\"\"\"""#);
        assert_eq!(string("{x} {{y}}"), r#""{x} {{y}}""#, "no f-string: braces are plain");
        assert_eq!(string("a\nb\r\tc\0"), r#""a\nb\r\tc\x00""#);
        assert_eq!(string("\u{202e}evil\u{2028}"), r#""\u202eevil\u2028""#);
        assert_eq!(string("\u{85}"), r#""\x85""#);
        assert_eq!(string("ž 🙂"), "\"ž 🙂\"");
        assert_eq!(text_block("one\ntwo", 0), "(\n    \"one\\n\"\n    \"two\"\n)");
        assert_eq!(text_block("one\n", 4), "\"one\\n\"");
        assert_eq!(comment_text("a\nb # \"c\"\u{0}"), "a\\nb # \"c\"\\x00");
        assert_eq!(value(&serde_json::json!({"a": [1, 2.5, null, true, "x\"y"]})), r#"{"a": [1, 2.5, None, True, "x\"y"]}"#);
        assert_eq!(value(&serde_json::json!(1.0)), "1.0");
        assert_eq!(value(&serde_json::json!(u64::MAX)), u64::MAX.to_string());
    }
}
