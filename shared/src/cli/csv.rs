//! List flags read as ko reads them: Go's pflag takes each occurrence of a list flag
//! (`--tags`, `--platform`, `--image-label`, `--image-annotation`, `--ldflags`, `-f`) as one
//! record of comma-separated values, where double quotes keep a comma in a value
//! (`--image-label '"description=a, b"'`) and `""` inside quotes is a quote.

use std::ops::Deref;

/// The values of one occurrence of a list flag.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CsvList(Vec<String>);

impl Deref for CsvList {
    type Target = [String];
    fn deref(&self) -> &[String] {
        &self.0
    }
}

impl FromIterator<String> for CsvList {
    fn from_iter<I: IntoIterator<Item = String>>(values: I) -> Self {
        CsvList(values.into_iter().collect())
    }
}

/// The values of every occurrence of a list flag, in order.
pub fn flatten(lists: &[CsvList]) -> Vec<String> {
    lists.iter().flat_map(|l| l.0.iter().cloned()).collect()
}

/// Splits one occurrence's text into its values (clap's value parser for list flags). An
/// empty text is no value at all, as in pflag (`--tags=`). Where pflag refuses a quote that
/// does not open or close a quoted value (`--ldflags='-X main.v={{ printf "%s" .Env.V }}'`),
/// it is taken as written: what ko reads, this reads the same, and more is accepted. A quoted
/// value that never closes is an error.
pub fn csv_list(text: &str) -> Result<CsvList, String> {
    let mut values = Vec::new();
    if text.is_empty() {
        return Ok(CsvList(values));
    }
    let mut chars = text.chars().peekable();
    loop {
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => {
                        return Err(format!(
                            "a quoted value in {text:?} has no closing quote; close it, or write a quote inside it as \"\""
                        ));
                    }
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        value.push('"');
                    }
                    Some('"') if matches!(chars.peek(), None | Some(',')) => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|&c| c != ',') {
                value.push(c);
            }
        }
        values.push(value);
        if chars.next().is_none() {
            return Ok(CsvList(values));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<String> {
        csv_list(text).unwrap().0
    }

    #[test]
    fn commas_split_and_quotes_keep_them_as_in_pflag() {
        assert_eq!(split("a,b"), ["a", "b"]);
        assert_eq!(split(""), Vec::<String>::new());
        assert_eq!(split(","), ["", ""]);
        assert_eq!(split("a,"), ["a", ""]);
        assert_eq!(split(" a , b"), [" a ", " b"]);
        assert_eq!(split("\"desc=a,b\",x=1"), ["desc=a,b", "x=1"]);
        assert_eq!(split("\"say \"\"hi\"\"\""), ["say \"hi\""]);
        assert_eq!(split("\"\""), [""]);
        assert_eq!(split("-X main.v=1 -s"), ["-X main.v=1 -s"]);
    }

    #[test]
    fn quotes_that_neither_open_nor_close_a_value_are_text() {
        assert_eq!(split("-X main.v={{ printf \"%s\" .Env.V }}"), ["-X main.v={{ printf \"%s\" .Env.V }}"]);
        assert_eq!(split("a=b\"c,d"), ["a=b\"c", "d"]);
        assert_eq!(split("\"a\"b,c\""), ["a\"b,c"]);
        for bad in ["\"open", "x,\"a, b"] {
            let err = csv_list(bad).unwrap_err();
            assert!(err.contains("no closing quote"), "{bad}: {err}");
        }
    }

    #[test]
    fn occurrences_flatten_in_order() {
        assert_eq!(
            flatten(&[csv_list("a,b").unwrap(), csv_list("").unwrap(), csv_list("c").unwrap()]),
            ["a", "b", "c"]
        );
    }
}
