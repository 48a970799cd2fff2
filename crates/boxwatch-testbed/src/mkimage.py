#!/usr/bin/env python3
"""Build the "hostusr" OCI image archive for boxwatch's privileged tests.

Usage: mkimage.py OUT.tar IMAGE_NAME

The image is a tiny rootfs (~100 KB) meant to run with the host's /usr
bind-mounted read-only at /usr (the harness passes
`--mount type=bind,src=/usr,dst=/usr,options=rbind:ro`):

  * bin sbin lib lib64 (and lib32 libx32 when the host has them) -> usr/*
  * /etc/passwd, /etc/group, /etc/nsswitch.conf, /etc/hosts, /etc/hostname
  * copies of the host's /etc/ld.so.cache, /etc/alternatives (symlinks, so
    awk/pager/... resolve), /etc/python3*, /etc/os-release (a symlink into /usr)
  * /tmp and /var/tmp mode 1777, /root 0700, /home/user owned by uid 1000

Only the python3 standard library is used. The archive is an OCI image
layout (uncompressed layer) whose index carries the
`io.containerd.image.name` annotation, so `ctr image import` names it.
"""

import hashlib
import io
import json
import os
import platform
import stat
import sys
import tarfile

MTIME = 1_700_000_000  # fixed, so the layer digest is reproducible on one host

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
"""
GROUP = """root:x:0:
daemon:x:1:
user:x:1000:
nogroup:x:65534:
"""
NSSWITCH = """passwd: files
group: files
shadow: files
hosts: files dns
"""
HOSTS = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
"""


class Layer:
    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)
        self.seen = set()

    def _info(self, name, kind, mode, uid=0, gid=0):
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.mode = mode
        ti.uid, ti.gid = uid, gid
        ti.uname = ti.gname = ""
        ti.mtime = MTIME
        return ti

    def dir(self, name, mode=0o755, uid=0, gid=0):
        parent = os.path.dirname(name)
        if parent and parent not in self.seen:
            self.dir(parent)
        if name in self.seen:
            return
        self.seen.add(name)
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode, uid, gid))

    def symlink(self, name, target):
        parent = os.path.dirname(name)
        if parent and parent not in self.seen:
            self.dir(parent)
        self.seen.add(name)
        ti = self._info(name, tarfile.SYMTYPE, 0o777)
        ti.linkname = target
        self.tar.addfile(ti)

    def file(self, name, data, mode=0o644):
        parent = os.path.dirname(name)
        if parent and parent not in self.seen:
            self.dir(parent)
        if isinstance(data, str):
            data = data.encode()
        self.seen.add(name)
        ti = self._info(name, tarfile.REGTYPE, mode)
        ti.size = len(data)
        self.tar.addfile(ti, io.BytesIO(data))

    def copy_tree(self, host_path, name):
        """Copy a host file, symlink or directory tree (regular files, dirs, symlinks only)."""
        try:
            st = os.lstat(host_path)
        except OSError:
            return
        if stat.S_ISLNK(st.st_mode):
            self.symlink(name, os.readlink(host_path))
        elif stat.S_ISDIR(st.st_mode):
            self.dir(name, stat.S_IMODE(st.st_mode))
            for entry in sorted(os.listdir(host_path)):
                self.copy_tree(os.path.join(host_path, entry), name + "/" + entry)
        elif stat.S_ISREG(st.st_mode):
            try:
                with open(host_path, "rb") as f:
                    data = f.read()
            except OSError:
                return
            self.file(name, data, stat.S_IMODE(st.st_mode))

    def finish(self):
        self.tar.close()
        return self.buf.getvalue()


def build_layer():
    L = Layer()
    # /usr is an empty mount point: the host's /usr is bind-mounted over it.
    L.dir("usr")
    for link in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
        if link in ("bin", "sbin", "lib", "lib64") or os.path.isdir("/usr/" + link):
            L.symlink(link, "usr/" + link)
    for d in ("dev", "proc", "sys", "etc", "run", "var", "var/lib", "var/log",
              "var/cache", "home", "mnt", "opt", "srv"):
        L.dir(d)
    L.dir("root", 0o700)
    L.dir("tmp", 0o1777)
    L.dir("var/tmp", 0o1777)
    L.dir("home/user", 0o755, 1000, 1000)
    L.symlink("var/run", "../run")

    L.file("etc/passwd", PASSWD)
    L.file("etc/group", GROUP)
    L.file("etc/shadow", "root:*:19000:0:99999:7:::\n", 0o640)
    L.file("etc/nsswitch.conf", NSSWITCH)
    L.file("etc/hosts", HOSTS)
    L.file("etc/hostname", "boxwatch-test\n")
    L.copy_tree("/etc/ld.so.cache", "etc/ld.so.cache")
    L.copy_tree("/etc/alternatives", "etc/alternatives")
    L.copy_tree("/etc/os-release", "etc/os-release")
    for entry in sorted(os.listdir("/etc")):
        if entry.startswith("python3"):
            L.copy_tree("/etc/" + entry, "etc/" + entry)
    return L.finish()


def oci_arch():
    m = platform.machine().lower()
    return {
        "x86_64": "amd64", "amd64": "amd64",
        "aarch64": "arm64", "arm64": "arm64",
        "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
    }.get(m, m)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: mkimage.py OUT.tar IMAGE_NAME")
    out, image_name = sys.argv[1], sys.argv[2]

    blobs = {}

    def blob(data):
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return "sha256:" + digest, len(data)

    layer = build_layer()
    layer_digest, layer_size = blob(layer)
    arch = oci_arch()
    config = {
        "architecture": arch,
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": "boxwatch mkimage.py (hostusr rootfs)"}],
    }
    config_digest, config_size = blob(json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer_size,
        }],
    }
    manifest_digest, manifest_size = blob(json.dumps(manifest, sort_keys=True).encode())
    tag = image_name.rsplit(":", 1)[1] if ":" in image_name.rsplit("/", 1)[-1] else "latest"
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "platform": {"architecture": arch, "os": "linux"},
            "annotations": {
                "io.containerd.image.name": image_name,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    }

    tmp = out + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as t:
        def add(name, data, mode=0o644, kind=tarfile.REGTYPE):
            ti = tarfile.TarInfo(name)
            ti.type = kind
            ti.mode = mode
            ti.mtime = MTIME
            if kind == tarfile.REGTYPE:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            else:
                t.addfile(ti)

        add("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        add("index.json", json.dumps(index, sort_keys=True).encode())
        add("blobs", b"", 0o755, tarfile.DIRTYPE)
        add("blobs/sha256", b"", 0o755, tarfile.DIRTYPE)
        for digest in sorted(blobs):
            add("blobs/sha256/" + digest, blobs[digest])
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
