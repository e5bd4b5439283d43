"""PyG's ``examples/gcn2_cora.py`` run twice per seed: as published, and with ``GCN2`` for ``GCN2Conv``.

    python benchmarks/gcn2_cora_example.py --script path/to/gcn2_cora.py --seeds 0 1 2
    python benchmarks/gcn2_cora_example.py --script path/to/gcn2_cora.py --seeds 0 --max-seconds 600

The script is PyG's example (pyg-team/pytorch_geometric, ``examples/gcn2_cora.py``, MIT licence,
copyright PyG Team; read at commit 1f7bc7d93d7eb14e07375ab12c392cf0c756190e): 64 GCN2Conv layers on Cora
after ``T.GCNNorm()`` and ``T.ToSparseTensor()`` (a torch sparse CSR ``adj_t``, ``normalize=False``),
1000 epochs, printing the accuracies of every epoch. It is not copied into gseq; pass your copy with
``--script``.

For each seed and each layer the script is copied into a temporary ``examples/`` folder, unchanged for
``pyg``, and for ``gseq`` with one line changed: ``from torch_geometric.nn import GCN2Conv`` becomes
``from gseq.layers import GCN2 as GCN2Conv``. Its data root (``../data/Cora`` beside the script) is a
temporary folder holding Cora's raw Planetoid files from ``$GSEQ_DATA/planetoid/Cora/raw`` (else the copy
shipped with gseq), so no line of it changes for the data and nothing is downloaded. It then runs in a
subprocess with one thread as ``torch.manual_seed(seed); runpy.run_path(script)``: the script sets no
seed itself, and the two layers draw the same initial weights and the same dropout masks from it.

Printed per seed: the epochs both runs finished (``--max-seconds`` stops a run early; the comparison is
then over the epochs both printed), how many epochs printed the same train/val/test accuracies, the
largest loss difference, and the ``Final Test`` accuracy (test accuracy at the best validation accuracy)
of each at the last common epoch. Exit status 1 when a final accuracy differs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYG_IMPORT = "from torch_geometric.nn import GCN2Conv"
GSEQ_IMPORT = "from gseq.layers import GCN2 as GCN2Conv"
EPOCH = re.compile(r"Epoch: (\d+), Loss: ([\d.]+) Train: ([\d.]+), Val: ([\d.]+), Test: ([\d.]+), Final Test: ([\d.]+)")


def cora_raw() -> Path:
    data = os.environ.get("GSEQ_DATA")
    if data and (Path(data) / "planetoid" / "Cora" / "raw").is_dir():
        return Path(data) / "planetoid" / "Cora" / "raw"
    return Path(str(resources.files("gseq.data").joinpath("_bundled"))) / "planetoid" / "Cora" / "raw"


def prepare(script: str, layer: str, folder: Path) -> Path:
    """The script in ``folder/examples/`` (import swapped for gseq) and Cora where it looks for it."""
    text = Path(script).read_text()
    if text.count(PYG_IMPORT) != 1:
        raise SystemExit(f"--script: expected one line {PYG_IMPORT!r} in {script}")
    if layer == "gseq":
        text = text.replace(PYG_IMPORT, GSEQ_IMPORT)
    (folder / "examples").mkdir(parents=True)
    target = folder / "examples" / "gcn2_cora.py"
    target.write_text(text)
    shutil.copytree(cora_raw(), folder / "data" / "Cora" / "Cora" / "raw")  # Planetoid(root=data/Cora, 'Cora')
    return target


def run(script: Path, seed: int, max_seconds: float | None) -> list[tuple]:
    """The epoch lines the script printed (all of them, or those before ``max_seconds``)."""
    code = (f"import runpy, torch; torch.set_num_threads(1); torch.manual_seed({seed}); "
            f"runpy.run_path({str(script)!r}, run_name='__main__')")
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                              timeout=max_seconds)
        out = proc.stdout
        if proc.returncode != 0:
            raise SystemExit(f"{script} failed:\n{proc.stderr[-2000:]}")
    except subprocess.TimeoutExpired as stopped:
        out = stopped.stdout.decode() if isinstance(stopped.stdout, bytes) else (stopped.stdout or "")
    return [tuple(float(g) for g in m.groups()) for m in EPOCH.finditer(out)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--script", required=True, help="your copy of PyG's examples/gcn2_cora.py")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--max-seconds", type=float, default=None, help="stop each run after this long (default: never)")
    args = p.parse_args(argv)
    differ = False
    for seed in args.seeds:
        lines = {}
        for layer in ("pyg", "gseq"):
            with tempfile.TemporaryDirectory() as tmp:
                lines[layer] = run(prepare(args.script, layer, Path(tmp)), seed, args.max_seconds)
        a, b = lines["pyg"], lines["gseq"]
        n = min(len(a), len(b))
        if n == 0:
            print(f"seed {seed}: no epoch finished in both runs")
            continue
        same = sum(x[2:5] == y[2:5] for x, y in zip(a[:n], b[:n]))
        loss = max(abs(x[1] - y[1]) for x, y in zip(a[:n], b[:n]))
        first = next((x[0] for x, y in zip(a[:n], b[:n]) if x[2:] != y[2:]), None)
        differ |= a[n - 1][5] != b[n - 1][5]
        print(f"seed {seed}: {n} epochs in both (pyg {len(a)}, gseq {len(b)}); same train/val/test accuracy in "
              f"{same} of {n}" + (f" (first difference at epoch {int(first)})" if first else "")
              + f"; largest loss difference {loss:.4f}; Final Test at epoch {n}: pyg {a[n - 1][5]:.4f}, "
              f"gseq {b[n - 1][5]:.4f}", flush=True)
    return int(differ)


if __name__ == "__main__":
    sys.exit(main())
