"""Serving the browser app: static files with a strict Content-Security-Policy."""
