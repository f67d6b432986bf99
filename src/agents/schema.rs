//! JSON Schema, as OpenAI function `parameters` and `response_format` carry it, into Python:
//! type annotations, Pydantic models and keyword-only parameters whose schema, as the Agents
//! SDK derives it (pydantic's `model_json_schema`), has the original's names, types, required
//! fields and enums.
//!
//! Mapped: `type` (one or a list), `properties`, `required`, `additionalProperties`, `items`,
//! `enum` / `const` (`Literal`), `anyOf` / `oneOf` (unions), one-element `allOf`, local `$ref`
//! (`#/$defs/...`, any JSON pointer into the root), `description`, `default`; any other keyword
//! (`format`, `minimum`, `pattern`, `x-...`) is carried verbatim into the field's schema with
//! `json_schema_extra`. What has no faithful type (a recursive `$ref`, several `allOf` parts,
//! tuple `items`, an unknown `type`) becomes `Any` or `dict[str, Any]` with a note. Never panics.

use super::python::{self, Namer};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Deeper than this the schema is typed `Any`: no real tool nests so far, and the generated
/// code stays readable (and the recursion bounded).
const MAX_DEPTH: usize = 24;

/// Keywords the type itself expresses; everything else goes to `json_schema_extra`.
const TYPED_KEYWORDS: &[&str] = &[
    "type", "properties", "required", "additionalProperties", "items", "enum", "const", "description", "default",
    "anyOf", "oneOf", "allOf", "$ref", "title", "$defs", "definitions", "$schema", "$id", "$comment",
];

/// Names a field must not take as written: pydantic's own attributes (a field would shadow
/// them) and the names annotations refer to (a class-body field named `str` with a default
/// would change what later annotations mean).
const RESERVED_FIELDS: &[&str] = &[
    "construct", "copy", "dict", "from_orm", "json", "parse_file", "parse_obj", "parse_raw", "schema", "schema_json",
    "update_forward_refs", "validate", "fields", "str", "int", "float", "bool", "list", "Any", "Literal", "Annotated",
    "Field", "BaseModel", "ConfigDict",
];

/// One field of a model, or one keyword-only parameter of a tool function.
#[derive(Debug, Clone)]
pub struct Field {
    pub py_name: String,
    pub json_name: String,
    pub ty: String,
    pub required: bool,
    pub default: Option<Value>,
    pub description: Option<String>,
    pub extra: Map<String, Value>,
}

impl Field {
    /// `name: Annotated[T, Field(...)] = default`.
    pub fn render(&self) -> String {
        let mut args = Vec::new();
        if self.py_name != self.json_name {
            args.push(format!("alias={}", python::string(&self.json_name)));
        }
        if let Some(d) = &self.description {
            args.push(format!("description={}", python::string(d)));
        }
        if !self.extra.is_empty() {
            args.push(format!("json_schema_extra={}", python::value(&Value::Object(self.extra.clone()))));
        }
        let ty = if self.required || self.default.is_some() { self.ty.clone() } else { optional(&self.ty) };
        let annotation = if args.is_empty() { ty } else { format!("Annotated[{ty}, Field({})]", args.join(", ")) };
        let default = match (&self.default, self.required) {
            (_, true) => String::new(),
            (Some(d), false) => format!(" = {}", python::value(d)),
            (None, false) => " = None".to_string(),
        };
        format!("{}: {annotation}{default}", self.py_name)
    }
}

/// `T | None`, unless `T` already admits `None`.
fn optional(ty: &str) -> String {
    if ty == "Any" || ty == "None" || ty.ends_with("| None") {
        ty.to_string()
    } else {
        format!("{ty} | None")
    }
}

/// A Pydantic model made from an object schema.
#[derive(Debug, Clone)]
pub struct Class {
    pub name: String,
    pub description: Option<String>,
    /// `"forbid"` (additionalProperties false) or `"allow"`.
    pub extra: Option<&'static str>,
    pub fields: Vec<Field>,
}

impl Class {
    pub fn render(&self) -> String {
        let mut out = format!("class {}(BaseModel):\n", self.name);
        if let Some(d) = &self.description {
            out.push_str(&format!("    {}\n", python::text_block(d, 4)));
        }
        if let Some(extra) = self.extra {
            out.push_str(&format!("    model_config = ConfigDict(extra={})\n", python::string(extra)));
        }
        for f in &self.fields {
            out.push_str(&format!("    {}\n", f.render()));
        }
        if self.description.is_none() && self.extra.is_none() && self.fields.is_empty() {
            out.push_str("    pass\n");
        }
        out
    }
}

/// Converts the schemas of one module; model names are unique in the module's namespace.
pub struct Converter<'a> {
    root: &'a Value,
    names: &'a mut Namer,
    refs: HashMap<String, String>,
    resolving: Vec<String>,
    pub classes: Vec<Class>,
    /// What a human should know: what was not mapped exactly, with where.
    pub notes: Vec<String>,
    /// False once something was typed so that the SDK's strict mode would refuse it (an open
    /// object, `Any`).
    pub strict_ok: bool,
}

impl<'a> Converter<'a> {
    /// `root` is the schema `$ref`s resolve against.
    pub fn new(root: &'a Value, names: &'a mut Namer) -> Self {
        Converter { root, names, refs: HashMap::new(), resolving: Vec::new(), classes: Vec::new(), notes: Vec::new(), strict_ok: true }
    }

    fn note(&mut self, path: &str, what: impl Into<String>) {
        let what = what.into();
        self.notes.push(if path.is_empty() { what } else { format!("{path}: {what}") });
    }

    fn any(&mut self, path: &str, why: &str) -> String {
        self.strict_ok = false;
        self.note(path, format!("{why}: typed Any"));
        "Any".to_string()
    }

    fn open_dict(&mut self, path: &str, why: Option<&str>) -> String {
        self.strict_ok = false;
        if let Some(why) = why {
            self.note(path, format!("{why}: typed dict[str, Any]"));
        }
        "dict[str, Any]".to_string()
    }

    /// The root of a tool's `parameters`: its properties as keyword-only parameters.
    pub fn parameters(&mut self, schema: Option<&Value>, path: &str) -> Vec<Field> {
        let Some(schema) = schema.filter(|s| !s.is_null()) else { return Vec::new() };
        let Some(o) = schema.as_object() else {
            self.note(path, "the parameters are not a JSON schema object: the function takes none; port them by hand");
            self.strict_ok = false;
            return Vec::new();
        };
        let is_object = match o.get("type") {
            None => true,
            Some(Value::String(t)) => t == "object",
            Some(_) => false,
        };
        if !is_object || ["anyOf", "oneOf", "allOf", "$ref"].iter().any(|k| o.contains_key(*k)) {
            self.note(path, "the parameters are not a plain object with properties (a union, a reference or another type at the root): the function takes none of them; port them by hand");
            self.strict_ok = false;
            return Vec::new();
        }
        match o.get("additionalProperties") {
            None | Some(Value::Bool(false)) => {}
            Some(_) => self.note(path, "the original also accepted undeclared parameters (additionalProperties); the generated signature takes the declared ones only"),
        }
        if !o.contains_key("properties") {
            if o.get("additionalProperties").is_some_and(|v| v != &Value::Bool(false)) {
                self.strict_ok = false;
            }
            return Vec::new();
        }
        self.fields(o, path, 0)
    }

    /// A model for an object schema (a `response_format` JSON schema); `None` when the schema
    /// is not an object with properties.
    pub fn model(&mut self, schema: &Value, hint: &str, path: &str) -> Option<String> {
        let o = schema.as_object()?;
        let is_object = matches!(o.get("type"), None | Some(Value::String(_))) && o.get("type").is_none_or(|t| t == "object");
        if !is_object || !o.contains_key("properties") {
            return None;
        }
        Some(self.class(o, hint, path, 0))
    }

    fn fields(&mut self, o: &Map<String, Value>, path: &str, depth: usize) -> Vec<Field> {
        let empty = Map::new();
        let props = match o.get("properties") {
            Some(Value::Object(p)) => p,
            Some(_) => {
                self.note(path, "properties is not an object: ignored");
                &empty
            }
            None => &empty,
        };
        let mut required: Vec<&str> = Vec::new();
        match o.get("required") {
            None => {}
            Some(Value::Array(items)) => {
                for item in items {
                    match item.as_str() {
                        Some(name) if props.contains_key(name) => required.push(name),
                        Some(name) => self.note(path, format!("required names {}, which is not a property: ignored", python::string(name))),
                        None => self.note(path, "required holds a value that is not a string: ignored"),
                    }
                }
            }
            Some(_) => self.note(path, "required is not a list: ignored"),
        }
        let names = field_names(props.keys().map(String::as_str));
        let mut out = Vec::with_capacity(props.len());
        for ((json_name, schema), py_name) in props.iter().zip(names) {
            let field_path = format!("{path}.{}", python::comment_text(json_name));
            let ty = self.ty(schema, &field_path, json_name, depth + 1);
            let so = schema.as_object();
            let description = so.and_then(|s| s.get("description")).and_then(Value::as_str).map(str::to_string);
            let is_required = required.contains(&json_name.as_str());
            let default = so.and_then(|s| s.get("default")).cloned();
            if is_required && default.is_some() {
                self.note(&field_path, "required and with a default: kept required (the default is dropped)");
            }
            let extra: Map<String, Value> = so
                .map(|s| s.iter().filter(|(k, _)| !TYPED_KEYWORDS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            out.push(Field {
                py_name,
                json_name: json_name.clone(),
                ty,
                required: is_required,
                default: if is_required { None } else { default },
                description,
                extra,
            });
        }
        out
    }

    /// The annotation for `schema`; `hint` names a model made for it.
    pub fn ty(&mut self, schema: &Value, path: &str, hint: &str, depth: usize) -> String {
        if depth > MAX_DEPTH {
            return self.any(path, &format!("nested deeper than {MAX_DEPTH} levels"));
        }
        let o = match schema {
            Value::Object(o) => o,
            Value::Bool(true) => {
                self.strict_ok = false;
                return "Any".into();
            }
            _ => return self.any(path, "not a JSON schema object"),
        };
        if let Some(r) = o.get("$ref") {
            return self.reference(r, path, hint, depth);
        }
        if let Some(c) = o.get("const") {
            return self.literal(std::slice::from_ref(c), o, path, hint, depth);
        }
        if let Some(e) = o.get("enum") {
            return match e {
                Value::Array(values) if !values.is_empty() => self.literal(values, o, path, hint, depth),
                _ => self.any(path, "enum is not a non-empty list"),
            };
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(v) = o.get(key) {
                let Value::Array(variants) = v else { return self.any(path, &format!("{key} is not a list")) };
                if key == "oneOf" {
                    self.note(path, "oneOf mapped to a union (the SDK's schema says anyOf)");
                }
                let hint = hint.to_string();
                let types: Vec<String> = variants.iter().enumerate().map(|(i, v)| self.ty(v, &format!("{path}.{key}[{i}]"), &format!("{hint} {}", i + 1), depth + 1)).collect();
                return union(types);
            }
        }
        if let Some(v) = o.get("allOf") {
            return match v {
                Value::Array(parts) if parts.len() == 1 => self.ty(&parts[0], path, hint, depth + 1),
                _ => self.open_dict(path, Some("allOf with several parts has no Python type")),
            };
        }
        match o.get("type") {
            Some(Value::String(t)) => self.single(t, o, path, hint, depth),
            Some(Value::Array(types)) => {
                let types: Vec<String> = types
                    .iter()
                    .map(|t| match t.as_str() {
                        Some(t) => self.single(t, o, path, hint, depth),
                        None => self.any(path, "a type that is not a string"),
                    })
                    .collect();
                if types.is_empty() { self.any(path, "an empty type list") } else { union(types) }
            }
            Some(_) => self.any(path, "type is neither a string nor a list"),
            None if o.contains_key("properties") => self.single("object", o, path, hint, depth),
            None if o.contains_key("items") => self.single("array", o, path, hint, depth),
            None => {
                // `{}` (or only a description): any JSON value, as the original says.
                self.strict_ok = false;
                "Any".into()
            }
        }
    }

    fn single(&mut self, t: &str, o: &Map<String, Value>, path: &str, hint: &str, depth: usize) -> String {
        match t {
            "string" => "str".into(),
            "integer" => "int".into(),
            "number" => "float".into(),
            "boolean" => "bool".into(),
            "null" => "None".into(),
            "array" => match o.get("items").or(o.get("prefixItems")) {
                Some(items @ Value::Object(_)) if o.contains_key("items") => {
                    let item = self.ty(items, &format!("{path}[]"), &format!("{hint} item"), depth + 1);
                    format!("list[{item}]")
                }
                Some(Value::Bool(true)) | None => {
                    self.strict_ok = false;
                    "list[Any]".into()
                }
                Some(_) => {
                    self.strict_ok = false;
                    self.note(path, "tuple-style items have no list type: typed list[Any]");
                    "list[Any]".into()
                }
            },
            "object" => self.object(o, path, hint, depth),
            other => self.any(path, &format!("unknown type {}", python::string(other))),
        }
    }

    fn object(&mut self, o: &Map<String, Value>, path: &str, hint: &str, depth: usize) -> String {
        let has_props = matches!(o.get("properties"), Some(Value::Object(p)) if !p.is_empty());
        match (has_props, o.get("additionalProperties")) {
            (true, _) | (false, Some(Value::Bool(false))) => self.class(o, hint, path, depth),
            (false, Some(ap @ Value::Object(_))) => {
                self.strict_ok = false;
                let value = self.ty(ap, &format!("{path}{{}}"), &format!("{hint} value"), depth + 1);
                format!("dict[str, {value}]")
            }
            (false, _) => self.open_dict(path, None),
        }
    }

    fn class(&mut self, o: &Map<String, Value>, hint: &str, path: &str, depth: usize) -> String {
        let name = self.names.claim(&python::class_name(hint, "Model"));
        let extra = match o.get("additionalProperties") {
            Some(Value::Bool(false)) => Some("forbid"),
            None => None,
            Some(Value::Object(_)) => {
                self.strict_ok = false;
                self.note(path, "additionalProperties with a schema next to properties: extra properties are allowed, not checked");
                Some("allow")
            }
            Some(_) => {
                self.strict_ok = false;
                Some("allow")
            }
        };
        let fields = self.fields(o, path, depth);
        let description = o.get("description").and_then(Value::as_str).map(str::to_string);
        self.classes.push(Class { name: name.clone(), description, extra, fields });
        name
    }

    fn literal(&mut self, values: &[Value], o: &Map<String, Value>, path: &str, hint: &str, depth: usize) -> String {
        let (nulls, rest): (Vec<&Value>, Vec<&Value>) = values.iter().partition(|v| v.is_null());
        if rest.iter().any(|v| !(v.is_string() || v.is_boolean() || v.as_i64().is_some() || v.as_u64().is_some())) {
            self.note(path, "enum or const with values Literal cannot hold (floats, lists, objects): typed by its type, the values not checked");
            let mut plain = o.clone();
            plain.remove("enum");
            plain.remove("const");
            return self.ty(&Value::Object(plain), path, hint, depth + 1);
        }
        let mut parts = Vec::new();
        if !rest.is_empty() {
            parts.push(format!("Literal[{}]", rest.iter().map(|v| python::value(v)).collect::<Vec<_>>().join(", ")));
        }
        if !nulls.is_empty() {
            parts.push("None".to_string());
        }
        union(parts)
    }

    fn reference(&mut self, r: &Value, path: &str, hint: &str, depth: usize) -> String {
        let Some(r) = r.as_str() else { return self.any(path, "$ref is not a string") };
        if let Some(done) = self.refs.get(r) {
            return done.clone();
        }
        if self.resolving.iter().any(|x| x == r) {
            return self.open_dict(path, Some(&format!("recursive $ref {}", python::string(r))));
        }
        let target = r.strip_prefix('#').and_then(|pointer| self.root.pointer(pointer)).cloned();
        let Some(target) = target else {
            return self.any(path, &format!("$ref {} does not point into this schema", python::string(r)));
        };
        let def_hint = r.rsplit('/').next().filter(|s| !s.is_empty()).unwrap_or(hint).to_string();
        self.resolving.push(r.to_string());
        let ty = self.ty(&target, path, &def_hint, depth + 1);
        self.resolving.pop();
        self.refs.insert(r.to_string(), ty.clone());
        ty
    }
}

/// `A | B`, duplicates dropped, `None` last.
fn union(types: Vec<String>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut none = false;
    for t in types {
        for part in split_union(&t) {
            if part == "None" {
                none = true;
            } else if !out.contains(&part) {
                out.push(part);
            }
        }
    }
    if out.iter().any(|t| t == "Any") {
        return "Any".into();
    }
    if none {
        out.push("None".into());
    }
    out.join(" | ")
}

/// The top-level parts of `A | B`: not inside brackets, not inside a string literal.
fn split_union(t: &str) -> Vec<String> {
    let (mut parts, mut current) = (Vec::new(), String::new());
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            current.push(c);
            continue;
        }
        match c {
            '"' => in_string = true,
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ' ' if depth == 0 && chars.peek() == Some(&'|') => {
                chars.next();
                if chars.peek() == Some(&' ') {
                    chars.next();
                }
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts
}

/// Python names for JSON property names: kept when Python and pydantic take them as written,
/// else made into identifiers (the JSON name becomes the field's alias), all distinct. Names
/// kept as written are claimed first, so that they never change because of another's.
pub fn field_names<'a>(json_names: impl Iterator<Item = &'a str> + Clone) -> Vec<String> {
    let usable = |n: &str| python::is_plain_identifier(n) && !n.starts_with('_') && !n.starts_with("model_") && !RESERVED_FIELDS.contains(&n);
    let mut namer = Namer::default();
    for n in json_names.clone().filter(|n| usable(n)) {
        namer.claim(n);
    }
    json_names
        .map(|n| {
            if usable(n) {
                return n.to_string();
            }
            let mut base = python::identifier(n, "field", false);
            if base.starts_with("model_") || RESERVED_FIELDS.contains(&base.as_str()) {
                base.push('_');
            }
            namer.claim(&base)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn convert(schema: Value) -> (Vec<String>, Vec<String>, Vec<String>, bool) {
        let mut names = Namer::default();
        let mut c = Converter::new(&schema, &mut names);
        let fields: Vec<String> = c.parameters(Some(&schema), "t").iter().map(Field::render).collect();
        let classes = c.classes.iter().map(Class::render).collect();
        (fields, classes, c.notes.clone(), c.strict_ok)
    }

    #[test]
    fn plain_types_optional_defaults_enums() {
        let (f, classes, notes, strict) = convert(json!({
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The \"city\""},
                "days": {"type": "integer", "default": 3},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "when": {"type": ["string", "null"], "format": "date"},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["city", "when"]
        }));
        assert_eq!(f, vec![
            r#"city: Annotated[str, Field(description="The \"city\"")]"#,
            "days: int = 3",
            r#"unit: Literal["c", "f"] | None = None"#,
            r#"when: Annotated[str | None, Field(json_schema_extra={"format": "date"})]"#,
            "tags: list[str] | None = None",
        ]);
        assert!(classes.is_empty() && notes.is_empty() && strict, "{notes:?}");
    }

    #[test]
    fn nested_objects_become_models_and_hostile_names_aliases() {
        let (f, classes, _, strict) = convert(json!({
            "properties": {
                "class": {"type": "object", "properties": {"first-name": {"type": "string"}, "_x": {"type": "number"}}, "required": ["first-name"], "additionalProperties": false},
                "first_name": {"type": "string"},
                "first-name": {"type": "string"},
                "json": {"type": "boolean"}
            },
            "required": ["class"]
        }));
        assert_eq!(f[0], "class_: Annotated[Class, Field(alias=\"class\")]");
        assert_eq!(f[1], "first_name: str | None = None");
        assert_eq!(f[2], "first_name_2: Annotated[str | None, Field(alias=\"first-name\")] = None");
        assert_eq!(f[3], "json_: Annotated[bool | None, Field(alias=\"json\")] = None");
        assert_eq!(classes[0], "class Class(BaseModel):\n    model_config = ConfigDict(extra=\"forbid\")\n    first_name: Annotated[str, Field(alias=\"first-name\")]\n    x: Annotated[float | None, Field(alias=\"_x\")] = None\n");
        assert!(strict);
    }

    #[test]
    fn refs_unions_and_the_unmappable_never_crash() {
        let (f, classes, notes, strict) = convert(json!({
            "type": "object",
            "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}, "Pt": {"type": "object", "properties": {"x": {"type": "number"}}}},
            "properties": {
                "a": {"$ref": "#/$defs/Pt"},
                "b": {"$ref": "#/$defs/Pt"},
                "n": {"$ref": "#/$defs/Node"},
                "u": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
                "m": {"type": "object", "additionalProperties": {"type": "integer"}},
                "w": {"type": "widget"},
                "all": {"allOf": [{"type": "string"}, {"minLength": 1}]},
                "ext": {"$ref": "https://example.com/x.json"},
                "f": {"enum": [1.5, 2.5], "type": "number"},
                "deep": (0..40).fold(json!({"type": "string"}), |acc, _| json!({"type": "array", "items": acc}))
            }
        }));
        assert_eq!(f[0], "a: Pt | None = None");
        assert_eq!(f[1], "b: Pt | None = None");
        assert_eq!(f[2], "n: Node | None = None");
        assert_eq!(f[3], "u: str | int | None = None");
        assert_eq!(f[4], "m: dict[str, int] | None = None");
        assert_eq!(f[5], "w: Any = None");
        assert_eq!(f[6], "all: dict[str, Any] | None = None");
        assert_eq!(f[7], "ext: Any = None");
        assert_eq!(f[8], "f: float | None = None");
        assert!(f[9].starts_with("deep: list[list["), "{}", f[9]);
        assert!(classes.iter().any(|c| c.contains("next: dict[str, Any] | None = None")), "{classes:?}");
        for needle in ["recursive $ref", "unknown type \"widget\"", "allOf", "does not point into", "Literal cannot hold", "deeper than"] {
            assert!(notes.iter().any(|n| n.contains(needle)), "{needle}: {notes:?}");
        }
        assert!(!strict);
    }

    #[test]
    fn unions_split_only_at_the_top_level() {
        assert_eq!(split_union(r#"list[str | None] | Literal["a | b", "c\\\" | d"] | None"#), vec!["list[str | None]", r#"Literal["a | b", "c\\\" | d"]"#, "None"]);
        assert_eq!(union(vec!["list[int | None]".into(), "None".into(), "str | None".into()]), "list[int | None] | str | None");
    }

    #[test]
    fn roots_that_are_not_objects_take_no_parameters() {
        for schema in [json!("x"), json!({"anyOf": [{"type": "object"}]}), json!({"type": "array"})] {
            let (f, _, notes, _) = convert(schema);
            assert!(f.is_empty() && notes.len() == 1, "{notes:?}");
        }
        let (f, _, notes, _) = convert(json!({"type": "object"}));
        assert!(f.is_empty() && notes.is_empty());
    }
}
