"""Fixtures of the Milvus-door suite.

Run with a Quiver server whose Milvus door is up, e.g.

    quiver standalone --data-dir "$(mktemp -d)" --milvus-addr 127.0.0.1:19530 &
    QUIVER_MILVUS_URI=http://127.0.0.1:19530 python -m pytest -q tests/milvus

Without ``QUIVER_MILVUS_URI`` every test here is skipped. The reference
for the differential tests is milvus-lite (pymilvus starts it for a local
``.db`` path), one instance for the whole session.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import grpc
import pymilvus.decorators
import pytest
from pymilvus import MilvusClient

from milvus_helpers import LITE_VERSION, PYMILVUS_VERSION, Outcome, attempt

QUIVER_URI = os.environ.get("QUIVER_MILVUS_URI", "").strip()
# Another server to compare with instead of milvus-lite: CI's extra pass
# runs the suite against a Quiver with every role seam serialized, with a
# Quiver in its normal wiring as the reference.
REFERENCE_URI = os.environ.get("QUIVER_MILVUS_REFERENCE_URI", "").strip()

HERE = Path(__file__).resolve().parent

# pymilvus logs every failed RPC with a traceback; the tests report failures.
logging.getLogger("pymilvus").setLevel(logging.CRITICAL)

# pymilvus retries an RPC that failed with a gRPC status such as CANCELLED
# (a server-side panic resets the stream) 75 times with back-off, which
# takes minutes. A server fault should fail its test at once instead.
pymilvus.decorators.IGNORE_RETRY_CODES = tuple(
    set(pymilvus.decorators.IGNORE_RETRY_CODES)
    | {grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
)


def pytest_report_header(config):
    return (
        f"milvus door: QUIVER_MILVUS_URI={QUIVER_URI or '(unset)'}; "
        f"pymilvus {PYMILVUS_VERSION}; milvus-lite {LITE_VERSION}"
    )


def pytest_configure(config):
    # The ORM API and using_database are deprecated in pymilvus; the suite
    # tests them on purpose.
    config.addinivalue_line(
        "filterwarnings", "ignore::pymilvus.decorators.PyMilvusDeprecationWarning"
    )


def pytest_collection_modifyitems(config, items):
    if QUIVER_URI:
        return
    skip = pytest.mark.skip(
        reason="QUIVER_MILVUS_URI is not set: start `quiver standalone --milvus-addr HOST:PORT` "
        "and export QUIVER_MILVUS_URI=http://HOST:PORT to run the Milvus-door tests"
    )
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def quiver() -> MilvusClient:
    """A MilvusClient connected to Quiver's Milvus door."""
    if not QUIVER_URI:
        pytest.skip("QUIVER_MILVUS_URI is not set")
    client = MilvusClient(uri=QUIVER_URI, timeout=60)
    yield client
    client.close()


@pytest.fixture(scope="session")
def lite_uri(tmp_path_factory) -> str:
    """The milvus-lite database file (pymilvus starts one server per file),
    or the reference server's URI when one is given."""
    if REFERENCE_URI:
        return REFERENCE_URI
    path = str(tmp_path_factory.mktemp("lite") / "reference.db")
    _start_lite(path)
    return path


def _start_lite(path: str, deadline_s: float = 60.0) -> None:
    """Starts milvus-lite for `path` and waits until its socket exists.

    pymilvus 3 connects once and fails at once when the socket is not there
    yet, and milvus-lite creates it only after it has opened its database,
    which takes more than pymilvus' fixed half-second wait on a busy
    machine. Later clients for the same path reuse this server."""
    from milvus_lite.server_manager import server_manager_instance

    uri = server_manager_instance.start_and_get_uri(path)
    if uri is None:
        raise RuntimeError(f"milvus-lite did not start for {path} (see its log above)")
    socket = uri.removeprefix("unix:")
    start = time.monotonic()
    while not os.path.exists(socket):
        if time.monotonic() - start > deadline_s:
            raise RuntimeError(f"milvus-lite did not open {socket} within {deadline_s:.0f} s")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def lite(lite_uri) -> MilvusClient:
    """A MilvusClient on a milvus-lite database in a temporary file (or
    on the reference server)."""
    client = MilvusClient(lite_uri, timeout=60) if REFERENCE_URI else MilvusClient(lite_uri)
    yield client
    client.close()


@pytest.fixture
def uris(lite_uri) -> dict[str, str]:
    return {"quiver": QUIVER_URI, "lite": lite_uri}


@pytest.fixture(params=["quiver", "lite"])
def both(request) -> tuple[str, MilvusClient]:
    """(name, client) for Quiver and for milvus-lite in turn."""
    return request.param, request.getfixturevalue(request.param)


_serial = itertools.count()


def _unique(request, prefix: str) -> str:
    test = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:40]
    return f"{prefix}_{test}_{os.getpid()}_{next(_serial)}_{uuid.uuid4().hex[:6]}"


def _drop_everywhere(clients, names):
    for client in clients:
        for name in names:
            try:
                client.drop_collection(name)
            except Exception:  # noqa: BLE001 - cleanup is best effort
                pass


@pytest.fixture
def new_name(request, quiver, lite) -> Callable[[str], str]:
    """Makes unique collection names; each is dropped on both servers after
    the test."""
    made: list[str] = []

    def make(prefix: str = "c") -> str:
        name = _unique(request, prefix)
        made.append(name)
        return name

    yield make
    _drop_everywhere([quiver, lite], made)


@pytest.fixture
def cname(new_name) -> str:
    """One unique collection name (dropped on both servers afterwards)."""
    return new_name("c")


@dataclass
class Pair:
    quiver: MilvusClient
    lite: MilvusClient

    def run(self, fn: Callable[[MilvusClient], Any]) -> tuple[Outcome, Outcome]:
        """Runs ``fn(client)`` on Quiver and on milvus-lite."""
        return attempt(lambda: fn(self.quiver)), attempt(lambda: fn(self.lite))

    def both_ok(self, fn: Callable[[MilvusClient], Any]) -> tuple[Any, Any]:
        """Runs ``fn`` on both; both must succeed. Returns (quiver, lite)."""
        q, l = self.run(fn)
        return q.unwrap("Quiver"), l.unwrap(f"milvus-lite {LITE_VERSION}")


@pytest.fixture
def pair(quiver, lite) -> Pair:
    return Pair(quiver, lite)


@pytest.fixture(params=["quiver", "lite"])
def orm(request, uris):
    """(name, alias) of an ORM connection (``connections.connect``) to
    Quiver and to milvus-lite in turn."""
    from pymilvus import connections

    who = request.param
    request.getfixturevalue(who)  # the server is up (lite: started once)
    alias = f"orm_{who}_{next(_serial)}"
    connections.connect(alias, uri=uris[who])
    yield who, alias
    connections.disconnect(alias)
