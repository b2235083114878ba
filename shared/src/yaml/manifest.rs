//! One input file of Kubernetes YAML: which documents a selector keeps (worked out by
//! [`super::selection`]), which `ko://` strings it holds, and the text with those strings replaced while every other byte stays as written.
//!
//! A file is held once, as read: parsing keeps only where the `ko://` strings are, a selector
//! builds one document's tree at a time, and the replaced text is a list of slices of the
//! original and of the replacements, checked by parsing it as a stream and written out piece
//! by piece, so that a large file costs little more memory than its own size.

use std::collections::HashMap;
use std::ops::Range;

use granit_parser::{Event, Parser, ScalarStyle};

use super::ManifestError;
use super::lines::{block_header, stripping_header};
use super::rendered::{Piece, Rendered};
use super::selection;
use super::selector::Selector;
use super::tree::{self, SyntaxError};

/// The prefix that marks a string as an import path to build.
pub const KO_PREFIX: &str = "ko://";

/// A `ko://` string found in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KoReference<'a> {
    /// The value as ko sees it: decoded (starting with `ko://`) and trimmed.
    pub value: &'a str,
    pub line: usize,
}

/// Where a `ko://` string sits in the text.
#[derive(Debug)]
struct Site {
    /// The bytes to replace: the whole token for plain and quoted scalars, only the value's
    /// characters inside a block scalar.
    range: Range<usize>,
    style: ScalarStyle,
    line: usize,
    /// Index into [`ManifestFile::values`]: a value repeated a thousand times is kept once.
    value: usize,
    /// For a block scalar that keeps its final line break (`|`, `>+`, `|2`…): its header and
    /// the header that strips it (`|-`), so the value is the reference alone, as in ko.
    header: Option<(Range<usize>, String)>,
}

#[derive(Debug)]
pub struct ManifestFile {
    /// How errors name the file: its path as given, or `stdin`.
    pub name: String,
    text: String,
    /// The distinct `ko://` values, in order of first appearance.
    values: Vec<String>,
    /// Every `ko://` string, in file order.
    sites: Vec<Site>,
    /// Byte ranges a selector dropped, sorted and disjoint.
    removed: Vec<Range<usize>>,
}

/// Whether a scalar with this tag is a string, as ko takes only strings for references: no
/// tag, the non-specific `!`, or `!!str`; not an application's tag (`!secret ko://…`).
fn is_string_tag(tag: Option<&granit_parser::Tag>) -> bool {
    match tag {
        None => true,
        Some(tag) => {
            (tag.handle() == "tag:yaml.org,2002:" && tag.suffix() == "str")
                || (tag.handle().is_empty() && matches!(tag.suffix(), "!" | "tag:yaml.org,2002:str"))
        }
    }
}

impl ManifestFile {
    pub fn parse(name: impl Into<String>, text: String) -> Result<ManifestFile, ManifestError> {
        let name = name.into();
        let syntax = |e: SyntaxError| ManifestError::Syntax {
            file: name.clone(),
            line: e.line,
            column: e.column,
            message: e.message,
        };
        // One pass over the events, without a tree: only the `ko://` strings are kept.
        let mut values: Vec<String> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut sites = Vec::new();
        let mut parser = Parser::new_from_str_with_options(&text, tree::parser_options());
        while let Some(next) = parser.next_event() {
            let (event, span) = next.map_err(|e| syntax(tree::syntax_error(&e)))?;
            let Event::Scalar(value, style, _, tag) = event else { continue };
            // As ko: the value itself must start with `ko://`; what it names is the value
            // without the white space around it, and the replacement takes that too.
            if !value.starts_with(KO_PREFIX) || !is_string_tag(tag.as_deref()) {
                continue;
            }
            let trimmed = value.trim();
            let mut range = span.start.byte_offset().unwrap_or(0)..span.end.byte_offset().unwrap_or(0);
            let mut header = None;
            if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) {
                header = block_header(&text, range.start).and_then(|at| stripping_header(&text, at));
                // Block scalars hold their text verbatim: replace just those characters.
                if let Some(at) = text[range.clone()].find(trimmed) {
                    let start = range.start + at;
                    let mut end = start + trimmed.len();
                    // Spaces after it on its line are part of the value, not of the YAML.
                    end += text[end..].len() - text[end..].trim_start_matches([' ', '\t']).len();
                    range = start..end;
                }
            }
            let value = match index.get(trimmed) {
                Some(&i) => i,
                None => {
                    values.push(trimmed.to_string());
                    index.insert(trimmed.to_string(), values.len() - 1);
                    values.len() - 1
                }
            };
            sites.push(Site { range, style, line: span.start.line(), value, header });
        }
        Ok(ManifestFile { name, text, values, sites, removed: Vec::new() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Drops the documents (and `kind: List` items) the selector does not match; null documents
    /// go too. Every other document must be a Kubernetes object, as in ko.
    pub fn select(&mut self, selector: &Selector) -> Result<(), ManifestError> {
        self.removed = selection::removed(&self.name, &self.text, selector)?;
        Ok(())
    }

    /// The line in this file of a line of the rendered text: rendering drops whole lines
    /// (what a selector removed) and replaces references within their lines.
    pub fn original_line(&self, rendered_line: usize) -> usize {
        let mut shift = 0;
        for range in &self.removed {
            let first = self.text[..range.start].matches('\n').count() + 1;
            if rendered_line + shift < first {
                break;
            }
            shift += self.text[range.clone()].matches('\n').count();
        }
        rendered_line + shift
    }

    fn is_removed(&self, offset: usize) -> bool {
        // `removed` is sorted and disjoint: the only candidate is the last range starting at
        // or before `offset`.
        let after = self.removed.partition_point(|r| r.start <= offset);
        after > 0 && self.removed[after - 1].contains(&offset)
    }

    fn kept_sites(&self) -> impl Iterator<Item = &Site> + '_ {
        self.sites.iter().filter(|site| !self.is_removed(site.range.start))
    }

    /// Every `ko://` string in the kept part of the file, keys included, in file order.
    pub fn references(&self) -> impl Iterator<Item = KoReference<'_>> + '_ {
        self.kept_sites().map(|site| KoReference { value: &self.values[site.value], line: site.line })
    }

    /// The kept text with each reference replaced by `replacements[value]`, checked (see
    /// [`ManifestFile::rendered`]).
    pub fn render(&self, replacements: &HashMap<String, String>) -> Result<String, ManifestError> {
        Ok(self.rendered(replacements)?.to_text())
    }

    /// The kept text with each reference replaced by `replacements[value]`, re-parsed to check
    /// that every replaced scalar now reads as its new value.
    pub fn rendered<'a>(&'a self, replacements: &'a HashMap<String, String>) -> Result<Rendered<'a>, ManifestError> {
        // What happens to each range: dropped, replaced by a reference, or rewritten (a block
        // scalar's header).
        enum Edit<'s> {
            Drop,
            Reference(&'s Site, &'s str),
            Header(&'s str),
        }
        let mut edits: Vec<(Range<usize>, Edit)> = self.removed.iter().map(|r| (r.clone(), Edit::Drop)).collect();
        for site in &self.sites {
            let Some(new) = replacements.get(&self.values[site.value]) else { continue };
            if let Some((range, header)) = &site.header {
                edits.push((range.clone(), Edit::Header(header)));
            }
            edits.push((site.range.clone(), Edit::Reference(site, new.as_str())));
        }
        edits.sort_by_key(|(range, _)| range.start);

        let mut pieces = Vec::with_capacity(edits.len() * 2 + 1);
        let text = |t| Piece { text: t, replaces: None };
        let mut cursor = 0;
        for (range, edit) in edits {
            if range.start < cursor {
                continue; // inside a removed range
            }
            pieces.push(text(&self.text[cursor..range.start]));
            match edit {
                Edit::Drop => {}
                Edit::Header(header) => pieces.push(text(header)),
                Edit::Reference(site, new) => {
                    let quote = match site.style {
                        ScalarStyle::SingleQuoted => "'",
                        ScalarStyle::DoubleQuoted => "\"",
                        // A reference that would not read back as plain text (`[::1]:5000/…`,
                        // an OCI layout path with `, ` or ` #`) is written quoted.
                        ScalarStyle::Plain if !super::lines::plain_safe(new) => "'",
                        _ => "",
                    };
                    pieces.push(text(quote));
                    pieces.push(Piece { text: new, replaces: Some(site.line) });
                    pieces.push(text(quote));
                }
            }
            cursor = range.end;
        }
        pieces.push(text(&self.text[cursor..]));
        let rendered = Rendered { pieces };
        self.check(&rendered)?;
        Ok(rendered)
    }

    /// Parses the rendered text as a stream (without putting it together) and checks that
    /// every replacement reads as itself.
    fn check(&self, rendered: &Rendered) -> Result<(), ManifestError> {
        let fail = |line, detail: String| ManifestError::Check { file: self.name.clone(), line, detail };
        // Where each replacement starts, in characters (the parser counts characters when it
        // reads a stream of them).
        let mut expected = Vec::new();
        let mut at = 0;
        for piece in &rendered.pieces {
            if let Some(line) = piece.replaces {
                expected.push((at, piece.text, line));
            }
            at += piece.text.chars().count();
        }
        let mut expected = expected.into_iter().peekable();
        let chars = rendered.texts().flat_map(str::chars);
        let mut parser = Parser::new_from_iter_with_options(chars, tree::parser_options());
        while let Some(next) = parser.next_event() {
            let (event, span) = next.map_err(|e| {
                let e = tree::syntax_error(&e);
                if self.removed.is_empty() {
                    fail(e.line, e.message)
                } else {
                    // Dropping objects can orphan an alias whose anchor was in one of them.
                    ManifestError::Selection { file: self.name.clone(), message: e.message }
                }
            })?;
            let Event::Scalar(value, ..) = event else { continue };
            let scalar = span.start.index()..span.end.index();
            while let Some(&(offset, new, line)) = expected.peek() {
                if offset < scalar.start {
                    return Err(fail(line, format!("expected {new:?} after replacement, read no scalar")));
                }
                if !(scalar.contains(&offset) || scalar.start == offset) {
                    break;
                }
                if value.as_ref() != new {
                    return Err(fail(line, format!("expected {new:?} after replacement, read {:?}", value.as_ref())));
                }
                expected.next();
            }
        }
        match expected.next() {
            Some((_, new, line)) => Err(fail(line, format!("expected {new:?} after replacement, read no scalar"))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(text: &str, selector: Option<&str>) -> Result<String, ManifestError> {
        let mut file = ManifestFile::parse("test.yaml", text.to_string())?;
        if let Some(selector) = selector {
            file.select(&Selector::parse(selector).unwrap())?;
        }
        let replacements = file
            .references()
            .map(|r| {
                let new = format!("reg.example/{}@sha256:abc", r.value.trim_start_matches(KO_PREFIX));
                (r.value.to_string(), new)
            })
            .collect();
        file.render(&replacements)
    }

    #[test]
    fn replaces_only_the_reference_tokens() {
        let text = "# keep me\nimage: ko://a # plain\nq: \"ko://a\"  # double\ns: 'ko://b'\nflow: [ko://c, \"x\", 'ko://c']\nkey:\n  ko://d: value\nother: example.com/bare\n";
        let expected = "# keep me\nimage: reg.example/a@sha256:abc # plain\nq: \"reg.example/a@sha256:abc\"  # double\ns: 'reg.example/b@sha256:abc'\nflow: [reg.example/c@sha256:abc, \"x\", 'reg.example/c@sha256:abc']\nkey:\n  reg.example/d@sha256:abc: value\nother: example.com/bare\n";
        assert_eq!(render(text, None).unwrap(), expected);
    }

    #[test]
    fn only_values_that_start_with_ko_are_references() {
        // As ko: white space before `ko://` makes it no reference (here a leading blank line,
        // an indentation indicator that leaves a space, quotes around a space).
        let text = "a: |\n\n  ko://x\nb: |1\n   ko://x\nc: \" ko://x\"\nd: \"ko://x \"\n";
        assert_eq!(
            render(text, None).unwrap(),
            "a: |\n\n  ko://x\nb: |1\n   ko://x\nc: \" ko://x\"\nd: \"reg.example/x@sha256:abc\"\n"
        );
        // Only strings: an application's tag makes it something else.
        let text = "a: !secret ko://x\nb: !!str ko://x\nc: ! ko://x\nd: !<tag:yaml.org,2002:str> ko://x\n";
        assert_eq!(
            render(text, None).unwrap(),
            "a: !secret ko://x\nb: !!str reg.example/x@sha256:abc\nc: ! reg.example/x@sha256:abc\nd: !<tag:yaml.org,2002:str> reg.example/x@sha256:abc\n"
        );
    }

    #[test]
    fn block_scalars_strip_their_final_line_break() {
        // ko yields the bare reference, so a block scalar's value must not end in a newline:
        // its chomping becomes `-`, its style and indentation stay.
        let text = "a: |\n  ko://x\nb: >-\n    ko://y\nc: |+  # keep\n  ko://x\n\nd: >2\n  ko://y\ne: |-2\n  ko://x\nf: |\t# tab\n  ko://z  \ng: 1\n";
        assert_eq!(
            render(text, None).unwrap(),
            "a: |-\n  reg.example/x@sha256:abc\nb: >-\n    reg.example/y@sha256:abc\nc: |-  # keep\n  reg.example/x@sha256:abc\n\nd: >2-\n  reg.example/y@sha256:abc\ne: |-2\n  reg.example/x@sha256:abc\nf: |-\t# tab\n  reg.example/z@sha256:abc\ng: 1\n"
        );
        let values = |text: &str| {
            let mut parser = Parser::new_from_str(text);
            let mut found = Vec::new();
            while let Some(Ok((event, _))) = parser.next_event() {
                if let Event::Scalar(value, ..) = event {
                    found.push(value.to_string());
                }
            }
            found
        };
        let rendered = render(text, None).unwrap();
        assert!(values(&rendered).iter().filter(|v| v.contains("@sha256")).all(|v| !v.ends_with('\n')), "{rendered}");
    }

    #[test]
    fn escaped_values_are_decoded_before_matching() {
        let text = "a: \"ko://q\\u0041\"\n";
        assert_eq!(render(text, None).unwrap(), "a: \"reg.example/qA@sha256:abc\"\n");
    }

    #[test]
    fn selector_drops_documents_and_list_items() {
        let text = "\
apiVersion: v1
kind: ConfigMap
metadata: {name: a, labels: {app: web}}
data: {image: ko://a}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: b}
data: {image: ko://b}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: c}
  data: {image: ko://c}
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: d
    labels:
      app: web
  data: {image: ko://d}
---
";
        let out = render(text, Some("app=web")).unwrap();
        assert_eq!(
            out,
            "\
apiVersion: v1
kind: ConfigMap
metadata: {name: a, labels: {app: web}}
data: {image: reg.example/a@sha256:abc}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: d
    labels:
      app: web
  data: {image: reg.example/d@sha256:abc}
"
        );
        let mut file = ManifestFile::parse("t", text.to_string()).unwrap();
        file.select(&Selector::parse("app=web").unwrap()).unwrap();
        let values: Vec<_> = file.references().map(|r| r.value).collect();
        assert_eq!(values, ["ko://a", "ko://d"], "dropped documents are not built");
    }

    #[test]
    fn dropped_items_take_their_dash_line_along() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c, labels: {app: web}}\n-\n  apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: d}\n- # a comment\n  apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: e}\n";
        let out = render(text, Some("app=web")).unwrap();
        assert_eq!(
            out,
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c, labels: {app: web}}\n"
        );
    }

    #[test]
    fn a_dropped_item_takes_the_comments_above_it_along() {
        let item = |name: &str, app: &str| {
            format!("- apiVersion: v1\n  kind: ConfigMap\n  metadata: {{name: {name}, labels: {{app: {app}}}}}\n")
        };
        let script = "  data:\n    run: |\n      echo one\n      # a line of the script, not a comment\n";
        // The script's last line, right above the third item's `-`, looks like a comment but
        // belongs to the second item's block scalar.
        let text = format!(
            "apiVersion: v1\nkind: List\nitems:\n# first (db)\n{}# second (web)\n# more on the second\n{}{script}{}# fourth (web)\n{}",
            item("a", "db"),
            item("b", "web"),
            item("c", "db"),
            item("d", "web"),
        );
        let out = render(&text, Some("app=web")).unwrap();
        assert_eq!(
            out,
            format!(
                "apiVersion: v1\nkind: List\nitems:\n# second (web)\n# more on the second\n{}{script}# fourth (web)\n{}",
                item("b", "web"),
                item("d", "web")
            )
        );
    }

    #[test]
    fn flow_and_json_lists_keep_their_matching_items() {
        let item = |name: &str, app: &str| {
            format!(
                r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","labels":{{"app":"{app}"}}}},"data":{{"i":"ko://{name}"}}}}"#
            )
        };
        let list = |items: &[String]| {
            format!("{{\"apiVersion\":\"v1\",\"items\":[{}],\"kind\":\"List\"}}\n", items.join(",\n  "))
        };
        let (a, b, c, d) = (item("a", "db"), item("b", "web"), item("c", "db"), item("d", "web"));
        let out = render(&list(&[a.clone(), b.clone(), c.clone(), d.clone()]), Some("app=web")).unwrap();
        let expected = list(&[b.clone(), d.clone()])
            .replace("ko://b", "reg.example/b@sha256:abc")
            .replace("ko://d", "reg.example/d@sha256:abc");
        assert_eq!(out, expected);
        serde_json::from_str::<serde_json::Value>(&out).expect("still JSON");
        let out = render(&list(&[b.clone(), a.clone(), c.clone()]), Some("app=web")).unwrap();
        assert_eq!(out, list(&[b]).replace("ko://b", "reg.example/b@sha256:abc"));
        let out = render("kind: List\napiVersion: v1\nitems: [{kind: A, apiVersion: v1, metadata: {name: x}}, {kind: A, apiVersion: v1, metadata: {name: y, labels: {app: web}}},]\n", Some("app=web")).unwrap();
        assert_eq!(
            out,
            "kind: List\napiVersion: v1\nitems: [{kind: A, apiVersion: v1, metadata: {name: y, labels: {app: web}}},]\n"
        );
    }

    #[test]
    fn a_list_without_items_cannot_be_filtered() {
        let error = render("apiVersion: v1\nkind: List\n", Some("app=web")).unwrap_err();
        assert!(matches!(error, ManifestError::ListWithoutItems { line: 1, .. }), "{error:?}");
    }

    #[test]
    fn rendered_lines_map_back_to_the_file() {
        let text = "apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\napiVersion: v1\nkind: B\nmetadata: {name: b, labels: {x: y}}\n";
        let mut file = ManifestFile::parse("t", text.to_string()).unwrap();
        file.select(&Selector::parse("x=y").unwrap()).unwrap();
        let out = file.render(&HashMap::new()).unwrap();
        assert!(out.starts_with("---\napiVersion: v1\nkind: B"), "{out}");
        assert_eq!(file.original_line(2), 5);
        assert_eq!(file.original_line(4), 7);
    }

    #[test]
    fn selector_needs_objects() {
        let error = render("just: a map\n", Some("app=web")).unwrap_err();
        assert!(matches!(error, ManifestError::NotObject { line: 1, .. }), "{error:?}");
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let error = render("a: 1\nb: [unclosed\n", None).unwrap_err();
        assert!(error.to_string().starts_with("test.yaml:"), "{error}");
    }

    #[test]
    fn a_replacement_that_does_not_read_as_itself_is_caught() {
        let file = ManifestFile::parse("t.yaml", "a: ko://x\nb: [\"ko://x\"]\n".to_string()).unwrap();
        // Inside double quotes, a quote ends the value early: the check must see it.
        let replacements = HashMap::from([("ko://x".to_string(), "y\", z".to_string())]);
        let error = file.render(&replacements).unwrap_err();
        assert!(matches!(error, ManifestError::Check { line: 2, .. }), "{error:?}");
    }

    /// A reference plain text cannot hold (an IPv6 registry, a layout path with `, ` or ` #`)
    /// is written single-quoted where the value was plain; other styles keep theirs.
    #[test]
    fn a_reference_that_plain_text_cannot_hold_is_quoted() {
        let text = "a: ko://x\nb: [ko://x, ko://y]\nc: {k: ko://x}\nd: \"ko://x\"\ne: ko://y\n";
        let file = ManifestFile::parse("t.yaml", text.to_string()).unwrap();
        let v6 = "[::1]:5000/app@sha256:00".to_string();
        let path = "oci:/tmp/a #1, b:x".to_string();
        let replacements = HashMap::from([("ko://x".to_string(), v6), ("ko://y".to_string(), path)]);
        assert_eq!(
            file.render(&replacements).unwrap(),
            "a: '[::1]:5000/app@sha256:00'\nb: ['[::1]:5000/app@sha256:00', 'oci:/tmp/a #1, b:x']\nc: {k: '[::1]:5000/app@sha256:00'}\nd: \"[::1]:5000/app@sha256:00\"\ne: 'oci:/tmp/a #1, b:x'\n"
        );
        let plain = HashMap::from([("ko://x".to_string(), "r.example/app@sha256:00".to_string())]);
        let file = ManifestFile::parse("t.yaml", "a: ko://x\n".to_string()).unwrap();
        assert_eq!(file.render(&plain).unwrap(), "a: r.example/app@sha256:00\n");
    }

    #[test]
    fn an_alias_orphaned_by_the_selector_is_a_selection_error() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: &m {name: a}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: b, labels: {app: web}}\n  data: {copy: *m}\n";
        let error = render(text, Some("app=web")).unwrap_err();
        assert!(matches!(error, ManifestError::Selection { .. }), "{error:?}");
    }

    #[test]
    fn many_references_and_documents_render_in_order() {
        let mut text = String::new();
        for i in 0..2000 {
            text.push_str(&format!("---\n# {i} ü\nkind: A\nimage: ko://app{}\nquoted: \"ko://app{}\"\n", i % 7, i % 3));
        }
        let out = render(&text, None).unwrap();
        let expected = (0..7).fold(text.clone(), |t, i| {
            t.replace(&format!("ko://app{i}\n"), &format!("reg.example/app{i}@sha256:abc\n"))
                .replace(&format!("ko://app{i}\""), &format!("reg.example/app{i}@sha256:abc\""))
        });
        assert_eq!(out, expected);
        let file = ManifestFile::parse("t", text).unwrap();
        assert_eq!(file.references().count(), 4000);
        assert_eq!(file.values.len(), 7, "each distinct value is kept once");
    }

    #[test]
    fn multibyte_text_before_a_reference_is_kept() {
        let text = "# überprüft ✓\nimage: ko://a\n";
        assert_eq!(render(text, None).unwrap(), "# überprüft ✓\nimage: reg.example/a@sha256:abc\n");
    }

    #[test]
    fn deep_nesting_long_keys_and_a_bom_in_a_document_read_as_ko_reads_them() {
        // In a thread with the stack a runtime's worker gets, since the walks recurse.
        let deep = std::thread::Builder::new().stack_size(2 << 20).spawn(|| {
            let depth = tree::MAX_NESTING - 1;
            let flow = format!(
                "kind: Pod\napiVersion: v1\nmetadata: {{labels: {{app: web}}}}\nx: {}ko://a{}\n",
                "[".repeat(depth),
                "]".repeat(depth)
            );
            let mut block = String::from("kind: Pod\napiVersion: v1\nmetadata: {labels: {app: web}}\n");
            for level in 0..depth {
                block.push_str(&format!("{}k:\n", " ".repeat(level)));
            }
            block.push_str(&format!("{}image: ko://a\n", " ".repeat(depth)));
            for text in [flow, block] {
                let rendered = render(&text, Some("app=web")).unwrap();
                assert_eq!(rendered, text.replace("ko://a", "reg.example/a@sha256:abc"));
            }
            let too_deep = format!("x: {}{}\n", "[".repeat(tree::MAX_NESTING + 1), "]".repeat(tree::MAX_NESTING + 1));
            assert!(render(&too_deep, None).unwrap_err().to_string().contains("recursion limit"));
        });
        deep.unwrap().join().unwrap();

        let key = "k".repeat(1100);
        let json = format!("{{\"{key}\": \"v\", \"image\": \"ko://a\"}}\n");
        assert_eq!(render(&json, None).unwrap(), json.replace("ko://a", "reg.example/a@sha256:abc"));
        let bom = "a: ko://a\n---\n\u{feff}b: ko://b\n";
        assert_eq!(
            render(bom, None).unwrap(),
            bom.replace("ko://", "reg.example/").replace("/a\n", "/a@sha256:abc\n").replace("/b\n", "/b@sha256:abc\n")
        );
    }
}
