"""Searches as SQL templates, compiled once per shape.

Building a search's SQLAlchemy statement, computing its cache key and compiling it cost more
CPU than the database spends running it (a patient's labs: ~1 ms of Python against ~0.1 ms of
PostgreSQL). Yet searches come in few shapes: `Observation?subject=…&code=…` is the same SQL
for every patient and code, only the values differ. So a search is first parsed into a tree
of `Sql` pieces — plain, hashable data — and its values, each in a `Slot`; the tree is the
key of the compiled statement, and SQLAlchemy builds and compiles it only the first time a
shape is seen. Later searches of that shape only parse their values and bind them.

A piece renders with a module-level function of the row it applies to and its arguments
(constants of the shape, slots, other pieces): it cannot see anything that is not part of the
key, so two searches with equal trees can never need different SQL (checked when a piece is
made: a render function has no closure).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BindParameter, String, and_, bindparam, false, literal, not_, or_, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


@dataclass(frozen=True, slots=True)
class Slot:
    """The place of one value in a search's SQL: the bind parameter `v{index}`. SQLAlchemy
    takes it wherever it takes a value (`__clause_element__`), typed by what it is compared
    with."""

    index: int

    def __clause_element__(self) -> BindParameter[Any]:
        return bindparam(f"v{self.index}")


@dataclass(frozen=True, slots=True)
class Sql:
    """A piece of a search's SQL: `render(row, *args)` when it is compiled. Equal pieces
    render the same SQL: render is a module-level function and args are hashable."""

    render: Callable[..., Any]
    args: tuple[Hashable, ...] = ()

    def __post_init__(self) -> None:
        if getattr(self.render, "__closure__", None):
            raise TypeError(f"{self.render.__qualname__} must not capture values: pass them")

    def build(self, row: Any) -> Any:
        """The SQLAlchemy construct of this piece, applied to `row` (the resource row the
        condition is about, or an index table for a value's match)."""
        return self.render(row, *self.args)


@dataclass
class Values:
    """The values of one search, in the order their slots were made."""

    items: list[Any] = field(default_factory=list)

    def slot(self, value: Any) -> Slot:
        self.items.append(value)
        return Slot(len(self.items) - 1)

    def slots(self, values: list[Any] | tuple[Any, ...]) -> tuple[Slot, ...]:
        return tuple(self.slot(value) for value in values)

    def many(self, values: list[Any] | tuple[Any, ...]) -> tuple[Slot, ...]:
        """Slots for the values of an IN, padded to a power of two by repeating the last
        value (the same IN), so that lists of similar length share one shape."""
        padded = list(values)
        padded += padded[-1:] * ((1 << max(len(padded) - 1, 0).bit_length()) - len(padded))
        return self.slots(padded)

    def parameters(self) -> dict[str, Any]:
        return {f"v{index}": value for index, value in enumerate(self.items)}


def _compare(row: Any, column: str, operator: Callable[[Any, Any], Any], value: Any) -> Any:
    return operator(getattr(row, column), value)


def _is_null(row: Any, column: str) -> Any:
    return getattr(row, column).is_(None)


def _like(row: Any, column: str, pattern: Slot) -> Any:
    return getattr(row, column).like(pattern, escape="\\")


def _one_of(row: Any, column: str, values: tuple[Slot, ...]) -> Any:
    return getattr(row, column).in_(values)


def _all(row: Any, *pieces: Sql) -> Any:
    return and_(*[piece.build(row) for piece in pieces])


def _any(row: Any, *pieces: Sql) -> Any:
    return or_(*[piece.build(row) for piece in pieces])


def _not(row: Any, piece: Sql) -> Any:
    return not_(piece.build(row))


def _constant(_row: Any, value: bool) -> Any:
    return true() if value else false()


def compare(column: str, operator: Callable[[Any, Any], Any], value: Slot) -> Sql:
    """`column <operator> value` (`operator.eq`, `operator.lt`…)."""
    return Sql(_compare, (column, operator, value))


def is_null(column: str) -> Sql:
    return Sql(_is_null, (column,))


def like(column: str, pattern: Slot) -> Sql:
    """`column LIKE pattern`, with backslash escapes."""
    return Sql(_like, (column, pattern))


def one_of(column: str, values: tuple[Slot, ...]) -> Sql:
    return Sql(_one_of, (column, values))


def all_of(*pieces: Sql) -> Sql:
    return pieces[0] if len(pieces) == 1 else Sql(_all, pieces)


def any_of(*pieces: Sql) -> Sql:
    return pieces[0] if len(pieces) == 1 else Sql(_any, pieces)


def negated(piece: Sql) -> Sql:
    return Sql(_not, (piece,))


TRUE = Sql(_constant, (True,))
FALSE = Sql(_constant, (False,))


def constants(items: Sequence[str]) -> list[BindParameter[str]]:
    """Strings of a search's shape (types, parameter names) as separate bind parameters, so
    that an IN over them compiles to plain SQL (a list of values would be expanded per run)."""
    return [literal(item) for item in items]


class unindexed(FunctionElement[str]):
    """A text column that must not lead an index on SQLite, the column itself elsewhere.

    SQLite plans without statistics: given equalities on the leading columns of an index it
    takes that index, even where another, more selective condition would find far fewer rows
    (a candidate's own index rows by `rid`). `column || ''` is an expression no index covers,
    so SQLite leaves it to a check per row. PostgreSQL plans with statistics, and the same
    expression hid the column from them: estimated at 0.5 % of rows whatever the column
    held, it flipped plans (`Patient?birthdate=ge…`: 0.4 ms or 17-33 ms by what ANALYZE
    sampled). There the column stays a column."""

    type = String()
    inherit_cache = True


@compiles(unindexed)
def _unindexed_hidden(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)} || '')"


@compiles(unindexed, "postgresql")
def _unindexed_plain(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))
