"""Cap the address space below the Lambda's memory size (SPEC §6).

When a task allocates past the function's memory, Lambda kills the whole
execution environment: the invocation fails with its entire batch, and the
task's record stays RUNNING. With RLIMIT_AS set somewhat below the memory
size, the allocation fails inside Python instead: the task raises
``MemoryError``, is recorded FAILED, and the other records of the batch run.

Trade-off: RLIMIT_AS counts *virtual* address space, not resident memory, and
a Python process reserves far more of the first than it touches. Each thread
reserves its stack (8 MiB by default) and, the first time it calls malloc, a
glibc arena of 64 MiB; shared libraries and mmapped files count in full.
A plain interpreter with Django and boto3 imported reserves about 50 MiB, but
four more threads add about 300 MiB while adding almost nothing resident. A
thread-heavy task can therefore hit ``MemoryError`` (or "can't start new
thread") well before the function's memory is really used: set
``MALLOC_ARENA_MAX=2`` in the function's environment (it must be set before
the process starts), use fewer threads or smaller stacks
(``threading.stack_size``), or give the function more memory.
"""

from __future__ import annotations

import logging
import os
import resource
from collections.abc import Mapping

__all__ = ["ADDRESS_SPACE_FRACTION", "MEMORY_SIZE_VARIABLE", "cap_address_space"]

logger = logging.getLogger(__name__)

MEMORY_SIZE_VARIABLE = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"

# Share of the function's memory the address space may reach. The remaining
# 10 % leaves room for what a MemoryError handler and the result recording
# still allocate, and for the resident memory that the runtime and Lambda
# extensions use outside this address space.
ADDRESS_SPACE_FRACTION = 0.9

_BYTES_PER_MIB = 1024 * 1024


def cap_address_space(environ: Mapping[str, str] | None = None) -> int | None:
    """Lower the soft RLIMIT_AS to ``ADDRESS_SPACE_FRACTION`` of the memory size.

    Reads ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE`` (MiB) from ``environ`` (default
    ``os.environ``). Returns the soft limit in effect afterwards, in bytes, or
    ``None`` when the variable is not set or the cap was not applied. The
    limit is only ever lowered: never raised above an existing soft limit,
    nor above the hard limit. When the process already reserves more than the
    cap (see the module docstring), the cap would make every later allocation
    fail, so it is skipped with a warning. Raises ``ValueError`` naming the
    variable when its value is not a positive integer.
    """
    env = os.environ if environ is None else environ
    raw = env.get(MEMORY_SIZE_VARIABLE)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or int(raw) == 0:
        raise ValueError(f"{MEMORY_SIZE_VARIABLE} is not a positive whole number of MiB")
    memory_mib = int(raw)

    cap = int(memory_mib * _BYTES_PER_MIB * ADDRESS_SPACE_FRACTION)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    for limit in (soft, hard):
        if limit != resource.RLIM_INFINITY:
            cap = min(cap, limit)
    if cap == soft:
        return soft

    reserved = _reserved_bytes()
    if reserved is not None and reserved >= cap:
        logger.warning(
            "Not capping the address space at %d MiB: the process already reserves %d MiB",
            cap // _BYTES_PER_MIB,
            reserved // _BYTES_PER_MIB,
        )
        return None
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    logger.info(
        "Capped the address space (RLIMIT_AS) at %d MiB, %d%% of %s=%d",
        cap // _BYTES_PER_MIB,
        round(ADDRESS_SPACE_FRACTION * 100),
        MEMORY_SIZE_VARIABLE,
        memory_mib,
    )
    return cap


def _reserved_bytes() -> int | None:
    """The process's current virtual size, or None where /proc is absent."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")
