#!/usr/bin/env bash
# Regenerate every lock file from the extras in pyproject.toml.
#
# The serve image is resolved first because seldon-core 1.19 pins numpy below 2 and
# protobuf to 5.29.5. The steps image and the development environment are then resolved
# under its versions, so that a model pickled by the train step unpickles in the server
# with the same numpy, scipy, pandas and scikit-learn.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3.12}
compile() {
    "$python" -m uv pip compile --quiet --python-version 3.12 --generate-hashes \
        --no-header --python-platform x86_64-manylinux_2_28 "$@"
}

compile --extra serve pyproject.toml -o images/serve/requirements.lock

# A fixed path, because uv writes it into the other lock files' annotations.
constraints=.tools/lock/serve-constraints.txt
mkdir -p "$(dirname "$constraints")"
grep -E '^[A-Za-z0-9_.-]+==' images/serve/requirements.lock | sed 's/ .*//' >"$constraints"

compile --extra steps -c "$constraints" pyproject.toml -o images/steps/requirements.lock
compile --extra dev -c "$constraints" pyproject.toml -o requirements-dev.lock
compile --extra registry pyproject.toml -o images/registry/requirements.lock
# Benchmark peers and the profiler, for ci/bench_serving.py only (never in an image).
compile ci/bench/requirements.in -o ci/bench/requirements.lock
