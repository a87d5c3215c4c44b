#!/usr/bin/env bash
# Builds the agent of the previous release, for the rolling-upgrade test (tests/upgrade.rs,
# issue 11): the pinned commit below, exported with `git archive` into
# $TARGET/previous/src-<short>, built there as a debug `cargo build --bin haagent` with its own
# target dir ($TARGET/previous/target, removed afterwards), and copied to the fixed path
# $TARGET/previous/haagent-<short>, which the last line of stdout names.
#
# $TARGET is $CARGO_TARGET_DIR, else the main target dir (./target). The main build's target
# dir, lock and outputs are never touched. Skips the build when the binary is already there;
# safe to run concurrently (flock on $TARGET/previous/.lock: a second caller waits and then
# finds the binary). Run by .ci/run before the tests, and by the test itself when neither
# HAAGENT_PREVIOUS_BIN nor the binary is there (a fresh clone running `cargo nextest run`).
#
# Time (2 cores, shared registry already downloaded: same Cargo.lock as today): ~3 min for a
# cold build of every dependency in debug; 0 s when the binary exists.
#
# Needs the commit in the local history: a shallow clone fails with a message saying how to
# deepen it.
set -euo pipefail

# The previous release: main before the groups work of issue 11 (wire v1 only, ALPN
# haagent/1, no [[group]]). Change it together with docs/upgrade.md.
PREVIOUS_COMMIT=5b5b9b534c465eb53005badbf3be1b88c5e15d32
short=${PREVIOUS_COMMIT:0:9}

root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
case $target in /*) ;; *) target=$root/$target ;; esac
out=$target/previous
bin=$out/haagent-$short

mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

if ! git -C "$root" cat-file -e "$PREVIOUS_COMMIT^{commit}" 2>/dev/null; then
  if [ "$(git -C "$root" rev-parse --is-shallow-repository 2>/dev/null)" = true ]; then
    echo "previous.sh: commit $PREVIOUS_COMMIT (the previous release, for tests/upgrade.rs) is" \
      "not in this shallow clone; run 'git fetch --unshallow' (or clone without --depth)" >&2
  else
    echo "previous.sh: git cannot resolve commit $PREVIOUS_COMMIT (the previous release, for" \
      "tests/upgrade.rs) in $root; fetch the full history of main" >&2
  fi
  exit 1
fi

src=$out/src-$short
rm -rf "$src"
mkdir -p "$src"
git -C "$root" archive --format=tar "$PREVIOUS_COMMIT" | tar -x -C "$src"

started=$SECONDS
echo "previous.sh: building haagent $short (debug) in $src" >&2
# Its own target dir: nothing the outer build (or an outer CARGO_TARGET_DIR) set leaks in.
# Without debug info or incremental caches (the test only runs the binary): the build dir
# is ~0.5 GB instead of ~1.3 GB, and it is removed once the binary is copied out.
(
  cd "$src"
  env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET_DIR \
    CARGO_PROFILE_DEV_DEBUG=0 CARGO_INCREMENTAL=0 \
    "${CARGO:-cargo}" build --locked --quiet --bin haagent --target-dir "$out/target"
) >&2
cp "$out/target/debug/haagent" "$bin.tmp"
mv "$bin.tmp" "$bin"
rm -rf "$src" "$out/target"
echo "previous.sh: built $bin in $((SECONDS - started)) s" >&2
echo "$bin"
