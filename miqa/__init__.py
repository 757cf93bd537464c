"""miqa: image quality assessment for machines (RA-MIQA, MIQD-2.5M)."""
from .version import __version__

__all__ = ['__version__']
