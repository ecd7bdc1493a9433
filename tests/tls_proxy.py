"""A TLS-terminating TCP proxy that requires a client certificate, in front of a plaintext Temporal dev server
(`temporal server start-dev` has no TLS flags), and the throwaway CA and certificates it needs; for the mTLS test
(issue 20 item 1)."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_NAME = "temporal.test"


@dataclass(frozen=True)
class Pki:
    """PEM files: a CA, a server certificate for SERVER_NAME and 127.0.0.1, a client certificate, all by the CA;
    and a second, unrelated CA's client certificate (which the proxy must refuse)."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, issuer_key: ec.EllipticCurvePrivateKey, *,
           ca: bool = False, server: bool = False) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True)
    elif server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(SERVER_NAME), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    keys = {name: ec.generate_private_key(ec.SECP256R1())
            for name in ("ca", "server", "client", "stranger_ca", "stranger")}
    certificates = {
        "ca": _issue("test CA", keys["ca"], "test CA", keys["ca"], ca=True),
        "server": _issue(SERVER_NAME, keys["server"], "test CA", keys["ca"], server=True),
        "client": _issue("xingtu worker", keys["client"], "test CA", keys["ca"]),
        "stranger": _issue("stranger", keys["stranger"], "other CA", keys["stranger_ca"]),
    }
    for name, certificate in certificates.items():
        (directory / f"{name}.pem").write_bytes(certificate.public_bytes(pem))
    for name in ("server", "client", "stranger"):
        _write_key(directory / f"{name}-key.pem", keys[name])
    return Pki(ca_cert=directory / "ca.pem", server_cert=directory / "server.pem",
               server_key=directory / "server-key.pem", client_cert=directory / "client.pem",
               client_key=directory / "client-key.pem", stranger_cert=directory / "stranger.pem",
               stranger_key=directory / "stranger-key.pem")


@dataclass
class ProxyLog:
    """What the proxy saw: the subjects of the client certificates it accepted, and refused handshakes."""

    accepted: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def server_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.load_verify_locations(pki.ca_cert)
    context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: no client certificate of our CA, no connection
    context.set_alpn_protocols(["h2"])  # gRPC speaks HTTP/2
    return context


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@contextmanager
def mtls_proxy(pki: Pki, upstream_port: int) -> Iterator[tuple[int, ProxyLog]]:
    """Listens on 127.0.0.1 (a free port, yielded), terminates TLS with the server certificate, requires a client
    certificate signed by the CA, and forwards the plaintext to 127.0.0.1:upstream_port. Runs on its own thread
    and event loop, so that the test may block on subprocesses."""
    log = ProxyLog()
    context = server_context(pki)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    port: list[int] = []

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:  # TLS after accepting, so that a refused handshake can be recorded
            await client_writer.start_tls(context, ssl_handshake_timeout=10)
        except (OSError, TimeoutError) as error:  # ssl.SSLError is an OSError
            log.refused.append(f"{type(error).__name__}: {error}")
            client_writer.close()
            return
        peer = client_writer.get_extra_info("peercert") or {}
        subject = dict(item[0] for item in peer.get("subject", ()))
        log.accepted.append(subject.get("commonName", "?"))
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))

    async def serve() -> asyncio.Server:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        return server

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(serve())
        started.set()
        loop.run_forever()
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()

    thread = threading.Thread(target=run, name="mtls-proxy", daemon=True)
    thread.start()
    assert started.wait(10), "the proxy did not start"
    try:
        yield port[0], log
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
