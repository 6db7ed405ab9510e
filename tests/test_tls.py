"""TLS served by the server itself, with a self-signed certificate made by the test."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import subprocess_env
from taskservice.api.probe import free_port
from taskservice.config import Settings

pytestmark = pytest.mark.e2e  # starts processes (tests/conftest.py: tiers)


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_the_server_speaks_https_with_tls_cert_file(settings: Settings, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    env = subprocess_env(settings, WORKER_COUNT="0", TLS_CERT_FILE=str(cert), TLS_KEY_FILE=str(key))
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "taskservice.cli", "server", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=log,
    )
    url = f"https://127.0.0.1:{port}"
    try:
        with httpx.Client(verify=str(cert), timeout=5) as client:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, (tmp_path / "server.log").read_text()
                try:
                    if client.get(f"{url}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the TLS server did not become ready"
                    time.sleep(0.1)
            response = client.post(f"{url}/cloud.v1.TaskManagementService/GetStatus", json={})
            assert response.status_code == 200
            assert response.headers["strict-transport-security"].startswith("max-age=")
        with httpx.Client(timeout=5) as plain:
            try:
                plain.get(f"http://127.0.0.1:{port}/readyz")
            except httpx.TransportError:
                pass  # plain HTTP on the TLS port: no answer that could be mistaken for one
            else:
                raise AssertionError("plain HTTP was answered on the TLS port")
    finally:
        process.terminate()
        process.wait(30)
        log.close()
