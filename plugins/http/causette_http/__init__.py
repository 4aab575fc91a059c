"""Causette step plugin: http.request."""
