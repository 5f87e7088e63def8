"""A small kustomize renderer for the subset of kustomize that deploy/k8s uses.

Why: the manifests must be rendered to be validated, and CI machines have neither kustomize nor
kubectl (and nothing may be downloaded outside package registries). Where `kubectl` is present
the tests render with `kubectl kustomize` as well and require the same objects, so this module
is checked against the real thing whenever that is possible.

Supported kustomization fields: resources (files and kustomization directories),
configMapGenerator (files, with kustomize's content-hash name suffix and the name references
in pod specs updated), patches (strategic merge patches from a file or inline, and JSON 6902
patches with a target), images (newName/newTag/digest). Anything else is an error, never
silently ignored.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "configMapGenerator", "patches", "images"}

# Strategic-merge keys of the lists this renderer may merge (from the Kubernetes API's
# `patchMergeKey`s). Lists not named here are replaced by the patch, as for atomic lists.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
}


class RenderError(Exception):
    pass


def render(directory: str | Path) -> list[dict[str, Any]]:
    """Renders the kustomization in `directory` to a list of resource objects."""
    docs, _generated = _build(Path(directory).resolve())
    return docs


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def _find_kustomization(directory: Path) -> Path:
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            return directory / name
    raise RenderError(f"{directory}: no kustomization file")


def _build(directory: Path) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Returns the resources and a map from generated ConfigMap names to their hashed names."""
    kfile = _find_kustomization(directory)
    with open(kfile, encoding="utf-8") as f:
        k = yaml.safe_load(f) or {}
    unknown = set(k) - SUPPORTED_FIELDS
    if unknown:
        raise RenderError(f"{kfile}: fields this renderer does not implement: {sorted(unknown)}")

    docs: list[dict[str, Any]] = []
    renamed: dict[str, str] = {}
    for entry in k.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            sub_docs, sub_renamed = _build(path)
            docs.extend(sub_docs)
            renamed.update(sub_renamed)
        elif path.is_file():
            docs.extend(load_yaml_documents(path))
        else:
            raise RenderError(f"{kfile}: resource {entry} not found")

    for gen in k.get("configMapGenerator", []):
        cm = _generate_config_map(directory, gen)
        hashed = f"{cm['metadata']['name']}-{config_map_hash(cm)}"
        renamed[cm["metadata"]["name"]] = hashed
        cm["metadata"]["name"] = hashed
        docs.append(cm)

    for patch in k.get("patches", []):
        _apply_patch(directory, patch, docs)

    for image in k.get("images", []):
        for doc in docs:
            _set_image(doc, image)

    for doc in docs:
        _rename_config_map_refs(doc, renamed)
    _check_unique(docs)
    return docs, renamed


def _check_unique(docs: list[dict[str, Any]]) -> None:
    seen = set()
    for d in docs:
        key = resource_id(d)
        if key in seen:
            raise RenderError(f"duplicate resource {key}")
        seen.add(key)


def resource_id(doc: dict[str, Any]) -> tuple[str, str, str]:
    return (doc.get("apiVersion", ""), doc.get("kind", ""), doc.get("metadata", {}).get("name", ""))


# --- configMapGenerator ------------------------------------------------------------------------


def _generate_config_map(directory: Path, gen: dict[str, Any]) -> dict[str, Any]:
    unknown = set(gen) - {"name", "files"}
    if unknown:
        raise RenderError(f"configMapGenerator {gen.get('name')}: unsupported fields {sorted(unknown)}")
    data = {}
    for entry in gen.get("files", []):
        key, _, rel = entry.rpartition("=")
        path = directory / rel
        data[key or Path(rel).name] = path.read_text(encoding="utf-8")
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data}


def _go_json(value: Any) -> str:
    """Go's encoding/json.Marshal: sorted keys, no spaces, HTML characters escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def config_map_hash(cm: dict[str, Any]) -> str:
    """kustomize's ConfigMap name suffix (api/hasher): SHA-256 of the JSON of kind, name and
    data, first 10 hex digits with 0,1,3,a,e mapped to g,h,k,m,t.

    kustomize v5 looks the name up with `yaml.Lookup("metadata/name")`, a single field called
    "metadata/name" that never exists, so the name it hashes is always "" (checked against
    `kubectl kustomize`, kustomize v5.5.0). `cm` is accepted whole to mirror its signature."""
    encoded: dict[str, Any] = {"kind": "ConfigMap", "name": "", "data": cm.get("data")}
    if cm.get("binaryData"):
        encoded["binaryData"] = cm["binaryData"]
    digest = hashlib.sha256(_go_json(encoded).encode("utf-8")).hexdigest()
    return digest[:10].translate(str.maketrans("013ae", "ghkmt"))


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    spec = doc.get("spec", {})
    if doc.get("kind") == "Pod":
        return spec
    if doc.get("kind") == "CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    return spec.get("template", {}).get("spec") if isinstance(spec, dict) else None


def _rename_config_map_refs(doc: dict[str, Any], renamed: dict[str, str]) -> None:
    pod = _pod_spec(doc)
    if not pod or not renamed:
        return

    def fix(ref: dict[str, Any] | None) -> None:
        if ref and ref.get("name") in renamed:
            ref["name"] = renamed[ref["name"]]

    for vol in pod.get("volumes", []):
        fix(vol.get("configMap"))
        for src in vol.get("projected", {}).get("sources", []):
            fix(src.get("configMap"))
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        for env_from in c.get("envFrom", []):
            fix(env_from.get("configMapRef"))
        for env in c.get("env", []):
            fix(env.get("valueFrom", {}).get("configMapKeyRef"))


# --- patches ----------------------------------------------------------------------------------


def _apply_patch(directory: Path, entry: dict[str, Any], docs: list[dict[str, Any]]) -> None:
    unknown = set(entry) - {"path", "patch", "target"}
    if unknown:
        raise RenderError(f"patch {entry}: unsupported fields {sorted(unknown)}")
    text = (directory / entry["path"]).read_text(encoding="utf-8") if "path" in entry else entry["patch"]
    parsed = yaml.safe_load(text)
    target = entry.get("target")
    if isinstance(parsed, list):
        if not target:
            raise RenderError("a JSON 6902 patch needs a target")
        matches = [d for d in docs if _matches(d, target)]
        if not matches:
            raise RenderError(f"patch target {target} matches no resource")
        for d in matches:
            patched = json_patch(d, parsed)
            d.clear()
            d.update(patched)
        return
    if not isinstance(parsed, dict):
        raise RenderError(f"patch {entry}: neither a JSON 6902 list nor a strategic merge patch")
    if target is None:
        target = {"kind": parsed["kind"], "name": parsed["metadata"]["name"]}
        group, _, version = parsed["apiVersion"].rpartition("/")
        target.update({"group": group, "version": version})
    matches = [d for d in docs if _matches(d, target)]
    if not matches:
        raise RenderError(f"patch target {target} matches no resource")
    if any(d.get("kind") == "ConfigMap" for d in matches):
        raise RenderError("patching generated ConfigMaps is not implemented")
    for d in matches:
        body = {k: v for k, v in parsed.items() if k not in ("apiVersion", "kind")}
        body.setdefault("metadata", {})
        body["metadata"] = {k: v for k, v in body["metadata"].items() if k != "name"}
        merged = strategic_merge(d, body)
        d.clear()
        d.update(merged)


def _matches(doc: dict[str, Any], target: dict[str, Any]) -> bool:
    unknown = set(target) - {"group", "version", "kind", "name"}
    if unknown:
        raise RenderError(f"patch target fields not implemented: {sorted(unknown)}")
    group, _, version = doc.get("apiVersion", "").rpartition("/")
    checks = {"group": group, "version": version, "kind": doc.get("kind"), "name": doc["metadata"]["name"]}
    for field, actual in checks.items():
        if field in target and not re.fullmatch(str(target[field]), actual or ""):
            return False
    return True


def strategic_merge(original: Any, patch: Any, field: str | None = None) -> Any:
    """Kubernetes strategic merge for maps and the merge-keyed lists in MERGE_KEYS; a null in the
    patch deletes the field; other lists are replaced."""
    if isinstance(patch, dict) and isinstance(original, dict):
        if any(k.startswith("$") for k in patch):
            raise RenderError(f"strategic merge directives are not implemented: {list(patch)}")
        out = copy.deepcopy(original)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = strategic_merge(out[key], value, key)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(patch, list) and isinstance(original, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        out = copy.deepcopy(original)
        for item in patch:
            if not isinstance(item, dict) or key not in item:
                raise RenderError(f"list {field}: patch item without merge key {key}: {item}")
            for i, existing in enumerate(out):
                if existing.get(key) == item[key]:
                    out[i] = strategic_merge(existing, item)
                    break
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise RenderError(f"JSON pointer must start with '/': {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not re.fullmatch(r"0|[1-9][0-9]*", token):
        raise RenderError(f"bad array index {token!r}")
    i = int(token)
    if i > len(container) or (i == len(container) and not allow_end):
        raise RenderError(f"array index {i} out of range")
    return i


def _walk(doc: Any, tokens: list[str]) -> Any:
    for t in tokens:
        if isinstance(doc, list):
            doc = doc[_index(doc, t, allow_end=False)]
        elif isinstance(doc, dict) and t in doc:
            doc = doc[t]
        else:
            raise RenderError(f"path element {t!r} not found")
    return doc


def json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902: add, remove, replace, move, copy, test. Returns a new document."""
    doc = copy.deepcopy(doc)

    def add(doc: Any, tokens: list[str], value: Any) -> Any:
        if not tokens:
            return value
        parent = _walk(doc, tokens[:-1])
        last = tokens[-1]
        if isinstance(parent, list):
            parent.insert(_index(parent, last, allow_end=True), value)
        elif isinstance(parent, dict):
            parent[last] = value
        else:
            raise RenderError(f"cannot add under a scalar at {last!r}")
        return doc

    def remove(doc: Any, tokens: list[str]) -> Any:
        if not tokens:
            raise RenderError("cannot remove the whole document")
        parent = _walk(doc, tokens[:-1])
        last = tokens[-1]
        if isinstance(parent, list):
            return parent.pop(_index(parent, last, allow_end=False))
        if isinstance(parent, dict) and last in parent:
            return parent.pop(last)
        raise RenderError(f"path element {last!r} not found")

    for op in ops:
        kind, path = op.get("op"), _pointer(op.get("path", ""))
        if kind == "add":
            doc = add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            remove(doc, path)
        elif kind == "replace":
            remove(doc, path)
            doc = add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "move":
            value = remove(doc, _pointer(op["from"]))
            doc = add(doc, path, value)
        elif kind == "copy":
            doc = add(doc, path, copy.deepcopy(_walk(doc, _pointer(op["from"]))))
        elif kind == "test":
            if _walk(doc, path) != op["value"]:
                raise RenderError(f"test failed at {op['path']}")
        else:
            raise RenderError(f"unknown JSON patch op {kind!r}")
    return doc


# --- images -----------------------------------------------------------------------------------


def split_image(ref: str) -> tuple[str, str | None, str | None]:
    """`name[:tag][@digest]` -> (name, tag, digest); a registry port is part of the name."""
    name, _, digest = ref.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = None
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    return name, tag, digest or None


def _set_image(node: Any, image: dict[str, Any]) -> None:
    unknown = set(image) - {"name", "newName", "newTag", "digest"}
    if unknown:
        raise RenderError(f"images entry {image}: unsupported fields {sorted(unknown)}")
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                for c in value:
                    if isinstance(c, dict) and "image" in c:
                        c["image"] = _retag(c["image"], image)
            else:
                _set_image(value, image)
    elif isinstance(node, list):
        for item in node:
            _set_image(item, image)


def _retag(ref: str, image: dict[str, Any]) -> str:
    name, tag, digest = split_image(ref)
    if name != image["name"]:
        return ref
    name = image.get("newName", name)
    if "digest" in image:
        return f"{name}@{image['digest']}"
    if "newTag" in image:
        return f"{name}:{image['newTag']}"
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
