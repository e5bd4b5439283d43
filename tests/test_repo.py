"""The repository keeps its promises: CI runs the README's test command, and the docs cover the API."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_test_command() -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"Run the tests.*?```bash\n(.*?)\n```", text, re.S)
    assert block, "README.md must give the test command in a bash block after 'Run the tests'"
    return block.group(1).strip()


def test_ci_runs_the_readme_test_command():
    command = readme_test_command()
    assert "pytest" in command
    ci = (ROOT / ".ci" / "run").read_text()
    assert command in ci, f".ci/run must run the README's test command: {command!r}"


def test_ci_installs_cpu_torch_first():
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("torch==2.13.0") < ci.index('-e ".[')
