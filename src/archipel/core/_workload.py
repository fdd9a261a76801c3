"""Workload specs: what the user wants run, validated at the edge.

A spec is parsed from a mapping (the YAML document already loaded); every
problem is reported with the field's path and what to write instead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    Field,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.json_schema import WithJsonSchema

from archipel.core._accelerators import AcceleratorRequest, parse_accelerator_spec
from archipel.core._edge import StrictModel, validate
from archipel.core._errors import InputError, SpecError
from archipel.core._facts import COUNTRY_GROUPS
from archipel.core._money import Amount, PositiveAmount
from archipel.core._text import PlainText


class WorkloadKind(StrEnum):
    """What sort of work a workload is."""

    TRAINING = "training"
    BATCH = "batch"
    INFERENCE = "inference"


def _either_form(schema: dict[str, Any]) -> None:
    """The accelerators' schema: ``MODEL:COUNT`` or a list of alternatives, each either form."""
    form = {"type": "string", "pattern": r"^[^:]+(:[0-9]*\.?[0-9]+)?$", "maxLength": 100}
    items = schema.pop("items")
    schema.pop("type")
    schema["anyOf"] = [form, {"type": "array", "minItems": 1, "items": {"anyOf": [form, items]}}]


class Resources(StrictModel):
    """Hardware per node, alternatives in order of preference."""

    # never empty: the validator below refuses an empty list, naming the field once
    accelerators: Annotated[tuple[AcceleratorRequest, ...], Field(json_schema_extra=_either_form)]
    spot: bool = False
    nodes: Annotated[int, Field(ge=1, le=10_000)] = 1

    @field_validator("accelerators", mode="before")
    @classmethod
    def _parse_accelerators(cls, value: Any) -> list[Any]:
        """Each alternative as a mapping, so that its model and count are validated (and
        named: ``resources.accelerators.0.count``) whichever way it was written."""
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not items:
            raise ValueError("write MODEL:COUNT, e.g. 'H100:8', or a list of alternatives")
        parsed: list[Any] = []
        for item in items:
            if isinstance(item, str):
                try:
                    item = parse_accelerator_spec(item)
                except InputError as exc:
                    raise ValueError(str(exc)) from None
            if isinstance(item, AcceleratorRequest):
                item = {"model": item.model, "count": item.count}
            if not isinstance(item, Mapping):
                raise ValueError(
                    f"{item!r:.60} is neither MODEL:COUNT nor a mapping with model and count"
                )
            parsed.append(item)
        return parsed

    @field_serializer("accelerators")
    def _as_text(self, value: tuple[AcceleratorRequest, ...]) -> list[str]:
        return [str(a) for a in value]


class DataSpec(StrictModel):
    """What data the workload touches: its class selects the policy rules."""

    class_: Annotated[PlainText, Field(alias="class", min_length=1, max_length=100)] = "internal"


class Constraints(StrictModel):
    """The user's own hard constraints, on top of policy."""

    countries: tuple[str, ...] = ()
    providers: tuple[PlainText, ...] = ()
    exclude_providers: tuple[PlainText, ...] = ()
    max_price_per_hour: PositiveAmount | None = None

    @field_validator("countries", mode="before")
    @classmethod
    def _upper_countries(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if isinstance(value, list | tuple):
            out = []
            for v in value:
                code = str(v).strip().upper()
                if code not in COUNTRY_GROUPS and (len(code) != 2 or not code.isalpha()):
                    raise ValueError(
                        f"{v!r} is not an ISO 3166-1 alpha-2 country code (e.g. FR, DE), "
                        "EU (the 27 member states) or EEA (EU plus IS, LI, NO)"
                    )
                out.append(COUNTRY_GROUPS.get(code, code))
            return tuple(out)
        return value

    @field_validator("providers", "exclude_providers", mode="before")
    @classmethod
    def _split_providers(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return value


class Spread(StrictModel):
    """How the replicas of a service must spread over providers and countries."""

    min_providers: Annotated[int, Field(ge=1, le=100)] = 1
    min_countries: Annotated[int, Field(ge=1, le=100)] = 1
    max_share_per_provider: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 1.0

    def provider_cap(self, replicas: int) -> int:
        """How many of ``replicas`` one provider may hold: ``floor(share * replicas)``.

        At least one (a share too small for a whole replica still lets a
        provider hold one) and at most ``replicas``. The one definition the
        fleet planners and the control plane use.
        """
        whole = math.floor(self.max_share_per_provider * replicas + 1e-9)
        return min(replicas, max(1, whole))


#: one argument or environment value: 32,000 characters are at most 128 KiB of UTF-8,
#: the most Linux passes in one string to a process (MAX_ARG_STRLEN)
_Arg = Annotated[PlainText, Field(max_length=32_000)]


def _env_name(name: str) -> str:
    if _ENV_NAME.fullmatch(name) is None:
        raise ValueError(
            f"{name!r:.60} is not an environment variable name: use letters, digits and "
            "underscores, not starting with a digit (e.g. WANDB_MODE)"
        )
    return name


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,199}")
_EnvName = Annotated[
    str,
    AfterValidator(_env_name),
    WithJsonSchema({"type": "string", "pattern": f"^{_ENV_NAME.pattern}$"}),
]


class RunSpec(StrictModel):
    """What to execute when the control plane runs the workload.

    The command gets ``ARCHIPEL_RUN_ID``, ``ARCHIPEL_CHECKPOINT_DIR`` (the same
    folder on every attempt: save and resume from it) and
    ``ARCHIPEL_RESTART_COUNT`` (0 on the first attempt). Every argument and
    environment value is text a process can be given (no NUL character), and
    every environment name is a POSIX name.
    """

    command: Annotated[
        tuple[_Arg, ...],
        Field(
            min_length=1,
            max_length=10_000,
            json_schema_extra={"prefixItems": [{"type": "string", "pattern": r"\S"}]},
        ),
    ]
    env: Annotated[
        dict[_EnvName, _Arg],
        Field(
            default_factory=dict,
            max_length=10_000,
            json_schema_extra={"additionalProperties": False},
        ),
    ]
    max_restarts: Annotated[int, Field(ge=0, le=100)] = 3
    # the folder shipped to the site, as the spec file names it: relative to the spec
    # file's folder, which is the default; `archipel run` packs it and uploads it
    workdir: Annotated[str, Field(max_length=4096)] | None = None
    # what the control plane receives instead: the SHA-256 of the uploaded archive
    # (PUT /v1/workdirs/{sha256}), unpacked into the attempt's folder before it starts
    workdir_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None

    @field_validator("command", mode="before")
    @classmethod
    def _split_command(cls, value: Any) -> Any:
        if isinstance(value, str):
            import shlex

            return tuple(shlex.split(value))
        return value

    @field_validator("command")
    @classmethod
    def _program_named(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value[0].strip():
            raise ValueError("the first item is the program to run; it cannot be blank")
        return value


#: a URL path: starts with "/", no spaces, no query or fragment
_URL_PATH = r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$"


class ServePrice(StrictModel):
    """What the service charges per million tokens (exact decimals, see :data:`Amount`)."""

    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    input_per_million: Amount = Decimal(0)
    output_per_million: Amount = Decimal(0)


class ServeSpec(StrictModel):
    """How an inference service is reached once it runs: what the gateway routes to it.

    The command must listen on ``port`` (it gets it as ``ARCHIPEL_PORT`` and
    ``PORT``); without one, the control plane picks a free port per attempt.
    ``path`` is where the OpenAI-compatible API lives on the server and
    ``health_path`` (under ``path``) answers 200 while the service is healthy.
    ``publish_to`` names the other tenants whose tokens see the service in the
    control plane's routes (an admin's decision; by default only its own tenant).
    """

    model: Annotated[
        str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
    ]
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    path: Annotated[str, Field(max_length=200, pattern=_URL_PATH)] = "/v1"
    health_path: Annotated[str, Field(max_length=200, pattern=_URL_PATH)] = "/models"
    max_concurrency: Annotated[int, Field(ge=1, le=1_000_000)] = 64
    weight: Annotated[float, Field(gt=0, le=1_000_000, allow_inf_nan=False)] = 1.0
    price: ServePrice = ServePrice()
    owned_by: Annotated[PlainText, Field(min_length=1, max_length=200)] | None = None
    publish_to: tuple[Annotated[str, Field(min_length=1, max_length=100)], ...] = ()


class Workload(StrictModel):
    """A training job, a batch job or an inference service.

    ``replicas`` (services) are placed independently, each on ``nodes`` nodes;
    ``spread`` constrains where they go, in fleet planning and in the control
    plane (one run per replica). ``duration_hours`` defaults to one hour for
    ``plan`` and to the whole horizon in a fleet.
    ``serve`` (inference only) says how the running service is reached.
    """

    name: Annotated[
        str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    ]
    kind: WorkloadKind
    resources: Resources
    data: DataSpec = DataSpec()
    constraints: Constraints = Constraints()
    duration_hours: Annotated[float, Field(gt=0, le=24 * 365 * 10, allow_inf_nan=False)] | None = (
        None
    )
    replicas: Annotated[int, Field(ge=1, le=10_000)] = 1
    spread: Spread | None = None
    run: RunSpec | None = None
    serve: ServeSpec | None = None

    @field_validator("serve")
    @classmethod
    def _only_inference_serves(
        cls, value: ServeSpec | None, info: ValidationInfo
    ) -> ServeSpec | None:
        kind = info.data.get("kind")  # absent when kind itself is invalid
        if value is not None and kind is not None and kind is not WorkloadKind.INFERENCE:
            raise ValueError(
                f"only an inference workload serves a model (this one is {kind}): "
                "set kind: inference or remove serve"
            )
        return value

    @model_validator(mode="after")
    def _spread_fits_replicas(self) -> Workload:
        if self.spread is not None:
            if self.spread.min_providers > self.replicas:
                raise ValueError(
                    f"spread.min_providers ({self.spread.min_providers}) exceeds replicas "
                    f"({self.replicas}): raise replicas or lower min_providers"
                )
            if self.spread.max_share_per_provider * self.replicas < 1:
                raise ValueError(
                    "spread.max_share_per_provider allows less than one replica per provider: "
                    "raise it or raise replicas"
                )
        return self


def parse_workload(document: Any, source: str = "<spec>") -> Workload:
    """Validate one workload document; raise :class:`SpecError` naming every bad field."""
    return validate(
        Workload, document, source, SpecError, "a mapping with name, kind and resources"
    )
