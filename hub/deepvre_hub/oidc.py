"""Production login: OpenID Connect through OAuthenticator's GenericOAuthenticator.

``configure(c, settings)`` turns the ``oidc:`` section of the site settings into
GenericOAuthenticator traits on the hub's config object. The pieces it uses are
pure functions, unit-tested without a provider:

- ``endpoints``: authorize/token/userinfo URLs, explicit or from OIDC discovery;
- ``map_groups``: group or entitlement claim values -> short hub group names;
- ``authenticator_traits``: settings -> {trait: value};
- ``token_environment``: auth_state -> the server's token variables;
- ``account_username``: in local and Slurm modes, where hub names are OS account names, the
  ``username_claim`` callable that maps the claim with ``accounts.account_name`` (``@`` and other
  characters escaped injectively, ``oidc.username_suffix`` removed, long names hashed).

The name comes from the ``sub`` claim unless ``oidc.username_claim`` says otherwise: a claim the
person can choose (``preferred_username``) would let them pick another person's hub user. The
accounts code refuses, besides, any existing OS account the hub did not make.

Tokens: ``enable_auth_state`` keeps the provider's tokens, encrypted with
``JUPYTERHUB_CRYPT_KEY``. If that variable is unset, a key is generated once and
kept in ``<state dir>/jupyterhub_crypt_key`` (mode 0600); losing it only means
users log in again. Before each spawn (``refresh_pre_spawn``) and at most every
``refresh_age`` seconds, OAuthenticator checks the access token at userinfo and,
when it is refused, gets a new one with the refresh token. The spawner hook then
puts the current access token into the server's environment.
"""

import os
import re
import secrets
from functools import partial

import requests

from deepvre.site import environment
from deepvre.site.settings import SettingsError, section_schemas, validated_section
from deepvre.site.settings import state_dir as hub_state_dir

from . import accounts

_DEFAULTS = section_schemas()["oidc"]["properties"]  # the settings schema holds them
DEFAULT_SCOPES = _DEFAULTS["scopes"]["default"]
# The hub user name: `sub`, the provider's stable identifier of the person (OIDC Core 1.0: never
# reassigned, unique at the issuer). Not `preferred_username`: the person chooses it (at many
# providers, and at every one that federates others), and in local and Slurm modes the hub name
# is the OS account name. EGI Check-in: `voperson_id` (hub/examples/settings-egi-checkin.yaml).
DEFAULT_USERNAME_CLAIM = _DEFAULTS["username_claim"]["default"]
# Variables the user's server gets holding their current access token.
TOKEN_ENV_NAMES = (environment.ACCESS_TOKEN, "OAUTH_ACCESS_TOKEN")
CRYPT_KEY_ENV = "JUPYTERHUB_CRYPT_KEY"
CRYPT_KEY_FILE = "jupyterhub_crypt_key"
# Modes whose hub user names are OS account names (local processes, Slurm jobs via sudo).
OS_ACCOUNT_MODES = ("local", "slurm")
# EGI Check-in (AARC-G002) entitlements: the VO group path of a member.
EGI_MEMBER_PATTERN = r"^urn:mace:egi\.eu:group:(?P<group>[^#]+?):role=member#aai\.egi\.eu$"


class OIDCSettingsError(ValueError):
    """The oidc settings cannot work; the message names the key."""


def map_groups(values, pattern=None, rename=None):
    """Short hub group names from a groups or entitlements claim.

    ``values``: the claim (a list, one string, or None). ``pattern``: a regular
    expression; values that do not match are dropped, and the name is the
    ``group`` named group if the pattern has one, else the whole match.
    ``rename``: optional {extracted name: hub group name}.

    >>> map_groups(["urn:mace:egi.eu:group:vo.x.eu:role=member#aai.egi.eu"], EGI_MEMBER_PATTERN)
    ['vo.x.eu']
    """
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    regex = re.compile(pattern) if pattern else None
    rename = rename or {}
    names = set()
    for value in values:
        if not isinstance(value, str):
            continue
        if regex is None:
            name = value
        else:
            match = regex.search(value)
            if not match:
                continue
            name = match.group("group") if "group" in regex.groupindex else match.group(0)
        if name:
            names.add(rename.get(name, name))
    return sorted(names)


def claim_value(user_info, claim):
    """The value at a dotted claim path in the userinfo response, or None."""
    value = user_info
    for part in claim.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def groups_from_auth_state(auth_state, claim="groups", pattern=None, rename=None,
                           user_key="oauth_user"):
    """GenericOAuthenticator's ``auth_state_groups_key`` callable."""
    user_info = (auth_state or {}).get(user_key) or {}
    return map_groups(claim_value(user_info, claim), pattern, rename)


def account_from_claims(user_info, claim=DEFAULT_USERNAME_CLAIM, suffix=None):
    """The hub (and OS account) name of the user in ``user_info``: the claim mapped by
    ``accounts.account_name``. A name that cannot map is refused with a 403 saying why."""
    value = claim_value(user_info, claim)
    if not value:
        raise ValueError(f"oidc.username_claim: no {claim!r} claim in the user's info (request more scopes?)")
    try:
        return accounts.account_name(value, suffix)
    except accounts.AccountError as err:
        from .spawn_form import refusal

        raise refusal(403, f"Login refused: {err}.") from None


def account_username(oidc):
    """GenericOAuthenticator's ``username_claim`` callable for modes where hub names are OS accounts."""
    return partial(account_from_claims, claim=oidc.get("username_claim", DEFAULT_USERNAME_CLAIM),
                   suffix=oidc.get("username_suffix"))


def discover(issuer, timeout=10):
    """Fetch the provider's OIDC discovery document."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=timeout)
        response.raise_for_status()
        return response.json()
    except (requests.RequestException, ValueError) as e:
        raise OIDCSettingsError(
            f"oidc.issuer: discovery at {url} failed ({e}); "
            "check the issuer, or set oidc.authorize_url, oidc.token_url and oidc.userdata_url"
        ) from e


def endpoints(oidc, discovery=None):
    """authorize_url, token_url and userdata_url: explicit settings win over discovery."""
    from_discovery = {
        "authorize_url": "authorization_endpoint",
        "token_url": "token_endpoint",
        "userdata_url": "userinfo_endpoint",
    }
    urls = {}
    for key, discovered in from_discovery.items():
        url = oidc.get(key) or (discovery or {}).get(discovered)
        if not url:
            where = "the discovery document" if discovery else "oidc.issuer (for discovery)"
            raise OIDCSettingsError(f"oidc.{key}: not set, and not found in {where}")
        urls[key] = url
    return urls


def section(oidc):
    """The ``oidc:`` section validated with its defaults (the settings loader's)."""
    try:
        return validated_section("oidc", oidc)
    except SettingsError as err:
        raise OIDCSettingsError("; ".join(err.errors)) from None


def needs_discovery(oidc):
    return not all(oidc.get(k) for k in ("authorize_url", "token_url", "userdata_url"))


def static_traits(oidc):
    """The GenericOAuthenticator traits that are plain data (no secret, no callable):
    what a Helm values file can hold. Endpoints are only the explicit ones."""
    oidc = section(oidc)
    allowed_groups, admin_groups = sorted(oidc["allowed_groups"]), sorted(oidc["admin_groups"])
    if not (allowed_groups or admin_groups or oidc["allow_all"] or oidc["admin_users"]):
        raise OIDCSettingsError(
            "oidc.allowed_groups: empty, and neither oidc.admin_groups, oidc.admin_users "
            "nor oidc.allow_all is set, so no one could log in"
        )
    traits = {
        key: oidc[key] for key in ("authorize_url", "token_url", "userdata_url") if oidc.get(key)
    }
    traits.update({
        "client_id": oidc["client_id"],
        "scope": list(oidc["scopes"]),
        "username_claim": oidc["username_claim"],
        "login_service": oidc["login_service"],
        "manage_groups": True,
        "allowed_groups": allowed_groups,
        "admin_groups": admin_groups,
        "allow_all": oidc["allow_all"],
        "admin_users": sorted(oidc["admin_users"]),
        "enable_auth_state": True,
        "refresh_pre_spawn": oidc["refresh_pre_spawn"],
        "auth_refresh_age": oidc["refresh_age"],
        "validate_server_cert": oidc["validate_server_cert"],
    })
    optional = {
        "callback_url": "oauth_callback_url",
        "authorize_params": "extra_authorize_params",
        "logout_redirect_url": "logout_redirect_url",
    }
    for key, trait in optional.items():
        if key in oidc:
            traits[trait] = oidc[key]
    return traits


def groups_key(oidc):
    """The ``auth_state_groups_key`` callable for the ``oidc.groups`` settings."""
    groups = oidc.get("groups") or {}
    pattern = groups.get("pattern")
    if pattern:
        try:
            re.compile(pattern)
        except re.error as e:
            raise OIDCSettingsError(f"oidc.groups.pattern: not a regular expression ({e})") from e
    return partial(groups_from_auth_state, claim=groups.get("claim", "groups"),
                   pattern=pattern, rename=groups.get("rename"))


def client_secret(oidc, environ=os.environ):
    """The client secret, from the environment variable named in the settings."""
    name = oidc["client_secret_env"]
    secret = environ.get(name)
    if not secret:
        raise OIDCSettingsError(
            f"oidc.client_secret_env: the environment variable {name} is not set "
            "(the client secret comes from there, never from the settings file)"
        )
    return secret


def authenticator_traits(oidc, discovery=None, environ=os.environ):
    """All GenericOAuthenticator traits for an ``oidc:`` settings section."""
    return {
        **static_traits(oidc),
        **endpoints(oidc, discovery),
        "client_secret": client_secret(oidc, environ),
        "auth_state_groups_key": groups_key(oidc),
    }


def crypt_keys(state_dir, environ=os.environ):
    """Keys for ``CryptKeeper.keys``: None when JUPYTERHUB_CRYPT_KEY is set (the hub reads
    it), else the key kept in ``state_dir``, generated (mode 0600) the first time."""
    if environ.get(CRYPT_KEY_ENV):
        return None
    path = os.path.join(state_dir, CRYPT_KEY_FILE)
    if not os.path.exists(path):
        os.makedirs(state_dir, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    with open(path) as f:
        return [f.read().strip()]


def token_environment(auth_state):
    """The server's environment variables holding the user's current access token."""
    token = (auth_state or {}).get("access_token")
    if not token:
        return {}
    return {name: token for name in TOKEN_ENV_NAMES}


def make_auth_state_hook(previous=None):
    """A ``Spawner.auth_state_hook`` that adds the token variables, after ``previous``."""

    async def auth_state_hook(spawner, auth_state):
        if previous is not None:
            result = previous(spawner, auth_state)
            if hasattr(result, "__await__"):
                await result
        spawner.environment = {**spawner.environment, **token_environment(auth_state)}

    return auth_state_hook


def configure(c, settings, state_dir=None):
    """Make the hub log in through the OIDC provider in ``settings["oidc"]``.

    ``state_dir`` holds the generated crypt key when JUPYTERHUB_CRYPT_KEY is unset;
    default: the hub's state folder (``deepvre.site.settings.state_dir``).
    """
    oidc = settings.get("oidc")
    if not oidc:
        raise OIDCSettingsError("oidc: the section is missing (auth type oidc needs it)")
    discovery = None
    if needs_discovery(oidc):
        if not oidc.get("issuer"):
            raise OIDCSettingsError(
                "oidc.issuer: set it (for discovery), or all of oidc.authorize_url, "
                "oidc.token_url and oidc.userdata_url"
            )
        discovery = discover(oidc["issuer"])

    c.JupyterHub.authenticator_class = "generic-oauth"
    for trait, value in authenticator_traits(oidc, discovery).items():
        setattr(c.GenericOAuthenticator, trait, value)
    if settings.get("mode") in OS_ACCOUNT_MODES:
        c.GenericOAuthenticator.username_claim = account_username(oidc)
        c.Authenticator.username_pattern = accounts.ACCOUNT_NAME.pattern

    keys = crypt_keys(str(state_dir or hub_state_dir(settings)))
    if keys:
        c.CryptKeeper.keys = keys  # read back as c.CryptKeeper["keys"] (Config.keys is dict.keys)

    previous = c.Spawner.auth_state_hook if "auth_state_hook" in c.Spawner else None
    c.Spawner.auth_state_hook = make_auth_state_hook(previous)
