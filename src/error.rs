//! The one error type of the pure core: a bad command-line value.

use std::fmt;

/// A parameter whose value cannot be used. It always names the parameter and
/// the value, so the operator can find the word on the PXE line; secret values
/// are replaced by `<redacted>` before they get here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    pub param: String,
    pub value: String,
    pub reason: String,
    /// The other bad values of the same command line: a refusal names
    /// every one, so a PXE line is fixed in one go.
    pub more: Vec<ParamError>,
}

impl ParamError {
    pub fn new(param: &str, value: &str, reason: impl Into<String>) -> Self {
        ParamError {
            param: param.to_string(),
            value: scrub(value),
            reason: reason.into(),
            more: Vec::new(),
        }
    }

    /// One error for all of `errors` (the first leads), or None.
    pub fn all(mut errors: Vec<ParamError>) -> Option<ParamError> {
        if errors.is_empty() {
            return None;
        }
        let mut first = errors.remove(0);
        first.more.extend(errors);
        Some(first)
    }

    /// `param="value": reason`, the form every message about a bad value uses.
    pub fn detail(&self) -> String {
        format!("{}={:?}: {}", self.param, self.value, self.reason)
    }

    /// Every bad value, the first one included.
    pub fn each(&self) -> impl Iterator<Item = &ParamError> {
        std::iter::once(self).chain(self.more.iter())
    }

    /// For parameters that carry a secret: the value never reaches a message.
    pub fn secret(param: &str, reason: impl Into<String>) -> Self {
        Self::new(param, "<redacted>", reason)
    }
}

/// Hides anything that may be a credential. A stray quote on the command
/// line can swallow the following words, secrets included, into the value of
/// another parameter, so this looks at the text, not at the parameter name.
pub fn scrub(value: &str) -> String {
    if value.to_ascii_lowercase().contains("password") {
        return "<redacted>".to_string();
    }
    if !value.contains('@') {
        return value.to_string();
    }
    value
        .split(' ')
        .map(|w| match w.rfind('@') {
            Some(_) if w.contains("://") => crate::redact::redact_url(w),
            Some(at) => format!("<redacted>{}", &w[at..]),
            None => w.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid kernel command line: {}", self.detail())?;
        // One line: the message also travels as an ExecStart= argument.
        for e in &self.more {
            write!(f, "; {}", e.detail())?;
        }
        Ok(())
    }
}

impl std::error::Error for ParamError {}
