"""Rewrites the generated section of BENCHMARKS.md from one bench/all.sh run.

usage: all.py BENCHMARKS.md RESULTS_DIR COMMAND BENCH...

RESULTS_DIR holds BENCH.txt (the script's standard output) and BENCH.status
("ok" or how it failed) for each BENCH. The section between the markers
below is replaced (appended the first time): the date, machine and commit,
each script's Markdown tables and key=value figures as it printed them, and
every figure more than 10% worse than in the section it replaces. Whether a
figure is better higher or lower is read from its name and unit: times,
latencies and sizes are better lower, everything else (rates, ratios)
higher.

`all.py --self-test` checks the parsing and the comparison.
"""

import datetime
import os
import re
import subprocess
import sys

BEGIN = "<!-- bench/all.sh: generated section, rewritten by every full run -->"
END = "<!-- end of bench/all.sh section -->"
WORSE = 0.10
# Runs that are not just `bench/NAME.sh`.
COMMANDS = {"queue-64": "CLIENTS=64 bench/queue.sh"}
KEY_VALUE = re.compile(r"^([a-z][a-z0-9_]*)=(-?[0-9][0-9.,]*)\s*$")
NUMBER = re.compile(r"-?[0-9][0-9,]*(?:\.[0-9]+)?")
HIGHER_IS_BETTER = re.compile(r"(per_s\b|/s\b|per second|^x |\bx\b|ratio|\bvs\b)", re.IGNORECASE)
LOWER_IS_BETTER = re.compile(
    r"(\bms\b|_ms\b|µs|_us\b|\bs\b|_s\b(?!ec)|second|latency|p50|p99|p90|max|cpu|time|"
    r"size|bytes|kib|mib|\bkb\b|\bmb\b|first|start|build)",
    re.IGNORECASE,
)


TIME = re.compile(r"(\bp\d\d\b|latency|\bms\b|_ms\b|µs)", re.IGNORECASE)


def lower_is_better(*names):
    """Whether a smaller figure is the better one, by its name and unit: a
    time is (even `p99 ms @ 1000 req/s`), then a rate or ratio is not, then
    other units (sizes, seconds) are."""
    text = " ".join(names)
    if TIME.search(text):
        return True
    return not HIGHER_IS_BETTER.search(text) and bool(LOWER_IS_BETTER.search(text))


def cells_of(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def is_separator(line):
    return line.strip().startswith("|") and all(set(c) <= set("-: ") for c in cells_of(line))


def figures(bench, text):
    """Every figure in a script's output: {(bench, row, column): (value,
    lower_is_better)}. A script's tables are its figures; its key=value
    lines count only when it printed no table (they are then its figures;
    a key printed again is numbered: `messages_per_s#2`)."""
    tables, values = {}, {}
    header = None
    lines = [line.strip() for line in text.splitlines()]
    for i, line in enumerate(lines):
        match = KEY_VALUE.match(line)
        if match:
            key, value = match.groups()
            name, n = key, 1
            while (bench, name, "") in values:
                n += 1
                name = f"{key}#{n}"
            values[(bench, name, "")] = (float(value.replace(",", "")), lower_is_better(key))
            header = None
            continue
        if not line.startswith("|"):
            header = None
            continue
        if is_separator(line):
            continue
        cells = cells_of(line)
        # A row followed by a separator starts a table.
        if i + 1 < len(lines) and is_separator(lines[i + 1]):
            header = cells
            continue
        if header is None:
            continue
        row = re.sub(r"\*", "", cells[0])
        for column, cell in zip(header[1:], cells[1:]):
            found = NUMBER.search(cell.replace("**", ""))
            if not found:
                continue
            value = float(found.group(0).replace(",", ""))
            unit = cell[found.end():]
            tables[(bench, row, column)] = (value, lower_is_better(column, unit))
    return tables or values


def worse(previous, current):
    """Figures more than WORSE worse now than before, as lines for people."""
    lines = []
    for key, (now, lower) in sorted(current.items()):
        if key not in previous:
            continue
        before = previous[key][0]
        if before == 0:
            continue
        change = (now - before) / abs(before)
        if (lower and change > WORSE) or (not lower and change < -WORSE):
            bench, row, column = key
            name = f"{row} / {column}" if column else row
            lines.append(f"- `{bench}` {name}: {before:g} -> {now:g} ({change:+.0%})")
    return lines


def section_of(text):
    if BEGIN in text and END in text:
        start = text.index(BEGIN)
        return start, text.index(END) + len(END)
    return None


def parse_section(section):
    """The figures of a generated section, by bench."""
    out = {}
    for part in re.split(r"^### `", section, flags=re.MULTILINE)[1:]:
        bench = part.split("`", 1)[0]
        out.update(figures(bench, part))
    return out


def machine():
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        memory = next(
            int(line.split()[1]) // (1024 * 1024)
            for line in open("/proc/meminfo")
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        memory = 0
    return f"{os.cpu_count()} cores ({model}), {memory} GiB"


def commit():
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def render(results_dir, command, benches, previous):
    current = {}
    parts = [
        BEGIN,
        "## Latest full run (`bench/all.sh`)",
        "",
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit `{commit()}`, "
        f"{machine()}. Command: `{command}`. Each script's own tables and figures follow, "
        "as it printed them; the sections above explain what each measures.",
        "",
    ]
    for bench in benches:
        status = open(os.path.join(results_dir, f"{bench}.status")).read().strip()
        text = open(os.path.join(results_dir, f"{bench}.txt")).read()
        parts.append(f"### `{bench}`")
        parts.append("")
        parts.append(f"`{COMMANDS.get(bench, f'bench/{bench}.sh')}`")
        parts.append("")
        if status != "ok":
            parts.append(f"Failed ({status}); its output was in `target/bench-all/{bench}.err`.")
            parts.append("")
            continue
        current.update(figures(bench, text))
        tables, values = [], []
        for line in text.splitlines():
            if line.strip().startswith("|"):
                tables.append(line.strip())
            elif KEY_VALUE.match(line.strip()):
                if tables and tables[-1] != "":
                    tables.append("")
                values.append(line.strip())
            elif tables and tables[-1] != "":
                tables.append("")
        parts.extend(line for line in tables)
        if values:
            parts.extend(["", "```", *values, "```"])
        parts.append("")
    regressions = worse(previous, current)
    parts.append("### Worse than the previous full run by more than 10%")
    parts.append("")
    if not previous:
        parts.append("No previous full run to compare with.")
    elif regressions:
        parts.extend(regressions)
    else:
        parts.append("None.")
    parts.append("")
    parts.append(END)
    return "\n".join(parts), regressions


def rewrite(path, results_dir, command, benches):
    text = open(path).read()
    where = section_of(text)
    previous = parse_section(text[where[0]:where[1]]) if where else {}
    section, regressions = render(results_dir, command, benches, previous)
    if where:
        text = text[: where[0]] + section + text[where[1]:]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    open(path, "w").write(text)
    return regressions


def self_test():
    out = """fsync_per_s=5333
messages_per_s=8,956
| queue (16 clients) | messages/s | x PostgreSQL |
| --- | ---: | ---: |
| Nimbus SQLite store | 8956 | **3.78** |
| template | component | first nimbus up |
| --- | ---: | ---: |
| rust-http | 92 KiB | 33 ms |
"""
    assert figures("q", "a_per_s=1\nb_ms=2\na_per_s=3\n") == {
        ("q", "a_per_s", ""): (1.0, False),
        ("q", "b_ms", ""): (2.0, True),
        ("q", "a_per_s#2", ""): (3.0, False),
    }
    found = figures("queue", out)
    assert ("queue", "messages_per_s", "") not in found, "tables win over key=value lines"
    assert found[("queue", "Nimbus SQLite store", "x PostgreSQL")] == (3.78, False), found
    assert found[("queue", "rust-http", "first nimbus up")] == (33.0, True), found
    assert found[("queue", "rust-http", "component")] == (92.0, True), found
    assert lower_is_better("p99 ms @ 1000 req/s") and not lower_is_better("req/s (wrk)")
    assert not lower_is_better("vs wasmtime serve") and lower_is_better("nimbus build", " s")
    before = dict(found)
    after = dict(found)
    after[("queue", "Nimbus SQLite store", "messages/s")] = (7000.0, False)  # 22% fewer: worse
    after[("queue", "rust-http", "first nimbus up")] = (35.0, True)  # 6% slower: within
    after[("queue", "Nimbus SQLite store", "x PostgreSQL")] = (5.0, False)  # better
    lines = worse(before, after)
    assert len(lines) == 1 and "store / messages/s: 8956 -> 7000 (-22%)" in lines[0], lines
    section = f"{BEGIN}\n### `queue`\n\n`bench/queue.sh`\n\n{out}\n{END}"
    assert parse_section(section) == found
    print("all.py self-test passed")


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        sys.exit(0)
    path, results_dir, command, *benches = sys.argv[1:]
    for line in rewrite(path, results_dir, command, benches):
        print(f"worse: {line}")
