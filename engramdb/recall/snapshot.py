"""Recall indexes on disk: a fresh process searches a large user without rebuilding.

A user's :class:`~engramdb.recall.scope.ScopeIndex` is saved as a folder of ``.npy`` arrays
and a ``meta.json``, opened memory-mapped (nothing is read until a search touches it). Layout,
beside the database file ``memory.db``::

    memory.db.idx/<hash of user and model>/CURRENT        name of the complete snapshot
    memory.db.idx/<hash of user and model>/<version>-<nonce>/meta.json, *.npy

A snapshot is written to a new folder and becomes current by replacing ``CURRENT`` (an atomic
rename), so a crash at any moment leaves the previous snapshot or none, never half of one.
It is a cache of what the database holds: opened only if it was made from this database
(``store_id``), in this format (or one it upgrades, ``UPGRADED``), and the user's journal since
its version holds only appends — which the normal refresh then reads from the database.
Anything else: the index is rebuilt from the episodes, as when there is no snapshot.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import shutil
import threading
import uuid
from pathlib import Path

import numpy as np

from .scope import ScopeIndex

#: Bumped when what a snapshot holds changes; other formats are ignored (and rebuilt), except
#: those in ``UPGRADED``. 2: the unit vectors are stored cluster by cluster (``ClusteredIndex``);
#: 3: the segments' too; 4: with the clustered indexes' first pass (their rows on fewer axes);
#: 5: the clustered indexes' rows as int8 codes, a scale per row; 6: the full-text postings
#: found through their distinct terms (not a term key per posting).
FORMAT = 6
#: Formats opened all the same: what they lack is made on first use, and the index saved again
#: then (3 → 4: projecting the rows took 0.45 s at 100k episodes, rebuilding 13-18 s; 4 → 5:
#: float32 rows are searched as they are until then, and coded as they are saved; 5 → 6: the
#: terms' directory is made from the key per posting when opened).
UPGRADED = (3, 4, 5)

_POINTER = ".CURRENT.next"
#: Arrays a search reads at scattered places: full vectors re-scored, the postings of its terms,
#: a passage's row id or terms. Read ahead, every page read
#: brought its neighbours along (at 1M episodes 200 searches left the whole 6.9 GB snapshot in
#: memory, 4.6 GB of it in the process's RSS); told not to, the pages read are about what a
#: search touches. Arrays read whole (one value per episode or passage, the first pass's rows
#: cluster by cluster) are still read ahead.
SCATTERED = frozenset({
    f"{prefix}{name}" for prefix in ("lex_", "seglex_") for name in ("doc", "tf")
} | {"vec_matrix", "segvec_matrix", "terms_keys", "terms_tf", "unit_rowid"})
#: The kernel is asked to read those arrays in, in the background, when they take at most this
#: share of the memory available and at least ``WARM_MIN_BYTES``, ``WARM_STEP`` at a time (see
#: :func:`warm`).
WARM_SHARE = 0.5
WARM_MIN_BYTES = 64 << 20
WARM_STEP = 8 << 20
_warmed: set[str] = set()


def folder(root: Path, user_id: str, model: str | None) -> Path:
    digest = hashlib.sha256(f"{user_id}\0{model or ''}".encode("utf-8")).hexdigest()[:32]
    return root / digest


def save(scope: ScopeIndex, root: Path, store_id: str) -> Path:
    """Write the index as a new snapshot and make it current; older ones are removed."""
    base = folder(root, scope.user_id, scope.model)
    base.mkdir(parents=True, exist_ok=True)
    name = f"{scope.version}-{uuid.uuid4().hex[:8]}"
    tmp = base / f".{name}.tmp"
    tmp.mkdir()
    arrays, meta = scope.state()
    for key, arr in arrays.items():
        with open(tmp / f"{key}.npy", "wb") as fh:
            np.save(fh, np.ascontiguousarray(arr))
            fh.flush()
            os.fsync(fh.fileno())
    meta = {**meta, "format": FORMAT, "store_id": store_id, "arrays": sorted(arrays), "units": scope.units}
    (tmp / "meta.json").write_text(json.dumps(meta))
    # The new pointer is written inside the snapshot, so a kill at any point leaves nothing
    # but this one folder behind (a pointer of its own would outlive it).
    with open(tmp / _POINTER, "w") as fh:
        fh.write(name)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, base / name)
    os.replace(base / name / _POINTER, base / "CURRENT")  # the switch: atomic
    _sync_dir(base)
    for old in base.iterdir():  # earlier snapshots, and what a crash left half-written
        if old.name not in (name, "CURRENT"):
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
    return base / name


def load(root: Path, user_id: str, model: str | None, store_id: str) -> ScopeIndex | None:
    """The user's saved index, memory-mapped, or None (no snapshot, or not one to trust)."""
    base = folder(root, user_id, model)
    try:
        name = (base / "CURRENT").read_text().strip()
        meta = json.loads((base / name / "meta.json").read_text())
        if meta.get("format") not in (FORMAT, *UPGRADED) or meta.get("store_id") != store_id:
            return None
        if meta.get("user_id") != user_id or meta.get("model") != model:
            return None
        # Plain arrays over the maps: slicing a np.memmap costs ~25 us of Python each time, and a
        # search slices the vectors a hundred times (measured: 1.2 s in 40 searches at 1M).
        arrays = {k: _mapped(base / name / f"{k}.npy", k) for k in meta["arrays"]}
        scope = ScopeIndex.from_state(arrays, meta)
        scope.outdated = meta["format"] != FORMAT
        scope.to_warm = [str(base / name / f"{k}.npy") for k in meta["arrays"] if k in SCATTERED]
        return scope
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        return None  # missing, removed by another process meanwhile, or damaged: rebuild


def _mapped(path: Path, key: str) -> np.ndarray:
    """The saved array, memory-mapped read-only; the kernel told not to read ahead in those
    read at scattered places (see ``SCATTERED``)."""
    mapped = np.load(path, mmap_mode="r")
    handle = getattr(mapped, "_mmap", None)
    if key in SCATTERED and handle is not None and hasattr(mmap, "MADV_RANDOM"):
        try:
            handle.madvise(mmap.MADV_RANDOM)
        except OSError:  # advice only: the array reads the same without it
            pass
    return np.asarray(mapped)


def warm(paths: list[str]) -> threading.Thread | None:
    """Have the kernel read the files into the page cache, in the background, when memory holds
    them with room to spare (``WARM_SHARE`` of what is available, a memory cgroup's limit
    included): the arrays read at scattered places are not read ahead, so from a cold page cache
    a search would bring them in a page at a time. Each snapshot is warmed once per process, once
    it has answered a search: asked at once, the reads held up the first search's own (1.0 →
    2.5–3 s at 1M episodes from a cold page cache; a CLI call asks one question and is gone).
    The searches right after still wait behind them (at 1M, one or two for ~1–2 s), then run
    from memory. Returns the thread asking, or None."""
    if not hasattr(os, "posix_fadvise"):
        return None
    try:
        todo = [p for p in paths if p not in _warmed]
        size = sum(os.stat(p).st_size for p in todo)
    except OSError:
        return None
    if not todo or size < WARM_MIN_BYTES or size > WARM_SHARE * available_memory():
        return None
    _warmed.update(todo)

    def ask() -> None:
        # (asked 8 MB at a time, as the kernel reads at most that much per request; reading the
        # files through instead cost ~2 s of CPU per GB, taken from the searches running meanwhile)
        for path in todo:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:  # removed meanwhile (a newer snapshot, a deleted user): nothing to warm
                continue
            try:
                end = os.fstat(fd).st_size
                for at in range(0, end, WARM_STEP):
                    os.posix_fadvise(fd, at, WARM_STEP, os.POSIX_FADV_WILLNEED)
            except OSError:
                pass
            finally:
                os.close(fd)

    thread = threading.Thread(target=ask, name="engramdb-warm-index", daemon=True)
    thread.start()
    return thread


def available_memory() -> int:
    """Bytes of memory available now: the kernel's estimate, or what this process's memory
    cgroup (v2 or v1) has left under its limit, whichever is less; 0 when unknown."""
    try:
        info = Path("/proc/meminfo").read_text()
        free = int(info.split("MemAvailable:")[1].split()[0]) * 1024
    except (OSError, IndexError, ValueError):
        return 0
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, where = line.split(":", 2)
            if controllers == "":  # v2
                root = Path("/sys/fs/cgroup") / where.lstrip("/")
                limit, used = root / "memory.max", root / "memory.current"
            elif "memory" in controllers.split(","):  # v1
                root = Path("/sys/fs/cgroup/memory") / where.lstrip("/")
                limit, used = root / "memory.limit_in_bytes", root / "memory.usage_in_bytes"
            else:
                continue
            if limit.exists() and used.exists():
                cap = limit.read_text().strip()
                if cap.isdigit():
                    free = min(free, int(cap) - int(used.read_text().strip()))
    except (OSError, ValueError):
        pass
    return max(free, 0)


def _sync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
