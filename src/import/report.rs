//! The import report: one line per keepalived keyword occurrence, saying what it became.

use std::fmt;

use super::parse::Place;

/// What became of one keyword occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Translated with the same meaning; the text says into what (`[[group]] name = "VI_1"`).
    /// A keyword haagent does not need (`state`) is "mapped → nothing: why".
    Mapped(String),
    /// Translated with a different but close meaning; the text says how it differs.
    Approximated(String),
    /// Not translated: why, and what the operator can do instead.
    NotSupported {
        /// Why it cannot be translated.
        why: String,
        /// What to do instead (`None`: nothing to suggest).
        instead: Option<String>,
    },
}

/// One report line: `FILE:LINE: keyword: outcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Where the keyword is (`None`: a line about the whole import, e.g. missing peers).
    pub place: Option<Place>,
    /// The keyword as written (`vrrp_instance`, `virtual_ipaddress`, `$NAME`, …).
    pub keyword: String,
    /// What became of it.
    pub outcome: Outcome,
    /// Reading order of `place`, for sorting.
    pub(crate) order: usize,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.place {
            Some(p) => write!(f, "{p}: {}: ", self.keyword)?,
            None => write!(f, "{}: ", self.keyword)?,
        }
        match &self.outcome {
            Outcome::Mapped(to) => write!(f, "mapped → {to}"),
            Outcome::Approximated(how) => write!(f, "approximated: {how}"),
            Outcome::NotSupported { why, instead } => {
                write!(f, "not supported: {why}")?;
                match instead {
                    Some(i) => write!(f, " (instead: {i})"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Every line of one import, in reading order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The lines.
    pub lines: Vec<Line>,
}

impl Report {
    /// Whether every keyword was mapped or approximated (what `--check` asks).
    pub fn complete(&self) -> bool {
        !self
            .lines
            .iter()
            .any(|l| matches!(l.outcome, Outcome::NotSupported { .. }))
    }

    /// The number of lines that are not supported.
    pub fn unsupported(&self) -> usize {
        self.lines
            .iter()
            .filter(|l| matches!(l.outcome, Outcome::NotSupported { .. }))
            .count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.lines {
            writeln!(f, "{l}")?;
        }
        Ok(())
    }
}
