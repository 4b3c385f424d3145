"""Training throughput: the notebooks' input pipeline + ``model.fit`` against a bare ``model.fit``.

    .venv/bin/python benchmarks/training.py                 # 1200 images of 64x64, 10 epochs x 3 rounds
    .venv/bin/python benchmarks/training.py --images 400    # quicker

A real preprocessed output is made first: class folders of PNGs through the ``images`` pipeline
(Dask, the Zarr shards and manifest the notebooks read). Then, in this process, the same small
CNN trains on the train split three ways, rounds interleaved so machine load hits all alike:

- bare: ``model.fit(x, y)`` on in-memory arrays (loaded before the clock starts): the baseline;
- notebook: what the notebooks do, ``open_split`` (read the Zarr shards) then ``model.fit(x, y)``:
  the read is counted once per run, spread over the run's epochs;
- stream: ``model.fit(tf_dataset(...))``, the shards streamed every epoch, batch-level;
- cached: ``tf_dataset(..., cache=True)``, streamed in the first epoch, from memory after;
- shuffled: ``tf_dataset(..., shuffle=1024)``, streamed sample by sample through a shuffle buffer.

Samples/s come from the epochs after the first (tracing and warm-up excluded): the fastest epoch
(what the pipeline can do when the machine's other load leaves it alone) and the median one, plus
the CPU seconds this process spent per epoch (all its threads: the least sensitive to other
processes on a shared machine); overhead is ``1 - pipeline / bare`` (CPU: ``pipeline / bare - 1``).
The goal is under 5%.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_classes(root, n, side=96):
    """``n`` PNGs in 4 class folders (noise of 4 brightness levels)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        label = i % 4
        folder = os.path.join(root, f"class{label}")
        os.makedirs(folder, exist_ok=True)
        pixels = rng.integers(label * 40, label * 40 + 100, (side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, f"{i:05d}.png"))
    return root


def cnn(shape, classes):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class EpochTimes:
    """A Keras callback keeping each epoch's wall time."""

    def __new__(cls):
        import keras

        class Timer(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.times = []

            def on_epoch_begin(self, epoch, logs=None):
                self.start = time.perf_counter(), time.process_time()

            def on_epoch_end(self, epoch, logs=None):
                self.times.append((time.perf_counter() - self.start[0], time.process_time() - self.start[1]))

        return Timer()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1200)
    parser.add_argument("--size", type=int, default=64, help="side of the pipeline's patches")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)

    import deepvre.market  # noqa: F401  (the system SQLite before TensorFlow)
    from deepvre.pipelines.dataset import open_split, tf_dataset
    from deepvre.pipelines.run import preprocess

    work = tempfile.mkdtemp(prefix="training-bench-")
    try:
        start = time.perf_counter()
        source = make_classes(os.path.join(work, "classes"), args.images)
        out = os.path.join(work, "prepared")
        preprocess("images", source, out, {"size": args.size, "split": (0.8, 0.1, 0.1)}, n_workers=2, progress=False)
        print(f"prepared {args.images} images at {args.size}px in {time.perf_counter() - start:.1f} s: {out}")

        x, y = open_split(out, "train")
        n = len(x)
        print(f"train split: {n} samples {x.shape[1:]} {x.dtype}, batch {args.batch_size}, "
              f"{args.epochs} epochs x {args.rounds} rounds")
        models = {name: cnn(x.shape[1:], 4) for name in ("bare", "notebook", "stream", "cached", "shuffled")}
        per_epoch = {name: [] for name in models}
        reads = []
        for _ in range(args.rounds):
            for name, model in models.items():
                timer = EpochTimes()
                start = time.perf_counter()
                cpu_start = time.process_time()
                if name == "bare":
                    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, callbacks=[timer], verbose=0)
                elif name == "notebook":
                    xs, ys = open_split(out, "train")
                    reads.append((time.perf_counter() - start, time.process_time() - cpu_start))
                    model.fit(xs, ys, batch_size=args.batch_size, epochs=args.epochs, callbacks=[timer], verbose=0)
                else:
                    ds = tf_dataset(out, "train", batch_size=args.batch_size, cache=name == "cached",
                                    shuffle=1024 if name == "shuffled" else 0)
                    model.fit(ds, epochs=args.epochs, callbacks=[timer], verbose=0)
                per_epoch[name].extend(timer.times[1:])
        read = statistics.median(r for r, _ in reads)
        best = {name: min(w for w, _ in times) for name, times in per_epoch.items()}
        median = {name: statistics.median(w for w, _ in times) for name, times in per_epoch.items()}
        cpu = {name: statistics.median(c for _, c in times) for name, times in per_epoch.items()}
        for steady in (best, median):  # the notebook path reads once per run: spread over its epochs
            steady["notebook"] += read / args.epochs
        cpu["notebook"] += statistics.median(c for _, c in reads) / args.epochs
        print(f"\n{'input':<42} {'samples/s':>10} {'overhead':>9} {'median':>10} {'overhead':>9} "
              f"{'CPU s/epoch':>12} {'overhead':>9}")
        rows = [("bare model.fit(x, y) (baseline)", "bare"),
                (f"open_split + model.fit (read {read * 1000:.0f} ms/run)", "notebook"),
                ("model.fit(tf_dataset(...)) (streamed)", "stream"),
                ("model.fit(tf_dataset(..., cache=True))", "cached"),
                ("model.fit(tf_dataset(..., shuffle=1024))", "shuffled")]
        for label, name in rows:
            fast, typical = n / best[name], n / median[name]
            print(f"{label:<42} {fast:>10.0f} {1 - fast * best['bare'] / n:>8.1%} "
                  f"{typical:>10.0f} {1 - typical * median['bare'] / n:>8.1%} "
                  f"{cpu[name]:>12.2f} {cpu[name] / cpu['bare'] - 1:>8.1%}")
        print("\nepoch times (s): " + "; ".join(
            f"{name} {min(w for w, _ in t):.3f}-{max(w for w, _ in t):.3f}" for name, t in per_epoch.items()))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
