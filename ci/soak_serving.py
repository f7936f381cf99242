"""Run mlship's model server at a constant rate for a bounded time; report errors and memory.

Run from the repository root with the dev environment:

    .venv/dev/bin/python ci/soak_serving.py [--duration 300] [--rate 100]

The server runs from ``.venv/serve`` on 127.0.0.1 with one gunicorn worker and the Iris
model of ``ci/bench_serving.py``. ``vegeta`` sends ``--rate`` requests/s whatever the
latency, cycling through a fixed mix: in every ten requests, seven single rows, one
100-row batch and two bad requests (a truncated JSON body and a row with a string), so the
error path runs for the whole soak too. A request counts as an error when its status is
not the one its kind expects (200, or 400 for the bad ones). The resident set size (RSS) of
every process of the server (seldon-core's parent, the two gunicorn arbiters and their
workers, the multiprocessing manager) is summed after the warm-up, every 10 s, and at
the end. Results go to ``.run/bench/soak.json`` and ``.run/bench/soak.html`` (vegeta's
latency-over-time chart).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_serving as bench

GROWTH_TARGET_PERCENT = 10.0
SAMPLE_INTERVAL_SECONDS = 10.0
# (kind, rows or a raw body, expected status, how many in every cycle of ten requests)
REQUEST_MIX: list[tuple[str, int | bytes, int, int]] = [
    ("single", 1, 200, 7),
    ("batch-100", 100, 200, 1),
    ("truncated-json", b'{"data": {"ndarray": [[5.1, 3.5,', 400, 1),
    ("string-value", b'{"data": {"ndarray": [[5.1, "3.5", 1.4, 0.2]]}}', 400, 1),
]


def group_rss_kib(process_group: int) -> dict[int, int]:
    """Return the RSS in KiB of each live process in ``process_group``, by PID."""
    sizes = {}
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != process_group:  # the 5th field of stat, after the name
                continue
            pid = int(status.parent.name)
            for line in (status.parent / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes[pid] = int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process exited while being read
    return sizes


def write_targets(server: bench.Server, work: Path) -> tuple[Path, dict[bytes, tuple[str, int]]]:
    """Write the request mix as a vegeta targets file; return it and each body's kind and expected status."""
    url = server.url + server.predict_path
    targets, kinds = [], {}
    for kind, content, status, count in REQUEST_MIX:
        body = content if isinstance(content, bytes) else json.dumps(server.body(bench.sample_rows(content))).encode()
        body_file = work / f"{kind}.json"
        body_file.write_bytes(body)
        kinds[body] = (kind, status)
        targets += [f"POST {url}\nContent-Type: application/json\n@{body_file}\n"] * count
    path = work / "soak.targets"
    path.write_text("\n".join(targets))
    return path, kinds


def count_outcomes(results: Path, kinds: dict[bytes, tuple[str, int]]) -> dict[str, Counter[int]]:
    """Return the status codes vegeta recorded for each kind of request.

    Requests are matched to their kind by size, because the bodies of the mix all differ in length.
    """
    by_size = {len(body): kind_status for body, kind_status in kinds.items()}
    if len(by_size) != len(kinds):
        raise ValueError("two request bodies of REQUEST_MIX have the same length: make their lengths differ")
    encoded = subprocess.run(
        [str(bench.VEGETA), "encode", "--to", "json", str(results)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    outcomes: dict[str, Counter[int]] = {kind: Counter() for kind, _ in kinds.values()}
    for line in encoded.stdout.splitlines():
        result = json.loads(line)
        kind, _ = by_size[int(result["bytes_out"])]
        outcomes[kind][int(result["code"])] += 1
    return outcomes


def count_unexpected(outcomes: dict[str, Counter[int]], kinds: dict[bytes, tuple[str, int]]) -> int:
    expected = dict(kinds.values())
    return sum(count for kind, codes in outcomes.items() for code, count in codes.items() if code != expected[kind])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load (default 300)")
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s, held constant (default 100)")
    parser.add_argument(
        "--threads", type=int, default=1, help="gunicorn threads of the one worker (default 1, as the image)"
    )
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of load before the first RSS sample")
    parser.add_argument("--output", type=Path, default=bench.OUTPUT_DIR, help="result folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not bench.VEGETA.exists():
        print(f"{bench.VEGETA.relative_to(bench.REPO)} is missing: run `make tools`", file=sys.stderr)
        return 2
    args.output = args.output.resolve()
    args.output.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="mlship-soak-") as temporary:
        work = Path(temporary)
        model_dir = bench.train_and_save(work, "logistic")
        server = bench.mlship_server(model_dir, work / "mlship", threads=args.threads)
        bench.start(server, work)
        try:
            assert server.process is not None and server.process.process is not None
            group = server.process.process.pid
            targets, kinds = write_targets(server, work)
            bench.run_vegeta(targets, args.rate, args.warmup, work / "warmup.bin")
            start_sizes = group_rss_kib(group)
            samples: list[tuple[float, int]] = []
            stop_sampling = threading.Event()

            def sample() -> None:
                started = time.monotonic()
                while not stop_sampling.wait(SAMPLE_INTERVAL_SECONDS):
                    samples.append((round(time.monotonic() - started, 1), sum(group_rss_kib(group).values())))
                    print(f"  {samples[-1][0]:6.0f} s  server RSS {samples[-1][1] / 1024:.1f} MiB", flush=True)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            attack = work / "soak.bin"
            print(f"soak: {args.rate:g} requests/s for {args.duration:g} s", flush=True)
            report = bench.run_vegeta(targets, args.rate, args.duration, attack)
            stop_sampling.set()
            sampler.join()
            end_sizes = group_rss_kib(group)
            exited = server.process.process.poll()
            outcomes = count_outcomes(attack, kinds)
            bench.plot_over_time(attack, args.output / "soak.html", f"mlship soak, {args.rate:g} requests/s")
        finally:
            bench.stop(server)

    # vegeta's own error list also names every 400, which the bad requests expect, so the
    # errors are counted from each result's status (0 where no response came).
    errors = count_unexpected(outcomes, kinds)
    start_total, end_total = sum(start_sizes.values()), sum(end_sizes.values())
    growth = 100.0 * (end_total - start_total) / start_total
    latencies = report["latencies"]
    summary: dict[str, Any] = {
        "settings": {key: str(value) for key, value in vars(args).items()},
        "machine": bench.machine(),
        "requests": report["requests"],
        "rate": report["rate"],
        "latency_ms": {key: latencies[key] / 1e6 for key in ("50th", "90th", "99th", "max")},
        "status_codes_by_kind": {kind: dict(codes) for kind, codes in outcomes.items()},
        "errors": errors,
        "rss_kib_start": start_total,
        "rss_kib_end": end_total,
        "rss_growth_percent": growth,
        "rss_kib_by_pid_start": start_sizes,
        "rss_kib_by_pid_end": end_sizes,
        "rss_kib_samples": samples,
        "server_exited": exited,
    }
    (args.output / "soak.json").write_text(json.dumps(summary, indent=2))

    print(
        f"requests {report['requests']} in {args.duration:.0f} s ({report['rate']:.1f} sent/s), "
        f"p50 {latencies['50th'] / 1e6:.2f} ms, p99 {latencies['99th'] / 1e6:.2f} ms, "
        f"max {latencies['max'] / 1e6:.2f} ms"
    )
    for kind, codes in outcomes.items():
        print(f"  {kind:15} " + ", ".join(f"HTTP {code}: {count}" for code, count in sorted(codes.items())))
    print(f"errors (unexpected status or no answer): {errors}")
    print(
        f"server RSS: {start_total / 1024:.1f} MiB at start, {end_total / 1024:.1f} MiB at end "
        f"({growth:+.1f}%, target < {GROWTH_TARGET_PERCENT:.0f}%), {len(end_sizes)} processes"
    )
    passed = errors == 0 and growth < GROWTH_TARGET_PERCENT and exited is None
    print("soak target " + ("met" if passed else "missed"))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
