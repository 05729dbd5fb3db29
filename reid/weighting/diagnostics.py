"""Diagnostics of a weighting scheme and of one batch's weights (docs/methods.md §1).

* emphasis mode ``psi = argmax_{p in [0,1]} w(p)``: which examples a scheme focuses on
  (0: the hardest, 1/2: the middle, as IMAE);
* emphasis variance ``E[(w_i - E w_i)^2]``: how unequally a scheme treats examples. For p uniform
  on [0, 1] (IMAE paper): CCE 0.3333, MAE 0.0889 at the paper's scale ``4p(1-p)`` (0.0222 at our
  ``2p(1-p)``), IMAE(T=8) 4.5461;
* :func:`batch_summary`: the floats a trainer logs per batch (mean, std, quantiles of ``p_i`` and
  ``w_i``, optionally split by a boolean mask such as noisy vs clean).
"""

from __future__ import annotations

import torch

from reid.weighting.schemes import WeightScheme, get_scheme


def emphasis_mode(scheme: WeightScheme | str, numeric: bool = False, grid: int = 100001, **scheme_params) -> float:
    """``argmax_p w(p)`` on ``[0, 1]``: the scheme's closed form, or (``numeric=True``) the
    argmax over a uniform grid of ``grid`` points (float64)."""
    scheme = get_scheme(scheme, **scheme_params)
    if not numeric:
        return float(scheme.mode())
    p = torch.linspace(0.0, 1.0, grid, dtype=torch.float64)
    return float(p[torch.argmax(scheme.w(p))])


def emphasis_variance(scheme: WeightScheme | str, p: torch.Tensor | None = None, **scheme_params) -> float:
    """Population variance ``E[(w(p_i) - E w)^2]`` of the weights over the probabilities ``p``
    (a batch's ``p_i``). ``p=None`` uses a dense uniform grid on [0, 1] (the papers' figure)."""
    scheme = get_scheme(scheme, **scheme_params)
    if p is None:
        p = torch.linspace(0.0, 1.0, 200001, dtype=torch.float64)
    w = scheme.w(torch.as_tensor(p).detach())
    return float(w.var(unbiased=False)) if w.numel() else float("nan")


def _describe(x: torch.Tensor, prefix: str, quantiles: tuple[float, ...]) -> dict[str, float]:
    x = x.detach().double().flatten()
    out: dict[str, float] = {f"{prefix}_count": float(x.numel())}
    if x.numel() == 0:
        return out
    out[f"{prefix}_mean"] = float(x.mean())
    out[f"{prefix}_std"] = float(x.std(unbiased=False))
    out[f"{prefix}_var"] = float(x.var(unbiased=False))
    qs = torch.quantile(x, torch.tensor(quantiles, dtype=torch.float64))
    for q, v in zip(quantiles, qs.tolist()):
        out[f"{prefix}_q{round(q * 100):02d}"] = float(v)
    return out


def batch_summary(p: torch.Tensor, w: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                  mask_names: tuple[str, str] = ("noisy", "clean"),
                  quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)) -> dict[str, float]:
    """Float summaries of a batch's ``p_i`` (and ``w_i``): ``p_mean``, ``p_std``, ``p_var``,
    ``p_q10``, ``p_q50``, ``p_q90``, ``p_count``, the same for ``w``, and, with a boolean
    ``mask``, the same again prefixed by ``mask_names[0]`` (mask True) and ``mask_names[1]``
    (mask False), e.g. ``noisy_w_mean`` vs ``clean_w_mean``. ``w`` is the unnormalised weight."""
    p = torch.as_tensor(p)
    out = _describe(p, "p", quantiles)
    if w is not None:
        w = torch.as_tensor(w)
        if w.shape != p.shape:
            raise ValueError(f"batch_summary: p has shape {tuple(p.shape)} but w has {tuple(w.shape)}")
        out.update(_describe(w, "w", quantiles))
    if mask is not None:
        mask = torch.as_tensor(mask, device=p.device)
        if mask.dtype != torch.bool or mask.shape != p.shape:
            raise ValueError(f"batch_summary: mask must be a bool tensor of shape {tuple(p.shape)}; "
                             f"got dtype {mask.dtype}, shape {tuple(mask.shape)}")
        for name, m in ((mask_names[0], mask), (mask_names[1], ~mask)):
            out.update(_describe(p[m], f"{name}_p", quantiles))
            if w is not None:
                out.update(_describe(w[m], f"{name}_w", quantiles))
    return out


__all__ = ["emphasis_mode", "emphasis_variance", "batch_summary"]
