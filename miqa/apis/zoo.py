"""The model zoo: the published MIQA models as data (``model_zoo.csv``).

One row per released model (the authors' checkpoints, ``official_checkpoints.csv`` of the spec):
``name`` (``ra-miqa``, ``resnet18``, ``resnet50``, ``efficientnet-b1``, ``efficientnet-b5``,
``vit-small``), ``task`` (``cls``/``det``/``ins``), ``label`` (``composite``/``consistency``/
``accuracy``), ``arch`` (the converter key of :data:`miqa.models.converters.CONVERSIONS`),
``method`` (as the paper prints it), ``config`` (the leaf config, ``configs/...``; shipped with the package),
``weights`` (its row in the weight table of :mod:`miqa.hub`: file, URL, sha256) and the
paper's ``srcc``/``plcc`` on MIQD-2.5M val (Table 1 for composite labels, the
accuracy/consistency table otherwise; empty where the paper reports none). The same file drives
:func:`list_models` and the README table (:func:`markdown_table`, ``tools/gen_model_table.py``).

Weights live in ``$MIQA_HOME/weights/<file>`` (default ``~/.cache/miqa/weights``); a missing file is
downloaded by the hub (:func:`miqa.hub.fetch`: progress bar, Google-Drive direct links) unless
``MIQA_OFFLINE=1`` or ``download=False``; offline or when the download fails, a
:class:`FileNotFoundError` names the file, its URL and where to put it. Checksums: the authors
publish none, so the SHA-256 of the first file seen (downloaded, or put there by hand) is recorded
in ``$MIQA_HOME/weights/sha256.json`` with a warning (trust on first use) and every later use is
verified against it. Pin a known digest with ``sha256=`` (:func:`fetch_weights`,
``MIQAModel(..., sha256=...)``) or :func:`miqa.hub.pin_sha256`; a mismatch raises
:class:`miqa.hub.ChecksumError` and the file is not used.
"""
import csv
import difflib
import re
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from miqa.hub.download import Transport, fetch
from miqa.hub.table import WeightFile, weight_entry, weights_dir
from miqa.utils.paths import resolve_config
from miqa.vocab import LABEL_TYPES, TASK_TITLES, TASKS

ZOO_FILE = Path(__file__).with_name('model_zoo.csv')
#: How a user names another checkpoint (ends the missing-file message).
CHECKPOINT_HINT = 'pass checkpoint=<path> (or point MIQA_HOME elsewhere)'


@dataclass(frozen=True)
class ZooEntry:
    """One published model (a row of ``model_zoo.csv``) and its weight file (``source``)."""

    name: str
    task: str
    label: str
    arch: str
    method: str
    config: str
    weights: str
    srcc: Optional[float] = None
    plcc: Optional[float] = None
    source: Optional[WeightFile] = None  # the hub's row of ``weights`` (:func:`with_url`: a mirror)

    @property
    def key(self) -> Tuple[str, str, str]:
        return self.name, self.task, self.label

    @property
    def file(self) -> str:
        return self.source.file

    @property
    def url(self) -> str:
        return self.source.url

    @property
    def sha256(self) -> str:
        return self.source.sha256

    def config_path(self) -> Path:
        """The leaf config (``configs/...``, installed with the package); raises naming it when missing."""
        try:
            return Path(resolve_config(self.config, packaged_only=True))
        except FileNotFoundError as err:
            raise FileNotFoundError(f'config {self.config} of model {"/".join(self.key)}: {err}') from None

    def weight_path(self) -> Path:
        return weights_dir() / self.file

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != 'source'}
        return dict(out, file=self.file, url=self.url, sha256=self.sha256)


def _float(text: str) -> Optional[float]:
    return float(text) if text.strip() else None


@lru_cache(maxsize=4)
def _load_zoo(path: str) -> Tuple[ZooEntry, ...]:
    with open(path, newline='') as f:
        rows = list(csv.DictReader(f))
    entries = []
    for i, row in enumerate(rows, start=2):
        if row['task'] not in TASKS or row['label'] not in LABEL_TYPES:
            raise ValueError(f'{path}:{i}: task must be one of {TASKS} and label one of {LABEL_TYPES}, got '
                             f'{row["task"]!r}/{row["label"]!r}')
        try:
            source = weight_entry(row['weights'])
        except KeyError as err:
            raise ValueError(f'{path}:{i}: {err.args[0]}') from None
        entries.append(ZooEntry(**{**row, 'srcc': _float(row['srcc']), 'plcc': _float(row['plcc'])},
                                source=source))
    keys = [e.key for e in entries]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ValueError(f'{path}: duplicate rows {dup}')
    return tuple(entries)


def zoo_entries() -> Tuple[ZooEntry, ...]:
    return _load_zoo(str(ZOO_FILE))


def canonical_name(name: str) -> str:
    """Case-, space-, ``-``- and ``_``-insensitive key: ``RA-MIQA``, ``ra_miqa`` -> ``ramiqa``."""
    return re.sub(r'[\s_\-]', '', str(name).lower())


def _aliases() -> Dict[str, str]:
    """canonical alias -> zoo name; each model answers to its name, arch and paper method name."""
    out: Dict[str, str] = {}
    for e in zoo_entries():
        for alias in (e.name, e.arch, e.method):
            out[canonical_name(alias)] = e.name
    return out


def model_names() -> List[str]:
    return list(dict.fromkeys(e.name for e in zoo_entries()))


def list_models(name: Optional[str] = None, task: Optional[str] = None,
                label: Optional[str] = None) -> List[ZooEntry]:
    """The published models, optionally filtered by name (any alias), task and label type."""
    want = None if name is None else resolve_name(name)
    return [e for e in zoo_entries()
            if (want is None or e.name == want) and (task is None or e.task == task)
            and (label is None or e.label == label)]


def resolve_name(name: str) -> str:
    """The zoo name of ``name`` (an alias such as ``RA-MIQA``, ``ra_miqa``, ``vit_small_patch16_224``)."""
    aliases = _aliases()
    key = canonical_name(name)
    if key in aliases:
        return aliases[key]
    close = difflib.get_close_matches(key, list(aliases), n=3, cutoff=0.5)
    hint = f' Did you mean: {", ".join(sorted({aliases[c] for c in close}))}?' if close else ''
    raise KeyError(f'unknown model {name!r}.{hint} Published models: {", ".join(model_names())} '
                   '(`miqa models` lists them); for your own model pass config= and checkpoint=.')


def get_model_entry(name: str = 'ra-miqa', task: str = 'cls', label: str = 'composite') -> ZooEntry:
    """The zoo row of (name, task, label); errors list what exists for that name."""
    zoo_name = resolve_name(name)
    for e in zoo_entries():
        if e.key == (zoo_name, task, label):
            return e
    have = ', '.join(f'{e.task}/{e.label}' for e in zoo_entries() if e.name == zoo_name)
    raise KeyError(f'no published {zoo_name} model for task={task!r}, label={label!r}; '
                   f'{zoo_name} exists for (task/label): {have}')



# ----------------------------------------------------------------------------------------- weights
def fetch_weights(entry: ZooEntry, *, sha256: Optional[str] = None, download: Optional[bool] = None,
                  transport: Optional[Transport] = None, progress: bool = True, verify: bool = True) -> Path:
    """The local weight file of ``entry``: cached, or downloaded (:func:`miqa.hub.fetch`).

    Args:
        sha256: a digest to pin (overrides the published and the recorded one).
        download: ``False`` never downloads; ``None`` (default) downloads unless ``MIQA_OFFLINE=1``.
        transport: how to fetch the URL (default :data:`miqa.hub.TRANSPORTS` by scheme).
        verify: check a cached file against the expected digest (hashing takes ~0.5 s per 100 MB).
    """
    return fetch(entry.source, sha256=sha256, download=download, transport=transport, progress=progress,
                 verify=verify, hint=CHECKPOINT_HINT)


def with_url(entry: ZooEntry, url: str) -> ZooEntry:
    """A copy of ``entry`` fetched from another URL (a mirror, or a local ``file://`` copy)."""
    return replace(entry, source=replace(entry.source, url=url))


# ------------------------------------------------------------------------------------------ tables
def _pair(e: Optional[ZooEntry]) -> str:
    if e is None:
        return '—'
    if e.srcc is None:
        return 'not reported'
    return f'`{e.srcc:.4f} / {e.plcc:.4f}`'


def markdown_table(label: str = 'composite', entries: Optional[List[ZooEntry]] = None) -> str:
    """The README's model table for one label type: per method, the paper's SRCC/PLCC per task
    and one download link per task (generated from ``model_zoo.csv``)."""
    from miqa.evaluation import tables  # the package loads the metric code: only when a table is made
    entries = [e for e in (entries if entries is not None else zoo_entries()) if e.label == label]
    by_key = {(e.name, e.task): e for e in entries}
    names = list(dict.fromkeys(e.name for e in entries))
    head = ['Method', 'Name'] + [f'{TASK_TITLES[t]} (SRCC/PLCC)' for t in TASKS] + ['Download']
    body = []
    for name in names:
        row = [by_key.get((name, t)) for t in TASKS]
        method = next(e.method for e in row if e is not None)
        links = ' · '.join(f'[{t}]({e.url})' for t, e in zip(TASKS, row) if e is not None)
        body.append([method, f'`{name}`', *(_pair(e) for e in row), links])
    return tables.markdown_table(head, body, [tables.LEFT] * 2 + [':--:'] * len(TASKS) + [tables.LEFT])


#: the README markers between which ``tools/gen_model_table.py --update`` writes :func:`readme_tables`
TABLE_BEGIN, TABLE_END = '<!-- model-table:begin -->', '<!-- model-table:end -->'
TABLE_TITLES = {'composite': 'Composite labels (paper Table 1)',
                'consistency': 'Consistency labels (paper Table 2)',
                'accuracy': 'Accuracy labels (paper Table 2)'}


def readme_tables(labels: Optional[List[str]] = None) -> str:
    """The README's model tables, one per label type (default: all), each under its title."""
    return '\n\n'.join(f'**{TABLE_TITLES[label]}** — SRCC / PLCC on MIQD-2.5M val, as published.\n\n'
                       f'{markdown_table(label)}' for label in (labels or list(LABEL_TYPES)))


def update_readme(path: Path, text: str) -> bool:
    """Replace what lies between the markers of ``path`` (atomically); returns whether the file
    changed. Missing markers raise ``ValueError``."""
    from miqa.utils.io import atomic_write_text
    old = Path(path).read_text(encoding='utf-8')
    pattern = re.compile(re.escape(TABLE_BEGIN) + r'.*?' + re.escape(TABLE_END), re.S)
    if not pattern.search(old):
        raise ValueError(f'{path}: markers {TABLE_BEGIN} ... {TABLE_END} not found; add them where the table '
                         'goes')
    new = pattern.sub(lambda _: f'{TABLE_BEGIN}\n{text}\n{TABLE_END}', old, count=1)
    if new != old:
        atomic_write_text(str(path), new)
    return new != old
