//! Real HLS test streams made with ffmpeg, generated once into a cache directory and reused
//! by every test process.
//!
//! # Layout (`<cache>/v1/`, paths relative to [`Fixtures::root`])
//!
//! | constant | playlist | content |
//! |---|---|---|
//! | [`VOD_TS`] | `vod-ts/index.m3u8` | 3 × 2 s MPEG-TS, H.264 426x240 + AAC |
//! | [`VOD_FMP4`] | `vod-fmp4/index.m3u8` | 3 × 2 s fMP4 (`EXT-X-MAP` `init.mp4`, `seg_NNN.m4s`) |
//! | [`MULTIVARIANT`] | `multivariant/master.m3u8` | two video variants (`360p/`, `240p/`), an `EXT-X-MEDIA TYPE=AUDIO` rendition (`audio/`) and a WebVTT `TYPE=SUBTITLES` rendition (`360p/index_vtt.m3u8`), 3 × 2 s, TS |
//! | [`AES`] | `aes/index.m3u8` | 3 × 2 s TS, AES-128, key `aes/enc.key` = [`AES_KEY`], key URI `enc.key` |
//! | [`BYTERANGE`] | `byterange/index.m3u8` | 3 × 2 s as `EXT-X-BYTERANGE` ranges of one `media.ts` |
//! | [`LIVE_SOURCE_TS`] | `live-src-ts/index.m3u8` | 10 × 2 s TS (`src_NNN.ts`): the loop for [`crate::live`] |
//! | [`LIVE_SOURCE_FMP4`] | `live-src-fmp4/index.m3u8` | 10 × 2 s fMP4 (`init.mp4`, `src_NNN.m4s`) |
//!
//! All video is H.264 (x264 `ultrafast`, constrained baseline) at 30 fps with a fixed 2 s GOP
//! (`-g 60 -keyint_min 60 -sc_threshold 0`), so every segment is exactly 2 s, starts with a
//! key frame, and all variants align; audio is AAC 48 kHz stereo. Generation takes about 4 s
//! of CPU in total and 4.9 MB of disk.
//!
//! # Cache and concurrency
//!
//! The cache directory is, in order: `$HIVECAST_FIXTURES_DIR`; `<cargo target dir>/hivecast-fixtures`
//! (found from the running executable: the ancestor directory holding `CACHEDIR.TAG`);
//! `$TMPDIR/hivecast-fixtures`. Everything is generated into a private temporary directory
//! next to `v1/`, stamped with a `.complete` file and then renamed into place in one step, so a
//! concurrent test process either sees a complete `v1/` or none; if two processes race, one
//! rename wins and the other discards its copy. The ffmpeg binary is `$HIVECAST_FFMPEG` or
//! `ffmpeg` on the `PATH`; when it is missing, [`FixtureError::FfmpegMissing`] says so.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Version of the fixture recipe; bump it when any command below changes.
pub const FIXTURES_VERSION: &str = "v1";
/// VOD, MPEG-TS.
pub const VOD_TS: &str = "vod-ts/index.m3u8";
/// VOD, fMP4 with `EXT-X-MAP`.
pub const VOD_FMP4: &str = "vod-fmp4/index.m3u8";
/// Multivariant playlist: two video variants, an audio rendition and a subtitles rendition.
pub const MULTIVARIANT: &str = "multivariant/master.m3u8";
/// Media playlists referenced by [`MULTIVARIANT`].
pub const MULTIVARIANT_MEDIA: [&str; 4] = [
    "multivariant/audio/index.m3u8",
    "multivariant/360p/index_vtt.m3u8",
    "multivariant/360p/index.m3u8",
    "multivariant/240p/index.m3u8",
];
/// AES-128 encrypted VOD.
pub const AES: &str = "aes/index.m3u8";
/// The AES-128 key file of [`AES`].
pub const AES_KEY_FILE: &str = "aes/enc.key";
/// The AES-128 key bytes.
pub const AES_KEY: [u8; 16] = *b"hivecast-key-128";
/// Single-file byte-range TS.
pub const BYTERANGE: &str = "byterange/index.m3u8";
/// Source segment set for looping live streams, MPEG-TS.
pub const LIVE_SOURCE_TS: &str = "live-src-ts/index.m3u8";
/// Source segment set for looping live streams, fMP4.
pub const LIVE_SOURCE_FMP4: &str = "live-src-fmp4/index.m3u8";

const STAMP: &str = ".complete";

/// Why fixtures could not be produced.
#[derive(Debug, Error)]
pub enum FixtureError {
    /// The ffmpeg binary could not be run.
    #[error(
        "ffmpeg not found ({path}): install it (Debian: apt-get install -y --no-install-recommends ffmpeg) or set HIVECAST_FFMPEG"
    )]
    FfmpegMissing {
        /// The binary that was tried.
        path: PathBuf,
    },
    /// An ffmpeg run failed.
    #[error("ffmpeg failed making fixture {step} ({status}): {stderr}")]
    Ffmpeg {
        /// Which fixture.
        step: &'static str,
        /// Exit status.
        status: String,
        /// The end of ffmpeg's stderr.
        stderr: String,
    },
    /// ffmpeg succeeded but an expected file is missing.
    #[error("fixture {step}: ffmpeg did not produce {path}")]
    MissingOutput {
        /// Which fixture.
        step: &'static str,
        /// The missing file.
        path: PathBuf,
    },
    /// File system error.
    #[error("fixture cache {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FixtureError + '_ {
    move |source| FixtureError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where and with what to generate.
#[derive(Debug, Clone)]
pub struct FixtureOptions {
    /// Cache directory (the fixtures land in `cache_dir/v1`).
    pub cache_dir: PathBuf,
    /// ffmpeg binary.
    pub ffmpeg: PathBuf,
}

impl Default for FixtureOptions {
    fn default() -> Self {
        FixtureOptions {
            cache_dir: default_cache_dir(),
            ffmpeg: std::env::var_os("HIVECAST_FFMPEG")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("ffmpeg")),
        }
    }
}

/// The default cache directory (see the module docs).
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HIVECAST_FIXTURES_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(target) = cargo_target_dir() {
        return target.join("hivecast-fixtures");
    }
    std::env::temp_dir().join("hivecast-fixtures")
}

/// The cargo target directory the running executable lives in, if any (the ancestor that
/// holds cargo's `CACHEDIR.TAG`).
pub fn cargo_target_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .find(|d| d.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
}

/// Generated fixtures (a complete `v1/` directory).
#[derive(Debug, Clone)]
pub struct Fixtures {
    root: PathBuf,
}

/// Serializes generation within one process (other processes are handled by the rename).
static GENERATION: Mutex<()> = Mutex::new(());

impl Fixtures {
    /// Makes sure the fixtures exist in the default cache (generating them if needed) and
    /// returns them. Blocking; from async code use [`Fixtures::ensure_async`].
    pub fn ensure() -> Result<Fixtures, FixtureError> {
        Fixtures::ensure_with(&FixtureOptions::default())
    }

    /// [`Fixtures::ensure`] on a blocking thread.
    pub async fn ensure_async() -> Result<Fixtures, FixtureError> {
        match tokio::task::spawn_blocking(Fixtures::ensure).await {
            Ok(r) => r,
            Err(e) => Err(FixtureError::Io {
                path: default_cache_dir(),
                source: io::Error::other(e.to_string()),
            }),
        }
    }

    /// Like [`Fixtures::ensure`] with explicit options.
    pub fn ensure_with(opts: &FixtureOptions) -> Result<Fixtures, FixtureError> {
        let root = opts.cache_dir.join(FIXTURES_VERSION);
        if root.join(STAMP).is_file() {
            return Ok(Fixtures { root });
        }
        let _guard = GENERATION.lock().unwrap_or_else(|e| e.into_inner());
        if root.join(STAMP).is_file() {
            return Ok(Fixtures { root });
        }
        check_ffmpeg(&opts.ffmpeg)?;
        std::fs::create_dir_all(&opts.cache_dir).map_err(io_err(&opts.cache_dir))?;
        remove_stale_temp_dirs(&opts.cache_dir);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let tmp = opts.cache_dir.join(format!(
            "{FIXTURES_VERSION}.tmp-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        let started = std::time::Instant::now();
        let result = generate_all(&opts.ffmpeg, &tmp)
            .and_then(|()| std::fs::write(tmp.join(STAMP), FIXTURES_VERSION).map_err(io_err(&tmp)));
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        tracing::info!(dir = %root.display(), elapsed = ?started.elapsed(), "generated HLS fixtures");
        publish(&tmp, &root)?;
        Ok(Fixtures { root })
    }

    /// Uses an existing, complete fixture directory (`.../v1`) without generating anything.
    pub fn open(root: impl Into<PathBuf>) -> Result<Fixtures, FixtureError> {
        let root = root.into();
        let stamp = root.join(STAMP);
        if stamp.is_file() {
            Ok(Fixtures { root })
        } else {
            Err(FixtureError::Io {
                path: stamp,
                source: io::Error::new(io::ErrorKind::NotFound, "fixtures are not complete"),
            })
        }
    }

    /// The fixture root (serve it with [`crate::origin::Origin`]).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `root/rel`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

fn check_ffmpeg(ffmpeg: &Path) -> Result<(), FixtureError> {
    let out = Command::new(ffmpeg)
        .arg("-version")
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err(FixtureError::FfmpegMissing {
            path: ffmpeg.to_path_buf(),
        }),
    }
}

/// Removes temporary generation directories left by killed processes (older than 10 min).
fn remove_stale_temp_dirs(cache: &Path) {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    let prefix = format!("{FIXTURES_VERSION}.tmp-");
    let prefix_stale = format!("{FIXTURES_VERSION}.stale-");
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(&prefix) && !name.starts_with(&prefix_stale) {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(600));
        if old {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Moves the finished `tmp` into place as `root`, coping with a concurrent winner.
fn publish(tmp: &Path, root: &Path) -> Result<(), FixtureError> {
    for _ in 0..3 {
        match std::fs::rename(tmp, root) {
            Ok(()) => return Ok(()),
            Err(_) if root.join(STAMP).is_file() => {
                // Another process finished first; use its copy.
                let _ = std::fs::remove_dir_all(tmp);
                return Ok(());
            }
            Err(e) if root.exists() => {
                // An incomplete directory that no generator of ours can have made (they
                // only rename complete ones): move it aside and retry.
                tracing::warn!(dir = %root.display(), error = %e, "replacing incomplete fixture dir");
                let aside =
                    root.with_file_name(format!("{FIXTURES_VERSION}.stale-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&aside);
                std::fs::rename(root, &aside).map_err(io_err(root))?;
                let _ = std::fs::remove_dir_all(&aside);
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(tmp);
                return Err(FixtureError::Io {
                    path: root.to_path_buf(),
                    source: e,
                });
            }
        }
    }
    Err(FixtureError::Io {
        path: root.to_path_buf(),
        source: io::Error::other("could not move the fixtures into place"),
    })
}

const SRT: &str = "1\n00:00:00,000 --> 00:00:01,900\nhivecast subtitle one\n\n\
2\n00:00:02,000 --> 00:00:03,900\nhivecast subtitle two\n\n\
3\n00:00:04,000 --> 00:00:05,900\nhivecast subtitle three\n";

/// Video and audio encoder settings shared by every fixture.
fn encode_args(bitrate: &str) -> Vec<String> {
    [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "60",
        "-keyint_min",
        "60",
        "-sc_threshold",
        "0",
        "-b:v",
        bitrate,
        "-maxrate",
        bitrate,
        "-bufsize",
        bitrate,
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        "-ac",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Synthetic inputs: test pattern video and a sine tone. The audio input is 20 ms shorter
/// than the video so that the last audio segment is not a sliver. Inputs only: add
/// [`duration_args`] after the last input.
fn source_args(size: &str, seconds: u32) -> Vec<String> {
    let audio = format!("{:.2}", f64::from(seconds) - 0.02);
    vec![
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("testsrc2=size={size}:rate=30"),
        "-t".into(),
        audio,
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        "sine=frequency=440:sample_rate=48000".into(),
    ]
}

/// Output duration: must come after every input (an `-t` before an `-i` limits that input).
fn duration_args(seconds: u32) -> Vec<String> {
    vec!["-t".into(), seconds.to_string()]
}

/// Longest a single ffmpeg run may take before it is killed (normal runs take ~1 s).
const FFMPEG_TIMEOUT: Duration = Duration::from_secs(120);

fn run_ffmpeg(
    ffmpeg: &Path,
    step: &'static str,
    cwd: &Path,
    args: &[String],
) -> Result<(), FixtureError> {
    let log_path = cwd.join(format!(".{step}.log"));
    let log = std::fs::File::create(&log_path).map_err(io_err(&log_path))?;
    let mut child = Command::new(ffmpeg)
        .current_dir(cwd)
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => {
                FixtureError::FfmpegMissing {
                    path: ffmpeg.to_path_buf(),
                }
            }
            _ => FixtureError::Io {
                path: ffmpeg.to_path_buf(),
                source: e,
            },
        })?;
    let started = std::time::Instant::now();
    // A bound, not a readiness wait: poll the child until it exits or the time is up.
    let status = loop {
        match child.try_wait().map_err(io_err(ffmpeg))? {
            Some(status) => break Some(status),
            None if started.elapsed() > FFMPEG_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let stderr = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    let tail: String = {
        let chars: Vec<char> = stderr.chars().collect();
        chars[chars.len().saturating_sub(2000)..].iter().collect()
    };
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(FixtureError::Ffmpeg {
            step,
            status: s.to_string(),
            stderr: tail,
        }),
        None => Err(FixtureError::Ffmpeg {
            step,
            status: format!("killed after {FFMPEG_TIMEOUT:?}"),
            stderr: tail,
        }),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn generate_all(ffmpeg: &Path, dir: &Path) -> Result<(), FixtureError> {
    let hls_vod = strings(&["-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod"]);
    for sub in [
        "vod-ts",
        "vod-fmp4",
        "multivariant",
        "aes",
        "byterange",
        "live-src-ts",
        "live-src-fmp4",
    ] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).map_err(io_err(&d))?;
    }

    // VOD TS.
    let mut a = source_args("426x240", 6);
    a.extend(duration_args(6));
    a.extend(encode_args("400k"));
    a.extend(hls_vod.clone());
    a.extend(strings(&[
        "-hls_segment_filename",
        "vod-ts/seg_%03d.ts",
        VOD_TS,
    ]));
    run_ffmpeg(ffmpeg, "vod-ts", dir, &a)?;

    // VOD fMP4.
    let mut a = source_args("426x240", 6);
    a.extend(duration_args(6));
    a.extend(encode_args("400k"));
    a.extend(hls_vod.clone());
    a.extend(strings(&[
        "-hls_segment_type",
        "fmp4",
        "-hls_fmp4_init_filename",
        "init.mp4",
        "-hls_flags",
        "independent_segments",
        "-hls_segment_filename",
        "vod-fmp4/seg_%03d.m4s",
        VOD_FMP4,
    ]));
    run_ffmpeg(ffmpeg, "vod-fmp4", dir, &a)?;

    // Multivariant: 360p + 240p video, separate audio group, WebVTT subtitles.
    let srt = dir.join("multivariant/subs.srt");
    std::fs::write(&srt, SRT).map_err(io_err(&srt))?;
    let mut a = source_args("640x360", 6);
    a.extend(strings(&["-i", "multivariant/subs.srt"]));
    a.extend(duration_args(6));
    a.extend(strings(&[
        "-filter_complex",
        "[0:v]split=2[v1][v2];[v2]scale=426:240[v2o]",
        "-map",
        "[v1]",
        "-map",
        "[v2o]",
        "-map",
        "1:a",
        "-map",
        "2:s",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "60",
        "-keyint_min",
        "60",
        "-sc_threshold",
        "0",
        "-b:v:0",
        "600k",
        "-maxrate:v:0",
        "600k",
        "-bufsize:v:0",
        "600k",
        "-b:v:1",
        "300k",
        "-maxrate:v:1",
        "300k",
        "-bufsize:v:1",
        "300k",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        "-ac",
        "2",
        "-c:s",
        "webvtt",
    ]));
    a.extend(hls_vod.clone());
    a.extend(strings(&[
        "-hls_flags", "independent_segments", "-master_pl_name", "master.m3u8",
        "-var_stream_map",
        "a:0,agroup:aud,name:audio,default:yes,language:en v:0,s:0,agroup:aud,sgroup:subs,name:360p v:1,agroup:aud,name:240p",
        "-hls_segment_filename", "multivariant/%v/seg_%03d.ts", "multivariant/%v/index.m3u8",
    ]));
    run_ffmpeg(ffmpeg, "multivariant", dir, &a)?;
    let _ = std::fs::remove_file(&srt);

    // AES-128.
    let key = dir.join(AES_KEY_FILE);
    std::fs::write(&key, AES_KEY).map_err(io_err(&key))?;
    let keyinfo = dir.join("aes/keyinfo.txt");
    std::fs::write(&keyinfo, format!("enc.key\n{}\n", key.display())).map_err(io_err(&keyinfo))?;
    let mut a = source_args("426x240", 6);
    a.extend(duration_args(6));
    a.extend(encode_args("400k"));
    a.extend(hls_vod.clone());
    a.extend(strings(&[
        "-hls_key_info_file",
        "aes/keyinfo.txt",
        "-hls_segment_filename",
        "aes/seg_%03d.ts",
        AES,
    ]));
    run_ffmpeg(ffmpeg, "aes", dir, &a)?;
    let _ = std::fs::remove_file(&keyinfo);

    // Single-file byte ranges.
    let mut a = source_args("426x240", 6);
    a.extend(duration_args(6));
    a.extend(encode_args("400k"));
    a.extend(hls_vod.clone());
    a.extend(strings(&[
        "-hls_flags",
        "single_file",
        "-hls_segment_filename",
        "byterange/media.ts",
        BYTERANGE,
    ]));
    run_ffmpeg(ffmpeg, "byterange", dir, &a)?;

    // Live loop sources.
    let mut a = source_args("426x240", 20);
    a.extend(duration_args(20));
    a.extend(encode_args("400k"));
    a.extend(hls_vod.clone());
    a.extend(strings(&[
        "-hls_segment_filename",
        "live-src-ts/src_%03d.ts",
        LIVE_SOURCE_TS,
    ]));
    run_ffmpeg(ffmpeg, "live-src-ts", dir, &a)?;

    let mut a = source_args("426x240", 20);
    a.extend(duration_args(20));
    a.extend(encode_args("400k"));
    a.extend(hls_vod);
    a.extend(strings(&[
        "-hls_segment_type",
        "fmp4",
        "-hls_fmp4_init_filename",
        "init.mp4",
        "-hls_flags",
        "independent_segments",
        "-hls_segment_filename",
        "live-src-fmp4/src_%03d.m4s",
        LIVE_SOURCE_FMP4,
    ]));
    run_ffmpeg(ffmpeg, "live-src-fmp4", dir, &a)?;

    let expected = [
        VOD_TS,
        VOD_FMP4,
        "vod-fmp4/init.mp4",
        MULTIVARIANT,
        AES,
        AES_KEY_FILE,
        BYTERANGE,
        "byterange/media.ts",
        LIVE_SOURCE_TS,
        LIVE_SOURCE_FMP4,
        "live-src-fmp4/init.mp4",
    ];
    for rel in expected.iter().chain(MULTIVARIANT_MEDIA.iter()) {
        let p = dir.join(rel);
        if !p.is_file() {
            return Err(FixtureError::MissingOutput {
                step: "check",
                path: p,
            });
        }
    }
    Ok(())
}

/// What ffprobe says about a file or playlist.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeInfo {
    /// Container duration in seconds, if reported.
    pub duration: Option<f64>,
    /// The streams found.
    pub streams: Vec<ProbeStream>,
}

/// One stream reported by ffprobe.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeStream {
    /// `video`, `audio`, `subtitle`, ...
    pub codec_type: String,
    /// `h264`, `aac`, `webvtt`, ...
    pub codec_name: String,
    /// Width (video).
    pub width: Option<u32>,
    /// Height (video).
    pub height: Option<u32>,
}

/// Runs `ffprobe` (`$HIVECAST_FFPROBE` or `ffprobe`) on a local path or an `http://` URL.
/// Local AES playlists need `-allowed_extensions ALL`, which is always passed for `.m3u8`.
pub fn probe(target: &str) -> Result<ProbeInfo, FixtureError> {
    let ffprobe = std::env::var_os("HIVECAST_FFPROBE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("ffprobe"));
    let mut cmd = Command::new(&ffprobe);
    cmd.args([
        "-v",
        "error",
        "-of",
        "json",
        "-show_format",
        "-show_streams",
    ]);
    if target.ends_with(".m3u8") {
        cmd.args(["-allowed_extensions", "ALL"]);
    }
    let out = cmd
        .arg(target)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|_| FixtureError::FfmpegMissing {
            path: ffprobe.clone(),
        })?;
    if !out.status.success() {
        return Err(FixtureError::Ffmpeg {
            step: "ffprobe",
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    #[derive(Deserialize)]
    struct Raw {
        #[serde(default)]
        format: Option<RawFormat>,
        #[serde(default)]
        streams: Vec<RawStream>,
    }
    #[derive(Deserialize)]
    struct RawFormat {
        duration: Option<String>,
    }
    #[derive(Deserialize)]
    struct RawStream {
        #[serde(default)]
        codec_type: String,
        #[serde(default)]
        codec_name: String,
        width: Option<u32>,
        height: Option<u32>,
    }
    let raw: Raw = serde_json::from_slice(&out.stdout).map_err(|e| FixtureError::Ffmpeg {
        step: "ffprobe",
        status: "unparsable output".into(),
        stderr: e.to_string(),
    })?;
    Ok(ProbeInfo {
        duration: raw
            .format
            .and_then(|f| f.duration)
            .and_then(|d| d.parse().ok()),
        streams: raw
            .streams
            .into_iter()
            .map(|s| ProbeStream {
                codec_type: s.codec_type,
                codec_name: s.codec_name,
                width: s.width,
                height: s.height,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "hivecast-fixtures-unit-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    fn complete_dir(path: &Path, marker: &str) {
        std::fs::create_dir_all(path).expect("mkdir");
        std::fs::write(path.join("marker"), marker).expect("write");
        std::fs::write(path.join(STAMP), FIXTURES_VERSION).expect("stamp");
    }

    #[test]
    fn publish_keeps_the_first_complete_copy() {
        let d = scratch("race");
        let root = d.join("v1");
        complete_dir(&root, "winner");
        let tmp = d.join("v1.tmp-1-1");
        complete_dir(&tmp, "loser");
        publish(&tmp, &root).expect("publish");
        assert!(!tmp.exists(), "the losing copy is discarded");
        assert_eq!(
            std::fs::read_to_string(root.join("marker")).expect("read"),
            "winner"
        );
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn publish_replaces_an_incomplete_dir() {
        let d = scratch("incomplete");
        let root = d.join("v1");
        std::fs::create_dir_all(root.join("junk")).expect("mkdir");
        let tmp = d.join("v1.tmp-1-2");
        complete_dir(&tmp, "fresh");
        publish(&tmp, &root).expect("publish");
        assert_eq!(
            std::fs::read_to_string(root.join("marker")).expect("read"),
            "fresh"
        );
        assert!(Fixtures::open(&root).is_ok());
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn missing_ffmpeg_is_a_clear_error() {
        let d = scratch("noffmpeg");
        let opts = FixtureOptions {
            cache_dir: d.clone(),
            ffmpeg: d.join("no-such-ffmpeg"),
        };
        let err = Fixtures::ensure_with(&opts).expect_err("must fail");
        assert!(matches!(err, FixtureError::FfmpegMissing { .. }), "{err}");
        assert!(err.to_string().contains("apt-get install"), "{err}");
        assert!(Fixtures::open(d.join("v1")).is_err());
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn failing_ffmpeg_reports_stderr_and_leaves_no_temp_dir() {
        let d = scratch("badffmpeg");
        // A fake "ffmpeg" that passes -version but fails every real run.
        let fake = d.join("fake-ffmpeg");
        std::fs::write(
            &fake,
            "#!/bin/sh\nif [ \"$1\" = -version ]; then exit 0; fi\necho 'simulated failure' >&2\nexit 3\n",
        )
        .expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let cache = d.join("cache");
        let opts = FixtureOptions {
            cache_dir: cache.clone(),
            ffmpeg: fake,
        };
        let err = Fixtures::ensure_with(&opts).expect_err("must fail");
        match &err {
            FixtureError::Ffmpeg { step, stderr, .. } => {
                assert_eq!(*step, "vod-ts");
                assert!(stderr.contains("simulated failure"), "{stderr}");
            }
            other => panic!("unexpected error {other}"),
        }
        let leftovers: Vec<_> = std::fs::read_dir(&cache).expect("read").flatten().collect();
        assert!(leftovers.is_empty(), "temporary directory removed");
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}
