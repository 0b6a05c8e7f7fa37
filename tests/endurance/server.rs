//! The memberdesk binary as an operator runs it (`memberdesk serve`), and a
//! client that sorts every answer into done, refused with a contract code,
//! or not answered at all.
//!
//! Shared by the endurance tests and the soak bench (`benches/soak.rs`
//! includes this file): both watch a real process from outside, kill it,
//! read its memory, and must tell a contract error from anything else.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Every `extensions.code` the contract allows (CONTRACT.md, "Errors").
pub const CONTRACT_CODES: [&str; 13] = [
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "INVALID_INPUT",
    "INVALID_CREDENTIALS",
    "ACCOUNT_INACTIVE",
    "SELF_ACTION",
    "LAST_SUPERUSER",
    "DELETE_PROTECTED",
    "ANONYMIZED",
    "PLAN_CHANGED",
    "RATE_LIMITED",
    "INTERNAL",
];

/// A `memberdesk serve` process on its own port; killed if still running
/// when dropped.
pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    log_path: PathBuf,
}

impl ServerProcess {
    /// Starts `serve` on `database_url` (which it creates and migrates when
    /// needed) with `env` added, and waits (at most 60 s) until `/readyz`
    /// answers 200.
    pub async fn start(database_url: &str, env: &[(&str, &str)]) -> ServerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let log_path = std::env::temp_dir().join(format!(
            "memberdesk-serve-{}-{port}.log",
            std::process::id()
        ));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_memberdesk"))
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .env("DATABASE_URL", database_url)
            .env("MEMBERDESK_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start memberdesk serve");
        let server = ServerProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log_path,
        };
        server.wait_ready(Duration::from_secs(60)).await;
        server
    }

    async fn wait_ready(&self, limit: Duration) {
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let ready = http.get(format!("{}/readyz", self.base)).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "memberdesk did not become ready: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The GraphQL endpoint.
    pub fn graphql(&self) -> String {
        format!("{}/graphql", self.base)
    }

    /// Everything it printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Its resident memory now, in KiB (`VmRSS`), if it is still running.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// SIGKILL: no shutdown, no chance to finish or roll back anything.
    pub fn kill_hard(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait: the way an operator stops it.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// What became of one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// No error: the `data`.
    Done(Value),
    /// A GraphQL error; its first `extensions.code` (empty when it has none).
    Refused(String),
    /// No GraphQL answer: the connection failed, or the body was not one.
    Unanswered(String),
}

impl Outcome {
    /// The code of a refusal outside the contract, or of an unanswered
    /// request; `None` for anything the contract allows.
    pub fn breach(&self) -> Option<String> {
        match self {
            Outcome::Done(_) => None,
            Outcome::Refused(code) if CONTRACT_CODES.contains(&code.as_str()) => None,
            Outcome::Refused(code) => Some(format!("code {code:?}")),
            Outcome::Unanswered(why) => Some(format!("no answer: {why}")),
        }
    }

    /// The label it is counted under: `ok`, the code, or `unanswered`.
    pub fn label(&self) -> String {
        match self {
            Outcome::Done(_) => "ok".into(),
            Outcome::Refused(code) => code.clone(),
            Outcome::Unanswered(_) => "unanswered".into(),
        }
    }
}

/// A client of one server's GraphQL endpoint.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    graphql: String,
}

impl Api {
    pub fn new(graphql: String) -> Api {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        Api { http, graphql }
    }

    /// Sends `query` with `variables` as `token`'s holder.
    pub async fn send(&self, token: Option<&str>, query: &str, variables: Value) -> Outcome {
        let mut request = self
            .http
            .post(&self.graphql)
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let body = match request.send().await {
            Ok(response) => response.json::<Value>().await,
            Err(e) => return Outcome::Unanswered(e.to_string()),
        };
        match body {
            Ok(body) if body.get("errors").is_none() => Outcome::Done(body["data"].clone()),
            Ok(body) => {
                let code = body["errors"][0]["extensions"]["code"].as_str();
                Outcome::Refused(code.unwrap_or_default().to_owned())
            }
            Err(e) => Outcome::Unanswered(e.to_string()),
        }
    }

    /// Sends what must succeed; its `data`.
    pub async fn ok(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        match self.send(token, query, variables).await {
            Outcome::Done(data) => data,
            other => panic!("{query}: {other:?}"),
        }
    }

    /// Logs `username` in; the session token.
    pub async fn login(&self, username: &str, password: &str) -> Result<String, Outcome> {
        let login =
            "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }";
        let vars = json!({ "u": username, "p": password });
        match self.send(None, login, vars).await {
            Outcome::Done(data) => Ok(data["login"]["token"].as_str().unwrap().to_owned()),
            other => Err(other),
        }
    }
}
