#!/usr/bin/env python3
"""`make bench`: measures the jettag server against its two baselines and writes BENCHMARKS.md.

Every figure is measured in this run on this machine (DESIGN.md section 7):
  1. the direct baseline: the model in-process through ONNX Runtime at batch 1, 16, 64, 256
     (`jettag-loadtest direct`), with and without preprocessing;
  2. jettag and the plain Python gRPC server (loadtest/baseline/server.py) on loopback, each
     under 64-jet requests in closed loop at concurrency 1, 4, 16, 64 and single-jet requests in
     open loop at rising rates until p99 exceeds 50 ms;
  3. derived: each server's saturation rate (the most single-jet requests per second it
     delivered in the sweep), its p99 at half that rate, and both servers at the same rate.

The servers run one at a time for load (the other one idle), and the generator shares the
machine with them: on a small machine the figures include the generator's own CPU use.

    .venv/bin/python loadtest/bench.py --jettag target/release/jettag \
        --loadtest target/release/jettag-loadtest [--quick]
"""
import argparse
import datetime
import json
import os
import platform
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
STOP_P99_MS = 50.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=ROOT).stdout.strip()
    except OSError:
        return ""


class Bench:
    def __init__(self, args):
        self.args = args
        self.out_dir = os.path.abspath(args.work_dir)
        os.makedirs(self.out_dir, exist_ok=True)
        self.procs = []
        self.commands = {}

    # ---- processes -------------------------------------------------------------------------

    def loadtest(self, key, argv):
        """Runs a jettag-loadtest command; returns its JSON output and records the command."""
        json_path = os.path.join(self.out_dir, f"{key}.json")
        cmd = [self.args.loadtest] + argv + ["--json", json_path]
        shown = " ".join(shlex.quote(os.path.relpath(a, ROOT) if a.startswith(ROOT) else a) for a in cmd)
        self.commands[key] = shown
        print(f"\n$ {shown}", flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT)
        with open(json_path) as f:
            return json.load(f)

    def start(self, name, argv):
        log = open(os.path.join(self.out_dir, f"{name}.log"), "w")
        p = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((name, p))
        print(f"started {name} (pid {p.pid}): {' '.join(argv)}", flush=True)
        return p

    def stop_all(self):
        for name, p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            print(f"stopped {name} (exit {p.returncode})", flush=True)
        self.procs = []

    def wait_ready(self, name, addr, model):
        """Waits until the server answers a Tag request, or fails as soon as its process exits."""
        proc = dict(self.procs)[name]
        deadline = time.time() + 180
        while time.time() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with {proc.returncode}; see {self.out_dir}/{name}.log")
            argv = ["wait", "--addr", addr, "--model", model, "--timeout", "5"] + self.data_args()
            if subprocess.run([self.args.loadtest] + argv, cwd=ROOT, capture_output=True).returncode == 0:
                print(f"{name} is ready at {addr}", flush=True)
                return
        raise SystemExit(f"{name} did not become ready within 180 s; see {self.out_dir}/{name}.log")

    def data_args(self):
        return ["--data"] + self.args.data if self.args.data else []

    # ---- scenarios -------------------------------------------------------------------------

    def run(self):
        a = self.args
        model_dir = os.path.join(a.models, a.model)
        timing = ["--duration", str(a.duration), "--warmup", str(a.warmup)]
        results = {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}

        # 1. Direct baseline first, with no server running.
        results["direct"] = self.loadtest("direct", [
            "direct", "--model", model_dir, "--batch", "1,16,64,256", "--device", a.device,
            "--duration", str(a.direct_duration), "--warmup", "1"] + self.data_args())

        # 2. Both servers.
        jg, jh, py = free_port(), free_port(), free_port()
        jettag_addr, python_addr = f"http://127.0.0.1:{jg}", f"http://127.0.0.1:{py}"
        self.start("jettag", [a.jettag, "serve", "--models", a.models, "--host", "127.0.0.1",
                              "--grpc-port", str(jg), "--http-port", str(jh), "--device", a.device])
        self.start("python", [sys.executable, os.path.join(HERE, "baseline", "server.py"), "--model", model_dir,
                              "--host", "127.0.0.1", "--port", str(py), "--device", a.device])
        for name, addr in (("jettag", jettag_addr), ("python", python_addr)):
            self.wait_ready(name, addr, a.model)
        results["jettag_config"] = self.effective_config()
        results["compare"] = self.loadtest("compare", [
            "compare", "--addr", jettag_addr, python_addr, "--model", a.model, "--max-jets", "1024"] + self.data_args())

        servers = {"jettag": jettag_addr, "python": python_addr}
        sweep_rates = {"jettag": a.jettag_rates, "python": a.python_rates}
        for name, addr in servers.items():
            common = ["run", "--addr", addr, "--model", a.model, "--label", name] + timing + self.data_args()
            # A long deadline, so that a slow server's queued requests finish and count with their
            # real latency instead of as DEADLINE_EXCEEDED.
            results[f"{name}_closed"] = self.loadtest(f"{name}_closed", common + [
                "--jets-per-request", "64", "--concurrency", "1,4,16,64", "--timeout", "30"])
            results[f"{name}_sweep"] = self.loadtest(f"{name}_sweep", common + [
                "--jets-per-request", "1", "--rates", sweep_rates[name], "--stop-p99-ms", str(STOP_P99_MS)])
            sat = max(r["throughput_rps"] for r in results[f"{name}_sweep"]["runs"])
            results[f"{name}_saturation_rps"] = sat
            results[f"{name}_half"] = self.loadtest(f"{name}_half", common + [
                "--jets-per-request", "1", "--rate", f"{sat / 2:.1f}"])
        # jettag at the Python server's half-saturation rate: the same load for both.
        same = results["python_saturation_rps"] / 2
        results["same_load_rps"] = same
        results["jettag_same"] = self.loadtest("jettag_same", [
            "run", "--addr", jettag_addr, "--model", a.model, "--label", "jettag", "--jets-per-request", "1",
            "--rate", f"{same:.1f}"] + timing + self.data_args())
        results["jettag_metrics"] = self.scrape_metrics(jh)
        self.stop_all()
        results["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        results["commands"] = self.commands
        results["loadavg"] = LOADAVG
        with open(os.path.join(self.out_dir, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
        return results

    def effective_config(self):
        with open(os.path.join(self.out_dir, "jettag.log")) as f:
            for line in f:
                m = re.search(r"config=(\{.*\}) effective configuration", line)
                if m:
                    return json.loads(m.group(1))
        return {}

    def scrape_metrics(self, http_port):
        """Server-side means from jettag's Prometheus histograms (cumulative over the run)."""
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5).read().decode()
        except OSError as e:
            return {"error": str(e)}
        sums, counts = {}, {}
        for line in text.splitlines():
            m = re.match(r"^(jettag_\w+)_(sum|count)(\{[^}]*\})? ([0-9.eE+-]+)$", line)
            if m:
                d = sums if m.group(2) == "sum" else counts
                d[m.group(1)] = d.get(m.group(1), 0.0) + float(m.group(4))
        return {k: sums[k] / counts[k] for k in sums if counts.get(k)}


# ---- report -------------------------------------------------------------------------------


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
    except OSError:
        pass
    mem = "unknown"
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(l.split()[1] for l in f if l.startswith("MemTotal")))
            mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        pass
    import grpc
    import numpy
    import onnxruntime
    return [
        ("CPUs (`nproc`)", sh("nproc")),
        ("CPU model", cpu),
        ("memory", mem),
        ("load average before the run (1, 5, 15 min)", RESULTS_LOADAVG),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("GPU", sh("nvidia-smi --query-gpu=name --format=csv,noheader") or "none"),
        ("rustc", sh("rustc --version")),
        ("jettag", sh(f"{shlex.quote(ARGS.jettag)} --version")),
        ("ONNX Runtime", f"{onnxruntime.__version__} (the onnxruntime wheel's library, used by both servers)"),
        ("Python / grpcio / numpy", f"{platform.python_version()} / {grpc.__version__} / {numpy.__version__}"),
        ("git commit", (sh("git rev-parse --short HEAD") + (" (uncommitted changes)" if sh("git status --porcelain") else "")) or "unknown"),
    ]


def fmt(x, digits=1):
    return "-" if x is None else f"{x:,.{digits}f}"


def errors_text(r):
    parts = [f"{k} {v}" for k, v in sorted(r["errors"].items())]
    lost = r["skipped"] + r["unfinished"]
    if lost:
        parts.append(f"not sent/abandoned {lost}")
    return ", ".join(parts) or "0"


def verdict(ok):
    return "**met**" if ok else "**not met**"


def run_rows(runs, load_key):
    rows = []
    for r in runs:
        l = r["latency"]
        load = f"{r['offered_rps']:,.0f}/s" if load_key == "rate" else f"{r['concurrency']}"
        lag = f" {fmt((r.get('send_lag') or {}).get('p99_ms'), 2)} |" if load_key == "rate" else ""
        rows.append(f"| {r['label']} | {load} | {fmt(r['throughput_rps'])} | {fmt(r['throughput_jets_per_s'], 0)} | "
                    f"{fmt(l['p50_ms'], 2)} | {fmt(l['p90_ms'], 2)} | {fmt(l['p99_ms'], 2)} | {fmt(l['p99.9_ms'], 2)} | "
                    f"{errors_text(r)} |{lag}")
    return rows


def run_table(runs, load_key):
    if load_key == "rate":
        return ["| server | rate (offered) | requests/s | jets/s | p50 ms | p90 ms | p99 ms | p99.9 ms | errors | send lag p99 ms |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"] + run_rows(runs, load_key)
    return ["| server | concurrency | requests/s | jets/s | p50 ms | p90 ms | p99 ms | p99.9 ms | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|"] + run_rows(runs, load_key)


def report(res, bench):
    global RESULTS_LOADAVG
    RESULTS_LOADAVG = res.get("loadavg", "unknown")
    a = ARGS
    cmd = res["commands"]
    direct = {r["batch"]: r for r in res["direct"]["runs"]}
    jc, pc = res["jettag_closed"]["runs"], res["python_closed"]["runs"]
    best_j = max(jc, key=lambda r: r["throughput_jets_per_s"])
    d64 = direct.get(64)
    frac_prep = best_j["throughput_jets_per_s"] / d64["with_preprocessing"]["jets_per_s"] if d64 else None
    frac_inf = best_j["throughput_jets_per_s"] / d64["inference_only"]["jets_per_s"] if d64 else None
    j_half = res["jettag_half"]["runs"][0]
    p_half = res["python_half"]["runs"][0]
    j_same = res["jettag_same"]["runs"][0]
    sat_ratio = res["jettag_saturation_rps"] / res["python_saturation_rps"] if res["python_saturation_rps"] else None
    p99_ratio = j_same["latency"]["p99_ms"] / p_half["latency"]["p99_ms"] if p_half["latency"]["p99_ms"] else None
    closed_ratios = []
    for j, p in zip(jc, pc):
        closed_ratios.append((j["concurrency"], j["throughput_jets_per_s"] / max(p["throughput_jets_per_s"], 1e-9),
                              j["latency"]["p99_ms"] / max(p["latency"]["p99_ms"], 1e-9)))
    model_toml = os.path.join(a.models, a.model)
    description = ""
    try:
        import tomllib
        vdir = model_toml
        versions = [d for d in os.listdir(vdir) if d.isdigit()]
        if versions:
            vdir = os.path.join(vdir, max(versions, key=int))
        with open(os.path.join(vdir, "model.toml"), "rb") as f:
            manifest = tomllib.load(f)
        description = f"`{manifest['name']}` version {manifest['version']} ({os.path.relpath(vdir, ROOT)}): {manifest.get('description', '')}"
    except (OSError, KeyError, ValueError):
        description = f"`{a.model}`"

    L = []
    L += ["# jettag benchmarks", "",
          "Generated by `make bench` (`loadtest/bench.py`); do not edit by hand. Every figure below was measured "
          f"in one run ({res['started']} to {res['finished']}) on the machine described here, next to its "
          "baselines from the same run (DESIGN.md section 7). Raw results: `jettag-loadtest ... --json` files in "
          f"`{os.path.relpath(bench.out_dir, ROOT)}/`.", "",
          f"Model: {description}", ""]
    if "PLACEHOLDER" in description.upper() or "UNTRAINED" in description.upper():
        L += ["> The default model is still the untrained placeholder: its graph is far smaller than the real "
              "HEP-JEPA encoder, so these figures are dominated by preprocessing and transport, not by the model. "
              "Re-run `make bench` once the exported model is in `models/`.", ""]
    L += ["## Headline figures", "",
          "| figure | value | goal |", "|---|---:|---|"]
    if frac_prep is not None:
        L.append(f"| server throughput, 64-jet requests (best concurrency, {best_j['concurrency']}), as a fraction of the "
                 f"direct baseline at batch 64 with preprocessing | **{frac_prep:.2f}** ({fmt(best_j['throughput_jets_per_s'], 0)} vs "
                 f"{fmt(d64['with_preprocessing']['jets_per_s'], 0)} jets/s) | ≥ 0.9: {verdict(frac_prep >= 0.9)} |")
        L.append(f"| the same, against direct inference only (preprocessing done beforehand) | {frac_inf:.2f} "
                 f"({fmt(d64['inference_only']['jets_per_s'], 0)} jets/s) | (the hard limit) |")
    L.append(f"| server saturation, single-jet requests (open loop) | {fmt(res['jettag_saturation_rps'], 0)} requests/s | |")
    L.append(f"| server p99 at half its saturation rate ({fmt(j_half['offered_rps'], 0)}/s) | **{fmt(j_half['latency']['p99_ms'], 2)} ms** "
             f"(p50 {fmt(j_half['latency']['p50_ms'], 2)} ms) | |")
    if sat_ratio is not None:
        L.append(f"| throughput vs the Python server: saturation, single-jet requests | **{sat_ratio:.1f}×** "
                 f"({fmt(res['jettag_saturation_rps'], 0)} vs {fmt(res['python_saturation_rps'], 0)} requests/s) | ≥ 3×: {verdict(sat_ratio >= 3)} |")
    for c, tr, lr in closed_ratios:
        if c == 64 or c == best_j["concurrency"]:
            L.append(f"| throughput vs the Python server: 64-jet requests, concurrency {c} | **{tr:.1f}×** | ≥ 3×: {verdict(tr >= 3)} |")
    if p99_ratio is not None:
        L.append(f"| p99 vs the Python server at the same load ({fmt(res['same_load_rps'], 0)} single-jet requests/s, half the "
                 f"Python server's saturation) | **{p99_ratio:.2f}×** ({fmt(j_same['latency']['p99_ms'], 2)} vs "
                 f"{fmt(p_half['latency']['p99_ms'], 2)} ms) | ≤ 1/3: {verdict(p99_ratio <= 1 / 3)} |")
    for c, tr, lr in closed_ratios:
        if c == 64 or c == best_j["concurrency"]:
            L.append(f"| p99 vs the Python server: 64-jet requests, concurrency {c} | **{lr:.2f}×** | ≤ 1/3: {verdict(lr <= 1 / 3)} |")
    cmpr = res["compare"]
    L.append(f"| same results: max \\|Δp\\| jettag vs Python server over {cmpr['n_jets']} jets | {cmpr['max_abs_diff']:.1e} "
             f"(probabilities span {cmpr['prob_min']:.3f} to {cmpr['prob_max']:.3f}) | same contract |")
    L += ["", f"Command: `{cmd['compare']}`", ""]

    L += ["## Machine", "", "| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in machine()] + [""]
    L += ["The load generator, the servers and the direct baseline share these CPUs; on a small machine the "
          "generator's own work (HTTP/2, protobuf) takes a noticeable share, equally for both servers.", ""]
    cfg = res.get("jettag_config") or {}
    if cfg:
        keys = ["device", "instances", "intra_threads", "max_batch_jets", "max_queue_delay", "queue_capacity", "preprocess_threads"]
        L += ["jettag configuration (defaults, from its start-up log): " +
              ", ".join(f"`{k}={cfg[k]}`" for k in keys if k in cfg) + ".", ""]
    L += ["Python baseline: `loadtest/baseline/server.py`, grpcio with a 10-thread pool, the numpy reference "
          "preprocessing of `core/tests/reference/make_reference.py`, one onnxruntime session, one request per call "
          "(no batching across requests).", ""]

    L += ["## Direct baseline (in-process ONNX Runtime)", "",
          "The same model and the same session code as the server (`jettag::runtime`), called back to back on "
          "fixed-size batches. *Inference only*: batches tokenized and collated beforehand. *With preprocessing*: each "
          "batch tokenized (on a thread pool, as in the server), collated and run. Latency is per batch.", "",
          "| batch | device | inference only, jets/s | p50 ms | p99 ms | with preprocessing, jets/s | p50 ms | p99 ms |",
          "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for b, r in sorted(direct.items()):
        i, w = r["inference_only"], r["with_preprocessing"]
        L.append(f"| {b} | {r['device']} | {fmt(i['jets_per_s'], 0)} | {fmt(i['latency']['p50_ms'], 3)} | {fmt(i['latency']['p99_ms'], 3)} | "
                 f"{fmt(w['jets_per_s'], 0)} | {fmt(w['latency']['p50_ms'], 3)} | {fmt(w['latency']['p99_ms'], 3)} |")
    L += ["", "The server can exceed the *with preprocessing* figure: it tokenizes the next requests while ONNX "
          "Runtime computes the current batch, where the direct loop does one after the other. *Inference only* is the "
          "hard limit; the gap to it is the CPU time that preprocessing (tokenization) and gRPC transport take from the same cores (see \"Where jettag's time goes\" below).",
          "", f"Command: `{cmd['direct']}`", ""]

    L += ["## 64-jet requests, closed loop", "",
          "Each of *concurrency* clients keeps one request in flight; latency from send to response.", ""]
    L += run_table(jc + pc, "concurrency")
    L += ["", "| concurrency | jettag / Python throughput | jettag / Python p99 |", "|---:|---:|---:|"]
    L += [f"| {c} | {tr:.1f}× | {lr:.2f}× |" for c, tr, lr in closed_ratios]
    L += ["", f"Commands: `{cmd['jettag_closed']}`; `{cmd['python_closed']}`", ""]

    L += ["## Single-jet requests, open loop", "",
          f"Poisson arrivals at the offered rate, independent of responses; latency from each request's *scheduled* send "
          f"time (no coordinated omission). Each sweep stops after the first rate with p99 above {STOP_P99_MS:.0f} ms or "
          "more than 1 % failed requests. Saturation is the most requests per second a server delivered in its sweep.", ""]
    L += run_table(res["jettag_sweep"]["runs"] + res["python_sweep"]["runs"], "rate")
    L += ["", "*send lag*: how late the generator's sends were against their schedule (part of the latencies, by "
          "design); large values mean the machine (shared by the generator, the server and any other work) did not run the generator on time. *not sent/abandoned*: requests the "
          "generator skipped because 10,000 were already outstanding, or gave up on after the window: the server "
          "was far past saturation."]
    L += ["", f"Commands: `{cmd['jettag_sweep']}`; `{cmd['python_sweep']}`", ""]
    L += ["### At half saturation and at the same load", ""]
    L += run_table([j_half, p_half, j_same], "rate")
    L += ["", f"Commands: `{cmd['jettag_half']}`; `{cmd['python_half']}`; `{cmd['jettag_same']}`", ""]

    m = res.get("jettag_metrics") or {}
    if m and "error" not in m:
        L += ["## Where jettag's time goes", "",
              "Means over the whole run from the server's own Prometheus histograms (`/metrics`).", "",
              "| metric | mean |", "|---|---:|"]
        for k, v in sorted(m.items()):
            unit = "ms" if k.endswith("_seconds") else ""
            L.append(f"| `{k}` | {v * 1000:.3f} ms |" if unit else f"| `{k}` | {v:.1f} |")
        L.append("")
    with open(a.out, "w") as f:
        f.write("\n".join(L))
    print(f"\nwrote {a.out}")


def main():
    global ARGS
    data_root = os.environ.get("JETTAG_DATA", os.path.join(ROOT, "..", "shared", "data"))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jettag", default=os.path.join(ROOT, "target", "release", "jettag"))
    p.add_argument("--loadtest", default=os.path.join(ROOT, "target", "release", "jettag-loadtest"))
    p.add_argument("--models", default="models")
    p.add_argument("--model", default=None, help="model name under --models [default: hepjepa-top, else the first]")
    p.add_argument("--data", nargs="*", default=[os.path.join(data_root, "toptag", "*_test.root")])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--duration", type=float, default=10.0, help="measurement window per server run, s")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--direct-duration", type=float, default=4.0, help="per batch size and phase, s")
    p.add_argument("--jettag-rates", default="250,500,1000,2000,4000,8000,16000,32000")
    p.add_argument("--python-rates", default="25,50,100,200,400,800,1600,3200")
    p.add_argument("--quick", action="store_true", help="short runs, for checking the script")
    p.add_argument("--report-only", action="store_true", help="rewrite the report from the last run's results.json")
    p.add_argument("--work-dir", default=os.path.join(ROOT, "target", "bench"))
    p.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ARGS = p.parse_args()
    global LOADAVG
    LOADAVG = " ".join(f"{x:.2f}" for x in os.getloadavg()) + " (other work on the machine skews every figure)"
    if ARGS.model is None:
        names = sorted(d for d in os.listdir(ARGS.models) if os.path.isdir(os.path.join(ARGS.models, d)))
        if not names:
            raise SystemExit(f"{ARGS.models} holds no models")
        ARGS.model = "hepjepa-top" if "hepjepa-top" in names else names[0]
    if ARGS.quick:
        ARGS.duration, ARGS.warmup, ARGS.direct_duration = 2.0, 0.5, 1.0
    for b in () if ARGS.report_only else (ARGS.jettag, ARGS.loadtest):
        if not os.access(b, os.X_OK):
            raise SystemExit(f"{b} is not built (cargo build --release -p jettag -p jettag-loadtest)")
    t0 = time.time()
    bench = Bench(ARGS)
    if ARGS.report_only:
        with open(os.path.join(bench.out_dir, "results.json")) as f:
            res = json.load(f)
    else:
        try:
            res = bench.run()
        finally:
            bench.stop_all()
    report(res, bench)
    print(f"bench took {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
