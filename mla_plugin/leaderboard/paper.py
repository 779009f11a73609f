"""The paper's published numbers (Zhang, Latham, Yao, CVPR 2024; test accuracy %, mean of
3 seeds), for reference only.

Caveat: the authors' released code selects the epoch on the **test** set (there is no
validation split), so these numbers are best-epoch test accuracies; the leaderboard
selects on validation (``protocol.selection=val``), which is lower in expectation.
Encoders differ too (the paper: ResNet-18 / M3AE, not all weights released).
Source: the paper's Tables 1/5 (std kept as printed, "95% std").
"""

from mla_plugin.leaderboard.methods import METHODS

# TABLE1[dataset][row] = {method: (mean, std or None)}; rows are the paper's modality names,
# columns the paper's method order, which is methods.METHODS.
_T1 = {
    "cremad": {
        "audio": "54.14±0.92 55.65±0.82 52.17±1.12 53.89±0.75 51.49±1.28 53.76±0.98 59.41±0.71 59.27±1.23",
        "video": "18.45±1.07 18.68±0.76 55.48±0.71 18.67±1.21 17.34±1.11 28.09±1.17 39.11±1.03 64.91±1.10",
        "multi": "60.32±0.78 61.56±0.91 66.32±1.08 60.07±1.25 59.21±1.14 68.14±0.79 63.71±1.12 79.70±0.87",
    },
    "ks": {
        "audio": "48.77±0.95 49.18±0.76 47.87±1.10 48.67±0.83 49.96±1.21 48.87±1.05 51.57±1.03 54.67±0.92",
        "video": "24.53±1.12 24.67±1.07 46.76±0.85 23.15±0.98 23.77±1.14 29.73±1.06 32.19±0.92 51.03±1.09",
        "multi": "64.72±0.97 64.84±1.05 65.53±0.89 63.33±0.76 63.72±1.13 65.74±1.08 65.78±0.97 71.35±1.22",
    },
    "food101": {
        "image": "4.57±0.88 3.51±1.22 58.46±1.03 4.68±0.97 14.20±1.18 22.35±1.27 45.74±1.09 69.60",
        "text": "85.63±1.14 86.02±1.05 85.19±1.21 85.84±0.92 85.79±1.10 85.17±1.09 84.13±1.27 86.47",
        "multi": "86.19±0.86 86.32±1.18 90.21±1.02 87.21±1.05 88.87±0.88 87.54±1.03 92.87±1.01 93.33",
    },
    "mvsa": {
        "text": "73.33±1.03 75.22±0.92 72.15±1.07 74.85±0.98 73.13±1.08 74.76±0.87 74.87±1.15 75.72",
        "image": "28.46±1.12 27.32±1.09 45.24±0.97 27.12±1.18 28.15±0.88 31.98±1.03 32.99±1.09 54.99",
        "multi": "76.19±1.01 76.25±0.95 76.88±0.82 75.34±1.07 75.94±0.88 76.37±0.98 77.96±1.06 79.94",
    },
    "iemocap": {
        "audio": "39.79±1.08 41.93±0.89 43.12±0.97 41.64±1.06 42.23±0.88 41.38±1.13 42.98±0.95 46.29",
        "image": "29.44±0.97 30.00±0.88 32.38±0.92 29.85±1.06 27.45±1.08 30.24±1.02 31.22±1.07 37.63",
        "text": "65.16±0.88 67.84±0.97 68.79±1.07 66.37±0.95 65.16±1.08 70.79±1.03 75.03±0.79 73.22",
        "multi": "74.18±1.03 75.91±0.92 74.96±0.97 74.32±1.12 73.34±1.05 76.17±1.01 76.17±0.95 78.92",
    },
}


def _parse(cell: str):
    mean, _, std = cell.partition("±")
    return float(mean), (float(std) if std else None)


TABLE1 = {
    ds: {
        row: dict(zip(METHODS, map(_parse, cells.split()), strict=False))
        for row, cells in rows.items()
    }
    for ds, rows in _T1.items()
}

CAVEAT = (
    "the paper's numbers: best epoch selected on the test set (the authors' code has no "
    "validation split), its own encoders and unknown seeds; not directly comparable with "
    "validation-selected runs"
)
