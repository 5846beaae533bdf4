"""Errors, paths and process helpers shared by every layer (imports nothing above it)."""
