//! A process file descriptor (pidfd_open(2), Linux 5.3): an fd that refers to one process,
//! not to a PID number, and that becomes readable when that process exits. The process
//! check waits on it in the runtime's epoll (`AsyncFd`), so a dead service is seen the
//! moment the kernel reaps its threads, not at the next poll.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Opens a pidfd for `pid`. `ESRCH`: no such process; `ENOSYS` / `EPERM`: the kernel or a
/// seccomp filter does not offer pidfds ([`unsupported`]).
pub(crate) fn open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: pidfd_open takes a PID and flags and returns a new fd or -1; no memory is
    // passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd =
        libc::c_int::try_from(fd).map_err(|_| io::Error::other("pidfd_open: fd out of range"))?;
    // SAFETY: the kernel just gave us this fd and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether an error of [`open`] means pidfds are not available here at all (old kernel,
/// seccomp), so polling is the only way.
pub(crate) fn unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM))
}

/// Whether the process behind the pidfd has exited, without waiting (poll(2), timeout 0).
pub(crate) fn has_exited(fd: &OwnedFd) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1, no wait.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n > 0 && p.revents & (libc::POLLIN | libc::POLLHUP) != 0)
}

/// A pidfd registered with the runtime.
#[derive(Debug)]
pub(crate) struct Watch(AsyncFd<OwnedFd>);

impl Watch {
    /// Registers the pidfd (must run inside the runtime).
    pub(crate) fn new(fd: OwnedFd) -> io::Result<Self> {
        // SAFETY: the OwnedFd is moved into the AsyncFd and stays open, the same fd, until
        // the AsyncFd is dropped (OwnedFd::as_raw_fd always returns it).
        unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map(Watch)
            .map_err(io::Error::from)
    }

    /// Returns once the process has exited (confirmed with [`has_exited`], so a spurious
    /// wake-up is not an exit). Err: the registration broke; the caller polls instead.
    pub(crate) async fn exited(&self) -> io::Result<()> {
        loop {
            let mut guard = self.0.readable().await?;
            if has_exited(self.0.get_ref())? {
                return Ok(());
            }
            guard.clear_ready();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_pidfd_becomes_readable_when_the_process_exits() {
        let mut child = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        let fd = open(child.id()).expect("pidfd_open works on this kernel");
        assert!(!has_exited(&fd).unwrap());
        let watch = Watch::new(fd).unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(50), watch.exited()).await;
        assert!(waiting.is_err(), "a live process is not an exit");
        child.kill().unwrap();
        tokio::time::timeout(Duration::from_secs(5), watch.exited())
            .await
            .expect("the exit is seen")
            .unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn no_such_process_is_esrch() {
        let e = open(u32::MAX).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
        assert!(!unsupported(&e));
        assert!(unsupported(&io::Error::from_raw_os_error(libc::ENOSYS)));
        assert!(unsupported(&io::Error::from_raw_os_error(libc::EPERM)));
    }
}
