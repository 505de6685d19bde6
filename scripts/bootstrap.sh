#!/usr/bin/env bash
# Bootstrap what a target needs: system packages (apt, when root) and the .venv.
#   scripts/bootstrap.sh PURPOSE...   (PURPOSE: test, run, bench)
# The venv is rebuilt when pyproject.toml is newer than its stamp.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
purposes=" $* "
[ "$purposes" = "  " ] && purposes=" test "
case "$purposes" in *" bench "*) purposes="$purposes test run ";; esac

missing_pkgs=()
while read -r purpose probe pkg; do
  case "$purpose" in ''|'#'*) continue;; esac
  case "$purposes" in *" $purpose "*) ;; *) continue;; esac
  if [[ "$probe" == /* ]]; then
    compgen -G "$probe" >/dev/null && continue
  else
    command -v "$probe" >/dev/null 2>&1 && continue
  fi
  [[ " ${missing_pkgs[*]-} " == *" $pkg "* ]] || missing_pkgs+=("$pkg")
done < scripts/system-packages.txt

if [ "${#missing_pkgs[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing system packages: ${missing_pkgs[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing_pkgs[@]}" >/dev/null
  else
    echo "bootstrap: missing system packages: ${missing_pkgs[*]}" >&2
    echo "bootstrap: install them with: sudo apt-get install ${missing_pkgs[*]}" >&2
    exit 1
  fi
fi

py="${PYTHON:-}"
if [ -z "$py" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      py="$cand"; break
    fi
  done
fi
if [ -z "$py" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -q python3 python3-venv python3-dev >/dev/null; py=python3
  else
    echo "bootstrap: Python 3.11 is required (Debian 12: apt-get install python3 python3-venv)" >&2; exit 1
  fi
fi
if ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y -q python3-venv >/dev/null
  else echo "bootstrap: the venv module is missing: apt-get install python3-venv" >&2; exit 1; fi
fi

# The compiled module (setup.py) needs the headers of the Python the venv is made from.
if ! "$py" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get install -y -q python3-dev >/dev/null
  else echo "bootstrap: the Python headers are missing: apt-get install python3-dev" >&2; exit 1; fi
fi

stamp=.venv/.oca-stamp
if [ ! -x .venv/bin/python ] || [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: creating .venv from pyproject.toml" >&2
  rm -rf .venv
  "$py" -m venv .venv
  if ! { .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e '.[test]'; } >.venv/pip.log 2>&1; then
    grep -v "is ignored: it is neither" .venv/pip.log >&2; echo "bootstrap: pip install failed" >&2; exit 1
  fi
  touch "$stamp"
fi
# An existing venv: rebuild the compiled modules when a source is newer (or was never built).
for src in steering/_groupscan.c steering/_answer.c oca/http/_serve.c; do
  so=("${src%.c}"*.so)
  if [ ! -e "${so[0]}" ] || [ "$src" -nt "${so[0]}" ]; then
    echo "bootstrap: building the compiled modules ($src changed)" >&2
    if ! .venv/bin/pip install -q --no-deps -e . >.venv/pip.log 2>&1; then
      cat .venv/pip.log >&2; echo "bootstrap: building the compiled modules failed" >&2; exit 1
    fi
    break
  fi
done

# npm packages (players, playwright-core) from the lockfile, when the project has one.
if [ -f tests/e2e/package-lock.json ] && [[ "$purposes" == *" test "* || "$purposes" == *" run "* ]]; then
  if [ ! -d tests/e2e/node_modules ] || [ tests/e2e/package-lock.json -nt tests/e2e/node_modules/.oca-stamp ]; then
    (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.oca-stamp)
  fi
fi
