# syntax=docker/dockerfile:1.7
# Live HLS packager for the compose demo (ffmpeg from Debian). Build context: deploy/container.
#   docker build -f deploy/container/packager.Dockerfile -t hivecast-packager deploy/container
ARG DEBIAN_RELEASE=bookworm
FROM debian:${DEBIAN_RELEASE}-slim
# fonts-dejavu-core: drawtext needs a font for the clock overlay.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
# Same UID as the hivecast images, so the digest publisher can write next to the segments.
RUN groupadd --system --gid 10001 hivecast \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin hivecast \
    && install -d -o 10001 -g 10001 -m 0755 /srv/hls
COPY --chmod=0755 packager/live-packager.sh /usr/local/bin/live-packager
ENV HLS_DIR=/srv/hls
USER 10001:10001
# Healthy while the 720p media playlist keeps being rewritten.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/bin/sh", "-c", "find /srv/hls/live/720p/index.m3u8 -newermt '-10 seconds' | grep -q ."]
ENTRYPOINT ["/usr/local/bin/live-packager"]
