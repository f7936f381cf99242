"""Convert Kubernetes OpenAPI definitions and CRDs into JSON schemas for kubeconform.

kubeconform downloads its schemas from GitHub by default, which this project cannot reach.
This module writes the same layouts offline:

* Kubernetes built-in kinds, from ``api/openapi-spec/swagger.json`` of the
  ``k8s.io/kubernetes`` Go module, into ``<out>/v<version>-standalone-strict/<kind>-<group>-<version>.json``
  (the layout kubeconform expects when ``-schema-location`` is a folder);
* custom resources, from CRD manifests, into ``<out>/<group>/<kind>_<version>.json``
  (matched by ``-schema-location '<out>/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json'``).

Both are strict: an object that declares ``properties`` rejects any other key unless the
source declares ``additionalProperties`` or ``x-kubernetes-preserve-unknown-fields``.

Run as a script for the built-in kinds: ``python3 jsonschemas.py SWAGGER_JSON OUT_DIR VERSION``.
It needs only the standard library; the CRD half needs PyYAML and is called from the tests.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# Definitions whose OpenAPI type ("string") is narrower than what the API server accepts.
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
SPECIAL_DEFINITIONS: dict[str, dict[str, Any]] = {
    QUANTITY: {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "null"}]},
    INT_OR_STRING: {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
}


def _nullable(schema_type: Any) -> Any:
    """Allow null next to a declared type: the API server treats a null field as unset."""
    if isinstance(schema_type, str):
        return [schema_type, "null"]
    if isinstance(schema_type, list) and "null" not in schema_type:
        return [*schema_type, "null"]
    return schema_type


def _close_object(schema: dict[str, Any]) -> None:
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        schema["additionalProperties"] = False


def _inline(node: Any, definitions: dict[str, Any], stack: tuple[str, ...]) -> Any:
    """Resolve every ``$ref`` in ``node`` in place of the reference. A cycle becomes ``{}``."""
    if isinstance(node, list):
        return [_inline(item, definitions, stack) for item in node]
    if not isinstance(node, dict):
        return node
    reference = node.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/definitions/"):
        name = reference.removeprefix("#/definitions/")
        if name in SPECIAL_DEFINITIONS:
            return dict(SPECIAL_DEFINITIONS[name])
        if name in stack:
            # NOTE: a recursive type (JSONSchemaProps in CRDs) is left open past its first level.
            return {}
        return _inline(definitions[name], definitions, (*stack, name))
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key == "format":
            continue
        if key == "type":
            result[key] = _nullable(value)
        elif key in ("properties", "patternProperties", "definitions"):
            result[key] = {name: _inline(child, definitions, stack) for name, child in value.items()}
        else:
            result[key] = _inline(value, definitions, stack)
    _close_object(result)
    return result


def kind_file_name(kind: str, group: str, version: str) -> str:
    """Return kubeconform's file name for a built-in kind, e.g. ``networkpolicy-networking-v1.json``."""
    group_suffix = f"-{group.split('.')[0].lower()}" if group else ""
    return f"{kind.lower()}{group_suffix}-{version.lower()}.json"


def convert_openapi(swagger: dict[str, Any], out_dir: Path, kubernetes_version: str) -> int:
    """Write one strict standalone schema per built-in kind and return how many were written."""
    definitions = swagger["definitions"]
    target = out_dir / f"v{kubernetes_version.removeprefix('v')}-standalone-strict"
    target.mkdir(parents=True, exist_ok=True)
    written = 0
    for name, definition in definitions.items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            group, version, kind = gvk.get("group", ""), gvk["version"], gvk["kind"]
            schema = _inline(definition, definitions, (name,))
            api_version = f"{group}/{version}" if group else version
            properties = schema.setdefault("properties", {})
            if "kind" in properties:
                properties["kind"] = {"type": "string", "enum": [kind]}
            if "apiVersion" in properties:
                properties["apiVersion"] = {"type": "string", "enum": [api_version]}
            (target / kind_file_name(kind, group, version)).write_text(json.dumps(schema), encoding="utf-8")
            written += 1
    return written


def _convert_crd_node(node: Any) -> Any:
    """Translate the OpenAPI v3 extensions of a CRD schema into plain JSON schema."""
    if isinstance(node, list):
        return [_convert_crd_node(item) for item in node]
    if not isinstance(node, dict):
        return node
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key == "format":
            continue
        if key in ("properties", "patternProperties"):
            result[key] = {name: _convert_crd_node(child) for name, child in value.items()}
        else:
            result[key] = _convert_crd_node(value)
    if result.pop("x-kubernetes-int-or-string", False):
        result.pop("type", None)
        result["anyOf"] = [{"type": "string"}, {"type": "integer"}]
    if result.pop("nullable", False) and "type" in result:
        result["type"] = _nullable(result["type"])
    _close_object(result)
    return result


def convert_crds(crd_dir: Path, out_dir: Path) -> list[str]:
    """Write a strict schema per CRD version found under ``crd_dir`` and return their ``group/name`` paths."""
    import yaml  # Only the tests call this half, and their environment has PyYAML.

    written = []
    for path in sorted(crd_dir.rglob("*.yaml")):
        # libyaml's loader: the Argo Workflows CRDs alone are several megabytes of YAML.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        for document in yaml.load_all(path.read_text(encoding="utf-8"), Loader=loader):
            if not document or document.get("kind") != "CustomResourceDefinition":
                continue
            group = document["spec"]["group"]
            kind = document["spec"]["names"]["kind"]
            for version in document["spec"]["versions"]:
                source = (version.get("schema") or {}).get("openAPIV3Schema")
                if source is None:
                    continue
                schema = _convert_crd_node(source)
                properties = schema.setdefault("properties", {})
                properties.setdefault("apiVersion", {"type": "string"})
                properties.setdefault("kind", {"type": "string"})
                properties.setdefault("metadata", {"type": "object"})
                _close_object(schema)
                name = f"{kind.lower()}_{version['name']}.json"
                (out_dir / group).mkdir(parents=True, exist_ok=True)
                (out_dir / group / name).write_text(json.dumps(schema), encoding="utf-8")
                written.append(f"{group}/{name}")
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: jsonschemas.py SWAGGER_JSON OUT_DIR KUBERNETES_VERSION", file=sys.stderr)
        return 2
    swagger_path, out_dir, version = Path(argv[0]), Path(argv[1]), argv[2]
    swagger = json.loads(swagger_path.read_text(encoding="utf-8"))
    count = convert_openapi(swagger, out_dir, version)
    print(f"wrote {count} schemas for Kubernetes {version} into {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
