"""Database migrations: `upgrade(url)` brings a database to the newest Alembic revision."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config

from indexer.db import make_engine

INI = Path(__file__).resolve().parent / "alembic.ini"


def alembic_config(url: str) -> Config:
    """The Alembic config of the indexer, pointed at `url`."""
    cfg = Config(str(INI))
    cfg.set_main_option("script_location", str(INI.parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Migrates the database at `url` to `revision` (the newest by default).

    Args:
        url: SQLAlchemy URL (SQLite or postgresql+psycopg).
        revision: the Alembic revision to reach.
    """
    _migrate(url, revision, command.upgrade)


def downgrade(url: str, revision: str) -> None:
    """Migrates the database at `url` back to `revision`."""
    _migrate(url, revision, command.downgrade)


def _migrate(url: str, revision: str, step: Callable[[Config, str], None]) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            step(cfg, revision)
    finally:
        engine.dispose()
