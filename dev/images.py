#!/usr/bin/env python3
"""Container images without Docker or a registry.

Writes one docker-archive tarball per AuroraChat binary (`docker load` and
`ctr -n k8s.io images import` both accept them), tagged aurorachat/<name>:<version>.
The root filesystem is what the Containerfile's runtime stage holds: the binary, the
shared libraries `ldd` says it links (with the dynamic loader), CA certificates, and
/etc/passwd and /etc/group entries for the non-root user 65532. Reproducible: fixed
mtimes and owners, sorted entries.

    dev/images.py --bin-dir target/release --version 0.1.0 --out ~/.cache/aurora/images
"""
import argparse
import hashlib
import io
import json
import os
import subprocess
import tarfile

BINARIES = {"gateway": "aurora-gateway", "consumer": "aurora-consumer", "operator": "aurora-operator"}
UID = 65532
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def linked_libraries(binary):
    """Absolute paths of the shared objects the binary loads, the loader included."""
    run = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if run.returncode != 0:  # a static binary ("not a dynamic executable")
        return []
    out = run.stdout
    libs = set()
    for line in out.splitlines():
        for part in line.split():
            if part.startswith("/"):
                libs.add(part)
    return sorted(libs)


def add_file(tar, path, data, mode):
    info = tarfile.TarInfo(path.lstrip("/"))
    info.size, info.mode, info.mtime, info.uid, info.gid = len(data), mode, 0, 0, 0
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar, path, mode=0o755, owner=0):
    info = tarfile.TarInfo(path.lstrip("/"))
    info.type, info.mode, info.mtime, info.uid, info.gid = tarfile.DIRTYPE, mode, 0, owner, owner
    tar.addfile(info)


def layer(binary, name):
    files = {f"/usr/local/bin/{name}": (open(binary, "rb").read(), 0o755)}
    for lib in linked_libraries(binary):
        files[lib] = (open(os.path.realpath(lib), "rb").read(), 0o755)
    if os.path.exists(CA_BUNDLE):
        files[CA_BUNDLE] = (open(CA_BUNDLE, "rb").read(), 0o644)
    files["/etc/passwd"] = (f"root:x:0:0:root:/:/sbin/nologin\naurora:x:{UID}:{UID}:aurora:/:/sbin/nologin\n".encode(), 0o644)
    files["/etc/group"] = (f"root:x:0:\naurora:x:{UID}:\n".encode(), 0o644)
    dirs = {"/tmp"}
    for path in files:
        parent = os.path.dirname(path)
        while parent not in ("/", ""):
            dirs.add(parent)
            parent = os.path.dirname(parent)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in sorted(dirs):
            add_dir(tar, d, 0o1777 if d == "/tmp" else 0o755)
        # The embedded store's directory (AURORA_DATA_DIR=/data), writable by the user.
        add_dir(tar, "/data", 0o700, UID)
        for path in sorted(files):
            data, mode = files[path]
            add_file(tar, path, data, mode)
    return buf.getvalue()


def image(component, bin_dir, version, out_dir):
    name = BINARIES[component]
    return write_image(os.path.join(bin_dir, name), name, f"aurorachat/{component}", version, out_dir, component)


def write_image(binary, name, repository, version, out_dir, component):
    layer_tar = layer(binary, name)
    diff_id = hashlib.sha256(layer_tar).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": f"{UID}:{UID}",
            "Entrypoint": [f"/usr/local/bin/{name}"],
            "Env": ["PATH=/usr/local/bin", f"SSL_CERT_FILE={CA_BUNDLE}", "AURORA_LOG_FORMAT=json"],
            "WorkingDir": "/",
            "Labels": {"org.opencontainers.image.title": repository,
                       "org.opencontainers.image.version": version},
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        "history": [{"created_by": "dev/images.py"}],
    }
    config_json = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_json).hexdigest() + ".json"
    tag = f"{repository}:{version}"
    manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": [f"{diff_id}/layer.tar"]}]
    path = os.path.join(out_dir, f"{component}-{version}.tar")
    with tarfile.open(path + ".tmp", mode="w", format=tarfile.PAX_FORMAT) as tar:
        add_dir(tar, diff_id)
        add_file(tar, f"{diff_id}/layer.tar", layer_tar, 0o644)
        add_file(tar, config_name, config_json, 0o644)
        add_file(tar, "manifest.json", json.dumps(manifest).encode(), 0o644)
    os.replace(path + ".tmp", path)
    return tag, path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin-dir", help="where the release binaries are (not with --single)")
    parser.add_argument("--version", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--single", nargs=2, metavar=("REPOSITORY", "BINARY"),
                        help="one image of any binary (the node's pause image)")
    parser.add_argument("components", nargs="*", default=list(BINARIES))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.single:
        repository, binary = args.single
        name = os.path.basename(binary)
        tag, path = write_image(binary, name, repository, args.version, args.out, name)
        print(f"{tag} {path}")
        return
    if not args.bin_dir:
        parser.error("--bin-dir is required")
    for component in args.components:
        tag, path = image(component, args.bin_dir, args.version, args.out)
        print(f"{tag} {path}")


if __name__ == "__main__":
    main()
