# SPAWN, Python asyncio's side (bench/spawn.c is tide's): start /bin/true
# and wait for it, N times one after another (default 1000; argv[1]
# overrides), with asyncio.create_subprocess_exec and Process.wait.
# Prints: SPAWN python-asyncio us_per_spawn=... us n=...
# SPDX-License-Identifier: MIT
import asyncio
import sys
import time


async def spawn_all(n):
    for _ in range(n):
        p = await asyncio.create_subprocess_exec("/bin/true")
        if await p.wait() != 0:
            sys.exit(1)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    t0 = time.perf_counter()
    asyncio.run(spawn_all(n))
    t = time.perf_counter() - t0
    print(f"SPAWN python-asyncio us_per_spawn={t / n * 1e6:.1f} us n={n}")


main()
