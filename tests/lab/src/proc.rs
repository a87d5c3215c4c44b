//! Processes the lab starts inside its namespaces (agents, keepalived, Nginx, the built-in
//! responder). Each is owned by a [`Proc`]: dropping it SIGKILLs the process and the
//! children it forked (found by their parent PID in /proc) and reaps it. Only PIDs the lab
//! started, or their descendants, are ever signalled.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{LabError, Netns};

/// A process started inside a namespace, killed with its descendants when dropped.
#[derive(Debug)]
pub struct Proc {
    /// What it is, e.g. `haagent on n1`.
    pub label: String,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    child: Child,
    exited: bool,
}

impl Proc {
    /// Starts `program args...` inside `ns` (through `ip netns exec`, which execs it, so the
    /// PID is the program's own), in its own process group so that a Ctrl-C at the terminal
    /// reaches only `haagent-lab`, which then stops everything in order.
    pub fn spawn(
        label: &str,
        ns: &Netns,
        program: impl AsRef<OsStr>,
        args: &[String],
        env: &[(&str, &str)],
        log: &Path,
    ) -> Result<Self, LabError> {
        let file = std::fs::File::create(log).map_err(|source| LabError::File {
            path: log.to_path_buf(),
            source,
        })?;
        let err = file.try_clone().map_err(|source| LabError::File {
            path: log.to_path_buf(),
            source,
        })?;
        let mut cmd = ns.command(program);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.args(args).stdin(Stdio::null()).stdout(file).stderr(err);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let shown = format!("{cmd:?}");
        let child = cmd.spawn().map_err(|source| LabError::Spawn {
            command: shown,
            source,
        })?;
        Ok(Self {
            label: label.to_string(),
            log: log.to_path_buf(),
            child,
            exited: false,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        if self.exited {
            return false;
        }
        match self.child.try_wait() {
            Ok(None) => true,
            _ => {
                self.exited = true;
                false
            }
        }
    }

    /// Sends `signal` to this PID only.
    pub fn signal(&mut self, signal: libc::c_int) -> Result<(), LabError> {
        if !self.running() {
            return Ok(());
        }
        send(self.pid(), signal)
    }

    /// Sends `signal` to this process and every descendant, descendants first, all in one
    /// go (a crash: keepalived's children must not get the chance to hand over).
    pub fn signal_tree(&mut self, signal: libc::c_int) -> Result<(), LabError> {
        if !self.running() {
            return Ok(());
        }
        let mut pids = descendants(self.pid());
        pids.push(self.pid());
        for pid in pids {
            // A descendant may have exited in between; that is fine.
            let _ = send(pid, signal);
        }
        Ok(())
    }

    /// SIGKILL to the process group created for this process at spawn. A child that
    /// outlived it (an Nginx worker whose master had already exited) is no longer a
    /// descendant, but it is still in that group.
    ///
    /// The group id is our PID. The kernel does not hand out a PID that is still a group
    /// id, nor one of an unreaped child; so the id is still ours unless we reaped the
    /// process and another process now has its PID (then our group had ended: skip).
    pub fn kill_group(&mut self) {
        let pid = self.pid();
        let reaped = !self.running();
        if reaped && std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        if let Ok(group) = libc::pid_t::try_from(pid) {
            // SAFETY: plain syscall; ESRCH (nothing left in the group) is the normal case.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
    }

    /// This process and its descendants, for resource accounting.
    pub fn tree(&mut self) -> Vec<u32> {
        if !self.running() {
            return Vec::new();
        }
        let mut pids = vec![self.pid()];
        pids.extend(descendants(self.pid()));
        pids
    }

    /// Waits up to `timeout` for the process to exit; true if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.running() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The output written so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.signal_tree(libc::SIGKILL);
        self.kill_group();
        let _ = self.child.wait();
    }
}

fn send(pid: u32, signal: libc::c_int) -> Result<(), LabError> {
    let raw = libc::pid_t::try_from(pid)
        .map_err(|_| LabError::Setup(format!("pid {pid} out of range")))?;
    // SAFETY: plain syscall on a PID this lab started (or a descendant of one).
    if unsafe { libc::kill(raw, signal) } != 0 {
        return Err(LabError::Spawn {
            command: format!("kill -{signal} {pid}"),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Parent PID of `pid`, from /proc/PID/stat (the field after the parenthesised name).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Every live descendant of `root` (children, grandchildren, ...).
pub fn descendants(root: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let all: Vec<(u32, u32)> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, parent_of(pid)?)))
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(all.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    found.remove(0);
    found
}

/// Resident set size (VmRSS) of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU time (utime + stime) of `pid` in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime is field 14 of the line, index 11 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// Context switches (voluntary + involuntary) of every thread of `pid`, summed over
/// `/proc/PID/task/*/status` (the process's own `status` counts its main thread only). A
/// thread that sleeps and is woken counts one voluntary switch, so per second this is a
/// cheap proxy for wake-ups (no strace needed).
pub fn ctxt_switches(pid: u32) -> Option<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0u64;
    for task in dir.flatten() {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            let value = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"));
            if let Some(n) = value.and_then(|v| v.trim().parse::<u64>().ok()) {
                total += n;
            }
        }
    }
    Some(total)
}

/// CPU time of every thread of `pid` in nanoseconds: the first field of
/// `/proc/PID/task/*/schedstat` (time on the CPU, kept by the scheduler in ns, where
/// /proc/PID/stat's utime + stime count 10 ms clock ticks). `None` without schedstats.
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0u64;
    let mut any = false;
    for task in dir.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        if let Some(ns) = text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
        {
            total += ns;
            any = true;
        }
    }
    any.then_some(total)
}
