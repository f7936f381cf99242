"""Output files that later steps and the Argo workflow read."""

import json
from pathlib import Path
from typing import Any


def write_value(path: str | Path | None, value: str | bool | int | float) -> None:
    """Write a bare value with no trailing newline, as Argo output parameters expect."""
    if path is None:
        return
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")


def write_json(path: str | Path | None, document: Any) -> None:
    """Write ``document`` as indented JSON."""
    if path is None:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=2, sort_keys=True), encoding="utf-8")
