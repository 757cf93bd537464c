"""The seed README's import name. The public assessment API (``MIQAModel``,
``batch_assess``, ``VideoMIQA``, ``RealTimeIQA``) lands here; today it
re-exports what ``miqa`` offers."""
from miqa import __version__  # noqa: F401
