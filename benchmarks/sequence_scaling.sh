#!/usr/bin/env bash
# Does the `sequence` block gain from a GPU's budget? On one card, in one call: the small world
# with the `cpu` preset at one and three epochs, 19m at three and 126m at two (four fits sharing
# the card), then a world of CLIENTS users (4x small by default) with `counts`, the `fast` recipe
# and the `cpu` / 19m presets at one epoch; every entry scored in quick mode, 5 runs, beside
# `counts` from the same run. Logs go to $OUT; each fit stays cached under $WORK/<name>/blocks,
# where `blend_cached.py` blends it with other cached fits.
#   OUT=/tmp/scaling bash benchmarks/sequence_scaling.sh
# A dry run on a CPU: DEVICE=cpu SCALE=tiny CLIENTS=2000 PRESETS="tiny tiny tiny" SETS="epochs=0.2" bash ...
set -u
OUT=${OUT:-/tmp/sequence-scaling}; WORK=${WORK:-/tmp/sequence-scaling-work}; mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
PY=${PY:-python3}; DEVICE=${DEVICE:-cuda}; SCALE=${SCALE:-small}; CLIENTS=${CLIENTS:-100000}; T=${T:-420}
read -r CPU M19 M126 <<< "${PRESETS:-cpu 19m 126m}"
start=$(date +%s); log="$OUT/scaling.log"
world() {  # dir synth-args...
  local dir=$1; shift
  $PY -m ubp.cli synth --out "$dir" --seed 1 "$@" > "$dir.log" 2>&1 && $PY -m ubp.cli split --data-dir "$dir" >> "$dir.log" 2>&1
  echo "$dir: exit $? at $(( $(date +%s) - start ))s" >> "$log"
}
fit() {  # world name preset references variant epochs (SETS, when given, replaces epochs=N)
  local w=$1 name=$2 preset=$3 refs=$4 variant=$5 epochs=$6
  timeout "$T" $PY benchmarks/sequence_ablation.py --data-dir "$w" --out "$WORK/$name" --preset "$preset" \
    --set ${SETS:-epochs=$epochs} --variants ${variant:+"$variant"} --references $refs --mode quick --orders 5 \
    --device "$DEVICE" --jobs 1 --threads 4 > "$OUT/$name.log" 2>&1
  echo "$name: exit $? at $(( $(date +%s) - start ))s" >> "$log"
}
world "$WORK/small" --scale "$SCALE"
fit "$WORK/small" small_cpu_e1 "$CPU" counts "all changes" 1 &
fit "$WORK/small" small_cpu_e3 "$CPU" "" "all changes" 3 &
fit "$WORK/small" small_19m_e3 "$M19" "" "all changes" 3 &
fit "$WORK/small" small_126m_e2 "$M126" "" "all changes" 2 &
wait
world "$WORK/large" --clients "$CLIENTS"
fit "$WORK/large" large_counts "$CPU" counts "" 1 &
fit "$WORK/large" large_fast "$CPU" fast "" 1 &
fit "$WORK/large" large_cpu_e1 "$CPU" "" "all changes" 1 &
fit "$WORK/large" large_19m_e1 "$M19" "" "all changes" 1 &
wait
grep -H "fit .* avg" "$OUT"/*.log | sed "s|$OUT/||" | tee -a "$log"
