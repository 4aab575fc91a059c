"""Causette: a multi-tenant conversational-marketing gateway."""
__version__ = "0.1.0"
