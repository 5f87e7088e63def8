#!/usr/bin/env bash
# How the default models in models/ were made (issue 7), step by step; re-running it reproduces
# them (the CPU backend is deterministic for fixed seeds). About 75 minutes on 2 CPU cores.
#
#   training/scripts/train_default_models.sh            # everything, into runs/ and models/
#   STEPS="export cards" training/scripts/train_default_models.sh   # only some steps
#
# Steps: pretrain, fewshot-top, fewshot-qg, eval, export, cards. Finished fine-tuning runs are
# not repeated (fewshot keeps each run's report.json). For a GPU: build with
# `cargo build -p jettag-train --features cuda` and add `--device cuda` to each training command.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${JETTAG_DATA:-../shared/data}
TRAIN=${JETTAG_TRAIN_BIN:-target/debug/jettag-train}
STEPS=${STEPS:-pretrain fewshot-top fewshot-qg eval export cards}
[[ -x $TRAIN ]] || cargo build -p jettag-train
PY=${PY:-.venv/bin/python}
[[ -x $PY ]] || PY=python3
want() { [[ " $STEPS " == *" $1 "* ]]; }

PRE=runs/pretrain-small
TOP=runs/fewshot-top
QG=runs/fewshot-qg

if want pretrain; then
  # Every training file of the data set, labels unused; the test files are never seen.
  "$TRAIN" pretrain --data "$DATA/jetclass/*.root" "$DATA/toptag/*_train.root" "$DATA/qg/*_train.root" \
    --config small --epochs 2 --batch 64 --seed 1 --out $PRE
fi

if want fewshot-top; then
  # Fine-tuned, frozen and from-scratch runs at five label fractions; 10 % of the training
  # jets are held out for validation and early stopping. The 100 % fine-tuned run is the
  # shipped hepjepa-top.
  "$TRAIN" fewshot --init $PRE --train "$DATA/toptag/*_train.root" --test "$DATA/toptag/*_test.root" \
    --labels label_QCD,label_Tbqq --class-names QCD,Top --fractions 0.0005,0.005,0.02,0.1,1 \
    --epochs 6 --patience 2 --seed 1 --quiet --out $TOP
fi

if want fewshot-qg; then
  # Quark is the signal (second class), as in training/BASELINES.md.
  "$TRAIN" fewshot --init $PRE --train "$DATA/qg/*_train.root" --test "$DATA/qg/*_test.root" \
    --labels label_gluon,label_quark --class-names Gluon,Quark --fractions 0.02,1 \
    --epochs 6 --patience 2 --seed 1 --quiet --out $QG
fi

if want eval; then
  # Evaluated again from the saved weights (writes last_eval.json, which export puts into
  # model.toml), and the pre-trained encoder through a linear probe on top tagging.
  "$TRAIN" eval --model $TOP/frac-1/finetuned --data "$DATA/toptag/qcd_test.root" "$DATA/toptag/top_test.root" \
    --labels label_QCD,label_Tbqq --out $TOP/frac-1/finetuned/eval_test.json
  "$TRAIN" eval --model $QG/frac-1/finetuned --data "$DATA/qg/gluon_test.root" "$DATA/qg/quark_test.root" \
    --labels label_gluon,label_quark --out $QG/frac-1/finetuned/eval_test.json
  "$TRAIN" eval --model $PRE --probe --probe-train "$DATA/toptag/*_train.root" \
    --data "$DATA/toptag/qcd_test.root" "$DATA/toptag/top_test.root" --labels label_QCD,label_Tbqq \
    --out $PRE/probe_top.json
fi

if want export; then
  "$TRAIN" export --force --model $TOP/frac-1/finetuned --out models/hepjepa-top/1 --name hepjepa-top --version 1 \
    --description "HEP-JEPA top tagger (small config): pre-trained self-supervised on 70k simulated jets, fine-tuned on 18k top/QCD jets (R=0.8, 550-650 GeV)."
  "$TRAIN" export --force --model $QG/frac-1/finetuned --out models/hepjepa-qg/1 --name hepjepa-qg --version 1 \
    --description "HEP-JEPA quark/gluon tagger (small config): pre-trained self-supervised on 70k simulated jets, fine-tuned on 18k Z+jet quark/gluon jets (R=0.4, 500-550 GeV)."
  "$TRAIN" export --force --model $PRE --out models/hepjepa-encoder/1 --name hepjepa-encoder --version 1 \
    --description "HEP-JEPA jet encoder (small config, embeddings only): self-supervised pre-training on 70k simulated jets of the JetClass, top-tagging and quark/gluon sets."
fi

if want cards; then
  # Each card's "Reproduce" section names the steps of this script that made the model.
  cmds=$(mktemp)
  reproduce() {
    cat > "$cmds" <<EOT
# from the repository root, with the data set in ../shared/data (or JETTAG_DATA=...):
make venv && cargo build -p jettag-train
STEPS="$1" training/scripts/train_default_models.sh
# then check the model through the server and offline tagging:
make test   # tests/shipped_models.rs
EOT
  }
  reproduce "pretrain fewshot-top eval export cards"
  $PY training/scripts/model_card.py --task top --model models/hepjepa-top/1 \
    --report $TOP/frac-1/finetuned/eval_test.json --pretrain $PRE --finetune $TOP/frac-1/finetuned \
    --compare "same architecture from scratch=$TOP/frac-1/scratch/report.json" \
    --compare "pre-trained encoder frozen, head only=$TOP/frac-1/frozen/report.json" --reproduce "$cmds"
  reproduce "pretrain fewshot-qg eval export cards"
  $PY training/scripts/model_card.py --task qg --model models/hepjepa-qg/1 \
    --report $QG/frac-1/finetuned/eval_test.json --pretrain $PRE --finetune $QG/frac-1/finetuned \
    --compare "same architecture from scratch=$QG/frac-1/scratch/report.json" \
    --compare "pre-trained encoder frozen, head only=$QG/frac-1/frozen/report.json" --reproduce "$cmds"
  reproduce "pretrain eval export cards"
  $PY training/scripts/model_card.py --task encoder --model models/hepjepa-encoder/1 \
    --report $PRE/probe_top.json --pretrain $PRE --reproduce "$cmds"
  rm -f "$cmds"
fi
