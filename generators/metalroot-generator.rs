//! systemd generator entry point: `metalroot-generator NORMAL [EARLY LATE]`.
//! All the work is in the library (`metalroot::generator`) so tests run it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // Test hook, like composefs-rs: a fake root instead of `/`.
    let root = std::env::var_os("METALROOT_GENERATOR_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    let mut log = metalroot::generator::Kmsg::open(&root);
    let Some(normal) = args.get(1) else {
        log.log(
            3,
            "usage: metalroot-generator NORMAL_DIR [EARLY_DIR LATE_DIR]",
        );
        return ExitCode::from(2);
    };
    match metalroot::generator::run(&root, Path::new(normal), &mut log) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            log.log(3, &format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}
