"""Real nginx and HAProxy (Debian packages) in front of a door server, ending TLS on a loopback port, with the
configuration snippets README points to (deploy/proxy/), changed only in ports and certificate paths."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from scripts.stack import REPO, free_port

SNIPPETS = REPO / "deploy" / "proxy"


@dataclass
class Proxy:
    """A running proxy: the public https URL it serves (what the provider calls and signs)."""

    name: str
    public_url: str
    process: subprocess.Popen[bytes]
    workdir: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def self_signed(workdir: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = workdir / "cert.pem", workdir / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _swap(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the snippet no longer has exactly one {old!r}"
    return text.replace(old, new)


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if found is None:
        pytest.skip(f"{name} is not installed (Debian package {name}; scripts/system-deps.sh installs it as root)")
    return found


def start_nginx(upstream_port: int) -> Proxy:
    binary, port = _binary("nginx"), free_port()
    workdir = Path(tempfile.mkdtemp(prefix="toneline-nginx-"))
    workdir.chmod(0o755)
    cert, key = self_signed(workdir)
    server = (SNIPPETS / "nginx-toneline.conf").read_text()
    server = _swap(server, "server 127.0.0.1:5005;", f"server 127.0.0.1:{upstream_port};")
    server = _swap(server, "listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;")
    server = _swap(server, "/etc/ssl/toneline/fullchain.pem", str(cert))
    server = _swap(server, "/etc/ssl/toneline/privkey.pem", str(key))
    temp = "\n".join(
        f"    {kind}_temp_path {workdir}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    config = (
        f"daemon off;\nworker_processes 1;\npid {workdir}/nginx.pid;\nerror_log {workdir}/error.log info;\n"
        f"events {{ worker_connections 256; }}\nhttp {{\n    access_log off;\n{temp}\n{server}\n}}\n"
    )
    (workdir / "nginx.conf").write_text(config)
    process = subprocess.Popen(
        [binary, "-p", str(workdir), "-c", str(workdir / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "stderr.log").open("w"),
    )
    return _listening(Proxy("nginx", f"https://127.0.0.1:{port}", process, workdir), port)


def start_haproxy(upstream_port: int) -> Proxy:
    binary, port = _binary("haproxy"), free_port()
    workdir = Path(tempfile.mkdtemp(prefix="toneline-haproxy-"))
    cert, key = self_signed(workdir)
    pem = workdir / "toneline.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    config = (SNIPPETS / "haproxy-toneline.cfg").read_text()
    config = _swap(config, "bind :443 ssl crt /etc/ssl/toneline/toneline.pem", f"bind 127.0.0.1:{port} ssl crt {pem}")
    config = _swap(config, "server rasa1 127.0.0.1:5005 check", f"server rasa1 127.0.0.1:{upstream_port} check")
    (workdir / "haproxy.cfg").write_text(config)
    process = subprocess.Popen(
        [binary, "-db", "-f", str(workdir / "haproxy.cfg")],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "stderr.log").open("w"),
    )
    return _listening(Proxy("haproxy", f"https://127.0.0.1:{port}", process, workdir), port)


def _listening(proxy: Proxy, port: int, seconds: float = 20) -> Proxy:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proxy.process.poll() is not None:
            log = (proxy.workdir / "stderr.log").read_text(errors="replace")
            proxy.stop()
            raise RuntimeError(f"{proxy.name} exited: {log[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proxy
        except OSError:
            time.sleep(0.1)
    proxy.stop()
    raise RuntimeError(f"{proxy.name} did not listen on {port} in {seconds} s")
