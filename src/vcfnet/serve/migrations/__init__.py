"""Alembic migrations of the platform's database; ``upgrade_database`` runs them at start-up."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Engine

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(url: str):
    """An Alembic Config for ``url`` without an alembic.ini (the scripts live in this package)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    """Bring the database of ``engine`` to ``revision`` (creating the tables on an empty one)."""
    for name in ("alembic.runtime.plugins", "alembic.runtime.migration"):  # ~12 lines a start
        logging.getLogger(name).setLevel(logging.WARNING)
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        before = MigrationContext.configure(connection).get_current_revision()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        after = MigrationContext.configure(connection).get_current_revision()
    if before != after:
        log.info("database upgraded from revision %s to %s", before or "(empty)", after)
    else:
        log.debug("database is at revision %s", after)
