"""Browser video chat with camera opt-in: a WebRTC (aiortc) channel that adds facial expression to each turn."""
