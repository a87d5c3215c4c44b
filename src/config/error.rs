//! Configuration errors: each one says where (file:line:column, or the flag) and what is wrong.
//!
//! Loading never stops at the first problem: [`ConfigErrors`] holds all of them, one per line
//! when displayed, so a user fixes the whole file in one go.

use std::fmt;
use std::ops::Range;

/// A position in a config file (1-based line and column; the column counts characters).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// The config file as the user named it.
    pub file: String,
    /// Line number, starting at 1.
    pub line: usize,
    /// Column number in characters, starting at 1.
    pub column: usize,
}

impl Location {
    /// The line and column of byte offset `offset` in `text`.
    pub(crate) fn from_offset(file: &str, text: &str, offset: usize) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Self {
            file: file.to_string(),
            line,
            column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Where a configuration problem is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorPlace {
    /// A position in the config file.
    At(Location),
    /// The config file as a whole (e.g. it cannot be read, or a required table is missing).
    File(String),
    /// A command-line flag with its value as typed, e.g. `--priority 300`.
    Flag(String),
    /// The command line as a whole (quick mode, e.g. a required flag is missing).
    CommandLine,
}

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the problem is.
    pub place: ErrorPlace,
    /// What is wrong, for a human.
    pub message: String,
}

impl ConfigError {
    /// The file position, if the problem is at one.
    pub fn location(&self) -> Option<&Location> {
        match &self.place {
            ErrorPlace::At(loc) => Some(loc),
            _ => None,
        }
    }

    /// An error at byte range `span` of `text` (the file named `file`).
    pub(crate) fn at_span(file: &str, text: &str, span: &Range<usize>, message: String) -> Self {
        Self {
            place: ErrorPlace::At(Location::from_offset(file, text, span.start)),
            message,
        }
    }

    /// An error about a whole file (no line).
    pub(crate) fn file(file: &str, message: String) -> Self {
        Self {
            place: ErrorPlace::File(file.to_string()),
            message,
        }
    }
}

/// `text` on one line: control characters (a newline from a multi-line TOML string, a tab,
/// an escape sequence) are shown escaped, so every error stays one line of output and a
/// value cannot rewrite the terminal.
fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = one_line(&self.message);
        match &self.place {
            ErrorPlace::At(loc) => write!(f, "{loc}: {message}"),
            ErrorPlace::File(file) => write!(f, "{}: {message}", one_line(file)),
            ErrorPlace::Flag(flag) => write!(f, "{}: {message}", one_line(flag)),
            ErrorPlace::CommandLine => write!(f, "command line: {message}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The problems, in file order (flag and whole-file problems last).
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// Number of problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if there are no problems (never the case for a returned error).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sorts by position: located errors by line and column, then the others.
    pub(crate) fn sort(&mut self) {
        self.0.sort_by(|a, b| {
            let key = |e: &ConfigError| match &e.place {
                ErrorPlace::At(l) => (0, l.line, l.column),
                ErrorPlace::Flag(_) => (1, 0, 0),
                ErrorPlace::File(_) | ErrorPlace::CommandLine => (2, 0, 0),
            };
            key(a).cmp(&key(b))
        });
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
