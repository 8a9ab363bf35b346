"""The public surface: exported names, error tree."""

import builtins

import engramdb
from engramdb import errors


def test_all_is_sorted_and_importable() -> None:
    assert engramdb.__all__ == sorted(engramdb.__all__)
    for name in engramdb.__all__:
        assert hasattr(engramdb, name), name


def test_every_error_derives_from_engram_error() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.EngramError)
        # never shadow a builtin (NotFoundError, not LookupError; StoreError, not IOError)
        assert not hasattr(builtins, name), name


def test_errors_carry_context() -> None:
    e = errors.ContentError("message 3: content is empty", index=3, field="content")
    assert e.index == 3 and e.field == "content" and e.context == {"index": 3, "field": "content"}
    assert str(e) == "message 3: content is empty"


def test_missing_dependency_names_the_extra() -> None:
    e = errors.MissingDependencyError.for_extra("matplotlib", "bench", "Plots")
    assert "engramdb[bench]" in str(e)


def test_every_module_imports_on_its_own() -> None:
    # Each module must import first in a fresh interpreter: an import cycle only shows when
    # the module that closes it is the first one imported.
    import pkgutil
    import subprocess
    import sys

    names = [m.name for m in pkgutil.walk_packages(engramdb.__path__, "engramdb.") if not m.name.endswith("__main__")]
    code = "import importlib, sys; importlib.import_module(sys.argv[1])"
    procs = {n: subprocess.Popen([sys.executable, "-c", code, n], stderr=subprocess.PIPE, text=True) for n in names}
    for name, p in procs.items():
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, f"{name}: {err[-500:]}"
