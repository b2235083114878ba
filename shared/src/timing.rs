//! Phase timings for profiling: with `KUBECTL_KO_TIMINGS=1` every timed phase prints one
//! `timing:` line to stderr when it ends, with its duration and the time since the start of
//! the process. Off by default, and then a span costs one relaxed load.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::settings::Environment;

/// The variable that turns timings on.
pub const ENV: &str = "KUBECTL_KO_TIMINGS";

struct Clock {
    enabled: bool,
    start: Instant,
}

static CLOCK: OnceLock<Clock> = OnceLock::new();

/// The clock is process-wide (spans are timed anywhere); [`init`] sets it from the run's
/// environment, and until then timings are off.
fn clock() -> &'static Clock {
    CLOCK.get_or_init(|| Clock { enabled: false, start: Instant::now() })
}

/// Whether `env` turns timings on: [`ENV`] set to anything but empty or `0`.
pub fn enabled_in(env: &Environment) -> bool {
    env.get(ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Starts the process clock, on when `env` says so; call early in `main` so offsets count
/// from there.
pub fn init(env: &Environment) {
    let _ = CLOCK.set(Clock { enabled: enabled_in(env), start: Instant::now() });
}

/// Whether timings are on in this process.
pub fn enabled() -> bool {
    clock().enabled
}

/// A timed phase; reports when dropped.
#[must_use = "a span reports when it is dropped"]
pub struct Span {
    label: Option<String>,
    start: Instant,
}

/// Times the phase named by `label` (built only when timings are on).
pub fn span(label: impl FnOnce() -> String) -> Span {
    let label = clock().enabled.then(label);
    Span { label, start: Instant::now() }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Reports the CPU time this process used (all its threads) and the CPU time of the programs
/// it ran and waited for (Go's compiler and linker, credential helpers), when timings are on.
/// From `/proc/self/stat`, in clock ticks (10 ms on Linux), so meant for whole runs.
pub fn report_cpu() {
    if !clock().enabled {
        return;
    }
    let Some((faults, ticks)) = std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| cpu_ticks(&s)) else {
        return;
    };
    let [user, system, child_user, child_system] = ticks.map(|t| t * 10);
    crate::output::step(format!(
        "timing: CPU of kubectl-ko: {} ms ({user} user, {system} system, {faults} page faults); of the programs it ran: {} ms",
        user + system,
        child_user + child_system
    ));
}

/// The page faults (minor and major, field 10 and 12) and utime, stime, cutime and cstime
/// (fields 14 to 17) from a `/proc/PID/stat` line; the name in field 2 may hold spaces, so
/// fields are counted after its closing parenthesis.
fn cpu_ticks(stat: &str) -> Option<(u64, [u64; 4])> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some((field(10)? + field(12)?, [field(14)?, field(15)?, field(16)?, field(17)?]))
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(label) = self.label.take() {
            let now = Instant::now();
            crate::output::step(format!(
                "timing: {label}: {:.1} ms (ended at {:.1} ms)",
                ms(now - self.start),
                ms(now - clock().start)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_are_on_for_any_value_but_empty_and_zero() {
        let with = |v: &str| enabled_in(&Environment::from_pairs([(ENV, v)]));
        assert!(with("1") && with("yes") && with("00"));
        assert!(!with("") && !with("0"));
        assert!(!enabled_in(&Environment::default()));
    }

    #[test]
    fn cpu_ticks_and_faults_are_read_after_the_command_name() {
        let stat = "4242 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18";
        assert_eq!(cpu_ticks(stat), Some((7 + 9, [11, 12, 13, 14])));
        assert_eq!(cpu_ticks("4242 (x) S 1 2"), None);
    }
}
