"""The supervisor dashboard: live floor, conversation timelines, escalations, history.

A small aiohttp app that reads Toneline's Redis state and event streams; run it
with `python -m plugin.analytics serve`.
"""
