"""Deadline arithmetic across Dutch holidays and the validation of policy/termijnen.yaml."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import holidays
import pytest
import yaml
from dateutil.easter import easter
from hypothesis import given
from hypothesis import strategies as st

from streams.deadlines import (
    AMSTERDAM,
    END_OF_DAY,
    Duration,
    Termijnen,
    TermijnenError,
    WorkingDayCalendar,
    add_months,
    due_at,
    load_termijnen,
    matches,
    parse_termijnen,
    reminder_points,
    within_window,
)

TERMIJNEN = Path(__file__).resolve().parents[2] / "policy" / "termijnen.yaml"
DEFAULT = WorkingDayCalendar()
GOEDE_VRIJDAG_VRIJ = WorkingDayCalendar(goede_vrijdag_vrij=True)
BEVRIJDINGSDAG_JAARLIJKS = WorkingDayCalendar(bevrijdingsdag_jaarlijks=True)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=AMSTERDAM)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def end_of(year: int, month: int, day: int) -> datetime:
    """23:59:59.999 Dutch time on that day, in UTC."""
    return datetime.combine(date(year, month, day), END_OF_DAY, tzinfo=AMSTERDAM).astimezone(UTC)


# ── Working days ─────────────────────────────────────────────────────────────────────────
# Each case: a melding received at `start`; the 5-working-day veiligheidsbeoordeling ends at
# the end of the 5th working day after the day of receipt (the day itself never counts).

WORKING_DAY_CASES = [
    pytest.param(
        # Thursday before Easter 2024 (Witte Donderdag). Good Friday 29 Mar is a working day
        # by default: Fri 29 Mar (1); Sat 30, Sun 31 weekend; Mon 1 Apr Easter Monday;
        # Tue 2 (2), Wed 3 (3), Thu 4 (4), Fri 5 Apr (5). Summer time began 31 March, so
        # 23:59:59.999 CEST = 21:59:59.999 UTC.
        local(2024, 3, 28, 10, 0),
        DEFAULT,
        5,
        end_of(2024, 4, 5),
        id="easter-2024-goede-vrijdag-werkdag",
    ),
    pytest.param(
        # The same melding when Good Friday is a day off: Tue 2 (1), Wed 3 (2), Thu 4 (3),
        # Fri 5 (4), Mon 8 Apr (5).
        local(2024, 3, 28, 10, 0),
        GOEDE_VRIJDAG_VRIJ,
        5,
        end_of(2024, 4, 8),
        id="easter-2024-goede-vrijdag-vrij",
    ),
    pytest.param(
        # Thursday 17 Apr 2025: Fri 18 (1); Mon 21 Easter Monday; Tue 22 (2) .. Fri 25 Apr (5).
        local(2025, 4, 17, 16, 45),
        DEFAULT,
        5,
        end_of(2025, 4, 25),
        id="easter-2025",
    ),
    pytest.param(
        # King's Day on a Thursday (27 Apr 2023). From Wed 26: Fri 28 (1), Mon 1 May (2),
        # Tue 2 (3), Wed 3 (4), Thu 4 May (5). 5 May 2023 is no lustrum, but it is too late anyway.
        local(2023, 4, 26, 9, 0),
        DEFAULT,
        5,
        end_of(2023, 5, 4),
        id="koningsdag-2023-thursday",
    ),
    pytest.param(
        # 27 Apr 2025 is a Sunday, so King's Day is Saturday 26 Apr and costs no working day.
        # From Thu 24: Fri 25 (1), Mon 28 (2), Tue 29 (3), Wed 30 (4), Thu 1 May (5).
        local(2025, 4, 24, 11, 0),
        DEFAULT,
        5,
        end_of(2025, 5, 1),
        id="koningsdag-2025-on-saturday",
    ),
    pytest.param(
        # King's Day on a Monday (27 Apr 2026). From Fri 24: Tue 28 (1), Wed 29 (2), Thu 30 (3),
        # Fri 1 May (4), Mon 4 May (5).
        local(2026, 4, 24, 14, 0),
        DEFAULT,
        5,
        end_of(2026, 5, 4),
        id="koningsdag-2026-monday",
    ),
    pytest.param(
        # Liberation Day in a lustrum year (Mon 5 May 2025). From Tue 29 Apr: Wed 30 (1),
        # Thu 1 (2), Fri 2 (3), Mon 5 holiday, Tue 6 (4), Wed 7 May (5).
        local(2025, 4, 29, 8, 0),
        DEFAULT,
        5,
        end_of(2025, 5, 7),
        id="bevrijdingsdag-2025-lustrum",
    ),
    pytest.param(
        # Tue 5 May 2026 is no lustrum: a working day. From Thu 30 Apr: Fri 1 (1), Mon 4 (2),
        # Tue 5 (3), Wed 6 (4), Thu 7 May (5).
        local(2026, 4, 30, 8, 0),
        DEFAULT,
        5,
        end_of(2026, 5, 7),
        id="bevrijdingsdag-2026-lustrum-only",
    ),
    pytest.param(
        # With bevrijdingsdag: jaarlijks, Tue 5 May 2026 is a day off: Fri 1 (1), Mon 4 (2),
        # Wed 6 (3), Thu 7 (4), Fri 8 May (5).
        local(2026, 4, 30, 8, 0),
        BEVRIJDINGSDAG_JAARLIJKS,
        5,
        end_of(2026, 5, 8),
        id="bevrijdingsdag-2026-jaarlijks",
    ),
    pytest.param(
        # Ascension Thu 9 May 2024. From Wed 8: Fri 10 (1), Mon 13 (2) .. Thu 16 May (5).
        local(2024, 5, 8, 12, 0),
        DEFAULT,
        5,
        end_of(2024, 5, 16),
        id="hemelvaart-2024",
    ),
    pytest.param(
        # Whit Monday 20 May 2024. From Fri 17: Tue 21 (1) .. Fri 24 (4), Mon 27 May (5).
        local(2024, 5, 17, 12, 0),
        DEFAULT,
        5,
        end_of(2024, 5, 27),
        id="pinksteren-2024",
    ),
    pytest.param(
        # Christmas on Thu/Fri and New Year on Thu across the year boundary. From Tue 23 Dec
        # 2025: Wed 24 (1); Thu 25, Fri 26 holidays; weekend; Mon 29 (2), Tue 30 (3),
        # Wed 31 (4); Thu 1 Jan holiday; Fri 2 Jan 2026 (5). Winter time: 22:59:59.999 UTC.
        local(2025, 12, 23, 15, 0),
        DEFAULT,
        5,
        end_of(2026, 1, 2),
        id="kerst-en-jaarwisseling-2025",
    ),
    pytest.param(
        # Christmas on Sun/Mon (2022), New Year on a Sunday. From Fri 23 Dec: Mon 26 holiday;
        # Tue 27 (1), Wed 28 (2), Thu 29 (3), Fri 30 (4), Mon 2 Jan 2023 (5).
        local(2022, 12, 23, 10, 0),
        DEFAULT,
        5,
        end_of(2023, 1, 2),
        id="kerst-2022-weekend",
    ),
    pytest.param(
        # One working day over the year boundary: Wed 31 Dec 2025 -> Thu 1 Jan holiday -> Fri 2 Jan.
        local(2025, 12, 31, 23, 0),
        DEFAULT,
        1,
        end_of(2026, 1, 2),
        id="jaarwisseling-1-werkdag",
    ),
    pytest.param(
        # Friday afternoon: Mon 17 (1) .. Fri 21 Jun 2024 (5).
        local(2024, 6, 14, 15, 0),
        DEFAULT,
        5,
        end_of(2024, 6, 21),
        id="weekend-friday",
    ),
    pytest.param(
        # Received on a Saturday: the same Friday.
        local(2024, 6, 15, 10, 0),
        DEFAULT,
        5,
        end_of(2024, 6, 21),
        id="weekend-saturday",
    ),
    pytest.param(
        # Sunday 23:30 Dutch time is still Sunday: Fri 21 Jun.
        utc(2024, 6, 16, 21, 30),
        DEFAULT,
        5,
        end_of(2024, 6, 21),
        id="weekend-sunday-late",
    ),
    pytest.param(
        # Sunday 22:30 UTC is Monday 00:30 in the Netherlands: the Monday counts as the day
        # of receipt, so Tue 18 (1) .. Mon 24 Jun (5).
        utc(2024, 6, 16, 22, 30),
        DEFAULT,
        5,
        end_of(2024, 6, 24),
        id="monday-by-dutch-date",
    ),
]


@pytest.mark.parametrize(("start", "calendar", "n", "expected"), WORKING_DAY_CASES)
def test_working_days_across_holidays(
    start: datetime, calendar: WorkingDayCalendar, n: int, expected: datetime
) -> None:
    due = due_at(start, Duration(working_days=n), calendar)
    assert due == expected
    assert due.tzinfo is UTC


def test_worked_example_easter_in_utc() -> None:
    # The hand computation of the Easter case, written out: end of Friday 5 April 2024 CEST.
    due = due_at(local(2024, 3, 28, 10, 0), Duration(working_days=5), DEFAULT)
    assert due == datetime(2024, 4, 5, 21, 59, 59, 999_000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "calendar", "working"),
    [
        pytest.param(date(2024, 3, 29), DEFAULT, True, id="goede-vrijdag-default-werkdag"),
        pytest.param(date(2024, 3, 29), GOEDE_VRIJDAG_VRIJ, False, id="goede-vrijdag-vrij"),
        pytest.param(date(2024, 4, 1), DEFAULT, False, id="tweede-paasdag"),
        pytest.param(date(2025, 4, 26), DEFAULT, False, id="koningsdag-2025-on-saturday"),
        pytest.param(date(2025, 4, 28), DEFAULT, True, id="monday-after-sunday-27-april"),
        pytest.param(date(2026, 4, 27), DEFAULT, False, id="koningsdag-2026"),
        pytest.param(date(2025, 5, 5), DEFAULT, False, id="bevrijdingsdag-lustrum"),
        pytest.param(date(2026, 5, 5), DEFAULT, True, id="bevrijdingsdag-no-lustrum"),
        pytest.param(date(2026, 5, 5), BEVRIJDINGSDAG_JAARLIJKS, False, id="bevrijdingsdag-jaarlijks"),
        pytest.param(date(2025, 12, 25), DEFAULT, False, id="eerste-kerstdag"),
        pytest.param(date(2025, 12, 26), DEFAULT, False, id="tweede-kerstdag"),
        pytest.param(date(2025, 12, 24), DEFAULT, True, id="christmas-eve"),
        pytest.param(date(2026, 1, 1), DEFAULT, False, id="nieuwjaarsdag"),
        pytest.param(date(2024, 6, 15), DEFAULT, False, id="saturday"),
        pytest.param(date(2024, 6, 16), DEFAULT, False, id="sunday"),
    ],
)
def test_is_working_day(day: date, calendar: WorkingDayCalendar, working: bool) -> None:
    assert calendar.is_working_day(day) is working


def test_kings_day_moves_to_saturday_when_27_april_is_a_sunday() -> None:
    assert date(2025, 4, 27).weekday() == 6
    assert DEFAULT.holiday_name(date(2025, 4, 26)) is not None
    assert DEFAULT.holiday_name(date(2025, 4, 27)) is None


def test_working_days_need_an_aware_start() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        due_at(datetime(2024, 1, 1, 12, 0), Duration(working_days=1), DEFAULT)


@given(
    start=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2040, 12, 31), timezones=st.just(UTC)
    ),
    n=st.integers(min_value=1, max_value=40),
    goede_vrijdag_vrij=st.booleans(),
    bevrijdingsdag_jaarlijks=st.booleans(),
)
def test_working_day_deadline_property(
    start: datetime, n: int, goede_vrijdag_vrij: bool, bevrijdingsdag_jaarlijks: bool
) -> None:
    calendar = WorkingDayCalendar(goede_vrijdag_vrij, bevrijdingsdag_jaarlijks)
    due = due_at(start, Duration(working_days=n), calendar)
    due_local = due.astimezone(AMSTERDAM)
    day = due_local.date()
    assert day.weekday() < 5
    assert day not in calendar.holidays_in(day.year)
    # Also against the library itself: only Good Friday may differ (a working day by default).
    good_friday = easter(day.year) - timedelta(days=2)
    assert day not in holidays.country_holidays("NL", years=day.year) or (
        day == good_friday and not goede_vrijdag_vrij
    )
    assert due_local.time() == END_OF_DAY
    # Exactly n working days after the Dutch date of receipt, that date not counted.
    received = start.astimezone(AMSTERDAM).date()
    span = (received + timedelta(days=i) for i in range(1, (day - received).days + 1))
    assert sum(calendar.is_working_day(d) for d in span) == n
    assert due_at(start, Duration(working_days=n + 1), calendar) > due > start


# ── Other units ──────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        pytest.param(utc(2024, 6, 1, 12, 0), Duration(seconds=60), utc(2024, 6, 1, 12, 1), id="seconds"),
        pytest.param(utc(2024, 6, 1, 12, 0), Duration(minutes=15), utc(2024, 6, 1, 12, 15), id="minutes"),
        pytest.param(utc(2024, 6, 1, 12, 0), Duration(hours=1), utc(2024, 6, 1, 13, 0), id="hours"),
        pytest.param(
            utc(2024, 6, 1, 22, 0), Duration(hours=6), utc(2024, 6, 2, 4, 0), id="hours-past-midnight"
        ),
        # Elapsed time: 24 hours over the switch to summer time is 14:00 CEST the next day.
        pytest.param(utc(2024, 3, 30, 12, 0), Duration(hours=24), utc(2024, 3, 31, 12, 0), id="hours-dst"),
        # Calendar days keep the Dutch clock time: 14:00 CET + 10 days = 14:00 CEST (239 hours).
        pytest.param(
            local(2024, 3, 29, 14, 0), Duration(days=10), utc(2024, 4, 8, 12, 0), id="days-spring-dst"
        ),
        pytest.param(
            local(2024, 10, 25, 14, 0), Duration(days=10), utc(2024, 11, 4, 13, 0), id="days-autumn-dst"
        ),
        pytest.param(local(2024, 12, 28, 9, 0), Duration(days=10), utc(2025, 1, 7, 8, 0), id="days-year-end"),
        pytest.param(local(2024, 1, 10, 10, 0), Duration(weeks=10), utc(2024, 3, 20, 9, 0), id="weeks"),
        pytest.param(local(2024, 3, 1, 10, 0), Duration(weeks=10), utc(2024, 5, 10, 8, 0), id="weeks-dst"),
        # Months clamp the day: 31 Jan + 3 months = 30 Apr, 10:00 CEST.
        pytest.param(
            local(2024, 1, 31, 10, 0), Duration(months=3), utc(2024, 4, 30, 8, 0), id="months-clamp"
        ),
        pytest.param(
            local(2024, 2, 29, 10, 0), Duration(months=12), utc(2025, 2, 28, 9, 0), id="months-leap"
        ),
        pytest.param(
            local(2024, 11, 30, 10, 0), Duration(months=3), utc(2025, 2, 28, 9, 0), id="months-year"
        ),
        pytest.param(
            local(2024, 6, 15, 10, 0), Duration(working_days=1), end_of(2024, 6, 17), id="working_days"
        ),
        # 02:30 on 31 March 2024 does not exist in Dutch time; fold=0 takes the winter offset,
        # which is 03:30 CEST.
        pytest.param(local(2024, 3, 30, 2, 30), Duration(days=1), utc(2024, 3, 31, 1, 30), id="days-gap"),
    ],
)
def test_due_at_each_unit(start: datetime, duration: Duration, expected: datetime) -> None:
    assert due_at(start, duration, DEFAULT) == expected


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2023, 1, 31), 1, date(2023, 2, 28)),
        (date(2024, 3, 31), 1, date(2024, 4, 30)),
        (date(2024, 8, 31), 6, date(2025, 2, 28)),
        (date(2024, 11, 30), 3, date(2025, 2, 28)),
        (date(2024, 12, 15), 1, date(2025, 1, 15)),
        (date(2024, 1, 15), 12, date(2025, 1, 15)),
        (date(2024, 5, 31), 25, date(2026, 6, 30)),
        (date(2024, 5, 31), 0, date(2024, 5, 31)),
    ],
)
def test_add_months_clamps_the_day(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


@given(day=st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 1, 1)), months=st.integers(0, 240))
def test_add_months_property(day: date, months: int) -> None:
    result = add_months(day, months)
    assert (result.year * 12 + result.month) - (day.year * 12 + day.month) == months
    assert result.day == day.day or (result.day < day.day and (result + timedelta(days=1)).day == 1)


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (Duration(working_days=5), "5 working days"),
        (Duration(working_days=1), "1 working day"),
        (Duration(hours=1), "1 hour"),
        (Duration(months=12), "12 months"),
    ],
)
def test_duration_reads(duration: Duration, text: str) -> None:
    assert str(duration) == text


@pytest.mark.parametrize("units", [{}, {"hours": 1, "days": 2}, {"weeks": 10, "working_days": 3}])
def test_duration_needs_exactly_one_unit(units: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="exactly one unit"):
        Duration(**units)


def test_within_window_is_half_open() -> None:
    twelve_months = Duration(months=12)
    first = local(2024, 1, 15, 9, 0)
    assert within_window(first, local(2025, 1, 15, 8, 59), twelve_months, DEFAULT)
    assert not within_window(first, local(2025, 1, 15, 9, 0), twelve_months, DEFAULT)
    assert not within_window(first, local(2024, 1, 15, 8, 0), twelve_months, DEFAULT)


# ── The shipped policy/termijnen.yaml ────────────────────────────────────────────────────

# DOMAIN.md "Deadlines": duration, who is told on expiry, and whether the number is an assumption.
DOMAIN_TIMERS: dict[str, tuple[dict[str, int], set[str], bool]] = {
    "vt-veiligheidsbeoordeling": ({"working_days": 5}, {"veilig-thuis", "gemeente"}, False),
    "vt-acuut": ({"hours": 1}, {"veilig-thuis", "politie"}, True),
    "vt-onderzoek": ({"weeks": 10}, {"veilig-thuis", "gemeente"}, False),
    "vt-monitoring-3m": ({"months": 3}, {"veilig-thuis"}, False),
    "vt-monitoring-12m": ({"months": 12}, {"veilig-thuis"}, False),
    "actieoverleg": ({"working_days": 1}, {"politie", "veilig-thuis", "om"}, True),
    "zsm-beslissing": ({"hours": 6}, {"om"}, False),
    "huisverbod-contactadres": ({"hours": 24}, {"politie", "gemeente"}, False),
    "huisverbod-verlenging": ({"days": 10}, {"gemeente", "veilig-thuis"}, False),
    "device-bevestiging": ({"seconds": 60}, {"politie"}, True),
    "device-opvolging": ({"minutes": 15}, {"politie", "reclassering"}, True),
}
DOMAIN_TABLE = [
    "vt-veiligheidsbeoordeling",
    "vt-acuut",
    "vt-onderzoek",
    "vt-monitoring",
    "actieoverleg",
    "zsm-beslissing",
    "huisverbod-contactadres",
    "huisverbod-verlenging",
    "device-bevestiging",
    "device-opvolging",
]


@pytest.fixture(scope="module")
def termijnen() -> Termijnen:
    return load_termijnen(TERMIJNEN)


def test_shipped_file_has_every_domain_timer(termijnen: Termijnen) -> None:
    names = {t.name for t in termijnen.timers} | {t.group for t in termijnen.timers if t.group}
    assert set(DOMAIN_TABLE) <= names
    assert {t.name for t in termijnen.timers} == set(DOMAIN_TIMERS)
    assert {t.name for t in termijnen.timers if t.group == "vt-monitoring"} == {
        "vt-monitoring-3m",
        "vt-monitoring-12m",
    }


@pytest.mark.parametrize("name", sorted(DOMAIN_TIMERS))
def test_shipped_timer_matches_domain(termijnen: Termijnen, name: str) -> None:
    duration, notify, assumption = DOMAIN_TIMERS[name]
    timer = termijnen.timer(name)
    assert timer.duration.model_dump(exclude_none=True) == duration
    assert set(timer.notify) == notify
    assert timer.assumption is assumption
    assert timer.source.strip()


def test_shipped_huisverbod_reminder_at_day_8(termijnen: Termijnen) -> None:
    timer = termijnen.timer("huisverbod-verlenging")
    start = local(2024, 3, 29, 14, 0)
    assert reminder_points(start, timer, termijnen.working_day_calendar()) == (utc(2024, 4, 6, 12, 0),)
    assert due_at(start, timer.duration, termijnen.working_day_calendar()) == utc(2024, 4, 8, 12, 0)


def test_shipped_patterns(termijnen: Termijnen) -> None:
    radar = termijnen.pattern("radar")
    assert radar.kind == "radar"
    assert (radar.count, radar.window.model_dump(exclude_none=True)) == (3, {"months": 12})
    assert radar.assumption
    rode_vlaggen = termijnen.pattern("rode-vlaggen")
    assert rode_vlaggen.voorstel == "actieoverleg"
    flagged = {
        "verwurging",
        "aanhoudende_stalking",
        "scheiding",
        "doodsbedreiging",
        "suicidedreiging",
        "dwingende_controle",
        "geweld_tijdens_zwangerschap",
        "wapenbezit",
    }
    assert all(rode_vlaggen.observes("Melding.ontvangen", {"signalen": [s]}) for s in flagged)
    assert not rode_vlaggen.observes("Melding.ontvangen", {"signalen": []})
    assert not rode_vlaggen.observes("Huisverbod.opgelegd", {"signalen": ["verwurging"]})


def test_shipped_calendar_is_the_default(termijnen: Termijnen) -> None:
    assert termijnen.working_day_calendar() == WorkingDayCalendar()


@pytest.mark.parametrize(
    ("event_type", "record", "started"),
    [
        ("Melding.ontvangen", {"zaak_ref": "Z1", "acuut": False}, {"vt-veiligheidsbeoordeling"}),
        ("nl.ketenbus.melding.ontvangen", {"zaak_ref": "Z1", "acuut": True}, {"vt-acuut"}),
        (
            "Melding.veiligheidsbeoordeling_afgerond",
            {"zaak_ref": "Z1", "vervolgtraject": "voorwaarden_en_vervolg"},
            {"vt-monitoring-3m", "vt-monitoring-12m"},
        ),
        (
            "Melding.veiligheidsbeoordeling_afgerond",
            {"zaak_ref": "Z1", "vervolgtraject": "onderzoek_vt"},
            set(),
        ),
        ("Huisverbod.opgelegd", {"zaak_ref": "Z1"}, {"huisverbod-contactadres", "huisverbod-verlenging"}),
        (
            "SlachtofferdeviceAlert.alarm",
            {"zaak_ref": "Z1", "alarm_id": "A1"},
            {"device-bevestiging", "device-opvolging"},
        ),
        ("Melding.bestaat_niet", {"zaak_ref": "Z1"}, set()),
    ],
)
def test_which_timers_an_event_starts(
    termijnen: Termijnen, event_type: str, record: dict[str, Any], started: set[str]
) -> None:
    assert {t.name for t in termijnen.timers_started_by(event_type, record)} == started


def test_satisfaction_respects_conditions_and_match(termijnen: Termijnen) -> None:
    moment_3 = {"zaak_ref": "Z1", "monitoring_maanden": 3}
    assert {t.name for t in termijnen.timers_satisfied_by("Melding.monitoring_moment", moment_3)} == {
        "vt-monitoring-3m"
    }
    acuut = {
        t.name
        for t in termijnen.timers_satisfied_by("nl.ketenbus.samenopinacuut.gestart", {"zaak_ref": "Z1"})
    }
    assert acuut == {"vt-acuut"}
    bevestiging = termijnen.timer("device-bevestiging")
    alarm = {"zaak_ref": "Z1", "alarm_id": "A1"}
    assert bevestiging.key(alarm) == ("Z1", "A1")
    assert bevestiging.key({"zaak_ref": "Z1", "alarm_id": "A2"}) != bevestiging.key(alarm)
    assert termijnen.timer("vt-acuut").key({"zaak_ref": "Z1", "acuut": True}) == ("Z1",)


def test_radar_counts_persons_not_melders(termijnen: Termijnen) -> None:
    radar = termijnen.pattern("radar")
    assert radar.kind == "radar"
    record = {
        "persoon_refs": [
            {"persoon_ref": "p-slachtoffer", "rol": "slachtoffer"},
            {"persoon_ref": "p-melder", "rol": "melder"},
            {"persoon_ref": "p-pleger", "rol": "pleger"},
        ]
    }
    assert radar.persons(record) == ("p-pleger", "p-slachtoffer")


# ── Conditions ───────────────────────────────────────────────────────────────────────────


def _condition(raw: dict[str, Any]) -> Any:
    return (
        parse_termijnen(
            {
                "version": 1,
                "timers": [
                    {
                        "name": "t",
                        "starts_on": ["Melding.ontvangen"],
                        "when": raw,
                        "satisfied_by": ["Melding.afgesloten"],
                        "duration": {"hours": 1},
                        "notify": ["veilig-thuis"],
                        "source": "test",
                    }
                ],
            }
        )
        .timers[0]
        .when
    )


@pytest.mark.parametrize(
    ("raw", "record", "holds"),
    [
        ({"field": "acuut", "equals": True}, {"acuut": True}, True),
        ({"field": "acuut", "equals": True}, {"acuut": False}, False),
        ({"field": "monitoring_maanden", "equals": 1}, {"monitoring_maanden": True}, False),
        ({"field": "signalen", "equals": "verwurging"}, {"signalen": ["scheiding", "verwurging"]}, True),
        ({"field": "signalen", "in": ["verwurging", "wapenbezit"]}, {"signalen": ["wapenbezit"]}, True),
        ({"field": "signalen", "in": ["verwurging"]}, {"signalen": []}, False),
        ({"field": "bron", "in": ["burger", "betrokkene"]}, {"bron": "professional"}, False),
        ({"field": "signalen", "not_empty": True}, {"signalen": ["scheiding"]}, True),
        ({"field": "signalen", "not_empty": True}, {"signalen": []}, False),
        ({"field": "woonadres", "not_empty": False}, {}, True),
        (
            {"all": [{"field": "acuut", "equals": True}, {"field": "signalen", "not_empty": True}]},
            {"acuut": True},
            False,
        ),
        (
            {"any": [{"field": "acuut", "equals": True}, {"field": "signalen", "not_empty": True}]},
            {"acuut": True},
            True,
        ),
        ({"not": {"field": "schadelijke_praktijk", "equals": True}}, {"schadelijke_praktijk": False}, True),
    ],
)
def test_condition_language(raw: dict[str, Any], record: dict[str, Any], holds: bool) -> None:
    assert matches(_condition(raw), record) is holds


# ── Broken copies are rejected, naming the timer ─────────────────────────────────────────


@pytest.fixture(scope="module")
def raw_termijnen() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(TERMIJNEN.read_text(encoding="utf-8"))
    return raw


def _timer(raw: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(t for t in raw["timers"] if t["name"] == name)
    return found


def _pattern(raw: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in raw["patterns"] if p["name"] == name)
    return found


Mutation = Callable[[dict[str, Any]], None]

BROKEN: list[Any] = [
    pytest.param(
        lambda r: _timer(r, "vt-acuut").update(starts_on=["Melding.ontvangn"]),
        ["timer 'vt-acuut'", "unknown event type 'Melding.ontvangn'", "did you mean 'Melding.ontvangen'"],
        id="unknown-start-type",
    ),
    pytest.param(
        lambda r: _timer(r, "huisverbod-verlenging")["satisfied_by"].append("Huisverbod.verlopen"),
        ["timer 'huisverbod-verlenging'", "unknown event type 'Huisverbod.verlopen'"],
        id="unknown-satisfying-type",
    ),
    pytest.param(
        lambda r: _timer(r, "zsm-beslissing").update(notify=["om", "rechtbank"]),
        ["timer 'zsm-beslissing'", "unknown partner 'rechtbank'"],
        id="unknown-partner",
    ),
    pytest.param(
        lambda r: _timer(r, "zsm-beslissing").update(notify=[]),
        ["timer 'zsm-beslissing'", "notify is empty"],
        id="empty-notify",
    ),
    pytest.param(
        lambda r: _timer(r, "vt-onderzoek").update(duration={"weeks": 10, "days": 3}),
        ["timer 'vt-onderzoek'", "duration", "exactly one unit", "got days, weeks"],
        id="two-units",
    ),
    pytest.param(
        lambda r: _timer(r, "vt-onderzoek").update(duration={}),
        ["timer 'vt-onderzoek'", "exactly one unit", "got none"],
        id="no-unit",
    ),
    pytest.param(
        lambda r: _timer(r, "vt-onderzoek").update(duration={"fortnights": 5}),
        ["timer 'vt-onderzoek'", "duration.fortnights", "Extra inputs are not permitted"],
        id="unknown-unit",
    ),
    pytest.param(
        lambda r: _timer(r, "zsm-beslissing").update(duration={"hours": 0}),
        ["timer 'zsm-beslissing'", "duration.hours", "greater than 0"],
        id="zero-duration",
    ),
    pytest.param(
        lambda r: _timer(r, "device-bevestiging").update(match=["alarmid"]),
        ["timer 'device-bevestiging'", "match", "has no field 'alarmid'"],
        id="unknown-match-field",
    ),
    pytest.param(
        lambda r: _timer(r, "vt-acuut").update(when={"field": "acute", "equals": True}),
        ["timer 'vt-acuut'", "Melding.ontvangen has no field 'acute'"],
        id="unknown-condition-field",
    ),
    pytest.param(
        lambda r: _timer(r, "vt-acuut").update(when={"field": "acuut", "equals": "ja"}),
        ["timer 'vt-acuut'", "Melding.acuut is true or false"],
        id="condition-wrong-type",
    ),
    pytest.param(
        lambda r: _timer(r, "vt-acuut").update(when={"field": "acuut", "equals": True, "not_empty": True}),
        ["timer 'vt-acuut'", "exactly one of equals, in, not_empty"],
        id="condition-two-tests",
    ),
    pytest.param(
        lambda r: _timer(r, "vt-monitoring-3m")["satisfied_by"][0]["when"].update(field="maanden"),
        ["timer 'vt-monitoring-3m'", "Melding.monitoring_moment has no field 'maanden'"],
        id="unknown-satisfying-condition-field",
    ),
    pytest.param(
        lambda r: _pattern(r, "rode-vlaggen")["when"]["in"].append("wurging"),
        ["pattern 'rode-vlaggen'", "'wurging' is not a value of signalen (RisicoSignaal"],
        id="unknown-enum-value",
    ),
    pytest.param(
        lambda r: _timer(r, "huisverbod-verlenging").update(reminders=[{"days": 11}]),
        ["timer 'huisverbod-verlenging'", "reminder 11 days is not before the expiry"],
        id="reminder-after-expiry",
    ),
    pytest.param(
        lambda r: _timer(r, "huisverbod-verlenging").update(reminders=[{"working_days": 3}]),
        ["timer 'huisverbod-verlenging'", "cannot be compared"],
        id="reminder-other-unit",
    ),
    pytest.param(
        lambda r: _timer(r, "device-opvolging").pop("note"),
        ["timer 'device-opvolging'", "needs a note"],
        id="assumption-without-note",
    ),
    pytest.param(
        lambda r: _timer(r, "zsm-beslissing").pop("source"),
        ["timer 'zsm-beslissing'", "source", "Field required"],
        id="missing-source",
    ),
    pytest.param(
        lambda r: _timer(r, "zsm-beslissing").update(name="vt-acuut"),
        ["name 'vt-acuut' is used more than once"],
        id="duplicate-name",
    ),
    pytest.param(
        lambda r: _pattern(r, "radar").update(rollen=["slachtoffer", "dader"]),
        ["pattern 'radar'", "unknown role 'dader'"],
        id="radar-unknown-role",
    ),
    pytest.param(
        lambda r: _pattern(r, "radar").update(count=1),
        ["pattern 'radar'", "count", "greater than or equal to 2"],
        id="radar-count",
    ),
]


@pytest.mark.parametrize(("mutate", "fragments"), BROKEN)
def test_broken_copy_is_rejected(
    raw_termijnen: dict[str, Any], tmp_path: Path, mutate: Mutation, fragments: list[str]
) -> None:
    broken = copy.deepcopy(raw_termijnen)
    mutate(broken)
    path = tmp_path / "termijnen.yaml"
    path.write_text(yaml.safe_dump(broken, sort_keys=False), encoding="utf-8")
    with pytest.raises(TermijnenError) as excinfo:
        load_termijnen(path)
    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message, message


def test_every_problem_is_reported(raw_termijnen: dict[str, Any]) -> None:
    broken = copy.deepcopy(raw_termijnen)
    _timer(broken, "vt-acuut")["notify"] = ["brandweer"]
    _timer(broken, "zsm-beslissing")["duration"] = {"hours": 6, "minutes": 30}
    with pytest.raises(TermijnenError) as excinfo:
        parse_termijnen(broken)
    assert len(excinfo.value.problems) == 2
    assert "timer 'vt-acuut'" in excinfo.value.problems[0]
    assert "timer 'zsm-beslissing'" in excinfo.value.problems[1]


def test_cloudevents_types_are_accepted_and_normalised(raw_termijnen: dict[str, Any]) -> None:
    edited = copy.deepcopy(raw_termijnen)
    _timer(edited, "zsm-beslissing")["satisfied_by"] = ["nl.ketenbus.zsm.beslissing"]
    assert [r.type for r in parse_termijnen(edited).timer("zsm-beslissing").satisfied_by] == [
        "Zsm.beslissing"
    ]


def test_invalid_yaml_and_wrong_top_level(tmp_path: Path) -> None:
    path = tmp_path / "termijnen.yaml"
    path.write_text("timers: [unclosed\n", encoding="utf-8")
    with pytest.raises(TermijnenError, match="not valid YAML"):
        load_termijnen(path)
    with pytest.raises(TermijnenError, match="must be a mapping"):
        parse_termijnen(["timers"])
