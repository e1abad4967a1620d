"""Toneline emotion models: shared vocabulary, per-modality models and fusion.

This package knows nothing of Rasa, Redis or the web (see ARCHITECTURE.md).
"""
