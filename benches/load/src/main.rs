//! Load benchmark (issue #8): the same WOPI-shaped upstream measured directly, through nginx and
//! through wopigate, in one run, with the same clients. Run it with `benches/load.sh`, which builds
//! this package and the gateway in the bench profile and starts `target/release/wopigate-load`.
//!
//! On 2 cores the proxy under test gets core 0 to itself; this process (the upstream, the test
//! doubles, the Rust clients) and `wrk` share core 1. Small-call figures come from rounds that
//! interleave direct / nginx / wopigate and are reported as medians with their range.
//!
//! Knobs for investigations (the defaults are what `docs/benchmarks.md` reports):
//! `BENCH_QUICK=1` (short smoke run), `WOPIGATE_BIN` (another gateway build), `BENCH_WRAP=0`
//! (wopiserver tokens instead of gateway tokens), `BENCH_RUST_LOG` (gateway log level),
//! `BENCH_IDLE_SILENT=1` (idle connections that never send a request), `BENCH_BUILD` (how the
//! measured build was made, for the report), `BENCH_HOLD=<secs>` (start everything, print the URLs
//! and PIDs, wait; for profiling by hand).

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
use wopigate::testkit::gateway::rss_of;
use wopigate::testkit::stack::{STORAGE, Stack, StackOptions};
use wopigate::testkit::{localhost, serve_http};

/// Settings of one run; `BENCH_QUICK=1` shortens everything (a smoke run, not for figures).
struct Plan {
    rounds: usize,
    small_secs: u64,
    latency_secs: u64,
    connections: usize,
    big_bytes: u64,
    mid_bytes: u64,
    open_secs: u64,
    idle_connections: usize,
}

impl Plan {
    fn from_env() -> Self {
        if std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1") {
            Self {
                rounds: 1,
                small_secs: 2,
                latency_secs: 2,
                connections: 32,
                big_bytes: 128 << 20,
                mid_bytes: 16 << 20,
                open_secs: 2,
                idle_connections: 1000,
            }
        } else {
            Self {
                rounds: 3,
                small_secs: 3,
                latency_secs: 2,
                connections: 64,
                big_bytes: 1 << 30,
                mid_bytes: 64 << 20,
                open_secs: 8,
                idle_connections: 10_000,
            }
        }
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
    rt.block_on(run(Plan::from_env()));
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

async fn start_upstream(stack: &Stack, stats: Arc<UpstreamStats>) -> wopigate::testkit::Running {
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

impl Proc {
    /// CPU seconds (user + system) of the process and its children so far.
    fn cpu_seconds(&self) -> f64 {
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
        let ticks: u64 = pids
            .iter()
            .filter_map(|p| stat_fields(*p))
            .map(|f| f[11] + f[12])
            .sum();
        ticks as f64 / 100.0
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

/// The framework's floor (`benches/bare-pingora`): pingora proxying to the upstream with nothing
/// of wopigate's. What wopigate costs above it is wopigate's; what it costs above nginx is
/// pingora's.
async fn start_bare_pingora(upstream_port: u16) -> Proc {
    let port = wopigate::testkit::free_port();
    let child = Command::new("taskset")
        .args(["-c", "0"])
        .arg(sibling_binary("bare-pingora"))
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
/// upstream, no buffering of bodies in either direction, 256k buffers.
async fn start_nginx(dir: &Path, upstream_port: u16) -> Proc {
    let port = wopigate::testkit::free_port();
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

/// The gateway on one worker thread, JSON logs (one access line per request) to a file.
async fn start_wopigate(stack: &Stack, upstream: &str) -> (Proc, PathBuf) {
    let config = stack.write_config();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("threads = 2", "threads = 1\nlog_format = \"json\"")
        .replace(&stack.wopi_server.url(), upstream)
        // BENCH_WRAP=0: the open API hands out the wopiserver's own tokens (no gateway tokens).
        .replace(
            "wrap_tokens = true",
            &format!(
                "wrap_tokens = {}",
                std::env::var("BENCH_WRAP").map_or(true, |v| v != "0")
            ),
        );
    std::fs::write(&config, text).unwrap();
    let log = config.with_extension("log");
    let file = std::fs::File::create(&log).unwrap();
    // WOPIGATE_BIN measures another build of the gateway; by default the one built beside us.
    let bin = std::env::var_os("WOPIGATE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| sibling_binary("wopigate"));
    assert!(bin.is_file(), "no gateway binary at {}", bin.display());
    let child = Command::new("taskset")
        .args(["-c", "0"])
        .arg(bin)
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
        port: stack.listen_port,
    };
    wait_listening(stack.listen_port).await;
    // Ready once it holds the IdP keys (warm-up).
    let admin = format!("{}/readyz", stack.admin_url());
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if reqwest::get(&admin).await.is_ok_and(|r| r.status() == 200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (proc, log)
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
}

/// One GetFile or PutFile of `len` bytes against `base` (a file URL with its token), timing it
/// and sampling `proc`'s RSS meanwhile.
async fn transfer(base: &str, len: u64, put: bool, proc: Option<&Proc>) -> Transfer {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let pid = proc.map(|p| p.child.id());
    let before = pid.and_then(rss_of).unwrap_or(0);
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
    let started = Instant::now();
    if put {
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
    if let Some(s) = sampling {
        s.abort();
    }
    Transfer {
        mib_per_s: len as f64 / (1 << 20) as f64 / took.as_secs_f64(),
        rss_growth: peak.load(Ordering::Relaxed).saturating_sub(before),
    }
}

// ---------------------------------------------------------------------------------------------
// The run.

/// The small-call table's rows, in this order.
const TARGETS: usize = 4;
const DIRECT: usize = 0;
const NGINX: usize = 1;
const WOPIGATE: usize = 3;

struct Target<'a> {
    name: &'static str,
    port: u16,
    proc: Option<&'a Proc>,
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
    let (gateway, gateway_log) = start_wopigate(&stack, &upstream.url()).await;
    let idle_rss = gateway.rss();
    let nginx = start_nginx(stack.dir(), upstream.addr.port()).await;
    let bare = start_bare_pingora(upstream.addr.port()).await;

    // One open through the gateway hands out the gateway token every file call then uses.
    let oidc = stack.idp.token("alice");
    let open_url = format!(
        "{}/api/v0/wopi/open?fileId={}",
        stack.gateway_url(),
        url::form_urlencoded::byte_serialize(encode_legacy(STORAGE, "file-docx").as_bytes())
            .collect::<String>()
    );
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let opened: serde_json::Value = client
        .get(&open_url)
        .bearer_auth(&oidc)
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
    let file_path = url::Url::parse(&wopisrc).unwrap().path().to_owned();
    let query = format!(
        "access_token={}",
        url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
    );
    let file_url = |port: u16| format!("http://127.0.0.1:{port}{file_path}?{query}");
    let targets = [
        Target {
            name: "direct",
            port: upstream.addr.port(),
            proc: None,
        },
        Target {
            name: "nginx",
            port: nginx.port,
            proc: Some(&nginx),
        },
        Target {
            name: "pingora",
            port: bare.port,
            proc: Some(&bare),
        },
        Target {
            name: "wopigate",
            port: gateway.port,
            proc: Some(&gateway),
        },
    ];
    for t in &targets {
        let r = client.get(file_url(t.port)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{} CheckFileInfo", t.name);
    }
    // BENCH_HOLD=<secs>: keep everything up for profiling by hand (`perf record -p`, `wrk`).
    if let Some(secs) = std::env::var("BENCH_HOLD")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        for t in &targets {
            let pid = t.proc.map(|p| p.child.id().to_string()).unwrap_or_default();
            eprintln!("HOLD {} pid={pid} {}", t.name, file_url(t.port));
        }
        tokio::time::sleep(Duration::from_secs(secs)).await;
        return;
    }

    // Small calls: throughput (64 connections) and latency (1 connection), interleaved rounds.
    let mut rps: [Vec<f64>; TARGETS] = Default::default();
    let mut cpu_us: [Vec<f64>; TARGETS] = Default::default();
    let mut p99: [Vec<f64>; TARGETS] = Default::default();
    let mut p50: [Vec<f64>; TARGETS] = Default::default();
    let mut errors = 0;
    for round in 0..plan.rounds {
        for (i, t) in targets.iter().enumerate() {
            let url = file_url(t.port);
            let cpu_before = t.proc.map(Proc::cpu_seconds);
            let r = wrk(&url, plan.connections, plan.small_secs);
            if let (Some(p), Some(b)) = (t.proc, cpu_before) {
                cpu_us[i].push((p.cpu_seconds() - b) * 1e6 / r.requests.max(1) as f64);
            }
            rps[i].push(r.rps);
            errors += r.errors;
            let l = wrk(&url, 1, plan.latency_secs);
            p99[i].push(l.p99_ms);
            p50[i].push(l.p50_ms);
            errors += l.errors;
            eprintln!(
                "round {round} {:>8}: {:>8.0} req/s (64 conns), p50 {:.3} ms p99 {:.3} ms (1 conn)",
                t.name, r.rps, l.p50_ms, l.p99_ms
            );
        }
    }

    // Transfers: 1 GiB and a smaller size, GetFile and PutFile, each target.
    let mut transfers = Vec::new();
    for (put, op) in [(false, "GetFile"), (true, "PutFile")] {
        for len in [plan.mid_bytes, plan.big_bytes] {
            for t in &targets {
                let x = transfer(&file_url(t.port), len, put, t.proc).await;
                eprintln!(
                    "{op} {} MiB {:>8}: {:.0} MiB/s, RSS +{:.1} MiB",
                    len >> 20,
                    t.name,
                    x.mib_per_s,
                    x.rss_growth as f64 / (1 << 20) as f64
                );
                transfers.push((op, len, t.name, x));
            }
        }
    }

    // Open flow: real signed OIDC tokens (one per user, so validation, exchange and REVA are
    // exercised), fake REVA, the fake wopiserver's openinapp.
    let (opens_per_s, own_p99_us, own_p50_us, opens) =
        open_flow(&stack, &open_url, &gateway_log, plan.open_secs).await;

    // Idle connections: each makes one call, then stays open.
    let (idle_10k_rss, nginx_idle_rss) = idle_connections(
        &file_url(gateway.port),
        &file_url(nginx.port),
        &gateway,
        &nginx,
        plan.idle_connections,
    )
    .await;

    let report = Report {
        plan: &plan,
        rps: rps.map(spread),
        cpu_us: cpu_us.map(|v| spread(if v.is_empty() { vec![0.0] } else { v })),
        p99: p99.map(spread),
        p50: p50.map(spread),
        transfers: &transfers,
        opens_per_s,
        own_p99_us,
        own_p50_us,
        opens,
        idle_rss,
        idle_10k_rss,
        nginx_idle_rss,
        errors,
        took: started.elapsed(),
    };
    let text = report.render();
    println!("{text}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/benchmarks.md");
    std::fs::write(&out, &text).expect("write docs/benchmarks.md");
    eprintln!("written to {}", out.display());
    drop(nginx);
    drop(bare);
    drop(gateway);
}

/// Opens for `secs` over 4 connections with 50 users' tokens; the gateway's own time per open
/// is its logged duration minus the time it logged waiting on REVA and the wopiserver.
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

/// Opens `n` connections to each proxy, makes one CheckFileInfo on each and leaves them open;
/// returns both processes' RSS then.
async fn idle_connections(
    gw_url: &str,
    nginx_url: &str,
    gw: &Proc,
    nginx: &Proc,
    n: usize,
) -> (u64, u64) {
    let mut rss = Vec::new();
    for (url, proc) in [(gw_url, gw), (nginx_url, nginx)] {
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
        let after = proc.rss();
        eprintln!(
            "{n} idle connections to {url_port}: RSS {:.1} MiB before, {:.1} MiB with them",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            url_port = port
        );
        rss.push(after);
        drop(conns);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    (rss[0], rss[1])
}

struct Report<'a> {
    plan: &'a Plan,
    rps: [Spread; TARGETS],
    cpu_us: [Spread; TARGETS],
    p99: [Spread; TARGETS],
    p50: [Spread; TARGETS],
    transfers: &'a [(&'static str, u64, &'static str, Transfer)],
    opens_per_s: f64,
    own_p99_us: f64,
    own_p50_us: f64,
    opens: usize,
    idle_rss: u64,
    idle_10k_rss: u64,
    nginx_idle_rss: u64,
    errors: u64,
    took: Duration,
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

impl Report<'_> {
    fn render(&self) -> String {
        let p = self.plan;
        let mut s = String::new();
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
            })
            .unwrap_or_default();
        // Not available_parallelism(): this process is pinned to one core.
        let cores = std::fs::read_to_string("/proc/cpuinfo")
            .map(|c| c.lines().filter(|l| l.starts_with("processor")).count())
            .unwrap_or(0);
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
        let _ = writeln!(s, "# Benchmarks\n");
        let _ = writeln!(
            s,
            "Written by `benches/load.sh` ({date}); every figure below is from that one run.\n"
        );
        let build = std::env::var("BENCH_BUILD").unwrap_or_else(|_| {
            "the bench profile (release settings without LTO; 16 codegen units for the gateway, one per dependency: see Cargo.toml)"
                .into()
        });
        let _ = writeln!(
            s,
            "- Command: `benches/load.sh` (builds the gateway, `wopigate-load` and `bare-pingora` in the bench profile, runs `target/release/wopigate-load`); build: {build}"
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
            "- Upstream: the same WOPI-shaped server for every target (CheckFileInfo JSON of ~600 bytes; GetFile/PutFile streamed from/to memory); opens use the fake REVA (gRPC) and the fake wopiserver's `openinapp`"
        );
        let _ = writeln!(
            s,
            "- Small calls: CheckFileInfo with the gateway-issued token, {} rounds interleaving direct / nginx / bare pingora / wopigate: {} s with `wrk -t1 -c{}`, then {} s with `wrk -t1 -c1 --latency`; medians with [min–max]",
            p.rounds, p.small_secs, p.connections, p.latency_secs
        );
        let _ = writeln!(
            s,
            "- Both proxies log one access line per request (nginx buffered, wopigate JSON to a file); wrk errors (non-2xx, socket): {}",
            self.errors
        );
        let _ = writeln!(
            s,
            "- Bare pingora: pingora 0.9 proxying to the same upstream with none of wopigate's work (no token, proof, rewrite, client limits, metrics or logs) — the framework's own floor"
        );
        let _ = writeln!(s, "- Whole run: {:.0} s\n", self.took.as_secs_f64());

        let _ = writeln!(s, "## Ratios and goals\n");
        let _ = writeln!(s, "| Figure | Value | Goal | Met |");
        let _ = writeln!(s, "|---|---|---|---|");
        let met = |ok: bool| if ok { "yes" } else { "**no**" };
        let tput = self.rps[WOPIGATE].median / self.rps[NGINX].median;
        let _ = writeln!(
            s,
            "| small-call throughput, wopigate ÷ nginx | {tput:.2} | ≥ 1.1 | {} |",
            met(tput >= 1.1)
        );
        let cpu = self.cpu_us[WOPIGATE].median / self.cpu_us[NGINX].median;
        let _ = writeln!(
            s,
            "| proxy CPU per small request, wopigate ÷ nginx | {cpu:.2} ({:.1} µs vs {:.1} µs) | ≤ 0.8 | {} |",
            self.cpu_us[WOPIGATE].median,
            self.cpu_us[NGINX].median,
            met(cpu <= 0.8)
        );
        let added = self.p99[WOPIGATE].median - self.p99[DIRECT].median;
        let _ = writeln!(
            s,
            "| small-call p99 added latency vs direct, 1 connection | {:.3} ms | ≤ 0.1 ms | {} |",
            added,
            met(added <= 0.1)
        );
        for op in ["GetFile", "PutFile"] {
            let of = |name: &str| {
                self.transfers
                    .iter()
                    .find(|t| t.0 == op && t.1 == p.big_bytes && t.2 == name)
                    .map(|t| &t.3)
            };
            if let (Some(d), Some(w)) = (of("direct"), of("wopigate")) {
                let r = w.mib_per_s / d.mib_per_s;
                let _ = writeln!(
                    s,
                    "| {} MiB {op} throughput, wopigate ÷ direct | {r:.2} | ≥ 0.9 | {} |",
                    p.big_bytes >> 20,
                    met(r >= 0.9)
                );
            }
            let growth = |len: u64| {
                self.transfers
                    .iter()
                    .find(|t| t.0 == op && t.1 == len && t.2 == "wopigate")
                    .map(|t| t.3.rss_growth)
                    .unwrap_or(0)
            };
            let (small, big) = (growth(p.mid_bytes), growth(p.big_bytes));
            let _ = writeln!(
                s,
                "| gateway RSS growth during {op}, {} MiB / {} MiB | {:.1} / {:.1} MiB | ≤ 32 MiB, flat | {} |",
                p.mid_bytes >> 20,
                p.big_bytes >> 20,
                mib(small),
                mib(big),
                met(big <= 32 << 20 && big <= small + (8 << 20))
            );
        }
        let _ = writeln!(
            s,
            "| open flow: gateway's own time per open, p99 | {:.0} µs (p50 {:.0} µs, {} opens) | ≤ 300 µs | {} |",
            self.own_p99_us,
            self.own_p50_us,
            self.opens,
            met(self.own_p99_us <= 300.0)
        );
        let _ = writeln!(
            s,
            "| open flow: opens per second (4 connections) | {:.0} | — | — |",
            self.opens_per_s
        );
        let _ = writeln!(
            s,
            "| idle RSS | {:.1} MiB | ≤ 30 MiB | {} |",
            mib(self.idle_rss),
            met(self.idle_rss <= 30 << 20)
        );
        let _ = writeln!(
            s,
            "| RSS with {} idle keep-alive connections | {:.1} MiB (nginx {:.1} MiB) | ≤ 200 MiB | {} |",
            p.idle_connections,
            mib(self.idle_10k_rss),
            mib(self.nginx_idle_rss),
            met(self.idle_10k_rss <= 200 << 20)
        );

        let _ = writeln!(s, "\n## Small calls\n");
        let _ = writeln!(
            s,
            "| Target | req/s (64 conns) | proxy CPU µs/req | p50 ms (1 conn) | p99 ms (1 conn) |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|");
        for (i, name) in ["direct", "nginx", "pingora (bare)", "wopigate"]
            .iter()
            .enumerate()
        {
            let f = |x: Spread, d: usize| format!("{:.d$} [{:.d$}–{:.d$}]", x.median, x.min, x.max);
            let cpu = if i == 0 {
                "—".to_owned()
            } else {
                f(self.cpu_us[i], 1)
            };
            let _ = writeln!(
                s,
                "| {name} | {} | {cpu} | {} | {} |",
                f(self.rps[i], 0),
                f(self.p50[i], 3),
                f(self.p99[i], 3)
            );
        }
        let _ = writeln!(s, "\n## Transfers\n");
        let _ = writeln!(
            s,
            "| Operation | Size | Target | MiB/s | proxy RSS growth |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|");
        for (op, len, name, t) in self.transfers {
            let growth = if *name == "direct" {
                "—".to_owned()
            } else {
                format!("{:.1} MiB", mib(t.rss_growth))
            };
            let _ = writeln!(
                s,
                "| {op} | {} MiB | {name} | {:.0} | {growth} |",
                len >> 20,
                t.mib_per_s
            );
        }
        s
    }
}
