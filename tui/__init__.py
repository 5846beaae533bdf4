"""Kiln's Textual admin console (``kiln tui``); empty until the console issue lands."""
