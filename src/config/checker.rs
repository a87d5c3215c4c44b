//! The [`Checker`]: collects every problem found while validating, each with its place (file
//! and line, or the flag), and the primitives that check one setting (`int`, `millis`, a
//! missing required key).

use std::time::Duration;

use super::error::{ConfigError, ConfigErrors, ErrorPlace, Location};
use super::raw::{Item, Origin, RawConfig};

/// Collects problems while validating.
pub(crate) struct Checker<'a> {
    /// The file name, or `None` in quick mode (flags only).
    pub(crate) file: Option<&'a str>,
    /// The file's text, to turn byte offsets into lines.
    text: &'a str,
    errors: Vec<ConfigError>,
    /// Located notes that do not make the config invalid (`FILE:LINE:COL: note: ...`).
    pub(crate) notes: Vec<String>,
}

impl<'a> Checker<'a> {
    /// A checker for `file` with contents `text`, or for flags only (`file` = `None`).
    pub(crate) fn new(file: Option<&'a str>, text: &'a str) -> Self {
        Self {
            file,
            text,
            errors: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Records a problem found before validation (syntax, unknown key, wrong type).
    pub(crate) fn push_raw(&mut self, span: Option<&std::ops::Range<usize>>, message: String) {
        let file = self.file.unwrap_or("command line");
        match span {
            Some(span) => self
                .errors
                .push(ConfigError::at_span(file, self.text, span, message)),
            None => self.errors.push(ConfigError::file(file, message)),
        }
    }

    /// The problems collected so far, sorted.
    pub(crate) fn into_errors(self) -> ConfigErrors {
        let mut errors = ConfigErrors(self.errors);
        errors.sort();
        errors
    }

    pub(crate) fn place(&self, origin: &Origin) -> ErrorPlace {
        match origin {
            Origin::Span(span) => ErrorPlace::At(Location::from_offset(
                self.file.unwrap_or("command line"),
                self.text,
                span.start,
            )),
            Origin::Flag(flag) => ErrorPlace::Flag(flag.clone()),
        }
    }

    /// A short human reference to where a value was given: "line 7" or "--peer 192.0.2.1".
    pub(crate) fn refer(&self, origin: &Origin) -> String {
        match self.place(origin) {
            ErrorPlace::At(loc) => format!("line {}", loc.line),
            ErrorPlace::Flag(flag) => flag,
            ErrorPlace::File(f) => f,
            ErrorPlace::CommandLine => "the command line".to_string(),
        }
    }

    /// Records a located note: something worth telling that does not make the config
    /// invalid (`haagent check-config` prints it on stderr).
    pub(crate) fn note(&mut self, origin: &Origin, message: impl Into<String>) {
        let message = message.into();
        let line = match self.place(origin) {
            ErrorPlace::At(loc) => {
                format!("{}:{}:{}: note: {message}", loc.file, loc.line, loc.column)
            }
            ErrorPlace::Flag(flag) => format!("{flag}: note: {message}"),
            ErrorPlace::File(f) => format!("{f}: note: {message}"),
            ErrorPlace::CommandLine => format!("command line: note: {message}"),
        };
        self.notes.push(line);
    }

    pub(crate) fn err(&mut self, origin: &Origin, message: impl Into<String>) {
        let place = self.place(origin);
        self.errors.push(ConfigError {
            place,
            message: message.into(),
        });
    }

    pub(crate) fn whole(&mut self, message: impl Into<String>) {
        let place = match self.file {
            Some(f) => ErrorPlace::File(f.to_string()),
            None => ErrorPlace::CommandLine,
        };
        self.errors.push(ConfigError {
            place,
            message: message.into(),
        });
    }

    /// A required value is missing: point at its table header if there is one.
    pub(crate) fn missing(&mut self, raw: &RawConfig, table: &'static str, key: &str, flag: &str) {
        if raw.broken.contains(table) || raw.broken.contains(&format!("{table}.{key}")) {
            return; // already reported as malformed
        }
        if self.file.is_none() {
            self.whole(format!("{flag} is required"));
            return;
        }
        match raw.headers.get(table) {
            Some(span) => {
                let origin = Origin::Span(span.clone());
                self.err(
                    &origin,
                    format!("[{table}] has no `{key}` (required; or give {flag})"),
                );
            }
            None => self.whole(format!(
                "no [{table}] table: `{key}` is required (or give {flag})"
            )),
        }
    }

    /// An integer setting within `lo..=hi`, or its default when absent.
    pub(crate) fn int(
        &mut self,
        item: &Option<Item<i64>>,
        name: &str,
        (lo, hi, default): (i64, i64, i64),
    ) -> i64 {
        match item {
            None => default,
            Some(it) if (lo..=hi).contains(&it.value) => it.value,
            Some(it) => {
                self.err(
                    &it.origin,
                    format!("{name} must be {lo}..={hi}, not {}", it.value),
                );
                default
            }
        }
    }

    pub(crate) fn millis(
        &mut self,
        item: &Option<Item<i64>>,
        name: &str,
        limits: (i64, i64, i64),
    ) -> Duration {
        let ms = self.int(item, name, limits);
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }
}
