# A Python asyncio server against a tide client (tide_client: tide's
# open_connection and stream calls): asyncio's streams, nothing from
# tide. It listens on 127.0.0.1 (a port the system picks), runs
# tide_client with that port, and passes on its exit status.
# The first line a connection sends picks what the server does:
#   echo          echo every byte until the client half-closes, then
#                 half-close too
#   lines N       send "line 0\n" ... "line N-1\n", then close
#   partial       send 10 bytes, then close
#   reset         send "bye\n", then reset the connection (SO_LINGER 0)
#   reset-upload  read 100000 bytes of an upload, then reset
#   close         close at once, sending nothing
#   python3 asyncio_server.py PATH_TO_tide_client
# SPDX-License-Identifier: MIT
import asyncio
import socket
import struct
import sys


def reset(writer):
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def handle(reader, writer):
    words = (await reader.readline()).decode().split()
    mode = words[0] if words else ""
    if mode == "echo":
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.write_eof()
    elif mode == "lines":
        for i in range(int(words[1])):
            writer.write(f"line {i}\n".encode())
        await writer.drain()
    elif mode == "partial":
        writer.write(b"0123456789")
        await writer.drain()
    elif mode == "reset":
        writer.write(b"bye\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        return reset(writer)
    elif mode == "reset-upload":
        await reader.readexactly(100000)
        return reset(writer)
    writer.close()
    await writer.wait_closed()


async def main(client_path):
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        client = await asyncio.create_subprocess_exec(client_path, str(port))
        try:
            return await asyncio.wait_for(client.wait(), 100)
        except asyncio.TimeoutError:
            client.kill()
            print("FAIL: tide_client did not finish")
            return 1


rc = asyncio.run(main(sys.argv[1]))
if rc != 0:
    print(f"FAIL: tide_client exited with status {rc}")
sys.exit(0 if rc == 0 else 1)
