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
def convert(out_dir, force):
    """Convert torchvision's offline ImageNet MobileNetV2 weights to Keras.

    Prints the output folder. Example: deepvre weights convert --out ./mobilenet
    """
    from ..science import mobilenet

    try:
        folder = mobilenet.convert(out_dir, force=force)
    except (FileNotFoundError, FileExistsError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(folder)
