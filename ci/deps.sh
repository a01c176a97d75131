#!/usr/bin/env bash
# Installs the Debian packages koppeltest needs beyond the Rust toolchain, when they are missing:
#
# - to build: libssl-dev and pkg-config. The simulated-DVA quirks that claim legacy TLS
#   (src/legacy_tls.rs) use the system's OpenSSL, which the openssl crate finds via pkg-config;
# - to test: xmlsec1, the independent XML-DSig/XML-Enc implementation koppeltest's SAML is
#   checked against (tests/it/xmlsec.rs); sslscan, an independent TLS scanner to compare what the
#   legacy-TLS endpoints negotiate against; python3-venv, for ci/validate-stu3.sh, which installs an
#   independent FHIR STU3 validator from PyPI into a virtual environment; openssl (the command),
#   with which tests/it/evidence.rs verifies an evidence bundle as the README tells certifiers to.
#
# Called by .ci/run before clippy and by ci/test.sh before the tests; a second call installs
# nothing. Root installs directly; otherwise sudo is used when needed.
set -euo pipefail

missing=()
pkg-config --exists openssl >/dev/null 2>&1 || missing+=(libssl-dev pkg-config)
command -v xmlsec1 >/dev/null 2>&1 || missing+=(xmlsec1)
command -v sslscan >/dev/null 2>&1 || missing+=(sslscan)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
    echo "--- installing ${missing[*]}"
    sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
