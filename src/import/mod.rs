//! `haagent import keepalived [FILE]`: a keepalived.conf translated into a haagent config,
//! with a report that says, for every keepalived keyword occurrence, what it became.
//!
//! # Flow
//!
//! ```text
//! keepalived.conf (+ includes) ──parse.rs──> Node tree ──map.rs──> Model ──model.rs──> TOML
//!                                  └─ problems ─────────────┴──> Report (report.rs)
//! ```
//!
//! The output never guesses: what cannot be translated with the same meaning is a report
//! line (`not supported: why (instead: …)`) and is left out of the config, and what is
//! translated with a different meaning says how (`approximated: …`). The keyword table is
//! docs/keepalived.md.

mod map;
mod model;
pub mod parse;
pub mod report;

use std::path::Path;

pub use map::Options;
pub use report::{Line, Outcome, Report};

/// keepalived's default config file.
pub const DEFAULT_KEEPALIVED_CONF: &str = "/etc/keepalived/keepalived.conf";

/// The result of one import.
#[derive(Debug, Clone)]
pub struct Import {
    /// The haagent config file text (TOML with comments).
    pub toml: String,
    /// One line per keepalived keyword occurrence.
    pub report: Report,
}

impl Import {
    /// Whether the import is complete (every keyword mapped or approximated, peers known):
    /// what `--check` asks.
    pub fn complete(&self) -> bool {
        self.report.complete()
    }
}

/// Imports the keepalived config at `path` (and its includes).
///
/// Errors: the top file cannot be read, is too large ([`parse::MAX_FILE_BYTES`]) or is not
/// UTF-8. Everything else is in the [`Report`].
pub fn keepalived_file(path: &Path, opts: &Options) -> Result<Import, String> {
    let parsed = parse::parse_file(path)?;
    Ok(build(&parsed, &path.display().to_string(), opts))
}

/// Imports keepalived config text, as if read from `name` (includes resolve against its
/// directory).
pub fn keepalived_str(text: &str, name: &Path, opts: &Options) -> Import {
    let parsed = parse::parse_str(text, name);
    build(&parsed, &name.display().to_string(), opts)
}

fn build(parsed: &parse::Parsed, source: &str, opts: &Options) -> Import {
    let (model, report) = map::map(parsed, source, opts);
    Import {
        toml: model.to_toml(),
        report,
    }
}
