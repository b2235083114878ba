//! Kubernetes label selectors (`-l/--selector`): `key=value`, `key==value`, `key!=value`,
//! `key in (a,b)`, `key notin (a,b)`, `key`, `!key`, and the numeric `key>n`, `key<n`, joined
//! by commas; every requirement must hold.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Exists,
    NotExists,
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    GreaterThan(i64),
    LessThan(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

/// A parsed selector; the empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid selector {input:?}: {detail}")]
pub struct SelectorError {
    input: String,
    detail: String,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

/// A label value as Kubernetes allows it: empty, or at most 63 letters, digits, `-`, `_` and `.`
/// that start and end with a letter or digit. One it cannot hold matches nothing, so it is
/// refused as kubectl refuses it.
fn check_value(value: &str) -> Result<String, String> {
    let edges_ok = |c: Option<char>| c.is_none_or(|c| c.is_ascii_alphanumeric());
    let ok = value.len() <= 63
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && edges_ok(value.chars().next())
        && edges_ok(value.chars().last());
    if ok {
        Ok(value.to_string())
    } else {
        Err(format!(
            "{value:?} is not a label value (empty, or up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
        ))
    }
}

/// A label key as Kubernetes allows it: a name of at most 63 letters, digits, `-`, `_` and `.`
/// that starts and ends with a letter or digit, optionally after a DNS subdomain prefix and `/`
/// (`example.com/tier`). One it cannot hold matches nothing, so it is refused as kubectl does.
fn check_key(key: &str) -> Result<(), String> {
    let alnum_edges = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphanumeric()) && s.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    let name_ok = |name: &str| {
        name.len() <= 63
            && alnum_edges(name)
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let prefix_ok = |prefix: &str| {
        prefix.len() <= 253
            && prefix.split('.').all(|part| {
                alnum_edges(part) && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
    };
    let ok = match key.split_once('/') {
        Some((prefix, name)) => prefix_ok(prefix) && name_ok(name),
        None => name_ok(key),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{key:?} is not a label key (up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, optionally after a lowercase DNS prefix and '/')"
        ))
    }
}

struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn skip_spaces(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_spaces();
        match self.rest.strip_prefix(token) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn name(&mut self) -> &'a str {
        self.skip_spaces();
        let end = self.rest.find(|c: char| !is_name_char(c)).unwrap_or(self.rest.len());
        let (name, rest) = self.rest.split_at(end);
        self.rest = rest;
        name
    }

    /// `in`/`notin` followed by a space or `(`; anything else is part of a name.
    fn word(&mut self, word: &str) -> bool {
        self.skip_spaces();
        let after = self.rest.strip_prefix(word);
        match after {
            Some(rest) if rest.starts_with(|c: char| c.is_whitespace() || c == '(') => {
                self.rest = rest;
                true
            }
            _ => false,
        }
    }

    fn done(&mut self) -> bool {
        self.skip_spaces();
        self.rest.is_empty()
    }
}

impl Selector {
    pub fn parse(input: &str) -> Result<Selector, SelectorError> {
        let fail = |detail: String| SelectorError { input: input.to_string(), detail };
        let mut cursor = Cursor { rest: input };
        let mut requirements = Vec::new();
        if cursor.done() {
            return Ok(Selector { requirements });
        }
        loop {
            let negated = cursor.eat("!");
            let key = cursor.name().to_string();
            if key.is_empty() {
                return Err(fail(format!("expected a label key at {:?}", cursor.rest)));
            }
            check_key(&key).map_err(fail)?;
            let op = if negated {
                Op::NotExists
            } else if cursor.eat("==") || cursor.eat("=") {
                Op::Equals(check_value(cursor.name()).map_err(fail)?)
            } else if cursor.eat("!=") {
                Op::NotEquals(check_value(cursor.name()).map_err(fail)?)
            } else if cursor.eat(">") || cursor.eat("<") {
                let greater = input[..input.len() - cursor.rest.len()].ends_with('>');
                let raw = cursor.name();
                let n: i64 = raw.parse().map_err(|_| fail(format!("{raw:?} after `>`/`<` must be an integer")))?;
                if greater { Op::GreaterThan(n) } else { Op::LessThan(n) }
            } else if cursor.word("notin") {
                Op::NotIn(Self::set(&mut cursor).map_err(fail)?)
            } else if cursor.word("in") {
                Op::In(Self::set(&mut cursor).map_err(fail)?)
            } else {
                Op::Exists
            };
            requirements.push(Requirement { key, op });
            if cursor.done() {
                break;
            }
            if !cursor.eat(",") {
                return Err(fail(format!("expected `,` or an operator (=, ==, !=, in, notin) at {:?}", cursor.rest)));
            }
        }
        Ok(Selector { requirements })
    }

    fn set(cursor: &mut Cursor) -> Result<Vec<String>, String> {
        if !cursor.eat("(") {
            return Err(format!("expected `(` at {:?}", cursor.rest));
        }
        let mut values = Vec::new();
        loop {
            values.push(check_value(cursor.name())?);
            if cursor.eat(")") {
                return Ok(values);
            }
            if !cursor.eat(",") {
                return Err(format!("expected `,` or `)` in a value set at {:?}", cursor.rest));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| {
            let value = labels.get(&r.key);
            match &r.op {
                Op::Exists => value.is_some(),
                Op::NotExists => value.is_none(),
                Op::Equals(v) => value == Some(v),
                Op::NotEquals(v) => value != Some(v),
                Op::In(set) => value.is_some_and(|v| set.contains(v)),
                Op::NotIn(set) => value.is_none_or(|v| !set.contains(v)),
                Op::GreaterThan(n) => value.and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v > *n),
                Op::LessThan(n) => value.and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v < *n),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn every_operator_matches_as_kubernetes_does() {
        let web = labels(&[("app", "web"), ("tier", "front"), ("replicas", "3")]);
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app = web , tier=front", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("app in (web, db)", true),
            ("app in (db)", false),
            ("app notin (db)", true),
            ("missing notin (db)", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("replicas>2", true),
            ("replicas<2", false),
            ("app.kubernetes.io/name", false),
            ("indexed", false),
        ];
        for (input, expected) in cases {
            let selector = Selector::parse(input).unwrap();
            assert_eq!(selector.matches(&web), expected, "{input}");
        }
    }

    #[test]
    fn malformed_selectors_are_rejected() {
        for input in ["app=web,", "=web", "app in web", "app in (a", "replicas>x", "app ~ web"] {
            let error = Selector::parse(input).unwrap_err();
            assert!(error.to_string().contains(input), "{error}");
        }
        // Values a label cannot have, as kubectl refuses them; an empty one is a value.
        for input in ["app=-a", "app!=a.", "app in (a, _b)", &format!("app={}", "x".repeat(64))] {
            let error = Selector::parse(input).unwrap_err();
            assert!(error.to_string().contains("is not a label value"), "{input}: {error}");
        }
        for input in ["a/b/c=x", "Example.com/k=v", "exa_mple.com/k=v", "example.com/=v", "-app=x", &"k".repeat(64)] {
            let error = Selector::parse(input).unwrap_err();
            assert!(error.to_string().contains("is not a label key"), "{input}: {error}");
        }
        assert!(Selector::parse("app=,tier=a-b.c_d").is_ok());
        assert!(Selector::parse("app.kubernetes.io/name=web,!example.com/Tier_2,x in (a)").is_ok());
    }
}
