//! The real `aurora-gateway` binary, for restart and signal tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::DEADLINE;

/// A binary of a workspace crate, next to the test binary's profile dir
/// (`cargo build --workspace --bins` builds them; `./run.sh test` does).
pub fn sibling_binary(name: &str) -> PathBuf {
    // target/<profile>/deps/<test>-… → target/<profile>/<name>; AURORA_TEST_BIN_DIR picks
    // other builds (release binaries for the figures a test prints).
    let exe = std::env::current_exe().expect("test binary path");
    let dir = match std::env::var_os("AURORA_TEST_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => exe.parent().and_then(|d| d.parent()).expect("target dir").to_path_buf(),
    };
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --workspace --bins` first", path.display());
    path
}

/// The real `aurora-gateway` binary, for restart and signal tests.
pub struct Binary {
    pub child: tokio::process::Child,
    pub addr: SocketAddr,
}

impl Binary {
    pub async fn start(data_dir: &Path, extra_env: &[(&str, &str)]) -> Binary {
        Self::start_limited(data_dir, extra_env, None).await
    }

    /// Like [`Binary::start`], with the open-file limit set to `files`.
    pub async fn start_limited(data_dir: &Path, extra_env: &[(&str, &str)], files: Option<u64>) -> Binary {
        let mut cmd = tokio::process::Command::new(sibling_binary("aurora-gateway"));
        cmd.env("AURORA_LISTEN", "127.0.0.1:0")
            .env("AURORA_REGISTER_RATE", "100000/1s")
            .env("AURORA_LOGIN_RATE", "100000/1s")
            .env("AURORA_DATA_DIR", data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        if let Some(files) = files {
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            #[allow(unsafe_code)]
            unsafe {
                cmd.pre_exec(move || {
                    let limit = libc::rlimit { rlim_cur: files, rlim_max: files };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn gateway binary");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("gateway prints its address")
            .expect("read stdout")
            .expect("a line");
        let addr = line.rsplit("http://").next().expect("address").parse().expect("socket address");
        Binary { child, addr }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends SIGTERM and waits for the exit.
    pub async fn terminate_later(self) -> std::process::ExitStatus {
        self.terminate().await
    }

    /// Sends SIGTERM and waits for the exit.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("pid").to_string();
        let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(status.success());
        tokio::time::timeout(DEADLINE * 2, self.child.wait()).await.expect("exits in time").expect("wait")
    }
}
