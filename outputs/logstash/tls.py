"""TLS for the Logstash output: ``ssl.*`` to an ``SSLContext``, and TLS failures in words.

Users of Beats see "connection reset by peer" for half a dozen different TLS mistakes. Here
every handshake failure is turned into a sentence naming the cause (unknown CA, hostname
mismatch, expired certificate, server not speaking TLS, client certificate refused, no
protocol in common) and the setting that controls it.

Owns: building the context (reads the certificate files, so it runs when the output is
built, not when the config is validated), checking ``ssl.ca_sha256`` pins after the
handshake, and learning a CA by ``ssl.ca_trusted_fingerprint``. Never dials anywhere itself
(it handshakes on sockets the connection gives it).
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
import tempfile
from typing import Any

from pybeat.outputs.logstash.config import SslConfig

__all__ = ["TlsError", "TlsSettings", "build_tls", "explain_tls_error"]

_VERSIONS = {
    "TLSv1.0": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
# Beats' (Go-style) cipher suite names -> OpenSSL names; OpenSSL names pass through unchanged.
_CIPHERS = {
    "ECDHE-ECDSA-AES-128-CBC-SHA": "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-ECDSA-AES-128-CBC-SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "ECDHE-ECDSA-AES-128-GCM-SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES-256-CBC-SHA": "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-ECDSA-AES-256-GCM-SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-RC4-128-SHA": "ECDHE-ECDSA-RC4-SHA",
    "ECDHE-RSA-3DES-CBC3-SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "ECDHE-RSA-AES-128-CBC-SHA": "ECDHE-RSA-AES128-SHA",
    "ECDHE-RSA-AES-128-CBC-SHA256": "ECDHE-RSA-AES128-SHA256",
    "ECDHE-RSA-AES-128-GCM-SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES-256-CBC-SHA": "ECDHE-RSA-AES256-SHA",
    "ECDHE-RSA-AES-256-GCM-SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1205": "ECDHE-RSA-CHACHA20-POLY1305",  # Beats' spelling
    "ECDHE-RSA-CHACHA20-POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-RSA-RC4-128-SHA": "ECDHE-RSA-RC4-SHA",
    "RSA-3DES-CBC3-SHA": "DES-CBC3-SHA",
    "RSA-AES-128-CBC-SHA": "AES128-SHA",
    "RSA-AES-128-CBC-SHA256": "AES128-SHA256",
    "RSA-AES-128-GCM-SHA256": "AES128-GCM-SHA256",
    "RSA-AES-256-CBC-SHA": "AES256-SHA",
    "RSA-AES-256-GCM-SHA384": "AES256-GCM-SHA384",
    "RSA-RC4-128-SHA": "RC4-SHA",
}
# TLS 1.3 suites cannot be chosen through Python's ssl; they are accepted and left to OpenSSL.
_TLS13_CIPHERS = {"TLS-AES-128-GCM-SHA256", "TLS-AES-256-GCM-SHA384", "TLS-CHACHA20-POLY1305-SHA256"}
# Go / Beats curve names -> OpenSSL names.
_CURVES = {"P-256": "prime256v1", "P-384": "secp384r1", "P-521": "secp521r1", "X25519": "X25519"}


class TlsError(Exception):
    """A TLS setting cannot be used, or a handshake failed; the message names the cause."""


class TlsSettings:
    """A built context plus what Python's ``ssl`` does not do by itself: key pins
    (``ca_sha256``) and learning a CA from the server's chain (``ca_trusted_fingerprint``)."""

    def __init__(
        self, context: ssl.SSLContext, check_hostname: bool, pins: list[bytes], fingerprint: bytes | None = None
    ):
        self.context = context
        self.check_hostname = check_hostname
        self.pins = pins
        #: SHA-256 of a CA certificate to trust when the server presents it; cleared once learned
        self.fingerprint = fingerprint
        self._probe_context: ssl.SSLContext | None = None

    def learn_ca(self, raw: socket.socket, server_name: str | None, where: str) -> None:
        """``ssl.ca_trusted_fingerprint`` (as Beats): on a first, unverified handshake, look for a
        certificate with that SHA-256 in the chain the server presents; if found it becomes a
        trusted CA and the caller connects again with full verification. ``raw`` is consumed."""
        assert self.fingerprint is not None
        if self._probe_context is None:
            probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            probe.check_hostname = False
            probe.verify_mode = ssl.CERT_NONE
            probe.minimum_version, probe.maximum_version = self.context.minimum_version, self.context.maximum_version
            self._probe_context = probe
        with self._probe_context.wrap_socket(raw, server_hostname=server_name) as tsock:
            chain = _unverified_chain(tsock)
        for der in chain:
            if hashlib.sha256(der).digest() == self.fingerprint:
                self.context.load_verify_locations(cadata=der)
                self.fingerprint = None
                return
        raise TlsError(
            f"TLS to {where}: unknown CA: no certificate in the server's chain matches ssl.ca_trusted_fingerprint "
            f"(the chain has {len(chain)} certificate(s); the server must send its CA certificate too)"
        )

    def check_pins(self, sock: ssl.SSLSocket, where: str) -> None:
        """``ssl.ca_sha256``: the SHA-256 of the public key of a certificate in the verified
        chain (the server's or a CA's) must be one of the pins, as Beats checks it."""
        if not self.pins:
            return
        found = [_spki_sha256(der) for der in _verified_chain(sock)]
        if any(p in self.pins for p in found):
            return
        server = base64.b64encode(found[0]).decode() if found else "none"
        raise TlsError(
            f"TLS to {where}: certificate pin mismatch: no certificate in the server's chain has a public key "
            f"matching ssl.ca_sha256 (server key sha256: {server})"
        )


def _unverified_chain(sock: ssl.SSLSocket) -> list[bytes]:
    """The chain the server sent, server first. Python 3.13 has ``get_unverified_chain`` on the
    socket; 3.11 and 3.12 (which pybeat supports) have it only on the socket's ``_sslobj`` —
    the one private name left, looked up with getattr so that its absence costs only the
    chain (the server's own certificate is still checked)."""
    for obj in (sock, getattr(sock, "_sslobj", None)):
        get = getattr(obj, "get_unverified_chain", None)
        if get is not None:
            chain = get() or []
            return [_der(c) for c in chain]
    der = sock.getpeercert(binary_form=True)
    return [der] if der else []


def _der(cert: Any) -> bytes:
    """DER bytes of a certificate from a chain: Python 3.13's public chain methods give bytes;
    3.11/3.12's give certificate objects whose ``public_bytes()`` default is PEM text, turned
    into DER with the public ``ssl.PEM_cert_to_DER_cert`` (no private encoding constant)."""
    if isinstance(cert, bytes):
        return cert
    return ssl.PEM_cert_to_DER_cert(cert.public_bytes())


def _verified_chain(sock: ssl.SSLSocket) -> list[bytes]:
    """DER of the verified chain, server first. Python 3.13 has ``get_verified_chain``; 3.10-3.12
    have it on the private ``_sslobj``; else only the server's certificate is known."""
    for obj in (sock, getattr(sock, "_sslobj", None)):
        get = getattr(obj, "get_verified_chain", None)
        if get is not None:
            try:
                chain = get()
            except (ssl.SSLError, ValueError):
                break
            out = []
            for cert in chain or []:
                out.append(_der(cert))
            if out:
                return out
    der = sock.getpeercert(binary_form=True)
    return [der] if der else []


def _spki_sha256(der: bytes) -> bytes:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise TlsError("ssl.ca_sha256 needs the 'cryptography' package") from exc
    cert = x509.load_der_x509_certificate(der)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


def _pem_or_path(value: str, what: str) -> tuple[str | None, str | None]:
    """Beats accepts a file path or the PEM text itself; returns (path, pem)."""
    if value.lstrip().startswith("-----BEGIN"):
        return None, value
    if not os.path.isfile(value):
        raise TlsError(f"{what}: file {value!r} does not exist")
    return value, None


def build_tls(cfg: SslConfig) -> TlsSettings:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    versions = sorted(_VERSIONS[v] for v in cfg.supported_protocols) or [ssl.TLSVersion.TLSv1_2]
    try:
        ctx.minimum_version, ctx.maximum_version = versions[0], versions[-1]
    except (ValueError, ssl.SSLError) as exc:
        raise TlsError(f"ssl.supported_protocols {cfg.supported_protocols}: {exc}") from exc

    mode = cfg.verification_mode
    check_hostname = mode in ("full", "strict")
    ctx.check_hostname = check_hostname
    ctx.verify_mode = ssl.CERT_NONE if mode == "none" else ssl.CERT_REQUIRED

    if mode != "none":
        if cfg.certificate_authorities:
            for ca in cfg.certificate_authorities:
                path, pem = _pem_or_path(ca, "ssl.certificate_authorities")
                try:
                    ctx.load_verify_locations(cafile=path, cadata=pem)
                except (ssl.SSLError, ValueError) as exc:
                    raise TlsError(f"ssl.certificate_authorities: {ca!r} is not a PEM certificate: {exc}") from exc
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)

    if cfg.certificate and cfg.key:
        _load_client_cert(ctx, cfg)

    suites = [_CIPHERS.get(c, c) for c in cfg.cipher_suites if c not in _TLS13_CIPHERS]
    if suites:
        try:
            ctx.set_ciphers(":".join(suites))
        except ssl.SSLError as exc:
            raise TlsError(
                f"ssl.cipher_suites {cfg.cipher_suites}: none is usable (Beats names such as "
                f"ECDHE-RSA-AES-128-GCM-SHA256 or OpenSSL names are accepted)"
            ) from exc
    if cfg.curve_types:
        # OpenSSL through Python's ssl takes a single ECDH curve: the first one listed wins.
        name = _CURVES.get(cfg.curve_types[0], cfg.curve_types[0])
        try:
            ctx.set_ecdh_curve(name)
        except (ValueError, ssl.SSLError) as exc:
            raise TlsError(f"ssl.curve_types: unknown curve {cfg.curve_types[0]!r}") from exc
    if cfg.renegotiation == "never" and hasattr(ssl, "OP_NO_RENEGOTIATION"):
        ctx.options |= ssl.OP_NO_RENEGOTIATION
    fingerprint = None
    if cfg.ca_trusted_fingerprint:
        text = cfg.ca_trusted_fingerprint.replace(":", "").strip()
        try:
            fingerprint = bytes.fromhex(text)
        except ValueError:
            fingerprint = b""
        if len(fingerprint) != 32:
            raise TlsError(f"ssl.ca_trusted_fingerprint: {cfg.ca_trusted_fingerprint!r} is not a hex SHA-256 digest")

    pins: list[bytes] = []
    for pin in cfg.ca_sha256:
        try:
            raw = base64.b64decode(pin, validate=True)
        except ValueError as exc:
            raise TlsError(f"ssl.ca_sha256: {pin!r} is not base64") from exc
        if len(raw) != 32:
            raise TlsError(f"ssl.ca_sha256: {pin!r} is not a SHA-256 digest (got {len(raw)} bytes)")
        pins.append(raw)
    if pins:
        try:
            import cryptography  # noqa: F401  (parses certificates for the pin check)
        except ImportError as exc:
            raise TlsError("ssl.ca_sha256 needs the 'cryptography' package (pip install cryptography)") from exc
    return TlsSettings(ctx, check_hostname, pins, fingerprint)


def _load_client_cert(ctx: ssl.SSLContext, cfg: SslConfig) -> None:
    assert cfg.certificate and cfg.key
    password = cfg.key_passphrase
    if cfg.key_passphrase_path:
        with open(cfg.key_passphrase_path, encoding="utf-8") as fh:
            password = fh.read().strip()
    temps: list[str] = []
    try:
        paths: list[str] = []
        for value, what in ((cfg.certificate, "ssl.certificate"), (cfg.key, "ssl.key")):
            path, pem = _pem_or_path(value, what)
            if pem is not None:
                fd, path = tempfile.mkstemp(prefix="pybeat-tls-", suffix=".pem")
                with os.fdopen(fd, "w") as fh:
                    fh.write(pem)
                temps.append(path)
            assert path is not None
            paths.append(path)
        try:
            ctx.load_cert_chain(paths[0], paths[1], password=password)
        except ssl.SSLError as exc:
            raise TlsError(
                f"ssl.certificate / ssl.key: cannot load the client certificate ({exc.reason or exc}); "
                "check that the key matches the certificate and ssl.key_passphrase is right"
            ) from exc
    finally:
        for t in temps:
            os.unlink(t)


_VERIFY_CODES = {
    2: "unknown CA: the issuer of the server's certificate is not in ssl.certificate_authorities",
    9: "the server's certificate is not valid yet (check the clocks)",
    10: "the server's certificate has expired",
    18: "unknown CA: the server's certificate is self-signed and not in ssl.certificate_authorities",
    19: "unknown CA: the server's chain ends in a CA that is not in ssl.certificate_authorities",
    20: "unknown CA: the server's certificate was not issued by a CA in ssl.certificate_authorities",
    21: "unknown CA: the server's certificate was not issued by a CA in ssl.certificate_authorities",
    62: "hostname mismatch",
    64: "IP address mismatch",
}


def explain_tls_error(exc: BaseException, where: str, server_name: str) -> str:
    """One sentence for a failed TLS handshake with ``where`` (host:port)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = getattr(exc, "verify_code", 0)
        detail = getattr(exc, "verify_message", "") or str(exc)
        cause = _VERIFY_CODES.get(code, f"certificate verification failed ({detail})")
        if code in (62, 64):
            cause = (
                f"hostname mismatch: the server's certificate is not valid for {server_name!r} ({detail}); "
                "connect by a name the certificate lists, or set ssl.verification_mode: certificate"
            )
        return f"TLS to {where}: {cause}"
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or "").upper()
        text = str(exc)
        if reason in ("WRONG_VERSION_NUMBER", "UNEXPECTED_MESSAGE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST",
                      "RECORD_LAYER_FAILURE") or "wrong version number" in text:
            return (f"TLS to {where}: the server did not answer with TLS: is ssl enabled on the "
                    "Logstash beats input? (or remove output.logstash.ssl)")
        if reason in ("TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE", "TLSV13_ALERT_CERTIFICATE_REQUIRED",
                      "SSLV3_ALERT_CERTIFICATE_UNKNOWN", "TLSV1_ALERT_DECRYPT_ERROR"):
            return (f"TLS to {where}: the server refused our client certificate ({reason.lower()}): it requires "
                    "one signed by a CA it trusts; set ssl.certificate and ssl.key")
        if reason in ("SSLV3_ALERT_HANDSHAKE_FAILURE", "NO_PROTOCOLS_AVAILABLE", "UNSUPPORTED_PROTOCOL",
                      "TLSV1_ALERT_PROTOCOL_VERSION", "NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE",
                      "TLSV1_ALERT_INSUFFICIENT_SECURITY"):
            return (f"TLS to {where}: handshake refused: no TLS version or cipher suite in common "
                    f"({reason.lower()}); check ssl.supported_protocols and ssl.cipher_suites")
        if isinstance(exc, ssl.SSLEOFError) or "EOF" in text:
            return _closed_during_handshake(where)
        return f"TLS to {where}: handshake failed: {reason.lower() or text}"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, EOFError)):
        return _closed_during_handshake(where)
    if isinstance(exc, TimeoutError):
        return f"TLS to {where}: no answer to the TLS handshake before the timeout (does the server speak TLS?)"
    return f"TLS to {where}: {exc}"


def _closed_during_handshake(where: str) -> str:
    return (f"TLS to {where}: handshake refused: the server closed the connection during the TLS handshake; "
            "it may not have ssl enabled on its beats input, may require a client certificate "
            "(ssl.certificate/ssl.key), or may refuse our TLS versions")

