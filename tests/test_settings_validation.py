"""Issue 10.2 and 10.15: config values that would break analysis are reported and replaced by defaults."""

from __future__ import annotations

from pathlib import Path

from csassist.settings import Settings, load_settings


def _load(tmp_path: Path, toml: str) -> Settings:
    path = tmp_path / "config.toml"
    path.write_text(toml, encoding="utf-8")
    return load_settings(path)


def test_negative_top_k_is_reported_and_the_default_kept(tmp_path: Path) -> None:
    """``top_k = -3`` silently gave no KB answers at 7a33194."""
    settings = _load(tmp_path, "[retrieval]\ntop_k = -3\n")
    assert settings.retrieval.top_k == Settings().retrieval.top_k
    assert any("top_k" in w and "-3" in w and "at least 1" in w for w in settings.warnings)


def test_out_of_range_and_non_finite_numbers_fall_back(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        "[generation]\nnum_suggestions = 0\ntemperature = nan\nmax_new_tokens = -5\nserver_timeout_s = inf\n"
        "[listen]\nmax_body_bytes = 0\n",
    )
    defaults = Settings()
    assert settings.generation.num_suggestions == defaults.generation.num_suggestions
    assert settings.generation.temperature == defaults.generation.temperature
    assert settings.generation.max_new_tokens == defaults.generation.max_new_tokens
    assert settings.generation.server_timeout_s == defaults.generation.server_timeout_s
    assert settings.listen.max_body_bytes == defaults.listen.max_body_bytes
    assert len(settings.warnings) == 5


def test_valid_numbers_are_kept_without_warnings(tmp_path: Path) -> None:
    settings = _load(tmp_path, "[retrieval]\ntop_k = 8\n[generation]\ntemperature = 0\nthreads = 2\n")
    assert (settings.retrieval.top_k, settings.generation.temperature, settings.generation.threads) == (8, 0.0, 2)
    assert settings.warnings == ()


def test_unusable_order_patterns_are_reported_and_dropped(tmp_path: Path) -> None:
    """Back-references/look-arounds cannot run in linear time: a clear warning, the rest kept."""
    settings = _load(tmp_path, r"""[company]
order_patterns = ['(a)\1', 'ZX-\d+', '(a+)+$']
""")
    assert settings.company.order_patterns == (r"ZX-\d+", "(a+)+$")  # RE2 runs (a+)+$ in linear time
    assert len(settings.warnings) == 1 and "order_patterns" in settings.warnings[0]
    assert r"'(a)\\1'" in settings.warnings[0]  # the pattern as repr() shows it
