"""Uploads decoded in a separate process, so a hostile or broken file can never take the
service down with it.

libsndfile is C: a file crafted against one of its decoders (or one of its own bugs — its
Vorbis *encoder* crashes on one 3-minute write, measured here) could crash the process that
reads it, and `ringback serve` holds live calls. Each upload is decoded by a worker process
(one at a time, a queue of them waiting is bounded by the caller) with a memory limit and a
timeout. A worker that dies or runs over is replaced and the upload refused with
`audio-unreadable`; the service goes on.
"""

import asyncio
import multiprocessing
import resource
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from audio.errors import UploadRefused
from audio.upload import Clip, UploadLimits, decode_upload

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_BYTES = 2 * 1024**3  # address space of the worker: decoding 3 min needs ~0.6 GiB


def _limit_memory(memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


class IsolatedDecoder:
    """`decode_upload` in a worker process. Safe to share; decodes run one at a time."""

    def __init__(self, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES,
                 decode: Callable[[bytes, str, UploadLimits], Clip] = decode_upload) -> None:
        """`decode` runs in the worker (a module-level function: it is sent by name)."""
        self._decode_in_worker = decode
        self._timeout_s = timeout_s
        self._memory_bytes = memory_bytes
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()  # the pool is made and replaced by one caller at a time
        self._turn = threading.Lock()

    async def decode(self, data: bytes, filename: str, limits: UploadLimits) -> Clip:
        """The upload decoded for the line; `UploadRefused` for a file we will not use,
        including one that crashed or stalled the decoder."""
        return await asyncio.to_thread(self._decode, data, filename, limits)

    def _decode(self, data: bytes, filename: str, limits: UploadLimits) -> Clip:
        with self._turn:  # one decode at a time: the timeout is the decode's own
            pool = self._current_pool()
            future = pool.submit(self._decode_in_worker, data, filename, limits)
            try:
                return future.result(self._timeout_s)
            except BrokenProcessPool:
                self._replace(pool)
                raise UploadRefused(
                    "audio-unreadable",
                    "The audio decoder failed on this file, so it cannot be used. Export it "
                    "again (WAV or FLAC) and upload that.") from None
            except MemoryError:
                raise UploadRefused(
                    "audio-unreadable",
                    "Decoding this file needs more memory than an upload may use. Export it "
                    "again (WAV or FLAC) and upload that.") from None
            except TimeoutError:
                self._replace(pool)
                raise UploadRefused(
                    "audio-unreadable",
                    f"The file took over {self._timeout_s:g} s to decode, so it cannot be used. "
                    "Export it again (WAV or FLAC) and upload that.") from None

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None

    def _current_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # forkserver: the workers do not inherit the service's threads, sockets or locks
                self._pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("forkserver"),
                    initializer=_limit_memory, initargs=(self._memory_bytes,))
            return self._pool

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                for process in list(getattr(broken, "_processes", {}).values()):
                    process.kill()  # a stalled decode: nothing else will stop it
                broken.shutdown(wait=False, cancel_futures=True)
                self._pool = None
