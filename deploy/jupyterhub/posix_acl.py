"""POSIX access ACLs (what ``setfacl -m u:NAME:r`` does), read and written through Linux's
extended attribute, so that the course needs no ``acl`` package.

The attribute ``system.posix_acl_access`` is a version number and then (tag, permissions, id)
entries sorted by tag and id (linux/posix_acl_xattr.h). With a named user in it, a mask entry
caps the group class, and the file mode's group bits show the mask.
"""
from __future__ import annotations

import errno
import os
import struct
from pathlib import Path

XATTR = "system.posix_acl_access"
VERSION = 2
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
NO_ID = 0xFFFFFFFF
READ, WRITE, EXECUTE = 4, 2, 1


class NoACLs(OSError):
    """The file system does not keep ACLs (mounted without them, or one that has none)."""


def read(path: Path) -> list[tuple[int, int, int]]:
    """The (tag, permissions, id) entries; a file without an ACL gets the three its mode implies."""
    try:
        data = os.getxattr(path, XATTR)
    except OSError as err:
        if err.errno != errno.ENODATA:
            raise
        mode = os.stat(path).st_mode
        return [(USER_OBJ, (mode >> 6) & 7, NO_ID), (GROUP_OBJ, (mode >> 3) & 7, NO_ID), (OTHER, mode & 7, NO_ID)]
    return [struct.unpack_from("<HHI", data, offset) for offset in range(4, len(data), 8)]


def write(path: Path, entries: list[tuple[int, int, int]]) -> None:
    named = [e for e in entries if e[0] in (USER, GROUP)]
    entries = [e for e in entries if e[0] != MASK]
    if named:  # the mask is the union of the group class: named users and groups, and the owning group
        mask = 0
        for tag, perms, _ in entries:
            mask |= perms if tag in (USER, GROUP, GROUP_OBJ) else 0
        entries.append((MASK, mask, NO_ID))
    entries.sort(key=lambda e: (e[0], e[2]))
    try:
        if named:
            os.setxattr(path, XATTR, struct.pack("<I", VERSION) + b"".join(struct.pack("<HHI", *e) for e in entries))
        else:  # nothing beyond the mode: drop the ACL and put the owning group's bits back
            group = next(p for tag, p, _ in entries if tag == GROUP_OBJ)
            try:
                os.removexattr(path, XATTR)
            except OSError as err:
                if err.errno != errno.ENODATA:
                    raise
            os.chmod(path, (os.stat(path).st_mode & ~0o070 & 0o7777) | group << 3)
    except OSError as err:
        if err.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            raise NoACLs(err.errno, f"{path}: this file system keeps no POSIX ACLs") from None
        raise


def grant(path: Path, perms: int, uid: int | None = None, gid: int | None = None) -> None:
    """Give one user (``uid``) or group (``gid``) ``perms`` (READ | EXECUTE, ...) on ``path``,
    on top of what its mode says. The owner of a file may do this; no root is needed."""
    tag, who = (USER, uid) if gid is None else (GROUP, gid)
    write(path, [e for e in read(path) if (e[0], e[2]) != (tag, who)] + [(tag, perms, who)])


def revoke(path: Path, uid: int | None = None, gid: int | None = None) -> None:
    """Take back what :func:`grant` gave."""
    tag, who = (USER, uid) if gid is None else (GROUP, gid)
    write(path, [e for e in read(path) if (e[0], e[2]) != (tag, who)])
