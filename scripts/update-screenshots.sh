#!/usr/bin/env bash
# Re-takes the dashboard screenshots used by the docs (docs/img/*.png) by running the
# browser tests with SIMFARM_SCREENSHOTS pointing there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SIMFARM_SCREENSHOTS="$PWD/docs/img" "$PY" -m pytest -q tests/test_dashboard_browser.py tests/test_dashboard_charts.py "$@"
