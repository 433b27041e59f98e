//! `metalroot plan`: the plan as text an operator reads before wiping a fleet.

use crate::plan::Plan;
use crate::units::exec_arg;
use std::fmt::Write;

pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    let c = &plan.config;
    let _ = writeln!(out, "metalroot plan");
    if plan.destructive() {
        let _ = writeln!(
            out,
            "  DESTRUCTIVE: this plan wipes and/or partitions local disks ({} disk(s), md level {}, wipe delay {} s)",
            c.disks,
            c.layout.md_level.as_mdadm(),
            c.wipe.wipe_delay
        );
    } else {
        let _ = writeln!(out, "  this plan does not wipe or partition any disk");
    }
    if c.dry_run {
        let _ = writeln!(
            out,
            "  dry run: the disk steps only report what they would do"
        );
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "  WARNING: {w}");
    }
    for n in &plan.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    for (i, st) in plan.steps.iter().enumerate() {
        let _ = writeln!(out, "\n{}. {} ({})", i + 1, st.description, st.unit());
        let argv: Vec<String> = st.argv.iter().map(|a| exec_arg(a)).collect();
        let _ = writeln!(out, "   runs:   {}", argv.join(" "));
        let mut after: Vec<String> = st.requires.clone();
        after.extend(st.wants.iter().cloned());
        if st.net == crate::plan::Net::Online {
            after.push("network-online.target".into());
        }
        if !after.is_empty() {
            let _ = writeln!(out, "   after:  {}", after.join(" "));
        }
        if !st.pulls.is_empty() {
            let _ = writeln!(out, "   pulls in (not waited for): {}", st.pulls.join(" "));
        }
        if !st.before.is_empty() {
            let _ = writeln!(out, "   before: {}", st.before.join(" "));
        }
        if st.destructive {
            let _ = writeln!(out, "   DESTRUCTIVE");
        }
    }
    if !plan.secrets.is_empty() {
        let _ = writeln!(out, "\nsecrets (0600 files, contents never shown):");
        for s in &plan.secrets {
            let _ = writeln!(out, "  {}", s.path);
        }
    }
    out
}
