//! Fuzzes the whole pure core: any command line must give either units or
//! one failing unit, never a panic, never a destructive unit when the line
//! is refused, and no destructive step when a value that chooses the disks
//! was refused (the wipe is refused, never guessed).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let g = metalroot::core::generate(None, line);
    if g.error.is_some() {
        for e in &g.entries {
            assert!(e.path().contains("metalroot-cmdline-error"), "{}", e.path());
        }
    }
    if let Ok(Some(p)) = metalroot::core::plan(None, line) {
        if !p.config.wipe_refused.is_empty() {
            assert!(!p.destructive(), "a refused wipe left a destructive step");
        }
    }
});
