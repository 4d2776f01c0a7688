# syntax=docker/dockerfile:1.7
# hivecast-tracker image. Build from the repository root:
#   docker build -f deploy/container/tracker.Dockerfile -t hivecast-tracker .
# Run: docker run --rm -p 8000:8000 -p 127.0.0.1:9586:9586 hivecast-tracker
# The WebSocket listener (8000) speaks plain ws://; terminate TLS (wss://) in front of it.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---- build --------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,id=hivecast-target,sharing=locked \
    cargo build --release --locked -p hivecast-tracker --bin hivecast-tracker \
    && install -D -m 0755 target/release/hivecast-tracker /out/hivecast-tracker

# ---- runtime ------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 hivecast \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin hivecast
COPY --from=builder /out/hivecast-tracker /usr/local/bin/hivecast-tracker
COPY --chmod=0755 deploy/container/healthcheck.sh /usr/local/bin/hivecast-healthcheck
ENV HIVECAST_TRACKER__SERVER__LISTEN=0.0.0.0:8000 \
    HIVECAST_TRACKER__ADMIN__LISTEN=0.0.0.0:9586 \
    HIVECAST_HEALTHCHECK_PORT=9586
USER 10001:10001
EXPOSE 8000/tcp 9586/tcp
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/hivecast-healthcheck"]
ENTRYPOINT ["/usr/local/bin/hivecast-tracker"]
CMD ["run"]
