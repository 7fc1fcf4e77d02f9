"""Generated gRPC stubs for the ttsfleet contract (regenerate with `python -m ttsfleet.proto.generate`)."""
