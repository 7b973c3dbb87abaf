"""Ollama's API (/api/tags, /api/generate, /api/chat, ...), for Ollama clients."""
