#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ with seeds built from the repository: scenarios/, fixtures/ and the
# small hand-written messages in fuzz/seeds/ (SAML messages, pages, redactor inputs). Idempotent;
# libFuzzer adds what it finds next to them. Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")"
repo=..

# seed TARGET FILE [PREFIX]: copy FILE into TARGET's corpus, PREFIX (printf escapes) in front.
seed() {
    local target=$1 file=$2 prefix=${3:-} dir=corpus/$1
    mkdir -p "$dir"
    local name
    name=$(basename "$file")
    if [ -n "$prefix" ]; then
        name="$(printf '%s' "$prefix" | tr -dc '0-9a-f')-$name"
    fi
    { printf "$prefix"; cat "$file"; } >"$dir/$name"
}

for f in "$repo"/scenarios/*.toml; do seed scenario "$f"; done
for f in "$repo"/fixtures/matrix/*.toml; do seed matrix "$f"; done
for f in "$repo"/fixtures/lists/MedMij_Zorgaanbiederslijst*.xml; do seed zal "$f"; done
for f in "$repo"/fixtures/lists/MedMij_OAuthclientlist*.xml; do seed ocl "$f"; done
for f in "$repo"/fixtures/lists/MedMij_Whitelist*.xml; do seed whitelist "$f"; done
for f in seeds/html_forms/*; do seed html_forms "$f"; done
for f in seeds/saml_authn_request/*; do seed saml_authn_request "$f"; done
for f in seeds/saml_artifact_resolve/*; do seed saml_artifact_resolve "$f"; done
for f in seeds/saml_metadata/*; do seed saml_metadata "$f"; done
for f in seeds/redactor/*; do seed redactor "$f"; done
# Four switch bytes in front: all checks strict, and signature checks off (switch 25).
for f in seeds/saml_artifact_response/*; do
    seed saml_artifact_response "$f" '\x00\x00\x00\x00'
    seed saml_artifact_response "$f" '\x00\x00\x00\x02'
done
for f in seeds/saml_*/*.xml; do
    seed c14n "$f" '\x00\x00\x00\x00'
done
# One byte in front picks the check; a few picks per body.
for f in "$repo"/fixtures/patients/*.json seeds/fhir_bundle/*; do
    for pick in 00 05 0a 0f 14 19 1e 23 28 2d 32 37 3c; do
        seed fhir_bundle "$f" "\\x$pick"
    done
done
