"""The official MIQD-2.5M variant file names (spec §2): one place to format and parse them.

Per source image and distortion there are 25 variants:

* 5 uniform (``UD``):              ``<src_id>_<distortion>_<l>.png``
* 10 ROI-dominated (``ROI``, i>j): ``<src_id>_<distortion>_fg_stronger_fg<i>_bg<j>.png``
* 10 background-dominated (``BG``, j>i): ``<src_id>_<distortion>_bg_stronger_fg<i>_bg<j>.png``

with levels 1..5. Source ids and distortion names both contain underscores
(``ILSVRC2012_val_00037809_jpeg_compression_3.png``), so a name is parsed by
anchoring on the 250 official tails ``<distortion>_...png`` that ``format_name``
generates: formatting is the one definition and parsing its exact inverse, by
table look-up (faster than a regex). ``variant_codes`` is the bulk path for the
names of one source (one dict look-up a name). The loader and the database
builder both use this module.
"""
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

# The vocabulary (ten distortions, three regions, five levels, the 25 variants of a distortion)
# is defined in miqa.vocab; this module formats and parses the file names built from it.
from miqa.vocab import DISTORTION_CATEGORIES, DISTORTIONS, LEVELS, REGIONS, VARIANTS  # noqa: F401  (re-exported)

_REGION_TAG = {'ROI': 'fg', 'BG': 'bg'}
_VARIANT_SET = frozenset(VARIANTS)


class VariantInfo(NamedTuple):
    """What a distorted file name says. ``fg_level == bg_level`` for ``UD``."""
    src_id: str
    distortion: str
    region: str
    fg_level: int
    bg_level: int


def format_name(src_id: str, distortion: str, region: str, fg_level: int, bg_level: int) -> str:
    """File name of one variant; ``format_name(*parse_name(n)) == n`` for every official name."""
    if distortion not in DISTORTIONS:
        raise ValueError(f'unknown distortion {distortion!r}; known: {", ".join(DISTORTIONS)}')
    if (region, fg_level, bg_level) not in _VARIANT_SET:
        raise ValueError(f'no official variant region={region!r} fg_level={fg_level!r} '
                         f'bg_level={bg_level!r} (UD: fg == bg; ROI: fg > bg; BG: bg > fg; levels 1..5)')
    if region == 'UD':
        return f'{src_id}_{distortion}_{fg_level}.png'
    return f'{src_id}_{distortion}_{_REGION_TAG[region]}_stronger_fg{fg_level}_bg{bg_level}.png'


def variant_names(src_id: str, distortion: str) -> List[str]:
    """The 25 official file names of ``src_id`` under ``distortion`` (5 UD, 10 ROI, 10 BG)."""
    return [format_name(src_id, distortion, *variant) for variant in VARIANTS]


#: The 250 (distortion, region, fg_level, bg_level) of a source, distortion-major; a name's
#: *variant code* is its row here.
VARIANT_TABLE: Tuple[Tuple[str, str, int, int], ...] = tuple((d, *v) for d in DISTORTIONS for v in VARIANTS)
#: The file name tail after ``<src_id>_`` of every variant code.
TAILS: Tuple[str, ...] = tuple(format_name('', *row)[1:] for row in VARIANT_TABLE)
_TAIL_CODE: Dict[str, int] = {tail: code for code, tail in enumerate(TAILS)}
# where a tail can start: before the '_<l>.png' / '_<fg|bg>_stronger_fg<i>_bg<j>.png' part
# (6 or 24 characters), then back over the 1 or 2 words of the distortion name
_LEVEL_PART_LENGTHS = sorted({len(tail) - len(row[0]) for tail, row in zip(TAILS, VARIANT_TABLE)})
_DISTORTION_WORDS = range(max(name.count('_') for name in DISTORTIONS) + 1)


def _split(filename: str) -> Tuple[str, int]:
    """(src_id, variant code): the ``_``-boundary where an official tail starts."""
    for length in _LEVEL_PART_LENGTHS:
        cut = len(filename) - length
        for _ in _DISTORTION_WORDS:
            cut = filename.rfind('_', 0, cut)
            if cut <= 0:  # no underscore left, or an empty src_id
                break
            code = _TAIL_CODE.get(filename[cut + 1:])
            if code is not None:
                return filename[:cut], code
    raise ValueError(f'{filename!r} is not an official MIQD variant name: expected '
                     '<src_id>_<distortion>_<1-5>.png, <src_id>_<distortion>_fg_stronger_fg<i>_bg<j>.png '
                     '(i > j) or <src_id>_<distortion>_bg_stronger_fg<i>_bg<j>.png (j > i), levels 1-5, '
                     f'a distortion in: {", ".join(DISTORTIONS)}')


def parse_name(filename: str) -> VariantInfo:
    """Parse an official variant file name; raises ``ValueError`` naming the file otherwise."""
    src_id, code = _split(filename)
    return VariantInfo(src_id, *VARIANT_TABLE[code])


def variant_codes(filenames: Sequence[str], src_id: str) -> np.ndarray:
    """Variant codes (int16 rows of ``VARIANT_TABLE``) of names of the one source ``src_id``;
    a name that is not ``<src_id>_<official tail>`` is a ``ValueError`` naming it."""
    cut, prefix, get = len(src_id) + 1, f'{src_id}_', _TAIL_CODE.get
    codes = [get(name[cut:]) if name.startswith(prefix) else None for name in filenames]
    if None in codes:
        name = filenames[codes.index(None)]
        found = _split(name)[0]  # raises for a non-official name
        raise ValueError(f'{name!r} belongs to source {found!r}, not {src_id!r}')
    return np.array(codes, np.int16)


def parse_names(filenames: Iterable[str], src_id: Optional[str] = None) -> List[VariantInfo]:
    """Parse many names; with ``src_id`` (the names of one source) they must all be its."""
    if src_id is None:
        return [parse_name(name) for name in filenames]
    codes = variant_codes(list(filenames), src_id).tolist()
    return [VariantInfo(src_id, *VARIANT_TABLE[code]) for code in codes]
