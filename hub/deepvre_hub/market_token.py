"""Users' servers call the marketplace with a token that can do nothing else.

A server's own token (``$JUPYTERHUB_API_TOKEN``) opens the user's server
(``access:servers!server``): sent to the marketplace, a marketplace that an upload took over
could run code as everyone who called it. So each server start gets a token of its user with
the marketplace's access scope only, in ``$DEEPVRE_MARKET_TOKEN`` (the client prefers it), and
the server's own token no longer has that scope. The token of that server's previous start is
revoked.
"""

from deepvre.site import environment

ENV = environment.MARKET_TOKEN
NOTE = "deepvre marketplace, server {server!r}"


def token_for(scopes, note_template=NOTE):
    """``Spawner.environment`` value: a callable making the server's token of ``scopes`` alone
    (the marketplace's; the MLflow service's with ``deepvre_hub.mlflow_service.NOTE``)."""

    def market_token(spawner):
        user = spawner.user
        note = note_template.format(server=spawner.name)
        for old in list(user.orm_user.api_tokens):
            if old.note == note:
                user.db.delete(old)
        user.db.commit()
        return user.new_api_token(note=note, scopes=list(scopes))

    return market_token
