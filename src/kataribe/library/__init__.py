"""Model library: find, download, inspect and fit GGUF models; remember and switch them."""
