"""``MIQDDataset``: the MIQD-2.5M database (spec §2) as an mmengine dataset."""
import io
import logging
import os
import pickle
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from miqa.registry import DATASETS
from miqa.vocab import LABEL_TYPES, TASKS

from .index import (
    LabelIndex,
    PathLike,
    TaskLayout,
    label_suffixes,
    load_index,
    task_layout,
)
from .naming import DISTORTIONS, REGIONS, TAILS, VARIANT_TABLE
from .splits import SPLITS, make_split, official_categories, official_split_path, read_split_file


@DATASETS.register_module()
class MIQDDataset(BaseDataset):
    """Distorted images of one MIQD task with their machine-quality labels.

    Every sample info carries the fields of docs/CONTRACTS.md (``img_path``, ``ref_path``,
    ``src_id``, ``filename``, ``distortion``, ``region``, ``fg_level``, ``bg_level``,
    ``category``, ``consistency``, ``accuracy``, ``gt_score``), in source-id then label-file order.

    Args:
        data_root: the folder holding ``miqa_cls/``, ``miqa_det/``, ``miqa_ins/`` (and ``splits/``).
        task: ``'cls'``, ``'det'`` or ``'ins'`` (ins shares det's images and split files).
        label_type: ``gt_score`` is ``'consistency'``, ``'accuracy'`` or ``'composite'``
            (= 0.5 * consistency + 0.5 * accuracy, spec §1).
        split: ``'train'`` or ``'val'``.
        split_file: ``None``: an own deterministic split by source image (``split_seed``,
            ``val_ratio``, stratified by category when official cls files give categories);
            ``'official'``: ``<data_root>/splits/miqa_<cls|det>_<split>.csv``; a path: that file.
        on_missing: a label row whose image is not on disk is ``'skip'``-ped (one warning with
            the count) or an ``'error'`` naming the first such file.
        out_of_range: labels outside [0, 1] (spec §1) are kept with one ``'warn'``-ing (the count and
            the first label file), or are an ``'error'`` naming it.
        cache_dir: label-index cache (``None``: ``$MIQA_HOME/cache/index``; ``False``: off).
        **kwargs: passed to mmengine's ``BaseDataset`` (``lazy_init``, ``indices``,
            ``serialize_data``, ``max_refetch``, ``metainfo`` ...).
    """

    METAINFO = dict(dataset='MIQD-2.5M', tasks=TASKS, label_types=LABEL_TYPES,
                    distortions=tuple(DISTORTIONS), regions=REGIONS)

    def __init__(self,
                 data_root: PathLike = 'data/miqd',
                 task: str = 'cls',
                 label_type: str = 'composite',
                 split: str = 'train',
                 split_file: Optional[PathLike] = None,
                 split_seed: int = 0,
                 val_ratio: float = 0.2,
                 on_missing: str = 'skip',
                 out_of_range: str = 'warn',
                 cache_dir: Union[None, bool, PathLike] = None,
                 pipeline: Optional[list] = None,
                 test_mode: bool = False,
                 **kwargs) -> None:
        for name, value, allowed in (('task', task, TASKS), ('label_type', label_type, LABEL_TYPES),
                                     ('split', split, SPLITS), ('on_missing', on_missing, ('skip', 'error')),
                                     ('out_of_range', out_of_range, ('warn', 'error'))):
            if value not in allowed:
                raise ValueError(f'MIQDDataset: unknown {name} {value!r}; expected one of {allowed}')
        self.task, self.label_type, self.split = task, label_type, split
        self.split_file, self.split_seed, self.val_ratio = split_file, split_seed, val_ratio
        self.on_missing, self.out_of_range, self.cache_dir = on_missing, out_of_range, cache_dir
        kwargs.setdefault('data_prefix', {})
        super().__init__(data_root=os.fspath(data_root), pipeline=pipeline or [], test_mode=test_mode,
                         **kwargs)
        # set here: mmengine reads str values passed as ``metainfo`` as file names
        self._metainfo.update(task=task, label_type=label_type, split=split)

    def load_data_list(self) -> List[dict]:
        """Sample infos of the split, built from the (cached) label index."""
        layout = task_layout(self.data_root, self.task)
        index = load_index(self.data_root, self.task, self.cache_dir)
        split_ids, categories = self._split_sources(index.src_ids)
        in_split = np.zeros(len(index.src_ids), bool)
        code_of = {src_id: code for code, src_id in enumerate(index.src_ids)}
        in_split[[code_of[s] for s in split_ids if s in code_of]] = True
        rows = in_split[index.src]
        missing = np.flatnonzero(rows & ~index.exists)
        if missing.size:
            first = zip(index.src[missing[:5]].tolist(), index.variant[missing[:5]].tolist())
            examples = [f'{index.src_ids[s]}/{index.src_ids[s]}_{TAILS[v]}' for s, v in first]
            self._report_missing(layout, examples, int(missing.size))
        rows = np.flatnonzero(rows & index.exists)

        src_codes = np.unique(index.src[rows]).tolist()
        ref_paths = self._source_images(layout, [index.src_ids[c] for c in src_codes])
        per_src = {}
        for code in src_codes:
            src_id = index.src_ids[code]
            per_src[code] = (src_id, f'{src_id}_', f'{layout.images / src_id}{os.sep}{src_id}_',
                             ref_paths[src_id], categories.get(src_id, ''))
        per_variant = [(tail, *row) for tail, row in zip(TAILS, VARIANT_TABLE)]
        rows, consistency, accuracy, gt_score = self._labels(index, rows)
        if not len(rows):
            raise ValueError(self._empty_split_message(layout, index, split_ids))
        self._check_range(layout, index, rows, consistency, accuracy)
        data_list = []
        append = data_list.append
        for code, variant, c, a, g in zip(index.src[rows].tolist(), index.variant[rows].tolist(),
                                          consistency.tolist(), accuracy.tolist(), gt_score.tolist()):
            src_id, prefix, img_prefix, ref_path, category = per_src[code]
            tail, distortion, region, fg, bg = per_variant[variant]
            append({'img_path': img_prefix + tail, 'ref_path': ref_path, 'src_id': src_id,
                    'filename': prefix + tail, 'distortion': distortion, 'region': region, 'fg_level': fg,
                    'bg_level': bg, 'category': category, 'consistency': c, 'accuracy': a, 'gt_score': g})
        return data_list

    def _labels(self, index: LabelIndex, rows: np.ndarray) -> Tuple[np.ndarray, ...]:
        """``(rows, consistency, accuracy, gt_score)``. A source without ground truth (a photo with
        no fitting class: accuracy written as ``nan`` by the builder) has consistency-only labels:
        its composite label is its consistency, and it is left out of ``label_type='accuracy'``
        (both logged with the count)."""
        consistency, accuracy = index.consistency[rows], index.accuracy[rows]
        no_truth = np.isnan(accuracy)
        if no_truth.any():
            what = {'composite': 'their composite label is their consistency',
                    'consistency': 'consistency labels are complete',
                    'accuracy': 'left out of the accuracy labels'}[self.label_type]
            print_log(f'MIQD {self.task} {self.split}: {int(no_truth.sum())} of {len(rows)} images come from '
                      f'sources without ground truth (accuracy nan): {what}', logger='current',
                      level=logging.INFO)
            if self.label_type == 'accuracy':
                keep = ~no_truth
                rows, consistency, accuracy = rows[keep], consistency[keep], accuracy[keep]
                no_truth = no_truth[keep]
        composite = np.where(no_truth, consistency, 0.5 * consistency + 0.5 * accuracy)
        gt_score = {'composite': composite, 'consistency': consistency, 'accuracy': accuracy}[self.label_type]
        return rows, consistency, accuracy, gt_score

    def _split_sources(self, src_ids: List[str]) -> Tuple[List[str], Dict[str, str]]:
        """Source ids of ``self.split`` and the categories known for them."""
        categories = official_categories(self.data_root, self.task) if self.task == 'cls' else {}
        if self.split_file is None:
            return make_split(src_ids, self.val_ratio, self.split_seed, categories)[self.split], categories
        path = (official_split_path(self.data_root, self.task, self.split) if self.split_file == 'official'
                else self.split_file)
        split = read_split_file(path, self.task)
        categories.update(split.categories)
        unknown = set(split.src_ids).difference(src_ids)
        if unknown:
            print_log(f'MIQD {self.task}: {len(unknown)} of {len(split.src_ids)} sources of {path} have no '
                      f'label files (e.g. {", ".join(sorted(unknown)[:3])})', logger='current',
                      level=logging.WARNING)
        return split.src_ids, categories

    def _split_name(self) -> str:
        if self.split_file is None:
            return f'the own split by source (split_seed={self.split_seed}, val_ratio={self.val_ratio})'
        path = (official_split_path(self.data_root, self.task, self.split) if self.split_file == 'official'
                else self.split_file)
        return f'split file {path}'

    def _empty_split_message(self, layout: TaskLayout, index: LabelIndex, split_ids: List[str]) -> str:
        """Why the split has no samples (mmengine's samplers would divide by its length)."""
        known = set(split_ids).intersection(index.src_ids)
        where = self._split_name()
        examples = f', e.g. {", ".join(index.src_ids[:3])}' if index.src_ids else ''
        return (f'MIQD {self.task} {self.split}: no samples. {where[0].upper()}{where[1:]} lists '
                f'{len(split_ids)} source(s), {len(known)} of them with label files in {layout.labels} '
                f'(data_root {self.data_root}: {len(index.src_ids)} labelled sources{examples}); their '
                f'images are looked for in {layout.images}. Check data_root and the split file '
                '(split_file=None makes a split from the labelled sources).')

    def _check_range(self, layout: TaskLayout, index: LabelIndex, rows: np.ndarray,
                     consistency: np.ndarray, accuracy: np.ndarray) -> None:
        """Labels lie in [0, 1] (spec §1): others are counted and the first is named (``out_of_range``)."""
        tol = 1e-6
        bad = np.zeros(len(rows), bool)
        for column in (consistency, accuracy):
            with np.errstate(invalid='ignore'):  # nan: an accuracy without ground truth
                bad |= (column < -tol) | (column > 1 + tol)
        if not bad.any():
            return
        i = int(np.flatnonzero(bad)[0])
        src_id, tail = index.src_ids[index.src[rows[i]]], TAILS[index.variant[rows[i]]]
        labels = ', '.join(str(layout.labels / f'{src_id}{suffix}')
                           for suffix in label_suffixes(self.task).values())
        msg = (f'MIQD {self.task} {self.split}: {int(bad.sum())} of {len(rows)} images have labels outside '
               f'[0, 1], the first {src_id}_{tail} (consistency {consistency[i]:.6g}, accuracy '
               f'{accuracy[i]:.6g}) in {labels}')
        if self.out_of_range == 'error':
            raise ValueError(msg + ' (out_of_range="warn" keeps them)')
        print_log(msg + '; kept as they are (out_of_range="error" refuses them)', logger='current',
                  level=logging.WARNING)

    def _report_missing(self, layout: TaskLayout, examples: List[str], count: int) -> None:
        paths = [str(layout.images / example) for example in examples]
        if self.on_missing == 'error':
            raise FileNotFoundError(f'MIQD {self.task} {self.split}: {count} labelled image(s) are missing, '
                                    f'the first is {paths[0]} (on_missing="skip" leaves them out)')
        print_log(f'MIQD {self.task} {self.split}: skipped {count} label row(s) whose image is missing, '
                  f'e.g. {", ".join(paths)}', logger='current', level=logging.WARNING)

    @staticmethod
    def _source_images(layout: TaskLayout, src_ids: List[str]) -> Dict[str, str]:
        """Pristine source image path per source: one listing of ``src_images/``, the task's
        extension preferred, any other accepted; a missing one keeps the expected path."""
        found: Dict[str, str] = {}
        try:
            names = sorted(os.listdir(layout.src_images))
        except FileNotFoundError:
            names = []
        for name in names:
            stem, ext = os.path.splitext(name)
            if stem not in found or ext == layout.src_ext:
                found[stem] = name
        lacking = [s for s in src_ids if s not in found]
        if lacking:
            print_log(f'MIQD {layout.task}: {len(lacking)} source image(s) not found in {layout.src_images} '
                      f'(e.g. {", ".join(lacking[:3])}); their ref_path is the expected file',
                      logger='current', level=logging.WARNING)
        return {s: str(layout.src_images / found.get(s, s + layout.src_ext)) for s in src_ids}

    def _serialize_data(self) -> Tuple[np.ndarray, np.ndarray]:
        """mmengine's layout (one pickle per info, cumulative end offsets in ``data_address``)
        written by one reused memo-less ``Pickler``: about 2.5x faster than mmengine's on 1 M infos."""
        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer, protocol=4)
        pickler.fast = True  # no memo, so every dump is self-contained; infos are flat dicts
        ends = np.empty(len(self.data_list), np.int64)
        for i, info in enumerate(self.data_list):
            pickler.dump(info)
            ends[i] = buffer.tell()
        data_bytes = np.frombuffer(buffer.getvalue(), np.uint8)
        self.data_list.clear()  # flat dicts: freed by reference counting, no gc.collect() needed
        return data_bytes, ends
