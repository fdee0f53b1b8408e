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
# The private single-node SLURM of tests/clusters (installs it when missing, as root);
# started here so the install is not charged to one test's timeout. Stopped at the end
# unless it was already running. Where it cannot run, the SLURM tests say why.
slurm_log=$(bash tests/slurm/slurm-up.sh 2>&1 >/dev/null)
slurm_rc=$?
[ $slurm_rc -eq 0 ] || echo "tests/slurm/slurm-up.sh exited $slurm_rc: $slurm_log" >&2
# Two xdist workers (most tests wait on real processes, not the CPU); the cluster tests
# share one SLURM and stay together in one worker (see tests/clusters/conftest.py).
# Every process the tests start inherits SFTEST_RUN_ID; whatever still runs with it once
# pytest is done is a leak (tests/leaks.py): listed, killed, and the run fails.
export SFTEST_RUN_ID="run-tests-$$-$(date +%s)"
"$PY" -m pytest -q -n 2 --dist loadgroup --durations=15 "$@"
rc=$?
if ! "$PY" -m tests.leaks "$SFTEST_RUN_ID"; then
  echo "the test run left processes running (see above): failing the run" >&2
  [ $rc -eq 0 ] && rc=1
fi
if [ $slurm_rc -eq 0 ] && ! grep -q "already running" <<<"$slurm_log"; then
  bash tests/slurm/slurm-down.sh >/dev/null 2>&1
fi
if [ $rc -eq 5 ]; then
  echo "pytest collected no tests: treating as a failure" >&2
  exit 1
fi
exit $rc
