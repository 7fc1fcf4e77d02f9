"""ttsfleet: text-to-speech inference fleets on Kubernetes."""
