#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser that reads remote input (targets in fuzz/, listed in
# src/fuzzing.rs). Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
#
#   scripts/fuzz.sh --replay        every seed and regression input through the targets' checks,
#                                   on stable (what CI runs; no nightly needed)
#   scripts/fuzz.sh --smoke [SECS]  each target for SECS seconds (default 20), from the seeds
#   scripts/fuzz.sh --long [SECS]   each target for SECS seconds (default 600), one after the
#                                   other at nice 19, the grown corpus kept in fuzz/corpus-run/
#   scripts/fuzz.sh --target NAME [SECS]   one target
#
# Each run prints libFuzzer's last status line per target (execs, cov, ft, corp, exec/s) and
# leaves its log in target/fuzz-logs/NAME.log. A crash stops the run with exit code 1 and leaves
# the input in fuzz/artifacts/NAME/: add it to fuzz/regressions/NAME/ with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(certificate evidence_extension quote_layout bond_proof collateral policy_file evidence_log)
FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target/fuzz}"
LOGS="$PWD/target/fuzz-logs"

replay() {
    cargo test --locked --features fuzzing --test fuzz_corpus
}

run_target() {
    local name="$1" secs="$2" corpus="$3" niceness="$4"
    mkdir -p "$corpus/$name" "$LOGS" "fuzz/artifacts/$name"
    # The grown corpus starts from the committed seeds (libFuzzer writes new inputs into the
    # first directory only, so fuzz/corpus/ stays as committed).
    local status=0
    (cd fuzz && CARGO_TARGET_DIR="$FUZZ_TARGET_DIR" nice -n "$niceness" \
        cargo +nightly fuzz run -O "$name" "$corpus/$name" "$PWD/corpus/$name" -- \
        -max_total_time="$secs" -max_len=24576 -print_final_stats=1 \
        -artifact_prefix="$PWD/artifacts/$name/") >"$LOGS/$name.log" 2>&1 || status=$?
    local last
    last=$(grep -E '^#[0-9]+' "$LOGS/$name.log" | tail -n 1 || true)
    printf '%-20s %s\n' "$name" "$last"
    if [ "$status" -ne 0 ]; then
        echo "$name: libFuzzer exited $status; see $LOGS/$name.log and fuzz/artifacts/$name/" >&2
        return 1
    fi
}

build() {
    (cd fuzz && CARGO_TARGET_DIR="$FUZZ_TARGET_DIR" cargo +nightly fuzz build -O)
}

mode="${1:---replay}"
case "$mode" in
    --replay)
        replay
        ;;
    --smoke)
        secs="${2:-20}"
        build
        tmp=$(mktemp -d)
        trap 'rm -rf "$tmp"' EXIT
        failed=0
        for t in "${TARGETS[@]}"; do run_target "$t" "$secs" "$tmp" 10 || failed=1; done
        exit "$failed"
        ;;
    --long)
        secs="${2:-600}"
        build
        failed=0
        for t in "${TARGETS[@]}"; do run_target "$t" "$secs" "$PWD/fuzz/corpus-run" 19 || failed=1; done
        exit "$failed"
        ;;
    --target)
        name="${2:?target name}"
        secs="${3:-600}"
        build
        run_target "$name" "$secs" "$PWD/fuzz/corpus-run" 19
        ;;
    *)
        sed -n '2,16p' "$0" >&2
        exit 2
        ;;
esac
