"""Application services: characters, personas, lorebooks, chats and groups over store + engine."""
