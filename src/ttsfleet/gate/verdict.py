"""The gate's decision: a canary's figures against the pool's bounds and the stable revision (pure)."""

from __future__ import annotations

from ttsfleet.gate.measure import Measurements
from ttsfleet.rollouts import Gate, Verdict


def judge(revision: str, canary: Measurements, stable_ttfa: float, gate: Gate) -> Verdict:
    """Passes only when every bound holds; each broken bound is one reason, with its figures."""
    ratio = canary.median_ttfa / stable_ttfa if stable_ttfa > 0 else float("inf")
    reasons = []
    if canary.word_error_rate > gate.max_word_error_rate:
        reasons.append(
            f"word error rate {canary.word_error_rate:.2f} > {gate.max_word_error_rate:.2f}"
        )
    if canary.error_rate > gate.max_error_rate:
        reasons.append(f"error rate {canary.error_rate:.2f} > {gate.max_error_rate:.2f}")
    if ratio > gate.max_ttfa_ratio:
        reasons.append(f"time to first audio {ratio:.2f}x the stable's > {gate.max_ttfa_ratio}x")
    if not gate.min_loudness_lufs <= canary.loudness_lufs <= gate.max_loudness_lufs:
        reasons.append(
            f"loudness {canary.loudness_lufs:.1f} LUFS outside "
            f"[{gate.min_loudness_lufs}, {gate.max_loudness_lufs}]"
        )
    if canary.clipped_fraction > gate.max_clipped_fraction:
        reasons.append(
            f"clipped samples {canary.clipped_fraction:.4f} > {gate.max_clipped_fraction}"
        )
    finite = max(min(canary.loudness_lufs, 0.0), -100.0)  # JSON has no infinities
    return Verdict(
        revision=revision,
        passed=not reasons,
        reasons=tuple(reasons),
        measurements={
            "wordErrorRate": round(canary.word_error_rate, 4),
            "errorRate": round(canary.error_rate, 4),
            "ttfaRatio": round(min(ratio, 1000.0), 3),
            "loudnessLufs": round(finite, 2),
            "clippedFraction": round(canary.clipped_fraction, 6),
        },
    )
