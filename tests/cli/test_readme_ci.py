"""The README's Quickstart is what CI runs: two commands, the second is `.ci/run`'s."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_quickstart_has_exactly_two_commands():
    commands = quickstart_commands()
    assert len(commands) == 2, commands
    assert "winback demo" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_and_nothing_else():
    script = (ROOT / ".ci" / "run").read_text().splitlines()
    body = [
        line.strip()
        for line in script
        if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))
    ]
    assert body == [quickstart_commands()[1]]
