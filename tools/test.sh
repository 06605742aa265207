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
# Three lanes side by side, because almost all of a run is waiting (pods scheduled, images unpacked,
# servers initialised, probes' periods) and run one after another they filled most of CI's 90 minutes:
#  - the real node's tests (e2e/real-*), at normal priority, output live: the longest lane, and the
#    one whose timing matters (failovers under writes), so it gets the CPU first whenever it wants it;
#  - the data-plane tests (servers on loopback) and the cluster tests on simulated nodes, one file at
#    a time, at a lower priority (nice 5: a quarter of a busy CPU, all of an idle one);
#  - the unit and chart tests, which start no server and time nothing, at the lowest priority.
# The two cluster lanes share one cluster, started here first when none runs (their global setups
# would otherwise race to start it) and stopped at the end only when this run started it; every test
# file works in namespaces of its own, with its own operator scoped to them.
real_log=$(mktemp -t scalableapp-real-node.XXXXXX)
loop_log=$(mktemp -t scalableapp-dataplane-simulated.XXXXXX)
side_log=$(mktemp -t scalableapp-unit-charts.XXXXXX)
started_cluster=0
stop_cluster() {
  if ((started_cluster)) && [[ ${SCALABLEAPP_KEEP_CLUSTER:-} != 1 ]]; then
    step "stopping the cluster this run started"
    bash "$here/cluster.sh" down || true
  fi
}
trap 'rm -f "$real_log" "$loop_log" "$side_log"; stop_cluster' EXIT
if ! bash "$here/cluster.sh" status >/dev/null 2>&1; then
  step "starting the local cluster for the cluster tests (tools/cluster.sh up)"
  bash "$here/cluster.sh" up
  started_cluster=1
fi
real_files='e2e/real-'
step "jest: unit and chart tests (lowest priority), data-plane and simulated-node tests (nice 5), real-node tests (output live); the other lanes' output at the end"
nice -n 19 node --experimental-vm-modules node_modules/jest/bin/jest.js --ci --selectProjects unit charts >"$side_log" 2>&1 &
side=$!
nice -n 5 node --experimental-vm-modules node_modules/jest/bin/jest.js --ci --selectProjects dataplane cluster \
  --testPathIgnorePatterns "$real_files" >"$loop_log" 2>&1 &
loop=$!
real_status=0
jest --selectProjects cluster --testPathPattern "$real_files" 2>&1 | tee "$real_log" || real_status=$?
loop_status=0
wait "$loop" || loop_status=$?
side_status=0
wait "$side" || side_status=$?
step "jest: the data-plane and simulated-node tests' output"
cat "$loop_log"
step "jest: the unit and chart tests' output"
cat "$side_log"
# The last lines say it all, for a log that keeps only its end: each lane's outcome, every failure.
outcome() { (($1 == 0)) && echo passed || echo FAILED; }
step "jest: unit and chart tests $(outcome "$side_status"); data-plane and simulated-node tests $(outcome "$loop_status"); real-node tests $(outcome "$real_status")"
grep -h '^FAILED ' "$side_log" "$loop_log" "$real_log" >&2 || true
exit $((side_status != 0 || loop_status != 0 || real_status != 0))
