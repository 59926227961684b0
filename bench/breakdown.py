#!/usr/bin/env python3
"""Groups `perf script -F tid,ip,sym` call stacks (recorded with
`--call-graph dwarf`) by what part of serving a request they belong to, and
prints the share of samples per group as a Markdown table.

    perf script -i perf.data --no-inline -F tid,ip,sym | bench/breakdown.py

Each sample goes to the first group (in the order below) any of its frames
matches, so a log line written from inside the guest counts as logging, and a
page fault taken by the guest counts as a page fault.
"""

import collections
import sys

GROUPS = [
    ("logging (tracing, formatting, stderr writes)", [
        "tracing_subscriber", "tracing_core::event::Event::dispatch", "Stderr as std::io::Write",
    ]),
    ("trace and invocation ids (random numbers, uuid)", [
        "random_id", "getrandom", "uuid::",
    ]),
    ("metrics", ["nimbus_metrics::"]),
    ("history record (build, channel, SQLite writer)", [
        "nimbus_engine::history", "FunctionCore::record", "sqlite3", "nimbus_store_sqlite",
        "OutputBudget::take_kept",
    ]),
    ("page faults on instance memory and stacks", ["asm_exc_page_fault"]),
    ("memory reset after an instance (madvise, memset)", [
        "decommit", "madvise", "MemoryImageSlot", "reset_with_pagemap", "clear_and_remain_ready",
    ]),
    ("instance creation (instantiate)", [
        "instantiate", "InstancePre", "InstanceAllocator", "allocate_module", "allocate_component",
        "ComponentInstance::new", "Instance::new", "OwnedImports", "ModuleRegistry", "Fiber",
        "lookup_vmdef", "set_trampoline", "func_loc", "TryBTreeMap",
    ]),
    ("store, WASI and wasi:http context (creation and drop)", [
        "FunctionCore::store", "InvocationState", "WasiCtxBuilder", "WasiCtx", "WasiHttpCtx",
        "new_incoming_request", "new_response_outparam", "Store<T>::new", "StoreInner",
        "StoreOpaque", "drop_in_place<wasmtime::runtime::store::Store", "OutputBudget",
        "ResourceTable", "Store<T> as core::ops::drop::Drop", "OwnedInstance<T> as core::ops::drop",
    ]),
    ("the guest (its code and the host calls it makes)", [
        "call_handle", "wasm-call", "HostFn::entrypoint", "array_call_trampoline",
        "wasm[", "component-trampolines",
    ]),
    ("response write (encode, writev)", [
        "writev", "encode_headers", "Http1Transaction>::encode", "poll_flush", "write_buf",
        "tcp_sendmsg", "poll_write",
    ]),
    ("accept and parse (read, hyper parse)", [
        "Http1Transaction>::parse", "parse_headers", "httparse", "poll_read_from_io", "recvfrom",
        "tcp_recvmsg", "accept", "do_sys_read", "ksys_read", "poll_read", "poll_io",
    ]),
    ("routing (path checks, route match)", ["Router::route", "check_path", "RoutePattern"]),
    ("authentication", ["nimbus_gateway::auth"]),
    ("spans", ["nimbus_trace::"]),
    ("gateway and invocation glue (headers, tasks, body)", [
        "nimbus_gateway::", "nimbus_engine::http", "nimbus_engine::invocation",
    ]),
    ("tokio (scheduler, timers, epoll)", ["tokio::", "epoll", "futex", "schedule"]),
    ("malloc and free (not attributed above)", ["malloc", "free", "realloc", "_int_"]),
]


def main() -> None:
    counts = collections.Counter()
    total = 0
    frames: list[str] = []

    def finish() -> None:
        nonlocal total
        if not frames:
            return
        total += 1
        for name, needles in GROUPS:
            if any(needle in frame for frame in frames for needle in needles):
                counts[name] += 1
                break
        else:
            counts["other (kernel, std, unresolved)"] += 1
        frames.clear()

    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line.strip():
            finish()
        elif line.startswith("\t") or line.startswith(" " * 8):
            frames.append(line.strip().split(" ", 1)[-1])
        else:
            finish()
    finish()
    print(f"| group ({total} samples) | share |")
    print("| --- | ---: |")
    for name, n in counts.most_common():
        print(f"| {name} | {100 * n / total:.1f}% |")


if __name__ == "__main__":
    main()
