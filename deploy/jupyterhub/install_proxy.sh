#!/bin/sh
# configurable-http-proxy, the hub's proxy, from the npm registry into a project-local prefix
# (default .venv/node): `make install` runs this. Without npm it says so and changes nothing;
# the hub and its test then say what is missing.
set -eu
prefix="${1:-.venv/node}"
version="5.3.0"
if [ -x "$prefix/bin/configurable-http-proxy" ] \
   && [ "$("$prefix/bin/configurable-http-proxy" --version 2>/dev/null)" = "$version" ]; then
  touch "$prefix/bin/configurable-http-proxy"  # newer than this script: make has nothing to do
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "npm is not installed: no configurable-http-proxy, so no course hub (apt-get install nodejs npm, then make install)" >&2
  exit 0
fi
npm install --global --prefix "$prefix" --no-fund --no-audit --loglevel=error "configurable-http-proxy@$version"
