"""Pure helpers of the peers benchmark driver: parsing sizes, summarising timings, the table."""

import statistics


def parse_size(text: str) -> tuple[int, int]:
    """'513' -> (513, 513); '1024x2048' -> (1024, 2048) (height x width)."""
    parts = [int(p) for p in str(text).lower().split("x")]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise ValueError(f"size must be N or HxW with positive ints, got {text!r}")
    return parts[0], parts[1]


def summarize(seconds: list[float], batch: int, mode: str) -> dict:
    """min/median/max seconds per iteration and, for training, images/s (min/median/max)."""
    if not seconds:
        return {}
    out = {
        "n": len(seconds),
        "min_s": min(seconds),
        "median_s": statistics.median(seconds),
        "max_s": max(seconds),
    }
    if mode == "training":
        out.update(min_img_s=batch / out["max_s"], median_img_s=batch / out["median_s"], max_img_s=batch / out["min_s"])
    return out


def speedup(reference: dict, other: dict) -> float | None:
    """How many times faster `reference` is than `other` (ratio of median times); > 1: reference faster."""
    if not reference or not other:
        return None
    return other["median_s"] / reference["median_s"]


def gflops_per_s(gflop_forward: float, median_s: float, mode: str) -> float:
    """Achieved GFLOP/s: forward FLOPs per iteration (x3 for a training step: forward plus the
    input and weight gradients, the usual convention) over the median time."""
    return gflop_forward * (3 if mode == "training" else 1) / median_s


def _fmt(value, digits=3):
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(rows: list[dict], mode: str) -> str:
    """A markdown table of the peers. Each row: name, version, stats (summarize), speedup
    (deeplab-tf over this peer), gflop (forward), gflops (achieved), rss_mib, error."""
    if mode == "training":
        header = ["peer", "version", "img/s min", "img/s median", "img/s max", "s/step median",
                  "deeplab-tf speed-up", "fwd GFLOP", "GFLOP/s", "peak RSS MiB"]
    else:
        header = ["peer", "version", "min s", "median s", "max s", "deeplab-tf speed-up", "fwd GFLOP",
                  "GFLOP/s", "peak RSS MiB"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        stats = row.get("stats") or {}
        if row.get("error"):
            cells = [row["name"], row.get("version", "-"), f"failed: {row['error']}"] + [""] * (len(header) - 3)
        else:
            timing = ([_fmt(stats.get("min_img_s")), _fmt(stats.get("median_img_s")), _fmt(stats.get("max_img_s")),
                       _fmt(stats.get("median_s"))] if mode == "training"
                      else [_fmt(stats.get("min_s")), _fmt(stats.get("median_s")), _fmt(stats.get("max_s"))])
            cells = [row["name"], row.get("version", "-"), *timing, _fmt(row.get("speedup"), 2),
                     _fmt(row.get("gflop"), 1), _fmt(row.get("gflops"), 1), _fmt(row.get("rss_mib"), 0)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
