"""Hook schedules as the real hooks service reads them: the npm package cron-parser (5.6.2).

The hooks service checks each `schedule` entry with `CronExpressionParser.parse(entry)` (a 400
`InputError` "<message> in <entry>" when it throws) and keeps the hook's `nextScheduledDate`
with `parse(entry, {currentDate}).next()` (services/hooks/src/api.js and nextdate.js). This
module does both in Python, quirks included, since the service's answers are what tests need:

- six fields, seconds first; with fewer, the missing ones are filled in from the left
  (`0 0 * * *` gets seconds `0`; even three fields parse, and an empty entry is every minute);
- `@yearly`, `@daily`, `@weekdays`... aliases; `jan`-`dec` and `sun`-`sat` in any field
  that names months or weekdays; `?` is `*`; `H` (hashed) values;
- `L` (last day of the month; `5L` the month's last Friday) and `#` (`mon#2`);
- day of month and day of week combine with OR when both are restricted;
- a repeated value is refused unless it is 0 (the parser's duplicate check misses a 0), and a
  range reads only its first two numbers (`1-2-3` is `1-2`).

`H` is random in cron-parser; here it is seeded by the entry, so a schedule's times are stable.
Values that only cron-parser's `H(a-b)` pattern lets through with foreign characters (such as
`H(0-0)x10`, which JavaScript reads as hexadecimal) may be judged differently.
"""

from __future__ import annotations

import calendar
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

Value = int | str  # a number, or a day field's text with `L` such as "5L"

ALIASES = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
    "@minutely": "0 * * * * *",
    "@secondly": "* * * * * *",
    "@weekdays": "0 0 0 * * 1-5",
    "@weekends": "0 0 0 * * 0,6",
}
MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# Either kind of name is read in either field that takes names: `* * * * mon *` is January.
NAMES = {
    **{name: number for number, name in enumerate(MONTH_NAMES, start=1)},
    **{name: number for number, name in enumerate(WEEKDAY_NAMES)},
}
# For "no time left" the hooks service keeps 4000-02-01 (its FUTURE) as the next date.
FUTURE = datetime(4000, 2, 1, tzinfo=UTC)
# cron-parser gives up on a search after this many steps and returns wherever it got to.
LOOP_LIMIT = 10_000

# JavaScript's \s (String.prototype.trim and split(/\s+/) use it), which differs from Python's.
_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_SPACES = re.compile(f"[{_SPACE}]+")
_TRIM = re.compile(f"^[{_SPACE}]+|[{_SPACE}]+$")
_NAME = re.compile(r"[a-z]{3}", re.IGNORECASE | re.ASCII)
_HASHED = re.compile(r"H(?:\(([0-9]+)-([0-9]+)\))?(?:/([0-9]+))?")
_INTEGER_PREFIX = re.compile(r"[+-]?[0-9]+")
_DIGITS = re.compile(r"[0-9]+")
_HASH_ANYWHERE = r"|.*H\([0-9]+-[0-9]+\)/[0-9]+.*|.*H\([0-9]+-[0-9]+\).*|.*H/[0-9]+.*"


class CronError(ValueError):
    """cron-parser refused the entry; the message is its own."""


class NextDateError(RuntimeError):
    """cron-parser threw while looking for the next date (the hooks service answers 500)."""


@dataclass(frozen=True)
class Unit:
    """One of the six fields: its range, its extra characters, and the characters it allows."""

    name: str  # cron-parser's class name, which its validation messages start with
    minimum: int
    maximum: int
    chars: str = ""
    allowed: str = r"?,*0-9H/-"

    def allows(self, text: str) -> bool:
        return re.fullmatch(f"[{self.allowed}]+{_HASH_ANYWHERE}", text) is not None


SECOND = Unit("CronSecond", 0, 59)
MINUTE = Unit("CronMinute", 0, 59)
HOUR = Unit("CronHour", 0, 23)
DAY_OF_MONTH = Unit("CronDayOfMonth", 1, 31, "L", r"?,*0-9LH/-")
MONTH = Unit("CronMonth", 1, 12)
DAY_OF_WEEK = Unit("CronDayOfWeek", 0, 7, "L", r"?,*0-9LH#/-")
DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclass(frozen=True)
class Field:
    """A field's values (sorted as cron-parser sorts them) and how it was written."""

    values: tuple[Value, ...]
    raw: str

    @property
    def wildcard(self) -> bool:
        return self.raw in ("*", "?")

    @property
    def has_last(self) -> bool:
        return "L" in self.raw or "L" in self.values

    def numbers(self) -> list[int]:
        return [value for value in self.values if isinstance(value, int)]

    def after(self, current: int) -> int | None:
        """The first value greater than `current` (cron-parser's findNearestValue)."""
        return next((value for value in self.numbers() if value > current), None)


@dataclass(frozen=True)
class Schedule:
    """One parsed entry; `next_after` is cron-parser's `next()` in UTC."""

    second: Field
    minute: Field
    hour: Field
    day_of_month: Field
    month: Field
    day_of_week: Field
    nth_day_of_week: int  # 1-5 from `#`, 0 when not given

    def next_after(self, moment: datetime) -> datetime:
        """The first time after `moment` the entry names, by cron-parser's own search.

        Like cron-parser it gives up after LOOP_LIMIT steps and answers wherever it got to, so a
        schedule that never fires (`0 0 0 31 2,4 *`) still gets a (meaningless) date.
        """
        start = moment.astimezone(UTC).replace(
            microsecond=moment.microsecond // 1000 * 1000  # JavaScript dates hold milliseconds
        )
        current = start
        for _ in range(LOOP_LIMIT - 1):
            if not self._day_matches(current) or not self._nth_day_matches(current):
                current = _start_of_day(current + timedelta(days=1))
            elif current.month not in self.month.values:
                current = _start_of_next_month(current)
            elif current.hour not in self.hour.values:
                current = self._next_hour(current)
            elif current.minute not in self.minute.values:
                current = self._next_minute(current)
            elif current.second not in self.second.values:
                current = self._next_second(current)
            elif current == start:
                current += timedelta(seconds=1)
            else:
                break
        return current.replace(microsecond=0)

    def _day_matches(self, day: datetime) -> bool:
        weekday = _weekday(day)
        on_day_of_month = day.day in self.day_of_month.values or (
            self.day_of_month.has_last and _is_last_day(day)
        )
        on_day_of_week = weekday in self.day_of_week.values or (
            self.day_of_week.has_last and self._last_weekday_matches(day)
        )
        restricted_month_day = not self.day_of_month.wildcard
        restricted_weekday = not self.day_of_week.wildcard
        if restricted_month_day and restricted_weekday:
            return on_day_of_month or on_day_of_week
        if not restricted_weekday:
            return on_day_of_month
        return on_day_of_week

    def _last_weekday_matches(self, day: datetime) -> bool:
        for value in self.day_of_week.values:
            # cron-parser reads the weekday from the first character: "5L" is 5, "L" throws.
            first = _parse_int(str(value)[:1])
            if first is None:
                raise NextDateError(f"Invalid last weekday of the month expression: {value}")
            if _weekday(day) == first % 7 and day.day > _days_in(day) - 7:
                return True
        return False

    def _nth_day_matches(self, day: datetime) -> bool:
        return self.nth_day_of_week <= 0 or -(-day.day // 7) == self.nth_day_of_week

    def _next_hour(self, current: datetime) -> datetime:
        hour = self.hour.after(current.hour)
        if hour is None:
            return _start_of_day(current + timedelta(days=1))
        return current.replace(
            hour=hour, minute=self.minute.numbers()[0], second=self.second.numbers()[0]
        )

    def _next_minute(self, current: datetime) -> datetime:
        minute = self.minute.after(current.minute)
        if minute is None:
            current = current.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            minute = self.minute.numbers()[0]
        return current.replace(minute=minute, second=self.second.numbers()[0])

    def _next_second(self, current: datetime) -> datetime:
        second = self.second.after(current.second)
        if second is None:
            current = current.replace(second=0, microsecond=0) + timedelta(minutes=1)
            second = self.second.numbers()[0]
        return current.replace(second=second)


def parse(entry: str) -> Schedule:
    """Parse one schedule entry as `CronExpressionParser.parse(entry)`; CronError if it throws."""
    expression = ALIASES.get(entry, entry) or "0 * * * * *"
    atoms = _SPACES.split(_TRIM.sub("", expression))
    if len(atoms) > 6:
        raise CronError("Invalid cron expression, too many fields")
    # Missing fields are filled in from the left with these (cron-parser's `defaults`).
    atoms = ["*", "*", "*", "*", "*", "0"][len(atoms) :] + atoms
    raw_second, raw_minute, raw_hour, raw_day, raw_month, raw_weekday = atoms
    hashed = random.Random(entry).random
    second = _parse_field(SECOND, raw_second, hashed)
    minute = _parse_field(MINUTE, raw_minute, hashed)
    hour = _parse_field(HOUR, raw_hour, hashed)
    month = _parse_field(MONTH, raw_month, hashed)
    day_of_month = _parse_field(DAY_OF_MONTH, raw_day, hashed)
    weekday_text, nth = _nth_day(raw_weekday)
    day_of_week = _parse_field(DAY_OF_WEEK, weekday_text, hashed)
    # cron-parser validates the fields in this order, so the first complaint is the same.
    for unit, values in (
        (SECOND, second),
        (MINUTE, minute),
        (HOUR, hour),
        (DAY_OF_MONTH, day_of_month),
        (MONTH, month),
        (DAY_OF_WEEK, day_of_week),
    ):
        _validate(unit, values)
    schedule = Schedule(
        second=Field(second, raw_second),
        minute=Field(minute, raw_minute),
        hour=Field(hour, raw_hour),
        day_of_month=Field(day_of_month, raw_day),
        month=Field(month, raw_month),
        day_of_week=Field(day_of_week, raw_weekday),
        nth_day_of_week=nth,
    )
    _check_explicit_day(schedule)
    return schedule


def next_date(entries: Sequence[str], moment: datetime) -> datetime:
    """The hooks service's nextDate: the earliest next time of any entry, or FUTURE if none."""
    return min((parse(entry).next_after(moment) for entry in entries), default=FUTURE)


# -- parsing, step by step as cron-parser does ---------------------------------------------------


def _parse_field(unit: Unit, text: str, hashed: Callable[[], float]) -> tuple[Value, ...]:
    if unit in (MONTH, DAY_OF_WEEK):
        text = _NAME.sub(_name_number, text)
    if not unit.allows(text):
        raise CronError(f"Invalid characters, got value: {text}")
    text = re.sub(r"[*?]", f"{unit.minimum}-{unit.maximum}", text)
    text = _hash(unit, text, hashed())
    return tuple(sorted(_sequence(unit, text), key=_sort_key))


def _name_number(match: re.Match[str]) -> str:
    name = match.group().lower()
    if name not in NAMES:
        raise CronError(f'Validation error, cannot resolve alias "{name}"')
    return str(NAMES[name])


def _hash(unit: Unit, text: str, draw: float) -> str:
    """Replace `H`, `H/step`, `H(a-b)` and `H(a-b)/step` with values drawn from `draw`."""

    def steps(first: int, last: int, step: int) -> str:
        if step <= 0:
            raise CronError(f"Invalid step: {step}, must be positive")
        start = first // step * step + int(draw * step)
        return ",".join(str(value) for value in range(start, last + 1, step) if value >= first)

    def replace(match: re.Match[str]) -> str:
        low, high, step = match.groups()
        if low is not None and high is not None:
            first, last = int(low), int(high)
            if first > last:
                raise CronError(f"Invalid range: {first}-{last}, min > max")
            if step is not None:
                return steps(max(first, unit.minimum), last, int(step))
            return str(int(draw * (last - first + 1)) + first)
        if step is not None:
            return steps(unit.minimum, unit.maximum, int(step))
        return str(int(draw * (unit.maximum - unit.minimum + 1) + unit.minimum))

    return _HASHED.sub(replace, text)


def _sequence(unit: Unit, text: str) -> list[Value]:
    values: list[Value] = []
    for atom in text.split(","):
        if not atom:
            raise CronError("Invalid list value format")
        result = _repeat(unit, atom)
        if isinstance(result, list):
            values.extend(result)
        elif any(char in str(result) for char in unit.chars):
            values.append(result)
        else:
            number = _parse_int(str(result))
            if number is None or not unit.minimum <= number <= unit.maximum:
                raise CronError(
                    f"Constraint error, got value {result} expected range "
                    f"{unit.minimum}-{unit.maximum}"
                )
            values.append(number % 7 if unit is DAY_OF_WEEK else result)
    return values


def _repeat(unit: Unit, atom: str) -> list[Value] | Value:
    parts = atom.split("/")
    if len(parts) > 2:
        raise CronError(f"Invalid repeat: {atom}")
    if len(parts) == 2:
        start, step = parts
        if "-" not in start:
            start = f"{start}-{unit.maximum}"
        return _range(unit, start, _parse_int(step))
    return _range(unit, atom, 1)


def _range(unit: Unit, text: str, step: int | None) -> list[Value] | Value:
    parts = text.split("-")
    if len(parts) == 1:
        return int(text) if _DIGITS.fullmatch(text) else text
    # Only the first two numbers count: `1-2-3` is the range 1-2.
    low, high = _parse_int(parts[0]), _parse_int(parts[1])
    if low is None or high is None or low < unit.minimum or high > unit.maximum:
        raise CronError(
            f"Constraint error, got range {_js(low)}-{_js(high)} expected range "
            f"{unit.minimum}-{unit.maximum}"
        )
    if low > high:
        raise CronError(f"Invalid range: {low}-{high}, min({low}) > max({high})")
    if step is None or step <= 0:
        raise CronError(f"Constraint error, cannot repeat at every {_js(step)} time.")
    # A weekday range ending on Sunday as 7 also holds Sunday as 0.
    values: list[Value] = [0] if unit is DAY_OF_WEEK and high % 7 == 0 else []
    values += [value for value in range(low, high + 1, step) if value not in values]
    return values


def _nth_day(text: str) -> tuple[str, int]:
    """Split `mon#2` into the weekday and which of the month's such weekdays (1-5) it is."""
    parts = text.split("#")
    if len(parts) == 1:
        return text, 0
    # cron-parser's /[,-/]/ is the character range from "," to "/": ",", "-", "." and "/".
    clash = re.search(r"[,-/]", text)
    if clash:
        raise CronError(
            f"Constraint error, invalid dayOfWeek `#` and `{clash.group()}` special characters "
            "are incompatible"
        )
    nth = _parse_int(parts[-1]) if _DIGITS.fullmatch(parts[-1]) else None
    if len(parts) > 2 or nth is None or not 1 <= nth <= 5:
        raise CronError("Constraint error, invalid dayOfWeek occurrence number (#)")
    return parts[0], nth


def _validate(unit: Unit, values: Sequence[Value]) -> None:
    """CronField.validate: values in range (or like `5L`), and no value twice."""
    for value in values:
        if isinstance(value, int):
            valid = unit.minimum <= value <= unit.maximum
        else:
            valid = any(re.fullmatch(f"[0-9]{{0,2}}{char}", value) for char in unit.chars)
        if not valid:
            chars = f" or chars {unit.chars}" if unit.chars else ""
            raise CronError(
                f"{unit.name} Validation error, got value {value} expected range "
                f"{unit.minimum}-{unit.maximum}{chars}"
            )
    duplicate = next((v for i, v in enumerate(values) if values.index(v) != i), None)
    # The check tests the duplicate's truthiness in JavaScript, so a repeated 0 passes.
    if duplicate not in (None, 0, ""):
        raise CronError(f"{unit.name} Validation error, duplicate values found: {duplicate}")


def _check_explicit_day(schedule: Schedule) -> None:
    """A single month with a day it never has (`30 2`) is refused, unless weekdays rescue it."""
    months, days = schedule.month.values, schedule.day_of_month.values
    if len(months) != 1 or schedule.day_of_month.has_last or not schedule.day_of_week.wildcard:
        return
    month, first_day = months[0], _parse_int(str(days[0]))
    if not isinstance(month, int) or first_day is None or first_day > DAYS_IN_MONTH[month - 1]:
        raise CronError("Invalid explicit day of month definition")


# -- JavaScript and calendar helpers ---------------------------------------------------------------


def _parse_int(text: str) -> int | None:
    """JavaScript's parseInt(text, 10): the leading integer, None for NaN."""
    match = _INTEGER_PREFIX.match(_TRIM.sub("", text))
    return int(match.group()) if match else None


def _js(number: int | None) -> str:
    return "NaN" if number is None else str(number)


def _sort_key(value: Value) -> tuple[int, int, str]:
    # CronField.sorter: numbers in order, then texts.
    return (0, value, "") if isinstance(value, int) else (1, 0, value)


def _weekday(day: datetime) -> int:
    return (day.weekday() + 1) % 7  # JavaScript's getDay(): Sunday is 0


def _days_in(day: datetime) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def _is_last_day(day: datetime) -> bool:
    return day.day == _days_in(day)


def _start_of_day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _start_of_next_month(moment: datetime) -> datetime:
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return _start_of_day(moment.replace(year=year, month=month, day=1))
