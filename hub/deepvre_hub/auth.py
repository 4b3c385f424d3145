"""Authentication: NativeAuthenticator (sign-up, admin approval) or OpenID Connect.

Local mode has no shared or default password: the admin account is created at first start
with a generated password (printed once, stored only as a bcrypt hash in NativeAuthenticator's
own table, see :func:`create_admin`); everyone else signs up and waits for the admin's approval.
"""

import logging
import secrets


def configure(c, settings):
    """Set the authenticator on the traitlets config ``c`` from the ``auth`` section."""
    auth = settings["auth"]
    admin = settings["hub"]["admin"]
    if auth["type"] == "oidc":
        from . import oidc  # oauthenticator only where OIDC is used

        oidc.configure(c, settings)
        return
    c.JupyterHub.authenticator_class = "nativeauthenticator.NativeAuthenticator"
    c.Authenticator.admin_users = {admin}
    # NativeAuthenticator's own is_authorized flag decides who gets in; without allow_all
    # JupyterHub 5 would refuse even the approved users (and the admin).
    c.Authenticator.allow_all = True
    c.NativeAuthenticator.enable_signup = True
    c.NativeAuthenticator.open_signup = False
    c.NativeAuthenticator.check_common_password = True
    c.NativeAuthenticator.minimum_password_length = auth["minimum_password_length"]
    c.NativeAuthenticator.allowed_failed_logins = 10
    c.NativeAuthenticator.seconds_before_next_try = 60
    if settings["mode"] == "local":
        # Hub names become OS account names: refuse others at sign-up already.
        c.Authenticator.username_pattern = r"^[a-z_][a-z0-9_-]{0,31}$"


def personal_login_hook(person=None, previous=None):
    """A ``post_auth_hook`` for personal mode: only an admin or ``person`` (``hub.personal_user``)
    gets in; anyone else is refused with a sentence saying why (``accounts.personal_refusal``).

    Admin status is the authenticator's (``admin_users``, OIDC ``admin_groups``) or, when it does
    not say, the hub database's (an admin made in the admin panel).
    """
    from .accounts import personal_refusal
    from .spawn_form import refusal

    async def hook(authenticator, handler, authentication):
        if previous is not None:
            authentication = previous(authenticator, handler, authentication)
            if hasattr(authentication, "__await__"):
                authentication = await authentication
        if authentication is None:
            return None
        name, admin = authentication["name"], authentication.get("admin")
        if admin is None and handler is not None:
            user = handler.find_user(name)
            admin = bool(user and user.admin)
        why = personal_refusal(name, admin, person)
        if why:
            authenticator.log.warning("deepvre: login of %s refused: %s", name, why)
            raise refusal(403, why)
        return authentication

    return hook


def native_authenticator_class():
    """NativeAuthenticator whose login form shows why a login was refused.

    An authenticator refuses a login with a message by raising an ``HTTPError`` carrying
    ``jupyterhub_message`` (e.g. :func:`personal_login_hook`). JupyterHub 5 then renders the login
    form through the handler's ``_render(..., sync=True)``, which NativeAuthenticator 1.3.0's does
    not take (and its template is not in the synchronous template path): the browser got an empty
    403 page. This login handler shows the message on NativeAuthenticator's own form instead.
    """
    from nativeauthenticator import NativeAuthenticator
    from nativeauthenticator.handlers import LoginHandler
    from tornado import web

    class RefusalShowingLoginHandler(LoginHandler):
        async def post(self):
            try:
                return await super().post()
            except web.HTTPError as err:
                message = getattr(err, "jupyterhub_message", None)
                if not message:
                    raise
                self.set_status(err.status_code)
                self.finish(await self._render(login_error=message,
                                               username=self.get_argument("username", "", strip=True)))

    class DeepvreNativeAuthenticator(NativeAuthenticator):
        def get_handlers(self, app):
            return [(path, RefusalShowingLoginHandler if handler is LoginHandler else handler)
                    for path, handler in super().get_handlers(app)]

    return DeepvreNativeAuthenticator


def generate_password():
    """A random password for the first admin (about 128 bits)."""
    return secrets.token_urlsafe(16)


def create_admin(db_url, admin, minimum_password_length=10):
    """Create the admin in NativeAuthenticator's user table, if missing.

    Returns the generated password (to print once), or ``None`` when the admin already exists.
    The password is stored only as NativeAuthenticator's bcrypt hash.
    """
    from jupyterhub import orm
    from nativeauthenticator import NativeAuthenticator

    session = orm.new_session_factory(db_url)()
    quiet = logging.getLogger("deepvre.create_admin")  # hides the "shared db session" deprecation notice
    quiet.setLevel(logging.ERROR)
    try:
        authenticator = NativeAuthenticator(
            log=quiet,
            _deprecated_db_session=session,
            admin_users={admin},
            enable_signup=True,
            minimum_password_length=minimum_password_length,
        )
        if authenticator.user_exists(admin):
            return None
        password = generate_password()
        if authenticator.create_user(admin, password) is None:
            raise RuntimeError(f"NativeAuthenticator refused to create the admin {admin!r}")
        return password
    finally:
        session.close()
