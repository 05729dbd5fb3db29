"""A study's scheme entry (``{name: imae, params: {T: 8}}``) and the identity loss it names.

An entry names either a weighting scheme of ``reid.weighting.SCHEMES`` (weighted cross entropy
under it) or an identity loss of ``reid.losses.ID_LOSSES`` with its default scheme (e.g.
``proselflc``): :func:`id_loss_of`. Every study builds its losses through :func:`build_study_loss`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class SchemeSpec(BaseModel):
    """A loss = weighting scheme: ``name`` is a weighting scheme of ``reid.weighting.SCHEMES``
    (cce, mae, mse, gce, imae, dm, exponential, normal, beta: weighted cross entropy under it) or
    an identity loss of ``reid.losses.ID_LOSSES`` with its default scheme, mapped by
    :func:`id_loss_of`; ``params`` are passed on (e.g. ``{T: 8}`` for imae)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None  # display name in tables; defaults to name
    # batch normalisation of the weights: "sum" (Z = sum of w_i: CCE-DN for cce) or "n" (Z = N:
    # plain mean-reduced CCE for cce); None = the study's / config's own setting
    normalize: Literal["sum", "n"] | None = None

    @property
    def display(self) -> str:
        return self.label or self.name


def id_loss_of(name: str) -> tuple[str, str]:
    """``(loss.id.name, loss.id.scheme)`` for a study's scheme entry: a weighting scheme of
    ``reid.weighting.SCHEMES`` is weighted CE under it; an identity loss of
    ``reid.losses.ID_LOSSES`` (e.g. ``proselflc``) is that loss with its default scheme."""
    from reid.losses import ID_LOSSES
    from reid.weighting import SCHEMES

    if name in SCHEMES:
        return "weighted_ce", name
    if name in ID_LOSSES:
        return name, "cce"
    raise ValueError(f"unknown scheme or identity loss {name!r} (weighting schemes: {', '.join(SCHEMES)}; "
                     f"identity losses: {', '.join(ID_LOSSES)})")


def build_study_loss(name: str, params: dict, num_classes: int, normalize: str = "sum"):
    """The identity loss of a scheme entry, built through ``reid.losses.ID_LOSSES``."""
    from reid.losses import ID_LOSSES

    loss_name, scheme = id_loss_of(name)
    return ID_LOSSES.get(loss_name)(num_classes=num_classes, scheme=scheme, normalize=normalize,
                                    label_smoothing=0.0, **params)


def weight_scheme_of(name: str, params: dict):
    """The :class:`reid.weighting.WeightScheme` of a study's scheme entry: the identity loss that
    :func:`id_loss_of` maps ``name`` to, built with ``params``, publishes it
    as ``weight_scheme`` (a label-correcting loss publishes CCE's: it changes the target, not the weight)."""
    # num_classes only sizes the loss (some need >= 2); the weighting does not depend on it
    return build_study_loss(name, params, num_classes=2).weight_scheme


__all__ = ["SchemeSpec", "id_loss_of", "build_study_loss", "weight_scheme_of"]
