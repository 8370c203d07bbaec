"""Statistics over seeds: --seeds parsing and its errors, the t quantile and interval against
scipy, the effect per seed (difference, or ratio in log space) and the verdict rule over seeds."""
import math

import numpy as np
import pytest

from tinygrad_gpt.lab.seeds import (effect, mean_interval, needed, over_seeds, parse_seeds,
                                    t_cdf, t_quantile)


def test_seeds_parse_ranges_and_lists_in_the_order_given():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,3,7") == [0, 3, 7]
    assert parse_seeds("7, 0-1") == [7, 0, 1]
    assert parse_seeds("5") == [5]


@pytest.mark.parametrize("text, message", [
    ("", r"--seeds: empty; give seeds like 0-4 or 0,3,7"),
    ("1-", r"--seeds '1-': '1-' is not a seed \(a whole number >= 0\) or a range like 0-4"),
    ("-1", r"--seeds '-1': '-1' is not a seed"),
    ("a,2", r"--seeds 'a,2': 'a' is not a seed"),
    ("1.5", r"--seeds '1.5': '1.5' is not a seed"),
    ("3-1", r"--seeds '3-1': range '3-1' runs backwards; write 1-3"),
    ("0-2,2", r"--seeds '0-2,2': seed 2 is given twice"),
])
def test_bad_seeds_name_the_part(text, message):
    with pytest.raises(ValueError, match=message):
        parse_seeds(text)


def test_t_quantile_and_cdf_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in [1, 2, 3, 4, 6, 9, 29, 100, 1000]:
        for p in [0.025, 0.1, 0.5, 0.8, 0.975, 0.995]:
            assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-10, abs=1e-12)
        for t in [-3.0, -0.5, 0.0, 1.2, 4.0]:
            assert t_cdf(t, df) == pytest.approx(stats.t.cdf(t, df), rel=1e-10, abs=1e-14)
    with pytest.raises(ValueError, match=r"t_quantile: p=1.0 must be in \(0, 1\) and df=3 > 0"):
        t_quantile(1.0, 3)


def test_mean_interval_matches_scipy(rng):
    stats = pytest.importorskip("scipy.stats")
    for n in [2, 3, 5, 12]:
        x = rng.normal(0.3, 0.2, n)
        mean, sd, low, high = mean_interval(list(x))
        lo, hi = stats.t.interval(0.95, n - 1, loc=np.mean(x), scale=stats.sem(x))
        assert mean == pytest.approx(np.mean(x)) and sd == pytest.approx(np.std(x, ddof=1))
        assert (low, high) == (pytest.approx(lo, rel=1e-9), pytest.approx(hi, rel=1e-9))
    with pytest.raises(ValueError, match="mean_interval: needs at least 2 values, got 1"):
        mean_interval([1.0])


def test_effect_is_a_difference_or_a_log_ratio_and_none_when_not_a_number():
    assert effect("difference", 2.7, 2.5) == pytest.approx(0.2)
    assert effect("ratio", 22.0, 1.1) == pytest.approx(math.log(20.0))
    assert effect("ratio", 5.0, 0.0) is None            # no ratio to a zero
    assert effect("difference", "crash (IndexError)", "runs") is None
    assert effect("difference", "nan", 1.0) is None     # results.json's spelling of NaN
    assert effect("difference", True, False) is None
    assert effect("", 3.0, 1.0) is None
    with pytest.raises(ValueError, match=r"effect kind 'log': choose from"):
        effect("log", 1.0, 2.0)


def test_ratio_summary_is_geometric_with_the_interval_from_log_space():
    pairs = [(22.0, 1.1), (44.0, 1.1), (33.0, 1.1)]
    s = over_seeds("ratio", pairs, [True, True, True])
    logs = [math.log(w / f) for w, f in pairs]
    m, sd, lo, hi = mean_interval(logs)
    assert s.mean == pytest.approx(math.exp(m)) and s.sd == pytest.approx(sd)
    assert (s.low, s.high) == (pytest.approx(math.exp(lo)), pytest.approx(math.exp(hi)))
    assert s.low < s.mean < s.high and s.reproduced and (s.k, s.n, s.measured) == (3, 3, 3)
    assert s.effect_name == "wrong / fixed"


def test_the_verdict_rule_over_seeds():
    assert needed(5) == 4 and needed(2) == 2 and needed(1) == 1 and needed(10) == 8
    # one seed: exactly that seed's verdict, whatever the numbers
    one = over_seeds("difference", [(1.0, 1.0)], [True])
    assert one.reproduced and one.why == "one seed: its own verdict" and one.low is None
    # 4 of 5 reproduce and the interval excludes 0
    ok = over_seeds("difference", [(1.1, 1.0), (1.2, 1.0), (1.15, 1.0), (1.12, 1.0),
                                   (1.0, 1.0)], [True, True, True, True, False])
    assert ok.reproduced and ok.k == 4 and ok.low > 0
    # 3 of 5 is too few, however clear the numbers
    few = over_seeds("difference", [(2.0, 1.0)] * 5, [True, True, True, False, False])
    assert not few.reproduced and few.why == "only 3 of 5 seeds reproduced; the rule needs 4"
    # every seed says yes, but the effect changes sign: the interval includes 0
    mixed = over_seeds("difference", [(1.3, 1.0), (0.8, 1.0), (1.1, 1.0)], [True] * 3)
    assert not mixed.reproduced and mixed.why == "the 95% interval includes no effect"
    assert mixed.low < 0 < mixed.high
    # a symptom that is not a number counts seeds only
    words = over_seeds("", [("crash", "runs")] * 5, [True] * 5)
    assert words.reproduced and words.mean is None and words.k == 5
    # a deterministic count: zero spread, the interval is the value and excludes 0
    exact = over_seeds("difference", [(33088, 29792)] * 3, [True] * 3)
    assert exact.reproduced and exact.sd == 0 and exact.low == exact.high == 3296
    # a seed that failed to give a number still counts against k of n
    failed = over_seeds("difference", [(2.0, 1.0), (None, None)], [True, False])
    assert not failed.reproduced and (failed.n, failed.k, failed.measured) == (2, 1, 1)
    with pytest.raises(ValueError, match=r"over_seeds: 2 symptom pairs for 1 verdicts"):
        over_seeds("difference", [(1, 1), (1, 1)], [True])
