"""Palindromes as directed path graphs: GCN depth and self-loop weight against palindrome length, beside the LSTM.

    python benchmarks/sequence_as_graph.py                     # the study in docs/graphs.md
    python benchmarks/sequence_as_graph.py --lengths 5 10 --seeds 1 --max-steps 300 --out runs/sag-quick

For every palindrome length T and seed: an LSTM (one-hot digits, Adam, forget-gate bias 1) on the digit
sequence, and GCNs (gseq.tasks.train_palindrome_gcn: a GCNNet on the directed path 0 -> ... -> T-1,
answer read at the last node) of depth T-1+offset for each --depth-offsets (default T-2, T-1 and T+1
layers) and each self-loop weight (default 1 = Kipf's, and 0.1). Every run stops at accuracy 1 on fresh
palindromes or after --max-steps; the reported accuracy is on 2048 further fresh palindromes. Writes
runs.csv (resumable: rerun to continue; --jobs for parallel processes), summary.csv and
sequence_as_graph.png into --out, and prints a table: mean accuracy over seeds, and how many seeds
solved it (accuracy >= 0.99). The default grid took 39 minutes (14 minutes of CPU time) on this 2-core
machine while it was shared; the failed runs, which go on to --max-steps, take most of it.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gseq.analysis import run_grid  # noqa: E402
from gseq.io import write_csv  # noqa: E402

FIELDS = ["model", "length", "offset", "depth", "w", "seed", "accuracy", "steps", "stop_reason", "seconds",
          "final_w"]
TYPES = {"length": int, "offset": int, "depth": int, "seed": int, "accuracy": float, "steps": int,
         "seconds": float, "final_w": float}
SOLVED = 0.99


def key(row) -> tuple:
    return (row["model"], row["length"], row["offset"], row["w"], row["seed"])


def run_one(model: str, length: int, offset: int, w: str, seed: int, *, max_steps: int, hidden: int,
            lstm_hidden: int) -> dict:
    """One run; ``offset`` and ``w`` are placeholders (0, "") for the LSTM."""
    from gseq.tasks import train_palindrome, train_palindrome_gcn

    if model == "lstm":
        r = train_palindrome("lstm", length, input="onehot", hidden_size=lstm_hidden, optimizer="adam",
                             forget_bias=1.0, max_steps=max_steps, seed=seed, device="cpu")
        depth, final_w = 0, float("nan")
    else:
        depth = length - 1 + offset
        r = train_palindrome_gcn(length, depth, hidden_channels=hidden,
                                 self_loop_weight=w if w == "learn" else float(w), max_steps=max_steps,
                                 seed=seed, device="cpu")
        final_w = statistics.fmean(r["self_loop_weights"])
    return {"model": model, "length": length, "offset": offset, "depth": depth, "w": w, "seed": seed,
            "accuracy": r["accuracy"], "steps": r["steps"], "stop_reason": r["stop_reason"],
            "seconds": round(r["seconds"], 2), "final_w": final_w}


def label(model: str, offset: int, w: str) -> str:
    if model == "lstm":
        return "LSTM"
    layers = "T-1" if offset == 0 else f"T{offset - 1:+d}"
    return f"GCN, {layers} layers, w={w}"


def summarize(rows: list[dict]) -> list[dict]:
    out = []
    configs = sorted({(r["model"], r["offset"], r["w"]) for r in rows}, key=lambda c: (c[0] != "lstm", c[2], c[1]))
    for config in configs:
        for length in sorted({r["length"] for r in rows}):
            runs = [r for r in rows if (r["model"], r["offset"], r["w"]) == config and r["length"] == length]
            if not runs:
                continue
            acc = [r["accuracy"] for r in runs]
            out.append({"config": label(*config), "length": length, "seeds": len(runs),
                        "mean_accuracy": round(statistics.fmean(acc), 3),
                        "std_accuracy": round(statistics.pstdev(acc), 3),
                        "solved": sum(a >= SOLVED for a in acc),
                        "median_steps": statistics.median(r["steps"] for r in runs)})
    return out


def print_table(summary: list[dict]) -> None:
    lengths = sorted({s["length"] for s in summary})
    print("| model | " + " | ".join(f"T = {n}" for n in lengths) + " |")
    print("|---|" + "---|" * len(lengths))
    for config in dict.fromkeys(s["config"] for s in summary):
        cells = []
        for n in lengths:
            s = next((s for s in summary if s["config"] == config and s["length"] == n), None)
            cells.append("" if s is None else
                         f"{s['mean_accuracy']:.2f} ({s['solved']}/{s['seeds']}, {s['median_steps']:g} steps)")
        print(f"| {config} | " + " | ".join(cells) + " |")


def plot(summary: list[dict], path: Path, max_steps: int) -> None:
    import matplotlib.pyplot as plt

    from gseq.plots import save_figure

    fig, ax = plt.subplots(figsize=(6.8, 4.2))
    configs = list(dict.fromkeys(s["config"] for s in summary))
    depths = sorted({c.split(",")[1] for c in configs if c != "LSTM"})  # one colour per depth
    weights = sorted({c.split("w=")[1] for c in configs if c != "LSTM"})  # one line style per w
    for config in configs:
        pts = [(s["length"], s["mean_accuracy"]) for s in summary if s["config"] == config]
        style = {"color": "black", "lw": 2.5} if config == "LSTM" else {
            "color": f"C{depths.index(config.split(',')[1])}",
            "ls": ("-", "--", ":", "-.")[weights.index(config.split("w=")[1]) % 4]}
        ax.plot(*zip(*pts), marker="o", label=config, **style)
    ax.axhline(0.1, color="grey", lw=0.8, label="chance (0.1)")
    ax.set_xlabel("palindrome length T")
    ax.set_ylabel("mean accuracy over seeds")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center right")
    ax.set_title(f"palindromes as directed path graphs: GCN vs LSTM (at most {max_steps} steps)", fontsize=9)
    save_figure(fig, path)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/sequence_as_graph", help="output folder")
    p.add_argument("--lengths", type=int, nargs="+", default=[5, 10, 15, 20])
    p.add_argument("--depth-offsets", type=int, nargs="+", default=[-1, 0, 2],
                   help="GCN depth = T - 1 + offset (default: T-2, T-1, T+1 layers)")
    p.add_argument("--self-loop-weights", nargs="+", default=["1", "0.1"], help='floats or "learn"')
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--max-steps", type=int, default=1000)
    p.add_argument("--hidden", type=int, default=32, help="GCN hidden channels")
    p.add_argument("--lstm-hidden", type=int, default=64)
    p.add_argument("--jobs", type=int, default=1)
    args = p.parse_args(argv)
    for w in args.self_loop_weights:
        if w != "learn":
            float(w)  # a clear error before any run
    out = Path(args.out)
    tasks = [("lstm", n, 0, "", s) for n in args.lengths for s in range(args.seeds)]
    tasks += [("gcn", n, o, w, s) for n in args.lengths for w in args.self_loop_weights
              for o in args.depth_offsets if n - 1 + o >= 1 for s in range(args.seeds)]
    fn = functools.partial(run_one, max_steps=args.max_steps, hidden=args.hidden, lstm_hidden=args.lstm_hidden)

    def log(row, done, total):
        print(f"[{done}/{total}] {label(row['model'], row['offset'], row['w'])} T={row['length']} seed {row['seed']}: "
              f"accuracy {row['accuracy']:.3f} after {row['steps']} steps ({row['seconds']:.1f} s)", flush=True)

    rows = run_grid(out / "runs.csv", tasks, fn, key=key, fields=FIELDS, types=TYPES, jobs=args.jobs, log=log,
                    settings={"max_steps": args.max_steps, "hidden": args.hidden, "lstm_hidden": args.lstm_hidden})
    wanted = {tuple(t) for t in tasks}
    rows = [r for r in rows if key(r) in wanted]
    summary = summarize(rows)
    write_csv(out / "summary.csv", summary, fieldnames=list(summary[0]))
    plot(summary, out / "sequence_as_graph.png", args.max_steps)
    print(f"\nmean test accuracy over {args.seeds} seed(s) (seeds with accuracy >= {SOLVED}, median steps); "
          f"at most {args.max_steps} steps, chance is 0.1")
    print_table(summary)
    print(f"\nwrote {out / 'runs.csv'}, {out / 'summary.csv'}, {out / 'sequence_as_graph.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
