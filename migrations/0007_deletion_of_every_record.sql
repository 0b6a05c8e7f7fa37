-- Deleting any record, decided in one place.
--
-- Every foreign key is ON DELETE RESTRICT from now on. What a deletion does
-- to the rows that reference a record (protect it, delete them, detach them)
-- is decided per operation and policy by the deletion registry
-- (src/domain/deletion/registry.rs), which a test checks against this
-- catalog: a key the registry forgot makes a deletion fail loudly instead of
-- cascading or nulling rows that no plan counted.
ALTER TABLE group_permissions
    DROP CONSTRAINT group_permissions_group_id_fkey,
    ADD CONSTRAINT group_permissions_group_id_fkey
        FOREIGN KEY (group_id) REFERENCES groups (id) ON DELETE RESTRICT,
    DROP CONSTRAINT group_permissions_permission_id_fkey,
    ADD CONSTRAINT group_permissions_permission_id_fkey
        FOREIGN KEY (permission_id) REFERENCES permissions (id) ON DELETE RESTRICT;

ALTER TABLE user_groups
    DROP CONSTRAINT user_groups_group_id_fkey,
    ADD CONSTRAINT user_groups_group_id_fkey
        FOREIGN KEY (group_id) REFERENCES groups (id) ON DELETE RESTRICT;

ALTER TABLE user_permissions
    DROP CONSTRAINT user_permissions_permission_id_fkey,
    ADD CONSTRAINT user_permissions_permission_id_fkey
        FOREIGN KEY (permission_id) REFERENCES permissions (id) ON DELETE RESTRICT;

ALTER TABLE choices
    DROP CONSTRAINT choices_question_id_fkey,
    ADD CONSTRAINT choices_question_id_fkey
        FOREIGN KEY (question_id) REFERENCES questions (id) ON DELETE RESTRICT;

ALTER TABLE votes
    DROP CONSTRAINT votes_choice_id_fkey,
    ADD CONSTRAINT votes_choice_id_fkey
        FOREIGN KEY (choice_id) REFERENCES choices (id) ON DELETE RESTRICT,
    DROP CONSTRAINT votes_question_id_fkey,
    ADD CONSTRAINT votes_question_id_fkey
        FOREIGN KEY (question_id) REFERENCES questions (id) ON DELETE RESTRICT;

-- The audit trail's references are detached by the deletion itself (before
-- the user row goes), as every other reference is handled.
ALTER TABLE audit_entries
    DROP CONSTRAINT audit_entries_actor_id_fkey,
    ADD CONSTRAINT audit_entries_actor_id_fkey
        FOREIGN KEY (actor_id) REFERENCES users (id) ON DELETE RESTRICT,
    DROP CONSTRAINT audit_entries_target_user_id_fkey,
    ADD CONSTRAINT audit_entries_target_user_id_fkey
        FOREIGN KEY (target_user_id) REFERENCES users (id) ON DELETE RESTRICT;

-- Soft delete of questions: set when a question is archived. `deleteQuestions`
-- selects by it (`filter: {archived: true}`).
ALTER TABLE questions ADD COLUMN archived_at TIMESTAMPTZ;
CREATE INDEX questions_archived_idx ON questions (archived_at, id) WHERE archived_at IS NOT NULL;
