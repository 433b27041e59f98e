//! docs/cmdline.md to metalroot(7): a small Markdown-to-roff converter.
//! Tables become tagged paragraphs, so the page needs no tbl.

/// Escapes text for roff and turns Markdown's inline marks into fonts:
/// `code` and **strong** bold, links to their text.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    let mut code = false;
    let mut strong = false;
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                code = !code;
                out.push_str(if code { "\\fB" } else { "\\fR" });
            }
            '*' if !code && chars.peek() == Some(&'*') => {
                chars.next();
                strong = !strong;
                out.push_str(if strong { "\\fB" } else { "\\fR" });
            }
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            '[' if !code => {
                // [text](target) → text
                let rest: String = chars.clone().collect();
                if let Some(close) = rest.find("](") {
                    if let Some(end) = rest[close..].find(')') {
                        out.push_str(&inline(&rest[..close]));
                        for _ in 0..close + end + 1 {
                            chars.next();
                        }
                        continue;
                    }
                }
                out.push('[');
            }
            c => out.push(c),
        }
    }
    if code || strong {
        out.push_str("\\fR");
    }
    out
}

/// A roff text line must not start with `.` or `'` (requests).
fn line(s: &str) -> String {
    let t = s.trim_start();
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t.to_string()
    }
}

fn cells(row: &str) -> Vec<String> {
    let row = row.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut code = false;
    for c in row.chars() {
        match c {
            '`' => {
                code = !code;
                cur.push(c);
            }
            '|' if !code => {
                out.push(cur.trim().to_string());
                cur.clear();
            }
            c => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

pub fn md_to_man(md: &str, source: &str) -> String {
    let mut out = format!(
        ".TH METALROOT 7 \"\" \"{source}\" \"metalroot\"\n.nh\n.ad l\n.SH NAME\nmetalroot \\- kernel command line parameters of metalroot\n"
    );
    let lines: Vec<&str> = md.lines().collect();
    let mut i = 0;
    let mut in_contents = false;
    while i < lines.len() {
        let l = lines[i];
        let t = l.trim();
        if let Some(h) = l.strip_prefix("# ") {
            // The title: a DESCRIPTION section follows.
            let _ = h;
            out.push_str(".SH DESCRIPTION\n");
        } else if let Some(h) = l.strip_prefix("## ") {
            in_contents = false;
            out.push_str(&format!(".SH \"{}\"\n", inline(h).to_uppercase()));
        } else if let Some(h) = l.strip_prefix("### ") {
            out.push_str(&format!(".SS \"{}\"\n", inline(h)));
        } else if t == "Contents:" {
            // The Markdown table of contents means nothing in a man page.
            in_contents = true;
        } else if in_contents
            && (t.starts_with(|c: char| c.is_ascii_digit()) || t.starts_with("- "))
        {
        } else if t.starts_with("```") {
            out.push_str(".PP\n.RS 4\n.nf\n");
            i += 1;
            while i < lines.len() && !lines[i].trim().starts_with("```") {
                out.push_str(&line(&lines[i].replace('\\', "\\e")));
                out.push('\n');
                i += 1;
            }
            out.push_str(".fi\n.RE\n");
        } else if l.starts_with("    ") && !t.is_empty() {
            out.push_str(".PP\n.RS 4\n.nf\n");
            while i < lines.len() && (lines[i].starts_with("    ") || lines[i].trim().is_empty()) {
                if lines[i].trim().is_empty()
                    && !lines.get(i + 1).is_some_and(|n| n.starts_with("    "))
                {
                    break;
                }
                out.push_str(&line(
                    &lines[i][4.min(lines[i].len())..].replace('\\', "\\e"),
                ));
                out.push('\n');
                i += 1;
            }
            out.push_str(".fi\n.RE\n");
            continue;
        } else if t.starts_with('|') {
            // A table: one tagged paragraph per row, the first cell as the
            // tag, the others as "header: value" lines.
            let header = cells(t);
            i += 1;
            if i < lines.len() && lines[i].trim().starts_with("|-")
                || lines.get(i).is_some_and(|n| n.trim().starts_with("|--"))
            {
                i += 1;
            }
            while i < lines.len() && lines[i].trim().starts_with('|') {
                let row = cells(lines[i]);
                out.push_str(".TP\n");
                out.push_str(&line(&inline(
                    row.first().map(String::as_str).unwrap_or(""),
                )));
                out.push('\n');
                for (k, v) in row.iter().enumerate().skip(1) {
                    if v.is_empty() || v == "—" {
                        continue;
                    }
                    let h = header.get(k).map(String::as_str).unwrap_or("");
                    out.push_str(&line(&format!("\\fI{}\\fR: {}", inline(h), inline(v))));
                    out.push_str("\n.br\n");
                }
                i += 1;
            }
            out.push_str(".PP\n");
            continue;
        } else if let Some(item) = t.strip_prefix("- ") {
            out.push_str(".IP \\(bu 2\n");
            out.push_str(&line(&inline(item)));
            out.push('\n');
        } else if t.is_empty() {
            out.push_str(".PP\n");
        } else if t
            .split_once(". ")
            .is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty())
        {
            let (n, rest) = t.split_once(". ").unwrap_or(("", t));
            out.push_str(&format!(".IP {n}. 4\n"));
            out.push_str(&line(&inline(rest)));
            out.push('\n');
        } else {
            out.push_str(&line(&inline(t)));
            out.push('\n');
        }
        i += 1;
    }
    out.push_str(
        ".SH \"SEE ALSO\"\nmetalroot(8), metalroot\\-generator(8), dracut.cmdline(7), bootup(7)\n",
    );
    out
}
