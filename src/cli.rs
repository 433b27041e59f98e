//! The command line of the `metalroot` binary: one subcommand per step.
//! The generator writes these arguments into ExecStart=, so `systemctl cat`
//! shows exactly what runs and an operator can re-run a step by hand.

// Each step's arguments live with the step.
pub use crate::steps::blockstack::{LuksArgs, LvmArgs, MultipathArgs};
pub use crate::steps::fetch::{FetchArgs, ImageArgs, SourceKind};
pub use crate::steps::handover::HandoverArgs;
pub use crate::steps::iscsi::IscsiArgs;
pub use crate::steps::layout::LayoutArgs;
pub use crate::steps::measure::MeasureArgs;
pub use crate::steps::sysroot::SysrootArgs;
pub use crate::steps::wipe::WipeArgs;
pub use crate::sys::disks::DiskArgs;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "metalroot",
    version,
    about = "Prepares a server's root filesystem from inside a systemd initrd"
)]
pub struct Cli {
    /// Log metalroot's own debug lines (metal.debug=1).
    #[arg(long, global = true)]
    pub debug: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

impl Cli {
    /// `try_parse_from`, plus what clap's lists lose: the order of
    /// `--source` and `--source-file` (fetch, and the wipe's preflight).
    pub fn try_parse_ordered<I, T>(argv: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let mut cmd = Cli::command();
        let m = cmd.try_get_matches_from_mut(argv)?;
        let mut cli = Cli::from_arg_matches(&m).map_err(|e| e.format(&mut cmd))?;
        let src = match &mut cli.cmd {
            Cmd::Fetch(a) => Some(&mut a.src),
            Cmd::Wipe(a) => Some(&mut a.src),
            _ => None,
        };
        if let (Some(src), Some((_, sm))) = (src, m.subcommand()) {
            let at = |id: &str| sm.indices_of(id).into_iter().flatten();
            let mut kinds: Vec<(usize, SourceKind)> = at("sources")
                .map(|i| (i, SourceKind::Url))
                .chain(at("source_files").map(|i| (i, SourceKind::File)))
                .collect();
            kinds.sort_by_key(|(i, _)| *i);
            src.order = kinds.into_iter().map(|(_, k)| k).collect();
        }
        Ok(cli)
    }
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    /// Print the plan for a command line, touching nothing.
    Plan(PlanArgs),
    /// Stop the boot with a message (used for an invalid command line).
    Fail { message: String },
    /// Wipe the selected local disks (seed 000).
    Wipe(WipeArgs),
    /// Build or assemble the RAID layout (seed 000).
    Layout(LayoutArgs),
    /// Fetch and verify the root image.
    Fetch(FetchArgs),
    /// Extend a TPM PCR with the image's SHA-256 (measured boot).
    Measure(MeasureArgs),
    /// Assemble the root filesystem at /sysroot.
    Sysroot(SysrootArgs),
    /// Log in to an iSCSI target.
    IscsiLogin(IscsiArgs),
    /// Start multipathd over the iSCSI paths.
    Multipath(MultipathArgs),
    /// Unlock a LUKS device with systemd-cryptsetup.
    LuksOpen(LuksArgs),
    /// Probe partitions and activate LVM.
    LvmActivate(LvmArgs),
    /// Hand the assembled system over to the real root.
    Handover(HandoverArgs),
    /// DHCP on every Ethernet link, for a command line without ip=.
    Dhcp,
    /// A shell before switch-root; leaving it continues the boot.
    Trap,
    /// For the emergency shell: every metalroot unit, its state, its last
    /// status line and error, and the plan (asks systemd over D-Bus).
    Status(StatusArgs),
}

impl Cmd {
    /// The step's name, as in `METALROOT_STEP=` and the unit name.
    pub fn name(&self) -> &'static str {
        match self {
            Cmd::Plan(_) => "plan",
            Cmd::Fail { .. } => "fail",
            Cmd::Wipe(_) => "wipe",
            Cmd::Layout(_) => "layout",
            Cmd::Fetch(_) => "fetch",
            Cmd::Measure(_) => "measure",
            Cmd::Sysroot(_) => "sysroot",
            Cmd::IscsiLogin(_) => "iscsi-login",
            Cmd::Multipath(_) => "multipath",
            Cmd::LuksOpen(_) => "luks-open",
            Cmd::LvmActivate(_) => "lvm-activate",
            Cmd::Handover(_) => "handover",
            Cmd::Trap => "trap",
            Cmd::Dhcp => "dhcp",
            Cmd::Status(_) => "status",
        }
    }

    /// The full ExecStart= argv: the binary, the step's name, its arguments.
    pub fn to_argv(&self) -> Vec<String> {
        let rest = match self {
            // No `--` before it: the units have always shown the bare
            // message, and the plan's messages (a refused line, the dry
            // run) never start with '-'.
            Cmd::Fail { message } => vec![message.clone()],
            Cmd::Wipe(a) => a.to_argv(),
            Cmd::Layout(a) => a.to_argv(),
            Cmd::Fetch(a) => a.to_argv(),
            Cmd::Measure(a) => a.to_argv(),
            Cmd::Sysroot(a) => a.to_argv(),
            Cmd::IscsiLogin(a) => a.to_argv(),
            Cmd::LuksOpen(a) => a.to_argv(),
            Cmd::LvmActivate(a) => a.to_argv(),
            Cmd::Handover(a) => a.to_argv(),
            Cmd::Plan(a) => a.to_argv(),
            Cmd::Status(a) => a.to_argv(),
            Cmd::Multipath(_) | Cmd::Trap | Cmd::Dhcp => Vec::new(),
        };
        let mut argv = vec![crate::args::BIN.to_string(), self.name().to_string()];
        argv.extend(rest);
        argv
    }
}

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct PlanArgs {
    /// The command line to plan for (default: /proc/cmdline).
    #[arg(long)]
    pub cmdline: Option<String>,
    /// Also scan this machine's disks and say, for each, whether the plan
    /// would wipe it, partition it or keep it, and why (reads sysfs only).
    #[arg(long)]
    pub scan_disks: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Site defaults (default: /etc/metalroot.conf if present).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl PlanArgs {
    fn to_argv(&self) -> Vec<String> {
        let mut a = crate::args::Argv::default();
        a.opt_if("cmdline", self.cmdline.as_ref());
        a.path("config", self.config.as_deref());
        a.flag("json", self.json);
        a.flag("scan-disks", self.scan_disks);
        a.0
    }
}

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct StatusArgs {
    /// Leave out the plan.
    #[arg(long)]
    pub no_plan: bool,
    /// Do not run journalctl for the failed units' error lines.
    #[arg(long)]
    pub no_journal: bool,
}

impl StatusArgs {
    fn to_argv(&self) -> Vec<String> {
        let mut a = crate::args::Argv::default();
        a.flag("no-plan", self.no_plan);
        a.flag("no-journal", self.no_journal);
        a.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand's argv reads back as itself, the ones the plan never
    /// schedules too (the golden round trip covers the others with real plans).
    #[test]
    fn every_subcommand_round_trips() {
        let cmds = [
            Cmd::Plan(PlanArgs {
                cmdline: Some("metal.server=http://pit/ quiet".into()),
                config: Some("/etc/x.conf".into()),
                json: true,
                scan_disks: true,
            }),
            Cmd::Status(StatusArgs {
                no_plan: true,
                no_journal: false,
            }),
            Cmd::Multipath(MultipathArgs {}),
            Cmd::Trap,
            Cmd::Dhcp,
            Cmd::Fail {
                message: "invalid kernel command line: metal.disks=\"two\": …".into(),
            },
        ];
        for cmd in cmds {
            let back = Cli::try_parse_ordered(cmd.to_argv()).map(|c| c.cmd);
            assert_eq!(back.ok(), Some(cmd.clone()), "{:?}", cmd.to_argv());
        }
    }
}
