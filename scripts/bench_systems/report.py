"""The table `scripts/bench` prints (Markdown, so the README can carry it as is) and the machine it ran on."""

from __future__ import annotations

import os
import platform
import statistics
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

SYSTEMS = ("direct", "fan-out", "rvz")


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    import zmq

    versions = {name: _version(name) for name in ("grpcio", "pyzmq", "protobuf", "uvloop", "hdrhistogram")}
    return {"cpu": model, "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
            "python": platform.python_version(), "implementation": sys.implementation.name,
            "kernel": platform.release(), "libzmq": zmq.zmq_version(), **versions,
            "loadavg_at_start": os.getloadavg()}


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def summarize(main: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Medians over rounds, per system."""
    runs = main["runs"]
    summary: dict[str, dict[str, Any]] = {}
    for name in SYSTEMS:
        rss: dict[str, float] = {}
        for run in runs["saturation"][name]:
            for proc, mb in run["rss_mb"].items():
                rss[proc] = max(rss.get(proc, 0.0), mb)
        summary[name] = {
            "rps": _median(r["rps"] for r in runs["saturation"][name]),
            "cpu_s_per_1000": _median(r["cpu_s_per_1000"] for r in runs["saturation"][name]),
            "p50_1_ms": _median(r["p50_ms"] for r in runs["single"][name]),
            "p99_1_ms": _median(r["p99_ms"] for r in runs["single"][name]),
            "p99_half_ms": _median(r["p99_ms"] for r in runs["half_rate"][name]),
            "rss_mb": rss, "rss_total_mb": round(sum(rss.values()), 1),
            "per_call": _per_call(runs["saturation"][name]),
        }
    hop_runs = [r["hops_ms"] for r in runs["single"]["rvz"] if r.get("hops_ms")]
    first = hop_runs[0] if hop_runs else {}
    summary["rvz"]["hops_ms"] = {hop: _median(r.get(hop) for r in hop_runs) for hop in first}
    return summary


def _per_call(saturation_runs: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """CPU microseconds and context switches per call at saturation, by process: medians over rounds."""
    by_process: dict[str, list[dict[str, float]]] = {}
    for run in saturation_runs:
        for name, figures in run.get("per_call", {}).items():
            by_process.setdefault(name, []).append(figures)
    return {name: {key: _median(f[key] for f in runs) for key in ("cpu_us", "switches")}
            for name, runs in by_process.items()}


def _median(values: Any) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 4) if present else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def ratios(summary: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    keys = ("rps", "cpu_s_per_1000", "p50_1_ms", "p99_1_ms", "p99_half_ms", "rss_total_mb")
    return {f"rvz/{base}": {k: _ratio(summary["rvz"][k], summary[base][k]) for k in keys}
            for base in ("direct", "fan-out")}


def table(summary: dict[str, dict[str, Any]], plan: Any, half_rate: float) -> str:
    rows = [
        ("rps", f"throughput at saturation (req/s, {plan.concurrency} in flight)", "{:,.0f}", False),
        ("p50_1_ms", "p50 at 1 in flight (ms)", "{:.3f}", True),
        ("p99_1_ms", "p99 at 1 in flight (ms)", "{:.3f}", True),
        ("p99_half_ms", f"p99 at 50% of rvz's max rate ({half_rate:,.0f} req/s, open loop) (ms)", "{:.3f}", True),
        ("cpu_s_per_1000", "CPU-seconds per 1000 requests (serving processes)", "{:.3f}", False),
    ]
    lines = ["| | direct | fan-out | rvz | rvz/direct | rvz/fan-out |", "|---|---:|---:|---:|---:|---:|"]
    for key, label, fmt, show_delta in rows:
        cells = [_fmt(summary[name][key], fmt) for name in SYSTEMS]
        rvz = summary["rvz"][key]
        comparisons = [_compare(rvz, summary[base][key], show_delta) for base in ("direct", "fan-out")]
        lines.append(f"| {label} | " + " | ".join(cells + comparisons) + " |")
    rss_cells = [_rss(summary[name]["rss_mb"]) for name in SYSTEMS]
    rss_ratios = [_compare(summary["rvz"]["rss_total_mb"], summary[b]["rss_total_mb"], False)
                  for b in ("direct", "fan-out")]
    lines.append("| RSS per process (MB; ratio of totals) | " + " | ".join(rss_cells + rss_ratios) + " |")
    return "\n".join(lines)


def _fmt(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _compare(rvz: float | None, base: float | None, show_delta: bool) -> str:
    if rvz is None or not base:
        return "-"
    text = f"{rvz / base:.2f}x"
    return f"{text} ({rvz - base:+.3f} ms)" if show_delta else text


def _rss(rss: dict[str, float]) -> str:
    models = [f"{mb:.0f}" for name, mb in rss.items() if name.startswith("model-")]
    others = [f"{_SHORT.get(name, name)} {mb:.0f}" for name, mb in rss.items() if not name.startswith("model-")]
    return ", ".join(others + ([f"models {'/'.join(models)}"] if models else []))


_SHORT = {"frontend": "fe", "rendezvous": "rv"}


def machine_line(m: dict[str, Any]) -> str:
    return (f"{m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), Linux {m['kernel']}, "
            f"Python {m['python']}, grpcio {m['grpcio']}, pyzmq {m['pyzmq']} (libzmq {m['libzmq']}), "
            f"protobuf {m['protobuf']}, uvloop {m['uvloop']}; load average at start "
            + "/".join(f"{x:.2f}" for x in m["loadavg_at_start"]))


def hops_line(summary: dict[str, dict[str, Any]]) -> str | None:
    hops, p50 = summary["rvz"].get("hops_ms"), summary["rvz"]["p50_1_ms"]
    decided = (hops or {}).get("frontend received -> decided")
    if not hops or decided is None or p50 is None:
        return None
    steps = ", ".join(f"{hop} {ms:.3f}" for hop, ms in hops.items() if hop != "frontend received -> decided")
    return (f"- Where rvz's time goes at 1 in flight (medians from its logs, ms): {steps}; received -> decided "
            f"{decided:.3f}; the rest of the client's p50 {p50 - decided:.3f} (gRPC both ways, result routing back, "
            f"waiting for the request record's fdatasync). Direct's whole p50: {summary['direct']['p50_1_ms']} ms.")


def per_call_line(summary: dict[str, dict[str, Any]]) -> str | None:
    """Where the CPU goes at saturation, process by process, and how often each thread had to be woken."""
    parts = []
    for name in SYSTEMS:
        per_call = summary[name].get("per_call") or {}
        if per_call:
            parts.append(f"{name}: " + ", ".join(f"{_SHORT.get(proc, proc)} {v['cpu_us']:.0f}/{v['switches']:.1f}"
                                                 for proc, v in per_call.items()
                                                 if v["cpu_us"] is not None and v["switches"] is not None))
    if not parts:
        return None
    return ("- Per call at saturation, by process (CPU microseconds / context switches of all its threads; "
            "medians of the rounds): " + "; ".join(parts) + ".")


def errors_line(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> str | None:
    """Non-OK answers in the main runs: the table's latencies are of OK answers only, so say what else happened."""
    found = []
    for measurement, by_system in runs.items():
        for name, results in by_system.items():
            totals: dict[str, int] = {}
            for run in results:
                for code, n in run["result"]["errors"].items():
                    totals[code] = totals.get(code, 0) + n
            sent = sum(run["result"]["sent"] for run in results)
            found += [f"{name} {measurement} {code} {n}/{sent}" for code, n in totals.items()]
    return ("- Non-OK answers in the main runs (not in the latencies above): " + ", ".join(found)) if found else None


def curve_line(curve: dict[str, Any]) -> str:
    p50, rps = curve["median_p50_ms"], curve["median_rps"]
    return (f"- CURVE on the streams (the default) vs security.curve = false, both running, by turns "
            f"({curve['slices']} slices at 1 in flight, {curve['saturation_slices']} at saturation): p50 "
            f"{p50['curve']} vs {p50['plaintext']} ms (added, median of the turns: {curve['added_p50_ms']:+.3f} ms); "
            f"{rps['curve']:,.0f} vs {rps['plaintext']:,.0f} req/s (x{curve['rps_ratio']}).")


def extras(figures: dict[str, Any]) -> list[str]:
    """A line for each extra measurement in ``figures`` (a run's figures: those skipped or failed are absent)."""
    fallback, durability, tracing = figures.get("fallback"), figures.get("durability"), figures.get("tracing")
    interleaved, rvz = figures.get("interleaved"), figures["summary"]["rvz"]
    lines = []
    if interleaved is not None:
        lines.append(by_turns_line(interleaved))
    if (curve := figures.get("curve")) is not None:
        lines.append(curve_line(curve))
    if durability is not None:
        latency = durability["result"]["latency_ms"]
        table = f" (the table's rvz, answers waiting: p99 {rvz['p99_half_ms']} ms)"
        lines.append(f"- Answers not waiting for the request record's fdatasync (log.durable_answers = false, logs "
                     f"still synced), open loop at {durability['rate']:,.0f} req/s: p50 {latency.get('p50', '-')} ms, "
                     f"p99 {latency.get('p99', '-')} ms, max {latency.get('max', '-')} ms{table}.")
    if fallback is not None:
        s, c = fallback["server_after_window_ms"], fallback["client_after_window_ms"]
        lines.append(f"- Fallback precision (rvz, champion always 50 ms late, {fallback['window_ms']:g} ms window; "
                     f"{fallback['calls']} calls at {fallback['result']['rate']:g} req/s): answer time minus the "
                     f"window p50 {s.get('p50', '-')} ms, p99 {s.get('p99', '-')} ms (ScoreResponse.elapsed_ms); "
                     f"as the client sees it p50 {c.get('p50', '-')} ms, p99 {c.get('p99', '-')} ms; answered by "
                     + ", ".join(f"{k} {v}" for k, v in fallback["answers_by_model"].items())
                     + "".join(f"; {code} {n}" for code, n in fallback["errors"].items()))
    for run in (figures.get("overload"), figures.get("overload-refuse")):
        if run is not None:
            lines.append(_overload_line(run))
    if tracing:
        slices = tracing[0].get("slices", 1)
        lines.append("- Tracing (rvz at saturation, one deployment per ratio, all running, measured by turns: "
                     + ("one slice each" if slices == 1 else f"medians of {slices} slices each")
                     + "; OTLP/gRPC export to a sink on loopback): "
                     + ", ".join(f"{_sampling(t['sampling_ratio'])} {t['rps']:,.0f} req/s "
                                 f"({t['cpu_s_per_1000']:.3f} CPU-s/1000; {t['sink'].split(',')[0]})"
                                 for t in tracing)
                     + ". Set through OTEL_TRACES_SAMPLER=parentbased_traceidratio / OTEL_TRACES_SAMPLER_ARG; "
                       "if the figures and export counts do not move with the ratio, rvz is not reading them.")
    return lines


def by_turns_line(turns: dict[str, Any]) -> str:
    """direct, the bare rendezvous and rvz measured by turns: rvz against the floor of its own architecture."""
    rps, p99, t = turns["max_rps"], turns["p99_half_ms"], turns
    slices = (f"{t['slices']} slices of {t['slice_s']:g} s at 1 in flight, {t['saturation_slices']} of "
              f"{t['saturation_slice_s']:g} s at saturation and at half rate, each system in turn")
    single = (f"p50 at 1 in flight direct {t['direct_p50_ms']} ms, bare rendezvous {t['bare_p50_ms']} ms "
              f"({t['bare_added_p50_ms']:+.3f} ms), rvz {t['rvz_p50_ms']} ms ({t['added_p50_ms']:+.3f} ms; added: "
              "median of the turns' differences with direct)")
    saturation = (f"saturation direct {rps['direct']:,.0f}, bare {rps['bare']:,.0f} ({t['bare_over_direct']:.2f}x "
                  f"direct), rvz {rps['rvz']:,.0f} req/s ({t['rvz_over_direct']:.2f}x direct, "
                  f"{t['rvz_over_bare']:.2f}x bare)")
    tail = (f"p99 in open loop at {t['half_rate']:,.0f} req/s direct {p99['direct']} ms, bare {p99['bare']} ms, "
            f"rvz {p99['rvz']} ms (medians of the slices)")
    return (f"- By turns, all three running ({slices}): {single}; {saturation}; {tail}. The bare rendezvous "
            "(scripts/bench_systems/bare.py) is rvz's five processes and three ZeroMQ hops with nothing else: no "
            "logs, checks, policy or metrics; what the architecture costs on this machine before any of rvz's "
            "own work.")


def _overload_line(run: dict[str, Any]) -> str:
    lag = run["result"]["send_lag_ms"]
    variant = (f'frontend.grpc_overflow = "{run["grpc_overflow"]}", its own max {run["own_max_rps"]:,.0f} req/s'
               if run.get("own_max_rps") else 'frontend.grpc_overflow = "cancel" (the default)')
    counted = run.get("cancelled_counted_by_rvz")
    cancelled = run["other"].get("CANCELLED", 0)
    count_note = ("" if counted is None else
                  f"; CANCELLED by gRPC core before the frontend saw them: {cancelled} seen by the client, "
                  f"{counted} counted by rvz (rvz_frontend_cancelled_in_grpc_total)")
    return (f"- Overload (rvz, {variant}; open loop at 2x the table's max = {run['rate']:,.0f} req/s for "
            f"{run['result']['duration_s']:g} s; offered {run['offered_rps']:,.0f} req/s, send lag p99 "
            f"{lag.get('p99', '-')} ms): {run['sent']} calls, {run['ok']} OK, {run['resource_exhausted']} "
            f"RESOURCE_EXHAUSTED, other {run['other'] or 0}, missing {run['missing']} → "
            + ("no message silently dropped" if run["passed"] else "**FAILED**")
            + f"; logged {run['requests_logged']} requests, {run['results_logged']} results{count_note}.")


def _sampling(ratio: float | None) -> str:
    return "off" if ratio is None else f"{ratio:.0%} sampled"


def targets(figures: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    """The targets of issue 5, each with pass/fail (None: not measured) and the figure."""
    summary, fallback, interleaved = figures["summary"], figures.get("fallback"), figures.get("interleaved")
    rvz, direct, fan = summary["rvz"], summary["direct"], summary["fan-out"]
    r_fan, r_direct = _ratio(rvz["rps"], fan["rps"]), _ratio(rvz["rps"], direct["rps"])
    added = None if rvz["p50_1_ms"] is None or direct["p50_1_ms"] is None else rvz["p50_1_ms"] - direct["p50_1_ms"]
    fb = None if fallback is None else fallback["server_after_window_ms"].get("p99")
    return [
        ("throughput ≥ 2.0x fan-out", None if r_fan is None else r_fan >= 2.0, f"{r_fan}x"),
        ("throughput ≥ 0.6x direct", None if r_direct is None else r_direct >= 0.6,
         f"{r_direct}x" + ("" if interleaved is None else
                           f" (by turns: {interleaved['rvz_over_direct']}x; the bare rendezvous's own: "
                           f"{interleaved['bare_over_direct']}x)")),
        ("added p50 at 1 in flight ≤ 0.35 ms", None if added is None else added <= 0.35,
         ("-" if added is None else f"{added:+.3f} ms")
         + ("" if interleaved is None else f" (by turns: {interleaved['added_p50_ms']:+.3f} ms; the bare "
                                           f"rendezvous's own: {interleaved['bare_added_p50_ms']:+.3f} ms)")),
        ("p99 at 50% of max rate ≤ 5 ms", None if rvz["p99_half_ms"] is None else rvz["p99_half_ms"] <= 5.0,
         f"{rvz['p99_half_ms']} ms" + ("" if interleaved is None else
                                       f" (by turns: {interleaved['p99_half_ms']['rvz']} ms; the bare rendezvous's "
                                       f"own: {interleaved['p99_half_ms']['bare']} ms)")),
        ("fallback within 1 ms of its window (p99)", None if fb is None else fb <= 1.0, f"{fb} ms"),
        ("no message silently dropped at 2x load", *_overload_check(figures.get("overload"))),
        ('same, with frontend.grpc_overflow = "refuse"', *_overload_check(figures.get("overload-refuse"))),
    ]


def _overload_check(run: dict[str, Any] | None) -> tuple[bool | None, str]:
    if run is None:
        return None, "-"
    return run["passed"], f"{run['other'] or 'none'} other, {run['missing']} missing"


def targets_line(checks: list[tuple[str, bool | None, str]]) -> str:
    marks = {True: "met", False: "NOT met", None: "not measured"}
    return "- Targets (issue 5): " + "; ".join(f"{name}: {figure} ({marks[ok]})" for name, ok, figure in checks)
