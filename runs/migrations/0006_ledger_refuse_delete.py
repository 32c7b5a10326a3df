"""The ledger refuses DELETE and TRUNCATE in the database too, unless the session says it is purging.

An entry can be removed only by a transaction that first runs `SET LOCAL flownova.ledger_purge = 'on'`: the
`purge_runs` command does, to delete old finished runs with their ledgers. Anything else (a stray DELETE, an
ORM cascade from a run deleted by hand, TRUNCATE) is refused.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION flownova_ledger_refuse_delete() RETURNS trigger AS $$
BEGIN
    IF coalesce(current_setting('flownova.ledger_purge', true), '') = 'on' THEN
        RETURN NULL;  -- an AFTER/BEFORE STATEMENT trigger's result is ignored; NULL is fine for both
    END IF;
    RAISE EXCEPTION 'runs_ledgerentry is append-only: % is refused (purge old runs with `manage.py purge_runs`)',
        TG_OP USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER runs_ledgerentry_refuse_delete
    BEFORE DELETE ON runs_ledgerentry
    FOR EACH STATEMENT EXECUTE FUNCTION flownova_ledger_refuse_delete();

CREATE TRIGGER runs_ledgerentry_refuse_truncate
    BEFORE TRUNCATE ON runs_ledgerentry
    FOR EACH STATEMENT EXECUTE FUNCTION flownova_ledger_refuse_delete();
"""

DROP = """
DROP TRIGGER IF EXISTS runs_ledgerentry_refuse_delete ON runs_ledgerentry;
DROP TRIGGER IF EXISTS runs_ledgerentry_refuse_truncate ON runs_ledgerentry;
DROP FUNCTION IF EXISTS flownova_ledger_refuse_delete();
"""


class Migration(migrations.Migration):
    dependencies = [("runs", "0005_drop_indexes_covered_by_composites")]

    operations = [migrations.RunSQL(CREATE, DROP)]
