"""SQLAlchemy 2 with pgvector.sqlalchemy against Quiver, as its users write
it: the engine's default transactions (DDL included), the ORM's unit of
work and rollback, vector distance ordering.

Run by scripts/test.sh against a started `quiver standalone` (QUIVER_URL).
"""

import os

import numpy as np
import pytest
import sqlalchemy as sa
from pgvector.sqlalchemy import Vector
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

URL = os.environ.get("QUIVER_URL", "postgresql://quiver@127.0.0.1:5433/quiver")
DIM = 8


class Base(DeclarativeBase):
    pass


class Document(Base):
    __tablename__ = "sa_documents"
    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    title: Mapped[str] = mapped_column(sa.Text)
    embedding = mapped_column(Vector(DIM))


class Note(Base):
    # A key the application assigns (no sequence behind it).
    __tablename__ = "sa_notes"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    body: Mapped[str] = mapped_column(sa.Text)


@pytest.fixture(scope="module")
def engine():
    url = URL.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = sa.create_engine(url)
    # create_all / drop_all run in the engine's transaction (BEGIN ...
    # COMMIT), as on PostgreSQL.
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    yield engine
    Base.metadata.drop_all(engine)
    engine.dispose()


def test_create_all_makes_the_tables_in_one_transaction(engine):
    names = sa.inspect(engine).get_table_names()
    assert "sa_documents" in names and "sa_notes" in names
    assert sa.inspect(engine).has_table("sa_documents")


def test_ddl_in_a_failed_transaction_leaves_nothing(engine):
    table = sa.Table("sa_scratch", sa.MetaData(), sa.Column("id", sa.BigInteger, primary_key=True))
    with pytest.raises(RuntimeError):
        with engine.begin() as conn:
            table.create(conn)
            conn.execute(table.insert(), [{"id": 1}, {"id": 2}])
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 2
            raise RuntimeError("the migration fails")
    assert not sa.inspect(engine).has_table("sa_scratch")
    # Committed, the table and its rows arrive together.
    with engine.begin() as conn:
        table.create(conn)
        conn.execute(table.insert(), [{"id": 3}])
    with engine.connect() as conn:
        assert conn.execute(sa.select(table.c.id)).scalars().all() == [3]
    with engine.begin() as conn:
        table.drop(conn)
    assert not sa.inspect(engine).has_table("sa_scratch")


def test_orm_search_by_distance_matches_the_exact_answer(engine):
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((200, DIM)).astype(np.float32)
    with Session(engine) as session:
        session.add_all(
            Document(id=i, title=f"doc {i}", embedding=vectors[i]) for i in range(len(vectors))
        )
        session.commit()
    query = rng.standard_normal(DIM).astype(np.float32)
    exact = np.argsort(((vectors - query) ** 2).sum(axis=1))[:5].tolist()
    with Session(engine) as session:
        found = session.scalars(
            sa.select(Document).order_by(Document.embedding.l2_distance(query)).limit(5)
        ).all()
        assert [d.id for d in found] == exact
        assert np.allclose(found[0].embedding, vectors[exact[0]])
        assert found[0].title == f"doc {exact[0]}"
        # A parameterized LIMIT / OFFSET, as the ORM sends them.
        page = session.scalars(
            sa.select(Document.id).order_by(Document.id).limit(3).offset(10)
        ).all()
        assert page == [10, 11, 12]


def test_session_rollback_discards_flushed_rows(engine):
    with Session(engine) as session:
        session.add(Note(id=1, body="kept"))
        session.commit()
        session.add(Note(id=2, body="flushed, then rolled back"))
        session.flush()
        assert session.scalar(sa.select(sa.func.count()).select_from(Note)) == 2
        session.rollback()
        assert session.scalars(sa.select(Note.id)).all() == [1]
        note = session.get(Note, 1)
        note.body = "changed, then rolled back"
        session.flush()
        session.rollback()
        assert session.get(Note, 1).body == "kept"


def test_inspector_reads_the_columns(engine):
    columns = {c["name"]: c for c in sa.inspect(engine).get_columns("sa_documents")}
    assert list(columns) == ["id", "title", "embedding"]
    assert isinstance(columns["id"]["type"], sa.BigInteger)
    assert columns["id"]["nullable"] is False
    assert isinstance(columns["title"]["type"], sa.Text)
    # Mapped[str] declares NOT NULL.
    assert columns["title"]["nullable"] is False
    assert columns["embedding"]["nullable"] is True
    # pgvector.sqlalchemy teaches the dialect the vector type.
    assert isinstance(columns["embedding"]["type"], Vector)
    assert columns["embedding"]["type"].dim == DIM
