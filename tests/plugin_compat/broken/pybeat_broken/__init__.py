"""Broken plugins: ``hollow`` has a name and nothing else."""


class Hollow:
    name = "hollow"
    api_version = "1.0"


hollow = Hollow()
