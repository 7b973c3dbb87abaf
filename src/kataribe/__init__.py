"""Kataribe (語り部): a local-LLM studio for role-play, novels and text adventures."""

__version__ = "0.1.0"
