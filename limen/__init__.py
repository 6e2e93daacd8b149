"""Limen: durable, resumable parametric research on Optuna."""

__version__ = "0.1.0"
