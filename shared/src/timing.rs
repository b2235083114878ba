//! Phase timings for profiling: with `KUBECTL_KO_TIMINGS=1` every timed phase prints one
//! `timing:` line to stderr when it ends, with its duration and the time since the start of
//! the process. Off by default, and then a span costs one relaxed load.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The variable that turns timings on.
pub const ENV: &str = "KUBECTL_KO_TIMINGS";

struct Clock {
    enabled: bool,
    start: Instant,
}

static CLOCK: OnceLock<Clock> = OnceLock::new();

fn clock() -> &'static Clock {
    CLOCK.get_or_init(|| Clock {
        enabled: std::env::var_os(ENV).is_some_and(|v| !v.is_empty() && v != "0"),
        start: Instant::now(),
    })
}

/// Starts the process clock; call early in `main` so offsets count from there.
pub fn init() {
    let _ = clock();
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
