#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Seed corpus of tests/fuzz/fuzz_info.c (tests/fuzz/corpus-info).

    tools/info_corpus.py BUILD_DIR OUT_DIR

Real pages: tests/info_target.c run with SHEAF_STATS=1 and SHEAF_ADAPTIVE=1
(its info-sheaf cache adaptive, grown by the second run's burst) after a
few commands (two runs), its /dev/shm/libsheaf.<pid> copied once the
publisher answered,
cut to its valid records (max_caches = nr_caches, so that a seed is a few
KiB, not the 130 KiB of a full page).  Mutations of the first one, cut to
four records: each field sheaf_info_parse() checks made wrong once (the
capacity fields in each way they can be inconsistent), names
with control characters, huge counters, lengths around the limits, and
one page of 256 records (the largest valid page).  The whole stays under
250 KB.  The
layout below is <sheaf/info.h>'s (version 3: the capacity fields, 44
counters, 520-byte records; the counters' names and order are read from
<sheaf/stats.h>); a change there means regenerating the corpus.
"""
import os
import re
import struct
import subprocess
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
with open(os.path.join(SRC, "include/sheaf/stats.h")) as f:
    _list = f.read().split("#define SHEAF_STAT_ITEMS(X)")[1].split("#define")[0]
STATS = re.findall(r"X\((\w+), (\w+)\)", _list)
STAT = {name: k for k, (_, name) in enumerate(STATS)}

VERSION_NOW = 3
HEADER = 128
RECORD_FIXED = 168          # name, sizes, flags and figures before stats[]
RECORD = RECORD_FIXED + 8 * len(STATS)
NAME = 64
# Offsets in the header.
MAGIC, VERSION, HSIZE, RSIZE, NSTATS, MAXC, NRC, TOTAL, PID, START, SEQ = (
    0, 8, 12, 16, 20, 24, 28, 32, 36, 40, 48)
REQUEST, ANSWERED = 52, 56
# Offsets in a record, and its flags.
R_CAP, R_FLAGS, R_BASE, R_MAX, R_BARN = 80, 84, 92, 96, 100
C_SHEAVES, C_INTERNAL, C_ADAPTIVE = 0x1, 0x8, 0x10


def u32(b, off, v):
    struct.pack_into("<I", b, off, v & 0xffffffff)


def i32(b, off, v):
    struct.pack_into("<i", b, off, v)


def u64(b, off, v):
    struct.pack_into("<Q", b, off, v & 0xffffffffffffffff)


def get32(b, off):
    return struct.unpack_from("<I", b, off)[0]


def set_capacity(b, i, flags, cap, base, cmax, barn):
    """Record i's flags (SHEAF_INFO_C_*) and capacity fields."""
    off = HEADER + i * RECORD
    u32(b, off + R_FLAGS, flags)
    u32(b, off + R_CAP, cap)
    u32(b, off + R_BASE, base)
    u32(b, off + R_MAX, cmax)
    u32(b, off + R_BARN, barn)


def repack(page, n):
    """The header and the first n records, max_caches = nr_caches = n."""
    b = bytearray(page[:HEADER + n * RECORD])
    u32(b, MAXC, n)
    u32(b, NRC, n)
    u32(b, TOTAL, max(n, get32(b, TOTAL)))
    u32(b, SEQ, get32(b, SEQ) & ~1)
    u32(b, REQUEST, 0)
    u32(b, ANSWERED, 0)
    return b


def real_page(build, commands):
    env = dict(os.environ, SHEAF_STATS="1", SHEAF_STATS_INTERVAL="3600000",
               SHEAF_ADAPTIVE="1", SHEAF_ADAPTIVE_MAX="4", SHEAF_IDLE_MS="3600000")
    p = subprocess.Popen([os.path.join(build, "tests/info_target")], env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    pid = int(p.stdout.readline().split()[1])
    for c in commands:
        p.stdin.write(c + "\n")
        p.stdin.flush()
        p.stdout.readline()
    # A fresh snapshot: sheafinfo asks for it.
    subprocess.run([os.path.join(build, "tools/sheafinfo"), str(pid)],
                   stdout=subprocess.DEVNULL, check=True)
    with open("/dev/shm/libsheaf.%d" % pid, "rb") as f:
        page = f.read()
    p.stdin.close()
    p.wait()
    return page


def main():
    build, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    seeds = {}
    pages = [
        real_page(build, ["alloc sheaf 100", "free sheaf 30", "alloc classic 50",
                          "free classic 7", "alloc kmalloc 10"]),
        real_page(build, ["caches - 6", "alloc sheaf 20000", "free sheaf 19950"]),
    ]
    for i, page in enumerate(pages):
        # The layout this script writes is the library's.
        if (get32(page, VERSION), get32(page, RSIZE), get32(page, NSTATS)) != \
                (VERSION_NOW, RECORD, len(STATS)):
            sys.exit("info_corpus.py: the page is version %d, %d-byte records, %d "
                     "counters; this script writes version %d, %d, %d: update it"
                     % (get32(page, VERSION), get32(page, RSIZE), get32(page, NSTATS),
                        VERSION_NOW, RECORD, len(STATS)))
        seeds["real-%d" % (i + 1)] = repack(page, get32(page, NRC))
    base = repack(pages[0], 4)
    seeds["base-4"] = base

    def mut(name, f):
        b = bytearray(base)
        r = f(b)
        seeds[name] = r if isinstance(r, (bytes, bytearray)) else b

    mut("empty", lambda b: bytearray())
    mut("short-header", lambda b: b[:64])
    mut("header-only", lambda b: (u32(b, MAXC, 0), u32(b, NRC, 0), b[:HEADER])[2])
    mut("cut-record", lambda b: b[:-1])
    mut("magic", lambda b: u64(b, MAGIC, 0x1234))
    mut("version", lambda b: u32(b, VERSION, 99))
    # The previous format (40 counters): foreign, however its sizes read.
    mut("version-1", lambda b: (u32(b, VERSION, 1), u32(b, RSIZE, 480),
                                u32(b, NSTATS, 40)))
    # Version 2 (42 counters), and the 44-counter records that were
    # published as version 2 before the capacity fields: foreign too.
    mut("version-2", lambda b: (u32(b, VERSION, 2), u32(b, RSIZE, 496),
                                u32(b, NSTATS, 42)))
    mut("version-2-44", lambda b: (u32(b, VERSION, 2), u32(b, RSIZE, 512),
                                   u32(b, NSTATS, 44)))
    mut("header-size", lambda b: u32(b, HSIZE, HEADER + 8))
    mut("record-size", lambda b: u32(b, RSIZE, RECORD - 8))
    mut("nr-stats", lambda b: u32(b, NSTATS, 3))
    mut("odd-seq", lambda b: u32(b, SEQ, 7))
    mut("max-above-256", lambda b: u32(b, MAXC, 65535))
    mut("nr-above-max", lambda b: u32(b, NRC, 5))
    mut("max-above-len", lambda b: (u32(b, MAXC, 256), u32(b, NRC, 256),
                                    u32(b, TOTAL, 256)))
    mut("total-below-nr", lambda b: u32(b, TOTAL, 2))
    mut("total-above-nr", lambda b: u32(b, TOTAL, 300))
    mut("pid-zero", lambda b: i32(b, PID, 0))
    mut("pid-negative", lambda b: i32(b, PID, -5))
    mut("start-zero", lambda b: u64(b, START, 0))
    mut("name-unterminated",
        lambda b: b.__setitem__(slice(HEADER + RECORD, HEADER + RECORD + NAME),
                                b"A" * NAME))

    # The capacity fields of record 1: each inconsistency once (refused),
    # and a grown adaptive cache (valid).
    SA = C_SHEAVES | C_ADAPTIVE
    for name, fields in [
            ("cap-above-max", (SA, 90, 60, 40, 10)),
            ("cap-below-base", (SA, 30, 60, 240, 10)),
            ("base-zero", (SA, 0, 0, 240, 10)),
            ("max-above-1024", (SA, 1024, 600, 1025, 10)),
            ("barn-below-10", (SA, 90, 60, 240, 9)),
            ("barn-above-40", (SA, 90, 60, 240, 41)),
            ("fixed-with-range", (C_SHEAVES, 90, 60, 240, 10)),
            ("fixed-barn-grown", (C_SHEAVES, 60, 60, 60, 20)),
            ("capacity-without-sheaves", (0, 60, 60, 60, 10)),
            ("adaptive-without-sheaves", (C_ADAPTIVE, 0, 0, 0, 0)),
            ("adaptive-grown", (SA, 90, 60, 240, 15)),
            ("adaptive-widest", (SA, 1024, 1, 1024, 40))]:
        mut(name, lambda b, f=fields: set_capacity(b, 1, *f))

    def names(b):
        for i, n in enumerate([b"evil\x1b]0;owned\x07", b"csi\x9b[2J\xff",
                               b"del\x7f\\back\"quote", b"tab\tnl\ncr\r"]):
            off = HEADER + i * RECORD
            b[off:off + NAME] = n + b"\0" * (NAME - len(n))
    mut("names-control", names)

    def huge(b):
        # Every figure of every record at its maximum (shares, sums, sizes),
        # but the capacity fields: the widest consistent ones (every flag,
        # so adaptive; 1024 of 1 to 1024, barn limit 40).
        for i in range(4):
            off = HEADER + i * RECORD + NAME
            b[off:off + RECORD - NAME] = b"\xff" * (RECORD - NAME)
            set_capacity(b, i, 0xffffffff, 1024, 1, 1024, 40)
        u64(b, 72, 0xffffffffffffffff)   # time_ns
    mut("huge-figures", huge)

    def share_overflow(b):
        # allocs = alloc_fastpath + alloc_slowpath + alloc_from_sheaf
        # wraps to 1 while the sheaves' share (alloc_fastpath +
        # alloc_from_sheaf) is 2^64 - 1: a share far above 100%; frees
        # alike.  The aliases hold garbage: they are not added.
        off = HEADER
        flags = (get32(b, off + R_FLAGS) | C_SHEAVES) & ~(C_INTERNAL | C_ADAPTIVE)
        set_capacity(b, 0, flags, 4, 4, 4, 10)             # sheaves, fixed
        stats = HEADER + RECORD_FIXED
        for k in range(len(STATS)):
            u64(b, stats + 8 * k, 0)
        def put(name, v):
            u64(b, stats + 8 * STAT[name], v)
        put("alloc_fastpath", 0xffffffffffffffff)
        put("alloc_from_sheaf", 0)
        put("alloc_slowpath", 2)
        put("free_fastpath", 0xffffffffffffffff)
        put("free_slowpath", 2)
        put("alloc_cpu_sheaf", 0x8000000000000000)
        put("free_cpu_sheaf", 0x8000000000000000)
    mut("share-overflow", share_overflow)

    def zero_figures(b):
        for i in range(4):
            off = HEADER + i * RECORD + NAME
            b[off:off + RECORD - NAME] = b"\0" * (RECORD - NAME)
    mut("zero-figures", zero_figures)
    # A whole page: 256 records (copies of the four), the largest valid one.
    def full(b):
        recs = b[HEADER:]
        b = bytearray(b[:HEADER]) + recs * 64
        u32(b, MAXC, 256)
        u32(b, NRC, 256)
        u32(b, TOTAL, 256)
        return b
    mut("full-256", full)

    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(bytes(data))
    total = sum(len(d) for d in seeds.values())
    print("%d seeds, %d bytes" % (len(seeds), total))


if __name__ == "__main__":
    main()
