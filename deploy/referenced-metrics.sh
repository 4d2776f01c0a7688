#!/usr/bin/env bash
# Prints every metric name referenced by the Grafana dashboard(s) and the Prometheus rules,
# one per line (recording-rule outputs and Prometheus' own series such as `up` excluded).
# For the live check "every referenced metric exists in the agents'/tracker's /metrics output".
# Options are passed to deploy/tools/referenced_metrics.py (--families, --with-sources, …).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export PYTHONDONTWRITEBYTECODE=1 # keep deploy/tools free of __pycache__
ensure_venv
exec "$VENV/bin/python" "$DEPLOY_DIR/tools/referenced_metrics.py" "$@"
