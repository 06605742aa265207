#!/usr/bin/env bash
# Every test: types, lint, generated files, then one Jest run of the unit, data-plane, chart and
# cluster layers (the cluster layer starts the local cluster, with its real node, or reuses a running
# one). Ends with Jest's summary.
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
step "jest: unit, data-plane, chart and cluster tests"
exec node --experimental-vm-modules node_modules/jest/bin/jest.js --ci "$@"
