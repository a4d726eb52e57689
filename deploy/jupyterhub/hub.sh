#!/bin/sh
# `make hub`: the course hub on 127.0.0.1, for a demo, with its state in .hub/.
# It must run as root: the hub starts each person's JupyterLab as their own system user.
set -eu
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ]; then
  echo "make hub: run it as root (sudo make hub): each user's JupyterLab runs as their own system user" >&2
  exit 1
fi
if [ ! -x .venv/node/bin/configurable-http-proxy ] && ! command -v configurable-http-proxy >/dev/null 2>&1; then
  echo "make hub: configurable-http-proxy is missing: install npm (apt-get install nodejs npm) and run make install" >&2
  exit 1
fi
mkdir -p .hub
chmod 755 .hub  # learners reach the exchange inside it
echo "*" > .hub/.gitignore
export COURSE_HUB_STATE="${COURSE_HUB_STATE:-$PWD/.hub/state}"
export COURSE_EXCHANGE="${COURSE_EXCHANGE:-$PWD/.hub/exchange}"
export COURSE_INSTRUCTORS="${COURSE_INSTRUCTORS:-instructor}"
port="${COURSE_HUB_PORT:-8000}"
first="${COURSE_INSTRUCTORS%%,*}"
cat <<MSG
Course hub for "Transformers, Piece by Piece": http://127.0.0.1:$port  (Ctrl-C stops it and every server)
  1. Sign up as "$first" at http://127.0.0.1:$port/hub/signup: instructors are approved already.
  2. Learners sign up at the same page; approve them at http://127.0.0.1:$port/hub/authorize.
  3. Each person's system account is made when their JupyterLab first starts.
  4. Instructors: clone the course into ~/transformers-piece-by-piece, then follow
     "Running a class" in README.md. Exchange: $COURSE_EXCHANGE
MSG
exec .venv/bin/jupyterhub -f deploy/jupyterhub/jupyterhub_config.py
