"""Built-in protocol analyzers, installed as ``pybeat.protocols``: one package per protocol,
each registered through the ``pybeat.protocols`` entry-point group like a third-party plugin."""
