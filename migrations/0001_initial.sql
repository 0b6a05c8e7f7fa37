-- memberdesk's initial schema.
--
-- Two rules shape every table that mentions a user:
--   * no foreign key to users may CASCADE silently: each one is listed in the
--     deletion registry (src/domain/deletion.rs), which decides per policy what
--     happens to the referencing rows, and a test checks the catalog against it;
--   * the audit log must outlive everyone it names, so its user references are
--     nullable and carry a snapshot of the username.

CREATE TABLE users (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username            TEXT NOT NULL,
    -- NFKC + lower-case form of username: 'Admin', 'admin' and 'ＡＤＭＩＮ' share one key.
    username_key        TEXT NOT NULL,
    email               TEXT NOT NULL DEFAULT '',
    first_name          TEXT NOT NULL DEFAULT '',
    last_name           TEXT NOT NULL DEFAULT '',
    -- argon2id PHC string; NULL means the password is unusable (no login possible).
    password_hash       TEXT,
    is_active           BOOLEAN NOT NULL DEFAULT TRUE,
    is_staff            BOOLEAN NOT NULL DEFAULT FALSE,
    is_superuser        BOOLEAN NOT NULL DEFAULT FALSE,
    date_joined         TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_login          TIMESTAMPTZ,
    deactivated_at      TIMESTAMPTZ,
    deactivation_reason TEXT,
    anonymized_at       TIMESTAMPTZ,
    CONSTRAINT users_username_key_unique UNIQUE (username_key),
    CONSTRAINT users_anonymized_is_inactive CHECK (anonymized_at IS NULL OR NOT (is_active OR is_staff OR is_superuser))
);
CREATE INDEX users_date_joined_idx ON users (date_joined, id);
CREATE INDEX users_last_login_idx ON users (last_login, id);
CREATE INDEX users_username_idx ON users (username, id);
CREATE INDEX users_active_superusers_idx ON users (id) WHERE is_active AND is_superuser;
CREATE INDEX users_staff_idx ON users (id) WHERE is_staff;
CREATE INDEX users_deactivated_idx ON users (deactivated_at) WHERE deactivated_at IS NOT NULL;
CREATE INDEX users_anonymized_idx ON users (anonymized_at) WHERE anonymized_at IS NOT NULL;

CREATE TABLE permissions (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_label  TEXT NOT NULL,
    codename   TEXT NOT NULL,
    name       TEXT NOT NULL,
    CONSTRAINT permissions_app_codename_unique UNIQUE (app_label, codename)
);

INSERT INTO permissions (app_label, codename, name) VALUES
    ('auth',  'view_user',      'Can view user'),
    ('auth',  'add_user',       'Can add user'),
    ('auth',  'change_user',    'Can change user'),
    ('auth',  'delete_user',    'Can delete user'),
    ('auth',  'view_group',     'Can view group'),
    ('auth',  'add_group',      'Can add group'),
    ('auth',  'change_group',   'Can change group'),
    ('auth',  'delete_group',   'Can delete group'),
    ('polls', 'view_question',  'Can view question'),
    ('polls', 'add_question',   'Can add question'),
    ('polls', 'change_question','Can change question'),
    ('polls', 'delete_question','Can delete question'),
    ('polls', 'view_vote',      'Can view vote'),
    ('admin', 'view_logentry',  'Can view log entry');

CREATE TABLE groups (
    id   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    CONSTRAINT groups_name_unique UNIQUE (name)
);

CREATE TABLE group_permissions (
    group_id      BIGINT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    permission_id BIGINT NOT NULL REFERENCES permissions (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, permission_id)
);
CREATE INDEX group_permissions_permission_idx ON group_permissions (permission_id);

CREATE TABLE user_groups (
    user_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    group_id BIGINT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, group_id)
);
CREATE INDEX user_groups_group_idx ON user_groups (group_id, user_id);

CREATE TABLE user_permissions (
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    permission_id BIGINT NOT NULL REFERENCES permissions (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, permission_id)
);
CREATE INDEX user_permissions_permission_idx ON user_permissions (permission_id);

CREATE TABLE questions (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    text       TEXT NOT NULL,
    pub_date   TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by BIGINT REFERENCES users (id) ON DELETE RESTRICT
);
CREATE INDEX questions_created_by_idx ON questions (created_by) WHERE created_by IS NOT NULL;
CREATE INDEX questions_pub_date_idx ON questions (pub_date, id);

CREATE TABLE choices (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    question_id BIGINT NOT NULL REFERENCES questions (id) ON DELETE CASCADE,
    text        TEXT NOT NULL,
    position    INT NOT NULL,
    CONSTRAINT choices_question_position_unique UNIQUE (question_id, position)
);

CREATE TABLE votes (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    choice_id   BIGINT NOT NULL REFERENCES choices (id) ON DELETE CASCADE,
    -- Denormalized from the choice so "one vote per user per question" is a plain unique index.
    question_id BIGINT NOT NULL REFERENCES questions (id) ON DELETE CASCADE,
    -- NULL once detached (the user was deleted under SET_NULL).
    user_id     BIGINT REFERENCES users (id) ON DELETE RESTRICT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX votes_one_per_user_per_question ON votes (user_id, question_id) WHERE user_id IS NOT NULL;
CREATE INDEX votes_user_idx ON votes (user_id, id) WHERE user_id IS NOT NULL;
CREATE INDEX votes_choice_idx ON votes (choice_id);
CREATE INDEX votes_question_idx ON votes (question_id);

CREATE TABLE sessions (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- SHA-256 of the bearer token; the token itself is never stored.
    token_hash  BYTEA NOT NULL,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ,
    CONSTRAINT sessions_token_hash_unique UNIQUE (token_hash)
);
CREATE INDEX sessions_user_idx ON sessions (user_id) WHERE revoked_at IS NULL;

-- Failed-login counters, one row per username key or client address, kept in
-- PostgreSQL so the limit holds across every server instance.
CREATE TABLE login_failures (
    scope        TEXT NOT NULL CHECK (scope IN ('username', 'address')),
    key          TEXT NOT NULL,
    failures     INT NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE audit_entries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    action          TEXT NOT NULL,
    actor_id        BIGINT REFERENCES users (id) ON DELETE SET NULL,
    actor_username  TEXT,
    target_user_id  BIGINT REFERENCES users (id) ON DELETE SET NULL,
    target_repr     TEXT NOT NULL,
    reason          TEXT,
    details         JSONB
);
CREATE INDEX audit_entries_at_idx ON audit_entries (at, id);
CREATE INDEX audit_entries_actor_idx ON audit_entries (actor_id, id) WHERE actor_id IS NOT NULL;
CREATE INDEX audit_entries_target_idx ON audit_entries (target_user_id, id) WHERE target_user_id IS NOT NULL;
CREATE INDEX audit_entries_action_idx ON audit_entries (action, id);

-- The audit log is append-only: no row is ever deleted, and an update may only
-- detach a deleted user or replace a snapshot with an anonymized pseudonym.
CREATE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit entries cannot be deleted';
    END IF;
    IF NEW.id <> OLD.id OR NEW.at <> OLD.at OR NEW.action <> OLD.action
       OR NEW.reason IS DISTINCT FROM OLD.reason
       OR (NEW.actor_id IS NOT NULL AND NEW.actor_id IS DISTINCT FROM OLD.actor_id)
       OR (NEW.target_user_id IS NOT NULL AND NEW.target_user_id IS DISTINCT FROM OLD.target_user_id) THEN
        RAISE EXCEPTION 'audit entries are append-only';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_entries_append_only
    BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only();
