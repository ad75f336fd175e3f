"""The one mapping from the ledger's rows to the records it hands out.

Each record field comes from the row column of that name (enumerations converted), or is given.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from enum import Enum
from types import UnionType
from typing import Any, TypeVar, get_args, get_type_hints

from sqlalchemy import Row

from scheduler.ledger.models import Base
from scheduler.ledger.notice_records import Incident, Letter
from scheduler.ledger.records import AuditEntry, Fire, Pause, Remediation, SignIn, SlotRecord, Watch

Record = TypeVar(
    "Record", AuditEntry, Fire, Incident, Letter, Pause, Remediation, SignIn, SlotRecord, Watch
)


def to_record(record: type[Record], *rows: Base | Row[Any], **given: Any) -> Record:
    """A `record` whose fields are taken from `given`, else from the first of `rows` that has
    a column of the field's name; a field none has keeps its default. Values of enumerated
    fields (kinds, states, phases) become the enumeration's members."""
    values: dict[str, Any] = {}
    for name, enumeration, has_default in _FIELDS[record]:
        if name in given:
            value = given[name]
        else:
            # Every read maps its rows here: one look-up a row, no list, no hasattr.
            for row in rows:
                value = getattr(row, name, _ABSENT)
                if value is not _ABSENT:
                    break
            else:
                if has_default:
                    continue
                raise TypeError(f"no row has {record.__name__}.{name}, and it is not given")
        values[name] = enumeration(value) if enumeration and value is not None else value
    return record(**values)


_ABSENT = object()


def _fields_of(record: type[Any]) -> tuple[tuple[str, type[Enum] | None, bool], ...]:
    """Each field's name, its enumeration (if its type is one, maybe optional), and whether
    it has a default."""
    hints = get_type_hints(record)
    return tuple(
        (
            field.name,
            _enumeration(hints[field.name]),
            field.default is not MISSING or field.default_factory is not MISSING,
        )
        for field in fields(record)
    )


def _enumeration(hint: Any) -> type[Enum] | None:
    candidates = get_args(hint) if isinstance(hint, UnionType) else (hint,)
    return next(
        (c for c in candidates if isinstance(c, type) and issubclass(c, Enum)),
        None,
    )


# Worked out once, for each record `Record` names: records are mapped in every read.
_FIELDS = {record: _fields_of(record) for record in Record.__constraints__}
