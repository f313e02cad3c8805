#!/usr/bin/env bash
# Builds the Python element into target/other-langs/py_greeter.wasm with componentize-py,
# installed (pinned in requirements.txt) into a virtual environment under target/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/target/py-venv"
if [ ! -x "$venv/bin/componentize-py" ] || [ "$here/requirements.txt" -nt "$venv" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    touch "$venv"
fi
mkdir -p "$root/target/other-langs"
cd "$here"
"$venv/bin/componentize-py" -d "$root/wit/v0.1.0" -w plugin componentize app \
    -o "$root/target/other-langs/py_greeter.wasm"
