#!/usr/bin/env bash
# Static validation of everything in deploy/ (and docs/metrics.md), with a pass/fail summary.
#
#   deploy/check.sh            run every check; exit 1 if any fails
#   deploy/check.sh -l         list the checks
#   deploy/check.sh NAME...    run only the named checks
#
# Needs no container engine, cluster or running service. On a fresh Debian machine it
# installs what it needs: Debian packages (systemd, prometheus for promtool, shellcheck,
# python3-venv) with apt-get when run as root, and the pinned Python tools of
# deploy/tools/requirements.txt (hadolint, docker-compose v5, kubernetes-validate,
# check-jsonschema, yamllint, …) into a venv under target/ (HIVECAST_DEPLOY_VENV overrides).
# Logs of each check: target/deploy-check/NAME.log.
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export PYTHONDONTWRITEBYTECODE=1 # keep deploy/tools free of __pycache__
cd "$REPO_DIR" || exit 2

LOG_DIR="$REPO_DIR/target/deploy-check"
K8S_VERSIONS=(1.31.0 1.37.0) # oldest supported (PDB unhealthyPodEvictionPolicy GA) and newest

# ---- checks ---------------------------------------------------------------------------------
# Each check_* function runs in a subshell with its output in the log; exit 0 = pass,
# 77 = skipped (reason on the last line), anything else = fail.

check_shellcheck() {
  shellcheck --severity=style --external-sources --source-path=SCRIPTDIR \
    deploy/*.sh deploy/systemd/verify.sh deploy/container/healthcheck.sh deploy/container/packager/*.sh
}

check_yamllint() {
  local files=()
  mapfile -t files < <(find deploy \( -name '*.yml' -o -name '*.yaml' \) ! -path deploy/yamllint.yaml | sort)
  "$VENV/bin/yamllint" --strict -c deploy/yamllint.yaml -f parsable "${files[@]}" &&
    echo "yamllint: ${#files[@]} files clean"
}

check_systemd() {
  PYTHON="$VENV/bin/python" deploy/systemd/verify.sh
}

check_hadolint() {
  local files=(deploy/container/*.Dockerfile)
  "$VENV/bin/hadolint" --config deploy/container/hadolint.yaml --no-color "${files[@]}" &&
    echo "hadolint: ${#files[@]} Dockerfiles clean"
}

check_dockerfiles() {
  "$VENV/bin/python" deploy/tools/check_dockerfiles.py && echo "Dockerfile structure ok"
}

compose() {
  # Compose v5 resolves the file without contacting an engine; make sure it cannot find one.
  DOCKER_HOST=unix:///nonexistent "$VENV/bin/docker-compose" -f deploy/container/compose.yaml "$@"
}

check_compose_config() {
  compose config --quiet && echo "docker-compose $("$VENV/bin/docker-compose" version --short) config: valid"
}

check_compose_schema() {
  "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/container/compose.yaml
}

check_compose_policy() {
  local model
  model="$(mktemp)"
  compose config --format json >"$model" || { rm -f "$model"; return 1; }
  "$VENV/bin/python" deploy/tools/check_compose.py "$model"
  local rc=$?
  rm -f "$model"
  [ "$rc" -eq 0 ] && echo "compose policy ok"
  return "$rc"
}

check_kubernetes_schema() {
  local files=() f v out rc=0
  for f in deploy/kubernetes/*.yaml; do
    [ "$f" = deploy/kubernetes/kustomization.yaml ] || files+=("$f")
  done
  for v in "${K8S_VERSIONS[@]}"; do
    out="$("$VENV/bin/kubernetes-validate" --strict -k "$v" "${files[@]}" 2>&1)" || rc=1
    printf '%s\n' "$out"
    # A resource without a schema is only a warning for kubernetes-validate: not for us.
    if grep -qE '^(WARN|ERROR)' <<<"$out"; then rc=1; fi
  done
  return "$rc"
}

check_kubernetes_policy() {
  "$VENV/bin/python" deploy/tools/check_k8s.py && echo "kubernetes policy ok"
}

check_promtool_config() {
  # The shipped config (targets/ for a single host) and the compose variant (its targets).
  promtool check config deploy/prometheus/prometheus.yml || return 1
  local tmp rc
  tmp="$(mktemp -d)"
  cp -r deploy/prometheus/prometheus.yml deploy/prometheus/rules "$tmp/"
  cp -r deploy/container/prometheus-targets "$tmp/targets"
  promtool check config "$tmp/prometheus.yml"
  rc=$?
  rm -rf "$tmp"
  return "$rc"
}

check_promtool_rules() {
  promtool check rules deploy/prometheus/rules/*.yml
}

check_promtool_test() {
  promtool test rules deploy/prometheus/tests/*.yml
}

check_dashboard() {
  "$VENV/bin/python" deploy/tools/check_dashboard.py
}

check_referenced_metrics() {
  "$VENV/bin/python" -m unittest -v deploy/tools/test_referenced_metrics.py || return 1
  local names
  names="$(deploy/referenced-metrics.sh)" || return 1
  echo "referenced metrics: $(wc -l <<<"$names")"
  printf '%s\n' "$names"
  grep -q '^hivecast_agent_downloaded_bytes_total$' <<<"$names" || return 1
  # The script also runs on a bare python3 (no PyYAML): same answer.
  [ "$(python3 -S deploy/tools/referenced_metrics.py)" = "$names" ] ||
    { echo "referenced_metrics.py without PyYAML disagrees"; return 1; }
}

check_checker_tests() {
  "$VENV/bin/python" -m unittest -v deploy/tools/test_checks.py
}

check_metrics_docs() {
  "$VENV/bin/python" deploy/tools/check_metrics_docs.py && echo "docs/metrics.md consistent"
}

check_config_keys() {
  "$VENV/bin/python" deploy/tools/check_config_keys.py
}

CHECKS=(
  shellcheck yamllint systemd hadolint dockerfiles compose_config compose_schema compose_policy
  kubernetes_schema kubernetes_policy promtool_config promtool_rules promtool_test dashboard
  referenced_metrics checker_tests metrics_docs config_keys
)

# ---- prerequisites --------------------------------------------------------------------------

install_prerequisites() {
  local missing=()
  command -v systemd-analyze >/dev/null || missing+=(systemd)
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v shellcheck >/dev/null || missing+=(shellcheck)
  command -v python3 >/dev/null || missing+=(python3)
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  if ((${#missing[@]})); then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
      echo "installing Debian packages: ${missing[*]}"
      export DEBIAN_FRONTEND=noninteractive
      if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
        echo "apt-get install failed" >&2
        return 1
      fi
    else
      echo "missing Debian packages: ${missing[*]} (run as root, or install them first)" >&2
      return 1
    fi
  fi
  ensure_venv
}

# ---- main -----------------------------------------------------------------------------------

if [ "${1:-}" = "-l" ]; then
  printf '%s\n' "${CHECKS[@]//_/-}"
  exit 0
fi
selected=()
if (($#)); then
  for a in "$@"; do
    name="${a//-/_}"
    if [[ " ${CHECKS[*]} " != *" $name "* ]]; then
      echo "unknown check: $a (see deploy/check.sh -l)" >&2
      exit 2
    fi
    selected+=("$name")
  done
else
  selected=("${CHECKS[@]}")
fi

install_prerequisites || { echo "FAIL: prerequisites"; exit 1; }
mkdir -p "$LOG_DIR"

passed=()
failed=()
skipped=()
for c in "${selected[@]}"; do
  label="${c//_/-}"
  log="$LOG_DIR/$label.log"
  start=$(date +%s)
  ( "check_$c" ) >"$log" 2>&1
  rc=$?
  secs=$(($(date +%s) - start))
  case "$rc" in
    0)
      passed+=("$label")
      printf 'PASS  %-20s %3ss\n' "$label" "$secs"
      ;;
    77)
      skipped+=("$label")
      printf 'SKIP  %-20s %3ss  %s\n' "$label" "$secs" "$(tail -n 1 "$log")"
      ;;
    *)
      failed+=("$label")
      printf 'FAIL  %-20s %3ss  (log: %s)\n' "$label" "$secs" "${log#"$REPO_DIR"/}"
      tail -n 40 "$log" | sed 's/^/      | /'
      ;;
  esac
done

echo
echo "deploy checks: ${#passed[@]} passed, ${#failed[@]} failed, ${#skipped[@]} skipped"
((${#failed[@]})) && echo "failed: ${failed[*]}"
echo "${#passed[@]} passed, ${#failed[@]} failed"
((${#failed[@]} == 0))
