#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs them.
#
# - xmlsec1 (Debian): the independent XML-DSig/XML-Enc implementation koppeltest's SAML is
#   checked against (tests/it/xmlsec.rs);
# - python3-venv (Debian): ci/validate-stu3.sh installs an independent FHIR STU3 validator from
#   PyPI into a virtual environment and checks every exported test patient with it.
# Then `cargo test --locked` (extra arguments are passed on, e.g. a test filter) and, for a full
# run, the STU3 cross-check. Root installs directly; otherwise sudo is used when needed.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v xmlsec1 >/dev/null 2>&1 || missing+=(xmlsec1)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
    echo "--- installing ${missing[*]}"
    sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq "${missing[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is not on PATH; koppeltest needs the Rust toolchain (1.85 or newer)" >&2
    exit 1
fi

echo "--- cargo test --locked $*"
cargo test --locked "$@"

if (($# == 0)); then
    echo "--- the exported fixtures are valid FHIR STU3 (an independent implementation)"
    bash ci/validate-stu3.sh
fi
