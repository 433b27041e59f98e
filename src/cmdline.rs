//! Splitting a kernel command line into `key[=value]` words.
//!
//! Quoting follows the kernel and systemd: double or single quotes group
//! spaces into one word and are removed, so `a="b c"` is the word `a=b c`.

/// One word of the command line: `key` or `key=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    pub key: String,
    pub value: Option<String>,
}

/// Splits a command line into words, honouring quotes. Never fails: an
/// unterminated quote runs to the end of the line, as the kernel does.
pub fn split(line: &str) -> Vec<Arg> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
        .into_iter()
        .filter(|w| !w.is_empty())
        .map(|w| match w.split_once('=') {
            Some((k, v)) => Arg {
                key: k.to_string(),
                value: Some(v.to_string()),
            },
            None => Arg {
                key: w,
                value: None,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_words_and_values() {
        let a = split("  root=live:LABEL=SQFSRAID rd.live.image  metal.debug=1\n");
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].key, "root");
        assert_eq!(a[0].value.as_deref(), Some("live:LABEL=SQFSRAID"));
        assert_eq!(a[1].key, "rd.live.image");
        assert_eq!(a[1].value, None);
    }

    #[test]
    fn quotes_group_spaces() {
        let a = split(r#"a="b c" 'd e'=f g="""#);
        assert_eq!(a[0].value.as_deref(), Some("b c"));
        assert_eq!(a[1].key, "d e");
        assert_eq!(a[2].value.as_deref(), Some(""));
    }

    #[test]
    fn unterminated_quote_runs_to_end() {
        let a = split("a=\"b c");
        assert_eq!(a[0].value.as_deref(), Some("b c"));
    }
}
