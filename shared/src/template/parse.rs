//! Go's `text/template` syntax, the part ko's flags use: text and actions (with `{{-`/`-}}`
//! trimming and comments), pipelines of commands (`|`), fields (`.A.B`), variables (`$`,
//! `$x := ...`, `$x = ...`), string, number and boolean constants, parenthesized pipelines,
//! and the actions `if`/`else if`/`else`, `with`/`else with`, `range` (with `break` and
//! `continue`) and `end`. `define`, `template` and `block` are refused by name.

/// One token of an action.
#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// A function name or a keyword.
    Ident(String),
    /// `.A.B` (empty for `.` alone).
    Field(Vec<String>),
    /// `$name.A.B` (`$` alone has the name "").
    Var(String, Vec<String>),
    /// `.A.B` right after a closing parenthesis: fields of the value it closes.
    Chain(Vec<String>),
    Str(String),
    Int(i64),
    Bool(bool),
    Nil,
    Pipe,
    Open,
    Close,
    Declare,
    Assign,
    Comma,
}

/// An operand of a command.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    /// A function, called with the command's other operands.
    Func(String),
    /// `.A.B` from dot.
    Field(Vec<String>),
    /// `$x.A.B`.
    Var(String, Vec<String>),
    Str(String),
    Int(i64),
    Bool(bool),
    Nil,
    /// `(pipeline).A.B`.
    Sub(Box<Pipeline>, Vec<String>),
}

/// `$a, $b := cmd | cmd`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Pipeline {
    pub vars: Vec<String>,
    /// `=` rather than `:=`.
    pub assign: bool,
    pub commands: Vec<Vec<Arg>>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Text(String),
    Print(Pipeline),
    If { cond: Pipeline, then: Vec<Node>, other: Vec<Node> },
    With { value: Pipeline, then: Vec<Node>, other: Vec<Node> },
    Range { over: Pipeline, body: Vec<Node>, other: Vec<Node> },
    Break,
    Continue,
}

/// Text, or one action's tokens.
enum Item {
    Text(String),
    Action(Vec<Tok>),
}

/// Parses a whole template.
pub fn parse(source: &str) -> Result<Vec<Node>, String> {
    let items = lex(source)?;
    let mut parser = Parser { items: items.into_iter(), loops: 0 };
    let (nodes, end) = parser.list()?;
    match end {
        None => Ok(nodes),
        Some(End::End) => Err("unexpected {{end}}".into()),
        Some(End::Else(_)) => Err("unexpected {{else}}".into()),
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn lex(source: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut rest = source;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start_matches(is_space);
        }
        let mut body = &rest[open + 2..];
        if body.starts_with('-') && body[1..].starts_with(is_space) {
            text = text.trim_end_matches(is_space);
            body = &body[1..];
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_string()));
        }
        let (tokens, after, trim) = action(body)?;
        if let Some(tokens) = tokens {
            items.push(Item::Action(tokens));
        }
        trim_next = trim;
        rest = after;
    }
    let text = if trim_next { rest.trim_start_matches(is_space) } else { rest };
    if !text.is_empty() {
        items.push(Item::Text(text.to_string()));
    }
    Ok(items)
}

/// Whether `s` starts with the end of an action, and whether that end trims (` -}}`).
fn action_end(s: &str) -> Option<(usize, bool)> {
    if s.starts_with("}}") {
        return Some((2, false));
    }
    let spaces = s.len() - s.trim_start_matches(is_space).len();
    (spaces > 0 && s[spaces..].starts_with("-}}")).then_some((spaces + 3, true))
}

/// Lexes one action from just after its `{{` (and trim marker): its tokens (none for a
/// comment), what follows its `}}`, and whether it trims the text after it.
fn action(body: &str) -> Result<(Option<Vec<Tok>>, &str, bool), String> {
    let trimmed = body.trim_start_matches(is_space);
    if let Some(comment) = trimmed.strip_prefix("/*") {
        let close = comment.find("*/").ok_or("unclosed comment")?;
        let after = &comment[close + 2..];
        let (len, trim) = action_end(after).ok_or("comment ends before the closing }}")?;
        return Ok((None, &after[len..], trim));
    }
    let mut tokens = Vec::new();
    let mut s = body;
    let mut spaced = true;
    loop {
        if let Some((len, trim)) = action_end(s) {
            return Ok((Some(tokens), &s[len..], trim));
        }
        let Some(c) = s.chars().next() else { return Err("unclosed action: missing }}".into()) };
        if is_space(c) {
            s = &s[1..];
            spaced = true;
            continue;
        }
        let (tok, len) = token(s, if spaced { None } else { tokens.last() })?;
        tokens.push(tok);
        s = &s[len..];
        spaced = false;
    }
}

fn ident_len(s: &str) -> usize {
    s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len())
}

/// `.A.B.C` at the start of `s`: the names and the length.
fn fields(s: &str) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    let mut at = 0;
    while s[at..].starts_with('.') {
        let len = ident_len(&s[at + 1..]);
        if len == 0 {
            break;
        }
        names.push(s[at + 1..at + 1 + len].to_string());
        at += 1 + len;
    }
    (names, at)
}

fn token(s: &str, previous: Option<&Tok>) -> Result<(Tok, usize), String> {
    let c = s.chars().next().unwrap_or_default();
    Ok(match c {
        '|' => (Tok::Pipe, 1),
        '(' => (Tok::Open, 1),
        ')' => (Tok::Close, 1),
        ',' => (Tok::Comma, 1),
        '=' => (Tok::Assign, 1),
        ':' if s.starts_with(":=") => (Tok::Declare, 2),
        '.' => {
            let (names, len) = fields(s);
            if previous == Some(&Tok::Close) && !names.is_empty() {
                (Tok::Chain(names), len)
            } else {
                (Tok::Field(names), len.max(1))
            }
        }
        '$' => {
            let name_len = ident_len(&s[1..]);
            let (names, len) = fields(&s[1 + name_len..]);
            (Tok::Var(s[1..1 + name_len].to_string(), names), 1 + name_len + len)
        }
        '"' => quoted(s)?,
        '`' => {
            let close = s[1..].find('`').ok_or("unterminated raw string")?;
            (Tok::Str(s[1..1 + close].to_string()), close + 2)
        }
        '\'' => {
            let (text, len) = quoted(s)?;
            let Tok::Str(text) = text else { unreachable!() };
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => (Tok::Int(c as i64), len),
                _ => return Err(format!("malformed character constant {}", &s[..len])),
            }
        }
        '0'..='9' | '-' | '+' => number(s)?,
        c if c.is_alphabetic() || c == '_' => {
            let len = ident_len(s);
            let tok = match &s[..len] {
                "true" => Tok::Bool(true),
                "false" => Tok::Bool(false),
                "nil" => Tok::Nil,
                word => Tok::Ident(word.to_string()),
            };
            (tok, len)
        }
        c => return Err(format!("unexpected {c:?} in action")),
    })
}

/// A string constant with Go's escapes (or a character constant, between single quotes).
fn quoted(s: &str) -> Result<(Tok, usize), String> {
    let quote = s.chars().next().unwrap_or('"');
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((at, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((Tok::Str(out), at + 1)),
            '\n' => break,
            '\\' => {
                let (_, e) = chars.next().ok_or("unterminated string")?;
                let mut hex = |n: usize| -> Result<char, String> {
                    let digits: String = (0..n).filter_map(|_| chars.next().map(|(_, c)| c)).collect();
                    u32::from_str_radix(&digits, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| format!("bad escape \\{e}{digits}"))
                };
                out.push(match e {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    'a' => '\x07',
                    'b' => '\x08',
                    'f' => '\x0c',
                    'v' => '\x0b',
                    '\\' | '"' | '\'' => e,
                    'x' => hex(2)?,
                    'u' => hex(4)?,
                    'U' => hex(8)?,
                    other => return Err(format!("unknown escape \\{other} in a string")),
                });
            }
            c => out.push(c),
        }
    }
    Err("unterminated string".into())
}

fn number(s: &str) -> Result<(Tok, usize), String> {
    let len = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || (i == 0 && (c == '-' || c == '+'))))
        .map_or(s.len(), |(i, _)| i);
    let text = &s[..len];
    let (negative, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let digits = digits.replace('_', "");
    let parsed = match digits.get(..2) {
        Some("0x" | "0X") => i64::from_str_radix(&digits[2..], 16),
        Some("0o" | "0O") => i64::from_str_radix(&digits[2..], 8),
        Some("0b" | "0B") => i64::from_str_radix(&digits[2..], 2),
        _ if digits.len() > 1 && digits.starts_with('0') => i64::from_str_radix(&digits[1..], 8),
        _ => digits.parse(),
    };
    match parsed {
        Ok(n) => Ok((Tok::Int(if negative { -n } else { n }), len)),
        Err(_) => Err(format!("bad number {text:?} (only integers are supported)")),
    }
}

/// What ended a list of nodes.
enum End {
    End,
    /// `{{else}}`, with what follows `else` (`if ...`, `with ...`, or nothing).
    Else(Vec<Tok>),
}

struct Parser {
    items: std::vec::IntoIter<Item>,
    /// How many `range`s enclose the list being parsed.
    loops: usize,
}

impl Parser {
    /// Nodes up to an `{{end}}` or `{{else}}`, or to the end of the template (`None`).
    fn list(&mut self) -> Result<(Vec<Node>, Option<End>), String> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            let tokens = match item {
                Item::Text(text) => {
                    nodes.push(Node::Text(text));
                    continue;
                }
                Item::Action(tokens) => tokens,
            };
            let keyword = match tokens.first() {
                Some(Tok::Ident(word)) => word.as_str(),
                None => return Err("missing value for command".into()),
                _ => "",
            };
            let rest = || tokens[1..].to_vec();
            match keyword {
                "end" if tokens.len() > 1 => return Err("unexpected tokens after end".into()),
                "end" => return Ok((nodes, Some(End::End))),
                "else" => return Ok((nodes, Some(End::Else(rest())))),
                "if" => nodes.push(self.branch("if", rest())?),
                "with" => nodes.push(self.branch("with", rest())?),
                "range" => {
                    let over = pipeline(&rest(), true)?;
                    self.loops += 1;
                    let body = self.list();
                    self.loops -= 1;
                    let (body, end) = body?;
                    let other = match end {
                        Some(End::End) => Vec::new(),
                        Some(End::Else(tail)) if tail.is_empty() => self.tail()?,
                        Some(End::Else(_)) => return Err("range takes a plain {{else}}".into()),
                        None => return Err("unexpected EOF: range has no {{end}}".into()),
                    };
                    nodes.push(Node::Range { over, body, other });
                }
                "break" | "continue" if tokens.len() == 1 => {
                    if self.loops == 0 {
                        return Err(format!("{{{{{keyword}}}}} outside {{{{range}}}}"));
                    }
                    nodes.push(if keyword == "break" { Node::Break } else { Node::Continue });
                }
                "define" | "template" | "block" => {
                    return Err(format!("{{{{{keyword}}}}} is not supported in ko's flag templates"));
                }
                _ => nodes.push(Node::Print(pipeline(&tokens, false)?)),
            }
        }
        Ok((nodes, None))
    }

    /// The list after a plain `{{else}}`, which must end with `{{end}}`.
    fn tail(&mut self) -> Result<Vec<Node>, String> {
        match self.list()? {
            (nodes, Some(End::End)) => Ok(nodes),
            (_, Some(End::Else(_))) => Err("a second {{else}}".into()),
            (_, None) => Err("unexpected EOF: missing {{end}}".into()),
        }
    }

    /// `if` or `with` with its pipeline, body and else branch (`else if` chains in an `if`
    /// and `else with` chains in a `with` nest, sharing the one `{{end}}`).
    fn branch(&mut self, keyword: &str, tokens: Vec<Tok>) -> Result<Node, String> {
        let value = pipeline(&tokens, false)?;
        let (then, end) = self.list()?;
        let other = match end {
            Some(End::End) => Vec::new(),
            Some(End::Else(tail)) => match tail.first() {
                None => self.tail()?,
                Some(Tok::Ident(word)) if word == keyword => vec![self.branch(keyword, tail[1..].to_vec())?],
                Some(_) => return Err("unexpected tokens after else".into()),
            },
            None => return Err(format!("unexpected EOF: {keyword} has no {{{{end}}}}")),
        };
        Ok(match keyword {
            "if" => Node::If { cond: value, then, other },
            _ => Node::With { value, then, other },
        })
    }
}

/// A pipeline, with its variable declaration (two variables only for `range`).
fn pipeline(tokens: &[Tok], in_range: bool) -> Result<Pipeline, String> {
    let mut out = Pipeline::default();
    let mut rest = tokens;
    let declares = |t: &[Tok]| matches!(t, [Tok::Var(_, f), Tok::Declare | Tok::Assign, ..] if f.is_empty());
    let two = |t: &[Tok]| matches!(t, [Tok::Var(_, f), Tok::Comma, Tok::Var(_, g), Tok::Declare | Tok::Assign, ..] if f.is_empty() && g.is_empty());
    if declares(rest) || (in_range && two(rest)) {
        while let [Tok::Var(name, _), tail @ ..] = rest {
            out.vars.push(name.clone());
            rest = tail;
            match rest {
                [Tok::Comma, tail @ ..] => rest = tail,
                [op @ (Tok::Declare | Tok::Assign), tail @ ..] => {
                    out.assign = *op == Tok::Assign;
                    rest = tail;
                    break;
                }
                _ => return Err("bad variable declaration".into()),
            }
        }
    }
    let mut at = 0;
    out.commands = commands(rest, &mut at)?;
    if at < rest.len() {
        return Err("unexpected ) in action".into());
    }
    Ok(out)
}

/// Commands separated by `|`, from `tokens[*at]` up to a `)` or the end.
fn commands(tokens: &[Tok], at: &mut usize) -> Result<Vec<Vec<Arg>>, String> {
    let mut commands = vec![Vec::new()];
    while let Some(tok) = tokens.get(*at) {
        *at += 1;
        let arg = match tok {
            Tok::Close => {
                *at -= 1;
                break;
            }
            Tok::Pipe => {
                if commands.last().is_some_and(Vec::is_empty) {
                    return Err("missing command before |".into());
                }
                commands.push(Vec::new());
                continue;
            }
            Tok::Open => {
                let inner = commands_of(tokens, at)?;
                let chain = match tokens.get(*at) {
                    Some(Tok::Chain(names)) => {
                        *at += 1;
                        names.clone()
                    }
                    _ => Vec::new(),
                };
                Arg::Sub(Box::new(Pipeline { commands: inner, ..Pipeline::default() }), chain)
            }
            Tok::Ident(name) if super::exec::FUNCTIONS.contains(&name.as_str()) => Arg::Func(name.clone()),
            Tok::Ident(name) => return Err(format!("function {name:?} not defined")),
            Tok::Field(names) => Arg::Field(names.clone()),
            Tok::Var(name, names) => Arg::Var(name.clone(), names.clone()),
            Tok::Str(s) => Arg::Str(s.clone()),
            Tok::Int(n) => Arg::Int(*n),
            Tok::Bool(b) => Arg::Bool(*b),
            Tok::Nil => Arg::Nil,
            Tok::Chain(_) | Tok::Declare | Tok::Assign | Tok::Comma => {
                return Err("unexpected token in a command (declarations come first)".into());
            }
        };
        commands.last_mut().expect("one command at least").push(arg);
    }
    if commands.last().is_some_and(Vec::is_empty) {
        return Err("missing value for command".into());
    }
    Ok(commands)
}

/// The commands of a parenthesized pipeline, `*at` just after its `(`; consumes the `)`.
fn commands_of(tokens: &[Tok], at: &mut usize) -> Result<Vec<Vec<Arg>>, String> {
    let inner = commands(tokens, at)?;
    match tokens.get(*at) {
        Some(Tok::Close) => {
            *at += 1;
            Ok(inner)
        }
        _ => Err("unclosed left paren".into()),
    }
}
