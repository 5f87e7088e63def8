#!/usr/bin/env python3
"""Independent numpy reference for jettag-core preprocessing (DESIGN.md section 3).

Written from the DESIGN.md formulas, not from the Rust code, and writes
`core/tests/reference/reference.json`, which `core/tests/reference.rs` compares against
`jettag_core::tokenize`. Run from the workspace root:

    .venv/bin/python core/tests/reference/make_reference.py

Conventions shared with the Rust implementation (they are part of the contract):
  * inputs are float32, everything is computed in float64;
  * jet axis = four-vector sum of all constituents; eta = asinh(pz/pT), phi = atan2(py, px);
  * dphi wrapping into [-pi, pi) leaves in-range values untouched;
  * FPS / kNN / sequencer compare squared distances in the raw (deta, dphi) plane, dphi
    difference wrapped, ties to the lower index;
  * rapidity factors (E +- pz) are floored at 1e-20, pair values at 1e-8 before the log.
"""
import json
import math
import os

import numpy as np
import uproot

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "../../.."))
FIXTURES = os.path.join(ROOT, "tests/fixtures")

CENTER = np.array([0.0, 0.0, 1.7, 2.0, -4.7, -4.7, 0.2], dtype=np.float32).astype(np.float64)
SCALE = np.array([1.0, 1.0, 0.7, 0.7, 0.7, 0.7, 4.0], dtype=np.float32).astype(np.float64)
CLIP = np.array([False, False, True, True, True, True, True])

DEFAULT = dict(k=8, oversample=2.0, max_tokens=32, max_particles=128)
CASES = [
    # (fixture, jet index, config overrides)
    ("toptag_small.root", 0, {}),
    ("toptag_small.root", 1, {}),
    ("toptag_small.root", 57, {}),
    ("toptag_small.root", 100, {}),  # first QCD jet
    ("toptag_small.root", 163, {}),
    ("jetclass_small.root", 45, {}),
    ("qg_small.root", 150, {}),
    # truncation and a different k / oversample
    ("toptag_small.root", 2, dict(k=4, oversample=1.5, max_tokens=6, max_particles=20)),
    ("jetclass_small.root", 170, dict(k=16, oversample=3.0, max_tokens=10, max_particles=64)),
    ("toptag_small.root", 122, dict(max_particles=100)),  # 111 constituents, 100 kept
    ("toptag_small.root", 122, dict(oversample=3.0)),  # ceil(3 * 111 / 8) = 42 > max_tokens
    # fewer kept particles than k: groups repeat their members cyclically
    ("qg_small.root", 7, dict(k=8, oversample=2.0, max_tokens=32, max_particles=5)),
    ("toptag_small.root", 120, dict(k=8, oversample=1.0, max_tokens=32, max_particles=3)),
]


def wrap(x):
    x = np.asarray(x, dtype=np.float64)
    inside = (x >= -math.pi) & (x < math.pi)
    w = np.mod(x + math.pi, 2 * math.pi) - math.pi
    w = np.where(w >= math.pi, w - 2 * math.pi, w)
    return np.where(inside, x, w)


def dist2(points, c):
    """Squared (deta, dphi) distances from every point to point c."""
    de = points[:, 0] - c[0]
    dp = wrap(points[:, 1] - c[1])
    return de * de + dp * dp


def features(px, py, pz, e, max_particles):
    px, py, pz, e = (np.asarray(a, dtype=np.float32).astype(np.float64) for a in (px, py, pz, e))
    jpx, jpy, jpz, je = px.sum(), py.sum(), pz.sum(), e.sum()
    jpt = math.sqrt(jpx * jpx + jpy * jpy)
    jeta = math.asinh(jpz / jpt)
    jphi = math.atan2(jpy, jpx)
    sign = -1.0 if jeta < 0 else 1.0
    pt = np.sqrt(px * px + py * py)
    order = np.argsort(-pt, kind="stable")[:max_particles]
    px, py, pz, e, pt = px[order], py[order], pz[order], e[order], pt[order]
    deta = (np.arcsinh(pz / pt) - jeta) * sign
    dphi = wrap(np.arctan2(py, px) - jphi)
    raw = np.stack([deta, dphi, np.log(pt), np.log(e), np.log(pt / jpt), np.log(e / je), np.hypot(deta, dphi)], axis=1)
    scaled = (raw - CENTER) * SCALE
    scaled[:, CLIP] = np.clip(scaled[:, CLIP], -5, 5)
    return scaled, np.stack([deta, dphi], axis=1), np.stack([px, py, pz, e], axis=1)


def n_tokens(n, cfg):
    t = math.ceil(np.float64(np.float32(cfg["oversample"])) * n / cfg["k"])
    return max(1, min(t, cfg["max_tokens"], n))


def fps(points, m):
    chosen = [0]
    mind = dist2(points, points[0])
    mind[0] = -1.0
    while len(chosen) < m:
        nxt = int(np.argmax(mind))  # first maximum: lowest index
        chosen.append(nxt)
        mind = np.minimum(mind, dist2(points, points[nxt]))
        mind[chosen] = -1.0
    return chosen


def knn(points, c, k):
    d = dist2(points, points[c])
    d[c] = -1.0  # the centre first
    idx = np.lexsort((np.arange(len(points)), d))[:k]  # by distance, then index
    return [int(idx[j % len(idx)]) for j in range(k)]


def sequencer(points, centres):
    order = [0]
    visited = np.zeros(len(centres), dtype=bool)
    visited[0] = True
    cpts = points[centres]
    while len(order) < len(centres):
        d = dist2(cpts, cpts[order[-1]])
        d[visited] = np.inf
        nxt = int(np.argmin(d))
        visited[nxt] = True
        order.append(nxt)
    return order


def pair(p4):
    px, py, pz, e = p4.T
    pt = np.sqrt(px * px + py * py)
    y = 0.5 * np.log(np.maximum(e + pz, 1e-20) / np.maximum(e - pz, 1e-20))
    phi = np.arctan2(py, px)
    dy = y[:, None] - y[None, :]
    dphi = wrap(phi[:, None] - phi[None, :])
    delta = np.sqrt(dy * dy + dphi * dphi)
    ptmin = np.minimum(pt[:, None], pt[None, :])
    kt = ptmin * delta
    z = ptmin / (pt[:, None] + pt[None, :])
    s = p4[:, None, :] + p4[None, :, :]
    m2 = s[..., 3] ** 2 - (s[..., 0] ** 2 + s[..., 1] ** 2 + s[..., 2] ** 2)
    return np.stack([np.log(np.maximum(v, 1e-8)) for v in (kt, z, delta, m2)])


def tokenize(px, py, pz, e, cfg):
    feats, points, p4 = features(px, py, pz, e, cfg["max_particles"])
    n, k = len(points), cfg["k"]
    centres = fps(points, n_tokens(n, cfg))
    order = sequencer(points, centres)
    token_particles, tokens, centers, group_p4 = [], [], [], []
    for j in order:
        c = centres[j]
        members = knn(points, c, k)
        rows = feats[members].copy()
        rows[:, 0] = points[members, 0] - points[c, 0]
        rows[:, 1] = wrap(points[members, 1] - points[c, 1])
        token_particles.append(members)
        tokens.append(rows)
        centers.append(points[c])
        group_p4.append(p4[list(dict.fromkeys(members))].sum(axis=0))  # unique members
    return dict(
        n_constituents=len(px),
        features=feats,
        token_particles=token_particles,
        tokens=np.array(tokens),
        centers=np.array(centers),
        group_p4=np.array(group_p4),
        pair=pair(np.array(group_p4)),
    )


def rounded(a):
    return [float(f"{v:.9g}") for v in np.asarray(a, dtype=np.float64).ravel()]


def main():
    out = []
    for fixture, jet, overrides in CASES:
        cfg = dict(DEFAULT, **overrides)
        arrays = uproot.open(os.path.join(FIXTURES, fixture))["tree"].arrays(
            ["part_px", "part_py", "part_pz", "part_energy"], entry_start=jet, entry_stop=jet + 1, library="np"
        )
        px, py, pz, e = (arrays[b][0] for b in ("part_px", "part_py", "part_pz", "part_energy"))
        r = tokenize(px, py, pz, e, cfg)
        t = len(r["centers"])
        out.append(
            dict(
                fixture=fixture,
                jet=jet,
                config=cfg,
                n_constituents=r["n_constituents"],
                n_kept=len(r["features"]),
                n_tokens=t,
                features=rounded(r["features"]),
                token_particles=r["token_particles"],
                tokens=rounded(r["tokens"]),
                centers=rounded(r["centers"]),
                group_p4=rounded(r["group_p4"]),
                pair=rounded(r["pair"]),
            )
        )
        print(f"{fixture}[{jet}] {cfg}: n={r['n_constituents']} kept={len(r['features'])} T={t}")
    with open(os.path.join(HERE, "reference.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
