//! PostGraphile 5 beside memberdesk, in the same run, over the same database.
//!
//! A ratio between two runs on a shared machine means nothing, so the bench
//! runs PostGraphile itself: `benches/postgraphile/` pins it (package.json and
//! its lock) and configures it (amber preset, schema `public`, no auth); the
//! folder is copied to `target/postgraphile`, installed there with `npm ci`
//! (skipped when the installed lock is the pinned one), and the server is
//! started on a free port with the bench's database. When Node or npm is
//! missing or the install fails, the comparison is skipped with one line.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// The equivalent of memberdesk's read page in PostGraphile's schema: each
/// user's groups through `user_groups`, the permissions of those groups and
/// the direct ones through their join tables (memberdesk's `allPermissions`
/// is their union), and the vote count as the votes connection's total.
pub const PAGE: &str = "query { allUsers(first: 50, orderBy: PRIMARY_KEY_ASC) { nodes { username \
    userGroupsByUserId { nodes { groupByGroupId { name groupPermissionsByGroupId { nodes { permissionByPermissionId { appLabel codename } } } } } } \
    userPermissionsByUserId { nodes { permissionByPermissionId { appLabel codename } } } \
    votesByUserId { totalCount } } } }";

/// The files of `benches/postgraphile` the server needs.
const FILES: [&str; 4] = [
    "package.json",
    "package-lock.json",
    "graphile.config.mjs",
    "with-resolvers.mjs",
];

/// A running PostGraphile server, stopped when dropped.
pub struct PostGraphile {
    server: Child,
    pub url: String,
}

impl Drop for PostGraphile {
    fn drop(&mut self) {
        super::stop(&mut self.server);
    }
}

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/postgraphile")
}

/// `target/postgraphile`, next to the binary the bench runs.
fn install_dir() -> PathBuf {
    let binary = Path::new(env!("CARGO_BIN_EXE_memberdesk"));
    binary.ancestors().nth(2).unwrap().join("postgraphile")
}

fn tool_answers(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Copies the pinned folder to `target/postgraphile` and installs it there;
/// the reason when it cannot.
fn install() -> Result<PathBuf, String> {
    for tool in ["node", "npm"] {
        if !tool_answers(tool) {
            return Err(format!("`{tool}` is not installed"));
        }
    }
    let (from, to) = (source_dir(), install_dir());
    std::fs::create_dir_all(&to).map_err(|e| format!("{}: {e}", to.display()))?;
    for file in FILES {
        std::fs::copy(from.join(file), to.join(file)).map_err(|e| format!("{file}: {e}"))?;
    }
    if installed_from_lock(&to) {
        return Ok(to);
    }
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&to)
        .output()
        .map_err(|e| format!("npm ci: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return Err(format!("`npm ci` failed: {}", last.unwrap_or("no message")));
    }
    Ok(to)
}

/// Whether `node_modules` holds exactly what the lock in `dir` pins (npm
/// writes `node_modules/.package-lock.json` after an install), so a second
/// run needs neither the network nor the minute `npm ci` takes.
fn installed_from_lock(dir: &Path) -> bool {
    let packages = |path: &str| -> Option<Value> {
        let mut lock: Value = serde_json::from_slice(&std::fs::read(dir.join(path)).ok()?).ok()?;
        let packages = lock.get_mut("packages")?.as_object_mut()?;
        packages.remove(""); // the root, absent from the installed copy
        Some(Value::Object(packages.clone()))
    };
    let installed = packages("node_modules/.package-lock.json");
    installed.is_some() && installed == packages("package-lock.json")
}

/// Installs and starts PostGraphile over `database_url`; the reason to skip
/// the comparison when it cannot.
pub async fn start(database_url: &str) -> Result<PostGraphile, String> {
    let dir = install()?;
    let port = super::free_port();
    let log = std::fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
    let server = Command::new("node")
        .args([
            "--import",
            "./with-resolvers.mjs",
            "node_modules/postgraphile/dist/cli-run.js",
        ])
        .current_dir(&dir)
        .env("DATABASE_URL", database_url)
        .env("PORT", port.to_string())
        .env("NODE_ENV", "production")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("node: {e}"))?;
    let postgraphile = PostGraphile {
        server,
        url: format!("http://127.0.0.1:{port}/graphql"),
    };
    let http = reqwest::Client::new();
    for _ in 0..600 {
        let probe = http
            .post(&postgraphile.url)
            .json(&json!({ "query": "{ __typename }" }));
        if probe.send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(postgraphile);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "PostGraphile did not start (see {})",
        dir.join("server.log").display()
    ))
}

/// PostGraphile's page in memberdesk's shape (groups by name, the union of
/// direct and group permissions as sorted `app.codename` keys), to check
/// that both servers answer the same facts.
pub fn as_memberdesk_page(page: &Value) -> Value {
    let key = |p: &Value| {
        let p = &p["permissionByPermissionId"];
        format!(
            "{}.{}",
            p["appLabel"].as_str().unwrap_or(""),
            p["codename"].as_str().unwrap_or("")
        )
    };
    let nodes = |v: &Value| v["nodes"].as_array().cloned().unwrap_or_default();
    let edges: Vec<Value> = nodes(&page["data"]["allUsers"])
        .iter()
        .map(|user| {
            let groups: Vec<Value> = nodes(&user["userGroupsByUserId"])
                .iter()
                .map(|m| m["groupByGroupId"].clone())
                .collect();
            let mut names: Vec<&str> = groups.iter().filter_map(|g| g["name"].as_str()).collect();
            names.sort_unstable();
            let mut keys: Vec<String> = nodes(&user["userPermissionsByUserId"])
                .iter()
                .map(key)
                .collect();
            keys.extend(
                groups
                    .iter()
                    .flat_map(|g| nodes(&g["groupPermissionsByGroupId"]))
                    .map(|p| key(&p)),
            );
            keys.sort_unstable();
            keys.dedup();
            let groups: Vec<Value> = names.iter().map(|n| json!({ "name": n })).collect();
            json!({ "node": {
                "username": user["username"],
                "groups": groups,
                "allPermissions": keys,
                "voteCount": user["votesByUserId"]["totalCount"],
            } })
        })
        .collect();
    json!({ "data": { "users": { "edges": edges } } })
}

/// A page in memberdesk's shape with each user's groups and permissions in
/// byte order: PostgreSQL's collation may order the keys otherwise.
pub fn sorted_facts(page: &Value) -> Value {
    let mut page = page.clone();
    let edges = page["data"]["users"]["edges"].as_array_mut();
    for node in edges.into_iter().flatten().map(|e| &mut e["node"]) {
        if let Some(groups) = node["groups"].as_array_mut() {
            groups.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        }
        if let Some(keys) = node["allPermissions"].as_array_mut() {
            keys.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        }
    }
    page
}
