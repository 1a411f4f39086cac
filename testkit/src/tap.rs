//! A transparent TCP relay in front of the gateway's public listener that reads every byte the
//! gateway sends a test — status lines, headers, bodies, error answers — and looks in them for
//! every registered secret and token the gateway must not hand out
//! ([`super::hygiene::never_sent`]). Bytes pass unchanged; framing, timing and connection
//! closes are relayed as they happen. TLS connections are relayed but cannot be read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aho_corasick::AhoCorasick;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Default)]
struct Findings {
    leaks: Mutex<Vec<&'static str>>,
    scanned_bytes: AtomicU64,
    connections: AtomicU64,
}

pub struct ResponseTap {
    pub port: u16,
    findings: Arc<Findings>,
    task: JoinHandle<()>,
}

impl ResponseTap {
    /// Listens on an ephemeral 127.0.0.1 port and relays to `127.0.0.1:target_port`.
    pub async fn start(target_port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let findings = Arc::new(Findings::default());
        let f = findings.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, target_port, f.clone()));
            }
        });
        Ok(Self {
            port,
            findings,
            task,
        })
    }

    /// What was found so far (descriptions only), emptied.
    pub fn take_leaks(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.findings.leaks.lock().unwrap())
    }

    /// Response bytes read in clear text so far.
    pub fn scanned_bytes(&self) -> u64 {
        self.findings.scanned_bytes.load(Ordering::Relaxed)
    }

    pub fn connections(&self) -> u64 {
        self.findings.connections.load(Ordering::Relaxed)
    }
}

impl Drop for ResponseTap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(mut client: TcpStream, target_port: u16, findings: Arc<Findings>) {
    let Ok(mut gateway) = TcpStream::connect(("127.0.0.1", target_port)).await else {
        // As if the gateway's own listener had refused: the client sees a reset.
        let _ = client.set_zero_linger();
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = gateway.set_nodelay(true);
    findings.connections.fetch_add(1, Ordering::Relaxed);
    let (mut client_read, mut client_write) = client.split();
    let (mut gateway_read, mut gateway_write) = gateway.split();
    let requests = async {
        let _ = tokio::io::copy(&mut client_read, &mut gateway_write).await;
        let _ = gateway_write.shutdown().await;
    };
    let answers = async {
        let mut scanner = Scanner::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match gateway_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    scanner.scan(&buf[..n], &findings);
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = client_write.shutdown().await;
    };
    // The answer direction decides when the connection is over; requests may end earlier
    // (a half-close) without ending it.
    tokio::pin!(requests, answers);
    tokio::select! {
        () = &mut answers => {}
        () = &mut requests => answers.await,
    }
}

/// Streaming search for the registered patterns; a match split across chunks is found too.
#[derive(Default)]
struct Scanner {
    patterns: Option<(usize, AhoCorasick, Vec<&'static str>, usize)>,
    carry: Vec<u8>,
    /// Whether the answers are TLS records (a ServerHello starts with 0x16), not readable.
    tls: Option<bool>,
}

impl Scanner {
    fn refresh(&mut self) {
        let version = super::hygiene::version();
        if self.patterns.as_ref().is_some_and(|p| p.0 == version) {
            return;
        }
        let never = super::hygiene::never_sent();
        let longest = never.iter().map(|(_, p)| p.len()).max().unwrap_or(0);
        let automaton =
            AhoCorasick::new(never.iter().map(|(_, p)| p.as_bytes())).expect("patterns build");
        let names = never.into_iter().map(|(what, _)| what).collect();
        self.patterns = Some((version, automaton, names, longest));
    }

    fn scan(&mut self, chunk: &[u8], findings: &Findings) {
        let tls = *self.tls.get_or_insert(chunk.first() == Some(&0x16));
        if tls {
            return;
        }
        findings
            .scanned_bytes
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        self.refresh();
        let Some((_, automaton, names, longest)) = &self.patterns else {
            return;
        };
        self.carry.extend_from_slice(chunk);
        for m in automaton.find_overlapping_iter(&self.carry) {
            let what = names[m.pattern().as_usize()];
            let mut leaks = findings.leaks.lock().unwrap();
            if !leaks.contains(&what) {
                leaks.push(what);
            }
        }
        let keep = longest.saturating_sub(1).min(self.carry.len());
        self.carry.drain(..self.carry.len() - keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_split_across_chunks_is_found() {
        super::super::hygiene::register("tap test secret", "tap-secret-0123456789abcdef");
        let findings = Findings::default();
        let mut s = Scanner::default();
        s.scan(b"HTTP/1.1 200 OK\r\n\r\n...tap-secret-0123", &findings);
        assert!(findings.leaks.lock().unwrap().is_empty());
        s.scan(b"456789abcdef...", &findings);
        assert_eq!(*findings.leaks.lock().unwrap(), vec!["tap test secret"]);
        let mut s = Scanner::default();
        let findings = Findings::default();
        s.scan(b"\x16\x03\x01 tap-secret-0123456789abcdef", &findings);
        assert!(findings.leaks.lock().unwrap().is_empty(), "TLS is not read");
    }
}
