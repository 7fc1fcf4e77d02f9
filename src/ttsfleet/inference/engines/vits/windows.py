"""Which latent frames each streamed decoder call emits, and which it decodes to get them.

The first window is small, so the first audio leaves early; each next window
is twice the one before, up to `largest` frames. Doubling keeps the audio
already handed out ahead of the next window's decoding (a listener never
waits between windows once the first has arrived) and keeps steps short
while a stream is young, which is when newcomers join; the cap bounds the
memory a long sentence in a large batch takes. Every window is decoded
with `context` frames of its neighbours on each side (clipped at the
utterance's ends) and cropped back. A remainder shorter than the context
joins the window before it: decoded alone it would cost mostly context.
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
