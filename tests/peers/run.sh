#!/bin/sh
# Real peers for tide's streams (issue 9): a Python asyncio client
# against a tide server (asyncio_client.py runs tide_echo_server) and a
# Python asyncio server against a tide client (asyncio_server.py runs
# tide_client). CTest runs this; without python3 it exits 77, which CTest
# reports as skipped, so `make test` needs nothing beyond gcc, make and
# cmake. .ci/run's deps step installs python3.
# Usage: run.sh DIR_WITH_tide_echo_server_AND_tide_client
# SPDX-License-Identifier: MIT
set -eu
command -v python3 >/dev/null || { echo "SKIP: no python3"; exit 77; }
here=$(cd "$(dirname "$0")" && pwd)
echo "-- a Python asyncio client against tide_echo_server"
python3 "$here/asyncio_client.py" "$1/tide_echo_server"
echo "-- a Python asyncio server against tide_client"
python3 "$here/asyncio_server.py" "$1/tide_client"
