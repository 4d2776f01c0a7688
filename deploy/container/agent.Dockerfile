# syntax=docker/dockerfile:1.7
# hivecast-agent image. Build from the repository root:
#   docker build -f deploy/container/agent.Dockerfile -t hivecast-agent .
# Run (the player endpoint 8585 and admin endpoint 9585 listen on all interfaces *inside* the
# container; publish them on loopback only unless players run elsewhere):
#   docker run --rm -p 127.0.0.1:8585:8585 -p 127.0.0.1:9585:9585 hivecast-agent \
#     run --allow-origin https://cdn.example.com --tracker wss://tracker.example.com
# WebRTC uses ephemeral UDP ports: on a bridge network peers reach each other through the
# container IPs (same host) or STUN-discovered addresses; use --network host on edge boxes
# whose agents must be reachable from other hosts without TURN.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---- build --------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder
WORKDIR /src
COPY . .
# Registry and target dir are BuildKit cache mounts: rebuilds reuse compiled dependencies.
# The binary is copied out of the cache mount, which does not persist into the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,id=hivecast-target,sharing=locked \
    cargo build --release --locked -p hivecast-agent --bin hivecast-agent \
    && install -D -m 0755 target/release/hivecast-agent /out/hivecast-agent

# ---- runtime ------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates: https origins and wss trackers (rustls with the system roots or webpki).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# Fixed non-root UID/GID so volumes and Kubernetes runAsUser can refer to it. /srv/hls is the
# mount point `publish-digests` uses in the compose demo; owning it lets a fresh named volume
# inherit the owner.
RUN groupadd --system --gid 10001 hivecast \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin hivecast \
    && install -d -o 10001 -g 10001 -m 0755 /srv/hls
COPY --from=builder /out/hivecast-agent /usr/local/bin/hivecast-agent
COPY --chmod=0755 deploy/container/healthcheck.sh /usr/local/bin/hivecast-healthcheck
# Inside a container the listeners must not be on loopback to be reachable through published
# ports. Layering: file < environment < flags, so flags still win.
ENV HIVECAST_AGENT__SERVER__LISTEN=0.0.0.0:8585 \
    HIVECAST_AGENT__SERVER__ADMIN_LISTEN=0.0.0.0:9585 \
    HIVECAST_HEALTHCHECK_PORT=9585
USER 10001:10001
EXPOSE 8585/tcp 9585/tcp
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["/usr/local/bin/hivecast-healthcheck"]
ENTRYPOINT ["/usr/local/bin/hivecast-agent"]
CMD ["run"]
