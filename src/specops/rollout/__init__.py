"""Rollouts: drive an endpoint from its stable deployment to a new one, measured at each step."""
from specops.rollout.engine import Rollout

__all__ = ["Rollout"]
