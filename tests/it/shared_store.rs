//! Issue #26 point 5: replicas share revocations, sessions and locks through a real Redis
//! (Debian's `redis-server`). A revocation at one replica is enforced by another within 1 s; a
//! replica cut off from the store keeps enforcing its last set, says so on `/readyz`, refuses
//! new revocations (503) and catches up when the store is back; a store restarted empty gets
//! the replicas' entries back.

use std::time::Duration;

use serde_json::{Value, json};
use wopigate_testkit::fault_proxy::{Fault, FaultProxy};
use wopigate_testkit::gateway::GatewayProcess;
use wopigate_testkit::redis_server::RedisServer;
use wopigate_testkit::stack::{STORAGE, Stack, StackOptions};
use wopigate_testkit::{free_port, redis_server};

use crate::control::{admin, check_file_info, config_with};
use crate::{WopiFile as File, bin, client, eventually, gauge};

/// A replica on its own ports, sharing the store at `store_url`.
async fn replica(stack: &Stack, n: usize, store_url: &str, password: &std::path::Path) -> Replica {
    let (port, admin_port) = (free_port(), free_port());
    let config = config_with(stack, &format!("store-replica-{n}.toml"), &[]);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(
            &format!("listen = \"127.0.0.1:{}\"", stack.listen_port),
            &format!("listen = \"127.0.0.1:{port}\""),
        )
        .replace(
            &format!("listen = \"127.0.0.1:{}\"", stack.admin_port),
            &format!("listen = \"127.0.0.1:{admin_port}\""),
        );
    let text = format!(
        "{text}\n[store]\nurl = \"{store_url}\"\npassword_file = {:?}\n",
        password.display().to_string()
    );
    std::fs::write(&config, text).unwrap();
    let gw = GatewayProcess::start(&bin(), &config, port)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let admin = format!("http://127.0.0.1:{admin_port}");
    eventually(
        "the replica loaded the IdP keys",
        Duration::from_secs(20),
        async || {
            gauge(&admin, "wopigate_jwks_keys")
                .await
                .filter(|k| *k >= 1.0)
        },
    )
    .await;
    Replica {
        gw,
        admin,
        url: format!("http://127.0.0.1:{port}"),
    }
}

struct Replica {
    gw: GatewayProcess,
    admin: String,
    url: String,
}

impl Replica {
    async fn store_up(&self) -> Option<f64> {
        gauge(&self.admin, "wopigate_store_up").await
    }

    /// `/readyz`: whether ready, and the names of what is degraded.
    async fn readiness(&self) -> (bool, Vec<String>) {
        let r: Value = client()
            .get(format!("{}/readyz", self.admin))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let degraded = r["degraded"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        (r["ready"] == true, degraded)
    }

    /// The same session's token, on this replica's public URL.
    fn file(&self, f: &File) -> File {
        let path = f.url.splitn(4, '/').nth(3).unwrap_or_default();
        File {
            url: format!("{}/{path}", self.url),
            token: f.token.clone(),
        }
    }
}

async fn open_at(stack: &Stack, r: &Replica, user: &str, opaque: &str) -> File {
    let id = wopigate::ids::encode_legacy(STORAGE, opaque);
    let resp = client()
        .get(format!("{}/api/v0/wopi/open", r.url))
        .query(&[("fileId", id.as_str())])
        .bearer_auth(stack.idp.token(user))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let url = crate::wopi_src_path(body["wopiclienturl"].as_str().unwrap());
    File {
        url: format!("{}{url}", r.url),
        token: body["accesstoken"].as_str().unwrap().to_owned(),
    }
}

async fn revoke(r: &Replica, body: Value) -> u16 {
    crate::control::revoke(&r.admin, body).await.0
}

/// `f` answers `status` at the replica within `limit`.
async fn answers(f: &File, status: u16, limit: Duration, what: &str) {
    eventually(what, limit, async || {
        (check_file_info(f).await.0 == status).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_revocations_sessions_and_locks_and_ride_out_a_store_outage() {
    if redis_server::binary().is_none() && std::env::var("CI").is_err() {
        eprintln!("SKIPPED: redis-server is not installed (scripts/setup.sh installs it)");
        return;
    }
    let stack = Stack::start(StackOptions {
        tap: false,
        ..Default::default()
    })
    .await;
    let mut redis = RedisServer::start(stack.dir());
    let password = stack.dir().join("store.password");
    std::fs::write(&password, format!("{}\n", redis.password)).unwrap();
    // Replica B reaches the store through a proxy that can cut it off alone.
    let cut = FaultProxy::start(format!("127.0.0.1:{}", redis.port).parse().unwrap())
        .await
        .unwrap();
    let a = replica(&stack, 0, &redis.url(), &password).await;
    let b = replica(&stack, 1, &format!("redis://{}", cut.addr), &password).await;
    for r in [&a, &b] {
        eventually("the store reachable", Duration::from_secs(10), async || {
            (r.store_up().await == Some(1.0)).then_some(())
        })
        .await;
        assert_eq!(r.readiness().await, (true, vec![]));
    }

    // Sessions opened at A, served by B; listed at B.
    let alice = open_at(&stack, &a, "alice", "file-docx").await;
    let bob = open_at(&stack, &a, "bob", "file-bob").await;
    let (alice_b, bob_b) = (b.file(&alice), b.file(&bob));
    assert_eq!(check_file_info(&alice_b).await.0, 200);
    assert_eq!(check_file_info(&bob_b).await.0, 200);
    eventually(
        "A's sessions listed at B",
        Duration::from_secs(5),
        async || {
            let (_, s) = admin(&b.admin, "GET", "/admin/sessions?user=alice-sub", None).await;
            let sessions = s["sessions"].as_array()?.clone();
            (!sessions.is_empty()).then_some(())
        },
    )
    .await;
    // A lock taken through B, listed at A.
    let lock = client()
        .post(&alice_b.url)
        .query(&[("access_token", alice_b.token.as_str())])
        .header("X-WOPI-Override", "LOCK")
        .header("X-WOPI-Lock", "lock-through-b")
        .send()
        .await
        .unwrap();
    assert_eq!(lock.status(), 200);
    eventually("B's lock listed at A", Duration::from_secs(5), async || {
        let (_, l) = admin(&a.admin, "GET", "/admin/locks", None).await;
        (l["locks"][0]["lock_id"] == "lock-through-b").then_some(())
    })
    .await;

    // Revoked at A, enforced at B within 1 s; bob goes on.
    assert_eq!(revoke(&a, json!({"user": "alice-sub"})).await, 201);
    answers(
        &alice_b,
        401,
        Duration::from_secs(1),
        "B enforces A's revocation",
    )
    .await;
    assert_eq!(check_file_info(&bob_b).await.0, 200);

    // B cut off from the store: it keeps enforcing, says so, and refuses new revocations.
    cut.set(Fault::Stopped).await;
    eventually(
        "B sees the store gone",
        Duration::from_secs(10),
        async || (b.readiness().await == (true, vec!["store".to_owned()])).then_some(()),
    )
    .await;
    assert_eq!(b.store_up().await, Some(0.0));
    assert_eq!(check_file_info(&alice_b).await.0, 401);
    assert_eq!(check_file_info(&bob_b).await.0, 200);
    let (s, e) = admin(
        &b.admin,
        "POST",
        "/admin/revocations",
        Some(json!({"sid": "x"})),
    )
    .await;
    assert_eq!((s, e["code"].as_str()), (503, Some("unavailable")), "{e}");
    // Meanwhile A revokes bob; B catches up once the store is back.
    assert_eq!(revoke(&a, json!({"user": "bob-sub"})).await, 201);
    answers(
        &a.file(&bob),
        401,
        Duration::from_secs(1),
        "A enforces its own revocation",
    )
    .await;
    assert_eq!(
        check_file_info(&bob_b).await.0,
        200,
        "B has not heard of it yet"
    );
    cut.set(Fault::None).await;
    answers(&bob_b, 401, Duration::from_secs(10), "B caught up").await;
    assert_eq!(b.readiness().await, (true, vec![]));

    // The store restarted empty: the replicas give it their entries back.
    redis.kill();
    eventually(
        "A sees the store gone",
        Duration::from_secs(10),
        async || (a.store_up().await == Some(0.0)).then_some(()),
    )
    .await;
    assert_eq!(revoke(&a, json!({"sid": "during-the-outage"})).await, 503);
    assert_eq!(check_file_info(&alice_b).await.0, 401, "still enforced");
    redis.restart();
    eventually("A revokes again", Duration::from_secs(10), async || {
        (revoke(&a, json!({"sid": "after-the-outage"})).await == 201).then_some(())
    })
    .await;
    eventually(
        "the store has every entry again",
        Duration::from_secs(10),
        async || {
            let (_, l) = admin(&b.admin, "GET", "/admin/revocations", None).await;
            (l["revocations"].as_array()?.len() == 3).then_some(())
        },
    )
    .await;
    // A third replica started now learns the whole set from the store alone.
    let c = replica(&stack, 2, &redis.url(), &password).await;
    eventually("C loaded the set", Duration::from_secs(10), async || {
        (gauge(&c.admin, "wopigate_revocations").await == Some(3.0)).then_some(())
    })
    .await;
    assert_eq!(check_file_info(&c.file(&alice)).await.0, 401);
    for r in [&a, &b, &c] {
        let logs = r.gw.logs();
        assert!(
            !logs.contains(&redis.password),
            "the store's password is never logged"
        );
        assert!(!logs.contains(crate::control::ADMIN_TOKEN));
    }
}
