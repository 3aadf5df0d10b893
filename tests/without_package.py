"""The opening of a child process that must run as a user without this project installed.

The packages are installed in editable mode, so an empty PYTHONPATH and another cwd are not enough: a meta-path finder
refuses `modeling_ponet` and `ponet_training`, and the child checks that neither imports (printing `HIDDEN <name>`).
"""

HIDE_THIS_PROJECT = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("modeling_ponet", "ponet_training"):
            raise ImportError(f"{name} is hidden from this process")
sys.meta_path.insert(0, Refuse())
for hidden in ("ponet_training", "modeling_ponet"):
    try:
        __import__(hidden)
        raise SystemExit(hidden + " must not be importable here")
    except ImportError:
        print("HIDDEN", hidden)
"""
