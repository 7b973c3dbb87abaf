"""The generations started through the KoboldCpp API, so check and abort never touch another client's job."""

from __future__ import annotations

import threading

from kataribe.engine.base import GenerationStream


class KoboldJobs:
    """KoboldCpp's multi-user rule: without a genkey, ``check`` and ``abort`` act on jobs of this API
    only (a role-play reply or a /v1 stream of another client is never shown or stopped); with a
    genkey, on that job only."""

    def __init__(self) -> None:
        self._jobs: list[GenerationStream] = []
        self._lock = threading.Lock()

    def add(self, stream: GenerationStream) -> GenerationStream:
        with self._lock:
            self._jobs = [job for job in self._jobs if not job.finished.is_set()]
            self._jobs.append(stream)
        return stream

    def _unfinished(self) -> list[GenerationStream]:
        with self._lock:
            jobs = [job for job in self._jobs if not job.finished.is_set()]
        # the running one first, then the queued ones in order
        return sorted(jobs, key=lambda job: not job.started.is_set())

    def keyed(self, genkey: str) -> GenerationStream | None:
        """The running or queued job started with this genkey."""
        return next((job for job in self._unfinished() if job.request.label == genkey), None)

    def unkeyed(self) -> GenerationStream | None:
        """The running (else the next queued) job started without a genkey: what ``check`` shows."""
        return next((job for job in self._unfinished() if job.request.label is None), None)

    def current(self) -> GenerationStream | None:
        """The running (else the next queued) job of this API, with or without a genkey."""
        return next(iter(self._unfinished()), None)
