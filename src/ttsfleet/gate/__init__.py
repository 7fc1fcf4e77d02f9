"""The rollout gate: measure a canary revision against the stable one and decide (`ttsfleet gate`).

Needs the optional `gate` extra (faster-whisper, the Whisper base packages,
pyloudnorm, jiwer); the control-plane image does not carry it.
"""
