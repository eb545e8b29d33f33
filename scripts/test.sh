#!/usr/bin/env bash
# Runs every check and test of the workspace. Installs what the tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's OVMF firmware image for the measurement tests (unpacked under target/ovmf).
sh scripts/fetch-ovmf.sh

# The Python packages of the independent checkers and the aioquic peers (tests/interop_python*.rs,
# tests/interop_aioquic.rs).
# Exact pins: a no-op once they are installed.
python3 -m pip install --quiet --disable-pip-version-check -r interop/requirements.txt

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# The fuzz corpora and the inputs fuzzing found, replayed through the fuzz targets' checks on
# stable (scripts/fuzz.sh runs the fuzzers themselves, on nightly). The soak and flood smoke
# runs are tests of the benches member (benches/tests/soak.rs, flood.rs), run above.
bash scripts/fuzz.sh --replay
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
