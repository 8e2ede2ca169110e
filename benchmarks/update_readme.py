"""Copies benchmark result tables into README.md.

The README holds marked blocks such as

    <!-- results:hierarchical -->
    ...
    <!-- /results:hierarchical -->

and this script replaces each block's body with the matching
`benchmarks/results/<name>.md` file, so every figure in the README comes from
a committed result file.

Usage:
    python benchmarks/update_readme.py [--check]
"""

import argparse
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, os.pardir, "README.md")
BLOCK = re.compile(r"(<!-- results:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


def render(text):
    def replace(match):
        path = os.path.join(HERE, "results", match.group("name") + ".md")
        if not os.path.exists(path):
            raise FileNotFoundError(f"README block '{match.group('name')}' has no result file {path}")
        with open(path) as f:
            body = f.read()
        # Demote the result file's title so it nests under the README's section.
        body = re.sub(r"^# ", "#### ", body, count=1)
        return match.group(1) + body + match.group(4)

    return BLOCK.sub(replace, text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    args = parser.parse_args(argv)
    with open(README) as f:
        text = f.read()
    new = render(text)
    if args.check:
        if new != text:
            print("README.md is out of date: run python benchmarks/update_readme.py", file=sys.stderr)
            return 1
        return 0
    with open(README, "w") as f:
        f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
