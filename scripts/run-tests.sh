#!/usr/bin/env bash
# The project's checks: ruff, mypy --strict, then the whole pytest suite.
# pytest's exit code 5 (no tests collected) is a failure here, not a pass.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
set -e
dirs=()
for d in simfarm tests benchmarks examples; do [ -d "$d" ] && dirs+=("$d"); done
"$PY" -m ruff check "${dirs[@]}"
"$PY" -m mypy simfarm
set +e
"$PY" -m pytest -q --durations=15 "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "pytest collected no tests: treating as a failure" >&2
  exit 1
fi
exit $rc
