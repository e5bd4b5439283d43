"""Every script in examples/ runs on its own, with small settings, and draws its figure."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: example -> (small-settings arguments, the figure it writes)
SMALL = {
    "six_node_graph.py": ([], "six_node_graph.png"),
    "cora_gcn.py": (["--epochs", "10"], "cora_gcn.png"),
    "receptive_field.py": (["--depths", "1", "2", "--probes", "2"], "receptive_field.png"),
    "custom_layer.py": (["--steps", "10"], "custom_layer.png"),
    "text_generation.py": (["--steps", "20", "--hidden", "32"], "text_generation.png"),
    "palindrome_rnn_vs_lstm.py": (["--lengths", "4", "6", "--max-steps", "20", "--hidden", "16"],
                                  "palindrome_rnn_vs_lstm.png"),
    "gradient_flow.py": (["--length", "8", "--train-steps", "10", "--hidden", "16"], "gradient_flow.png"),
    "sequence_as_graph.py": (["--lengths", "3", "5", "--depths", "2", "4", "--max-steps", "20", "--hidden", "8",
                              "--lstm-hidden", "8"], "sequence_as_graph.png"),
    "temporal_forecasting.py": (["--epochs", "1", "--hidden", "4"], "temporal_forecasting.png"),
}


def test_every_example_is_listed():
    assert {p.name for p in EXAMPLES.glob("*.py")} == set(SMALL)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_example_runs(name, tmp_path):
    args, figure = SMALL[name]
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), "--out", str(tmp_path), *args],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip(), "an example prints what it shows"
    assert (tmp_path / figure).is_file()
    assert f"figure written to {(tmp_path / figure).resolve()}" in proc.stdout  # the reader learns where it is
