//! SIGHUP reloads: a replaced configuration generation is freed once its last request ends,
//! memory stays flat over many reloads, and a reload's blocking work (files, names) never
//! stalls the requests and background work of the running generation.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use wopigate_testkit::gateway::GatewayProcess;
use wopigate_testkit::stack::{BIG_FILE_BYTES, Stack, StackOptions};

use crate::ops::{metric, scrape};
use crate::{eventually, open_as_alice, start, wopi_get, wopi_src_path};

async fn generations(stack: &Stack) -> f64 {
    metric(&scrape(stack).await, "wopigate_config_generations", &[])
}

async fn reloads_ok(stack: &Stack) -> f64 {
    metric(
        &scrape(stack).await,
        "wopigate_config_reloads_total",
        &[("outcome", "ok")],
    )
}

/// Sends SIGHUP and waits until the reload has been counted as done.
async fn reload(stack: &Stack, gw: &GatewayProcess) {
    let before = reloads_ok(stack).await;
    gw.signal("HUP");
    let what = format!("reload not done:\n{}", gw.logs());
    eventually(&what, Duration::from_secs(15), async || {
        (reloads_ok(stack).await > before).then_some(())
    })
    .await;
}

/// Waits (bounded) until the gauge of live generations reads `want`.
async fn generations_become(stack: &Stack, want: f64) {
    let what = format!("generations alive never became {want}");
    eventually(&what, Duration::from_secs(10), async || {
        (generations(stack).await == want).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_generation_is_freed_after_its_last_request_and_reloads_keep_memory_flat() {
    let (stack, gw) = start(StackOptions::default()).await;
    generations_become(&stack, 1.0).await;

    // A long GetFile pins the first generation across a reload.
    let (status, body) = open_as_alice(&stack, "file-big").await;
    assert_eq!(status, 200, "{body}");
    let path = wopi_src_path(body["wopiclienturl"].as_str().unwrap());
    let r = wopi_get(
        &format!("{}{path}/contents", stack.gateway_url()),
        body["accesstoken"].as_str().unwrap(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let mut stream = r.bytes_stream();
    let mut got = stream.next().await.unwrap().unwrap().len() as u64;
    reload(&stack, &gw).await;
    assert_eq!(
        generations(&stack).await,
        2.0,
        "the old generation lives while its transfer runs"
    );
    while let Some(chunk) = stream.next().await {
        got += chunk.unwrap().len() as u64;
    }
    assert_eq!(got, BIG_FILE_BYTES);
    drop(stream);
    generations_become(&stack, 1.0).await;

    // Many reloads, with a request served by each generation: what a generation held is
    // freed with it, so memory after warm-up stays where it was.
    let serve_one = async || {
        let (status, body) = open_as_alice(&stack, "file-docx").await;
        assert_eq!(status, 200, "{body}");
    };
    for _ in 0..10 {
        reload(&stack, &gw).await;
        serve_one().await;
    }
    let warm = gw.rss_bytes().expect("RSS");
    let tasks = metric(&scrape(&stack).await, "wopigate_control_tasks", &[]);
    assert!(tasks > 0.0);
    for _ in 0..40 {
        reload(&stack, &gw).await;
        serve_one().await;
    }
    let after = gw.rss_bytes().expect("RSS");
    generations_become(&stack, 1.0).await;
    // Nothing of a replaced generation keeps running: its discovery refresh loops used to,
    // two tasks per reload holding the whole replaced cache. Connections closing may still be
    // winding down, hence a small margin rather than equality.
    let tasks_after = metric(&scrape(&stack).await, "wopigate_control_tasks", &[]);
    assert!(
        tasks_after <= tasks + 6.0,
        "control runtime tasks {tasks} -> {tasks_after} over 40 reloads"
    );
    let growth = after.saturating_sub(warm) as f64 / (1024.0 * 1024.0);
    // A generation that stayed behind costs ~150 KiB: 40 of them would be ~6 MiB.
    assert!(
        growth < 2.0,
        "RSS grew {growth:.2} MiB over 40 reloads ({warm} -> {after} bytes)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_blocked_on_a_file_stalls_no_request() {
    let (stack, gw) = start(StackOptions::default()).await;
    let (status, _) = open_as_alice(&stack, "file-docx").await;
    assert_eq!(status, 200);
    // The IOP secret now comes from a FIFO nobody writes to: reading it blocks the reload.
    let fifo = stack.dir().join("iop.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let config = stack.dir().join("wopigate.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let iop_line = text
        .lines()
        .find(|l| l.starts_with("iop_secret_file"))
        .unwrap()
        .to_owned();
    std::fs::write(
        &config,
        text.replace(&iop_line, &format!("iop_secret_file = {:?}", fifo)),
    )
    .unwrap();
    gw.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw.logs().contains("SIGHUP: reloading") {
        assert!(Instant::now() < deadline, "{}", gw.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // While the reload waits on the file, opens (REVA over the control runtime's channel,
    // the wopiserver) keep being served.
    for _ in 0..3 {
        let answer =
            tokio::time::timeout(Duration::from_secs(10), open_as_alice(&stack, "file-docx"))
                .await
                .expect("an open during a blocked reload answered");
        assert_eq!(answer.0, 200, "{}", answer.1);
    }
    assert_eq!(reloads_ok(&stack).await, 0.0, "the reload is still waiting");
    // Unblock it: the reload completes with the secret it read.
    let secret = stack.iop_secret.clone();
    let writer = std::thread::spawn(move || std::fs::write(fifo, secret));
    let deadline = Instant::now() + Duration::from_secs(15);
    while reloads_ok(&stack).await < 1.0 {
        assert!(Instant::now() < deadline, "{}", gw.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    writer.join().unwrap().unwrap();
    let (status, _) = open_as_alice(&stack, "file-docx").await;
    assert_eq!(status, 200);
}
