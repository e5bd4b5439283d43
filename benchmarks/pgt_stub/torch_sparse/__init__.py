"""A stand-in for ``torch_sparse``, for benchmarks/temporal_pgt.py only.

PyTorch Geometric Temporal imports ``torch_sparse.SparseTensor`` when its package is imported (for
EvolveGCN-O alone); ``torch_sparse`` does not install here. The peer script puts this folder on
``sys.path`` after PyG and gseq are imported (so PyG still sees no ``torch_sparse``) and before it
imports PGT. Never installed, never on the tests' path; using it raises.
"""


class SparseTensor:  # noqa: D101
    def __init__(self, *args, **kwargs):
        raise RuntimeError("torch_sparse is a stub here (benchmarks/pgt_stub): SparseTensor is not available")
