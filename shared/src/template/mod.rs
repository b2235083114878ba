//! The part of Go's `text/template` that ko applies to flags and ldflags ([`parse`]: actions,
//! pipelines, variables, `if`/`with`/`range`; [`exec`]: `missingkey=error` lookups and the
//! built-in functions; [`fmt`]: `print` and `printf`). A missing key is an error, as with
//! Go's `missingkey=error`.

mod exec;
mod fmt;
#[cfg(test)]
mod go_parity;
mod parse;

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Map(BTreeMap<String, Value>),
    /// What `index` gives for a key a map of mixed values lacks.
    Nil,
}

impl Value {
    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
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
    let nodes = parse::parse(template).map_err(fail)?;
    exec::execute(&nodes, data).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The data of these tests and of `go_parity`'s (`testdata/render.go` holds the same).
    pub(super) fn data() -> Value {
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
        assert!(render("{{ nope .Env.VERSION }}", &data()).unwrap_err().to_string().contains("\"nope\" not defined"));
        let err = render("{{ .Git.ShortCommit.More }}", &data()).unwrap_err();
        assert!(err.to_string().contains("can't evaluate field More"), "{err}");
        assert!(render("{{ if .Git.IsDirty }}x", &data()).unwrap_err().to_string().contains("EOF"));
        assert!(render("{{ end }}", &data()).is_err());
        assert!(render("{{ break }}", &data()).is_err());
        assert!(render("{{ define \"x\" }}{{ end }}", &data()).is_err());
        assert!(render("{{ $x }}", &data()).unwrap_err().to_string().contains("undefined variable"));
        assert!(render("{{ eq .Timestamp \"42\" }}", &data()).unwrap_err().to_string().contains("incompatible"));
    }

    #[test]
    fn conditionals_and_with_choose_a_branch() {
        let version = "{{.Env.VERSION}}{{ if .Git.IsDirty }}-dirty{{ end }}";
        assert_eq!(render(version, &data()).unwrap(), "1.2.3");
        let chain = "{{if eq .Env.VERSION \"1.0\"}}one{{else if ne .Timestamp 42}}two{{else}}three{{end}}";
        assert_eq!(render(chain, &data()).unwrap(), "three");
        assert_eq!(render("{{with .Env.LDFLAGS}}[{{.}}]{{else}}none{{end}}", &data()).unwrap(), "none");
        assert_eq!(render("{{with .Env.VERSION}}v{{.}}{{end}}", &data()).unwrap(), "v1.2.3");
        assert_eq!(render("{{if and .Git.ShortCommit (not .Git.IsDirty)}}ok{{end}}", &data()).unwrap(), "ok");
        assert_eq!(render("{{or .Env.LDFLAGS \"dev\"}}", &data()).unwrap(), "dev");
        assert_eq!(render("{{if lt .Timestamp 100}}small{{end}}", &data()).unwrap(), "small");
    }

    #[test]
    fn pipelines_variables_functions_and_range() {
        assert_eq!(render("{{ .Env.VERSION | printf \"v%s\" }}", &data()).unwrap(), "v1.2.3");
        assert_eq!(render("{{ printf \"%s-%d\" .Git.ShortCommit .Timestamp }}", &data()).unwrap(), "abc1234-42");
        assert_eq!(render("{{ $v := .Env.VERSION }}{{ $v }}/{{ len $v }}", &data()).unwrap(), "1.2.3/5");
        assert_eq!(render("{{ $v := 1 }}{{ if true }}{{ $v = 2 }}{{ end }}{{ $v }}", &data()).unwrap(), "2");
        assert_eq!(render("{{ index .Env \"NOPE\" }}|{{ (index .Env \"VERSION\") }}", &data()).unwrap(), "|1.2.3");
        assert_eq!(
            render("{{ range $k, $v := .Env }}{{ $k }}={{ $v }};{{ end }}", &data()).unwrap(),
            "LDFLAGS=;VERSION=1.2.3;"
        );
        assert_eq!(render("{{ range 5 }}{{ if eq . 3 }}{{ break }}{{ end }}{{ . }}{{ end }}", &data()).unwrap(), "012");
        assert_eq!(render("{{ range .Env.Empty }}x{{ else }}none{{ end }}", &data_with_empty()).unwrap(), "none");
        assert_eq!(render("{{ print 1 2 \"a\" }}{{ \"}}\" }}{{ `raw\\` }}", &data()).unwrap(), "1 2a}}raw\\");
        assert_eq!(render("{{ urlquery \"a b&c\" }} {{ html \"<a>\" }}", &data()).unwrap(), "a+b%26c &lt;a&gt;");
        assert_eq!(
            render("{{ $.Timestamp }}{{ with .Git }}{{ $.Timestamp }}{{ .ShortCommit }}{{ end }}", &data()).unwrap(),
            "4242abc1234"
        );
        assert_eq!(render("{{ (index . \"Git\").ShortCommit }}", &data()).unwrap(), "abc1234");
    }

    fn data_with_empty() -> Value {
        Value::map([("Env", Value::map([("Empty", Value::map::<String>([]))]))])
    }
}
