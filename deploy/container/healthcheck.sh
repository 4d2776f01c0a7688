#!/bin/bash
# Container HEALTHCHECK for hivecast images: GET /healthz on the admin listener and succeed
# only on a 200. Uses bash's /dev/tcp so the runtime image needs no curl or wget.
# HIVECAST_HEALTHCHECK_PORT selects the admin port (agent 9585, tracker 9586).
set -eu
host="${HIVECAST_HEALTHCHECK_HOST:-127.0.0.1}"
port="${HIVECAST_HEALTHCHECK_PORT:-9585}"
exec 3<>"/dev/tcp/${host}/${port}" || exit 1
printf 'GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$host" >&3
status=""
IFS= read -r -t 2 status <&3 || true
exec 3<&-
case "$status" in
  "HTTP/1."[01]" 200"*) exit 0 ;;
  *) echo "unhealthy: ${status:-no response} from ${host}:${port}/healthz" >&2; exit 1 ;;
esac
