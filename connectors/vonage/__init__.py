"""Vonage Voice API WebSocket calls on the call core."""
