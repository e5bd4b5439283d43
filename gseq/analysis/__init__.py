"""gseq.analysis."""

from .gradients import hidden_grad_norms
from .grid import run_grid
from .hops import depth_study, describe_depth_study, hop_table, influence_profile, summarize_depth_study
from .receptive_field import influence, influence_by_hop, receptive_field

__all__: list[str] = ["receptive_field", "influence", "influence_by_hop", "hop_table", "influence_profile", "depth_study",
                      "summarize_depth_study", "describe_depth_study", "run_grid"]
__all__ += ["hidden_grad_norms"]
