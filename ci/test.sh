#!/usr/bin/env bash
# The README's test command: installs what the build and the tests need, then runs them.
#
# ci/deps.sh installs the missing Debian packages: libssl-dev and pkg-config (build: the
# legacy-TLS quirks link the system OpenSSL), xmlsec1 and sslscan (independent SAML and TLS
# implementations the tests compare against), openssl (the command: the README's evidence-bundle
# verification) and python3-venv (ci/validate-stu3.sh).
# Then `cargo test --locked` (extra arguments are passed on, e.g. a test filter) and, for a full
# run, the STU3 cross-check, which installs an independent FHIR STU3 validator from PyPI into a
# virtual environment and checks every exported test patient with it.
set -euo pipefail
cd "$(dirname "$0")/.."

bash ci/deps.sh
if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is not on PATH; koppeltest needs the Rust toolchain (1.85 or newer)" >&2
    exit 1
fi

echo "--- cargo test --locked $*"
cargo test --locked "$@"

if (($# == 0)); then
    echo "--- the exported fixtures are valid FHIR STU3 (an independent implementation)"
    bash ci/validate-stu3.sh
    echo "--- junit.xml read by an independent JUnit parser agrees with report.json"
    bash ci/validate-junit.sh
fi
