//! A TCP proxy put between the gateway and one of its upstreams to break it on demand: stopped
//! (connections refused, open ones cut), slow (every answer held back), garbage (answers
//! replaced by bytes no protocol accepts) or reset mid-response (half an answer, then a TCP
//! RST). Faults apply to pooled connections already open as well as to new ones, as a real
//! failing server would.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    Stopped,
    Slow(Duration),
    Garbage,
    ResetMidResponse,
    /// Takes the connection and part of the request, passes nothing on, then resets: a
    /// server that died while a request was on its way in.
    SwallowRequest,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "healthy",
            Self::Stopped => "stopped",
            Self::Slow(_) => "slow",
            Self::Garbage => "garbage",
            Self::ResetMidResponse => "reset mid-response",
            Self::SwallowRequest => "request swallowed",
        }
    }
}

pub const GARBAGE: &[u8] = b"\x00\xff\xfe garbage, not HTTP, not HTTP/2 \x01\x02\r\n\r\n";

pub struct FaultProxy {
    pub addr: SocketAddr,
    target: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    acceptor: Mutex<Option<JoinHandle<()>>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    counts: Arc<Counts>,
}

/// What reached the proxy, counted, and the trigger of a kill mid-request.
#[derive(Default)]
struct Counts {
    accepted: AtomicUsize,
    /// Connections swallowed after request bytes arrived on them.
    swallowed: AtomicUsize,
    /// Armed by [`FaultProxy::kill_mid_request`]: the next request bytes read are held and
    /// reported, never passed on.
    kill_armed: std::sync::atomic::AtomicBool,
    request_caught: tokio::sync::Notify,
}

impl FaultProxy {
    /// Listens on an ephemeral 127.0.0.1 port and relays to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy = Self {
            addr: listener.local_addr()?,
            target,
            fault: Arc::new(Mutex::new(Fault::None)),
            acceptor: Mutex::new(None),
            connections: Arc::new(Mutex::new(Vec::new())),
            counts: Arc::default(),
        };
        proxy.accept_on(listener);
        Ok(proxy)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.counts.accepted.load(Relaxed)
    }

    /// Connections that carried request bytes into a [`Fault::SwallowRequest`].
    pub fn swallowed(&self) -> usize {
        self.counts.swallowed.load(Relaxed)
    }

    /// Dies the way a killed server does, mid-request: waits (at most `limit`) for the next
    /// request bytes to arrive, holds them unanswered, then cuts every connection and closes
    /// the port. Whether a request was caught in flight.
    pub async fn kill_mid_request(&self, limit: Duration) -> bool {
        self.counts.kill_armed.store(true, Relaxed);
        let caught = tokio::time::timeout(limit, self.counts.request_caught.notified())
            .await
            .is_ok();
        self.counts.kill_armed.store(false, Relaxed);
        self.set(Fault::Stopped).await;
        caught
    }

    fn accept_on(&self, listener: TcpListener) {
        let (target, fault, connections, counts) = (
            self.target,
            self.fault.clone(),
            self.connections.clone(),
            self.counts.clone(),
        );
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                counts.accepted.fetch_add(1, Relaxed);
                let fault = fault.clone();
                let conn = tokio::spawn(relay(client, target, fault, counts.clone()));
                let mut all = connections.lock().unwrap();
                all.retain(|c| !c.is_finished());
                all.push(conn);
            }
        });
        *self.acceptor.lock().unwrap() = Some(task);
    }

    fn cut_all(&self) {
        if let Some(a) = self.acceptor.lock().unwrap().take() {
            a.abort();
        }
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// Switches to `fault`. Stopping closes the port and every open connection; leaving
    /// `Stopped` listens on the same port again.
    pub async fn set(&self, fault: Fault) {
        let was = std::mem::replace(&mut *self.fault.lock().unwrap(), fault);
        // Swallowing starts on fresh connections: open ones would still relay.
        if matches!(fault, Fault::Stopped | Fault::SwallowRequest) {
            self.cut_all();
            // Let the aborted tasks drop their sockets before anyone connects again.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if fault != Fault::Stopped && (was == Fault::Stopped || fault == Fault::SwallowRequest) {
            let mut tries = 0;
            let listener = loop {
                match TcpListener::bind(self.addr).await {
                    Ok(l) => break l,
                    Err(e) if tries < 50 => {
                        tries += 1;
                        let _ = e;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
                }
            };
            self.accept_on(listener);
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.cut_all();
    }
}

/// Relays one connection; the answer direction obeys the current fault chunk by chunk.
async fn relay(
    mut client: TcpStream,
    target: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    counts: Arc<Counts>,
) {
    if *fault.lock().unwrap() == Fault::SwallowRequest {
        let mut buf = vec![0u8; 16 * 1024];
        let mut got = 0;
        while got < 32 * 1024 {
            match tokio::time::timeout(Duration::from_millis(300), client.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => got += n,
                _ => break,
            }
        }
        if got > 0 {
            counts.swallowed.fetch_add(1, Relaxed);
        }
        let _ = client.set_zero_linger();
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        return;
    };
    let reset = {
        let (mut client_read, mut client_write) = client.split();
        let (mut upstream_read, mut upstream_write) = upstream.split();
        let requests = async {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match client_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if counts.kill_armed.swap(false, Relaxed) {
                    // Caught on its way in: held until the kill cuts this connection.
                    counts.request_caught.notify_one();
                    std::future::pending::<()>().await;
                }
                if upstream_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = upstream_write.shutdown().await;
            std::future::pending::<()>().await;
        };
        let answers = async {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match upstream_read.read(&mut buf).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => n,
                };
                let current = *fault.lock().unwrap();
                let chunk = match current {
                    Fault::None | Fault::Stopped | Fault::SwallowRequest => &buf[..n],
                    Fault::Slow(d) => {
                        tokio::time::sleep(d).await;
                        &buf[..n]
                    }
                    Fault::Garbage => GARBAGE,
                    Fault::ResetMidResponse => {
                        let _ = client_write.write_all(&buf[..n.div_ceil(2)]).await;
                        let _ = client_write.flush().await;
                        return true;
                    }
                };
                if client_write.write_all(chunk).await.is_err() {
                    return false;
                }
                if current == Fault::Garbage {
                    let _ = client_write.shutdown().await;
                    return false;
                }
            }
        };
        tokio::select! {
            reset = answers => reset,
            _ = requests => false,
        }
    };
    if reset {
        // Closing with a zero linger sends RST instead of FIN.
        let _ = client.set_zero_linger();
    }
}
