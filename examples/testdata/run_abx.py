"""Test runner for examples/abx: imports an ABX action file and calls handler(context, inputs) as
the ABX runtime does, then prints the returned value as JSON on stdout (what the action prints,
its log, goes to stderr).

Usage: python3 run_abx.py <action.py> '<inputs as JSON>'
Exit status 1 with the exception on stderr when the action raises.
"""
import contextlib
import importlib.util
import json
import sys


class Context:
    """Stands in for the ABX context: getSecret decrypts a secret input (here: "secret:" prefix)."""

    def getSecret(self, value):
        if not value.startswith("secret:"):
            raise ValueError("not a secret input")
        return value[len("secret:"):]


def main():
    spec = importlib.util.spec_from_file_location("action", sys.argv[1])
    action = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(action)
    inputs = json.loads(sys.argv[2])
    try:
        # The action's log lines go to stderr, keeping stdout for the returned value.
        with contextlib.redirect_stdout(sys.stderr):
            out = action.handler(Context(), inputs)
    except Exception as e:  # the test reads the message
        print("%s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
    print(json.dumps(out))


main()
