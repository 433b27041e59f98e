//! Logging for the steps: stderr, which the units send to the journal and the
//! console. `--debug` (metal.debug=1) turns on metalroot's own debug lines only.

use tracing::Level;

pub fn init(debug: bool) {
    let level = if debug { Level::DEBUG } else { Level::INFO };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .try_init();
}
