"""The public surface: exported names, error tree."""

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
        assert not hasattr(__builtins__, name) or name == "EngramError"


def test_errors_carry_context() -> None:
    e = errors.ContentError("message 3: content is empty", index=3, field="content")
    assert e.index == 3 and e.field == "content" and e.context == {"index": 3, "field": "content"}
    assert str(e) == "message 3: content is empty"


def test_missing_dependency_names_the_extra() -> None:
    e = errors.MissingDependencyError.for_extra("matplotlib", "bench", "Plots")
    assert "engramdb[bench]" in str(e)
