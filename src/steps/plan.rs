//! `metalroot plan`: prints the plan for a command line, touching nothing.

use crate::cli::PlanArgs;
use anyhow::{Context, Result};
use std::path::Path;

pub fn run(a: PlanArgs) -> Result<()> {
    let cmdline = match a.cmdline {
        Some(c) => c,
        None => crate::generator::read_cmdline(Path::new("/"))?,
    };
    let site = match &a.config {
        Some(p) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
        }
        None => crate::generator::read_site(Path::new("/"))?,
    };
    let plan = crate::core::plan(site.as_deref(), &cmdline)?;
    match (&plan, a.json) {
        (None, _) => println!("the command line does not ask for metalroot: nothing would run"),
        (Some(p), true) => println!("{}", serde_json::to_string_pretty(p)?),
        (Some(p), false) => print!("{}", crate::render::text(p)),
    }
    if let (Some(p), true) = (&plan, a.scan_disks) {
        print!("{}", disk_report(p)?);
    }
    Ok(())
}

/// What the plan's disk steps would do to each disk of this machine.
fn disk_report(p: &crate::plan::Plan) -> Result<String> {
    use crate::cli::Cmd;
    use std::fmt::Write;
    let mut out = String::from("\ndisks on this machine:\n");
    let mut wipes = false;
    let mut wipe_args = None;
    let mut disk_args = None;
    for st in &p.steps {
        match &st.cmd {
            Cmd::Wipe(w) => {
                wipes = true;
                wipe_args = Some(w.clone());
                disk_args = Some(w.disks.clone());
            }
            Cmd::Layout(l) => disk_args = Some(l.disks.clone()),
            _ => {}
        }
    }
    let Some(d) = disk_args else {
        out.push_str("  the plan touches no local disk\n");
        return Ok(out);
    };
    let layout_found = [&d.sqfs_label, &d.oval_label].iter().all(|l| {
        let link = crate::sys::udev::by_label(l);
        d.sysroot_prefix.join(link.trim_start_matches('/')).exists()
    });
    // A found layout is kept without a wipe step (metal.no-wipe=1) or with
    // metal.keep-layout=1; with metal.no-wipe=0 alone it is paved again.
    let keeps = !wipes || wipe_args.as_ref().is_some_and(|w| w.opts.keep_layout);
    let labels_present = layout_found && keeps;
    if labels_present {
        let _ = writeln!(
            out,
            "  LABEL={} and LABEL={} exist: the existing layout would be reused, nothing wiped",
            d.sqfs_label, d.oval_label
        );
    } else if layout_found {
        let _ = writeln!(
            out,
            "  LABEL={} and LABEL={} exist: metal.no-wipe=0 wipes and paves them again (metal.keep-layout=1 keeps them)",
            d.sqfs_label, d.oval_label
        );
    }
    let all = crate::sys::disks::scan(&d.sysroot_prefix, &d.protect_label)?;
    let rules = crate::sys::disks::Rules {
        min_size: d.min_disk_size_gib << 30,
        allow: d.allow.clone(),
    };
    let (ok, verdicts) = crate::sys::disks::choose(&all, &rules);
    let arrays = crate::sys::disks::for_arrays(&ok, d.disks);
    let chosen: Vec<&str> = arrays.iter().map(|x| x.name.as_str()).collect();
    for (disk, verdict) in verdicts {
        let action = if labels_present || verdict != "eligible" {
            format!("keep ({verdict})")
        } else if chosen.contains(&disk.name.as_str()) {
            format!(
                "{}partition for the RAID layout",
                if wipes { "wipe, then " } else { "" }
            )
        } else if wipes {
            "wipe (eligible, not needed for the arrays)".to_string()
        } else {
            "keep (eligible, not needed for the arrays)".to_string()
        };
        let _ = writeln!(
            out,
            "  {} {} bytes serial {:?}: {action}",
            disk.dev(),
            disk.size,
            disk.serial
        );
    }
    if let (false, Some(w)) = (labels_present, &wipe_args) {
        // The wipe's preflight, but the image server: this reads sysfs only.
        let failed = crate::sys::preflight::local(&ok, d.disks, &w.layout);
        if failed.is_empty() {
            out.push_str("  preflight (disks, tools): passes\n");
        }
        for f in failed {
            let _ = writeln!(out, "  preflight FAILS, nothing would be wiped: {f}");
        }
    } else if !labels_present && (arrays.len() as u64) < d.disks {
        let _ = writeln!(
            out,
            "  ERROR: metal.disks={} but only {} eligible disk(s) of 350 GiB or more: the boot would stop before wiping",
            d.disks,
            arrays.len()
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cmd;

    /// `--scan-disks` reports the wipe's preflight on this machine's disks.
    #[test]
    fn scan_disks_shows_the_preflight() {
        let d = tempfile::tempdir().unwrap();
        for (n, gib) in [("nvme0n1", 360u64), ("nvme1n1", 360), ("sda", 200)] {
            let b = d.path().join("sys/block").join(n);
            std::fs::create_dir_all(&b).unwrap();
            std::fs::write(b.join("size"), ((gib << 30) / 512).to_string()).unwrap();
            if n == "sda" {
                std::fs::create_dir_all(b.join("device")).unwrap();
            }
        }
        // 25 + 200 + 200 GB: more than the 360 GiB disks hold.
        let mut p = crate::core::plan(
            None,
            "metal.server=http://pit/ metal.oval-md-size=200 metal.aux-md-size=200",
        )
        .unwrap()
        .unwrap();
        for st in &mut p.steps {
            match &mut st.cmd {
                Cmd::Wipe(w) => w.disks.sysroot_prefix = d.path().into(),
                Cmd::Layout(l) => l.disks.sysroot_prefix = d.path().into(),
                _ => {}
            }
        }
        let r = disk_report(&p).unwrap();
        assert!(r.contains("/dev/nvme0n1 386547056640 bytes"), "{r}");
        assert!(
            r.contains("preflight FAILS, nothing would be wiped: /dev/nvme0n1 has 386547056640 bytes, the layout needs 425001484288"),
            "{r}"
        );
    }
}
