//! What survives a restart, in `[state] dir` (the unit's `StateDirectory`): the maintenance
//! flags. The file `maintenance` holds `on` or `off` for the node (`haagent maintenance
//! on|off`); `maintenance.group.NAME` the same for one group (`--group NAME`), and wins over
//! the node's flag for that group. Node-wide maintenance removes the group flags (it applies
//! to every group). Written atomically
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

/// The file of group `name`'s maintenance flag (group names are `[A-Za-z0-9._-]`).
pub(super) fn group_file(name: &str) -> String {
    format!("{MAINTENANCE_FILE}.group.{name}")
}

/// Reads the persisted maintenance flag of the node from `dir`.
pub(super) fn load_maintenance(dir: &Path) -> Persisted {
    load_flag(dir, MAINTENANCE_FILE).unwrap_or(Persisted::Off)
}

/// What applies to group `name` at start: its own flag if one was written, else the node's.
pub(super) fn load_group_maintenance(dir: &Path, name: &str) -> Persisted {
    load_flag(dir, &group_file(name)).unwrap_or_else(|| load_maintenance(dir))
}

/// Reads `dir/file`; `None` when it does not exist.
fn load_flag(dir: &Path, file: &str) -> Option<Persisted> {
    let path = dir.join(file);
    Some(match std::fs::read_to_string(&path) {
        Ok(text) => match text.trim() {
            "on" => Persisted::On,
            "off" => Persisted::Off,
            other => Persisted::Unreadable(format!(
                "{} holds {other:?}, not `on` or `off`",
                path.display()
            )),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => Persisted::Unreadable(format!("cannot read {}: {e}", path.display())),
    })
}

/// Persists the node's maintenance flag in `dir` (created if missing) and removes every
/// group's flag (`groups`: the group names), off the loop's thread.
pub(super) async fn save_maintenance(
    dir: PathBuf,
    on: bool,
    groups: Vec<String>,
) -> Result<(), String> {
    save_flag(dir.clone(), MAINTENANCE_FILE.to_string(), on).await?;
    let path = dir.clone();
    tokio::task::spawn_blocking(move || {
        for name in groups {
            match std::fs::remove_file(path.join(group_file(&name))) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot remove {}: {e}", group_file(&name))),
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| format!("cannot remove the group flags: {e}"))?
}

/// Persists group `name`'s maintenance flag in `dir`, off the loop's thread.
pub(super) async fn save_group_maintenance(
    dir: PathBuf,
    name: &str,
    on: bool,
) -> Result<(), String> {
    save_flag(dir, group_file(name), on).await
}

async fn save_flag(dir: PathBuf, file: String, on: bool) -> Result<(), String> {
    let shown = dir.join(&file).display().to_string();
    let contents = if on { "on\n" } else { "off\n" };
    tokio::task::spawn_blocking(move || write_atomically(&dir, &file, contents))
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
        save_maintenance(state.clone(), true, vec![]).await.unwrap();
        assert_eq!(load_maintenance(&state), Persisted::On);
        save_maintenance(state.clone(), false, vec![])
            .await
            .unwrap();
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
        let err = save_maintenance(file.join("state"), true, vec![])
            .await
            .unwrap_err();
        assert!(err.contains("not-a-dir/state/maintenance"), "{err}");
    }

    /// A group's own flag wins over the node's for that group; node-wide maintenance
    /// removes the group flags.
    #[tokio::test]
    async fn a_group_flag_wins_until_node_wide_maintenance_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        save_maintenance(state.clone(), true, vec![]).await.unwrap();
        save_group_maintenance(state.clone(), "web-a", false)
            .await
            .unwrap();
        assert_eq!(load_group_maintenance(&state, "web-a"), Persisted::Off);
        assert_eq!(load_group_maintenance(&state, "web-b"), Persisted::On);
        save_maintenance(state.clone(), true, vec!["web-a".into(), "web-b".into()])
            .await
            .unwrap();
        assert_eq!(load_group_maintenance(&state, "web-a"), Persisted::On);
        assert!(!state.join(group_file("web-a")).exists());
    }
}
