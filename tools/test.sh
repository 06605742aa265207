#!/usr/bin/env bash
# Every test: types, lint, generated files, then Jest: the unit and chart layers at the lowest CPU
# priority beside the data-plane and cluster layers (the cluster layer starts the local cluster, with
# its real node, or reuses a running one). Ends with each lane's outcome and every failing test.
# With arguments, one Jest run with them (a path, a project).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."
source "$here/lib.sh"

step "toolchain (built once, then cached under \$HOME)"
bash "$here/toolchain.sh"
step "data-plane binaries (Debian packages, pinned)"
bash "$here/dataplane-deps.sh"
if [[ ${SCALABLEAPP_NODES:-real} == real ]]; then
  step "the real node's packages and the images it runs (built once, then cached under \$HOME)"
  bash "$here/node-deps.sh"
  bash "$here/images.sh" build
  # A node left running (README command 1, an earlier run) gets the images just built: otherwise a
  # changed operator or demo image would not be there, and its pods would wait on a pull.
  if bash "$here/node.sh" status >/dev/null 2>&1; then bash "$here/node.sh" images; fi
fi
step "typecheck"
npx tsc -p tsconfig.json --noEmit
step "lint"
npx eslint --max-warnings 0 .
npx prettier --check . >/dev/null || { npx prettier --check . ; exit 1; }
step "generated files are up to date"
node tools/generate-crd.ts --check
node tools/generate-chart-schemas.ts --check
node tools/generate-chart-files.ts --check
jest() { node --experimental-vm-modules node_modules/jest/bin/jest.js --ci "$@"; }
if [[ $# -gt 0 ]]; then
  # Arguments (a path, a project, an output file) are Jest's: one run, as asked.
  step "jest $*"
  jest "$@"
  exit
fi
# Two lanes side by side. The unit and chart tests start no server and time nothing; they run at the
# lowest CPU priority beside the data-plane and cluster tests, which spend most of their time waiting
# on servers and pods, so the CPU they leave idle runs the others and the whole run is shorter by
# about their duration. The cluster tests keep the CPU first whenever they want it.
side_log=$(mktemp -t scalableapp-unit-charts.XXXXXX)
main_log=$(mktemp -t scalableapp-dataplane-cluster.XXXXXX)
trap 'rm -f "$side_log" "$main_log"' EXIT
step "jest: unit and chart tests (lowest CPU priority, output at the end) beside the data-plane and cluster tests"
nice -n 19 node --experimental-vm-modules node_modules/jest/bin/jest.js --ci --selectProjects unit charts >"$side_log" 2>&1 &
side=$!
main_status=0
jest --selectProjects dataplane cluster 2>&1 | tee "$main_log" || main_status=$?
side_status=0
wait "$side" || side_status=$?
step "jest: the unit and chart tests' output"
cat "$side_log"
# The last lines say it all, for a log that keeps only its end: each lane's outcome, every failure.
step "jest: unit and chart tests $( ((side_status == 0)) && echo passed || echo FAILED ); data-plane and cluster tests $( ((main_status == 0)) && echo passed || echo FAILED )"
grep -h '^FAILED ' "$side_log" "$main_log" >&2 || true
exit $((side_status != 0 || main_status != 0))
