#!/usr/bin/env bash
# Runs every benchmark; each writes its figures to bench/results/<name>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
for script in bench/*.ts; do
  echo "== $script"
  npx tsx "$script"
done
