"""A random-name flood (100,000 distinct names: random subdomains of one domain and random
domains) keeps every table of the detector within its cap, with the evictions counted."""

from __future__ import annotations

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("flood_detection", Path(__file__).parents[2] / "bench" / "flood_detection.py")
flood_detection = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
spec.loader.exec_module(flood_detection)  # type: ignore[union-attr]


def test_a_random_name_flood_stays_within_the_caps_and_counts_evictions():
    det, stats, _ = flood_detection.flood(100_000)
    tunnel = det.parts["tunnel"]
    assert stats["tunnel.tracked"] <= tunnel.config.max_tracked == 20_000
    assert stats["tunnel.evicted"] > 0
    assert all(len(st.names) <= tunnel.config.max_names_per_domain for st in tunnel.state.values())
    assert stats["tunnel.names_over_cap"] > 0  # the one-domain half went past the per-domain cap
    assert stats["poisoning.tracked"] <= 200_000 and stats["new_domain.tracked"] <= 500_000
    assert stats["lookalike.judged"] == 50_000 + 1
