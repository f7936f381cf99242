"""The report arithmetic of ci/bench_serving.py: medians over rounds, ratios, targets, profile shares.

The benchmark itself needs minutes of quiet machine and is not part of `make test`; these
tests check what it prints from given figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "ci"))

import bench_serving as bench  # noqa: E402 (needs the path above)


def run(server: str, payload: str, load: str, round_number: int, requests_per_second: float, p99: float = 2.0):
    if load.endswith("req/s"):
        connections, rate = 0, float(load.split()[0])
    else:
        connections, rate = int(load.split()[0]), 0.0
    return bench.Measurement(
        server,
        payload,
        connections,
        requests_per_second=requests_per_second,
        p50_ms=1.0,
        p90_ms=1.5,
        p99_ms=p99,
        errors=0,
        requests=int(requests_per_second * 8),
        rate=rate,
        round=round_number,
    )


def results_with(rounds: list[bench.Measurement]) -> bench.Results:
    results = bench.Results({}, {}, {"single": 0.3, "batch": 0.5}, rounds=rounds)
    results.measurements = bench.median_over_rounds(rounds)
    return results


def test_median_over_rounds() -> None:
    rounds = [run("mlship", "single", "8 conn", number, rps) for number, rps in enumerate([700, 900, 800], 1)]

    [median] = bench.median_over_rounds(rounds)

    assert median.requests_per_second == 800
    assert median.requests == (700 + 900 + 800) * 8
    assert median.round == 0
    assert median.load == "8 conn"


def test_targets_use_faster_peer() -> None:
    rounds = []
    for number, (ours, mlserver, mlflow) in enumerate([(800, 500, 120), (760, 520, 130), (900, 480, 125)], 1):
        rounds += [
            run("mlship", "single", "8 conn", number, ours),
            run("mlserver", "single", "8 conn", number, mlserver),
            run("mlflow", "single", "8 conn", number, mlflow),
        ]

    report = bench.format_targets(results_with(rounds))

    # Median 800 against MLServer's median 500.
    assert "throughput, single, 8 connections: 1.60x mlserver (800 against 500 req/s;" in report
    assert "each round: 1.60, 1.46, 1.88;" in report
    assert report.splitlines()[0].endswith(": met")


def test_targets_report_misses() -> None:
    rounds = [
        run("mlship", "batch", "8 conn", 1, 300),
        run("mlserver", "batch", "8 conn", 1, 290),
        # p99 under 5 ms, but only 150 of the 200 requests/s succeeded.
        run("mlship", "single", "200 req/s", 1, 150, p99=3.0),
    ]

    lines = bench.format_targets(results_with(rounds)).splitlines()

    assert lines[0].startswith("throughput, batch, 8 connections: 1.03x mlserver")
    assert lines[0].endswith("missed")
    assert lines[1].startswith("p99, single, constant 200 req/s: 3.00 ms, 150 successful req/s")
    assert lines[1].endswith("missed")


def test_profile_summary_stage_shares() -> None:
    prefix = 'process 7:"gunicorn";Arbiter.run (arbiter.py:1);SyncWorker.handle_request (/x/gunicorn/sync.py:10)'
    flask = prefix + ";Flask.full_dispatch_request (/x/flask/app.py:5);check_prediction_request (http.py:1)"
    collapsed = "\n".join(
        [
            f"{flask};decode_request (/x/mlship/serving/http.py:2) 10",
            f"{flask};MlshipModel.predict_body (model.py:1);LoadedModel.predict_proba (loader.py:3);"
            "softmax (/x/sklearn/utils/extmath.py:9) 30",
            f"{prefix};write (/x/gunicorn/util.py:4) 60",
            'process 7:"gunicorn";Arbiter.run (arbiter.py:1);select (selectors.py:468) 500',
        ]
    )

    summary = bench.summarize_profile(collapsed)

    assert summary.startswith("100 samples inside gunicorn's handle_request")
    assert " 10.0%  decode the request JSON (decode_request)" in summary
    assert " 30.0%  predict_proba (predict_proba)" in summary
    assert " 40.0%  the whole Flask request (full_dispatch_request)" in summary
    # The innermost frames, most frequent first, without the line numbers.
    leaves = summary.split("most frequent innermost frames:\n")[1].splitlines()
    assert leaves[0].strip() == "60.0%  write (util.py)"
    assert leaves[1].strip() == "30.0%  softmax (extmath.py)"


def test_profile_summary_without_requests() -> None:
    summary = bench.summarize_profile('process 7:"gunicorn";select (selectors.py:468) 500')

    assert summary.startswith("no samples inside gunicorn's handle_request")
