"""Which latent frames each streamed decoder step emits, and which it decodes to get them.

The first window is small, so the first audio leaves early; each next one is
twice as long up to a cap, so the context decoded twice at every seam costs
less and less as the utterance goes on, and memory stays bounded for long
sentences. Every window is decoded with `context` frames of its neighbours on
each side (clipped at the utterance's ends) and cropped back. A remainder
shorter than the context joins the window before it: decoded alone it would
cost mostly context.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """Frames [start, stop) are emitted; frames [lo, hi) are decoded to produce them."""

    start: int
    stop: int
    lo: int
    hi: int


def plan_windows(frames: int, first: int | None, largest: int, context: int) -> list[Window]:
    """Windows covering [0, frames); `first=None` decodes everything in one window."""
    if first is None or first >= frames:
        return [Window(0, frames, 0, frames)]
    if first < 1 or largest < first:
        raise ValueError(f"window sizes must satisfy 1 <= first <= largest, got {first}, {largest}")
    windows = []
    start, size = 0, first
    while start < frames:
        stop = start + size
        if frames - stop < context:
            stop = frames
        windows.append(Window(start, stop, max(start - context, 0), min(stop + context, frames)))
        start, size = stop, min(2 * size, largest)
    return windows
