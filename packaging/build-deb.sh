#!/usr/bin/env bash
# Builds the Debian package target/debian/vigil_VERSION_ARCH.deb: the release binaries, a man page
# per command (generated from the CLI definition), then cargo-deb.
#   packaging/build-deb.sh                     # version from Cargo.toml
#   packaging/build-deb.sh --deb-version 0.1.1 # the same build under another version (no rebuild
#                                              # when the binaries are there already)
# Needs cargo-deb (`cargo install cargo-deb --locked`).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
cargo build --release --locked -p vigil-daemon -p vigil-simulator
man="$target/release/man"
rm -rf "$man"
"$target/release/vigil" manpages "$man"
"$target/release/vigil-sim" manpages "$man"
gzip -9n "$man"/*.1
cargo deb --no-build --strip --locked -p vigil-daemon "$@"
