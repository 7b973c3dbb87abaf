"""The tokenizer routes SillyTavern probes for its API tokenizer: llama-server's /tokenize and
/detokenize, vLLM's and Aphrodite's (same /tokenize path, told apart by the body), and
text-generation-webui's /v1/internal ones. All of them tokenize off the event loop."""

from __future__ import annotations

from typing import Any

import anyio.to_thread

from kataribe.api.llamaserver.schemas import TokenizeBody
from kataribe.engine.base import ChatMessage, Engine
from kataribe.errors import InvalidRequest


class Tokenizers:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def _tokens(self, text: str, *, special: bool = True) -> list[int]:
        return await anyio.to_thread.run_sync(lambda: self.engine.tokenize(text, special=special))

    async def _text(self, ids: list[int]) -> str:
        return await anyio.to_thread.run_sync(self.engine.detokenize, ids)

    # -- /tokenize: llama-server or vLLM, by the body --
    async def tokenize(self, body: TokenizeBody) -> dict[str, Any]:
        if body.content is not None:
            return await self._llama_server_tokenize(body)
        if body.prompt is not None or body.messages is not None:
            return await self._vllm_tokenize(body)
        raise InvalidRequest(
            'Send {"content": text} (llama-server) or {"prompt": text} (vLLM) to /tokenize.',
            param="content",
        )

    async def _llama_server_tokenize(self, body: TokenizeBody) -> dict[str, Any]:
        assert body.content is not None
        ids = await self._tokens(body.content, special=body.parse_special)
        if not body.with_pieces:
            return {"tokens": ids}
        pieces = await anyio.to_thread.run_sync(lambda: [self.engine.detokenize([i]) for i in ids])
        return {"tokens": [{"id": i, "piece": piece} for i, piece in zip(ids, pieces, strict=True)]}

    async def _vllm_tokenize(self, body: TokenizeBody) -> dict[str, Any]:
        if body.messages is not None:
            messages = [_chat_message(m) for m in body.messages]
            text = await anyio.to_thread.run_sync(
                self.engine.render_chat, messages, body.add_generation_prompt
            )
        else:
            assert body.prompt is not None
            text = body.prompt
        return await self.vllm_tokens(text)

    async def vllm_tokens(self, text: str) -> dict[str, Any]:
        """vLLM's answer (Aphrodite's /v1/tokenize too)."""
        ids = await self._tokens(text)
        return {
            "count": len(ids),
            "max_model_len": self.engine.capabilities().n_ctx,
            "tokens": ids,
            "token_strs": None,
        }

    async def detokenize(self, ids: list[int]) -> dict[str, str]:
        """llama-server's ``content`` and vLLM's ``prompt`` (both send {"tokens"} to /detokenize)."""
        text = await self._text(ids)
        return {"content": text, "prompt": text}

    # -- text-generation-webui (SillyTavern's Default type) --
    def model_info(self) -> dict[str, Any]:
        return {"model_name": self.engine.model_name, "lora_names": [], "loader": "llama.cpp"}

    async def encode(self, text: str) -> dict[str, Any]:
        ids = await self._tokens(text)
        return {"tokens": ids, "length": len(ids)}

    async def token_count(self, text: str) -> dict[str, int]:
        return {"length": len(await self._tokens(text))}

    async def decode(self, ids: list[int]) -> dict[str, str]:
        return {"text": await self._text(ids)}


def _chat_message(raw: dict[str, Any]) -> ChatMessage:
    role, content = raw.get("role"), raw.get("content", "")
    if not isinstance(role, str) or not isinstance(content, str):
        raise InvalidRequest("Each message needs a role and a text content.", param="messages")
    return ChatMessage(role, content)
