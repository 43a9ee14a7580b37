"""Address-space cap at cold start (SPEC §6). Limits are only ever set in subprocesses."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap

import pytest

from lambda_tasks_handler.memory import ADDRESS_SPACE_FRACTION, MEMORY_SIZE_VARIABLE

MIB = 1024 * 1024


def run_capped(body: str, memory: str | None, preamble: str = "") -> dict[str, object]:
    """Run ``cap_address_space()`` then ``body`` in a fresh interpreter; return its JSON output.

    ``body`` fills the dict ``out``; ``preamble`` runs before the cap.
    """
    env = {k: v for k, v in os.environ.items() if k != MEMORY_SIZE_VARIABLE}
    if memory is not None:
        env[MEMORY_SIZE_VARIABLE] = memory
    script = "\n".join(
        [
            "import json, resource",
            textwrap.dedent(preamble),
            "from lambda_tasks_handler.memory import cap_address_space",
            "out = {'limit': cap_address_space()}",
            textwrap.dedent(body),
            "print(json.dumps(out))",
        ]
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    output: dict[str, object] = json.loads(result.stdout)
    return output


def test_runaway_allocation_raises_memory_error_and_small_ones_still_work() -> None:
    out = run_capped(
        """
        try:
            bytearray(1 << 30)
        except MemoryError:
            out["big"] = "MemoryError"
        out["small"] = len(bytearray(50 * 1024 * 1024)) + len([object() for _ in range(10**5)])
        out["rlimit"] = resource.getrlimit(resource.RLIMIT_AS)
        """,
        memory="512",
    )

    assert out["limit"] == int(512 * MIB * ADDRESS_SPACE_FRACTION)
    assert out["big"] == "MemoryError"
    assert out["small"] == 50 * MIB + 10**5
    assert out["rlimit"] == [out["limit"], -1]  # only the soft limit is set


def test_no_memory_size_no_cap() -> None:
    out = run_capped("out['rlimit'] = resource.getrlimit(resource.RLIMIT_AS)", memory=None)

    assert out == {"limit": None, "rlimit": [-1, -1]}


def test_cap_never_exceeds_the_hard_limit() -> None:
    hard = 300 * MIB
    out = run_capped(
        "out['rlimit'] = resource.getrlimit(resource.RLIMIT_AS)",
        memory="1024",
        preamble=f"resource.setrlimit(resource.RLIMIT_AS, ({hard}, {hard}))",
    )

    assert out == {"limit": hard, "rlimit": [hard, hard]}


def test_cap_never_raises_a_lower_soft_limit() -> None:
    soft = 200 * MIB
    out = run_capped(
        "out['rlimit'] = resource.getrlimit(resource.RLIMIT_AS)",
        memory="1024",
        preamble=f"resource.setrlimit(resource.RLIMIT_AS, ({soft}, -1))",
    )

    assert out == {"limit": soft, "rlimit": [soft, -1]}


def test_cap_below_what_the_process_already_reserves_is_skipped() -> None:
    # 1 MiB of memory: far below what any interpreter reserves.
    out = run_capped(
        "out['rlimit'] = resource.getrlimit(resource.RLIMIT_AS)",
        memory="1",
        preamble="import logging; logging.basicConfig()",
    )

    assert out == {"limit": None, "rlimit": [-1, -1]}


@pytest.mark.parametrize("value", ["", "0", "-512", "512MB", "1.5", " 512", "５１２", "5_12"])
def test_malformed_memory_size_is_an_error_naming_the_variable(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_tasks_handler.memory import cap_address_space

    def refuse(*args: object) -> None:
        pytest.fail("setrlimit must not be reached (and never in the test process)")

    monkeypatch.setattr(resource, "setrlimit", refuse)

    with pytest.raises(ValueError, match=MEMORY_SIZE_VARIABLE):
        cap_address_space({MEMORY_SIZE_VARIABLE: value})
