"""Roll artifacts out to dev, qa and prod as real HTTP endpoints on 127.0.0.1: :func:`deploy` (blue/green or
canary, rolling back automatically when a check fails), :func:`rollback`, :func:`promote`, :func:`undeploy` and
:func:`status`.

Each environment has its own port, where a router (:mod:`llmops_helpers.release.router`) sends traffic to two slots,
blue and green, each a serving process with one artifact. A deploy starts the new artifact in the idle slot while
the live one keeps serving. Every step is recorded (:mod:`~llmops_helpers.release.state`); the processes and HTTP
are :mod:`~llmops_helpers.release.endpoints`'s, the checks :mod:`~llmops_helpers.release.checks`'s. Prod takes an
artifact only with a recorded approval."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from pathlib import Path
from typing import Any

from llmops_helpers.paths import deploy_scan_root, file_lock, is_locked, registered_deploy_folders
from llmops_helpers.release.artifacts import load_artifact, verify_artifact
from llmops_helpers.release.checks import probe_slot, reply_problems
from llmops_helpers.release.endpoints import (
    alive,
    ensure_router,
    find_kit_processes,
    http_json,
    router_headers,
    score_with_slot,
    set_weights,
    slot_errors,
    slot_stopped,
    start_slot,
    stop_pid,
    weights_now,
)
from llmops_helpers.release.state import (
    DEFAULT_CANARY_STEPS,
    DEFAULT_MIN_REQUESTS,
    ENVIRONMENTS,
    NEEDS_APPROVAL,
    ROLLOUT_ENDS,
    STATE_LOCK_TIMEOUT_S,
    STRATEGIES,
    ApprovalRequired,
    CanarySLO,
    DeployError,
    DeployState,
    DeployStateError,
    deploy_dir,
    load_state,
    now_utc,
    record,
    save_state,
    state_file,
    state_lock,
    update_state,
)


def _other_slot(slot: str | None) -> str:
    """The slot a new artifact goes to when ``slot`` is live (blue when nothing is)."""
    return "green" if slot == "blue" else "blue"


def _traffic(questions: list | None):
    """Endless synthetic user traffic: the CI golden questions, in order."""
    from llmops_helpers.evaluate.golden import golden_dir, load_golden

    rows = questions or load_golden(golden_dir() / "ci.jsonl")
    while True:
        yield from rows


class _SlotWatch:
    """Asks a slot's ``/health`` every ``interval`` seconds in a background thread; ``stopped`` is set, and
    ``why`` says what happened and when, as soon as it stops answering."""

    def __init__(self, slot: str, slot_url: str, interval: float = 0.5) -> None:
        self.slot, self.slot_url, self.interval = slot, slot_url, interval
        self.stopped, self._done, self.why = threading.Event(), threading.Event(), ""
        self._thread = threading.Thread(target=self._run, name=f"watch-{slot}", daemon=True)

    def _run(self) -> None:
        while not self._done.is_set():
            why = slot_stopped(self.slot_url)
            if why:
                self.why = f"{self.slot} stopped answering: {why} at {time.strftime('%H:%M:%S UTC', time.gmtime())}"
                self.stopped.set()
                return
            self._done.wait(self.interval)

    def __enter__(self) -> _SlotWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._done.set()


def _score_unless(url: str, question: str, stop: threading.Event) -> tuple[int, dict, str] | None:
    """``score_with_slot`` through the router, or None as soon as ``stop`` is set: a request in flight on the
    other slot is left to finish on its own rather than delaying the rollback by a whole answer."""
    box: list = []

    def ask() -> None:
        try:
            box.append(score_with_slot(url, question))
        except OSError as exc:
            box.append(exc)

    worker = threading.Thread(target=ask, daemon=True)
    worker.start()
    while worker.is_alive() and not stop.is_set():
        worker.join(0.1)
    if box and isinstance(box[0], OSError):
        raise box[0]
    return box[0] if box else None


def cannot_hold(seen: int, failed: int, good: int, min_requests: int, slo: CanarySLO) -> bool:
    """True when a canary step is bound to violate ``slo`` whatever its remaining answers bring: more failed
    answers than the error budget of ``min_requests`` allows, or too few good answers left possible. Its SLOs
    judged now fail too (``failed / seen`` and ``good / seen`` are then already past the limits), so a broken
    release is rolled back at its first failures instead of after the whole step's traffic."""
    remaining = min_requests - seen
    return failed > slo.max_error_rate * min_requests or good + remaining < slo.min_quality * min_requests


def _canary_step(url: str, slot: str, weight: int, min_requests: int, traffic, slo: CanarySLO, echo: bool, *,
                 headers: dict[str, str] | None = None, slot_url: str = "") -> dict[str, Any]:
    """Send traffic through the router until ``slot`` has had ``min_requests`` (or, sooner, until the step
    :func:`cannot_hold` its SLOs); judge its SLOs.

    While it runs, the slot's ``/health`` is asked directly every half second (when ``slot_url`` is given), and
    the router's view of the slot is read at the end, so a slot that dies ends the step at once with the real
    reason. Only server-side failures count as errors; the router tracks client errors (4xx) apart.
    ``headers`` carry the router's admin token."""
    from tqdm.auto import tqdm

    http_json(url + "/_router/reset", {}, timeout=10, headers=headers)
    good = seen = sent = failed = 0
    early = False
    limit = min_requests * max(1, round(100 / weight)) + 2
    watch = _SlotWatch(slot, slot_url) if slot_url else None
    never = threading.Event()
    # a 10% step needs ~10 requests per answer on the new slot, a few seconds each: show every one
    bar = tqdm(total=min_requests, desc=f"canary {weight:>3}%", unit="answer", disable=not echo or None,
               bar_format="{desc}: {n}/{total} answers on the new slot |{bar}| {elapsed} {postfix}")
    with watch or contextlib.nullcontext(), bar:
        while seen < min_requests and sent < limit:
            row = next(traffic)
            started = time.perf_counter()
            answered = _score_unless(url, row.question, watch.stopped if watch else never)
            if answered is None:
                break
            code, reply, served_by = answered
            sent += 1
            if served_by == slot:
                seen += 1
                failed += code >= 500
                good += code == 200 and not reply_problems(reply, row.context_ids)
                bar.update(1)
            bar.set_postfix_str(f"request {sent} (max {limit}): HTTP {code} from {served_by} in "
                                f"{time.perf_counter() - started:.1f} s")
            if seen < min_requests and cannot_hold(seen, failed, good, min_requests, slo):
                early = True  # no answer still to come can save this step: roll back now, not after 10× more traffic
                break
    stopped = watch.why if watch else ""
    router = http_json(url + "/_router", timeout=10, headers=headers)[1]
    stats = router.get("stats", {}).get(slot, {})
    health = router.get("health", {}).get(slot, {})
    if health.get("up") is False:  # the router saw it first (a user's request was refused)
        stopped = f"{slot} stopped answering: {health.get('reason')} at {health.get('since_utc')}"
    quality = good / seen if seen else 0.0
    problems = [stopped] if stopped else []
    if not stopped and not seen:
        problems.append(f"{slot} received no traffic")
    if not stopped and stats.get("error_rate", 0) > slo.max_error_rate:
        problems.append(f"error rate {stats['error_rate']:.0%} > {slo.max_error_rate:.0%}")
    if not stopped and (stats.get("p95_s") or 0) > slo.max_p95_s:
        problems.append(f"p95 latency {stats['p95_s']:.1f} s > {slo.max_p95_s:g} s")
    if not stopped and quality < slo.min_quality:
        problems.append(f"quality sample {quality:.0%} < {slo.min_quality:.0%}")
    step = {"weight": weight, "requests": sent, "canary_requests": seen, "errors": stats.get("errors", 0),
            "client_errors": stats.get("client_errors", 0), "error_rate": stats.get("error_rate", 0.0),
            "p95_s": stats.get("p95_s"), "quality": quality, "stopped": stopped, "passed": not problems,
            "problems": problems, "ended_early": early}
    if echo:
        p95 = f"{step['p95_s']:.1f} s" if step["p95_s"] is not None else "-"
        print(f"  canary {weight:>3}%: {seen} of {sent} requests on {slot}; errors {step['error_rate']:.0%}, "
              f"p95 {p95}, quality {quality:.0%}  {'✅' if not problems else '❌ ' + '; '.join(problems)}"
              + (f" (ended after {seen} of {min_requests} answers: the SLO could no longer hold)" if early else ""),
              flush=True)
    return step


def _rollout_lock(environment: str, folder: str | Path | None) -> Path:
    return deploy_dir(folder) / f"{environment}.rollout.lock"


def _one_rollout_at_a_time(func):
    """Hold the environment's rollout lock for the whole call: two deploys to one environment would start
    and stop each other's slots. Deploys to other environments run in parallel."""

    @functools.wraps(func)
    def locked(artifact_ref: str | Path, environment: str, **kwargs: Any) -> dict[str, Any]:
        if environment not in ENVIRONMENTS:
            return func(artifact_ref, environment, **kwargs)
        with file_lock(_rollout_lock(environment, kwargs.get("folder")), timeout=STATE_LOCK_TIMEOUT_S,
                       purpose=f"deploying to {environment}"):
            return func(artifact_ref, environment, **kwargs)

    return locked


def unfinished_rollout(state: dict[str, Any], environment: str) -> dict[str, Any] | None:
    """The environment's last ``rollout_started`` event if nothing ended it (deployed, rolled back, ...)."""
    for event in reversed(state["history"]):
        if event.get("environment") == environment:
            if event.get("action") == "rollout_started":
                return event
            if event.get("action") in ROLLOUT_ENDS:
                return None
    return None


def _prepare_environment(state: DeployState, environment: str, folder: str | Path | None) -> None:
    """Before a deploy: stop endpoints of this environment that the state does not know (left by a deleted
    state file), and close a rollout that a killed deploy left half done, sending traffic back to the live slot."""
    entry = state["environments"].get(environment)
    if not entry:
        for orphan in find_kit_processes([deploy_dir(folder)]):
            if orphan.environment == environment:
                stop_pid(orphan.pid, name=orphan.name, folder=folder)
        return
    started = unfinished_rollout(state, environment)
    if started:
        live, left = entry.get("live"), weights_now(environment, folder, entry)
        slot = (entry.get("slots") or {}).get(live or "", {})
        if live and alive(slot.get("pid")):
            set_weights(entry, environment, folder, {live: 100})
        record(state, environment, "rollout_interrupted", None, interrupted_version=started.get("version"),
               weights_left=left, restored=live)
        save_state(state, folder)


@_one_rollout_at_a_time
def deploy(artifact_ref: str | Path, environment: str, *, approved_by: str = "", port: int | None = None,
           folder: str | Path | None = None, registry: str | Path | None = None, strategy: str = "bluegreen",
           canary_steps: tuple[int, ...] = DEFAULT_CANARY_STEPS, min_requests: int = DEFAULT_MIN_REQUESTS,
           slo: CanarySLO | None = None, questions: list | None = None, echo: bool = False) -> dict[str, Any]:
    """Roll the artifact out to ``environment`` behind its router, and record every step.

    The new artifact starts in the idle slot (blue or green) while the live one keeps serving. ``bluegreen``
    tests the idle slot directly, then switches all traffic at once and keeps the old slot running for an instant
    :func:`rollback`. ``canary`` moves traffic in ``canary_steps`` (percent), sending synthetic traffic (the CI
    golden questions) until the new slot has answered ``min_requests`` at each step, and checks ``slo``; a
    violation switches traffic back and stops the new slot (``rolled_back``). The first deploy to an environment
    simply goes live. Returns the environment's entry plus ``rolled_back``, ``reason`` and ``steps``."""
    if environment not in ENVIRONMENTS:
        raise DeployError(f"unknown environment {environment!r}; use one of {', '.join(ENVIRONMENTS)}.")
    if strategy not in STRATEGIES:
        raise DeployError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}.")
    artifact = verify_artifact(load_artifact(artifact_ref, registry))
    state = load_state(folder)
    _prepare_environment(state, environment, folder)
    if environment in NEEDS_APPROVAL and not approved_by.strip():
        record(state, environment, "refused", artifact, reason="no approval")
        save_state(state, folder)
        raise ApprovalRequired(f"deploying {artifact.ref} to {environment} needs an approval: pass "
                               "approved_by='name' (CLI: --approved-by NAME). It is recorded in the history.")
    if approved_by:
        record(state, environment, "approved", artifact, approved_by=approved_by)
    entry = state["environments"].setdefault(environment, {"slots": {}})
    entry.setdefault("slots", {})
    try:
        ensure_router(entry, environment, port, folder)
    except DeployError:
        state["environments"].pop(environment, None)
        record(state, environment, "failed", artifact, reason="the router did not start")
        save_state(state, folder)
        raise
    live = entry.get("live") if alive(entry["slots"].get(entry.get("live") or "", {}).get("pid")) else None
    target = _other_slot(live)
    stop_pid(entry["slots"].pop(target, {}).get("pid"))
    outcome: dict[str, Any] = {"rolled_back": False, "reason": "", "steps": [], "strategy": strategy,
                               "slot": target}
    try:
        entry["slots"][target] = start_slot(artifact, environment, target, folder)
    except DeployError as exc:
        record(state, environment, "failed", artifact, reason="did not become healthy", slot=target)
        if live is None:
            stop_pid(entry.get("router_pid"))
            state["environments"].pop(environment, None)
        save_state(state, folder)
        where = f"; {live} still serves {entry['slots'][live]['version']}" if live else ""
        raise DeployError(f"{artifact.ref} did not start in {environment}{where}. {exc}") from None

    def roll_back(reason: str) -> dict[str, Any]:
        set_weights(entry, environment, folder, {live: 100})
        stop_pid(entry["slots"].pop(target, {}).get("pid"))
        record(state, environment, "rolled_back", artifact, reason=reason, restored=entry["version"])
        save_state(state, folder)
        outcome.update(rolled_back=True, reason=reason)
        if echo:
            print(f"↩️  rolled back {environment} to {entry['version']}: {reason}", flush=True)
        return {**entry, **outcome}

    if live:  # recorded before traffic moves, so `status` can tell a rollout that never finished
        record(state, environment, "rollout_started", artifact, strategy=strategy, slot=target,
               previous=entry.get("version"))
        save_state(state, folder)
    if live and strategy == "bluegreen":
        problems = probe_slot(entry["slots"][target])
        if problems:
            return roll_back("; ".join(problems))
        set_weights(entry, environment, folder, {target: 100})
        record(state, environment, "switched", artifact, slot=target, previous=entry["version"])
    elif live:
        traffic = _traffic(questions)
        for weight in canary_steps:
            set_weights(entry, environment, folder, {target: weight, live: 100 - weight})
            save_state(state, folder)
            step = _canary_step(entry["url"], target, weight, min_requests, traffic, slo or CanarySLO(), echo,
                                headers=router_headers(environment, folder), slot_url=entry["slots"][target]["url"])
            outcome["steps"].append(step)
            record(state, environment, "canary", artifact, **{k: step[k] for k in ("weight", "canary_requests",
                                                                                 "error_rate", "p95_s",
                                                                                 "quality", "passed")})
            if not step["passed"]:
                return roll_back(f"canary at {weight}%: " + "; ".join(step["problems"]))
        set_weights(entry, environment, folder, {target: 100})
    else:
        set_weights(entry, environment, folder, {target: 100})
    entry.update(live=target, version=artifact.version, digest=artifact.digest, artifact=str(artifact.path),
                 deployed_at=now_utc())
    record(state, environment, "deployed", artifact, url=entry["url"], slot=target, strategy=strategy)
    save_state(state, folder)
    if echo:
        print(f"✅ {environment}: {artifact.version} live on {target} at {entry['url']}", flush=True)
    return {**entry, **outcome}


def rollback(environment: str, *, reason: str = "manual", folder: str | Path | None = None) -> dict[str, Any]:
    """Blue/green's instant rollback: send all traffic back to the other slot, which still runs the previous
    artifact, and record it. It waits for a deploy to the same environment to finish (its rollout lock), so a
    rollback never lands in the middle of a switch or a canary and loses either's record."""
    with file_lock(_rollout_lock(environment, folder), timeout=STATE_LOCK_TIMEOUT_S,
                   purpose=f"rolling back {environment}"), update_state(folder, f"rolling back {environment}") as state:
        entry = state["environments"].get(environment)
        if not entry:
            raise DeployError(f"nothing is deployed to {environment}.")
        other = _other_slot(entry.get("live"))
        previous = entry["slots"].get(other)
        if not previous or not alive(previous.get("pid")):
            raise DeployError(f"{environment} has no previous slot running to roll back to; deploy the previous "
                              "artifact instead (`llmops deploy --artifact name@version`).")
        set_weights(entry, environment, folder, {other: 100})
        state["history"].append({"time": now_utc(), "environment": environment, "action": "rolled_back",
                                 "version": entry["version"], "digest": entry["digest"], "reason": reason,
                                 "restored": previous["version"]})
        entry.update(live=other, version=previous["version"], digest=previous["digest"],
                     artifact=previous["artifact"])
    return entry


def promote(source: str, environment: str, **kwargs: Any) -> dict[str, Any]:
    """Deploy to ``environment`` exactly the digest that ``source`` serves: build once, promote the same bytes."""
    entry = load_state(kwargs.get("folder"))["environments"].get(source)
    if not entry or not entry.get("digest"):
        raise DeployError(f"nothing is deployed to {source}, so there is nothing to promote.")
    return deploy(entry["digest"], environment, **kwargs)


def _stop_environment(entry: dict[str, Any], environment: str, folder: str | Path | None) -> list[str]:
    """Stop the environment's recorded router and slots (each only if its PID is still ours), then any other
    process of this environment in this folder found by command line; the names stopped."""
    stopped = []
    for name, slot in (entry.get("slots") or {}).items():
        if stop_pid(slot.get("pid"), name=f"{environment}.{name}", folder=folder, started=slot.get("pid_started")):
            stopped.append(f"{environment}.{name}")
    if stop_pid(entry.get("router_pid"), name=f"{environment}.router", folder=folder,
                 started=entry.get("router_started")):
        stopped.append(f"{environment}.router")
    if stop_pid(entry.get("pid"), folder=folder):  # a deployment recorded before routers existed
        stopped.append(f"{environment} (pid {entry.get('pid')})")
    for orphan in find_kit_processes([deploy_dir(folder)]):
        if orphan.environment == environment and stop_pid(orphan.pid, name=orphan.name, folder=folder,
                                                           started=orphan.started):
            stopped.append(orphan.name)
    return stopped


def undeploy(environment: str, folder: str | Path | None = None) -> list[str]:
    """Stop the environment's router and slots, and record it; returns the processes stopped. Only processes
    that are still the kit's endpoints are signalled, however old the recorded PIDs are, and endpoints of this
    environment that the state lost track of are found by their command line and stopped too."""
    with file_lock(_rollout_lock(environment, folder), timeout=STATE_LOCK_TIMEOUT_S,
                   purpose=f"undeploying {environment}"):
        entry = load_state(folder)["environments"].get(environment)
        stopped = _stop_environment(entry or {}, environment, folder)
        if entry or stopped:
            with update_state(folder, f"undeploying {environment}") as state:
                state["environments"].pop(environment, None)
                record(state, environment, "stopped", None, stopped=stopped,
                       **({"version": entry.get("version"), "digest": entry.get("digest")} if entry else
                          {"reason": "not in the state; found by process"}))
    return stopped


def undeploy_all(folders: list[str | Path] | None = None) -> list[dict[str, Any]]:
    """Stop every environment in every deployment folder the kit has used (:func:`registered_deploy_folders`,
    the current one, and the folder of any kit endpoint running under :func:`deploy_scan_root`), including lab
    sandboxes; endpoints of other checkouts and of other users are left alone.
    A damaged ``state.json`` is moved aside once its folder's endpoints are stopped. One row per environment:
    folder, environment, stopped."""
    if folders is None:
        home = deploy_scan_root()
        found = {p.folder for p in find_kit_processes() if p.folder and p.folder.is_relative_to(home)}
        candidates = [*registered_deploy_folders(), deploy_dir(), *sorted(found)]
    else:
        candidates = [Path(f) for f in folders]
    done = []
    for folder in dict.fromkeys(Path(f).resolve() for f in candidates):
        try:
            environments = list(load_state(folder)["environments"])
        except DeployStateError:
            done += _recover_damaged_state(folder)
            continue
        running = {p.environment for p in find_kit_processes([folder])}
        for environment in dict.fromkeys([*environments, *sorted(running)]):
            done.append({"folder": str(folder), "environment": environment,
                         "stopped": undeploy(environment, folder)})
    return done


def _recover_damaged_state(folder: Path) -> list[dict[str, Any]]:
    """Stop every kit endpoint in ``folder`` (found by command line), move the damaged state aside, and start
    a new state whose history says so."""
    rows: dict[str, list[str]] = {}
    for proc in find_kit_processes([folder]):
        if stop_pid(proc.pid, name=proc.name, folder=folder, started=proc.started):
            rows.setdefault(proc.environment, []).append(proc.name)
    with state_lock(folder, "recovering a damaged state file"):
        path = state_file(folder)
        kept = path.with_name(f"state.json.damaged-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}")
        if path.is_file():
            os.replace(path, kept)
        state = load_state(folder)
        for environment, stopped in (rows or {"-": []}).items():
            record(state, environment, "stopped", None, stopped=stopped,
                   reason=f"state.json was damaged; kept as {kept.name}")
        save_state(state, folder)
    return [{"folder": str(folder), "environment": env, "stopped": stopped} for env, stopped in rows.items()]


def status(folder: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Each environment's recorded deployment, with ``running`` checked against the live endpoint, the traffic
    split (``weights``), a rollout that never finished (``rollout``, with ``in_progress`` when its deploy still
    runs), and ``problems`` (a slot that is down, or whose latest answers were server errors)."""
    state = load_state(folder)
    result = {}
    for environment, entry in state["environments"].items():
        running = False
        if alive(entry.get("router_pid"), name=f"{environment}.router", folder=folder,
                  started=entry.get("router_started")) and entry.get("url"):
            try:
                code, body = http_json(entry["url"] + "/version", timeout=5)
                running = code == 200 and body.get("digest") == entry.get("digest")
            except OSError:
                running = False
        weights = weights_now(environment, folder, entry)
        problems = []
        for slot, weight in weights.items():
            record_ = (entry.get("slots") or {}).get(slot, {})
            if weight and not alive(record_.get("pid"), name=f"{environment}.{slot}", folder=folder,
                                     started=record_.get("pid_started")):
                problems.append(f"{environment}.{slot} gets {weight}% of the traffic but is not running")
            elif weight:
                problems += [p for p in [slot_errors(folder, f"{environment}.{slot}")] if p]
        rollout = unfinished_rollout(state, environment)
        if rollout:
            rollout = {**rollout, "in_progress": is_locked(_rollout_lock(environment, folder))}
        result[environment] = {**entry, "running": running, "weights": weights, "rollout": rollout,
                               "problems": problems, "healthy": running and not problems}
    return result


def plot_rollouts(outcomes: dict[str, dict[str, Any]], ax: Any = None):
    """Canary rollouts side by side: a bar per step (the new version's share of traffic), green when the step
    held its SLOs and red when it triggered the rollback, with the measured error rate, quality and p95."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3.6))
    x, ticks, labels = 0, [], []
    for label, outcome in outcomes.items():
        start = x
        for step in outcome.get("steps") or []:
            ax.bar(x, step["weight"], color="#2ca02c" if step["passed"] else "#d62728", width=0.8)
            p95 = f"{step['p95_s']:.1f}s" if step.get("p95_s") is not None else "-"
            ax.text(x, step["weight"] + 3, f"err {step['error_rate']:.0%}\nq {step['quality']:.0%}\np95 {p95}",
                    ha="center", va="bottom", fontsize=7)
            ticks.append(x)
            labels.append(f"{step['weight']}%")
            x += 1
        verdict = "rolled back" if outcome.get("rolled_back") else "completed"
        ax.text((start + x - 1) / 2, -28, f"{label}\n({verdict})", ha="center", va="top", fontsize=8.5)
        x += 1
    ax.set_xticks(ticks, labels, fontsize=8)
    ax.set_ylim(0, 140)
    ax.set_yticks(range(0, 101, 25))
    ax.set_ylabel("traffic on the new version (%)")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_title("Canary steps: green held the SLOs, red triggered the automatic rollback")
    return ax
