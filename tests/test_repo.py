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


# ---------------------------------------------------------------------- imports run downwards, no cycles
#: the import order, lowest first: a module imports from its own package, or from packages of its rank or lower
#: (gseq.checks, the argument checks, imports nothing from gseq: every package may use it; gseq.config, the
#: run configs, imports only gseq.checks)
RANKS = {"ops": 0, "io": 0, "checks": 0, "config": 0, "layers": 1, "data": 2, "loader": 2, "models": 2, "train": 2, "plots": 2, "tasks": 3,
         "analysis": 4, "cli": 5, "__main__": 5}
#: imports between packages of one rank that are refused all the same: models are nn.Modules (no loop, no
#: loader, no figures, no tasks); data knows no loop
REFUSED = {"models": {"train", "loader", "plots", "tasks"}, "data": {"train", "models", "loader", "plots", "tasks"}}
#: the namespace itself (lazy, imports nothing of its own) is above and below everything
EXEMPT = {"gseq", "gseq._lazy"}


def gseq_modules() -> dict[str, Path]:
    modules = {}
    for path in sorted((ROOT / "gseq").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports_of(name: str, path: Path, modules) -> set[str]:
    """The gseq modules ``name`` imports anywhere (inside functions too), each resolved to its file's module."""
    import ast

    def known(target: str) -> str:
        while target not in modules:
            target = target.rpartition(".")[0]
        return target

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {known(a.name) for a in node.names if a.name.split(".")[0] == "gseq"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
            elif (node.module or "").split(".")[0] == "gseq":
                base = node.module
            else:
                continue
            submodules = {f"{base}.{a.name}" for a in node.names} & set(modules)
            if len(submodules) < len(node.names):  # names defined in base itself, not only its submodules
                found.add(known(base))
            found |= submodules
    return found - {name}


def import_graph() -> dict[str, set[str]]:
    modules = gseq_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def top(module: str) -> str:
    return module.split(".")[1]


def test_every_package_has_a_rank():
    assert {top(m) for m in gseq_modules() if m not in EXEMPT} <= set(RANKS), "give the new package a rank in RANKS"


def test_the_import_graph_is_read_correctly():
    graph = import_graph()
    assert "gseq.ops.csr" in graph["gseq.ops"]  # from .csr import CSR
    assert "gseq.train.trainer" in graph["gseq.train"]
    assert "gseq.layers.gcn" in graph["gseq.models.gcn_net"]  # from ..layers.gcn import GCN
    assert "gseq.tasks.node_classification" in graph["gseq.cli.gcn"]  # inside a function


def test_no_module_imports_upwards():
    upward = []
    for src, targets in import_graph().items():
        if src in EXEMPT:
            continue
        for dst in targets - EXEMPT:
            a, b = top(src), top(dst)
            if a != b and (RANKS[b] > RANKS[a] or b in REFUSED.get(a, ())):
                upward.append(f"{src} -> {dst}")
    assert not upward, "imports run cli -> analysis -> tasks -> (train, models, loader, data, plots) -> layers " \
                       "-> (ops, io, checks); these do not:\n" + "\n".join(sorted(upward))


def test_the_checks_module_imports_nothing_from_gseq():
    assert import_graph()["gseq.checks"] == set(), "gseq.checks sits below every package: it imports none of them"


def test_no_import_cycles():
    graph = import_graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles between gseq modules: {cycles}"
