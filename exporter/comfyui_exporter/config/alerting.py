"""The ``--alertmanager.*`` and ``--web.external-url`` flags: where event alerts go, and the link in them.

Kept out of ``args.py`` so the event path's options live in one place; they mirror Prometheus's
``alertmanagers`` block (basic auth, bearer token, CA, client certificate), and every secret is
read from a file, never taken from argv.
"""

from __future__ import annotations

import argparse

from .settings import (
    AlertmanagerConfig,
    ConfigError,
    TLSOptions,
    parse_alert_label,
    parse_alertmanager_url,
    parse_duration,
    read_secret_file,
)


def add_alertmanager_flags(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    a(
        "--alertmanager.url",
        dest="alertmanager_url",
        action="append",
        default=[],
        metavar="URL",
        help="Alertmanager to push failure events to (POST /api/v2/alerts); repeatable: a cluster gets "
        "every alert on every peer. Off when none is given.",
    )
    a(
        "--alertmanager.label",
        dest="alertmanager_label",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="label added to every event alert, as Prometheus's external_labels (e.g. chat=dingtalk "
        "to route them to the relay's robots); repeatable",
    )
    a(
        "--alertmanager.event-ttl",
        dest="alertmanager_event_ttl",
        default="5m",
        help="endsAt = the failure's time + this; Alertmanager resolves event alerts itself "
        "(default %(default)s)",
    )
    a(
        "--alertmanager.cooldown",
        dest="alertmanager_cooldown",
        default="5m",
        help="per comfyui + error_type: the first failure notifies at once, later ones within this are "
        "folded into one more message; keep it equal to the event route's group_interval "
        "(default %(default)s)",
    )
    a(
        "--alertmanager.timeout",
        dest="alertmanager_timeout",
        default="10s",
        help="timeout of one POST to Alertmanager (default %(default)s)",
    )
    a("--alertmanager.basic-auth-username", dest="alertmanager_basic_auth_username", help="basic auth user")
    a(
        "--alertmanager.basic-auth-password-file",
        dest="alertmanager_basic_auth_password_file",
        help="file with the basic auth password",
    )
    a(
        "--alertmanager.bearer-token-file",
        dest="alertmanager_bearer_token_file",
        help="file with a bearer token for Alertmanager",
    )
    a("--alertmanager.ca-file", dest="alertmanager_ca_file", help="CA bundle for an https Alertmanager")
    a("--alertmanager.cert-file", dest="alertmanager_cert_file", help="client certificate (PEM) for mTLS")
    a("--alertmanager.key-file", dest="alertmanager_key_file", help="client key (PEM) for mTLS")
    a(
        "--alertmanager.insecure-skip-verify",
        dest="alertmanager_insecure_skip_verify",
        action="store_true",
        help="do not verify Alertmanager's certificate",
    )
    a(
        "--web.external-url",
        dest="web_external_url",
        metavar="URL",
        help="URL people reach this exporter at, for the /failures link in event alerts "
        "(default http://<this host's name>:<listen port>)",
    )


def alertmanager_config(args: argparse.Namespace) -> AlertmanagerConfig:
    urls = tuple(dict.fromkeys(parse_alertmanager_url(u) for u in args.alertmanager_url))
    if args.alertmanager_key_file and not args.alertmanager_cert_file:
        raise ConfigError("--alertmanager.key-file: needs --alertmanager.cert-file")
    password = bearer = None
    if args.alertmanager_basic_auth_password_file:
        if not args.alertmanager_basic_auth_username:
            raise ConfigError(
                "--alertmanager.basic-auth-password-file: needs --alertmanager.basic-auth-username"
            )
        password = read_secret_file(
            args.alertmanager_basic_auth_password_file, "--alertmanager.basic-auth-password-file"
        )
    if args.alertmanager_bearer_token_file:
        if args.alertmanager_basic_auth_username:
            raise ConfigError("--alertmanager.bearer-token-file: use either basic auth or a bearer token")
        bearer = read_secret_file(args.alertmanager_bearer_token_file, "--alertmanager.bearer-token-file")
    for flag, path in (
        ("--alertmanager.ca-file", args.alertmanager_ca_file),
        ("--alertmanager.cert-file", args.alertmanager_cert_file),
        ("--alertmanager.key-file", args.alertmanager_key_file),
    ):
        if path:
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise ConfigError(f"{flag}: cannot read {path}: {exc.strerror}") from None
    labels = dict(parse_alert_label(spec) for spec in args.alertmanager_label)
    return AlertmanagerConfig(
        urls=urls,
        labels=tuple(labels.items()),
        event_ttl=parse_duration(args.alertmanager_event_ttl, "--alertmanager.event-ttl"),
        cooldown=parse_duration(args.alertmanager_cooldown, "--alertmanager.cooldown"),
        timeout=parse_duration(args.alertmanager_timeout, "--alertmanager.timeout"),
        basic_auth_username=args.alertmanager_basic_auth_username,
        basic_auth_password=password,
        bearer_token=bearer,
        tls=TLSOptions(
            args.alertmanager_ca_file,
            args.alertmanager_cert_file,
            args.alertmanager_key_file,
            args.alertmanager_insecure_skip_verify,
        ),
    )


def external_url(value: str | None) -> str | None:
    """``--web.external-url`` checked; None lets ``ExporterConfig.public_url`` derive it."""
    return parse_alertmanager_url(value, "--web.external-url") if value else None
