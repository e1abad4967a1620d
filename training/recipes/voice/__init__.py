"""SpeechBrain recipe of the voice emotion head: features, training, evaluation, export."""
