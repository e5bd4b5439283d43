"""``gseq env``: versions and devices, for bug reports."""

from __future__ import annotations

import platform


def register(sub) -> None:
    p = sub.add_parser("env", help="print versions and devices")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    import gseq

    print(f"gseq {gseq.__version__}")
    print(f"python {platform.python_version()} ({platform.platform()})")
    print(f"torch {torch.__version__}")
    for mod in ("torch_geometric", "triton", "torch_scatter", "networkx", "sklearn", "matplotlib"):
        try:
            m = __import__(mod)
            print(f"{mod} {getattr(m, '__version__', '?')}")
        except ImportError:
            print(f"{mod} not installed")
    print(f"cuda available: {torch.cuda.is_available()}")
    for i in range(torch.cuda.device_count()):
        print(f"  cuda:{i} {torch.cuda.get_device_name(i)}")
    print(f"cpu threads: {torch.get_num_threads()}")
    return 0
