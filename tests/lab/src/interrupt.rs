//! Ctrl-C (SIGINT) and SIGTERM set a flag instead of killing `haagent-lab`: every wait in the
//! lab checks it and returns [`LabError::Interrupted`], so the callers unwind normally and
//! the Drop guards remove every namespace and process the lab made.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::LabError;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Installs the SIGINT and SIGTERM handlers (idempotent).
pub fn install() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// Whether Ctrl-C (or SIGTERM) has arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Fails with [`LabError::Interrupted`] once Ctrl-C has arrived.
pub fn check() -> Result<(), LabError> {
    if interrupted() {
        Err(LabError::Interrupted)
    } else {
        Ok(())
    }
}

/// Sleeps for `d` in small steps, returning early with [`LabError::Interrupted`] on Ctrl-C.
pub fn sleep(d: Duration) -> Result<(), LabError> {
    let end = Instant::now() + d;
    loop {
        check()?;
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}
