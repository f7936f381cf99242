"""Figures that people look at rather than read: confusion matrix, latency histogram."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from typing import Any

# Matplotlib writes a font cache under $MPLCONFIGDIR; pods have a read-only home, so point
# it at the writable /tmp before matplotlib is imported.
os.environ.setdefault("MPLCONFIGDIR", os.path.join(tempfile.gettempdir(), "matplotlib"))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def confusion_matrix_figure(matrix: np.ndarray, labels: Sequence[str], title: str) -> Any:
    """Draw a confusion matrix with counts in each cell."""
    figure, axes = plt.subplots(figsize=(1.2 * len(labels) + 3, 1.2 * len(labels) + 2.5))
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes)
    axes.set_xticks(range(len(labels)), labels=labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels=labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("actual")
    axes.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for row in range(matrix.shape[0]):
        for column in range(matrix.shape[1]):
            colour = "white" if matrix[row, column] > threshold else "black"
            axes.text(column, row, str(matrix[row, column]), ha="center", va="center", color=colour)
    figure.tight_layout()
    return figure


def latency_histogram_figure(samples_ms: dict[str, Sequence[float]], limits_ms: dict[str, float]) -> Any:
    """Draw one latency histogram per mode with its p50, p99 and the configured limit."""
    figure, axes_list = plt.subplots(1, len(samples_ms), figsize=(6 * len(samples_ms), 4), squeeze=False)
    for axes, (mode, samples) in zip(axes_list[0], samples_ms.items(), strict=True):
        values = np.asarray(samples)
        axes.hist(values, bins=40, color="tab:blue", alpha=0.8)
        for quantile, style in ((50, "--"), (99, "-")):
            axes.axvline(np.percentile(values, quantile), color="black", linestyle=style, label=f"p{quantile}")
        axes.axvline(limits_ms[mode], color="tab:red", label=f"limit {limits_ms[mode]:g} ms")
        axes.set_title(f"{mode} prediction latency")
        axes.set_xlabel("milliseconds")
        axes.set_ylabel("requests")
        axes.legend()
    figure.tight_layout()
    return figure


def close(figure: Any) -> None:
    plt.close(figure)
