//! `metalroot status`: for the emergency shell. Asks systemd over D-Bus for
//! every metalroot unit, its state, its last STATUS= line and, for a failed
//! one, the error it logged; then prints the plan the generator wrote.
//! Output fits an 80-column serial console. The D-Bus plumbing is in
//! `sys::systemd`.

use anyhow::Result;
use zbus::{Connection, OwnedObjectPath};

use crate::cli::StatusArgs;
use crate::sys::systemd::{call, connect, property, string_property};

const WIDTH: usize = 80;
/// Written by the generator: the plan the units were made from.
use crate::kinds::PLAN_FILE;

/// One unit as systemd sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitState {
    pub name: String,
    pub description: String,
    pub active: String,
    pub sub: String,
    pub exit_status: i32,
    /// Service Result= (success, exit-code, timeout, …).
    pub result: String,
    /// A queued job (start/stop), when the boot still waits for it.
    pub job: Option<String>,
    pub status_text: String,
    /// The last error-level journal line of the unit (failed units only).
    pub error: Option<String>,
}

/// ListUnitsByPatterns' row.
type UnitRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

pub fn run(a: StatusArgs) -> Result<()> {
    let (mut units, via) = zbus::block_on(async {
        let (conn, via) = connect().await?;
        anyhow::Ok((list_units(&conn).await?, via))
    })?;
    let plan = std::fs::read_to_string(PLAN_FILE).ok();
    if let Some(p) = &plan {
        order_by_plan(&mut units, p);
    }
    if !a.no_journal {
        for u in units.iter_mut().filter(|u| u.active == "failed") {
            u.error = last_error(&u.name);
        }
    }
    let mut out = format!("metalroot status (systemd via {via})\n");
    out.push_str(&render_units(&units));
    if !a.no_plan {
        out.push('\n');
        out.push_str(&render_plan(plan.as_deref()));
    }
    print!("{out}");
    Ok(())
}

/// The static unit that prints this status on the console when the boot
/// reaches the emergency shell (`units/` in the source tree).
const EMERGENCY_STATUS_UNIT: &str = "metalroot-emergency-status.service";

async fn list_units(conn: &Connection) -> Result<Vec<UnitState>> {
    let rows: Vec<UnitRow> = call(
        conn,
        "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager",
        "ListUnitsByPatterns",
        &(Vec::<&str>::new(), vec!["metalroot*"]),
    )
    .await?;
    let mut units = Vec::new();
    for (name, description, _load, active, sub, _followed, path, job_id, job_type, _job) in rows {
        if name == EMERGENCY_STATUS_UNIT {
            // Itself, when the emergency shell's unit (units/) runs it.
            continue;
        }
        let path = path.as_str();
        let mut u = UnitState {
            description,
            active,
            sub,
            job: (job_id != 0).then(|| job_type.clone()),
            ..Default::default()
        };
        if name.ends_with(".service") {
            let svc = "org.freedesktop.systemd1.Service";
            u.result = string_property(conn, path, svc, "Result").await;
            u.status_text = string_property(conn, path, svc, "StatusText").await;
            u.exit_status = property(conn, path, svc, "ExecMainStatus")
                .await
                .ok()
                .and_then(|v| i32::try_from(v).ok())
                .unwrap_or(0);
        }
        u.name = name;
        units.push(u);
    }
    units.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(units)
}

/// Units in the order of the plan's steps (the order they run in); units
/// the plan does not name stay after them, by name.
pub fn order_by_plan(units: &mut [UnitState], plan: &str) {
    let pos = |name: &str| plan.find(&format!("({name})")).unwrap_or(usize::MAX);
    units.sort_by_key(|u| (pos(&u.name), u.name.clone()));
}

/// The last error-level journal line the unit's own processes logged, from
/// journalctl (the real tool: the journal's format is not ours to parse).
/// `_SYSTEMD_UNIT=`, not `-u`: `-u` also matches systemd's own "Failed to
/// start …" line about the unit, which comes last and says nothing new.
fn last_error(unit: &str) -> Option<String> {
    let matcher = format!("_SYSTEMD_UNIT={unit}");
    let out = crate::sys::cmd::run(&[
        "journalctl",
        "-b",
        &matcher,
        "-p",
        "err",
        "-n",
        "1",
        "-o",
        "cat",
        "--no-pager",
    ])
    .ok()?;
    out.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
}

pub fn render_units(units: &[UnitState]) -> String {
    let mut out = String::new();
    if units.is_empty() {
        out.push_str("\nno metalroot unit is loaded: the generator wrote none (the command\n");
        out.push_str(
            "line does not ask for metalroot?) - see journalctl -b -t metalroot-generator\n",
        );
        return out;
    }
    let failed = units.iter().filter(|u| u.active == "failed").count();
    for u in units {
        let mut state = format!("{} ({})", u.active, u.sub);
        if u.active == "failed" {
            state = match u.result.as_str() {
                "exit-code" => format!("FAILED: exit status {}", u.exit_status),
                "" => "FAILED".to_string(),
                r => format!("FAILED: {r}"),
            };
        }
        if let Some(j) = &u.job {
            state.push_str(&format!(", {j} job queued"));
        }
        out.push('\n');
        out.push_str(&wrap(&format!("{}  {state}", u.name), "", "    "));
        out.push_str(&wrap(&u.description, "  ", "    "));
        if !u.status_text.is_empty() {
            out.push_str(&wrap(&u.status_text, "  status: ", "          "));
        }
        if u.active == "failed" {
            match &u.error {
                Some(e) => out.push_str(&wrap(e, "  error:  ", "          ")),
                None => out.push_str("  error:  (no error line in the journal)\n"),
            }
            out.push_str(&wrap(
                &format!("journalctl -b -u {}", u.name),
                "  more:   ",
                "          ",
            ));
        }
    }
    if failed > 0 {
        out.push_str(&format!(
            "\n{failed} failed. Fix the cause, then `systemctl restart UNIT` or reboot.\n"
        ));
    }
    out
}

pub fn render_plan(plan: Option<&str>) -> String {
    match plan {
        Some(p) => {
            let mut out = format!("the plan ({PLAN_FILE}):\n");
            for line in p.lines() {
                let indent: String = line.chars().take_while(|c| *c == ' ').collect();
                let cont = format!("{indent}        ");
                out.push_str(&wrap(line.trim_start(), &indent, &cont));
            }
            out
        }
        None => format!("no plan at {PLAN_FILE}; `metalroot plan` computes it again\n"),
    }
}

/// Word-wraps `text` to WIDTH columns: `first` before the first line,
/// `rest` before the others. A word longer than a line is cut; runs of
/// spaces inside the text are kept.
pub fn wrap(text: &str, first: &str, rest: &str) -> String {
    let mut out = String::new();
    let mut line = first.to_string();
    let mut empty = true;
    let text: String = text
        .trim()
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .collect();
    for word in text.split(' ') {
        if word.is_empty() {
            // A run of spaces inside the text is kept.
            if !empty {
                line.push(' ');
            }
            continue;
        }
        let mut word = word.to_string();
        loop {
            let prefix_len = line.chars().count();
            let need = word.chars().count() + usize::from(!empty);
            if prefix_len + need <= WIDTH {
                if !empty {
                    line.push(' ');
                }
                line.push_str(&word);
                empty = false;
                break;
            }
            if !empty {
                out.push_str(line.trim_end());
                out.push('\n');
                line = rest.to_string();
                empty = true;
                continue;
            }
            // A word longer than a whole line: cut it.
            let room = WIDTH.saturating_sub(prefix_len).max(1);
            let head: String = word.chars().take(room).collect();
            let tail: String = word.chars().skip(room).collect();
            line.push_str(&head);
            out.push_str(&line);
            out.push('\n');
            line = rest.to_string();
            word = tail;
            if word.is_empty() {
                break;
            }
        }
    }
    if !empty || out.is_empty() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetch_failed() -> UnitState {
        UnitState {
            name: "metalroot-fetch.service".into(),
            description: "metalroot: fetch the root image from http://10.0.2.2:8081/".into(),
            active: "failed".into(),
            sub: "failed".into(),
            result: "exit-code".into(),
            exit_status: 1,
            status_text: "downloading http://10.0.2.2:8081/squashfs.img: 45% (43 of 95 MiB) at 3.1 MiB/s".into(),
            error: Some("sha256 mismatch for http://10.0.2.2:8081/squashfs.img: expected 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef, got fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210".into()),
            job: None,
        }
    }

    #[test]
    fn every_line_fits_80_columns() {
        let s = render_units(&[fetch_failed()]);
        for l in s.lines() {
            assert!(l.chars().count() <= 80, "{l:?} is {} wide", l.len());
        }
        assert!(
            s.contains("metalroot-fetch.service  FAILED: exit status 1"),
            "{s}"
        );
        assert!(
            s.contains("  error:  sha256 mismatch for http://10.0.2.2:8081/squashfs.img"),
            "{s}"
        );
        assert!(
            s.contains("journalctl -b -u metalroot-fetch.service"),
            "{s}"
        );
        assert!(s.contains("1 failed."), "{s}");
    }

    #[test]
    fn wrap_keeps_words_and_cuts_only_giants() {
        let w = wrap(&"word ".repeat(40), "  status: ", "          ");
        assert!(w.lines().all(|l| l.len() <= 80));
        assert_eq!(w.split_whitespace().filter(|x| *x == "word").count(), 40);
        let giant = "x".repeat(200);
        let w = wrap(&giant, "", "  ");
        assert_eq!(w.replace(['\n', ' '], ""), giant);
        assert!(w.lines().all(|l| l.len() <= 80));
        assert_eq!(wrap("", "a: ", ""), "a:\n");
    }

    #[test]
    fn units_follow_the_plan_order() {
        let plan = "1. x (metalroot-wipe.service)\n2. y (metalroot-fetch.service)\n";
        let mut units: Vec<UnitState> = [
            "metalroot-fetch.service",
            "metalroot-other.service",
            "metalroot-wipe.service",
        ]
        .iter()
        .map(|n| UnitState {
            name: n.to_string(),
            ..Default::default()
        })
        .collect();
        order_by_plan(&mut units, plan);
        let names: Vec<&str> = units.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "metalroot-wipe.service",
                "metalroot-fetch.service",
                "metalroot-other.service"
            ]
        );
    }

    #[test]
    fn the_generator_writes_the_plan_status_prints() {
        for (line, want) in [
            (
                "metal.server=http://pit/ metal.no-wipe=1",
                "(metalroot-fetch.service)",
            ),
            ("metal.md-level=raid7", "the command line was refused: "),
            (
                "metal.server=http://pit/ metal.disks=two",
                "WARNING: the wipe is refused: metal.disks=\"two\"",
            ),
        ] {
            let (tmp, root) = crate::testing::temp_path("root");
            std::fs::create_dir_all(root.join("proc")).unwrap();
            std::fs::write(root.join("proc/cmdline"), line).unwrap();
            let mut log = crate::generator::Kmsg::open(&root);
            crate::generator::run(&root, &tmp.path().join("out"), &mut log).unwrap();
            let plan = std::fs::read_to_string(root.join("run/metalroot/plan.txt")).unwrap();
            assert!(plan.contains(want), "{plan}");
        }
    }

    #[test]
    fn plan_lines_are_wrapped_with_their_indent() {
        let plan = format!(
            "1. fetch (metalroot-fetch.service)\n   runs:   {}\n",
            "--arg ".repeat(30)
        );
        let s = render_plan(Some(&plan));
        assert!(s.lines().all(|l| l.chars().count() <= 80), "{s}");
        assert!(s.contains("\n   runs:   --arg"), "{s}");
    }
}
