"""Beats processors pybeat does not have: each name is known, so a config that uses one is
refused with a clear "not supported" error (with the key and file:line) instead of an
"unknown processor" typo hint. ``docs/processors.md`` lists them."""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from pybeat.api import PluginConfig, ProcessorContext

#: Beats processor -> what to use instead (empty: nothing yet).
UNSUPPORTED: dict[str, str] = {
    "add_cloudfoundry_metadata": "",
    "add_formatted_index": "the output's index setting",
    "add_locale": "add_fields with the zone you want",
    "add_nomad_metadata": "",
    "add_process_metadata": "",
    "add_session_metadata": "",
    "append": "add_fields, or a script expression with event.AppendTo",
    "decode_base64_field": "a script expression",
    "decode_cef": "",
    "decode_csv_fields": "dissect",
    "decode_duration": "convert",
    "decode_json_fields": "",
    "decode_xml": "",
    "decode_xml_wineventlog": "",
    "decompress_gzip_field": "",
    "extract_array": "a script expression",
    "lowercase": "a script expression",
    "move_fields": "rename",
    "rate_limit": "",
    "syslog": "dissect",
    "timestamp": "",
    "translate_ldap_attribute": "",
    "translate_sid": "",
    "uppercase": "a script expression",
    "urldecode": "a script expression",
}


def _model(name: str) -> type[PluginConfig]:
    instead = UNSUPPORTED[name]
    message = f"the Beats processor {name} is not supported by pybeat" + (f"; use {instead}" if instead else "") + \
        " (docs/processors.md)"

    class NotSupported(PluginConfig):
        @model_validator(mode="before")
        @classmethod
        def _refuse(cls, data: Any) -> Any:
            raise ValueError(message)

    NotSupported.__name__ = f"{name}_not_supported"
    return NotSupported


class NotSupportedPlugin:
    api_version = "1.0"
    #: ``pybeat plugins`` lists the name as known but not supported
    supported = False

    def __init__(self, name: str):
        self.name = name
        self.config_model = _model(name)

    def create(self, config: Any, ctx: ProcessorContext) -> Any:
        raise ValueError(f"the Beats processor {self.name} is not supported by pybeat")


add_cloudfoundry_metadata = NotSupportedPlugin("add_cloudfoundry_metadata")
add_formatted_index = NotSupportedPlugin("add_formatted_index")
add_locale = NotSupportedPlugin("add_locale")
add_nomad_metadata = NotSupportedPlugin("add_nomad_metadata")
add_process_metadata = NotSupportedPlugin("add_process_metadata")
add_session_metadata = NotSupportedPlugin("add_session_metadata")
append = NotSupportedPlugin("append")
decode_base64_field = NotSupportedPlugin("decode_base64_field")
decode_cef = NotSupportedPlugin("decode_cef")
decode_csv_fields = NotSupportedPlugin("decode_csv_fields")
decode_duration = NotSupportedPlugin("decode_duration")
decode_json_fields = NotSupportedPlugin("decode_json_fields")
decode_xml = NotSupportedPlugin("decode_xml")
decode_xml_wineventlog = NotSupportedPlugin("decode_xml_wineventlog")
decompress_gzip_field = NotSupportedPlugin("decompress_gzip_field")
extract_array = NotSupportedPlugin("extract_array")
lowercase = NotSupportedPlugin("lowercase")
move_fields = NotSupportedPlugin("move_fields")
rate_limit = NotSupportedPlugin("rate_limit")
syslog = NotSupportedPlugin("syslog")
timestamp = NotSupportedPlugin("timestamp")
translate_ldap_attribute = NotSupportedPlugin("translate_ldap_attribute")
translate_sid = NotSupportedPlugin("translate_sid")
uppercase = NotSupportedPlugin("uppercase")
urldecode = NotSupportedPlugin("urldecode")
