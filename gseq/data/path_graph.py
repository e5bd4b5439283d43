r"""A sequence as a graph: the directed path :math:`0 \to 1 \to \dots \to T-1`, and palindromes on it.

A recurrent network reads a sequence in one direction; a message-passing network on the directed path
graph (edge :math:`t \to t+1`) does the same one hop per layer, so after :math:`k` layers node :math:`t`
has heard from nodes :math:`t-k, \dots, t` (its receptive field). :func:`palindrome_graphs` puts the
palindrome task on that graph: one node per digit of the palindrome, the last digit's node without
features (it is the one to predict), so the first digit is :math:`T-1` hops from where the answer is
read and a GCN needs at least :math:`T-1` layers to see it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Batch, Data

from ..checks import boolean, fits_memory, instance, positive_int
from .palindromes import NUM_DIGITS

__all__ = ["path_graph", "palindrome_graphs"]


def path_graph(num_nodes: int, *, directed: bool = True, device: torch.device | str | None = None) -> Tensor:
    r"""The ``edge_index`` of the path graph on ``num_nodes`` nodes: edges :math:`t \to t+1`.

    Args:
        num_nodes: number of nodes ``N`` (>= 1; one node has no edges).
        directed: only :math:`t \to t+1` (the direction a sequence is read); ``False`` adds
            :math:`t+1 \to t` too. (default: ``True``)
        device: where the tensor lives. (default: CPU)

    Returns:
        A LongTensor ``[2, N - 1]`` (``[2, 2(N - 1)]`` when ``directed=False``), row 0 sources, row 1
        targets, sorted by source then target (as ``torch_geometric.utils.coalesce`` sorts).

    Example::

        >>> path_graph(4)
        tensor([[0, 1, 2],
                [1, 2, 3]])
    """
    positive_int("num_nodes", num_nodes, hint=" (a path needs a node)")
    boolean("directed", directed)
    # undirected: the two directions, their concatenation and sort keys, 8 bytes per entry
    fits_memory("num_nodes", num_nodes, (2 if directed else 12) * 8 * num_nodes, device or "cpu", "nodes")
    src = torch.arange(num_nodes - 1, device=device)
    if directed:
        return torch.stack((src, src + 1))
    # node t sends to t - 1 and to t + 1: interleave the two directions to keep the rows sorted
    forward = torch.stack((src, src + 1))
    backward = torch.stack((src + 1, src))
    edges = torch.cat((forward, backward), dim=1)
    return edges[:, torch.argsort(edges[0] * num_nodes + edges[1])]


def _check_digits(name: str, t: Tensor, dim: int) -> None:
    instance(name, t, Tensor, "a LongTensor of digits")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"{name}: expected integer digits (torch.long), got dtype {t.dtype}")
    if t.dim() != dim:
        shape = "[batch, T - 1]" if dim == 2 else "[batch]"
        raise ValueError(f"{name}: expected shape {shape}, got {list(t.shape)}")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= NUM_DIGITS):
        raise ValueError(f"{name}: digits must lie in 0..{NUM_DIGITS - 1}, "
                         f"got values in {int(t.min())}..{int(t.max())}")


def palindrome_graphs(x: Tensor, y: Tensor | None = None, *, directed: bool = True) -> Batch:
    r"""A batch of palindromes (as :func:`~gseq.data.palindromes` returns them) as one PyG batch of path graphs.

    Palindrome ``b`` becomes a graph of ``T`` nodes, one per digit: node ``t < T - 1`` carries the one-hot
    vector of digit ``x[b, t]`` (10 channels), node ``T - 1`` (the digit to predict) carries zeros;
    edges :math:`t \to t+1` (:func:`path_graph`). Read a model's answer at each graph's last node,
    ``batch.ptr[1:] - 1``; it is :math:`T - 1` hops from the first digit.

    The batch is built in a few whole-tensor operations and has the layout of
    ``Batch.from_data_list([Data(x=..., edge_index=..., y=tensor([y_b])), ...])`` (node and edge
    offsets, ``batch``, ``ptr``, and the bookkeeping that ``get_example`` / ``to_data_list`` use).

    Args:
        x: the first ``T - 1`` digits, an integer tensor ``[B, T - 1]`` with values in ``0..9``
            (``T - 1 >= 1``).
        y: the target digit ``[B]`` (the last digit), stored as the graph-level ``y``; None leaves ``y``
            out. (default: None)
        directed: edges :math:`t \to t+1` only; ``False`` adds :math:`t+1 \to t`. (default: ``True``)

    Returns:
        A :class:`~torch_geometric.data.Batch` with ``x`` ``[B T, 10]`` (float), ``edge_index``
        ``[2, B (T - 1)]`` (twice that when ``directed=False``), ``y`` ``[B]``, ``batch`` ``[B T]``,
        ``ptr`` ``[B + 1]``, on ``x``'s device.

    Example::

        >>> digits, target = palindromes(128, 10)
        >>> g = palindrome_graphs(digits, target)
        >>> logits = GCNNet(10, 10, num_layers=9)(g.x, g.edge_index)[g.ptr[1:] - 1]   # [128, 10]
    """
    _check_digits("x", x, 2)
    batch_size, steps = x.shape
    if batch_size < 1 or steps < 1:
        raise ValueError(f"x: expected at least one palindrome of at least one digit ([B >= 1, T - 1 >= 1]), "
                         f"got shape {list(x.shape)}")
    if y is not None:
        _check_digits("y", y, 1)
        if y.numel() != batch_size:
            raise ValueError(f"y: expected one target per palindrome ({batch_size}), got {y.numel()}")
        if y.device != x.device:
            raise ValueError(f"y: on {y.device} but x is on {x.device}; move both to one device")
    n = steps + 1  # nodes per graph: the T - 1 digits and the position to predict
    device = x.device
    feats = F.one_hot(x.long(), NUM_DIGITS).to(torch.get_default_dtype())  # [B, T - 1, 10]
    feats = torch.cat((feats, feats.new_zeros(batch_size, 1, NUM_DIGITS)), dim=1).reshape(batch_size * n, NUM_DIGITS)
    one = path_graph(n, directed=directed, device=device)  # [2, E1]
    e1 = one.size(1)
    node_offset = torch.arange(batch_size, device=device) * n  # [B]
    edge_index = (one.unsqueeze(1) + node_offset.view(1, -1, 1)).reshape(2, batch_size * e1)
    graph_id = torch.arange(batch_size, device=device)
    ptr = torch.arange(batch_size + 1, device=device) * n
    kwargs = {"x": feats, "edge_index": edge_index}
    slices = {"x": ptr.cpu(), "edge_index": torch.arange(batch_size + 1) * e1}
    incs = {"x": torch.zeros(batch_size, dtype=torch.long), "edge_index": node_offset.cpu()}
    if y is not None:
        kwargs["y"] = y.long()
        slices["y"] = torch.arange(batch_size + 1)
        incs["y"] = torch.zeros(batch_size, dtype=torch.long)
    out = Batch(_base_cls=Data, **kwargs, batch=graph_id.repeat_interleave(n), ptr=ptr)
    # the bookkeeping Batch.from_data_list leaves for get_example / to_data_list / index_select
    out._num_graphs = batch_size
    out._slice_dict = slices
    out._inc_dict = incs
    return out
