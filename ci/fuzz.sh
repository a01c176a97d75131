#!/usr/bin/env bash
# Fuzzes every parser of outside input briefly (fuzz/README.md): builds all cargo-fuzz targets
# with the nightly toolchain, seeds their corpora from the repository (fuzz/seed.sh), then runs
# each for FUZZ_SECONDS (default 3; 0 skips fuzzing) with bounded input size and memory. Fails
# when any target crashes, panics, times out on one input or runs out of memory; the input that
# did it is left in fuzz/artifacts/<target>/ for `cargo +nightly fuzz run <target> <file>`.
# Wall time from a cold fuzz/target on the 2-core machine: about 4 min to build, then a few
# seconds per target (3 s of fuzzing by default, so CI stays well under its limit).
#
# Installs cargo-fuzz (pinned, --locked, from crates.io) when it is missing. The nightly
# toolchain must be installed (`rustup toolchain install nightly --profile minimal`): cargo-fuzz
# needs its -Z flags. Called by .ci/run after the tests.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

CARGO_FUZZ_VERSION=0.13.2
seconds=${FUZZ_SECONDS:-3}
if [ "$seconds" = 0 ]; then
    echo "--- fuzzing skipped (FUZZ_SECONDS=0)"
    exit 0
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "error: the nightly toolchain is missing; cargo-fuzz needs it:" >&2
    echo "       rustup toolchain install nightly --profile minimal" >&2
    exit 1
fi
if [ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    echo "--- installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

echo "--- cargo fmt --check (fuzz targets)"
cargo fmt -- --check

# No sanitizer: koppeltest and the fuzz crate forbid unsafe code, so AddressSanitizer would
# watch only dependencies, at twice the build time and half the speed. --dev (fuzz/Cargo.toml:
# opt-level 1, debug assertions and overflow checks on) builds from cold in about half the time
# of cargo-fuzz's release default; longer local runs use release (fuzz/README.md).
build=(--sanitizer none --dev)
echo "--- cargo fuzz build (nightly, ${build[*]})"
cargo +nightly fuzz build "${build[@]}"

bash seed.sh
failed=()
for target in $(cargo +nightly fuzz list); do
    echo "--- fuzz $target for ${seconds}s"
    # -timeout: one input taking longer is a finding (a parser must stay bounded).
    if ! cargo +nightly fuzz run "${build[@]}" "$target" -- \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 2>"target/$target.log"; then
        tail -n 40 "target/$target.log" >&2
        failed+=("$target")
    else
        grep -E '^stat::number_of_executed_units|^stat::average_exec_per_sec' "target/$target.log" |
            tr '\n' ' '
        echo
    fi
done

if ((${#failed[@]})); then
    echo "error: fuzz targets failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "--- all fuzz targets ran ${seconds}s without a crash"
