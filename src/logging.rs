//! Log output: text or JSON lines on stderr, the level reloadable, and under systemd a
//! syslog priority on every line so that `journalctl -p warning` shows exactly the warnings
//! and errors.
//!
//! systemd connects a service's stderr to the journal and says so in `JOURNAL_STREAM`
//! (`DEVICE:INODE` of that stream, systemd.exec(5)); journald reads a `<N>` prefix at the
//! start of each line as its priority (sd-daemon(3), `SyslogLevelPrefix=`, on by default).
//! The prefix is written only when stderr is that very stream, as sd_journal_stream_fd(3)
//! recommends, so `haagent ... 2>file` from a unit's shell keeps clean lines.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;
use crate::daemon::SetLogLevel;

/// The syslog priority (RFC 5424 §6.2.1) journald gets for a tracing level: error 3,
/// warning 4, info 6, debug and trace 7.
pub fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Whether stderr is the journal stream systemd gave us: `journal_stream` is the value
/// of `JOURNAL_STREAM` (`"DEVICE:INODE"`, decimal); `false` if it is malformed or names
/// another file.
pub fn stderr_is_journal(journal_stream: &str) -> bool {
    let Some((dev, ino)) = journal_stream.trim().split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// Wraps an event format with the `<N>` priority prefix.
struct PriorityPrefix<F>(F);

impl<S, N, F> FormatEvent<S, N> for PriorityPrefix<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", syslog_priority(*event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Installs the global subscriber: `format` on stderr at `level` (an `EnvFilter`
/// directive; `RUST_LOG`, when set, wins over it and over later reloads), with priority
/// prefixes when stderr is the journal. Returns the reload handle.
///
/// Errors: a bad `level` directive, or a subscriber already installed.
pub fn init(format: LogFormat, level: &str) -> Result<SetLogLevel, String> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{reload, EnvFilter, Layer};

    let from_env = std::env::var_os("RUST_LOG").is_some();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .map_err(|e| format!("invalid log level `{level}`: {e}"))?;
    let (filter, handle) = reload::Layer::new(filter);
    let journal = std::env::var("JOURNAL_STREAM").is_ok_and(|v| stderr_is_journal(&v));
    // journald stores its own timestamp; colours would end up in the journal as escapes.
    let ansi = !journal && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let registry = tracing_subscriber::registry().with(filter);
    type Boxed<S> = Box<dyn Layer<S> + Send + Sync>;
    let layer: Boxed<_> = match (format, journal) {
        (LogFormat::Text, false) => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .boxed(),
        (LogFormat::Text, true) => tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .with_writer(std::io::stderr)
            .map_event_format(PriorityPrefix)
            .boxed(),
        (LogFormat::Json, false) => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
        (LogFormat::Json, true) => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .map_event_format(PriorityPrefix)
            .boxed(),
    };
    registry
        .with(layer)
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))?;
    Ok(Box::new(move |level: &str| {
        if from_env {
            return Ok(());
        }
        let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_syslog() {
        assert_eq!(syslog_priority(Level::ERROR), 3);
        assert_eq!(syslog_priority(Level::WARN), 4);
        assert_eq!(syslog_priority(Level::INFO), 6);
        assert_eq!(syslog_priority(Level::DEBUG), 7);
        assert_eq!(syslog_priority(Level::TRACE), 7);
    }

    #[test]
    fn every_line_carries_its_priority() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0
                    .lock()
                    .map_err(|_| std::io::ErrorKind::Other)?
                    .extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_max_level(Level::DEBUG)
            .with_ansi(false)
            .without_time()
            .with_writer(move || out.clone())
            .map_event_format(PriorityPrefix)
            .finish();
        tracing::subscriber::with_default(sub, || {
            tracing::error!("e");
            tracing::warn!(cause = "x", "w");
            tracing::info!("i");
            tracing::debug!("d");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let prefixes: Vec<&str> = text.lines().map(|l| &l[..3]).collect();
        assert_eq!(prefixes, ["<3>", "<4>", "<6>", "<7>"], "{text}");
    }

    #[test]
    fn a_malformed_or_foreign_journal_stream_is_not_ours() {
        for v in ["", "12", "a:b", "1:2:3", "-1:5", "0:0"] {
            assert!(!stderr_is_journal(v), "{v:?}");
        }
    }
}
