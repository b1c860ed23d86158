"""Shared helpers of the Milvus-door suite: deterministic data, the
standard test schema, outcome capture and the comparisons used by the
differential tests (Quiver against milvus-lite and against numpy)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient

try:  # milvus-lite 2.x is the Milvus engine; 3.x is a Python rewrite
    from importlib.metadata import version as _version

    LITE_VERSION = _version("milvus-lite")
except Exception:  # pragma: no cover - milvus-lite missing
    LITE_VERSION = "0"
PYMILVUS_VERSION = _version("pymilvus")
PYMILVUS_MAJOR = int(PYMILVUS_VERSION.split(".")[0])

#: True when the installed milvus-lite embeds the real Milvus engine (2.x).
#: milvus-lite 3.x reimplements Milvus in Python: its error codes and a few
#: behaviours differ from Milvus', so error tests then compare Quiver with
#: the code Milvus itself gives (passed as ``milvus_code``).
LITE_IS_MILVUS_ENGINE = LITE_VERSION.startswith("2.")

#: True when the reference server is another Quiver (CI's pass with every
#: role seam serialized compares with a Quiver in its normal wiring).
REFERENCE_IS_QUIVER = bool(os.environ.get("QUIVER_MILVUS_REFERENCE_URI", "").strip())

DIM = 8
VARCHAR_LEN = 64
MAX_TOPK = 16384

WORDS = ["alpha", "beta", "gamma", "al_pha", "a%b", "Alpha", "o'neil", 'say "hi"']

SCALAR_FIELDS = ["i64", "name", "f32", "f64", "flag", "meta"]
ALL_FIELDS = ["id", *SCALAR_FIELDS, "vec"]


# --------------------------------------------------------------------- data


def make_rows(n: int, dim: int = DIM, seed: int = 0, start: int = 0) -> list[dict]:
    """``n`` rows of the standard schema, the same for every run.

    FLOAT values are multiples of 1/8 (exact in float32), so filters on
    them have no rounding ambiguity.
    """
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    rows = []
    for i in range(n):
        pk = start + i
        rows.append(
            {
                "id": pk,
                "i64": int(rng.integers(-20, 40)),
                "name": f"{WORDS[pk % len(WORDS)]}{pk % 7}",
                "f32": float(rng.integers(-80, 80)) / 8.0,
                "f64": float(rng.normal()),
                "flag": pk % 3 == 0,
                "meta": {"k": pk % 4, "tag": WORDS[pk % 3], "nested": {"x": pk}},
                "vec": vecs[i].tolist(),
            }
        )
    return rows


def queries(nq: int, dim: int = DIM, seed: int = 1000) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((nq, dim)).astype(np.float32).tolist()


def full_schema(dim: int = DIM, varchar_len: int = VARCHAR_LEN, **kwargs):
    """INT64 pk, INT64, VARCHAR, FLOAT, DOUBLE, BOOL, JSON, FLOAT_VECTOR."""
    schema = MilvusClient.create_schema(
        auto_id=kwargs.pop("auto_id", False),
        enable_dynamic_field=kwargs.pop("enable_dynamic_field", False),
        **kwargs,
    )
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("i64", DataType.INT64)
    schema.add_field("name", DataType.VARCHAR, max_length=varchar_len)
    schema.add_field("f32", DataType.FLOAT)
    schema.add_field("f64", DataType.DOUBLE)
    schema.add_field("flag", DataType.BOOL)
    schema.add_field("meta", DataType.JSON)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    return schema


def index_params(
    client: MilvusClient,
    index_type: str = "FLAT",
    metric: str = "L2",
    params: dict | None = None,
    field: str = "vec",
    index_name: str = "",
):
    ip = client.prepare_index_params()
    ip.add_index(
        field_name=field,
        index_type=index_type,
        metric_type=metric,
        index_name=index_name,
        params=params or {},
    )
    return ip


def create_indexed(client: MilvusClient, name: str, schema, ip) -> None:
    """create_collection + create_index + load, without pymilvus' fixed
    0.5 s wait for the index build (sync=False): the tests that follow do
    not depend on the build having finished."""
    client.create_collection(name, schema=schema)
    client.create_index(name, ip, sync=False)
    client.load_collection(name)


def create_full(
    client: MilvusClient,
    name: str,
    rows: list[dict] | None = None,
    *,
    index_type: str = "FLAT",
    metric: str = "L2",
    params: dict | None = None,
    dim: int = DIM,
) -> list[dict]:
    """Creates the standard collection with an index, loads it and inserts
    ``rows`` (default: 200 rows of seed 0). Returns the rows."""
    if rows is None:
        rows = make_rows(200, dim=dim)
    create_indexed(client, name, full_schema(dim=dim), index_params(client, index_type, metric, params))
    if rows:
        client.insert(name, rows)
    return rows


# ------------------------------------------------------------------ outcome


@dataclass
class Outcome:
    """What one call did: returned ``value`` or raised ``exc``."""

    value: Any = None
    exc: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.exc is None

    def unwrap(self, who: str = "") -> Any:
        if self.exc is not None:
            raise AssertionError(f"{who} raised {describe_exc(self.exc)}") from self.exc
        return self.value


def attempt(fn: Callable[[], Any]) -> Outcome:
    try:
        return Outcome(value=fn())
    except Exception as e:  # noqa: BLE001 - every failure is an outcome
        return Outcome(exc=e)


def describe_exc(e: BaseException) -> str:
    code = getattr(e, "code", None)
    if callable(code):  # grpc errors: code() is a method
        try:
            code = code()
        except Exception:  # noqa: BLE001
            code = None
    msg = getattr(e, "message", None)
    if msg is None or callable(msg):
        msg = str(e)
    msg = " ".join(str(msg).split())
    return f"{type(e).__name__}(code={code}, message={msg[:300]!r})"


def lite_lacks(outcome: Outcome) -> bool:
    """The lite reference does not have this RPC / feature at all."""
    e = outcome.exc
    if e is None:
        return False
    text = str(e)
    return "UNIMPLEMENTED" in text or "StatusCode.UNIMPLEMENTED" in repr(e)


#: Codes that say "internal failure" rather than name an error: milvus-lite
#: 2.x answers some invalid requests from deep inside the engine (2000 is a
#: segcore assertion, 65535 and 1 are unclassified). They are no contract a
#: server should copy, so a test that names ``milvus_code`` uses that instead.
INTERNAL_CODES = {1, 2000, 65535}


def _lite_reference(lite: Outcome, milvus_code: int | None):
    """(exception class, code, description) Quiver's error must match."""
    if lite.exc is not None:
        code = getattr(lite.exc, "code", None)
        faithful = LITE_IS_MILVUS_ENGINE and code not in INTERNAL_CODES
        if faithful or milvus_code is None:
            return type(lite.exc), code, f"milvus-lite {LITE_VERSION}: {describe_exc(lite.exc)}"
        return (
            type(lite.exc) if code not in INTERNAL_CODES or not LITE_IS_MILVUS_ENGINE else None,
            milvus_code,
            f"Milvus code {milvus_code} (milvus-lite {LITE_VERSION} gave {describe_exc(lite.exc)})",
        )
    if milvus_code is None:
        return None, None, None
    return None, milvus_code, f"Milvus code {milvus_code} (milvus-lite {LITE_VERSION} accepted it)"


def assert_same_error(q: Outcome, lite: Outcome, milvus_code: int | None = None) -> None:
    """Quiver failed like milvus-lite: same exception class and ``code``.

    ``milvus_code`` is what Milvus answers; it is the reference where
    milvus-lite is not faithful: when it accepts the request, answers with an
    internal code (INTERNAL_CODES), or is the 3.x rewrite with codes of its own.
    """
    assert q.exc is not None, f"Quiver succeeded ({q.value!r}) where an error was expected"
    cls, code, ref = _lite_reference(lite, milvus_code)
    assert ref is not None, (
        f"milvus-lite {LITE_VERSION} succeeded ({lite.value!r}) where Quiver raised {describe_exc(q.exc)}"
    )
    got_code = getattr(q.exc, "code", None)
    if cls is None:
        from pymilvus import MilvusException

        ok = isinstance(q.exc, MilvusException) and got_code == code
    else:
        ok = type(q.exc) is cls and got_code == code
    assert ok, f"Quiver: {describe_exc(q.exc)}; expected like {ref}"


def assert_same_outcome(q: Outcome, lite: Outcome, milvus_code: int | None = None) -> None:
    """Both succeeded with equal values, or both failed alike."""
    if lite.ok and q.ok:
        assert values_equal(q.value, lite.value), f"quiver={q.value!r} lite={lite.value!r}"
        return
    if lite.ok:
        raise AssertionError(
            f"Quiver raised {describe_exc(q.exc)}; milvus-lite {LITE_VERSION} succeeded: {lite.value!r}"
        )
    if q.ok and lite.exc is not None:
        raise AssertionError(
            f"Quiver succeeded ({q.value!r}); milvus-lite {LITE_VERSION} raised {describe_exc(lite.exc)}"
        )
    assert_same_error(q, lite, milvus_code)


# -------------------------------------------------------------- comparisons


def approx(x: float, rel: float = 1e-4, abs_: float = 1e-4):
    return pytest.approx(x, rel=rel, abs=abs_)


def values_equal(a: Any, b: Any, rel: float = 1e-4) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (float, np.floating)) or isinstance(b, (float, np.floating)):
        try:
            return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=1e-6)
        except (TypeError, ValueError):
            return False
    if isinstance(a, (list, tuple, np.ndarray)) and isinstance(b, (list, tuple, np.ndarray)):
        a, b = list(a), list(b)
        return len(a) == len(b) and all(values_equal(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k], rel) for k in a)
    return a == b


def plain_rows(rows) -> list[dict]:
    return [dict(r) for r in rows]


def assert_rows_equal(q_rows, l_rows, pk: str = "id", ordered: bool = False) -> None:
    """Query results equal (sorted by ``pk`` unless ``ordered``)."""
    q_rows, l_rows = plain_rows(q_rows), plain_rows(l_rows)
    if not ordered:
        q_rows = sorted(q_rows, key=lambda r: r[pk])
        l_rows = sorted(l_rows, key=lambda r: r[pk])
    q_ids = [r.get(pk) for r in q_rows]
    l_ids = [r.get(pk) for r in l_rows]
    assert q_ids == l_ids, f"primary keys differ:\n quiver={q_ids}\n lite  ={l_ids}"
    for q, l in zip(q_rows, l_rows):
        assert q.keys() == l.keys(), f"row {q.get(pk)}: fields {sorted(q)} != lite {sorted(l)}"
        for k in q:
            assert values_equal(q[k], l[k]), f"row {q.get(pk)} field {k}: quiver={q[k]!r} lite={l[k]!r}"


def hits_of(result) -> list[list[dict]]:
    out = []
    for per_query in result:
        out.append([
            {"id": hit_id(h), "distance": float(h["distance"]), "entity": dict(h.get("entity") or {})}
            for h in per_query
        ])
    return out


def hit_id(h):
    """A hit's primary key (pymilvus keys it by the pk field's name)."""
    pk = getattr(h, "id", None)
    return h["id"] if pk is None else pk


def assert_search_equal(q_res, l_res, rel: float = 1e-4, entity: bool = True) -> None:
    """FLAT searches: same ids in the same order, same scores, same entities."""
    q_hits, l_hits = hits_of(q_res), hits_of(l_res)
    assert len(q_hits) == len(l_hits), f"nq differs: quiver={len(q_hits)} lite={len(l_hits)}"
    for n, (qh, lh) in enumerate(zip(q_hits, l_hits)):
        q_ids = [h["id"] for h in qh]
        l_ids = [h["id"] for h in lh]
        assert q_ids == l_ids, f"query {n}: ids differ\n quiver={q_ids}\n lite  ={l_ids}"
        q_d = [h["distance"] for h in qh]
        l_d = [h["distance"] for h in lh]
        assert all(math.isclose(a, b, rel_tol=rel, abs_tol=1e-4) for a, b in zip(q_d, l_d)), (
            f"query {n}: scores differ\n quiver={q_d}\n lite  ={l_d}"
        )
        if entity:
            for a, b in zip(qh, lh):
                assert values_equal(a["entity"], b["entity"]), (
                    f"query {n} id {a['id']}: entity quiver={a['entity']!r} lite={b['entity']!r}"
                )


# ------------------------------------------------------------------- oracle


def score(metric: str, base: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Milvus' score of every base row against ``q``."""
    base = base.astype(np.float64)
    q = q.astype(np.float64)
    if metric == "L2":
        return ((base - q) ** 2).sum(axis=1)
    if metric == "IP":
        return base @ q
    if metric == "COSINE":
        return (base @ q) / (np.linalg.norm(base, axis=1) * np.linalg.norm(q))
    raise ValueError(metric)


def exact_topk(rows: list[dict], qs, metric: str, k: int, where=None, offset: int = 0):
    """The exact answer: per query, [(id, score)] best first."""
    rows = [r for r in rows if where is None or where(r)]
    if not rows:
        return [[] for _ in qs]
    ids = np.array([r["id"] for r in rows])
    base = np.array([r["vec"] for r in rows], dtype=np.float32)
    out = []
    for q in qs:
        s = score(metric, base, np.asarray(q, dtype=np.float32))
        order = np.argsort(s if metric == "L2" else -s, kind="stable")
        order = order[offset : offset + k]
        out.append([(int(ids[i]), float(s[i])) for i in order])
    return out


def recall(result, truth) -> float:
    hit = total = 0
    for got, exp in zip(hits_of(result), truth):
        exp_ids = {i for i, _ in exp}
        hit += len(exp_ids & {h["id"] for h in got})
        total += len(exp_ids)
    return hit / max(total, 1)


def assert_matches_oracle(result, truth, rel: float = 1e-4) -> None:
    got = hits_of(result)
    assert len(got) == len(truth)
    for n, (g, t) in enumerate(zip(got, truth)):
        assert [h["id"] for h in g] == [i for i, _ in t], (
            f"query {n}: ids {[h['id'] for h in g]} != exact {[i for i, _ in t]}"
        )
        for h, (_, s) in zip(g, t):
            assert math.isclose(h["distance"], s, rel_tol=rel, abs_tol=1e-4), (
                f"query {n} id {h['id']}: score {h['distance']} != exact {s}"
            )
