"""Scenario modules, one per system; each registers its scenarios on import."""
