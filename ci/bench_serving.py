"""Compare mlship's model server with MLServer and `mlflow models serve` on one Iris model.

Run from the repository root with the dev environment:

    .venv/dev/bin/python ci/bench_serving.py [--duration 8] [--warmup 2]

The script trains one classifier, saves it once as an MLflow model folder, and serves
that folder's pickle with each server in turn, each with one worker process on
127.0.0.1:

* mlship: ``seldon-core-microservice mlship.serving.MlshipModel`` from ``.venv/serve``;
* MLServer 1.7.1 with mlserver-sklearn (V2 protocol) from ``.venv/bench``, built from
  ``ci/bench/requirements.lock`` when missing;
* ``mlflow models serve --env-manager local`` from ``.venv/registry``.

Each server gets the same rows and returns class probabilities. ``wrk`` drives it with
single-row and 1,000-row requests at 1, 8 and 32 connections, after a warm-up (a closed
loop: each connection sends its next request when the response to the last one arrives). Then
``vegeta`` sends requests at a constant rate whatever the latency (an open loop), 200
single-row requests/s for the p99 target and 100 1,000-row requests/s. Results go to
``.run/bench/results.json``, ``.run/bench/latency.png`` (drawn with ``.venv/steps``,
which has matplotlib) and one vegeta latency-over-time page per constant-rate run
(``<server>-<payload>-rate.html``). ``--profile`` also samples mlship's worker with py-spy
at 8 connections, after the measurements, and writes ``profile-<payload>.svg`` and a
summary. Only loopback addresses are used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from mlship.local_servers import ServerProcess  # noqa: E402 (needs the path above)

VENVS = REPO / ".venv"
OUTPUT_DIR = REPO / ".run" / "bench"
FEATURES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]
CONCURRENCY = (1, 8, 32)
BATCH_ROWS = {"single": 1, "batch": 1000}
# Requests/s of the constant-rate (open-loop) runs; single rows at the p99 target's rate.
RATES = {"single": 200, "batch": 100}
PROFILE_CONNECTIONS = 8
STARTUP_TIMEOUT_SECONDS = 300
VEGETA = REPO / ".tools" / "bin" / "vegeta"
PY_SPY = VENVS / "bench" / "bin" / "py-spy"

# wrk calls done() once at the end; it prints one JSON line that run_wrk() reads back.
# Latencies are in microseconds. Any status other than 200 counts as an error.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open(os.getenv("BENCH_BODY_FILE"), "r"):read("*a")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad_status = 0
end

function response(status, headers, body)
  if status ~= 200 then
    bad_status = bad_status + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("bad_status")
  end
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "bad_status": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, ' ..
    '"timeouts": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, bad, errors.connect, errors.read, errors.write, errors.timeout))
end
"""


@dataclass
class Server:
    """A model server under test, with its start command and request format."""

    name: str
    command: list[str]
    environment: dict[str, str]
    port: int
    ready_path: str
    predict_path: str
    body: Callable[[list[list[float]]], dict[str, Any]]
    process: ServerProcess | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Measurement:
    """One load run. ``connections`` is 0 and ``rate`` the requests/s aimed at for vegeta's
    constant-rate runs; ``rate`` is 0 for wrk's runs."""

    server: str
    payload: str
    connections: int
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    requests: int
    rate: float = 0.0
    round: int = 0  # 1, 2, ... for one round's run; 0 for the median over all rounds

    @property
    def load(self) -> str:
        return f"{self.rate:.0f} req/s" if self.rate else f"{self.connections} conn"


@dataclass
class Results:
    settings: dict[str, Any]
    machine: dict[str, Any]
    in_process_ms: dict[str, float]
    measurements: list[Measurement] = field(default_factory=list)  # medians over the rounds
    rounds: list[Measurement] = field(default_factory=list)  # every round's runs


def median_over_rounds(runs: list[Measurement]) -> list[Measurement]:
    """Return one measurement per server, payload and load: the median of each figure
    over the rounds (errors and requests are summed)."""
    groups: dict[tuple[str, str, str], list[Measurement]] = {}
    for run in runs:
        groups.setdefault((run.server, run.payload, run.load), []).append(run)
    medians = []
    for group in groups.values():
        first = group[0]
        medians.append(
            Measurement(
                first.server,
                first.payload,
                first.connections,
                requests_per_second=statistics.median(run.requests_per_second for run in group),
                p50_ms=statistics.median(run.p50_ms for run in group),
                p90_ms=statistics.median(run.p90_ms for run in group),
                p99_ms=statistics.median(run.p99_ms for run in group),
                errors=sum(run.errors for run in group),
                requests=sum(run.requests for run in group),
                rate=first.rate,
            )
        )
    return medians


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def venv_bin(venv: str, program: str) -> str:
    return str(VENVS / venv / "bin" / program)


# ---------------------------------------------------------------------------------------
# The model and the in-process floor


def train_and_save(folder: Path, estimator: str) -> Path:
    """Train an Iris classifier and save it as an MLflow model folder; return the folder."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    data = load_iris(as_frame=True)
    features = data.data.set_axis(FEATURES, axis=1)
    target = data.target.map(dict(enumerate(data.target_names)))
    if estimator == "forest":
        model = RandomForestClassifier(n_estimators=100, max_depth=5, random_state=42)
    else:
        model = LogisticRegression(max_iter=500)
    model.fit(features, target)

    model_dir = folder / "model"
    shutil.rmtree(model_dir, ignore_errors=True)
    # pyfunc_predict_fn makes `mlflow models serve` return probabilities, as the other
    # two servers do. cloudpickle: the serve image has no skops, MLflow's default.
    mlflow.sklearn.save_model(
        model,
        str(model_dir),
        signature=infer_signature(features, model.predict_proba(features)),
        serialization_format="cloudpickle",
        pyfunc_predict_fn="predict_proba",
    )
    return model_dir


def measure_in_process(model_dir: Path, rows: dict[str, list[list[float]]], iterations: int) -> dict[str, float]:
    """Return the median ``LoadedModel.predict_proba`` time in ms for each payload size."""
    import numpy as np

    from mlship.model_loader import load_model

    model = load_model(str(model_dir))
    # The same filter as the server's load(), so the floor does not include the cost of
    # scikit-learn's per-call warning about a plain array without column names.
    warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)
    medians = {}
    for payload, payload_rows in rows.items():
        matrix = np.asarray(payload_rows, dtype=np.float64)
        for _ in range(20):
            model.predict_proba(matrix)
        times = []
        for _ in range(iterations):
            started = time.perf_counter()
            model.predict_proba(matrix)
            times.append(time.perf_counter() - started)
        medians[payload] = float(np.median(times) * 1000)
    return medians


def sample_rows(count: int) -> list[list[float]]:
    base = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.7, 4.5, 1.5], [7.2, 3.2, 6.0, 2.2]]
    return [base[i % 3] for i in range(count)]


# ---------------------------------------------------------------------------------------
# The three servers


def mlship_server(model_dir: Path, work: Path, threads: int) -> Server:
    port = free_port()
    for folder in ("home", "tmp", "prometheus"):
        (work / folder).mkdir(parents=True, exist_ok=True)
    parameters = [
        {"name": "model_uri", "value": str(model_dir), "type": "STRING"},
        {"name": "max_batch_rows", "value": "10000", "type": "INT"},
    ]
    environment = {
        "HOME": str(work / "home"),
        "TMPDIR": str(work / "tmp"),
        "PROMETHEUS_MULTIPROC_DIR": str(work / "prometheus"),
        "PREDICTIVE_UNIT_PARAMETERS": json.dumps(parameters),
        "GRPC_WORKERS": "0",
        "GUNICORN_WORKERS": "1",
        "GUNICORN_THREADS": str(threads),
    }
    command = [
        venv_bin("serve", "seldon-core-microservice"),
        "mlship.serving.MlshipModel",
        "--service-type",
        "MODEL",
        "--http-port",
        str(port),
        "--metrics-port",
        str(free_port()),
    ]
    return Server(
        "mlship",
        command,
        environment,
        port,
        "/health/status",
        "/api/v1.0/predictions",
        lambda rows: {"data": {"names": FEATURES, "ndarray": rows}},
    )


def mlserver_server(model_dir: Path, work: Path) -> Server:
    port = free_port()
    repository = work / "mlserver"
    (repository / "iris").mkdir(parents=True, exist_ok=True)
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        # One process, like the other two: inference in the server process, no pool.
        "parallel_workers": 0,
        "debug": False,
    }
    (repository / "settings.json").write_text(json.dumps(settings))
    model_settings = {
        "name": "iris",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(model_dir / "model.pkl")},
    }
    (repository / "iris" / "model-settings.json").write_text(json.dumps(model_settings))
    return Server(
        "mlserver",
        [venv_bin("bench", "mlserver"), "start", str(repository)],
        {"HOME": str(work)},
        port,
        "/v2/health/ready",
        "/v2/models/iris/infer",
        lambda rows: {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [len(rows), len(FEATURES)],
                    "datatype": "FP64",
                    "data": [value for row in rows for value in row],
                }
            ],
            "outputs": [{"name": "predict_proba"}],
        },
    )


def mlflow_server(model_dir: Path, work: Path) -> Server:
    port = free_port()
    command = [
        venv_bin("registry", "mlflow"),
        "models",
        "serve",
        "-m",
        str(model_dir),
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-w",
        "1",
    ]
    # mlflow starts uvicorn by name, so the venv's bin folder must be on PATH.
    environment = {"HOME": str(work), "PATH": f"{VENVS / 'registry' / 'bin'}:{os.environ.get('PATH', '')}"}
    return Server(
        "mlflow",
        command,
        environment,
        port,
        "/health",
        "/invocations",
        lambda rows: {"dataframe_split": {"columns": FEATURES, "data": rows}},
    )


def start(server: Server, work: Path) -> None:
    server.log_path = work / f"{server.name}.log"
    environment = {**os.environ, **server.environment}
    # Keep each server single-threaded in numpy/BLAS, like one worker in a pod.
    environment.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    server.process = ServerProcess(
        server.name, server.command, environment, server.log_path, server.url + server.ready_path
    )
    server.process.start(timeout=STARTUP_TIMEOUT_SECONDS)


def stop(server: Server) -> None:
    if server.process is not None:
        server.process.stop()


def response_rows(body: dict[str, Any]) -> int:
    """Return the number of probability rows in a response of any of the three servers."""
    if "data" in body:  # Seldon protocol
        return len(body["data"]["ndarray"])
    if "outputs" in body:  # V2 inference protocol
        return int(body["outputs"][0]["shape"][0])
    if "predictions" in body:  # MLflow scoring server
        return len(body["predictions"])
    return -1


def check_answer(server: Server, rows: list[list[float]]) -> None:
    """Fail early when a server does not return one probability row per input row."""
    request = urllib.request.Request(
        server.url + server.predict_path,
        data=json.dumps(server.body(rows)).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    if response_rows(body) != len(rows):
        raise RuntimeError(f"{server.name} returned {response_rows(body)} rows for {len(rows)}: {str(body)[:300]}")


# ---------------------------------------------------------------------------------------
# Load generation


def run_wrk(server: Server, body_file: Path, script: Path, connections: int, seconds: float) -> dict[str, Any]:
    threads = min(connections, 2)
    command = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        server.url + server.predict_path,
    ]
    environment = {**os.environ, "BENCH_BODY_FILE": str(body_file)}
    finished = subprocess.run(
        command, capture_output=True, text=True, env=environment, timeout=seconds + 60, check=False
    )
    for line in finished.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            return dict(json.loads(line.removeprefix("WRK_JSON ")))
    raise RuntimeError(f"wrk printed no summary: {finished.stdout[-500:]} {finished.stderr[-500:]}")


def wrk_measurement(server: str, payload: str, connections: int, raw: dict[str, Any]) -> Measurement:
    errors = raw["bad_status"] + raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"]
    return Measurement(
        server,
        payload,
        connections,
        requests_per_second=raw["requests"] / (raw["duration_us"] / 1e6),
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        errors=errors,
        requests=raw["requests"],
    )


def write_vegeta_targets(server: Server, body_file: Path, targets: Path) -> None:
    """Write a vegeta targets file (its HTTP format) that posts ``body_file`` to ``server``."""
    targets.write_text(f"POST {server.url}{server.predict_path}\nContent-Type: application/json\n@{body_file}\n")


def run_vegeta(targets: Path, rate: float, seconds: float, results: Path) -> dict[str, Any]:
    """Send requests at a constant rate with vegeta; return its JSON report.

    vegeta starts each request on schedule whether or not earlier ones have
    completed, so a slow response delays no later request and every latency counts
    (no coordinated omission). Its binary results are kept in ``results``.
    """
    subprocess.run(
        [
            str(VEGETA),
            "attack",
            f"-rate={rate:g}/1s",
            f"-duration={max(1, round(seconds))}s",
            "-timeout=10s",
            f"-targets={targets}",
            f"-output={results}",
        ],
        check=True,
        capture_output=True,
        timeout=seconds + 60,
    )
    report = subprocess.run(
        [str(VEGETA), "report", "-type=json", str(results)], check=True, capture_output=True, text=True, timeout=60
    )
    return dict(json.loads(report.stdout))


def vegeta_measurement(server: str, payload: str, rate: float, report: dict[str, Any]) -> Measurement:
    latencies = report["latencies"]
    succeeded = int(report["status_codes"].get("200", 0))
    return Measurement(
        server,
        payload,
        0,
        requests_per_second=float(report["throughput"]),
        p50_ms=latencies["50th"] / 1e6,
        p90_ms=latencies["90th"] / 1e6,
        p99_ms=latencies["99th"] / 1e6,
        errors=int(report["requests"]) - succeeded,
        requests=int(report["requests"]),
        rate=rate,
    )


def plot_over_time(results: Path, page: Path, title: str) -> None:
    """Write vegeta's latency-over-time chart (a self-contained HTML page)."""
    with page.open("wb") as output:
        subprocess.run([str(VEGETA), "plot", f"-title={title}", str(results)], check=True, stdout=output, timeout=120)


def print_measurement(row: Measurement) -> None:
    print(
        f"  {row.server:8} {row.payload:6} {row.load:11} {row.requests_per_second:8.0f} req/s "
        f"p50 {row.p50_ms:7.2f} ms p99 {row.p99_ms:7.2f} ms errors {row.errors}",
        flush=True,
    )


def benchmark_server(server: Server, work: Path, args: argparse.Namespace, round_number: int) -> list[Measurement]:
    script = work / "wrk.lua"
    script.write_text(WRK_SCRIPT)
    results = []
    for payload, row_count in BATCH_ROWS.items():
        rows = sample_rows(row_count)
        check_answer(server, rows)
        body_file = work / f"{server.name}-{payload}.json"
        body_file.write_text(json.dumps(server.body(rows)))
        run_wrk(server, body_file, script, 8, args.warmup)
        for connections in CONCURRENCY:
            raw = run_wrk(server, body_file, script, connections, args.duration)
            results.append(wrk_measurement(server.name, payload, connections, raw))
            results[-1].round = round_number
            print_measurement(results[-1])

        targets = work / f"{server.name}-{payload}.targets"
        write_vegeta_targets(server, body_file, targets)
        attack = work / f"{server.name}-{payload}.bin"
        report = run_vegeta(targets, RATES[payload], args.duration, attack)
        results.append(vegeta_measurement(server.name, payload, RATES[payload], report))
        results[-1].round = round_number
        print_measurement(results[-1])
        plot_over_time(
            attack,
            args.output / f"{server.name}-{payload}-rate.html",
            f"{server.name}, {row_count}-row requests at {RATES[payload]} requests/s",
        )

        if args.profile and server.name == "mlship" and round_number == args.rounds:
            profile(server, body_file, script, payload, args)
    return results


# ---------------------------------------------------------------------------------------
# Profile


def profile(server: Server, body_file: Path, script: Path, payload: str, args: argparse.Namespace) -> None:
    """Sample the server's processes with py-spy under wrk's load; write a flame graph and a summary.

    This runs after the measurements of ``payload``, so the sampling does not slow them.
    """
    assert server.process is not None and server.process.process is not None
    stem = args.output / f"profile-{payload}"
    seconds = max(2, round(args.duration))
    command = [str(PY_SPY), "record", "--pid", str(server.process.process.pid), "--subprocesses"]
    command += ["--nonblocking", "--duration", str(seconds), "--rate", "200"]
    recorders = [
        subprocess.Popen(
            [*command, "--format", kind, "-o", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for kind, path in (("flamegraph", stem.with_suffix(".svg")), ("raw", stem.with_suffix(".txt")))
    ]
    time.sleep(1)  # py-spy attaches to every process of the group before it samples
    run_wrk(server, body_file, script, PROFILE_CONNECTIONS, seconds)
    for recorder in recorders:
        _, error = recorder.communicate(timeout=60)
        if recorder.returncode != 0:
            raise RuntimeError(f"py-spy failed with exit code {recorder.returncode}: {error.decode()[-500:]}")
    summary = summarize_profile(stem.with_suffix(".txt").read_text())
    stem.with_suffix(".summary.txt").write_text(summary)
    print(f"  profile of mlship, {payload}, {PROFILE_CONNECTIONS} connections ({stem}.svg):")
    print(textwrap.indent(summary, "    "), flush=True)


# Stages of a prediction request, by the function whose stack frames they include.
PROFILE_STAGES = {
    "decode the request JSON": "decode_request",
    "check the payload, build the matrix": "features_from_payload",
    "predict_proba": "predict_proba",
    "encode the response JSON": "encode_prediction",
    "count requests and durations": "record_prediction",
    "the whole Flask request": "full_dispatch_request",
    "gunicorn: read, parse, write": "handle_request",
}


def summarize_profile(collapsed: str) -> str:
    """Summarize py-spy's collapsed stacks of the gunicorn worker.

    Each line of ``collapsed`` is ``frame;frame;...;frame count``. The summary gives the
    share of the worker's samples spent inside each stage and the functions that were
    most often at the top of the stack. Idle threads (waiting in ``select`` or on a
    lock) are counted separately.
    """
    stacks: list[tuple[list[str], int]] = []
    for line in collapsed.splitlines():
        frames, _, count = line.rpartition(" ")
        stacks.append((frames.split(";"), int(count)))
    worker = [(frames, count) for frames, count in stacks if any("handle_request" in frame for frame in frames)]
    total = sum(count for _, count in worker)
    if total == 0:
        return "no samples inside gunicorn's handle_request: the worker was idle or py-spy saw no request"
    lines = [f"{total} samples inside gunicorn's handle_request; share of those in:"]
    for stage, function in PROFILE_STAGES.items():
        inside = sum(count for frames, count in worker if any(f"{function} (" in frame for frame in frames))
        lines.append(f"  {100 * inside / total:5.1f}%  {stage} ({function})")
    leaves: dict[str, int] = {}
    for frames, count in worker:
        # A frame reads "function (path/to/file.py:line)"; the line number is dropped.
        match = re.fullmatch(r"(.*) \((.*?)(?::\d+)?\)", frames[-1])
        leaf = f"{match[1]} ({Path(match[2]).name})" if match else frames[-1]
        leaves[leaf] = leaves.get(leaf, 0) + count
    lines.append("most frequent innermost frames:")
    for leaf, count in sorted(leaves.items(), key=lambda item: -item[1])[:10]:
        lines.append(f"  {100 * count / total:5.1f}%  {leaf}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Report


def find(results: Results, server: str, payload: str, load: str) -> Measurement | None:
    for measurement in results.measurements:
        if (measurement.server, measurement.payload, measurement.load) == (server, payload, load):
            return measurement
    return None


def load_labels(payload: str) -> list[str]:
    """Return the load labels of one payload's runs, in the order they run."""
    return [f"{connections} conn" for connections in CONCURRENCY] + [f"{RATES[payload]} req/s"]


def format_table(results: Results) -> str:
    peers = [name for name in ("mlserver", "mlflow") if any(m.server == name for m in results.measurements)]
    header = ["payload", "load", "server", "req/s", "p50 ms", "p99 ms", "errors"]
    header += [f"x {peer}" for peer in peers] + ["overhead ms"]
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for payload in BATCH_ROWS:
        for load in load_labels(payload):
            ours = find(results, "mlship", payload, load)
            for server in ["mlship", *peers]:
                row = find(results, server, payload, load)
                if row is None:
                    continue
                # Throughput ratios compare the closed-loop runs only: at a constant rate
                # every server that keeps up completes the same number of requests.
                ratios = []
                for peer in peers:
                    other = find(results, peer, payload, load)
                    show = server == "mlship" and ours and other and not row.rate
                    ratios.append(f"{ours.requests_per_second / other.requests_per_second:.2f}" if show else "")
                # Overhead: p50 minus the in-process predict_proba time of the same rows,
                # shown where requests do not wait for each other.
                overhead = f"{row.p50_ms - results.in_process_ms[payload]:.2f}" if row.connections <= 1 else ""
                cells = [payload, load, server, f"{row.requests_per_second:.0f}", f"{row.p50_ms:.2f}"]
                cells += [f"{row.p99_ms:.2f}", str(row.errors), *ratios, overhead]
                lines.append(" | ".join(cells))
    return "\n".join(f"| {line} |" for line in lines)


def round_ratios(results: Results, payload: str, load: str, peer: str) -> list[float]:
    """Return mlship's requests/s over ``peer``'s in each round."""
    by_round: dict[tuple[str, int], float] = {
        (run.server, run.round): run.requests_per_second
        for run in results.rounds
        if (run.payload, run.load) == (payload, load)
    }
    rounds = sorted({run.round for run in results.rounds})
    return [
        by_round[("mlship", number)] / by_round[(peer, number)]
        for number in rounds
        if ("mlship", number) in by_round and (peer, number) in by_round
    ]


def format_targets(results: Results) -> str:
    lines = []
    for payload in BATCH_ROWS:
        ours = find(results, "mlship", payload, "8 conn")
        peers = [peer for name in ("mlserver", "mlflow") if (peer := find(results, name, payload, "8 conn"))]
        if ours and peers:
            fastest = max(peers, key=lambda peer: peer.requests_per_second)
            ratio = ours.requests_per_second / fastest.requests_per_second
            per_round = ", ".join(f"{value:.2f}" for value in round_ratios(results, payload, "8 conn", fastest.server))
            lines.append(
                f"throughput, {payload}, 8 connections: {ratio:.2f}x {fastest.server} "
                f"({ours.requests_per_second:.0f} against {fastest.requests_per_second:.0f} req/s; "
                f"each round: {per_round}; target >= 1.5x): {'met' if ratio >= 1.5 else 'missed'}"
            )
    paced = find(results, "mlship", "single", f"{RATES['single']} req/s")
    if paced:
        kept_up = paced.requests_per_second >= 0.95 * paced.rate and paced.errors == 0
        lines.append(
            f"p99, single, constant {paced.rate:.0f} req/s: {paced.p99_ms:.2f} ms, "
            f"{paced.requests_per_second:.0f} successful req/s, {paced.errors} errors (target <= 5 ms): "
            f"{'met' if paced.p99_ms <= 5 and kept_up else 'missed'}"
        )
    single = find(results, "mlship", "single", "1 conn")
    if single:
        overhead = single.p50_ms - results.in_process_ms["single"]
        lines.append(
            f"p50 overhead, single, 1 connection: {overhead:.2f} ms (p50 {single.p50_ms:.2f} minus "
            f"{results.in_process_ms['single']:.2f} in process; target < 1 ms): {'met' if overhead < 1 else 'missed'}"
        )
    return "\n".join(lines)


PLOT_SCRIPT = textwrap.dedent("""
    import json, sys
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    results = json.load(open(sys.argv[1]))
    servers = ["mlship", "mlserver", "mlflow"]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for axis, payload in zip(axes, ["single", "batch"]):
        for server in servers:
            rows = [m for m in results["measurements"]
                    if m["server"] == server and m["payload"] == payload and not m["rate"]]
            if not rows:
                continue
            axis.plot([m["connections"] for m in rows], [m["p50_ms"] for m in rows], marker="o", label=server + " p50")
            axis.plot([m["connections"] for m in rows], [m["p99_ms"] for m in rows], marker="x", linestyle="--",
                      label=server + " p99")
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xlabel("connections (closed loop, wrk)")
        axis.set_ylabel("latency (ms)")
        axis.set_title(payload + (" (1 row)" if payload == "single" else " (1,000 rows)"))
        axis.legend(fontsize=7)
    axis = axes[2]
    rated = [m for m in results["measurements"] if m["rate"]]
    labels = [f"{m['server']}\\n{m['payload']} {m['rate']:.0f}/s" for m in rated]
    positions = range(len(rated))
    axis.bar([p - 0.2 for p in positions], [m["p50_ms"] for m in rated], width=0.4, label="p50")
    axis.bar([p + 0.2 for p in positions], [m["p99_ms"] for m in rated], width=0.4, label="p99")
    axis.set_xticks(list(positions), labels, fontsize=7)
    axis.set_yscale("log")
    axis.set_ylabel("latency (ms)")
    axis.set_title("constant rate (open loop, vegeta)")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(sys.argv[2], dpi=110)
""")


def plot(results_file: Path, image: Path) -> None:
    python = venv_bin("steps", "python")
    if not Path(python).exists():
        print(f"no {python}, so no latency plot", file=sys.stderr)
        return
    subprocess.run([python, "-c", PLOT_SCRIPT, str(results_file), str(image)], check=True, timeout=300)


def ensure_bench_venv() -> None:
    """Create ``.venv/bench`` when missing and bring it in line with its lock file."""
    uv = REPO / ".tools" / "uv" / "bin" / "uv"
    if not Path(venv_bin("bench", "python")).exists():
        python = subprocess.run(
            ["bash", str(REPO / "ci" / "find-python.sh")], capture_output=True, text=True, check=True
        )
        subprocess.run(
            [str(uv), "venv", "--quiet", "--python", python.stdout.strip(), str(VENVS / "bench")], check=True
        )
    subprocess.run(
        [
            str(uv),
            "pip",
            "sync",
            "--quiet",
            "--python",
            venv_bin("bench", "python"),
            "--require-hashes",
            str(REPO / "ci" / "bench" / "requirements.lock"),
        ],
        check=True,
    )


def machine() -> dict[str, Any]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of load per measurement (default 8)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per payload (default 2)")
    parser.add_argument("--servers", default="mlship,mlserver,mlflow", help="comma-separated servers to run")
    parser.add_argument(
        "--estimator",
        choices=["logistic", "forest"],
        default="logistic",
        help="logistic regression, or the pipeline's default random forest of 100 trees",
    )
    parser.add_argument(
        "--mlship-threads",
        type=int,
        default=1,
        help="gunicorn threads of mlship's one worker (default 1, the sync worker, as the image)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="times each server is measured, taking turns; the table shows medians (default 3)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after mlship's measurements, sample its worker with py-spy at 8 connections for each payload",
    )
    parser.add_argument("--output", type=Path, default=OUTPUT_DIR, help=f"result folder (default {OUTPUT_DIR})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # MLServer resolves a relative model path against its model folder, not the working
    # directory, so the model's path must be absolute.
    args.output = args.output.resolve()
    if shutil.which("wrk") is None:
        print("wrk is not installed: run `make system-packages` (Debian package wrk)", file=sys.stderr)
        return 2
    if not VEGETA.exists():
        print(f"{VEGETA.relative_to(REPO)} is missing: run `make tools`", file=sys.stderr)
        return 2
    if args.rounds < 1:
        print(f"--rounds must be at least 1, got {args.rounds}", file=sys.stderr)
        return 2
    names = [name.strip() for name in args.servers.split(",") if name.strip()]
    unknown = sorted(set(names) - {"mlship", "mlserver", "mlflow"})
    if unknown:
        print(
            f"unknown server(s) {', '.join(unknown)} in --servers: choose from mlship, mlserver, mlflow",
            file=sys.stderr,
        )
        return 2
    args.output.mkdir(parents=True, exist_ok=True)
    if "mlserver" in names or args.profile:
        ensure_bench_venv()

    with tempfile.TemporaryDirectory(prefix="mlship-bench-") as temporary:
        work = Path(temporary)
        model_dir = train_and_save(args.output, args.estimator)
        rows = {payload: sample_rows(count) for payload, count in BATCH_ROWS.items()}
        in_process = measure_in_process(model_dir, rows, iterations=300)
        print(
            f"in-process predict_proba median: single {in_process['single']:.3f} ms, "
            f"batch {in_process['batch']:.3f} ms",
            flush=True,
        )
        settings = {
            **{key: str(value) for key, value in vars(args).items()},
            "concurrency": CONCURRENCY,
            "rates": RATES,
        }
        results = Results(settings, machine(), in_process)

        factories = {
            "mlship": lambda: mlship_server(model_dir, work / "mlship", args.mlship_threads),
            "mlserver": lambda: mlserver_server(model_dir, work),
            "mlflow": lambda: mlflow_server(model_dir, work),
        }
        # Servers take turns in every round, so a change in the machine's load during the
        # run falls on all of them. The table gives the median of the rounds.
        for round_number in range(1, args.rounds + 1):
            for name in names:
                server = factories[name]()
                print(f"round {round_number} of {args.rounds}: starting {name}", flush=True)
                start(server, work)
                try:
                    results.rounds.extend(benchmark_server(server, work, args, round_number))
                finally:
                    stop(server)
                    if server.log_path is not None:
                        shutil.copy(server.log_path, args.output / f"{name}.log")
        results.measurements = median_over_rounds(results.rounds)

    results_file = args.output / "results.json"
    results_file.write_text(json.dumps(asdict(results), indent=2))
    plot(results_file, args.output / "latency.png")
    print()
    print(format_table(results))
    print()
    print(format_targets(results))
    print(f"\nraw results: {results_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
