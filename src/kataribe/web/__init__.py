"""The browser app: static files (no build step) and server-side HTML sanitizing."""
