#!/usr/bin/env bash
# npm test's static checks: the type check, ESLint and Prettier, side by side. Each is one
# single-threaded process of 30-40 s of CPU here, so on two cores the three take about half the
# time they take one after another. Each one's output is printed whole once all are done, in this
# order (never interleaved); the exit status is 1 if any of them failed, naming which.
set -uo pipefail
cd "$(dirname "$0")/.."
PATH="$PWD/node_modules/.bin:$PATH"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

check() {
  local name=$1
  shift
  "$@" >"$logs/$name" 2>&1
  echo $? >"$logs/$name.status"
}

check typecheck tsc -p tsconfig.json --noEmit &
check eslint eslint . &
check prettier prettier --check . &
wait

failed=()
for name in typecheck eslint prettier; do
  cat "$logs/$name"
  [ "$(cat "$logs/$name.status")" = 0 ] || failed+=("$name")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "static checks failed: ${failed[*]}" >&2
  exit 1
fi
