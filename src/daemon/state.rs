//! What survives a restart, in `[state] dir` (the unit's `StateDirectory`): today only the
//! maintenance flag, the file `maintenance` holding `on` or `off`. Written atomically
//! (a temporary file in the same directory, synced, then renamed over the old one), so a
//! crash leaves the old flag or the new one, never half a file.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The maintenance flag's file in the state directory.
pub(super) const MAINTENANCE_FILE: &str = "maintenance";

/// What the state directory says about maintenance mode at start-up.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Persisted {
    /// No flag was ever written (or `off`).
    Off,
    /// `haagent maintenance on` was the last word.
    On,
    /// The file cannot be read or holds something else: treated as on (the node must not
    /// claim a VIP its operator may have taken it out for), with the reason.
    Unreadable(String),
}

/// Reads the persisted maintenance flag from `dir`.
pub(super) fn load_maintenance(dir: &Path) -> Persisted {
    let path = dir.join(MAINTENANCE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => match text.trim() {
            "on" => Persisted::On,
            "off" => Persisted::Off,
            other => Persisted::Unreadable(format!(
                "{} holds {other:?}, not `on` or `off`",
                path.display()
            )),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Persisted::Off,
        Err(e) => Persisted::Unreadable(format!("cannot read {}: {e}", path.display())),
    }
}

/// Persists the maintenance flag in `dir` (created if missing), off the loop's thread.
pub(super) async fn save_maintenance(dir: PathBuf, on: bool) -> Result<(), String> {
    let path = dir.join(MAINTENANCE_FILE);
    let shown = path.display().to_string();
    let contents = if on { "on\n" } else { "off\n" };
    tokio::task::spawn_blocking(move || write_atomically(&dir, MAINTENANCE_FILE, contents))
        .await
        .map_err(|e| format!("cannot write {shown}: {e}"))?
        .map_err(|e| format!("cannot write {shown}: {e}"))
}

/// Writes `dir/name` through a temporary file in `dir`, synced, then renamed over it.
fn write_atomically(dir: &Path, name: &str, contents: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(name))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // The rename itself is durable once the directory is synced.
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_flag_round_trips_and_missing_is_off() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert_eq!(load_maintenance(&state), Persisted::Off);
        save_maintenance(state.clone(), true).await.unwrap();
        assert_eq!(load_maintenance(&state), Persisted::On);
        save_maintenance(state.clone(), false).await.unwrap();
        assert_eq!(load_maintenance(&state), Persisted::Off);
        // Nothing but the flag is left behind (no temporary file).
        let names: Vec<_> = std::fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(MAINTENANCE_FILE)]);
    }

    #[test]
    fn a_garbled_flag_is_unreadable_not_off() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MAINTENANCE_FILE), "yes please").unwrap();
        let Persisted::Unreadable(why) = load_maintenance(dir.path()) else {
            panic!("a garbled flag must not read as off");
        };
        assert!(why.contains("\"yes please\", not `on` or `off`"), "{why}");
    }

    #[tokio::test]
    async fn an_unwritable_dir_is_an_error_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "").unwrap();
        let err = save_maintenance(file.join("state"), true)
            .await
            .unwrap_err();
        assert!(err.contains("not-a-dir/state/maintenance"), "{err}");
    }
}
