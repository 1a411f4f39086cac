//! Debian's real `redis-server` (installed by `scripts/setup.sh`) on 127.0.0.1: no
//! persistence, a password, stopped by PID when dropped. [`RedisServer::kill`] and
//! [`RedisServer::restart`] play an outage of the store the replicas share.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    pub password: String,
    dir: PathBuf,
    child: Option<Child>,
}

/// Where Debian installs it; `None` when it is not installed.
pub fn binary() -> Option<PathBuf> {
    ["/usr/bin/redis-server", "/usr/sbin/redis-server"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl RedisServer {
    /// Starts it on a free port; waits until it answers.
    pub fn start(dir: &Path) -> Self {
        let mut s = Self {
            port: crate::free_port(),
            password: format!("store-{}", uuid::Uuid::new_v4().simple()),
            dir: dir.to_owned(),
            child: None,
        };
        crate::hygiene::register("store password", &s.password);
        s.restart();
        s
    }

    /// `redis://127.0.0.1:<port>` (the password goes in a file).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port.
    pub fn restart(&mut self) {
        let bin = binary().expect("redis-server is installed (scripts/setup.sh)");
        let child = Command::new(bin)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--requirepass", &self.password])
            .args(["--dir", &self.dir.display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it (SIGKILL): an outage, nothing saved.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
