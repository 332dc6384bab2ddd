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
    from alembic import command

    config = alembic_config(engine.url.render_as_string(hide_password=False))
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # 7 lines per start
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    log.info("database is at revision %s", revision)
