//! Live hold-back: serving players a live media playlist without its newest segments.
//!
//! A player starts a fixed distance behind the live edge of the playlist it sees (hls.js: three
//! target durations). Withholding the newest `n` segments from the player moves that edge back
//! by `n` segments, so every segment reaches the agent `n` segment durations before its player
//! needs it. The swarm spends that time spreading it between peers instead of fetching it from
//! the origin: BENCHMARKS.md gives the offload for each extra segment of latency. The agent
//! itself still follows the whole playlist: only the bytes served to the player change.
//!
//! The cut is made after the URI line of the last kept segment, so the tags that belong to
//! withheld segments (`EXTINF`, `EXT-X-PROGRAM-DATE-TIME`, `EXT-X-KEY`, `EXT-X-DISCONTINUITY`,
//! date ranges) go with them and come back with them. Nothing is withheld from VOD or ended
//! playlists, from playlists whose LL-HLS parts are passed through (a part list cannot lose its
//! segments' tail consistently), or below [`MIN_KEPT`] segments.

use super::info::MediaInfo;
use super::lines::Lines;

/// Segments a held-back playlist keeps at least: a player starting three target durations
/// behind the edge needs three.
pub const MIN_KEPT: usize = 3;

/// What the hold-back did to one playlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldBack {
    /// Not asked for, or not a live playlist.
    Off,
    /// This many of the newest segments were withheld (fewer than asked while the playlist is
    /// short: at most all but [`MIN_KEPT`]).
    Applied(usize),
    /// Asked for, but nothing was withheld.
    Skipped(HoldBackSkip),
}

impl HoldBack {
    /// The `outcome` label of `hivecast_agent_playlist_hold_back_total`, or `None` when there
    /// was nothing to hold back from (not asked for, or not live).
    pub fn outcome_label(self) -> Option<&'static str> {
        match self {
            HoldBack::Off => None,
            HoldBack::Applied(_) => Some("applied"),
            HoldBack::Skipped(why) => Some(why.as_label()),
        }
    }
}

/// Why a live playlist was served whole although a hold-back is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldBackSkip {
    /// It carries LL-HLS parts, hints or reports and the agent passes them through.
    LowLatency,
    /// It lists [`MIN_KEPT`] segments or fewer.
    ShortWindow,
}

impl HoldBackSkip {
    /// Stable metric label value.
    pub fn as_label(self) -> &'static str {
        match self {
            HoldBackSkip::LowLatency => "low_latency",
            HoldBackSkip::ShortWindow => "short_window",
        }
    }
}

/// Withholds up to `segments` of the newest segments of `body`, the rewritten form of the
/// media playlist `info` describes. `ll_stripped`: the rewrite removed LL-HLS tags.
pub(crate) fn apply(
    body: &mut Vec<u8>,
    info: &MediaInfo,
    segments: usize,
    ll_stripped: bool,
) -> HoldBack {
    if segments == 0 || !info.is_live() {
        return HoldBack::Off;
    }
    if info.is_low_latency() && !ll_stripped {
        return HoldBack::Skipped(HoldBackSkip::LowLatency);
    }
    let listed = info.segments.len();
    let held = segments.min(listed.saturating_sub(MIN_KEPT));
    if held == 0 {
        return HoldBack::Skipped(HoldBackSkip::ShortWindow);
    }
    let keep = listed - held;
    let Ok(text) = std::str::from_utf8(body) else {
        // The rewrite only ever produces UTF-8 (it parsed UTF-8 and inserts strings).
        return HoldBack::Off;
    };
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let mut uris = 0;
    let mut cut = None;
    for line in Lines::new(text, bom) {
        let t = line.text.trim_matches([' ', '\t']);
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        uris += 1;
        if uris == keep {
            cut = Some(line.next);
        }
    }
    match cut {
        // Every URI line of a media playlist is a segment, so the count matches the parse.
        // (The kept line is never the last one, so its terminator is part of the cut.)
        Some(at) if uris == listed => {
            body.truncate(at);
            HoldBack::Applied(held)
        }
        _ => {
            debug_assert!(false, "{uris} URI lines for {listed} segments");
            HoldBack::Off
        }
    }
}
