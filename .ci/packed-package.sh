#!/usr/bin/env bash
# The installed package as a new user gets it: pack, install the tarball into a scratch project
# and check which path `npx adahessian demo --json` takes. npm drops onnxruntime-node when its
# install script cannot download CUDA files (offline); --omit=optional gives that state on any
# network. Then the demo must run on wasm and print the command that installs the fast path;
# after running exactly that command, it must run on cpu with the native kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
npm pack --silent --pack-destination "$scratch" >/dev/null # prepack builds dist/
cd "$scratch"
npm init -y >/dev/null
npm install --no-audit --no-fund --omit=optional ./adahessian-*.tgz >/dev/null

tiny_demo() {
  npx --no-install adahessian demo --json --train-size 64 --test-size 32 --epochs 1 \
    --batch-size 32 --analysis-batch 32 --out demo-out 2>demo.err >demo.json || {
    cat demo.err >&2
    exit 1
  }
  node -e 'const s = JSON.parse(require("fs").readFileSync("demo.json", "utf8")).settings;
    console.log(`${s.backend} native=${s.native}`);'
}

path=$(tiny_demo)
echo "installed package, onnxruntime-node dropped: $path"
[ "$path" = "wasm native=false" ] || { echo "expected wasm without native kernels" >&2; exit 1; }
hint=$(grep -m1 '^Running on wasm, without the native kernels' demo.err | sed -n 's/.*in your project run: //p')
[ -n "$hint" ] || { echo "no line naming the install command; stderr was:" >&2; cat demo.err >&2; exit 1; }
echo "running the printed command: $hint"
bash -c "$hint" >/dev/null

path=$(tiny_demo)
echo "after it: $path"
[ "$path" = "cpu native=true" ] || { echo "expected cpu with the native kernels" >&2; exit 1; }
if grep -q 'Running on wasm' demo.err; then echo "unexpected fallback line" >&2; exit 1; fi
echo "packed package: ok"
