"""gseq.layers."""

__all__: list[str] = []
