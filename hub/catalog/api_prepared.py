"""Hot single-row lookups compiled once and run as PostgreSQL prepared statements.

By-hash lookups and download redirects are the API's hottest requests and each
needs one query joining files, versions and models. Measured on the bench
database, compiling that query with the ORM costs ~1.6 ms and PostgreSQL spends
~1 ms planning it, against ~0.3 ms to execute a prepared plan: the difference
between 2x and 10x the cost of /api/v1/health.

So the query is still written with the ORM (the visibility rules stay in
`version_visible_q`), compiled once with sentinel arguments, then PREPAREd once
per database connection and EXECUTEd with the real arguments. Other databases
(SQLite in embedded mode) run the plain queryset.
"""
from __future__ import annotations

import json
import re
import threading
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

from django.db import NotSupportedError, ProgrammingError, connection
from django.db.models import QuerySet

Row = dict[str, Any]


def instance_from_row(model: type, values: Mapping[str, Any]):
    """A model instance from some of its columns by attname; the others load on access.

    `Model.from_db` takes a partial row's values in the model's field order,
    whatever order the names are given in, so they are put in that order here.
    """
    names = [f.attname for f in model._meta.concrete_fields if f.attname in values]
    if len(names) != len(values):
        raise ValueError(f"{model.__name__} has no columns {sorted(set(values) - set(names))}")
    return model.from_db("default", names, [values[n] for n in names])


# psycopg connection -> names of the statements prepared on it. Keyed weakly so
# a closed and replaced connection starts with nothing prepared.
_prepared_on: "weakref.WeakKeyDictionary[Any, set[str]]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


@dataclass(frozen=True)
class _Compiled:
    fields: tuple[str, ...]
    sql: str  # %s placeholders, as Django runs it
    pg_sql: str  # $n placeholders, for PREPARE
    # One entry per placeholder: ("arg", index into the call's arguments) or ("const", value).
    params: tuple[tuple[str, Any], ...]


class PreparedValuesQuery:
    """A `.values()` queryset with a fixed shape whose arguments change per call.

    `build(*args)` must return the queryset; it is called once with sentinels,
    so it must pass each argument straight into a filter (no transformation)
    and select with `.values(*fields)`. `json_fields` are decoded the way
    JSONField.from_db_value would.
    """

    def __init__(
        self, name: str, build: Callable[..., QuerySet], arg_types: tuple[type, ...], *,
        json_fields: tuple[str, ...] = (),
    ):
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"bad statement name {name!r}")
        self.name = name
        self._build = build
        self._arg_types = arg_types
        self._arity = len(arg_types)
        self._json_fields = json_fields
        self._compiled: _Compiled | None = None

    def _compile(self) -> _Compiled:
        token = uuid.uuid4().hex
        # Values no real argument or constant takes, recognisable among the compiled params.
        sentinels: list[Any] = [
            -(7_331_000_000_000 + i) if kind is int else f"mw-sentinel-{token}-{i}"
            for i, kind in enumerate(self._arg_types)
        ]
        qs = self._build(*sentinels)
        fields = tuple(qs.query.values_select)
        if not fields or qs.query.annotation_select or qs.query.extra_select:
            raise ValueError(f"{self.name}: build() must return a plain .values(*fields) queryset")
        sql, params = qs.query.sql_with_params()
        if "%%" in sql:
            raise ValueError(f"{self.name}: literal % in SQL is not supported")
        template: list[tuple[str, Any]] = []
        for param in params:
            if isinstance(param, (str, int)) and not isinstance(param, bool) and param in sentinels:
                template.append(("arg", sentinels.index(param)))
            elif isinstance(param, str) and token in param:
                raise ValueError(f"{self.name}: argument used in a transformed form ({param!r})")
            else:
                template.append(("const", param))
        if sorted({i for kind, i in template if kind == "arg"}) != list(range(self._arity)):
            raise ValueError(f"{self.name}: every argument must appear in the query")
        counter = iter(range(1, len(template) + 1))
        pg_sql = re.sub(r"%s", lambda _m: f"${next(counter)}", sql)
        return _Compiled(fields=fields, sql=sql, pg_sql=pg_sql, params=tuple(template))

    def rows(self, *args: Any) -> list[Row]:
        if len(args) != self._arity:
            raise TypeError(f"{self.name} takes {self._arity} arguments")
        if connection.vendor != "postgresql":
            # The plain queryset: the ORM's converters turn SQLite's text
            # into aware datetimes, decoded JSON and so on.
            return list(self._build(*args))
        compiled = self._compiled or self._compile()
        self._compiled = compiled
        values = [args[v] if kind == "arg" else v for kind, v in compiled.params]
        with connection.cursor() as cursor:
            result = self._execute_prepared(cursor, compiled, values)
        return self._to_rows(result)

    def _to_rows(self, result: list[tuple]) -> list[Row]:
        assert self._compiled is not None
        rows = [dict(zip(self._compiled.fields, row)) for row in result]
        for row in rows:
            for name in self._json_fields:
                if isinstance(row[name], str):
                    row[name] = json.loads(row[name])
        return rows

    def _execute_prepared(self, cursor, compiled: _Compiled, values: list[Any]) -> list[tuple]:
        import psycopg

        raw = connection.connection
        with _lock:
            done = _prepared_on.setdefault(raw, set())
        execute = f"EXECUTE {self.name}({', '.join(['%s'] * len(values))})" if values else f"EXECUTE {self.name}"
        for attempt in (1, 2):
            if self.name not in done:
                # PREPARE is not transactional: it survives a rollback, so the
                # bookkeeping stays true even inside test transactions.
                cursor.execute(f"PREPARE {self.name} AS {compiled.pg_sql}")
                done.add(self.name)
            try:
                cursor.execute(execute, values)
                return cursor.fetchall()
            except (ProgrammingError, NotSupportedError) as exc:
                missing = isinstance(exc.__cause__, psycopg.errors.InvalidSqlStatementName)
                # "cached plan must not change result type": a migration altered a table.
                stale = isinstance(exc.__cause__, psycopg.errors.FeatureNotSupported)
                if not (missing or stale) or attempt == 2 or connection.in_atomic_block:
                    raise
                # Outside a transaction the failed statement left nothing
                # aborted: drop what we knew (the session may have been reset
                # by a pooler's DISCARD ALL) and prepare again once.
                if stale:
                    cursor.execute(f"DEALLOCATE {self.name}")
                done.discard(self.name)
        raise AssertionError("unreachable")


def rows_many(calls: list[tuple[PreparedValuesQuery, tuple[Any, ...]]]) -> list[list[Row]]:
    """Run several prepared lookups in one round trip; their rows, in order.

    On PostgreSQL the EXECUTEs go as one multi-statement string (psycopg's
    client-side cursor sends it at once and returns one result set per
    statement); a lookup not yet prepared on this connection, or any error
    outside a transaction, falls back to running them one by one.
    Elsewhere they simply run one after the other.
    """
    if connection.vendor != "postgresql" or len(calls) < 2:
        return [query.rows(*args) for query, args in calls]
    raw = connection.connection
    with _lock:
        done = set(_prepared_on.get(raw, ())) if raw is not None else set()
    if any(query.name not in done or query._compiled is None for query, _ in calls):
        return [query.rows(*args) for query, args in calls]  # prepares them for next time
    sql: list[str] = []
    values: list[Any] = []
    for query, args in calls:
        if len(args) != query._arity:
            raise TypeError(f"{query.name} takes {query._arity} arguments")
        compiled = query._compiled
        params = [args[v] if kind == "arg" else v for kind, v in compiled.params]
        sql.append(f"EXECUTE {query.name}({', '.join(['%s'] * len(params))})" if params else f"EXECUTE {query.name}")
        values.extend(params)
    try:
        with connection.cursor() as cursor:
            cursor.execute("; ".join(sql), values)
            results = [cursor.fetchall()]
            while cursor.nextset():
                results.append(cursor.fetchall())
    except (ProgrammingError, NotSupportedError):
        if connection.in_atomic_block:
            raise
        return [query.rows(*args) for query, args in calls]  # re-prepares what a pooler dropped
    if len(results) != len(calls):
        raise AssertionError(f"{len(calls)} statements gave {len(results)} results")
    return [query._to_rows(result) for (query, _), result in zip(calls, results)]