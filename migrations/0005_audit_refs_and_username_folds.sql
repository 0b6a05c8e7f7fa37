-- Finding what happened to someone, also after their deletion.
--
-- actor_ref / target_user_ref: the id of the user an entry names, as a plain
-- value with no foreign key. Deleting the user nulls actor_id /
-- target_user_id (the references), not these, so the old id still finds the
-- entries. Filled on insert from the references (or given, for the entry a
-- deletion writes after the row is gone), never changed afterwards.
--
-- actor_username_fold / target_repr_fold: the snapshots folded as logins
-- fold usernames (NFKC, lower case; `validation::username_fold`), so the
-- audit log can be searched by name regardless of case and width. Rust
-- computes them (on insert, and for older rows once after the migrations:
-- `store::audit::fill_folds`); an anonymization rewrites them with the
-- snapshots.
ALTER TABLE audit_entries
    ADD COLUMN actor_ref BIGINT,
    ADD COLUMN target_user_ref BIGINT,
    ADD COLUMN actor_username_fold TEXT,
    ADD COLUMN target_repr_fold TEXT;

UPDATE audit_entries SET actor_ref = actor_id, target_user_ref = target_user_id;

CREATE INDEX audit_entries_actor_ref_idx ON audit_entries (actor_ref, id) WHERE actor_ref IS NOT NULL;
CREATE INDEX audit_entries_target_ref_idx ON audit_entries (target_user_ref, id) WHERE target_user_ref IS NOT NULL;
CREATE INDEX audit_entries_actor_fold_idx ON audit_entries (actor_username_fold, id) WHERE actor_username_fold IS NOT NULL;
CREATE INDEX audit_entries_target_fold_idx ON audit_entries (target_repr_fold, id);

-- Every insert keeps the ids it names, whatever statement wrote it.
CREATE FUNCTION audit_entries_keep_refs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.actor_ref := coalesce(NEW.actor_ref, NEW.actor_id);
    NEW.target_user_ref := coalesce(NEW.target_user_ref, NEW.target_user_id);
    RETURN NEW;
END $$;
CREATE TRIGGER audit_entries_keep_refs
    BEFORE INSERT ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_entries_keep_refs();

-- As before (0001), and a kept id can never change or go.
CREATE OR REPLACE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit entries cannot be deleted';
    END IF;
    IF NEW.id <> OLD.id OR NEW.at <> OLD.at OR NEW.action <> OLD.action
       OR NEW.reason IS DISTINCT FROM OLD.reason
       OR (NEW.actor_id IS NOT NULL AND NEW.actor_id IS DISTINCT FROM OLD.actor_id)
       OR (NEW.target_user_id IS NOT NULL AND NEW.target_user_id IS DISTINCT FROM OLD.target_user_id)
       OR (OLD.actor_ref IS NOT NULL AND NEW.actor_ref IS DISTINCT FROM OLD.actor_ref)
       OR (OLD.target_user_ref IS NOT NULL AND NEW.target_user_ref IS DISTINCT FROM OLD.target_user_ref) THEN
        RAISE EXCEPTION 'audit entries are append-only';
    END IF;
    RETURN NEW;
END $$;
