#!/usr/bin/env bash
# One command for the whole benchmark (what `make bench` runs): build the venvs, start a private
# Redis, run every scenario for every system, write bench/results/latest.json and
# docs/benchmarks.md. Sizes and selections: BENCH_* variables, see bench/config.py.
set -euo pipefail
cd "$(dirname "$0")/.."
"${PYTHON:-python3}" -m bench.venvs
# The cluster rows (bench/cluster_bench.py: jobq alone, from the project's venv; about 30 s
# on 2 cores). bench.run embeds the file in latest.json; none (a crash) reads "not measured".
rm -f bench/results/cluster.json
.venv/bin/python -m bench.cluster_bench --out bench/results/cluster.json >/dev/null \
  || echo "cluster rows: a figure missed its bound or the run failed; see bench/results/cluster.json" >&2
exec .bench-venv-peers/bin/python -m bench.run "$@"
