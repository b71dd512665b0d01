#!/usr/bin/env bash
# Runs every example in examples/ against the built packages, as a user would run it.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT/examples"
shopt -s nullglob
ran=0
for f in *.ts; do
  step "example: $f"
  npx tsx "$f"
  ran=$((ran + 1))
done
[ "$ran" -gt 0 ] || die "no example found in examples/"
