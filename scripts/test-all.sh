#!/usr/bin/env bash
# Sets up a fresh Debian machine (as root) and runs every test tier:
# static checks, the API docs build, the unit tier, the runnable examples, and the system tier against
# real components. Any tier that cannot run fails the whole command.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_root_linux
ensure_node
ensure_system_packages "${SYSTEM_PACKAGES[@]}"
install_and_build

cd "$ROOT"
RESULTS="$ROOT/bench-results/test-results"
mkdir -p "$RESULTS"

step "check: type check + lint"
npm run --silent check

step "docs: TypeDoc API site"
npm run --silent docs >/dev/null

step "unit tier"
npx vitest run --project unit --reporter=default --reporter=json --outputFile="$RESULTS/unit.json"

step "examples"
bash scripts/run-examples.sh

step "system tier: preparing real components (Kubernetes binaries built from Go modules, cached)"
node scripts/prepare-system-tier.mjs

step "system tier (root, real components)"
npx vitest run --project system --reporter=default --reporter=json --outputFile="$RESULTS/system.json"

node scripts/summarize-tests.mjs "$RESULTS/unit.json" "$RESULTS/system.json"
