"""Genesys AudioHook monitoring connector: the customer's side of a live call -> emotion turns in Redis."""
