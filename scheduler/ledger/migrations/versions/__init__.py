"""Migration scripts, oldest first by revision id (Alembic skips this file)."""
