#!/usr/bin/env bash
# Many combinations, measured (issue 12): a generated ROWS HIS × COLS PGO matrix of simulated
# DVAs (default 20 × 10 = 200 cells), run whole and as SHARDS shards merged again, in a release
# build. Prints the figures the README's "Many combinations, measured" records: wall and CPU
# time and peak memory of the run,
# the overview page's size and how long headless Chromium takes to open and render it, disk
# use per cell, and the time `merge` takes.
#
#   bash benches/scale.sh                      # 20 × 10, every embedded scenario, 10 shards
#   ROWS=4 COLS=2 SHARDS=2 bash benches/scale.sh
#   SCENARIOS=path/to/folder bash benches/scale.sh
#
# Needs GNU time (/usr/bin/time) and, for the render figure, chromium (apt-get install
# chromium); without it that figure is skipped. Keeps its work folder (printed) for a look.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-20}
COLS=${COLS:-10}
SHARDS=${SHARDS:-10}
JOBS=${JOBS:-16}

cargo build --release --locked --quiet
BIN=$PWD/target/release/koppeltest
W=$(mktemp -d /tmp/koppeltest-scale-XXXXXX)
echo "work folder: $W"

# The matrix: ROWS simulated rows (one practice, test entity indexes 9200…), COLS columns over
# the three PGO hostnames of the embedded OCL and the three releases.
{
    echo "name = \"scale $ROWS x $COLS\""
    for ((r = 0; r < ROWS; r++)); do
        cat <<EOF
[[his]]
id = "his-$r"
name = "HIS $r"
dva = "simulated"
practice = "dewaard.huisartspraktijk.utrecht@medmij"
zal = "embedded:MedMij_Zorgaanbiederslijst.xml"
ocl = "embedded:MedMij_OAuthclientlist.xml"
whitelist = "embedded:MedMij_Whitelist.xml"
target = { kind = "simulated", entity_index = $((9200 + r)) }
EOF
    done
    hosts=(alfa beta gamma)
    releases=(1.x 2.2 1.0)
    for ((c = 0; c < COLS; c++)); do
        h=${hosts[$((c % 3))]}
        cat <<EOF
[[pgo]]
id = "pgo-$c"
name = "PGO $c"
hostname = "medmij.pgo-$h.koppeltest.test"
redirect_uri = "https://medmij.pgo-$h.koppeltest.test/oauth/callback"
release = "${releases[$((c % 3))]}"
EOF
    done
} > "$W/matrix.toml"
scenario_args=()
if [[ -n "${SCENARIOS:-}" ]]; then scenario_args=(--scenarios "$SCENARIOS"); fi

"$BIN" pki init --out "$W/pki" > /dev/null
measure() { # label, command…: prints wall s, CPU s, peak RSS MiB, and the peak RSS in each
    # quarter of the run (sampled every second): memory that grows with the finished work shows
    # as rising quarters
    local label=$1
    shift
    /usr/bin/time -f "%e %U %S %M" -o "$W/time" "$@" > "$W/$label.out" 2> "$W/$label.err" &
    local timer=$! pid
    : > "$W/$label.rss"
    while kill -0 "$timer" 2> /dev/null; do
        pid=$(pgrep -P "$timer" | head -n1 || true)
        if [[ -n $pid ]]; then ps -o rss= -p "$pid" >> "$W/$label.rss" 2> /dev/null || true; fi
        sleep 1
    done
    wait "$timer" || true
    # GNU time puts "Command exited with non-zero status N" first when it did: the figures are
    # the last line.
    read -r wall user sys rss < <(tail -n1 "$W/time")
    printf '%-28s wall %7.1f s  CPU %7.1f s  peak %6.0f MiB\n' "$label" "$wall" \
        "$(echo "$user + $sys" | bc)" "$(echo "$rss / 1024" | bc)"
    python3 - "$W/$label.rss" <<'EOF'
import sys
rss = [int(l) for l in open(sys.argv[1]) if l.strip()]
if len(rss) >= 4:
    q = len(rss) // 4
    parts = [rss[i * q:(i + 1) * q if i < 3 else len(rss)] for i in range(4)]
    print('  peak RSS by quarter of the run: ' + ', '.join(f'{max(p) // 1024} MiB' for p in parts))
EOF
}

echo "--- the whole run: $ROWS × $COLS cells"
measure "run ($((ROWS * COLS)) cells)" "$BIN" run --quiet --snapshots off --jobs "$JOBS" \
    --matrix "$W/matrix.toml" --pki "$W/pki" --out "$W/whole" "${scenario_args[@]}"
run=$W/whole/latest
cells=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['cells']))" "$run/report.json")
scenarios=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['summary']['scenarios'])" "$run/report.json")
echo "cells $cells, scenarios $scenarios, exit $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['summary']['exit_code'])" "$run/report.json")"
overview=$(stat -c %s "$run/matrix.html")
total=$(du -sb "$run" | cut -f1)
echo "matrix.html (overview): $((overview / 1024)) KiB"
echo "report.json: $(($(stat -c %s "$run/report.json") / 1024)) KiB; events.jsonl: $(($(stat -c %s "$run/events.jsonl") / 1024)) KiB"
echo "largest cell page: $(($(find "$run/cells" -name index.html -printf '%s\n' | sort -n | tail -1) / 1024)) KiB"
echo "run folder: $((total / 1048576)) MiB, $((total / cells / 1024)) KiB per cell"

if command -v chromium > /dev/null; then
    # Opening and rendering: a headless Chromium starts, loads the page and prints the DOM after
    # the load event, all in the time given; an empty page shows the browser's own start-up.
    chrome=(chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage)
    t0=$(date +%s.%N); "${chrome[@]}" --dump-dom about:blank > /dev/null 2>&1; t1=$(date +%s.%N)
    "${chrome[@]}" --dump-dom "file://$run/matrix.html" > "$W/dom.html" 2> /dev/null; t2=$(date +%s.%N)
    printf 'chromium: about:blank %.2f s; matrix.html opened and rendered %.2f s, start-up included; DOM %s KiB\n' \
        "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" "$(($(stat -c %s "$W/dom.html") / 1024))"
else
    echo "chromium: not installed, render time not measured (apt-get install chromium)"
fi

echo "--- the same run in $SHARDS shards, then merge"
parts=()
for ((k = 1; k <= SHARDS; k++)); do
    "$BIN" run --quiet --snapshots off --jobs "$JOBS" --shard "$k/$SHARDS" \
        --matrix "$W/matrix.toml" --pki "$W/pki" --out "$W/shard-$k" "${scenario_args[@]}" \
        > /dev/null 2>&1 || true
    parts+=("$W/shard-$k/latest")
done
# The shards' files reach the disk first, so the figure is the merge's own work, not the
# flushing of the tenth shard's writes.
sync
measure "merge ($SHARDS shards)" "$BIN" merge --quiet "${parts[@]}" --out "$W/merged"
python3 - "$run/report.json" "$W/merged/report.json" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
va = [(c['row'], c['column'], s['id'], s['verdict']) for c in a['cells'] for s in c['scenarios']]
vb = [(c['row'], c['column'], s['id'], s['verdict']) for c in b['cells'] for s in c['scenarios']]
print('merged verdicts equal the whole run\'s:', va == vb, '| summary equal:',
      {k: v for k, v in a['summary'].items()} == {k: v for k, v in b['summary'].items()})
EOF
