"""Readers for conversation datasets: LoCoMo-format, LongMemEval and plain JSONL.

Each yields :class:`Conversation` objects — one memory scope (user) with its sessions of
messages in the shape ``Memory.add`` takes, plus questions with their evidence for
benchmarks. Dataset time strings become real timestamps.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterator

from ..errors import DatasetError, TimestampError
from ..timeutil import parse_timestamp


@dataclass
class Session:
    id: str
    started_at: datetime | None
    messages: list[dict[str, Any]]


@dataclass
class Question:
    id: str
    text: str
    answer: str
    category: str
    asked_at: datetime | None
    evidence_turns: list[str] = field(default_factory=list)  # metadata turn_id values
    evidence_sessions: list[str] = field(default_factory=list)
    abstention: bool = False
    # Evidence ids the file names that are no turn of the conversation (dropped from the
    # evidence; a question left with none is not scored, and is counted apart).
    unresolved: list[str] = field(default_factory=list)


@dataclass
class Conversation:
    user_id: str
    sessions: list[Session]
    questions: list[Question] = field(default_factory=list)

    @property
    def n_messages(self) -> int:
        return sum(len(s.messages) for s in self.sessions)


def _read_json(path: str | Path) -> Any:
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"no such file: {p}", path=str(p))
    try:
        opener = gzip.open if p.suffix == ".gz" else open
        with opener(p, "rt", encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{p} is not valid JSON: {exc}", path=str(p)) from exc


def _time(value: Any, where: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        return parse_timestamp(value, field=where)
    except TimestampError as exc:
        raise DatasetError(str(exc)) from exc


# -- LoCoMo ---------------------------------------------------------------------------------

_SESSION_KEY = re.compile(r"^session_(\d+)$")
# A turn id as LoCoMo-format files write it, and the slips seen in them: "D5:3." (stray
# punctuation), "D:11:26" (a stray colon), "D13:45:D20:19" (two run together), and ranges
# "D12:3-D12:5" / "D12:3-5" (every turn from the first to the last).
_TURN_ID = re.compile(r"D\s*:?\s*(\d+)\s*:\s*(\d+)(?:\s*[-\u2013]\s*(?:D\s*:?\s*(\d+)\s*:\s*)?(\d+))?")


def parse_evidence(values: Any) -> list[str]:
    """Turn ids named by a LoCoMo-format ``evidence`` field (a list of strings, or one), in
    order, without repeats; ranges within one session are expanded."""
    items = values if isinstance(values, list) else [values]
    out: list[str] = []
    for item in items:
        for m in _TURN_ID.finditer(str(item)):
            session, first = int(m.group(1)), int(m.group(2))
            last = int(m.group(4)) if m.group(4) else first
            if m.group(3) and int(m.group(3)) != session:  # a range across sessions: its ends only
                out += [f"D{session}:{first}", f"D{int(m.group(3))}:{last}"]
                continue
            out += [f"D{session}:{t}" for t in range(first, max(first, last) + 1)]
    return list(dict.fromkeys(out))


def load_locomo(path: str | Path) -> list[Conversation]:
    """LoCoMo-format conversations: ``conversation.session_N`` turns and ``qa`` with evidence.

    A turn's shared image is kept as text (``[shares an image: caption]``) since it is part of
    what was said. A turn may carry its own ``date_time``; otherwise turns take the session
    time plus one second per turn, so their order survives.
    """
    data = _read_json(path)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a list of LoCoMo conversations")
    out = []
    for ci, item in enumerate(data):
        try:
            conv = item["conversation"]
        except (KeyError, TypeError) as exc:
            raise DatasetError(f"{path}: conversation {ci} has no 'conversation' field") from exc
        user_id = str(item.get("sample_id") or f"conv-{ci}")
        numbers = sorted(int(m.group(1)) for k in conv if (m := _SESSION_KEY.match(k)))
        sessions = []
        for n in numbers:
            turns = conv.get(f"session_{n}") or []
            start = _time(conv.get(f"session_{n}_date_time"), f"{user_id} session_{n} date")
            messages = []
            for ti, turn in enumerate(turns):
                text = str(turn.get("text", "")).strip()
                caption = turn.get("blip_caption")
                if caption:
                    text = f"{text} [shares an image: {caption}]".strip()
                if not text:
                    continue
                ts = _time(turn.get("date_time"), f"{user_id} turn {turn.get('dia_id')}")
                if ts is None and start is not None:
                    ts = start + timedelta(seconds=ti)
                msg: dict[str, Any] = {
                    "role": "user",
                    "name": str(turn.get("speaker") or "unknown"),
                    "content": text,
                    "metadata": {"turn_id": str(turn.get("dia_id", f"D{n}:{ti + 1}"))},
                }
                if ts is not None:
                    msg["timestamp"] = ts
                messages.append(msg)
            sessions.append(Session(f"session_{n}", start, messages))
        questions = []
        last_time = max((s.started_at for s in sessions if s.started_at), default=None)
        turn_ids = {str(m["metadata"]["turn_id"]) for s in sessions for m in s.messages}
        for qi, qa in enumerate(item.get("qa") or []):
            named = parse_evidence(qa.get("evidence") or [])
            evidence = [t for t in named if t in turn_ids]
            category = str(qa.get("category", ""))
            questions.append(
                Question(
                    id=f"{user_id}-q{qi}",
                    text=str(qa.get("question", "")),
                    answer=str(qa.get("answer", qa.get("adversarial_answer", ""))),
                    category=category,
                    asked_at=last_time + timedelta(days=1) if last_time else None,
                    evidence_turns=evidence,
                    evidence_sessions=sorted({f"session_{e[1:].split(':')[0]}" for e in evidence}),
                    abstention=category == "5",
                    unresolved=[t for t in named if t not in turn_ids],
                )
            )
        out.append(Conversation(user_id, sessions, questions))
    return out


# -- LongMemEval ----------------------------------------------------------------------------


#: LongMemEval corpora: ``all`` indexes every turn (gold: turns flagged ``has_answer``);
#: ``official`` is the corpus of LongMemEval's own retrieval (``run_retrieval.py``,
#: ``process_item_flat_index``): user turns only, gold the user turns flagged ``has_answer``,
#: gold sessions the sessions holding them — so numbers compare with the paper's tables.
LME_CORPORA = ("all", "official")


def load_longmemeval(path: str | Path, *, corpus: str = "all") -> Iterator[Conversation]:
    """LongMemEval (S, M or oracle): one conversation history per question.

    Turns get ids ``<session_id>:<index>`` (index in the session as given, assistant turns
    counted, as in the official ids); evidence turns are those flagged ``has_answer``.
    """
    if corpus not in LME_CORPORA:
        raise DatasetError(f"unknown LongMemEval corpus {corpus!r}; use {' or '.join(LME_CORPORA)}")
    official = corpus == "official"
    data = _read_json(path)
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a list of LongMemEval questions")
    for qi, item in enumerate(data):
        try:
            qid = str(item["question_id"])
            sessions_raw = item["haystack_sessions"]
            session_ids = item["haystack_session_ids"]
            dates = item.get("haystack_dates") or [None] * len(sessions_raw)
        except (KeyError, TypeError) as exc:
            raise DatasetError(f"{path}: question {qi} lacks {exc}") from exc
        sessions, evidence = [], []
        for sid, date, turns in zip(session_ids, dates, sessions_raw):
            start = _time(date, f"{qid} session {sid} date")
            messages = []
            for ti, turn in enumerate(turns):
                content = str(turn.get("content", ""))
                role = str(turn.get("role", "user"))
                if not content.strip() or (official and role != "user"):
                    continue
                turn_id = f"{sid}:{ti}"
                if turn.get("has_answer"):
                    evidence.append(turn_id)
                msg: dict[str, Any] = {"role": role, "content": content, "metadata": {"turn_id": turn_id}}
                if start is not None:
                    msg["timestamp"] = start + timedelta(seconds=ti)
                messages.append(msg)
            sessions.append(Session(str(sid), start, messages))
        gold_sessions = (
            list(dict.fromkeys(t.rsplit(":", 1)[0] for t in evidence))
            if official
            else [str(s) for s in item.get("answer_session_ids") or []]
        )
        yield Conversation(
            qid,
            sessions,
            [
                Question(
                    id=qid,
                    text=str(item.get("question", "")),
                    answer=str(item.get("answer", "")),
                    category=str(item.get("question_type", "")),
                    asked_at=_time(item.get("question_date"), f"{qid} question_date"),
                    evidence_turns=evidence,
                    evidence_sessions=gold_sessions,
                    abstention=qid.endswith("_abs"),
                )
            ],
        )


# -- JSONL ----------------------------------------------------------------------------------


def json_objects(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each non-blank line of a JSONL file (gzip if it ends in .gz);
    a missing file, a line that is not JSON or not an object is a :class:`DatasetError`."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"no such file: {p}", path=str(p))
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DatasetError(f"{p}:{n}: not valid JSON: {exc}", path=str(p), line=n) from exc
            if not isinstance(row, dict):
                raise DatasetError(f"{p}:{n}: expected a JSON object", path=str(p), line=n)
            yield n, row


def load_jsonl(path: str | Path, *, default_user: str | None = None) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
    """One message per line: ``{"user_id", "session_id"?, "content", "role"?, "name"?,
    "timestamp"?, "metadata"?, "id"?, "recorded_at"?}`` (``engramdb export`` writes these, with
    ``text`` for content); yields (user_id, session_id, message)."""
    p = Path(path)
    for n, row in json_objects(p):
        user = row.pop("user_id", None) or default_user
        if not user:
            raise DatasetError(f"{p}:{n}: no user_id (pass --user for a default)", path=str(p), line=n)
        session = row.pop("session_id", None)
        for key in ("strength", "seq", "times", "stability", "last_used", "uses", "sightings"):
            row.pop(key, None)  # fields of an export derived again on import (id, recorded_at are kept)
        if "text" in row and "content" not in row:
            row["content"] = row.pop("text")
        yield str(user), session, row
