"""The pipeline configuration file that the chart renders from values.

The chart writes this file into a ConfigMap and mounts it at ``/etc/mlship/pipeline.yaml``
in every pipeline pod; the local runner reads the same ConfigMap from the same render.
Keys are camelCase like the chart's values. Every error names the offending key.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlship.errors import InvalidInputError

DEFAULT_CONFIG_PATH = "/etc/mlship/pipeline.yaml"
DTYPES = ("float", "int", "category")


@dataclass(frozen=True)
class FeatureSpec:
    """A declared input column: its type and the closed range its values must fall in."""

    name: str
    dtype: str = "float"
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class DataConfig:
    target: str
    features: tuple[FeatureSpec, ...]
    min_rows: int = 50
    max_missing_fraction: float = 0.0
    min_class_fraction: float = 0.0

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]


@dataclass(frozen=True)
class SplitConfig:
    test_size: float = 0.25
    random_seed: int = 42


@dataclass(frozen=True)
class TrainConfig:
    estimator: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ValidationConfig:
    thresholds: dict[str, float]
    primary_metric: str = "f1_macro"
    champion_tolerance: float = 0.0


@dataclass(frozen=True)
class BenchmarkConfig:
    batch_size: int = 1000
    iterations: int = 200
    max_p99_ms_single: float = 50.0
    max_p99_ms_batch: float = 500.0


@dataclass(frozen=True)
class PipelineConfig:
    environment: str
    model_name: str
    alias: str
    data: DataConfig
    split: SplitConfig
    train: TrainConfig
    validation: ValidationConfig
    benchmark: BenchmarkConfig


class _Section:
    """Typed access to one mapping of the file, with errors that name the full key path."""

    def __init__(self, values: Any, path: str, source: str) -> None:
        if not isinstance(values, dict):
            raise InvalidInputError(f"{source}: {path or 'the file'} must be a mapping")
        self.values = values
        self.path = path
        self.source = source
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        self.used.add(name)
        if name not in self.values or self.values[name] is None:
            if default is ...:
                raise InvalidInputError(f"{self.source}: missing required key {self.key(name)}")
            return default
        value = self.values[name]
        # bool is an int subclass; a boolean where a number belongs is a typo.
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise InvalidInputError(f"{self.source}: {self.key(name)} must be a number, got {value!r}")
        if not isinstance(value, kind):
            expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise InvalidInputError(f"{self.source}: {self.key(name)} must be of type {expected}, got {value!r}")
        return value

    def section(self, name: str) -> _Section:
        return _Section(self.get(name, dict), self.key(name), self.source)

    def reject_unknown(self) -> None:
        unknown = sorted(set(self.values) - self.used)
        if unknown:
            names = ", ".join(self.key(name) for name in unknown)
            raise InvalidInputError(f"{self.source}: unknown key(s) {names}; check the spelling")


def _fraction(section: _Section, name: str, default: float) -> float:
    value = float(section.get(name, (int, float), default))
    if not 0.0 <= value <= 1.0:
        raise InvalidInputError(f"{section.source}: {section.key(name)} must be between 0 and 1, got {value}")
    return value


def _positive(section: _Section, name: str, kind: type, default: Any) -> Any:
    value = section.get(name, (int, float) if kind is float else kind, default)
    if value <= 0:
        raise InvalidInputError(f"{section.source}: {section.key(name)} must be positive, got {value}")
    return kind(value)


def _parse_features(section: _Section) -> tuple[FeatureSpec, ...]:
    specs = []
    for name in section.values:
        spec = section.section(name)
        dtype = spec.get("dtype", str, "float")
        if dtype not in DTYPES:
            raise InvalidInputError(
                f"{spec.source}: {spec.key('dtype')} must be one of {', '.join(DTYPES)}, got {dtype!r}"
            )
        low = spec.get("min", (int, float), None)
        high = spec.get("max", (int, float), None)
        if low is not None and high is not None and low > high:
            raise InvalidInputError(f"{spec.source}: {spec.path} has min {low} above max {high}")
        spec.reject_unknown()
        specs.append(FeatureSpec(name=str(name), dtype=dtype, min=low, max=high))
    if not specs:
        raise InvalidInputError(f"{section.source}: {section.path} declares no features")
    return tuple(specs)


def parse_config(raw: Any, source: str = "pipeline config") -> PipelineConfig:
    """Build a PipelineConfig from the decoded file, raising InvalidInputError on any problem."""
    root = _Section(raw, "", source)

    data = root.section("data")
    data_config = DataConfig(
        target=data.get("target", str),
        features=_parse_features(data.section("features")),
        min_rows=_positive(data, "minRows", int, 50),
        max_missing_fraction=_fraction(data, "maxMissingFraction", 0.0),
        min_class_fraction=_fraction(data, "minClassFraction", 0.0),
    )
    data.reject_unknown()
    if data_config.target in data_config.feature_names:
        raise InvalidInputError(f"{source}: data.target {data_config.target!r} is also declared as a feature")

    split = root.section("split")
    test_size = _fraction(split, "testSize", 0.25)
    if not 0.0 < test_size < 1.0:
        raise InvalidInputError(f"{source}: split.testSize must be between 0 and 1 exclusive, got {test_size}")
    split_config = SplitConfig(test_size=test_size, random_seed=split.get("randomSeed", int, 42))
    split.reject_unknown()

    train = root.section("train")
    train_config = TrainConfig(estimator=train.get("estimator", str), params=dict(train.get("params", dict, {})))
    train.reject_unknown()

    validation = root.section("validation")
    thresholds = validation.section("thresholds")
    threshold_values = {name: float(thresholds.get(name, (int, float))) for name in list(thresholds.values)}
    validation_config = ValidationConfig(
        thresholds=threshold_values,
        primary_metric=validation.get("primaryMetric", str, "f1_macro"),
        champion_tolerance=_fraction(validation, "championTolerance", 0.0),
    )
    validation.reject_unknown()

    benchmark = root.section("benchmark")
    max_p99 = benchmark.section("maxP99Ms")
    benchmark_config = BenchmarkConfig(
        batch_size=_positive(benchmark, "batchSize", int, 1000),
        iterations=_positive(benchmark, "iterations", int, 200),
        max_p99_ms_single=_positive(max_p99, "single", float, 50.0),
        max_p99_ms_batch=_positive(max_p99, "batch", float, 500.0),
    )
    max_p99.reject_unknown()
    benchmark.reject_unknown()

    environment = root.get("environment", str)
    config = PipelineConfig(
        environment=environment,
        model_name=root.get("modelName", str),
        alias=root.get("alias", str, environment),
        data=data_config,
        split=split_config,
        train=train_config,
        validation=validation_config,
        benchmark=benchmark_config,
    )
    root.reject_unknown()
    return config


def load_config(path: str | os.PathLike[str] | None = None) -> PipelineConfig:
    """Read the YAML or JSON file at ``path`` ($MLSHIP_CONFIG or the chart's mount by default)."""
    chosen = Path(path or os.environ.get("MLSHIP_CONFIG") or DEFAULT_CONFIG_PATH)
    try:
        text = chosen.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"pipeline config {chosen} not found; pass --config or set MLSHIP_CONFIG") from None
    try:
        raw = json.loads(text) if chosen.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as error:
        raise InvalidInputError(f"pipeline config {chosen} is not valid YAML or JSON: {error}") from None
    return parse_config(raw, source=str(chosen))
