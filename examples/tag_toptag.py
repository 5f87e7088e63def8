#!/usr/bin/env python3
"""Tags the top-tagging test set with a running jettag server and prints the accuracy.

    make serve                                   # in one terminal (gRPC on localhost:8001)
    .venv/bin/python examples/tag_toptag.py      # in another

Reads ../shared/data/toptag/{top_test,qcd_test}.root with uproot, sends the jets to the server's
`Tag` method in columnar form (counts + flat px, py, pz, energy, in GeV: the layout awkward
arrays already have), and compares the most probable class with the truth labels. The label
branches come from the model's own metadata (model.toml [training] labels), so the class order
always matches the model's.

The Python gRPC stubs are generated at run time from proto/jettag/v1/jettag.proto with
grpcio-tools, so there is nothing to regenerate when the proto changes.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time
import tomllib

import awkward as ak
import grpc
import numpy as np
import uproot

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_stubs():
    """Compiles the proto into a temporary directory and imports the generated modules."""
    import grpc_tools
    from grpc_tools import protoc

    out = pathlib.Path(tempfile.mkdtemp(prefix="jettag-stubs-"))
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    rc = protoc.main([
        "grpc_tools.protoc",
        f"-I{ROOT / 'proto'}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        str(ROOT / "proto/jettag/v1/jettag.proto"),
    ])
    if rc != 0:
        sys.exit(f"protoc failed on {ROOT / 'proto/jettag/v1/jettag.proto'}")
    sys.path.insert(0, str(out))
    from jettag.v1 import jettag_pb2, jettag_pb2_grpc  # noqa: E402

    return jettag_pb2, jettag_pb2_grpc


def read_jets(path: pathlib.Path, label_branches: list[str], limit: int | None):
    """Constituents (jagged) and class indices (argmax over the label branches)."""
    tree = uproot.open(path)["tree"]
    stop = limit if limit else None
    arrays = tree.arrays(["part_px", "part_py", "part_pz", "part_energy", *label_branches], entry_stop=stop)
    labels = np.stack([ak.to_numpy(arrays[b]).astype(np.float64) for b in label_branches], axis=1)
    return arrays, labels.argmax(axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", default="localhost:8001", help="gRPC address (default %(default)s)")
    ap.add_argument("--model", default="hepjepa-top", help="model name (default %(default)s)")
    ap.add_argument("--data", default=str(ROOT / "../shared/data/toptag"), help="folder with top_test.root and qcd_test.root")
    ap.add_argument("--batch", type=int, default=256, help="jets per request (default %(default)s)")
    ap.add_argument("--limit", type=int, default=0, help="jets per file (default: all)")
    ap.add_argument("--timeout", type=float, default=30.0, help="deadline per request, seconds")
    args = ap.parse_args()

    pb, pb_grpc = load_stubs()
    channel = grpc.insecure_channel(args.server, options=[("grpc.max_receive_message_length", 64 << 20)])
    stub = pb_grpc.JetTaggerStub(channel)
    info = stub.GetModel(pb.GetModelRequest(name=args.model), timeout=args.timeout)
    label_branches = tomllib.loads(info.training).get("labels")
    if not label_branches:
        sys.exit(f"model {info.name} has no [training] labels in its model.toml; cannot score it")
    print(f"model {info.name} v{info.version} ({info.task}, {info.device}): classes {list(info.class_names)}")
    if "UNTRAINED" in info.description:
        print("note: this is the untrained placeholder model; expect chance-level accuracy")

    correct = total = 0
    started = time.perf_counter()
    for name in ["top_test.root", "qcd_test.root"]:
        path = pathlib.Path(args.data) / name
        jets, truth = read_jets(path, label_branches, args.limit)
        for lo in range(0, len(truth), args.batch):
            part = jets[lo : lo + args.batch]
            request = pb.TagRequest(
                model=args.model,
                jets=pb.Jets(
                    counts=ak.to_numpy(ak.num(part["part_px"])).astype(np.uint32),
                    px=ak.to_numpy(ak.flatten(part["part_px"])),
                    py=ak.to_numpy(ak.flatten(part["part_py"])),
                    pz=ak.to_numpy(ak.flatten(part["part_pz"])),
                    energy=ak.to_numpy(ak.flatten(part["part_energy"])),
                ),
            )
            reply = stub.Tag(request, timeout=args.timeout)
            probs = np.asarray(reply.probs, dtype=np.float32).reshape(reply.n_jets, len(reply.class_names))
            correct += int((probs.argmax(axis=1) == truth[lo : lo + args.batch]).sum())
            total += reply.n_jets
        print(f"{name}: {len(truth)} jets")
    seconds = time.perf_counter() - started
    print(f"accuracy {correct / total:.4f} on {total} jets ({total / seconds:.0f} jets/s including reading)")


if __name__ == "__main__":
    main()
