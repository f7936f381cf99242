"""Reading an environment's values and pinning the served model version in its file.

A promotion or rollback is a reviewed change of ``values/<env>.yaml``, so the rewrite
keeps comments, key order and quoting (ruamel.yaml round-trip) and changes only the
``serving.model.version`` line, or adds the keys when the file lacks them.
"""

from __future__ import annotations

import difflib
import io
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError as RuamelYAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from mlship.errors import InvalidInputError

# (mapping, sequence, offset) indents of common Helm values styles, tried in this order.
# The first style that reproduces the file unchanged is used to write it back.
INDENT_STYLES = ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4))


def read_values(path: Path) -> dict[str, Any]:
    """Return the decoded values file, an empty mapping for an empty file."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"values file {path} not found") from None
    except yaml.YAMLError as error:
        raise InvalidInputError(f"values file {path} is not valid YAML: {error}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise InvalidInputError(f"values file {path} must contain a mapping at the top level")
    return loaded


def merge_values(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into a copy of ``base`` the way Helm merges values files."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


def effective_values(values_files: Sequence[Path]) -> dict[str, Any]:
    """Merge the values files in order, later files overriding earlier ones."""
    merged: dict[str, Any] = {}
    for path in values_files:
        merged = merge_values(merged, read_values(path))
    return merged


def lookup(values: dict[str, Any], dotted_key: str, default: Any = None) -> Any:
    current: Any = values
    for part in dotted_key.split("."):
        if not isinstance(current, dict) or part not in current:
            return default
        current = current[part]
    return current


def follows_alias(values: dict[str, Any], alias: str) -> bool:
    """Tell whether the values serve ``models:/<name>@<alias>`` rather than a pinned version."""
    pinned = str(lookup(values, "serving.model.version", "") or "")
    return not pinned and lookup(values, "serving.model.alias") == alias


def _round_trip_yaml(text: str) -> YAML:
    """Return a round-trip YAML instance whose output reproduces ``text`` where possible."""
    fallback = None
    for mapping, sequence, offset in INDENT_STYLES:
        candidate = YAML(typ="rt")
        candidate.preserve_quotes = True
        candidate.width = 4096
        candidate.indent(mapping=mapping, sequence=sequence, offset=offset)
        fallback = fallback or candidate
        buffer = io.StringIO()
        candidate.dump(candidate.load(text), buffer)
        if buffer.getvalue() == text:
            return candidate
    assert fallback is not None
    return fallback


def pin_version(text: str, version: str, source: str = "values file") -> str:
    """Return ``text`` with ``serving.model.version`` set to ``version``, everything else kept."""
    try:
        yaml_rt = _round_trip_yaml(text)
        document = yaml_rt.load(text)
    except RuamelYAMLError as error:
        raise InvalidInputError(f"{source} is not valid YAML: {error}") from None
    if document is None:
        document = CommentedMap()
    if not isinstance(document, CommentedMap):
        raise InvalidInputError(f"{source} must contain a mapping at the top level")

    node = document
    for key in ("serving", "model"):
        child = node.get(key)
        if child is None:
            child = CommentedMap()
            node[key] = child
        elif not isinstance(child, CommentedMap):
            raise InvalidInputError(f"{source}: {key} must be a mapping to hold serving.model.version")
        node = child
    # Quoted, because the chart's schema declares the version a string; the file's own
    # quote style wins.
    existing = node.get("version")
    quoted = SingleQuotedScalarString if isinstance(existing, SingleQuotedScalarString) else DoubleQuotedScalarString
    node["version"] = quoted(str(version))

    buffer = io.StringIO()
    yaml_rt.dump(document, buffer)
    return buffer.getvalue()


def unified_diff(old: str, new: str, path: Path) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=f"a/{path}", tofile=f"b/{path}"
        )
    )


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` through a rename, so readers get the old or the new file, never a mix."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class ValuesChange:
    """A planned rewrite of one values file: its text before and after."""

    path: Path
    old: str
    new: str

    @property
    def diff(self) -> str:
        try:
            shown = self.path.resolve().relative_to(Path.cwd())
        except ValueError:
            shown = self.path
        return unified_diff(self.old, self.new, shown)

    def apply(self) -> None:
        """Write the new text, unless the file changed since it was planned.

        A file that another command already changed to the same new text is left as it is.
        """
        current = self.path.read_text(encoding="utf-8")
        if current == self.new:
            return
        if current != self.old:
            raise InvalidInputError(f"{self.path} changed while the command ran; re-run it to pin the version again")
        write_atomically(self.path, self.new)


def plan_version_pin(values_file: Path, version: str) -> ValuesChange:
    """Plan pinning ``version`` as ``serving.model.version`` in ``values_file``."""
    old = values_file.read_text(encoding="utf-8")
    return ValuesChange(values_file, old, pin_version(old, version, str(values_file)))


def environment_follows_alias(values_file: Path, chart_values: Path | None, alias: str) -> bool:
    """Tell whether the chart's values merged with ``values_file`` serve ``models:/<name>@<alias>``."""
    layers = [chart_values] if chart_values is not None and chart_values.is_file() else []
    return follows_alias(effective_values([*layers, values_file]), alias)
