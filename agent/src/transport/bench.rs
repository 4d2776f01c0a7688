//! Data-channel benchmark: two endpoints in one process on loopback, compared with a plain
//! tokio TCP connection over 127.0.0.1 moving the same bytes in the same run.
//!
//! Measures bulk throughput (MB/s, MB = 10^6 bytes) and CPU seconds per GB (10^9 bytes) from
//! `/proc/self/stat` (user + system time of the whole process, so both ends and every
//! thread are counted), then the time to move one segment (default 2 MB) over a warm link,
//! as the median of several runs.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::transport::{
    FrameReceiver, PeerLink, Transport, TransportConfig, TransportError, WebRtcTransport,
};

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Bytes moved in the bulk throughput phase (each transport).
    pub total_bytes: u64,
    /// Frame (message / write) size.
    pub frame_size: usize,
    /// Size of one segment for the latency phase.
    pub segment_bytes: u64,
    /// Segment transfers timed (after one warm-up transfer).
    pub segment_runs: usize,
    /// `reactor_threads` for the WebRTC endpoints (0 = drivers on the tokio runtime).
    pub reactor_threads: usize,
    /// Open link pairs for the idle memory measurement (0 skips it).
    pub idle_pairs: usize,
    /// Limit for the whole benchmark.
    pub timeout: Duration,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            total_bytes: 128 * 1024 * 1024,
            frame_size: 64 * 1024,
            segment_bytes: 2_000_000,
            segment_runs: 15,
            reactor_threads: 0,
            idle_pairs: 10,
            timeout: Duration::from_secs(300),
        }
    }
}

/// Bulk transfer figures.
#[derive(Clone, Debug)]
pub struct Throughput {
    /// Bytes moved.
    pub bytes: u64,
    /// Wall time from the first send to the last byte received.
    pub elapsed: Duration,
    /// CPU time (user + system) of the whole process during the transfer, if readable.
    pub cpu: Option<Duration>,
}

impl Throughput {
    /// Megabytes (10^6) per second.
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// CPU seconds per gigabyte (10^9) moved.
    pub fn cpu_s_per_gb(&self) -> Option<f64> {
        self.cpu
            .map(|cpu| cpu.as_secs_f64() / (self.bytes as f64 / 1e9))
    }
}

/// Segment transfer times.
#[derive(Clone, Debug)]
pub struct SegmentLatency {
    /// Each timed run, sorted.
    pub runs: Vec<Duration>,
}

impl SegmentLatency {
    /// Median.
    pub fn p50(&self) -> Duration {
        percentile(&self.runs, 50)
    }

    /// 90th percentile.
    pub fn p90(&self) -> Duration {
        percentile(&self.runs, 90)
    }
}

fn percentile(sorted: &[Duration], pct: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = (sorted.len() - 1) * pct / 100;
    sorted.get(index).copied().unwrap_or_default()
}

/// Everything the benchmark measured.
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// The options used.
    pub options: BenchOptions,
    /// Offer/answer to open data channel.
    pub connect_time: Duration,
    /// Data-channel bulk transfer.
    pub datachannel: Throughput,
    /// TCP bulk transfer.
    pub tcp: Throughput,
    /// Data-channel segment transfer times.
    pub datachannel_segment: SegmentLatency,
    /// TCP segment transfer times.
    pub tcp_segment: SegmentLatency,
    /// RTT of the data channel's ICE pair, if measured.
    pub rtt: Option<Duration>,
    /// Resident memory per open, idle connection (one end of a link), if measured.
    pub idle_bytes_per_connection: Option<u64>,
    /// Peak resident memory of the process (VmHWM) at the end of the run.
    pub peak_rss: Option<u64>,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "datachannel bench: {} MiB bulk in {} KiB frames, {} x {} byte segments, reactor_threads={}",
            o.total_bytes / (1024 * 1024),
            o.frame_size / 1024,
            o.segment_runs,
            o.segment_bytes,
            o.reactor_threads
        )?;
        writeln!(
            f,
            "connect time (answer applied -> channel open): {:?}",
            self.connect_time
        )?;
        if let Some(rtt) = self.rtt {
            writeln!(f, "ICE pair RTT: {rtt:?}")?;
        }
        if let Some(bytes) = self.idle_bytes_per_connection {
            writeln!(
                f,
                "idle connection RSS: {:.0} KiB each ({} links = {} connections)",
                bytes as f64 / 1024.0,
                o.idle_pairs,
                o.idle_pairs * 2
            )?;
        }
        if let Some(peak) = self.peak_rss {
            writeln!(
                f,
                "peak RSS of the run: {:.1} MiB",
                peak as f64 / (1024.0 * 1024.0)
            )?;
        }
        writeln!(
            f,
            "{:<12} {:>10} {:>14} {:>14} {:>14}",
            "transport", "MB/s", "CPU s/GB", "segment p50", "segment p90"
        )?;
        for (name, bulk, segment) in [
            ("datachannel", &self.datachannel, &self.datachannel_segment),
            ("tcp", &self.tcp, &self.tcp_segment),
        ] {
            let cpu = bulk
                .cpu_s_per_gb()
                .map_or_else(|| "n/a".to_owned(), |value| format!("{value:.2}"));
            writeln!(
                f,
                "{:<12} {:>10.1} {:>14} {:>14.2?} {:>14.2?}",
                name,
                bulk.mb_per_s(),
                cpu,
                segment.p50(),
                segment.p90()
            )?;
        }
        Ok(())
    }
}

/// Benchmark failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The data channel failed.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// The TCP baseline failed.
    #[error("tcp: {0}")]
    Io(#[from] std::io::Error),
    /// The options are unusable.
    #[error("bad options: {0}")]
    Options(&'static str),
    /// The benchmark exceeded its time limit.
    #[error("benchmark exceeded {0:?}")]
    Timeout(Duration),
    /// A receiving task ended early.
    #[error("receiver ended before all bytes arrived")]
    Incomplete,
}

/// Process CPU time (user + system, all threads) from `/proc/self/stat`; `None` where that
/// file does not exist.
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15 of
    // the whole line, i.e. 12th and 13th after the name.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // USER_HZ is 100 on every Linux ABI (the kernel scales /proc values to it).
    Some(Duration::from_millis((utime + stime) * 10))
}

/// A `/proc/self/status` memory figure in bytes (`VmRSS`, `VmHWM`).
pub fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn cpu_delta(before: Option<Duration>) -> Option<Duration> {
    Some(process_cpu_time()?.saturating_sub(before?))
}

/// Runs the whole benchmark. Spawns tasks on the current tokio runtime.
pub async fn datachannel_bench(options: &BenchOptions) -> Result<BenchReport, BenchError> {
    if options.frame_size == 0 || options.frame_size > 64 * 1024 {
        return Err(BenchError::Options("frame_size must be 1..=65536"));
    }
    if options.total_bytes == 0 || options.segment_bytes == 0 || options.segment_runs == 0 {
        return Err(BenchError::Options("sizes and runs must be non-zero"));
    }
    match tokio::time::timeout(options.timeout, run(options)).await {
        Ok(result) => result,
        Err(_) => Err(BenchError::Timeout(options.timeout)),
    }
}

async fn run(options: &BenchOptions) -> Result<BenchReport, BenchError> {
    let config = TransportConfig {
        reactor_threads: options.reactor_threads,
        ..TransportConfig::loopback()
    };
    // First, while the heap is fresh: memory of idle connections.
    let idle_bytes_per_connection = if options.idle_pairs > 0 {
        idle_memory(&config, options.idle_pairs).await?
    } else {
        None
    };

    let (offerer, answerer) = connect_pair(&config).await?;
    let connect_time = offerer.handle.stats().connect_time.unwrap_or_default();
    let payload = Bytes::from(vec![0xA5_u8; options.frame_size]);

    // Data channel, bulk.
    let (dc_tx, dc_rx, dc_handle) = offerer.into_parts();
    let (_peer_tx, peer_rx, peer_handle) = answerer.into_parts();
    let (mut marks, counter) = count_frames(peer_rx, vec![options.total_bytes]);
    let cpu_before = process_cpu_time();
    let started = Instant::now();
    send_bytes(&payload, options.total_bytes, |frame| dc_tx.send(frame)).await?;
    let done = wait_mark(&mut marks).await?;
    let datachannel = Throughput {
        bytes: options.total_bytes,
        elapsed: done.saturating_duration_since(started),
        cpu: cpu_delta(cpu_before),
    };
    let peer_rx = counter.await.map_err(|_| BenchError::Incomplete)??;

    // Data channel, segments: one warm-up then the timed runs.
    let runs = options.segment_runs + 1;
    let (mut marks, counter) = count_frames(peer_rx, vec![options.segment_bytes; runs]);
    let mut dc_runs = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        send_bytes(&payload, options.segment_bytes, |frame| dc_tx.send(frame)).await?;
        dc_runs.push(
            wait_mark(&mut marks)
                .await?
                .saturating_duration_since(started),
        );
    }
    let _ = counter.await;
    let rtt = dc_handle.stats().rtt;
    dc_handle.close().await;
    peer_handle.closed().await;
    drop(dc_rx);

    // TCP, same bytes.
    let (tcp, segments_tcp) = tcp_baseline(options, &payload).await?;

    dc_runs.remove(0);
    dc_runs.sort();
    Ok(BenchReport {
        options: options.clone(),
        connect_time,
        datachannel,
        tcp,
        datachannel_segment: SegmentLatency { runs: dc_runs },
        tcp_segment: segments_tcp,
        rtt,
        idle_bytes_per_connection,
        peak_rss: proc_status_bytes("VmHWM:"),
    })
}

/// Resident memory added per connection by `pairs` open, idle links (each link is two
/// connections in this process).
async fn idle_memory(config: &TransportConfig, pairs: usize) -> Result<Option<u64>, BenchError> {
    let before = proc_status_bytes("VmRSS:");
    let mut links = Vec::with_capacity(pairs);
    for _ in 0..pairs {
        links.push(connect_pair(config).await?);
    }
    let after = proc_status_bytes("VmRSS:");
    for (a, b) in &links {
        a.handle.close().await;
        b.handle.closed().await;
    }
    Ok(match (before, after) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before) / (2 * pairs as u64)),
        _ => None,
    })
}

/// Connects two endpoints of one transport configuration in this process.
pub async fn connect_pair(
    config: &TransportConfig,
) -> Result<(PeerLink, PeerLink), TransportError> {
    let transport = WebRtcTransport::new(config.clone())?;
    let offer = transport.create_offer().await?;
    let answer = transport.accept_offer(offer.sdp()).await?;
    let answer_sdp = answer.sdp().to_owned();
    let (offerer, answerer) = tokio::join!(offer.connect(&answer_sdp), answer.connect());
    Ok((offerer?, answerer?))
}

async fn send_bytes<F, Fut>(payload: &Bytes, total: u64, mut send: F) -> Result<(), TransportError>
where
    F: FnMut(Bytes) -> Fut,
    Fut: std::future::Future<Output = Result<(), TransportError>>,
{
    let mut left = total;
    while left > 0 {
        let take = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(payload.len());
        send(payload.slice(..take)).await?;
        left -= take as u64;
    }
    Ok(())
}

type Counter<R> = tokio::task::JoinHandle<Result<R, BenchError>>;

/// Reads frames and reports the time each successive `marks` byte count is reached.
fn count_frames(
    mut receiver: FrameReceiver,
    marks: Vec<u64>,
) -> (mpsc::UnboundedReceiver<Instant>, Counter<FrameReceiver>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        for mark in marks {
            let mut got = 0_u64;
            while got < mark {
                got += receiver.recv().await?.len() as u64;
            }
            let _ = tx.send(Instant::now());
        }
        Ok(receiver)
    });
    (rx, task)
}

async fn wait_mark(marks: &mut mpsc::UnboundedReceiver<Instant>) -> Result<Instant, BenchError> {
    marks.recv().await.ok_or(BenchError::Incomplete)
}

async fn tcp_baseline(
    options: &BenchOptions,
    payload: &Bytes,
) -> Result<(Throughput, SegmentLatency), BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (client, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
    let mut writer = client?;
    let (reader, _) = accepted?;
    writer.set_nodelay(true)?;
    reader.set_nodelay(true)?;

    let runs = options.segment_runs + 1;
    let mut marks_list = vec![options.total_bytes];
    marks_list.extend(std::iter::repeat_n(options.segment_bytes, runs));
    let frame_size = options.frame_size;
    let (tx, rx) = mpsc::unbounded_channel();
    let reading = tokio::spawn(async move {
        let mut reader = reader;
        let mut buffer = vec![0_u8; frame_size];
        for mark in marks_list {
            let mut got = 0_u64;
            while got < mark {
                let want = usize::try_from(mark - got)
                    .unwrap_or(usize::MAX)
                    .min(buffer.len());
                let slot = buffer.get_mut(..want).ok_or(BenchError::Incomplete)?;
                let read = reader.read(slot).await?;
                if read == 0 {
                    return Err(BenchError::Incomplete);
                }
                got += read as u64;
            }
            let _ = tx.send(Instant::now());
        }
        Ok::<(), BenchError>(())
    });
    let mut marks = rx;

    let cpu_before = process_cpu_time();
    let started = Instant::now();
    write_bytes(&mut writer, payload, options.total_bytes).await?;
    let done = wait_mark(&mut marks).await?;
    let bulk = Throughput {
        bytes: options.total_bytes,
        elapsed: done.saturating_duration_since(started),
        cpu: cpu_delta(cpu_before),
    };

    let mut segment_runs = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        write_bytes(&mut writer, payload, options.segment_bytes).await?;
        segment_runs.push(
            wait_mark(&mut marks)
                .await?
                .saturating_duration_since(started),
        );
    }
    reading.await.map_err(|_| BenchError::Incomplete)??;
    segment_runs.remove(0);
    segment_runs.sort();
    Ok((bulk, SegmentLatency { runs: segment_runs }))
}

async fn write_bytes(writer: &mut TcpStream, payload: &Bytes, total: u64) -> std::io::Result<()> {
    let mut left = total;
    while left > 0 {
        let take = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(payload.len());
        writer
            .write_all(payload.get(..take).unwrap_or_default())
            .await?;
        left -= take as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_readable_and_monotonic() {
        let first = process_cpu_time().expect("/proc/self/stat readable on Linux");
        let mut x = 0_u64;
        for i in 0..5_000_000_u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let second = process_cpu_time().expect("readable");
        assert!(second >= first);
    }

    #[test]
    fn percentiles() {
        let runs: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        let latency = SegmentLatency { runs };
        assert_eq!(latency.p50(), Duration::from_millis(5));
        assert_eq!(latency.p90(), Duration::from_millis(9));
        assert_eq!(SegmentLatency { runs: vec![] }.p50(), Duration::ZERO);
    }

    #[tokio::test]
    async fn bad_options_are_rejected() {
        let options = BenchOptions {
            frame_size: 100_000,
            ..BenchOptions::default()
        };
        let result = tokio::time::timeout(Duration::from_secs(5), datachannel_bench(&options))
            .await
            .expect("no hang");
        assert!(matches!(result, Err(BenchError::Options(_))));
    }
}
