"""``python -m deepvre.market``: the marketplace service (:class:`deepvre.market.app.MarketplaceApp`)."""

from .app import main

if __name__ == "__main__":
    main()
