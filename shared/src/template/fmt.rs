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

#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

fn digits(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<usize> {
    let mut number = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        number = Some(number.unwrap_or(0) * 10 + d as usize);
        chars.next();
    }
    number
}

/// `fmt.Sprintf`.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut next = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&flag) = chars.peek() {
            match flag {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                _ => break,
            }
            chars.next();
        }
        spec.width = digits(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.precision = Some(digits(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(next) {
            Some(arg) => out.push_str(&spec.format(verb, arg)),
            None => out.push_str(&format!("%!{verb}(MISSING)")),
        }
        next += 1;
    }
    if next < args.len() {
        let extra: Vec<String> = args[next..].iter().map(|a| format!("{}={}", type_name(a), text(a))).collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

impl Spec {
    fn format(&self, verb: char, value: &Value) -> String {
        let formatted = match (value, verb) {
            (Value::Str(s), 'v' | 's') => Some(self.cut(s)),
            (Value::Str(s), 'q') => Some(quote(&self.cut(s))),
            (Value::Str(s), 'x' | 'X') => Some(hex(s.as_bytes(), verb == 'X')),
            (Value::Int(i), _) => self.integer(*i, verb),
            (Value::Bool(b), 'v' | 't') => Some(b.to_string()),
            (Value::Map(map), _) => {
                // The verb applies to each entry, as Go's fmt does.
                let entries: Vec<String> = map
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{}:{}",
                            Spec::default().format(verb, &Value::Str(k.clone())),
                            Spec::default().format(verb, v)
                        )
                    })
                    .collect();
                Some(format!("map[{}]", entries.join(" ")))
            }
            (Value::Nil, 'v') => Some(text(value)),
            _ => None,
        };
        match formatted {
            Some(text) => self.pad(text, matches!(value, Value::Int(_))),
            None if matches!(value, Value::Nil) => format!("%!{verb}(<nil>)"),
            None => format!("%!{verb}({}={})", type_name(value), text(value)),
        }
    }

    /// A string cut to the precision, in characters.
    fn cut(&self, s: &str) -> String {
        match self.precision {
            Some(n) => s.chars().take(n).collect(),
            None => s.to_string(),
        }
    }

    fn integer(&self, i: i64, verb: char) -> Option<String> {
        let magnitude = i.unsigned_abs();
        let (prefix, digits) = match verb {
            'v' | 'd' => ("", magnitude.to_string()),
            'b' => ("0b", format!("{magnitude:b}")),
            'o' => ("0", format!("{magnitude:o}")),
            'O' => return Some(format!("{}0o{magnitude:o}", if i < 0 { "-" } else { "" })),
            'x' => ("0x", format!("{magnitude:x}")),
            'X' => ("0X", format!("{magnitude:X}")),
            'c' => return Some(char::from_u32(u32::try_from(i).ok()?).unwrap_or('\u{fffd}').to_string()),
            'q' => return Some(format!("{:?}", char::from_u32(u32::try_from(i).ok()?).unwrap_or('\u{fffd}'))),
            'U' => return Some(format!("U+{magnitude:04X}")),
            _ => return None,
        };
        let digits = match self.precision {
            Some(p) if digits.len() < p => format!("{}{digits}", "0".repeat(p - digits.len())),
            _ => digits,
        };
        let sign = if i < 0 {
            "-"
        } else if self.plus {
            "+"
        } else if self.space {
            " "
        } else {
            ""
        };
        let prefix = if self.sharp && verb != 'd' && verb != 'v' { prefix } else { "" };
        let lead = format!("{sign}{prefix}");
        // Zeros go between the sign and the digits.
        let digits = match self.width {
            Some(w) if self.zero && !self.minus && self.precision.is_none() && lead.len() + digits.len() < w => {
                format!("{}{digits}", "0".repeat(w - lead.len() - digits.len()))
            }
            _ => digits,
        };
        Some(format!("{lead}{digits}"))
    }

    fn pad(&self, text: String, number: bool) -> String {
        let len = text.chars().count();
        let Some(width) = self.width.filter(|&w| w > len) else { return text };
        let fill = width - len;
        if self.minus {
            format!("{text}{}", " ".repeat(fill))
        } else if self.zero && !number {
            format!("{}{text}", "0".repeat(fill))
        } else {
            format!("{}{text}", " ".repeat(fill))
        }
    }
}

fn hex(bytes: &[u8], upper: bool) -> String {
    bytes.iter().map(|b| if upper { format!("{b:02X}") } else { format!("{b:02x}") }).collect()
}

/// Go's `strconv.Quote`.
pub fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
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
