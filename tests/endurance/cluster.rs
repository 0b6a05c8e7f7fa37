//! A PostgreSQL cluster of the test's own: `initdb` into a temporary folder,
//! started on a free port, stopped and removed when the value is dropped.
//!
//! Restarting the shared server on 5432 would break every other test
//! running on the machine; a cluster of one's own can be restarted, even
//! killed, without anyone else noticing. PostgreSQL refuses to run as root,
//! so as root the cluster belongs to the `postgres` user (`runuser`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Where the PostgreSQL programs are: `PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout), else `pg_config`'s.
fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        return Some(PathBuf::from(dir));
    }
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|versions| {
            versions
                .filter_map(Result::ok)
                .filter_map(|v| v.file_name().to_str()?.parse::<u32>().ok())
                .max()
                .map(|v| PathBuf::from(format!("/usr/lib/postgresql/{v}/bin")))
        });
    debian.or_else(|| {
        let out = Command::new("pg_config").arg("--bindir").output().ok()?;
        let dir = String::from_utf8(out.stdout).ok()?;
        Some(PathBuf::from(dir.trim()))
    })
}

/// Whom the cluster's processes run as: `postgres` when this process is
/// root (PostgreSQL will not run as root), else ourselves.
enum RunAs {
    Myself,
    Postgres { uid: u32, gid: u32 },
}

impl RunAs {
    fn detect() -> Result<RunAs, String> {
        let id = |args: &[&str]| -> Result<u32, String> {
            let out = Command::new("id").args(args).output();
            let out = out.map_err(|e| format!("id: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout);
            text.trim()
                .parse()
                .map_err(|_| format!("id {args:?}: {}", String::from_utf8_lossy(&out.stderr)))
        };
        if id(&["-u"])? != 0 {
            return Ok(RunAs::Myself);
        }
        Ok(RunAs::Postgres {
            uid: id(&["-u", "postgres"])?,
            gid: id(&["-g", "postgres"])?,
        })
    }

    fn command(&self, program: &Path) -> Command {
        match self {
            RunAs::Myself => Command::new(program),
            RunAs::Postgres { .. } => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", "postgres", "--"]).arg(program);
                cmd
            }
        }
    }

    fn give(&self, dir: &Path) -> std::io::Result<()> {
        match self {
            RunAs::Myself => Ok(()),
            RunAs::Postgres { uid, gid } => std::os::unix::fs::chown(dir, Some(*uid), Some(*gid)),
        }
    }
}

/// What a cluster trades for speed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// No fsync: for tests that restart PostgreSQL cleanly and kill
    /// memberdesk, never the machine.
    Off,
    /// PostgreSQL's defaults, for figures that should mean what they would
    /// on a real server.
    Defaults,
}

/// A running cluster of our own; stopped (immediately) and deleted on drop.
pub struct Cluster {
    bin: PathBuf,
    durability: Durability,
    run_as: RunAs,
    /// The temporary folder: `data/` (the cluster), `server.log`, the socket.
    root: PathBuf,
    pub port: u16,
}

impl Cluster {
    /// Creates and starts a cluster, or says why it cannot (no PostgreSQL
    /// programs, no `postgres` user as root, `initdb` failing): the caller
    /// skips with that line.
    pub fn start(durability: Durability) -> Result<Cluster, String> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let bin = bin_dir().ok_or("no PostgreSQL programs found (set PG_BINDIR)")?;
        if !bin.join("initdb").exists() {
            return Err(format!("no initdb in {}", bin.display()));
        }
        let run_as = RunAs::detect()?;
        let root = std::env::temp_dir().join(format!(
            "memberdesk-cluster-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
        let cluster = Cluster {
            bin,
            durability,
            run_as,
            root,
            port: free_port(),
        };
        cluster
            .run_as
            .give(&cluster.root)
            .map_err(|e| e.to_string())?;
        let data = cluster.data();
        let initdb = cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        if !initdb.status.success() {
            return Err(format!("initdb failed: {}", text(&initdb)));
        }
        cluster.pg_ctl(&["start", "-o", &cluster.server_options()])?;
        Ok(cluster)
    }

    fn data(&self) -> String {
        self.root.join("data").display().to_string()
    }

    /// Its own port and socket folder, and its durability.
    fn server_options(&self) -> String {
        let durability = match self.durability {
            Durability::Off => "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            Durability::Defaults => "",
        };
        format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c max_connections=100 -c shared_buffers=128MB {durability}",
            self.port,
            self.root.display()
        )
    }

    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// `pg_ctl restart -m fast`: every session is ended, the server shuts
    /// down cleanly and comes back on the same port.
    pub fn restart_fast(&self) {
        let options = self.server_options();
        self.pg_ctl(&["restart", "-m", "fast", "-o", &options])
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let data = self.data();
        let log = self.root.join("server.log").display().to_string();
        let mut all = vec!["-D", &data, "-l", &log, "-w", "-t", "60"];
        all.extend_from_slice(args);
        let out = self.run("pg_ctl", &all)?;
        match out.status.success() {
            true => Ok(()),
            false => Err(format!(
                "pg_ctl {args:?}: {}\n{}",
                text(&out),
                std::fs::read_to_string(&log).unwrap_or_default()
            )),
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<Output, String> {
        let mut cmd = self.run_as.command(&self.bin.join(program));
        // runuser keeps the working folder, which `postgres` may not enter.
        cmd.args(args).current_dir(&self.root);
        cmd.output().map_err(|e| format!("{program}: {e}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate"]);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
