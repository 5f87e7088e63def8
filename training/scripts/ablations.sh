#!/usr/bin/env bash
# The paper's ablations at a budget this machine affords (training/RESULTS.md, "Ablations").
#
# Each variant pre-trains the `small` encoder for one epoch on the same 20,000 unlabelled jets
# (taken jet by jet from all training files of $JETTAG_DATA), then fine-tunes and probes it on
# 2 % of the top-tagging labels (360 jets) and tests it on the 8,000 toptag test jets. Only the
# ablated switch differs between variants; seeds, data and schedules are the same.
#
#   training/scripts/ablations.sh [OUT_DIR]     (default runs/ablations; about 20 minutes on 2 CPU cores)
#
# Finished variants are not run again (delete OUT_DIR/<variant> to redo one). The table goes to
# OUT_DIR/ablations.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-runs/ablations}
DATA=${JETTAG_DATA:-../shared/data}
TRAIN=${JETTAG_TRAIN_BIN:-target/debug/jettag-train}
[[ -x $TRAIN ]] || cargo build -p jettag-train
mkdir -p "$OUT"

declare -A SWITCHES=(
  [default]=""
  [no-pair-bias]="--no-pair-bias"
  [no-registers]="--registers 0"
  [random-masking]="--masking random"
)
VARIANTS=(default no-pair-bias no-registers random-masking)

for v in "${VARIANTS[@]}"; do
  dir=$OUT/$v
  if [[ ! -f $dir/pretrain/encoder.mpk ]]; then
    # shellcheck disable=SC2086
    "$TRAIN" pretrain --data "$DATA/jetclass/*.root" "$DATA/toptag/*_train.root" "$DATA/qg/*_train.root" \
      --config small --epochs 1 --batch 64 --max-jets 20000 --seed 7 --quiet ${SWITCHES[$v]} \
      --out "$dir/pretrain"
  fi
  "$TRAIN" fewshot --init "$dir/pretrain" --train "$DATA/toptag/*_train.root" --test "$DATA/toptag/*_test.root" \
    --labels label_QCD,label_Tbqq --class-names QCD,Top --fractions 0.02 --modes finetuned,frozen \
    --epochs 6 --patience 2 --seed 1 --quiet --out "$dir/fewshot"
done

python3 - "$OUT" "${VARIANTS[@]}" <<'EOF'
import json, sys, pathlib
out, variants = pathlib.Path(sys.argv[1]), sys.argv[2:]
lines = ["| variant | fine-tuned accuracy | fine-tuned AUC | frozen accuracy | frozen AUC | final pre-training loss |",
         "|---|---:|---:|---:|---:|---:|"]
for v in variants:
    rows = {r["mode"]: r for r in json.loads((out / v / "fewshot" / "fewshot.json").read_text())["rows"]}
    last = (out / v / "pretrain" / "metrics.jsonl").read_text().strip().splitlines()[-1]
    cell = lambda m, k: f"{rows[m][k]:.4f}" if m in rows and rows[m][k] is not None else "-"
    lines.append(f"| {v} | {cell('finetuned','accuracy')} | {cell('finetuned','auc')} | "
                 f"{cell('frozen','accuracy')} | {cell('frozen','auc')} | {json.loads(last)['loss']:.4f} |")
(out / "ablations.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
