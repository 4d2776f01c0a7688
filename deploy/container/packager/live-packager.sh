#!/bin/bash
# Live HLS packager for the compose demo: encodes a synthetic test pattern with a tone into two
# renditions (720p, 360p) of 2-second segments and writes them, with a multivariant playlist,
# to $HLS_DIR/live/. Playlists and segments are written to a temporary name and renamed
# (hls_flags temp_file), so `publish-digests --watch` and nginx never see half-written files.
# Media sequence numbers start from the epoch, so a restart never reuses segment numbers.
set -euo pipefail
out="${HLS_DIR:-/srv/hls}/live"
segment_seconds="${SEGMENT_SECONDS:-2}"
fps=30
gop=$((fps * segment_seconds))
mkdir -p "$out"
exec ffmpeg -hide_banner -loglevel "${FFMPEG_LOGLEVEL:-warning}" -nostdin -re \
  -f lavfi -i "testsrc2=size=1280x720:rate=${fps}" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000" \
  -filter_complex "[0:v]drawtext=text='hivecast %{localtime\:%T}':fontsize=48:fontcolor=white:box=1:boxcolor=black@0.5:x=40:y=40,split=2[v720][vin];[vin]scale=640:360[v360]" \
  -map "[v720]" -map "[v360]" -map 1:a -map 1:a \
  -c:v libx264 -preset veryfast -profile:v main -pix_fmt yuv420p \
  -g "$gop" -keyint_min "$gop" -sc_threshold 0 \
  -b:v:0 2500k -maxrate:v:0 2750k -bufsize:v:0 5000k \
  -b:v:1 800k -maxrate:v:1 880k -bufsize:v:1 1600k \
  -c:a aac -b:a 96k -ac 2 \
  -f hls -hls_time "$segment_seconds" -hls_list_size 10 -hls_delete_threshold 3 \
  -hls_flags delete_segments+independent_segments+temp_file+program_date_time \
  -hls_start_number_source epoch \
  -hls_segment_filename "$out/%v/seg_%09d.ts" \
  -master_pl_name master.m3u8 \
  -var_stream_map "v:0,a:0,name:720p v:1,a:1,name:360p" \
  "$out/%v/index.m3u8"
