# Three clients of examples/chat_server (plain sockets, nothing from
# tide): a sender floods lines, a fast client reads every one of them,
# and a slow client never reads. The server must disconnect the slow
# client (its queue is bounded) and keep serving the fast one: every
# line reaches it, in order. Exits 0 when both hold, 1 otherwise.
#   python3 chat_slow_client.py PORT
# SPDX-License-Identifier: MIT
import select
import socket
import sys
import threading
import time

port = int(sys.argv[1])
LINE = b"x" * 1023 + b"\n"
ROUND = 512  # lines per round: 512 KiB
MAX_ROUNDS = 64  # 32 MiB at most, far beyond any socket buffer


def connect(rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    return s


slow = connect(rcvbuf=4096)
fast = connect()
sender = connect()
time.sleep(0.3)  # all three have joined
got = 0
buf = b""


def read_fast(lines):
    """Read from fast until `lines` lines have come, each LINE."""
    global got, buf
    fast.settimeout(30)
    while got < lines:
        data = fast.recv(1 << 20)
        if not data:
            sys.exit("the fast client was disconnected")
        buf += data
        while len(buf) >= len(LINE):
            if buf[: len(LINE)] != LINE:
                sys.exit("the fast client got a damaged line")
            buf = buf[len(LINE) :]
            got += 1


poll = select.poll()
poll.register(slow, select.POLLERR | select.POLLHUP | select.POLLRDHUP)
for r in range(MAX_ROUNDS):
    t = threading.Thread(target=sender.sendall, args=(LINE * ROUND,))
    t.start()
    read_fast((r + 1) * ROUND)
    t.join()
    if poll.poll(100):  # the slow client was reset
        break
else:
    sys.exit("the slow client was never disconnected")
try:
    while slow.recv(1 << 20):  # what reached it before the reset
        pass
    sys.exit("the slow client saw an orderly end, not a reset")
except ConnectionResetError:
    pass
print(f"slow client reset after {got} lines; the fast one got all of them")
