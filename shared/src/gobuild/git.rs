//! Git facts about a build directory for `.Git.*` templates; outside a repository they take
//! ko's neutral values instead of failing.

use std::path::Path;

use tokio::process::Command;

use crate::settings::Environment;
use crate::template::Value;

/// What `git ARGS` printed in `dir`, trimmed; `None` when it could not run or failed. It runs
/// in a process group of its own, stopped with the run (see `interrupt`).
async fn git(dir: &Path, env: &Environment, args: &[&str]) -> Option<String> {
    let mut cmd = Command::new("git");
    cmd.arg("-c").arg("log.showSignature=false").args(args).current_dir(dir).env_clear().envs(env.iter());
    let out = crate::interrupt::output(&mut cmd).await.ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub async fn git_value(dir: &Path, env: &Environment) -> Value {
    let git = |args: &'static [&'static str]| git(dir, env, args);
    let inside = git(&["rev-parse", "--is-inside-work-tree"]).await.is_some_and(|s| s == "true");
    // A repository without a commit yet gives the same as none, as in ko (it stops at the
    // first git command that fails).
    let full_commit = match inside {
        true => git(&["show", "--format=%H", "-s", "HEAD", "--quiet"]).await,
        false => None,
    };
    let Some(full_commit) = full_commit else {
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
    };
    let commit_ts: i64 =
        git(&["show", "--format=%ct", "-s", "HEAD", "--quiet"]).await.and_then(|s| s.parse().ok()).unwrap_or(0);
    let dirty = git(&["status", "--porcelain"]).await.is_some_and(|s| !s.is_empty());
    let branch = git(&["rev-parse", "--abbrev-ref", "HEAD", "--quiet"]).await.unwrap_or_default();
    let tag = git(&["describe", "--tags", "--abbrev=0", "HEAD"]).await.unwrap_or_else(|| "v0.0.0".into());
    let short_commit = git(&["show", "--format=%h", "-s", "HEAD", "--quiet"]).await.unwrap_or_default();
    Value::map([
        ("Branch", Value::Str(branch)),
        ("Tag", Value::Str(tag)),
        ("ShortCommit", Value::Str(short_commit)),
        ("FullCommit", Value::Str(full_commit)),
        ("CommitDate", Value::Str(crate::time::rfc3339(commit_ts))),
        ("CommitTimestamp", Value::Int(commit_ts)),
        ("IsDirty", Value::Bool(dirty)),
        ("IsClean", Value::Bool(!dirty)),
        ("TreeState", Value::Str(if dirty { "dirty" } else { "clean" }.into())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(value: &Value, name: &str) -> String {
        let Value::Map(map) = value else { panic!("a map") };
        match &map[name] {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => b.to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn outside_a_repository_or_before_its_first_commit_the_values_are_neutral_and_then_git_s() {
        let env = Environment::process();
        let dir = tempfile::tempdir().unwrap();
        let outside = git_value(dir.path(), env).await;
        assert_eq!(field(&outside, "FullCommit"), "");
        assert_eq!(field(&outside, "TreeState"), "clean");
        assert_eq!(field(&outside, "CommitTimestamp"), "-62135596800");

        let run = |args: &[&str]| {
            let status = std::process::Command::new("git").args(args).current_dir(dir.path()).status().unwrap();
            assert!(status.success(), "git {args:?}");
        };
        run(&["init", "-q", "-b", "trunk"]);
        std::fs::write(dir.path().join("new.txt"), "x").unwrap();
        let no_commit = git_value(dir.path(), env).await;
        assert_eq!((field(&no_commit, "Tag"), field(&no_commit, "IsDirty")), (String::new(), "false".into()));
        assert_eq!(field(&no_commit, "CommitDate"), "0001-01-01T00:00:00Z");
        run(&["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "x"]);
        let inside = git_value(dir.path(), env).await;
        assert_eq!(field(&inside, "Branch"), "trunk");
        assert_eq!(field(&inside, "FullCommit").len(), 40);
        assert_eq!(field(&inside, "Tag"), "v0.0.0");
        assert_eq!(field(&inside, "TreeState"), "dirty");
    }
}
