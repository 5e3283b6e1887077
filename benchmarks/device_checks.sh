#!/usr/bin/env bash
# The checks that need a GPU, in one call on a lent machine (issues 4 and 6), with a time budget:
#   1. sequence training / inference throughput of the 19m and 126m presets in bf16, alone on the card;
#   2. the sequence objective ablation (full mode, 3 runs, beside baseline), then quick-vs-full's
#      full half (7 entries of known quality, 3 runs each);
#   3. full mode on the medium world, alone on the card: time and fraction of the float32 peak.
# Logs and JSON go to $OUT (default /tmp/device-checks). Worlds are generated on the machine.
#   BUDGET_S=560 bash benchmarks/device_checks.sh
# A dry run on a CPU: SMALL=tiny MEDIUM=tiny DEVICE=cpu PRESETS=tiny MODE=quick SEQ_SET=epochs=0.2 bash ...
set -u
OUT=${OUT:-/tmp/device-checks}
WORK=${WORK:-/tmp/device-work}
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
start=$(date +%s)
budget=${BUDGET_S:-560}
left() { echo $((start + budget - $(date +%s))); }
ubp() { python -m ubp.cli "$@"; }
SMALL=${SMALL:-small} MEDIUM=${MEDIUM:-medium} DEVICE=${DEVICE:-cuda} PRESETS=${PRESETS:-19m 126m}
MODE=${MODE:-full} SEQ_SET=${SEQ_SET:-epochs=1}

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python -c "import torch, polars, numpy; print('torch', torch.__version__, 'polars', polars.__version__, 'numpy', numpy.__version__)"
} > "$OUT/setup.log" 2>&1

(ubp synth --out "$WORK/small" --scale "$SMALL" --seed 1 && ubp split --data-dir "$WORK/small") > "$WORK/small.log" 2>&1 &
small=$!
(ubp synth --out "$WORK/medium" --scale "$MEDIUM" --seed 1 && ubp split --data-dir "$WORK/medium" \
  && ubp embed --data-dir "$WORK/medium" --blocks oracle --out "$WORK/medium_oracle" --device cpu) > "$WORK/medium.log" 2>&1 &
medium=$!

# the sequence trainer never waits for the card (set_sync_debug_mode("error") over training steps)
timeout 120 python -m pytest -q tests/test_sequence_sync_free.py -k gpu > "$OUT/sync_free.log" 2>&1 \
  || echo "sync-free test: exit $?" >> "$OUT/sync_free.log"

for preset in $PRESETS; do
  timeout 75 python benchmarks/bench_sequence.py --device "$DEVICE" --presets "$preset" --users 4000 --max-events 512 \
    >> "$OUT/bench_sequence.log" 2>&1 || echo "bench_sequence $preset: exit $?" >> "$OUT/bench_sequence.log"
done

wait $small; echo "small world: exit $? at $(( $(date +%s) - start ))s" >> "$OUT/setup.log"
# one training per process: 6 at once on the card made each too slow to finish (measured on an H200)
timeout $(( $(left) - 240 )) python benchmarks/sequence_ablation.py --data-dir "$WORK/small" --out "$WORK/seqab" \
  --device "$DEVICE" --set "$SEQ_SET" --mode "$MODE" --orders 3 --jobs 3 > "$OUT/sequence_ablation.log" 2>&1
echo "ablation: exit $? at $(( $(date +%s) - start ))s" >> "$OUT/setup.log"
timeout $(( $(left) - 120 )) python benchmarks/quick_vs_full.py --data-dir "$WORK/small" --blocks baseline \
  --modes "$MODE" --orders-full 3 --orders-quick 3 --device "$DEVICE" --jobs 3 --out "$WORK/qvf" \
  > "$OUT/quick_vs_full.log" 2>&1
echo "quick_vs_full: exit $? at $(( $(date +%s) - start ))s" >> "$OUT/setup.log"
cp "$WORK/seqab/ablation.json" "$WORK/qvf/quick_vs_full.json" "$OUT/" 2>/dev/null

wait $medium; echo "medium world: exit $? at $(( $(date +%s) - start ))s" >> "$OUT/setup.log"
tail -5 "$WORK/medium.log" >> "$OUT/setup.log"
timeout $(( $(left) > 10 ? $(left) : 10 )) python benchmarks/bench_evaluate.py --data-dir "$WORK/medium" \
  --entry "$WORK/medium_oracle" --device "$DEVICE" --skip-organisers --skip-quick > "$OUT/bench_evaluate_medium.log" 2>&1
echo "medium full mode: exit $? at $(( $(date +%s) - start ))s" >> "$OUT/setup.log"
tail -n 40 "$OUT"/*.log
