"""The README's examples run as written (dataset paths swapped for bundled fixtures)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from engramdb.cli import main

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
FIX = Path(__file__).parent / "fixtures"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_first_screen_has_install_and_test_commands() -> None:
    first = "\n".join(README.splitlines()[:12])
    assert "pip install -e . && engramdb demo" in first
    assert "python -m pytest" in first


def test_python_quick_start_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    [code] = [b for b in _blocks("python") if "Memory(" in b and "postgresql://" not in b]
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "memory.db").exists()


def test_postgres_quick_start_runs(postgres_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import _with_schema, drop_schemas

    [code] = [b for b in _blocks("python") if "postgresql://" in b]
    example = re.search(r'"(postgresql://[^"]+)"', code).group(1)  # type: ignore[union-attr]
    schema = "t_readme_quick_start"
    exec(compile(code.replace(example, _with_schema(postgres_url, schema)), "README.md", "exec"), {})
    try:
        assert "Lisbon" in capsys.readouterr().out
    finally:
        drop_schemas(postgres_url, [schema])


def test_cli_quick_start_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # the README's own JSONL example line, eight times over, is "my-chats.jsonl"
    example = json.loads(re.search(r"`(\{\"user_id\".*?\})`", README).group(1))
    (tmp_path / "my-chats.jsonl").write_text(
        "".join(json.dumps({**example, "content": f"message {i}: I planted tomatoes."}) + "\n" for i in range(8))
    )
    [block] = [b for b in _blocks("bash") if "engramdb add" in b]
    env = {"ENGRAMDB_PATH": str(tmp_path / "default.db"), "COLUMNS": "200"}
    for line in block.strip().splitlines():
        argv = shlex.split(line.split("#")[0])
        assert argv[0] == "engramdb"
        argv = [str(FIX / "locomo_mini.json") if a.endswith("locomo10.json") else a for a in argv[1:]]
        res = CliRunner().invoke(main, argv, env=env)
        assert res.exit_code == 0, f"{line}\n{res.output}"
    assert (tmp_path / "backup.jsonl").read_text().count("\n") == 8


def test_structured_memory_example_runs(tmp_path: Path) -> None:
    from engramdb import Memory

    [code] = [b for b in _blocks("python") if "mem.query(" in b]
    with Memory(tmp_path / "s.db", embedder=None) as mem:
        for when, text in (("2024-02-01", "I spent $200 on a pottery workshop."), ("2024-03-01", "I spent $120 on a glazing workshop."),
                           ("2023-01-01", "I moved to Lisbon."), ("2024-05-01", "I was at the gym all morning.")):
            mem.add(text, user_id="u1", timestamp=when)
        scope: dict[str, object] = {"mem": mem}
        exec(compile(code, "README.md", "exec"), scope)
        rows = scope["rows"]
        assert len(rows) == 2 and rows.total() == {"USD": 320.0}  # type: ignore[attr-defined]
