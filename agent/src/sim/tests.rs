//! Deterministic multi-agent simulations of the scheduler.

use super::*;

/// Small, quick scenario: full mesh of `n` agents on good links, no churn, no loss.
fn small(n: usize) -> SimConfig {
    SimConfig {
        seed: 7,
        agents: n,
        duration_s: 90.0,
        ramp_s: 2.0,
        warmup_s: 20.0,
        tail_s: 12.0,
        degree: n.saturating_sub(1).max(1),
        max_degree: n.max(2),
        upload_mean_x: 4.0,
        upload_sigma: 0.2,
        download_sigma: 0.2,
        loss: 0.0,
        churn_per_min: 0.0,
        ..SimConfig::default()
    }
}

fn assert_sane(r: &SimReport) {
    // Conservation: peers cannot deliver more than they sent, nor send above their capacity.
    assert!(r.peer_uploaded_bytes >= r.peer_segment_bytes, "{r:?}");
    assert!(r.upload_utilisation <= 1.0 + 1e-9, "{r:?}");
    assert!(r.figures.segments > 10, "{r:?}");
    assert!(r.figures.unique_segment_bytes > 0);
    assert!(r.watch_seconds > 0.0);
    assert!(
        r.figures.origin_copies_per_segment >= 0.99,
        "every segment leaves the origin at least once: {r:?}"
    );
}

#[test]
fn four_agents_good_links_one_origin_copy_no_stall() {
    let r = run(&small(4));
    assert_sane(&r);
    assert!(r.figures.origin_copies_per_segment <= 1.5, "{r:?}");
    assert_eq!(r.figures.stalls, 0, "{r:?}");
    assert!(r.figures.offload_ratio > 0.6, "{r:?}");
    assert!(r.figures.startup_ms_p95 < 5000.0, "{r:?}");
}

#[test]
fn same_seed_same_report_other_seed_differs() {
    let mut cfg = small(6);
    cfg.churn_per_min = 0.2;
    cfg.loss = 0.02;
    let a = run(&cfg);
    let b = run(&cfg);
    assert_eq!(a, b);
    cfg.seed += 1;
    let c = run(&cfg);
    assert_ne!(a, c);
}

#[test]
fn corrupt_uploader_is_banned_without_stalls() {
    let mut cfg = small(6);
    cfg.corrupt_agents = 1;
    let r = run(&cfg);
    assert_sane(&r);
    assert!(r.integrity_failures >= 1, "{r:?}");
    assert!(r.bans >= 1, "{r:?}");
    // Each honest agent bans the corrupt one at most once.
    assert!(r.bans <= 5, "{r:?}");
    assert_eq!(r.figures.stalls, 0, "{r:?}");
}

#[test]
fn peer_lost_mid_transfer_falls_back_in_time() {
    let mut cfg = small(8);
    cfg.upload_mean_x = 2.0;
    cfg.fail_uploaders_at_s = vec![30.0, 41.3, 52.7, 63.1];
    let r = run(&cfg);
    assert_sane(&r);
    assert!(r.failed_uploaders >= 2, "{r:?}");
    assert!(r.peer_lost_transfers >= 1, "{r:?}");
    assert_eq!(r.figures.stalls, 0, "{r:?}");
}

#[test]
fn churn_keeps_playing() {
    let mut cfg = small(20);
    cfg.degree = 8;
    cfg.max_degree = 12;
    cfg.churn_per_min = 0.3;
    cfg.upload_mean_x = 2.0;
    cfg.upload_sigma = 0.5;
    cfg.loss = 0.01;
    let r = run(&cfg);
    assert_sane(&r);
    assert!(r.leaves >= 3, "{r:?}");
    assert_eq!(r.joins, 20 + r.leaves);
    assert!(r.stall_ratio < 0.01, "{r:?}");
    assert!(r.figures.offload_ratio > 0.3, "{r:?}");
}

#[test]
fn upload_cap_below_bitrate_falls_back_to_origin_without_stalls() {
    let mut cfg = small(8);
    cfg.scheduler.upload_cap_x = Some(0.5);
    let r = run(&cfg);
    assert_sane(&r);
    assert!(r.figures.upload_bound <= 0.5 + 1e-9, "{r:?}");
    assert!(
        r.origin_fetches.fallback + r.origin_fetches.hedge > 0,
        "{r:?}"
    );
    assert!(r.busy_refusals > 0, "{r:?}");
    assert_eq!(r.figures.stalls, 0, "{r:?}");
    // The origin serves at least what upload cannot.
    assert!(
        r.figures.offload_ratio <= r.figures.upload_bound + 0.1,
        "{r:?}"
    );
}

#[test]
fn report_has_the_contract_keys() {
    let r = run(&small(3));
    let v = serde_json::to_value(&r).unwrap();
    let obj = v.as_object().unwrap();
    for k in super::REPORT_KEYS {
        assert!(obj.contains_key(k), "missing {k}");
    }
    assert!(obj["agent_cpu_percent_mean"].is_null());
    assert_eq!(r.figures.ideal_offload, 1.0 - 1.0 / 3.0);
}

#[test]
fn config_deserializes_with_defaults_and_rejects_unknown_keys() {
    let c: SimConfig =
        serde_json::from_str(r#"{"agents": 5, "scheduler": {"upload_slots": 1}}"#).unwrap();
    assert_eq!(c.agents, 5);
    assert_eq!(c.scheduler.upload_slots, 1);
    assert_eq!(c.degree, SimConfig::default().degree);
    // The default mesh is the agent's.
    let p2p = crate::config::P2pConfig::default();
    assert_eq!((c.degree, c.max_degree), (p2p.max_peers, p2p.accept_peers));
    assert!(serde_json::from_str::<SimConfig>(r#"{"agentz": 5}"#).is_err());
    assert!(serde_json::from_str::<SimConfig>(r#"{"scheduler": {"nope": 1}}"#).is_err());
}

#[test]
fn swarm_figures_serialize_exactly_the_report_keys() {
    let v = serde_json::to_value(super::SwarmFigures::default()).expect("json");
    let keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = super::REPORT_KEYS.to_vec();
    want.sort_unstable();
    let mut got = keys.clone();
    got.sort_unstable();
    assert_eq!(got, want);
}

#[test]
fn bad_configs_are_reported_all_at_once() {
    assert_eq!(validate(&SimConfig::default()), Ok(()));
    let mut cfg = SimConfig {
        agents: 0,
        duration_s: -1.0,
        chunk_size: 100,
        churn_per_min: 2.0,
        max_degree: 3,
        hungry_interval_s: 0.0,
        ..SimConfig::default()
    };
    cfg.scheduler.seed_fraction_max = 0.01;
    let e = validate(&cfg).unwrap_err();
    for needle in [
        "agents",
        "duration_s",
        "chunk_size",
        "churn_per_min",
        "seed_fraction",
        "max_degree",
        "hungry_interval_s",
    ] {
        assert!(e.contains(needle), "{needle} missing from: {e}");
    }
}

/// 60 agents for two minutes of a 3 Mbit/s stream in 2 s segments, 8 peers each, no churn,
/// uploads log-normal around `upload_x` × the bitrate.
fn short_live(seed: u64, upload_x: f64, upload_sigma: f64) -> SimConfig {
    SimConfig {
        seed,
        agents: 60,
        duration_s: 120.0,
        warmup_s: 30.0,
        tail_s: 15.0,
        segment_duration_s: 2.0,
        bitrate_bps: 3_000_000.0,
        upload_mean_x: upload_x,
        upload_sigma,
        degree: 8,
        max_degree: 12,
        churn_per_min: 0.0,
        ..SimConfig::default()
    }
}

#[test]
fn cut_through_spreads_a_live_segment_further_than_store_and_forward() {
    // Slow uplinks (1.2x the bitrate) and a 3-segment player latency: whole-segment hops eat
    // the budget; chunk hops do not.
    let base = short_live(3, 1.2, 0.2);
    let whole = run(&SimConfig {
        chunk_size: 0,
        ..base.clone()
    });
    let chunked = run(&base);
    assert_sane(&whole);
    assert_sane(&chunked);
    assert!(
        chunked.figures.offload_ratio > whole.figures.offload_ratio,
        "cut-through {} vs store-and-forward {}",
        chunked.figures.offload_ratio,
        whole.figures.offload_ratio
    );
    assert_eq!(chunked.integrity_failures, 0);
}

#[test]
fn origin_tails_take_only_the_rest_of_late_transfers_from_the_origin() {
    // Slow uplinks and a 3-segment latency: many peer transfers are projected late. With
    // origin tails the origin sends only what the peer cannot deliver in time. Whole segments:
    // a late unit of a striped segment is a quarter of the bytes, and tails rarely pay there.
    let base = SimConfig {
        stripes: 1,
        ..short_live(5, 1.1, 0.5)
    };
    let mut off = base.clone();
    off.scheduler.origin_tails = false;
    let whole = run(&off);
    let tails = run(&base);
    assert_sane(&whole);
    assert_sane(&tails);
    eprintln!(
        "origin copies per segment: {:.2} with tails {:?}, {:.2} without",
        tails.figures.origin_copies_per_segment,
        tails.origin_fetches,
        whole.figures.origin_copies_per_segment
    );
    assert_eq!(whole.origin_fetches.tail, 0);
    assert!(tails.origin_fetches.tail > 0, "{:?}", tails.origin_fetches);
    assert!(
        tails.origin_fetches.tail_joined > 0,
        "{:?}",
        tails.origin_fetches
    );
    assert!(
        tails.figures.origin_copies_per_segment < whole.figures.origin_copies_per_segment,
        "with tails {} origin copies per segment, without {}",
        tails.figures.origin_copies_per_segment,
        whole.figures.origin_copies_per_segment
    );
    assert_eq!(tails.integrity_failures, 0);
}

#[test]
fn live_hold_back_gives_peers_more_time_and_the_origin_less_work() {
    // Slow uplinks: with players 3 segments behind, many segments miss their peer deadline.
    // Withholding the newest segment from the players moves their need-by time one segment
    // later, with the same upload.
    let base = short_live(11, 1.2, 0.3);
    let plain = run(&base);
    let held = run(&SimConfig {
        live_hold_back: 1,
        ..base.clone()
    });
    assert_sane(&plain);
    assert_sane(&held);
    assert!(
        held.figures.origin_copies_per_segment < plain.figures.origin_copies_per_segment,
        "held back {} vs plain {} origin copies per segment",
        held.figures.origin_copies_per_segment,
        plain.figures.origin_copies_per_segment
    );
    // Too much hold-back for the window is a config error.
    let bad = SimConfig {
        live_hold_back: base.window_segments,
        ..base
    };
    assert!(validate(&bad).unwrap_err().contains("live_hold_back"));
}

#[test]
fn stripes_spread_a_live_segment_further_than_whole_segments() {
    // Slow uplinks and a 3-segment latency: a whole segment crosses a link too slowly to reach
    // many agents before the players need it. Shared as 4 units from different peers at once,
    // each crosses in a quarter of the time.
    let base = short_live(13, 1.2, 0.3);
    let whole = run(&SimConfig {
        stripes: 1,
        ..base.clone()
    });
    let striped = run(&SimConfig {
        stripes: 4,
        ..base.clone()
    });
    assert_sane(&whole);
    assert_sane(&striped);
    eprintln!(
        "origin copies per segment: {:.2} whole, {:.2} in 4 stripes",
        whole.figures.origin_copies_per_segment, striped.figures.origin_copies_per_segment
    );
    assert!(
        striped.figures.origin_copies_per_segment < whole.figures.origin_copies_per_segment,
        "4 stripes {} vs whole {} origin copies per segment",
        striped.figures.origin_copies_per_segment,
        whole.figures.origin_copies_per_segment
    );
    assert_eq!(striped.integrity_failures, 0);
    // More stripes than supported is a config error.
    let bad = SimConfig { stripes: 9, ..base };
    assert!(validate(&bad).unwrap_err().contains("stripes"));
}
