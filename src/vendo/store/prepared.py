"""Statements for the hottest writes, compiled once and run on the DBAPI cursor.

Every prediction is one insert into ``predictions`` (21 columns, five indexes) and one
``run_count`` update. For a single row, SQLAlchemy Core's execution path (statement
cache lookup, parameter processing through an execution context, result setup) costs
about as much as the SQLite work itself. :class:`Prepared` compiles a statement once per
dialect and applies SQLAlchemy's own bind processors to the parameters (JSON, the UTC
datetime type, booleans), so what reaches the database is what Core would send; many
rows go out in one ``executemany``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["Prepared", "insert_all_columns"]

Processor = Callable[[Any], Any]


class _Compiled:
    def __init__(self, stmt: sa.ClauseElement, dialect: sa.Dialect, defaults: Mapping[str, Any]):
        compiled = cast(SQLCompiler, stmt.compile(dialect=dialect))
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        self.names: list[str] = list(
            (compiled.positiontup if compiled.positional else compiled.binds) or []
        )
        # The binds a row's value cannot go through as it is: (position, name, bind
        # processor or None, what it makes of None, default for an absent name). The
        # others (no processor, no default: most columns) are taken as they are.
        self.special: list[tuple[int, str, Processor | None, Any, Any]] = []
        for i, name in enumerate(self.names):
            bind = compiled.binds[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            # a literal in the statement (``run_count + 1``) is a bind with its value
            default = defaults.get(name, bind.value)
            if processor is not None or default is not None:
                # JSON makes 'null' of None: worked out once, not per row
                none = processor(None) if processor is not None else None
                self.special.append((i, name, processor, none, default))

    def params(self, row: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        get = row.get
        values = [get(name) for name in self.names]
        for i, name, processor, none, default in self.special:
            value = values[i]
            if value is None:
                if name in row:
                    values[i] = none
                    continue
                # as Core does: the column's default, else SQL NULL (no processing)
                value = default() if callable(default) else default
                if value is None:
                    continue
            values[i] = processor(value) if processor is not None else value
        if self.positional:
            return tuple(values)
        return dict(zip(self.names, values, strict=True))


class Prepared:
    """A statement with named bind parameters, run with rows of parameters (dicts)
    straight on the DBAPI cursor. ``defaults``: the value of a parameter a row lacks
    (a callable is called), else NULL."""

    def __init__(self, stmt: sa.ClauseElement, defaults: Mapping[str, Any] | None = None) -> None:
        self.stmt = stmt
        self.defaults = dict(defaults or {})
        self._compiled: dict[str, _Compiled] = {}

    def execute(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Run it once per row inside ``conn``'s transaction; returns the rowcount."""
        if not rows:
            return 0
        dialect = conn.dialect
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = _Compiled(self.stmt, dialect, self.defaults)
        driver = conn.connection.driver_connection
        assert driver is not None
        cursor = driver.cursor()
        try:
            if len(rows) == 1:
                cursor.execute(compiled.sql, compiled.params(rows[0]))
            else:
                cursor.executemany(compiled.sql, [compiled.params(row) for row in rows])
            return int(cursor.rowcount)
        finally:
            cursor.close()


def insert_all_columns(table: sa.Table) -> Prepared:
    """``INSERT`` of whole rows (dicts by column key) into ``table``, with the columns'
    Python-side defaults for keys a row lacks."""
    columns = list(table.columns)
    stmt = table.insert().values({c.key: sa.bindparam(c.key, type_=c.type) for c in columns})
    return Prepared(stmt, {c.key: _default(c) for c in columns})


def _default(column: sa.Column[Any]) -> Any:
    default = column.default
    if not isinstance(default, sa.ColumnDefault):
        return None
    if default.is_callable:
        arg = default.arg
        return lambda: arg(None)  # Core wraps plain callables to take a context
    return default.arg
