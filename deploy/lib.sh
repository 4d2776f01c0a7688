# shellcheck shell=bash
# Shared helpers for deploy/*.sh (sourced, not executed).
#
# ensure_venv: creates the Python venv with the pinned tools of deploy/tools/requirements.txt,
# once; later runs reuse it while requirements.txt is unchanged (a stamp holds its hash).
# Location: $HIVECAST_DEPLOY_VENV, default <repo>/target/deploy-venv (target/ is git-ignored).
# Needs python3 with the venv module (Debian: python3-venv) and access to PyPI.

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$DEPLOY_DIR/.." && pwd)"
VENV="${HIVECAST_DEPLOY_VENV:-$REPO_DIR/target/deploy-venv}"

ensure_venv() {
  local req="$DEPLOY_DIR/tools/requirements.txt" stamp want
  stamp="$VENV/.hivecast-requirements.sha256"
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  echo "setting up the deploy tools venv in $VENV" >&2
  python3 -m venv "$VENV" >&2 || {
    echo "python3 -m venv failed (Debian: apt-get install python3-venv)" >&2
    return 1
  }
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2 &&
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2 &&
    echo "$want" >"$stamp"
}
