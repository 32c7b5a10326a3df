"""The ledger is append-only in the database itself, not only in the model: UPDATE is refused.

Deleting entries stays possible only as part of deleting their run (operators removing old runs).
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION flownova_ledger_refuse_update() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'runs_ledgerentry is append-only: entry % of run % cannot be changed', OLD.seq, OLD.run_id
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER runs_ledgerentry_append_only
    BEFORE UPDATE ON runs_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION flownova_ledger_refuse_update();
"""

DROP = """
DROP TRIGGER IF EXISTS runs_ledgerentry_append_only ON runs_ledgerentry;
DROP FUNCTION IF EXISTS flownova_ledger_refuse_update();
"""


class Migration(migrations.Migration):
    dependencies = [("runs", "0001_initial")]

    operations = [migrations.RunSQL(CREATE, DROP)]
