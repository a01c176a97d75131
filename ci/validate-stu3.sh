#!/usr/bin/env bash
# Cross-checks the test patients with an independent FHIR STU3 (3.0.2) implementation: exports
# them (`koppeltest fixtures export`, the generated 10,000-result record included) and validates
# every resource of every exported Bundle with the STU3 models of fhir.resources (PyPI), which
# refuse elements STU3 does not define. koppeltest's own profile schemas are written by hand from
# the same definitions; this catches what they would let through. Exit 0: every resource is valid
# STU3; 1: some are not (each is named); anything else: the check could not run.
#
# Usage: ci/validate-stu3.sh [FIXTURES-DIR], with a folder of test patients (as for --fixtures)
# instead of the embedded ones. Environment: KOPPELTEST, the command that runs koppeltest (default
# `cargo run --locked --quiet --`); STU3_VENV, where the validator is installed (default
# target/stu3-validator, reused when it is there).
set -euo pipefail
fixtures=${1:+$(realpath "$1")}
cd "$(dirname "$0")/.."

venv=${STU3_VENV:-target/stu3-validator}
if ! "$venv/bin/python" -c 'import fhir.resources.STU3' >/dev/null 2>&1; then
    echo "installing the STU3 validator into $venv (ci/stu3-validator.txt)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r ci/stu3-validator.txt
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
read -r -a koppeltest <<<"${KOPPELTEST:-cargo run --locked --quiet --}"
"${koppeltest[@]}" fixtures export ${fixtures:+--fixtures "$fixtures"} --out "$out" >/dev/null
"$venv/bin/python" ci/validate-stu3.py "$out"
