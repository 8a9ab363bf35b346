"""Forgetting on request, verifiably: what a deletion removed, and a check that it is gone.

A :class:`DeletionReceipt` lists what went (episode ids, counts per kind), when, a digest of
the deleted episodes, and *probes*: salted hashes of the word trigrams of the deleted texts
that nothing left in the store contained. The receipt keeps no text (a deletion that kept the
text in its receipt would not be one): a probe can only be matched by hashing the same three
words with the same salt. :func:`residue` hashes every word trigram of what a store still
holds — its tables, and the raw bytes of its files — and counts the probes it meets; a clean
deletion meets none, now and whenever the receipt is checked again.

A receipt cannot be read back into the text, but it can confirm a guess (hash the guessed three
words with its salt): keep receipts as private as the memories were.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Iterator

from .encode.text import words

#: Probes kept per receipt at most (the rarest trigrams of the deleted texts come first).
MAX_PROBES = 2000


def trigrams(text: str) -> Iterator[str]:
    ws = words(text)
    for i in range(len(ws) - 2):
        yield " ".join(ws[i : i + 3])


def probe(salt: str, gram: str) -> str:
    return hashlib.sha256(f"{salt}\0{gram}".encode("utf-8")).hexdigest()[:24]


def probes_for(deleted: Iterable[str], remaining: Iterable[str], salt: str) -> list[str]:
    """Probes of the trigrams in ``deleted`` texts that no ``remaining`` text has (what the
    deletion should make disappear; a phrase another memory also says is not evidence)."""
    gone = {g for t in deleted for g in trigrams(t)}
    for t in remaining:
        gone.difference_update(trigrams(t))
        if not gone:
            break
    return sorted(probe(salt, g) for g in gone)[:MAX_PROBES]


def residue(probes: Iterable[str], salt: str, texts: Iterable[str], files: Iterable[Path]) -> dict[str, int]:
    """How many probes still match anywhere: in ``texts`` (the store's rows) and in the raw
    bytes of ``files`` (the database and its WAL, read as UTF-8, undecodable bytes skipped)."""
    wanted = set(probes)
    found_rows: set[str] = set()
    for t in texts:
        found_rows.update(p for p in (probe(salt, g) for g in trigrams(t)) if p in wanted)
    found_bytes: set[str] = set()
    for f in files:
        if not f.exists():
            continue
        data = f.read_bytes().decode("utf-8", errors="ignore")
        found_bytes.update(p for p in (probe(salt, g) for g in trigrams(data)) if p in wanted)
    return {"probes": len(wanted), "in_rows": len(found_rows), "in_file_bytes": len(found_bytes)}


@dataclass(frozen=True)
class DeletionReceipt:
    """What a :meth:`Memory.forget` or :meth:`Memory.delete` removed, and the check that it is gone.

    ``removed``: counts per kind (episodes, units, vectors, facts, entities, segments…);
    ``episode_ids``: the episodes deleted; ``digest``: SHA-256 over their ids and content hashes
    (to match against a backup, say); ``salt`` and ``probes``: see the module; ``check``: the
    residue check run right after the deletion (``clean`` when no probe matched). A receipt with
    ``dry_run`` shows what would go; nothing was removed.
    """

    id: str
    user_id: str
    created_at: datetime
    request: dict[str, Any]
    episode_ids: tuple[str, ...]
    removed: dict[str, int]
    digest: str
    salt: str
    probes: tuple[str, ...]
    check: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False

    @property
    def clean(self) -> bool:
        """Checked, and no probe met (False for a dry run or an unchecked deletion)."""
        return not self.dry_run and self.check.get("in_rows", 1) == 0 and self.check.get("in_file_bytes", 1) == 0

    def to_dict(self) -> dict[str, Any]:
        from .wire import dump  # the one serialisation (wire imports what imports this module)

        out: dict[str, Any] = dump(self)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DeletionReceipt:
        return cls(
            id=str(d["id"]), user_id=str(d["user_id"]), created_at=datetime.fromisoformat(d["created_at"]),
            request=dict(d["request"]), episode_ids=tuple(d["episode_ids"]), removed=dict(d["removed"]),
            digest=str(d["digest"]), salt=str(d["salt"]), probes=tuple(d["probes"]), check=dict(d.get("check", {})),
            dry_run=bool(d.get("dry_run", False)),
        )
