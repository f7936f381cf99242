#!/usr/bin/env bash
# Build the local virtual environments from the images' lock files, so that tests run the
# images' code with exactly the packages the images install:
#   .venv/steps, .venv/serve, .venv/registry  one per image, plus mlship itself
#   .venv/dev                                   pytest, ruff, mypy and the MLflow client
# Each environment is rebuilt only when its lock file changed.
set -euo pipefail
cd "$(dirname "$0")/.."

python=$(bash ci/find-python.sh)
uv_home=.tools/uv
uv_version=0.13.9

if [ ! -x "$uv_home/bin/uv" ]; then
    echo "installing uv $uv_version into $uv_home"
    "$python" -m venv "$uv_home"
    "$uv_home/bin/pip" install --quiet "uv==$uv_version"
fi
uv=$uv_home/bin/uv
export UV_CACHE_DIR=${UV_CACHE_DIR:-$PWD/.tools/uv-cache}

build() {
    local name=$1 lock=$2 with_package=$3
    local venv=.venv/$name stamp=.venv/$name/.lock.sha256
    local digest
    digest=$(sha256sum "$lock" pyproject.toml | sha256sum | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then
        return
    fi
    echo "building $venv from $lock"
    rm -rf "$venv"
    "$uv" venv --quiet --python "$python" "$venv"
    # Compile bytecode now: with PYTHONDONTWRITEBYTECODE set, as in the images, every step
    # would otherwise compile MLflow again on each start, about 10 s of CPU.
    "$uv" pip sync --quiet --python "$venv/bin/python" --require-hashes --compile-bytecode "$lock"
    if [ "$with_package" = yes ]; then
        "$uv" pip install --quiet --python "$venv/bin/python" --no-deps -e .
    fi
    printf '%s' "$digest" >"$stamp"
}

build registry images/registry/requirements.lock no
build steps images/steps/requirements.lock yes
build serve images/serve/requirements.lock yes
build dev requirements-dev.lock yes
