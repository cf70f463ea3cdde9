"""``audit:`` in settings.yaml: signing keys, automatic checkpoints and witnesses."""

from __future__ import annotations

from pathlib import Path

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

__all__ = ["AuditSettings", "HttpWitness", "SshWitness", "WitnessSpec"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SshWitness(_Strict):
    host: str = Field(description="inventory host alias (host key verified by known_hosts)")
    path: str = Field(description="directory on that host")


class HttpWitness(_Strict):
    url: AnyHttpUrl = Field(description="base URL: PUT/GET <url>/<file>")
    headers: dict[str, str] = Field(default_factory=dict, description="e.g. Authorization")
    timeout_seconds: float = Field(10, gt=0)


class WitnessSpec(_Strict):
    """One place checkpoints are shipped to that the database's writers cannot rewrite."""

    name: str | None = None
    dir: Path | None = Field(None, description="a directory (local, or a mount)")
    ssh: SshWitness | None = None
    http: HttpWitness | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> WitnessSpec:
        given = [k for k in ("dir", "ssh", "http") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a witness needs exactly one of dir, ssh or http")
        return self


class AuditSettings(_Strict):
    signing_key_file: Path | None = Field(
        None, description="Ed25519 private key (PEM) that signs checkpoints; keep it apart"
    )
    public_key_file: Path | None = Field(
        None, description="its public key: all a verifier needs; makes signatures mandatory"
    )
    previous_key_files: list[Path] = Field(
        default_factory=list, description="older HMAC keys (rotation, verifying old events)"
    )
    checkpoint_every_events: int | None = Field(
        None, ge=1, description="write a checkpoint after every N events (needs the signing key)"
    )
    checkpoint_interval_seconds: float | None = Field(
        None, gt=0, description="the scheduler writes a checkpoint this often"
    )
    witnesses: list[WitnessSpec] = Field(default_factory=list)
