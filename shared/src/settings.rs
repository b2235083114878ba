//! Settings read once: the process environment as a value. [`Environment::process`] captures
//! it on first use, and only the command layer calls it; library code takes an
//! [`Environment`] (or a typed value made from one) as an argument, so the precedence between
//! a variable and its fallbacks is a pure function that unit tests drive with
//! [`Environment::from_pairs`]. What the variables mean belongs to the modules that use them
//! (`cache`, `auth`, `gobuild`, `time`, `config`, `registry`, `media`, `cluster`), not here.
//! No library module reads `std::env` itself.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// A snapshot of environment variables, cheap to clone. Variables that are not UTF-8 are kept
/// (a path may be any bytes); the text accessors skip them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Environment {
    vars: Arc<BTreeMap<OsString, OsString>>,
}

impl Environment {
    /// The process's environment, captured on first use and the same for the whole run (the
    /// process never changes its own environment). For the command layer: library code is
    /// handed an `Environment` instead of reaching for this.
    ///
    /// An unset or empty `HOME` is filled from the user database (`/etc/passwd`), as Docker
    /// and Go's `os/user` find the home directory: without it, `~/.docker` and `~/.config`
    /// would be taken relative to the working directory, and credentials written there.
    pub fn process() -> &'static Environment {
        static PROCESS: OnceLock<Environment> = OnceLock::new();
        PROCESS.get_or_init(|| {
            let mut vars: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
            if vars.get(OsStr::new("HOME")).is_none_or(|h| h.is_empty())
                && let Some(home) = passwd_home(rustix::process::getuid().as_raw())
            {
                vars.insert("HOME".into(), home.into());
            }
            Environment { vars: Arc::new(vars) }
        })
    }

    /// An environment of exactly these variables (a later duplicate wins, as in `environ`).
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Environment
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        Environment { vars: Arc::new(pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect()) }
    }

    /// The variable as it is set, empty or not.
    pub fn get(&self, name: &str) -> Option<&OsStr> {
        self.vars.get(OsStr::new(name)).map(OsString::as_os_str)
    }

    /// The variable when it is set and not empty (the usual test for "set").
    pub fn non_empty(&self, name: &str) -> Option<&OsStr> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// The variable as a path, when it is set and not empty.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.non_empty(name).map(PathBuf::from)
    }

    /// The variable as text, when it is set and UTF-8 (empty included).
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(OsStr::to_str)
    }

    /// The variable as text with surrounding blanks removed, when that leaves something.
    pub fn trimmed(&self, name: &str) -> Option<&str> {
        self.text(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Every variable, in byte order of the names.
    pub fn iter(&self) -> impl Iterator<Item = (&OsStr, &OsStr)> {
        self.vars.iter().map(|(k, v)| (k.as_os_str(), v.as_os_str()))
    }

    /// Every variable whose name and value are UTF-8, in order of the names.
    pub fn text_vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter().filter_map(|(k, v)| Some((k.to_str()?, v.to_str()?)))
    }

    /// The user's home directory (`HOME`), when set and not empty.
    pub fn home(&self) -> Option<PathBuf> {
        self.path("HOME")
    }

    /// The user's configuration directory: `XDG_CONFIG_HOME`, else `~/.config` (relative, so
    /// refused for writing, when no home directory is known at all). A relative
    /// `XDG_CONFIG_HOME` is ignored, as the XDG Base Directory specification says.
    pub fn config_home(&self) -> PathBuf {
        self.absolute_path("XDG_CONFIG_HOME").unwrap_or_else(|| self.path_or_empty("HOME").join(".config"))
    }

    /// The variable as a path, when it is set and absolute.
    pub fn absolute_path(&self, name: &str) -> Option<PathBuf> {
        self.path(name).filter(|p| p.is_absolute())
    }

    /// The variable as a path, empty when unset (the old `var_os(..).unwrap_or_default()`).
    pub fn path_or_empty(&self, name: &str) -> PathBuf {
        self.get(name).map(PathBuf::from).unwrap_or_default()
    }

    /// The first file named `program` in a directory of `PATH` (a dangling link is none).
    pub fn find_on_path(&self, program: &str) -> Option<PathBuf> {
        std::env::split_paths(self.get("PATH")?).map(|dir| dir.join(program)).find(|p| p.is_file())
    }
}

/// The home directory of user `uid` in `/etc/passwd`.
fn passwd_home(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd_entry_home(&passwd, uid)
}

fn passwd_entry_home(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 6 && fields[2].parse() == Ok(uid) && !fields[5].is_empty()).then(|| fields[5].to_string())
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt as _;

    use super::*;

    #[test]
    fn the_home_directory_comes_from_the_user_database() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken\nalice:x:1000:1000:Alice,,,:/home/alice:/bin/sh\nnohome:x:7:7:::/bin/sh\n";
        assert_eq!(passwd_entry_home(passwd, 1000).as_deref(), Some("/home/alice"));
        assert_eq!(passwd_entry_home(passwd, 0).as_deref(), Some("/root"));
        assert_eq!(passwd_entry_home(passwd, 7), None);
        assert_eq!(passwd_entry_home(passwd, 42), None);
    }

    #[test]
    fn set_empty_and_unset_are_told_apart() {
        let env = Environment::from_pairs([("A", "x"), ("EMPTY", ""), ("SPACES", "  y ")]);
        assert_eq!(env.get("A"), Some(OsStr::new("x")));
        assert_eq!(env.get("EMPTY"), Some(OsStr::new("")));
        assert_eq!(env.non_empty("EMPTY"), None);
        assert_eq!(env.get("UNSET"), None);
        assert_eq!(env.path("A"), Some(PathBuf::from("x")));
        assert_eq!(env.path("EMPTY"), None);
        assert_eq!(env.text("EMPTY"), Some(""));
        assert_eq!(env.trimmed("SPACES"), Some("y"));
        assert_eq!(env.trimmed("EMPTY"), None);
    }

    #[test]
    fn a_later_duplicate_wins_and_names_are_ordered() {
        let env = Environment::from_pairs([("B", "1"), ("A", "2"), ("B", "3")]);
        assert_eq!(env.text("B"), Some("3"));
        let names: Vec<&str> = env.text_vars().map(|(k, _)| k).collect();
        assert_eq!(names, ["A", "B"]);
    }

    #[test]
    fn non_utf8_values_are_kept_as_paths_but_not_as_text() {
        let raw = OsStr::from_bytes(b"/tmp/\xff").to_os_string();
        let env = Environment::from_pairs([(OsString::from("P"), raw.clone()), ("T".into(), "t".into())]);
        assert_eq!(env.path("P"), Some(PathBuf::from(&raw)));
        assert_eq!(env.text("P"), None);
        assert_eq!(env.text_vars().collect::<Vec<_>>(), [("T", "t")]);
        assert_eq!(env.iter().count(), 2);
    }

    #[test]
    fn the_config_home_is_xdg_then_home() {
        let both = Environment::from_pairs([("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(both.config_home(), PathBuf::from("/x"));
        let empty_xdg = Environment::from_pairs([("XDG_CONFIG_HOME", ""), ("HOME", "/h")]);
        assert_eq!(empty_xdg.config_home(), PathBuf::from("/h/.config"));
        assert_eq!(Environment::default().config_home(), PathBuf::from(".config"));
    }

    #[test]
    fn the_process_snapshot_is_taken_once() {
        assert!(std::ptr::eq(Environment::process(), Environment::process()));
        assert_eq!(Environment::process().get("PATH"), std::env::var_os("PATH").as_deref());
    }
}
