"""The serving benchmark's results as tables, a plot and the ``vs TorchServe`` lines."""

from pathlib import Path

import matplotlib

from bench.servers import TORCHSERVE

matplotlib.use("Agg")  # files only: no display here or in CI
import matplotlib.pyplot as plt  # after the backend is chosen

RSS_AT = 32  # the concurrency whose memory the RSS ratio compares


def point_at(points: list[dict], clients: int) -> dict | None:
    return next((p for p in points if p["concurrency"] == clients), None)


def ratio(ours: dict | None, theirs: dict | None, key: str) -> str:
    if ours is None or theirs is None or not theirs[key]:
        return "n/a"
    return f"{ours[key] / theirs[key]:.2f}x"


def mean_batch(point: dict) -> str:
    return "-" if point["mean_batch_size"] is None else f"{point['mean_batch_size']:.1f}"


def model_table(result: dict) -> list[str]:
    limit = result["in_process_limit"]
    best = max(v["images_per_s"] for v in limit.values())
    single = limit[1]["p50_ms"]
    yardstick = result["runs"].get(TORCHSERVE, [])
    lines = [
        f"### {result['label']} (`{result['tag']}`)",
        "",
        f"In-process limit (decode + preprocess + forward, no HTTP, every core): **{best:.0f} images/s** "
        f"at the best batch size; one image alone takes {single:.1f} ms.",
        "",
        "| server | clients | req/s | vs TorchServe | p50 ms | p95 ms | p99 ms | errors | mean batch "
        "| server CPU ms/req | RSS MiB |",
        "|--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, points in result["runs"].items():
        for p in points:
            versus = ratio(p, point_at(yardstick, p["concurrency"]), "requests_per_s")
            lines.append(
                f"| {name} | {p['concurrency']} | {p['requests_per_s']:.0f} | {versus} "
                f"| {p['p50_ms']:.1f} | {p['p95_ms']:.1f} | {p['p99_ms']:.1f} | {p['errors']} "
                f"| {mean_batch(p)} | {p['server_cpu_ms_per_request']:.2f} | {p['rss_mib']:.0f} |"
            )
    lines += ["", "Latency at 1 client, p50 minus one image in-process:"]
    for name, points in result["runs"].items():
        if first := point_at(points, 1):
            lines.append(f"- {name}: {first['p50_ms'] - single:+.1f} ms")
    return lines


def markdown(results: dict[str, dict]) -> str:
    lines: list[str] = []
    for result in results.values():
        lines += [*model_table(result), ""]
    return "\n".join(lines)


def torchserve_lines(results: dict[str, dict]) -> list[str]:
    """``vs TorchServe: <model> <topology> c=32 <ratio>x c=64 <ratio>x rss <ratio>x``, for scripts."""
    lines = []
    for result in results.values():
        runs = result["runs"]
        if TORCHSERVE not in runs:
            continue
        theirs = runs[TORCHSERVE]
        model = result["label"]
        for name in ("one process", "split"):
            if name not in runs:
                continue
            ours = runs[name]
            c32 = ratio(point_at(ours, 32), point_at(theirs, 32), "requests_per_s")
            c64 = ratio(point_at(ours, 64), point_at(theirs, 64), "requests_per_s")
            rss = ratio(point_at(ours, RSS_AT) or ours[-1], point_at(theirs, RSS_AT) or theirs[-1], "rss_mib")
            lines.append(f"vs TorchServe: {model} {name.replace(' ', '-')} c=32 {c32} c=64 {c64} rss {rss}")
    return lines


def plot(results: dict[str, dict], path: Path) -> None:
    """Per model: requests/s and p99 latency against concurrency, every server on one chart."""
    figure, axes = plt.subplots(len(results), 2, figsize=(11, 4.2 * len(results)), squeeze=False)
    for (throughput, p99), result in zip(axes, results.values(), strict=True):
        best = max(v["images_per_s"] for v in result["in_process_limit"].values())
        for name, points in result["runs"].items():
            clients = [p["concurrency"] for p in points]
            throughput.plot(clients, [p["requests_per_s"] for p in points], marker="o", label=name)
            p99.plot(clients, [p["p99_ms"] for p in points], marker="o", label=name)
        throughput.axhline(best, color="black", linestyle="--", label="in-process limit")
        label = result["label"]
        throughput.set(
            xlabel="concurrent clients", ylabel="requests/s", title=f"{label}: throughput", xscale="log"
        )
        p99.set(xlabel="concurrent clients", ylabel="ms (log)", title=f"{label}: p99 latency", xscale="log",
                yscale="log")  # fmt: skip
        ticks = sorted({p["concurrency"] for points in result["runs"].values() for p in points})
        for chart in (throughput, p99):
            chart.set_xticks(ticks, [str(c) for c in ticks])
            chart.grid(alpha=0.3)
        throughput.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
