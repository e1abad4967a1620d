"""Twilio Media Streams: bidirectional call audio over a WebSocket, plus call transfer over Twilio's REST API."""
