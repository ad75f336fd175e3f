"""The ledger's Alembic migrations, applied by `Ledger.open` (see `scheduler/ledger/migrating.py`).

To change the schema, change `models.py` and add a script to `versions/` by hand: copy the
latest, give it the next revision id and set `down_revision` to the one before. The scripts
must not import the models (they describe the schema as it was when they were written).
tests/test_ledger.py checks on both backends that the migrated schema matches the models.
"""
