#!/usr/bin/env bash
# Builds the JavaScript element into target/other-langs/js_greeter.wasm with componentize-js,
# installing the pinned npm packages (package-lock.json) first.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
if [ ! -x node_modules/.bin/componentize-js ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund --loglevel=error
    touch node_modules
fi
cd ../..
mkdir -p target/other-langs
"$here/node_modules/.bin/componentize-js" plugins/js-greeter/greeter.js \
    --wit wit/v0.1.0 --world-name plugin -o target/other-langs/js_greeter.wasm
