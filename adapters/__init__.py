"""Optuna-backed implementations of the ports in limen.experiment (installed as limen.adapters)."""

__all__: list[str] = []
