"""Keeping a run's log readable: drop known, repetitive mmengine lines (for one call, or a run).

Used where mmengine logs one line per parameter (the optimizer constructor) or a deprecation
notice that no miqa config can avoid (``CheckpointHook.before_train`` and every
``Runner.save_checkpoint`` build a ``FileClient``); what they say is summarised or irrelevant to
a user.
"""
import logging
from contextlib import contextmanager
from typing import Iterator

from mmengine.logging import MMLogger


class DropLines(logging.Filter):
    """Drops the records whose message contains one of ``texts``."""

    def __init__(self, texts) -> None:
        super().__init__()
        self.texts = tuple(texts)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in self.texts)


@contextmanager
def dropped_log_lines(*texts: str) -> Iterator[None]:
    """Within the block, the current ``MMLogger`` drops every record containing one of ``texts``."""
    logger = MMLogger.get_current_instance()
    quiet = DropLines(texts)
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)
