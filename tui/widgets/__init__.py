"""Widgets the console's screens share: navigation, the connection banner, dialogs."""
