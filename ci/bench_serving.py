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
single-row and 1,000-row requests at 1, 8 and 32 connections, after a warm-up, and then
at a fixed pace of about 200 requests/s for the p99 target. Results go to
``.run/bench/results.json`` and ``.run/bench/latency.png`` (drawn with ``.venv/steps``,
which has matplotlib). Only loopback addresses are used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
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
PACED_RATE = 200  # requests/s for the p99 target
PACED_CONNECTIONS = 2
STARTUP_TIMEOUT_SECONDS = 300

# wrk calls done() once at the end; it prints one JSON line that run_wrk() reads back.
# Latencies are in microseconds. Any status other than 200 counts as an error.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open(os.getenv("BENCH_BODY_FILE"), "r"):read("*a")
local pause_ms = tonumber(os.getenv("BENCH_PAUSE_MS") or "0")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad_status = 0
end

function delay()
  return pause_ms
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
    server: str
    payload: str
    connections: int
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    requests: int
    pause_ms: float = 0.0


@dataclass
class Results:
    settings: dict[str, Any]
    machine: dict[str, Any]
    in_process_ms: dict[str, float]
    measurements: list[Measurement] = field(default_factory=list)


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


def run_wrk(
    server: Server, body_file: Path, script: Path, connections: int, seconds: float, pause_ms: float = 0.0
) -> dict[str, Any]:
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
    environment = {**os.environ, "BENCH_BODY_FILE": str(body_file), "BENCH_PAUSE_MS": str(pause_ms)}
    finished = subprocess.run(
        command, capture_output=True, text=True, env=environment, timeout=seconds + 60, check=False
    )
    for line in finished.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            return dict(json.loads(line.removeprefix("WRK_JSON ")))
    raise RuntimeError(f"wrk printed no summary: {finished.stdout[-500:]} {finished.stderr[-500:]}")


def to_measurement(server: str, payload: str, connections: int, raw: dict[str, Any], pause_ms: float) -> Measurement:
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
        pause_ms=pause_ms,
    )


def benchmark_server(server: Server, work: Path, args: argparse.Namespace) -> list[Measurement]:
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
            results.append(to_measurement(server.name, payload, connections, raw, 0.0))
            print(
                f"  {server.name:8} {payload:6} c={connections:<3} {results[-1].requests_per_second:8.0f} req/s "
                f"p50 {results[-1].p50_ms:7.2f} ms p99 {results[-1].p99_ms:7.2f} ms errors {results[-1].errors}",
                flush=True,
            )
    # The pace: each connection pauses so that together they send about PACED_RATE req/s.
    body_file = work / f"{server.name}-single.json"
    pause_ms = 1000 * PACED_CONNECTIONS / PACED_RATE
    raw = run_wrk(server, body_file, script, PACED_CONNECTIONS, args.duration, pause_ms)
    results.append(to_measurement(server.name, "paced", PACED_CONNECTIONS, raw, pause_ms))
    print(
        f"  {server.name:8} paced  c={PACED_CONNECTIONS:<3} {results[-1].requests_per_second:8.0f} req/s "
        f"p99 {results[-1].p99_ms:7.2f} ms errors {results[-1].errors}",
        flush=True,
    )
    return results


# ---------------------------------------------------------------------------------------
# Report


def find(results: Results, server: str, payload: str, connections: int) -> Measurement | None:
    for measurement in results.measurements:
        if (measurement.server, measurement.payload, measurement.connections) == (server, payload, connections):
            return measurement
    return None


def format_table(results: Results) -> str:
    peers = [name for name in ("mlserver", "mlflow") if any(m.server == name for m in results.measurements)]
    header = [
        "payload",
        "conc",
        "server",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        *[f"x {peer}" for peer in peers],
        "overhead ms",
    ]
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    for payload in [*BATCH_ROWS, "paced"]:
        connection_counts = (PACED_CONNECTIONS,) if payload == "paced" else CONCURRENCY
        for connections in connection_counts:
            ours = find(results, "mlship", payload, connections)
            for server in ["mlship", *peers]:
                row = find(results, server, payload, connections)
                if row is None:
                    continue
                ratios = []
                for peer in peers:
                    other = find(results, peer, payload, connections)
                    ratios.append(
                        f"{ours.requests_per_second / other.requests_per_second:.2f}"
                        if server == "mlship" and ours and other
                        else ""
                    )
                # Overhead: p50 minus the in-process predict_proba time of the same rows,
                # shown where the server handles one request at a time.
                floor = results.in_process_ms["batch" if payload == "batch" else "single"]
                overhead = f"{row.p50_ms - floor:.2f}" if connections == 1 or payload == "paced" else ""
                lines.append(
                    " | ".join(
                        [
                            payload,
                            str(connections),
                            server,
                            f"{row.requests_per_second:.0f}",
                            f"{row.p50_ms:.2f}",
                            f"{row.p99_ms:.2f}",
                            str(row.errors),
                            *ratios,
                            overhead,
                        ]
                    )
                )
    return "\n".join(f"| {line} |" for line in lines)


def format_targets(results: Results) -> str:
    lines = []
    ours = find(results, "mlship", "single", 8)
    found = [find(results, peer, "single", 8) for peer in ("mlserver", "mlflow")]
    peers = [peer for peer in found if peer is not None]
    if ours and peers:
        fastest = max(peers, key=lambda peer: peer.requests_per_second)
        ratio = ours.requests_per_second / fastest.requests_per_second
        lines.append(
            f"throughput at 8 connections: {ratio:.2f}x {fastest.server} (target >= 1.5x): "
            f"{'met' if ratio >= 1.5 else 'missed'}"
        )
    paced = find(results, "mlship", "paced", PACED_CONNECTIONS)
    if paced:
        lines.append(
            f"p99 at {paced.requests_per_second:.0f} req/s: {paced.p99_ms:.2f} ms (target <= 5 ms): "
            f"{'met' if paced.p99_ms <= 5 else 'missed'}"
        )
    single = find(results, "mlship", "single", 1)
    if single:
        overhead = single.p50_ms - results.in_process_ms["single"]
        lines.append(
            f"p50 overhead, single row, 1 connection: {overhead:.2f} ms (target < 1 ms): "
            f"{'met' if overhead < 1 else 'missed'}"
        )
    return "\n".join(lines)


PLOT_SCRIPT = textwrap.dedent("""
    import json, sys
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    results = json.load(open(sys.argv[1]))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for axis, payload in zip(axes, ["single", "batch"]):
        for server in ["mlship", "mlserver", "mlflow"]:
            rows = [m for m in results["measurements"] if m["server"] == server and m["payload"] == payload]
            if not rows:
                continue
            axis.plot([m["connections"] for m in rows], [m["p50_ms"] for m in rows], marker="o", label=server + " p50")
            axis.plot([m["connections"] for m in rows], [m["p99_ms"] for m in rows], marker="x", linestyle="--",
                      label=server + " p99")
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xlabel("connections")
        axis.set_ylabel("latency (ms)")
        axis.set_title(payload + (" (1 row)" if payload == "single" else " (1,000 rows)"))
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
    if Path(venv_bin("bench", "mlserver")).exists():
        return
    uv = REPO / ".tools" / "uv" / "bin" / "uv"
    python = subprocess.run(["bash", str(REPO / "ci" / "find-python.sh")], capture_output=True, text=True, check=True)
    subprocess.run([str(uv), "venv", "--quiet", "--python", python.stdout.strip(), str(VENVS / "bench")], check=True)
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
        default=4,
        help="gunicorn threads of mlship's one worker (default 4, as the image)",
    )
    parser.add_argument("--output", type=Path, default=OUTPUT_DIR, help=f"result folder (default {OUTPUT_DIR})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # MLServer resolves a relative model path against its model folder, not the working
    # directory, so the model's path must be absolute.
    args.output = args.output.resolve()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    args.output.mkdir(parents=True, exist_ok=True)
    names = [name.strip() for name in args.servers.split(",") if name.strip()]
    if "mlserver" in names:
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
            "paced_rate": PACED_RATE,
            "paced_connections": PACED_CONNECTIONS,
        }
        results = Results(settings, machine(), in_process)

        factories = {
            "mlship": lambda: mlship_server(model_dir, work / "mlship", args.mlship_threads),
            "mlserver": lambda: mlserver_server(model_dir, work),
            "mlflow": lambda: mlflow_server(model_dir, work),
        }
        for name in names:
            server = factories[name]()
            print(f"starting {name}", flush=True)
            start(server, work)
            try:
                results.measurements.extend(benchmark_server(server, work, args))
            finally:
                stop(server)
                if server.log_path is not None:
                    shutil.copy(server.log_path, args.output / f"{name}.log")

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
