-- Sessions also end after an idle period: when a request last used the
-- session, written at most once a minute (store/sessions.rs). Existing
-- sessions count as seen now.
ALTER TABLE sessions ADD COLUMN last_seen_at TIMESTAMPTZ NOT NULL DEFAULT now();

-- Failed logins are also counted per (username, client address), keyed
-- '<address> <username key>'.
ALTER TABLE login_failures DROP CONSTRAINT login_failures_scope_check;
ALTER TABLE login_failures ADD CONSTRAINT login_failures_scope_check
    CHECK (scope IN ('username', 'address', 'username_address'));

-- Data upgrades that only Rust can compute, run once after the migrations
-- in the same transaction (src/db/username_keys.rs).
CREATE TABLE data_upgrades (
    name    TEXT PRIMARY KEY,
    done_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
