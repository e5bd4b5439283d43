from gseq.cli import main


def test_hops_example_prints_the_table_and_writes_files(capsys, tmp_path):
    assert main(["hops", "example", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "36 of 36 ordered pairs" in out and "C -> E needs 3 layers" in out
    assert (tmp_path / "hop_table.csv").is_file() and (tmp_path / "hop_graph.png").is_file()


def test_hops_depth_small(capsys, tmp_path):
    argv = ["hops", "depth", "--dataset", "example", "--depths", "1", "3", "--self-loop-weights", "1", "learn",
            "--seeds", "2", "--epochs", "5", "--gcnii-epochs", "5", "--influence-nodes", "2", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "findings:" in out and "gcnii" in out and "depth 3, w=1" not in out  # compared from depth 8
    for name in ("depth.csv", "summary.csv", "findings.json", "depth.png"):
        assert (tmp_path / name).is_file()
