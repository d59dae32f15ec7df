"""The edge rule engine (contract §5): pure, deterministic, time from the `now` arguments."""

from .engine import RuleEngine

__all__ = ["RuleEngine"]
