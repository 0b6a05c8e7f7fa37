-- Erasure that leaves nothing behind (GDPR Art. 17), see src/domain/erasure.rs.
--
-- 1. Pseudonyms are reserved: only an anonymized row holds a username key
--    starting with 'deleted-user-', so anonymizing user n can never clash
--    with someone who took 'deleted-user-n'.
-- 2. Erasure requests with a grace period: users.erasure_due_at.
-- 3. Typed usernames and client addresses of failed logins are kept only as
--    keyed digests (HMAC-SHA256 under a per-database key).
-- 4. The audit log: the one change an entry may undergo besides losing a
--    deleted user's reference is its redaction on erasure, written by the
--    trigger itself; DELETE and TRUNCATE are refused.

-- 1. Accounts created before names like 'deleted-user-7' were refused keep
-- their name and their login (`login` also tries the key behind a \x01, as
-- for grandfathered look-alikes: src/db/username_keys.rs), but give up the
-- key, which belongs to the anonymized user 7. The rare one whose \x01 key
-- is taken too is parked behind \x02 and its id (it then logs in only after
-- a rename).
UPDATE users u SET username_key = E'\x01' || u.username_key
 WHERE u.anonymized_at IS NULL AND starts_with(u.username_key, 'deleted-user-')
   AND NOT EXISTS (SELECT 1 FROM users o WHERE o.username_key = E'\x01' || u.username_key);
UPDATE users SET username_key = E'\x02' || id
 WHERE anonymized_at IS NULL AND starts_with(username_key, 'deleted-user-');
ALTER TABLE users ADD CONSTRAINT users_pseudonym_keys_are_anonymized
    CHECK (anonymized_at IS NOT NULL OR NOT starts_with(username_key, 'deleted-user-'));

-- 2. When a requested erasure falls due (requestErasure); NULL when none is
-- pending. run-erasures claims due rows with FOR UPDATE SKIP LOCKED.
ALTER TABLE users ADD COLUMN erasure_due_at TIMESTAMPTZ;
ALTER TABLE users ADD CONSTRAINT users_erasure_pending_until_anonymized
    CHECK (erasure_due_at IS NULL OR anonymized_at IS NULL);
CREATE INDEX users_erasure_due_idx ON users (erasure_due_at, id) WHERE erasure_due_at IS NOT NULL;

-- 3. The key of the digests: 64 bytes from gen_random_uuid (PostgreSQL's
-- strong random source; 488 random bits), stored as HMAC's two padded keys
-- so that name_digest is plain SQL: HMAC-SHA256(k, m) =
-- sha256((k xor opad) || sha256((k xor ipad) || m)).
CREATE TABLE name_digest_key (
    only_row  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    inner_pad BYTEA NOT NULL CHECK (length(inner_pad) = 64),
    outer_pad BYTEA NOT NULL CHECK (length(outer_pad) = 64)
);
DO $$
DECLARE
    k bytea := decode(replace(gen_random_uuid()::text || gen_random_uuid()::text
                           || gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex');
    ipad bytea := k;
    opad bytea := k;
BEGIN
    FOR i IN 0..63 LOOP
        ipad := set_byte(ipad, i, get_byte(k, i) # 54);  -- 0x36
        opad := set_byte(opad, i, get_byte(k, i) # 92);  -- 0x5c
    END LOOP;
    INSERT INTO name_digest_key (inner_pad, outer_pad) VALUES (ipad, opad);
END $$;

-- HMAC-SHA256 of a name (a username key, a client address) under this
-- database's key, as hex: equal names give equal digests, so attempts can be
-- counted and correlated, but no name can be read back from one.
CREATE FUNCTION name_digest(name text) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT encode(sha256(k.outer_pad || sha256(k.inner_pad || convert_to(name, 'UTF8'))), 'hex')
      FROM name_digest_key k
$$;

-- The counters held names in clear; they last one window, so starting them
-- afresh loses nothing worth a clear-text copy.
DELETE FROM login_failures;

-- 4. The audit log.
ALTER TABLE audit_entries ADD COLUMN redacted_at TIMESTAMPTZ;

-- What an erasure leaves of an entry's details: no client address, no
-- copied name or email, and the mark that something was taken out.
CREATE FUNCTION audit_redacted_details(d jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(d) = 'object'
                THEN (d - ARRAY['clientAddress', 'username', 'email', 'firstName', 'lastName'])
                     || '{"redacted": true}'::jsonb
                ELSE '{"redacted": true}'::jsonb END
$$;

-- The redaction of entry e for the erased user `erased` (who is its actor,
-- its target, or both): the snapshots naming them become their pseudonym,
-- the reason goes (free text about them), the details lose what identifies
-- anyone; id, time, action and the kept ids stay. Applying it again, or for
-- the entry's other party later, is the same redaction.
CREATE FUNCTION audit_entry_redacted(e audit_entries, erased bigint) RETURNS audit_entries
LANGUAGE plpgsql STABLE AS $$
DECLARE
    pseudonym text := 'deleted-user-' || erased;
BEGIN
    IF e.actor_ref = erased THEN
        e.actor_username := pseudonym;
        e.actor_username_fold := pseudonym;
    END IF;
    IF e.target_user_ref = erased THEN
        e.target_repr := pseudonym;
        e.target_repr_fold := pseudonym;
    END IF;
    e.reason := NULL;
    e.details := audit_redacted_details(e.details);
    e.redacted_at := coalesce(e.redacted_at, now());
    RETURN e;
END $$;

-- The user whose entries this transaction redacts: set only by an erasure,
-- transaction-locally (set_config('memberdesk.erasure', id, true)).
CREATE FUNCTION audit_erasure_target() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('memberdesk.erasure', true), '')::bigint
$$;

-- Entries are written once. An update may only
--   * detach a deleted user (actor_id / target_user_id to NULL; the kept
--     ids actor_ref / target_user_ref stay),
--   * fill a fold an older version left empty (store::audit::fill_folds),
--   * and, in a transaction erasing user n, redact the entries naming n:
--     whatever such an UPDATE sets, the trigger writes the redaction instead.
-- Everything else, including columns added later, must stay as it was.
CREATE OR REPLACE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    erased bigint;
    redacting boolean;
    allowed audit_entries;
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit entries cannot be deleted';
    END IF;
    erased := audit_erasure_target();
    redacting := erased IS NOT NULL AND (OLD.actor_ref = erased OR OLD.target_user_ref = erased);
    IF redacting THEN
        allowed := audit_entry_redacted(OLD, erased);
    ELSE
        allowed := OLD;
        IF OLD.actor_username_fold IS NULL THEN
            allowed.actor_username_fold := NEW.actor_username_fold;
        END IF;
        IF OLD.target_repr_fold IS NULL THEN
            allowed.target_repr_fold := NEW.target_repr_fold;
        END IF;
    END IF;
    IF NEW.actor_id IS NULL THEN
        allowed.actor_id := NULL;
    END IF;
    IF NEW.target_user_id IS NULL THEN
        allowed.target_user_id := NULL;
    END IF;
    IF redacting THEN
        -- Whatever the statement asked for, the redaction is what is written.
        RETURN allowed;
    END IF;
    IF NEW IS DISTINCT FROM allowed THEN
        RAISE EXCEPTION 'audit entries are append-only (entry %)', OLD.id;
    END IF;
    RETURN NEW;
END $$;

-- A redaction only for someone already erased: anonymized earlier in the
-- transaction, or whose row is gone (deleteUser with erase). Checked once per
-- statement.
CREATE FUNCTION audit_entries_redaction_of_the_erased() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    erased bigint := audit_erasure_target();
BEGIN
    IF erased IS NOT NULL AND EXISTS (SELECT 1 FROM users WHERE id = erased AND anonymized_at IS NULL) THEN
        RAISE EXCEPTION 'audit entries naming user % are redacted only once that user is erased', erased;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER audit_entries_redaction_of_the_erased
    BEFORE UPDATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_redaction_of_the_erased();

CREATE FUNCTION audit_entries_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit entries cannot be deleted (TRUNCATE refused)';
END $$;
CREATE TRIGGER audit_entries_no_truncate
    BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_no_truncate();

-- An entry is written unredacted: only an erasure redacts.
CREATE OR REPLACE FUNCTION audit_entries_keep_refs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.actor_ref := coalesce(NEW.actor_ref, NEW.actor_id);
    NEW.target_user_ref := coalesce(NEW.target_user_ref, NEW.target_user_id);
    NEW.redacted_at := NULL;
    RETURN NEW;
END $$;

-- Failed logins for names that named nobody kept the name as typed: from
-- now on only the attempt is kept (the client address stays: it is the
-- guesser's). The new trigger would refuse this rewrite, as it refuses any
-- other, so it is switched off for this one statement of the migration.
ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_append_only;
ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_redaction_of_the_erased;
UPDATE audit_entries
   SET target_repr = 'unknown username', target_repr_fold = 'unknown username',
       details = coalesce(details, '{}'::jsonb) || '{"redacted": true}'::jsonb, redacted_at = now()
 WHERE action = 'LOGIN_FAILED' AND target_user_ref IS NULL;
ALTER TABLE audit_entries ENABLE TRIGGER audit_entries_redaction_of_the_erased;
ALTER TABLE audit_entries ENABLE TRIGGER audit_entries_append_only;
