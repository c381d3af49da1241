"""Rollouts: drive an endpoint from its stable deployment to a new one, measured at each step."""
from specops.rollout.controller import Rollout
from specops.rollout.state import RolloutRecord, load_record

__all__ = ["Rollout", "RolloutRecord", "load_record"]
