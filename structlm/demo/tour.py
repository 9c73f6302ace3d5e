"""What every demo step receives: where to print, where to draw, quick or real, and the models, loaded once.

A step is a function ``step(tour)``; it prints what it built and one measured fact through ``tour.say``. The
real tour runs the embedded trained models (SmolLM2-135M-Instruct, MiniLM-L6); ``quick`` swaps in tiny random
ones (seconds, for CI).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

__all__ = ["Tour", "Step"]


@dataclass
class Step:
    """One part of the tour: a title and ``run(tour)``."""

    title: str
    run: Callable[["Tour"], None]


@dataclass
class Tour:
    say: Callable[[str], None] = print
    out: Path | None = None
    quick: bool = False
    models: dict[str, Any] = field(default_factory=dict)

    def model(self, name: str):
        """``StructuredLM.from_pretrained(name)`` for an embedded model, loaded once per tour."""
        if name not in self.models:
            from structlm.hf import StructuredLM

            start = time.perf_counter()
            self.models[name] = StructuredLM.from_pretrained(name)
            self.say(f"loaded {name} in {time.perf_counter() - start:.1f} s")
        return self.models[name]

    def picture(self, name: str, draw: Callable[[str], Any]) -> None:
        """With an ``out`` folder, ``draw(path)`` and say where the picture went (matplotlib is optional)."""
        if self.out is None:
            return
        path = self.out / name
        try:
            draw(str(path))
            self.say(f"picture: {path}")
        except ImportError as error:
            self.say(f"(no picture {name}: {error})")
