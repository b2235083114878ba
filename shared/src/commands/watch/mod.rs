//! `--watch` for `apply` and `resolve`: a first cycle as a normal run, then one cycle after each
//! settled burst of changes to what the images and the inputs read ([`inputs`], [`events`]),
//! each rebuilding only what changed and applying only the objects that changed ([`cycle`]).
//! Every cycle ends with one summary line on stderr. A failed cycle (a compile error, bad YAML,
//! an unreachable cluster) is reported and the watch goes on (a first cycle that fails on a
//! flag or variable, which no edit fixes, ends it); a change made during a cycle is
//! queued and starts the next one. The watch ends only on SIGINT or SIGTERM, which stop it as
//! any run stops (see `interrupt`: a running `go build` is stopped with its process group), and
//! then exit 0.
//!
//! It lives with the commands because a cycle is the `resolve` and `apply` commands' own work.

mod cycle;
mod events;
mod inputs;
mod poll;
mod reads;

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crate::config::KoConfig;
use crate::error::{Error, WatchError};
use crate::interrupt;
use crate::output;
use crate::settings::Environment;

use cycle::{Changes, Report, State};
pub use cycle::{Inputs, Target};
use events::{Burst, Events};

/// Runs the first cycle, then one per burst of changes, until the process is stopped.
pub async fn run(inputs: Inputs<'_>, target: Target<'_>) -> Result<(), Error> {
    if inputs.files.filenames().iter().any(|f| f == "-") {
        return Err(
            WatchError::Input { detail: "stdin (-f -) cannot be watched; pass files or directories".into() }.into()
        );
    }
    let cwd =
        std::env::current_dir().map_err(|e| WatchError::Input { detail: format!("the working directory: {e}") })?;
    interrupt::signal_ends_well();
    let env = Environment::process();
    // Polling where inotify takes watches but never reports (some network and FUSE mounts).
    let poll = env.text("KUBECTL_KO_WATCH_POLL").is_some_and(|v| !v.is_empty() && v != "0");
    let configs = KoConfig::candidates(&cwd, env);
    let mut events = Events::start(poll)?;
    events.ignore(inputs::outputs(inputs.publish, inputs.build, &cwd));
    // Watching from the start, so that a change during the first cycle queues the next.
    events.set_roots(inputs::roots(inputs.files, &[], &configs, &[], &cwd), None);
    let mut state = State::default();
    let mut burst: Option<Burst> = None;
    loop {
        let (started, since) = (Instant::now(), SystemTime::now());
        let changes = burst.as_ref().map(|b| Changes { paths: &b.paths, configs: &configs });
        let outcome = cycle::run(&inputs, &target, &mut state, changes.as_ref()).await;
        // A flag or variable used wrongly (KO_DOCKER_REPO unset, a bad --selector) is not
        // something an edit fixes: the first cycle ends the watch with it, as a plain run.
        if burst.is_none()
            && let Err(e @ Error::Usage { .. }) = outcome
        {
            return Err(e);
        }
        // Watching what the cycle found before saying it is done: an edit made once the
        // summary line is out must be seen.
        let files: Vec<PathBuf> = configs.iter().cloned().chain(state.module_files()).collect();
        let roots = inputs::roots(inputs.files, &state.package_dirs(), &files, &state.linked_trees(), &cwd);
        events.set_roots(roots, Some(since));
        output::step(summary(&outcome, burst.as_ref(), started, &cwd));
        if let Err(e) = &outcome {
            output::error(e.to_string());
        }
        // The layers this cycle replaced, once no other run uses the cache.
        let _ = tokio::task::spawn_blocking(|| crate::cache::sweep_superseded(true)).await;
        burst = Some(events.burst().await);
    }
}

fn shown(path: &Path, cwd: &Path) -> String {
    path.strip_prefix(cwd).unwrap_or(path).display().to_string()
}

/// What changed, in a few words: up to three paths, then how many more.
fn changes(burst: Option<&Burst>, cwd: &Path) -> String {
    let Some(burst) = burst else { return "first run".into() };
    let paths: Vec<&PathBuf> = burst.paths.iter().collect();
    let mut text = paths.iter().take(3).map(|p| shown(p, cwd)).collect::<Vec<_>>().join(", ");
    if paths.len() > 3 {
        text.push_str(&format!(" (+{} more)", paths.len() - 3));
    }
    format!("changed {text}")
}

fn list(items: &[String]) -> String {
    if items.is_empty() { "none".into() } else { items.join(", ") }
}

/// The one line a cycle ends with.
fn summary(outcome: &Result<Report, Error>, burst: Option<&Burst>, started: Instant, cwd: &Path) -> String {
    let since = burst.map_or(started, |b| b.first).elapsed().as_secs_f64();
    let what = changes(burst, cwd);
    match outcome {
        Err(_) => format!("watch: {what}; failed after {since:.2}s (the error follows); still watching"),
        Ok(report) => {
            let name = |v: &String| v.strip_prefix("ko://").unwrap_or(v).to_string();
            let built: Vec<String> = report.built.iter().map(name).collect();
            let mut line = format!("watch: {what}; images rebuilt: {} of {}", built.len(), report.images);
            if !built.is_empty() {
                line.push_str(&format!(" ({})", built.join(", ")));
            } else if burst.is_some() {
                line.push_str(" (no image reads what changed)");
            }
            if !report.same.is_empty() {
                line.push_str(&format!("; unchanged: {}", list(&report.same.iter().map(name).collect::<Vec<_>>())));
            }
            if report.printed {
                line.push_str("; printed the stream");
            } else {
                line.push_str(&format!("; applied: {}", list(&report.applied)));
            }
            if !report.gone.is_empty() {
                let fate = match (report.pruned.is_empty(), report.dry_run) {
                    (true, _) => "not deleted; --prune deletes",
                    (false, true) => "deleted in the dry run only",
                    (false, false) => "deleted",
                };
                line.push_str(&format!("; gone: {} ({fate})", list(&report.gone)));
            }
            match burst {
                Some(_) => line.push_str(&format!("; {since:.2}s after the change")),
                None => line.push_str(&format!("; took {since:.2}s")),
            }
            line
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_summary_line_says_what_changed_what_was_rebuilt_and_applied() {
        let cwd = Path::new("/work/app");
        let paths: BTreeSet<PathBuf> =
            ["cmd/a/main.go", "cmd/a/b.go", "cmd/a/c.go", "cmd/a/d.go"].iter().map(|p| cwd.join(p)).collect();
        let burst = Burst { paths, first: Instant::now() };
        let report = Report {
            built: vec!["ko://example.com/app/cmd/a".into()],
            images: 3,
            applied: vec!["deployment.apps/a".into()],
            gone: vec!["configmap/old".into()],
            ..Report::default()
        };
        let line = summary(&Ok(report), Some(&burst), Instant::now(), cwd);
        assert!(line.starts_with("watch: changed cmd/a/b.go, cmd/a/c.go, cmd/a/d.go (+1 more); "), "{line}");
        assert!(
            line.contains("; images rebuilt: 1 of 3 (example.com/app/cmd/a); applied: deployment.apps/a; "),
            "{line}"
        );
        assert!(line.contains("; gone: configmap/old (not deleted; --prune deletes); "), "{line}");
        assert!(line.ends_with("s after the change"), "{line}");
        let dry = Report {
            applied: vec!["configmap/a".into()],
            gone: vec!["configmap/old".into()],
            pruned: vec!["configmap/old".into()],
            dry_run: true,
            ..Report::default()
        };
        let line = summary(&Ok(dry), Some(&burst), Instant::now(), cwd);
        assert!(line.contains("; gone: configmap/old (deleted in the dry run only); "), "{line}");
        let failed = summary(&Err(Error::usage("x", "y")), None, Instant::now(), cwd);
        assert!(
            failed.starts_with("watch: first run; failed after ") && failed.ends_with("still watching"),
            "{failed}"
        );
    }
}
