"""A hook's `schedule` entries judged as the Hooks service judges them: its npm cron-parser's
refusals, in cron-parser's own words, and patterns written with fewer than six fields. Pure.

The service calls `CronExpressionParser.parse(entry)` on each entry and answers 400 when it
throws (services/hooks/src/api.js). This follows cron-parser 5's parse step by step, quirks
included (a range reads its first two numbers, a repeated 0 passes the duplicate check), so what
`hooks check` passes the service takes; tests/test_hooks_schedules.py holds it to the answers
recorded from the real service. The emulator has its own port, with the search for next dates.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# Six fields, seconds first: what Taskcluster documents and `hooks check` asks for.
FIELDS = ("second", "minute", "hour", "day of month", "month", "day of week")
ALIASES = frozenset(
    {
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@hourly",
        "@minutely",
        "@secondly",
        "@weekdays",
        "@weekends",
    }
)
_NAMES = {
    name: number
    for names, first in (
        (("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1),
        (("sun", "mon", "tue", "wed", "thu", "fri", "sat"), 0),
    )
    for number, name in enumerate(names, start=first)
}
# JavaScript's \s, which cron-parser splits and trims on (wider than Python's).
_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_SPACES = re.compile(f"[{_SPACE}]+")
_TRIM = re.compile(f"^[{_SPACE}]+|[{_SPACE}]+$")
_NAME = re.compile(r"[a-z]{3}", re.IGNORECASE | re.ASCII)
_HASHED = re.compile(r"H(?:\(([0-9]+)-([0-9]+)\))?(?:/([0-9]+))?")
_HASH_ANYWHERE = r"|.*H\([0-9]+-[0-9]+\)/[0-9]+.*|.*H\([0-9]+-[0-9]+\).*|.*H/[0-9]+.*"
_INTEGER_PREFIX = re.compile(r"[+-]?[0-9]+")
_DIGITS = re.compile(r"[0-9]+")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

Value = int | str  # a number, or a day field's text with `L` such as "5L"


class _RefusedError(ValueError):
    """cron-parser threw; the message is its own."""


@dataclass(frozen=True)
class _Unit:
    name: str  # cron-parser's class name, which its validation messages start with
    minimum: int
    maximum: int
    chars: str = ""
    allowed: str = r"?,*0-9H/-"


_SECOND = _Unit("CronSecond", 0, 59)
_MINUTE = _Unit("CronMinute", 0, 59)
_HOUR = _Unit("CronHour", 0, 23)
_DAY_OF_MONTH = _Unit("CronDayOfMonth", 1, 31, "L", r"?,*0-9LH/-")
_MONTH = _Unit("CronMonth", 1, 12)
_DAY_OF_WEEK = _Unit("CronDayOfWeek", 0, 7, "L", r"?,*0-9LH#/-")


def schedule_problem(entry: str) -> str | None:
    """Why the Hooks service refuses `entry`, or why it should be written otherwise (fewer than
    six fields, which cron-parser fills in from the left); None when it is a good entry."""
    written = _TRIM.sub("", entry)
    count = len(_SPACES.split(written)) if written else 0
    six = f"6 fields, seconds first ({', '.join(FIELDS)})"
    try:
        _parse(entry)
    except _RefusedError as error:
        # cron-parser fills in missing fields, so its complaint may be about one not written.
        hint = f"; a pattern has {six}, like '0 0 3 * * *'" if count < 6 else ""
        return f"the Hooks service refuses {entry!r}: {error} (cron-parser){hint}"
    if entry in ALIASES or count == 6:
        return None
    if count == 5:
        return f"{entry!r} has 5 fields; the Hooks service wants {six}: did you mean '0 {written}'?"
    return (
        f"{entry!r} has {count} field{'' if count == 1 else 's'}; the Hooks service wants {six}, "
        "like '0 0 3 * * *' (daily at 03:00 UTC); with fewer it fills in the rest from the left, "
        "which is rarely what was meant"
    )


def _parse(entry: str) -> None:
    """CronExpressionParser.parse(entry), for its refusals only."""
    expression = entry if entry not in ALIASES else "0 0 0 * * *"
    atoms = _SPACES.split(_TRIM.sub("", expression or "0 * * * * *"))
    if len(atoms) > 6:
        raise _RefusedError("Invalid cron expression, too many fields")
    atoms = ["*", "*", "*", "*", "*", "0"][len(atoms) :] + atoms
    raw_second, raw_minute, raw_hour, raw_day, raw_month, raw_weekday = atoms
    second = _parse_field(_SECOND, raw_second)
    minute = _parse_field(_MINUTE, raw_minute)
    hour = _parse_field(_HOUR, raw_hour)
    month = _parse_field(_MONTH, raw_month)
    day_of_month = _parse_field(_DAY_OF_MONTH, raw_day)
    day_of_week = _parse_field(_DAY_OF_WEEK, _without_nth(raw_weekday))
    # cron-parser validates the fields in this order, so the first complaint is the same.
    for unit, values in (
        (_SECOND, second),
        (_MINUTE, minute),
        (_HOUR, hour),
        (_DAY_OF_MONTH, day_of_month),
        (_MONTH, month),
        (_DAY_OF_WEEK, day_of_week),
    ):
        _validate(unit, values)
    _check_explicit_day(month, day_of_month, raw_day, raw_weekday)


def _parse_field(unit: _Unit, text: str) -> tuple[Value, ...]:
    if unit in (_MONTH, _DAY_OF_WEEK):
        text = _NAME.sub(_name_number, text)
    if re.fullmatch(f"[{unit.allowed}]+{_HASH_ANYWHERE}", text) is None:
        raise _RefusedError(f"Invalid characters, got value: {text}")
    text = re.sub(r"[*?]", f"{unit.minimum}-{unit.maximum}", text)
    text = _unhash(unit, text)
    return tuple(sorted(_sequence(unit, text), key=_sort_key))


def _name_number(match: re.Match[str]) -> str:
    name = match.group().lower()
    if name not in _NAMES:
        raise _RefusedError(f'Validation error, cannot resolve alias "{name}"')
    return str(_NAMES[name])


def _unhash(unit: _Unit, text: str) -> str:
    """`H` values as cron-parser draws them (randomly: the lowest draw here, which is valid
    whenever any draw is)."""

    def steps(first: int, last: int, step: int) -> str:
        if step <= 0:
            raise _RefusedError(f"Invalid step: {step}, must be positive")
        start = first // step * step
        return ",".join(str(value) for value in range(start, last + 1, step) if value >= first)

    def replace(match: re.Match[str]) -> str:
        low, high, step = match.groups()
        if low is not None and high is not None:
            first, last = int(low), int(high)
            if first > last:
                raise _RefusedError(f"Invalid range: {first}-{last}, min > max")
            if step is not None:
                return steps(max(first, unit.minimum), last, int(step))
            return str(first)
        if step is not None:
            return steps(unit.minimum, unit.maximum, int(step))
        return str(unit.minimum)

    return _HASHED.sub(replace, text)


def _sequence(unit: _Unit, text: str) -> list[Value]:
    values: list[Value] = []
    for atom in text.split(","):
        if not atom:
            raise _RefusedError("Invalid list value format")
        result = _repeat(unit, atom)
        if isinstance(result, list):
            values.extend(result)
        elif any(char in str(result) for char in unit.chars):
            values.append(result)
        else:
            number = _parse_int(str(result))
            if number is None or not unit.minimum <= number <= unit.maximum:
                raise _RefusedError(
                    f"Constraint error, got value {result} expected range "
                    f"{unit.minimum}-{unit.maximum}"
                )
            values.append(number % 7 if unit is _DAY_OF_WEEK else result)
    return values


def _repeat(unit: _Unit, atom: str) -> list[Value] | Value:
    parts = atom.split("/")
    if len(parts) > 2:
        raise _RefusedError(f"Invalid repeat: {atom}")
    if len(parts) == 2:
        start, step = parts
        if "-" not in start:
            start = f"{start}-{unit.maximum}"
        return _range(unit, start, _parse_int(step))
    return _range(unit, atom, 1)


def _range(unit: _Unit, text: str, step: int | None) -> list[Value] | Value:
    parts = text.split("-")
    if len(parts) == 1:
        return int(text) if _DIGITS.fullmatch(text) else text
    low, high = _parse_int(parts[0]), _parse_int(parts[1])  # `1-2-3` is the range 1-2
    if low is None or high is None or low < unit.minimum or high > unit.maximum:
        raise _RefusedError(
            f"Constraint error, got range {_js(low)}-{_js(high)} expected range "
            f"{unit.minimum}-{unit.maximum}"
        )
    if low > high:
        raise _RefusedError(f"Invalid range: {low}-{high}, min({low}) > max({high})")
    if step is None or step <= 0:
        raise _RefusedError(f"Constraint error, cannot repeat at every {_js(step)} time.")
    values: list[Value] = [0] if unit is _DAY_OF_WEEK and high % 7 == 0 else []
    values += [value for value in range(low, high + 1, step) if value not in values]
    return values


def _without_nth(text: str) -> str:
    """The weekday of `mon#2`, once its `#` part is checked."""
    parts = text.split("#")
    if len(parts) == 1:
        return text
    # cron-parser's /[,-/]/ is the character range from "," to "/": ",", "-", "." and "/".
    clash = re.search(r"[,-/]", text)
    if clash:
        raise _RefusedError(
            f"Constraint error, invalid dayOfWeek `#` and `{clash.group()}` special characters "
            "are incompatible"
        )
    nth = _parse_int(parts[-1]) if _DIGITS.fullmatch(parts[-1]) else None
    if len(parts) > 2 or nth is None or not 1 <= nth <= 5:
        raise _RefusedError("Constraint error, invalid dayOfWeek occurrence number (#)")
    return parts[0]


def _validate(unit: _Unit, values: Sequence[Value]) -> None:
    """CronField.validate: values in range (or like `5L`), and no value twice."""
    for value in values:
        if isinstance(value, int):
            valid = unit.minimum <= value <= unit.maximum
        else:
            valid = any(re.fullmatch(f"[0-9]{{0,2}}{char}", value) for char in unit.chars)
        if not valid:
            chars = f" or chars {unit.chars}" if unit.chars else ""
            raise _RefusedError(
                f"{unit.name} Validation error, got value {value} expected range "
                f"{unit.minimum}-{unit.maximum}{chars}"
            )
    duplicate = next((v for i, v in enumerate(values) if values.index(v) != i), None)
    # cron-parser tests the duplicate's truthiness in JavaScript, so a repeated 0 passes.
    if duplicate not in (None, 0, ""):
        raise _RefusedError(f"{unit.name} Validation error, duplicate values found: {duplicate}")


def _check_explicit_day(
    months: Sequence[Value], days: Sequence[Value], raw_day: str, raw_weekday: str
) -> None:
    """A single month with a day it never has (`30 2`) is refused, unless weekdays rescue it."""
    has_last = "L" in raw_day or "L" in days
    if len(months) != 1 or has_last or raw_weekday not in ("*", "?"):
        return
    month, first_day = months[0], _parse_int(str(days[0]))
    if not isinstance(month, int) or first_day is None or first_day > _DAYS_IN_MONTH[month - 1]:
        raise _RefusedError("Invalid explicit day of month definition")


def _parse_int(text: str) -> int | None:
    """JavaScript's parseInt(text, 10): the leading integer, None for NaN."""
    match = _INTEGER_PREFIX.match(_TRIM.sub("", text))
    return int(match.group()) if match else None


def _js(number: int | None) -> str:
    return "NaN" if number is None else str(number)


def _sort_key(value: Value) -> tuple[int, int, str]:
    return (0, value, "") if isinstance(value, int) else (1, 0, value)
