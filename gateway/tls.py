"""TLS on the gateway's own port (``--tls-cert``, ``--tls-key``).

The bus between nodes is CurveZMQ; the browser's link to the gateway carries tokens, code and
output too. Where no proxy or load balancer in front of the gateway ends TLS for it, the
gateway serves HTTPS and WSS itself: tornado's server with a standard-library
:class:`ssl.SSLContext` (TLS 1.2 at least, the certificate chain and key files of the
operator's own CA or ACME client), nothing hand-made. The sign-in cookie is then ``Secure``
(gateway/signin.py follows the request's protocol)."""

from __future__ import annotations

import ssl

from protocol.errors import ConfigError


def server_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """The TLS context of ``cert`` (a PEM chain) and ``key`` (its PEM private key), or None
    when neither is given; a :class:`ConfigError` saying what is wrong otherwise."""
    if not cert and not key:
        return None
    if not cert or not key:
        raise ConfigError("give --tls-cert and --tls-key together: the certificate (chain) "
                          "and its private key, both PEM files")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as e:  # not PEM, or not this certificate's key
        raise ConfigError(f"cannot serve TLS with --tls-cert {cert} and --tls-key {key}: "
                          "they are not a PEM certificate (chain) and its own private key "
                          f"(OpenSSL: {e.reason or e})") from None
    except OSError as e:
        raise ConfigError(f"cannot serve TLS with --tls-cert {cert} and --tls-key {key}: "
                          f"{e.strerror or e}") from None
    return context
