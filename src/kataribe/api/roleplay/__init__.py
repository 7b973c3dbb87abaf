"""Kataribe's own REST API under /api: characters, personas, lorebooks, chats, groups, backup."""
