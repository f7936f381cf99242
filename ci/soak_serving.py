"""Run mlship's model server at a fixed pace for a bounded time; report errors and memory.

Run from the repository root with the dev environment:

    .venv/dev/bin/python ci/soak_serving.py [--duration 300] [--rate 100]

The server runs from ``.venv/serve`` on 127.0.0.1 with one gunicorn worker and the Iris model of
``ci/bench_serving.py``. ``wrk`` sends single-row requests from ``--connections``
connections, each pausing so that together they send about ``--rate`` requests/s. The
resident set size (RSS) of every process of the server (seldon-core's parent, the two
gunicorn arbiters and their workers, the multiprocessing manager) is summed after the
warm-up and again at the end. Results go to ``.run/bench/soak.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_serving as bench

GROWTH_TARGET_PERCENT = 10.0
SAMPLE_INTERVAL_SECONDS = 10.0


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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load (default 300)")
    parser.add_argument("--rate", type=float, default=100.0, help="approximate requests/s in total (default 100)")
    parser.add_argument("--connections", type=int, default=2, help="wrk connections (default 2)")
    parser.add_argument(
        "--threads", type=int, default=4, help="gunicorn threads of the one worker (default 4, as the image)"
    )
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of load before the first RSS sample")
    parser.add_argument("--output", type=Path, default=bench.OUTPUT_DIR, help="result folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    pause_ms = 1000 * args.connections / args.rate

    with tempfile.TemporaryDirectory(prefix="mlship-soak-") as temporary:
        work = Path(temporary)
        model_dir = bench.train_and_save(work, "logistic")
        server = bench.mlship_server(model_dir, work / "mlship", threads=args.threads)
        script = work / "wrk.lua"
        script.write_text(bench.WRK_SCRIPT)
        body_file = work / "single.json"
        body_file.write_text(json.dumps(server.body(bench.sample_rows(1))))

        bench.start(server, work)
        try:
            assert server.process is not None and server.process.process is not None
            group = server.process.process.pid
            bench.run_wrk(server, body_file, script, args.connections, args.warmup, pause_ms)
            start_sizes = group_rss_kib(group)
            samples: list[tuple[float, int]] = []
            stop_sampling = threading.Event()

            def sample() -> None:
                started = time.monotonic()
                while not stop_sampling.wait(SAMPLE_INTERVAL_SECONDS):
                    samples.append((round(time.monotonic() - started, 1), sum(group_rss_kib(group).values())))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            raw = bench.run_wrk(server, body_file, script, args.connections, args.duration, pause_ms)
            stop_sampling.set()
            sampler.join()
            end_sizes = group_rss_kib(group)
            exited = server.process.process.poll()
        finally:
            bench.stop(server)

    measurement = bench.to_measurement("mlship", "soak", args.connections, raw, pause_ms)
    start_total, end_total = sum(start_sizes.values()), sum(end_sizes.values())
    growth = 100.0 * (end_total - start_total) / start_total
    report = {
        "settings": {key: str(value) for key, value in vars(args).items()},
        "machine": bench.machine(),
        "measurement": measurement.__dict__,
        "rss_kib_start": start_total,
        "rss_kib_end": end_total,
        "rss_growth_percent": growth,
        "rss_kib_by_pid_start": start_sizes,
        "rss_kib_by_pid_end": end_sizes,
        "rss_kib_samples": samples,
        "server_exited": exited,
    }
    (args.output / "soak.json").write_text(json.dumps(report, indent=2))

    print(
        f"requests {measurement.requests} in {args.duration:.0f} s ({measurement.requests_per_second:.1f} req/s), "
        f"errors {measurement.errors}, p50 {measurement.p50_ms:.2f} ms, p99 {measurement.p99_ms:.2f} ms"
    )
    print(
        f"server RSS: {start_total / 1024:.1f} MiB at start, {end_total / 1024:.1f} MiB at end "
        f"({growth:+.1f}%, target < {GROWTH_TARGET_PERCENT:.0f}%), {len(end_sizes)} processes"
    )
    passed = measurement.errors == 0 and growth < GROWTH_TARGET_PERCENT and exited is None
    print("soak target " + ("met" if passed else "missed"))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
