//! Observability end to end (the live parts of issue 7): a real tracker and two real agents
//! share a live stream over WebRTC on 127.0.0.1, and their live `/metrics` pages are checked
//! with the tools operators use.
//!
//! - `promtool check metrics` lints each live page after traffic (labelled series exist).
//! - Every metric the Grafana dashboard and the Prometheus rules reference (the list from
//!   `deploy/tools/referenced_metrics.py`, the Python twin of `deploy/referenced-metrics.sh`)
//!   is present in the live pages.
//! - A real Prometheus server (Debian `prometheus`), with the repository's rule files loaded
//!   (group intervals shortened to 1 s), scrapes the tracker and both agents every second
//!   until the fleet offload recording rule is above 0.
//!
//! Needs `promtool`, `prometheus` (Debian package `prometheus`), `python3` and `ffmpeg` on the
//! `PATH`; `bash .ci/run` installs them. A missing tool fails the test with a message saying so.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hivecast_demo::fixtures::{self, Fixtures};
use hivecast_demo::live::{LiveConfig, LivePackager};
use hivecast_demo::origin::Origin;
use hivecast_demo::player::{self, PlayerConfig, PlayerReport};
use support::procs::{AgentProc, Proc, TrackerProc, free_port, metric, spawn_agent, spawn_tracker};

/// Wall-clock limit of each test.
const TEST_TIMEOUT: Duration = Duration::from_secs(85);
/// How long the swarm may take to move its first bytes between peers.
const TRAFFIC_WITHIN: Duration = Duration::from_secs(55);
/// Scrape and rule evaluation interval of the test Prometheus.
const PROM_INTERVAL: &str = "1s";
/// The scrape job names the recording rules, alerts and dashboard expect.
const AGENT_JOB: &str = "hivecast-agent";
const TRACKER_JOB: &str = "hivecast-tracker";

fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("agent crate lives in the workspace")
        .to_path_buf()
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("hivecast-obs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Panics with an install hint unless `tool` runs.
fn require_tool(tool: &str, version_arg: &str) {
    match Command::new(tool)
        .arg(version_arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => {}
        Err(e) => panic!(
            "`{tool}` is needed by this test but cannot be run ({e}). Install it first \
             (Debian: apt-get install prometheus python3 ffmpeg; `bash .ci/run` does this)."
        ),
    }
}

/// A live origin (ffmpeg-made segments, real-time packager, digests published by the real
/// `publish-digests --watch`), a tracker, two agents and one paced player per agent.
struct Swarm {
    agents: Vec<AgentProc>,
    tracker: TrackerProc,
    players: Vec<tokio::task::JoinHandle<PlayerReport>>,
    _publisher: Proc,
    _live: hivecast_demo::live::LiveHandle<LivePackager>,
    origin: Origin,
    _dir: TempDir,
}

impl Drop for Swarm {
    fn drop(&mut self) {
        for p in &self.players {
            p.abort();
        }
    }
}

impl Swarm {
    async fn start(tag: &str) -> Swarm {
        let fx = Fixtures::ensure_async()
            .await
            .expect("test fixtures (is ffmpeg installed?)");
        let dir = TempDir::new(tag);
        let live_dir = dir.0.join("live");
        let mut cfg = LiveConfig::new(fx.path(fixtures::LIVE_SOURCE_TS), &live_dir);
        cfg.window = 6;
        let packager = LivePackager::new(cfg).expect("live packager");
        let publisher = support::procs::spawn_publish_digests(&live_dir);
        let live = packager.spawn_realtime();
        let sidecar = live_dir.join("index.sha256.json");
        tokio::time::timeout(Duration::from_secs(10), async {
            while !sidecar.is_file() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("publish-digests wrote the first sidecar within 10 s");
        let origin = Origin::start(dir.0.clone()).await.expect("origin starts");
        let tracker = spawn_tracker(0);
        let agents: Vec<AgentProc> = (0..2)
            .map(|_| spawn_agent(&origin.base_url(), Some(&tracker.url()), &[]))
            .collect();
        let players = agents
            .iter()
            .map(|a| {
                let mut pc = PlayerConfig::new(format!(
                    "http://{}/http/{}/live/index.m3u8",
                    a.listen,
                    origin.authority()
                ));
                pc.max_duration = TEST_TIMEOUT;
                tokio::spawn(async move { player::play(pc).await.expect("player runs") })
            })
            .collect();
        Swarm {
            agents,
            tracker,
            players,
            _publisher: publisher,
            _live: live,
            origin,
            _dir: dir,
        }
    }

    /// The live `/metrics` pages: (agents in order, tracker).
    async fn scrape(&self) -> (Vec<String>, String) {
        let mut agents = Vec::new();
        for a in &self.agents {
            agents.push(fetch_metrics(&a.admin.to_string()).await);
        }
        let tracker = fetch_metrics(&self.tracker.admin.to_string()).await;
        (agents, tracker)
    }

    /// Waits until the agents have exchanged segment bytes over WebRTC and fetched from the
    /// origin, so every labelled series that traffic creates exists; returns those pages.
    async fn wait_for_p2p_traffic(&self) -> (Vec<String>, String) {
        let t0 = Instant::now();
        loop {
            let (agents, tracker) = self.scrape().await;
            let peer: f64 = agents
                .iter()
                .map(|m| {
                    metric(
                        m,
                        "hivecast_agent_downloaded_bytes_total",
                        "source=\"peer\"",
                    )
                })
                .sum();
            let uploaded: f64 = agents
                .iter()
                .map(|m| metric(m, "hivecast_agent_uploaded_bytes_total", ""))
                .sum();
            let origin_ok = agents.iter().all(|m| {
                metric(
                    m,
                    "hivecast_agent_origin_requests_total",
                    "kind=\"segment\",result=\"ok\"",
                ) > 0.0
            });
            if peer > 0.0 && uploaded > 0.0 && origin_ok {
                return (agents, tracker);
            }
            assert!(
                t0.elapsed() < TRAFFIC_WITHIN,
                "no P2P traffic within {TRAFFIC_WITHIN:?} (peer bytes {peer}, uploaded {uploaded}, \
                 origin segment fetches on every agent: {origin_ok}, origin requests {})\n{}",
                self.origin.total_requests(),
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for (i, a) in self.agents.iter().enumerate() {
            s.push_str(&format!(
                "--- agent {i} log ---\n{}\n",
                tail(&a.proc_.log(), 60)
            ));
        }
        s.push_str(&format!(
            "--- tracker log ---\n{}\n",
            tail(&self.tracker.proc_.log(), 30)
        ));
        s
    }

    /// SIGTERM to the agents and the tracker (graceful drain), players stopped.
    fn stop(mut self) {
        for p in &self.players {
            p.abort();
        }
        for a in &mut self.agents {
            a.proc_.terminate();
        }
        self.tracker.proc_.terminate();
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// GET without panicking on connection errors (for readiness polling): (status, body).
async fn try_get(url: &str) -> Result<(u16, String), String> {
    use http_body_util::BodyExt;
    let req = http::Request::builder()
        .uri(url)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), support::client().request(req))
        .await
        .map_err(|_| "no response within 10 s".to_string())?
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

async fn fetch_metrics(admin: &str) -> String {
    let url = format!("http://{admin}/metrics");
    match try_get(&url).await {
        Ok((200, body)) => body,
        other => panic!("GET {url}: {other:?}"),
    }
}

/// Runs `promtool check metrics` on an exposition page: Ok(()) or promtool's findings.
fn promtool_check_metrics(page: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child
        .stdin
        .take()
        .expect("promtool stdin")
        .write_all(page.as_bytes())
        .expect("write the page to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Metric (sample) names in a text exposition page.
fn sample_names(page: &str) -> std::collections::BTreeSet<String> {
    page.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// Every metric name the dashboards and rules reference, from `referenced_metrics.py` (run
/// with `-S`, its PyYAML-free mode, which `deploy/check.sh` checks agrees with the full one).
fn referenced_metrics() -> Vec<String> {
    let out = Command::new("python3")
        .args(["-S", "deploy/tools/referenced_metrics.py"])
        .current_dir(repo_dir())
        .stdin(Stdio::null())
        .output()
        .expect("run python3 deploy/tools/referenced_metrics.py");
    assert!(
        out.status.success(),
        "referenced_metrics.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The referenced names missing from the live pages, each with where it was expected:
/// `hivecast_agent_*` in every agent's page, `hivecast_tracker_*` in the tracker's, anything
/// else is exported by neither.
fn missing_referenced(referenced: &[String], agents: &[String], tracker: &str) -> Vec<String> {
    let tracker_names = sample_names(tracker);
    let agent_names: Vec<_> = agents.iter().map(|p| sample_names(p)).collect();
    let mut missing = Vec::new();
    for name in referenced {
        if name.starts_with("hivecast_agent_") {
            for (i, names) in agent_names.iter().enumerate() {
                if !names.contains(name) {
                    missing.push(format!("{name} (agent {i})"));
                }
            }
        } else if !name.starts_with("hivecast_tracker_") {
            missing.push(format!(
                "{name} (exported by neither the agent nor the tracker)"
            ));
        } else if !tracker_names.contains(name) {
            missing.push(format!("{name} (tracker)"));
        }
    }
    missing
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_check_metrics_passes_on_live_agents_and_tracker() {
    require_tool("promtool", "--version");
    // The check is not vacuous: promtool flags a counter without the `_total` suffix.
    let bad = "# HELP bad_bytes Bytes.\n# TYPE bad_bytes counter\nbad_bytes 1\n";
    let finding = promtool_check_metrics(bad).expect_err("promtool must reject a bad page");
    assert!(
        finding.contains("_total"),
        "unexpected promtool finding: {finding}"
    );

    tokio::time::timeout(TEST_TIMEOUT, async {
        let swarm = Swarm::start("promtool").await;
        let (agents, tracker) = swarm.wait_for_p2p_traffic().await;
        let mut problems = Vec::new();
        for (i, page) in agents.iter().enumerate() {
            // Traffic made the labelled series that appear on first use.
            for series in [
                "hivecast_agent_origin_requests_total{kind=\"segment\",result=\"ok\"}",
                "hivecast_agent_player_requests_total{kind=\"segment\",status=\"2xx\"}",
            ] {
                assert!(page.contains(series), "agent {i} has no {series}:\n{page}");
            }
            if let Err(e) = promtool_check_metrics(page) {
                problems.push(format!("agent {i}:\n{e}"));
            }
        }
        assert!(
            tracker.contains("hivecast_tracker_signals_relayed_total{kind=\"offer\"}"),
            "tracker page without signal counters:\n{tracker}"
        );
        if let Err(e) = promtool_check_metrics(&tracker) {
            problems.push(format!("tracker:\n{e}"));
        }
        swarm.stop();
        assert!(
            problems.is_empty(),
            "promtool check metrics:\n{}",
            problems.join("\n")
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_rules_reference_is_exported() {
    require_tool("python3", "--version");
    let referenced = referenced_metrics();
    assert!(
        referenced.len() >= 10
            && referenced
                .iter()
                .any(|n| n == "hivecast_agent_downloaded_bytes_total"),
        "implausible list from referenced_metrics.py: {referenced:?}"
    );

    tokio::time::timeout(TEST_TIMEOUT, async {
        let swarm = Swarm::start("referenced").await;
        let (agents, tracker) = swarm.wait_for_p2p_traffic().await;
        swarm.stop();
        let missing = missing_referenced(&referenced, &agents, &tracker);
        assert!(
            missing.is_empty(),
            "referenced by deploy/grafana or deploy/prometheus/rules but not in the live \
             /metrics output:\n  {}",
            missing.join("\n  ")
        );
    })
    .await
    .expect("test timed out");
}

/// A Prometheus server on 127.0.0.1 with a temporary TSDB, killed on drop.
struct Prometheus {
    proc_: Proc,
    base: String,
    log: PathBuf,
}

impl Prometheus {
    /// Writes a config scraping `agents` and `tracker` (admin addresses) every second under
    /// the job names the rules expect, copies the repository's rule files with their group
    /// intervals set to 1 s, and starts the server.
    fn start(dir: &Path, agents: &[String], tracker: &str) -> Prometheus {
        let deploy = repo_dir().join("deploy/prometheus");
        // The jobs generated here must be the ones the shipped config scrapes.
        let shipped =
            std::fs::read_to_string(deploy.join("prometheus.yml")).expect("deploy/prometheus.yml");
        for job in [AGENT_JOB, TRACKER_JOB] {
            assert!(
                shipped.contains(&format!("job_name: {job}")),
                "deploy/prometheus/prometheus.yml has no job {job}"
            );
        }
        let rules_dir = dir.join("rules");
        std::fs::create_dir_all(&rules_dir).expect("mkdir rules");
        let mut rule_files = 0;
        for entry in std::fs::read_dir(deploy.join("rules")).expect("deploy/prometheus/rules") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_some_and(|e| e == "yml") {
                let text = std::fs::read_to_string(&path).expect("read rule file");
                let name = path.file_name().expect("file name");
                std::fs::write(rules_dir.join(name), fast_rule_groups(&text)).expect("write rules");
                rule_files += 1;
            }
        }
        assert!(rule_files >= 1, "no rule files in deploy/prometheus/rules");
        let quoted = |v: &[String]| {
            v.iter()
                .map(|t| format!("\"{t}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let config = format!(
            "global:\n  scrape_interval: {PROM_INTERVAL}\n  scrape_timeout: {PROM_INTERVAL}\n  \
             evaluation_interval: {PROM_INTERVAL}\n\
             rule_files:\n  - rules/*.yml\n\
             scrape_configs:\n  \
             - job_name: {AGENT_JOB}\n    static_configs:\n      - targets: [{}]\n  \
             - job_name: {TRACKER_JOB}\n    static_configs:\n      - targets: [{}]\n",
            quoted(agents),
            quoted(&[tracker.to_string()]),
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let addr = format!("127.0.0.1:{}", free_port());
        let log = dir.join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create prometheus.log"))
            .spawn()
            .expect("spawn prometheus");
        Prometheus {
            proc_: Proc {
                child,
                stderr: Default::default(),
            },
            base: format!("http://{addr}"),
            log,
        }
    }

    fn log_tail(&self) -> String {
        tail(&std::fs::read_to_string(&self.log).unwrap_or_default(), 40)
    }

    /// Readiness from Prometheus itself: `/-/ready` answers 200.
    async fn wait_ready(&mut self, within: Duration) {
        let t0 = Instant::now();
        loop {
            if let Ok((200, _)) = try_get(&format!("{}/-/ready", self.base)).await {
                return;
            }
            if let Ok(Some(st)) = self.proc_.child.try_wait() {
                panic!("prometheus exited ({st}):\n{}", self.log_tail());
            }
            assert!(
                t0.elapsed() < within,
                "prometheus not ready within {within:?}:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET /api/v1/<endpoint>` with query parameters; the `data` member of the answer.
    async fn api(&self, endpoint: &str, params: &[(&str, &str)]) -> serde_json::Value {
        let url = url::Url::parse_with_params(&format!("{}/api/v1/{endpoint}", self.base), params)
            .expect("API URL");
        let (status, body) = try_get(url.as_str())
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let v: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {body}"));
        assert!(
            status == 200 && v["status"] == "success",
            "GET {url}: {status} {body}"
        );
        v["data"].clone()
    }

    /// An instant query: (labels, value) per series.
    async fn query(&self, promql: &str) -> Vec<(serde_json::Value, f64)> {
        let data = self.api("query", &[("query", promql)]).await;
        data["result"]
            .as_array()
            .map(|series| {
                series
                    .iter()
                    .map(|s| {
                        let value = s["value"][1]
                            .as_str()
                            .and_then(|v| v.parse::<f64>().ok())
                            .unwrap_or(f64::NAN);
                        (s["metric"].clone(), value)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The rule file with every group `interval:` set to [`PROM_INTERVAL`] (all else unchanged),
/// so the 30 s groups evaluate within the test's time budget.
fn fast_rule_groups(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("interval:") {
            let indent = &line[..line.len() - trimmed.len()];
            out.push_str(&format!("{indent}interval: {PROM_INTERVAL}"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_swarm_and_records_offload_above_zero() {
    require_tool("prometheus", "--version");
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = TempDir::new("prometheus");
        let swarm = Swarm::start("prometheus").await;
        let agents: Vec<String> = swarm.agents.iter().map(|a| a.admin.to_string()).collect();
        let mut prom = Prometheus::start(&dir.0, &agents, &swarm.tracker.admin.to_string());
        prom.wait_ready(Duration::from_secs(20)).await;

        let offload_rule = "job:hivecast_agent_offload:ratio_rate5m";
        let t0 = Instant::now();
        let offload = loop {
            let result = prom.query(offload_rule).await;
            if let Some((labels, v)) = result.iter().find(|(_, v)| *v > 0.0) {
                assert_eq!(labels["job"], AGENT_JOB, "offload series labels: {labels}");
                break *v;
            }
            if t0.elapsed() > Duration::from_secs(60) {
                let up = prom.query("up").await;
                let peer = prom
                    .query("sum by (instance) (hivecast_agent_downloaded_bytes_total)")
                    .await;
                panic!(
                    "{offload_rule} not above 0 within 60 s: last result {result:?}\nup: {up:?}\n\
                     downloaded bytes: {peer:?}\n--- prometheus log ---\n{}\n{}",
                    prom.log_tail(),
                    swarm.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        eprintln!(
            "{offload_rule} = {offload:.3} after {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        assert!(offload <= 1.0, "offload ratio {offload} above 1");
        for (labels, v) in prom
            .query("instance_source:hivecast_agent_downloaded_bytes:rate5m")
            .await
        {
            eprintln!("  {} {}: {v:.0} B/s", labels["instance"], labels["source"]);
        }

        // All three targets are scraped, under the job names the rules use.
        let up = prom.query("up").await;
        let up_jobs: Vec<String> = up
            .iter()
            .filter(|(_, v)| *v == 1.0)
            .filter_map(|(l, _)| l["job"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(
            up_jobs.iter().filter(|j| *j == AGENT_JOB).count(),
            2,
            "agent targets up: {up:?}"
        );
        assert_eq!(
            up_jobs.iter().filter(|j| *j == TRACKER_JOB).count(),
            1,
            "tracker target up: {up:?}"
        );
        let tracker_peers = prom
            .query(&format!(
                "sum(hivecast_tracker_peers{{job=\"{TRACKER_JOB}\"}})"
            ))
            .await;
        assert!(
            tracker_peers.first().is_some_and(|(_, v)| *v >= 2.0),
            "tracker peers as scraped: {tracker_peers:?}"
        );

        // Every rule the repository ships loaded and evaluates without error.
        let rules = prom.api("rules", &[]).await;
        let mut loaded = 0;
        let mut errors = Vec::new();
        for group in rules["groups"].as_array().into_iter().flatten() {
            for rule in group["rules"].as_array().into_iter().flatten() {
                loaded += 1;
                if rule["health"] == "err" {
                    errors.push(format!("{}: {}", rule["name"], rule["lastError"]));
                }
            }
        }
        assert!(loaded >= 10, "only {loaded} rules loaded: {rules}");
        assert!(errors.is_empty(), "rules failing to evaluate: {errors:?}");

        prom.proc_.terminate();
        swarm.stop();
    })
    .await
    .expect("test timed out");
}

#[test]
fn fast_rule_groups_changes_only_group_intervals() {
    let text = "groups:\n  - name: a\n    interval: 30s\n    rules:\n      - record: x:y:z\n        expr: sum(rate(m_total[5m]))\n      - alert: A\n        expr: x:y:z > 0\n        for: 15m\n";
    let fast = fast_rule_groups(text);
    assert_eq!(fast, text.replace("interval: 30s", "interval: 1s"));
    assert!(fast.contains("for: 15m"));
}

#[test]
fn sample_names_reads_plain_and_labelled_samples() {
    let page = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 3\nb 4\n\n";
    let names = sample_names(page);
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        vec!["a_total".to_string(), "b".to_string()]
    );
}

#[test]
fn missing_referenced_names_where_each_name_is_missing() {
    let referenced: Vec<String> = [
        "hivecast_agent_peers",
        "hivecast_agent_segment_fetch_seconds_bucket",
        "hivecast_tracker_swarms",
        "node_cpu_seconds_total",
    ]
    .map(String::from)
    .to_vec();
    let complete =
        "hivecast_agent_peers 2\nhivecast_agent_segment_fetch_seconds_bucket{le=\"1\"} 3\n";
    let partial = "# HELP hivecast_agent_peers Peers.\nhivecast_agent_peers 1\n";
    let missing = missing_referenced(
        &referenced,
        &[complete.to_string(), partial.to_string()],
        "hivecast_tracker_peers 2\n",
    );
    assert_eq!(
        missing,
        vec![
            "hivecast_agent_segment_fetch_seconds_bucket (agent 1)",
            "hivecast_tracker_swarms (tracker)",
            "node_cpu_seconds_total (exported by neither the agent nor the tracker)",
        ]
    );
    let all_there = missing_referenced(
        &referenced[..3],
        &[complete.to_string()],
        "hivecast_tracker_swarms 1\n",
    );
    assert!(all_there.is_empty(), "{all_there:?}");
}

#[test]
#[should_panic(expected = "Install it first")]
fn a_missing_tool_fails_with_an_install_hint() {
    require_tool("hivecast-no-such-tool", "--version");
}
