"""Matplotlib figures from metrics histories and CSV files."""

__all__: list[str] = []
