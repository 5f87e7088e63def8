#!/usr/bin/env python3
"""A plain Python gRPC server for one jettag model: the baseline of `make bench`.

This is what a user would write without jettag: grpcio with a thread pool, the numpy
preprocessing, and one onnxruntime session, one request at a time per thread, no batching across
requests. It implements only `jettag.v1.JetTagger/Tag`, with the same request and response
messages as jettag, so the same load generator measures both.

The preprocessing is the independent numpy reference of DESIGN.md section 3 that the core tests
compare jettag-core against (`core/tests/reference/make_reference.py`); the model's feature
constants and tokenizer parameters come from its `model.toml`. `jettag-loadtest compare`
checks that this server and jettag return the same probabilities.

    .venv/bin/python loadtest/baseline/server.py --model models/hepjepa-top --port 8101
"""
import argparse
import logging
import os
import sys
import tomllib
from concurrent import futures

import grpc
import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "core", "tests", "reference"))
sys.path.insert(0, os.path.join(ROOT, "proto"))

import make_reference as reference  # noqa: E402  (the numpy preprocessing)

# Message classes and service stubs straight from the .proto (grpcio-tools), no generated files.
protos, services = grpc.protos_and_services("jettag/v1/jettag.proto")

N_FEATURES = 7
N_PAIR = 4


def model_version_dir(path):
    """A version directory (holding model.onnx) or a model directory (highest version)."""
    if os.path.isfile(os.path.join(path, "model.onnx")):
        return path
    versions = [int(d) for d in os.listdir(path) if d.isdigit() and os.path.isdir(os.path.join(path, d))]
    if not versions:
        raise SystemExit(f"{path}: neither a model version directory nor a model directory with versions")
    return os.path.join(path, str(max(versions)))


class Model:
    """The model's session and its preprocessing parameters (from model.toml)."""

    def __init__(self, path, providers, intra_threads):
        vdir = model_version_dir(path)
        with open(os.path.join(vdir, "model.toml"), "rb") as f:
            manifest = tomllib.load(f)
        pre = manifest["preprocessing"]
        if pre["feature_set"] != "part-kinematic-v1":
            raise SystemExit(f"{vdir}: feature_set {pre['feature_set']!r} is not part-kinematic-v1")
        feats = pre["features"]
        # The reference reads its feature constants from module globals.
        reference.CENTER = np.array(feats["center"], dtype=np.float32).astype(np.float64)
        reference.SCALE = np.array(feats["scale"], dtype=np.float32).astype(np.float64)
        reference.CLIP = np.array(feats["clip"], dtype=bool)
        self.cfg = dict(k=pre["k"], oversample=pre["oversample"], max_tokens=pre["max_tokens"],
                        max_particles=pre["max_particles"])
        self.max_constituents = pre.get("max_constituents", 4096)
        self.name = manifest["name"]
        self.version = int(manifest["version"])
        self.class_names = list(manifest.get("class_names", []))
        if manifest["task"] != "classifier":
            raise SystemExit(f"{vdir}: task {manifest['task']!r}; this baseline serves classifiers only")
        opts = ort.SessionOptions()
        if intra_threads:
            opts.intra_op_num_threads = intra_threads
        self.session = ort.InferenceSession(os.path.join(vdir, "model.onnx"), opts, providers=providers)

    def collate(self, toks):
        k = self.cfg["k"]
        b = len(toks)
        t = max(len(x["centers"]) for x in toks)
        tokens = np.zeros((b, t, k, N_FEATURES), dtype=np.float32)
        centers = np.zeros((b, t, 2), dtype=np.float32)
        pair = np.zeros((b, N_PAIR, t, t), dtype=np.float32)
        mask = np.zeros((b, t), dtype=bool)
        for i, x in enumerate(toks):
            n = len(x["centers"])
            tokens[i, :n] = x["tokens"]
            centers[i, :n] = x["centers"]
            pair[i, :, :n, :n] = x["pair"]
            mask[i, :n] = True
        return dict(tokens=tokens, centers=centers, pair=pair, token_mask=mask)

    def tag(self, px, py, pz, e, counts):
        offsets = np.concatenate([[0], np.cumsum(counts)])
        toks = [
            reference.tokenize(px[a:b], py[a:b], pz[a:b], e[a:b], self.cfg)
            for a, b in zip(offsets[:-1], offsets[1:])
        ]
        (probs,) = self.session.run(["probs"], self.collate(toks))
        return probs


class Tagger(services.JetTaggerServicer):
    def __init__(self, model):
        self.model = model

    def Tag(self, request, context):
        m = self.model
        if request.model not in ("", m.name) or request.version not in (0, m.version):
            context.abort(grpc.StatusCode.NOT_FOUND, f"model {request.model!r} version {request.version} not served")
        jets = request.jets
        counts = np.asarray(jets.counts, dtype=np.int64)
        arrays = [np.asarray(a, dtype=np.float32) for a in (jets.px, jets.py, jets.pz, jets.energy)]
        total = int(counts.sum())
        if len(counts) == 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "jets.counts is empty")
        if (counts <= 0).any() or (counts > m.max_constituents).any():
            j = int(np.flatnonzero((counts <= 0) | (counts > m.max_constituents))[0])
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"jet {j}: jets.counts[{j}] = {counts[j]} out of range")
        for name, a in zip(("px", "py", "pz", "energy"), arrays):
            if len(a) != total:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"jets.{name} has {len(a)} values, counts sum to {total}")
            if not np.isfinite(a).all():
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"jets.{name} holds a non-finite value")
        probs = m.tag(*arrays, counts)
        return protos.TagResponse(model=m.name, version=m.version, class_names=m.class_names, n_jets=len(counts),
                                  probs=probs.ravel().tolist(), request_id=request.request_id)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=os.path.join(ROOT, "models", "hepjepa-top"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8101, help="0 picks a free port (printed on stdout)")
    p.add_argument("--workers", type=int, default=10, help="gRPC thread pool size (grpcio's examples use 10)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto: CUDA if onnxruntime offers it, else CPU (as jettag)")
    p.add_argument("--intra-threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s baseline %(message)s")

    cuda = args.device == "cuda" or (
        args.device == "auto" and "CUDAExecutionProvider" in ort.get_available_providers())
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
    model = Model(args.model, providers, args.intra_threads)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.workers),
        options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)],
    )
    services.add_JetTaggerServicer_to_server(Tagger(model), server)
    port = server.add_insecure_port(f"{args.host}:{args.port}")
    if port == 0:
        raise SystemExit(f"cannot listen on {args.host}:{args.port}")
    server.start()
    logging.info("serving %s v%d on %s:%d (%s, %d workers)", model.name, model.version, args.host, port,
                 model.session.get_providers()[0], args.workers)
    # The chosen port on stdout, for callers that passed --port 0.
    print(f"listening {args.host}:{port}", flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(grace=1.0)


if __name__ == "__main__":
    main()
