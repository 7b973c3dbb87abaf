"""Persistence: SQLAlchemy models, Alembic migrations, content-addressed assets, repositories."""
