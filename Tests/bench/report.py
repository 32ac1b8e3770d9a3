"""Turns the figures of bench.py into the Markdown tables of docs/benchmarks.md, with the budgets
of issue 17 checked (recorded, never asserted; the Vault call counts are asserted by bench.py)."""

MIB = 1024


def ms(us):
    return f"{us / 1000:.3f}"


def cell_line(cell):
    cpu = cell["cpu_us_per_call"]
    return (f"{cell['method']:<8} c={cell['concurrency']:<3} {cell['side']:<6} n={cell['requests']:<6} "
            f"p50={ms(cell['p50_us'])} p99={ms(cell['p99_us'])} ms  {cell['throughput']:8.0f}/s  "
            f"front={cpu.get('front', 0):.0f}us broker={cpu.get('broker', 0):.0f}us "
            f"vault/call={cell['vault_calls_per_call']:.3f}/{cell['server_calls_per_call']:.3f}")


def pairs(cells):
    """(plugin cell, direct cell or None) per method and concurrency."""
    index = {(c["method"], c["concurrency"], c["side"]): c for c in cells}
    for (method, level, side), cell in index.items():
        if side == "plugin":
            yield cell, index.get((method, level, "direct"))


def overhead(plugin, direct):
    return {
        "d_p50_us": plugin["p50_us"] - direct["p50_us"], "d_p99_us": plugin["p99_us"] - direct["p99_us"],
        "r_p50": plugin["p50_us"] / direct["p50_us"], "r_p99": plugin["p99_us"] / direct["p99_us"],
        "r_throughput": plugin["throughput"] / direct["throughput"],
    }


def missed(excess, unit):
    """" (missed by ...)" when `excess` is positive, else ""."""
    if excess <= 0:
        return ""
    if unit == "us":
        return f" (missed by {excess / 1000:.3f} ms)" if excess >= 1000 else f" (missed by {excess:.0f} us)"
    if unit == "points":
        return f" (missed by {excess:.0f} points)"
    return f" (missed by {excess:.1f} {unit})" if unit == "MiB" else f" (missed by {excess:.0f} {unit})"


def budgets(vault):
    """{budget: (measured, ok or None when only reported)} for the budgets of issue 17 that one
    Vault's figures measured."""
    rows = {}
    load = f"load {' '.join(vault['loadavg_before'])}"
    for plugin, direct in pairs(vault["cells"]):
        method, level = plugin["method"], plugin["concurrency"]
        if method == "Status" and level == 1:
            rows["Status p99 < 0.2 ms (c=1), 0 Vault calls"] = (
                f"{ms(plugin['p99_us'])} ms{missed(plugin['p99_us'] - 200, 'us')}, "
                f"{plugin['vault_calls_per_call']:.4f} calls",
                plugin["p99_us"] < 200 and plugin["vault_calls_per_call"] == 0)
        if method != "Status":
            cpu = plugin["cpu_us_per_call"]
            total = cpu["front"] + cpu["broker"]
            rows[f"front+broker CPU <= 60 us per {method} (c={level}), /proc"] = (
                f"{total:.0f} us{missed(total - 60, 'us')}", total <= 60)
        if direct and level == 1:
            o = overhead(plugin, direct)
            rows[f"{method} overhead over direct p50 <= 0.1 ms (c=1)"] = (
                f"{ms(o['d_p50_us'])} ms{missed(o['d_p50_us'] - 100, 'us')}", o["d_p50_us"] <= 100)
            rows[f"{method} overhead over direct p99 (c=1), reported"] = (f"{ms(o['d_p99_us'])} ms ({load})", None)
        if direct and level == 64:
            o = overhead(plugin, direct)
            rows[f"{method} c=64 throughput >= 95% of direct"] = (
                f"{100 * o['r_throughput']:.0f}%{missed(95 - 100 * o['r_throughput'], 'points')}",
                                                                 o["r_throughput"] >= 0.95)
    for cell in vault.get("instructions", {}).get("cells", []):
        per = cell["per_call"]
        rows[f"front+broker instructions per {cell['method']} (c={cell['concurrency']}), callgrind"] = (
            f"{(per['front'] + per['broker']) / 1000:.0f}k (front {per['front'] / 1000:.0f}k, "
            f"broker {per['broker'] / 1000:.0f}k)", None)
    idle = vault.get("idle")
    if idle:
        for name, limit in (("front", 8), ("broker", 16)):
            rows[f"idle RSS {name} <= {limit} MiB (PSS reported)"] = (
                f"{idle[name]['rss_kib'] / MIB:.1f} MiB{missed(idle[name]['rss_kib'] / MIB - limit, 'MiB')} "
                f"(PSS {idle[name].get('pss_kib', 0) / MIB:.1f})",
                idle[name]["rss_kib"] <= limit * MIB)
    soak = vault.get("soak")
    if soak:
        for name in ("front", "broker"):
            first, last = soak["series"][1][name]["rss_kib"], soak["series"][-1][name]["rss_kib"]
            rows[f"no RSS growth over the {soak['calls']}-call soak ({name})"] = (
                f"{(last - first) / MIB:+.2f} MiB", last - first <= 256)
    storm = vault.get("storm")
    if storm:
        plugin, direct = storm["decrypt"]["plugin"][-1], storm["decrypt"]["direct"][-1]
        per = plugin["broker_vault_calls"].get("decrypt", 0) / plugin["calls"]
        rows[f"storm: {storm['seeds']} distinct Decrypts at c=64, 1 Vault call each"] = (
            f"{per:.4f} (broker) / {plugin['server_transit_calls'] / plugin['calls']:.4f} (server)",
            per == 1 and plugin["server_transit_calls"] == plugin["calls"])
        rows["storm: total time and p99, plugin vs direct, reported"] = (
            f"{plugin['seconds']:.2f} vs {direct['seconds']:.2f} s, p99 {ms(plugin['p99_us'])} vs "
            f"{ms(direct['p99_us'])} ms", None)
    if vault.get("ready_seconds"):
        worst = max(vault["ready_seconds"])
        rows["exec -> READY=1 < 200 ms"] = (f"{1000 * worst:.0f} ms{missed(1000 * worst - 200, 'ms')} "
                                            f"(worst of {len(vault['ready_seconds'])})",
                                            worst < 0.2)
    return rows


def verdict(ok):
    return "reported" if ok is None else ("yes" if ok else "**no**")


def cell_table(vault):
    out = [f"| call | conc | side | n | p50 ms | p90 ms | p99 ms | max ms | req/s | front us/call | "
           f"broker us/call | {vault['vault']} us/call | Vault calls/call (broker / server) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in vault["cells"]:
        cpu = c["cpu_us_per_call"]
        out.append(f"| {c['method']} | {c['concurrency']} | {c['side']} | {c['requests']} | {ms(c['p50_us'])} | "
                   f"{ms(c['p90_us'])} | {ms(c['p99_us'])} | {ms(c['max_us'])} | {c['throughput']:.0f} | "
                   f"{cpu['front']:.1f} | {cpu['broker']:.1f} | {cpu['vault']:.1f} | "
                   f"{c['vault_calls_per_call']:.4f} / {c['server_calls_per_call']:.4f} |")
    out += ["", "Overhead (plugin minus direct, plugin over direct):", "",
            "| call | conc | d p50 ms | d p99 ms | p50 ratio | p99 ratio | throughput ratio |",
            "|---|---|---|---|---|---|---|"]
    for plugin, direct in pairs(vault["cells"]):
        if direct:
            o = overhead(plugin, direct)
            out.append(f"| {plugin['method']} | {plugin['concurrency']} | {ms(o['d_p50_us'])} | {ms(o['d_p99_us'])} | "
                       f"{o['r_p50']:.2f} | {o['r_p99']:.2f} | {o['r_throughput']:.2f} |")
    return out


def render(figures):
    import instructions  # noqa: PLC0415
    import storm  # noqa: PLC0415

    m = figures["machine"]
    vaults = figures["vaults"]
    out = [f"## Figures: run of {m['date']}, commit {m['commit']}", "",
           f"{m['nproc']} CPUs, {m['cpu']}, Linux {m['kernel']}; {m['h2load'].splitlines()[0] if m['h2load'] else ''}; "
           f"load average {' '.join(m['loadavg'])} at the start, {' '.join(m.get('loadavg_after', []))} at the end"]
    for vault in vaults:
        out += ["", f"### Against {vault['vault']} (load average {' '.join(vault['loadavg_before'])} before, "
                f"{' '.join(vault.get('loadavg_after', []))} after the cells)", ""]
        out += cell_table(vault)
        out += ["", "| process | idle RSS MiB | of which shared clean | idle PSS MiB | idle anon MiB | idle fds | "
                "RSS after load MiB | fds after load |", "|---|---|---|---|---|---|---|---|"]
        for name in ("front", "broker"):
            idle, loaded = vault["idle"][name], vault["loaded"][name]
            out.append(f"| {name} | {idle['rss_kib'] / MIB:.1f} | {idle.get('shared_clean_kib', 0) / MIB:.1f} | "
                       f"{idle.get('pss_kib', 0) / MIB:.1f} | {idle.get('anon_kib', 0) / MIB:.1f} | {idle['fds']} | "
                       f"{loaded['rss_kib'] / MIB:.1f} | {loaded['fds']} |")
        if vault.get("soak"):
            series = vault["soak"]["series"]
            out += ["", f"Soak of {vault['soak']['calls']} calls, RSS MiB before and after each third: "
                    + "; ".join(f"{name} " + " -> ".join(f"{s[name]['rss_kib'] / MIB:.1f}" for s in series)
                                for name in ("front", "broker"))]
        if vault.get("ready_seconds"):
            out += ["", "exec -> READY=1 (ms, each start): " + ", ".join(f"{1000 * t:.0f}" for t in vault["ready_seconds"])]
        if vault.get("instructions"):
            out += ["", instructions.render(vault["instructions"])]
        if vault.get("storm"):
            out += ["", storm.render(vault["storm"])]
        for name in ("storm", "instructions"):
            if vault.get(f"{name}_error"):
                out += ["", f"**{name} failed**: {vault[name + '_error']}"]
    out += ["", "| binary | unstripped bytes | stripped bytes |", "|---|---|---|"]
    for name, size in figures.get("sizes", {}).items():
        out.append(f"| {name} | {size['unstripped']} | {size['stripped']} |")
    table = [budgets(vault) for vault in vaults]
    names = list(dict.fromkeys(name for rows in table for name in rows))
    out += ["", "| budget | " + " | ".join(f"{v['vault']} | met" for v in vaults) + " |",
            "|---|" + "---|---|" * len(vaults)]
    for name in names:
        values = []
        for rows in table:
            measured, ok = rows.get(name, ("-", None))
            values += [measured, verdict(ok) if name in rows else "-"]
        out.append(f"| {name} | " + " | ".join(values) + " |")
    return "\n".join(out)
