# An asyncio echo server (asyncio's own streams, nothing from tide): every
# line a client sends comes back. examples/servers_check.sh runs
# examples/echo_client against it.
#   python3 line_echo_server.py PORT     listens on 127.0.0.1:PORT
# SPDX-License-Identifier: MIT
import asyncio
import sys


async def echo(reader, writer):
    while line := await reader.readline():
        writer.write(line)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def main(port):
    server = await asyncio.start_server(echo, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


asyncio.run(main(int(sys.argv[1])))
