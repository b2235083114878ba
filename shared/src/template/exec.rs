//! Executing a parsed template: dot and variables, `missingkey=error` field lookups, Go's
//! truth (false, 0, "", an empty map and nil are false), and the built-in functions of
//! `text/template` that make sense for flag values.

use std::cmp::Ordering;

use super::Value;
use super::fmt::{is_print, plain, quote, sprint, sprintf, sprintln, text};
use super::parse::{Arg, Node, Pipeline};

/// The functions templates can call.
pub const FUNCTIONS: &[&str] = &[
    "and", "or", "not", "len", "index", "slice", "eq", "ne", "lt", "le", "gt", "ge", "print", "printf", "println",
    "html", "js", "urlquery",
];

/// How a list of nodes ended.
#[derive(PartialEq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

struct Exec {
    /// Variables in scope, innermost last; `$` is the data.
    vars: Vec<(String, Value)>,
    out: String,
}

pub fn execute(nodes: &[Node], data: &Value) -> Result<String, String> {
    let mut exec = Exec { vars: vec![(String::new(), data.clone())], out: String::new() };
    exec.walk(nodes, data)?;
    Ok(exec.out)
}

impl Value {
    fn truth(&self) -> bool {
        match self {
            Value::Str(s) => !s.is_empty(),
            Value::Int(i) => *i != 0,
            Value::Bool(b) => *b,
            Value::Map(m) => !m.is_empty(),
            Value::Nil => false,
        }
    }
}

fn field(value: Value, name: &str) -> Result<Value, String> {
    match value {
        Value::Map(mut map) => map.remove(name).ok_or_else(|| format!("map has no entry for key {name:?}")),
        Value::Nil => Err(format!("nil pointer evaluating .{name}")),
        other => Err(format!("can't evaluate field {name} in a {} ({})", kind(&other), quote(&text(&other)))),
    }
}

fn chain(mut value: Value, names: &[String]) -> Result<Value, String> {
    for name in names {
        value = field(value, name)?;
    }
    Ok(value)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Str(_) => "string",
        Value::Int(_) => "number",
        Value::Bool(_) => "bool",
        Value::Map(_) => "map",
        Value::Nil => "nil",
    }
}

impl Exec {
    fn walk(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow, String> {
        for node in nodes {
            let mark = self.vars.len();
            let flow = match node {
                Node::Text(text) => {
                    self.out.push_str(text);
                    Flow::Normal
                }
                Node::Print(pipeline) => {
                    let value = self.pipeline(pipeline, dot)?;
                    if pipeline.vars.is_empty() {
                        match value {
                            Value::Nil => self.out.push_str("<no value>"),
                            value => plain(&value, &mut self.out),
                        }
                    }
                    // A declaration lasts to the end of the enclosing block.
                    continue;
                }
                Node::If { cond, then, other } => {
                    let taken = if self.pipeline(cond, dot)?.truth() { then } else { other };
                    self.walk(taken, dot)?
                }
                Node::With { value, then, other } => {
                    let value = self.pipeline(value, dot)?;
                    if value.truth() { self.walk(then, &value)? } else { self.walk(other, dot)? }
                }
                Node::Range { over, body, other } => self.range(over, body, other, dot)?,
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
            };
            self.vars.truncate(mark);
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn range(&mut self, over: &Pipeline, body: &[Node], other: &[Node], dot: &Value) -> Result<Flow, String> {
        let items: Vec<(Value, Value)> = match self.value(over, dot)? {
            Value::Map(map) => map.into_iter().map(|(k, v)| (Value::Str(k), v)).collect(),
            Value::Int(n) if over.vars.len() < 2 => (0..n.max(0)).map(|i| (Value::Int(i), Value::Int(i))).collect(),
            Value::Nil => Vec::new(),
            other => return Err(format!("range can't iterate over {}", quote(&text(&other)))),
        };
        if items.is_empty() {
            return self.walk(other, dot);
        }
        let mark = self.vars.len();
        for (key, element) in items {
            match over.vars.as_slice() {
                [] => {}
                [one] => self.bind(one, over.assign, element.clone())?,
                [k, e, ..] => {
                    self.bind(k, over.assign, key)?;
                    self.bind(e, over.assign, element.clone())?;
                }
            }
            let flow = self.walk(body, &element)?;
            self.vars.truncate(mark);
            if flow == Flow::Break {
                break;
            }
        }
        Ok(Flow::Normal)
    }

    fn bind(&mut self, name: &str, assign: bool, value: Value) -> Result<(), String> {
        if !assign {
            self.vars.push((name.to_string(), value));
            return Ok(());
        }
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = value;
                Ok(())
            }
            None => Err(format!("undefined variable: ${name}")),
        }
    }

    fn var(&self, name: &str) -> Result<Value, String> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("undefined variable: ${name}"))
    }

    /// A pipeline's value, bound to its variable if it declares one.
    fn pipeline(&mut self, pipeline: &Pipeline, dot: &Value) -> Result<Value, String> {
        let value = self.value(pipeline, dot)?;
        if let Some(name) = pipeline.vars.first() {
            self.bind(name, pipeline.assign, value.clone())?;
        }
        Ok(value)
    }

    /// A pipeline's value: each command's result is the last argument of the next.
    fn value(&mut self, pipeline: &Pipeline, dot: &Value) -> Result<Value, String> {
        let mut last = None;
        for command in &pipeline.commands {
            last = Some(self.command(command, dot, last)?);
        }
        Ok(last.unwrap_or(Value::Nil))
    }

    fn command(&mut self, args: &[Arg], dot: &Value, piped: Option<Value>) -> Result<Value, String> {
        match args {
            [Arg::Func(name), rest @ ..] => self.call(name, rest, dot, piped),
            [Arg::Nil] => Err("nil is not a command".into()),
            [single] if piped.is_none() => self.arg(single, dot),
            [first, ..] => Err(format!("can't give argument to non-function {}", describe(first))),
            [] => Err("missing value for command".into()),
        }
    }

    fn arg(&mut self, arg: &Arg, dot: &Value) -> Result<Value, String> {
        match arg {
            Arg::Field(names) => chain(dot.clone(), names),
            Arg::Var(name, names) => chain(self.var(name)?, names),
            Arg::Str(s) => Ok(Value::Str(s.clone())),
            Arg::Int(i) => Ok(Value::Int(*i)),
            Arg::Bool(b) => Ok(Value::Bool(*b)),
            Arg::Nil => Ok(Value::Nil),
            Arg::Sub(pipeline, names) => {
                let value = self.value(pipeline, dot)?;
                chain(value, names)
            }
            Arg::Func(name) => self.call(name, &[], dot, None),
        }
    }

    fn call(&mut self, name: &str, args: &[Arg], dot: &Value, piped: Option<Value>) -> Result<Value, String> {
        // `and` and `or` evaluate their operands only as far as they must.
        if name == "and" || name == "or" {
            let count = args.len() + usize::from(piped.is_some());
            if count == 0 {
                return Err(format!("wrong number of args for {name}: want at least 1 got 0"));
            }
            let mut last = Value::Nil;
            for (i, arg) in args.iter().enumerate() {
                last = self.arg(arg, dot)?;
                if last.truth() != (name == "and") || (i + 1 == count) {
                    return Ok(last);
                }
            }
            return Ok(piped.unwrap_or(last));
        }
        let mut values = args.iter().map(|a| self.arg(a, dot)).collect::<Result<Vec<_>, _>>()?;
        values.extend(piped);
        builtin(name, values)
    }
}

fn describe(arg: &Arg) -> String {
    match arg {
        Arg::Field(names) => format!(".{}", names.join(".")),
        Arg::Var(name, names) => format!("${name}{}", names.iter().map(|n| format!(".{n}")).collect::<String>()),
        Arg::Str(s) => quote(s),
        Arg::Int(i) => i.to_string(),
        Arg::Bool(b) => b.to_string(),
        Arg::Nil => "nil".into(),
        Arg::Sub(..) => "(pipeline)".into(),
        Arg::Func(name) => name.clone(),
    }
}

fn want(name: &str, values: &[Value], count: usize) -> Result<(), String> {
    match values.len() == count {
        true => Ok(()),
        false => Err(format!("wrong number of args for {name}: want {count} got {}", values.len())),
    }
}

fn builtin(name: &str, values: Vec<Value>) -> Result<Value, String> {
    match name {
        "not" => {
            want(name, &values, 1)?;
            Ok(Value::Bool(!values[0].truth()))
        }
        "len" => {
            want(name, &values, 1)?;
            match &values[0] {
                Value::Str(s) => Ok(Value::Int(s.len() as i64)),
                Value::Map(m) => Ok(Value::Int(m.len() as i64)),
                other => Err(format!("len of {}", kind(other))),
            }
        }
        "index" => {
            let (first, keys) = values.split_first().ok_or("wrong number of args for index: want at least 1 got 0")?;
            keys.iter().try_fold(first.clone(), index)
        }
        "eq" => {
            let (first, rest) = values.split_first().ok_or("missing argument for comparison")?;
            if rest.is_empty() {
                return Err("missing argument for comparison".into());
            }
            let mut equal = false;
            for other in rest {
                equal |= compare(first, other, true)? == Ordering::Equal;
            }
            Ok(Value::Bool(equal))
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want(name, &values, 2)?;
            let order = compare(&values[0], &values[1], name == "ne")?;
            Ok(Value::Bool(match name {
                "ne" => order != Ordering::Equal,
                "lt" => order == Ordering::Less,
                "le" => order != Ordering::Greater,
                "gt" => order == Ordering::Greater,
                _ => order != Ordering::Less,
            }))
        }
        "print" => Ok(Value::Str(sprint(&values))),
        "println" => Ok(Value::Str(sprintln(&values))),
        "printf" => match values.split_first() {
            Some((Value::Str(format), rest)) => Ok(Value::Str(sprintf(format, rest))),
            _ => Err("printf needs a format string first".into()),
        },
        "slice" => slice(&values),
        "html" => Ok(Value::Str(html(&joined(&values)))),
        "js" => Ok(Value::Str(js(&joined(&values)))),
        "urlquery" => Ok(Value::Str(query_escape(&joined(&values)))),
        _ => Err(format!("function {name:?} not defined")),
    }
}

/// The one string operand, or the operands as `print` joins them.
fn joined(values: &[Value]) -> String {
    match values {
        [Value::Str(s)] => s.clone(),
        _ => sprint(values),
    }
}

fn index(value: Value, key: &Value) -> Result<Value, String> {
    match (value, key) {
        (Value::Map(mut map), Value::Str(key)) => {
            // A missing key is the zero value of the map's values, as in Go.
            let zero = if map.values().all(|v| matches!(v, Value::Str(_))) && !map.is_empty() {
                Value::Str(String::new())
            } else {
                Value::Nil
            };
            Ok(map.remove(key).unwrap_or(zero))
        }
        (Value::Str(s), Value::Int(i)) => usize::try_from(*i)
            .ok()
            .and_then(|i| s.as_bytes().get(i))
            .map(|b| Value::Int(i64::from(*b)))
            .ok_or_else(|| format!("index out of range: {i}")),
        (Value::Nil, _) => Err("index of untyped nil".into()),
        (value, key) => Err(format!("cannot index a {} with {}", kind(&value), kind(key))),
    }
}

/// How `a` compares with `b`; values of different kinds are an error, and only `eq` and `ne`
/// (`equality`) compare booleans.
fn compare(a: &Value, b: &Value, equality: bool) -> Result<Ordering, String> {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) if equality => Ok(if x == y { Ordering::Equal } else { Ordering::Less }),
        (Value::Nil, Value::Nil) if equality => Ok(Ordering::Equal),
        (Value::Nil, _) | (_, Value::Nil) if equality => Ok(Ordering::Less),
        (Value::Map(_), _) | (_, Value::Map(_)) => Err("non-comparable type".into()),
        (Value::Bool(_), Value::Bool(_)) => Err("invalid type for comparison".into()),
        _ => Err("incompatible types for comparison".into()),
    }
}

/// `slice s i j`: `s[i:j]` of a string, by bytes as in Go (`slice s` is all of it, `slice s i`
/// from `i`).
fn slice(values: &[Value]) -> Result<Value, String> {
    let (first, bounds) = values.split_first().ok_or("wrong number of args for slice: want at least 1 got 0")?;
    let Value::Str(text) = first else { return Err(format!("can't slice item of type {}", kind(first))) };
    if bounds.len() > 2 {
        return Err("cannot 3-index slice a string".into());
    }
    let mut at = [0, text.len()];
    for (slot, bound) in at.iter_mut().zip(bounds) {
        *slot = match bound {
            Value::Int(i) if *i >= 0 && (*i as usize) <= text.len() => *i as usize,
            Value::Int(i) => return Err(format!("index out of range: {i}")),
            other => return Err(format!("cannot index slice/array with type {}", kind(other))),
        };
    }
    if at[0] > at[1] {
        return Err(format!("invalid slice index: {} > {}", at[0], at[1]));
    }
    Ok(Value::Str(String::from_utf8_lossy(&text.as_bytes()[at[0]..at[1]]).into_owned()))
}

/// Go's `template.JSEscapeString`.
fn js(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u00{:02X}", c as u32)),
            c if c.is_ascii() || is_print(c) => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out
}

/// Go's `template.HTMLEscapeString`.
fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '\0' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
