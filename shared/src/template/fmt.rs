//! Go's `fmt` as the template functions `print`, `println` and `printf` use it: `%v` of every
//! value, the common verbs with flags, width and precision, and Go's markers for a verb that
//! does not fit its operand (`%!d(string=x)`), a missing operand and extra operands.

use super::Value;

/// `%v`.
pub fn plain(value: &Value, out: &mut String) {
    match value {
        Value::Str(s) => out.push_str(s),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Nil => out.push_str("<nil>"),
        Value::Map(map) => {
            out.push_str("map[");
            for (i, (key, value)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(key);
                out.push(':');
                plain(value, out);
            }
            out.push(']');
        }
    }
}

/// `%v` as a string.
pub(super) fn text(value: &Value) -> String {
    let mut out = String::new();
    plain(value, &mut out);
    out
}

/// Go's type name of a value, as `fmt` writes it in its markers.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Str(_) => "string",
        Value::Int(_) => "int",
        Value::Bool(_) => "bool",
        // The environment is a map of strings; the Git facts mix strings, numbers and flags.
        Value::Map(map) if map.values().all(|v| matches!(v, Value::Str(_))) => "map[string]string",
        Value::Map(_) => "map[string]interface {}",
        Value::Nil => "<nil>",
    }
}

/// `fmt.Sprint`: a space between operands when neither is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        let is_str = |v: &Value| matches!(v, Value::Str(_));
        if i > 0 && !is_str(arg) && !is_str(&args[i - 1]) {
            out.push(' ');
        }
        plain(arg, &mut out);
    }
    out
}

/// `fmt.Sprintln`: spaces between all operands, and a newline.
pub fn sprintln(args: &[Value]) -> String {
    let mut out = args.iter().map(text).collect::<Vec<_>>().join(" ");
    out.push('\n');
    out
}

#[derive(Clone, Copy, Default)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    /// `%#v`: Go syntax (the `#` moves here for `v`).
    sharp_v: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

/// Go's bound on a width, precision or argument index written in a format.
const TOO_LARGE: usize = 1_000_000;

/// The number at `at` in `format` and the index after it; `None` when there are no digits
/// or it is too large.
fn number(format: &[char], mut at: usize) -> (Option<usize>, usize) {
    let start = at;
    let mut n = 0usize;
    while let Some(d) = format.get(at).and_then(|c| c.to_digit(10)) {
        if n > TOO_LARGE {
            return (None, format.len());
        }
        n = n * 10 + d as usize;
        at += 1;
    }
    ((at > start).then_some(n), at)
}

/// `fmt.Sprintf`, following Go's reading of the format: flags, an argument index (`%[2]d`),
/// width and precision (numbers, or `*` for the next argument), and the verb.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let format: Vec<char> = format.chars().collect();
    let mut p = Printf { args, out: String::new(), next: 0, reordered: false, good_index: true };
    let mut i = 0;
    while i < format.len() {
        if format[i] != '%' {
            p.out.push(format[i]);
            i += 1;
            continue;
        }
        i += 1;
        p.good_index = true;
        let mut spec = Spec::default();
        while let Some(&flag) = format.get(i) {
            match flag {
                '#' => spec.sharp = true,
                '0' => spec.zero = !spec.minus,
                '+' => spec.plus = true,
                '-' => (spec.minus, spec.zero) = (true, false),
                ' ' => spec.space = true,
                _ => break,
            }
            i += 1;
        }
        let mut after_index;
        (i, after_index) = p.index(&format, i);
        if format.get(i) == Some(&'*') {
            i += 1;
            match p.int_arg() {
                Some(w) if w < 0 => {
                    (spec.width, spec.minus, spec.zero) = (Some(w.unsigned_abs() as usize), true, false)
                }
                Some(w) => spec.width = Some(w as usize),
                None => p.out.push_str("%!(BADWIDTH)"),
            }
            after_index = false;
        } else {
            (spec.width, i) = number(&format, i);
            if after_index && spec.width.is_some() {
                p.good_index = false;
            }
        }
        if i + 1 < format.len() && format[i] == '.' {
            i += 1;
            if after_index {
                p.good_index = false;
            }
            (i, after_index) = p.index(&format, i);
            if format.get(i) == Some(&'*') {
                i += 1;
                match p.int_arg() {
                    Some(n) if n >= 0 => spec.precision = Some(n as usize),
                    _ => p.out.push_str("%!(BADPREC)"),
                }
                after_index = false;
            } else {
                let (n, at) = number(&format, i);
                (spec.precision, i) = (Some(n.unwrap_or(0)), at);
            }
        }
        if !after_index {
            (i, _) = p.index(&format, i);
        }
        let Some(&verb) = format.get(i) else {
            p.out.push_str("%!(NOVERB)");
            break;
        };
        i += 1;
        if verb == '%' {
            p.out.push('%');
        } else if !p.good_index {
            p.out.push_str(&format!("%!{verb}(BADINDEX)"));
        } else if let Some(arg) = args.get(p.next) {
            if verb == 'v' {
                // `#` asks for Go syntax; `+` (field names) means nothing for these values.
                (spec.sharp_v, spec.sharp, spec.plus) = (spec.sharp, false, false);
            }
            p.out.push_str(&spec.format(verb, arg));
            p.next += 1;
        } else {
            p.out.push_str(&format!("%!{verb}(MISSING)"));
        }
    }
    if !p.reordered && p.next < args.len() {
        let extra: Vec<String> = args[p.next..].iter().map(|a| format!("{}={}", type_name(a), text(a))).collect();
        p.out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    p.out
}

/// The state of one [`sprintf`].
struct Printf<'a> {
    args: &'a [Value],
    out: String,
    /// The operand the next verb takes.
    next: usize,
    /// An argument index was used: extra operands are then not reported.
    reordered: bool,
    good_index: bool,
}

impl Printf<'_> {
    /// Reads an argument index (`[n]`, one-based) at `at`: the next operand becomes that one.
    /// Returns where reading goes on and whether there was an index.
    fn index(&mut self, format: &[char], at: usize) -> (usize, bool) {
        if format.get(at) != Some(&'[') {
            return (at, false);
        }
        self.reordered = true;
        // `[n]`; anything else up to the `]` is a bad index, and a lone `[` is skipped.
        let close = format[at..].iter().position(|&c| c == ']').filter(|_| format.len() - at >= 3);
        let (n, width) = match close {
            Some(close) => match number(format, at + 1) {
                (Some(n), end) if end == at + close => (Some(n), close + 1),
                _ => (None, close + 1),
            },
            None => (None, 1),
        };
        match n {
            Some(n) if (1..=self.args.len()).contains(&n) => {
                self.next = n - 1;
                (at + width, true)
            }
            _ => {
                self.good_index = false;
                (at + width, n.is_some())
            }
        }
    }

    /// The operand for a `*`, taken when it is an integer of a sane size.
    fn int_arg(&mut self) -> Option<i64> {
        let arg = self.args.get(self.next)?;
        self.next += 1;
        match arg {
            Value::Int(n) if n.unsigned_abs() <= TOO_LARGE as u64 => Some(*n),
            _ => None,
        }
    }
}

impl Spec {
    /// One operand under one verb, as Go's `printArg` writes it.
    fn format(&self, verb: char, value: &Value) -> String {
        let formatted = match (value, verb) {
            (Value::Str(s), 'v') if self.sharp_v => Some(self.pad(&self.quoted(&self.cut(s), false))),
            (Value::Str(s), 'v' | 's') => Some(self.pad(&self.cut(s))),
            (Value::Str(s), 'q') => Some(self.pad(&self.quoted(&self.cut(s), self.sharp))),
            (Value::Str(s), 'x' | 'X') => Some(self.hex_bytes(s.as_bytes(), verb == 'X')),
            (Value::Int(i), _) => self.integer(*i, verb),
            (Value::Bool(b), 'v' | 't') => Some(self.pad(if *b { "true" } else { "false" })),
            (Value::Map(map), 'v') if self.sharp_v => {
                let entries: Vec<String> =
                    map.iter().map(|(k, v)| format!("{}:{}", quote(k), self.format('v', v))).collect();
                Some(format!("{}{{{}}}", type_name(value), entries.join(", ")))
            }
            (Value::Map(map), _) => {
                // The verb and its flags apply to each key and value, as in Go's fmt.
                let entries: Vec<String> = map
                    .iter()
                    .map(|(k, v)| format!("{}:{}", self.format(verb, &Value::Str(k.clone())), self.format(verb, v)))
                    .collect();
                Some(format!("map[{}]", entries.join(" ")))
            }
            (Value::Nil, 'v') => Some(self.pad("<nil>")),
            _ => None,
        };
        match formatted {
            Some(text) => text,
            None if matches!(value, Value::Nil) => format!("%!{verb}(<nil>)"),
            None => format!("%!{verb}({}={})", type_name(value), self.format('v', value)),
        }
    }

    /// A string cut to the precision, in characters.
    fn cut(&self, s: &str) -> String {
        match self.precision {
            Some(n) => s.chars().take(n).collect(),
            None => s.to_string(),
        }
    }

    /// `%q`: Go's quoting (ASCII only with `+`), or backquotes with `#` where they can hold
    /// the text.
    fn quoted(&self, s: &str, backquote: bool) -> String {
        let can_backquote = s.chars().all(|c| c == '\t' || !(c < ' ' || c == '\x7f' || c == '`' || c == '\u{feff}'));
        if backquote && can_backquote { format!("`{s}`") } else { quote_as(s, '"', self.plus) }
    }

    /// `%x` of a string: two hex digits a byte; `#` adds `0x`, a space separates the bytes.
    fn hex_bytes(&self, bytes: &[u8], upper: bool) -> String {
        let bytes = &bytes[..self.precision.map_or(bytes.len(), |p| p.min(bytes.len()))];
        let prefix = if upper { "0X" } else { "0x" };
        let mut text = String::new();
        for (i, b) in bytes.iter().enumerate() {
            if self.sharp && (i == 0 || self.space) {
                if i > 0 {
                    text.push(' ');
                }
                text.push_str(prefix);
            } else if self.space && i > 0 {
                text.push(' ');
            }
            text.push_str(&if upper { format!("{b:02X}") } else { format!("{b:02x}") });
        }
        self.pad(&text)
    }

    /// An integer under its verb, as Go's `fmtInteger` (and `%c`, `%q`, `%U`) write it.
    fn integer(&self, i: i64, verb: char) -> Option<String> {
        let as_char = || u32::try_from(i).ok().and_then(char::from_u32).unwrap_or('\u{fffd}');
        let (base, upper) = match verb {
            'v' | 'd' => (10, false),
            'b' => (2, false),
            'o' | 'O' => (8, false),
            'x' => (16, false),
            'X' => (16, true),
            'c' => return Some(self.pad(&as_char().to_string())),
            'q' => return Some(self.pad(&quote_as(&as_char().to_string(), '\'', self.plus))),
            'U' => return Some(self.unicode(i)),
            _ => return None,
        };
        let negative = i < 0;
        let magnitude = i.unsigned_abs();
        // Precision 0 and the value 0 print nothing but the padding.
        if self.precision == Some(0) && magnitude == 0 {
            return Some(" ".repeat(self.width.unwrap_or(0)));
        }
        let mut digits = match base {
            2 => format!("{magnitude:b}"),
            8 => format!("{magnitude:o}"),
            16 if upper => format!("{magnitude:X}"),
            16 => format!("{magnitude:x}"),
            _ => magnitude.to_string(),
        };
        // Leading zeros: the precision, or the width with the `0` flag (less room for a sign).
        let zeros = match (self.precision, self.width) {
            (Some(p), _) => p,
            (None, Some(w)) if self.zero && !self.minus => w - usize::from(negative || self.plus || self.space).min(w),
            _ => 0,
        };
        if digits.len() < zeros {
            digits.insert_str(0, &"0".repeat(zeros - digits.len()));
        }
        if self.sharp {
            match base {
                2 => digits.insert_str(0, "0b"),
                8 if !digits.starts_with('0') => digits.insert(0, '0'),
                16 => digits.insert_str(0, if upper { "0X" } else { "0x" }),
                _ => {}
            }
        }
        if verb == 'O' {
            digits.insert_str(0, "0o");
        }
        let sign = match () {
            () if negative => "-",
            () if self.plus => "+",
            () if self.space => " ",
            () => "",
        };
        digits.insert_str(0, sign);
        Some(Spec { zero: false, ..*self }.pad(&digits))
    }

    /// `%U`: `U+0041`, and with `#` the character too when it prints (`U+0041 'A'`).
    fn unicode(&self, i: i64) -> String {
        let digits = self.precision.filter(|&p| p > 4).unwrap_or(4);
        let mut text = format!("U+{:0digits$X}", i as u64);
        if let Some(c) = u32::try_from(i).ok().and_then(char::from_u32).filter(|&c| self.sharp && is_print(c)) {
            text.push_str(&format!(" '{c}'"));
        }
        Spec { zero: false, ..*self }.pad(&text)
    }

    /// Pads to the width, in characters: spaces (zeros with the `0` flag) on the left, or
    /// spaces on the right with `-`.
    fn pad(&self, text: &str) -> String {
        let len = text.chars().count();
        let Some(width) = self.width.filter(|&w| w > len) else { return text.to_string() };
        let fill = width - len;
        if self.minus {
            format!("{text}{}", " ".repeat(fill))
        } else {
            format!("{}{text}", (if self.zero { "0" } else { " " }).repeat(fill))
        }
    }
}

/// Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII space.
pub(super) fn is_print(c: char) -> bool {
    use unicode_properties::{GeneralCategoryGroup as G, UnicodeGeneralCategory as _};
    c == ' ' || matches!(c.general_category_group(), G::Letter | G::Mark | G::Number | G::Punctuation | G::Symbol)
}

/// Go's `strconv.Quote`.
pub fn quote(s: &str) -> String {
    quote_as(s, '"', false)
}

/// Go's `strconv.Quote` (`"`) or `QuoteRune` (`'`), and with `ascii` their `ToASCII` forms.
fn quote_as(s: &str, quote: char, ascii: bool) -> String {
    let mut out = String::from(quote);
    for c in s.chars() {
        match c {
            c if c == quote || c == '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if is_print(c) && (!ascii || c.is_ascii()) => out.push(c),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if c < ' ' || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value {
        Value::Str(text.into())
    }

    #[test]
    fn printf_formats_as_go_does() {
        assert_eq!(sprintf("%s-%d-%t", &[s("v1"), Value::Int(42), Value::Bool(true)]), "v1-42-true");
        assert_eq!(
            sprintf("%05d|%-4s|%4s|%.3s", &[Value::Int(-42), s("a"), s("b"), s("abcdef")]),
            "-0042|a   |   b|abc"
        );
        assert_eq!(
            sprintf("%x %X %#x %q %v%%", &[s("hi"), Value::Int(255), Value::Int(255), s("a\"b\n"), s("z")]),
            "6869 FF 0xff \"a\\\"b\\n\" z%"
        );
        assert_eq!(sprintf("%d", &[s("abc")]), "%!d(string=abc)");
        assert_eq!(sprintf("%s %s", &[s("one")]), "one %!s(MISSING)");
        assert_eq!(sprintf("%s", &[s("one"), Value::Int(2)]), "one%!(EXTRA int=2)");
        assert_eq!(sprintf("%+d %c %05s", &[Value::Int(3), Value::Int(65), s("ab")]), "+3 A 000ab");
    }

    #[test]
    fn print_spaces_operands_that_are_not_strings() {
        assert_eq!(sprint(&[s("a"), s("b"), Value::Int(1), Value::Int(2), Value::Bool(true)]), "ab1 2 true");
        assert_eq!(sprintln(&[s("a"), Value::Int(1)]), "a 1\n");
    }
}
