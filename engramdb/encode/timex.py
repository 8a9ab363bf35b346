"""Find time expressions in text and resolve them against the time the text was said.

Pure and offline: ``find_times("I went there yesterday", anchor=2023-05-08)`` gives one
:class:`TimeMention` for "yesterday" covering 2023-05-07 (grain ``day``). Covered forms:

- deictic days: today, tonight, this morning, yesterday, last night, the day before yesterday,
  tomorrow, the day after tomorrow, the other day (fuzzy);
- counts: "3 days ago", "two weeks ago", "a couple of months ago", "a year ago", "in two weeks",
  "two weekends ago", "the week before last";
- named periods: last/this/next week, weekend, month, year, summer (and seasons);
- weekdays: last/this/next Saturday, "on Saturday" (past or coming, by tense);
- calendar: "in May", "May 2022", "in 2022", "May 7", "7 May 2023", "the 15th", "early June",
  ISO dates, "05/07/2023"; decades ("in the 90s").

Expressions that only look like times ("May I ask", "a second opinion", "the last one") are
left alone: "May" needs a calendar context, "second" and "minute" are never read as times.
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from .prefilter import finditer, literal_starts, lowered, search

__all__ = ["TimeMention", "find_times", "annotate"]


@dataclass(frozen=True)
class TimeMention:
    """A resolved time expression: ``[start, end]`` inclusive dates, with a granularity."""

    text: str
    start_char: int
    end_char: int
    start: date
    end: date
    grain: str  # day | weekend | week | month | season | year | decade | fuzzy

    def label(self) -> str:
        """Compact form for LLM-facing text: 2023-05-07, 2023-05, 2023, or a range."""
        if self.grain == "day" or self.start == self.end:
            return self.start.isoformat()
        if self.grain == "month":
            return self.start.strftime("%Y-%m")
        if self.grain == "year":
            return str(self.start.year)
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
_MONTHS["sept"] = 9
_WEEKDAYS = {d.lower(): i for i, d in enumerate(calendar.day_name)}
_WEEKDAYS.update({d.lower()[:3]: i for i, d in enumerate(calendar.day_name)})
_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
    "thirty": 30, "a couple of": 2, "a couple": 2, "couple of": 2, "a few": 3, "few": 3,
    "several": 3, "half a": 0.5,
}
_SEASONS = {"spring": (3, 5), "summer": (6, 8), "fall": (9, 11), "autumn": (9, 11), "winter": (12, 2)}

_NUM = r"(?P<num>\d+|a couple of|a couple|couple of|a few|few|several|half a|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty)"
_UNIT = r"(?P<unit>day|week|weekend|month|year|decade)s?"
_MONTH = r"(?P<month>january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)"
_WEEKDAY = r"(?P<wd>monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_ORD = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"

_FUTURE = re.compile(r"\b(will|'ll|going to|gonna|plan(?:ning)?|planned|next|upcoming|tomorrow|hope to|want to|can't wait|looking forward)\b", re.I)
_PAST = re.compile(r"\b(was|were|did|had|went|got|made|took|saw|ago|last|yesterday|visited|finished|started|bought|met|ran|came|told|said|\w+ed)\b", re.I)


def _d(x: datetime | date) -> date:
    return x.date() if isinstance(x, datetime) else x


def _month_range(y: int, m: int) -> tuple[date, date]:
    return date(y, m, 1), date(y, m, calendar.monthrange(y, m)[1])


def _add_months(y: int, m: int, delta: int) -> tuple[int, int]:
    idx = y * 12 + (m - 1) + delta
    return idx // 12, idx % 12 + 1


def _week_range(day: date) -> tuple[date, date]:
    monday = day - timedelta(days=day.weekday())
    return monday, monday + timedelta(days=6)


def _weekend_of(day: date) -> tuple[date, date]:
    sat = day - timedelta(days=day.weekday()) + timedelta(days=5)
    return sat, sat + timedelta(days=1)


def _num(text: str) -> float:
    t = text.lower().strip()
    return float(t) if t.isdigit() else float(_NUMBERS.get(t, 1))


def _tense(sentence: str) -> str:
    if _FUTURE.search(sentence):
        return "future"
    if _PAST.search(sentence):
        return "past"
    return "none"


def _season(y: int, name: str) -> tuple[date, date]:
    a, b = _SEASONS[name]
    if name == "winter":
        return date(y, 12, 1), _month_range(y + 1, 2)[1]
    return date(y, a, 1), _month_range(y, b)[1]


Resolver = "re.Pattern[str]"
# What a rule cannot match without: one cheap search per cue instead of every rule over every
# text (most messages name no month, weekday or season). A superset test: skipping a rule
# whose cue is absent never changes the result.
_CUES = {
    "digit": re.compile(r"\d"),
    "month": re.compile(_MONTH, re.I),
    "weekday": re.compile(_WEEKDAY, re.I),
    "season": re.compile(r"spring|summer|fall|autumn|winter", re.I),
    "unit": re.compile(r"day|week|month|year|decade", re.I),
    "deictic": re.compile(r"today|tonight|this (?:morning|afternoon|evening)|yesterday|last night|tomorrow", re.I),
}
_RULES: list[tuple[re.Pattern[str], str, frozenset[str]]] = []


def _rule(pattern: str, name: str, *needs: str) -> None:
    """Register a rule: its pattern, its name (see ``_resolve``) and the cues it needs."""
    assert set(needs) <= _CUES.keys(), needs  # programming error, import time
    _RULES.append((re.compile(r"(?<![\w-])" + pattern + r"(?![\w-])", re.I), name, frozenset(needs)))


# Order matters: longer, more specific patterns first (overlaps keep the first match).
_rule(r"(?P<y4>\d{4})-(?P<m2>\d{1,2})-(?P<d2>\d{1,2})", "iso", "digit")
_rule(r"(?P<m2>\d{1,2})/(?P<d2>\d{1,2})/(?P<y4>\d{4})", "us_date", "digit")
_rule(r"the day before yesterday", "day_before_yesterday", "deictic")
_rule(r"the day after tomorrow", "day_after_tomorrow", "deictic")
_rule(r"the week before last", "week_before_last", "unit")
_rule(r"the (?:month|year) before last", "period_before_last", "unit")
_rule(r"(?:(?:on|the)\s+)?" + _WEEKDAY + r",?\s+(?:the\s+)?" + _ORD + r"(?:\s+of)?\s+" + _MONTH + r"(?:,?\s+" + _YEAR + r")?", "wd_day_month", "weekday", "month", "digit")
_rule(_ORD + r"(?:\s+of)?\s+" + _MONTH + r",?\s+" + _YEAR, "day_month_year", "month", "digit")
_rule(_MONTH + r"\s+" + _ORD + r",?\s+" + _YEAR, "month_day_year", "month", "digit")
_rule(r"(?:early|mid|late|the (?:beginning|start|middle|end) of)[\s-]+" + _MONTH + r"(?:,?\s+" + _YEAR + r")?", "part_month", "month")
_rule(_MONTH + r",?\s+" + _YEAR, "month_year", "month", "digit")
_rule(r"(?:on\s+)?(?:the\s+)?" + _ORD + r"\s+of\s+" + _MONTH, "day_of_month", "month", "digit")
_rule(r"(?:on\s+)?" + _ORD + r"\s+" + _MONTH, "day_month", "month", "digit")
_rule(r"(?:on\s+)?" + _MONTH + r"\s+" + r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?(?![:\d])", "month_day", "month", "digit")
_rule(r"(?:in|during|since|from|until|by|of|last|this|next|early|late)\s+" + _MONTH, "in_month", "month")
_rule(r"(?:in|during|since|from|until|by|of|early|late|back in)\s+" + _YEAR, "in_year", "digit")
_rule(r"(?:in\s+)?the\s+(?:(?P<century>19|20))?(?P<decade>\d0)'?s", "decade", "digit")
_rule(r"(?P<rel>last|this|next|the coming|the past)\s+(?P<season>spring|summer|fall|autumn|winter)", "rel_season", "season")
_rule(r"(?:in|during)\s+(?:the\s+)?(?P<season>spring|summer|fall|autumn|winter)(?:\s+of\s+" + _YEAR + r")?", "in_season", "season")
_rule(r"(?P<rel>last|this|next|coming|past)\s+" + _WEEKDAY, "rel_weekday", "weekday")
_rule(r"(?P<rel>last|this|next|the past|the coming|the previous|the following)\s+(?P<unit>weekend|week|month|year)", "rel_period", "unit")
_rule(r"over the weekend", "over_weekend", "unit")
_rule(_NUM + r"\s+" + _UNIT + r"\s+(?:ago|back|earlier|before)", "ago", "unit")
_rule(r"(?:in|within)\s+" + _NUM + r"\s+" + _UNIT + r"(?!\s+(?:ago|back|earlier|before))", "in_future", "unit")
_rule(r"(?P<kw>today|tonight|this morning|this afternoon|this evening|yesterday|last night|tomorrow|yesterday (?:morning|afternoon|evening))", "deictic", "deictic")
_rule(r"the other day", "other_day", "unit")
_rule(r"(?:on|this|last|next)\s+" + _WEEKDAY, "on_weekday", "weekday")
_rule(r"on the " + _ORD, "on_the_nth", "digit")


def _resolve(name: str, m: re.Match[str], anchor: date, sentence: str) -> tuple[date, date, str] | None:
    g = {k: (v.lower() if isinstance(v, str) else v) for k, v in m.groupdict().items()}
    tense = _tense(sentence)
    if name in ("iso", "us_date"):
        try:
            d = date(int(g["y4"]), int(g["m2"]), int(g["d2"]))
        except ValueError:
            return None
        return d, d, "day"
    if name == "day_before_yesterday":
        d = anchor - timedelta(days=2)
        return d, d, "day"
    if name == "day_after_tomorrow":
        d = anchor + timedelta(days=2)
        return d, d, "day"
    if name == "week_before_last":
        a, b = _week_range(anchor - timedelta(days=14))
        return a, b, "week"
    if name == "period_before_last":
        if "month" in m.group(0).lower():
            y, mo = _add_months(anchor.year, anchor.month, -2)
            a, b = _month_range(y, mo)
            return a, b, "month"
        return date(anchor.year - 2, 1, 1), date(anchor.year - 2, 12, 31), "year"
    if name in ("wd_day_month", "day_month_year", "month_day_year", "day_of_month", "day_month", "month_day"):
        year = int(g["year"]) if g.get("year") else None
        mo, day = _MONTHS[g["month"]], int(g["day"])
        if mo == 5 and name == "month_day" and not m.group(0)[0].isupper() and m.group(0).lower().startswith("may"):
            return None  # "may 3 people come" — a modal, not a month
        if year is None:
            year = anchor.year
            if tense == "past" and (mo, day) > (anchor.month, anchor.day):
                year -= 1
            elif tense == "future" and (mo, day) < (anchor.month, anchor.day):
                year += 1
        try:
            d = date(year, mo, day)
        except ValueError:
            return None
        return d, d, "day"
    if name == "part_month":
        mo = _MONTHS[g["month"]]
        year = int(g["year"]) if g.get("year") else _year_for_month(anchor, mo, tense)
        a, b = _month_range(year, mo)
        text = m.group(0).lower()
        if "early" in text or "beginning" in text or "start" in text:
            return a, a + timedelta(days=9), "month_part"
        if "mid" in text or "middle" in text:
            return a + timedelta(days=10), a + timedelta(days=19), "month_part"
        return a + timedelta(days=20), b, "month_part"
    if name == "month_year":
        if g["month"] == "may" and not m.group(0)[0].isupper():
            return None
        a, b = _month_range(int(g["year"]), _MONTHS[g["month"]])
        return a, b, "month"
    if name == "in_month":
        word = m.group("month")
        if word.lower() == "may" and not word[0].isupper():
            return None
        mo = _MONTHS[g["month"]]
        text = m.group(0).lower()
        if text.startswith("last "):
            year = anchor.year if mo < anchor.month else anchor.year - 1
        elif text.startswith("next "):
            year = anchor.year if mo > anchor.month else anchor.year + 1
        elif text.startswith("this "):
            year = anchor.year
        else:
            year = _year_for_month(anchor, mo, tense)
        a, b = _month_range(year, mo)
        return a, b, "month"
    if name == "in_year":
        y = int(g["year"])
        return date(y, 1, 1), date(y, 12, 31), "year"
    if name == "decade":
        dec = int(g["decade"])
        century = int(g["century"]) * 100 if g.get("century") else (1900 if dec >= 30 else 2000)
        start = century + dec
        return date(start, 1, 1), date(start + 9, 12, 31), "decade"
    if name in ("rel_season", "in_season"):
        season = g["season"]
        rel = g.get("rel") or ""
        if g.get("year"):
            y = int(g["year"])
        else:
            a, _ = _season(anchor.year, season)
            current = a <= anchor <= _season(anchor.year, season)[1]
            if rel in ("last", "the past"):
                y = anchor.year - 1 if (a > anchor or current) else anchor.year
                if season == "winter" and anchor.month <= 2:
                    y = anchor.year - 2
                elif season == "winter":
                    y = anchor.year - 1
            elif rel in ("next", "the coming"):
                y = anchor.year + 1 if a <= anchor else anchor.year
            elif rel == "this":
                y = anchor.year - 1 if season == "winter" and anchor.month <= 2 else anchor.year
            else:
                y = anchor.year if (a <= anchor or tense != "past") else anchor.year - 1
                if season == "winter" and anchor.month <= 2:
                    y = anchor.year - 1
        a, b = _season(y, season)
        return a, b, "season"
    if name == "rel_weekday":
        return _weekday(anchor, _WEEKDAYS[g["wd"]], g["rel"])
    if name == "on_weekday":
        word = m.group(0).lower().split()[0]
        rel = word if word in ("this", "last", "next") else ("past" if tense == "past" else "coming")
        return _weekday(anchor, _WEEKDAYS[g["wd"]], rel)
    if name == "rel_period":
        return _rel_period(anchor, g["rel"], g["unit"])
    if name == "over_weekend":
        if anchor.weekday() >= 5:
            a, b = _weekend_of(anchor)
        elif tense == "future":
            a, b = _weekend_of(anchor)
        else:
            a, b = _weekend_of(anchor - timedelta(days=7))
        return a, b, "weekend"
    if name in ("ago", "in_future"):
        n = _num(g["num"])
        sign = -1 if name == "ago" else 1
        unit = g["unit"]
        if unit == "day":
            d = anchor + timedelta(days=sign * round(n))
            return d, d, "day"
        if unit == "week":
            d = anchor + timedelta(days=sign * round(7 * n))
            a, b = _week_range(d)
            return a, b, "week"
        if unit == "weekend":
            ref = anchor if anchor.weekday() >= 5 and name == "ago" else anchor
            a, b = _weekend_of(ref - timedelta(days=7 * round(n)) if name == "ago" else ref + timedelta(days=7 * round(n)))
            if name == "ago" and anchor.weekday() < 5:
                a, b = _weekend_of(anchor - timedelta(days=7 * round(n)))
            return a, b, "weekend"
        if unit == "month":
            if n == 0.5:
                d = anchor + timedelta(days=sign * 15)
                return d - timedelta(days=3), d + timedelta(days=3), "fuzzy"
            y, mo = _add_months(anchor.year, anchor.month, sign * round(n))
            a, b = _month_range(y, mo)
            return a, b, "month"
        if unit == "year":
            y = anchor.year + sign * round(n)
            return date(y, 1, 1), date(y, 12, 31), "year"
        if unit == "decade":
            y = anchor.year + sign * 10 * round(n)
            return date(y - 2, 1, 1), date(y + 2, 12, 31), "fuzzy"
    if name == "deictic":
        kw = g["kw"]
        if kw.startswith("yesterday") or kw == "last night":
            d = anchor - timedelta(days=1)
        elif kw == "tomorrow":
            d = anchor + timedelta(days=1)
        else:
            d = anchor
        return d, d, "day"
    if name == "other_day":
        return anchor - timedelta(days=7), anchor - timedelta(days=1), "fuzzy"
    if name == "on_the_nth":
        day = int(g["day"])
        if not 1 <= day <= 31:
            return None
        y, mo = anchor.year, anchor.month
        if tense == "past" and day > anchor.day:
            y, mo = _add_months(y, mo, -1)
        elif tense == "future" and day < anchor.day:
            y, mo = _add_months(y, mo, 1)
        try:
            d = date(y, mo, day)
        except ValueError:
            return None
        return d, d, "day"
    return None


def _year_for_month(anchor: date, month: int, tense: str) -> int:
    if tense == "past" and month > anchor.month:
        return anchor.year - 1
    if tense == "future" and month < anchor.month:
        return anchor.year + 1
    return anchor.year


def _weekday(anchor: date, wd: int, rel: str) -> tuple[date, date, str]:
    today = anchor.weekday()
    if rel in ("last", "past"):
        delta = (today - wd) % 7 or 7
        d = anchor - timedelta(days=delta)
    elif rel in ("this", "coming"):
        d = anchor + timedelta(days=(wd - today) % 7)  # the coming one (today if it is that day)
        if rel == "coming" and d == anchor:
            d += timedelta(days=7)
    else:  # next: that weekday in the next calendar week (Mon..Sun)
        d = anchor - timedelta(days=today) + timedelta(days=7 + wd)
    return d, d, "day"


def _rel_period(anchor: date, rel: str, unit: str) -> tuple[date, date, str]:
    step = {"last": -1, "the past": -1, "the previous": -1, "this": 0, "next": 1, "the coming": 1, "the following": 1}[rel]
    if unit == "week":
        a, b = _week_range(anchor + timedelta(days=7 * step))
        return a, b, "week"
    if unit == "weekend":
        if step < 0:
            # the most recent weekend that has ended (said on a Sunday, it is the one before)
            ref = anchor - timedelta(days=7) if anchor.weekday() >= 5 else anchor - timedelta(days=7)
            a, b = _weekend_of(ref)
        elif step == 0:
            a, b = _weekend_of(anchor)
        else:
            a, b = _weekend_of(anchor + timedelta(days=7))
        return a, b, "weekend"
    if unit == "month":
        y, mo = _add_months(anchor.year, anchor.month, step)
        a, b = _month_range(y, mo)
        return a, b, "month"
    y = anchor.year + step
    return date(y, 1, 1), date(y, 12, 31), "year"


_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")


#: The words each cue and rule must begin with (see :mod:`engramdb.encode.prefilter`).
_CUE_STARTS = {name: literal_starts(cue) for name, cue in _CUES.items()}
_RULE_STARTS = [literal_starts(pattern) for pattern, _, _ in _RULES]


#: Every match of every rule whose cues the text has, rule by rule: (rule name, match, the
#: sentence it is in).
Candidates = tuple[tuple[str, "re.Match[str]", str], ...]


def time_candidates(text: str) -> Candidates:
    """What :func:`find_times` resolves, found from the text alone: every match of every rule
    whose cues the text has, in the rules' order (which wins where two overlap), with the
    sentence it is in."""
    lower = lowered(text)
    cues = {name for name, cue in _CUES.items() if search(cue, _CUE_STARTS[name], text, lower)}
    if not cues:
        return ()
    found = [
        (name, m)
        for (pattern, name, needs), starts in zip(_RULES, _RULE_STARTS)
        if needs <= cues
        for m in finditer(pattern, starts, text, lower)
    ]
    if not found:
        return ()
    sentences = [(s.start(), s.end()) for s in _SENTENCE.finditer(text)] or [(0, len(text))]
    starts = [a for a, _ in sentences]

    def sentence(at: int) -> str:
        i = bisect_right(starts, at) - 1
        return text[sentences[i][0] : sentences[i][1]] if i >= 0 and at < sentences[i][1] else text

    return tuple((name, m, sentence(m.start())) for name, m in found)


def find_times(text: str, anchor: datetime | date, found: Candidates | None = None) -> list[TimeMention]:
    """All time expressions in ``text``, resolved against ``anchor``, in text order.
    ``found``: :func:`time_candidates` of ``text``, if known (they do not depend on ``anchor``)."""
    day = _d(anchor)
    taken: list[tuple[int, int]] = []
    out: list[TimeMention] = []
    if found is None:
        found = time_candidates(text)
    for name, m, sent in found:
        s, e = m.span()
        if any(s < b and a < e for a, b in taken):
            continue
        try:
            res = _resolve(name, m, day, sent)
        except (ValueError, OverflowError):  # "5000 years ago": no calendar date to give
            res = None
        if res is None:
            continue
        taken.append((s, e))
        out.append(TimeMention(m.group(0), s, e, res[0], res[1], res[2]))
    out.sort(key=lambda t: t.start_char)
    return out


def annotate(text: str, mentions: list[TimeMention]) -> str:
    """Insert resolved dates after each expression: "yesterday [2023-05-07]"."""
    if not mentions:
        return text
    parts, pos = [], 0
    for t in sorted(mentions, key=lambda t: t.start_char):
        if t.start_char < pos:
            continue
        parts.append(text[pos : t.end_char])
        parts.append(f" [{t.label()}]")
        pos = t.end_char
    parts.append(text[pos:])
    return "".join(parts)
