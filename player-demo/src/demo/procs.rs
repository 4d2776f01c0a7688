//! Child processes of the demo, each in its own process group, so that stopping a child also
//! stops anything it started.
//!
//! * [`Managed::spawn`] starts a program in a new process group (`setpgid(0, 0)` through
//!   `Command::process_group(0)`), with stdout and stderr appended to a log file, and
//!   registers the group id.
//! * [`Managed::wait_listening`] waits until the child accepts TCP connections on an address,
//!   failing early (with the log tail) if it exits.
//! * [`shutdown_all`] sends `SIGTERM` to every group, waits up to a grace period, then sends
//!   `SIGKILL` to the groups still alive.
//! * Dropping a [`Managed`] kills its group with `SIGKILL`; [`install_panic_hook`] kills every
//!   registered group before a panic report and exits, so no process outlives a crash of the
//!   demo. (A `SIGKILL` of the demo itself cannot be intercepted; its children would then
//!   keep running.)

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use thiserror::Error;
use tokio::process::{Child, Command};

/// Errors starting or waiting for a child.
#[derive(Debug, Error)]
pub enum ProcError {
    /// The program could not be started.
    #[error("cannot start {name} ({program}): {source}")]
    Spawn {
        /// Display name.
        name: String,
        /// The program path.
        program: String,
        /// The error.
        source: io::Error,
    },
    /// The log file could not be created.
    #[error("cannot create log file {path}: {source}")]
    Log {
        /// The log path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The child exited before it was ready.
    #[error("{name} exited ({status}) before listening on {addr}; last log lines:\n{log_tail}")]
    ExitedEarly {
        /// Display name.
        name: String,
        /// Expected address.
        addr: SocketAddr,
        /// Exit status.
        status: String,
        /// End of its log.
        log_tail: String,
    },
    /// The child exited before writing the file it is expected to write.
    #[error("{name} exited ({status}) before writing {path}; last log lines:\n{log_tail}")]
    ExitedBeforeFile {
        /// Display name.
        name: String,
        /// Expected file.
        path: PathBuf,
        /// Exit status.
        status: String,
        /// End of its log.
        log_tail: String,
    },
    /// The child did not write the expected file in time.
    #[error("{name} did not write {path} within {timeout:?}; last log lines:\n{log_tail}")]
    NoFile {
        /// Display name.
        name: String,
        /// Expected file.
        path: PathBuf,
        /// The limit.
        timeout: Duration,
        /// End of its log.
        log_tail: String,
    },
    /// The child did not listen in time.
    #[error("{name} did not listen on {addr} within {timeout:?}; last log lines:\n{log_tail}")]
    NotReady {
        /// Display name.
        name: String,
        /// Expected address.
        addr: SocketAddr,
        /// The limit.
        timeout: Duration,
        /// End of its log.
        log_tail: String,
    },
}

/// Process groups of live children, for the panic hook.
static GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

fn groups() -> std::sync::MutexGuard<'static, BTreeSet<i32>> {
    GROUPS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends `signal` to a process group, ignoring "no such process".
fn signal_group(pgid: i32, signal: Signal) {
    let _ = killpg(Pid::from_raw(pgid), signal);
}

/// Kills every registered process group with `SIGKILL` (synchronous; used on panic).
pub fn kill_all_groups() {
    let all: Vec<i32> = groups().iter().copied().collect();
    for pgid in all {
        signal_group(pgid, Signal::SIGKILL);
    }
}

/// Installs a panic hook that kills every child process group, prints the panic as usual,
/// and exits with status 101 (so a panic on any thread ends the demo cleanly).
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        kill_all_groups();
        default(info);
        std::process::exit(101);
    }));
}

/// A child process in its own process group.
pub struct Managed {
    name: String,
    child: Child,
    pgid: Option<i32>,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl std::fmt::Debug for Managed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Managed")
            .field("name", &self.name)
            .field("pgid", &self.pgid)
            .field("log", &self.log)
            .finish()
    }
}

/// The last `lines` lines of a log file.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Managed {
    /// Starts `program args` with extra environment variables, in a new process group, with
    /// stdin closed and stdout/stderr appended to `log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        log: &Path,
    ) -> Result<Managed, ProcError> {
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|source| ProcError::Log {
                    path: log.to_path_buf(),
                    source,
                })
        };
        let stdout = open()?;
        let stderr = open()?;
        let mut cmd = Command::new(program);
        cmd.args(args.iter().map(OsString::from))
            .envs(env.iter().map(|(k, v)| (k.clone(), v.clone())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|source| ProcError::Spawn {
            name: name.to_string(),
            program: program.display().to_string(),
            source,
        })?;
        let pgid = child.id().and_then(|id| i32::try_from(id).ok());
        if let Some(pgid) = pgid {
            groups().insert(pgid);
        }
        tracing::info!(name, program = %program.display(), ?args, log = %log.display(), pid = ?pgid, "started");
        Ok(Managed {
            name: name.to_string(),
            child,
            pgid,
            log: log.to_path_buf(),
            exited: None,
        })
    }

    /// Display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Process (and process group) id, while running.
    pub fn pid(&self) -> Option<i32> {
        self.pgid
    }

    /// Its log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    fn reaped(&mut self, status: ExitStatus) {
        self.exited = Some(status);
        if let Some(pgid) = self.pgid {
            // The leader is gone; kill anything it left in its group, then forget it.
            signal_group(pgid, Signal::SIGKILL);
            groups().remove(&pgid);
        }
    }

    /// Whether the child has exited (non-blocking); reaps it if so.
    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.reaped(status);
        }
        self.exited
    }

    /// Waits for the child to exit.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(s) = self.exited {
            return Ok(s);
        }
        let status = self.child.wait().await?;
        self.reaped(status);
        Ok(status)
    }

    /// Waits until `addr` accepts TCP connections (checked every 50 ms, bounded by
    /// `timeout`), failing at once if the child exits.
    pub async fn wait_listening(
        &mut self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<(), ProcError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(());
            }
            if let Some(status) = self.try_exited() {
                return Err(ProcError::ExitedEarly {
                    name: self.name.clone(),
                    addr,
                    status: status.to_string(),
                    log_tail: log_tail(&self.log, 20),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ProcError::NotReady {
                    name: self.name.clone(),
                    addr,
                    timeout,
                    log_tail: log_tail(&self.log, 20),
                });
            }
            tokio::select! {
                status = self.child.wait() => {
                    if let Ok(status) = status {
                        self.reaped(status);
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }

    /// Waits until `path` exists (checked every 50 ms, bounded by `timeout`), failing at once
    /// if the child exits first.
    pub async fn wait_for_file(&mut self, path: &Path, timeout: Duration) -> Result<(), ProcError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if path.exists() {
                return Ok(());
            }
            if let Some(status) = self.try_exited() {
                return Err(ProcError::ExitedBeforeFile {
                    name: self.name.clone(),
                    path: path.to_path_buf(),
                    status: status.to_string(),
                    log_tail: log_tail(&self.log, 20),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ProcError::NoFile {
                    name: self.name.clone(),
                    path: path.to_path_buf(),
                    timeout,
                    log_tail: log_tail(&self.log, 20),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends a signal to the child's whole process group.
    pub fn signal(&self, signal: Signal) {
        if self.exited.is_none()
            && let Some(pgid) = self.pgid
        {
            signal_group(pgid, signal);
        }
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            signal_group(pgid, Signal::SIGKILL);
            groups().remove(&pgid);
        }
    }
}

/// Stops every child: `SIGTERM` to each process group, then waits up to `grace` for them to
/// exit, then `SIGKILL` for the rest (and their groups). Returns (name, status) per child.
pub async fn shutdown_all(children: &mut [Managed], grace: Duration) -> Vec<(String, String)> {
    for c in children.iter() {
        c.signal(Signal::SIGTERM);
    }
    let deadline = tokio::time::Instant::now() + grace;
    let mut out = Vec::new();
    for c in children.iter_mut() {
        let status = match tokio::time::timeout_at(deadline, c.wait()).await {
            Ok(Ok(s)) => s.to_string(),
            Ok(Err(e)) => format!("wait failed: {e}"),
            Err(_) => {
                c.signal(Signal::SIGKILL);
                match c.wait().await {
                    Ok(s) => format!("killed after {grace:?} ({s})"),
                    Err(e) => format!("killed, wait failed: {e}"),
                }
            }
        };
        tracing::info!(name = c.name(), %status, "stopped");
        out.push((c.name().to_string(), status));
    }
    out
}

/// Makes sure the workspace binaries `names` exist in the cargo profile directory `dir`
/// (e.g. `target/debug`), building them with `cargo build --profile P -p NAME --bin NAME…`
/// (same target directory and profile, run in `workspace`) when any is missing. For tests and
/// benchmarks whose crate does not depend on the agent or tracker binaries. `$CARGO` picks the
/// cargo binary; the build is bounded to 30 minutes.
pub async fn ensure_built(dir: &Path, workspace: &Path, names: &[&str]) -> Result<(), String> {
    let have = || names.iter().all(|n| dir.join(n).is_file());
    if have() {
        return Ok(());
    }
    let target = dir
        .parent()
        .filter(|t| t.join("CACHEDIR.TAG").is_file())
        .ok_or_else(|| {
            format!(
                "{} is not in a cargo target directory; build the binaries yourself: cargo build {}",
                dir.display(),
                names.iter().map(|n| format!("-p {n}")).collect::<Vec<_>>().join(" ")
            )
        })?;
    let profile = match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_string(),
        Some(other) => other.to_string(),
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec!["build".to_string(), "--profile".into(), profile.clone()];
    for n in names {
        args.extend(["-p".into(), n.to_string(), "--bin".into(), n.to_string()]);
    }
    eprintln!(
        "building {} ({profile}) into {}",
        names.join(", "),
        target.display()
    );
    let mut build = Command::new(&cargo)
        .args(&args)
        .env("CARGO_TARGET_DIR", target)
        .current_dir(workspace)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    let status = tokio::time::timeout(Duration::from_secs(1800), build.wait())
        .await
        .map_err(|_| format!("{cargo} {} did not finish within 30 min", args.join(" ")))?
        .map_err(|e| format!("waiting for {cargo}: {e}"))?;
    if !status.success() {
        return Err(format!("{cargo} {} failed ({status})", args.join(" ")));
    }
    if !have() {
        return Err(format!(
            "{} still missing in {}",
            names.join(", "),
            dir.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The process-group registry is global: tests that spawn children run one at a time so
    /// that `kill_all_groups` in one cannot hit another's children.
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hivecast-procs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    fn alive(pid: i32) -> bool {
        // A process is gone when /proc/PID is missing or a zombie waiting for its reaper.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z')),
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn shutdown_kills_the_whole_group() {
        let _serial = SERIAL.lock().await;
        let d = scratch("group");
        let pidfile = d.join("grandchild.pid");
        // The shell starts a grandchild, records its pid, and ignores SIGTERM itself, so the
        // grace period expires and SIGKILL is needed.
        let script = format!(
            "trap '' TERM; sleep 300 & echo $! > {}; while true; do sleep 1; done",
            pidfile.display()
        );
        let c = Managed::spawn(
            "stubborn",
            Path::new("/bin/sh"),
            &["-c".to_string(), script],
            &[],
            &d.join("log"),
        )
        .expect("spawn");
        let leader = c.pid().expect("pid");
        // Wait (bounded) for the grandchild pid file.
        let mut grandchild = None;
        for _ in 0..200 {
            if let Ok(s) = std::fs::read_to_string(&pidfile)
                && let Ok(p) = s.trim().parse::<i32>()
            {
                grandchild = Some(p);
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let grandchild = grandchild.expect("grandchild started");
        assert!(alive(grandchild));
        assert!(groups().contains(&leader));
        let mut all = vec![c];
        let res = tokio::time::timeout(
            Duration::from_secs(20),
            shutdown_all(&mut all, Duration::from_millis(300)),
        )
        .await
        .expect("shutdown in time");
        assert!(res[0].1.contains("killed"), "{res:?}");
        assert!(!groups().contains(&leader));
        // The grandchild (same group) is gone too; give init a moment to reap it.
        let mut gone = false;
        for _ in 0..200 {
            if !alive(grandchild) {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(gone, "grandchild {grandchild} survived");
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[tokio::test]
    async fn kill_all_groups_is_what_the_panic_hook_runs() {
        let _serial = SERIAL.lock().await;
        let d = scratch("panic");
        let mut c = Managed::spawn(
            "victim",
            Path::new("/bin/sh"),
            &["-c".to_string(), "trap '' TERM; sleep 300".to_string()],
            &[],
            &d.join("log"),
        )
        .expect("spawn");
        let pid = c.pid().expect("pid");
        assert!(alive(pid));
        kill_all_groups();
        let status = tokio::time::timeout(Duration::from_secs(10), c.wait())
            .await
            .expect("dies at once")
            .expect("wait");
        assert!(!status.success());
        assert!(!groups().contains(&pid));
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[tokio::test]
    async fn early_exit_and_missing_program_are_reported() {
        let _serial = SERIAL.lock().await;
        let d = scratch("early");
        let mut c = Managed::spawn(
            "quitter",
            Path::new("/bin/sh"),
            &["-c".to_string(), "echo boom-marker >&2; exit 3".to_string()],
            &[("X".to_string(), "1".to_string())],
            &d.join("log"),
        )
        .expect("spawn");
        let addr: SocketAddr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let err = tokio::time::timeout(
            Duration::from_secs(20),
            c.wait_listening(addr, Duration::from_secs(10)),
        )
        .await
        .expect("in time")
        .expect_err("must fail");
        match err {
            ProcError::ExitedEarly {
                log_tail, status, ..
            } => {
                assert!(log_tail.contains("boom-marker"), "{log_tail}");
                assert!(status.contains('3'), "{status}");
            }
            other => panic!("unexpected {other}"),
        }
        let err = Managed::spawn(
            "nothing",
            &d.join("missing-binary"),
            &[],
            &[],
            &d.join("log2"),
        )
        .expect_err("must fail");
        assert!(matches!(err, ProcError::Spawn { .. }), "{err}");
        let err = Managed::spawn(
            "nolog",
            Path::new("/bin/true"),
            &[],
            &[],
            &d.join("no/such/dir/log"),
        )
        .expect_err("must fail");
        assert!(matches!(err, ProcError::Log { .. }), "{err}");
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[tokio::test]
    async fn waits_for_a_file_or_reports_exit_and_timeout() {
        let _serial = SERIAL.lock().await;
        let d = scratch("file");
        let target = d.join("ready.json");
        let mut writer = Managed::spawn(
            "writer",
            Path::new("/bin/sh"),
            &[
                "-c".to_string(),
                format!("sleep 0.2; echo {{}} > {}; sleep 30", target.display()),
            ],
            &[],
            &d.join("log"),
        )
        .expect("spawn");
        writer
            .wait_for_file(&target, Duration::from_secs(10))
            .await
            .expect("file appears");
        let mut quitter = Managed::spawn(
            "quitter",
            Path::new("/bin/sh"),
            &[
                "-c".to_string(),
                "echo no-file-marker >&2; exit 2".to_string(),
            ],
            &[],
            &d.join("log2"),
        )
        .expect("spawn");
        let err = quitter
            .wait_for_file(&d.join("never"), Duration::from_secs(10))
            .await
            .expect_err("exits first");
        match &err {
            ProcError::ExitedBeforeFile { log_tail, .. } => {
                assert!(log_tail.contains("no-file-marker"), "{err}")
            }
            other => panic!("unexpected {other}"),
        }
        let err = writer
            .wait_for_file(&d.join("never"), Duration::from_millis(200))
            .await
            .expect_err("times out");
        assert!(matches!(err, ProcError::NoFile { .. }), "{err}");
        let mut all = vec![writer, quitter];
        shutdown_all(&mut all, Duration::from_secs(5)).await;
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[tokio::test]
    async fn not_ready_times_out() {
        let _serial = SERIAL.lock().await;
        let d = scratch("slow");
        let mut c = Managed::spawn(
            "sleeper",
            Path::new("/bin/sh"),
            &["-c".to_string(), "sleep 30".to_string()],
            &[],
            &d.join("log"),
        )
        .expect("spawn");
        let addr: SocketAddr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let err = c
            .wait_listening(addr, Duration::from_millis(300))
            .await
            .expect_err("must time out");
        assert!(matches!(err, ProcError::NotReady { .. }), "{err}");
        let mut all = vec![c];
        let res = shutdown_all(&mut all, Duration::from_secs(5)).await;
        assert!(!res[0].1.contains("killed"), "sh exits on SIGTERM: {res:?}");
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}
