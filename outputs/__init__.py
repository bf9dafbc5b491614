"""Built-in outputs, installed as ``pybeat.outputs``: one package per output, each registered
through the ``pybeat.outputs`` entry-point group like a third-party plugin."""
