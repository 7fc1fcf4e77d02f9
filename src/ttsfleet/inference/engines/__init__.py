"""Voice engines, chosen per TTSVoice by its `engine` field."""
