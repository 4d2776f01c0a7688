use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

struct TempToml(PathBuf);

impl TempToml {
    fn new(name: &str, body: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "hivecast-tracker-{}-{name}.toml",
            std::process::id()
        ));
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(body.as_bytes()).unwrap();
        Self(path)
    }
}

impl Drop for TempToml {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn default_toml_equals_default_config() {
    let parsed: Config = toml::from_str(DEFAULT_TOML).expect("default.toml parses");
    assert_eq!(parsed, Config::default());
    assert!(
        Config::default().validate().is_empty(),
        "{:?}",
        Config::default().validate()
    );
}

#[test]
fn every_key_is_in_the_default_toml_with_a_comment() {
    let tree = serde_json::to_value(Config::default()).unwrap();
    let lines: Vec<&str> = DEFAULT_TOML.lines().collect();
    for (section, keys) in tree.as_object().unwrap() {
        let header = format!("[{section}]");
        let start = lines
            .iter()
            .position(|l| *l == header)
            .unwrap_or_else(|| panic!("no {header}"));
        for key in keys.as_object().unwrap().keys() {
            let pos = lines[start..]
                .iter()
                .position(|l| {
                    l.starts_with(&format!("{key} = ")) || l.starts_with(&format!("# {key} = "))
                })
                .unwrap_or_else(|| panic!("{section}.{key} missing from default.toml"))
                + start;
            let prev = lines[pos - 1];
            assert!(
                prev.starts_with("# ") && !prev.contains(" = "),
                "{section}.{key} has no doc comment"
            );
        }
    }
}

#[test]
fn loads_defaults_without_file_or_env() {
    let cfg = load_with_env(&Overrides::default(), env(&[])).unwrap();
    assert_eq!(cfg, Config::default());
}

#[test]
fn layers_file_then_env_then_flags() {
    let file = TempToml::new(
        "layers",
        r#"
[server]
listen = "127.0.0.1:1111"
ping_interval = "20s"
[limits]
max_offers_per_announce = 4
max_message_size = "32 KiB"
[swarm]
policy = "same-subnet"
[access]
tokens = ["from-file-token"]
"#,
    );
    let overrides = Overrides {
        config_file: Some(file.0.clone()),
        listen: None,
    };
    let cfg = load_with_env(&overrides, env(&[])).unwrap();
    assert_eq!(cfg.server.listen, "127.0.0.1:1111".parse().unwrap());
    assert_eq!(cfg.server.ping_interval, Duration::from_secs(20));
    assert_eq!(cfg.limits.max_offers_per_announce, 4);
    assert_eq!(cfg.limits.max_message_size, ByteSize::kib(32));
    assert_eq!(cfg.swarm.policy, PolicyKind::SameSubnet);
    assert_eq!(cfg.access.tokens, vec![Secret::new("from-file-token")]);
    // Untouched keys keep their defaults.
    assert_eq!(cfg.server.write_timeout, Duration::from_secs(10));

    let cfg = load_with_env(
        &overrides,
        env(&[
            ("HIVECAST_TRACKER__LIMITS__MAX_OFFERS_PER_ANNOUNCE", "6"),
            ("HIVECAST_TRACKER__SERVER__LISTEN", "127.0.0.1:2222"),
            ("HIVECAST_TRACKER__ACCESS__TOKENS", "tokenone1,00000123"),
            (
                "HIVECAST_TRACKER__ACCESS__INFO_HASH_ALLOW",
                &"ab".repeat(20),
            ),
            ("HIVECAST_TRACKER__SWARM__OFFER_TTL", "45s"),
            ("OTHER_VARIABLE", "ignored"),
        ]),
    )
    .unwrap();
    assert_eq!(cfg.limits.max_offers_per_announce, 6);
    assert_eq!(cfg.server.listen, "127.0.0.1:2222".parse().unwrap());
    assert_eq!(
        cfg.access.tokens,
        vec![Secret::new("tokenone1"), Secret::new("00000123")]
    );
    assert_eq!(cfg.access.info_hash_allow, vec!["ab".repeat(20)]);
    assert_eq!(cfg.allow_list().len(), 1);
    assert_eq!(cfg.swarm.offer_ttl, Duration::from_secs(45));

    let cfg = load_with_env(
        &Overrides {
            listen: Some("127.0.0.1:3333".parse().unwrap()),
            ..overrides
        },
        env(&[("HIVECAST_TRACKER__SERVER__LISTEN", "127.0.0.1:2222")]),
    )
    .unwrap();
    assert_eq!(cfg.server.listen, "127.0.0.1:3333".parse().unwrap());
}

#[test]
fn reports_all_errors_at_once() {
    let file = TempToml::new(
        "errors",
        r#"
bogus_top = 1
[server]
listen = "not an address"
ping_interval = "soon"
unknown_server_key = true
[limits]
max_offers_per_announce = "many"
max_connections = 0
[swarm]
policy = "nearest"
[mystery]
x = 1
"#,
    );
    let err = load_with_env(
        &Overrides {
            config_file: Some(file.0.clone()),
            listen: None,
        },
        env(&[
            ("HIVECAST_TRACKER__LIMITS__NOPE", "1"),
            ("HIVECAST_TRACKER__ACCESS__TOKENS", "short"),
        ]),
    )
    .unwrap_err();
    let text = err.to_string();
    for needle in [
        "unknown section or key `bogus_top`",
        "unknown section or key `mystery`",
        "unknown key `server.unknown_server_key`",
        "unknown key `limits.nope`",
        "`server.listen`",
        "`server.ping_interval`",
        "`limits.max_offers_per_announce`",
        "`swarm.policy`",
        "limits.max_connections must be at least 1",
        "access.tokens[0] must be",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(err.0.len() >= 10, "{text}");
    // The token value itself is never echoed.
    assert!(!text.contains("short"), "{text}");
}

#[test]
fn cross_field_checks() {
    let mut cfg = Config::default();
    cfg.server.tls_cert_file = Some("/x.pem".into());
    cfg.server.idle_timeout = Duration::from_secs(5);
    cfg.protocol.min_announce_interval = Duration::from_secs(600);
    cfg.limits.max_message_size = ByteSize::b(10);
    cfg.access.info_hash_allow = vec!["xyz".into()];
    cfg.swarm.peer_ttl = Duration::ZERO;
    cfg.limits.max_offers_per_announce = 1000;
    cfg.server.outbound_queue = 1 << 20;
    let errs = cfg.validate().join("\n");
    for needle in [
        "tls_key_file must be set together",
        "idle_timeout must be longer",
        "min_announce_interval must not exceed",
        "max_message_size must be between",
        "info_hash_allow[0] is not 40 hex digits",
        "swarm.peer_ttl must be between",
        "max_offers_per_announce must be at most 100",
        "outbound_queue must be at most",
    ] {
        assert!(errs.contains(needle), "missing {needle:?} in {errs}");
    }
}

#[test]
fn missing_or_broken_file_is_an_error() {
    let err = load_with_env(
        &Overrides {
            config_file: Some("/nonexistent/hivecast.toml".into()),
            listen: None,
        },
        env(&[]),
    )
    .unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    let file = TempToml::new("broken", "[server\nlisten=");
    let err = load_with_env(
        &Overrides {
            config_file: Some(file.0.clone()),
            listen: None,
        },
        env(&[]),
    )
    .unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
}

#[test]
fn secrets_are_not_debug_printed() {
    let mut cfg = Config::default();
    cfg.access.tokens = vec![Secret::new("super-secret-token")];
    let dbg = format!("{cfg:?}");
    assert!(!dbg.contains("super-secret-token"));
    assert!(dbg.contains("Secret(***)"));
}
