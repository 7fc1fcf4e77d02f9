"""Voice files from their sources: fetched, verified by sha256, cached per node by digest.

Engine-free (no piper-tts, onnxruntime or torch): the operator checks voices
with it, and `ttsfleet fetch-voice` runs it in an inference pod's init
container from the control-plane image.
"""
