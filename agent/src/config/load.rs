//! Loading and layering. Kept apart from the typed structs so those stay plain data.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{AgentConfig, StreamConfig};

/// Prefix of environment variables that configure the agent.
pub const ENV_PREFIX: &str = "HIVECAST_AGENT";

/// Every problem found while loading a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem{}):",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Values given on the command line; they win over file and environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen ADDR`
    pub listen: Option<SocketAddr>,
    /// `--admin-listen ADDR`
    pub admin_listen: Option<SocketAddr>,
    /// `--allow-origin URL`, added to `origin.allow`.
    pub allow_origins: Vec<String>,
    /// `--stream NAME=URL`, added to `streams`.
    pub streams: Vec<String>,
    /// `--tracker URL`
    pub tracker: Option<String>,
}

/// Loads defaults → `file` → environment (`HIVECAST_AGENT__SECTION__KEY`) → `overrides`, then
/// validates. `env` is injected so tests need not touch the process environment.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    overrides: &Overrides,
) -> Result<AgentConfig, ConfigErrors> {
    let mut errors = Vec::new();
    let mut builder = config::Config::builder();
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigErrors(vec![format!(
                "config file {} does not exist",
                path.display()
            )]));
        }
        builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
    }
    let env_map: std::collections::HashMap<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
        .collect();
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("origin.allow")
            .with_list_parse_key("p2p.webrtc.udp_bind")
            .source(Some(env_map)),
    );
    let merged = match builder.build() {
        Ok(c) => c,
        Err(e) => return Err(ConfigErrors(vec![e.to_string()])),
    };
    let raw: Value = match merged.try_deserialize::<Value>() {
        Ok(v) => v,
        Err(e) => return Err(ConfigErrors(vec![e.to_string()])),
    };

    let schema = serde_json::to_value(AgentConfig::default()).unwrap_or(Value::Null);
    let Value::Object(raw) = raw else {
        return Err(ConfigErrors(vec![
            "the configuration must be a table".into(),
        ]));
    };
    check_sections(&raw, &schema, &mut errors);

    let mut cfg = if errors.is_empty() {
        match serde_json::from_value::<AgentConfig>(Value::Object(raw)) {
            Ok(c) => c,
            Err(e) => return Err(ConfigErrors(vec![e.to_string()])),
        }
    } else {
        return Err(ConfigErrors(errors));
    };

    apply_overrides(&mut cfg, overrides, &mut errors);
    errors.extend(cfg.validate());
    if errors.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Walks every section and key, reporting unknown keys and bad values one by one, so that a
/// file with several mistakes gets all of them in one report.
fn check_sections(raw: &Map<String, Value>, schema: &Value, errors: &mut Vec<String>) {
    let Value::Object(schema) = schema else {
        return;
    };
    for (section, value) in raw {
        if !schema.contains_key(section) {
            errors.push(format!("unknown section or key `{section}`"));
            continue;
        }
        match section.as_str() {
            "server" => check_table::<super::ServerConfig>(section, value, errors),
            "origin" => check_table::<super::OriginConfig>(section, value, errors),
            "cache" => check_table::<super::CacheConfig>(section, value, errors),
            "playlist" => check_table::<super::PlaylistConfig>(section, value, errors),
            "integrity" => check_table::<super::IntegrityConfig>(section, value, errors),
            "log" => check_table::<super::LogConfig>(section, value, errors),
            "p2p" => check_table::<super::P2pConfig>(section, value, errors),
            "streams" => match value {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        check_table::<StreamConfig>(&format!("streams[{i}]"), item, errors);
                    }
                }
                _ => errors.push("`streams` must be an array of tables ([[streams]])".into()),
            },
            other => errors.push(format!("unknown section `{other}`")),
        }
    }
}

/// Checks one table key by key: each key alone is deserialized into `T` (defaults for the
/// rest), which yields one precise message per bad key.
fn check_table<T: DeserializeOwned>(name: &str, value: &Value, errors: &mut Vec<String>) {
    let Value::Object(map) = value else {
        errors.push(format!("`{name}` must be a table"));
        return;
    };
    let before = errors.len();
    for (k, v) in map {
        let mut one = Map::new();
        one.insert(k.clone(), v.clone());
        if let Err(e) = serde_json::from_value::<T>(Value::Object(one)) {
            let msg = e.to_string();
            if msg.starts_with("unknown field") {
                errors.push(format!("{name}: unknown key `{k}`"));
            } else if msg.starts_with("missing field") {
                // Reported once for the whole table below.
            } else {
                errors.push(format!("{name}.{k}: {msg}"));
            }
        }
    }
    if errors.len() == before
        && let Err(e) = serde_json::from_value::<T>(value.clone())
    {
        errors.push(format!("{name}: {e}"));
    }
}

fn apply_overrides(cfg: &mut AgentConfig, o: &Overrides, errors: &mut Vec<String>) {
    if let Some(l) = o.listen {
        cfg.server.listen = l;
    }
    if let Some(l) = o.admin_listen {
        cfg.server.admin_listen = l;
    }
    cfg.origin.allow.extend(o.allow_origins.iter().cloned());
    if let Some(t) = &o.tracker {
        cfg.p2p.tracker = t.clone();
    }
    for s in &o.streams {
        match s.split_once('=') {
            Some((name, url)) if !name.is_empty() && !url.is_empty() => {
                cfg.streams.push(StreamConfig {
                    name: name.to_string(),
                    url: url.to_string(),
                    integrity: None,
                })
            }
            _ => errors.push(format!("--stream `{s}` must be NAME=URL")),
        }
    }
}

/// One line of documentation per key of the default TOML. A test checks that every key has one.
const DOCS: &[(&str, &str)] = &[
    ("server", "Local listeners."),
    (
        "server.listen",
        "Address of the local HLS endpoint players use. Keep it on loopback: it has no authentication.",
    ),
    (
        "server.admin_listen",
        "Address of the admin endpoint (/metrics, /healthz).",
    ),
    (
        "server.shutdown_grace",
        "Time in-flight requests get to finish after SIGTERM.",
    ),
    (
        "server.max_connections",
        "Maximum concurrent player connections.",
    ),
    (
        "origin",
        "Origin access. Only origins in `allow` are fetched: the agent is not an open proxy.",
    ),
    (
        "origin.allow",
        "Allowed origins as \"scheme://host[:port]\", e.g. \"https://cdn.example.com\".",
    ),
    ("origin.connect_timeout", "TCP + TLS connect timeout."),
    (
        "origin.header_timeout",
        "Time from request to response head.",
    ),
    (
        "origin.body_idle_timeout",
        "Longest silence between two body chunks.",
    ),
    (
        "origin.total_timeout",
        "Upper bound on one request, retries included.",
    ),
    (
        "origin.retries",
        "Retries of idempotent failures (connect errors, timeouts, 502/503/504, cut-off bodies).",
    ),
    (
        "origin.retry_backoff",
        "First retry delay; doubles on each further retry.",
    ),
    (
        "origin.max_redirects",
        "Redirects followed per request; targets must be allowed origins too.",
    ),
    (
        "origin.max_playlist_size",
        "Largest playlist or digest sidecar accepted.",
    ),
    ("origin.max_segment_size", "Largest segment accepted."),
    (
        "origin.pool_max_idle_per_host",
        "Idle pooled connections kept per origin host.",
    ),
    (
        "origin.proxy_keys",
        "Proxy AES keys through the agent (never cached, shared or logged). Off: key URIs are made absolute.",
    ),
    ("origin.user_agent", "User-Agent sent to origins."),
    ("cache", "In-memory segment cache."),
    (
        "cache.max_bytes",
        "Memory budget for segments and init segments (LRU).",
    ),
    (
        "cache.vod_playlist_ttl",
        "How long a VOD playlist (with EXT-X-ENDLIST) is served from cache. Live playlists: half the target duration.",
    ),
    ("playlist", "Playlist handling."),
    (
        "playlist.low_latency",
        "\"passthrough\" rewrites LL-HLS parts/hints/reports; \"degrade\" strips LL-HLS tags.",
    ),
    (
        "playlist.strip_content_steering",
        "Remove EXT-X-CONTENT-STEERING (the agent steers, as the origin's client).",
    ),
    (
        "playlist.live_hold_back",
        "Live playlists: withhold this many of the newest segments from players (at most 10). Players then play that many segment durations further behind the live edge, and peers get that much more time to share each segment (more offload; see BENCHMARKS.md). Not applied to LL-HLS passed through, nor below 3 segments.",
    ),
    (
        "playlist.align_reloads",
        "Live playlists: learn when the origin publishes segments and reload just after the next one is due, never sooner than RFC 8216 allows (one target duration after a load that found a new segment, half of one after a load that did not). An agent learns of a new segment about half a target duration sooner on average, and its swarm shares it sooner (see BENCHMARKS.md). false: the RFC's rule alone.",
    ),
    (
        "integrity",
        "Segment integrity: digests from the origin's <playlist>.sha256.json sidecar.",
    ),
    (
        "integrity.mode",
        "\"required\": peers only with verified digests, streams without digests play origin-only. \"off\": share unverified (warning).",
    ),
    ("p2p", "Peer-to-peer sharing. Off while `tracker` is empty."),
    (
        "p2p.tracker",
        "Tracker URL, ws:// or wss:// (may carry an access token). Empty: origin only.",
    ),
    (
        "p2p.max_peers",
        "Peers per swarm (one swarm per media playlist) the agent seeks: it sends offers while below this.",
    ),
    (
        "p2p.accept_peers",
        "Offers from other agents are answered while the swarm has fewer peers than this (at least max_peers), so agents joining a full swarm find room at once.",
    ),
    (
        "p2p.offers_per_announce",
        "WebRTC offers sent with an announce while below max_peers.",
    ),
    (
        "p2p.announce_interval",
        "Longest re-announce interval (the tracker's interval wins when shorter).",
    ),
    (
        "p2p.hungry_announce_interval",
        "Re-announce interval while below max_peers.",
    ),
    (
        "p2p.fetchers",
        "Origin copies wanted per new live segment per swarm (k).",
    ),
    (
        "p2p.upload_slots",
        "Most concurrent uploads to peers (fewer while the measured upload rate cannot give each 0.4 of the stream rate); further requests get `busy`.",
    ),
    (
        "p2p.upload_rate_cap",
        "Upload cap in bytes per second; 0 means no cap.",
    ),
    (
        "p2p.peer_wait_budget",
        "Time after a live segment appears by which the origin fallback starts; 0s means 1.5 x target duration.",
    ),
    (
        "p2p.stall_timeout",
        "A peer transfer without progress for this long is hedged to another peer or the origin.",
    ),
    (
        "p2p.startup_wait",
        "Longest wait for a peer copy of the segment a player starts or seeks to when no connected peer holds it. Lower starts playback sooner but closer to the live edge, which leaves peers less time for later segments (less offload); 0s fetches it from the origin at once.",
    ),
    (
        "p2p.swarm_idle_timeout",
        "A swarm nobody played from for this long is left.",
    ),
    (
        "p2p.stripes",
        "Units each segment with chunk digests is shared as, each from its own peers at once (1 to 8; 1 = whole segments). Every agent of a swarm needs the same value: peers with another one are not connected. Segments without chunk digests are always shared whole (docs/operations.md).",
    ),
    ("p2p.webrtc", "WebRTC data-channel transport."),
    (
        "p2p.webrtc.ice_servers",
        "STUN/TURN servers: [{ urls = [\"stun:stun.example.com:3478\"], username = \"\", credential = \"\" }]. Credentials are never logged.",
    ),
    (
        "p2p.webrtc.relay_only",
        "Use only TURN relay candidates (hides host addresses; needs a turn: server).",
    ),
    (
        "p2p.webrtc.udp_bind",
        "UDP addresses to bind per connection; 0.0.0.0:0 binds every non-loopback interface. Same-host tests: 127.0.0.1:0.",
    ),
    (
        "p2p.webrtc.mdns",
        "\"query-only\" resolves browsers' .local candidates; \"disabled\" saves a socket per connection.",
    ),
    (
        "p2p.webrtc.gather_timeout",
        "Longest wait for ICE gathering before an offer or answer is sent (non-trickle).",
    ),
    (
        "p2p.webrtc.offer_timeout",
        "How long an offer waits for its answer.",
    ),
    (
        "p2p.webrtc.connect_timeout",
        "Longest time from answer to an open data channel.",
    ),
    (
        "p2p.webrtc.max_frame_size",
        "Largest frame sent or accepted (at most 64 KiB).",
    ),
    (
        "p2p.webrtc.send_buffer_limit",
        "Unacknowledged bytes per peer before a sender waits (back-pressure).",
    ),
    (
        "p2p.webrtc.recv_queue_frames",
        "Received frames queued per peer before the transport stops reading.",
    ),
    (
        "p2p.webrtc.sctp_receive_window",
        "SCTP receive window per peer; caps throughput at window / RTT.",
    ),
    (
        "p2p.webrtc.udp_socket_buffer",
        "SO_RCVBUF/SO_SNDBUF per UDP socket (raise net.core.rmem_max/wmem_max to match); 0 keeps the kernel default.",
    ),
    (
        "p2p.webrtc.reactor_threads",
        "Dedicated WebRTC reactor threads; 0 runs drivers on the agent's runtime.",
    ),
    ("log", "Logging."),
    (
        "log.level",
        "tracing filter directive, e.g. \"info\"; RUST_LOG wins when set.",
    ),
    ("log.json", "Emit JSON lines instead of text."),
    (
        "streams",
        "Named streams, served at /streams/{name}.m3u8. Example:\n[[streams]]\nname = \"live\"\nurl = \"https://cdn.example.com/live/master.m3u8\"\nintegrity = \"required\"   # optional",
    ),
];

fn doc_for(key: &str) -> Option<&'static str> {
    DOCS.iter().find(|(k, _)| *k == key).map(|(_, d)| *d)
}

fn comment(doc: &str) -> String {
    doc.lines().map(|l| format!("# {l}\n")).collect()
}

/// Renders the default configuration as commented TOML.
pub(super) fn default_toml() -> String {
    let value = match toml::Value::try_from(AgentConfig::default()) {
        Ok(toml::Value::Table(t)) => t,
        _ => return String::new(),
    };
    let mut out = String::from(
        "# hivecast-agent configuration: the built-in defaults.\n\
         # Generated by `hivecast-agent --print-default-config`.\n\
         # Layering: defaults < this file < HIVECAST_AGENT__SECTION__KEY environment < flags.\n\n",
    );
    for (section, v) in &value {
        match v {
            toml::Value::Table(t) => {
                out.push_str(&comment(doc_for(section).unwrap_or("")));
                out.push_str(&format!("[{section}]\n"));
                let mut nested = Vec::new();
                for (k, v) in t {
                    if let toml::Value::Table(inner) = v {
                        nested.push((k, inner));
                        continue;
                    }
                    out.push_str(&comment(doc_for(&format!("{section}.{k}")).unwrap_or("")));
                    out.push_str(&format!("{k} = {v}\n"));
                }
                out.push('\n');
                for (k, inner) in nested {
                    out.push_str(&comment(doc_for(&format!("{section}.{k}")).unwrap_or("")));
                    out.push_str(&format!("[{section}.{k}]\n"));
                    for (ik, iv) in inner {
                        out.push_str(&comment(
                            doc_for(&format!("{section}.{k}.{ik}")).unwrap_or(""),
                        ));
                        out.push_str(&format!("{ik} = {iv}\n"));
                    }
                    out.push('\n');
                }
            }
            toml::Value::Array(a) if a.is_empty() => {
                out.push_str(&comment(doc_for(section).unwrap_or("")));
                out.push_str(&format!("# {section} = []\n"));
            }
            other => out.push_str(&format!("{section} = {other}\n")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(text: &str) -> tempfile_like::TempFile {
        tempfile_like::TempFile::new(text)
    }

    /// Minimal self-deleting temp file (avoids a dev-dependency for one use).
    mod tempfile_like {
        use std::path::PathBuf;
        pub struct TempFile(pub PathBuf);
        impl TempFile {
            pub fn new(text: &str) -> Self {
                use std::sync::atomic::{AtomicU64, Ordering};
                static N: AtomicU64 = AtomicU64::new(0);
                let p = std::env::temp_dir().join(format!(
                    "hivecast-cfg-{}-{}.toml",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                let mut f = std::fs::File::create(&p).expect("create temp config");
                super::Write::write_all(&mut f, text.as_bytes()).expect("write temp config");
                TempFile(p)
            }
        }
        impl Drop for TempFile {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn defaults_load_and_validate() {
        let cfg = load(None, env(&[]), &Overrides::default()).expect("defaults are valid");
        assert_eq!(cfg, AgentConfig::default());
        assert!(
            cfg.server.listen.ip().is_loopback(),
            "binds loopback by default"
        );
        assert!(cfg.server.admin_listen.ip().is_loopback());
    }

    #[test]
    fn default_toml_round_trips_and_every_key_is_documented() {
        let text = default_toml();
        let f = file(&text);
        let cfg = load(Some(&f.0), env(&[]), &Overrides::default()).expect("printed defaults load");
        assert_eq!(cfg, AgentConfig::default());
        let table: toml::Table = toml::from_str(&text).expect("valid toml");
        for (section, v) in &table {
            assert!(doc_for(section).is_some(), "section {section} undocumented");
            if let toml::Value::Table(t) = v {
                for k in t.keys() {
                    assert!(
                        doc_for(&format!("{section}.{k}")).is_some(),
                        "{section}.{k} undocumented"
                    );
                }
            }
        }
        assert!(doc_for("streams").is_some());
    }

    #[test]
    fn checked_in_agent_toml_matches_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/agent.toml");
        let on_disk = std::fs::read_to_string(&path).expect("config/agent.toml exists");
        assert_eq!(
            on_disk,
            default_toml(),
            "config/agent.toml is stale: regenerate it with `hivecast-agent --print-default-config > config/agent.toml`"
        );
    }

    #[test]
    fn file_env_and_flags_layer_in_order() {
        let f = file(
            "[server]\nlisten = \"127.0.0.1:1111\"\n[origin]\nallow = [\"http://a.test\"]\nretries = 1\n",
        );
        let cfg = load(
            Some(&f.0),
            env(&[
                ("HIVECAST_AGENT__ORIGIN__RETRIES", "4"),
                ("HIVECAST_AGENT__CACHE__MAX_BYTES", "64 MiB"),
            ]),
            &Overrides {
                listen: Some("127.0.0.1:2222".parse().expect("addr")),
                allow_origins: vec!["https://b.test:8443".into()],
                streams: vec!["live=https://b.test:8443/live/index.m3u8".into()],
                ..Overrides::default()
            },
        )
        .expect("valid");
        assert_eq!(cfg.server.listen.port(), 2222, "flag beats file");
        assert_eq!(cfg.origin.retries, 4, "env beats file");
        assert_eq!(cfg.cache.max_bytes, bytesize::ByteSize::mib(64));
        assert_eq!(
            cfg.origin.allow,
            vec![
                "http://a.test".to_string(),
                "https://b.test:8443".to_string()
            ]
        );
        assert_eq!(cfg.streams.len(), 1);
        assert_eq!(cfg.streams[0].name, "live");
    }

    #[test]
    fn env_list_of_origins() {
        let cfg = load(
            None,
            env(&[(
                "HIVECAST_AGENT__ORIGIN__ALLOW",
                "http://a.test,https://b.test",
            )]),
            &Overrides::default(),
        )
        .expect("valid");
        assert_eq!(cfg.origin.allow.len(), 2);
    }

    #[test]
    fn every_bad_key_is_reported_at_once() {
        let f = file(
            "bogus_section = 1\n[server]\nlisten = \"not an address\"\nlisen = 3\n[origin]\nretries = \"many\"\nconnect_timeout = \"forever\"\n[cache]\nmax_bytes = \"lots\"\n[[streams]]\nname = \"x\"\nurl = \"http://a.test/x.m3u8\"\nextra = 1\n",
        );
        let err = load(
            Some(&f.0),
            env(&[("HIVECAST_AGENT__LOG__COLOUR", "red")]),
            &Overrides::default(),
        )
        .expect_err("invalid");
        let text = err.to_string();
        for needle in [
            "bogus_section",
            "server.listen",
            "`lisen`",
            "origin.retries",
            "origin.connect_timeout",
            "cache.max_bytes",
            "streams[0]: unknown key `extra`",
            "log: unknown key `colour`",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        assert!(err.0.len() >= 8, "{text}");
    }

    #[test]
    fn cross_field_validation_reports_everything() {
        let f = file(
            "[origin]\nallow = [\"ftp://x\", \"https://ok.test/path\"]\n[[streams]]\nname = \"a b\"\nurl = \"https://elsewhere.test/x.m3u8\"\n[[streams]]\nname = \"a b\"\nurl = \"nope\"\n",
        );
        let err = load(Some(&f.0), env(&[]), &Overrides::default()).expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains("only http and https"), "{text}");
        assert!(text.contains("without a path"), "{text}");
        assert!(text.contains("not in origin.allow"), "{text}");
        assert!(text.contains("used twice"), "{text}");
        assert!(text.contains("is not a URL"), "{text}");
    }

    #[test]
    fn startup_wait_is_bounded_and_zero_is_allowed() {
        let f = file("[p2p]\nstartup_wait = \"31s\"\n");
        let err = load(Some(&f.0), env(&[]), &Overrides::default()).expect_err("invalid");
        assert!(err.to_string().contains("p2p.startup_wait"), "{err}");
        let f = file("[p2p]\nstartup_wait = \"0s\"\n");
        let cfg = load(Some(&f.0), env(&[]), &Overrides::default()).expect("valid");
        assert!(cfg.p2p.startup_wait.is_zero());
    }

    #[test]
    fn accept_peers_is_at_least_max_peers() {
        // Below the peers an agent seeks it would refuse the offers its own mesh needs.
        let f = file("[p2p]\nmax_peers = 10\naccept_peers = 9\n");
        let err = load(Some(&f.0), env(&[]), &Overrides::default()).expect_err("invalid");
        assert!(
            err.to_string()
                .contains("p2p.accept_peers must be between p2p.max_peers (10) and 200 (got 9)"),
            "{err}"
        );
        let f = file("[p2p]\naccept_peers = 201\n");
        assert!(load(Some(&f.0), env(&[]), &Overrides::default()).is_err());
        let cfg = load(
            None,
            env(&[("HIVECAST_AGENT__P2P__ACCEPT_PEERS", "16")]),
            &Overrides::default(),
        )
        .expect("valid");
        assert_eq!((cfg.p2p.max_peers, cfg.p2p.accept_peers), (8, 16));
    }

    #[test]
    fn bad_stream_flag_and_missing_file() {
        let err = load(
            None,
            env(&[]),
            &Overrides {
                streams: vec!["noequals".into()],
                ..Default::default()
            },
        )
        .expect_err("invalid");
        assert!(err.to_string().contains("NAME=URL"));
        let err = load(
            Some(Path::new("/nonexistent/agent.toml")),
            env(&[]),
            &Overrides::default(),
        )
        .expect_err("missing");
        assert!(err.to_string().contains("does not exist"));
    }

    #[test]
    fn malformed_toml_is_reported() {
        let f = file("[server\nlisten = ");
        let err = load(Some(&f.0), env(&[]), &Overrides::default()).expect_err("invalid");
        assert!(!err.0.is_empty());
    }

    #[test]
    fn allowed_origin_normalises_default_ports() {
        let a = super::super::AllowedOrigin::parse("https://CDN.example.com").expect("valid");
        assert_eq!(
            (a.scheme.as_str(), a.host.as_str(), a.port),
            ("https", "cdn.example.com", 443)
        );
        let u = url::Url::parse("https://cdn.example.com:443/x").expect("url");
        assert_eq!(super::super::AllowedOrigin::of(&u), Some(a));
        assert!(super::super::AllowedOrigin::parse("https://u:p@x.test").is_err());
    }
}
