"""Find amounts in text and normalise their units — pure and offline.

``find_quantities("I paid $1,200 for it and spent 2 hours and 30 minutes")`` gives money (1200
USD) and two durations (2 h, 0.5 h). Kinds and their normal units:

- money: a currency code (``USD`` for "$"/"dollars"/"bucks", ``EUR``, ``GBP`` for "£", ``JPY``,
  ``INR``, ``CAD``/``AUD`` when named); "5k", "1.5 million" and number words are read;
- duration: hours ("30 minutes" is 0.5; a day is 24, a week 168, a month 730.5, a year 8766);
- weight: kilograms ("70 pounds"/"lbs" is 31.75; "pounds" after "£" or a currency word is money);
- distance: kilometres (miles are 1.609);
- count: the thing counted, singular ("3 weddings" is 3 ``wedding``; "a dozen eggs" is 12 ``egg``).

Amounts that are not quantities of anything told are left alone: times of day ("at 5 pm"),
years and dates ("in 2019", "May 7"), ages ("I'm 32"), ordinals ("my 2nd"), and ranges are read
by their first figure ("10-12 hours" is 10 h, with ``approx=True``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["Quantity", "find_quantities", "singular", "UNITS", "convert"]


@dataclass(frozen=True)
class Quantity:
    value: float  # in the normal unit of its kind
    unit: str  # USD, hours, kg, km, or the counted thing ("wedding")
    kind: str  # money | duration | weight | distance | count
    text: str  # as written
    start: int
    end: int
    approx: bool = False  # "about", "around", a range, "a couple of"


_WORD_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40,
    "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "a hundred": 100,
    "a thousand": 1000, "half a": 0.5, "half an": 0.5, "a half": 0.5, "a dozen": 12, "dozen": 12,
    "a couple of": 2, "a couple": 2, "couple of": 2, "a few": 3, "several": 3, "both": 2,
}
_APPROX_WORDS = {"a couple of", "a couple", "couple of", "a few", "several"}
_TENS = r"(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)"
_UNITS_W = r"(?:one|two|three|four|five|six|seven|eight|nine)"
_WORD_NUM = (
    r"(?:" + _TENS + r"(?:[- ]" + _UNITS_W + r")?|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|"
    r"eighteen|nineteen|ten|" + _UNITS_W + r"|a hundred|hundred|a thousand|half an?|a half|a dozen|dozen|"
    r"a couple of|a couple|couple of|a few|several|both|an?)"
)
_DIGITS = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_SCALE = r"(?:\s*(?:k|K|thousand|grand|million|m|M|bn|billion)\b)?"
_NUM = r"(?P<num>" + _DIGITS + r"|(?<![\w'])" + _WORD_NUM + r"(?![\w']))"
_RANGE = r"(?:\s*(?:-|–|to|or)\s*(?:" + _DIGITS + r"|" + _WORD_NUM + r"))?"
_APPROX = re.compile(r"\b(?:about|around|roughly|approximately|almost|nearly|over|under|some|like|~)\s*\W?$", re.I)

_CURRENCY_SIGN = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR"}
_CURRENCY_WORD = {
    "dollar": "USD", "dollars": "USD", "bucks": "USD", "usd": "USD", "euro": "EUR", "euros": "EUR", "eur": "EUR",
    "pound sterling": "GBP", "pounds sterling": "GBP", "quid": "GBP", "gbp": "GBP", "yen": "JPY", "jpy": "JPY",
    "rupees": "INR", "rupee": "INR", "inr": "INR", "cad": "CAD", "canadian dollars": "CAD",
    "aud": "AUD", "australian dollars": "AUD",
}
_DURATION = {
    "second": 1 / 3600, "seconds": 1 / 3600, "sec": 1 / 3600, "secs": 1 / 3600,
    "minute": 1 / 60, "minutes": 1 / 60, "min": 1 / 60, "mins": 1 / 60,
    "hour": 1.0, "hours": 1.0, "hr": 1.0, "hrs": 1.0, "h": 1.0,
    "day": 24.0, "days": 24.0, "night": 24.0, "nights": 24.0,
    "week": 168.0, "weeks": 168.0, "weekend": 48.0, "weekends": 48.0,
    "month": 730.5, "months": 730.5, "year": 8766.0, "years": 8766.0,
}
_WEIGHT = {"kg": 1.0, "kgs": 1.0, "kilo": 1.0, "kilos": 1.0, "kilogram": 1.0, "kilograms": 1.0,
           "g": 0.001, "gram": 0.001, "grams": 0.001, "lb": 0.45359237, "lbs": 0.45359237,
           "pound": 0.45359237, "pounds": 0.45359237, "oz": 0.028349523, "ounce": 0.028349523,
           "ounces": 0.028349523, "ton": 1000.0, "tons": 1000.0, "tonne": 1000.0, "tonnes": 1000.0}
_DISTANCE = {"km": 1.0, "kms": 1.0, "kilometer": 1.0, "kilometers": 1.0, "kilometre": 1.0, "kilometres": 1.0,
             "mile": 1.609344, "miles": 1.609344, "mi": 1.609344, "m": 0.001, "meter": 0.001,
             "meters": 0.001, "metre": 0.001, "metres": 0.001, "feet": 0.0003048, "ft": 0.0003048}
#: Each kind's normal unit, and every unit word read (for :func:`convert`).
UNITS = {"duration": "hours", "weight": "kg", "distance": "km"}

_UNIT_WORDS = sorted(
    list(_CURRENCY_WORD) + list(_DURATION) + list(_WEIGHT) + list(_DISTANCE), key=len, reverse=True
)
_UNIT = r"(?P<unit>" + "|".join(re.escape(u) for u in _UNIT_WORDS) + r")\b"
_MONEY_SIGN = re.compile(
    r"(?P<sign>[$€£¥₹])\s?(?P<num>" + _DIGITS + r")(?P<scale>" + _SCALE + r")" + _RANGE, re.I
)
_WITH_UNIT = re.compile(
    _NUM + r"(?P<scale>" + _SCALE + r")" + _RANGE + r"(?:\s+|-)(?:(?:more|extra|additional|full|whole|long|straight)\s+)?"
    + _UNIT, re.I
)
# A count: a number, up to two describing words, and the thing ("3 online courses", "two aquariums").
_NOT_COUNTED = (
    r"(?:am|pm|a\.m\.|p\.m\.|o'clock|percent|%|times?|st|nd|rd|th|of|or|and|to|in|on|at|for|by|from|with|"
    r"is|are|was|were|more|less|out|per|each|other|others|ones?|things?|stars?|points?|degrees?|years? old|"
    r"yrs? old|x|am\b)"
)
_COUNT = re.compile(
    r"(?<![\w$€£¥₹.,'])" + _NUM + r"(?P<scale>" + _SCALE + r")" + _RANGE
    + r"\s+(?!" + _NOT_COUNTED + r"\b)(?P<thing>(?:[a-z][\w'-]*\s+){0,2}?(?:[a-z][\w-]*s|fish|people|children|sheep|deer|geese|mice|men|women|teeth|feet))\b(?!')",
    re.I,
)
_COUNT_ONE = re.compile(  # "a dozen eggs", "one new guitar" — singular only after "one"
    r"(?<![\w'])(?P<num>one|a dozen)\s+(?P<thing>(?:[a-z][\w'-]*\s+){0,2}?[a-z][\w'-]*)\b", re.I
)
_YEAR = re.compile(r"^(?:1[89]|20)\d\d$")


def _number(text: str, scale: str = "") -> float | None:
    t = text.lower().strip()
    if t in _WORD_NUMBERS:
        v = float(_WORD_NUMBERS[t])
    elif re.fullmatch(_DIGITS, t):
        v = float(t.replace(",", ""))
    else:
        parts = re.split(r"[- ]", t)
        if len(parts) == 2 and parts[0] in _WORD_NUMBERS and parts[1] in _WORD_NUMBERS:
            v = float(_WORD_NUMBERS[parts[0]] + _WORD_NUMBERS[parts[1]])
        else:
            return None
    s = scale.strip().lower()
    if s in ("k", "thousand", "grand"):
        v *= 1000
    elif s in ("m", "million"):
        v *= 1_000_000
    elif s in ("bn", "billion"):
        v *= 1_000_000_000
    return v


_IRREGULAR = {"people": "person", "children": "child", "men": "man", "women": "woman", "feet": "foot",
              "teeth": "tooth", "mice": "mouse", "geese": "goose", "fish": "fish", "sheep": "sheep",
              "series": "series", "species": "species", "classes": "class", "glasses": "glass",
              "dresses": "dress", "buses": "bus", "boxes": "box", "dishes": "dish", "matches": "match",
              "watches": "watch", "lunches": "lunch", "sandwiches": "sandwich", "couches": "couch",
              "coaches": "coach", "beaches": "beach", "churches": "church", "businesses": "business",
              "movies": "movie", "cookies": "cookie", "zombies": "zombie", "calories": "calorie",
              "pies": "pie", "ties": "tie", "lies": "lie"}


@lru_cache(maxsize=65_536)  # an aggregating search asks it of every word of 50 hits (~1,000 a question)
def singular(word: str) -> str:
    """A counted thing's last word in the singular, lower case ("Online Courses" -> "online course")."""
    words = word.lower().split()
    if not words:
        return ""
    last = words[-1]
    if last in _IRREGULAR:
        last = _IRREGULAR[last]
    elif last.endswith("ies") and len(last) > 4:
        last = last[:-3] + "y"
    elif re.search(r"(?:ss|sh|ch|x|zz)es$", last):
        last = last[:-2]
    elif last.endswith("s") and not last.endswith(("ss", "us", "is")):
        last = last[:-1]
    return " ".join(words[:-1] + [last])


def _is_approx(text: str, before: str, num: str, ranged: bool) -> bool:
    return ranged or num.lower() in _APPROX_WORDS or bool(_APPROX.search(before[-16:]))


def _not_a_quantity(text: str, m: re.Match[str]) -> bool:
    """Years, dates, times of day and clock readings are not amounts of anything."""
    num = m.group("num")
    if _YEAR.match(num) and not m.groupdict().get("sign"):
        return True
    after = text[m.end("num") : m.end("num") + 4]
    # an age, or a time counted from now ("5 years older", "3 days ago")
    return bool(re.match(r"[:/]\d", after)) or bool(
        re.match(r"[\s-]+(?:old|older|younger|ago|later|earlier|from now)\b", text[m.end() :])
    )


def find_quantities(text: str) -> list[Quantity]:
    """The amounts of ``text``, in order (see the module doc for what is read)."""
    out: list[Quantity] = []
    taken: list[tuple[int, int]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= x or a >= y for x, y in taken)

    for m in _MONEY_SIGN.finditer(text):
        v = _number(m.group("num"), m.group("scale"))
        if v is None:
            continue
        unit = _CURRENCY_SIGN[m.group("sign")]
        end = m.end()
        after = re.match(r"\s*(?P<w>canadian dollars|australian dollars|cad|aud|usd|dollars?)\b", text[end:], re.I)
        if after and after.group("w").lower() in _CURRENCY_WORD:  # "$50 CAD"
            unit = _CURRENCY_WORD[after.group("w").lower()] if after.group("w").lower() not in ("dollar", "dollars") else unit
            end += after.end()
        ranged = bool(re.search(r"(?:-|–|to|or)\s*\S", m.group(0)[m.end("scale") - m.start() :]))
        out.append(Quantity(v, unit, "money", text[m.start() : end], m.start(), end,
                            _is_approx(text, text[: m.start()], "", ranged)))
        taken.append((m.start(), end))
    for m in _WITH_UNIT.finditer(text):
        if not free(m.start(), m.end()) or _not_a_quantity(text, m):
            continue
        v = _number(m.group("num"), m.group("scale"))
        if v is None:
            continue
        word = m.group("unit").lower()
        before = text[: m.start()]
        ranged = m.end("scale") < m.start("unit") and bool(
            re.match(r"\s*(?:-|–|to|or)\s*\S", text[m.end("scale") : m.start("unit")])
        )
        approx = _is_approx(text, before, m.group("num"), ranged)
        if word in _CURRENCY_WORD:
            q = Quantity(v, _CURRENCY_WORD[word], "money", m.group(0), m.start(), m.end(), approx)
        elif word in ("pound", "pounds") and re.search(r"(?:£|sterling|gbp)\s*$", before[-12:], re.I):
            q = Quantity(v, "GBP", "money", m.group(0), m.start(), m.end(), approx)
        elif word in _DURATION:
            if word in ("h", "min", "sec") and not re.match(r"\d", m.group("num")):
                continue
            q = Quantity(v * _DURATION[word], "hours", "duration", m.group(0), m.start(), m.end(), approx)
        elif word in _WEIGHT:
            if word in ("g", "oz") and not re.match(r"\d", m.group("num")):
                continue
            q = Quantity(v * _WEIGHT[word], "kg", "weight", m.group(0), m.start(), m.end(), approx)
        elif word in _DISTANCE:
            if word in ("m", "mi", "ft") and not re.match(r"\d", m.group("num")):
                continue
            q = Quantity(v * _DISTANCE[word], "km", "distance", m.group(0), m.start(), m.end(), approx)
        else:
            continue
        if m.group("num").lower() in ("a", "an") and q.kind != "duration":
            continue  # "a pound of", "a mile away": not told as an amount
        out.append(q)
        taken.append((m.start(), m.end()))
    for rx in (_COUNT, _COUNT_ONE):
        for m in rx.finditer(text):
            if not free(m.start(), m.end()) or _not_a_quantity(text, m):
                continue
            num = m.group("num").lower()
            if num in ("a", "an", "both", "several", "a few") or (num == "a couple" and rx is _COUNT):
                continue  # "a dog", "both of": not counts told
            scale = m.groupdict().get("scale") or ""
            v = _number(num, scale)
            if v is None:
                continue
            thing = singular(m.group("thing"))
            if not thing or thing.split()[-1] in _DURATION or thing.split()[-1] in _WEIGHT:
                continue
            before = text[max(0, m.start() - 12) : m.start()]
            if re.search(r"\b(?:I'm|I am|aged?|age of|at|number|no\.|#|page|room|chapter|level|grade|size)\s*$", before, re.I):
                continue
            ranged = bool(re.search(r"\d\s*(?:-|–|to|or)\s*\d", m.group(0)))
            out.append(Quantity(v, thing, "count", m.group(0), m.start(), m.end(),
                                _is_approx(text, text[: m.start()], num, ranged)))
            taken.append((m.start(), m.end()))
    return sorted(out, key=lambda q: q.start)


def convert(value: float, unit: str, to: str) -> float | None:
    """``value`` in ``unit`` (a normal unit, or any unit word read) as ``to``; None across kinds."""
    if unit == to:
        return value
    for table in (_DURATION, _WEIGHT, _DISTANCE):
        a, b = table.get(unit.lower()), table.get(to.lower())
        if a is not None and b is not None:
            return value * a / b
    return None
