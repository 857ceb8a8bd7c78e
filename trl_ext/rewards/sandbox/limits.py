"""What a sandboxed run may use, and what it reports back."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed run. `cpu_seconds=None` means the wall timeout rounded up, plus one.

    `allow_weak_guard` lets code run under the weaker in-process guard (audit hook and rlimits, no namespaces) when
    the bubblewrap jail cannot be set up on this machine; off, such a run is refused (see the package docstring).
    `isolate_network` matters only under the weak guard: the jail always has its own, empty network namespace.
    """

    timeout: float = 10.0
    cpu_seconds: int | None = None
    memory_mb: int = 1024
    file_size_mb: int = 16
    max_open_files: int = 64
    isolate_network: bool = True
    allow_weak_guard: bool = False

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError(f"timeout={self.timeout} must be > 0 seconds")
        for name in ("memory_mb", "file_size_mb", "max_open_files"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.cpu_seconds is not None and self.cpu_seconds < 1:
            raise ValueError(f"cpu_seconds={self.cpu_seconds} must be >= 1 or None")


@dataclass
class SandboxResult:
    """What a sandboxed run did. `returncode` is negative when a signal ended it (-9 after a timeout)."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    duration: float
    network_isolated: bool
    files: dict[str, str] = field(default_factory=dict)  # files it wrote that were asked back, by relative path

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


@dataclass
class TestOutcome:
    """How one program did on its tests: `passed` of `total` test statements, and the first error if any."""

    __test__ = False  # not a pytest test class

    passed: int
    total: int
    error: str | None = None

    @property
    def all_passed(self) -> bool:
        return self.error is None and self.passed == self.total
