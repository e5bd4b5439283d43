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


def test_ci_runs_the_tests_without_a_data_folder():
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("unset GSEQ_DATA") < ci.index(readme_test_command())
    assert "export GSEQ_DATA" not in ci


def test_readme_commands_need_no_data_folder():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Two commands.*?```bash\n(.*?)\n```", text, re.S).group(1)
    assert "gseq gcn" in block and "GSEQ_DATA" not in block
    assert "--index-url https://download.pytorch.org/whl/cpu" in block


def test_ci_installs_cpu_torch_first():
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("torch==2.13.0") < ci.index('-e ".[')


def test_a_wheel_ships_cora_and_the_book_and_finds_them_installed(tmp_path):
    """A non-editable install (``pip install .``) holds the data the README's commands read offline."""
    import os
    import shutil
    import subprocess
    import sys
    import zipfile

    src = tmp_path / "src"  # build from a copy: building writes build/ and *.egg-info next to the sources
    shutil.copytree(ROOT / "gseq", src / "gseq", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            str(src), "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("gseq-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    raw = "gseq/data/_bundled/planetoid/Cora/raw/"
    assert {raw + f"ind.cora.{part}" for part in ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")} <= names
    assert "gseq/data/_bundled/text/book_EN_grimms_fairy_tails.txt.gz" in names
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")  # installed as pip would lay it out, away from the repo
    env = {k: v for k, v in os.environ.items() if k not in ("GSEQ_DATA", "PYTHONPATH")}
    env.update(PYTHONPATH=str(tmp_path / "site"), GSEQ_CACHE=str(tmp_path / "cache"))
    code = ("import gseq.data as d; from pathlib import Path; assert Path(d.__file__).is_relative_to(Path(r'%s'));"
            "print(d.planetoid('Cora').num_nodes, len(d.load_text(d.BUNDLED_BOOK)) > 500000)" % (tmp_path / "site"))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split() == ["2708", "True"]
