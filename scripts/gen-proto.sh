#!/bin/sh
# Regenerate printgate/wire/*_pb2*.py from agent.proto (commit the output).
set -eu
cd "$(dirname "$0")/.."
.venv/bin/python -m grpc_tools.protoc -I . \
  --python_out=. --pyi_out=. --grpc_python_out=. \
  printgate/wire/agent.proto
# the generated stub is not ours to lint
sed -i '1i # ruff: noqa' printgate/wire/agent_pb2.pyi
