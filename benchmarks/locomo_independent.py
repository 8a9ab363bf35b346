"""An independent LoCoMo-format scorer: turn_all@10 from the public API alone.

It shares no code with ``engramdb bench`` beyond ``Memory``: it reads the file itself, builds
the messages itself, reads evidence ids with its own parser, and asks each question a day after
the conversation's last session, as the bench does. Use it to check the bench's
``turn_all@10hits`` (they should agree within a point):

    python benchmarks/locomo_independent.py ../shared/data/locomo/locomo10.json \
        --bench out/locomo-default.json [--split report]

Evidence ids that name no turn of the conversation are dropped; a question left with none is
skipped and counted.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from engramdb import Memory


def turn_ids_of(field: object) -> list[str]:
    """Every turn id in an evidence field, ranges expanded (D3:4-D3:6, D3:4-6)."""
    text = " ".join(map(str, field)) if isinstance(field, list) else str(field)
    text = text.replace("D:", "D")
    out: list[str] = []
    for part in re.split(r"[;,\s]+|(?<=\d):(?=D)", text):
        m = re.fullmatch(r"D(\d+):(\d+)(?:[-–]D?(?:(\d+):)?(\d+))?\W*", part)
        if not m:
            continue
        d, a = int(m.group(1)), int(m.group(2))
        b = int(m.group(4)) if m.group(4) else a
        out += [f"D{d}:{t}" for t in range(a, b + 1)]
    return out


def session_time(value: str) -> datetime:
    return datetime.strptime(value.strip(), "%I:%M %p on %d %B, %Y")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path")
    ap.add_argument("--bench", help="a bench result JSON to compare with")
    ap.add_argument("--split", choices=["all", "tune", "report"], default="all")
    args = ap.parse_args()
    data = json.loads(Path(args.path).read_text())
    half = (len(data) + 1) // 2
    data = data if args.split == "all" else data[:half] if args.split == "tune" else data[half:]
    scored = skipped = hit = 0
    with tempfile.TemporaryDirectory() as tmp, Memory(Path(tmp) / "m.db") as mem:
        for n, item in enumerate(data):
            conv, user = item["conversation"], str(item.get("sample_id") or n)
            known: set[str] = set()
            last = None
            keys = sorted((int(k.split("_")[1]), k) for k in conv if re.fullmatch(r"session_\d+", k))
            for _, key in keys:
                start = session_time(conv[f"{key}_date_time"])
                last = max(last or start, start)
                msgs = []
                for i, t in enumerate(conv[key]):
                    text = t["text"].strip() + (f" [shares an image: {t['blip_caption']}]" if t.get("blip_caption") else "")
                    msgs.append({"role": "user", "name": t["speaker"], "content": text.strip(),
                                 "timestamp": start + timedelta(seconds=i), "metadata": {"turn_id": t["dia_id"]}})
                    known.add(t["dia_id"])
                if msgs:
                    mem.add(msgs, user_id=user, session_id=key)
            asked = (last or datetime(2000, 1, 1)) + timedelta(days=1)
            for qa in item["qa"]:
                if str(qa.get("category")) == "5":
                    continue
                gold = [t for t in turn_ids_of(qa.get("evidence", [])) if t in known]
                if not gold:
                    skipped += 1
                    continue
                hits = mem.search(str(qa["question"]) or "?", user_id=user, limit=10, now=asked)
                found = {e.metadata.get("turn_id") for h in hits for e in h.episodes}
                scored += 1
                hit += all(t in found for t in gold)
    mine = hit / scored
    print(f"independent: turn_all@10 {mine:.4f} over {scored} questions ({skipped} without resolvable evidence)")
    if args.bench:
        doc = json.loads(Path(args.bench).read_text())
        theirs = doc["summary"]["all"]["turn_all@10hits"]
        n = int(doc["summary"]["all"]["n"])
        print(f"bench:       turn_all@10 {theirs:.4f} over {n} questions; difference {100 * (theirs - mine):+.2f} points")
        return 0 if abs(theirs - mine) <= 0.01 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
