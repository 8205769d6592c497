//! The structural check: walks a document tree against a JSON Schema (the one
//! schemars derives from our types) and reports every key that is unknown,
//! missing or of the wrong kind, all at once, each at its position.
//!
//! While walking it also reads each scalar as the schema expects it (the
//! plain scalar `1984` is text where text is expected, a number where a number
//! is), producing a JSON value that serde can turn into the typed structs
//! without surprises. Only the subset of JSON Schema that schemars emits for
//! our types is understood.

use serde_json::{Map, Number, Value};

use super::path::{Path, Seg};
use super::tree::{Kind, Node, Plain, Span};
use crate::diagnostic::{closest, did_you_mean, one_of};

/// A structural problem, before it is given a file location.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Stable name of the kind of problem.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub hint: Option<String>,
    /// Where in the text.
    pub span: Span,
    /// Where in the document.
    pub path: Path,
}

/// What a walk finds: problems to report, and the places whose values were
/// replaced by stand-ins (every problem's place, and a few more whose
/// problem is already reported under another name).
#[derive(Debug, Default)]
pub struct Findings {
    /// Problems to report.
    pub problems: Vec<Problem>,
    /// Places holding stand-ins.
    pub replaced: Vec<Path>,
}

impl Findings {
    fn push(&mut self, problem: Problem) {
        self.replaced.push(problem.path.clone());
        self.problems.push(problem);
    }

    fn extend(&mut self, other: Findings) {
        self.problems.extend(other.problems);
        self.replaced.extend(other.replaced);
    }

    fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A schema with its definitions, ready to check documents.
pub struct Shape<'s> {
    root: &'s Value,
}

impl<'s> Shape<'s> {
    /// Wraps a schema as schemars emits it (draft-07, definitions under
    /// `definitions`).
    pub fn new(root: &'s Value) -> Self {
        Self { root }
    }

    /// Checks `node` against the schema. Returns the document as JSON, with
    /// stand-ins of the right type where values were wrong or missing, and
    /// every problem found.
    pub fn check(&self, node: &Node) -> (Value, Findings) {
        let mut findings = Findings::default();
        let mut path = Path::default();
        let value = self.walk(self.root, node, &mut path, None, &mut findings);
        (value, findings)
    }

    fn resolve(&self, schema: &'s Value) -> &'s Value {
        let mut schema = schema;
        // A chain of references ends; schemars never emits cycles without
        // a type in between, and depth is bounded anyway.
        for _ in 0..16 {
            let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
                break;
            };
            let Some(name) = reference.strip_prefix("#/definitions/") else {
                break;
            };
            match self.root.get("definitions").and_then(|d| d.get(name)) {
                Some(target) => schema = target,
                None => break,
            }
        }
        schema
    }

    fn walk(
        &self,
        schema: &'s Value,
        node: &Node,
        path: &mut Path,
        key_span: Option<Span>,
        out: &mut Findings,
    ) -> Value {
        let schema = self.resolve(schema);
        let Some(obj) = schema.as_object() else {
            // `true` (anything goes) or `false`.
            return generic(node);
        };
        if let Some(alternatives) = obj
            .get("anyOf")
            .or_else(|| obj.get("oneOf"))
            .and_then(Value::as_array)
        {
            return self.walk_alternatives(alternatives, node, path, key_span, out);
        }
        if let Some(Value::Array(all)) = obj.get("allOf") {
            // schemars wraps a `$ref` that has a description or default in
            // `allOf`; every part must hold, and the first gives the value.
            let mut value = Value::Null;
            for (i, part) in all.iter().enumerate() {
                let v = self.walk(part, node, path, key_span, out);
                if i == 0 {
                    value = v;
                }
            }
            return value;
        }
        if let Some(constant) = obj.get("const") {
            return check_choices(std::slice::from_ref(constant), node, path, out);
        }
        let types = type_names(obj);
        if types.is_empty() {
            return generic(node);
        }
        if types.contains(&"null") && node.plain() == Some(Plain::Null) {
            return Value::Null;
        }
        let value = match (&node.kind, pick_type(&types, node)) {
            (Kind::Map(entries), Some("object")) => {
                self.walk_object(obj, node, entries, path, key_span, out)
            }
            (Kind::Seq(items), Some("array")) => {
                let items_schema = obj.get("items").unwrap_or(&Value::Bool(true));
                let mut values = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    path.push(Seg::Index(i));
                    values.push(self.walk(items_schema, item, path, None, out));
                    path.pop();
                }
                Value::Array(values)
            }
            (Kind::Scalar { text, .. }, Some(ty)) => match scalar_as(ty, node, text, obj) {
                Ok(v) => v,
                Err((message, hint)) => {
                    out.push(problem("out-of-range", message, hint, node.span, path));
                    return self.placeholder(schema);
                }
            },
            _ => {
                out.push(type_mismatch(&types, node, path));
                return self.placeholder(schema);
            }
        };
        if let Some(choices) = obj.get("enum").and_then(Value::as_array) {
            return check_choices(choices, node, path, out);
        }
        value
    }

    fn walk_alternatives(
        &self,
        alternatives: &'s [Value],
        node: &Node,
        path: &mut Path,
        key_span: Option<Span>,
        out: &mut Findings,
    ) -> Value {
        let resolved: Vec<&Value> = alternatives.iter().map(|a| self.resolve(a)).collect();
        let is_null = |s: &Value| s.get("type").and_then(Value::as_str) == Some("null");
        if node.plain() == Some(Plain::Null) && resolved.iter().any(|s| is_null(s)) {
            return Value::Null;
        }
        let real: Vec<&Value> = resolved.into_iter().filter(|s| !is_null(s)).collect();
        // A string enum written as one `const` per documented variant.
        let constants: Option<Vec<Value>> = real
            .iter()
            .map(|s| {
                s.get("const").cloned().or_else(|| {
                    s.get("enum")
                        .and_then(Value::as_array)
                        .and_then(|a| (a.len() == 1).then(|| a[0].clone()))
                })
            })
            .collect();
        if let Some(constants) = constants {
            return check_choices(&constants, node, path, out);
        }
        if let [only] = real.as_slice() {
            return self.walk(only, node, path, key_span, out);
        }
        let mut first_problems = None;
        for alternative in &real {
            let mut scratch = Findings::default();
            let value = self.walk(alternative, node, path, key_span, &mut scratch);
            if scratch.is_empty() {
                return value;
            }
            first_problems.get_or_insert(scratch);
        }
        out.extend(first_problems.unwrap_or_default());
        real.first().map_or(Value::Null, |s| self.placeholder(s))
    }

    /// A value of the schema's type standing in for one that was wrong or
    /// missing, so that the rest of the document can still be read and
    /// checked. Diagnostics about the replaced place are dropped later
    /// (see [`Problem::path`]), so the stand-in is never reported.
    fn placeholder(&self, schema: &'s Value) -> Value {
        let schema = self.resolve(schema);
        let Some(obj) = schema.as_object() else {
            return Value::Null;
        };
        if let Some(first) = obj.get("const") {
            return first.clone();
        }
        if let Some(first) = obj
            .get("enum")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            return first.clone();
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            if let Some(parts) = obj.get(key).and_then(Value::as_array) {
                let is_null = |s: &&Value| s.get("type").and_then(Value::as_str) == Some("null");
                if key != "allOf" && parts.iter().map(|p| self.resolve(p)).any(|p| is_null(&p)) {
                    return Value::Null;
                }
                return parts.first().map_or(Value::Null, |p| self.placeholder(p));
            }
        }
        let types = type_names(obj);
        if types.contains(&"null") {
            return Value::Null;
        }
        match types.first().copied() {
            Some("object") => {
                let mut map = Map::new();
                let properties = obj.get("properties").and_then(Value::as_object);
                for name in obj
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    let v = properties
                        .and_then(|p| p.get(name))
                        .map_or(Value::Null, |p| self.placeholder(p));
                    map.insert(name.to_string(), v);
                }
                Value::Object(map)
            }
            Some("array") => Value::Array(Vec::new()),
            Some("string") => Value::String(String::new()),
            Some("integer" | "number") => Value::Number(Number::from(
                obj.get("minimum").and_then(Value::as_i64).unwrap_or(0),
            )),
            Some("boolean") => Value::Bool(false),
            _ => Value::Null,
        }
    }

    fn walk_object(
        &self,
        obj: &'s Map<String, Value>,
        node: &Node,
        entries: &[(Node, Node)],
        path: &mut Path,
        key_span: Option<Span>,
        out: &mut Findings,
    ) -> Value {
        let empty = Map::new();
        let properties = obj
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let additional = obj.get("additionalProperties");
        let mut result = Map::new();
        // Keys the unknown ones were probably meant to be: their absence is
        // the same mistake and is not reported twice.
        let mut meant: Vec<String> = Vec::new();
        for (key, value) in entries {
            let name = key.scalar_text().unwrap_or_default().to_string();
            path.push(Seg::Key(name.clone()));
            if let Some(property) = properties.get(&name) {
                let v = self.walk(property, value, path, Some(key.span), out);
                result.insert(name, v);
            } else {
                match additional {
                    Some(Value::Bool(false)) => {
                        path.pop();
                        let problem = unknown_key(&name, properties, key.span, path);
                        if let Some(guess) = closest(&name, properties.keys().map(String::as_str)) {
                            meant.push(guess.to_string());
                        }
                        out.push(problem);
                        continue;
                    }
                    Some(schema) => {
                        let v = self.walk(schema, value, path, Some(key.span), out);
                        result.insert(name, v);
                    }
                    None => {
                        result.insert(name, generic(value));
                    }
                }
            }
            path.pop();
        }
        if let Some(required) = obj.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !result.contains_key(name)
                    && !entries.iter().any(|(k, _)| k.scalar_text() == Some(name))
                {
                    let stand_in = properties
                        .get(name)
                        .map_or(Value::Null, |p| self.placeholder(p));
                    result.insert(name.to_string(), stand_in);
                    if meant.iter().any(|m| m == name) {
                        out.replaced.push(path.key(name));
                        continue;
                    }
                    let description = properties
                        .get(name)
                        .map(|p| self.resolve(p))
                        .and_then(|p| p.get("description"))
                        .and_then(Value::as_str)
                        .map(first_sentence);
                    let hint = match description {
                        Some(d) => format!("add `{name}:`, {d}"),
                        None => format!("add `{name}:`"),
                    };
                    let message = if path.is_root() {
                        format!("the key `{name}` is missing")
                    } else {
                        format!("{} is missing the key `{name}`", path.for_people())
                    };
                    out.push(problem(
                        "missing-key",
                        message,
                        Some(hint),
                        key_span.unwrap_or(node.span),
                        &path.key(name),
                    ));
                }
            }
        }
        Value::Object(result)
    }
}

fn problem(
    code: &'static str,
    message: String,
    hint: Option<String>,
    span: Span,
    path: &Path,
) -> Problem {
    Problem {
        code,
        message,
        hint,
        span,
        path: path.clone(),
    }
}

fn first_sentence(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    let line = line.split(". ").next().unwrap_or(line);
    let mut s = line.trim_end_matches('.').to_string();
    if let Some(first) = s.get(0..1) {
        let lower = first.to_lowercase();
        s.replace_range(0..1, &lower);
    }
    s
}

fn unknown_key(name: &str, properties: &Map<String, Value>, span: Span, path: &Path) -> Problem {
    let allowed: Vec<&str> = properties.keys().map(String::as_str).collect();
    let hint = did_you_mean(name, allowed.iter().copied()).or_else(|| {
        Some(format!(
            "the keys allowed here are {}",
            one_of(allowed.iter().copied())
        ))
    });
    let message = if path.is_root() {
        format!("unknown top-level key `{name}`")
    } else {
        format!("unknown key `{name}` in {}", path.for_people())
    };
    let mut key_path = path.clone();
    key_path.push(Seg::Key(name.to_string()));
    problem("unknown-key", message, hint, span, &key_path)
}

fn type_names(obj: &Map<String, Value>) -> Vec<&str> {
    match obj.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => {
            if obj.contains_key("properties") {
                vec!["object"]
            } else {
                Vec::new()
            }
        }
    }
}

/// Chooses which of the allowed types the node is read as.
fn pick_type<'t>(types: &[&'t str], node: &Node) -> Option<&'t str> {
    let wanted = |t: &str| types.iter().copied().find(|x| *x == t);
    match &node.kind {
        Kind::Map(_) => wanted("object"),
        Kind::Seq(_) => wanted("array"),
        Kind::Scalar { .. } => match node.plain() {
            Some(Plain::Bool(_)) => wanted("boolean"),
            Some(Plain::Int(_)) => wanted("integer")
                .or_else(|| wanted("number"))
                .or_else(|| wanted("string")),
            Some(Plain::Float(_)) => wanted("number").or_else(|| wanted("string")),
            Some(Plain::Null) => None,
            _ => wanted("string"),
        },
    }
}

fn scalar_as(
    ty: &str,
    node: &Node,
    text: &str,
    obj: &Map<String, Value>,
) -> Result<Value, (String, Option<String>)> {
    match (ty, node.plain()) {
        ("boolean", Some(Plain::Bool(b))) => Ok(Value::Bool(b)),
        ("integer", Some(Plain::Int(n))) => {
            let (min, max) = integer_range(obj);
            if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                // The top of an unsigned type is no limit a person chose.
                let max = max.filter(|m| *m < i64::from(i32::MAX));
                let range = match (min, max) {
                    (Some(a), Some(b)) => format!("from {a} to {b}"),
                    (Some(a), None) => format!("of {a} or more"),
                    (None, Some(b)) => format!("of at most {b}"),
                    (None, None) => String::new(),
                };
                Err((
                    format!("`{n}` is out of range"),
                    Some(format!("write a whole number {range}")),
                ))
            } else {
                Ok(Value::Number(Number::from(n)))
            }
        }
        ("number", Some(Plain::Int(n))) => Ok(Value::Number(Number::from(n))),
        ("number", Some(Plain::Float(f))) => {
            Ok(Number::from_f64(f).map_or(Value::Null, Value::Number))
        }
        _ => Ok(Value::String(text.to_string())),
    }
}

fn integer_range(obj: &Map<String, Value>) -> (Option<i64>, Option<i64>) {
    let by_format = match obj.get("format").and_then(Value::as_str) {
        Some("uint8") => (Some(0), Some(i64::from(u8::MAX))),
        Some("uint16") => (Some(0), Some(i64::from(u16::MAX))),
        Some("uint32") => (Some(0), Some(i64::from(u32::MAX))),
        Some("uint64" | "uint") => (Some(0), None),
        _ => (None, None),
    };
    let min = obj.get("minimum").and_then(Value::as_i64).or(by_format.0);
    let max = obj.get("maximum").and_then(Value::as_i64).or(by_format.1);
    (min, max)
}

fn describe_type(ty: &str) -> &'static str {
    match ty {
        "object" => "a mapping",
        "array" => "a list",
        "string" => "text",
        "integer" => "a whole number",
        "number" => "a number",
        "boolean" => "`true` or `false`",
        _ => "nothing",
    }
}

fn type_mismatch(types: &[&str], node: &Node, path: &Path) -> Problem {
    let expected: Vec<&str> = types
        .iter()
        .filter(|t| **t != "null")
        .map(|t| describe_type(t))
        .collect();
    let expected = match expected.as_slice() {
        [] => "nothing".to_string(),
        [one] => (*one).to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    };
    let found = node.describe();
    let message = format!("{} must be {expected}, not {found}", path.for_people());
    let text = node.scalar_text().unwrap_or_default();
    let hint = if types.contains(&"boolean") {
        let lower = text.to_lowercase();
        if ["yes", "no", "on", "off", "y", "n", "true", "false"].contains(&lower.as_str()) {
            Some(format!(
                "write `{}`: voisin reads only `true` and `false` as booleans",
                if ["yes", "on", "y", "true"].contains(&lower.as_str()) {
                    "true"
                } else {
                    "false"
                }
            ))
        } else {
            Some("write `true` or `false`".to_string())
        }
    } else if types.contains(&"array") && matches!(node.kind, Kind::Scalar { .. }) {
        Some(format!(
            "write a list, like `[{text}]`, or one `- item` per line"
        ))
    } else if types.contains(&"array") {
        Some("write one `- ` item per line".to_string())
    } else if types.contains(&"object") && !matches!(node.kind, Kind::Map(_)) {
        Some("write its keys on the lines below, indented".to_string())
    } else if types.contains(&"string")
        && matches!(node.plain(), Some(Plain::Bool(_) | Plain::Null))
    {
        Some(format!("put the text in quotes: `\"{text}\"`"))
    } else if types.contains(&"integer") {
        Some("write a whole number, like `21`".to_string())
    } else {
        None
    };
    problem("wrong-type", message, hint, node.span, path)
}

fn check_choices(choices: &[Value], node: &Node, path: &Path, out: &mut Findings) -> Value {
    let names: Vec<&str> = choices.iter().filter_map(Value::as_str).collect();
    if let Some(text) = node.scalar_text()
        && node.plain() != Some(Plain::Null)
        && let Some(found) = choices.iter().find(|c| c.as_str() == Some(text))
    {
        return found.clone();
    }
    let hint = node
        .scalar_text()
        .and_then(|t| did_you_mean(t, names.iter().copied()))
        .or_else(|| Some(format!("write {}", one_of(names.iter().copied()))));
    out.push(problem(
        "unknown-value",
        format!(
            "{} must be {}, not {}",
            path.for_people(),
            one_of(names.iter().copied()),
            node.describe()
        ),
        hint,
        node.span,
        path,
    ));
    choices.first().cloned().unwrap_or(Value::Null)
}

/// Reads a node with no schema to guide it, under the core schema.
pub fn generic(node: &Node) -> Value {
    match &node.kind {
        Kind::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.scalar_text().unwrap_or_default().to_string(), generic(v)))
                .collect(),
        ),
        Kind::Seq(items) => Value::Array(items.iter().map(generic).collect()),
        Kind::Scalar { text, .. } => match node.plain() {
            Some(Plain::Null) => Value::Null,
            Some(Plain::Bool(b)) => Value::Bool(b),
            Some(Plain::Int(n)) => Value::Number(n.into()),
            Some(Plain::Float(f)) => {
                Number::from_f64(f).map_or_else(|| Value::String(text.clone()), Value::Number)
            }
            _ => Value::String(text.clone()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::tree::parse;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "name": { "type": "string", "description": "What it is called." },
                "count": { "type": "integer", "format": "uint32", "minimum": 0 },
                "on": { "type": "boolean" },
                "tags": { "type": "array", "items": { "type": "string" } },
                "lang": { "type": "string", "enum": ["fr", "en"] },
                "inner": { "$ref": "#/definitions/Inner" },
            },
            "required": ["name"],
            "additionalProperties": false,
            "definitions": {
                "Inner": { "type": ["object", "null"], "properties": { "x": { "type": "string" } }, "additionalProperties": false }
            }
        })
    }

    fn problems(yaml: &str) -> Vec<(String, &'static str, usize, usize)> {
        let schema = schema();
        let node = parse(yaml).expect("parses");
        let (_, found) = Shape::new(&schema).check(&node);
        found
            .problems
            .into_iter()
            .map(|p| (p.message, p.code, p.span.start.line, p.span.start.column))
            .collect()
    }

    #[test]
    fn reads_scalars_as_the_schema_expects() {
        let schema = schema();
        let node = parse("name: 1984\ncount: 3\non: true\ntags: [a, 2]\n").expect("parses");
        let (value, found) = Shape::new(&schema).check(&node);
        assert!(found.is_empty());
        assert_eq!(
            value,
            json!({"name": "1984", "count": 3, "on": true, "tags": ["a", "2"]})
        );
    }

    #[test]
    fn reports_every_problem_at_once() {
        let found = problems("zzz: x\ncount: -1\non: yes\ntags: a\nlang: de\ninner: { y: 1 }\n");
        let codes: Vec<&str> = found.iter().map(|p| p.1).collect();
        assert_eq!(
            codes,
            [
                "unknown-key",
                "out-of-range",
                "wrong-type",
                "wrong-type",
                "unknown-value",
                "unknown-key",
                "missing-key"
            ]
        );
        assert_eq!(found[0].2, 1);
        assert_eq!(
            found[2],
            (
                "`on` must be `true` or `false`, not the text `yes`".into(),
                "wrong-type",
                3,
                5
            )
        );
    }

    #[test]
    fn a_misspelt_key_is_not_also_reported_missing() {
        let found = problems("nmae: x\n");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1, "unknown-key");
    }

    #[test]
    fn missing_key_hint_uses_the_description() {
        let schema = schema();
        let node = parse("count: 1\n").expect("parses");
        let (_, ps) = Shape::new(&schema).check(&node);
        assert_eq!(
            ps.problems[0].hint.as_deref(),
            Some("add `name:`, what it is called")
        );
    }

    #[test]
    fn stands_in_for_wrong_and_missing_values() {
        let schema = schema();
        let node = parse("count: lots\nlang: de\n").expect("parses");
        let (value, found) = Shape::new(&schema).check(&node);
        assert_eq!(value, json!({"name": "", "count": 0, "lang": "fr"}));
        let paths: Vec<String> = found.problems.iter().map(|p| p.path.to_string()).collect();
        assert_eq!(paths, ["count", "lang", "name"]);
    }

    #[test]
    fn optional_sections_accept_null() {
        assert!(problems("name: a\ninner:\n").is_empty());
    }
}
