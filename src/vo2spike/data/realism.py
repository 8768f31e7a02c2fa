"""Compare simulated sessions with real recordings, statistic by statistic.

Per session: peak VO2 (highest 30 s mean, mL/kg/min), VE, RR, RER and VE/VO2 over that
same 30 s, the HR-VO2 slope (bpm per L/min, 30 s means), and breath noise (robust CV of
breath VO2 around its 9-breath rolling median).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vo2spike.data.clean import apply_plausibility_limits
from vo2spike.data.k5 import read_yoyo
from vo2spike.data.read import DataReport
from vo2spike.data.simulate import (
    CALIBRATIONS,
    FOUNDATION,
    MALAGA,
    Calibration,
    simulate_cohort,
    synthetic_demographics,
)
from vo2spike.data.windows import resample_to_1hz

STATS = {
    "vo2peak_ml_kg_min": "peak VO2 (mL/kg/min)",
    "ve_peak_l_min": "VE at peak (L/min)",
    "rr_peak": "RR at peak (breaths/min)",
    "rer_peak": "RER at peak",
    "ve_vo2_peak": "VE/VO2 at peak",
    "ve_vo2_sub": "VE/VO2 at 40-60% of peak",
    "hr_vo2_slope": "HR-VO2 slope (bpm per L/min)",
    "breath_noise_cv": "breath-to-breath VO2 noise (robust CV)",
}


def session_stats(breaths: pd.DataFrame, weight_kg: float, has_hr: bool = True) -> dict:
    """Statistics of one session's breaths (canonical columns, test period only)."""
    b = apply_plausibility_limits(breaths.assign(ID_test="x"), DataReport())
    b = b.dropna(subset=["VO2", "VCO2", "VE"])
    med = b["VO2"].rolling(9, center=True, min_periods=3).median()
    noise = 1.4826 * float(np.nanmedian(np.abs(b["VO2"] - med) / med))
    hz = resample_to_1hz(b.drop(columns=["ID_test"]))
    roll = hz[["VO2", "VCO2", "VE", "RR", "HR"]].rolling(30, min_periods=30).mean()
    i = int(roll["VO2"].idxmax())
    peak = roll.loc[i]
    rel = roll["VO2"] / peak["VO2"]
    sub = roll[(rel > 0.4) & (rel < 0.6)]
    out = {
        "vo2peak_ml_kg_min": peak["VO2"] / weight_kg,
        "ve_peak_l_min": peak["VE"],
        "rr_peak": peak["RR"],
        "rer_peak": peak["VCO2"] / peak["VO2"],
        "ve_vo2_peak": peak["VE"] * 1000 / peak["VO2"],
        "ve_vo2_sub": float((sub["VE"] * 1000 / sub["VO2"]).median()) if len(sub) else np.nan,
        "hr_vo2_slope": np.nan,
        "breath_noise_cv": noise,
    }
    ok = roll[["VO2", "HR"]].dropna()
    if has_hr and len(ok) > 60 and ok["VO2"].std() > 0:
        out["hr_vo2_slope"] = float(np.polyfit(ok["VO2"] / 1000, ok["HR"], 1)[0])
    return out


def summarise(stats: pd.DataFrame) -> pd.Series:
    """'median [q25, q75] (n)' per statistic."""
    def fmt(s: pd.Series) -> str:
        s = s.dropna()
        if s.empty:
            return "n/a"
        q = s.quantile([0.25, 0.5, 0.75])
        return f"{q[0.5]:.3g} [{q[0.25]:.3g}, {q[0.75]:.3g}] (n={len(s)})"
    return pd.Series({k: fmt(stats[k]) for k in STATS})


def realism_table(columns: dict[str, pd.DataFrame]) -> str:
    """Markdown table: one row per statistic, one column per group of sessions."""
    summaries = {name: summarise(df) for name, df in columns.items()}
    lines = ["| statistic | " + " | ".join(columns) + " |",
             "|---|" + "---|" * len(columns)]
    for key, label in STATS.items():
        lines.append(f"| {label} | " + " | ".join(s[key] for s in summaries.values()) + " |")
    return "\n".join(lines)


def yoyo_stats(root) -> pd.DataFrame:
    """Statistics of every real Yo-Yo session (test period only)."""
    return pd.DataFrame([
        {"ID_test": s.id_test, **session_stats(s.test_period(), s.weight_kg, s.has_hr)}
        for s in read_yoyo(root)
    ])


def simulated_stats(protocol: str, n_tests: int, seed: int,
                    calibration: Calibration = FOUNDATION) -> pd.DataFrame:
    """Statistics of ``n_tests`` simulated sessions (synthetic demographics)."""
    demo = synthetic_demographics(n_tests, np.random.default_rng(seed))
    subjects, measures, _ = simulate_cohort(demo, protocol=protocol, seed=seed,
                                            calibration=calibration)
    weight = subjects.set_index("ID_test")["Weight"]
    return pd.DataFrame([{"ID_test": t, **session_stats(g, weight[t])}
                         for t, g in measures.groupby("ID_test", sort=False)])


def realism_plot(columns: dict[str, pd.DataFrame], path) -> None:
    """Box plots of every statistic, one box per group of sessions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(18, 7))
    for ax, (key, label) in zip(axes.flat, STATS.items(), strict=True):
        data = [df[key].dropna().to_numpy() for df in columns.values()]
        ax.boxplot(data, showfliers=True)
        labels = [n.replace("SIMULATED ", "SIM ").replace(" (", "\n(") for n in columns]
        ax.set_xticks(range(1, len(columns) + 1), labels, fontsize=7)
        ax.set_title(label, fontsize=9)
    fig.suptitle("Simulator vs REAL recordings, per session")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def realism_columns(yoyo_root, n_sim: int = 60, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Per-session statistics: the real Yo-Yo sessions; simulated Yo-Yo tests with each
    calibration; simulated graded (ramp) tests (foundation and malaga) for reference."""
    columns = {"REAL Yo-Yo (COSMED K5)": yoyo_stats(yoyo_root)}
    for cal in CALIBRATIONS.values():
        columns[f"SIMULATED yoyo ({cal.name})"] = simulated_stats("yoyo", n_sim, seed, cal)
    columns["SIMULATED ramp (foundation)"] = simulated_stats("ramp", n_sim, seed)
    columns["SIMULATED ramp (malaga)"] = simulated_stats("ramp", n_sim, seed, MALAGA)
    return columns


def realism_report(columns: dict[str, pd.DataFrame], yoyo_root, n_sim: int, seed: int) -> str:
    """Markdown comparison table with what was compared."""
    return (f"Real: `{yoyo_root}`. Simulated: {n_sim} tests per protocol, synthetic "
            f"demographics, seed {seed}. Median [25th, 75th percentile] (n sessions).\n\n"
            + realism_table(columns) + "\n")
