//! Git facts about a build directory for `.Git.*` templates; outside a repository they take
//! ko's neutral values instead of failing.

use std::path::Path;
use std::process::Command;

use crate::settings::Environment;
use crate::template::Value;

fn git(dir: &Path, env: &Environment, args: &[&str]) -> Option<String> {
    let mut cmd = Command::new("git");
    cmd.arg("-c").arg("log.showSignature=false").args(args).current_dir(dir).env_clear().envs(env.iter());
    let out = crate::interrupt::output_std(&mut cmd).ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn git_value(dir: &Path, env: &Environment) -> Value {
    let git = |args: &[&str]| git(dir, env, args);
    let inside = git(&["rev-parse", "--is-inside-work-tree"]).is_some_and(|s| s == "true");
    if !inside {
        return Value::map([
            ("Branch", Value::Str(String::new())),
            ("Tag", Value::Str(String::new())),
            ("ShortCommit", Value::Str(String::new())),
            ("FullCommit", Value::Str(String::new())),
            ("CommitDate", Value::Str("0001-01-01T00:00:00Z".into())),
            ("CommitTimestamp", Value::Int(-62135596800)),
            ("IsDirty", Value::Bool(false)),
            ("IsClean", Value::Bool(true)),
            ("TreeState", Value::Str("clean".into())),
        ]);
    }
    let commit_ts: i64 =
        git(&["show", "--format=%ct", "-s", "HEAD", "--quiet"]).and_then(|s| s.parse().ok()).unwrap_or(0);
    let dirty = git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    Value::map([
        ("Branch", Value::Str(git(&["rev-parse", "--abbrev-ref", "HEAD", "--quiet"]).unwrap_or_default())),
        ("Tag", Value::Str(git(&["describe", "--tags", "--abbrev=0", "HEAD"]).unwrap_or_else(|| "v0.0.0".into()))),
        ("ShortCommit", Value::Str(git(&["show", "--format=%h", "-s", "HEAD", "--quiet"]).unwrap_or_default())),
        ("FullCommit", Value::Str(git(&["show", "--format=%H", "-s", "HEAD", "--quiet"]).unwrap_or_default())),
        ("CommitDate", Value::Str(crate::time::rfc3339(commit_ts))),
        ("CommitTimestamp", Value::Int(commit_ts)),
        ("IsDirty", Value::Bool(dirty)),
        ("IsClean", Value::Bool(!dirty)),
        ("TreeState", Value::Str(if dirty { "dirty" } else { "clean" }.into())),
    ])
}
