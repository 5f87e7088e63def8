#!/usr/bin/env python3
"""Writes MODEL_CARD.md (and roc.png) for a model exported into the model repository.

Every number comes from the files the training commands wrote, so the card cannot drift from
model.toml: the manifest's [metrics] (from `jettag-train eval`), the eval report (ROC plot,
data), the pre-training and fine-tuning run directories (config.json, summary.json), and the
physics baselines of training/baselines.json. tests/shipped_models.rs checks that the card
quotes the manifest's accuracy and AUC and that the server reproduces them.

    python3 training/scripts/model_card.py --model models/hepjepa-top/1 --report R.json \
        --pretrain runs/pretrain-small --finetune RUN_DIR --baselines training/baselines.json \
        --task top --compare "from scratch=OTHER_REPORT.json" --reproduce COMMANDS.sh
"""
import argparse
import json
import pathlib
import platform
import shutil
import tomllib


def load_json(path):
    return json.loads(pathlib.Path(path).read_text())


def cpu_model():
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def fmt_rej(v):
    return "∞" if v is None else f"{v:.1f}"


def encoder_line(model):
    e = model["encoder"]
    return (f"`{model['name']}`: D {e['d_model']}, {e['n_layers']} pre-LN blocks, {e['n_heads']} heads, "
            f"MLP ratio {e['mlp_ratio']}, PointNet hidden {e['tokenizer_hidden']}, {e['n_registers']} register tokens, "
            f"pair bias {'on' if e['pair_bias'] else 'off'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="version directory: models/NAME/VERSION")
    ap.add_argument("--report", required=True, help="eval report.json whose metrics model.toml holds")
    ap.add_argument("--pretrain", required=True, help="pre-training run directory")
    ap.add_argument("--finetune", help="fine-tuning run directory (classifiers)")
    ap.add_argument("--baselines", default="training/baselines.json")
    ap.add_argument("--task", choices=["top", "qg", "encoder"], required=True)
    ap.add_argument("--compare", action="append", default=[], help="LABEL=report.json: more rows for the metrics table")
    ap.add_argument("--reproduce", required=True, help="file with the commands that made the model")
    args = ap.parse_args()

    vdir = pathlib.Path(args.model)
    manifest = tomllib.loads((vdir / "model.toml").read_text())
    report = load_json(args.report)
    pre_cfg = load_json(pathlib.Path(args.pretrain) / "config.json")
    pre_sum = load_json(pathlib.Path(args.pretrain) / "summary.json")
    ft_cfg = ft_sum = None
    if args.finetune:
        ft_cfg = load_json(pathlib.Path(args.finetune) / "config.json")
        ft_sum = load_json(pathlib.Path(args.finetune) / "summary.json")
    m = manifest["metrics"]
    name, version = manifest["name"], manifest["version"]

    roc_src = pathlib.Path(report["roc_png"])
    if roc_src.is_file():
        shutil.copyfile(roc_src, vdir / "roc.png")

    out = []
    w = out.append
    title = {"top": "top-quark tagger (top vs QCD)", "qg": "quark/gluon tagger", "encoder": "jet encoder (embeddings)"}[args.task]
    w(f"# {name} v{version}: HEP-JEPA {title}\n")
    w(f"{manifest['description']}\n")
    w("Written by `training/scripts/model_card.py` from the training runs' own files; the numbers are the "
      "ones in `model.toml` `[metrics]`. `tests/shipped_models.rs` re-computes them through `jettag tag` and "
      "through the gRPC server (ONNX Runtime) on every `make test` where the data set is present.\n")

    w("## Model\n")
    w(f"- Architecture: HEP-JEPA encoder {encoder_line(pre_cfg['model'])} "
      f"({pre_sum['encoder_params']:,} encoder parameters).")
    if args.task == "encoder":
        w(f"- Output: `embedding` [B, {manifest['embedding_dim']}], the mean over real tokens (registers and padding "
          "excluded) of the pre-trained (EMA target) encoder's last-layer token outputs. No `probs`.")
    else:
        w(f"- Outputs: `probs` [B, {len(manifest['class_names'])}] over classes {manifest['class_names']} "
          f"(signal: `{manifest['class_names'][1]}`), and `embedding` [B, {manifest['embedding_dim']}].")
    t = pre_cfg["tokenizer"]
    w(f"- Inputs (DESIGN.md section 4): `tokens` [B, T, {t['k']}, 7], `centers` [B, T, 2], `pair` [B, 4, T, T], "
      f"`token_mask` [B, T]; tokenizer k = {t['k']}, oversample = {t['oversample']}, max_tokens = {t['max_tokens']}, "
      f"max_particles = {t['max_particles']}.")
    w(f"- `model.onnx`: {(vdir / 'model.onnx').stat().st_size / 1e6:.2f} MB, opset 17, dynamic batch and token axes.\n")

    w("## Data\n")
    tr = pre_cfg["training"]
    w(f"- Self-supervised pre-training (labels unused): {len(tr['data'])} files, {pre_sum['epochs']} epochs, "
      f"{pre_sum['jets_seen']:,} jets seen ({pre_sum['steps']:,} steps of {tr['batch_size']}): the JetClass-schema "
      "training files of `../shared/data` "
      "(`jetclass/*.root`, `toptag/*_train.root`, `qg/*_train.root`; the test files are never seen).")
    if ft_cfg:
        d = ft_cfg["data"]
        init = ft_cfg["init"]
        how = "frozen backbone, head only" if ft_cfg["freeze_backbone"] else "full fine-tuning"
        w(f"- Fine-tuning ({how}, initialised from the pre-trained encoder `{init.get('dir', init['kind'])}`): "
          f"{', '.join(f'`{f}`' for f in d['train'])}; {ft_sum['n_train']:,} labelled jets "
          f"({d['label_fraction'] * 100:g} % of {d['n_available']:,}), {ft_sum['n_val']:,} held out for validation "
          f"and early stopping; labels {ft_cfg['labels']}.")
    w(f"- Test: {', '.join(f'`{f}`' for f in report['data'])}: {report['n_jets']:,} jets "
      f"({', '.join(f'{n:,} {c}' for n, c in zip(report['class_counts'], report['class_names']))}).")
    w("- All jets are generator-level simulation (Pythia 8.317 + FastJet anti-kT, see `../shared/data/README.md`).\n")

    w("## Training time and hardware\n")
    cpu = cpu_model()
    w(f"- Pre-training: {pre_sum['seconds'] / 60:.1f} min, {pre_sum['jets_per_second']:.0f} jets/s.")
    if ft_sum:
        w(f"- Fine-tuning: {ft_sum['seconds'] / 60:.1f} min, {ft_sum['epochs_run']} epochs "
          f"(best {ft_sum['best_epoch']}{', stopped early' if ft_sum['stopped_early'] else ''}), "
          f"{ft_sum['jets_per_second']:.0f} jets/s.")
    w(f"- Hardware: {cpu}, 2 cores, no GPU; burn 0.21 CPU backend (`flex`), debug-profile binary with "
      "optimised dependencies (`target/debug/jettag-train`). Times are wall-clock while other training runs "
      "shared the two cores.\n")

    w("## Metrics on the test files\n")
    if args.task == "encoder":
        p = report.get("probe") or {}
        w(f"A linear probe ({p.get('settings', {}).get('epochs', '?')} epochs on the frozen embedding of the top-tagging training jets) "
          "measures how much of the top-vs-QCD information the embedding holds:\n")
    w("| model | accuracy | ROC AUC | 1/ε_B at ε_S = 0.5 | 1/ε_B at ε_S = 0.3 |")
    w("|---|---:|---:|---:|---:|")
    row = f"{name} + linear probe" if args.task == "encoder" else name
    w(f"| **{row}** | **{m['accuracy']:.4f}** | **{m['roc_auc']:.4f}** | "
      f"{fmt_rej(m.get('rejection_at_eff_s_0_5'))} | {fmt_rej(m.get('rejection_at_eff_s_0_3'))} |")
    for item in args.compare:
        label, path = item.split("=", 1)
        r = load_json(path)
        b = r["binary"]
        w(f"| {label} | {r['accuracy']:.4f} | {b['auc']:.4f} | {fmt_rej(b['rejection_at_eff_s_0_5'])} | "
          f"{fmt_rej(b['rejection_at_eff_s_0_3'])} |")
    base = load_json(args.baselines)["qg" if args.task == "qg" else "top"]["baselines"]
    for bname, b in base.items():
        acc = f"{b['accuracy']:.4f}" if "accuracy" in b and "score = -n" not in bname else "—"
        w(f"| baseline: {bname} | {acc} | {b['auc']:.4f} | {fmt_rej(b['rej@0.5'])} | {fmt_rej(b['rej@0.3'])} |")
    w("\nBaselines: `training/BASELINES.md` (likelihood ratios from training-file histograms). "
      "Rejection is 1/ε_B read off the ROC curve by linear interpolation.\n")
    if (vdir / "roc.png").is_file():
        w("![ROC curve](roc.png)\n")

    w("## Limitations\n")
    w("- Generator-level simulation only: no detector response, no pile-up, no track impact parameters "
      "(the `part_d0*`/`part_dz*` branches are zero); constituent multiplicities are higher than in the public "
      "JetClass and top-tagging sets. Expect a domain shift on detector-level or real data: re-fine-tune there.")
    w("- Kinematic features only (ParT's 7 `part-kinematic-v1` features); particle identification and charge are "
      "not inputs.")
    if args.task == "top":
        w("- Trained on R = 0.8 jets with 550 < pT < 650 GeV, |η| < 2; outside that window the scores are uncalibrated.")
    elif args.task == "qg":
        w("- Trained on R = 0.4 jets with 500 < pT < 550 GeV, |η| < 1.7 from Z+jet; quark/gluon fractions and "
          "their definition (hard-process parton) are generator-specific.")
    else:
        w("- Pre-trained on a few tens of thousands of jets on a CPU, far less than the paper's 100 M JetClass "
          "jets on GPUs; a foundation model in form, not yet in scale.")
    w(f"- The `small` configuration, not the paper's: see `training/RESULTS.md` for why and what it costs.\n")

    w("## Reproduce\n")
    w("```sh")
    w(pathlib.Path(args.reproduce).read_text().strip())
    w("```")
    (vdir / "MODEL_CARD.md").write_text("\n".join(out) + "\n")
    print(f"wrote {vdir / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    main()
