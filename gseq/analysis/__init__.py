"""gseq.analysis."""

__all__: list[str] = []
