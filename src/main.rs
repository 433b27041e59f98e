//! `metalroot`: the step binary behind every generated unit, and `plan`.
//! Multi-call: run as `metalroot-generator` (the package's symlink in
//! system-generators/), it is the systemd generator.

use metalroot::cli::{Cli, Cmd};
use metalroot::{steps, sys};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    if metalroot::generator::invoked_as_generator(args.next().as_deref()) {
        return metalroot::generator::main(args);
    }
    let cli = match Cli::try_parse_ordered(std::env::args_os()) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    sys::log::init(cli.debug, cli.cmd.name());
    let result = match cli.cmd {
        Cmd::Plan(a) => steps::plan::run(a),
        Cmd::Fail { message } => steps::fail::run(&message),
        Cmd::Wipe(a) => steps::wipe::run(a),
        Cmd::Layout(a) => steps::layout::run(a),
        Cmd::Fetch(a) => steps::fetch::run(a),
        Cmd::Measure(a) => steps::measure::run(a),
        Cmd::Sysroot(a) => steps::sysroot::run(a),
        Cmd::Handover(a) => steps::handover::run(a),
        Cmd::Trap => steps::trap::run(),
        Cmd::Dhcp => steps::network::run(),
        Cmd::Status(a) => steps::status::run(a),
        Cmd::IscsiLogin(a) => steps::iscsi::run(a),
        Cmd::Multipath(a) => steps::blockstack::multipath(a),
        Cmd::LuksOpen(a) => steps::blockstack::luks(a),
        Cmd::LvmActivate(a) => steps::blockstack::lvm(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
