"""Exec a program under a unit's SystemCallFilter= and RestrictAddressFamilies= (seccomp).

    /usr/bin/python3 unit_sandbox.py UNIT_FILE PROGRAM [ARGS...]

systemd builds both settings as seccomp filters; this rebuilds them from the unit file with
libseccomp (python3-seccomp, hence the system interpreter) and the syscall groups as
`systemd-analyze syscall-filter` lists them, loads the filter and execs PROGRAM. Semantics followed
(systemd.exec(5)): the first SystemCallFilter= that is not `~` is an allow list, later `~` lines remove
from it; denied calls fail with SystemCallErrorNumber= (EPERM); a socket()/socketpair() of a family
not in RestrictAddressFamilies= fails with EAFNOSUPPORT. Requires no_new_privs or root (setpriv
--no-new-privs sets it; libseccomp sets it too).
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys

import seccomp


def syscall_groups() -> dict[str, list[str]]:
    out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"], capture_output=True, text=True,
                         check=True).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def expand(names: list[str], groups: dict[str, list[str]]) -> set[str]:
    out: set[str] = set()
    for name in names:
        out |= expand(groups[name], groups) if name.startswith("@") else {name}
    return out


def unit_settings(path: str) -> tuple[list[str], list[list[str]], list[str]]:
    allow: list[str] = []
    deny: list[list[str]] = []
    families: list[str] = []
    with open(path) as f:
        lines = f.read().splitlines()
    for line in lines:
        key, _, value = line.strip().partition("=")
        if key == "SystemCallFilter":
            if value.startswith("~"):
                deny.append(value[1:].split())
            else:
                allow.extend(value.split())
        elif key == "RestrictAddressFamilies":
            families = value.split()
    return allow, deny, families


def main() -> None:
    unit, argv = sys.argv[1], sys.argv[2:]
    groups = syscall_groups()
    allow_names, deny_lists, families = unit_settings(unit)
    allowed = expand(allow_names, groups)
    for names in deny_lists:
        allowed -= expand(names, groups)
    f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno.EPERM))
    for name in sorted(allowed - {"socket", "socketpair"}):
        try:
            f.add_rule(seccomp.ALLOW, name)
        except (RuntimeError, ValueError):
            pass   # not a syscall of this architecture (SystemCallArchitectures=native)
    for call in ("socket", "socketpair"):
        if call not in allowed:
            continue
        for fam in families:
            f.add_rule(seccomp.ALLOW, call, seccomp.Arg(0, seccomp.EQ, int(getattr(socket, fam))))
        for fam in range(1, 46):
            if fam not in {int(getattr(socket, x)) for x in families}:
                f.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), call, seccomp.Arg(0, seccomp.EQ, fam))
    f.load()
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
