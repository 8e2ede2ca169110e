"""A minimal TF Serving REST client for a `layerwise-keras` SavedModel.

Serve a run's versioned SavedModel folder with TensorFlow Serving, e.g. with
Docker (the model server reads `saved_models/digits/saved_model/<version>/`
and serves the highest version):

```bash
docker run -p 8501:8501 \
  --mount type=bind,source=$PWD/saved_models/digits/saved_model,target=/models/digits \
  -e MODEL_NAME=digits tensorflow/serving
```

then send images to its REST predict endpoint:

```bash
# print the request body for 2 test images of the run (no request sent)
python examples/tf_serving_client.py --run saved_models/digits --count 2
# POST it and print the predicted classes
python examples/tf_serving_client.py --run saved_models/digits --count 2 \
  --url http://localhost:8501/v1/models/digits:predict
```

The body is the REST API's row format:
`{"signature_name": "serving_default", "instances": [image, ...]}` with each
image a nested list `[height][width][channels]` of floats; the response is
`{"predictions": [[logit, ...], ...]}`, one row of logits per image.
Only the standard library and NumPy are needed to build and send it
(`--run` regenerates the run's test images with `layerwise_keras`;
`--images FILE.npy` reads them from a file instead).
"""

import argparse
import json
import sys
import urllib.request

import numpy as np

SIGNATURE = "serving_default"


def build_request_body(images, signature_name=SIGNATURE):
    """Builds the TF Serving REST predict request body for a batch of images.

    Args:
        images: float array-like `[batch, height, width, channels]`.
        signature_name: the SavedModel signature to call.

    Returns:
        The JSON text `{"signature_name": ..., "instances": [...]}`, one
        instance (a nested `[height][width][channels]` list) per image.

    Example:

    >>> body = build_request_body(np.zeros((1, 27, 27, 1), "float32"))
    >>> json.loads(body)["signature_name"]
    'serving_default'
    """
    images = np.asarray(images, dtype="float32")
    if images.ndim != 4:
        raise ValueError(f"images must be [batch, height, width, channels], got shape {images.shape}.")
    if not np.isfinite(images).all():
        raise ValueError("images contain NaN or Inf values (not valid JSON numbers).")
    return json.dumps({"signature_name": signature_name, "instances": images.tolist()})


def parse_response(text):
    """Reads a TF Serving REST predict response.

    Args:
        text: the response body, `{"predictions": [[logit, ...], ...]}`.

    Returns:
        `(logits, classes)`: float32 array `[batch, num_classes]` and the
        argmax class of each row.

    Example:

    >>> parse_response('{"predictions": [[0.1, 2.0]]}')[1]
    array([1])
    """
    payload = json.loads(text)
    if "predictions" not in payload:
        raise ValueError(f"no 'predictions' in the response: {text[:200]}")
    logits = np.asarray(payload["predictions"], dtype="float32")
    return logits, logits.argmax(-1)


def predict(url, images, signature_name=SIGNATURE, timeout=30):
    """POSTs images to a TF Serving REST predict URL and returns the response's logits and classes.

    Args:
        url: e.g. `http://localhost:8501/v1/models/digits:predict`.
        images: float array-like `[batch, height, width, channels]`.
        signature_name: the SavedModel signature to call.
        timeout: seconds to wait for the server.

    Returns:
        `(logits, classes)` as `parse_response` returns them.

    Example:

    >>> logits, classes = predict("http://localhost:8501/v1/models/digits:predict", images)
    """
    request = urllib.request.Request(
        url,
        data=build_request_body(images, signature_name).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return parse_response(response.read().decode("utf-8"))


def _test_images(run_dir, count):
    from layerwise_keras.runs.pipeline import load_splits

    with open(f"{run_dir}/config.json") as f:
        config = json.load(f)
    splits = load_splits(config["dataset"], seed=config.get("seed", 0))
    return splits["x_test"][:count], splits["y_test"][:count]


def main(argv=None):
    """Prints the request body, or with `--url` sends it and prints the predictions; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="a `layerwise-keras train` output folder: send its first test images")
    source.add_argument("--images", help="a .npy file of float32 images [batch, height, width, channels]")
    parser.add_argument("--count", type=int, default=2, help="number of images to send (default: 2)")
    parser.add_argument("--url", default=None,
                        help="REST predict URL, e.g. http://localhost:8501/v1/models/digits:predict; "
                             "without it the request body is only printed")
    parser.add_argument("--signature", default=SIGNATURE, help="signature name (default: serving_default)")
    args = parser.parse_args(argv)
    labels = None
    if args.run:
        images, labels = _test_images(args.run, args.count)
    else:
        images = np.load(args.images)[: args.count]
    if args.url is None:
        print(build_request_body(images, args.signature))
        return 0
    logits, classes = predict(args.url, images, args.signature)
    result = {"classes": classes.tolist(), "logits": logits.round(4).tolist()}
    if labels is not None:
        result["labels"] = np.asarray(labels).tolist()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
