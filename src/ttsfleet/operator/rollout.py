"""What a pool's rollout does next: stay, start a canary, promote it or roll it back (pure).

Inputs are the revision the pool's voices describe now, the pool's rollout
settings, what `.status.rollout` said before and the gate's verdict; the
output says which revision the stable pods run, which (if any) runs as a
canary, the new `.status.rollout` and the Event to tell people. A revision
that was rolled back stays rolled back: only a new change to the voices
starts another canary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ttsfleet.rollouts import Rollout, Verdict

STABLE, CANARY, ROLLED_BACK = "Stable", "Canary", "RolledBack"


@dataclass(frozen=True)
class Announcement:
    """An Event on the pool: `warning` for a rollback, else informational."""

    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True)
class Decision:
    stable: str  # the revision the stable Deployment runs
    canary: str | None  # the revision the canary Deployment runs; None: no canary
    status: dict[str, Any]  # the pool's .status.rollout
    announcement: Announcement | None = None


def decide(
    current: str,
    rollout: Rollout | None,
    previous: Mapping[str, Any],
    verdict: Verdict | None,
    stable_recorded: bool,
    now: str,
) -> Decision:
    """The next step; `stable_recorded` says whether the stable revision's voices are known."""
    stable = str(previous.get("stableRevision") or "")
    rolled_back = str(previous.get("rolledBackRevision") or "")
    kept = {"rolledBackRevision": rolled_back} if rolled_back else {}
    since = previous.get("lastTransitionTime") or now

    def status(phase: str, message: str, changed: bool, **fields: Any) -> dict[str, Any]:
        return {
            "phase": phase,
            "message": message,
            "lastTransitionTime": now if changed else since,
            **kept,
            **fields,
        }

    was_canary = previous.get("phase") == CANARY
    if rollout is None or not stable or current == stable or not stable_recorded:
        if not stable or current == stable:
            message = f"all pods run revision {current}"
        elif rollout is None:
            message = f"revision {current} rolled out to all pods at once (no spec.rollout)"
        else:
            message = f"revision {current} rolled out at once: no record of revision {stable}"
        announcement = None
        if was_canary and current == stable:
            canary = previous.get("canaryRevision")
            message = f"the voices are back at revision {stable}; canary {canary} removed"
            announcement = Announcement("CanaryAbandoned", message)
        return Decision(
            current,
            None,
            status(STABLE, message, was_canary or current != stable, stableRevision=current),
            announcement,
        )
    if current == rolled_back:
        message = previous.get("message") or f"revision {current} was rolled back"
        return Decision(stable, None, status(ROLLED_BACK, message, False, stableRevision=stable))
    if verdict is not None and verdict.revision == current:
        figures = dict(verdict.measurements)
        if verdict.passed:
            message = f"revision {current} promoted: {verdict.summary()}"
            return Decision(
                current,
                None,
                status(STABLE, message, True, stableRevision=current, verdict=figures),
                Announcement("CanaryPromoted", message),
            )
        message = f"revision {current} rolled back to {stable}: {verdict.summary()}"
        kept["rolledBackRevision"] = current
        return Decision(
            stable,
            None,
            status(ROLLED_BACK, message, True, stableRevision=stable, verdict=figures),
            Announcement("CanaryRolledBack", message, warning=True),
        )
    starting = previous.get("canaryRevision") != current or not was_canary
    message = (
        f"revision {current} serves {rollout.canary_percent}% of traffic next to {stable}; "
        "waiting for the gate's verdict"
    )
    return Decision(
        stable,
        current,
        status(
            CANARY,
            message,
            starting,
            stableRevision=stable,
            canaryRevision=current,
            canaryPercent=rollout.canary_percent,
        ),
        Announcement("CanaryStarted", message) if starting else None,
    )
