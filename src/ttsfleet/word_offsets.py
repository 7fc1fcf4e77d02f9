"""Word times of a long text's pieces on the whole text's clock.

A pod times the words of the text it was given from the start of that
text's audio. When a text is cut into pieces (the router's fan-out, the
gateway's and the jobs' client), each piece's words are moved by the audio
of every piece before it; pieces arrive in order, as PCM16.
"""

from __future__ import annotations

from ttsfleet.proto import tts_pb2


class PieceClock:
    """Follows the pieces' chunks in order and offsets their words."""

    def __init__(self) -> None:
        self._piece = -1
        self._offset = 0.0
        self._seconds = 0.0

    def place(self, piece: int, chunk: tts_pb2.AudioChunk) -> bool:
        """Moves the chunk's words (in place) by the audio before its piece; True if any moved."""
        if piece != self._piece:
            self._piece, self._offset = piece, self._seconds
        if chunk.sample_rate:
            self._seconds += len(chunk.chunk) / 2 / chunk.sample_rate
        if not (self._offset and chunk.words):
            return False
        for word in chunk.words:
            word.start += self._offset
            word.end += self._offset
        return True
