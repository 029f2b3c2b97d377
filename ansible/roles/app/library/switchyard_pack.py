#!/usr/bin/python
"""Ansible module of the app role: pack a directory into a tar.gz named by its content."""

DOCUMENTATION = r"""
module: switchyard_pack
short_description: Pack a directory into a gzipped tar named by a digest of its content
description:
  - Walks O(src) (symbolic links are kept as links, never followed), leaves out
    what O(exclude) matches, and writes C(DEST/PREFIX-DIGEST.tar.gz) with every
    entry under O(arcname)/, unless that file is already there.
  - The digest is the SHA-256 of the packed paths, their executable bits,
    link targets and file contents, so the same tree gives the same name on any
    machine, and any change to it gives another one. Modification times and
    owners are not part of it.
  - Files are packed with mode 0644 (0755 when executable), directories 0755,
    owned by root, whatever the modes and owners on the controller.
  - Run on the controller (C(delegate_to: localhost)).
options:
  src:
    description: The directory to pack.
    type: path
    required: true
  dest:
    description: The directory the archive is written to (created if missing).
    type: path
    required: true
  prefix:
    description: The archive's file name starts with this, then C(-) and the first 16 hex digits of the digest.
    type: str
    default: tree
  arcname:
    description: Top-level directory of every entry in the archive.
    type: str
    default: tree
  exclude:
    description:
      - Glob patterns (fnmatch) of what to leave out. A pattern without C(/) is
        matched against each file and directory name at any depth; one with
        C(/) against the path relative to O(src) (a leading or trailing C(/) is
        ignored). An excluded directory is left
        out with everything in it.
    type: list
    elements: str
    default: []
author: Switchyard
"""

RETURN = r"""
digest:
  description: SHA-256 (hex) of the packed tree.
  returned: always
  type: str
archive:
  description: Path of the archive.
  returned: always
  type: str
files:
  description: Number of files and links packed.
  returned: always
  type: int
"""

import fnmatch
import gzip
import hashlib
import os
import stat
import tarfile
import tempfile

from ansible.module_utils.basic import AnsibleModule


def _excluded(relative, name, patterns):
    """True when a pattern matches ``name`` (patterns without /) or ``relative`` (with /, leading and trailing / ignored)."""
    for pattern in patterns:
        if "/" in pattern:
            if fnmatch.fnmatchcase(relative, pattern.strip("/")):
                return True
        elif fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def collect(src, patterns):
    """Return the sorted entries of ``src``: (relative path, kind "d"/"f"/"l", absolute path)."""
    entries = []
    for root, dirs, files in os.walk(src, followlinks=False):
        base = os.path.relpath(root, src)
        base = "" if base == "." else base.replace(os.sep, "/") + "/"
        kept = []
        for name in sorted(dirs):
            relative = base + name
            path = os.path.join(root, name)
            if _excluded(relative, name, patterns):
                continue
            if os.path.islink(path):  # a link to a directory: packed as a link
                entries.append((relative, "l", path))
            else:
                entries.append((relative, "d", path))
                kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            relative = base + name
            if _excluded(relative, name, patterns):
                continue
            path = os.path.join(root, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                entries.append((relative, "l", path))
            elif stat.S_ISREG(mode):
                entries.append((relative, "f", path))
            # sockets, fifos and devices are not part of a project
    entries.sort()
    return entries


def _executable(path):
    return bool(os.stat(path).st_mode & 0o111)


def digest_of(entries):
    """SHA-256 (hex) over the entries' paths, kinds, executable bits, link targets and contents."""
    total = hashlib.sha256()
    for relative, kind, path in entries:
        total.update(f"{kind}\0{relative}\0".encode())
        if kind == "f":
            content = hashlib.sha256()
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    content.update(chunk)
            total.update(f"{int(_executable(path))}\0{content.hexdigest()}\n".encode())
        elif kind == "l":
            total.update(f"{os.readlink(path)}\n".encode())
        else:
            total.update(b"\n")
    return total.hexdigest()


def write_archive(src, entries, archive, arcname):
    """Write ``entries`` of ``src`` to ``archive`` under ``arcname``/ (atomically: a temporary file renamed into place)."""
    directory = os.path.dirname(archive)
    handle, temporary = tempfile.mkstemp(prefix=".pack-", dir=directory)
    try:
        with os.fdopen(handle, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as zipped, \
                tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
            root = tarfile.TarInfo(arcname)
            root.type, root.mode, root.mtime = tarfile.DIRTYPE, 0o755, int(os.stat(src).st_mtime)
            root.uname = root.gname = "root"
            tar.addfile(root)
            for relative, kind, path in entries:
                info = tar.gettarinfo(path, arcname=f"{arcname}/{relative}")
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                if kind == "d":
                    info.mode = 0o755
                    tar.addfile(info)
                elif kind == "l":
                    info.mode = 0o777
                    tar.addfile(info)
                else:
                    info.mode = 0o755 if _executable(path) else 0o644
                    with open(path, "rb") as content:
                        tar.addfile(info, content)
        os.chmod(temporary, 0o600)
        os.replace(temporary, archive)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def main():
    module = AnsibleModule(
        argument_spec={
            "src": {"type": "path", "required": True},
            "dest": {"type": "path", "required": True},
            "prefix": {"type": "str", "default": "tree"},
            "arcname": {"type": "str", "default": "tree"},
            "exclude": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    src, dest = module.params["src"], module.params["dest"]
    if not os.path.isdir(src):
        module.fail_json(msg=f"{src} is not a directory")
    entries = collect(src, module.params["exclude"])
    digest = digest_of(entries)
    archive = os.path.join(dest, f"{module.params['prefix']}-{digest[:16]}.tar.gz")
    result = {"digest": digest, "archive": archive, "files": sum(kind != "d" for _, kind, _ in entries)}
    if os.path.exists(archive):
        module.exit_json(changed=False, **result)
    if not module.check_mode:
        os.makedirs(dest, mode=0o700, exist_ok=True)
        write_archive(src, entries, archive, module.params["arcname"])
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()
