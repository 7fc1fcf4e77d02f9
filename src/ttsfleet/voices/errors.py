"""Why a voice could not be fetched or read, and whether trying again may help."""

from __future__ import annotations


class VoiceSourceError(Exception):
    """A voice source that failed; `reason` is a CamelCase word for conditions and events.

    `permanent` says that the same source will fail again (a wrong digest, a
    missing object, an unreadable config) until someone edits it; otherwise
    (a timeout, a 503) a later attempt may succeed.
    """

    def __init__(self, reason: str, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.permanent = permanent
