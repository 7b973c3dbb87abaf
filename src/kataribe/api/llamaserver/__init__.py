"""llama-server's native API (/completion, /props, ...) and the tokenizer routes SillyTavern probes."""
