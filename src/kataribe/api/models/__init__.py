"""The model library API: registered models, Hugging Face search and downloads, fit, switching."""
