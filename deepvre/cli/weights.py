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
              help="Publish it to the marketplace catalog as mobilenet-v2-imagenet 1.0.0 (public, owner deepvre).")
def convert(out_dir, force, publish):
    """Convert torchvision's offline ImageNet MobileNetV2 weights to Keras.

    Prints the output folder. Example: deepvre weights convert --out ./mobilenet
    """
    if publish:  # before TensorFlow, whose bundled SQLite lacks the FTS5 the catalog needs
        from ..market.catalog import Catalog
    from ..science import mobilenet

    try:
        folder = mobilenet.convert(out_dir, force=force)
    except (FileNotFoundError, FileExistsError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(folder)
    if publish:
        from ..science import base_models

        entry = base_models.publish_mobilenet(folder, Catalog())
        click.echo(f"published {base_models.MOBILENET_NAME} {entry.get('version', '')}".rstrip())
