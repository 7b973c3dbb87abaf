"""World Info (lorebook) model and activation engine, with SillyTavern semantics."""
