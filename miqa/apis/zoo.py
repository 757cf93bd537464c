"""The model zoo: the published MIQA models as data (``model_zoo.csv``) and their weight files.

One row per released model (the authors' checkpoints, ``official_checkpoints.csv`` of the spec):
``name`` (``ra-miqa``, ``resnet18``, ``resnet50``, ``efficientnet-b1``, ``efficientnet-b5``,
``vit-small``), ``task`` (``cls``/``det``/``ins``), ``label`` (``composite``/``consistency``/
``accuracy``), ``arch`` (the converter key of :data:`miqa.models.converters.CONVERSIONS`),
``method`` (as the paper prints it), ``config`` (the leaf config, ``configs/...``; shipped with the package),
``file`` (local file name), ``url``, ``sha256`` (empty: the authors publish none) and the
paper's ``srcc``/``plcc`` on MIQD-2.5M val (Table 1 for composite labels, the
accuracy/consistency table otherwise; empty where the paper reports none). The same file drives
:func:`list_models`, the README table (:func:`markdown_table`, ``tools/gen_model_table.py``)
and the downloads.

Weights live in ``$MIQA_HOME/weights/<file>`` (default ``~/.cache/miqa/weights``). A missing file
is downloaded (progress bar; Google-Drive links go to the direct-download endpoint) unless
``MIQA_OFFLINE=1`` or ``download=False``; offline or when the download fails, a
:class:`FileNotFoundError` names the file, its URL and where to put it. Checksums: the authors
publish none, so the SHA-256 of the first file seen (downloaded, or put there by hand) is recorded
in ``$MIQA_HOME/weights/sha256.json`` with a warning (trust on first use) and every later use is
verified against it. Pin a known
digest with ``sha256=`` (:func:`fetch_weights`, ``MIQAModel(..., sha256=...)``) or
:func:`pin_sha256`; a mismatch raises :class:`ChecksumError` and the file is not used.

The download transport is a function ``transport(url, fileobj, progress)`` that writes the
bytes; :data:`TRANSPORTS` maps URL schemes to it (``file://`` URLs work too), and
:func:`fetch_weights` takes one explicitly, so tests never touch the network.
"""
import csv
import difflib
import os
import re
import urllib.parse
import urllib.request
import warnings
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import IO, Callable, Dict, List, Optional, Tuple

from miqa.models.weights import (
    ChecksumError,
    file_sha256,
    record_sha256,
    recorded_sha256,
    sha256_store,
    trust_on_first_use,
    weights_dir,
)
from miqa.utils.paths import resolve_config
from miqa.vocab import LABEL_TYPES, TASK_TITLES, TASKS

ZOO_FILE = Path(__file__).with_name('model_zoo.csv')
OFFLINE_ENV = 'MIQA_OFFLINE'

Transport = Callable[[str, IO[bytes], bool], None]


@dataclass(frozen=True)
class ZooEntry:
    """One published model (a row of ``model_zoo.csv``)."""

    name: str
    task: str
    label: str
    arch: str
    method: str
    config: str
    file: str
    url: str
    sha256: str = ''
    srcc: Optional[float] = None
    plcc: Optional[float] = None

    @property
    def key(self) -> Tuple[str, str, str]:
        return self.name, self.task, self.label

    def config_path(self) -> Path:
        """The leaf config (``configs/...``, installed with the package); raises naming it when missing."""
        try:
            return Path(resolve_config(self.config, packaged_only=True))
        except FileNotFoundError as err:
            raise FileNotFoundError(f'config {self.config} of model {"/".join(self.key)}: {err}') from None

    def weight_path(self) -> Path:
        return weights_dir() / self.file

    def to_dict(self) -> dict:
        return asdict(self)


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
        entries.append(ZooEntry(**{**row, 'srcc': _float(row['srcc']), 'plcc': _float(row['plcc'])}))
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
def offline() -> bool:
    """``MIQA_OFFLINE`` set to 1/true/yes: never try to download."""
    return os.environ.get(OFFLINE_ENV, '').strip().lower() in ('1', 'true', 'yes')


def pin_sha256(file: str, digest: str) -> None:
    """Pin the SHA-256 of weight file ``file`` (a zoo ``file`` name) in ``sha256.json``."""
    if not re.fullmatch(r'[0-9a-fA-F]{64}', digest or ''):
        raise ValueError(f'a SHA-256 is 64 hex digits, got {digest!r}')
    record_sha256(file, digest.lower(), 'pinned')


def expected_sha256(entry: ZooEntry, sha256: Optional[str] = None) -> Optional[str]:
    """The digest a file must have: ``sha256`` given > the zoo's > the recorded one > none."""
    if sha256:
        return sha256.lower()
    if entry.sha256:
        return entry.sha256.lower()
    rec = recorded_sha256().get(entry.file)
    return rec['sha256'].lower() if rec and rec.get('sha256') else None


def drive_direct_url(url: str) -> str:
    """Google Drive share links (``/uc?id=``, ``/file/d/<id>/``) -> the direct-download endpoint
    (which skips the "cannot scan for viruses" page of large files); other URLs unchanged."""
    parsed = urllib.parse.urlparse(url)
    if parsed.netloc not in ('drive.google.com', 'docs.google.com'):
        return url
    file_id = urllib.parse.parse_qs(parsed.query).get('id', [None])[0]
    m = re.search(r'/file/d/([^/]+)', parsed.path)
    file_id = file_id or (m.group(1) if m else None)
    if not file_id:
        return url
    return f'https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t'


def urllib_transport(url: str, fileobj: IO[bytes], progress: bool = True, timeout: float = 60.0) -> None:
    """Stream ``url`` (http(s) or file) into ``fileobj`` with a tqdm progress bar."""
    from tqdm import tqdm

    request = urllib.request.Request(drive_direct_url(url), headers={'User-Agent': 'miqa'})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        ctype = response.headers.get('Content-Type', '') or ''
        if ctype.startswith('text/html'):
            raise OSError(f'{url} returned a web page, not the weight file (Google Drive quota or '
                          'a changed link?)')
        total = int(response.headers.get('Content-Length') or 0) or None
        with tqdm(total=total, unit='B', unit_scale=True, unit_divisor=1024, disable=not progress,
                  desc=Path(urllib.parse.urlparse(url).path).name or 'download') as bar:
            for block in iter(lambda: response.read(1 << 20), b''):
                fileobj.write(block)
                bar.update(len(block))


#: URL scheme -> transport. Tests put a local function here (or pass ``transport=``).
TRANSPORTS: Dict[str, Transport] = {'http': urllib_transport, 'https': urllib_transport,
                                    'file': urllib_transport}


def download_file(url: str, dst: os.PathLike, sha256: Optional[str] = None,
                  transport: Optional[Transport] = None, progress: bool = True) -> str:
    """Download ``url`` to ``dst`` atomically (temporary file + rename) and return its SHA-256.

    With ``sha256`` given, a different digest raises :class:`ChecksumError` and ``dst`` is not
    written.
    """
    dst = Path(dst)
    scheme = urllib.parse.urlparse(url).scheme
    transport = transport or TRANSPORTS.get(scheme)
    if transport is None:
        raise ValueError(f'no transport for URL scheme {scheme!r} ({url})')
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f'.{dst.name}.{os.getpid()}.part')
    try:
        with open(tmp, 'wb') as f:
            transport(url, f, progress)
        if tmp.stat().st_size == 0:
            raise OSError(f'{url} gave an empty file')
        digest = file_sha256(tmp)
        if sha256 and digest != sha256.lower():
            raise ChecksumError(f'{url}: SHA-256 {digest} does not match the expected {sha256.lower()}; '
                                f'{dst} was not written')
        os.replace(tmp, dst)
        return digest
    finally:
        if tmp.exists():
            tmp.unlink()


def _where_message(entry: ZooEntry, dst: Path) -> str:
    return (f'weight file {entry.file!r} of model {"/".join(entry.key)} is not in {dst.parent}. '
            f'Download it from {entry.url} and put it at {dst} '
            f'(or point MIQA_HOME elsewhere, or pass checkpoint=<path>).')


def fetch_weights(entry: ZooEntry, *, sha256: Optional[str] = None, download: Optional[bool] = None,
                  transport: Optional[Transport] = None, progress: bool = True, verify: bool = True) -> Path:
    """The local weight file of ``entry``: cached, or downloaded (see the module docstring).

    Args:
        sha256: a digest to pin (overrides the zoo's and the recorded one).
        download: ``False`` never downloads; ``None`` (default) downloads unless ``MIQA_OFFLINE=1``.
        transport: how to fetch the URL (default :data:`TRANSPORTS` by scheme).
        verify: check a cached file against the expected digest (hashing takes ~0.5 s per 100 MB).
    """
    dst = entry.weight_path()
    expected = expected_sha256(entry, sha256)
    if dst.is_file():
        if verify and expected:
            actual = file_sha256(dst)
            if actual != expected:
                raise ChecksumError(
                    f'{dst}: SHA-256 {actual} does not match the expected {expected} (pinned or recorded '
                    f'in {sha256_store()}). Delete the file to download it again from {entry.url}, or update '
                    'the pin if the new file is the one you trust.')
        if sha256 and not entry.sha256:
            record_sha256(entry.file, expected, 'pinned', entry.url)
        elif verify and expected is None:  # placed by hand: recorded now, so a later swap is caught
            trust_on_first_use(entry.file, dst, entry.url)
        return dst
    if download is None:
        download = not offline()
    if not download:
        why = f'{OFFLINE_ENV}=1' if offline() else 'download=False'
        raise FileNotFoundError(f'{_where_message(entry, dst)} [not downloaded: {why}]')
    try:
        digest = download_file(entry.url, dst, expected, transport, progress)
    except ChecksumError:
        raise
    except (OSError, ValueError) as err:  # URLError, HTTPError and socket errors are OSErrors
        raise FileNotFoundError(f'{_where_message(entry, dst)} [download failed: {err}]') from err
    if expected is None:
        record_sha256(entry.file, digest, 'trust-on-first-use', entry.url)
        warnings.warn(f'{entry.file}: the authors publish no checksum; SHA-256 {digest} was recorded in '
                      f'{sha256_store()} on first download (trust on first use) and later uses are checked '
                      'against it. Compare it with a trusted source and pin it with sha256=... .',
                      stacklevel=2)
    elif sha256 and not entry.sha256:
        record_sha256(entry.file, expected, 'pinned', entry.url)
    return dst


def with_url(entry: ZooEntry, url: str) -> ZooEntry:
    """A copy of ``entry`` fetched from another URL (a mirror, or a local ``file://`` copy)."""
    return replace(entry, url=url)


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
