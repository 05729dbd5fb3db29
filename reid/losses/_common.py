"""Helpers shared by the losses: the ``last_stats`` logging contract and pair masks from PML
``indices_tuple``s."""

from __future__ import annotations

import torch



class LossStats(dict):
    """The ``last_stats`` dict of a loss, with its float summaries computed when first read.

    A plain ``dict`` for every reader (``isinstance(stats, dict)``, ``stats["p_mean"]``,
    ``stats.get``, ``in``, ``items()``, ``dict(stats)``, ``json.dumps``, pickling): the per-example
    tensors (``p``, ``w``, ...) are stored on construction, and the float summaries (``p_mean``,
    ``w_var``, ``loss``, ...) are filled in, all at once and with one host sync, by the first
    access that needs them (a missing key, iteration, ``len``, ``repr``, comparison). Why: a loss
    forward runs every step, the summaries are read every ``log_every`` steps; computing them
    eagerly costs a dozen small ops and a device sync per step (about a third of weighted cross
    entropy's time at batch 256). Keys set explicitly take precedence over computed ones.
    """

    def __init__(self, *args, summarize=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._summarize = summarize  # callable -> dict of floats, or None once filled

    def _fill(self) -> None:
        summarize = self._summarize
        if summarize is not None:
            self._summarize = None
            for key, value in summarize().items():
                dict.setdefault(self, key, value)

    def __missing__(self, key):
        if self._summarize is not None:
            self._fill()
            if dict.__contains__(self, key):
                return dict.__getitem__(self, key)
        raise KeyError(key)

    def __contains__(self, key) -> bool:
        if dict.__contains__(self, key):
            return True
        self._fill()
        return dict.__contains__(self, key)

    def get(self, key, default=None):
        if not dict.__contains__(self, key):
            self._fill()
        return dict.get(self, key, default)

    def __reduce__(self):
        self._fill()
        return (LossStats, (dict(dict.items(self)),))


def _filling(name: str):
    base = getattr(dict, name)

    def method(self, *args, **kwargs):
        self._fill()
        return base(self, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = base.__doc__
    return method


for _name in ("__iter__", "__reversed__", "__len__", "__repr__", "__eq__", "__ne__", "__or__", "__ror__",
              "keys", "values", "items", "copy", "pop", "popitem", "setdefault"):
    setattr(LossStats, _name, _filling(_name))
del _name


def _summaries(p: torch.Tensor | None, w: torch.Tensor | None, extra: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    if p is not None and p.numel():
        parts = [p.double()] + ([] if w is None else [w.double()])
        for name, x in zip(("p", "w"), parts):
            var, mean = torch.var_mean(x, unbiased=False)
            vals = torch.stack([mean, var, x.min(), x.max()]).tolist()
            out.update({f"{name}_mean": vals[0], f"{name}_var": vals[1], f"{name}_std": vals[1] ** 0.5,
                        f"{name}_min": vals[2], f"{name}_max": vals[3]})
    out.update({k: float(v.sum()) if torch.is_tensor(v) else float(v) for k, v in extra.items()})
    return out


def make_stats(p: torch.Tensor | None, w: torch.Tensor | None, **extra: float | torch.Tensor) -> LossStats:
    """The ``last_stats`` dict every loss sets after a forward: detached per-example tensors
    ``p`` (labelled-class / matching probability) and ``w`` (unnormalised weight) where they
    exist, plus float summaries ``p_mean``, ``p_std``, ``p_var``, ``p_min``, ``p_max`` (same for
    ``w``) and loss-specific floats (``extra``; a tensor there is reported as the float of its
    sum, e.g. ``loss=out.loss.detach()``). The summaries are computed on first read (see
    :class:`LossStats`) from the stored tensors, which the losses never modify. Quantiles and mask splits:
    :func:`reid.weighting.batch_summary`."""
    stats = LossStats()
    if p is not None:
        p = p.detach()
        w = None if w is None else w.detach()
        stats["p"] = p
        stats["w"] = w
    extra = {k: v.detach() if torch.is_tensor(v) else v for k, v in extra.items()}
    stats._summarize = lambda: _summaries(p, w, extra)
    return stats


def pair_masks(indices_tuple, labels: torch.Tensor, ref_labels: torch.Tensor, same_ref: bool):
    """Boolean ``[N, M]`` masks of the (anchor, positive) and (anchor, negative) pairs to use.

    ``indices_tuple=None``: every pair by label equality, the diagonal removed when the
    references are the embeddings themselves (``same_ref``). A PML pair tuple
    ``(a1, p, a2, n)`` or triplet tuple ``(a, p, n)`` (from a miner or ``CrossBatchMemory``)
    selects exactly the pairs it names.
    """
    n, m = labels.shape[0], ref_labels.shape[0]
    if indices_tuple is None:
        pos = labels[:, None] == ref_labels[None, :]
        neg = ~pos
        if same_ref:
            pos = pos & ~torch.eye(n, m, dtype=torch.bool, device=labels.device)
        return pos, neg
    if len(indices_tuple) == 3:
        a, p, ng = indices_tuple
        a1, a2 = a, a
    elif len(indices_tuple) == 4:
        a1, p, a2, ng = indices_tuple
    else:
        raise ValueError(f"indices_tuple must have 3 (triplets) or 4 (pairs) tensors; got {len(indices_tuple)}")
    pos = torch.zeros(n, m, dtype=torch.bool, device=labels.device)
    neg = torch.zeros(n, m, dtype=torch.bool, device=labels.device)
    pos[a1.long(), p.long()] = True
    neg[a2.long(), ng.long()] = True
    return pos, neg
