//! The real `wopigate` binary as a child process on an ephemeral port, with its log captured.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct GatewayProcess {
    child: Child,
    pub url: String,
    pub log: PathBuf,
}

impl GatewayProcess {
    /// Starts `bin run --config <config>` and waits until `port` accepts connections.
    pub async fn start(bin: &Path, config: &Path, port: u16) -> Result<Self, String> {
        Self::start_with_env(bin, config, port, &[]).await
    }

    /// Like [`GatewayProcess::start`], with extra environment variables.
    pub async fn start_with_env(
        bin: &Path,
        config: &Path,
        port: u16,
        env: &[(&str, &str)],
    ) -> Result<Self, String> {
        let log = config.with_extension("log");
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let child = Command::new(bin)
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let mut gw = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(gw);
            }
            if let Ok(Some(status)) = gw.child.try_wait() {
                return Err(format!("gateway exited with {status}:\n{}", gw.logs()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "gateway did not listen within 20 s:\n{}",
                    gw.logs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`HUP`, `TERM`, …) with `kill(1)`.
    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status();
    }

    /// Waits up to `timeout` for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log once `needle` appears in it `times` times (informational lines reach the log in
    /// batches, up to 100 ms late); panics after 10 s.
    pub async fn logs_with(&self, needle: &str, times: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let logs = self.logs();
            if logs.matches(needle).count() >= times {
                return logs;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} not {times} times in the log:\n{logs}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Resident set size in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        rss_of(self.child.id())
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Every gateway the suite runs is checked for every secret and token the doubles made
        // or saw (issue #5: zero hits in anything the suite logged).
        let leaks = super::hygiene::leaks_in(&self.logs());
        if !leaks.is_empty() && !std::thread::panicking() {
            panic!("the gateway log {} contains: {leaks:?}", self.log.display());
        }
    }
}

/// Resident set size of process `pid` in bytes, from `/proc/<pid>/status`.
/// The highest RSS a process reaches while it is sampled (every 20 ms): a peak, not the value
/// after the fact, which a transfer that buffered and then freed would pass.
pub struct PeakRss {
    pid: u32,
    baseline: u64,
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    /// Starts sampling `pid` (inside a tokio runtime).
    pub fn start(pid: u32) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        let baseline = rss_of(pid).unwrap_or(0);
        let peak = std::sync::Arc::new(AtomicU64::new(baseline));
        let sampled = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Some(rss) = rss_of(pid) {
                    sampled.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        });
        Self {
            pid,
            baseline,
            peak,
            task,
        }
    }

    /// Stops sampling; how far above the starting RSS the process went, in bytes.
    pub fn growth(self) -> u64 {
        self.task.abort();
        if let Some(now) = rss_of(self.pid) {
            self.peak
                .fetch_max(now, std::sync::atomic::Ordering::Relaxed);
        }
        self.peak
            .load(std::sync::atomic::Ordering::Relaxed)
            .saturating_sub(self.baseline)
    }
}

pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
