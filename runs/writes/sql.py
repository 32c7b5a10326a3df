"""The engine's own statements, built from model metadata.

A node's transition writes a handful of rows; each separate statement costs a round trip to PostgreSQL and a
trip through the ORM's compiler, more than the write itself. These build plain SQL fragments (values adapted
by each field, as the ORM would) that a transition combines with data-modifying CTEs (`runs.writes.transition`).
Table and column names come from model metadata, never from input; every value is a query parameter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from psycopg.types.json import Jsonb

_VARCHAR = re.compile(r"^varchar\(\d+\)$")


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    """`model`'s field `name`, which must be a column of its table (not a reverse relation, not generic)."""
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field):
        raise ValueError(f"{model.__name__}.{name} is not a column of {model._meta.db_table}")
    return field


# Table and column names come from model metadata, never from input; every value is a query parameter.
@lru_cache(maxsize=256)
def _update_template(
    model: type[models.Model], fields: tuple[str, ...]
) -> tuple[str, tuple[models.Field[Any, Any], ...]]:
    columns = tuple(_field(model, name) for name in dict.fromkeys(fields))  # each column once
    sets = ", ".join(f"{_quote(field.column)} = %s" for field in columns)
    table, pk = _quote(model._meta.db_table), _quote(model._meta.pk.column)
    return f"UPDATE {table} SET {sets} WHERE {pk} = %s", columns  # noqa: S608


@lru_cache(maxsize=256)
def _insert_template(
    model: type[models.Model], fields: tuple[str, ...], returning: tuple[str, ...]
) -> tuple[str, str, tuple[models.Field[Any, Any], ...]]:
    columns = tuple(_field(model, name) for name in fields)
    names = ", ".join(_quote(field.column) for field in columns)
    row = f"({', '.join(['%s'] * len(columns))})"
    table = _quote(model._meta.db_table)
    back = ", ".join(_quote(_field(model, name).column) for name in returning)
    back = f" RETURNING {back}" if back else ""
    return f"INSERT INTO {table} ({names}) VALUES {{rows}}{back}", row, columns  # noqa: S608


def update_sql(instance: models.Model, fields: Iterable[str]) -> tuple[str, list[Any]]:
    """`UPDATE` of the named fields of `instance`, by primary key (auto_now fields are refreshed)."""
    sql, columns = _update_template(type(instance), tuple(fields))
    return sql, update_params(instance, columns)


def update_params(instance: models.Model, columns: Sequence[models.Field[Any, Any]]) -> list[Any]:
    """The values of `columns` of `instance` as the ORM adapts them, then its primary key."""
    return [*(adapt(instance) for adapt in _adapters(tuple(columns), False)), instance.pk]


@lru_cache(maxsize=256)
def _update_many_template(model: type[models.Model], fields: tuple[str, ...]) -> tuple[str, str]:
    columns = _update_template(model, fields)[1]
    db = connections[DEFAULT_DB_ALIAS]
    # Typed, or PostgreSQL could not tell what each column of VALUES holds; varchar without its length, so that
    # a value too long fails as it does in a plain UPDATE instead of being cut by the cast.
    casts = [_VARCHAR.sub("varchar", str(field.db_type(db))) for field in (*columns, model._meta.pk)]
    row = f"({', '.join(f'CAST(%s AS {cast})' for cast in casts)})"
    names = ", ".join(f"c{i}" for i in range(len(casts)))
    sets = ", ".join(f"{_quote(field.column)} = v.c{i}" for i, field in enumerate(columns))
    table, pk = _quote(model._meta.db_table), _quote(model._meta.pk.column)
    key = f"c{len(columns)}"
    return f"UPDATE {table} SET {sets} FROM (VALUES {{rows}}) AS v({names}) WHERE {table}.{pk} = v.{key}", row  # noqa: S608


def update_many_sql(
    model: type[models.Model], fields: tuple[str, ...], rows: Sequence[list[Any]]
) -> tuple[str, list[Any]]:
    """One `UPDATE` of the same fields of several rows of `model`, from the params `update_sql` made for each
    (the values, then the primary key; each row once: PostgreSQL updates a row at most once per statement)."""
    sql, row = _update_many_template(model, fields)
    return sql.replace("{rows}", ", ".join([row] * len(rows))), [param for params in rows for param in params]


def insert_sql(
    instances: Sequence[models.Model], fields: Sequence[str], returning: Sequence[str] = ()
) -> tuple[str, list[Any]]:
    """Multi-row `INSERT` of new `instances` (of one model), returning the `returning` columns."""
    rows = insert_params(instances, fields)
    return insert_many_sql(type(instances[0]), tuple(fields), rows, tuple(returning))


def insert_params(instances: Sequence[models.Model], fields: Sequence[str]) -> list[list[Any]]:
    """Each new instance's values of `fields`, adapted as the ORM adapts them (auto_now fields are set)."""
    adapters = _adapters(_insert_template(type(instances[0]), tuple(fields), ())[2], True)
    return [[adapt(instance) for adapt in adapters] for instance in instances]


Adapter = Callable[[models.Model], Any]


@lru_cache(maxsize=512)
def _adapters(columns: tuple[models.Field[Any, Any], ...], adding: bool) -> tuple[Adapter, ...]:
    """For each column, what reads an instance's value of it as the ORM would save it: `pre_save`, then
    `get_db_prep_save`. That costs microseconds a field through Django's field methods, and a transition
    adapts about forty values a node; for the plain values the engine writes (a string, an int, an aware
    datetime, a JSON document) the result is known without them, and anything else takes the ORM's way."""
    return tuple(_adapter(field, adding) for field in columns)


def _adapter(field: models.Field[Any, Any], adding: bool) -> Adapter:
    attname = field.attname

    def orm(instance: models.Model) -> Any:  # the calling thread's connection (I/O workers run threads)
        return field.get_db_prep_save(field.pre_save(instance, adding), connections[DEFAULT_DB_ALIAS])

    if getattr(field, "auto_now", False) or (adding and getattr(field, "auto_now_add", False)):
        return orm  # pre_save sets the time
    if type(field) is models.JSONField and field.encoder is None:

        def json_value(instance: models.Model) -> Any:
            value = getattr(instance, attname)
            if value is None:
                return None
            return Jsonb(value, dumps=json.dumps) if isinstance(value, _JSON_VALUES) else orm(instance)

        return json_value
    if type(field) in _INTEGER_FIELDS:
        # Django wraps an int in the type of its column (psycopg's Int2, Int4...) or leaves it (keys): as it does.
        wrap = type(field.get_db_prep_save(1, connections[DEFAULT_DB_ALIAS]))

        def integer_value(instance: models.Model) -> Any:
            value = getattr(instance, attname)
            if value is None:
                return None
            return wrap(value) if type(value) is int else orm(instance)  # not a bool, which Django turns to 0/1

        return integer_value
    plain = _PLAIN.get(type(field))
    if plain is None:
        return orm

    def plain_value(instance: models.Model) -> Any:
        value = getattr(instance, attname)
        return value if value is None or plain(value) else orm(instance)

    return plain_value


def _is_aware(value: Any) -> bool:
    return isinstance(value, datetime) and value.tzinfo is not None


# Integer columns and keys (these classes exactly, not subclasses that may convert): an int is saved as Django
# wraps it. Other field classes whose saved value is the attribute itself when this says so of it (Django's
# get_prep_value would return it unchanged): a str for text, a bool, an aware datetime. Checked at every value;
# anything else goes through the field.
_INTEGER_FIELDS: frozenset[type[models.Field[Any, Any]]] = frozenset(
    {
        models.AutoField,
        models.BigAutoField,
        models.IntegerField,
        models.BigIntegerField,
        models.SmallIntegerField,
        models.PositiveIntegerField,
        models.PositiveSmallIntegerField,
        models.ForeignKey,
    }
)
_PLAIN: dict[type[models.Field[Any, Any]], Callable[[Any], bool]] = {
    models.CharField: lambda value: isinstance(value, str),
    models.TextField: lambda value: isinstance(value, str),
    models.BooleanField: lambda value: type(value) is bool,
    models.DateTimeField: _is_aware,
}
_JSON_VALUES = (dict, list, str, int, float, bool)


def insert_many_sql(
    model: type[models.Model], fields: tuple[str, ...], rows: Sequence[list[Any]], returning: tuple[str, ...] = ()
) -> tuple[str, list[Any]]:
    """Multi-row `INSERT` of `model` rows from their params (`insert_params`)."""
    sql, row, _ = _insert_template(model, fields, returning)
    return sql.replace("{rows}", ", ".join([row] * len(rows))), [param for params in rows for param in params]


def concrete_fields(model: type[models.Model]) -> list[str]:
    """Every column of `model` but its serial primary key: what an INSERT writes."""
    return [field.name for field in model._meta.concrete_fields if not field.primary_key]


@lru_cache(maxsize=256)
def _loaded(model: type[models.Model], fields: tuple[str, ...]) -> tuple[list[models.Field[Any, Any]], list[str]]:
    # In the model's column order, which is the order Model.from_db expects values in.
    wanted = {_field(model, name).attname for name in fields}
    loaded = [field for field in model._meta.concrete_fields if field.attname in wanted]
    return loaded, [field.attname for field in loaded]


@lru_cache(maxsize=256)
def select_sql(model: type[models.Model], fields: tuple[str, ...], alias: str) -> str:
    """The columns of `fields` of `model`'s table under `alias`, for a raw SELECT read back by `from_row`."""
    return ", ".join(f"{alias}.{_quote(field.column)}" for field in _loaded(model, fields)[0])


def from_row(model: type[models.Model], fields: tuple[str, ...], values: Sequence[Any]) -> Any:
    """An instance of `model` (other fields deferred) from the values of a raw SELECT of `select_sql`,
    converted as the ORM converts them (JSON text to Python)."""
    loaded, attnames = _loaded(model, fields)
    db = connections[DEFAULT_DB_ALIAS]
    converted = []
    for field, value in zip(loaded, values, strict=True):
        from_db_value = getattr(field, "from_db_value", None)
        converted.append(from_db_value(value, None, db) if from_db_value and value is not None else value)
    return model.from_db(DEFAULT_DB_ALIAS, attnames, converted)
