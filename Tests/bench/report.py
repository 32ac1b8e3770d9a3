"""Turns the figures of bench.py into the Markdown tables of docs/benchmarks.md, with the budgets
of issue 7 checked (recorded, never asserted)."""

MIB = 1024


def ms(us):
    return f"{us / 1000:.3f}"


def cell_line(cell):
    cpu = cell["cpu_us_per_call"]
    return (f"{cell['method']:<8} c={cell['concurrency']:<3} {cell['side']:<6} n={cell['requests']:<6} "
            f"p50={ms(cell['p50_us'])} p99={ms(cell['p99_us'])} ms  {cell['throughput']:8.0f}/s  "
            f"front={cpu.get('front', 0):.0f}us broker={cpu.get('broker', 0):.0f}us "
            f"vault/call={cell['vault_calls_per_call']:.3f}")


def pairs(figures):
    """(plugin cell, direct cell or None) per method and concurrency."""
    index = {(c["method"], c["concurrency"], c["side"]): c for c in figures["cells"]}
    for (method, level, side), cell in index.items():
        if side == "plugin":
            yield cell, index.get((method, level, "direct"))


def overhead(plugin, direct):
    return {
        "d_p50_us": plugin["p50_us"] - direct["p50_us"], "d_p99_us": plugin["p99_us"] - direct["p99_us"],
        "r_p50": plugin["p50_us"] / direct["p50_us"], "r_p99": plugin["p99_us"] / direct["p99_us"],
        "r_throughput": plugin["throughput"] / direct["throughput"],
    }


def budgets(figures):
    """[(budget, measured, ok)] for every budget of issue 7 this run measured."""
    rows = []
    for plugin, direct in pairs(figures):
        method, level = plugin["method"], plugin["concurrency"]
        if method == "Status" and level == 1:
            rows.append(("Status p99 < 1 ms, 0 Vault calls",
                         f"{ms(plugin['p99_us'])} ms, {plugin['vault_calls_per_call']:.4f} calls",
                         plugin["p99_us"] < 1000 and plugin["vault_calls_per_call"] < 0.001))
        if direct and level == 1:
            o = overhead(plugin, direct)
            rows.append((f"{method} overhead c=1: p50 <= 0.3 ms, p99 <= 1 ms",
                         f"{ms(o['d_p50_us'])} / {ms(o['d_p99_us'])} ms",
                         o["d_p50_us"] <= 300 and o["d_p99_us"] <= 1000))
        if direct and level == 64:
            o = overhead(plugin, direct)
            rows.append((f"{method} c=64 throughput >= 90% of direct", f"{100 * o['r_throughput']:.0f}%",
                         o["r_throughput"] >= 0.9))
        if method == "Encrypt":
            cpu = plugin["cpu_us_per_call"]
            total = cpu["front"] + cpu["broker"]
            rows.append((f"front+broker CPU <= 60 us per Encrypt (c={level})", f"{total:.0f} us", total <= 60))
    idle = figures.get("idle")
    if idle:
        rows.append(("idle RSS front <= 12 MiB", f"{idle['front']['rss_kib'] / MIB:.1f} MiB",
                     idle["front"]["rss_kib"] <= 12 * MIB))
        rows.append(("idle RSS broker <= 20 MiB", f"{idle['broker']['rss_kib'] / MIB:.1f} MiB",
                     idle["broker"]["rss_kib"] <= 20 * MIB))
    soak = figures.get("soak")
    if soak:
        for name in ("front", "broker"):
            first, last = soak["series"][1][name]["rss_kib"], soak["series"][-1][name]["rss_kib"]
            rows.append((f"no RSS growth over the soak ({name})", f"{(last - first) / MIB:+.2f} MiB",
                         last - first <= 256))
    if figures.get("ready_seconds"):
        worst = max(figures["ready_seconds"])
        rows.append(("exec -> READY=1 < 200 ms", f"{1000 * worst:.0f} ms (worst)", worst < 0.2))
    return rows


def render(figures):
    m = figures["machine"]
    out = [f"## Run of {m['date']}, commit {m['commit']}", "",
           f"{m['nproc']} CPUs, {m['cpu']}, Linux {m['kernel']}; {m['h2load'].splitlines()[0] if m['h2load'] else ''}; "
           f"load average {' '.join(m['loadavg'])} before, {' '.join(m.get('loadavg_after', []))} after the cells",
           "", "| call | conc | side | n | p50 ms | p90 ms | p99 ms | max ms | req/s | front us/call | "
           "broker us/call | vault-sim us/call | Vault calls/call |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in figures["cells"]:
        cpu = c["cpu_us_per_call"]
        out.append(f"| {c['method']} | {c['concurrency']} | {c['side']} | {c['requests']} | {ms(c['p50_us'])} | "
                   f"{ms(c['p90_us'])} | {ms(c['p99_us'])} | {ms(c['max_us'])} | {c['throughput']:.0f} | "
                   f"{cpu['front']:.1f} | {cpu['broker']:.1f} | {cpu['vault-sim']:.1f} | {c['vault_calls_per_call']:.4f} |")
    out += ["", "Overhead (plugin minus direct, plugin over direct):", "",
            "| call | conc | d p50 ms | d p99 ms | p50 ratio | p99 ratio | throughput ratio |",
            "|---|---|---|---|---|---|---|"]
    for plugin, direct in pairs(figures):
        if direct:
            o = overhead(plugin, direct)
            out.append(f"| {plugin['method']} | {plugin['concurrency']} | {ms(o['d_p50_us'])} | {ms(o['d_p99_us'])} | "
                       f"{o['r_p50']:.2f} | {o['r_p99']:.2f} | {o['r_throughput']:.2f} |")
    out += ["", "| process | idle RSS MiB | of which shared clean | idle PSS MiB | idle anon MiB | idle fds | "
            "RSS after load MiB | fds after load |", "|---|---|---|---|---|---|---|---|"]
    for name in ("front", "broker"):
        idle, loaded = figures["idle"][name], figures["loaded"][name]
        out.append(f"| {name} | {idle['rss_kib'] / MIB:.1f} | {idle.get('shared_clean_kib', 0) / MIB:.1f} | "
                   f"{idle.get('pss_kib', 0) / MIB:.1f} | {idle.get('anon_kib', 0) / MIB:.1f} | {idle['fds']} | "
                   f"{loaded['rss_kib'] / MIB:.1f} | {loaded['fds']} |")
    if figures.get("soak"):
        series = figures["soak"]["series"]
        out += ["", f"Soak of {figures['soak']['calls']} calls, RSS MiB before and after each third: "
                + "; ".join(f"{name} " + " -> ".join(f"{s[name]['rss_kib'] / MIB:.1f}" for s in series)
                            for name in ("front", "broker"))]
    ready = figures.get("ready_seconds", [])
    if ready:
        out += ["", "exec -> READY=1 (ms, each start): " + ", ".join(f"{1000 * t:.0f}" for t in ready)]
    out += ["", "| binary | unstripped bytes | stripped bytes |", "|---|---|---|"]
    for name, size in figures.get("sizes", {}).items():
        out.append(f"| {name} | {size['unstripped']} | {size['stripped']} |")
    out += ["", "| budget | measured | met |", "|---|---|---|"]
    for budget, measured, ok in budgets(figures):
        out.append(f"| {budget} | {measured} | {'yes' if ok else '**no**'} |")
    return "\n".join(out)
