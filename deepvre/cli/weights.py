"""``deepvre weights``: pretrained base models that install offline."""

import click

from . import main


@main.group()
def weights():
    """Pretrained base models (converted once, cached)."""


@weights.command()
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Folder for model.keras, preprocessing.json and SHA256SUMS "
                   "(default ~/.cache/deepvre/models/mobilenet_v2_imagenet).")
@click.option("--force", is_flag=True, help="Convert again even if a verified conversion exists.")
@click.option("--publish", is_flag=True,
              help="Publish it as mobilenet-v2-imagenet 1.0.0 (public) to the marketplace: the hub's inside "
                   "a hub (where only the hub's system account may publish it: the hub seeds it), else the "
                   "local catalog (owner deepvre).")
def convert(out_dir, force, publish):
    """Convert torchvision's offline ImageNet MobileNetV2 weights to Keras.

    Prints the output folder. Example: deepvre weights convert --out ./mobilenet
    """
    market = None
    if publish:  # before TensorFlow, whose bundled SQLite lacks the FTS5 the catalog needs
        from ..errors import DeepvreError
        from ..market.client import connect

        try:  # the one client: the hub's marketplace inside a hub, never a private catalog there
            market = connect()
        except DeepvreError as err:
            raise click.ClickException(str(err)) from None
    from ..science import mobilenet

    try:
        folder = mobilenet.convert(out_dir, force=force)
    except (FileNotFoundError, FileExistsError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(folder)
    if publish:
        from ..science import base_models

        try:
            entry = base_models.publish_mobilenet(folder, market)
        except DeepvreError as err:  # e.g. a reserved name: only the hub's system account publishes it
            raise click.ClickException(str(err)) from None
        where = getattr(market, "url", None) or "the local catalog"
        click.echo(f"{entry['name']} {entry['version']} (owner {entry['owner']}) is in {where}")
