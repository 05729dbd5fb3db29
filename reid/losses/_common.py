"""Helpers shared by the losses: the ``last_stats`` logging contract, pair masks from PML
``indices_tuple``s and the split of ``**params`` between PML and the weighting scheme."""

from __future__ import annotations

import torch

#: keyword arguments that go to PML's BaseMetricLossFunction rather than to the scheme
PML_KWARGS = ("reducer", "distance", "embedding_regularizer", "embedding_reg_weight", "collect_stats")


def split_pml_kwargs(params: dict) -> tuple[dict, dict]:
    """Split ``**params`` into (PML base-class kwargs, weighting-scheme parameters)."""
    pml = {k: params[k] for k in PML_KWARGS if k in params}
    scheme = {k: v for k, v in params.items() if k not in PML_KWARGS}
    return pml, scheme


class LossStats(dict):
    """The ``last_stats`` dict of a loss: entries may be computed when first read.

    A plain ``dict`` for every reader (``isinstance(stats, dict)``, ``stats["p_mean"]``,
    ``stats.get``, ``in``, ``items()``, ``dict(stats)``, ``json.dumps``, pickling). Two kinds of
    deferred entries: *lazy* ones (a key and a zero-argument function, e.g. the per-example ``p``
    tensor), computed alone when that key is read; and the float *summaries* (``p_mean``,
    ``w_var``, ``loss``, ...), computed all at once, with one host sync, by the first access that
    needs them (a key not yet present, iteration, ``len``, ``repr``, comparison). ``in`` answers
    for lazy keys without computing them. Why: a loss forward runs every step, the summaries are
    read every ``log_every`` steps; computing them eagerly costs a dozen small ops and a device
    sync per step (about a third of weighted cross entropy's time at batch 256). Assigning a key
    replaces any deferred value.
    """

    def __init__(self, *args, lazy: dict | None = None, summarize=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = dict(lazy or {})  # key -> zero-argument function
        self._summarize = summarize  # this dict -> dict of floats; None once filled

    def set_lazy(self, key, compute) -> None:
        """Defer ``self[key]`` to ``compute()``, called on first read."""
        dict.pop(self, key, None)
        self._lazy[key] = compute

    def _resolve(self, key):
        value = self._lazy.pop(key)()
        dict.__setitem__(self, key, value)
        return value

    def _fill(self) -> None:
        for key in list(self._lazy):
            self._resolve(key)
        summarize = self._summarize
        if summarize is not None:
            self._summarize = None
            for key, value in summarize(self).items():
                dict.setdefault(self, key, value)

    def __missing__(self, key):
        if key in self._lazy:
            return self._resolve(key)
        if self._summarize is not None:
            self._fill()
            if dict.__contains__(self, key):
                return dict.__getitem__(self, key)
        raise KeyError(key)

    def __setitem__(self, key, value) -> None:
        self._lazy.pop(key, None)
        dict.__setitem__(self, key, value)

    def __contains__(self, key) -> bool:
        if dict.__contains__(self, key) or key in self._lazy:
            return True
        self._fill()
        return dict.__contains__(self, key)

    def get(self, key, default=None):
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        if key in self._lazy:
            return self._resolve(key)
        self._fill()
        return dict.get(self, key, default)

    def clear(self) -> None:
        self._lazy.clear()
        self._summarize = None
        dict.clear(self)

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


# Every other read (and the writes that could clash with a deferred entry) sees the full dict.
for _name in ("__iter__", "__reversed__", "__len__", "__repr__", "__eq__", "__ne__", "__or__", "__ror__", "__ior__",
              "__delitem__", "keys", "values", "items", "copy", "pop", "popitem", "setdefault", "update"):
    setattr(LossStats, _name, _filling(_name))
del _name


def _summaries(stats: dict, extra: dict) -> dict[str, float]:
    """Float summaries of ``stats["p"]`` and ``stats["w"]`` (one host sync) and of ``extra``."""
    out: dict[str, float] = {}
    p, w = stats.get("p"), stats.get("w")
    if p is not None and p.numel():
        parts = [p.double()] + ([] if w is None else [w.double()])
        for name, x in zip(("p", "w"), parts):
            var, mean = torch.var_mean(x, unbiased=False)
            vals = torch.stack([mean, var, x.min(), x.max()]).tolist()
            out.update({f"{name}_mean": vals[0], f"{name}_var": vals[1], f"{name}_std": vals[1] ** 0.5,
                        f"{name}_min": vals[2], f"{name}_max": vals[3]})
    out.update({k: float(v.sum()) if torch.is_tensor(v) else float(v) for k, v in extra.items()})
    return out


def _detached(get):
    def compute():
        x = get()
        return None if x is None else x.detach()
    return compute


def make_stats(p, w, **extra: float | torch.Tensor) -> LossStats:
    """The ``last_stats`` dict every loss sets after a forward: detached per-example tensors
    ``p`` (labelled-class / matching probability) and ``w`` (unnormalised weight) where they
    exist, plus float summaries ``p_mean``, ``p_std``, ``p_var``, ``p_min``, ``p_max`` (same for
    ``w``) and loss-specific floats (``extra``; a tensor there is reported as the float of its
    sum, e.g. ``loss=out.loss.detach()``).

    ``p`` and ``w`` are tensors (or ``None``), or zero-argument functions returning them, called
    on first read. The summaries are computed on first read (see :class:`LossStats`) from the
    stored tensors, which the losses never modify. Quantiles and mask splits:
    :func:`reid.weighting.batch_summary`."""
    stats = LossStats(summarize=lambda s: _summaries(s, extra))
    if p is not None:
        for key, value in (("p", p), ("w", w)):
            if callable(value):
                stats._lazy[key] = _detached(value)
            else:
                dict.__setitem__(stats, key, None if value is None else value.detach())
    for key, value in extra.items():
        if torch.is_tensor(value):
            extra[key] = value.detach()
    return stats


def weighted_ce_stats(weights, coefficients, loss: torch.Tensor) -> LossStats:
    """:func:`make_stats` for the weighted cross entropy, built without its generic wrappers (it
    runs every step): ``p``, ``w`` and ``coefficients`` computed on first read from ``weights``
    (an :class:`reid.weighting.ExampleWeights`, detached) and ``coefficients`` (a zero-argument
    function), ``normalized_w`` stored, the summaries with ``loss`` as :func:`make_stats`' would be."""
    stats = LossStats(summarize=lambda s: _summaries(s, {"loss": loss}))
    stats._lazy.update(p=lambda: weights.p, w=lambda: weights.w, coefficients=coefficients)
    dict.__setitem__(stats, "normalized_w", weights.normalized)
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
