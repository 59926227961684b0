"""Rewrites the generated section of BENCHMARKS.md from one bench/all.sh run.

usage: all.py BENCHMARKS.md RESULTS_DIR COMMAND BENCH...

RESULTS_DIR holds BENCH.txt (the script's standard output) and BENCH.status
("ok" or how it failed) for each BENCH. The section between the markers
below is replaced (appended the first time): the date, machine and commit,
each script's output (its Markdown tables as tables, the rest as printed),
and every figure more than 10% worse than in the section it replaces. A
run of some benchmarks (`ONLY=`) keeps the others' parts. Whether a
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
# `key=value`, the value a number with an optional unit (`rate=1000/s`).
PAIR = re.compile(r"\b([a-z][a-z0-9_]*)=(-?[0-9][0-9,]*(?:\.[0-9]+)?)([a-zA-Zµ/%]*)")
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
    lower_is_better)}. A script's Markdown tables are its figures; when it
    printed none, its `key=value` pairs are (anywhere in a line, named with
    the words before the first pair: `== stream p99_ms=3.1` is `== stream
    p99_ms`; a name printed again is numbered: `messages_per_s#2`)."""
    tables, values = {}, {}
    header = None
    lines = [line.strip() for line in text.splitlines()]
    for i, line in enumerate(lines):
        pairs = list(PAIR.finditer(line))
        if pairs and not line.startswith("|"):
            label = line[: pairs[0].start()].strip()
            for pair in pairs:
                key = f"{label} {pair.group(1)}".strip()
                name, n = key, 1
                while (bench, name, "") in values:
                    n += 1
                    name = f"{key}#{n}"
                value = float(pair.group(2).replace(",", ""))
                values[(bench, name, "")] = (value, lower_is_better(pair.group(1), pair.group(3)))
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


def parts_of(section):
    """The section's part for each benchmark, as written: {bench: text}."""
    body = section.split("### Worse than", 1)[0]
    out = {}
    for part in re.split(r"^(?=### `)", body, flags=re.MULTILINE)[1:]:
        out[part[len("### `"):].split("`", 1)[0]] = part.rstrip("\n") + "\n"
    return out


def parse_section(section):
    """The figures of a generated section, by bench."""
    out = {}
    for bench, part in parts_of(section).items():
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


def part(bench, status, text, when):
    """One benchmark's part: its command, when, and what it printed: its
    Markdown tables as tables, every other line as it was, in a block."""
    lines = [f"### `{bench}`", "", f"`{COMMANDS.get(bench, f'bench/{bench}.sh')}`, {when}.", ""]
    if status != "ok":
        lines += [f"Failed ({status}); its output was in `target/bench-all/{bench}.err`.", ""]
        return "\n".join(lines)
    tables, other = [], []
    for line in text.splitlines():
        if line.strip().startswith("|"):
            tables.append(line.strip())
        else:
            if tables and tables[-1] != "":
                tables.append("")
            if line.strip():
                other.append(line.rstrip())
    lines += [line for line in tables]
    if other:
        lines += ["", "```", *other, "```"]
    lines.append("")
    return "\n".join(lines)


def render(results_dir, command, benches, old_parts):
    """The new section: the benchmarks run now, then those of the section it
    replaces that were not run now (an `ONLY=` run keeps the others' last
    figures), and what got worse since the last run of each."""
    when = (
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit `{commit()}`"
    )
    previous, current, parts = {}, {}, []
    for bench in benches:
        status = open(os.path.join(results_dir, f"{bench}.status")).read().strip()
        text = open(os.path.join(results_dir, f"{bench}.txt")).read()
        parts.append(part(bench, status, text, when))
        if status == "ok":
            current.update(figures(bench, text))
        if bench in old_parts:
            previous.update(figures(bench, old_parts[bench]))
    parts += [text for bench, text in old_parts.items() if bench not in benches]
    regressions = worse(previous, current)
    head = [
        BEGIN,
        "## Latest full run (`bench/all.sh`)",
        "",
        f"Machine: {machine()}. Last command: `{command}`. Each part says when it ran and "
        "shows the script's own tables and figures as it printed them; the sections above "
        "explain what each measures.",
        "",
    ]
    tail = ["### Worse than the previous full run by more than 10%", ""]
    if not previous:
        tail.append("No previous run of these benchmarks to compare with.")
    elif regressions:
        tail.extend(regressions)
    else:
        tail.append("None.")
    tail += ["", END]
    return "\n".join(head + parts + tail), regressions


def rewrite(path, results_dir, command, benches):
    text = open(path).read()
    where = section_of(text)
    old_parts = parts_of(text[where[0]:where[1]]) if where else {}
    section, regressions = render(results_dir, command, benches, old_parts)
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
    # What bench/latency.sh and bench/stream-latency.sh print.
    latency = figures("latency", "messages=5000 rate=1000/s p50_ms=1.36 p99_ms=51.98\n")
    assert latency[("latency", "rate", "")] == (1000.0, False), latency
    assert latency[("latency", "p99_ms", "")] == (51.98, True), latency
    stream = figures("s", "== postgres p99_ms=3.1 max_ms=9\nsentence without figures\n")
    assert stream == {("s", "== postgres p99_ms", ""): (3.1, True), ("s", "== postgres max_ms", ""): (9.0, True)}

    # A run of one benchmark keeps the other's part and compares its own.
    import tempfile

    with tempfile.TemporaryDirectory() as results:
        path = os.path.join(results, "BENCHMARKS.md")
        old_latency = part("latency", "ok", "messages=10 p99_ms=2.0\n", "before")
        old_queue = part("queue", "ok", out, "before")
        open(path, "w").write(f"# Benchmarks\n\n{BEGIN}\n{old_queue}\n{old_latency}\n{END}\n")
        open(os.path.join(results, "queue.status"), "w").write("ok\n")
        slower = out.replace("| Nimbus SQLite store | 8956 |", "| Nimbus SQLite store | 7000 |")
        open(os.path.join(results, "queue.txt"), "w").write(slower)
        regressions = rewrite(path, results, "bench/all.sh", ["queue"])
        assert len(regressions) == 1 and "8956 -> 7000" in regressions[0], regressions
        text = open(path).read()
        assert text.count(BEGIN) == 1 and "p99_ms=2.0" in text and "| 7000 |" in text, text
        assert "8956 -> 7000" in text and text.startswith("# Benchmarks"), text
    print("all.py self-test passed")


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        sys.exit(0)
    path, results_dir, command, *benches = sys.argv[1:]
    for line in rewrite(path, results_dir, command, benches):
        print(f"worse: {line}")
