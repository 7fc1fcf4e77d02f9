"""The inference pod: gRPC server, voice engines, batching scheduler, load reporting."""
