#!/usr/bin/env bash
# Cross-checks junit.xml with an independent JUnit parser: makes a run with the built binary
# (the embedded default matrix: every verdict kind it has, about half a minute) and reads its
# junit.xml with junitparser (PyPI) in a virtual environment; the totals of tests, failures,
# errors and skipped must match report.json's summary. Exit 0: they match; 1: they do not;
# anything else: the check could not run.
#
# Environment: KOPPELTEST, the command that runs koppeltest (default
# `cargo run --locked --quiet --`); JUNIT_VENV, where the parser is installed (default
# target/junit-validator, reused when it is there).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${JUNIT_VENV:-target/junit-validator}
if ! "$venv/bin/python" -c 'import junitparser' >/dev/null 2>&1; then
    echo "installing junitparser into $venv (ci/junit-validator.txt)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r ci/junit-validator.txt
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
read -r -a koppeltest <<<"${KOPPELTEST:-cargo run --locked --quiet --}"
# The exit code says how the run went, not whether the check can be made.
"${koppeltest[@]}" run --quiet --snapshots off --out "$out" >/dev/null || true
"$venv/bin/python" - "$out/latest" <<'PY'
import json, sys
from junitparser import JUnitXml, Failure, Error, Skipped

folder = sys.argv[1]
summary = json.load(open(f"{folder}/report.json"))["summary"]
xml = JUnitXml.fromfile(f"{folder}/junit.xml")
counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
for suite in xml:
    for case in suite:
        counts["tests"] += 1
        kinds = {type(r) for r in case.result}
        counts["failures"] += Failure in kinds
        counts["errors"] += Error in kinds
        counts["skipped"] += Skipped in kinds
expected = {
    "tests": summary["scenarios"],
    "failures": summary["fail"] + summary["unexpected_pass"],
    "errors": summary["error"],
    "skipped": summary["expected_failure"] + summary["skip"] + summary["omit"],
}
if counts != expected:
    print(f"junit.xml and report.json disagree: junit {counts}, report.json {expected}")
    sys.exit(1)
print(f"junit.xml agrees with report.json: {counts}")
PY
