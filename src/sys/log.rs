//! Logging for the steps. Under systemd (JOURNAL_STREAM is set, or PID 1
//! started us, as for the trap shell on the console) lines go to
//! journald with structured fields, `METALROOT_STEP=<step>` on every entry so
//! `journalctl METALROOT_STEP=fetch` works, and a plain copy to the console
//! for the serial log. By hand in a shell they go to stderr.
//! `--debug` (metal.debug=1) raises metalroot's own lines to debug level and
//! nobody else's: the HTTP and TLS libraries stay at warnings.

use std::fs::OpenOptions;
use std::sync::Mutex;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// syslog's meaning of the levels, not tracing-journald's default (which
/// files INFO as notice and DEBUG as info): `journalctl -p info` then shows
/// metalroot's normal lines, and only `-p debug` adds the metal.debug=1 ones.
fn priorities() -> tracing_journald::PriorityMappings {
    use tracing_journald::Priority;
    tracing_journald::PriorityMappings {
        info: Priority::Informational,
        debug: Priority::Debug,
        ..tracing_journald::PriorityMappings::new()
    }
}

pub fn init(debug: bool, step: &str) {
    let level = if debug { Level::DEBUG } else { Level::INFO };
    let filter = Targets::new()
        .with_target("metalroot", level)
        .with_default(Level::WARN);
    // Started by systemd: its output goes to the journal (JOURNAL_STREAM),
    // or, for the trap shell that owns the console, PID 1 is the parent. A
    // step an operator runs by hand in a shell logs to stderr.
    let by_systemd =
        std::env::var_os("JOURNAL_STREAM").is_some() || std::os::unix::process::parent_id() == 1;
    let journald = by_systemd
        .then(|| tracing_journald::layer().ok())
        .flatten()
        .map(|l| {
            l.with_field_prefix(None)
                .with_priority_mappings(priorities())
                .with_syslog_identifier(format!("metalroot-{step}"))
                .with_custom_fields([("METALROOT_STEP", step)])
        });
    let registry = tracing_subscriber::registry();
    match journald {
        Some(j) => {
            let console = OpenOptions::new().write(true).open("/dev/console").ok();
            let console = console.map(|f| {
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .without_time()
                    .with_target(false)
                    .with_writer(Mutex::new(f))
                    .with_filter(filter.clone())
            });
            let _ = registry
                .with(j.with_filter(filter))
                .with(console)
                .try_init();
        }
        None => {
            let _ = registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(false)
                        .without_time()
                        .with_target(false)
                        .with_writer(std::io::stderr)
                        .with_filter(filter),
                )
                .try_init();
        }
    }
}
