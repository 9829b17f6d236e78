"""Prompt templates, one file per task (read with importlib.resources)."""
