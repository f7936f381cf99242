#!/usr/bin/env bash
# Print the path of a Python 3.12 interpreter: $PYTHON, python3.12 on PATH, or pyenv's.
set -euo pipefail
for candidate in "${PYTHON:-}" python3.12 "$(pyenv root 2>/dev/null)"/versions/3.12*/bin/python3.12; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
        command -v "$candidate"
        exit 0
    fi
done
echo "error: Python 3.12 not found; install it or set PYTHON=/path/to/python3.12" >&2
exit 1
