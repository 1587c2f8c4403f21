# Python asyncio clients against a tide server (tide_echo_server, which
# echoes bytes and answers a half-close with its own): asyncio's streams,
# nothing from tide. It starts the server, reads its port, then checks:
# - 200 connections at once, each sending messages of 1 byte to 64 KiB
#   and reading each echo back before the next (ping-pong);
# - 8 connections at once, each sending 1 to 8 MiB in one go, then
#   half-closing (write_eof) and reading everything back up to the
#   server's own end of stream;
# - clients that reset their connection (SO_LINGER 0) in the middle of a
#   large echo, and one that connects and closes at once, after which a
#   new client is served as before;
# - SIGTERM: the server exits 0 with every connection closed.
#   python3 asyncio_client.py PATH_TO_tide_echo_server
# Exits 0 when every check holds; prints what failed otherwise.
# SPDX-License-Identifier: MIT
import asyncio
import os
import random
import signal
import socket
import struct
import sys
import time

rng = random.Random(9)


async def ping_pong(port, sizes):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for n in sizes:
        msg = rng.randbytes(n)
        writer.write(msg)
        await writer.drain()
        back = await reader.readexactly(n)
        assert back == msg, f"ping-pong: {n} bytes came back different"
    writer.close()
    await writer.wait_closed()


async def bulk(port, n):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    msg = os.urandom(n)

    async def send():
        writer.write(msg)
        await writer.drain()
        writer.write_eof()  # half-close: we still read the echo

    sender = asyncio.create_task(send())
    back = await reader.read()  # up to the server's end of stream
    await sender
    assert len(back) == n, f"bulk: {n} bytes sent, {len(back)} came back"
    assert back == msg, f"bulk: {n} bytes came back different"
    writer.close()
    await writer.wait_closed()


async def reset_midway(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"r" * (4 << 20))
    await reader.readexactly(1000)  # the echo has begun
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # RST, with the echo still under way


async def connect_and_close(port):
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()
    await writer.wait_closed()


async def timed(what, *coros):
    """Run coros at once, within 30 s; print what, and how long it took."""
    t0 = time.monotonic()
    try:
        await asyncio.wait_for(asyncio.gather(*coros), 30)
    except asyncio.TimeoutError:
        raise AssertionError(f"{what}: still running after 30 s") from None
    print(f"{what}: ok ({time.monotonic() - t0:.2f} s)")


async def checks(port):
    sizes = [1, 17, 1000, 4096, 65536]
    await timed(
        "200 concurrent ping-pong connections",
        *(ping_pong(port, sizes[i % 5 :] + [1]) for i in range(200)),
    )
    await timed(
        "8 concurrent 1-8 MiB echoes with half-close",
        *(bulk(port, (1 + i) << 20) for i in range(8)),
    )
    await timed(
        "4 clients resetting mid-echo, 1 closing at once",
        *(reset_midway(port) for _ in range(4)),
        connect_and_close(port),
    )
    await timed("then new clients", ping_pong(port, [5, 50000]), bulk(port, 3 << 20))


async def main(server_path):
    server = await asyncio.create_subprocess_exec(server_path, stdout=asyncio.subprocess.PIPE)
    try:
        port = int(await asyncio.wait_for(server.stdout.readline(), 30))
        await checks(port)
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(server.wait(), 30)
    assert rc == 0, f"tide_echo_server exited with status {rc}"
    print("tide_echo_server exited 0 on SIGTERM")


try:
    asyncio.run(main(sys.argv[1]))
except (AssertionError, OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
    sys.exit(f"FAIL: {type(e).__name__}: {e}")
