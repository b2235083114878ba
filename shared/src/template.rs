//! The part of Go's `text/template` that ko applies to flags and ldflags: `{{ .Field.Path }}`
//! lookups (with `{{-`/`-}}` trimming), `index` on maps, and comments. A missing key is an
//! error, as with Go's `missingkey=error`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Map(BTreeMap<String, Value>),
}

impl Value {
    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    fn render(&self, out: &mut String) {
        match self {
            Value::Str(s) => out.push_str(s),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            Value::Map(m) => {
                out.push_str("map[");
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.render(out);
                }
                out.push(']');
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("template {template:?}: {reason}")]
pub struct TemplateError {
    pub template: String,
    pub reason: String,
}

/// Renders `template` against `data`.
pub fn render(template: &str, data: &Value) -> Result<String, TemplateError> {
    let fail = |reason: String| TemplateError { template: template.to_string(), reason };
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        let after_open = &rest[open + 2..];
        let (trim_left, body_start) = match after_open.strip_prefix("- ") {
            Some(b) => (true, b),
            None => (false, after_open),
        };
        if trim_left {
            text = text.trim_end();
        }
        out.push_str(text);
        let close = body_start.find("}}").ok_or_else(|| fail("unclosed action: missing }}".into()))?;
        let mut body = &body_start[..close];
        let mut after = &body_start[close + 2..];
        if let Some(b) = body.strip_suffix(" -") {
            body = b;
            after = after.trim_start();
        }
        let body = body.trim();
        if !(body.starts_with("/*") && body.ends_with("*/")) {
            evaluate(body, data).map_err(fail)?.render(&mut out);
        }
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

fn evaluate(expr: &str, data: &Value) -> Result<Value, String> {
    let words = split_words(expr)?;
    match words.as_slice() {
        [] => Err("empty action {{ }}".into()),
        [single] => operand(single, data),
        [func, args @ ..] if func == "index" => {
            let (first, keys) = args.split_first().ok_or("index needs a map and a key")?;
            let mut value = operand(first, data)?;
            for key in keys {
                let key = match operand(key, data)? {
                    Value::Str(s) => s,
                    other => return Err(format!("index key must be a string, got {other:?}")),
                };
                value = lookup(&value, &key)?;
            }
            Ok(value)
        }
        [func, ..] => Err(format!("function {func:?} is not supported (use .Field lookups or index)")),
    }
}

fn operand(word: &str, data: &Value) -> Result<Value, String> {
    if let Some(literal) = word.strip_prefix('"') {
        return Ok(Value::Str(literal.trim_end_matches('"').to_string()));
    }
    if word == "." {
        return Ok(data.clone());
    }
    let path = word.strip_prefix('.').ok_or_else(|| format!("cannot evaluate {word:?}: expected .Field"))?;
    let mut value = data.clone();
    for field in path.split('.') {
        value = lookup(&value, field)?;
    }
    Ok(value)
}

fn lookup(value: &Value, key: &str) -> Result<Value, String> {
    match value {
        Value::Map(map) => map.get(key).cloned().ok_or_else(|| format!("map has no entry for key {key:?}")),
        other => Err(format!("cannot look up {key:?} in {other:?}")),
    }
}

fn split_words(expr: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = expr.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut word = String::from("\"");
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => word.push(chars.next().ok_or("unterminated string")?),
                    Some(c) => word.push(c),
                    None => return Err("unterminated string".into()),
                }
            }
            words.push(word);
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
            words.push(word);
        }
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Value {
        Value::map([
            ("Env", Value::map([("LDFLAGS", Value::Str(String::new())), ("VERSION", Value::Str("1.2.3".into()))])),
            ("Git", Value::map([("ShortCommit", Value::Str("abc1234".into())), ("IsDirty", Value::Bool(false))])),
            ("Timestamp", Value::Int(42)),
        ])
    }

    #[test]
    fn renders_field_lookups() {
        let out = render("-X main.version={{.Env.VERSION}} -X main.commit={{ .Git.ShortCommit }}", &data()).unwrap();
        assert_eq!(out, "-X main.version=1.2.3 -X main.commit=abc1234");
        assert_eq!(render("{{.Timestamp}}/{{.Git.IsDirty}}", &data()).unwrap(), "42/false");
        assert_eq!(render(r#"{{ index .Env "VERSION" }}"#, &data()).unwrap(), "1.2.3");
        assert_eq!(render("a  {{- .Timestamp -}}  b{{/* note */}}", &data()).unwrap(), "a42b");
        assert_eq!(render("{{ .Env.LDFLAGS }}", &data()).unwrap(), "");
    }

    #[test]
    fn missing_keys_are_errors_that_name_the_key() {
        let err = render("{{ .Env.NOPE }}", &data()).unwrap_err();
        assert!(err.to_string().contains("NOPE"), "{err}");
        assert!(render("{{ .Env.VERSION", &data()).is_err());
        assert!(render("{{ printf \"%s\" .Env.VERSION }}", &data()).is_err());
    }
}
