//! What `.ko.yaml` says beyond what parses: keys nobody reads (a warning naming the key's
//! path and the nearest known key, since ko ignores unknown keys and a config that works with
//! ko must keep working) and values of the wrong type (an error naming the key and the type
//! it wants, instead of the parser's words). The typed parse in `mod.rs` stays the authority
//! for what a valid config means; this walks a generic copy of the same document.

use serde_json::Value;

/// What a key holds.
#[derive(Clone, Copy)]
enum Shape {
    /// A scalar (YAML scalars are read as strings).
    Text,
    /// A string or a list of strings, as ko accepts for most list settings.
    TextOrList,
    /// A map of strings to strings.
    TextMap,
    /// `builds`: a list of build maps.
    Builds,
    /// kubectl-ko's `image:` block; its unknown keys are errors (it is not ko's).
    Image,
    /// `image.env`: a map, a list of `KEY=VALUE` or one string.
    Env,
}

impl Shape {
    fn expected(self) -> &'static str {
        match self {
            Shape::Text => "a string",
            Shape::TextOrList => "a list of strings or a string",
            Shape::TextMap => "a map of strings",
            Shape::Builds => "a list of builds (maps with id, dir, main, flags, ...)",
            Shape::Image => "a map (env, workingDir, labels, annotations, user)",
            Shape::Env => "a map, a list of KEY=VALUE strings, or a string",
        }
    }
}

/// Top-level keys: ko's, plus kubectl-ko's `image`. Lowercase spellings are accepted too.
const TOP: &[(&str, Shape)] = &[
    ("defaultBaseImage", Shape::Text),
    ("baseImageOverrides", Shape::TextMap),
    ("defaultPlatforms", Shape::TextOrList),
    ("defaultEnv", Shape::TextOrList),
    ("defaultFlags", Shape::TextOrList),
    ("defaultLdflags", Shape::TextOrList),
    ("builds", Shape::Builds),
    ("image", Shape::Image),
    ("signKey", Shape::Text),
];

/// The top-level keys ko reads leniently (a value of the wrong type is no value).
const LENIENT: &[&str] =
    &["defaultBaseImage", "baseImageOverrides", "defaultPlatforms", "defaultEnv", "defaultFlags", "defaultLdflags"];

/// Keys of a `builds[]` entry that ko reads, plus kubectl-ko's `image`.
const BUILD: &[(&str, Shape)] = &[
    ("id", Shape::Text),
    ("dir", Shape::Text),
    ("main", Shape::Text),
    ("env", Shape::TextOrList),
    ("flags", Shape::TextOrList),
    ("ldflags", Shape::TextOrList),
    ("linux_capabilities", Shape::TextOrList),
    ("image", Shape::Image),
];

/// GoReleaser build keys that ko's config type knows of but does not use: ignored, said so.
const GORELEASER_IGNORED: &[&str] = &[
    "goos",
    "goarch",
    "goarm",
    "gomips",
    "goamd64",
    "targets",
    "binary",
    "lang",
    "asmflags",
    "gcflags",
    "mod_timestamp",
    "skip",
    "gobinary",
    "hooks",
    "tags",
    "buildmode",
    "overrides",
    "no_unique_dist_dir",
    "builder",
    "command",
    "tool",
];

const IMAGE: &[(&str, Shape)] = &[
    ("env", Shape::Env),
    ("workingDir", Shape::Text),
    ("labels", Shape::TextMap),
    ("annotations", Shape::TextMap),
    ("user", Shape::Text),
];

/// ko reads its keys whatever their case (viper for the top level, mapstructure for `builds[]`
/// entries), so `defaultLdFlags` and `ldFlags` work there, quoted or not (`{"Builds": [{"ID":
/// ...}]}`, which is how Go's JSON writes ko's own config type). The text with each such key
/// spelled as the typed parse knows it; `None` when every key already is.
pub(super) fn canonical_keys(text: &str) -> Option<String> {
    let mut edits: Vec<(std::ops::Range<usize>, String)> = crate::yaml::plain_keys(text)
        .into_iter()
        .filter_map(|found| {
            let known = match found.under.as_deref() {
                None => TOP,
                Some(under) if under.eq_ignore_ascii_case("builds") => BUILD,
                Some(_) => return None,
            };
            let (name, _) = known.iter().find(|(name, _)| found.key.eq_ignore_ascii_case(name))?;
            let spelled = found.key == *name || found.key == name.to_lowercase();
            let quote = found.quote.map(String::from).unwrap_or_default();
            (!spelled).then(|| (found.span, format!("{quote}{name}{quote}")))
        })
        .collect();
    (!edits.is_empty()).then(|| edited(text, &mut edits))
}

/// `text` with each span replaced by its text.
fn edited(text: &str, edits: &mut [(std::ops::Range<usize>, impl AsRef<str>)]) -> String {
    edits.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
    let mut text = text.to_string();
    for (span, with) in edits.iter() {
        text.replace_range(span.clone(), with.as_ref());
    }
    text
}

/// The document with its top-level settings of the wrong type (which ko reads as unset, and
/// `findings`, its walk, found) renamed to keys nobody reads, for the typed parse; the rest of
/// the text is as written, so every value keeps its spelling (`1.10`). `None` when it has
/// none, or has other errors.
pub(super) fn without_ignored(text: &str, findings: &Findings) -> Option<String> {
    if findings.error.is_some() || findings.ignored.is_empty() {
        return None;
    }
    let mut edits: Vec<(std::ops::Range<usize>, String)> = crate::yaml::root_keys(text)
        .into_iter()
        .filter(|(key, _)| findings.ignored.contains(key))
        .map(|(key, span)| {
            let quote = text[span.clone()].chars().next().filter(|c| *c == '"' || *c == '\'').map(String::from);
            let quote = quote.unwrap_or_default();
            (span, format!("{quote}ignored-{key}{quote}"))
        })
        .collect();
    Some(edited(text, &mut edits))
}

/// What the walk found: warnings for keys nobody reads, and the first error.
#[derive(Debug, Default)]
pub(super) struct Findings {
    pub warnings: Vec<String>,
    pub error: Option<String>,
    /// Top-level keys (as written) whose values are of the wrong type: ignored, as ko does.
    pub ignored: Vec<String>,
}

/// Walks the document. `None` when it cannot be read generically (the typed parse reports).
pub(super) fn check(text: &str) -> Option<Findings> {
    let doc: Value = serde_saphyr::from_str(text).ok()?;
    let mut findings = Findings::default();
    match &doc {
        Value::Object(_) => walk_map(&doc, "", TOP, Unknown::Warn, &mut findings),
        Value::Null => {}
        other => {
            findings.error =
                Some(format!("the file must be a map of settings (defaultBaseImage, builds, ...), got {}", kind(other)))
        }
    }
    Some(findings)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") }
}

/// What an unknown key in a map is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unknown {
    Warn,
    /// A warning, but GoReleaser's build keys are named as such.
    WarnBuild,
    Error,
}

/// Checks a map's keys against `known`.
fn walk_map(map: &Value, path: &str, known: &[(&str, Shape)], unknown: Unknown, findings: &mut Findings) {
    let Value::Object(entries) = map else { return };
    for (key, value) in entries {
        if key == "<<" {
            continue; // a YAML merge key
        }
        let found = known.iter().find(|(name, _)| key == name || *key == name.to_lowercase());
        let here = join(path, key);
        match found {
            // ko's configuration library reads a top-level setting of the wrong type as
            // unset, so a config that works with ko may hold one: said, not refused.
            Some((name, shape)) if path.is_empty() && LENIENT.contains(name) => {
                if let Err(mismatch) = walk_value(value, &here, *shape, findings) {
                    findings.warnings.push(format!("{mismatch}; it is ignored, as ko ignores it"));
                    findings.ignored.push(key.clone());
                }
            }
            Some((_, shape)) => {
                if let Err(mismatch) = walk_value(value, &here, *shape, findings) {
                    set_error(findings, mismatch);
                }
            }
            None if unknown == Unknown::WarnBuild && GORELEASER_IGNORED.contains(&key.as_str()) => {
                findings.warnings.push(format!("{here} is a GoReleaser setting that ko does not use; it is ignored"))
            }
            None => {
                let hint = nearest(key, known.iter().map(|(name, _)| *name))
                    .map(|name| format!("; did you mean `{name}`?"))
                    .unwrap_or_default();
                if unknown == Unknown::Error {
                    if findings.error.is_none() {
                        let names: Vec<&str> = known.iter().map(|(n, _)| *n).collect();
                        findings.error = Some(format!("{here}: unknown key{hint} (known: {})", names.join(", ")));
                    }
                } else {
                    findings.warnings.push(format!("{here} is not a known key and is ignored{hint}"));
                }
            }
        }
    }
}

/// Checks a value against its shape: `Err` says how its type is wrong; what is wrong inside
/// a value of the right type goes into `findings`.
fn walk_value(value: &Value, path: &str, shape: Shape, findings: &mut Findings) -> Result<(), String> {
    let scalar = |v: &Value| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
    let ok = match (shape, value) {
        (_, Value::Null) => true,
        (Shape::Text, v) => scalar(v),
        (Shape::TextOrList | Shape::Env, Value::Array(items)) => items.iter().all(scalar),
        // A lone decimal would lose how it is written (1.10 is 1.1): the parser refuses it.
        (Shape::TextOrList | Shape::Env, Value::Number(n)) if n.is_f64() => {
            set_error(findings, format!("{path}: expected {}, got a decimal number; quote it", shape.expected()));
            true
        }
        (Shape::TextOrList | Shape::Env, v) if scalar(v) => true,
        (Shape::TextMap | Shape::Env, Value::Object(m)) => {
            if let Some((key, _)) = m.iter().find(|(_, v)| v.is_null()) {
                set_error(
                    findings,
                    format!("{path}[{key}]: no value given; write one (\"\" for an empty one), or remove the key"),
                );
            }
            m.values().all(|v| scalar(v) || v.is_null())
        }
        // One build without the list around it, which ko reads as a list of one.
        (Shape::Builds, Value::Object(_)) => {
            walk_map(value, path, BUILD, Unknown::WarnBuild, findings);
            true
        }
        (Shape::Builds, Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let here = format!("{path}[{i}]");
                match item {
                    Value::Object(_) => walk_map(item, &here, BUILD, Unknown::WarnBuild, findings),
                    other => set_error(findings, format!("{here}: expected a map (a build), got {}", kind(other))),
                }
            }
            true
        }
        (Shape::Image, Value::Object(_)) => {
            walk_map(value, path, IMAGE, Unknown::Error, findings);
            true
        }
        _ => false,
    };
    if !ok {
        let got = match value {
            Value::Array(items) if items.iter().any(Value::is_null) => "a list with an empty item".to_string(),
            Value::Array(items) if items.iter().any(|v| !scalar(v)) => "a list holding maps or lists".to_string(),
            Value::Object(m) if m.values().any(|v| !scalar(v)) => "a map holding maps or lists".to_string(),
            other => kind(other).to_string(),
        };
        return Err(format!("{path}: expected {}, got {got}", shape.expected()));
    }
    Ok(())
}

fn set_error(findings: &mut Findings, message: String) {
    if findings.error.is_none() {
        findings.error = Some(message);
    }
}

/// The known key closest to `key` in edit distance, if close enough to be a likely typo.
fn nearest<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lowered = key.to_lowercase();
    known
        .map(|name| (distance(&lowered, &name.to_lowercase()), name))
        .filter(|(d, name)| *d <= (name.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| name)
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_warnings_with_the_nearest_known_key() {
        let f = check("defaultBaseImge: x\nbuilds:\n- id: a\n  flgs: [-v]\n  goos: [linux]\n  zzzzzz: 1\n").unwrap();
        assert!(f.error.is_none(), "{f:?}");
        assert_eq!(
            f.warnings,
            [
                "defaultBaseImge is not a known key and is ignored; did you mean `defaultBaseImage`?",
                "builds[0].flgs is not a known key and is ignored; did you mean `flags`?",
                "builds[0].goos is a GoReleaser setting that ko does not use; it is ignored",
                "builds[0].zzzzzz is not a known key and is ignored",
            ]
        );
    }

    #[test]
    fn known_spellings_pass_quietly() {
        let f = check(
            "defaultbaseimage: x\ndefaultPlatforms: all\nbaseImageOverrides: {a: b}\nimage: {workingdir: /x, env: {A: 1}}\nbuilds:\n- {id: a, dir: ., main: ., env: [A=1], flags: -v, ldflags: [-s], linux_capabilities: net_bind_service}\n",
        )
        .unwrap();
        assert!(f.warnings.is_empty() && f.error.is_none(), "{f:?}");
    }

    #[test]
    fn wrong_types_name_the_key_and_the_type() {
        let error = |text: &str| check(text).unwrap().error.unwrap();
        assert_eq!(
            error("builds:\n- flags: {a: b}\n"),
            "builds[0].flags: expected a list of strings or a string, got a map"
        );
        // Top-level settings ko reads leniently: a warning, and the key is left out.
        let f = check("defaultEnv: [[A]]\n").unwrap();
        assert!(f.error.is_none() && f.ignored == ["defaultEnv"], "{f:?}");
        assert_eq!(
            f.warnings,
            [
                "defaultEnv: expected a list of strings or a string, got a list holding maps or lists; it is ignored, as ko ignores it"
            ]
        );
        assert_eq!(error("builds: id\n"), format!("builds: expected {}, got a string", Shape::Builds.expected()));
        assert_eq!(error("builds: [x]\n"), "builds[0]: expected a map (a build), got a string");
        assert_eq!(
            error("defaultFlags: 1.5\n"),
            "defaultFlags: expected a list of strings or a string, got a decimal number; quote it"
        );
        assert!(error("image:\n  workdir: /x\n").starts_with("image.workdir: unknown key; did you mean `workingDir`?"));
        assert_eq!(error("- a\n"), "the file must be a map of settings (defaultBaseImage, builds, ...), got a list");
        assert_eq!(
            error("baseImageOverrides:\n  example.com/app:\n"),
            "baseImageOverrides[example.com/app]: no value given; write one (\"\" for an empty one), or remove the key"
        );
        assert_eq!(
            error("builds:\n- flags:\n  - -v\n  -\n"),
            "builds[0].flags: expected a list of strings or a string, got a list with an empty item"
        );
    }

    #[test]
    fn edit_distance() {
        assert_eq!(distance("flgs", "flags"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
