//! Load benchmark (issues #8, #16): the same WOPI-shaped upstream measured directly, through nginx,
//! through a bare pingora proxy tuned as well as pingora allows (the floor of any gateway built
//! on it) and through wopigate's two paths (pass-through: `wrap_tokens = false` with the
//! wopiserver's own JWT; wrapped: the gateway token swap and CheckFileInfo rewrite), in one run,
//! with the same clients. Run it with `benches/load.sh`, which builds the gateway and the bare
//! proxy with the shipped (release) profile and starts this harness.
//!
//! On 2 cores the proxy under test gets core 0 to itself; this process (the upstream, the test
//! doubles, the Rust clients) and `wrk` share core 1. Small-call figures come from rounds that
//! interleave the targets and are reported as medians with their range; transfers likewise.
//!
//! Knobs for investigations (the defaults are what `docs/benchmarks.md` reports):
//! `BENCH_QUICK=1` (short smoke run), `WOPIGATE_BIN` / `BARE_PINGORA_BIN` (other builds),
//! `BENCH_TRANSFER_MIB` / `BENCH_TRANSFER_ROUNDS` (transfer size and rounds), `BENCH_RUST_LOG`
//! (gateway log level), `BENCH_BUILD` (how the measured build was made, for the
//! report), `BENCH_NO_WRITE=1` (print, do not write docs/benchmarks.md), `BENCH_HOLD=<secs>`
//! (start everything, print the URLs and PIDs, wait; for profiling by hand).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures_util::StreamExt;
use wopigate::ids::encode_legacy;
use wopigate_testkit::gateway::rss_of;
use wopigate_testkit::stack::{STORAGE, Stack, StackOptions};
use wopigate_testkit::{localhost, serve_http};

/// Settings of one run; `BENCH_QUICK=1` shortens everything (a smoke run, not for figures).
/// Settings of one run; `BENCH_QUICK=1` shortens everything (a smoke run, not for figures).
struct Plan {
    rounds: usize,
    small_secs: u64,
    latency_secs: u64,
    syscall_secs: u64,
    connections: usize,
    big_bytes: u64,
    transfer_rounds: usize,
    open_secs: u64,
    idle_connections: usize,
}

impl Plan {
    fn from_env() -> Self {
        if std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1") {
            Self {
                rounds: 1,
                small_secs: 2,
                latency_secs: 1,
                syscall_secs: 1,
                connections: 32,
                big_bytes: 128 << 20,
                transfer_rounds: 1,
                open_secs: 2,
                idle_connections: 1000,
            }
        } else {
            Self {
                rounds: 3,
                small_secs: 3,
                latency_secs: 2,
                syscall_secs: 2,
                connections: 64,
                big_bytes: 1 << 30,
                transfer_rounds: 3,
                open_secs: 8,
                idle_connections: 10_000,
            }
        }
    }
}

impl Plan {
    /// `BENCH_TRANSFER_MIB` / `BENCH_TRANSFER_ROUNDS` override the transfers (A/B runs).
    fn with_overrides(mut self) -> Self {
        let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
        if let Some(mib) = var("BENCH_TRANSFER_MIB") {
            self.big_bytes = mib << 20;
        }
        if let Some(r) = var("BENCH_TRANSFER_ROUNDS") {
            self.transfer_rounds = r as usize;
        }
        self
    }
}

fn main() {
    pin_self_to_core(1);
    raise_fd_limit();
    wopigate::http_client::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(Plan::from_env().with_overrides()));
}

/// A binary built into the same directory as this one (`cargo build` puts all of a profile's
/// binaries there).
fn sibling_binary(name: &str) -> PathBuf {
    let me = std::env::current_exe().expect("own path");
    me.parent().expect("a directory").join(name)
}

/// This process and everything it starts later (threads inherit) runs on `core`.
fn pin_self_to_core(core: usize) {
    let _ = Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &core.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status();
}

/// 10 000 idle connections need more descriptors than the usual soft limit.
fn raise_fd_limit() {
    // No libc binding here: `prlimit` from util-linux raises our own soft limit to the hard one.
    let pid = std::process::id().to_string();
    let hard = Command::new("sh")
        .args(["-c", "ulimit -Hn"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    let _ = Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={}:", hard.trim())])
        .status();
}

// ---------------------------------------------------------------------------------------------
// The upstream: the fake wopiserver (openinapp, real JSON shapes) behind fast file routes.

/// Counts what the fast routes served (a check that every target really reached them).
#[derive(Default)]
struct UpstreamStats {
    bytes_in: AtomicU64,
}

static CHUNK: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();

fn chunk() -> Bytes {
    CHUNK
        .get_or_init(|| {
            Bytes::from(
                (0..256 * 1024)
                    .map(|i| (i % 251) as u8)
                    .collect::<Vec<u8>>(),
            )
        })
        .clone()
}

/// `len` bytes as a stream of shared 256 KiB chunks (no copying, nothing buffered).
fn body_of(len: u64) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::unfold(0u64, move |sent| async move {
        if sent >= len {
            return None;
        }
        let mut c = chunk();
        c.truncate((len - sent).min(c.len() as u64) as usize);
        let n = c.len() as u64;
        Some((Ok(c), sent + n))
    })
}

/// A CheckFileInfo answer like the wopiserver's: its own token inside the URLs.
async fn check_file_info(req: Request) -> Response {
    let token = req
        .uri()
        .query()
        .and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "access_token")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_default();
    let encoded: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let body = format!(
        r#"{{"BaseFileName":"report.docx","OwnerId":"owner-of-the-home","Size":12,"Version":"v1","UserCanWrite":true,"UserId":"alice","UserFriendlyName":"Alice","SupportsLocks":true,"SupportsGetLock":true,"SupportsUpdate":true,"SupportsExtendedLockLength":true,"AccessTokenExpiry":4102444800000,"ServerTime":0,"SupportsCoauth":false,"HostEditUrl":"http://collabora.test/edit?WOPISrc=x&access_token={encoded}"}}"#
    );
    ([("content-type", "application/json")], body).into_response()
}

fn size_of(headers: &HeaderMap) -> u64 {
    headers
        .get("x-bench-size")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

async fn get_file(headers: HeaderMap) -> Response {
    let len = size_of(&headers);
    let stream = body_of(len);
    Response::builder()
        .header("content-length", len)
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn put_file(stats: Arc<UpstreamStats>, req: Request) -> Response {
    let mut body = req.into_body().into_data_stream();
    let mut n = 0u64;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => n += c.len() as u64,
            Err(_) => return StatusCode::BAD_REQUEST.into_response(),
        }
    }
    stats.bytes_in.fetch_add(n, Ordering::Relaxed);
    StatusCode::OK.into_response()
}

async fn start_upstream(stack: &Stack, stats: Arc<UpstreamStats>) -> wopigate_testkit::Running {
    let router = axum::Router::new()
        .route("/wopi/files/{id}", get(check_file_info))
        .route(
            "/wopi/files/{id}/contents",
            get(get_file).post(move |req: Request| put_file(stats.clone(), req)),
        )
        .fallback_service(stack.wopiserver.router());
    serve_http(router, localhost(0)).await.expect("upstream")
}

// ---------------------------------------------------------------------------------------------
// The proxies.

struct Proc {
    child: Child,
    port: u16,
}

/// CPU time of a process and its children, split as the kernel accounts it.
#[derive(Clone, Copy, Default)]
struct Cpu {
    user: f64,
    system: f64,
}

impl Cpu {
    fn total(self) -> f64 {
        self.user + self.system
    }
    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            user: self.user - before.user,
            system: self.system - before.system,
        }
    }
}

impl Proc {
    /// The process and its children (nginx's worker).
    fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.child.id()];
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                if stat_fields(pid)
                    .is_some_and(|f| f.get(1).is_some_and(|p| *p == self.child.id() as u64))
                {
                    pids.push(pid);
                }
            }
        }
        pids
    }

    /// CPU seconds (`utime`, `stime` of /proc/<pid>/stat) of the process and its children so far.
    fn cpu(&self) -> Cpu {
        let (mut user, mut system) = (0, 0);
        for f in self.pids().into_iter().filter_map(stat_fields) {
            user += f[11];
            system += f[12];
        }
        Cpu {
            user: user as f64 / 100.0,
            system: system as f64 / 100.0,
        }
    }

    fn rss(&self) -> u64 {
        rss_of(self.child.id()).unwrap_or(0)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// Fields of /proc/<pid>/stat after the command name: [state, ppid, ..., utime(11), stime(12)].
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    Some(
        rest.split_whitespace()
            .map(|f| f.parse::<u64>().unwrap_or(0))
            .collect(),
    )
}

async fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A binary: the one named by `var`, or the one built beside this harness.
fn binary(var: &str, name: &str) -> PathBuf {
    let bin = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| sibling_binary(name));
    assert!(bin.is_file(), "no {name} binary at {}", bin.display());
    bin
}

/// The framework's floor (`benches/bare-pingora`): pingora proxying to the upstream with nothing
/// of wopigate's, tuned as far as pingora allows. What wopigate costs above it is wopigate's;
/// what it costs above nginx is pingora's.
async fn start_bare_pingora(upstream_port: u16) -> Proc {
    let port = wopigate_testkit::free_port();
    let child = Command::new("taskset")
        .args(["-c", "0"])
        .arg(binary("BARE_PINGORA_BIN", "bare-pingora"))
        .args([
            &format!("127.0.0.1:{port}"),
            &format!("127.0.0.1:{upstream_port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("bare pingora");
    wait_listening(port).await;
    Proc { child, port }
}

/// nginx as its own documentation recommends for a proxy: one worker, keep-alive to the
/// upstream, no buffering of bodies in either direction, 256k buffers in both directions
/// (`client_body_buffer_size` too: nginx reads an unbuffered upload in chunks of that size).
async fn start_nginx(dir: &Path, upstream_port: u16) -> Proc {
    let port = wopigate_testkit::free_port();
    let conf = dir.join("nginx.conf");
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            r#"daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 20000; }}
worker_rlimit_nofile 20000;
http {{
    access_log {d}/nginx-access.log combined buffer=64k flush=1s;
    client_body_temp_path {d}/nginx-body;
    proxy_temp_path {d}/nginx-proxy;
    fastcgi_temp_path {d}/nginx-fastcgi;
    uwsgi_temp_path {d}/nginx-uwsgi;
    scgi_temp_path {d}/nginx-scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_max_body_size 0;
    client_body_buffer_size 256k;
    upstream wopiserver {{ server 127.0.0.1:{upstream_port}; keepalive 128; keepalive_requests 1000000; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://wopiserver;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_buffer_size 256k;
            proxy_buffers 4 256k;
            proxy_busy_buffers_size 256k;
            proxy_read_timeout 300s;
        }}
    }}
}}
"#
        ),
    )
    .unwrap();
    let child = Command::new("taskset")
        .args(["-c", "0", "nginx", "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx (apt-get install nginx-light)");
    wait_listening(port).await;
    Proc { child, port }
}

/// A gateway on one worker thread, JSON logs (one access line per request) to a file. `wrap`:
/// gateway tokens (the default configuration) or the wopiserver's own tokens passed through.
async fn start_wopigate(stack: &Stack, upstream: &str, wrap: bool) -> (Proc, PathBuf, String) {
    let (listen, admin) = if wrap {
        (stack.listen_port, stack.admin_port)
    } else {
        (wopigate_testkit::free_port(), wopigate_testkit::free_port())
    };
    let text = stack
        .config_toml()
        .replace("threads = 2", "threads = 1\nlog_format = \"json\"")
        .replace(&stack.wopi_server.url(), upstream)
        .replace(
            &format!("127.0.0.1:{}\"", stack.listen_port),
            &format!("127.0.0.1:{listen}\""),
        )
        .replace(
            &format!("127.0.0.1:{}\"", stack.admin_port),
            &format!("127.0.0.1:{admin}\""),
        )
        .replace("wrap_tokens = true", &format!("wrap_tokens = {wrap}"))
        .replace(
            "[admin]\n",
            &format!("[admin]\ntoken_file = {:?}\n", admin_token(stack).display().to_string()),
        )
        // The open-flow measurement opens thousands of times as one user.
        + "\n[rate_limits]\nopen_per_user = 0\n";
    let name = if wrap { "wrapped" } else { "pass-through" };
    let config = stack.dir().join(format!("wopigate-{name}.toml"));
    std::fs::write(&config, text).unwrap();
    let log = config.with_extension("log");
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new("taskset")
        .args(["-c", "0"])
        .arg(binary("WOPIGATE_BIN", "wopigate"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env(
            "RUST_LOG",
            std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("wopigate");
    let proc = Proc {
        child,
        port: listen,
    };
    wait_listening(listen).await;
    // Ready once it holds the IdP keys (warm-up).
    let ready = format!("http://127.0.0.1:{admin}/readyz");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if reqwest::get(&ready).await.is_ok_and(|r| r.status() == 200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seed_revocations(&format!("http://127.0.0.1:{admin}"), &admin_token(stack)).await;
    (proc, log, format!("http://127.0.0.1:{listen}"))
}

/// The revocation set every measured request is checked against: this many entries.
const REVOCATIONS: usize = 10_000;

fn admin_token(stack: &Stack) -> PathBuf {
    let p = stack.dir().join("admin.token");
    std::fs::write(&p, "bench-admin-bearer-0123456789abcdef0123456789\n").unwrap();
    p
}

/// [`REVOCATIONS`] entries (sessions, users and files nobody in the run uses) through the
/// admin API: the measured requests pay the check against a full set, as in production.
async fn seed_revocations(admin: &str, token: &Path) {
    let bearer = std::fs::read_to_string(token).unwrap().trim().to_owned();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("{admin}/admin/revocations");
    let bodies = (0..REVOCATIONS).map(|i| match i % 3 {
        0 => serde_json::json!({ "sid": format!("bench-session-{i}") }),
        1 => serde_json::json!({ "user": format!("bench-user-{i}") }),
        _ => serde_json::json!({ "file": format!("bench-storage$space!bench-file-{i}") }),
    });
    let posts = futures_util::stream::iter(bodies).for_each_concurrent(8, |body| {
        let (client, url, bearer) = (&client, &url, &bearer);
        async move {
            let r = client
                .post(url)
                .bearer_auth(bearer)
                .json(&body)
                .send()
                .await;
            assert!(r.is_ok_and(|r| r.status() == 201), "a seeded revocation");
        }
    });
    posts.await;
    let metrics = client
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!("wopigate_revocations {REVOCATIONS}")),
        "the set holds {REVOCATIONS} entries"
    );
}

/// `perf stat` counting `raw_syscalls:sys_enter` of a process (all its threads, and nginx's
/// worker) from `start` to `stop`; counts nothing without perf.
struct SyscallCounter(Option<Child>);

impl SyscallCounter {
    fn start(proc: &Proc) -> Self {
        let pids = proc
            .pids()
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let perf = Command::new("perf")
            .args([
                "stat",
                "-x,",
                "-e",
                "raw_syscalls:sys_enter,page-faults",
                "-p",
                &pids,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok();
        if perf.is_some() {
            std::thread::sleep(Duration::from_millis(300));
        }
        Self(perf)
    }

    /// System calls and page faults since `start`.
    fn stop(self) -> Option<(u64, u64)> {
        let perf = self.0?;
        let _ = Command::new("kill")
            .args(["-INT", &perf.id().to_string()])
            .status();
        let text = perf
            .wait_with_output()
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .unwrap_or_default();
        let count = |event: &str| {
            text.lines()
                .find(|l| l.contains(event))
                .and_then(|l| l.split(',').next())
                .and_then(|n| n.trim().parse().ok())
        };
        Some((count("raw_syscalls:sys_enter")?, count("page-faults")?))
    }
}

/// System calls the process makes while `load` runs.
fn syscalls_during<T>(proc: &Proc, load: impl FnOnce() -> T) -> (Option<u64>, T) {
    let counter = SyscallCounter::start(proc);
    let out = load();
    (counter.stop().map(|(calls, _)| calls), out)
}

// ---------------------------------------------------------------------------------------------
// wrk.

struct WrkResult {
    rps: f64,
    requests: u64,
    p99_ms: f64,
    p50_ms: f64,
    errors: u64,
}

/// `wrk` on core 1 against `url` (CheckFileInfo), `connections` kept alive, with latency.
fn wrk(url: &str, connections: usize, secs: u64) -> WrkResult {
    let out = Command::new("taskset")
        .args(["-c", "1", "wrk", "-t1"])
        .arg(format!("-c{connections}"))
        .arg(format!("-d{secs}s"))
        .args(["--latency", "--timeout", "5s", url])
        .output()
        .expect("wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let find = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_owned()))
            .unwrap_or_default()
    };
    let ms = |v: String| {
        let v = v.trim();
        if let Some(x) = v.strip_suffix("us") {
            x.parse::<f64>().unwrap_or(f64::NAN) / 1000.0
        } else if let Some(x) = v.strip_suffix("ms") {
            x.parse::<f64>().unwrap_or(f64::NAN)
        } else if let Some(x) = v.strip_suffix('s') {
            x.parse::<f64>().unwrap_or(f64::NAN) * 1000.0
        } else {
            f64::NAN
        }
    };
    let requests = text
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" requests in ")
                .map(|(n, _)| n.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    let errors = text
        .lines()
        .filter(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
        .map(|l| {
            l.split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum();
    WrkResult {
        rps: find("Requests/sec:").parse().unwrap_or(0.0),
        requests,
        p99_ms: ms(find("99%")),
        p50_ms: ms(find("50%")),
        errors,
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics.

#[derive(Clone, Copy)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

fn spread(mut v: Vec<f64>) -> Spread {
    v.sort_by(|a, b| a.total_cmp(b));
    Spread {
        median: v[v.len() / 2],
        min: v[0],
        max: v[v.len() - 1],
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

// ---------------------------------------------------------------------------------------------
// Transfers.

struct Transfer {
    mib_per_s: f64,
    rss_growth: u64,
    /// The proxy's CPU seconds per GiB moved (none for the direct target).
    cpu_per_gib: Option<Cpu>,
    /// The proxy's system calls and page faults per MiB moved (none for the direct target, or
    /// without perf).
    syscalls_per_mib: Option<f64>,
    faults_per_mib: Option<f64>,
}

/// Who moves the bytes: the harness's Rust client (hyper, reads as the data comes), or curl
/// (`curl -o /dev/null`, a client that reads the way most do) for GetFile.
#[derive(Clone, Copy, PartialEq)]
enum Mover {
    Rust,
    Curl,
}

/// The operations of the transfer table, with who moves the bytes.
const TRANSFER_OPS: [(&str, bool, Mover); 3] = [
    ("GetFile", false, Mover::Rust),
    ("GetFile (curl)", false, Mover::Curl),
    ("PutFile", true, Mover::Rust),
];

/// A GetFile of `len` bytes with curl; panics unless it is whole.
async fn curl_get(url: &str, len: u64) {
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
        ])
        .args(["-H", &format!("X-Bench-Size: {len}"), url])
        .output()
        .await
        .expect("curl runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(said, format!("200 {len}"), "curl GetFile of {url}");
}

/// One GetFile or PutFile of `len` bytes against `base` (a file URL with its token), timing it
/// and sampling `proc`'s RSS and CPU meanwhile.
async fn transfer(base: &str, len: u64, put: bool, mover: Mover, proc: Option<&Proc>) -> Transfer {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let pid = proc.map(|p| p.child.id());
    let before = pid.and_then(rss_of).unwrap_or(0);
    let cpu_before = proc.map(Proc::cpu);
    let peak = Arc::new(AtomicU64::new(before));
    let sampling = pid.map(|pid| {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Some(r) = rss_of(pid) {
                    peak.fetch_max(r, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    });
    let (path, query) = base.split_once('?').unwrap();
    let url = format!("{path}/contents?{query}");
    let counter = proc.map(SyscallCounter::start);
    let started = Instant::now();
    if mover == Mover::Curl {
        curl_get(&url, len).await;
    } else if put {
        let stream = body_of(len);
        let r = client
            .post(&url)
            .header("X-WOPI-Override", "PUT")
            .header("X-WOPI-Lock", "bench")
            .header("content-length", len)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "PutFile through {base}");
    } else {
        let r = client
            .get(&url)
            .header("X-Bench-Size", len)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let mut got = 0u64;
        let mut s = r.bytes_stream();
        while let Some(c) = s.next().await {
            got += c.unwrap().len() as u64;
        }
        assert_eq!(got, len);
    }
    let took = started.elapsed();
    let syscalls = counter.and_then(SyscallCounter::stop);
    if let Some(s) = sampling {
        s.abort();
    }
    let gib = len as f64 / (1u64 << 30) as f64;
    Transfer {
        mib_per_s: len as f64 / (1 << 20) as f64 / took.as_secs_f64(),
        rss_growth: peak.load(Ordering::Relaxed).saturating_sub(before),
        syscalls_per_mib: syscalls.map(|(n, _)| n as f64 / (len as f64 / (1 << 20) as f64)),
        faults_per_mib: syscalls.map(|(_, n)| n as f64 / (len as f64 / (1 << 20) as f64)),
        cpu_per_gib: proc.zip(cpu_before).map(|(p, b)| {
            let used = p.cpu().since(b);
            Cpu {
                user: used.user / gib,
                system: used.system / gib,
            }
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// The run.

/// The small-call table's rows, in this order.
const NAMES: [&str; 5] = [
    "direct",
    "nginx",
    "pingora (bare, tuned)",
    "wopigate pass-through",
    "wopigate wrapped",
];
const TARGETS: usize = NAMES.len();
const DIRECT: usize = 0;
const NGINX: usize = 1;
const BARE: usize = 2;
const PASS: usize = 3;
const WRAPPED: usize = 4;

struct Target<'a> {
    port: u16,
    proc: Option<&'a Proc>,
    /// CheckFileInfo URL path and query (the token this target's clients hold).
    file: String,
}

impl<'a> Target<'a> {
    fn new(port: u16, proc: Option<&'a Proc>, file: &str) -> Self {
        Self {
            port,
            proc,
            file: file.to_owned(),
        }
    }
}

/// Per-target figures of the small-call rounds.
#[derive(Default)]
struct Small {
    rps: Vec<f64>,
    user_us: Vec<f64>,
    system_us: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    syscalls: Option<f64>,
}

/// One open through `gateway_url`: the token and the WOPISrc path an office app would get.
async fn open_file(stack: &Stack, gateway_url: &str) -> (String, String) {
    let open_url = format!(
        "{gateway_url}/api/v0/wopi/open?fileId={}",
        url::form_urlencoded::byte_serialize(encode_legacy(STORAGE, "file-docx").as_bytes())
            .collect::<String>()
    );
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let opened: serde_json::Value = client
        .get(&open_url)
        .bearer_auth(stack.idp.token("alice"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = opened["accesstoken"]
        .as_str()
        .expect("an access token")
        .to_owned();
    let app_url = url::Url::parse(opened["wopiclienturl"].as_str().unwrap()).unwrap();
    let wopisrc = app_url
        .query_pairs()
        .find(|(k, _)| k == "WOPISrc")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let path = url::Url::parse(&wopisrc).unwrap().path().to_owned();
    let query: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    (token, format!("{path}?access_token={query}"))
}

async fn run(plan: Plan) {
    let started = Instant::now();
    let stack = Stack::start(StackOptions {
        tap: false,
        ..Default::default()
    })
    .await;
    let stats = Arc::new(UpstreamStats::default());
    let upstream = start_upstream(&stack, stats.clone()).await;
    let (wrapped, wrapped_log, wrapped_url) = start_wopigate(&stack, &upstream.url(), true).await;
    let (pass, _, pass_url) = start_wopigate(&stack, &upstream.url(), false).await;
    let idle_rss = wrapped.rss();
    let nginx = start_nginx(stack.dir(), upstream.addr.port()).await;
    let bare = start_bare_pingora(upstream.addr.port()).await;

    // Each gateway path with the token an office app would hold for it; the references get
    // the wopiserver's own (what the pass-through gateway forwards unchanged).
    let (gateway_token, wrapped_file) = open_file(&stack, &wrapped_url).await;
    let (upstream_token, pass_file) = open_file(&stack, &pass_url).await;
    assert!(gateway_token.starts_with("wg1.") && upstream_token.starts_with("eyJ"));
    let targets = [
        Target::new(upstream.addr.port(), None, &pass_file),
        Target::new(nginx.port, Some(&nginx), &pass_file),
        Target::new(bare.port, Some(&bare), &pass_file),
        Target::new(pass.port, Some(&pass), &pass_file),
        Target::new(wrapped.port, Some(&wrapped), &wrapped_file),
    ];
    let url = |t: &Target| format!("http://127.0.0.1:{}{}", t.port, t.file);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for (t, name) in targets.iter().zip(NAMES) {
        let r = client.get(url(t)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{name} CheckFileInfo");
        let body = r.text().await.unwrap();
        // The wrapped path hands out no wopiserver token; the others pass it through.
        assert_eq!(
            body.contains(&upstream_token),
            !t.file.contains("wg1."),
            "{name}: {body}"
        );
    }
    // BENCH_HOLD=<secs>: keep everything up for profiling by hand (`perf record -p`, `wrk`).
    if let Some(secs) = std::env::var("BENCH_HOLD")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        for (t, name) in targets.iter().zip(NAMES) {
            let pid = t.proc.map(|p| p.child.id().to_string()).unwrap_or_default();
            eprintln!("HOLD {name} pid={pid} {}", url(t));
        }
        tokio::time::sleep(Duration::from_secs(secs)).await;
        return;
    }

    // Small calls: throughput and CPU (64 connections), latency (1 connection), rounds that
    // interleave the targets; then system calls per request, counted in a run of their own.
    let mut small: [Small; TARGETS] = Default::default();
    let mut errors = 0;
    for round in 0..plan.rounds {
        for (i, t) in targets.iter().enumerate() {
            let cpu_before = t.proc.map(Proc::cpu);
            let r = wrk(&url(t), plan.connections, plan.small_secs);
            if let (Some(p), Some(b)) = (t.proc, cpu_before) {
                let used = p.cpu().since(b);
                let per = 1e6 / r.requests.max(1) as f64;
                small[i].user_us.push(used.user * per);
                small[i].system_us.push(used.system * per);
            }
            small[i].rps.push(r.rps);
            errors += r.errors;
            let l = wrk(&url(t), 1, plan.latency_secs);
            small[i].p99.push(l.p99_ms);
            small[i].p50.push(l.p50_ms);
            errors += l.errors;
            eprintln!(
                "round {round} {:>22}: {:>8.0} req/s, {:.1} µs CPU/req (64 conns), p50 {:.3} ms p99 {:.3} ms (1 conn)",
                NAMES[i],
                r.rps,
                small[i].user_us.last().unwrap_or(&0.0) + small[i].system_us.last().unwrap_or(&0.0),
                l.p50_ms,
                l.p99_ms
            );
        }
    }
    for (i, t) in targets.iter().enumerate() {
        if let Some(p) = t.proc {
            let (count, r) =
                syscalls_during(p, || wrk(&url(t), plan.connections, plan.syscall_secs));
            errors += r.errors;
            small[i].syscalls = count.map(|c| c as f64 / r.requests.max(1) as f64);
        }
    }

    // Transfers: GetFile and PutFile of `big_bytes` through each target, rounds interleaving
    // the targets (the gateway on its default, wrapped path: bodies are the same on both).
    let transfer_targets = [DIRECT, NGINX, BARE, WRAPPED];
    let mut transfers: Vec<(&'static str, usize, Transfer)> = Vec::new();
    for round in 0..plan.transfer_rounds {
        for (op, put, mover) in TRANSFER_OPS {
            for &i in &transfer_targets {
                let t = &targets[i];
                let x = transfer(&url(t), plan.big_bytes, put, mover, t.proc).await;
                eprintln!(
                    "round {round} {op} {} MiB {:>22}: {:.0} MiB/s, {} CPU s/GiB, {} syscalls/MiB, {} faults/MiB, RSS +{:.1} MiB",
                    plan.big_bytes >> 20,
                    NAMES[i],
                    x.mib_per_s,
                    x.cpu_per_gib
                        .map_or("—".to_owned(), |c| format!("{:.3}", c.total())),
                    x.syscalls_per_mib
                        .map_or("—".to_owned(), |c| format!("{c:.1}")),
                    x.faults_per_mib
                        .map_or("—".to_owned(), |c| format!("{c:.1}")),
                    mib(x.rss_growth)
                );
                transfers.push((op, i, x));
            }
        }
    }

    // Open flow: real signed OIDC tokens (one per user, so validation, exchange and REVA are
    // exercised), fake REVA, the fake wopiserver's openinapp.
    let open_url = format!(
        "{wrapped_url}/api/v0/wopi/open?fileId={}",
        url::form_urlencoded::byte_serialize(encode_legacy(STORAGE, "file-docx").as_bytes())
            .collect::<String>()
    );
    let open_cpu = wrapped.cpu();
    let (opens_per_s, own_p99_us, own_p50_us, opens) =
        open_flow(&stack, &open_url, &wrapped_log, plan.open_secs).await;
    let open_cpu_us = wrapped.cpu().since(open_cpu).total() * 1e6 / opens.max(1) as f64;

    // Idle connections: each makes one call, then stays open; then they all close.
    let idle = idle_connections(
        &[
            (url(&targets[WRAPPED]), &wrapped),
            (url(&targets[NGINX]), &nginx),
        ],
        plan.idle_connections,
    )
    .await;

    let report = Report {
        plan: &plan,
        small: &small,
        transfers: &transfers,
        opens_per_s,
        open_cpu_us,
        own_p99_us,
        own_p50_us,
        opens,
        idle_rss,
        idle: &idle,
        errors,
        took: started.elapsed(),
    };
    let text = report.render();
    println!("{text}");
    if std::env::var("BENCH_NO_WRITE").is_err() {
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/benchmarks.md");
        std::fs::write(&out, &text).expect("write docs/benchmarks.md");
        eprintln!("written to {}", out.display());
    }
    drop(targets);
    drop((nginx, bare, pass, wrapped));
}

async fn open_flow(stack: &Stack, open_url: &str, log: &Path, secs: u64) -> (f64, f64, f64, usize) {
    let tokens: Vec<String> = (0..50)
        .map(|i| stack.idp.token(&format!("user{i}")))
        .collect();
    let log_start = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..4 {
        let (tokens, url, count) = (tokens.clone(), open_url.to_owned(), count.clone());
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            let mut i = w;
            while Instant::now() < deadline {
                let r = client
                    .get(&url)
                    .bearer_auth(&tokens[i % tokens.len()])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let _ = r.bytes().await;
                count.fetch_add(1, Ordering::Relaxed);
                i += 4;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut own: Vec<f64> = text[log_start as usize..]
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["route"] == "legacy_open")
        .filter_map(|v| {
            let f = &v["fields"];
            Some((f["duration_ms"].as_f64()? - f["upstream_ms"].as_f64()?) * 1000.0)
        })
        .collect();
    let n = own.len();
    assert!(n > 0, "no open access lines in the gateway log");
    let p99 = percentile(&mut own, 0.99);
    let p50 = percentile(&mut own, 0.50);
    (
        count.load(Ordering::Relaxed) as f64 / took.as_secs_f64(),
        p99,
        p50,
        n,
    )
}

/// RSS of one proxy around `n` idle keep-alive connections.
struct Idle {
    before: u64,
    with: u64,
    /// A few seconds after they all closed.
    after: u64,
}

/// Opens `n` connections to each proxy, makes one CheckFileInfo on each and leaves them open;
/// records each process's RSS before, with them, and after they all closed.
async fn idle_connections(proxies: &[(String, &Proc)], n: usize) -> Vec<Idle> {
    let mut out = Vec::new();
    for (url, proc) in proxies {
        let u = url::Url::parse(url).unwrap();
        let request = format!(
            "GET {}?{} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            u.path(),
            u.query().unwrap()
        );
        let port = u.port().unwrap();
        let before = proc.rss();
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            s.write_all(request.as_bytes()).await.unwrap();
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await.unwrap();
            conns.push(s);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let with = proc.rss();
        drop(conns);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = proc.rss();
        eprintln!(
            "{n} idle connections to {port}: RSS {:.1} MiB before, {:.1} MiB with them, {:.1} MiB after they closed",
            mib(before),
            mib(with),
            mib(after),
        );
        out.push(Idle {
            before,
            with,
            after,
        });
    }
    out
}

struct Report<'a> {
    plan: &'a Plan,
    small: &'a [Small; TARGETS],
    transfers: &'a [(&'static str, usize, Transfer)],
    opens_per_s: f64,
    open_cpu_us: f64,
    own_p99_us: f64,
    own_p50_us: f64,
    opens: usize,
    idle_rss: u64,
    /// The wrapped gateway, then nginx.
    idle: &'a [Idle],
    errors: u64,
    took: Duration,
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    spread(v.to_vec()).median
}

/// `median [min–max]` with `d` decimals.
fn ranged(v: &[f64], d: usize) -> String {
    if v.is_empty() {
        return "—".into();
    }
    let x = spread(v.to_vec());
    format!("{:.d$} [{:.d$}–{:.d$}]", x.median, x.min, x.max)
}

fn met(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

impl Report<'_> {
    /// CPU µs per small request (user + system), per round.
    fn cpu_us(&self, i: usize) -> Vec<f64> {
        let s = &self.small[i];
        s.user_us
            .iter()
            .zip(&s.system_us)
            .map(|(u, y)| u + y)
            .collect()
    }

    fn transfer_of(&self, op: &str, i: usize) -> impl Iterator<Item = &Transfer> {
        self.transfers
            .iter()
            .filter(move |t| t.0 == op && t.1 == i)
            .map(|t| &t.2)
    }

    fn render(&self) -> String {
        let p = self.plan;
        let mut s = String::new();
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
            .unwrap_or_default();
        // Not available_parallelism(): this process is pinned to one core.
        let cores = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let date = Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%d %H:%M UTC")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let nginx_version = Command::new("nginx")
            .arg("-v")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
            .unwrap_or_default();
        let build = std::env::var("BENCH_BUILD").unwrap_or_else(|_| {
            "the shipped release profile (fat LTO, one codegen unit) for wopigate and the bare pingora proxy".into()
        });
        let _ = writeln!(s, "# Benchmarks\n");
        let _ = writeln!(
            s,
            "Written by `benches/load.sh` ({date}); every figure below is from that one run.\n"
        );
        let _ = writeln!(
            s,
            "- Command: `benches/load.sh` (builds the gateway alone with `cargo build --release`, then `bare-pingora` and this harness with the same profile, runs it); build: {build}"
        );
        let _ = writeln!(
            s,
            "- Machine: {cores} cores, {cpu}; {nginx_version}; wrk 4.1"
        );
        let _ = writeln!(
            s,
            "- Layout: the proxy under test alone on core 0 (nginx: 1 worker; wopigate and bare pingora: 1 worker thread); the upstream, the test doubles, wrk and the Rust clients on core 1"
        );
        let _ = writeln!(
            s,
            "- Upstream: the same WOPI-shaped server for every target (CheckFileInfo JSON of ~600 bytes with the token inside a URL; GetFile/PutFile streamed from/to memory); opens use the fake REVA (gRPC) and the fake wopiserver's `openinapp`"
        );
        let _ = writeln!(
            s,
            "- Targets: nginx (1 worker, keep-alive upstream, unbuffered bodies, 256k buffers incl. `client_body_buffer_size`); bare pingora (pingora 0.9 with none of wopigate's work, tuned: no-steal runtime, no downstream modules, no L4 read buffer, the peer built once; built against the same vendored pingora-core as wopigate, so the ratios are wopigate's own cost — `vendor/pingora-core/README.md` has the published pingora's figures); wopigate **pass-through** (`wrap_tokens = false`: the wopiserver's JWT, no token swap, no rewrite) and **wrapped** (the default: gateway token checked and swapped, CheckFileInfo rewritten); direct, nginx and bare pingora get the pass-through URL"
        );
        let _ = writeln!(
            s,
            "- Small calls: CheckFileInfo, {} rounds interleaving the targets: {} s with `wrk -t1 -c{}` (CPU from `/proc/<pid>/stat` utime/stime ÷ requests), then {} s with `wrk -t1 -c1 --latency`; medians with [min–max]; system calls per request from `perf stat -e raw_syscalls:sys_enter` over a separate {} s run",
            p.rounds, p.small_secs, p.connections, p.latency_secs, p.syscall_secs
        );
        let _ = writeln!(
            s,
            "- Transfers: {} MiB GetFile and PutFile, {} rounds interleaving direct / nginx / bare pingora / wopigate (wrapped; bodies take the same path in pass-through mode); the Rust client (hyper) and, for GetFile, curl 7.88 (`curl -o /dev/null`, as an office client or a browser reads: into its own buffer, at its own pace); medians with [min–max]",
            p.big_bytes >> 20,
            p.transfer_rounds
        );
        let _ = writeln!(
            s,
            "- wopigate holds {REVOCATIONS} revocations (seeded through the admin API before measuring; none matches the run's tokens): every wopigate figure includes the revocation check against a full set (`cargo bench --bench hot_paths -- revocation` measures the check alone)"
        );
        let _ = writeln!(
            s,
            "- Both proxies log one access line per request (nginx buffered, wopigate JSON batched to a file); wrk errors (non-2xx, socket): {}",
            self.errors
        );
        let _ = writeln!(s, "- Whole run: {:.0} s\n", self.took.as_secs_f64());

        let _ = writeln!(s, "## Goals (issue #16)\n");
        let _ = writeln!(s, "| Figure | Value | Goal | Met |");
        let _ = writeln!(s, "|---|---|---|---|");
        let cpu = |i| median(&self.cpu_us(i));
        for (i, name, goal) in [(PASS, "pass-through", 1.2), (WRAPPED, "wrapped", 1.5)] {
            let r = cpu(i) / cpu(BARE);
            let _ = writeln!(
                s,
                "| CPU per proxied CheckFileInfo, {name}, ÷ bare pingora | {r:.2} ({:.1} vs {:.1} µs) | ≤ {goal} | {} |",
                cpu(i),
                cpu(BARE),
                met(r <= goal)
            );
        }
        let r = cpu(PASS) / cpu(NGINX);
        let _ = writeln!(
            s,
            "| CPU per request ÷ nginx, pass-through (stretch) | {r:.2} ({:.1} vs {:.1} µs) | ≤ 2.0 | {} |",
            cpu(PASS),
            cpu(NGINX),
            met(r <= 2.0)
        );
        let _ = writeln!(
            s,
            "| (the floor: bare pingora ÷ nginx) | {:.2} | — | — |",
            cpu(BARE) / cpu(NGINX)
        );
        for (op, _, _) in TRANSFER_OPS {
            let rates = |i| -> Vec<f64> { self.transfer_of(op, i).map(|t| t.mib_per_s).collect() };
            let (w, n) = (rates(WRAPPED), rates(NGINX));
            let per_round: Vec<f64> = w.iter().zip(&n).map(|(a, b)| a / b).collect();
            let ok = !per_round.is_empty() && per_round.iter().all(|r| *r >= 1.0);
            let _ = writeln!(
                s,
                "| {} MiB {op} throughput ÷ nginx, per round | {} (median {:.2}) | ≥ 1.0 in rounds | {} |",
                p.big_bytes >> 20,
                per_round
                    .iter()
                    .map(|r| format!("{r:.2}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                median(&per_round),
                met(ok)
            );
        }
        for (op, _, _) in TRANSFER_OPS {
            let per_gib = |i| -> Vec<f64> {
                self.transfer_of(op, i)
                    .filter_map(|t| t.cpu_per_gib.map(Cpu::total))
                    .collect()
            };
            let (w, n) = (median(&per_gib(WRAPPED)), median(&per_gib(NGINX)));
            let _ = writeln!(
                s,
                "| proxy CPU-seconds per GiB, {op}, ÷ nginx | {:.2} ({w:.3} vs {n:.3} s) | ≤ 1.0 | {} |",
                w / n,
                met(w / n <= 1.0)
            );
        }
        for (i, name) in [(PASS, "pass-through"), (WRAPPED, "wrapped")] {
            let added = median(&self.small[i].p99) - median(&self.small[DIRECT].p99);
            let _ = writeln!(
                s,
                "| p99 added latency vs direct, 1 connection, {name} | {added:.3} ms | ≤ 0.2 ms | {} |",
                met(added <= 0.2)
            );
        }
        if let [gw, ng, ..] = self.idle {
            let per_conn =
                (gw.with.saturating_sub(gw.before)) as f64 / 1024.0 / p.idle_connections as f64;
            let _ = writeln!(
                s,
                "| RSS with {} idle keep-alive connections | {:.1} MiB ({per_conn:.1} KiB per connection; nginx {:.1} MiB) | ≤ 100 MiB | {} |",
                p.idle_connections,
                mib(gw.with),
                mib(ng.with),
                met(gw.with <= 100 << 20)
            );
            let back = gw.after <= gw.before + (16 << 20);
            let _ = writeln!(
                s,
                "| RSS after they all closed (before them: {:.1} MiB) | {:.1} MiB | returned (≤ before + 16 MiB) | {} |",
                mib(gw.before),
                mib(gw.after),
                met(back)
            );
        }
        let _ = writeln!(
            s,
            "| open flow: gateway's own time per open, p99 | {:.0} µs (p50 {:.0} µs, {} opens) | ≤ 250 µs | {} |",
            self.own_p99_us,
            self.own_p50_us,
            self.opens,
            met(self.own_p99_us <= 250.0)
        );
        let _ = writeln!(
            s,
            "| open flow: opens per second per core (4 connections; gateway CPU {:.0} µs per open) | {:.0} ({:.0} measured) | report | — |",
            self.open_cpu_us,
            1e6 / self.open_cpu_us,
            self.opens_per_s
        );
        let _ = writeln!(
            s,
            "| idle RSS (wrapped gateway, before any load) | {:.1} MiB | — | — |",
            mib(self.idle_rss)
        );

        let _ = writeln!(s, "\n## Small calls\n");
        let _ = writeln!(
            s,
            "| Target | req/s (64 conns) | CPU µs/req | user µs | system µs | syscalls/req | p50 ms (1 conn) | p99 ms (1 conn) |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
        for (i, name) in NAMES.iter().enumerate() {
            let x = &self.small[i];
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} | {} | {} | {} | {} |",
                ranged(&x.rps, 0),
                ranged(&self.cpu_us(i), 1),
                ranged(&x.user_us, 1),
                ranged(&x.system_us, 1),
                x.syscalls.map_or("—".into(), |c| format!("{c:.1}")),
                ranged(&x.p50, 3),
                ranged(&x.p99, 3)
            );
        }
        let _ = writeln!(s, "\n## Transfers\n");
        let _ = writeln!(
            s,
            "| Operation | Target | MiB/s | CPU s/GiB | user s/GiB | system s/GiB | syscalls/MiB | page faults/MiB | proxy RSS growth (max) |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
        for (op, _, _) in TRANSFER_OPS {
            for i in [DIRECT, NGINX, BARE, WRAPPED] {
                let t: Vec<&Transfer> = self.transfer_of(op, i).collect();
                let rate: Vec<f64> = t.iter().map(|t| t.mib_per_s).collect();
                let cpu: Vec<Cpu> = t.iter().filter_map(|t| t.cpu_per_gib).collect();
                let growth = t.iter().map(|t| t.rss_growth).max().unwrap_or(0);
                let (total, user, system): (Vec<f64>, Vec<f64>, Vec<f64>) = (
                    cpu.iter().map(|c| c.total()).collect(),
                    cpu.iter().map(|c| c.user).collect(),
                    cpu.iter().map(|c| c.system).collect(),
                );
                let calls: Vec<f64> = t.iter().filter_map(|t| t.syscalls_per_mib).collect();
                let faults: Vec<f64> = t.iter().filter_map(|t| t.faults_per_mib).collect();
                let _ = writeln!(
                    s,
                    "| {op} {} MiB | {} | {} | {} | {} | {} | {} | {} | {} |",
                    p.big_bytes >> 20,
                    NAMES[i],
                    ranged(&rate, 0),
                    ranged(&total, 3),
                    ranged(&user, 3),
                    ranged(&system, 3),
                    ranged(&calls, 1),
                    ranged(&faults, 1),
                    if i == DIRECT {
                        "—".to_owned()
                    } else {
                        format!("{:.1} MiB", mib(growth))
                    }
                );
            }
        }
        s
    }
}
