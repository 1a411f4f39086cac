//! Two gateway replicas behind a real load balancer (Debian's nginx, round robin, no
//! stickiness), sharing nothing but the token key file (issue #18 point 4): opens, WOPI
//! lock/put/unlock cycles, gateway-token renewal across replicas and the mobile flow work with
//! consecutive requests on different replicas; one replica killed mid-run loses no
//! acknowledged save.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wopigate_testkit::free_port;
use wopigate_testkit::gateway::GatewayProcess;
use wopigate_testkit::stack::{STORAGE, Stack, StackOptions};
use wopigate_testkit::tree::Content;

use crate::{WopiFile as File, bin, client, gauge, open_wopi_file as open};

const MOBILE: &str = r#"
[mobile]
enabled = true
app = "Microsoft Office Online"
"#;

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// nginx in front of the replicas; stopped (by PID) when dropped: SIGTERM, so that its master
/// takes its worker down with it (a SIGKILLed master leaves the worker running), then SIGKILL if
/// it has not exited within 5 s.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_nginx(bin: &Path, dir: &Path, port: u16, replicas: &[u16]) -> Nginx {
    let servers: String = replicas
        .iter()
        .map(|p| format!("server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n"))
        .collect();
    let d = dir.display();
    let conf = format!(
        r#"worker_processes 1;
error_log {d}/nginx-error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {d}/nginx-body;
    proxy_temp_path {d}/nginx-proxy;
    fastcgi_temp_path {d}/nginx-fastcgi;
    uwsgi_temp_path {d}/nginx-uwsgi;
    scgi_temp_path {d}/nginx-scgi;
    upstream gateways {{
        {servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location / {{
            proxy_pass http://gateways;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_request_buffering off;
            proxy_buffering off;
            # nginx's default: only a request nothing was sent of moves to the next replica.
            proxy_next_upstream error timeout;
        }}
    }}
}}
"#
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(bin)
        .args([
            "-p",
            &d.to_string(),
            "-e",
            &format!("{d}/nginx-start.log"),
            "-c",
        ])
        .arg(&path)
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nginx starts");
    Nginx(child)
}

async fn wait_listening(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing listens on {port}");
}

/// A replica: the stack's configuration on its own public and admin ports.
async fn replica(stack: &Stack, nginx_port: u16, n: usize) -> (GatewayProcess, String, u16) {
    let (port, admin) = (free_port(), free_port());
    let text = stack
        .config_toml()
        .replace(
            &format!("listen = \"127.0.0.1:{nginx_port}\""),
            &format!("listen = \"127.0.0.1:{port}\""),
        )
        .replace(
            &format!("listen = \"127.0.0.1:{}\"", stack.admin_port),
            &format!("listen = \"127.0.0.1:{admin}\""),
        );
    let config = stack.dir().join(format!("replica-{n}.toml"));
    std::fs::write(&config, text).unwrap();
    let gw = GatewayProcess::start(&bin(), &config, port)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let admin = format!("http://127.0.0.1:{admin}");
    for _ in 0..400 {
        if gauge(&admin, "wopigate_jwks_keys")
            .await
            .is_some_and(|k| k >= 1.0)
        {
            return (gw, admin, port);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("replica {n} did not load the IdP keys:\n{}", gw.logs());
}

/// Requests a replica answered on its public listener.
async fn answered(admin: &str) -> f64 {
    crate::control::series_sum(admin, "wopigate_http_requests_total{listener=\"public\"").await
}

/// One WOPI call; `None` when the connection failed.
async fn call(f: &File, suffix: &str, op: Option<&str>, lock: &str, body: Vec<u8>) -> Option<u16> {
    let method = if op.is_some() { "POST" } else { "GET" };
    let mut r = client()
        .request(method.parse().unwrap(), format!("{}{suffix}", f.url))
        .query(&[("access_token", f.token.as_str())]);
    if let Some(op) = op {
        r = r.header("X-WOPI-Override", op).header("X-WOPI-Lock", lock);
    }
    Some(r.body(body).send().await.ok()?.status().as_u16())
}

/// Lock, save `content`, unlock; whether the save was acknowledged (200).
async fn save_cycle(f: &File, lock: &str, content: Vec<u8>) -> bool {
    if call(f, "", Some("LOCK"), lock, vec![]).await != Some(200) {
        return false;
    }
    let saved = call(f, "/contents", Some("PUT"), lock, content).await == Some(200);
    let _ = call(f, "", Some("UNLOCK"), lock, vec![]).await;
    saved
}

fn stored(stack: &Stack, opaque: &str) -> Vec<u8> {
    match stack.tree.get_by(STORAGE, opaque).unwrap().content {
        Content::Bytes(b) => b,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_behind_nginx_share_nothing_but_the_key_and_lose_no_save() {
    let Some(nginx) = nginx_binary() else {
        wopigate_testkit::skip_without("nginx (Debian's nginx-light)", "the replicas test");
        return;
    };
    let nginx_port = free_port();
    let stack = Stack::start(StackOptions {
        gateway_port: nginx_port,
        tap: false,
        server_extra: format!(
            "public_url = \"http://127.0.0.1:{nginx_port}\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n"
        ),
        extra_config: MOBILE.into(),
        ..Default::default()
    })
    .await;
    let (mut a, admin_a, port_a) = replica(&stack, nginx_port, 0).await;
    let (_b, admin_b, port_b) = replica(&stack, nginx_port, 1).await;
    let _lb = start_nginx(&nginx, stack.dir(), nginx_port, &[port_a, port_b]);
    wait_listening(nginx_port).await;

    // Opens and WOPI calls alternate between the replicas; a gateway token issued by one is
    // honoured by the other (same key, nothing else shared).
    let f = open(&stack, "file-docx").await;
    let (a0, b0) = (answered(&admin_a).await, answered(&admin_b).await);
    for i in 0..6 {
        assert_eq!(call(&f, "", None, "", vec![]).await, Some(200), "call {i}");
    }
    let (a1, b1) = (answered(&admin_a).await, answered(&admin_b).await);
    assert_eq!(a1 - a0 + b1 - b0, 6.0);
    assert!(
        a1 - a0 >= 2.0 && b1 - b0 >= 2.0,
        "round robin: {a0}->{a1}, {b0}->{b1}"
    );
    for i in 0..4 {
        let content = format!("cycle {i} across replicas").into_bytes();
        assert!(
            save_cycle(&f, &format!("lock-{i}"), content.clone()).await,
            "cycle {i}"
        );
        assert_eq!(stored(&stack, "file-docx"), content);
        let r = client()
            .get(format!("{}/contents", f.url))
            .query(&[("access_token", f.token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.bytes().await.unwrap().to_vec(),
            content,
            "read back via either"
        );
    }

    // Renewal: the wopiserver token behind a gateway token is renewed by a replica that never
    // saw it (each replica remembers only what it opened); both answer for the token.
    let fresh = open(&stack, "file-odt").await;
    for _ in 0..4 {
        assert_eq!(call(&fresh, "", None, "", vec![]).await, Some(200));
    }

    // The mobile flow: bootstrap, root container, children, a file's CheckFileInfo.
    let root = crate::root_container_url(&stack).await;
    let (path, query) = root.split_once('?').unwrap();
    for _ in 0..2 {
        let r = client()
            .get(format!("{path}/children?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let children: serde_json::Value = r.json().await.unwrap();
        let file = children["ChildFiles"][0]["Url"].as_str().unwrap();
        let r = client().get(file).send().await.unwrap();
        assert_eq!(r.status(), 200, "mobile CheckFileInfo");
    }

    // One replica is killed mid-run while saves keep coming on three files through nginx, and
    // at the moment a save of a fourth file is on its way through it (its body half sent):
    // every acknowledged save is in storage, the last one of each file is what it holds, and
    // the save cut off by the kill is never stored, not even in part.
    let files = ["file-s0", "file-s1", "file-s2"];
    for (i, name) in files.iter().enumerate() {
        crate::add_docx(&stack, name, &format!("s{i}.docx"));
    }
    crate::add_docx(&stack, "file-cut", "cut.docx");
    let cut = open(&stack, "file-cut").await;
    assert_eq!(
        call(&cut, "", Some("LOCK"), "lock-cut", vec![]).await,
        Some(200)
    );
    let cut_before = stored(&stack, "file-cut");
    let mut opened = Vec::new();
    for name in files {
        opened.push(open(&stack, name).await);
    }
    let runs = opened.iter().enumerate().map(|(k, f)| async move {
        let mut acked = Vec::new();
        let mut tried_after = Vec::new();
        for n in 0..30 {
            let content = format!("file {k} save {n}").into_bytes();
            // One lock id per file, as an office session keeps: a cycle whose Unlock was lost with the
            // killed replica does not block the next one.
            if save_cycle(f, &format!("lock-{k}"), content.clone()).await {
                acked.push(content);
                tried_after.clear();
            } else {
                tried_after.push(content);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (acked, tried_after)
    });
    let kill = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        // A save straight to replica A, its body half sent; once the wopiserver has it in
        // flight, A is killed.
        let in_flight = half_a_put(&cut, port_a, "lock-cut").await;
        crate::eventually(
            "the save through A reached the wopiserver",
            Duration::from_secs(10),
            async || (!crate::puts_to(&stack, "file-cut").is_empty()).then_some(()),
        )
        .await;
        a.signal("KILL");
        a.wait_exit(Duration::from_secs(5)).await;
        drop(in_flight);
    };
    let (results, ()) = tokio::join!(futures_util::future::join_all(runs), kill);
    for ((acked, unacked_after), name) in results.iter().zip(files) {
        assert!(
            acked.len() >= 20,
            "{name}: most saves acknowledged: {}",
            acked.len()
        );
        let now = stored(&stack, name);
        let last = acked.last().unwrap();
        assert!(
            &now == last || unacked_after.contains(&now),
            "{name}: storage holds {:?}, last acknowledged {:?}",
            String::from_utf8_lossy(&now),
            String::from_utf8_lossy(last)
        );
    }
    // The save cut off with replica A: the wopiserver saw its body break off and stored
    // nothing; the document is as it was, and its session goes on through the survivor.
    crate::eventually(
        "the wopiserver saw the cut-off save end",
        Duration::from_secs(10),
        async || {
            let puts = crate::puts_to(&stack, "file-cut");
            (!puts.is_empty() && puts.iter().all(|r| !r.body_complete)).then_some(())
        },
    )
    .await;
    assert_eq!(
        stored(&stack, "file-cut"),
        cut_before,
        "nothing of the cut save"
    );
    assert!(save_cycle(&cut, "lock-cut", b"after the kill".to_vec()).await);
    assert_eq!(stored(&stack, "file-cut"), b"after the kill");
    // After the kill, everything goes to the surviving replica.
    assert_eq!(call(&f, "", None, "", vec![]).await, Some(200));
}

/// A PutFile of 4 MiB straight to the replica on `port`, 1 MiB of it sent; the connection is
/// returned, to stay open while the replica dies.
async fn half_a_put(f: &File, port: u16, lock: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let path = url::Url::parse(&f.url).unwrap().path().to_owned();
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "POST {path}/contents?access_token={} HTTP/1.1\r\nHost: x\r\nX-WOPI-Override: PUT\r\nX-WOPI-Lock: {lock}\r\nContent-Length: {}\r\n\r\n",
        crate::enc(&f.token),
        4 << 20
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&vec![b'c'; 1 << 20]).await.unwrap();
    s
}
