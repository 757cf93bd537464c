"""The builder's sources: collectors, source ids, shards and per-source seeds.

A source collector (``miqa.registry.SOURCES``) is ``collector(**kwargs) -> [dict(src_id, path,
group=None, annotation=None, category='')]``; a build config names one as ``sources=dict(type=
<registered name or dotted path>, ...)``. Registered here: ``'folder'`` and ``'list'``
(:mod:`miqa.database.sources` adds ``'miqd_mini'``).
"""
import hashlib
import importlib
import re
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional, Sequence

from miqa.datasets.naming import format_name, parse_name
from miqa.registry import SOURCES
from miqa.vocab import SOURCE_EXTENSIONS


@SOURCES.register_module(name='folder')
def collect_folder(root: str, recursive: bool = False, extensions: Sequence[str] = SOURCE_EXTENSIONS,
                   group_pattern: Optional[str] = None) -> List[dict]:
    """Every image file under ``root``: ``src_id`` = file stem, ``group`` = the first group of the
    regex ``group_pattern`` matched on the stem (e.g. ``r'(.*)_crop\\d+$'``), else the stem."""
    pattern = re.compile(group_pattern) if group_pattern else None
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise FileNotFoundError(f'source folder not found: {root_path}')
    files = root_path.rglob('*') if recursive else root_path.iterdir()
    items = []
    for path in sorted(files):
        if path.is_file() and path.suffix.lower() in tuple(e.lower() for e in extensions):
            match = pattern.match(path.stem) if pattern else None
            items.append(dict(src_id=path.stem, path=str(Path(root) / path.relative_to(root_path)),
                              group=match.group(1) if match else path.stem))
    return items


@SOURCES.register_module(name='list')
def collect_list(items: Sequence[Mapping]) -> List[dict]:
    """The sources given inline in the config."""
    return [dict(item) for item in items]


def _collector(name: str) -> Callable:
    fn = SOURCES.module_dict.get(name)
    if fn is None and '.' in name:
        module, _, attr = name.rpartition('.')
        fn = getattr(importlib.import_module(module), attr)
    return fn or SOURCES.get(name)  # did-you-mean KeyError


def collect_sources(spec: Any) -> List[dict]:
    """Source dicts sorted by ``src_id``, checked (unique ids that survive official file names),
    with ``group`` (default: the id), ``annotation`` (default None) and ``category`` (default '')."""
    if spec is None:
        raise ValueError('the build config needs `sources`, e.g. sources=dict(type="folder", root=...)')
    if isinstance(spec, Mapping):
        spec = dict(spec)
        items = _collector(spec.pop('type', 'folder'))(**spec)
    else:
        items = collect_list(spec)
    sources = []
    for item in items:
        src = {'group': None, 'annotation': None, 'category': '', **item}
        src['src_id'], src['path'] = str(src['src_id']), str(src['path'])
        src['group'] = str(src['group'] if src['group'] is not None else src['src_id'])
        check_src_id(src['src_id'])
        sources.append(src)
    sources.sort(key=lambda s: s['src_id'])
    dupes = sorted({a['src_id'] for a, b in zip(sources, sources[1:]) if a['src_id'] == b['src_id']})
    if dupes:
        raise ValueError(f'duplicate source ids (file stems): {", ".join(dupes[:10])}')
    return sources


def check_src_id(src_id: str) -> None:
    """An id must be a file-name stem that official variant names give back (naming.parse_name)."""
    bad = not src_id or src_id.startswith('.') or any(c in src_id for c in '/\\\0')
    if bad or parse_name(format_name(src_id, 'contrast', 'UD', 1, 1)).src_id != src_id:
        raise ValueError(f'source id {src_id!r} cannot be used in official MIQD file names')


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), 'little')


def select_shard(src_ids: Sequence[str], num_shards: int, shard_index: int) -> List[str]:
    """Shard ``shard_index`` of ``num_shards``: the ids whose blake2b hash is ``shard_index`` mod
    ``num_shards`` (disjoint, covering, and stable when sources are added)."""
    if not 0 <= shard_index < num_shards:
        raise ValueError(f'shard index {shard_index} not in [0, {num_shards})')
    return [s for s in src_ids if _hash64(s) % num_shards == shard_index]


def source_seed(seed: int, src_id: str) -> int:
    """The per-image seed: 63 bits of blake2b(f'{seed}:{src_id}')."""
    return _hash64(f'{seed}:{src_id}') >> 1


__all__ = ['check_src_id', 'collect_folder', 'collect_list', 'collect_sources', 'select_shard', 'source_seed']
