"""The demo's plan step: a small plan with every feature of the core, its schedule and its tiles."""
from __future__ import annotations

from structlm.demo.tour import Tour

__all__ = ["plan_step"]


def plan_step(tour: Tour) -> None:
    from structlm.testing import example_plan

    plan = example_plan()
    tour.say(f"{plan!r}\n{plan.describe()}\nschedule (KV-reuse order): {plan.schedule()}")
    tiles = plan.block_mask(block_size=4)
    tour.say(f"BlockMask with 4-token tiles: {tiles.sparsity():.0f}% of tiles skipped")
    tour.picture("plan.png", plan.show)
