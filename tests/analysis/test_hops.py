import pytest

from gseq.analysis import depth_study, describe_depth_study, summarize_depth_study
from gseq.analysis.grid import read_rows_typed
from gseq.data import example_graph


def test_depth_study_rows_summary_findings_and_resume(tmp_path):
    path = tmp_path / "depth.csv"
    kwargs = dict(data=example_graph(), models=("gcn",), depths=(1, 2), self_loop_weights=(1.0, 4.0, "learn"),
                  epochs=5, influence_nodes=2)
    rows = depth_study(str(path), seeds=1, **kwargs)
    assert len(rows) == 6 and path.is_file()
    assert {r["self_loop_weight"] for r in rows} == {"1", "4", "learn"}
    for r in rows:
        assert 0 <= r["self_influence"] <= 1 and 0 <= r["ring_influence"] <= 1
    # a larger self-loop weight keeps more of the influence on the node itself
    by = {(r["depth"], r["self_loop_weight"]): r for r in rows}
    assert by[(1, "4")]["self_influence"] > by[(1, "1")]["self_influence"]
    calls = []
    rows2 = depth_study(str(path), seeds=2, log=lambda row, i, n: calls.append((i, n)), **kwargs)
    assert len(rows2) == 12 and [c[1] for c in calls] == [12] * 6  # only the new seed ran
    summary = summarize_depth_study(rows2)
    assert len(summary) == 6 and all(s["runs"] == 2 for s in summary)
    text = " ".join(describe_depth_study(summary))
    assert "best depth" in text and "learned vs fixed w=1" in text
    assert len(read_rows_typed(path, {})) == 12
    with pytest.raises(ValueError, match="other settings"):
        depth_study(str(path), seeds=2, **{**kwargs, "epochs": 6})


def test_depth_study_gcnii_beside_gcn_keeps_self_influence_at_depth(tmp_path):
    rows = depth_study(str(tmp_path / "depth.csv"), data=example_graph(), depths=(8,), self_loop_weights=(1.0,),
                       seeds=1, epochs=5, gcnii_epochs=5, influence_nodes=6)
    by = {r["model"]: r for r in rows}
    assert set(by) == {"gcn", "gcnii"}
    # the initial residual: a fraction alpha of every layer is the node's own first representation
    assert by["gcnii"]["self_influence"] > by["gcn"]["self_influence"]
    summary = summarize_depth_study(rows)
    assert [(s["model"], s["depth"]) for s in summary] == [("gcn", 8), ("gcnii", 8)]
    text = describe_depth_study(summary)
    assert any(line.startswith("gcnii: self_loop_weight 1") for line in text)
    assert any(line.startswith("depth 8, w=1: gcnii") for line in text)


def test_depth_study_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="models"):
        depth_study(str(tmp_path / "d.csv"), data=example_graph(), models=("gat",))
    with pytest.raises(ValueError, match="depths"):
        depth_study(str(tmp_path / "d.csv"), data=example_graph(), depths=(0,))
    with pytest.raises(ValueError, match="self_loop_weights"):
        depth_study(str(tmp_path / "d.csv"), data=example_graph(), self_loop_weights=(-1.0,))
