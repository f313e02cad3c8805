"""A flowhost element in Python: greets the person and, when the operator sets `base_url`,
asks that service how many visits the person has had.

Build: `./build.sh` (or `./dev other-langs` from the repository root) writes
`target/other-langs/py_greeter.wasm`; copy it into `plugins/` to use it in flows.
"""

import json
from urllib.parse import quote

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import config, http, log, variables
from wit_world.imports.types import (
    ConfigField,
    ElementError_Failed,
    ElementError_InvalidConfig,
    ExitDecl,
    FieldKind,
    Invocation,
    Manifest,
    Outcome,
    Value_Number,
    Value_Text,
)


def text(value):
    return value.value if isinstance(value, Value_Text) else None


class Element(exports.Element):
    def describe(self) -> Manifest:
        return Manifest(
            id="py-greeter",
            version="0.1.0",
            name="Greeter (Python)",
            description="Greets the person by first name; counts visits when base_url is set",
            config=[
                ConfigField(
                    name="greeting",
                    label="Greeting",
                    description="",
                    kind=FieldKind.TEXT,
                    required=False,
                    default_value=json.dumps("Hello"),
                    secret=False,
                )
            ],
            exits=[ExitDecl(id="greeted", label="Greeted"), ExitDecl(id="error", label="Error")],
            hosts=["setting:base_url"],
        )

    def execute(self, invocation: Invocation) -> Outcome:
        settings = dict(invocation.config)
        greeting = text(settings.get("greeting")) or "Hello"
        if not greeting.strip():
            raise Err(ElementError_InvalidConfig("greeting is empty; write a greeting or leave it out"))
        attributes = dict(invocation.person.attributes)
        name = text(attributes.get("firstName")) or invocation.person.id
        variables.set("greeting", Value_Text(f"{greeting}, {name}!"))
        log.write(log.Level.INFO, f"greeted {name}")

        base = config.setting("base_url")
        if base is not None:
            response = http.send(
                http.Request(
                    method="GET",
                    url=f"{base}/visits/{quote(invocation.person.id)}",
                    headers=[("accept", "text/plain")],
                    body=None,
                    timeout_ms=1000,
                )
            )
            if response.status != 200:
                raise Err(ElementError_Failed(f"visits service answered {response.status}"))
            variables.set("visits", Value_Number(float(response.body.decode())))
        return Outcome(exit="greeted", data=json.dumps({"language": "python"}))
