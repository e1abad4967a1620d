"""Toneline's Rasa side: NLU component, policy, Redis state, routing and analytics."""
