"""Pure bytes<->objects converters for other programs' files: cards, lorebooks, chats."""
