#!/usr/bin/env python3
"""Simple physics baselines that the trained jet taggers must beat (issue 7).

Top tagging: likelihood ratio (LR) of SoftDrop mass and tau3/tau2, built from 2D
histograms of the *_train files; also each variable alone (1D LR).
Quark/gluon: LR of the constituent multiplicity (and the raw score -n for reference).

Every baseline is evaluated on the *_test files: accuracy at LR > 1, ROC AUC (Mann-Whitney U
with average ranks, so ties count one half), background rejection 1/eps_B at signal
efficiency 0.5 and 0.3 (linear interpolation between ROC points), and the number of jets.

Usage:
  python training/baselines.py --data DIR --json training/baselines.json --md training/BASELINES.md
  python training/baselines.py --self-test
"""
import argparse
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NBINS = 40          # bins per axis for continuous variables
PSEUDO = 0.5        # pseudo-count added to every bin so no bin has zero probability
EFFS = (0.5, 0.3)   # signal efficiencies at which background rejection is reported


# ---------------------------------------------------------------- metrics
def average_ranks(x):
    """1-based ranks of x, tied values get the mean of the ranks they span."""
    x = np.asarray(x, dtype=np.float64)
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts            # 0-based first rank of each tie group
    return (starts + (counts + 1) / 2.0)[inv]


def roc_auc(sig, bkg):
    """P(score_sig > score_bkg) + 0.5 P(equal), via the Mann-Whitney U statistic."""
    sig, bkg = np.asarray(sig, float), np.asarray(bkg, float)
    ns, nb = len(sig), len(bkg)
    if ns == 0 or nb == 0:
        raise ValueError("AUC needs at least one signal and one background score")
    r = average_ranks(np.concatenate([sig, bkg]))
    u = r[:ns].sum() - ns * (ns + 1) / 2.0
    return float(u / (ns * nb))


def roc_curve(sig, bkg):
    """(eps_S, eps_B) for every distinct threshold, scanning from high to low score.

    A whole tie group is accepted at once, so the curve has one point per distinct score;
    joining the points linearly equals breaking ties at random.
    """
    s = np.concatenate([sig, bkg]).astype(np.float64)
    y = np.concatenate([np.ones(len(sig)), np.zeros(len(bkg))])
    vals, inv = np.unique(-s, return_inverse=True)        # ascending in -s = descending in s
    ns_g = np.bincount(inv, weights=y, minlength=len(vals))
    nb_g = np.bincount(inv, weights=1 - y, minlength=len(vals))
    tpr = np.concatenate([[0.0], np.cumsum(ns_g) / len(sig)])
    fpr = np.concatenate([[0.0], np.cumsum(nb_g) / len(bkg)])
    return tpr, fpr


def eps_b_at(tpr, fpr, target):
    """Background efficiency at signal efficiency `target`, interpolating the ROC."""
    i = int(np.searchsorted(tpr, target, side="left"))  # first point with tpr >= target
    if tpr[i] == target or i == 0:
        return float(fpr[i])
    t0, t1, f0, f1 = tpr[i - 1], tpr[i], fpr[i - 1], fpr[i]
    return float(f0 + (f1 - f0) * (target - t0) / (t1 - t0))


def evaluate(sig_lr, bkg_lr, accuracy=True):
    """All reported numbers for one baseline given test scores (LR or any monotone score)."""
    tpr, fpr = roc_curve(sig_lr, bkg_lr)
    out = {"n_test": int(len(sig_lr) + len(bkg_lr)),
           "n_sig": int(len(sig_lr)), "n_bkg": int(len(bkg_lr)),
           "auc": roc_auc(sig_lr, bkg_lr),
           "accuracy": None}
    if accuracy:
        correct = np.sum(sig_lr > 1.0) + np.sum(bkg_lr <= 1.0)
        out["accuracy"] = float(correct / out["n_test"])
    for e in EFFS:
        eb = eps_b_at(tpr, fpr, e)
        out[f"eps_b@{e}"] = eb
        out[f"rej@{e}"] = (1.0 / eb) if eb > 0 else None   # None = no background passes
    return out


# ---------------------------------------------------------------- likelihood ratio
class HistLR:
    """LR = p_sig/p_bkg from (1D or 2D) histograms of the training jets.

    `edges` is one array per variable. Values outside the training range are clipped into
    the edge bins so every test jet gets a finite score.
    """

    def __init__(self, edges, sig_train, bkg_train):
        self.edges = edges
        hs = self._hist(sig_train) + PSEUDO
        hb = self._hist(bkg_train) + PSEUDO
        self.lr = (hs / hs.sum()) / (hb / hb.sum())

    def _index(self, cols):
        return tuple(np.clip(np.searchsorted(e, c, side="right") - 1, 0, len(e) - 2)
                     for e, c in zip(self.edges, cols))

    def _hist(self, cols):
        h = np.zeros([len(e) - 1 for e in self.edges])
        np.add.at(h, self._index(cols), 1.0)
        return h

    def __call__(self, cols):
        return self.lr[self._index(cols)]


def uniform_edges(*arrays, nbins=NBINS):
    lo = min(float(a.min()) for a in arrays)
    hi = max(float(a.max()) for a in arrays)
    return np.linspace(lo, hi, nbins + 1)


def integer_edges(*arrays):
    """One bin per integer value (multiplicity is discrete)."""
    lo = int(min(a.min() for a in arrays))
    hi = int(max(a.max() for a in arrays))
    return np.arange(lo, hi + 2) - 0.5


# ---------------------------------------------------------------- data
def load(path, label):
    import uproot
    with uproot.open(path) as f:
        t = f["tree"]
        a = t.arrays(["jet_sdmass", "jet_tau2", "jet_tau3", "jet_nparticles", label],
                     library="np")
    if not np.all(a[label] == 1):
        raise SystemExit(f"{path}: not every jet has {label} = 1")
    tau2 = a["jet_tau2"].astype(np.float64)
    tau32 = np.divide(a["jet_tau3"], tau2, out=np.ones_like(tau2), where=tau2 > 0)
    return {"sdmass": a["jet_sdmass"].astype(np.float64), "tau32": tau32,
            "nparticles": a["jet_nparticles"].astype(np.float64)}


def top_baselines(d):
    sig = {s: load(os.path.join(d, "toptag", f"top_{s}.root"), "label_Tbqq") for s in ("train", "test")}
    bkg = {s: load(os.path.join(d, "toptag", f"qcd_{s}.root"), "label_QCD") for s in ("train", "test")}
    res = {}
    for name, vars_ in [("SoftDrop mass + tau3/tau2 (2D LR)", ["sdmass", "tau32"]),
                        ("SoftDrop mass (1D LR)", ["sdmass"]),
                        ("tau3/tau2 (1D LR)", ["tau32"])]:
        edges = [uniform_edges(sig["train"][v], bkg["train"][v]) for v in vars_]
        lr = HistLR(edges, [sig["train"][v] for v in vars_], [bkg["train"][v] for v in vars_])
        res[name] = evaluate(lr([sig["test"][v] for v in vars_]), lr([bkg["test"][v] for v in vars_]))
    med = {f"median_sdmass_{k}_test": float(np.median(x["test"]["sdmass"])) for k, x in (("top", sig), ("qcd", bkg))}
    return res, med


def qg_baselines(d):
    sig = {s: load(os.path.join(d, "qg", f"quark_{s}.root"), "label_quark") for s in ("train", "test")}
    bkg = {s: load(os.path.join(d, "qg", f"gluon_{s}.root"), "label_gluon") for s in ("train", "test")}
    edges = [integer_edges(sig["train"]["nparticles"], bkg["train"]["nparticles"])]
    lr = HistLR(edges, [sig["train"]["nparticles"]], [bkg["train"]["nparticles"]])
    res = {"constituent multiplicity (1D LR)":
           evaluate(lr([sig["test"]["nparticles"]]), lr([bkg["test"]["nparticles"]])),
           "constituent multiplicity (score = -n)":
           evaluate(-sig["test"]["nparticles"], -bkg["test"]["nparticles"], accuracy=False)}
    med = {f"median_nparticles_{k}_test": float(np.median(x["test"]["nparticles"])) for k, x in (("quark", sig), ("gluon", bkg))}
    return res, med


# ---------------------------------------------------------------- output
def fmt(x, spec):
    return "—" if x is None else format(x, spec)


def markdown(results, command):
    lines = ["# Physics baselines", "",
             "Simple cut-free baselines the trained taggers must beat (issue 7). Each score is a "
             "likelihood ratio p_sig/p_bkg read from histograms of the training files "
             f"({NBINS} uniform bins per continuous variable over the training range, one bin per "
             f"constituent count, pseudo-count {PSEUDO} per bin; test values outside the range go "
             "to the edge bin), evaluated on the test files. Accuracy predicts signal when LR > 1; "
             "AUC is the Mann-Whitney U with ties counted one half; rejection is 1/eps_B at the "
             "given signal efficiency, interpolated linearly along the ROC.", "",
             "Generated by:", "", "```", command, "```", ""]
    for task, title in (("top", "Top tagging (signal: top, background: QCD)"),
                        ("qg", "Quark/gluon (signal: quark, background: gluon)")):
        lines += [f"## {title}", "",
                  "| baseline | accuracy | AUC | 1/eps_B @ eps_S=0.5 | 1/eps_B @ eps_S=0.3 | test jets |",
                  "|---|---|---|---|---|---|"]
        for name, r in results[task]["baselines"].items():
            lines.append(f"| {name} | {fmt(r['accuracy'], '.4f')} | {r['auc']:.4f} | "
                         f"{fmt(r['rej@0.5'], '.1f')} | {fmt(r['rej@0.3'], '.1f')} | {r['n_test']} |")
        lines += ["", ", ".join(f"{k} = {v:.1f}" for k, v in results[task]["medians"].items()), ""]
    return "\n".join(lines)


def self_test():
    assert roc_auc([3, 4, 5], [0, 1, 2]) == 1.0, "perfect separation"
    assert roc_auc([0, 1], [2, 3]) == 0.0, "perfectly inverted"
    assert roc_auc([1, 1, 1], [1, 1]) == 0.5, "all ties"
    assert abs(roc_auc([0.9, 0.4], [0.5, 0.1]) - 0.75) < 1e-12, "hand-worked case"
    assert abs(roc_auc([1, 2], [2, 0]) - 0.625) < 1e-12, "one tie counts half: (0.5+1+1+1)/4"
    np.testing.assert_allclose(average_ranks([10, 20, 20, 30]), [1, 2.5, 2.5, 4])
    # trapezoid area under the tie-grouped ROC must equal the rank AUC
    rng = np.random.default_rng(1)
    s, b = rng.integers(0, 8, 300) + 1.0, rng.integers(0, 6, 200).astype(float)
    tpr, fpr = roc_curve(s, b)
    assert abs(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2) - roc_auc(s, b)) < 1e-12
    # interpolation: sig [0.9,0.4], bkg [0.5,0.1] -> ROC (0,0),(.5,0),(.5,.5),(1,.5),(1,1)
    tpr, fpr = roc_curve([0.9, 0.4], [0.5, 0.1])
    assert eps_b_at(tpr, fpr, 0.5) == 0.0 and abs(eps_b_at(tpr, fpr, 0.75) - 0.5) < 1e-12
    # LR histogram: a bin only signal fills has LR > 1, a bkg-only bin has LR < 1
    lr = HistLR([np.array([0.0, 1.0, 2.0])], [np.array([0.5, 0.5])], [np.array([1.5, 1.5])])
    assert lr([np.array([0.2])])[0] > 1 > lr([np.array([1.7])])[0]
    print("self-test passed")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=os.environ.get("JETTAG_DATA", os.path.join(REPO, "..", "shared", "data")))
    p.add_argument("--json", help="write results as JSON here")
    p.add_argument("--md", help="write the markdown table here")
    p.add_argument("--self-test", action="store_true", help="check the metric code and exit")
    a = p.parse_args()
    if a.self_test:
        self_test()
        return
    if not os.path.isdir(a.data):
        sys.exit(f"data directory not found: {a.data} (set --data or JETTAG_DATA)")
    top, top_med = top_baselines(a.data)
    qg, qg_med = qg_baselines(a.data)
    results = {"top": {"baselines": top, "medians": top_med},
               "qg": {"baselines": qg, "medians": qg_med},
               "settings": {"nbins": NBINS, "pseudo_count": PSEUDO, "signal_efficiencies": list(EFFS)}}
    command = "python training/baselines.py " + " ".join(sys.argv[1:])
    for task in ("top", "qg"):
        for name, r in results[task]["baselines"].items():
            print(f"{task:4s} {name:40s} acc={fmt(r['accuracy'], '.4f')} auc={r['auc']:.4f} "
                  f"rej@0.5={fmt(r['rej@0.5'], '.1f')} rej@0.3={fmt(r['rej@0.3'], '.1f')} n={r['n_test']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"command": command, **results}, f, indent=2)
            f.write("\n")
    if a.md:
        with open(a.md, "w") as f:
            f.write(markdown(results, command))


if __name__ == "__main__":
    main()
