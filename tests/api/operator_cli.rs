//! The tools an operator expects next to the server, as they run them:
//! `changepassword`, `users`, `deactivate-dormant`'s report, `seed-demo
//! --help`, completions and the manual page (checked against the binary, as
//! schema.graphql is), the systemd unit and the LICENSE.

use std::process::{Command, Output};

use crate::cli::memberdesk;
use crate::helpers::{PASSWORD, TestApp, TestDb, snapshot, user_id};
use serde_json::json;

const NEW_PASSWORD: &str = "orbit tulip canyon whisper";

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A refusal: exit status 1 and exactly this one line on stderr.
fn assert_refused_with(out: &Output, line: &str) {
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(out), stderr(out));
    assert_eq!(stderr(out), format!("{line}\n"));
}

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changepassword_sets_the_password_ends_sessions_and_is_audited() {
    let app = TestApp::spawn().await;
    let rani = app.user("rani", true, false).await;
    let token = app.login("rani", PASSWORD).await;
    let _second = app.login("rani", PASSWORD).await;

    // Width and case variants name the account, as at login.
    let args = ["changepassword", "ＲＡＮＩ", "--password-stdin"];
    let out = memberdesk(&app.db.url, &args, Some(&format!("{NEW_PASSWORD}\n")));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "password of 'rani' changed; 2 session(s) revoked\n"
    );
    assert!(!stderr(&out).contains(NEW_PASSWORD));

    assert_eq!(
        app.me(&token).await.unwrap_err(),
        "UNAUTHENTICATED",
        "the old session ended"
    );
    app.login("rani", NEW_PASSWORD).await;
    let old = "mutation($p: String!) { login(username: \"rani\", password: $p) { token } }";
    let code = app.err_code(None, old, json!({ "p": PASSWORD })).await;
    assert_eq!(code, "INVALID_CREDENTIALS");

    let (actor, actor_id, details): (String, Option<i64>, serde_json::Value) = sqlx::query_as(
        "SELECT actor_username, actor_id, details FROM audit_entries
          WHERE action = 'PASSWORD_CHANGED' AND target_user_id = $1",
    )
    .bind(rani.id)
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!((actor.as_str(), actor_id), ("system", None));
    assert_eq!(details, json!({ "sessionsRevoked": 2 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changepassword_refuses_unknown_anonymized_weak_and_missing_passwords() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    let carol = app.user("carol", false, false).await;
    app.user("rani", false, false).await;
    app.anonymize(&root, &user_id(&carol))
        .reason("erasure request")
        .ok()
        .await;
    let erased: String = sqlx::query_scalar("SELECT username FROM users WHERE id = $1")
        .bind(carol.id)
        .fetch_one(app.pool())
        .await
        .unwrap();
    let before = snapshot(app.pool()).await;
    let stdin = Some("orbit tulip canyon whisper\n");
    let run = |user: &str, stdin: Option<&str>| {
        let mut args = vec!["changepassword", user];
        if stdin.is_some() {
            args.push("--password-stdin");
        }
        memberdesk(&app.db.url, &args, stdin)
    };

    assert_refused_with(
        &run("ghost", stdin),
        "error: no user named 'ghost' (`memberdesk users` lists them)",
    );
    assert_refused_with(
        &run(&erased, stdin),
        &format!("error: '{erased}' is anonymized (erased): its password cannot be set"),
    );
    let weak = run("rani", Some("Summer2026!!\n"));
    assert_eq!(weak.status.code(), Some(1));
    assert!(
        stderr(&weak).starts_with("error: password: "),
        "{}",
        stderr(&weak)
    );
    assert!(!stderr(&weak).contains("Summer2026"), "{}", stderr(&weak));
    assert_refused_with(
        &run("rani", Some("short\n")),
        "error: password: password must be at least 12 characters; a few unrelated words make a good one",
    );
    // No flag and no terminal: nothing to prompt on.
    assert_refused_with(
        &run("rani", None),
        "error: no password given: use --password-stdin or run on a terminal",
    );
    assert_eq!(
        snapshot(app.pool()).await,
        before,
        "refusals change nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_lists_username_status_flags_and_last_login_as_a_table() {
    let app = TestApp::spawn().await;
    let (_, root) = app.superuser("root").await;
    app.user("rani-editor", true, false).await;
    let alice = app.user("alice", false, false).await;
    app.user("bob", false, false).await;
    app.deactivate(&root, &user_id(&alice))
        .input(json!({}))
        .ok()
        .await;
    sqlx::query(
        "UPDATE users SET last_login = CASE username
            WHEN 'root' THEN timestamptz '2026-11-30 08:05:00Z'
            WHEN 'alice' THEN timestamptz '2025-01-02 17:45:59Z' END",
    )
    .execute(app.pool())
    .await
    .unwrap();
    let list = |flags: &[&str]| {
        let mut args = vec!["users"];
        args.extend_from_slice(flags);
        let out = memberdesk(&app.db.url, &args, None);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };

    assert_eq!(
        list(&[]),
        "USERNAME     STATUS    STAFF  SUPERUSER  LAST LOGIN\n\
         alice        inactive  no     no         2025-01-02 17:45 UTC\n\
         bob          active    no     no         never\n\
         rani-editor  active    yes    no         never\n\
         root         active    yes    yes        2026-11-30 08:05 UTC\n"
    );
    assert_eq!(
        list(&["--staff"]),
        "USERNAME     STATUS  STAFF  SUPERUSER  LAST LOGIN\n\
         rani-editor  active  yes    no         never\n\
         root         active  yes    yes        2026-11-30 08:05 UTC\n"
    );
    assert_eq!(
        list(&["--inactive"]),
        "USERNAME  STATUS    STAFF  SUPERUSER  LAST LOGIN\n\
         alice     inactive  no     no         2025-01-02 17:45 UTC\n"
    );
    assert_eq!(
        list(&["--inactive", "--staff"]),
        "USERNAME  STATUS  STAFF  SUPERUSER  LAST LOGIN\n(no users)\n"
    );
}

/// The report names people as the operator knows them, leaves staff alone
/// when asked, bounds `--days` in words, and says so when there is nothing
/// to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivate_dormant_names_skipped_users_and_can_spare_staff() {
    let app = TestApp::spawn().await;
    let url = &app.db.url;
    app.user("root", true, true).await;
    app.user("rani-editor", true, false).await;
    app.user("alice", false, false).await;
    let run = |args: &[&str]| memberdesk(url, args, None);

    let dry = run(&["deactivate-dormant", "--days", "365", "--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert_eq!(
        stdout(&dry),
        "dry run: no account has been dormant for more than 365 days; nothing would be deactivated\n"
    );

    sqlx::query("UPDATE users SET last_login = now() - interval '400 days'")
        .execute(app.pool())
        .await
        .unwrap();
    let out = run(&[
        "deactivate-dormant",
        "--days",
        "365",
        "--exclude-staff",
        "--dry-run",
    ]);
    assert_eq!(
        stdout(&out),
        "dry run: 1 dormant account(s) would be deactivated: alice\n"
    );
    let out = run(&["deactivate-dormant", "--days", "365", "--exclude-staff"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).ends_with(
            "deactivated 1 dormant account(s) (inactive for more than 365 days); 0 skipped\n"
        ),
        "{}",
        stdout(&out)
    );
    let active: Vec<String> =
        sqlx::query_scalar("SELECT username FROM users WHERE is_active ORDER BY username")
            .fetch_all(app.pool())
            .await
            .unwrap();
    assert_eq!(active, ["rani-editor", "root"], "staff left alone");

    // The only superuser is dormant too: kept, and named, not numbered.
    let out = run(&["deactivate-dormant", "--days", "365"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout(&out);
    assert!(
        report.contains("\nskipped root: LAST_SUPERUSER\n"),
        "{report}"
    );
    assert!(
        report.ends_with(
            "deactivated 1 dormant account(s) (inactive for more than 365 days); 1 skipped\n"
        ),
        "{report}"
    );

    for days in ["0", "36501", "1000000", "soon"] {
        let out = run(&["deactivate-dormant", "--days", days]);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).starts_with(&format!(
                "error: invalid value '{days}' for '--days <DAYS>': must be a whole number of days from 1 to 36500 (100 years)\n"
            )),
            "{}",
            stderr(&out)
        );
    }
    let out = run(&["deactivate-dormant", "--days", "36500"]);
    assert!(
        out.status.success(),
        "the largest bound runs: {}",
        stderr(&out)
    );
}

#[test]
fn seed_demo_help_says_what_it_creates() {
    let out = memberdesk("postgres://unused", &["seed-demo", "--help"], None);
    assert!(out.status.success());
    let help = stdout(&out);
    let lines: Vec<&str> = help.lines().collect();
    assert_eq!(
        lines[0],
        "Load demo data for a local playground (idempotent: a second run adds only what is missing)."
    );
    assert_eq!(
        lines[2],
        "It creates the superuser `admin`, `alice` (in Editors, with a direct permission and a live \
session), `bob` and `carol` (who voted), `dave` (dormant since 2024), `rani-editor` (staff, Editors) \
and `mia-manager` (staff, User managers), two questions and their votes, all through the audited \
domain layer with `system` as the actor. Every demo account's password is the published \
`memberdesk-demo`: log in as `admin` / `memberdesk-demo`. It refuses a database holding users that \
are not demo users (--force-demo loads it anyway)."
    );
}

/// What `seed-demo --help` promises is what the seed makes: held to it
/// whenever the demo data changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_demo_creates_what_its_help_describes() {
    let db = TestDb::new().await;
    let out = memberdesk(&db.url, &["seed-demo"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let count = |sql: &'static str| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let admin =
        "SELECT count(*) FROM users WHERE username = 'admin' AND is_superuser AND is_active";
    assert_eq!(count(admin).await, 1, "the superuser admin");
    let staff = "SELECT count(*) FROM users WHERE is_staff AND NOT is_superuser";
    assert!(count(staff).await >= 1, "a staff member");
    let members = "SELECT count(*) FROM users WHERE NOT is_staff AND NOT is_superuser";
    assert!(count(members).await >= 2, "ordinary members");
    let groups = "SELECT count(DISTINCT group_id) FROM group_permissions";
    assert!(count(groups).await >= 1, "groups holding permissions");
    assert!(count("SELECT count(*) FROM questions").await >= 1);
    assert!(count("SELECT count(*) FROM votes").await >= 1);
    let system = "SELECT count(*) FROM audit_entries WHERE action = 'USER_CREATED' AND actor_username <> 'system'";
    assert_eq!(count(system).await, 0, "audited with system as the actor");
    let hashes: Vec<Option<String>> = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    for hash in hashes {
        let demo = secrecy::SecretString::from(memberdesk::seed::DEMO_PASSWORD);
        let ok = memberdesk::auth::password::verify_password(demo, hash)
            .await
            .unwrap();
        assert!(ok, "every demo account's password is the published one");
    }
    assert_eq!(memberdesk::seed::DEMO_PASSWORD, "memberdesk-demo");
}

#[test]
fn man_page_matches_the_binary() {
    let out = memberdesk("postgres://unused", &["man"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(
        page == repo_file("contrib/memberdesk.1"),
        "contrib/memberdesk.1 is stale: run `cargo run -q -- man > contrib/memberdesk.1`"
    );
    for command in [
        "serve",
        "migrate",
        "createsuperuser",
        "deactivate-dormant",
        "changepassword",
        "users",
        "completions",
        "seed-demo",
    ] {
        assert!(
            page.contains(&format!(".SS memberdesk {command}\n")),
            "{command}"
        );
    }
    assert!(page.contains("exclude\\-staff"), "options are on the page");
}

#[test]
fn completions_know_every_subcommand_and_option() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = memberdesk("postgres://unused", &["completions", shell], None);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        for word in [
            "serve",
            "deactivate-dormant",
            "changepassword",
            "users",
            "exclude-staff",
            "password-stdin",
            "completions",
        ] {
            assert!(script.contains(word), "{shell} completes {word}");
        }
    }
    let out = memberdesk("postgres://unused", &["completions", "tcsh"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: invalid value 'tcsh' for '<SHELL>'"),
        "{}",
        stderr(&out)
    );
}

/// The unit runs memberdesk sandboxed and restarts it on failure; when
/// `systemd-analyze` is here, systemd itself parses the unit and finds
/// nothing to warn about.
#[test]
fn systemd_unit_sandboxes_the_service_and_systemd_accepts_it() {
    let unit = repo_file("contrib/memberdesk.service");
    let directives: Vec<&str> = unit.lines().map(str::trim).collect();
    for directive in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "EnvironmentFile=/etc/memberdesk/memberdesk.env",
        "Restart=on-failure",
        "ExecStart=/usr/local/bin/memberdesk serve",
        "WantedBy=multi-user.target",
    ] {
        assert!(directives.contains(&directive), "{directive}");
    }
    let example = repo_file("contrib/memberdesk.env.example");
    assert!(example.lines().any(|l| l.starts_with("DATABASE_URL=")));

    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("SKIPPED: systemd-analyze is not installed; only the directives were checked");
        return;
    };
    assert!(version.status.success());
    // The unit as installed, except that the binary is this build (verify
    // checks that ExecStart is executable).
    let dir = std::env::temp_dir().join(format!("memberdesk-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("memberdesk.service");
    let built = unit.replace(
        "/usr/local/bin/memberdesk",
        env!("CARGO_BIN_EXE_memberdesk"),
    );
    std::fs::write(&path, built).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "systemd warns about nothing");
}

#[test]
fn the_license_file_is_the_mit_license_cargo_toml_names() {
    let manifest = repo_file("Cargo.toml");
    assert!(manifest.lines().any(|l| l == "license = \"MIT\""));
    let license = repo_file("LICENSE");
    assert_eq!(license.lines().next(), Some("MIT License"));
    assert!(
        license.contains(
            "Permission is hereby granted, free of charge, to any person obtaining a copy"
        )
    );
    assert!(license.contains("THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND"));
}
