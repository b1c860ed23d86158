"""Alembic against Quiver as its users run it: `alembic init`, revision
scripts with pgvector's Vector type, `upgrade`/`downgrade`. Each migration
runs in one transaction (Alembic's default on PostgreSQL): its DDL, its
data and the move of the `alembic_version` row commit together.

Run by scripts/test.sh against a started `quiver standalone` (QUIVER_URL).
"""

import os
import textwrap

import psycopg
import pytest
from alembic import command
from alembic.config import Config

URL = os.environ.get("QUIVER_URL", "postgresql://quiver@127.0.0.1:5433/quiver")

FIRST = '''
"""items"""
import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector

revision = "0001"
down_revision = None


def upgrade():
    op.create_table(
        "al_items",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("embedding", Vector(3)),
    )


def downgrade():
    op.drop_table("al_items")
'''

SECOND = '''
"""tags, with their first rows"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade():
    tags = op.create_table(
        "al_tags",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.Text, nullable=False),
    )
    op.bulk_insert(tags, [{"id": 1, "name": "red"}, {"id": 2, "name": "blue"}])


def downgrade():
    op.drop_table("al_tags")
'''

BROKEN = '''
"""fails half-way"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade():
    op.create_table("al_half", sa.Column("id", sa.Integer, primary_key=True, autoincrement=False))
    op.execute("INSERT INTO al_missing VALUES (1)")


def downgrade():
    op.drop_table("al_half")
'''


def tables(conn):
    rows = conn.execute(
        "SELECT table_name::text FROM information_schema.tables "
        "WHERE table_schema = 'public' AND table_name LIKE 'al%%' ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def version(conn):
    return [r[0] for r in conn.execute("SELECT version_num FROM alembic_version").fetchall()]


@pytest.fixture()
def alembic_config(tmp_path):
    with psycopg.connect(URL, autocommit=True) as conn:
        for table in ["al_half", "al_tags", "al_items", "alembic_version"]:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    config = Config(str(tmp_path / "alembic.ini"))
    command.init(config, str(tmp_path / "migrations"))
    config = Config(str(tmp_path / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", URL.replace("postgresql://", "postgresql+psycopg://", 1))
    versions = tmp_path / "migrations" / "versions"
    (versions / "0001_items.py").write_text(textwrap.dedent(FIRST))
    (versions / "0002_tags.py").write_text(textwrap.dedent(SECOND))
    yield config, versions
    with psycopg.connect(URL, autocommit=True) as conn:
        for table in ["al_half", "al_tags", "al_items", "alembic_version"]:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def test_upgrade_downgrade_and_a_failed_migration(alembic_config):
    config, versions = alembic_config
    command.upgrade(config, "head")
    with psycopg.connect(URL, autocommit=True) as conn:
        assert tables(conn) == ["al_items", "al_tags", "alembic_version"]
        assert version(conn) == ["0002"]
        assert conn.execute("SELECT name FROM al_tags ORDER BY id").fetchall() == [("red",), ("blue",)]
        conn.execute("INSERT INTO al_items VALUES (1, '[1,2,3]')")
    command.downgrade(config, "-1")
    with psycopg.connect(URL, autocommit=True) as conn:
        assert tables(conn) == ["al_items", "alembic_version"]
        assert version(conn) == ["0001"]
        assert conn.execute("SELECT embedding::text FROM al_items").fetchall() == [("[1,2,3]",)]
    # A migration that fails half-way leaves nothing of itself: not its
    # table, not the version move.
    (versions / "0003_broken.py").write_text(textwrap.dedent(BROKEN))
    with pytest.raises(Exception, match="al_missing"):
        command.upgrade(config, "head")
    with psycopg.connect(URL, autocommit=True) as conn:
        assert tables(conn) == ["al_items", "alembic_version"]
        assert version(conn) == ["0001"]
    (versions / "0003_broken.py").unlink()
    command.upgrade(config, "head")
    with psycopg.connect(URL, autocommit=True) as conn:
        assert version(conn) == ["0002"]
