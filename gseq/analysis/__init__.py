"""gseq.analysis."""

from .gradients import hidden_grad_norms

__all__: list[str] = []
__all__ += ["hidden_grad_norms"]
