"""Tables (Markdown, for bench/RESULTS.md) and plots (PNG, beside it) of bench/scale.py."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.scale import History, Level, Load

HERE = Path(__file__).resolve().parent


def _table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *(line(r) for r in rows)])


def _ms(x: float) -> str:
    return f"{1000 * x:.1f} ms"


def _plot(name: str, title: str, xlabel: str, series: dict[str, tuple[list[float], list[float]]],
          ylabel: str, logx: bool = True, logy: bool = False) -> str:
    """A PNG beside RESULTS.md; returns its Markdown link, or a note if matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "(no plot: matplotlib is not installed; `pip install 'cellbus[plots]'`)"
    fig, ax = plt.subplots(figsize=(7, 4.8))
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", label=label)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if not logy:
        ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    fig.tight_layout()
    fig.savefig(HERE / name, dpi=100)
    plt.close(fig)
    return f"![{title}]({name})"


def sessions(levels: list[Level], kg: tuple[list[Level], str]) -> str:
    if not levels:
        return ""
    kg_rows, stopped = kg
    base = levels[0]
    each = [lv.pss_total / lv.sessions for lv in levels]
    grew = [(b.pss_total - a.pss_total) / (b.sessions - a.sessions)
            for a, b in zip(levels, levels[1:])]
    marginal = ["n/a"] + [f"{g / 2**20:.2f} MiB" for g in grew]
    rows = [[str(lv.sessions), f"{lv.pss_total / lv.sessions / 2**20:.2f} MiB", marginal[i],
             _ms(lv.new_session),
             f"{lv.new_session / base.new_session:.2f}", _ms(lv.warm_rt),
             *(f"{100 * lv.cpu_rest.get(k, 0):.1f} %" for k in ("broker", "device", "gateway"))]
            for i, lv in enumerate(levels)]
    xs = [float(lv.sessions) for lv in levels]
    kx = [float(lv.sessions) for lv in kg_rows]
    series = {"cellbus: new session first output (ms)":
              (xs, [1000 * lv.new_session for lv in levels]),
              "cellbus: warm round trip (ms)": (xs, [1000 * lv.warm_rt for lv in levels]),
              "cellbus: PSS per session (MiB)": (xs, [e / 2**20 for e in each])}
    if kg_rows:
        series["KG: new kernel first output (ms)"] = (kx, [1000 * lv.new_session
                                                           for lv in kg_rows])
        series["KG: PSS per kernel (MiB)"] = (kx, [lv.pss_total / lv.sessions / 2**20
                                                   for lv in kg_rows])
    plot = _plot("scale-sessions.png", "Open idle sessions on one machine", "sessions open",
                 series, "", logy=True)
    kg_table = _table(["kernels open", "PSS per kernel", "new kernel: first output",
                       "warm round trip", "gateway CPU at rest", "kernels CPU at rest"],
                      [[str(lv.sessions), f"{lv.pss_total / lv.sessions / 2**20:.2f} MiB",
                        _ms(lv.new_session), _ms(lv.warm_rt),
                        f"{100 * lv.cpu_rest.get('gateway', 0):.1f} %",
                        f"{100 * lv.cpu_rest.get('kernels', 0):.1f} %"] for lv in kg_rows]
                      ) if kg_rows else "(Kernel Gateway not run: --no-gateway)"
    return "\n".join([
        _table(["sessions open", "PSS per session", "PSS per added session",
                "new session: first output", "vs 1 open", "warm round trip",
                "broker CPU at rest", "device CPU at rest", "gateway CPU at rest"], rows), "",
        "Jupyter Kernel Gateway on the same machine, same client (a kernel per session):", "",
        kg_table, "", *([f"Kernel Gateway {stopped}.", ""] if stopped else []),
        *([levels[-1].stop, ""] if levels[-1].stop else []), plot, "",
        "PSS per session: the PSS of everything the device forked (template, namespace inits, "
        "workers, the prefork pool), divided by the sessions open; per added session: its "
        "growth from the level before, divided by the sessions added. New session: from "
        "opening a new worksheet's WebSocket (Kernel Gateway: `POST /api/kernels`) to its "
        "first `print(1)`'s output, median. Warm round trip: `print(1)` in a session kept "
        "open, median. CPU at rest: share of one core over 5 s with every session idle."])


def devices(loads: list[Load]) -> str:
    if not loads:
        return ""
    rows = [[str(ld.devices), str(ld.busy), f"{ld.rate:.0f}",
             *(f"{ld.cpu_ms.get(k, 0):.2f}" for k in ("broker", "gateway", "device", "sessions")),
             f"{1000 / ld.cpu_ms['broker']:.0f}" if ld.cpu_ms.get("broker") else "n/a"]
            for ld in loads]
    series: dict[str, tuple[list[float], list[float]]] = {}
    for ld in loads:
        xs, ys = series.setdefault(f"{ld.devices} device(s)", ([], []))
        xs.append(ld.busy)
        ys.append(ld.rate)
    plot = _plot("scale-devices.png", "Throughput by devices and busy sessions",
                 "busy sessions", series, "executions per second")
    best = max(loads, key=lambda ld: ld.rate)
    one = max((ld.rate for ld in loads if ld.devices == 1), default=0.0)
    ceiling = min((1000 / ld.cpu_ms["broker"] for ld in loads if ld.cpu_ms.get("broker")),
                  default=0.0)
    return "\n".join([
        _table(["devices", "busy sessions", "exec/s", "broker CPU ms/exec",
                "gateway CPU ms/exec", "device CPU ms/exec", "sessions CPU ms/exec",
                "broker ceiling (exec/s per core)"], rows), "", plot, "",
        f"Best: {best.rate:.0f} exec/s ({best.devices} devices, {best.busy} busy). One "
        f"device's best here: {one:.0f} exec/s. The broker's ceiling, estimated as one core "
        f"over its CPU per execution (lowest of the rows): {ceiling:.0f} exec/s, "
        f"{ceiling / one if one else float('nan'):.1f}x one device's throughput (target ≥ 4x): "
        "a floor, since a busier broker spends less per execution (fuller batches); "
        "bench/broker_ceiling.py measures the broker alone at its ceiling (\"Warm round trip "
        "floor and broker ceiling\" above). On 2 cores every node, the sessions and the "
        "client share the machine, so exec/s stops growing once the cores are full; the CPU "
        "per execution is what sizes a deployment.", *_profile(loads)])


def _profile(loads: list[Load]) -> list[str]:
    profiled = [ld for ld in loads if ld.profile]
    if not profiled:
        return []
    ld = profiled[-1]
    return ["", f"The broker's profile at {ld.devices} devices, {ld.busy} busy sessions "
            "(py-spy, bench/scale_profile.py):", "", ld.profile]


def history(hist: list[History]) -> str:
    if not hist:
        return ""
    base = hist[0]
    rows = [[f"{h.messages:,}", f"{h.fill:.0f} s", _ms(h.warm_rt), _ms(h.replay),
             f"{h.replay / base.replay:.2f}", _ms(h.update), f"{h.update / base.update:.2f}"]
            for h in hist]
    xs = [float(h.messages) for h in hist]
    plot = _plot("scale-history.png", "Stored history", "output messages in the store",
                 {"warm round trip (ms)": (xs, [1000 * h.warm_rt for h in hist]),
                  "replay of 200 messages (ms)": (xs, [1000 * h.replay for h in hist]),
                  "/update (ms)": (xs, [1000 * h.update for h in hist])}, "")
    return "\n".join([
        _table(["messages stored", "filled in", "warm round trip", "replay (200 messages)",
                "vs smallest", "/update", "vs smallest"], rows), "", plot, "",
        "The store is filled through the Store API (closed sessions of 1,000 messages) before "
        "the broker starts. Replay: a new WebSocket subscribing to a worksheet of ~205 "
        "messages, until its subscribe_reply (sent after the whole replay), median. /update: "
        "`GET /home/bench/history/1/update`, median."])


def render(levels: list[Any], loads: list[Any], hist: list[Any],
           kg: tuple[list[Any], str] = ([], "")) -> dict[str, str]:
    """Each curve that ran, by the title of its section in RESULTS.md."""
    sections = {"Scale: open sessions": sessions(levels, kg), "Scale: devices": devices(loads),
                "Scale: stored history": history(hist)}
    return {title: text for title, text in sections.items() if text}
