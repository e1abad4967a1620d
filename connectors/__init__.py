"""Input and output channels that bring customer audio, video and chat into Rasa."""
