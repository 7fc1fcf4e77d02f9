"""Planning the streamed decoder's windows: pure arithmetic over frame counts."""

from __future__ import annotations

import itertools

import pytest

from ttsfleet.inference.engines.vits.windows import Window, plan_windows


def test_no_first_window_decodes_everything_at_once() -> None:
    assert plan_windows(300, None, 256, 12) == [Window(0, 300, 0, 300)]


def test_short_utterance_fits_the_first_window() -> None:
    assert plan_windows(20, 32, 256, 12) == [Window(0, 20, 0, 20)]


@pytest.mark.parametrize("frames", [33, 100, 471, 1000, 5000])
def test_a_small_first_window_then_doubling_windows_up_to_the_cap(frames: int) -> None:
    windows = plan_windows(frames, 32, 256, 12)
    assert windows[0].start == 0 and windows[-1].stop == frames
    for before, after in itertools.pairwise(windows):
        assert before.stop == after.start
    sizes = [w.stop - w.start for w in windows]
    planned = [min(32 * 2**k, 256) for k in range(len(sizes))]
    assert sizes[:-1] == planned[:-1]
    assert sizes[-1] <= planned[-1] + 12


def test_context_is_clipped_at_the_ends() -> None:
    windows = plan_windows(200, 32, 256, 12)
    assert windows[0].lo == 0 and windows[0].hi == 32 + 12
    assert windows[1].lo == 32 - 12
    assert windows[-1].hi == 200


def test_a_remainder_shorter_than_the_context_joins_the_window_before() -> None:
    windows = plan_windows(32 + 64 + 5, 32, 256, 12)
    assert [(w.start, w.stop) for w in windows] == [(0, 32), (32, 101)]


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        plan_windows(100, 0, 256, 12)
    with pytest.raises(ValueError):
        plan_windows(100, 64, 32, 12)
