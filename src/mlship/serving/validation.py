"""Check a Seldon protocol prediction request and turn it into a feature matrix.

Accepted payload: ``{"data": {"names": [...], "ndarray": [[...], ...]}, "meta": {...}}``
or ``{"data": {"tensor": {"shape": [rows, columns], "values": [...]}}}``. ``names`` is
optional; when present it must list every model feature once, in any order, and the
columns are reordered to the model's order. Every value must be a JSON number that is
finite as a float64, so strings, booleans, nulls, NaN and infinity are rejected.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import numpy as np

from mlship.serving.errors import RequestError

TOP_LEVEL_KEYS = frozenset({"data", "meta"})
DATA_KEYS = frozenset({"names", "ndarray", "tensor"})
TENSOR_KEYS = frozenset({"shape", "values"})
NUMBER_TYPES = frozenset({int, float})  # bool is a subclass of int, so compare exact types


def features_from_payload(payload: Any, feature_names: tuple[str, ...], max_batch_rows: int) -> np.ndarray:
    """Return the request's rows as a float64 matrix in ``feature_names`` column order.

    Raises ``RequestError`` (HTTP 400) naming the first problem found.
    """
    if not isinstance(payload, dict):
        raise RequestError(f"request body must be a JSON object, got {_json_type(payload)}")
    _reject_unknown_keys(payload, TOP_LEVEL_KEYS, "request")
    if "meta" in payload and not isinstance(payload["meta"], dict):
        raise RequestError(f"'meta' must be a JSON object, got {_json_type(payload['meta'])}")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise RequestError(
            "request must contain a 'data' object with 'ndarray' or 'tensor'"
            if data is None
            else f"'data' must be a JSON object, got {_json_type(data)}"
        )
    _reject_unknown_keys(data, DATA_KEYS, "data")

    if ("ndarray" in data) == ("tensor" in data):
        raise RequestError("'data' must contain exactly one of 'ndarray' or 'tensor'")
    if "ndarray" in data:
        values, shape = _values_from_ndarray(data["ndarray"], max_batch_rows)
    else:
        values, shape = _values_from_tensor(data["tensor"], max_batch_rows)

    matrix = _to_matrix(values, shape)
    column_count = matrix.shape[1]
    if column_count != len(feature_names):
        raise RequestError(
            f"each row must have {len(feature_names)} features ({', '.join(feature_names)}), got {column_count}"
        )
    if "names" in data:
        matrix = _reorder_columns(matrix, data["names"], feature_names)
    return matrix


def _reject_unknown_keys(mapping: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise RequestError(
            f"unknown key(s) in {where}: {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(allowed))}"
        )


def _check_row_count(count: int, max_batch_rows: int) -> None:
    if count == 0:
        raise RequestError("the batch is empty: send at least one row")
    if count > max_batch_rows:
        raise RequestError(
            f"the batch has {count} rows, more than the limit of {max_batch_rows}; split it into smaller requests",
            reason="BATCH_TOO_LARGE",
        )


def _values_from_ndarray(ndarray: Any, max_batch_rows: int) -> tuple[list[Any], tuple[int, int]]:
    """Return the rows' values in row order and the (rows, columns) shape."""
    if not isinstance(ndarray, list):
        raise RequestError(f"'ndarray' must be a list of rows, got {_json_type(ndarray)}")
    _check_row_count(len(ndarray), max_batch_rows)
    if any(type(row) is not list for row in ndarray):
        index = next(i for i, row in enumerate(ndarray) if type(row) is not list)
        raise RequestError(
            f"'ndarray' must be a list of rows, but row {index} is {_json_type(ndarray[index])}: "
            f"wrap a single row as [[...]]"
        )
    lengths = {len(row) for row in ndarray}
    if len(lengths) > 1:
        raise RequestError(f"rows have different lengths {sorted(lengths)}: every row must have the same features")
    return list(chain.from_iterable(ndarray)), (len(ndarray), len(ndarray[0]))


def _values_from_tensor(tensor: Any, max_batch_rows: int) -> tuple[list[Any], tuple[int, int]]:
    """Return the tensor's flat values and its (rows, columns) shape."""
    if not isinstance(tensor, dict):
        raise RequestError(f"'tensor' must be a JSON object with 'shape' and 'values', got {_json_type(tensor)}")
    _reject_unknown_keys(tensor, TENSOR_KEYS, "tensor")
    shape, values = tensor.get("shape"), tensor.get("values")
    if not isinstance(shape, list) or len(shape) != 2 or any(type(size) is not int or size < 0 for size in shape):
        raise RequestError(f"'tensor.shape' must be [rows, columns] with two non-negative integers, got {shape!r}")
    if not isinstance(values, list):
        raise RequestError(f"'tensor.values' must be a flat list of numbers, got {_json_type(values)}")
    row_count, column_count = shape
    _check_row_count(row_count, max_batch_rows)
    if len(values) != row_count * column_count:
        raise RequestError(
            f"'tensor.values' has {len(values)} values but shape {shape} needs {row_count * column_count}"
        )
    return values, (row_count, column_count)


def _to_matrix(values: list[Any], shape: tuple[int, int]) -> np.ndarray:
    """Return row-ordered JSON values as a float64 matrix of ``shape`` (rows, columns)."""
    value_types = set(map(type, values))
    if not value_types <= NUMBER_TYPES:
        bad = sorted(_json_type_name(kind) for kind in value_types - NUMBER_TYPES)
        raise RequestError(f"all feature values must be numbers; found {', '.join(bad)}")
    if shape[1] == 0:
        raise RequestError("rows are empty: each row must contain the feature values")
    try:
        # fromiter over the flat values takes about half the time of np.array() over a
        # list of rows, for 1,000 rows of 4 features.
        matrix = np.fromiter(values, dtype=np.float64, count=len(values)).reshape(shape)
    except OverflowError:
        raise RequestError("a feature value is too large for a 64-bit float") from None
    if not np.isfinite(matrix).all():
        raise RequestError("feature values must be finite numbers: found NaN or infinity")
    return matrix


def _reorder_columns(matrix: np.ndarray, names: Any, feature_names: tuple[str, ...]) -> np.ndarray:
    if not isinstance(names, list) or any(type(name) is not str for name in names):
        raise RequestError("'names' must be a list of feature name strings")
    if list(names) == list(feature_names):
        return matrix
    if len(names) != len(feature_names):
        raise RequestError(f"'names' lists {len(names)} names but rows have {len(feature_names)} features")
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise RequestError(f"'names' repeats {', '.join(map(repr, duplicates))}")
    unknown = [name for name in names if name not in feature_names]
    if unknown:
        missing = [name for name in feature_names if name not in names]
        raise RequestError(
            f"unknown feature name(s) {', '.join(map(repr, unknown))}; missing {', '.join(map(repr, missing))}; "
            f"the model expects {', '.join(feature_names)}"
        )
    order = [names.index(name) for name in feature_names]
    return matrix[:, order]


def _json_type_name(kind: type) -> str:
    return {str: "string", bool: "boolean", type(None): "null", list: "list", dict: "object"}.get(kind, kind.__name__)


def _json_type(value: Any) -> str:
    return _json_type_name(type(value))
