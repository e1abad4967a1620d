"""Speech I/O for the telephony connectors: codecs at the edge, VAD and turns, ASR + voice emotion, TTS."""
