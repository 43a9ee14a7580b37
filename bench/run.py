"""``python -m bench``: lambda-tasks side by side with django-lambda-tasks 0.4.0.

Sets up both virtual environments (see ``bench/envs.py``), starts moto and a
throwaway PostgreSQL, runs every measure on both sides in alternation, each
repetition in fresh processes, and prints a table of medians with the ratio.
Raw figures go to ``bench/.cache/latest.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import envs
from bench.envs import CACHE, REPO, Side, log

MEASURES = (
    "coldstart",
    "throughput-sqlite",
    "throughput-postgres",
    "local",
    "oncommit",
    "size",
    "fuzz",
)


@dataclass(frozen=True)
class Plan:
    """Counts and repetitions of one run (``--quick`` shrinks them)."""

    coldstart_runs: int = 9
    #: One more cold start per side under callgrind (when valgrind is installed):
    #: instructions executed, a count the machine's noise does not move.
    coldstart_instructions: bool = True
    messages: int = 2000
    throughput_runs: int = 5
    local_tasks: int = 500
    local_runs: int = 3
    local_first_runs: int = 5
    oncommit_calls: int = 100
    oncommit_runs: int = 7
    fuzz_inputs: int = 3000

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            coldstart_runs=1,
            coldstart_instructions=False,
            messages=20,
            throughput_runs=1,
            local_tasks=20,
            local_runs=1,
            local_first_runs=1,
            oncommit_calls=20,
            oncommit_runs=1,
            fuzz_inputs=20,
        )


@dataclass
class Row:
    """One line of the table."""

    measure: str
    ours: str
    reference: str = "–"
    ratio: str = "–"
    target: str = ""
    verdict: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- formatting


def ms(seconds: float) -> str:
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f} µs"
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def ratio_text(value: float) -> str:
    return f"{value:.2f}×"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float], fmt: Callable[[float], str]) -> str:
    if len(values) < 2:
        return ""
    return f" ({fmt(min(values))}–{fmt(max(values))})"


# --------------------------------------------------------------------------- the run


class Bench:
    def __init__(self, sides: list[Side], plan: Plan, report: Report, workdir: Path) -> None:
        self.sides = sides
        self.plan = plan
        self.report = report
        self.workdir = workdir
        self.has_reference = any(side.name == "reference" for side in sides)

    # helpers

    def side(self, name: str) -> Side | None:
        return next((side for side in self.sides if side.name == name), None)

    def sqlite_db(self, side: Side, **extra: str) -> str:
        path = self.workdir / f"{side.name}-{uuid.uuid4().hex[:8]}.sqlite3"
        url = f"sqlite:///{path}"
        env = side.env(BENCH_DATABASE=url, **extra)
        side.run("bench.probe", "migrate", "--side", side.name, env=env)
        return url

    def alternate(self, runs: int) -> Iterator[tuple[int, Side]]:
        """Repetitions in alternation (ours, reference, ours...) so drift hits both."""
        for rep in range(runs):
            for side in self.sides if rep % 2 == 0 else reversed(self.sides):
                yield rep, side

    def add(self, row: Row) -> None:
        self.report.rows.append(row)
        log(f"{row.measure}: ours {row.ours} | reference {row.reference} | {row.ratio}")

    # measures

    def coldstart(self) -> None:
        for side in self.sides:
            side.warm_bytecode()
        samples: dict[str, list[dict[str, Any]]] = {side.name: [] for side in self.sides}
        samples["floor"] = []
        first = self.sides[0]
        url = f"sqlite:///{self.workdir / 'coldstart.sqlite3'}"
        for _rep, side in self.alternate(self.plan.coldstart_runs):
            data, wall = side.run("bench.coldstart", side.name, env=side.env(BENCH_DATABASE=url))
            data["process_s"] = wall
            samples[side.name].append(data)
            if side is first:
                # The floor, in our venv (same Django and pydantic as the reference's).
                data, wall = first.run("bench.coldstart", "floor", env=self.floor_env(url))
                data["process_s"] = wall
                samples["floor"].append(data)
        self.report.raw["coldstart"] = samples

        def figure(side: str, key: str) -> list[float]:
            return [float(sample[key]) for sample in samples.get(side, [])]

        for key, label, target in (
            ("total_s", "cold start: import handler + django.setup() + empty batch", 0.6),
            ("process_s", "cold start: whole fresh process (interpreter start included)", None),
            ("import_s", "import of the handler module alone", None),
        ):
            ours = figure("ours", key)
            row = Row(label, ms(median(ours)) + spread(ours, ms))
            if self.has_reference:
                ref = figure("reference", key)
                value = median(ours) / median(ref)
                row.reference = ms(median(ref)) + spread(ref, ms)
                row.ratio = ratio_text(value)
                if target is not None:
                    row.target = f"≤ {target}×"
                    row.verdict = verdict(value <= target)
            self.add(row)
        floor = figure("floor", "total_s")
        row = Row(
            "cold start floor: django.setup() (1 app, 1 model) + 1 pydantic model, no task library",
            ms(median(floor)) + spread(floor, ms),
        )
        if self.has_reference:
            ref = figure("reference", "total_s")
            row.reference = "–"
            row.ratio = f"best possible: {median(floor) / median(ref):.2f}×"
            row.target = "(floor)"
        self.add(row)
        if self.plan.coldstart_instructions:
            self.coldstart_instructions(url)

    def floor_env(self, url: str) -> dict[str, str]:
        """The cold-start floor's environment: our venv, the floor project."""
        return self.sides[0].env(
            BENCH_DATABASE=url, DJANGO_SETTINGS_MODULE="bench.projects.floor.settings"
        )

    def coldstart_instructions(self, url: str) -> None:
        """Instructions executed by one cold start of each side and of the floor (callgrind)."""
        valgrind = shutil.which("valgrind")
        if valgrind is None:
            log("valgrind is not installed: no instruction counts for the cold start")
            return
        runs = [(side, side.name, side.env(BENCH_DATABASE=url)) for side in self.sides]
        runs.append((self.sides[0], "floor", self.floor_env(url)))
        counts: dict[str, int] = {}
        for side, name, env in runs:
            log_file = self.workdir / f"callgrind-{name}.log"
            wrapper = [
                valgrind,
                "--tool=callgrind",
                "--callgrind-out-file=/dev/null",
                f"--log-file={log_file}",
            ]
            side.run("bench.coldstart", name, env=env, wrapper=wrapper)
            found = re.search(r"Collected : (\d+)", log_file.read_text())
            if found is None:
                raise RuntimeError(f"no instruction count in {log_file}")
            counts[name] = int(found.group(1))
        self.report.raw["coldstart_instructions"] = counts

        def millions(count: int) -> str:
            return f"{count / 1e6:,.0f} M"

        row = Row("cold start, instructions executed (callgrind, 1 run)", millions(counts["ours"]))
        floor = Row("cold start floor, instructions executed", millions(counts["floor"]))
        if "reference" in counts:
            row.reference = millions(counts["reference"])
            row.ratio = ratio_text(counts["ours"] / counts["reference"])
            floor.reference = "–"
            floor.ratio = f"best possible: {counts['floor'] / counts['reference']:.2f}×"
            floor.target = "(floor)"
        self.add(row)
        self.add(floor)

    def throughput(
        self, database: str, postgres: Any = None, extra: dict[str, str] | None = None
    ) -> None:
        """Handler throughput; ``extra`` (environment) makes it a diagnostic row, no target."""
        extra = extra or {}
        samples: dict[str, list[dict[str, Any]]] = {side.name: [] for side in self.sides}
        for _rep, side in self.alternate(self.plan.throughput_runs):
            if postgres is None:
                url = self.sqlite_db(side, **extra)
            else:
                name = f"bench_{side.name}_{uuid.uuid4().hex[:8]}"
                postgres.create_database(name)
                url = postgres.dsn(name)
                side.run(
                    "bench.probe", "migrate", "--side", side.name, env=side.env(BENCH_DATABASE=url)
                )
            data, _wall = side.run(
                "bench.probe",
                "throughput",
                "--side",
                side.name,
                "--messages",
                str(self.plan.messages),
                *(["--floor"] if side.name == "ours" else []),
                env=side.env(BENCH_DATABASE=url, **extra),
            )
            if postgres is not None:
                postgres.drop_database(name)
            expected = {"SUCCEEDED": self.plan.messages + data["counted_messages"]}
            if data["batch_failures"] or data["statuses"] != expected:
                raise RuntimeError(f"{side.name} throughput run went wrong: {data}")
            samples[side.name].append(data)
        self.report.raw[f"throughput-{database}"] = samples

        def rate(side: str) -> list[float]:
            return [float(sample["messages_per_s"]) for sample in samples.get(side, [])]

        def per_s(value: float) -> str:
            return f"{value:,.0f}/s"

        ours = rate("ours")
        label = (
            f"handler throughput, {database} ({self.plan.messages:,} no-op messages, batches of 10)"
        )
        row = Row(label, per_s(median(ours)) + spread(ours, per_s))
        if self.has_reference:
            ref = rate("reference")
            value = median(ours) / median(ref)
            row.reference = per_s(median(ref)) + spread(ref, per_s)
            row.ratio = ratio_text(value)
            row.target = "(diagnostic)" if extra else "≥ 2×"
            row.verdict = "" if extra else verdict(value >= 2)
        self.add(row)
        if extra:
            return

        floor = [float(sample["floor_messages_per_s"]) for sample in samples["ours"]]
        row = Row(
            f"floor, {database}: the two writes alone (bare INSERT + UPDATE, autocommit)",
            per_s(median(floor)) + spread(floor, per_s),
            target="(floor)",
        )
        if self.has_reference:
            row.ratio = f"best possible: {median(floor) / median(rate('reference')):.2f}×"
        self.add(row)
        skeleton = [float(sample["skeleton_messages_per_s"]) for sample in samples["ours"]]
        row = Row(
            f"floor, {database}: the SPEC §4 skeleton (the two writes + an empty "
            "transaction.atomic() + alarm armed and disarmed)",
            per_s(median(skeleton)) + spread(skeleton, per_s),
            target="(floor)",
        )
        if self.has_reference:
            row.ratio = f"best possible: {median(skeleton) / median(rate('reference')):.2f}×"
        self.add(row)

        def queries(side: str) -> str:
            sample = samples[side][-1]
            other = sample["statements_per_message"] - sample["queries_per_message"]
            return f"{sample['queries_per_message']:g} (+{other:g} BEGIN/SAVEPOINT)"

        row = Row(f"DB queries per message, {database}", queries("ours"), target="aim: 2")
        row.verdict = verdict(samples["ours"][-1]["queries_per_message"] <= 2)
        if self.has_reference:
            row.reference = queries("reference")
        self.add(row)
        first = samples["ours"][-1]
        self.report.notes.append(
            f"throughput {database}: driver {first['driver']}; statements in the counted "
            f"event of {first['counted_messages']} messages "
            + "; ".join(f"{s}: {samples[s][-1]['statements']}" for s in samples)
            + "; connections opened during the timed run "
            + ", ".join(f"{s}: {samples[s][-1]['connections_opened']}" for s in samples)
        )

    def local(self) -> None:
        burst: dict[str, list[dict[str, Any]]] = {side.name: [] for side in self.sides}
        steady: dict[str, list[dict[str, Any]]] = {side.name: [] for side in self.sides}
        for _rep, side in self.alternate(self.plan.local_runs):
            for samples, extra in ((burst, []), (steady, ["--warm"])):
                url = self.sqlite_db(side)
                data, _wall = side.run(
                    "bench.probe",
                    "local-burst",
                    "--side",
                    side.name,
                    "--tasks",
                    str(self.plan.local_tasks),
                    *extra,
                    env=side.env(BENCH_DATABASE=url, BENCH_LOCAL_WORKERS="2"),
                )
                if data["statuses"].get("FAILED"):
                    self.report.notes.append(f"local mode, {side.name}: failed tasks {data}")
                samples[side.name].append(data)
        first: dict[str, list[dict[str, Any]]] = {side.name: [] for side in self.sides}
        prestarted: list[dict[str, Any]] = []
        for _rep, side in self.alternate(self.plan.local_first_runs):
            url = self.sqlite_db(side)
            env = side.env(BENCH_DATABASE=url, BENCH_LOCAL_WORKERS="2")
            data, _wall = side.run("bench.probe", "local-first", "--side", side.name, env=env)
            first[side.name].append(data)
            if side.name == "ours":
                url = self.sqlite_db(side)
                env = side.env(BENCH_DATABASE=url, BENCH_LOCAL_WORKERS="2")
                data, _wall = side.run(
                    "bench.probe", "local-first", "--side", "ours", "--prestart", env=env
                )
                prestarted.append(data)
        self.report.raw["local-burst"] = burst
        self.report.raw["local-burst-steady"] = steady
        self.report.raw["local-first"] = first
        self.report.raw["local-first-prestarted"] = prestarted

        def figure(samples: dict[str, list[dict[str, Any]]], side: str, key: str) -> list[float]:
            return [float(sample[key]) for sample in samples.get(side, [])]

        n = self.plan.local_tasks
        for key, label in (("submit_p50_s", "p50"), ("submit_p99_s", "p99")):
            ours = figure(burst, "ours", key)
            row = Row(f"local mode, 2 workers: submit {label} ({n} tasks)", ms(median(ours)))
            if label == "p99":
                row.target = "< 1 ms"
                row.verdict = verdict(median(ours) < 0.001)
            if self.has_reference:
                ref = figure(burst, "reference", key)
                row.reference = ms(median(ref))
                row.ratio = ratio_text(median(ours) / median(ref))
            self.add(row)
        for samples, when in (
            (burst, "fresh server process (pool started by the first submit)"),
            (steady, "pool already running (one task done before)"),
        ):
            ours = figure(samples, "ours", "wall_s")
            row = Row(
                f"local mode, 2 workers: wall time until {n} tasks finished, {when}",
                ms(median(ours)) + spread(ours, ms),
            )
            if self.has_reference:
                ref = figure(samples, "reference", "wall_s")
                value = median(ours) / median(ref)
                row.reference = ms(median(ref)) + spread(ref, ms)
                row.ratio = ratio_text(value)
                row.target = "≤ 0.8×"
                row.verdict = verdict(value <= 0.8)
            self.add(row)
        ours = figure(first, "ours", "first_task_s")
        row = Row("local mode: first submit → first task finished (pool start)", ms(median(ours)))
        row.ours += spread(ours, ms)
        if self.has_reference:
            ref = figure(first, "reference", "first_task_s")
            value = median(ours) / median(ref)
            row.reference = ms(median(ref)) + spread(ref, ms)
            row.ratio = ratio_text(value)
            row.target = "≤ 1×"
            row.verdict = verdict(value <= 1)
        self.add(row)
        # What one clean (spawned) worker must do before its first task, at least.
        ours_side = self.sides[0]
        env = ours_side.env(BENCH_DATABASE=f"sqlite:///{self.workdir / 'floor.sqlite3'}")
        spawn_floor: list[float] = []
        for _ in range(max(1, self.plan.local_first_runs)):
            started = time.perf_counter()
            subprocess.run(
                [str(ours_side.python), "-c", "import django; django.setup()"],
                cwd=REPO,
                env=env,
                check=True,
                stdin=subprocess.DEVNULL,
            )
            spawn_floor.append(time.perf_counter() - started)
        self.report.raw["local-spawn-floor"] = spawn_floor
        row = Row(
            "floor: a fresh interpreter + django.setup() (what a clean worker does first)",
            ms(median(spawn_floor)) + spread(spawn_floor, ms),
            target="(floor)",
        )
        if self.has_reference:
            ref = figure(first, "reference", "first_task_s")
            row.ratio = f"best possible: {median(spawn_floor) / median(ref):.1f}×"
        self.add(row)
        warm = [float(sample["first_task_s"]) for sample in prestarted]
        ready = [float(sample["pool_ready_s"]) for sample in prestarted]
        row = Row(
            "local mode: same, pool started at server start (runserver + lambda_tasks_local)",
            f"{ms(median(warm))} (pool ready {ms(median(ready))} after start)",
        )
        if self.has_reference:
            ref = figure(first, "reference", "first_task_s")
            row.reference = f"{ms(median(ref))} (no pre-start)"
            row.ratio = ratio_text(median(warm) / median(ref))
        self.add(row)

    def oncommit(self) -> None:
        with envs_services().moto_server() as moto:
            samples: dict[str, dict[str, Any]] = {}
            for side in self.sides:
                url = self.sqlite_db(side)
                env = side.env(
                    BENCH_DATABASE=url,
                    AWS_ENDPOINT_URL_SQS=moto.url,
                    **envs_services().AWS_ENV,
                )
                data, _wall = side.run(
                    "bench.probe",
                    "oncommit",
                    "--side",
                    side.name,
                    "--calls",
                    str(self.plan.oncommit_calls),
                    "--repeats",
                    str(self.plan.oncommit_runs),
                    env=env,
                )
                for run in [data["cold"], *data["warm"]]:
                    if run["messages_in_queue"] != self.plan.oncommit_calls:
                        raise RuntimeError(f"{side.name}: messages went missing: {run}")
                samples[side.name] = data
        self.report.raw["oncommit"] = samples
        calls = self.plan.oncommit_calls

        def warm(side: str) -> list[float]:
            return [float(run["seconds"]) for run in samples[side]["warm"]]

        def api_calls(side: str) -> str:
            run = samples[side]["warm"][-1]
            detail = ", ".join(f"{n} {action}" for action, n in sorted(run["calls"].items()))
            return f"{run['api_calls']} ({detail})"

        ours = warm("ours")
        row = Row(
            f"{calls} execute_on_commit in one transaction → moto SQS: wall time",
            ms(median(ours)) + spread(ours, ms),
        )
        if self.has_reference:
            ref = warm("reference")
            value = median(ref) / median(ours)
            row.reference = ms(median(ref)) + spread(ref, ms)
            row.ratio = f"{value:.1f}× faster"
            row.target = "≥ 5× faster"
            row.verdict = verdict(value >= 5)
        self.add(row)
        row = Row(
            "same, first transaction of the process (SQS client built)",
            ms(float(samples["ours"]["cold"]["seconds"])),
        )
        if self.has_reference:
            ref_cold = float(samples["reference"]["cold"]["seconds"])
            row.reference = ms(ref_cold)
            row.ratio = f"{ref_cold / float(samples['ours']['cold']['seconds']):.1f}× faster"
        self.add(row)
        row = Row(f"same: SQS API calls per transaction of {calls}", api_calls("ours"))
        row.target = "≤ 10"
        row.verdict = verdict(int(samples["ours"]["warm"][-1]["api_calls"]) <= 10)
        if self.has_reference:
            row.reference = api_calls("reference")
        self.add(row)

    def size(self) -> None:
        log("installed size: fresh venvs with lambda-tasks-handler / django-lambda-tasks")
        wheels = sorted((envs.VENVS / "dist").glob("lambda_tasks_*.whl"))
        if not wheels:
            wheels = envs.build_wheels()
        ours = envs.installed_size(
            [
                str(w)
                for w in wheels
                if "handler" in w.name or "django" in w.name or "core" in w.name
            ],
            "ours",
            envs.constraints_file(),
            offline=True,
        )
        self.report.raw["size"] = {"ours": ours}
        ours_total = int(ours["total"])
        row = Row(
            "installed size: pip install lambda-tasks-handler (site-packages)",
            f"{mb(ours_total)} (du {mb(int(ours['disk']))})",
        )
        if self.has_reference:
            ref = envs.installed_size(
                [envs.REFERENCE_REQUIREMENT], "reference", envs.constraints_file(), offline=False
            )
            self.report.raw["size"]["reference"] = ref
            ref_total = int(ref["total"])
            value = ours_total / ref_total
            row.reference = f"{mb(ref_total)} (du {mb(int(ref['disk']))})"
            row.ratio = ratio_text(value)
            row.target = "≤ 0.5×"
            row.verdict = verdict(value <= 0.5)
            self.add(row)
            ours_dists: dict[str, int] = dict(ours["distributions"])
            ref_dists: dict[str, int] = dict(ref["distributions"])
            shared = sorted(set(ours_dists) & set(ref_dists))
            floor_names = ["django", "botocore", "pydantic", "pydantic-core"]
            floor = sum(ours_dists.get(name, 0) for name in floor_names)
            shared_total = sum(ours_dists[name] for name in shared)
            ours_own = {n: s for n, s in ours_dists.items() if n not in shared}
            ref_own = {n: s for n, s in ref_dists.items() if n not in shared}
            self.add(
                Row(
                    "installed size: added on top of the dependencies both share",
                    mb(sum(ours_own.values())) + " (" + breakdown(ours_own) + ")",
                    mb(sum(ref_own.values())) + " (" + breakdown(ref_own) + ")",
                    ratio_text(sum(ours_own.values()) / max(1, sum(ref_own.values()))),
                )
            )
            self.report.notes.append(
                f"size floor: Django {mb(ours_dists.get('django', 0))} + botocore "
                f"{mb(ours_dists.get('botocore', 0))} + pydantic/pydantic-core "
                f"{mb(ours_dists.get('pydantic', 0) + ours_dists.get('pydantic-core', 0))} = "
                f"{mb(floor)}, i.e. {floor / ref_total:.2f}× the reference's {mb(ref_total)}; "
                f"all shared dependencies ({', '.join(shared)}): {mb(shared_total)} = "
                f"{shared_total / ref_total:.2f}× the reference. 0.5× would be "
                f"{mb(ref_total // 2)}, below the floor."
            )
        else:
            self.add(row)

    def fuzz(self) -> None:
        inputs = self.plan.fuzz_inputs
        log(f"handler fuzz: python -m bench.fuzz_handler --inputs {inputs} (workspace venv)")
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "bench.fuzz_handler", "--inputs", str(inputs), "--seed", "0"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - started
        text = result.stdout
        self.report.raw["fuzz"] = {"exit": result.returncode, "stdout": text, "seconds": wall}

        def number(pattern: str) -> int | None:
            found = re.search(pattern, text)
            return int(found.group(1)) if found else None

        records = number(r"\((\d+) records\)")
        exceptions = number(r"handler exceptions: (\d+)")
        unintended = number(r"unintended executions: (\d+)")
        wrong = number(r"wrong responses: (\d+)")
        if records is None or exceptions is None or unintended is None:
            self.add(
                Row(
                    "handler fuzz (bench/fuzz_handler.py)",
                    f"could not read its output (exit {result.returncode}): "
                    + (text + result.stderr)[-300:].replace("\n", " "),
                    verdict="MISSED",
                )
            )
            return
        ok = exceptions == 0 and unintended == 0 and (wrong or 0) == 0
        self.add(
            Row(
                "handler fuzz (bench/fuzz_handler.py, ours only)",
                f"{records:,} records in {inputs:,} events: {exceptions} handler exceptions, "
                f"{unintended} unintended executions, {wrong} wrong responses ({wall:.0f} s)",
                target="≥ 10,000 records, 0 / 0",
                verdict=verdict(ok and records >= 10_000) if inputs >= 2000 else verdict(ok),
            )
        )


def mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def breakdown(sizes: dict[str, int]) -> str:
    ordered = sorted(sizes.items(), key=lambda item: -item[1])
    return ", ".join(f"{name} {size / 1000:,.0f} kB" for name, size in ordered)


def envs_services() -> Any:
    """bench.services, imported when needed (it imports tests.services, hence pytest)."""
    from bench import services

    return services


# --------------------------------------------------------------------------- output


def table(report: Report) -> str:
    header = ["measure", "ours", "reference 0.4.0", "ratio", "target", "result"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in report.rows:
        cells = [row.measure, row.ours, row.reference, row.ratio, row.target, row.verdict]
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return "\n".join(lines)


def describe(sides: list[Side], args: argparse.Namespace) -> list[str]:
    lines = [
        f"date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"command: uv run python -m bench {' '.join(args.argv)}".rstrip(),
        f"python: {platform.python_version()} ({envs.interpreter()}), "
        f"{platform.machine()}, {cpu_count()} CPUs",
    ]
    for side in sides:
        versions = ", ".join(f"{name} {version}" for name, version in side.versions.items())
        lines.append(f"{side.name}: {side.description}: {versions}")
    return lines


def cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0))


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of lambda-tasks side by side with django-lambda-tasks 0.4.0.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny counts and one repetition (a smoke run)"
    )
    parser.add_argument(
        "--only",
        default=",".join(MEASURES),
        help=f"comma-separated measures to run (default: all of {', '.join(MEASURES)})",
    )
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="run our side only (no reference install, no ratios)",
    )
    parser.add_argument(
        "--ours-env",
        choices=("wheels", "workspace"),
        default="wheels",
        help="our side from a fresh venv of the built wheels (default) or the workspace venv",
    )
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    measures = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(measures) - set(MEASURES))
    if unknown:
        parser.error(f"unknown measure(s): {', '.join(unknown)}")
    args.measures = measures
    return args


@contextlib.contextmanager
def _postgres(report: Report) -> Iterator[Any]:
    services = envs_services()
    reason = services.postgres_unavailable()
    if reason is not None:
        log(f"skipping PostgreSQL: {reason}")
        report.notes.append(f"PostgreSQL skipped: {reason}")
        yield None
        return
    with services.postgres_server() as server:
        yield server


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = Plan.quick() if args.quick else Plan()
    started = time.perf_counter()
    CACHE.mkdir(parents=True, exist_ok=True)
    sides = [envs.ours_side(args.ours_env)]
    if not args.no_reference:
        sides.append(envs.reference_side())
    report = Report()
    with tempfile.TemporaryDirectory(prefix="lambda-tasks-bench-") as workdir:
        bench = Bench(sides, plan, report, Path(workdir))
        for measure in args.measures:
            log(f"measure: {measure}")
            if measure == "coldstart":
                bench.coldstart()
            elif measure == "throughput-sqlite":
                bench.throughput("SQLite")
                if not args.quick:
                    # Diagnostic: the same with commits not waiting for the disk.
                    bench.throughput(
                        "SQLite, synchronous=NORMAL",
                        extra={"BENCH_SQLITE_SYNCHRONOUS": "NORMAL"},
                    )
            elif measure == "throughput-postgres":
                with _postgres(report) as server:
                    if server is not None:
                        bench.throughput("PostgreSQL", server)
            elif measure == "local":
                bench.local()
            elif measure == "oncommit":
                bench.oncommit()
            elif measure == "size":
                bench.size()
            elif measure == "fuzz":
                bench.fuzz()
    if args.quick:
        report.notes.append(
            "--quick: tiny counts and one repetition; the figures only show that every "
            "measure runs (e.g. the submit p99 of 20 tasks is the pool-starting first one)"
        )
    header = describe(sides, args)
    print("\n".join(header))
    print()
    print(table(report))
    if report.notes:
        print()
        for note in report.notes:
            print(f"- {note}")
    print(f"\n(bench took {time.perf_counter() - started:.0f} s)")
    payload = {"header": header, "rows": [row.__dict__ for row in report.rows], "raw": report.raw}
    latest = CACHE / ("latest-quick.json" if args.quick else "latest.json")
    for path in {latest, *([args.json] if args.json else [])}:
        path.write_text(json.dumps(payload, indent=1, default=str))
    return 0
