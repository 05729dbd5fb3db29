"""Weighting schemes: formulas, registry errors, emphasis diagnostics (docs/methods.md §1)."""


import pytest
import torch

from reid.weighting import SCHEMES, batch_summary, emphasis_mode, emphasis_variance, get_scheme

P = torch.linspace(0.0, 1.0, 1001, dtype=torch.float64)

# name, params, explicit w(p) written independently of the implementation
FORMULAS = [
    ("cce", {}, lambda p: 2 * (1 - p)),
    ("mae", {}, lambda p: 2 * p * (1 - p)),
    ("mse", {}, lambda p: 4 * p * (1 - p) ** 2),
    ("gce", {"q": 0.7}, lambda p: 2 * p**0.7 * (1 - p)),
    ("imae", {"T": 8.0}, lambda p: torch.exp(8 * p * (1 - p))),
    ("dm", {"lam": 0.5, "beta": 8.0}, lambda p: torch.exp(8 * p**0.5 * (1 - p))),
    ("exponential", {"beta": 3.0}, lambda p: torch.exp(3 * (1 - p))),
    ("normal", {"psi": 0.3, "beta": 5.0}, lambda p: torch.exp(-5 * p * (p - 0.6))),
    ("beta", {"alpha": 2.5, "eta": 3.0}, lambda p: p**1.5 * (1 - p) ** 2),
]


@pytest.mark.parametrize("name,params,formula", FORMULAS, ids=[f[0] for f in FORMULAS])
def test_w_matches_formula(name, params, formula):
    w = get_scheme(name, **params).w(P)
    torch.testing.assert_close(w, formula(P), rtol=1e-12, atol=1e-12)


def test_defaults_and_registry_covers_issue_names():
    assert set(SCHEMES) == {"cce", "mae", "mse", "gce", "imae", "dm", "exponential", "normal", "beta", "sce"}
    assert get_scheme("gce").q == 0.7
    assert get_scheme("imae").T == 8.0
    assert get_scheme("DM", lam=0.5, beta=8.0).params == {"lam": 0.5, "beta": 8.0}


def test_imae_is_dm_with_lambda_one():
    torch.testing.assert_close(get_scheme("imae", T=6.0).w(P), get_scheme("dm", lam=1.0, beta=6.0).w(P))


def test_beta_family_reproduces_classic_losses_up_to_scale():
    for (a, e), name, kw in [((1, 2), "cce", {}), ((2, 2), "mae", {}), ((2, 3), "mse", {}), ((1.4, 2), "gce", {"q": 0.4})]:
        wb = get_scheme("beta", alpha=a, eta=e).w(P[1:-1])
        wc = get_scheme(name, **kw).w(P[1:-1])
        ratio = wc / wb
        torch.testing.assert_close(ratio, ratio[0].expand_as(ratio))


def test_unknown_name_lists_valid_schemes():
    with pytest.raises(ValueError, match=r"unknown weighting scheme 'foo'.*imae\(T=8\).*dm\(lam, beta\)"):
        get_scheme("foo")


def test_unknown_and_missing_parameters():
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['lambda'\]; valid parameters: lam, beta"):
        get_scheme("dm", **{"lambda": 0.5, "beta": 8.0})
    with pytest.raises(ValueError, match="missing required parameter 'beta'"):
        get_scheme("dm", lam=0.5)
    with pytest.raises(ValueError, match="q=1.5 must be in"):
        get_scheme("gce", q=1.5)
    with pytest.raises(ValueError, match="must both be >= 1"):
        get_scheme("beta", alpha=0.5, eta=2)
    with pytest.raises(ValueError, match=r"needs p in \[0, 1\]"):
        get_scheme("cce").w(torch.tensor([1.5]))


def test_emphasis_variance_matches_papers():
    # IMAE paper, p uniform on [0, 1]: CCE 0.3333, MAE 0.0889 at the paper's scale 4p(1-p), IMAE(T=8) 4.5461
    assert emphasis_variance("cce") == pytest.approx(1 / 3, abs=1e-4)
    assert 4 * emphasis_variance("mae") == pytest.approx(0.0889, abs=1e-4)  # our scale 2p(1-p): x4 for the paper's
    assert emphasis_variance("mae") == pytest.approx(0.0222, abs=1e-4)
    assert emphasis_variance("imae", T=8.0) == pytest.approx(4.5461, abs=1e-3)


@pytest.mark.parametrize("lam", [0.0, 0.25, 0.5, 1.0, 2.0, 4.0])
def test_dm_mode_is_lam_over_lam_plus_one(lam):
    scheme = get_scheme("dm", lam=lam, beta=8.0)
    assert emphasis_mode(scheme) == pytest.approx(lam / (lam + 1))
    assert emphasis_mode(scheme, numeric=True) == pytest.approx(lam / (lam + 1), abs=1e-4)


@pytest.mark.parametrize("name,params,_", FORMULAS, ids=[f[0] for f in FORMULAS])
def test_closed_form_modes_match_numeric_argmax(name, params, _):
    assert emphasis_mode(name, **params) == pytest.approx(emphasis_mode(name, numeric=True, **params), abs=1e-4)


def test_batch_summary_splits_by_mask():
    p = torch.tensor([0.1, 0.2, 0.9, 0.8])
    w = torch.tensor([1.0, 3.0, 5.0, 7.0])
    noisy = torch.tensor([True, True, False, False])
    s = batch_summary(p, w, mask=noisy)
    assert s["w_mean"] == pytest.approx(4.0)
    assert s["noisy_w_mean"] == pytest.approx(2.0)
    assert s["clean_w_mean"] == pytest.approx(6.0)
    assert s["noisy_p_q50"] == pytest.approx(0.15)
    assert s["w_var"] == pytest.approx(5.0)
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        batch_summary(p, w, mask=torch.tensor([1, 0, 1, 0]))


def test_scheme_and_normalisation_registries():
    from reid.registry import Registry
    from reid.weighting import NORMALIZATIONS, NORMALIZE_CHOICES

    assert isinstance(SCHEMES, Registry)
    assert all(cls.name == name for name, cls in SCHEMES.items())
    assert NORMALIZATIONS.names() == NORMALIZE_CHOICES == ("sum", "n")
    with pytest.raises(ValueError, match=r"key: unknown normalisation 'avg' \(choices: sum, n\)"):
        NORMALIZATIONS.check("avg", key="key")
