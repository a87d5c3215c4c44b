//! Finding the process a `process` check follows: the PID in a pidfile, or the main process
//! of an exact name in `/proc`. Blocking file reads (the caller runs them on the blocking
//! pool); every error names the pidfile or the PID, and nothing read from a file or from
//! `/proc` is trusted to parse.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::runner::{io_reason, CheckError};

/// How the followed PID was found, for the exit reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FoundBy {
    /// The PID written in this pidfile.
    Pidfile(PathBuf),
    /// A process with this exact name (`/proc/PID/comm`).
    Name(String),
}

impl fmt::Display for FoundBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FoundBy::Pidfile(path) => write!(f, "from {}", path.display()),
            FoundBy::Name(_) => f.write_str("by name"),
        }
    }
}

/// A live process the check follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    /// Its PID.
    pub(crate) pid: u32,
    /// Its `/proc/PID/comm` when it was found (empty if unreadable): a reused PID shows as
    /// another name.
    pub(crate) comm: String,
    /// How it was found.
    pub(crate) by: FoundBy,
    /// What a passing run says (`PID 42 running`, `process nginx running as PID 42`).
    pub(crate) detail: String,
}

impl Found {
    /// The name to show: its comm, or `process` when that was unreadable.
    pub(crate) fn label(&self) -> &str {
        if self.comm.is_empty() {
            "process"
        } else {
            &self.comm
        }
    }
}

/// The state letter of `/proc/PID/stat` (`R`, `S`, `Z`, ...): the first field after the
/// command name, which is in parentheses and may itself contain `)` and spaces.
pub(crate) fn stat_state(stat: &str) -> Option<char> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.trim_start().chars().next()
}

/// The parent PID of `/proc/PID/stat` (the field after the state).
fn stat_ppid(stat: &str) -> Option<u32> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// `/proc/PID/stat` of a live, non-zombie process; Err says why not.
fn live_stat(pid: u32) -> Result<String, String> {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) if stat_state(&stat) == Some('Z') => Err(format!("PID {pid} is a zombie")),
        Ok(stat) => Ok(stat),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(format!("PID {pid} is not running")),
        Err(e) => Err(format!("cannot read /proc/{pid}/stat: {}", io_reason(&e))),
    }
}

/// `/proc/PID/comm` without its newline; empty when unreadable.
fn comm_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end_matches('\n').to_string())
        .unwrap_or_default()
}

/// Whether a `/proc/*/comm` value names the process: exact match, or the first 15 bytes
/// of a longer name (the kernel truncates `comm` to 15 bytes).
pub(crate) fn comm_matches(comm: &str, name: &str) -> bool {
    comm == name || (name.len() > 15 && comm.as_bytes() == &name.as_bytes()[..15])
}

/// The PID written in a pidfile.
pub(crate) fn read_pidfile(path: &Path) -> Result<u32, CheckError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CheckError::Process(format!("pidfile {}: {}", path.display(), io_reason(&e)))
    })?;
    match text.trim().parse::<u32>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(CheckError::Process(format!(
            "pidfile {}: {:?} is not a PID",
            path.display(),
            text.trim().chars().take(40).collect::<String>()
        ))),
    }
}

/// The live process of `name`: `prefer` if it still is one (the PID followed so far, so a
/// living main process is not swapped for a worker), else the main one among them, i.e.
/// the first (lowest PID) whose parent is not of that name (nginx's master, not a worker).
fn by_name(name: &str, prefer: Option<u32>) -> Result<u32, CheckError> {
    if let Some(pid) = prefer {
        if comm_matches(&comm_of(pid), name) && live_stat(pid).is_ok() {
            return Ok(pid);
        }
    }
    let dir = std::fs::read_dir("/proc")
        .map_err(|e| CheckError::Process(format!("cannot list /proc: {}", io_reason(&e))))?;
    let mut found: Vec<(u32, Option<u32>)> = dir
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            if !comm_matches(comm.trim_end_matches('\n'), name) {
                return None;
            }
            let stat = live_stat(pid).ok()?;
            Some((pid, stat_ppid(&stat)))
        })
        .collect();
    found.sort_unstable();
    let main = found
        .iter()
        .find(|(_, ppid)| !found.iter().any(|(p, _)| Some(*p) == *ppid))
        .or(found.first());
    match main {
        Some((pid, _)) => Ok(*pid),
        None => Err(CheckError::Process(format!("no process named {name}"))),
    }
}

/// Finds the process to follow: the pidfile's PID if there is a pidfile, else the named
/// one (both are checked when both are given). `prefer`: the PID followed so far.
pub(crate) fn find(
    pidfile: Option<&Path>,
    name: Option<&str>,
    prefer: Option<u32>,
) -> Result<Found, CheckError> {
    let mut seen = Vec::new();
    let mut followed = None;
    if let Some(path) = pidfile {
        let pid = read_pidfile(path)?;
        live_stat(pid)
            .map_err(|why| CheckError::Process(format!("pidfile {}: {why}", path.display())))?;
        seen.push(format!("PID {pid} running"));
        followed = Some((pid, FoundBy::Pidfile(path.to_path_buf())));
    }
    if let Some(name) = name {
        let pid = by_name(name, prefer.filter(|_| pidfile.is_none()))?;
        seen.push(format!("process {name} running as PID {pid}"));
        followed.get_or_insert((pid, FoundBy::Name(name.to_string())));
    }
    let Some((pid, by)) = followed else {
        return Err(CheckError::Process(
            "neither a pidfile nor a name to check".into(),
        ));
    };
    Ok(Found {
        pid,
        comm: comm_of(pid),
        by,
        detail: seen.join(", "),
    })
}

/// After a pidfd was opened for `found.pid`: is it still the same process? The pidfile
/// still names it, its comm is unchanged and it is alive. A PID that died and was reused
/// between [`find`] and pidfd_open fails here (the pidfd would follow a stranger).
pub(crate) fn still(found: &Found) -> Result<(), String> {
    let pid = found.pid;
    if let FoundBy::Pidfile(path) = &found.by {
        match read_pidfile(path) {
            Ok(p) if p == pid => {}
            Ok(p) => return Err(format!("pidfile {} now names PID {p}", path.display())),
            Err(e) => return Err(e.to_string()),
        }
    }
    live_stat(pid)?;
    let comm = comm_of(pid);
    if comm != found.comm {
        return Err(format!("PID {pid} is now {comm:?}, not {:?}", found.comm));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_state_and_parent_from_proc_stat() {
        assert_eq!(stat_state("42 (nginx) S 1 42 42 0"), Some('S'));
        assert_eq!(stat_state("42 (a) b) Z 1"), Some('Z'));
        assert_eq!(stat_state("42 (x y) R"), Some('R'));
        assert_eq!(stat_state("garbage"), None);
        assert_eq!(stat_state("42 (x)"), None);
        assert_eq!(stat_ppid("42 (a) b) S 7 42"), Some(7));
        assert_eq!(stat_ppid("42 (x) S"), None);
        assert_eq!(stat_ppid("42 (x) S x"), None);
    }

    #[test]
    fn matches_truncated_comm() {
        assert!(comm_matches("nginx", "nginx"));
        assert!(!comm_matches("nginx", "ngin"));
        assert!(!comm_matches("nginx: worker", "nginx"));
        assert!(comm_matches("a-very-long-pro", "a-very-long-process-name"));
        assert!(!comm_matches("a-very-long-pro", "a-very-long-pr"));
    }

    #[test]
    fn needs_something_to_check() {
        let err = find(None, None, None).unwrap_err();
        assert!(err.to_string().contains("neither"));
    }

    #[test]
    fn pidfile_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pid");
        let err = find(Some(&path), None, None).unwrap_err().to_string();
        assert_eq!(err, format!("pidfile {}: not found", path.display()));
        for bad in ["", "abc", "-1", "0", "12 13"] {
            std::fs::write(&path, bad).unwrap();
            let err = find(Some(&path), None, None).unwrap_err().to_string();
            assert!(err.contains("is not a PID"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn finds_the_main_process_of_a_name_and_keeps_the_preferred_one() {
        // The test binary's own name: this process is one, its threads are not listed.
        let me = std::process::id();
        let comm = comm_of(me);
        let found = find(None, Some(&comm), Some(me)).unwrap();
        assert_eq!(
            (found.pid, found.by.clone()),
            (me, FoundBy::Name(comm.clone()))
        );
        assert_eq!(found.to_owned().label(), comm);
        assert!(still(&found).is_ok());
    }

    #[test]
    fn a_pidfile_that_moved_on_is_not_still_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pid");
        let me = std::process::id();
        std::fs::write(&path, format!("{me}\n")).unwrap();
        let found = find(Some(&path), None, None).unwrap();
        assert_eq!(found.by, FoundBy::Pidfile(path.clone()));
        assert_eq!(found.detail, format!("PID {me} running"));
        assert!(still(&found).is_ok());
        std::fs::write(&path, "1").unwrap();
        assert_eq!(
            still(&found).unwrap_err(),
            format!("pidfile {} now names PID 1", path.display())
        );
        let stranger = Found {
            comm: "not-me".into(),
            ..found
        };
        std::fs::write(&path, format!("{me}")).unwrap();
        assert!(still(&stranger).unwrap_err().contains("is now"));
    }
}
