//! The synthetic source of `hivecast-bench swarm`: a VOD media playlist of MPEG-TS-shaped
//! segments whose sizes follow the requested bitrate, for the live packager to loop.
//!
//! Each segment is a run of 188-byte null packets (sync byte `0x47`, PID `0x1FFF`) with random
//! payload: a transport-stream reader skips them, nothing compresses them, and their size is
//! what a real encoder at that bitrate produces on average. Sizes vary ±15 % around the mean
//! (seeded), like a VBR encode, so transfers are not artificially uniform.

use std::io;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// MPEG-TS packet size.
const TS_PACKET: usize = 188;

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthSpec {
    /// Bits per second.
    pub bitrate_bps: f64,
    /// `EXTINF` of every segment, seconds.
    pub segment_secs: f64,
    /// Distinct segments (the packager loops them with a discontinuity).
    pub segments: usize,
    /// RNG seed.
    pub seed: u64,
}

impl SynthSpec {
    /// Mean segment size in bytes.
    pub fn mean_segment_bytes(&self) -> f64 {
        self.bitrate_bps / 8.0 * self.segment_secs
    }
}

/// Segment sizes (multiples of 188 bytes, at least one packet) for `spec`, mean within one
/// packet of [`SynthSpec::mean_segment_bytes`] per segment.
pub fn segment_sizes(spec: &SynthSpec) -> Vec<usize> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mean = spec.mean_segment_bytes();
    (0..spec.segments)
        .map(|_| {
            let factor: f64 = rng.random_range(0.85..=1.15);
            let packets = (mean * factor / TS_PACKET as f64).round().max(1.0) as usize;
            packets * TS_PACKET
        })
        .collect()
}

/// Writes `source.m3u8` and its segments into `dir`; returns the playlist path.
pub fn write_source(dir: &Path, spec: &SynthSpec) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let sizes = segment_sizes(spec);
    let mut rng = StdRng::seed_from_u64(spec.seed ^ 0x5eed);
    let target = spec.segment_secs.ceil().max(1.0) as u64;
    let mut playlist = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n"
    );
    for (i, size) in sizes.iter().enumerate() {
        let name = format!("src_{i:04}.ts");
        let mut data = vec![0u8; *size];
        rng.fill(&mut data[..]);
        for packet in data.chunks_mut(TS_PACKET) {
            // Null packet header: sync, PID 0x1FFF, payload only, continuity counter 0.
            packet[..4].copy_from_slice(&[0x47, 0x1F, 0xFF, 0x10]);
        }
        std::fs::write(dir.join(&name), &data)?;
        playlist.push_str(&format!("#EXTINF:{:.6},\n{name}\n", spec.segment_secs));
    }
    playlist.push_str("#EXT-X-ENDLIST\n");
    let path = dir.join("source.m3u8");
    std::fs::write(&path, playlist)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_bitrate() {
        let spec = SynthSpec {
            bitrate_bps: 3_000_000.0,
            segment_secs: 2.0,
            segments: 400,
            seed: 7,
        };
        let sizes = segment_sizes(&spec);
        assert_eq!(sizes.len(), 400);
        assert!(sizes.iter().all(|s| s % TS_PACKET == 0 && *s > 0));
        let mean = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
        let want = spec.mean_segment_bytes();
        assert!((mean / want - 1.0).abs() < 0.02, "mean {mean} vs {want}");
        let (lo, hi) = (
            *sizes.iter().min().expect("min") as f64,
            *sizes.iter().max().expect("max") as f64,
        );
        assert!(lo >= want * 0.84 && hi <= want * 1.16, "{lo}..{hi}");
        assert_eq!(sizes, segment_sizes(&spec), "seeded");
    }

    #[test]
    fn source_is_a_playable_vod_of_null_packets() {
        let dir = std::env::temp_dir().join(format!("hivecast-synth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let spec = SynthSpec {
            bitrate_bps: 500_000.0,
            segment_secs: 1.5,
            segments: 3,
            seed: 1,
        };
        let path = write_source(&dir, &spec).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("#EXTM3U\n"));
        assert!(text.contains("#EXT-X-TARGETDURATION:2\n"));
        assert_eq!(text.matches("#EXTINF:1.500000,").count(), 3);
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
        for (i, size) in segment_sizes(&spec).into_iter().enumerate() {
            let data = std::fs::read(dir.join(format!("src_{i:04}.ts"))).expect("segment");
            assert_eq!(data.len(), size);
            assert!(
                data.chunks(TS_PACKET)
                    .all(|p| p[0] == 0x47 && p[1] == 0x1F && p[2] == 0xFF)
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
